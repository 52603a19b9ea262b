//! Precompute daemon: shifts latency from request time to background work by writing answers
//! into the response cache before anyone asks (seed 001's pre-computation pipeline). An
//! in-process scheduler runs the `trending` job (hourly: the series customers asked about
//! most lately, from the demand the gateways report) and the `genre_recommendations` job
//! (nightly); `PredictFollowUps` pre-generates the answers to the questions likely to follow
//! the one just answered, scoped to the session. Every answer goes retrieval → generation →
//! cache through the mesh clients, and records the product ids it mentions: the cache drops
//! it when one of them changes stock (the inventory feed), and the daemon, which follows the
//! same feed, writes the job answers naming it again from the new stock. A pre-computed
//! answer stands in for the live one, so its context is built exactly as the gateway builds
//! it: the same retrieval request and the same assembly ([`mangaassist_domain::context`], with
//! the `gateway` settings).

mod demand;
mod lease;
pub use demand::{Demand, DemandError};
pub use lease::JobLease;
mod plan;
mod releases;
pub use releases::{Release, ReleaseBook, ReleaseError};

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::StreamExt;
use mangaassist_catalog::{Catalog, DataError, Product};
use mangaassist_client::{CacheClient, GenerationClient, RetrievalClient};
use mangaassist_config::{Config, PrecomputeSettings};
use mangaassist_domain::{Asked, ContextSettings, Sources, assemble, needs_retrieval};
use mangaassist_proto::v1 as pb;
use mangaassist_server::{Daemon, ServeOptions, ServerError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{Request, Response, Status};

pub use plan::{
    FollowUp, Item, MIN_DEMAND, Trend, follow_ups, genre_items, release_items, store_genres,
    trending_by_demand, trending_items, trending_series,
};

/// Per-call deadlines of the downstream hops (background work: generous, but bounded).
const RETRIEVAL_DEADLINE: Duration = Duration::from_secs(2);
const GENERATION_DEADLINE: Duration = Duration::from_secs(30);
const CACHE_DEADLINE: Duration = Duration::from_secs(1);
/// Items of one job (or follow-ups of one request) processed at once.
const CONCURRENCY: usize = 2;
/// How long stock changes are gathered before the answers naming them are written again.
const REWRITE_GATHER: Duration = Duration::from_millis(50);
/// How long the first scheduled run waits for peers that start at the same time.
const PEER_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PrecomputeError {
    #[error("catalog: {0}")]
    Data(#[from] DataError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("scheduler lease on Redis: {0}")]
    Lease(String),
    #[error(transparent)]
    Demand(#[from] DemandError),
    #[error(transparent)]
    Releases(#[from] ReleaseError),
    #[error("{0}")]
    NotFound(String),
}

impl PrecomputeError {
    pub fn code(&self) -> tonic::Code {
        match self {
            PrecomputeError::Data(_) => tonic::Code::FailedPrecondition,
            PrecomputeError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            PrecomputeError::Lease(_)
            | PrecomputeError::Demand(_)
            | PrecomputeError::Releases(_) => tonic::Code::Unavailable,
            PrecomputeError::NotFound(_) => tonic::Code::NotFound,
        }
    }
}

impl From<PrecomputeError> for Status {
    fn from(e: PrecomputeError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}

/// The daemons precompute calls.
#[derive(Clone)]
pub struct PrecomputePeers {
    pub retrieval: RetrievalClient,
    pub generation: GenerationClient,
    pub cache: CacheClient,
}

/// The scheduled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    Trending,
    GenreRecommendations,
    ReleasePrewarm,
}

impl Job {
    pub const ALL: [Job; 3] = [
        Job::Trending,
        Job::GenreRecommendations,
        Job::ReleasePrewarm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Job::Trending => "trending",
            Job::GenreRecommendations => "genre_recommendations",
            Job::ReleasePrewarm => "release_prewarm",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.name() == name)
    }

    fn description(self) -> &'static str {
        match self {
            Job::Trending => {
                "answers about each store's in-stock series its customers asked about most lately (decayed demand; newest releases fill the list), about, stock and similar titles"
            }
            Job::GenreRecommendations => {
                "an in-stock recommendation list for every genre of each store"
            }
            Job::ReleasePrewarm => {
                "answers about each scheduled release (about, stock, price, next volume, similar; EN and JA), written release_lead_seconds before it goes on sale"
            }
        }
    }

    fn source(self) -> &'static str {
        match self {
            Job::Trending => "precompute:trending",
            Job::GenreRecommendations => "precompute:genre",
            Job::ReleasePrewarm => "precompute:release",
        }
    }

    fn interval_seconds(self, s: &PrecomputeSettings) -> u64 {
        match self {
            Job::Trending => s.trending_interval_seconds,
            Job::GenreRecommendations => s.genre_interval_seconds,
            Job::ReleasePrewarm => s.release_check_seconds,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct JobState {
    last_run_ms: i64,
    next_run_ms: i64,
    last_written: u32,
    last_error: String,
}

/// Where an answer is written in the cache.
#[derive(Debug, Clone)]
struct Target {
    scope: pb::CacheScope,
    session_id: String,
    user_id: String,
    ttl_seconds: u32,
    source: &'static str,
    /// Conversation the answer follows (newest first), for follow-ups.
    history: Vec<pb::Turn>,
    /// The customer's orders and profile, for follow-ups (the gateway's reading for the
    /// answer they follow); empty for job answers, which are nobody's.
    orders: Vec<pb::Order>,
    profile: Option<pb::UserProfile>,
}

/// An answer stating the customer's orders lives at most this long: an order moves on
/// (shipped, delivered) without any event reaching the cache.
const ACCOUNT_TTL_SECONDS: u32 = 60;

enum Outcome {
    /// Written; the products the answer names.
    Written(Vec<String>),
    /// Nothing worth caching (no in-stock product for the question).
    Skipped(&'static str),
}

struct Inner {
    settings: PrecomputeSettings,
    /// The gateway's context settings: answers are assembled as the live path assembles them.
    context: ContextSettings,
    follow_up_ttl_seconds: u32,
    catalog: Catalog,
    peers: PrecomputePeers,
    jobs: Mutex<HashMap<Job, JobState>>,
    /// Cancelled at shutdown; stops the scheduler and background follow-ups.
    shutdown: CancellationToken,
    /// The scheduler, follow-ups and `RunJob` streams; [`PrecomputeDaemon::serve`] waits
    /// for them after cancelling `shutdown`.
    tasks: TaskTracker,
    /// Follow-up batches allowed at once (`precompute.max_follow_up_batches`).
    follow_up_slots: Arc<tokio::sync::Semaphore>,
    /// Job answers in the cache by the products they name, to write them again when one of
    /// those products' stock changes (the cache drops them on the same change).
    written: Mutex<WrittenByProduct>,
    /// Jobs running now: a job never runs twice at once (scheduler or `RunJob`).
    running: Arc<Mutex<std::collections::HashSet<Job>>>,
    /// Which replica's scheduler runs each scheduled run (`precompute.scheduler_lease`).
    lease: lease::JobLease,
    /// The live stock, once [`PrecomputeDaemon::follow_inventory`] runs.
    stock: std::sync::OnceLock<mangaassist_inventory::StockView>,
    /// Answers per product lately, reported by the gateways; the trending job ranks by it.
    demand: Demand,
    /// Position in the catalog of each (store, product id): demand for any other product is
    /// refused, and follow-ups and releases find their product here.
    by_key: HashMap<(String, String), usize>,
    /// Announced releases, for the `release_prewarm` job.
    releases: ReleaseBook,
}

/// Counts in one `RecordDemand` (a gateway reports every few seconds, one count per product).
const MAX_DEMAND_COUNTS: usize = 10_000;
/// Answers one count may report.
const MAX_DEMAND_COUNT: u32 = 1_000_000;

/// Job answers in the cache, by (store, product) they name.
type WrittenByProduct = HashMap<(String, String), Vec<(Job, Item)>>;

/// A job marked running until dropped.
struct JobGuard {
    job: Job,
    running: Arc<Mutex<std::collections::HashSet<Job>>>,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.job);
    }
}

/// The precompute daemon. Cheap to clone.
#[derive(Clone)]
pub struct PrecomputeDaemon {
    inner: Arc<Inner>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn secs_ms(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Runs `item` through retrieval, generation and the cache, with the live path's context.
async fn answer(
    peers: &PrecomputePeers,
    context: &ContextSettings,
    item: &Item,
    target: &Target,
) -> Result<Outcome, String> {
    // The stock the answer will state is read from here on.
    let facts_ms = now_ms();
    let retrieved = if needs_retrieval(item.intent) {
        let req = context.retrieval_request(&item.question, &item.store_id, None);
        let r = peers
            .retrieval
            .retrieve(req, RETRIEVAL_DEADLINE)
            .await
            .map_err(|s| format!("retrieval: {}", s.message()))?;
        Some(r)
    } else {
        None
    };
    let sources = Sources {
        retrieved,
        history: target.history.clone(),
        profile: target.profile.clone(),
        orders: target.orders.clone(),
    };
    let ctx = assemble(item.intent, sources, context);
    let mut ttl_seconds = if ctx.orders.is_empty() {
        target.ttl_seconds
    } else {
        target.ttl_seconds.min(ACCOUNT_TTL_SECONDS)
    };
    if item.until_ms > 0 {
        let left = (item.until_ms - now_ms()) / 1000;
        if left <= 0 {
            return Ok(Outcome::Skipped("its window is over"));
        }
        ttl_seconds = u32::try_from(left).unwrap_or(u32::MAX);
    }
    let needs_products = matches!(
        item.intent,
        pb::Intent::Recommendation | pb::Intent::ProductSearch | pb::Intent::Comparison
    );
    if needs_products && ctx.products.is_empty() {
        return Ok(Outcome::Skipped("no products"));
    }
    // The live path answers it when asked.
    let sold_out = ctx
        .products
        .iter()
        .any(|h| h.product.as_ref().is_some_and(|p| p.stock == 0));
    if item.in_stock_only && sold_out {
        return Ok(Outcome::Skipped("out-of-stock product in the context"));
    }
    let asked = Asked {
        query: &item.question,
        store_id: &item.store_id,
        session_id: &target.session_id,
        user_id: &target.user_id,
        // Pre-answered questions are written in a language (EN or JA); no storefront default
        // is needed to tell which.
        locale: mangaassist_domain::reply_language(&item.question, mangaassist_domain::Lang::En),
    };
    let req = ctx.into_request(asked, item.intent, item.tier, "full");
    let mut stream = peers
        .generation
        .generate(req, GENERATION_DEADLINE)
        .await
        .map_err(|s| format!("generation: {}", s.message()))?;
    let mut text = String::new();
    let mut summary = None;
    while let Some(ev) = stream.next().await {
        match ev
            .map_err(|s| format!("generation: {}", s.message()))?
            .event
        {
            Some(pb::generate_response::Event::Delta(d)) => text.push_str(&d.text),
            Some(pb::generate_response::Event::Done(d)) => summary = Some(d),
            // Pre-computed answers are stored whatever the model's confidence.
            Some(pb::generate_response::Event::Assessment(_)) | None => {}
        }
    }
    let summary = summary.ok_or("generation: stream ended without a summary")?;
    if text.trim().is_empty() {
        return Err("generation: empty answer".into());
    }
    // Store answers are built without anyone's context; should one still come back personal,
    // it is nobody else's to read.
    if summary.personal_context && target.scope == pb::CacheScope::Store {
        return Ok(Outcome::Skipped("answer uses personal context"));
    }
    let put = peers
        .cache
        .put(
            pb::PutRequest {
                text: item.question.clone(),
                store_id: item.store_id.clone(),
                user_id: target.user_id.clone(),
                session_id: target.session_id.clone(),
                scope: target.scope as i32,
                embedding: None,
                answer: Some(pb::CachedAnswer {
                    text,
                    intent: item.intent as i32,
                    model: summary.model,
                    product_ids: summary.product_ids.clone(),
                    created_ms: now_ms(),
                    expires_ms: 0,
                    source: target.source.to_string(),
                    query: item.question.clone(),
                }),
                ttl_seconds,
                facts_ms,
            },
            CACHE_DEADLINE,
        )
        .await
        .map_err(|s| format!("cache: {}", s.message()))?;
    if put.refused_stale {
        return Ok(Outcome::Skipped("stock changed while it was written"));
    }
    Ok(Outcome::Written(summary.product_ids))
}

/// Whether the gateway would already find `item`'s question word for word in the cache for
/// this session (an earlier prediction, or a shared answer): generating it again is waste.
/// Only exact hits count: a similar question may be about another volume.
async fn already_cached(peers: &PrecomputePeers, item: &Item, target: &Target) -> bool {
    let req = pb::LookupRequest {
        text: item.question.clone(),
        store_id: item.store_id.clone(),
        user_id: target.user_id.clone(),
        session_id: target.session_id.clone(),
        embedding: None,
        semantic_threshold: 0.0,
    };
    matches!(
        peers.cache.lookup(req, CACHE_DEADLINE).await,
        Ok(pb::LookupResponse { hit: true, kind, .. }) if kind == pb::HitKind::Exact as i32
    )
}

/// Totals of one job run.
#[derive(Debug, Default)]
struct RunTotals {
    done: u32,
    written: u32,
    failed: u32,
    last_error: String,
    cancelled: bool,
}

type ProgressTx = mpsc::Sender<Result<pb::JobProgress, Status>>;

/// Resolves when the progress reader has gone away; never without one.
async fn reader_gone(progress: Option<&ProgressTx>) {
    match progress {
        Some(tx) => tx.closed().await,
        None => std::future::pending().await,
    }
}

impl PrecomputeDaemon {
    /// Loads the catalog from `config.data.dir`.
    pub async fn new(config: &Config, peers: PrecomputePeers) -> Result<Self, PrecomputeError> {
        let dir = config.data.dir.clone();
        let catalog = tokio::task::spawn_blocking(move || Catalog::load(&dir))
            .await
            .map_err(|e| {
                PrecomputeError::InvalidArgument(format!("catalog loader panicked: {e}"))
            })??;
        tracing::info!(
            products = catalog.products.len(),
            stores = catalog.stores().len(),
            "precompute catalog loaded"
        );
        let lease = match config.precompute.scheduler_lease {
            mangaassist_config::SchedulerLease::None => lease::JobLease::None,
            mangaassist_config::SchedulerLease::Redis => {
                let holder = format!(
                    "{}:{}",
                    std::env::var("HOSTNAME").unwrap_or_else(|_| "precompute".into()),
                    std::process::id()
                );
                lease::JobLease::redis(&config.redis, holder)
                    .await
                    .map_err(PrecomputeError::Lease)?
            }
        };
        let half_life = config.precompute.trending_half_life_seconds;
        let (demand, releases) = match config.precompute.demand_store {
            mangaassist_config::DemandStore::Memory => {
                let dir = &config.data.state_dir;
                (
                    Demand::memory(half_life, Some(dir.join("precompute-demand.json")))?,
                    ReleaseBook::memory(Some(dir.join("precompute-releases.json")))?,
                )
            }
            mangaassist_config::DemandStore::Redis => (
                Demand::redis(&config.redis, half_life).await?,
                ReleaseBook::redis(&config.redis).await?,
            ),
        };
        let by_key = catalog
            .products
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.store_id.clone(), p.id.clone()), i))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                settings: config.precompute.clone(),
                context: ContextSettings::from(&config.gateway),
                follow_up_ttl_seconds: config.cache.follow_up_ttl_seconds,
                catalog,
                peers,
                jobs: Mutex::new(Job::ALL.iter().map(|j| (*j, JobState::default())).collect()),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                follow_up_slots: Arc::new(tokio::sync::Semaphore::new(
                    config.precompute.max_follow_up_batches.max(1) as usize,
                )),
                written: Mutex::new(HashMap::new()),
                running: Arc::default(),
                lease,
                stock: std::sync::OnceLock::new(),
                demand,
                by_key,
                releases,
            }),
        })
    }

    /// Starts the scheduler (when `precompute.scheduler` is on) and serves until
    /// `opts.shutdown`.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        opts: ServeOptions,
    ) -> Result<(), ServerError> {
        let inner = self.inner.clone();
        let stop = opts.shutdown.clone();
        let inner_stop = inner.shutdown.clone();
        inner.tasks.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => inner_stop.cancel(),
                () = inner_stop.cancelled() => {}
            }
        });
        if inner.settings.scheduler {
            inner.tasks.spawn(self.clone().scheduler());
        }
        let result = Daemon::new("precompute")
            // Announcing a release spends generation on the operator's say-so, like a
            // stock change; gateways report demand with their ordinary tokens.
            .admin_methods(&["ScheduleRelease"])
            .add_service(pb::precompute_service_server::PrecomputeServiceServer::new(
                self,
            ))
            .serve(listener, opts)
            .await;
        // Also covers a server that failed without shutdown being requested. Every task
        // watches `shutdown`, so waiting for them is short.
        inner.shutdown.cancel();
        inner.tasks.close();
        inner.tasks.wait().await;
        if let Err(e) = inner.demand.save() {
            tracing::warn!(error = %e, "demand not saved: trending starts from release dates again");
        }
        result
    }

    /// Marks `job` running, or `None` when it already is.
    fn try_start(&self, job: Job) -> Option<JobGuard> {
        let mut running = self.inner.running.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(job).then(|| JobGuard {
            job,
            running: self.inner.running.clone(),
        })
    }

    /// Records that `item` of `job` is cached naming `products`.
    fn remember(&self, job: Job, item: &Item, products: &[String]) {
        let mut written = self.inner.written.lock().unwrap_or_else(|e| e.into_inner());
        for p in products {
            let v = written
                .entry((item.store_id.clone(), p.clone()))
                .or_default();
            if !v
                .iter()
                .any(|(j, i)| *j == job && i.question == item.question)
            {
                v.push((job, item.clone()));
            }
        }
    }

    /// The cache target of a scheduled job's answers: they live until the job's next run
    /// has replaced them (its interval plus a tenth for a slow run), however the cache's
    /// per-intent TTLs are set; stock changes drop them sooner.
    fn job_target(&self, job: Job) -> Target {
        let interval = job.interval_seconds(&self.inner.settings).max(1);
        let ttl = interval.saturating_add(interval / 10);
        Target {
            scope: pb::CacheScope::Store,
            session_id: String::new(),
            user_id: String::new(),
            ttl_seconds: u32::try_from(ttl).unwrap_or(u32::MAX),
            source: job.source(),
            history: Vec::new(),
            orders: Vec::new(),
            profile: None,
        }
    }

    /// Follows the inventory until shutdown: when a product's stock changes, the job answers
    /// that named it (which the cache has just dropped) are written again from the new
    /// stock, changes arriving together handled as one batch. Pre-computed recommendations
    /// are not rewritten while their store is in flash-sale mode (the gateway would not serve
    /// them); the live path answers those questions.
    pub fn follow_inventory(&self, source: mangaassist_inventory::FeedSource) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(String, String)>();
        let follower = mangaassist_inventory::follow(
            source,
            "precompute",
            move |c| {
                if let mangaassist_inventory::Change::Stock(s) = c {
                    let _ = tx.send((s.store_id.clone(), s.product_id.clone()));
                }
            },
            self.inner.shutdown.clone(),
        );
        // Set once, by the only call at start.
        let _ = self.inner.stock.set(follower.view.clone());
        let me = self.clone();
        self.inner.tasks.spawn(async move {
            let stop = me.inner.shutdown.clone();
            loop {
                let first = tokio::select! {
                    () = stop.cancelled() => return,
                    f = rx.recv() => match f { Some(f) => f, None => return },
                };
                // Changes of one feed import arrive together: gather them for a moment, which
                // also lets the cache (following the same feed) drop the old answers first.
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(REWRITE_GATHER) => {}
                }
                let mut changed = vec![first];
                while let Ok(more) = rx.try_recv() {
                    changed.push(more);
                }
                let mut items: Vec<(Job, Item)> = Vec::new();
                {
                    let mut written = me.inner.written.lock().unwrap_or_else(|e| e.into_inner());
                    for key in &changed {
                        for (job, item) in written.remove(key).unwrap_or_default() {
                            if !items.iter().any(|(j, i)| *j == job && i.question == item.question) {
                                items.push((job, item));
                            }
                        }
                    }
                }
                for (job, item) in items {
                    let result = if item.intent == pb::Intent::Recommendation
                        && follower.view.flash_sale(&item.store_id)
                    {
                        "flash_sale"
                    } else {
                        let target = me.job_target(job);
                        let r = tokio::select! {
                            () = stop.cancelled() => return,
                            r = answer(&me.inner.peers, &me.inner.context, &item, &target) => r,
                        };
                        match r {
                            Ok(Outcome::Written(products)) => {
                                me.remember(job, &item, &products);
                                "written"
                            }
                            Ok(Outcome::Skipped(_)) => "skipped",
                            Err(e) => {
                                tracing::warn!(question = %item.question, error = %e, "rewriting a pre-computed answer after a stock change failed");
                                "failed"
                            }
                        }
                    };
                    metrics::counter!("precompute_rewritten_total", "job" => job.name(), "result" => result)
                        .increment(1);
                }
            }
        });
    }

    fn job_state(&self, job: Job, f: impl FnOnce(&mut JobState)) {
        let mut jobs = self.inner.jobs.lock().unwrap_or_else(|e| e.into_inner());
        f(jobs.entry(job).or_default());
    }

    /// The `n` trending series of `store` now. Demand that cannot be read (Redis down)
    /// leaves the release-date order: stale answers beat none.
    async fn trending_now(&self, store: &str, n: usize) -> Vec<Trend> {
        let demand: HashMap<String, f64> = match self
            .inner
            .demand
            .counts(store, now_ms() as f64 / 1000.0)
            .await
        {
            Ok(c) => c.into_iter().collect(),
            Err(e) => {
                tracing::warn!(store, error = %e, "demand unreadable; trending by release date");
                HashMap::new()
            }
        };
        // Live stock where the inventory changed it: a series sold out since the catalog
        // was written is not trending.
        let view = self.inner.stock.get();
        trending_by_demand(
            &self.inner.catalog.products,
            store,
            n,
            |p| match view.map(|v| v.availability(&p.store_id, &p.id)) {
                Some(mangaassist_inventory::Availability::Changed { quantity, .. }) => quantity,
                _ => p.stock,
            },
            &demand,
        )
    }

    async fn items(&self, job: Job, store: Option<&str>) -> Vec<Item> {
        let products = &self.inner.catalog.products;
        let stores = match store {
            Some(s) => vec![s.to_string()],
            None => self.inner.catalog.stores(),
        };
        let n = usize::try_from(self.inner.settings.trending_titles).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        for s in &stores {
            match job {
                Job::Trending => {
                    let trends = self.trending_now(s, n).await;
                    let by_demand = trends.iter().filter(|t| t.by_demand).count();
                    tracing::info!(store = %s, by_demand, series = trends.len(), "trending series picked");
                    let series = trends.into_iter().map(|t| t.series).collect();
                    items.extend(plan::trending_items_for(s, series));
                }
                Job::GenreRecommendations => items.extend(genre_items(products, s)),
                // Planned from the due releases by `run_job`.
                Job::ReleasePrewarm => {}
            }
        }
        items
    }

    fn product(&self, store: &str, id: &str) -> Option<&Product> {
        let i = self
            .inner
            .by_key
            .get(&(store.to_string(), id.to_string()))?;
        self.inner.catalog.products.get(*i)
    }

    /// When `r`'s answers are written, and until when they live.
    fn release_window(&self, r: &Release) -> (i64, i64) {
        let s = &self.inner.settings;
        (
            r.release_at_ms - secs_ms(s.release_lead_seconds),
            r.release_at_ms + secs_ms(s.release_keep_seconds),
        )
    }

    fn release_questions(&self, r: &Release) -> Vec<Item> {
        match self.product(&r.store_id, &r.product_id) {
            Some(p) => release_items(&self.inner.catalog.products, p, self.release_window(r).1),
            None => Vec::new(),
        }
    }

    /// Releases of `store` (or every store) whose answers are due now and not yet written;
    /// releases whose window is over are forgotten on the way.
    async fn due_releases(&self, store: Option<&str>) -> Vec<Release> {
        let all = match self.inner.releases.all().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "releases unreadable; none pre-warmed this run");
                return Vec::new();
            }
        };
        let now = now_ms();
        let mut due = Vec::new();
        for r in all {
            let (warm_at, until) = self.release_window(&r);
            if until <= now {
                if let Err(e) = self.inner.releases.remove(&r).await {
                    tracing::warn!(error = %e, "an old release could not be forgotten");
                }
            } else if r.warmed_ms == 0 && warm_at <= now && store.is_none_or(|s| s == r.store_id) {
                due.push(r);
            }
        }
        due
    }

    fn release_info(&self, r: &Release) -> pb::ReleaseInfo {
        pb::ReleaseInfo {
            store_id: r.store_id.clone(),
            product_id: r.product_id.clone(),
            title: self
                .product(&r.store_id, &r.product_id)
                .map(|p| p.title.clone())
                .unwrap_or_default(),
            release_at_ms: r.release_at_ms,
            prewarm_at_ms: self.release_window(r).0,
            warmed_ms: r.warmed_ms,
            written: r.written,
            questions: self
                .release_questions(r)
                .into_iter()
                .map(|i| i.question)
                .collect(),
        }
    }

    /// Announces a release; when its answers are already due, writes them now.
    pub async fn schedule_release(
        &self,
        req: pb::ScheduleReleaseRequest,
    ) -> Result<pb::ReleaseInfo, PrecomputeError> {
        if !self.inner.catalog.stores().contains(&req.store_id) {
            return Err(PrecomputeError::InvalidArgument(format!(
                "unknown store `{}` (one of: {})",
                req.store_id,
                self.inner.catalog.stores().join(", ")
            )));
        }
        if self.product(&req.store_id, &req.product_id).is_none() {
            return Err(PrecomputeError::NotFound(format!(
                "product `{}` is not in store `{}`'s catalog",
                req.product_id, req.store_id
            )));
        }
        let now = now_ms();
        const YEAR_MS: i64 = 366 * 24 * 3_600 * 1_000;
        let release = Release {
            store_id: req.store_id,
            product_id: req.product_id,
            release_at_ms: req.release_at_ms,
            warmed_ms: 0,
            written: 0,
        };
        let (warm_at, until) = self.release_window(&release);
        if req.release_at_ms <= 0 || until <= now {
            return Err(PrecomputeError::InvalidArgument(format!(
                "release_at_ms {}: that release is over (its answers would live until {until}, before now)",
                req.release_at_ms
            )));
        }
        if req.release_at_ms > now + YEAR_MS {
            return Err(PrecomputeError::InvalidArgument(format!(
                "release_at_ms {} is more than a year away",
                req.release_at_ms
            )));
        }
        self.inner.releases.put(release.clone()).await?;
        tracing::info!(store = %release.store_id, product = %release.product_id, release_at_ms = release.release_at_ms, prewarm_at_ms = warm_at, "release scheduled");
        if warm_at <= now {
            // Due already: the next check could be minutes away.
            match self.try_start(Job::ReleasePrewarm) {
                Some(running) => {
                    let me = self.clone();
                    let store = release.store_id.clone();
                    self.inner.tasks.spawn(async move {
                        let _running = running;
                        let cancel = me.inner.shutdown.child_token();
                        me.run_job(Job::ReleasePrewarm, Some(&store), None, &cancel)
                            .await;
                    });
                }
                None => tracing::info!("release_prewarm is running; the next check writes it"),
            }
        }
        Ok(self.release_info(&release))
    }

    pub async fn list_releases(
        &self,
        req: pb::ListReleasesRequest,
    ) -> Result<pb::ListReleasesResponse, PrecomputeError> {
        if !req.store_id.is_empty() && !self.inner.catalog.stores().contains(&req.store_id) {
            return Err(PrecomputeError::InvalidArgument(format!(
                "unknown store `{}`",
                req.store_id
            )));
        }
        let all = self.inner.releases.all().await?;
        Ok(pb::ListReleasesResponse {
            releases: all
                .iter()
                .filter(|r| req.store_id.is_empty() || r.store_id == req.store_id)
                .map(|r| self.release_info(r))
                .collect(),
        })
    }

    /// Adds the gateways' counts of products named by answers.
    pub async fn record_demand(
        &self,
        req: pb::RecordDemandRequest,
    ) -> Result<pb::RecordDemandResponse, PrecomputeError> {
        if req.counts.len() > MAX_DEMAND_COUNTS {
            return Err(PrecomputeError::InvalidArgument(format!(
                "{} counts in one request; at most {MAX_DEMAND_COUNTS}",
                req.counts.len()
            )));
        }
        let mut by_store: HashMap<String, Vec<(String, u32)>> = HashMap::new();
        let mut unknown = 0u32;
        for (i, c) in req.counts.into_iter().enumerate() {
            if c.count == 0 || c.count > MAX_DEMAND_COUNT {
                return Err(PrecomputeError::InvalidArgument(format!(
                    "counts[{i}].count = {}: must be 1..={MAX_DEMAND_COUNT}",
                    c.count
                )));
            }
            if self.product(&c.store_id, &c.product_id).is_none() {
                unknown += 1;
                continue;
            }
            by_store
                .entry(c.store_id)
                .or_default()
                .push((c.product_id, c.count));
        }
        let now_s = now_ms() as f64 / 1000.0;
        let mut recorded = 0u32;
        for (store, counts) in by_store {
            self.inner.demand.add(&store, &counts, now_s).await?;
            recorded += u32::try_from(counts.len()).unwrap_or(u32::MAX);
        }
        metrics::counter!("precompute_demand_counts_total", "result" => "recorded")
            .increment(u64::from(recorded));
        metrics::counter!("precompute_demand_counts_total", "result" => "unknown")
            .increment(u64::from(unknown));
        Ok(pb::RecordDemandResponse { recorded, unknown })
    }

    /// The series the trending job would pick for `store` now.
    pub async fn trending(
        &self,
        req: pb::TrendingRequest,
    ) -> Result<pb::TrendingResponse, PrecomputeError> {
        if !self.inner.catalog.stores().contains(&req.store_id) {
            return Err(PrecomputeError::InvalidArgument(format!(
                "unknown store `{}` (one of: {})",
                req.store_id,
                self.inner.catalog.stores().join(", ")
            )));
        }
        let n = match req.limit {
            0 => self.inner.settings.trending_titles,
            l => l.min(1_000),
        };
        let trends = self
            .trending_now(&req.store_id, usize::try_from(n).unwrap_or(usize::MAX))
            .await;
        Ok(pb::TrendingResponse {
            series: trends
                .into_iter()
                .map(|t| pb::TrendingSeries {
                    series: t.series,
                    demand: t.demand,
                    reason: if t.by_demand {
                        "demand"
                    } else {
                        "release_date"
                    }
                    .into(),
                })
                .collect(),
            half_life_seconds: u32::try_from(self.inner.settings.trending_half_life_seconds)
                .unwrap_or(u32::MAX),
        })
    }

    /// Runs `job` now over `store` (or every store), reporting each item on `progress`.
    /// Stops early when `cancel` fires or the progress reader goes away.
    async fn run_job(
        &self,
        job: Job,
        store: Option<&str>,
        progress: Option<&ProgressTx>,
        cancel: &CancellationToken,
    ) -> RunTotals {
        // Each due release with its questions, kept to count what was written for it.
        let due: Vec<(Release, Vec<Item>)> = if job == Job::ReleasePrewarm {
            self.due_releases(store)
                .await
                .into_iter()
                .map(|r| {
                    let questions = self.release_questions(&r);
                    (r, questions)
                })
                .collect()
        } else {
            Vec::new()
        };
        let items = if job == Job::ReleasePrewarm {
            due.iter().flat_map(|(_, q)| q.iter().cloned()).collect()
        } else {
            self.items(job, store).await
        };
        let mut written_questions: std::collections::HashSet<(String, String)> =
            std::collections::HashSet::new();
        let total = u32::try_from(items.len()).unwrap_or(u32::MAX);
        let target = self.job_target(job);
        tracing::info!(job = job.name(), items = total, "precompute job started");
        let (peers, context) = (&self.inner.peers, &self.inner.context);
        let mut results = futures::stream::iter(items)
            .map(|item| {
                let target = &target;
                async move {
                    let r = answer(peers, context, &item, target).await;
                    (item, r)
                }
            })
            .buffer_unordered(CONCURRENCY);
        let mut t = RunTotals::default();
        loop {
            let next = tokio::select! {
                biased;
                () = cancel.cancelled() => { t.cancelled = true; break; }
                () = reader_gone(progress) => { t.cancelled = true; break; }
                n = results.next() => n,
            };
            let Some((item, r)) = next else { break };
            t.done += 1;
            let line = match r {
                Ok(Outcome::Written(products)) => {
                    self.remember(job, &item, &products);
                    written_questions.insert((item.store_id.clone(), item.question.clone()));
                    t.written += 1;
                    metrics::counter!("precompute_items_written_total", "job" => job.name())
                        .increment(1);
                    item.question
                }
                Ok(Outcome::Skipped(why)) => format!("{} (skipped: {why})", item.question),
                Err(e) => {
                    t.failed += 1;
                    tracing::warn!(job = job.name(), question = %item.question, error = %e, "precompute item failed");
                    t.last_error = format!("{}: {e}", item.question);
                    format!("{}: error: {e}", item.question)
                }
            };
            if let Some(tx) = progress {
                let p = pb::JobProgress {
                    job: job.name().into(),
                    done: t.done,
                    total,
                    item: line,
                    finished: false,
                    written: t.written,
                    failed: t.failed,
                };
                if tx.send(Ok(p)).await.is_err() {
                    t.cancelled = true;
                    break;
                }
            }
        }
        // Dropping the stream here cancels the items still in flight.
        drop(results);
        let result = if t.cancelled {
            "cancelled"
        } else if t.failed == 0 {
            "ok"
        } else if t.written > 0 {
            "partial"
        } else {
            "failed"
        };
        metrics::counter!("precompute_job_runs_total", "job" => job.name(), "result" => result)
            .increment(1);
        tracing::info!(
            job = job.name(),
            result,
            written = t.written,
            failed = t.failed,
            "precompute job finished"
        );
        if !t.cancelled {
            for (mut r, questions) in due {
                let written = questions
                    .iter()
                    .filter(|i| {
                        written_questions.contains(&(i.store_id.clone(), i.question.clone()))
                    })
                    .count();
                // Nothing written while something failed: the next check tries again.
                if written == 0 && t.failed > 0 {
                    continue;
                }
                r.warmed_ms = now_ms();
                r.written = u32::try_from(written).unwrap_or(u32::MAX);
                if let Err(e) = self.inner.releases.put(r).await {
                    tracing::warn!(error = %e, "a pre-warmed release could not be marked");
                }
            }
        }
        // A crash loses at most one trending interval of demand, not all of it.
        if job == Job::Trending
            && let Err(e) = self.inner.demand.save()
        {
            tracing::warn!(error = %e, "demand not saved");
        }
        let (written, err) = (t.written, t.last_error.clone());
        self.job_state(job, |s| {
            s.last_run_ms = now_ms();
            s.last_written = written;
            s.last_error = err;
        });
        t
    }

    /// Polls every peer until all answer, with exponential backoff, for up to [`PEER_WAIT`]:
    /// at start the peers may still be loading.
    async fn wait_for_peers(&self) -> bool {
        let peers = &self.inner.peers;
        let start = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let probe = Duration::from_secs(1);
            let store = self
                .inner
                .catalog
                .stores()
                .into_iter()
                .next()
                .unwrap_or_default();
            let (r, g, c) = tokio::join!(
                peers.retrieval.get_products(
                    pb::GetProductsRequest {
                        store_id: store,
                        ids: vec![]
                    },
                    probe
                ),
                peers.generation.list_prompts(probe),
                peers.cache.stats(probe),
            );
            match (r, g, c) {
                (Ok(_), Ok(_), Ok(_)) => return true,
                (r, g, c) => {
                    if start.elapsed() + delay > PEER_WAIT {
                        tracing::warn!(
                            retrieval = r.err().map(|e| e.message().to_string()),
                            generation = g.err().map(|e| e.message().to_string()),
                            cache = c.err().map(|e| e.message().to_string()),
                            "peers not ready, running jobs anyway"
                        );
                        return false;
                    }
                }
            }
            tokio::select! {
                () = self.inner.shutdown.cancelled() => return false,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn scheduler(self) {
        let cancel = self.inner.shutdown.clone();
        let settings = self.inner.settings.clone();
        let start = tokio::time::Instant::now();
        let mut next: HashMap<Job, tokio::time::Instant> = HashMap::new();
        for job in Job::ALL {
            let interval = Duration::from_secs(job.interval_seconds(&settings).max(1));
            let first = if settings.run_at_start {
                start
            } else {
                start + interval
            };
            next.insert(job, first);
            let wall = now_ms() + secs_ms((first - start).as_secs());
            self.job_state(job, |s| s.next_run_ms = wall);
        }
        if settings.run_at_start {
            self.wait_for_peers().await;
        }
        tracing::info!(
            run_at_start = settings.run_at_start,
            "precompute scheduler started"
        );
        loop {
            let Some((&job, &due)) = next.iter().min_by_key(|(_, t)| **t) else {
                return;
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep_until(due) => {}
            }
            let hold = Duration::from_secs(job.interval_seconds(&settings).max(1));
            if !self.inner.lease.acquire(job.name(), hold).await {
                tracing::info!(
                    job = job.name(),
                    "scheduled run left to the replica holding the lease"
                );
                metrics::counter!("precompute_job_runs_total", "job" => job.name(), "result" => "leased_elsewhere").increment(1);
            } else if let Some(_running) = self.try_start(job) {
                self.run_job(job, None, None, &cancel).await;
            } else {
                tracing::info!(
                    job = job.name(),
                    "scheduled run skipped: the job is already running"
                );
            }
            if cancel.is_cancelled() {
                break;
            }
            let interval = job.interval_seconds(&settings).max(1);
            next.insert(
                job,
                tokio::time::Instant::now() + Duration::from_secs(interval),
            );
            self.job_state(job, |s| s.next_run_ms = now_ms() + secs_ms(interval));
        }
        tracing::info!("precompute scheduler stopped");
    }

    fn store_products(&self, store: &str, ids: &[String]) -> Vec<&Product> {
        ids.iter()
            .filter_map(|id| self.product(store, id))
            .collect()
    }

    /// Predicts the follow-up questions and starts pre-generating their answers in the
    /// background; returns the questions and how many answers were scheduled.
    pub fn predict(
        &self,
        req: pb::PredictFollowUpsRequest,
    ) -> Result<pb::PredictFollowUpsResponse, PrecomputeError> {
        if req.session_id.trim().is_empty() {
            return Err(PrecomputeError::InvalidArgument(
                "session_id is empty (follow-ups are cached per session)".into(),
            ));
        }
        if req.store_id.trim().is_empty() {
            return Err(PrecomputeError::InvalidArgument("store_id is empty".into()));
        }
        // An order of someone else written into this session's answers would be a leak:
        // refuse the request rather than trust the caller got it right.
        if let Some((i, _)) = req
            .orders
            .iter()
            .enumerate()
            .find(|(_, o)| o.user_id != req.user_id)
        {
            return Err(PrecomputeError::InvalidArgument(format!(
                "orders[{i}] is not an order of user `{}`",
                req.user_id
            )));
        }
        let intent = pb::Intent::try_from(req.intent).map_err(|_| {
            PrecomputeError::InvalidArgument(format!("unknown intent {}", req.intent))
        })?;
        let products = self.store_products(&req.store_id, &req.product_ids);
        let n = usize::try_from(self.inner.settings.follow_ups).unwrap_or(usize::MAX);
        let lang = mangaassist_followup::lang_of(&req.query);
        let predicted = follow_ups(intent, &products, lang, n);
        metrics::counter!("precompute_followups_total")
            .increment(u64::try_from(predicted.len()).unwrap_or(0));
        let questions: Vec<String> = predicted.iter().map(|f| f.question.clone()).collect();
        // Questions about the customer's orders only with the orders the gateway read for
        // them: none read (memory down, or no orders) leaves those to the live answer.
        let with_account = !req.orders.is_empty() && !req.user_id.is_empty();
        let items: Vec<Item> = predicted
            .into_iter()
            .filter(|f| with_account || f.answerable_without_account())
            .map(|f| Item {
                store_id: req.store_id.clone(),
                question: f.question,
                intent: f.intent,
                // The customer may ask within seconds: the fast tier gets there first.
                tier: pb::ModelTier::Fast,
                in_stock_only: false,
                until_ms: 0,
            })
            .collect();
        // Background work is shed, not queued: a follow-up generated after the customer's next
        // message is useless, and a queue would keep the cores busy when live traffic returns.
        let slot = if items.is_empty() {
            None
        } else {
            match self.inner.follow_up_slots.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    metrics::counter!("background_shed_total", "work" => "followup_batch", "reason" => "busy")
                        .increment(1);
                    return Ok(pb::PredictFollowUpsResponse {
                        questions,
                        written: 0,
                    });
                }
            }
        };
        let written = u32::try_from(items.len()).unwrap_or(u32::MAX);
        if let Some(slot) = slot {
            let mut history = Vec::new();
            if !req.answer.is_empty() {
                history.push(pb::Turn {
                    role: "assistant".into(),
                    text: req.answer.clone(),
                    intent: req.intent,
                    ..Default::default()
                });
            }
            if !req.query.is_empty() {
                history.push(pb::Turn {
                    role: "user".into(),
                    text: req.query.clone(),
                    intent: req.intent,
                    ..Default::default()
                });
            }
            let target = Target {
                scope: pb::CacheScope::Session,
                session_id: req.session_id.clone(),
                user_id: req.user_id.clone(),
                ttl_seconds: self.inner.follow_up_ttl_seconds,
                source: "precompute:followup",
                history,
                orders: req.orders.clone(),
                profile: req.profile.clone(),
            };
            let inner = self.inner.clone();
            self.inner.tasks.spawn(async move {
                let _slot = slot;
                let (peers, context) = (&inner.peers, &inner.context);
                let work = futures::stream::iter(items)
                    .map(|item| {
                        let target = &target;
                        async move {
                            if already_cached(peers, &item, target).await {
                                metrics::counter!("precompute_items_skipped_total", "job" => "followup", "reason" => "cached").increment(1);
                                return;
                            }
                            match answer(peers, context, &item, target).await {
                                Ok(Outcome::Written(_)) => {
                                    metrics::counter!("precompute_items_written_total", "job" => "followup").increment(1);
                                }
                                Ok(Outcome::Skipped(_)) => {}
                                Err(e) => {
                                    tracing::debug!(question = %item.question, error = %e, "follow-up not pre-generated");
                                }
                            }
                        }
                    })
                    .buffer_unordered(CONCURRENCY)
                    .collect::<Vec<()>>();
                tokio::select! {
                    () = inner.shutdown.cancelled() => {}
                    _ = work => {}
                }
            });
        }
        Ok(pb::PredictFollowUpsResponse { questions, written })
    }
}

#[tonic::async_trait]
impl pb::precompute_service_server::PrecomputeService for PrecomputeDaemon {
    type RunJobStream = ReceiverStream<Result<pb::JobProgress, Status>>;

    async fn list_jobs(
        &self,
        _request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let jobs = self.inner.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let infos = Job::ALL
            .iter()
            .map(|j| {
                let s = jobs.get(j).cloned().unwrap_or_default();
                pb::JobInfo {
                    name: j.name().into(),
                    description: j.description().into(),
                    interval_seconds: u32::try_from(j.interval_seconds(&self.inner.settings))
                        .unwrap_or(u32::MAX),
                    last_run_ms: s.last_run_ms,
                    next_run_ms: s.next_run_ms,
                    last_written: s.last_written,
                    last_error: s.last_error,
                }
            })
            .collect();
        Ok(Response::new(pb::ListJobsResponse { jobs: infos }))
    }

    async fn run_job(
        &self,
        request: Request<pb::RunJobRequest>,
    ) -> Result<Response<Self::RunJobStream>, Status> {
        let req = request.into_inner();
        let job = Job::from_name(&req.job).ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown job `{}` (one of: {})",
                req.job,
                Job::ALL.map(Job::name).join(", ")
            ))
        })?;
        let store = if req.store_id.is_empty() {
            None
        } else if self.inner.catalog.stores().contains(&req.store_id) {
            Some(req.store_id)
        } else {
            return Err(Status::invalid_argument(format!(
                "unknown store `{}` (one of: {})",
                req.store_id,
                self.inner.catalog.stores().join(", ")
            )));
        };
        let running = self.try_start(job).ok_or_else(|| {
            Status::aborted(format!(
                "job `{}` is already running; watch it finish (ListJobs) and run it again",
                job.name()
            ))
        })?;
        let (tx, rx) = mpsc::channel(16);
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            let _running = running;
            let cancel = this.inner.shutdown.child_token();
            let t = this
                .run_job(job, store.as_deref(), Some(&tx), &cancel)
                .await;
            if !t.cancelled {
                let _ = tx
                    .send(Ok(pb::JobProgress {
                        job: job.name().into(),
                        done: t.done,
                        total: t.done,
                        item: String::new(),
                        finished: true,
                        written: t.written,
                        failed: t.failed,
                    }))
                    .await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn predict_follow_ups(
        &self,
        request: Request<pb::PredictFollowUpsRequest>,
    ) -> Result<Response<pb::PredictFollowUpsResponse>, Status> {
        Ok(Response::new(self.predict(request.into_inner())?))
    }

    async fn record_demand(
        &self,
        request: Request<pb::RecordDemandRequest>,
    ) -> Result<Response<pb::RecordDemandResponse>, Status> {
        Ok(Response::new(
            PrecomputeDaemon::record_demand(self, request.into_inner()).await?,
        ))
    }

    async fn trending(
        &self,
        request: Request<pb::TrendingRequest>,
    ) -> Result<Response<pb::TrendingResponse>, Status> {
        Ok(Response::new(
            PrecomputeDaemon::trending(self, request.into_inner()).await?,
        ))
    }

    async fn schedule_release(
        &self,
        request: Request<pb::ScheduleReleaseRequest>,
    ) -> Result<Response<pb::ReleaseInfo>, Status> {
        Ok(Response::new(
            PrecomputeDaemon::schedule_release(self, request.into_inner()).await?,
        ))
    }

    async fn list_releases(
        &self,
        request: Request<pb::ListReleasesRequest>,
    ) -> Result<Response<pb::ListReleasesResponse>, Status> {
        Ok(Response::new(
            PrecomputeDaemon::list_releases(self, request.into_inner()).await?,
        ))
    }
}
