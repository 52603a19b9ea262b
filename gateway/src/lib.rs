//! The WebSocket gateway: authenticates connections (HS256 JWT), serves the chat page and
//! `/ws`, validates every frame, rate-limits, and runs the per-message orchestrator (budgets as
//! deadlines, circuit breakers, degradation ladder, model routing, batched streaming through a
//! resume buffer). Also an OpenAI-compatible `/v1/chat/completions` (SSE) and `/v1/models`,
//! and `/slo`, `/routing`, `/breakers`, `/metrics`, `/healthz`.
//! Protocol: docs/protocol.md.

mod admission;
pub mod budget;
pub mod cards;
pub mod degradation;
pub mod demand;
mod listener;
pub mod mesh;
mod openai;
pub mod pipeline;
pub mod protocol;
pub mod recorder;
mod resume_guard;
pub mod routing;
pub mod stack;
pub mod stream;
pub mod texts;
mod ws;

pub use admission::UserLimits;

use std::{
    future::IntoFuture,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    Json, Router,
    extract::{Query as UrlQuery, State, WebSocketUpgrade},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use mangaassist_auth::JwtKey;
use mangaassist_client::MeshClients;
use mangaassist_config::{Config, LimitBackend, ResumeBackend};
use mangaassist_embedding::QueryEmbedder;
use mangaassist_resilience::KeyedLimiter;
use mangaassist_resume::{InMemoryResumeStore, ResumeLimits, ResumeStore};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use mesh::Mesh;
pub use pipeline::{Orchestrator, Query};
pub use ws::{CLOSE_IDLE, CLOSE_SERVICE_RESTART};

/// Hard cap on one WebSocket message before tungstenite drops the connection; messages between
/// `gateway.max_frame_bytes` and this get an error frame and the connection stays usable.
const HARD_MESSAGE_LIMIT: usize = 1024 * 1024;

/// Users tracked by the per-user rate limiter before the longest-idle ones are forgotten.
const MAX_LIMITED_USERS: usize = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway server failed: {0}")]
    Serve(std::io::Error),
    #[error("gateway auth: {0}")]
    Auth(#[from] mangaassist_auth::AuthError),
    #[error(
        "gateway auth: the signing secret from {source_name} was published in the MangaAssist \
         repository, so anyone can mint tokens with it; use a private one (e.g. openssl rand -hex \
         32), or leave gateway.auth.secret empty and delete the file to have a fresh one created"
    )]
    PublishedSecret { source_name: String },
    #[error("gateway SLO settings: {0}")]
    Slo(#[from] mangaassist_slo::SloError),
    #[error("gateway recording: {0}")]
    Recorder(#[from] recorder::RecorderError),
    #[error("gateway resume buffer: {0}")]
    Resume(#[from] mangaassist_resume::ResumeError),
    #[error("gateway shared rate limit: {0}")]
    RateLimit(#[from] mangaassist_redis::ConnectError),
}

/// Buffer limits from `gateway.stream`.
pub fn resume_limits(config: &Config) -> ResumeLimits {
    let st = &config.gateway.stream;
    ResumeLimits {
        keep_after_done: Duration::from_secs(st.resume_keep_seconds),
        ttl: Duration::from_secs(st.resume_ttl_seconds),
        max_streams: st.resume_max_streams,
        max_bytes_per_stream: 1024 * 1024,
        max_total_bytes: st.resume_max_bytes,
    }
}

/// The resume buffer `gateway.resume_backend` asks for: `None` = this gateway's own memory
/// (what [`Gateway::new`] sets up), else a Redis-backed store shared by every gateway using
/// the same `redis` section, connected now so a wrong URL fails at start.
pub async fn connect_resume_store(
    config: &Config,
) -> Result<Option<Arc<dyn ResumeStore>>, GatewayError> {
    match config.gateway.resume_backend {
        ResumeBackend::Redis => {
            let store =
                mangaassist_resume::RedisResumeStore::connect(&config.redis, resume_limits(config))
                    .await?;
            Ok(Some(Arc::new(store)))
        }
        ResumeBackend::Memory => Ok(None),
    }
}

fn local_user_limits(config: &Config) -> KeyedLimiter {
    KeyedLimiter::new(
        config.gateway.limits.user_messages_per_minute,
        Duration::from_secs(60),
        MAX_LIMITED_USERS,
    )
}

/// The per-user message limit `gateway.limits.backend` asks for: `None` = this gateway's own
/// count (what [`Gateway::new`] sets up), else one counted in Redis for every gateway using the
/// same `redis` section, connected now so a wrong URL fails at start.
pub async fn connect_user_limits(
    config: &Config,
) -> Result<Option<admission::UserLimits>, GatewayError> {
    let per_minute = config.gateway.limits.user_messages_per_minute;
    match config.gateway.limits.backend {
        // 0 = unlimited: nothing to share.
        LimitBackend::Redis if per_minute > 0 => {
            let redis = mangaassist_redis::GcraLimiter::connect(
                &config.redis,
                "mangaassist:limit:user:",
                per_minute,
                Duration::from_secs(60),
            )
            .await?;
            Ok(Some(admission::UserLimits::Shared {
                redis: Arc::new(redis),
                fallback: local_user_limits(config),
            }))
        }
        LimitBackend::Redis | LimitBackend::Memory => Ok(None),
    }
}

/// Secrets the repository has shipped at some point (the once-committed
/// `.mangaassist/state/jwt.secret`, the old compose default, the old k8s placeholder): they are
/// in every clone and in the history, so they authenticate no one.
const PUBLISHED_SECRETS: [&str; 3] = [
    "7f00ec2a0ab1255b1bd129973b2ad08ed5cc749b6114ed98d49d5213598ff985",
    "change-me-dev-only-secret-0123456789abcdef",
    "CHANGE-ME-placeholder-jwt-secret-not-for-production",
];

/// The HMAC secret the gateway verifies tokens with: `gateway.auth.secret`, else the secret
/// file (created with a random secret on first use; refused if others can read it or git
/// tracks it). A secret the repository has published is refused either way.
pub fn resolve_secret(config: &Config) -> Result<Vec<u8>, GatewayError> {
    let a = &config.gateway.auth;
    let (secret, source_name) = if a.secret.is_empty() {
        let path = secret_path(config);
        let secret = mangaassist_auth::load_or_create_secret(&path)?;
        (secret, path.display().to_string())
    } else {
        (
            a.secret.as_bytes().to_vec(),
            "gateway.auth.secret".to_owned(),
        )
    };
    let trimmed = secret.trim_ascii();
    if PUBLISHED_SECRETS.iter().any(|p| p.as_bytes() == trimmed) {
        return Err(GatewayError::PublishedSecret { source_name });
    }
    Ok(secret)
}

/// The key the gateway signs and verifies with: the secret of [`resolve_secret`], issuing and
/// requiring `gateway.auth.issuer` as `iss` and `gateway.auth.audience` as `aud`.
pub fn signing_key(config: &Config) -> Result<JwtKey, GatewayError> {
    let a = &config.gateway.auth;
    Ok(JwtKey::new(&resolve_secret(config)?)?
        .with_issuer(a.issuer.clone())
        .with_audience(a.audience.clone()))
}

/// Where the secret file is (whether or not it exists yet).
pub fn secret_path(config: &Config) -> PathBuf {
    let a = &config.gateway.auth;
    if a.secret_file.as_os_str().is_empty() {
        config.data.state_dir.join("jwt.secret")
    } else {
        a.secret_file.clone()
    }
}

/// The longest a token carried in a `/ws` URL may still be valid: URLs end up in access logs,
/// proxies and browser history, so a token there must be a ticket that is soon useless.
pub const URL_TOKEN_MAX_SECONDS: u64 = 300;

/// Lifetime of the tickets `POST /ws-ticket` issues: long enough to open one socket.
pub const TICKET_SECONDS: u64 = 60;

/// Issues a short-lived ticket for `user`: a token `/ws` accepts in its URL.
pub fn issue_ticket(config: &Config, user: &str) -> Result<String, GatewayError> {
    let key = signing_key(config)?;
    Ok(key.issue(user, Duration::from_secs(TICKET_SECONDS), SystemTime::now())?)
}

/// Issues a token for `user` with the configured lifetime (`mangaassist token`, `up`).
pub fn issue_token(config: &Config, user: &str) -> Result<String, GatewayError> {
    let key = signing_key(config)?;
    Ok(key.issue(
        user,
        Duration::from_secs(config.gateway.auth.token_ttl_seconds),
        SystemTime::now(),
    )?)
}

#[derive(Clone)]
pub struct Gateway {
    shared: Arc<ws::Shared>,
    auth: Option<Arc<JwtKey>>,
    leeway: Duration,
    shutdown: CancellationToken,
    grace: Duration,
}

#[derive(Debug, Deserialize)]
struct ConnectParams {
    session_id: Option<String>,
    user_id: Option<String>,
    store_id: Option<String>,
    token: Option<String>,
}

const CHAT_PAGE: &str = include_str!("../static/chat.html");

impl Gateway {
    /// `embedder` = `None` lets each daemon embed the message itself.
    pub fn new(
        config: &Config,
        clients: MeshClients,
        embedder: Option<QueryEmbedder>,
        shutdown: CancellationToken,
    ) -> Result<Self, GatewayError> {
        let g = &config.gateway;
        let resume: Arc<dyn ResumeStore> =
            Arc::new(InMemoryResumeStore::new(resume_limits(config)));
        let auth = if g.auth.required {
            Some(Arc::new(signing_key(config)?))
        } else {
            tracing::warn!(
                "gateway.auth.required = false: anyone can connect as any user (local use only)"
            );
            None
        };
        let orchestrator = Arc::new(Orchestrator::new(config, Arc::new(clients), embedder)?);
        Ok(Self {
            shared: Arc::new(ws::Shared {
                orchestrator,
                resume,
                user_limits: admission::UserLimits::Local(local_user_limits(config)),
                answers: TaskTracker::new(),
                sockets: TaskTracker::new(),
                cut: CancellationToken::new(),
                user_connections: Arc::default(),
            }),
            auth,
            leeway: Duration::from_secs(g.auth.leeway_seconds),
            shutdown,
            grace: Duration::from_secs(config.mesh.shutdown_grace_seconds),
        })
    }

    /// Replaces the per-user message limit, e.g. with one shared by several gateways.
    pub fn with_user_limits(mut self, limits: admission::UserLimits) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.user_limits = limits;
        }
        self
    }

    /// Replaces the resume buffer, e.g. with one shared by several gateways so a client can
    /// resume on any of them.
    /// A shared resume buffer (Redis), behind the `resume_buffer` circuit breaker so an
    /// outage costs answers their resumability, not their latency.
    pub fn with_resume_store(mut self, store: Arc<dyn ResumeStore>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            let breaker = shared.orchestrator.breakers.resume_buffer.clone();
            shared.resume = Arc::new(resume_guard::GuardedResumeStore::new(store, breaker));
        }
        self
    }

    pub fn orchestrator(&self) -> &Arc<Orchestrator> {
        &self.shared.orchestrator
    }

    /// The public routes: the chat page, `/ws`, the OpenAI endpoint and `/healthz`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(|| async { Html(CHAT_PAGE) }))
            .route("/ws", get(ws_upgrade))
            .route("/ws-ticket", axum::routing::post(ws_ticket))
            .route(
                "/v1/chat/completions",
                axum::routing::post(openai::chat_completions),
            )
            .route("/v1/models", get(openai::models))
            .route("/stores", get(stores))
            .route("/healthz", get(healthz))
            .with_state(self.clone())
    }

    /// The operators' routes, served on `gateway.internal_listen` only: they show load,
    /// routing and failures that are nobody else's business.
    pub fn internal_router(&self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/slo", get(slo_status))
            .route("/routing", get(routing_status))
            .route("/breakers", get(breakers_status))
            .route(
                "/metrics",
                get(|State(gw): State<Gateway>| async move {
                    gw.shared
                        .orchestrator
                        .slo
                        .publish_metrics(std::time::Instant::now());
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        mangaassist_telemetry::render_metrics(),
                    )
                }),
            )
            .with_state(self.clone())
    }

    /// Serves until shutdown; then stops accepting, lets answers in flight finish, tells
    /// clients to reconnect (1012), and saves pending turns, cache writes and recordings, all
    /// within the grace period. Answers still running when it is over are cut and marked
    /// `stream_interrupted` in the resume buffer.
    /// `internal` serves [`Gateway::internal_router`]; `None` serves it nowhere.
    pub async fn serve(
        self,
        listener: TcpListener,
        internal: Option<TcpListener>,
    ) -> Result<(), GatewayError> {
        mangaassist_telemetry::install_metrics();
        let internal = internal.map(|l| {
            let stop = self.shutdown.clone();
            axum::serve(l, self.internal_router())
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .into_future()
        });
        let settings = &self.shared.orchestrator.settings;
        let limits = listener::ListenerLimits {
            max_connections: settings.limits.max_connections as usize,
            header_read_timeout: Duration::from_millis(settings.limits.header_read_timeout_ms),
            write_timeout: Duration::from_millis(settings.stream.write_timeout_ms),
            send_buffer_bytes: settings.stream.send_buffer_bytes,
        };
        let grace = self.grace;
        let shared = self.shared.clone();
        let shutdown = self.shutdown.clone();
        let reporter = demand_reporter(shared.orchestrator.clone(), shutdown.clone());
        let connections = TaskTracker::new();
        let server = listener::serve(
            listener,
            self.router(),
            limits,
            shutdown.clone(),
            connections.clone(),
        );
        let drained = {
            let shared = shared.clone();
            // HTTP responses in flight (SSE included) and sockets end once their answers are
            // done; answers whose client already left still finish into the resume buffer, so
            // wait for those too.
            async move {
                server.await;
                connections.close();
                shared.sockets.close();
                shared.answers.close();
                connections.wait().await;
                shared.sockets.wait().await;
                shared.answers.wait().await;
            }
        };
        let internal = async move {
            if let Some(server) = internal
                && let Err(e) = server.await
            {
                tracing::warn!(error = %e, "internal listener failed");
            }
        };
        let drained = async move { tokio::join!(drained, internal) };
        tokio::select! {
            _ = drained => {}
            () = async move { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(
                    unfinished = shared.answers.len(),
                    "grace period over, cutting the answers still running"
                );
                shared.cut.cancel();
                // Cut answers only write their `stream_interrupted` and sockets their 1012:
                // a moment, not another grace period.
                let ends = async {
                    shared.answers.wait().await;
                    shared.sockets.wait().await;
                };
                if tokio::time::timeout(CUT_WAIT, ends).await.is_err() {
                    tracing::warn!("sockets still open after the cut");
                }
            }
        }
        let background = shared.orchestrator.background.clone();
        background.close();
        if tokio::time::timeout(grace, background.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pending = background.len(),
                "background writes still pending at exit"
            );
        }
        // The reporter left its loop at shutdown; a report it had in flight finishes (its
        // counts are taken out of the tally). Then the answers finished in the grace period
        // are reported too.
        let _ = tokio::time::timeout(grace, reporter).await;
        let orch = &shared.orchestrator;
        if tokio::time::timeout(grace, orch.demand.report(orch.mesh.as_ref()))
            .await
            .is_err()
        {
            tracing::warn!("last demand report timed out");
        }
        if let Some(r) = &shared.orchestrator.recorder {
            r.close();
        }
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Reports demand every `gateway.demand_report_seconds` until shutdown.
fn demand_reporter(
    orch: Arc<pipeline::Orchestrator>,
    shutdown: CancellationToken,
) -> tokio_util::task::AbortOnDropHandle<()> {
    #[allow(
        clippy::disallowed_methods,
        reason = "owned by the handle: `serve` stops it and makes the last report itself"
    )]
    let task = tokio::spawn(async move {
        let every = orch.settings.demand_report_seconds;
        if every == 0 {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: nothing to report yet.
        tick.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => orch.demand.report(orch.mesh.as_ref()).await,
            }
        }
    });
    tokio_util::task::AbortOnDropHandle::new(task)
}

/// How long cut answers and their sockets get to write their last frames after the grace
/// period.
const CUT_WAIT: Duration = Duration::from_secs(1);

async fn healthz(State(gw): State<Gateway>) -> impl IntoResponse {
    if gw.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "gateway draining\n")
    } else {
        (StatusCode::OK, "gateway ok\n")
    }
}

/// The storefronts this gateway serves, for the page's store picker and language: public
/// settings only (cost centres and tone stay inside).
async fn stores(State(gw): State<Gateway>) -> impl IntoResponse {
    let settings = &gw.shared.orchestrator.settings;
    let stores: Vec<serde_json::Value> = settings
        .stores
        .iter()
        .map(|id| {
            let front = settings.storefront(id);
            serde_json::json!({
                "id": id,
                "name": front.name,
                "locale": mangaassist_domain::Lang::parse(&front.locale).unwrap_or_default().tag(),
                "currency": front.currency,
            })
        })
        .collect();
    Json(serde_json::json!({ "default_store": settings.default_store, "stores": stores }))
}

async fn slo_status(State(gw): State<Gateway>) -> impl IntoResponse {
    let slo = &gw.shared.orchestrator.slo;
    let now = std::time::Instant::now();
    slo.publish_metrics(now);
    Json(slo.status(now))
}

async fn routing_status(State(gw): State<Gateway>) -> impl IntoResponse {
    Json(gw.shared.orchestrator.router.status())
}

async fn breakers_status(State(gw): State<Gateway>) -> impl IntoResponse {
    Json(gw.shared.orchestrator.breakers.snapshot())
}

fn refuse(status: StatusCode, reason: &'static str, message: String) -> Response {
    metrics::counter!("websocket_refused_total", "reason" => reason).increment(1);
    (
        status,
        Json(serde_json::json!({ "error": reason, "message": message })),
    )
        .into_response()
}

/// `POST /ws-ticket` with `Authorization: Bearer <JWT>`: a ticket (a token valid for
/// [`TICKET_SECONDS`]) for a browser to put in the `/ws` URL, since it cannot set headers on
/// a WebSocket.
async fn ws_ticket(headers: HeaderMap, State(gw): State<Gateway>) -> Response {
    let Some(key) = gw.auth.clone() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "gateway.auth.required is off: connect with `?user_id=`".into(),
        );
    };
    let sub = match gw.verified_user(&headers, None) {
        Ok(Some(sub)) => sub,
        Ok(None) | Err(admission::AuthRefusal::Missing) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing token: send `Authorization: Bearer <JWT>`".into(),
            );
        }
        Err(admission::AuthRefusal::Invalid(e)) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("invalid token: {e}"),
            );
        }
        Err(admission::AuthRefusal::LongLivedInUrl) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "token_in_url",
                "send the token as `Authorization: Bearer <JWT>`".into(),
            );
        }
    };
    match key.issue(&sub, Duration::from_secs(TICKET_SECONDS), SystemTime::now()) {
        Ok(ticket) => (
            [(http::header::CACHE_CONTROL, "no-store")],
            Json(serde_json::json!({ "ticket": ticket, "expires_in": TICKET_SECONDS })),
        )
            .into_response(),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot issue a ticket: {e}"),
        ),
    }
}

async fn ws_upgrade(
    ws: WebSocketUpgrade,
    UrlQuery(params): UrlQuery<ConnectParams>,
    headers: HeaderMap,
    State(gw): State<Gateway>,
) -> Response {
    if gw.shutdown.is_cancelled() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "gateway is shutting down; connect to another instance".into(),
        );
    }
    let settings = &gw.shared.orchestrator.settings;
    let user_id = match gw.verified_user(&headers, params.token.as_deref()) {
        Ok(Some(sub)) => {
            if let Some(u) = params.user_id.as_deref().filter(|u| !u.is_empty())
                && u != sub
            {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "`user_id` does not match the token's subject".into(),
                );
            }
            sub
        }
        Ok(None) => params
            .user_id
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| settings.default_user.clone()),
        Err(admission::AuthRefusal::Missing) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing token: pass `Authorization: Bearer <JWT>` (`mangaassist token --user U` issues one), or a ticket from `POST /ws-ticket` as `?token=`".into(),
            );
        }
        Err(admission::AuthRefusal::LongLivedInUrl) => {
            metrics::counter!("websocket_refused_total", "reason" => "token_in_url").increment(1);
            return (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({
                    "error": "unauthorized",
                    "token_error": "token_in_url",
                    "message": format!(
                        "a token in the URL must expire within {URL_TOKEN_MAX_SECONDS} s: send it as `Authorization: Bearer <JWT>`, or get a ticket from `POST /ws-ticket`"
                    ),
                })),
            )
                .into_response();
        }
        Err(admission::AuthRefusal::Invalid(e)) => {
            metrics::counter!("websocket_refused_total", "reason" => "unauthorized").increment(1);
            // `token_error` tells a client which check failed (e.g. `bad_audience`).
            return (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({
                    "error": "unauthorized",
                    "token_error": e.code(),
                    "message": format!("invalid token: {e}"),
                })),
            )
                .into_response();
        }
    };
    let session_id = params.session_id.filter(|s| !s.trim().is_empty());
    let store_id = params.store_id.filter(|s| !s.trim().is_empty());
    if let Err(e) = protocol::check_scope_ids(session_id.as_deref(), store_id.as_deref()) {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", e.message);
    }
    let max_per_user = gw
        .shared
        .orchestrator
        .settings
        .limits
        .max_connections_per_user;
    let Some(slot) = gw.shared.connection_slot(&user_id, max_per_user) else {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            format!(
                "{max_per_user} connections of this user are open on this gateway already; close one"
            ),
        );
    };
    let conn = ws::Connection {
        session_id: session_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        user_id,
        store_id: store_id.unwrap_or_else(|| settings.default_store.clone()),
    };
    let shared = gw.shared.clone();
    let shutdown = gw.shutdown.clone();
    let sockets = shared.sockets.clone();
    // Small buffers: an idle socket should cost a few KiB, not tungstenite's default 128 KiB.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(HARD_MESSAGE_LIMIT)
        .max_frame_size(HARD_MESSAGE_LIMIT)
        .on_upgrade(move |socket| {
            sockets.track_future(ws::run(socket, conn, shared, shutdown, slot))
        })
}
