//! The WebSocket gateway: serves the chat page and `/ws`, validates every frame, and runs the
//! per-message orchestrator (phase-1 fan-out under deadlines, cache short-circuit, retrieval,
//! streamed generation, degradation ladder). Protocol: docs/protocol.md.

pub mod degradation;
pub mod orchestrator;
pub mod protocol;
pub mod texts;
mod ws;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Query as UrlQuery, State, WebSocketUpgrade},
    http::StatusCode,
    response::{Html, IntoResponse},
    routing::get,
    serve::ListenerExt,
};
use mangaassist_client::MeshClients;
use mangaassist_config::Config;
use mangaassist_embedding::QueryEmbedder;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use orchestrator::{Orchestrator, Query};
pub use ws::CLOSE_SERVICE_RESTART;

/// Hard cap on one WebSocket message before tungstenite drops the connection; messages between
/// `gateway.max_frame_bytes` and this get an error frame and the connection stays usable.
const HARD_MESSAGE_LIMIT: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway server failed: {0}")]
    Serve(std::io::Error),
}

#[derive(Clone)]
pub struct Gateway {
    orchestrator: Arc<Orchestrator>,
    shutdown: CancellationToken,
    grace: Duration,
}

#[derive(Debug, Deserialize)]
struct ConnectParams {
    session_id: Option<String>,
    user_id: Option<String>,
    store_id: Option<String>,
}

const CHAT_PAGE: &str = include_str!("../static/chat.html");

impl Gateway {
    /// `embedder` = `None` lets each daemon embed the message itself.
    pub fn new(
        config: &Config,
        clients: MeshClients,
        embedder: Option<QueryEmbedder>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            orchestrator: Arc::new(Orchestrator {
                settings: config.gateway.clone(),
                clients,
                embedder,
                background: TaskTracker::new(),
            }),
            shutdown,
            grace: Duration::from_secs(config.mesh.shutdown_grace_seconds),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(|| async { Html(CHAT_PAGE) }))
            .route("/ws", get(ws_upgrade))
            .route("/healthz", get(healthz))
            .route(
                "/metrics",
                get(|| async {
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        mangaassist_telemetry::render_metrics(),
                    )
                }),
            )
            .with_state(self.clone())
    }

    /// Serves until shutdown; then stops accepting, lets answers in flight finish and saves
    /// pending turns and cache writes, all within the grace period.
    pub async fn serve(self, listener: TcpListener) -> Result<(), GatewayError> {
        mangaassist_telemetry::install_metrics();
        let listener = listener.tap_io(|tcp| {
            // Small frames must leave at once (Nagle + delayed ACK costs ~40 ms).
            let _ = tcp.set_nodelay(true);
        });
        let shutdown = self.shutdown.clone();
        let grace = self.grace;
        let background = self.orchestrator.background.clone();
        let server = axum::serve(listener, self.router())
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        let shutdown = self.shutdown.clone();
        tokio::select! {
            r = server => r.map_err(GatewayError::Serve)?,
            () = async move { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("grace period over, closing remaining connections");
            }
        }
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
        tracing::info!("gateway stopped");
        Ok(())
    }
}

async fn healthz(State(gw): State<Gateway>) -> impl IntoResponse {
    if gw.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "gateway draining\n")
    } else {
        (StatusCode::OK, "gateway ok\n")
    }
}

async fn ws_upgrade(
    ws: WebSocketUpgrade,
    UrlQuery(params): UrlQuery<ConnectParams>,
    State(gw): State<Gateway>,
) -> impl IntoResponse {
    let settings = &gw.orchestrator.settings;
    let conn = ws::Connection {
        session_id: params
            .session_id
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        user_id: params
            .user_id
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| settings.default_user.clone()),
        store_id: params
            .store_id
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| settings.default_store.clone()),
    };
    let orch = gw.orchestrator.clone();
    let shutdown = gw.shutdown.clone();
    // Small buffers: an idle socket should cost a few KiB, not tungstenite's default 128 KiB.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(HARD_MESSAGE_LIMIT)
        .max_frame_size(HARD_MESSAGE_LIMIT)
        .on_upgrade(move |socket| ws::run(socket, conn, orch, shutdown))
}
