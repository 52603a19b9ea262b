//! Retrieval daemon: hybrid search over each store's products and FAQ/policy documents.
//! Sentence vectors go through an HNSW graph, the query text through BM25, and the two
//! rankings are merged with reciprocal rank fusion; product filters (genre, demographic,
//! stock) apply before the top k is cut. Catalog vectors are embedded once and cached on
//! disk. The engine sits behind [`SearchBackend`]: the embedded backend (in-process, the
//! default) or [`OpenSearchBackend`] (`retrieval.backend = "opensearch"`: k-NN and BM25 in
//! OpenSearch, fused here the same way), without changing the gRPC service. With the
//! `mangaassist-standins` crate (testing/standins) simulates the OpenSearch REST subset
//! the backend uses.

mod ann;
mod backend;
mod bm25;
pub mod eval;
mod opensearch;
mod text;
mod vectors;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use mangaassist_catalog::{Catalog, DEMOGRAPHICS, DataError};
use mangaassist_config::{Config, RetrievalBackend, RetrievalSettings};
use mangaassist_embedding::{EmbedError, QueryEmbedder};
use mangaassist_inventory::Inventory;
use mangaassist_proto::v1 as pb;
use mangaassist_server::{Daemon, ServeOptions, ServerError};
use tonic::{Request, Response, Status};

pub use ann::{Ann, recall_at};
pub use backend::{
    HybridParams, LocalBackend, ProductFilter, SearchBackend, SearchQuery, SearchResults,
};
pub use bm25::Bm25;
pub use opensearch::{OpenSearchBackend, OpenSearchConfig, StartupReport};
pub use text::{document_embedding_text, product_embedding_text, tokenize};
pub use vectors::{VectorsOutcome, catalog_vectors};

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 4096;
/// Most products or documents one request can ask for.
pub const MAX_TOP_K: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("cannot load catalog: {0}")]
    Data(#[from] DataError),
    #[error("embedding failed: {0}")]
    Embed(#[from] EmbedError),
    #[error("internal error: {0}")]
    Internal(String),
    /// The search engine cannot be reached or is failing (retrying later may work).
    #[error("{0}")]
    Unavailable(String),
    /// The search engine answers but is not set up for this daemon (missing index,
    /// rejected documents, credentials).
    #[error("{0}")]
    FailedPrecondition(String),
}

impl RetrievalError {
    pub fn code(&self) -> tonic::Code {
        match self {
            Self::InvalidArgument(_) => tonic::Code::InvalidArgument,
            Self::Data(_) | Self::FailedPrecondition(_) => tonic::Code::FailedPrecondition,
            Self::Embed(_) | Self::Internal(_) => tonic::Code::Internal,
            Self::Unavailable(_) => tonic::Code::Unavailable,
        }
    }

    fn unknown_store(store_id: &str, known: &[String]) -> Self {
        Self::InvalidArgument(format!(
            "unknown store_id `{store_id}` (known: {})",
            known.join(", ")
        ))
    }
}

impl From<RetrievalError> for Status {
    fn from(e: RetrievalError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}

/// The retrieval service. Cheap to clone.
#[derive(Clone)]
pub struct RetrievalDaemon {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn SearchBackend>,
    /// Live stock and prices over the catalog's; results carry these.
    inventory: Inventory,
    embedder: QueryEmbedder,
    settings: RetrievalSettings,
    /// How the catalog vectors were obtained (None for backends that bring their own).
    vectors: Option<VectorsOutcome>,
}

impl std::fmt::Debug for RetrievalDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetrievalDaemon")
            .field("backend", &self.inner.backend)
            .field("model", &self.inner.embedder.model_id())
            .finish()
    }
}

impl RetrievalDaemon {
    /// Loads the catalog from `config.data.dir`, gets its vectors (disk cache or the
    /// embedder) and builds the in-process indexes, or with `retrieval.backend =
    /// "opensearch"` connects to OpenSearch (creating and loading its indices when
    /// `retrieval.opensearch.index_at_start` is set).
    ///
    /// Its inventory lives in memory, over the catalog's values: for tools (`prepare`,
    /// `eval`) and tests. The daemon that serves uses [`Self::serving`].
    pub async fn new(config: &Config, embedder: QueryEmbedder) -> Result<Self, RetrievalError> {
        Self::build(config, embedder, false).await
    }

    /// [`Self::new`] with the live inventory of `retrieval.inventory_backend` (the redb
    /// file, which one process holds at a time, or the shared Redis).
    pub async fn serving(config: &Config, embedder: QueryEmbedder) -> Result<Self, RetrievalError> {
        Self::build(config, embedder, true).await
    }

    async fn build(
        config: &Config,
        embedder: QueryEmbedder,
        live_inventory: bool,
    ) -> Result<Self, RetrievalError> {
        let start = Instant::now();
        let dir = config.data.dir.clone();
        let catalog = tokio::task::spawn_blocking(move || Catalog::load(&dir))
            .await
            .map_err(|e| RetrievalError::Internal(e.to_string()))??;
        let texts = text::catalog_embedding_texts(&catalog);
        let (mut vectors, outcome) = catalog_vectors(
            embedder.inner().clone(),
            texts,
            &config.data.resolved_cache_dir(),
        )
        .await?;
        let documents = vectors.split_off(catalog.products.len());
        let params = HybridParams::from(&config.retrieval);
        let inventory = if live_inventory {
            open_inventory(config, &catalog).await?
        } else {
            Inventory::in_memory(inventory_base(&catalog))
        };
        let build_start = Instant::now();
        let backend: Arc<dyn SearchBackend> = match config.retrieval.backend {
            RetrievalBackend::OpenSearch => {
                let os = OpenSearchConfig::from_settings(&config.retrieval.opensearch)?;
                Arc::new(
                    OpenSearchBackend::connect(
                        &os,
                        params,
                        &catalog,
                        &vectors,
                        &documents,
                        embedder.inner().dim(),
                    )
                    .await?,
                )
            }
            RetrievalBackend::Embedded => {
                let inv = inventory.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || {
                        LocalBackend::build(&catalog, &vectors, &documents, params)
                            .map(|b| b.with_inventory(inv))
                    })
                    .await
                    .map_err(|e| RetrievalError::Internal(e.to_string()))??,
                )
            }
        };
        tracing::info!(
            backend = %config.retrieval.backend,
            stores = ?backend.stores(),
            model = embedder.model_id(),
            vectors_cache_hit = outcome.cache_hit,
            vectors_ms = outcome.elapsed.as_millis() as u64,
            index_ms = build_start.elapsed().as_millis() as u64,
            total_ms = start.elapsed().as_millis() as u64,
            inventory_changes = inventory.seq(),
            "retrieval indexes ready"
        );
        let mut daemon = Self::with_backend(backend, embedder, config.retrieval.clone())
            .with_inventory(inventory);
        if let Some(inner) = Arc::get_mut(&mut daemon.inner) {
            inner.vectors = Some(outcome);
        }
        Ok(daemon)
    }

    /// A daemon over any search backend (e.g. a remote engine, or a test double).
    pub fn with_backend(
        backend: Arc<dyn SearchBackend>,
        embedder: QueryEmbedder,
        settings: RetrievalSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                embedder,
                settings,
                vectors: None,
                inventory: Inventory::in_memory([]),
            }),
        }
    }

    /// Serves and applies `inventory` (built by [`Self::new`] from the catalog; a daemon
    /// from [`Self::with_backend`] has an empty one until given one).
    pub fn with_inventory(mut self, inventory: Inventory) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.inventory = inventory,
            None => tracing::error!("with_inventory on a shared daemon ignored"),
        }
        self
    }

    /// The live inventory this daemon serves.
    pub fn inventory(&self) -> &Inventory {
        &self.inner.inventory
    }

    /// Puts the live stock and price into `p`.
    fn live(&self, p: &mut pb::Product) {
        if let Some((quantity, price)) = self.inner.inventory.current(&p.store_id, &p.id) {
            p.stock = quantity;
            p.price_yen = price;
        }
    }

    /// How the catalog vectors were obtained at start (cache hit, time, file).
    /// The embedder's model id (what supplied vectors must match).
    pub fn model_id(&self) -> &str {
        self.inner.embedder.model_id()
    }

    pub fn vectors_outcome(&self) -> Option<&VectorsOutcome> {
        self.inner.vectors.as_ref()
    }

    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        opts: ServeOptions,
    ) -> Result<(), ServerError> {
        let inventory = InventoryRpc {
            inventory: self.inner.inventory.clone(),
            stop: opts.shutdown.clone(),
        };
        Daemon::new("retrieval")
            .admin_methods(&["SetStock", "SetFlashSale"])
            .add_service(pb::retrieval_service_server::RetrievalServiceServer::new(
                self,
            ))
            .add_service(pb::inventory_service_server::InventoryServiceServer::new(
                inventory,
            ))
            .serve(listener, opts)
            .await
    }

    fn check_store(&self, store_id: &str) -> Result<(), RetrievalError> {
        let known = self.inner.backend.stores();
        if store_id.is_empty() {
            return Err(RetrievalError::InvalidArgument(format!(
                "store_id is required (known: {})",
                known.join(", ")
            )));
        }
        if !known.iter().any(|s| s == store_id) {
            return Err(RetrievalError::unknown_store(store_id, known));
        }
        Ok(())
    }

    /// The Retrieve RPC without the transport.
    pub async fn retrieve(
        &self,
        req: pb::RetrieveRequest,
    ) -> Result<pb::RetrieveResponse, RetrievalError> {
        let start = Instant::now();
        let result = self.retrieve_inner(req).await;
        let elapsed = start.elapsed();
        metrics::histogram!("retrieval_latency_ms").record(elapsed.as_secs_f64() * 1000.0);
        if let Ok((resp, _)) = &result {
            metrics::histogram!("retrieval_results")
                .record((resp.products.len() + resp.documents.len()) as f64);
        }
        let (resp, store) = result?;
        tracing::debug!(
            store = %store,
            products = resp.products.len(),
            documents = resp.documents.len(),
            embed_us = resp.embed_us,
            search_us = resp.search_us,
            "retrieved"
        );
        Ok(resp)
    }

    async fn retrieve_inner(
        &self,
        req: pb::RetrieveRequest,
    ) -> Result<(pb::RetrieveResponse, String), RetrievalError> {
        self.check_store(&req.store_id)?;
        metrics::counter!("retrieval_requests_total", "store" => req.store_id.clone()).increment(1);
        let query_chars = req.query.chars().count();
        if query_chars > MAX_QUERY_CHARS {
            return Err(RetrievalError::InvalidArgument(format!(
                "query is {query_chars} characters; the limit is {MAX_QUERY_CHARS}"
            )));
        }
        let filter = product_filter(req.filters.as_ref())?;
        let in_stock_only = filter.in_stock_only;
        let top_k = match req.top_k as usize {
            0 => self.inner.settings.top_k as usize,
            k => k,
        }
        .min(MAX_TOP_K);
        let top_k_documents = (req.top_k_documents as usize).min(MAX_TOP_K);

        let embed_start = Instant::now();
        let supplied = self.query_vector(&req)?;
        let embedded = supplied.is_none();
        let vector = match supplied {
            Some(v) => v,
            None => self.inner.embedder.embed_query_async(&req.query).await?,
        };
        let embed_us = if embedded {
            micros(embed_start.elapsed())
        } else {
            0
        };

        let search_start = Instant::now();
        let results = self
            .inner
            .backend
            .search(SearchQuery {
                store_id: req.store_id.clone(),
                text: req.query,
                vector,
                filter,
                top_k,
                top_k_documents,
            })
            .await?;
        let search_us = micros(search_start.elapsed());
        let mut products = results.products;
        for hit in &mut products {
            if let Some(p) = &mut hit.product {
                self.live(p);
            }
        }
        if in_stock_only {
            // The embedded backend filtered by live stock already; a remote engine holds the
            // catalog's values, so a product sold out since is dropped here.
            products.retain(|h| h.product.as_ref().is_some_and(|p| p.stock > 0));
        }
        Ok((
            pb::RetrieveResponse {
                products,
                documents: results.documents,
                embed_us,
                search_us,
            },
            req.store_id,
        ))
    }

    /// The caller's vector when it comes from our model; `None` means the query text must
    /// be embedded here.
    fn query_vector(
        &self,
        req: &pb::RetrieveRequest,
    ) -> Result<Option<Arc<[f32]>>, RetrievalError> {
        let model = self.inner.embedder.model_id();
        let dim = self.inner.embedder.inner().dim();
        if let Some(e) = &req.embedding {
            if e.model == model && e.values.len() == dim && e.values.iter().all(|x| x.is_finite()) {
                let mut v = e.values.clone();
                mangaassist_embedding::normalize(&mut v);
                return Ok(Some(v.into()));
            }
            if !e.values.is_empty() {
                tracing::debug!(supplied = %e.model, supplied_dim = e.values.len(), model, dim, "supplied embedding unusable, embedding the query");
            }
        }
        if req.query.trim().is_empty() {
            return Err(RetrievalError::InvalidArgument(match &req.embedding {
                Some(e) if !e.values.is_empty() => format!(
                    "query is empty and the supplied embedding (model `{}`, {} dims) does not match `{model}` ({dim} dims)",
                    e.model,
                    e.values.len()
                ),
                _ => "query is empty and no embedding was supplied".into(),
            }));
        }
        Ok(None)
    }

    /// The GetProducts RPC without the transport.
    pub async fn get_products(
        &self,
        req: pb::GetProductsRequest,
    ) -> Result<pb::GetProductsResponse, RetrievalError> {
        self.check_store(&req.store_id)?;
        let (mut products, missing) = self
            .inner
            .backend
            .get_products(&req.store_id, &req.ids)
            .await?;
        for p in &mut products {
            self.live(p);
        }
        Ok(pb::GetProductsResponse { products, missing })
    }
}

/// The live inventory of `retrieval.inventory_backend`: the redb file (default
/// `<data.state_dir>/inventory.redb`) or the shared Redis.
async fn open_inventory(config: &Config, catalog: &Catalog) -> Result<Inventory, RetrievalError> {
    let base = inventory_base(catalog);
    match config.retrieval.inventory_backend {
        mangaassist_config::InventoryBackend::Redis => {
            Inventory::connect_redis(base, &config.redis)
                .await
                .map_err(|e| RetrievalError::Internal(format!("inventory on Redis: {e}")))
        }
        mangaassist_config::InventoryBackend::Embedded => {
            let path = if config.retrieval.inventory_path.as_os_str().is_empty() {
                config.data.state_dir.join("inventory.redb")
            } else {
                config.retrieval.inventory_path.clone()
            };
            let shown = path.display().to_string();
            tokio::task::spawn_blocking(move || Inventory::open(base, &path))
                .await
                .map_err(|e| RetrievalError::Internal(e.to_string()))?
                .map_err(|e| RetrievalError::Internal(format!("inventory store {shown}: {e}")))
        }
    }
}

/// The catalog's stock and price of every product: the values the inventory starts from.
fn inventory_base(catalog: &Catalog) -> Vec<(String, String, mangaassist_inventory::Base)> {
    catalog
        .products
        .iter()
        .map(|p| {
            (
                p.store_id.clone(),
                p.id.clone(),
                mangaassist_inventory::Base {
                    quantity: p.stock,
                    price_yen: p.price_yen,
                    title: p.title.clone(),
                    series: p.series.clone(),
                },
            )
        })
        .collect()
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn product_filter(f: Option<&pb::Filters>) -> Result<ProductFilter, RetrievalError> {
    let Some(f) = f else {
        return Ok(ProductFilter::default());
    };
    let demographic = match f.demographic.trim().to_lowercase() {
        d if d.is_empty() => None,
        d if DEMOGRAPHICS.contains(&d.as_str()) => Some(d),
        d => {
            return Err(RetrievalError::InvalidArgument(format!(
                "unknown demographic `{d}` (one of {})",
                DEMOGRAPHICS.join(", ")
            )));
        }
    };
    Ok(ProductFilter {
        genres: f
            .genres
            .iter()
            .map(|g| g.trim().to_lowercase())
            .filter(|g| !g.is_empty())
            .collect(),
        demographic,
        in_stock_only: f.in_stock_only,
    })
}

#[tonic::async_trait]
impl pb::retrieval_service_server::RetrievalService for RetrievalDaemon {
    async fn retrieve(
        &self,
        request: Request<pb::RetrieveRequest>,
    ) -> Result<Response<pb::RetrieveResponse>, Status> {
        Ok(Response::new(
            RetrievalDaemon::retrieve(self, request.into_inner()).await?,
        ))
    }

    async fn get_products(
        &self,
        request: Request<pb::GetProductsRequest>,
    ) -> Result<Response<pb::GetProductsResponse>, Status> {
        Ok(Response::new(
            RetrievalDaemon::get_products(self, request.into_inner()).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use mangaassist_embedding::{Embedder, MiniLm};

    /// ANN recall against the exact scan, on the real catalog vectors (MiniLM) with real
    /// user messages (the held-out intent examples) as queries.
    #[tokio::test]
    async fn hnsw_recall_on_real_catalog_vectors() {
        let model_dir = Config::default()
            .data
            .resolved_cache_dir()
            .join("models/all-MiniLM-L6-v2");
        let model: Arc<dyn Embedder> = Arc::new(
            MiniLm::load(&model_dir).expect("all-MiniLM-L6-v2 missing: run scripts/fetch-model.sh"),
        );
        let mut config = Config::default();
        config.data.dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        let daemon = RetrievalDaemon::new(&config, QueryEmbedder::new(model.clone(), 100))
            .await
            .unwrap();
        let questions =
            mangaassist_catalog::load_intents(&config.data.dir.join("intents/heldout.jsonl"))
                .unwrap();
        let texts: Vec<&str> = questions.iter().map(|q| q.text.as_str()).collect();
        let queries: Vec<Arc<[f32]>> = tokio::task::spawn_blocking({
            let texts: Vec<String> = texts.iter().map(|s| s.to_string()).collect();
            let model = model.clone();
            move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                model.embed_batch(&refs).unwrap()
            }
        })
        .await
        .unwrap()
        .into_iter()
        .map(Arc::from)
        .collect();
        // Look inside the local backend: the daemon was built by `new`, so it is one.
        let catalog = Catalog::load(&config.data.dir).unwrap();
        let texts = text::catalog_embedding_texts(&catalog);
        let (mut vectors, outcome) =
            catalog_vectors(model.clone(), texts, &config.data.resolved_cache_dir())
                .await
                .unwrap();
        assert!(outcome.cache_hit, "the daemon just wrote the cache");
        let docs = vectors.split_off(catalog.products.len());
        let backend = LocalBackend::build(
            &catalog,
            &vectors,
            &docs,
            HybridParams::from(&config.retrieval),
        )
        .unwrap();
        for store in ["manga_jp", "comics_us"] {
            let production = backend.product_ann(store).unwrap();
            // The production graph is built for over-fetching (ef ≥ 200); measure the
            // configured search breadth too, where the graph is least exhaustive.
            let store_vectors: Vec<Arc<[f32]>> = (0..production.len())
                .map(|i| Arc::from(production.vector(i)))
                .collect();
            let lean = Ann::build(store_vectors, config.retrieval.ef_search);
            let r_prod = recall_at(production, &queries, 10);
            let r_lean = recall_at(&lean, &queries, 10);
            eprintln!(
                "{store}: recall@10 over {} queries, {} products: ef {} → {r_lean:.3}, production → {r_prod:.3}",
                queries.len(),
                production.len(),
                config.retrieval.ef_search
            );
            assert!(r_lean >= 0.95, "{store}: recall {r_lean}");
            assert!(r_prod >= 0.95, "{store}: recall {r_prod}");
            assert!(lean.search(&queries[0]).len() < lean.len());
        }
        // The daemon serves from the same data.
        let resp = daemon
            .retrieve(pb::RetrieveRequest {
                query: "pirates".into(),
                store_id: "manga_jp".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(resp.products.len(), 5);
    }
}

/// `InventoryService` over the daemon's inventory.
#[derive(Clone)]
pub struct InventoryRpc {
    pub inventory: Inventory,
    /// Ends open `Watch` streams when the daemon stops.
    pub stop: tokio_util::sync::CancellationToken,
}

#[tonic::async_trait]
impl pb::inventory_service_server::InventoryService for InventoryRpc {
    async fn set_stock(
        &self,
        request: Request<pb::SetStockRequest>,
    ) -> Result<Response<pb::SetStockResponse>, Status> {
        let req = request.into_inner();
        let source = if req.source.is_empty() {
            "grpc"
        } else {
            req.source.as_str()
        };
        let applied = self
            .inventory
            .set_stock(&req.store_id, &req.changes, source)
            .await?;
        Ok(Response::new(pb::SetStockResponse { applied }))
    }

    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::GetStockResponse>, Status> {
        let req = request.into_inner();
        if req.product_ids.len() > mangaassist_inventory::MAX_CHANGES_PER_CALL {
            return Err(Status::invalid_argument(format!(
                "{} ids in one call, more than the limit of {}",
                req.product_ids.len(),
                mangaassist_inventory::MAX_CHANGES_PER_CALL
            )));
        }
        Ok(Response::new(
            self.inventory.get_stock(&req.store_id, &req.product_ids)?,
        ))
    }

    async fn set_flash_sale(
        &self,
        request: Request<pb::SetFlashSaleRequest>,
    ) -> Result<Response<pb::SetFlashSaleResponse>, Status> {
        let req = request.into_inner();
        let state = self.inventory.set_flash_sale(&req.store_id, req.on).await?;
        Ok(Response::new(pb::SetFlashSaleResponse {
            state: Some(state),
        }))
    }

    type WatchStream = tokio_stream::wrappers::ReceiverStream<Result<pb::InventoryEvent, Status>>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Ok(Response::new(mangaassist_inventory::watch(
            &self.inventory,
            request.into_inner().after_seq,
            self.stop.child_token(),
        )))
    }
}
