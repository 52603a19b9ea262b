//! Memory daemon: conversation history per session, user profiles and orders, served over
//! gRPC (`MemoryService`). Storage sits behind the [`MemoryStore`] trait; the embedded default
//! is a redb file ([`RedbStore`]) that survives restarts, the production backend DynamoDB
//! ([`DynamoStore`], `memory.backend = "dynamodb"`; table layout in the `dynamo` module docs).
//! A session belongs to the first user who writes to it; anyone else gets `permission_denied`.

mod dynamo;
mod error;
mod store;

use std::{path::PathBuf, sync::Arc, time::Duration, time::Instant};

use mangaassist_config::{Config, MemoryBackend, MemorySettings};
use mangaassist_proto::v1 as pb;
use mangaassist_server::{Daemon, ServeOptions, ServerError};
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

pub use dynamo::{DynamoStore, DynamoTables, aws_target};
pub use error::MemoryError;
pub use store::{MemoryStore, RedbStore};

/// Largest accepted turn text.
pub const MAX_TURN_BYTES: usize = 16 * 1024;
/// Largest accepted session or user id.
pub const MAX_ID_BYTES: usize = 256;
/// Hard cap on turns returned by one `GetHistory`.
pub const MAX_HISTORY: u32 = 100;

/// The memory service: validation, limits and metrics in front of a [`MemoryStore`].
#[derive(Clone)]
pub struct MemoryDaemon {
    store: Arc<dyn MemoryStore>,
    history_limit: u32,
    /// The embedded store, swept every [`PRUNE_INTERVAL`] while serving (DynamoDB expires
    /// items with its own TTL).
    redb: Option<RedbStore>,
}

/// How often a serving daemon deletes expired turns and lapsed sessions from its redb file;
/// reads hide them meanwhile, so this only bounds the file.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3_600);

impl std::fmt::Debug for MemoryDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDaemon")
            .field("history_limit", &self.history_limit)
            .finish_non_exhaustive()
    }
}

impl MemoryDaemon {
    /// Opens the configured backend (`memory.backend`): the redb file (`memory.path`,
    /// default `<data.state_dir>/memory.redb`, expired turns and lapsed sessions dropped at
    /// open and every [`PRUNE_INTERVAL`] while serving) or DynamoDB
    /// (credential chain; tables created when `memory.dynamodb.create_tables`). Then loads
    /// the demo users and orders when `memory.seed_demo_data` asks for them (by default only
    /// into the embedded store).
    pub async fn new(config: &Config) -> Result<Self, MemoryError> {
        Self::new_with_aws_credentials(config, None).await
    }

    /// [`MemoryDaemon::new`] with fixed AWS keys instead of the credential chain for the
    /// DynamoDB backend (moto, DynamoDB Local). `None` = the chain.
    pub async fn new_with_aws_credentials(
        config: &Config,
        static_credentials: Option<(String, String)>,
    ) -> Result<Self, MemoryError> {
        let ttl = Duration::from_secs(u64::from(config.memory.turn_ttl_days) * 86_400);
        let mut redb = None;
        let store: Arc<dyn MemoryStore> = match config.memory.backend {
            MemoryBackend::Redb => {
                let store = open_redb(store_path(config), ttl).await?;
                redb = Some(store.clone());
                Arc::new(store)
            }
            MemoryBackend::DynamoDb => {
                let settings = &config.memory.dynamodb;
                let target = aws_target(settings, static_credentials);
                let store = DynamoStore::connect_to(&target, settings, ttl).await?;
                tracing::info!(tables = ?store.tables(), "memory store on DynamoDB");
                Arc::new(store)
            }
        };
        let mut daemon = Self::with_store(store, &config.memory);
        daemon.redb = redb;
        if config.memory.seeds_demo_data() {
            daemon.seed_demo_data(&config.data.dir).await?;
        }
        Ok(daemon)
    }

    /// A daemon over any backend (DynamoDB, a test double).
    pub fn with_store(store: Arc<dyn MemoryStore>, settings: &MemorySettings) -> Self {
        Self {
            store,
            history_limit: settings.history_limit.clamp(1, MAX_HISTORY),
            redb: None,
        }
    }

    /// The backend, for in-process callers that skip gRPC.
    pub fn store(&self) -> &Arc<dyn MemoryStore> {
        &self.store
    }

    /// Upserts `data/users/users.jsonl` and `orders.jsonl` (validated against the catalog).
    pub async fn seed_demo_data(&self, data_dir: &std::path::Path) -> Result<(), MemoryError> {
        let dir = data_dir.to_path_buf();
        let (profiles, orders) = tokio::task::spawn_blocking(move || {
            let users = mangaassist_catalog::load_users(&dir.join("users/users.jsonl"))?;
            let products = mangaassist_catalog::Catalog::load(&dir)?.products;
            let orders = mangaassist_catalog::load_orders(
                &dir.join("users/orders.jsonl"),
                &users,
                &products,
            )?;
            Ok::<_, MemoryError>((
                users.iter().map(pb::UserProfile::from).collect::<Vec<_>>(),
                orders.iter().map(pb::Order::from).collect::<Vec<_>>(),
            ))
        })
        .await
        .map_err(|e| MemoryError::Task(e.to_string()))??;
        let (users, n_orders) = (profiles.len(), orders.len());
        self.store.seed(profiles, orders).await?;
        tracing::info!(users, orders = n_orders, "demo users and orders loaded");
        Ok(())
    }

    /// Serves until `opts.shutdown`; an embedded store is pruned every [`PRUNE_INTERVAL`].
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        opts: ServeOptions,
    ) -> Result<(), ServerError> {
        let background = TaskTracker::new();
        // A child token: the sweep also stops when the server fails without a shutdown.
        let stop = opts.shutdown.child_token();
        if let Some(store) = self.redb.clone() {
            let shutdown = stop.clone();
            background.spawn(async move {
                let mut tick = tokio::time::interval(PRUNE_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        _ = tick.tick() => prune(&store).await,
                    }
                }
            });
        }
        let result = Daemon::new("memory")
            .add_service(pb::memory_service_server::MemoryServiceServer::new(self))
            .serve(listener, opts)
            .await;
        // Lets a sweep in progress commit rather than abandoning its transaction.
        stop.cancel();
        background.close();
        background.wait().await;
        result
    }
}

/// One sweep of the embedded store; a failure only logs (the next sweep tries again).
async fn prune(store: &RedbStore) {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.prune_expired()).await {
        Ok(Ok(removed)) => tracing::debug!(removed, "expired turns and sessions pruned"),
        Ok(Err(e)) => tracing::warn!(error = %e, "memory prune failed"),
        Err(e) => tracing::warn!(error = %e, "memory prune task failed"),
    }
}

async fn open_redb(path: PathBuf, ttl: Duration) -> Result<RedbStore, MemoryError> {
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| MemoryError::CreateDir {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let store = RedbStore::open(&path, ttl)?;
        let pruned = store.prune_expired()?;
        tracing::info!(path = %path.display(), pruned, "memory store open");
        Ok(store)
    })
    .await
    .map_err(|e| MemoryError::Task(e.to_string()))?
}

fn store_path(config: &Config) -> PathBuf {
    if config.memory.path.as_os_str().is_empty() {
        config.data.state_dir.join("memory.redb")
    } else {
        config.memory.path.clone()
    }
}

fn check_id(field: &str, v: &str) -> Result<(), Status> {
    if v.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is empty")));
    }
    if v.len() > MAX_ID_BYTES {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes, more than {MAX_ID_BYTES}",
            v.len()
        )));
    }
    Ok(())
}

/// Counts the op and its latency, and logs server-side failures.
fn observe<T>(op: &'static str, start: Instant, r: Result<T, MemoryError>) -> Result<T, Status> {
    metrics::counter!("memory_ops_total", "op" => op).increment(1);
    metrics::histogram!("memory_op_latency_ms", "op" => op)
        .record(start.elapsed().as_secs_f64() * 1_000.0);
    r.map_err(|e| {
        if e.code() == tonic::Code::Internal {
            tracing::error!(op, error = %e, "memory op failed");
        }
        Status::from(e)
    })
}

/// Turns one `AppendTurns` may carry: an exchange is two.
const MAX_TURNS_PER_APPEND: usize = 8;

/// A turn's role and size, as every append checks them.
fn check_turn(turn: &pb::Turn) -> Result<(), Status> {
    if !matches!(turn.role.as_str(), "user" | "assistant") {
        return Err(Status::invalid_argument(format!(
            "turn.role `{}` is not one of user, assistant",
            turn.role
        )));
    }
    if turn.text.len() > MAX_TURN_BYTES {
        return Err(Status::invalid_argument(format!(
            "turn.text is {} bytes, more than {MAX_TURN_BYTES}",
            turn.text.len()
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl pb::memory_service_server::MemoryService for MemoryDaemon {
    async fn append_turn(
        &self,
        request: Request<pb::AppendTurnRequest>,
    ) -> Result<Response<pb::AppendTurnResponse>, Status> {
        let start = Instant::now();
        let req = request.into_inner();
        check_id("session_id", &req.session_id)?;
        check_id("user_id", &req.user_id)?;
        let turn = req
            .turn
            .ok_or_else(|| Status::invalid_argument("turn is missing"))?;
        check_turn(&turn)?;
        let r = self
            .store
            .append_turn(&req.session_id, &req.user_id, turn)
            .await;
        let turns = observe("append_turn", start, r)?;
        Ok(Response::new(pb::AppendTurnResponse { turns }))
    }

    async fn append_turns(
        &self,
        request: Request<pb::AppendTurnsRequest>,
    ) -> Result<Response<pb::AppendTurnResponse>, Status> {
        let start = Instant::now();
        let req = request.into_inner();
        check_id("session_id", &req.session_id)?;
        check_id("user_id", &req.user_id)?;
        if !(1..=MAX_TURNS_PER_APPEND).contains(&req.turns.len()) {
            return Err(Status::invalid_argument(format!(
                "turns holds {}, not 1 to {MAX_TURNS_PER_APPEND}",
                req.turns.len()
            )));
        }
        for turn in &req.turns {
            check_turn(turn)?;
        }
        let r = self
            .store
            .append_turns(&req.session_id, &req.user_id, req.turns)
            .await;
        let turns = observe("append_turns", start, r)?;
        Ok(Response::new(pb::AppendTurnResponse { turns }))
    }

    async fn get_history(
        &self,
        request: Request<pb::GetHistoryRequest>,
    ) -> Result<Response<pb::GetHistoryResponse>, Status> {
        let start = Instant::now();
        let req = request.into_inner();
        check_id("session_id", &req.session_id)?;
        check_id("user_id", &req.user_id)?;
        let limit = match req.limit {
            0 => self.history_limit,
            n => n.min(MAX_HISTORY),
        };
        let r = self
            .store
            .history(&req.session_id, &req.user_id, limit as usize)
            .await;
        let turns = observe("get_history", start, r)?;
        Ok(Response::new(pb::GetHistoryResponse { turns }))
    }

    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        let start = Instant::now();
        let req = request.into_inner();
        check_id("user_id", &req.user_id)?;
        let profile = observe("get_profile", start, self.store.profile(&req.user_id).await)?;
        Ok(Response::new(pb::GetProfileResponse { profile }))
    }

    async fn get_orders(
        &self,
        request: Request<pb::GetOrdersRequest>,
    ) -> Result<Response<pb::GetOrdersResponse>, Status> {
        let start = Instant::now();
        let req = request.into_inner();
        check_id("user_id", &req.user_id)?;
        let r = self
            .store
            .orders(&req.user_id, &req.store_id, req.limit as usize)
            .await;
        let orders = observe("get_orders", start, r)?;
        Ok(Response::new(pb::GetOrdersResponse { orders }))
    }
}
