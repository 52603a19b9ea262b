//! Cache daemon: answers already written, served again without a model call. An exact cache
//! (normalised question text) and a semantic cache (cosine similarity of question
//! embeddings) share one entry set, scoped per store, per user (personalised intents) or
//! per session (predicted follow-ups), with TTLs. Every entry records the product ids its
//! answer mentions and `InvalidateProducts` drops the entries naming a product, but nothing in
//! the mesh calls it yet (there is no inventory or price feed): today an entry leaves by TTL,
//! eviction or an operator's call. Storage sits behind [`CacheStore`]; the default is in
//! process ([`InMemoryStore`]), the production backend Redis ([`RedisCacheStore`], selected
//! with `cache.backend = "redis"` and shared by every replica).

mod clock;
mod error;
mod redis;
mod store;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use mangaassist_config::{CacheBackend, CacheSettings, Config};
use mangaassist_domain::text::normalize_question;
use mangaassist_embedding::QueryEmbedder;
use mangaassist_proto::v1 as pb;
use mangaassist_server::{Daemon, ServeOptions, ServerError};
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::CacheError;
pub use redis::{DEFAULT_MAX_PARTITION_ENTRIES, METADATA_GRACE, RedisCacheStore};
pub use store::{CacheEntry, CacheStore, InMemoryStore, Partition, PutOutcome, StoreStats};

/// Largest accepted question or answer text.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// How often expired entries are swept out (lookups never return them either way).
pub const PURGE_INTERVAL: Duration = Duration::from_secs(30);

/// The cache service: validation, scope order, embeddings and metrics in front of a
/// [`CacheStore`].
#[derive(Clone)]
pub struct CacheDaemon {
    inner: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn CacheStore>,
    embedder: QueryEmbedder,
    clock: Arc<dyn Clock>,
    settings: CacheSettings,
    hits_exact: AtomicU64,
    hits_semantic: AtomicU64,
    misses: AtomicU64,
    /// From the inventory feed: when this daemon learnt of each product's last change
    /// (Unix ms, its own clock), to refuse answers written from older stock.
    changed: parking_lot::RwLock<HashMap<(String, String), i64>>,
    /// Stores in flash-sale mode: pre-computed answers get [`FLASH_SALE_TTL_SECONDS`].
    flash_sale: parking_lot::RwLock<HashSet<String>>,
}

/// Longest life of a pre-computed answer written while its store is in flash-sale mode:
/// stock moves by the minute then.
pub const FLASH_SALE_TTL_SECONDS: u32 = 60;

impl std::fmt::Debug for CacheDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheDaemon")
            .field("settings", &self.inner.settings)
            .field("model", &self.inner.embedder.model_id())
            .finish_non_exhaustive()
    }
}

impl CacheDaemon {
    /// A cache of at most `cache.max_entries` answers on the wall clock: in process, or on the
    /// shared Redis of the `redis` section when `cache.backend = "redis"` (an unreachable
    /// Redis is an error naming `redis.url`).
    pub async fn new(config: &Config, embedder: QueryEmbedder) -> Result<Self, CacheError> {
        let store: Arc<dyn CacheStore> = match config.cache.backend {
            CacheBackend::Redis => Arc::new(
                RedisCacheStore::connect(&config.redis, config.cache.max_entries)
                    .await?
                    .with_max_partition_entries(config.cache.redis_max_partition_entries),
            ),
            CacheBackend::Memory => Arc::new(InMemoryStore::new(config.cache.max_entries)),
        };
        Ok(Self::with_parts(
            &config.cache,
            embedder,
            store,
            Arc::new(SystemClock),
        ))
    }

    /// A daemon over any backend and clock (Redis, tests with a [`ManualClock`]).
    pub fn with_parts(
        settings: &CacheSettings,
        embedder: QueryEmbedder,
        store: Arc<dyn CacheStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(Shared {
                store,
                embedder,
                clock,
                settings: settings.clone(),
                hits_exact: AtomicU64::new(0),
                hits_semantic: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                changed: parking_lot::RwLock::new(HashMap::new()),
                flash_sale: parking_lot::RwLock::new(HashSet::new()),
            }),
        }
    }

    /// Follows the inventory until `stop`: every stock change invalidates the entries that
    /// name the product (batched per store while a batch runs) and is remembered, so an
    /// answer written from older stock is refused by `Put`; flash-sale mode shortens the
    /// TTL of pre-computed answers.
    pub fn follow_inventory(
        &self,
        source: mangaassist_inventory::FeedSource,
        stop: tokio_util::sync::CancellationToken,
    ) -> mangaassist_inventory::Follower {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String, i64)>();
        let me = self.clone();
        let on_change = move |c: &mangaassist_inventory::Change| match c {
            mangaassist_inventory::Change::Stock(s) => {
                let now = me.inner.clock.now_ms();
                me.inner
                    .changed
                    .write()
                    .insert((s.store_id.clone(), s.product_id.clone()), now);
                let _ = tx.send((s.store_id.clone(), s.product_id.clone(), s.changed_ms));
            }
            mangaassist_inventory::Change::FlashSale(f) => {
                let mut set = me.inner.flash_sale.write();
                if f.on {
                    set.insert(f.store_id.clone());
                } else {
                    set.remove(&f.store_id);
                }
            }
        };
        let follower = mangaassist_inventory::follow(source, "cache", on_change, stop);
        let me = self.clone();
        #[allow(
            clippy::disallowed_methods,
            reason = "ends when the follower (its only sender) stops"
        )]
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let mut by_store: HashMap<String, Vec<String>> = HashMap::new();
                let mut oldest = i64::MAX;
                for (store, product, changed_ms) in batch {
                    oldest = oldest.min(changed_ms);
                    by_store.entry(store).or_default().push(product);
                }
                for (store, products) in by_store {
                    match me.inner.store.invalidate_products(&store, &products).await {
                        Ok(removed) => {
                            metrics::counter!("cache_invalidations_total").increment(removed);
                            tracing::debug!(
                                store,
                                products = products.len(),
                                removed,
                                "stock change invalidated cache entries"
                            );
                        }
                        Err(e) => {
                            // The entries stay until their TTL; serve-time validation in the
                            // gateway still keeps sold-out products out of answers.
                            tracing::warn!(store, error = %e, "cannot invalidate cache entries for a stock change");
                        }
                    }
                }
                let lag = me.inner.clock.now_ms().saturating_sub(oldest);
                metrics::histogram!("inventory_invalidation_lag_ms").record(lag as f64);
                me.update_entries_gauge().await;
            }
        });
        follower
    }

    /// Whether a product of `product_ids` changed after `facts_ms`.
    fn stale(&self, store: &str, product_ids: &[String], facts_ms: i64) -> bool {
        let changed = self.inner.changed.read();
        if changed.is_empty() {
            return false;
        }
        product_ids.iter().any(|id| {
            changed
                .get(&(store.to_string(), id.clone()))
                .is_some_and(|&at| at >= facts_ms)
        })
    }

    /// The backend, for in-process callers that skip gRPC.
    pub fn store(&self) -> &Arc<dyn CacheStore> {
        &self.inner.store
    }

    /// Serves until `opts.shutdown`, sweeping expired entries every [`PURGE_INTERVAL`].
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        opts: ServeOptions,
    ) -> Result<(), ServerError> {
        let background = TaskTracker::new();
        // A child token: the purge also stops when the server fails without a shutdown.
        let stop = opts.shutdown.child_token();
        background.spawn({
            let daemon = self.clone();
            let shutdown = stop.clone();
            async move {
                let mut tick = tokio::time::interval(PURGE_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        _ = tick.tick() => daemon.purge_expired().await,
                    }
                }
            }
        });
        let result = Daemon::new("cache")
            .add_service(pb::cache_service_server::CacheServiceServer::new(self))
            .serve(listener, opts)
            .await;
        // Lets a sweep in progress finish rather than cutting a store call in half.
        stop.cancel();
        background.close();
        background.wait().await;
        result
    }

    /// One sweep of expired entries (the purge task calls this).
    pub async fn purge_expired(&self) {
        let now = self.inner.clock.now_ms();
        match self.inner.store.purge_expired(now).await {
            Ok(removed) => {
                if removed > 0 {
                    tracing::debug!(removed, "expired cache entries purged");
                }
                self.update_entries_gauge().await;
            }
            Err(e) => tracing::warn!(error = %e, "cache purge failed"),
        }
    }

    async fn update_entries_gauge(&self) {
        if let Ok(s) = self.inner.store.stats().await {
            metrics::gauge!("cache_entries").set(s.entries as f64);
        }
    }

    /// The request's vector when it comes from our model, else the embedder's.
    async fn query_vector(
        &self,
        text: &str,
        given: Option<&pb::Embedding>,
    ) -> Result<Arc<[f32]>, CacheError> {
        let embedder = &self.inner.embedder;
        if let Some(e) = given
            && e.model == embedder.model_id()
            && e.values.len() == embedder.inner().dim()
        {
            let mut v = e.values.clone();
            mangaassist_embedding::normalize(&mut v);
            return Ok(v.into());
        }
        embedder
            .embed_query_async(text)
            .await
            .map_err(CacheError::from)
    }

    fn ttl_seconds(&self, req: &pb::PutRequest, answer: &pb::CachedAnswer) -> u32 {
        let s = &self.inner.settings;
        let ttl = if req.ttl_seconds > 0 {
            req.ttl_seconds
        } else if req.scope == pb::CacheScope::Session as i32 {
            s.follow_up_ttl_seconds
        } else if answer.intent == pb::Intent::Recommendation as i32 {
            s.recommendation_ttl_seconds
        } else {
            s.default_ttl_seconds
        };
        if answer.source.starts_with("precompute")
            && self.inner.flash_sale.read().contains(&req.store_id)
        {
            ttl.min(FLASH_SALE_TTL_SECONDS)
        } else {
            ttl
        }
    }

    async fn lookup_inner(&self, req: pb::LookupRequest) -> Result<pb::LookupResponse, CacheError> {
        check_text("text", &req.text)?;
        check_nonempty("store_id", &req.store_id)?;
        let normalized = normalize_question(&req.text);
        if normalized.is_empty() {
            return Err(invalid("text has no words"));
        }
        let threshold = if req.semantic_threshold == 0.0 {
            self.inner.settings.semantic_threshold
        } else if (0.0..=1.0).contains(&req.semantic_threshold) {
            req.semantic_threshold
        } else {
            return Err(invalid(format!(
                "semantic_threshold {} is outside 0..=1",
                req.semantic_threshold
            )));
        };
        let mut partitions = Vec::with_capacity(3);
        if !req.user_id.is_empty() {
            // Session answers are the user's: no user, no session partition.
            if !req.session_id.is_empty() {
                partitions.push(Partition::session(
                    &req.store_id,
                    &req.user_id,
                    &req.session_id,
                ));
            }
            partitions.push(Partition::user(&req.store_id, &req.user_id));
        }
        partitions.push(Partition::store(&req.store_id));

        let store = &self.inner.store;
        let now = self.inner.clock.now_ms();
        let mut vector: Option<Arc<[f32]>> = None;
        for p in &partitions {
            if let Some(answer) = store.get_exact(&p.exact_key(&normalized), now).await? {
                return Ok(self.hit(pb::HitKind::Exact, p.scope, 1.0, answer));
            }
            // Embedding costs milliseconds: only when there is something to compare with.
            if store.semantic_len(p).await? == 0 {
                continue;
            }
            let v = match &vector {
                Some(v) => v.clone(),
                None => {
                    let v = self.query_vector(&req.text, req.embedding.as_ref()).await?;
                    vector = Some(v.clone());
                    v
                }
            };
            if let Some((answer, sim)) = store.semantic_search(p, &v, threshold, now).await? {
                return Ok(self.hit(pb::HitKind::Semantic, p.scope, sim, answer));
            }
        }
        self.inner.misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cache_misses_total").increment(1);
        Ok(pb::LookupResponse::default())
    }

    fn hit(
        &self,
        kind: pb::HitKind,
        scope: pb::CacheScope,
        similarity: f32,
        answer: pb::CachedAnswer,
    ) -> pb::LookupResponse {
        let label = match kind {
            pb::HitKind::Semantic => {
                self.inner.hits_semantic.fetch_add(1, Ordering::Relaxed);
                "semantic"
            }
            _ => {
                self.inner.hits_exact.fetch_add(1, Ordering::Relaxed);
                "exact"
            }
        };
        metrics::counter!("cache_hits_total", "kind" => label).increment(1);
        pb::LookupResponse {
            hit: true,
            kind: kind as i32,
            scope: scope as i32,
            similarity,
            answer: Some(answer),
        }
    }

    async fn put_inner(&self, req: pb::PutRequest) -> Result<pb::PutResponse, CacheError> {
        check_text("text", &req.text)?;
        check_nonempty("store_id", &req.store_id)?;
        let normalized = normalize_question(&req.text);
        if normalized.is_empty() {
            return Err(invalid("text has no words"));
        }
        let partition = match pb::CacheScope::try_from(req.scope) {
            Ok(pb::CacheScope::Store) => Partition::store(&req.store_id),
            Ok(pb::CacheScope::User) => {
                check_nonempty("user_id (USER scope)", &req.user_id)?;
                Partition::user(&req.store_id, &req.user_id)
            }
            Ok(pb::CacheScope::Session) => {
                check_nonempty("user_id (SESSION scope)", &req.user_id)?;
                check_nonempty("session_id (SESSION scope)", &req.session_id)?;
                Partition::session(&req.store_id, &req.user_id, &req.session_id)
            }
            Ok(pb::CacheScope::Unspecified) | Err(_) => {
                return Err(invalid(format!(
                    "scope {} is not one of STORE, USER, SESSION",
                    req.scope
                )));
            }
        };
        let Some(mut answer) = req.answer.clone() else {
            return Err(invalid("answer is missing"));
        };
        check_text("answer.text", &answer.text)?;
        let now = self.inner.clock.now_ms();
        let facts_ms = if req.facts_ms > 0 { req.facts_ms } else { now };
        if self.stale(&req.store_id, &answer.product_ids, facts_ms) {
            metrics::counter!("cache_puts_refused_stale_total").increment(1);
            return Ok(pb::PutResponse {
                key: String::new(),
                refused_stale: true,
            });
        }
        let ttl = self.ttl_seconds(&req, &answer);
        answer.created_ms = now;
        answer.expires_ms = now.saturating_add(i64::from(ttl) * 1_000);
        if answer.query.is_empty() {
            answer.query.clone_from(&req.text);
        }
        let vector = self.query_vector(&req.text, req.embedding.as_ref()).await?;
        let key = partition.exact_key(&normalized);
        let product_ids = answer.product_ids.clone();
        let outcome = self
            .inner
            .store
            .put(CacheEntry {
                key: key.clone(),
                partition,
                vector: Some(vector.to_vec()),
                answer,
            })
            .await?;
        if outcome.evicted > 0 {
            metrics::counter!("cache_evictions_total").increment(outcome.evicted);
        }
        // A change marked between the check above and the insert may have swept the store
        // before this entry was in it (changes are marked before their sweep runs): look
        // again, and take the entry back out.
        if self.stale(&req.store_id, &product_ids, facts_ms) {
            self.inner
                .store
                .invalidate_products(&req.store_id, &product_ids)
                .await?;
            metrics::counter!("cache_puts_refused_stale_total").increment(1);
            self.update_entries_gauge().await;
            return Ok(pb::PutResponse {
                key: String::new(),
                refused_stale: true,
            });
        }
        self.update_entries_gauge().await;
        Ok(pb::PutResponse {
            key,
            refused_stale: false,
        })
    }
}

fn invalid(msg: impl Into<String>) -> CacheError {
    CacheError::InvalidArgument(msg.into())
}

fn check_nonempty(field: &str, v: &str) -> Result<(), CacheError> {
    if v.is_empty() {
        return Err(invalid(format!("{field} is empty")));
    }
    if v.len() > 256 {
        return Err(invalid(format!("{field} is longer than 256 bytes")));
    }
    Ok(())
}

fn check_text(field: &str, v: &str) -> Result<(), CacheError> {
    if v.trim().is_empty() {
        return Err(invalid(format!("{field} is empty")));
    }
    if v.len() > MAX_TEXT_BYTES {
        return Err(invalid(format!(
            "{field} is {} bytes, more than {MAX_TEXT_BYTES}",
            v.len()
        )));
    }
    Ok(())
}

fn to_status(op: &'static str, e: CacheError) -> Status {
    if e.code() != tonic::Code::InvalidArgument {
        tracing::error!(op, error = %e, "cache op failed");
    }
    Status::from(e)
}

#[tonic::async_trait]
impl pb::cache_service_server::CacheService for CacheDaemon {
    async fn lookup(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupResponse>, Status> {
        self.lookup_inner(request.into_inner())
            .await
            .map(Response::new)
            .map_err(|e| to_status("lookup", e))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        self.put_inner(request.into_inner())
            .await
            .map(Response::new)
            .map_err(|e| to_status("put", e))
    }

    async fn invalidate_products(
        &self,
        request: Request<pb::InvalidateProductsRequest>,
    ) -> Result<Response<pb::InvalidateProductsResponse>, Status> {
        let req = request.into_inner();
        if req.product_ids.is_empty() || req.product_ids.iter().any(String::is_empty) {
            return Err(Status::invalid_argument(
                "product_ids must be a non-empty list of non-empty ids",
            ));
        }
        let removed = self
            .inner
            .store
            .invalidate_products(&req.store_id, &req.product_ids)
            .await
            .map_err(|e| to_status("invalidate_products", e))?;
        metrics::counter!("cache_invalidations_total").increment(removed);
        tracing::info!(store = %req.store_id, products = req.product_ids.len(), removed, "cache entries invalidated");
        self.update_entries_gauge().await;
        Ok(Response::new(pb::InvalidateProductsResponse {
            removed: u32::try_from(removed).unwrap_or(u32::MAX),
        }))
    }

    async fn stats(
        &self,
        _request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        let s = self
            .inner
            .store
            .stats()
            .await
            .map_err(|e| to_status("stats", e))?;
        Ok(Response::new(pb::StatsResponse {
            entries: s.entries,
            hits_exact: self.inner.hits_exact.load(Ordering::Relaxed),
            hits_semantic: self.inner.hits_semantic.load(Ordering::Relaxed),
            misses: self.inner.misses.load(Ordering::Relaxed),
            evictions: s.evictions,
        }))
    }
}
