//! The OpenSearch backend: each store's products and documents live in OpenSearch indices
//! with a `knn_vector` field (HNSW, cosine) and a BM25 text field; a search sends the k-NN
//! and the lexical query in one `_msearch` and fuses the two rankings here, with the same
//! reciprocal rank fusion, lexical floor, series handling and per-series cap as the
//! embedded backend, so switching engines changes where the work happens, not the answers.
//!
//! Indices: `<prefix><store>` (products) and `<prefix><store>-docs` (documents, including
//! the documents shared by every store). Both have one shard: BM25 statistics are then
//! exact (per-shard idf would rank differently from the embedded backend) and a catalog of
//! a few thousand items gains nothing from more.
//!
//! REST calls used, as documented by OpenSearch:
//! - index creation with a k-NN mapping:
//!   <https://docs.opensearch.org/docs/latest/field-types/supported-field-types/knn-vector/>
//! - `knn` query with an efficient (Lucene engine) filter:
//!   <https://docs.opensearch.org/docs/latest/vector-search/filter-search-knn/efficient-knn-filtering/>
//! - `_bulk`: <https://docs.opensearch.org/docs/latest/api-reference/document-apis/bulk/>
//! - `_msearch`: <https://docs.opensearch.org/docs/latest/api-reference/search-apis/multi-search/>
//! - `_mget`: <https://docs.opensearch.org/docs/latest/api-reference/document-apis/multi-get/>

use std::{collections::HashMap, sync::Arc, time::Duration};

use mangaassist_catalog::{Catalog, Document, Product};
use mangaassist_config::OpenSearchSettings;
use mangaassist_proto::v1 as pb;
use opensearch::{
    BulkParts, CountParts, MgetParts, MsearchParts, OpenSearch,
    auth::Credentials,
    http::{
        Url,
        request::JsonBody,
        response::Response,
        transport::{SingleNodeConnectionPool, TransportBuilder},
    },
    indices::{IndicesCreateParts, IndicesExistsParts, IndicesRefreshParts},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    RetrievalError,
    backend::{
        HybridParams, ProductFilter, Scored, SearchBackend, SearchQuery, SearchResults, Series,
        apply_lexical_floor, build_series, check_vector_counts, correct_series_names, diversify,
        expand, fuse, named_series, prefer_volume, requested_volume, without_series,
    },
    text,
};

/// Name of the vector field in both kinds of index.
const VECTOR_FIELD: &str = "embedding";
/// Name of the BM25 field: the same text the embedded backend's BM25 indexes.
const LEXICAL_FIELD: &str = "lexical";
/// The index analyzer, mirroring the embedded tokenizer (lower case, stopwords, CJK
/// unigrams and bigrams).
const ANALYZER: &str = "mangaassist";
/// Characters the standard tokenizer may keep inside a word (UAX #29 MidLetter, MidNum,
/// MidNumLet, ExtendNumLet) but the embedded tokenizer splits on.
const SEPARATORS: [&str; 9] = [
    "'", "\u{2019}", "\u{2018}", ".", ",", ":", ";", "_", "\u{00B7}",
];
/// Fields never needed back from a search.
const SOURCE_EXCLUDES: [&str; 2] = [VECTOR_FIELD, LEXICAL_FIELD];
/// Documents per `_bulk` request: a product with a 384-float vector is ~5 KB of JSON.
const BULK_CHUNK: usize = 200;

/// Where and how to reach OpenSearch ([`OpenSearchSettings`] with the credentials read).
#[derive(Clone)]
pub struct OpenSearchConfig {
    pub url: String,
    pub index_prefix: String,
    /// Username and password for basic auth.
    pub basic_auth: Option<(String, String)>,
    pub index_at_start: bool,
    pub timeout: Duration,
}

impl std::fmt::Debug for OpenSearchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSearchConfig")
            .field("url", &self.url)
            .field("index_prefix", &self.index_prefix)
            .field("username", &self.basic_auth.as_ref().map(|(u, _)| u))
            .field("index_at_start", &self.index_at_start)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OpenSearchConfig {
    /// The settings with basic-auth credentials from the environment variables they name
    /// (both unset or empty = no auth; only one set is an error).
    pub fn from_settings(s: &OpenSearchSettings) -> Result<Self, RetrievalError> {
        let read = |name: &str| {
            if name.is_empty() {
                return None;
            }
            std::env::var(name).ok().filter(|v| !v.is_empty())
        };
        let basic_auth = match (read(&s.username_env), read(&s.password_env)) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            (user, _) => {
                let (set, unset) = if user.is_some() {
                    (&s.username_env, &s.password_env)
                } else {
                    (&s.password_env, &s.username_env)
                };
                return Err(RetrievalError::InvalidArgument(format!(
                    "OpenSearch basic auth: `{set}` is set but `{unset}` is not (set both or neither)"
                )));
            }
        };
        Ok(Self {
            url: s.url.clone(),
            index_prefix: s.index_prefix.clone(),
            basic_auth,
            index_at_start: s.index_at_start,
            timeout: Duration::from_millis(s.timeout_ms.max(1)),
        })
    }
}

/// What [`OpenSearchBackend::connect`] changed in the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartupReport {
    /// Indices created because they did not exist.
    pub created: Vec<String>,
    /// Indices bulk-loaded because their document count differed from the catalog, with
    /// the number of documents sent.
    pub loaded: Vec<(String, usize)>,
}

/// Search over OpenSearch indices (see the module documentation).
pub struct OpenSearchBackend {
    client: OpenSearch,
    url: String,
    prefix: String,
    stores: Vec<String>,
    /// Per store: the series names and centroids used to read "like <series>" queries the
    /// way the embedded backend does.
    series: HashMap<String, Vec<Series>>,
    params: HybridParams,
    dim: usize,
    startup: StartupReport,
}

impl std::fmt::Debug for OpenSearchBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSearchBackend")
            .field("url", &self.url)
            .field("index_prefix", &self.prefix)
            .field("stores", &self.stores)
            .field("dim", &self.dim)
            .finish()
    }
}

/// A product or document as stored in `_source`.
#[derive(Debug, Deserialize)]
struct ProductSource {
    id: String,
    store_id: String,
    title: String,
    series: String,
    volume: u32,
    author: String,
    genres: Vec<String>,
    demographic: String,
    synopsis: String,
    price_yen: u32,
    stock: u32,
    release_date: String,
    /// Absent from documents indexed before the Japanese names existed.
    #[serde(default)]
    title_ja: String,
    #[serde(default)]
    series_ja: String,
}

impl From<ProductSource> for pb::Product {
    fn from(p: ProductSource) -> Self {
        pb::Product {
            id: p.id,
            store_id: p.store_id,
            title: p.title,
            series: p.series,
            volume: p.volume,
            author: p.author,
            genres: p.genres,
            demographic: p.demographic,
            synopsis: p.synopsis,
            price_yen: p.price_yen,
            stock: p.stock,
            release_date: p.release_date,
            title_ja: p.title_ja,
            series_ja: p.series_ja,
        }
    }
}

#[derive(Debug, Deserialize)]
struct DocumentSource {
    id: String,
    store_id: String,
    kind: String,
    title: String,
    body: String,
    // Indexes written before the Japanese wording existed lack these fields, and some
    // written since hold `null` for a document without it.
    #[serde(default)]
    title_ja: Option<String>,
    #[serde(default)]
    body_ja: Option<String>,
}

impl From<DocumentSource> for pb::Document {
    fn from(d: DocumentSource) -> Self {
        pb::Document {
            id: d.id,
            store_id: d.store_id,
            kind: d.kind,
            title: d.title,
            body: d.body,
            title_ja: d.title_ja.unwrap_or_default(),
            body_ja: d.body_ja.unwrap_or_default(),
        }
    }
}

/// Which of the (up to) four searches of a request a `_msearch` response belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    ProductVector,
    ProductText,
    DocumentVector,
    DocumentText,
}

/// One hit: id, engine score, source.
type Hit = (String, f32, Value);

impl OpenSearchBackend {
    /// Connects to OpenSearch and, with `index_at_start`, creates the missing indices and
    /// loads the catalog into any whose document count differs. `product_vectors[i]`
    /// belongs to `catalog.products[i]`, likewise for documents; `dim` is the embedder's.
    pub async fn connect(
        config: &OpenSearchConfig,
        params: HybridParams,
        catalog: &Catalog,
        product_vectors: &[Arc<[f32]>],
        document_vectors: &[Arc<[f32]>],
        dim: usize,
    ) -> Result<Self, RetrievalError> {
        check_vector_counts(catalog, product_vectors, document_vectors)?;
        let url = Url::parse(&config.url).map_err(|e| {
            RetrievalError::InvalidArgument(format!(
                "retrieval.opensearch.url `{}` is not a URL: {e}",
                config.url
            ))
        })?;
        // A cluster on this machine is never behind the proxy the environment may name.
        let loopback = matches!(
            url.host_str(),
            Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
        );
        let mut builder =
            TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(config.timeout);
        if loopback {
            builder = builder.disable_proxy();
        }
        if let Some((user, password)) = &config.basic_auth {
            builder = builder.auth(Credentials::Basic(user.clone(), password.clone()));
        }
        let transport = builder.build().map_err(|e| {
            RetrievalError::Internal(format!(
                "cannot build an OpenSearch client for {}: {e}",
                config.url
            ))
        })?;

        let stores = catalog.stores();
        let mut series = HashMap::new();
        for store in &stores {
            let products: Vec<(&Product, &[f32])> = catalog
                .products
                .iter()
                .zip(product_vectors)
                .filter(|(p, _)| &p.store_id == store)
                .map(|(p, v)| (p, &v[..]))
                .collect();
            series.insert(store.clone(), build_series(&products));
        }
        let mut backend = Self {
            client: OpenSearch::new(transport),
            url: config.url.trim_end_matches('/').to_string(),
            prefix: config.index_prefix.clone(),
            stores,
            series,
            params,
            dim,
            startup: StartupReport::default(),
        };
        if config.index_at_start {
            backend
                .index_catalog(catalog, product_vectors, document_vectors)
                .await?;
        }
        Ok(backend)
    }

    /// The products index of a store.
    pub fn products_index(&self, store_id: &str) -> String {
        format!("{}{store_id}", self.prefix)
    }

    /// The documents index of a store.
    pub fn documents_index(&self, store_id: &str) -> String {
        format!("{}{store_id}-docs", self.prefix)
    }

    /// What the start changed in the cluster.
    pub fn startup_report(&self) -> &StartupReport {
        &self.startup
    }

    async fn index_catalog(
        &mut self,
        catalog: &Catalog,
        product_vectors: &[Arc<[f32]>],
        document_vectors: &[Arc<[f32]>],
    ) -> Result<(), RetrievalError> {
        for store in self.stores.clone() {
            let products: Vec<(String, Value)> = catalog
                .products
                .iter()
                .zip(product_vectors)
                .filter(|(p, _)| p.store_id == store)
                .map(|(p, v)| (p.id.clone(), product_doc(p, v)))
                .collect();
            let index = self.products_index(&store);
            self.ensure_index(&index, product_index_body(self.dim), &products)
                .await?;
            let documents: Vec<(String, Value)> = catalog
                .documents
                .iter()
                .zip(document_vectors)
                .filter(|(d, _)| d.store_id == store || d.store_id == "*")
                .map(|(d, v)| (d.id.clone(), document_doc(d, v)))
                .collect();
            let index = self.documents_index(&store);
            self.ensure_index(&index, document_index_body(self.dim), &documents)
                .await?;
        }
        tracing::info!(url = %self.url, created = ?self.startup.created, loaded = ?self.startup.loaded, "OpenSearch indices ready");
        Ok(())
    }

    /// Creates `index` when missing and bulk-loads `docs` when its count differs.
    async fn ensure_index(
        &mut self,
        index: &str,
        create_body: Value,
        docs: &[(String, Value)],
    ) -> Result<(), RetrievalError> {
        let resp = self
            .client
            .indices()
            .exists(IndicesExistsParts::Index(&[index]))
            .send()
            .await
            .map_err(|e| self.transport_error("HEAD", index, &e))?;
        let exists = match resp.status_code().as_u16() {
            200 => true,
            404 => false,
            status => {
                let body = resp.text().await.unwrap_or_default();
                return Err(self.status_error("HEAD", index, status, &body));
            }
        };
        if !exists {
            let resp = self
                .client
                .indices()
                .create(IndicesCreateParts::Index(index))
                .body(create_body)
                .send()
                .await;
            self.check("create index", index, resp).await?;
            self.startup.created.push(index.to_string());
        }
        let count = self.count(index).await?;
        if count == docs.len() as u64 {
            return Ok(());
        }
        for chunk in docs.chunks(BULK_CHUNK) {
            self.bulk(index, chunk).await?;
        }
        let resp = self
            .client
            .indices()
            .refresh(IndicesRefreshParts::Index(&[index]))
            .send()
            .await;
        self.check("_refresh", index, resp).await?;
        let after = self.count(index).await?;
        if after != docs.len() as u64 {
            // Documents that are no longer in the catalog stay searchable until someone
            // deletes the index; deleting it here could take a shared cluster down.
            tracing::warn!(
                index,
                expected = docs.len(),
                found = after,
                "index holds documents that are not in the catalog"
            );
        }
        self.startup.loaded.push((index.to_string(), docs.len()));
        Ok(())
    }

    async fn count(&self, index: &str) -> Result<u64, RetrievalError> {
        let resp = self.client.count(CountParts::Index(&[index])).send().await;
        let v = self.check("_count", index, resp).await?;
        v["count"].as_u64().ok_or_else(|| {
            RetrievalError::Internal(format!(
                "OpenSearch at {} answered _count on `{index}` without a count",
                self.url
            ))
        })
    }

    async fn bulk(&self, index: &str, docs: &[(String, Value)]) -> Result<(), RetrievalError> {
        let mut lines = Vec::with_capacity(docs.len() * 2);
        for (id, doc) in docs {
            lines.push(JsonBody::new(json!({ "index": { "_id": id } })));
            lines.push(JsonBody::new(doc.clone()));
        }
        let resp = self
            .client
            .bulk(BulkParts::Index(index))
            .body(lines)
            .send()
            .await;
        let v = self.check("_bulk", index, resp).await?;
        if v["errors"].as_bool() != Some(true) {
            return Ok(());
        }
        let items = v["items"].as_array().map(Vec::as_slice).unwrap_or_default();
        let failures: Vec<String> = items
            .iter()
            .filter_map(|item| {
                let op = item.as_object()?.values().next()?;
                let error = op.get("error")?;
                Some(format!(
                    "`{}`: {}",
                    op["_id"].as_str().unwrap_or("?"),
                    error_detail(error)
                ))
            })
            .collect();
        Err(RetrievalError::FailedPrecondition(format!(
            "OpenSearch at {} rejected {} of {} documents bulk-indexed into `{index}`; first: {}",
            self.url,
            failures.len(),
            docs.len(),
            failures
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }

    /// The JSON body of a successful response, or the error it stands for.
    async fn check(
        &self,
        what: &str,
        index: &str,
        resp: Result<Response, opensearch::Error>,
    ) -> Result<Value, RetrievalError> {
        let resp = resp.map_err(|e| self.transport_error(what, index, &e))?;
        let status = resp.status_code();
        let body = resp
            .text()
            .await
            .map_err(|e| self.transport_error(what, index, &e))?;
        if !status.is_success() {
            return Err(self.status_error(what, index, status.as_u16(), &body));
        }
        serde_json::from_str(&body).map_err(|e| {
            RetrievalError::Internal(format!(
                "OpenSearch at {} answered {what} on `{index}` with invalid JSON: {e}",
                self.url
            ))
        })
    }

    fn transport_error(&self, what: &str, index: &str, e: &opensearch::Error) -> RetrievalError {
        let kind = if e.is_timeout() {
            "timed out"
        } else {
            "unreachable"
        };
        RetrievalError::Unavailable(format!(
            "OpenSearch at {} {kind} ({what} on `{index}`): {e}",
            self.url
        ))
    }

    fn status_error(&self, what: &str, index: &str, status: u16, body: &str) -> RetrievalError {
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let detail = match v.get("error") {
            Some(e) => error_detail(e),
            None => body.chars().take(300).collect(),
        };
        let message = format!(
            "OpenSearch at {} answered {status} to {what} on `{index}`: {detail}",
            self.url
        );
        classify(status, error_type(&v), message)
    }

    /// Runs the searches of `plan` in one `_msearch` and returns their hits, in order.
    async fn msearch(
        &self,
        plan: &[(Part, String, Value)],
    ) -> Result<Vec<Vec<Hit>>, RetrievalError> {
        let mut lines = Vec::with_capacity(plan.len() * 2);
        for (_, index, body) in plan {
            lines.push(JsonBody::new(json!({ "index": index })));
            lines.push(JsonBody::new(body.clone()));
        }
        let indices: Vec<&str> = plan.iter().map(|(_, i, _)| i.as_str()).collect();
        let mut names = indices.clone();
        names.dedup();
        let names = names.join(",");
        let resp = self
            .client
            .msearch(MsearchParts::None)
            .body(lines)
            .send()
            .await;
        let v = self.check("_msearch", &names, resp).await?;
        let responses = v["responses"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if responses.len() != plan.len() {
            return Err(RetrievalError::Internal(format!(
                "OpenSearch at {} answered {} of {} searches in a _msearch on `{names}`",
                self.url,
                responses.len(),
                plan.len()
            )));
        }
        let mut out = Vec::with_capacity(plan.len());
        for (r, index) in responses.iter().zip(&indices) {
            if let Some(error) = r.get("error") {
                let status = r["status"].as_u64().unwrap_or(500) as u16;
                let message = format!(
                    "OpenSearch at {} answered {status} to a search on `{index}`: {}",
                    self.url,
                    error_detail(error)
                );
                return Err(classify(status, error_type(r), message));
            }
            let hits = r["hits"]["hits"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            out.push(
                hits.iter()
                    .filter_map(|h| {
                        Some((
                            h["_id"].as_str()?.to_string(),
                            h["_score"].as_f64()? as f32,
                            h.get("_source")?.clone(),
                        ))
                    })
                    .collect(),
            );
        }
        Ok(out)
    }

    fn source<T: serde::de::DeserializeOwned>(
        &self,
        index: &str,
        v: Value,
    ) -> Result<T, RetrievalError> {
        serde_json::from_value(v).map_err(|e| {
            RetrievalError::Internal(format!(
                "a document of `{index}` at {} does not hold what this daemon indexes: {e}",
                self.url
            ))
        })
    }

    /// The fused ranking of one index's k-NN and lexical hits, with the item each
    /// `Scored::idx` points at (its source read as `S`, a document of `index`).
    fn fused<S: serde::de::DeserializeOwned, T: From<S>>(
        &self,
        index: &str,
        by_vector: Vec<Hit>,
        by_text: Vec<Hit>,
        cands: usize,
    ) -> Result<(Vec<Scored>, Vec<T>), RetrievalError> {
        let mut c = Candidates::new();
        let scored = c.fuse(by_vector, by_text, cands, self.params.rrf_k);
        let items = c
            .sources
            .into_iter()
            .map(|s| self.source::<S>(index, s).map(Into::into))
            .collect::<Result<_, _>>()?;
        Ok((scored, items))
    }
}

/// Fields of a product document beyond the catalog's: lower-case copies for exact filters,
/// the BM25 text and the vector.
fn product_doc(p: &Product, vector: &[f32]) -> Value {
    json!({
        "id": p.id,
        "store_id": p.store_id,
        "title": p.title,
        "series": p.series,
        "volume": p.volume,
        "author": p.author,
        "genres": p.genres,
        "demographic": p.demographic,
        "synopsis": p.synopsis,
        "price_yen": p.price_yen,
        "stock": p.stock,
        "release_date": p.release_date,
        "title_ja": p.title_ja.as_deref().unwrap_or_default(),
        "series_ja": p.series_ja.as_deref().unwrap_or_default(),
        "genres_lc": p.genres.iter().map(|g| g.to_lowercase()).collect::<Vec<_>>(),
        "demographic_lc": p.demographic.to_lowercase(),
        LEXICAL_FIELD: text::product_lexical_text(p),
        VECTOR_FIELD: vector,
    })
}

fn document_doc(d: &Document, vector: &[f32]) -> Value {
    json!({
        "id": d.id,
        "store_id": d.store_id,
        "kind": d.kind,
        "title": d.title,
        "body": d.body,
        "title_ja": d.title_ja.as_deref().unwrap_or_default(),
        "body_ja": d.body_ja.as_deref().unwrap_or_default(),
        LEXICAL_FIELD: text::document_lexical_text(d),
        VECTOR_FIELD: vector,
    })
}

fn index_settings() -> Value {
    json!({
        "index": {
            "knn": true,
            "number_of_shards": 1,
            "analysis": {
                // The standard tokenizer keeps "chi's", "manga_jp", "3,500" and "u.s" whole
                // (UAX #29); the embedded tokenizer splits them. Turning those joiners into
                // spaces first makes both index the same terms.
                "char_filter": {
                    "mangaassist_separators": {
                        "type": "mapping",
                        "mappings": SEPARATORS
                            .iter()
                            .map(|c| format!("{c} => \\u0020"))
                            .collect::<Vec<_>>()
                    }
                },
                "filter": {
                    "mangaassist_stop": { "type": "stop", "stopwords": text::STOPWORDS },
                    "mangaassist_cjk": { "type": "cjk_bigram", "output_unigrams": false }
                },
                "analyzer": {
                    ANALYZER: {
                        "type": "custom",
                        "char_filter": ["mangaassist_separators"],
                        "tokenizer": "standard",
                        "filter": ["lowercase", "mangaassist_stop", "mangaassist_cjk"]
                    }
                }
            }
        }
    })
}

fn vector_mapping(dim: usize) -> Value {
    // The Lucene engine filters during the graph search (efficient filtering), so a
    // selective filter still yields k results.
    json!({
        "type": "knn_vector",
        "dimension": dim,
        "method": {
            "name": "hnsw",
            "space_type": "cosinesimil",
            "engine": "lucene",
            "parameters": { "m": 16, "ef_construction": 128 }
        }
    })
}

fn stored(kind: &str) -> Value {
    json!({ "type": kind, "index": false })
}

/// An index with every index's settings and a strict mapping of `fields` plus what every
/// index has: the id, the store, the lexical text and the vector.
fn index_body(dim: usize, fields: Value) -> Value {
    let mut properties = json!({
        "id": { "type": "keyword" },
        "store_id": { "type": "keyword" },
        LEXICAL_FIELD: { "type": "text", "analyzer": ANALYZER },
        VECTOR_FIELD: vector_mapping(dim)
    });
    if let (Value::Object(all), Value::Object(fields)) = (&mut properties, fields) {
        all.extend(fields);
    }
    json!({
        "settings": index_settings(),
        "mappings": { "dynamic": "strict", "properties": properties }
    })
}

fn product_index_body(dim: usize) -> Value {
    index_body(
        dim,
        json!({
            "title": stored("text"),
            "series": { "type": "keyword" },
            "volume": stored("integer"),
            "author": stored("text"),
            "genres": stored("keyword"),
            "demographic": stored("keyword"),
            "synopsis": stored("text"),
            "price_yen": stored("integer"),
            "stock": { "type": "integer" },
            "release_date": stored("keyword"),
            "title_ja": stored("keyword"),
            "series_ja": stored("keyword"),
            "genres_lc": { "type": "keyword" },
            "demographic_lc": { "type": "keyword" }
        }),
    )
}

fn document_index_body(dim: usize) -> Value {
    index_body(
        dim,
        json!({
            "kind": { "type": "keyword" },
            "title": stored("text"),
            "body": stored("text"),
            "title_ja": stored("text"),
            "body_ja": stored("text")
        }),
    )
}

/// The product filter as OpenSearch filter clauses.
fn product_filters(store_id: &str, f: &ProductFilter) -> Vec<Value> {
    let mut out = vec![json!({ "term": { "store_id": store_id } })];
    if !f.genres.is_empty() {
        let genres: Vec<String> = f.genres.iter().map(|g| g.to_lowercase()).collect();
        out.push(json!({ "terms": { "genres_lc": genres } }));
    }
    if let Some(d) = &f.demographic {
        out.push(json!({ "term": { "demographic_lc": d.to_lowercase() } }));
    }
    if f.in_stock_only {
        out.push(json!({ "range": { "stock": { "gt": 0 } } }));
    }
    out
}

fn knn_body(vector: &[f32], k: usize, filters: &[Value]) -> Value {
    json!({
        "size": k,
        "_source": { "excludes": SOURCE_EXCLUDES },
        "query": {
            "knn": {
                VECTOR_FIELD: {
                    "vector": vector,
                    "k": k,
                    "filter": { "bool": { "filter": filters } }
                }
            }
        }
    })
}

/// A BM25 match on the lexical field for already-analysed terms (the whitespace analyzer
/// keeps them as they are); repeated terms count once, as in the embedded BM25. With two or
/// more CJK bigrams, a document scores for them only if it matches a kanji bigram or two kana
/// bigrams — the embedded BM25's rule (`Bm25::scores_tokens`), as a filter on their clause.
fn terms_match(tokens: &[String]) -> Option<Value> {
    let mut terms: Vec<&str> = Vec::new();
    for t in tokens {
        if !terms.contains(&t.as_str()) {
            terms.push(t);
        }
    }
    let one = |terms: &[&str]| -> Option<Value> {
        (!terms.is_empty()).then(|| {
            json!({ "match": { LEXICAL_FIELD: { "query": terms.join(" "), "analyzer": "whitespace" } } })
        })
    };
    let (cjk, plain): (Vec<&str>, Vec<&str>) =
        terms.iter().partition(|t| t.chars().any(text::is_cjk));
    if cjk.len() < 2 {
        return one(&terms);
    }
    let (kanji, kana): (Vec<&str>, Vec<&str>) = cjk
        .iter()
        .partition(|t| t.chars().any(crate::bm25::is_kanji));
    let mut gate: Vec<Value> = one(&kanji).into_iter().collect();
    if kana.len() >= 2 {
        gate.push(json!({
            "bool": {
                "should": kana.iter().filter_map(|k| one(&[k])).collect::<Vec<_>>(),
                "minimum_should_match": 2
            }
        }));
    }
    let mut should: Vec<Value> = one(&plain).into_iter().collect();
    if !gate.is_empty() {
        should.push(json!({
            "bool": {
                "must": one(&cjk).into_iter().collect::<Vec<_>>(),
                "filter": [{ "bool": { "should": gate, "minimum_should_match": 1 } }]
            }
        }));
    }
    match should.len() {
        0 => None,
        1 => should.pop(),
        _ => Some(json!({ "bool": { "should": should, "minimum_should_match": 1 } })),
    }
}

fn lexical_body(should: Vec<Value>, k: usize, filters: &[Value]) -> Option<Value> {
    if should.is_empty() {
        return None;
    }
    Some(json!({
        "size": k,
        "_source": { "excludes": SOURCE_EXCLUDES },
        "query": {
            "bool": {
                "filter": filters,
                "should": should,
                "minimum_should_match": 1
            }
        }
    }))
}

/// The products' lexical query: the query words minus the series it names, plus each
/// named series' words scored only for that series' volumes (so "like One Piece" does not
/// pull in One-Punch Man through "one").
fn product_lexical_should(tokens: &[String], named: &[&Series]) -> Vec<Value> {
    let mut should: Vec<Value> = terms_match(&without_series(tokens, named))
        .into_iter()
        .collect();
    for s in named {
        for alias in s.found_in(tokens) {
            if let Some(m) = terms_match(alias) {
                should.push(json!({
                    "bool": { "filter": [{ "term": { "series": s.name } }], "must": [m] }
                }));
            }
        }
    }
    should
}

fn error_type(v: &Value) -> &str {
    v["error"]["type"].as_str().unwrap_or("")
}

/// `type: reason (caused by …)` of an OpenSearch error object (or its plain string form).
fn error_detail(e: &Value) -> String {
    if let Some(s) = e.as_str() {
        return s.to_string();
    }
    let mut out = format!(
        "{}: {}",
        e["type"].as_str().unwrap_or("error"),
        e["reason"].as_str().unwrap_or("")
    );
    // "all shards failed" says nothing; the shard's reason does.
    let cause = e["caused_by"]
        .get("reason")
        .or_else(|| e["root_cause"].get(0).and_then(|c| c.get("reason")))
        .and_then(Value::as_str);
    if let Some(c) = cause
        && !out.ends_with(c)
    {
        out.push_str(&format!(" (caused by: {c})"));
    }
    out
}

fn classify(status: u16, error_type: &str, message: String) -> RetrievalError {
    match status {
        429 | 500.. => RetrievalError::Unavailable(message),
        _ if error_type == "index_not_found_exception" => {
            RetrievalError::FailedPrecondition(format!(
                "{message}; set retrieval.opensearch.index_at_start = true to create and load it"
            ))
        }
        401 | 403 => RetrievalError::FailedPrecondition(format!(
            "{message}; check the credentials in retrieval.opensearch.username_env / password_env"
        )),
        _ => RetrievalError::Internal(message),
    }
}

/// Items seen in either ranking, with the score each ranking gave them.
struct Candidates {
    sources: Vec<Value>,
    by_id: HashMap<String, usize>,
    vector: Vec<f32>,
    lexical: Vec<f32>,
}

impl Candidates {
    fn new() -> Self {
        Self {
            sources: Vec::new(),
            by_id: HashMap::new(),
            vector: Vec::new(),
            lexical: Vec::new(),
        }
    }

    fn add(&mut self, id: String, source: Value) -> usize {
        if let Some(&i) = self.by_id.get(&id) {
            return i;
        }
        let i = self.sources.len();
        self.by_id.insert(id, i);
        self.sources.push(source);
        self.vector.push(0.0);
        self.lexical.push(0.0);
        i
    }

    /// The fused ranking of a k-NN and a lexical result list (each best first, each at
    /// most `cands` long). A k-NN score is (1 + cos) / 2 for `cosinesimil`; the vector
    /// score reported is the cosine, as in the embedded backend (0 for lexical-only hits,
    /// whose cosine the engine does not return).
    fn fuse(
        &mut self,
        by_vector: Vec<Hit>,
        by_text: Vec<Hit>,
        cands: usize,
        rrf_k: f32,
    ) -> Vec<Scored> {
        let vector_rank: Vec<(usize, f32)> = by_vector
            .into_iter()
            .take(cands)
            .map(|(id, score, source)| {
                let i = self.add(id, source);
                let cos = 2.0 * score - 1.0;
                self.vector[i] = cos;
                (i, cos)
            })
            .collect();
        let mut text_rank: Vec<(usize, f32)> = by_text
            .into_iter()
            .filter(|(_, score, _)| *score > 0.0)
            .map(|(id, score, source)| {
                let i = self.add(id, source);
                self.lexical[i] = score;
                (i, score)
            })
            .collect();
        apply_lexical_floor(&mut text_rank);
        text_rank.truncate(cands);
        fuse(
            &vector_rank,
            &text_rank,
            rrf_k,
            |i| self.vector[i],
            |i| self.lexical[i],
        )
    }
}

#[tonic::async_trait]
impl SearchBackend for OpenSearchBackend {
    fn stores(&self) -> &[String] {
        &self.stores
    }

    async fn search(&self, q: SearchQuery) -> Result<SearchResults, RetrievalError> {
        let series = self
            .series
            .get(&q.store_id)
            .ok_or_else(|| RetrievalError::unknown_store(&q.store_id, &self.stores))?;
        let mut tokens = text::query_tokens(&q.text);
        if let Some(corrected) = correct_series_names(series, &tokens) {
            tokens = corrected;
        }
        let named = named_series(series, &tokens);
        let volume = requested_volume(&q.text, &tokens, &named);
        let expanded = expand(&named, &q.vector);
        let product_vector: &[f32] = expanded.as_deref().unwrap_or(&q.vector);
        let products_index = self.products_index(&q.store_id);
        let documents_index = self.documents_index(&q.store_id);
        let product_cands = self.params.candidates.max(q.top_k);
        let document_cands = self.params.candidates.max(q.top_k_documents);

        let mut plan: Vec<(Part, String, Value)> = Vec::new();
        if q.top_k > 0 {
            let filters = product_filters(&q.store_id, &q.filter);
            plan.push((
                Part::ProductVector,
                products_index.clone(),
                knn_body(product_vector, product_cands, &filters),
            ));
            if let Some(body) = lexical_body(
                product_lexical_should(&tokens, &named),
                product_cands,
                &filters,
            ) {
                plan.push((Part::ProductText, products_index.clone(), body));
            }
        }
        if q.top_k_documents > 0 {
            // Shared documents (store `*`) are copied into every store's index.
            let filters = [json!({ "terms": { "store_id": [q.store_id.as_str(), "*"] } })];
            plan.push((
                Part::DocumentVector,
                documents_index.clone(),
                knn_body(&q.vector, document_cands, &filters),
            ));
            if let Some(body) = lexical_body(
                terms_match(&text::document_query_tokens(&q.text, &tokens))
                    .into_iter()
                    .collect(),
                document_cands,
                &filters,
            ) {
                plan.push((Part::DocumentText, documents_index.clone(), body));
            }
        }
        if plan.is_empty() {
            return Ok(SearchResults::default());
        }
        let mut results = self.msearch(&plan).await?;
        let mut take = |part: Part| -> Vec<Hit> {
            plan.iter()
                .position(|(p, _, _)| *p == part)
                .map(|i| std::mem::take(&mut results[i]))
                .unwrap_or_default()
        };

        let mut products = Vec::new();
        if q.top_k > 0 {
            let (scored, items) = self.fused::<ProductSource, pb::Product>(
                &products_index,
                take(Part::ProductVector),
                take(Part::ProductText),
                product_cands,
            )?;
            let mut scored = scored;
            prefer_volume(&mut scored, volume, &named, |idx| {
                (items[idx].volume, items[idx].series.as_str())
            });
            products = diversify(scored, q.top_k, self.params.max_per_series, |s| {
                items[s.idx].series.as_str()
            })
            .into_iter()
            .map(|s| s.product_hit(items[s.idx].clone()))
            .collect();
        }
        let mut documents = Vec::new();
        if q.top_k_documents > 0 {
            let (scored, items) = self.fused::<DocumentSource, pb::Document>(
                &documents_index,
                take(Part::DocumentVector),
                take(Part::DocumentText),
                document_cands,
            )?;
            documents = scored
                .into_iter()
                .take(q.top_k_documents)
                .map(|s| s.document_hit(items[s.idx].clone()))
                .collect();
        }
        Ok(SearchResults {
            products,
            documents,
        })
    }

    async fn get_products(
        &self,
        store_id: &str,
        ids: &[String],
    ) -> Result<(Vec<pb::Product>, Vec<String>), RetrievalError> {
        if !self.series.contains_key(store_id) {
            return Err(RetrievalError::unknown_store(store_id, &self.stores));
        }
        if ids.is_empty() {
            return Ok((vec![], vec![]));
        }
        let index = self.products_index(store_id);
        let resp = self
            .client
            .mget(MgetParts::Index(&index))
            ._source_excludes(&SOURCE_EXCLUDES)
            .body(json!({ "ids": ids }))
            .send()
            .await;
        let v = self.check("_mget", &index, resp).await?;
        let docs = v["docs"].as_array().map(Vec::as_slice).unwrap_or_default();
        if docs.len() != ids.len() {
            return Err(RetrievalError::Internal(format!(
                "OpenSearch at {} answered {} documents to a _mget of {} ids on `{index}`",
                self.url,
                docs.len(),
                ids.len()
            )));
        }
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for (doc, id) in docs.iter().zip(ids) {
            if let Some(error) = doc.get("error") {
                return Err(RetrievalError::Internal(format!(
                    "OpenSearch at {} could not get `{id}` from `{index}`: {}",
                    self.url,
                    error_detail(error)
                )));
            }
            match (doc["found"].as_bool(), doc.get("_source")) {
                (Some(true), Some(source)) => {
                    found.push(self.source::<ProductSource>(&index, source.clone())?.into())
                }
                _ => missing.push(id.clone()),
            }
        }
        Ok((found, missing))
    }
}
