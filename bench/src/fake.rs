//! A minimal in-process gateway speaking the chat protocol: every query gets `status`, a few
//! `chunk`s and `done` (with stages), optionally after a per-intent delay. It measures the
//! benchmark client's own ceiling and lets tests drive the client without the mesh.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use mangaassist_protocol::{ClientFrame, Done, ErrorCode, ServerFrame, StageTiming};
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle, task::JoinSet};
use tokio_tungstenite::tungstenite::{
    Message,
    handshake::server::{ErrorResponse, Request, Response},
    http::StatusCode,
};

use crate::{conn::ws_config, queries::strip_unique};

/// Maps a query text to its intent.
pub type Classifier = Arc<dyn Fn(&str) -> String + Send + Sync>;

#[derive(Clone)]
pub struct FakeConfig {
    /// Chunk frames per answer.
    pub chunks: u32,
    /// Extra delay before the first chunk, per intent.
    pub delays: HashMap<String, Duration>,
    /// Answer queries of these intents with an `error` frame of this code instead.
    pub errors: HashMap<String, ErrorCode>,
    pub classify: Classifier,
    /// Refuse the upgrade with HTTP 401 unless the request carries this token
    /// (`Authorization: Bearer`, or `token=` in the URL).
    pub require_token: Option<String>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            chunks: 4,
            delays: HashMap::new(),
            errors: HashMap::new(),
            classify: Arc::new(|_| "unknown".to_string()),
            require_token: None,
        }
    }
}

impl FakeConfig {
    /// Classifies by looking the text (without a `--unique` suffix) up in labelled pairs.
    pub fn with_labels(mut self, pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(intent, text)| (text, intent))
            .collect();
        self.classify = Arc::new(move |t: &str| {
            map.get(strip_unique(t).trim())
                .cloned()
                .unwrap_or_else(|| "unknown".to_string())
        });
        self
    }
}

/// A running fake; stops (with all its connections) when dropped.
pub struct FakeGateway {
    pub addr: SocketAddr,
    seen: Arc<Seen>,
    task: JoinHandle<()>,
}

/// What the fake received.
#[derive(Default)]
struct Seen {
    queries: AtomicU64,
    /// Queries per `session_id` field (`""` for queries without one).
    sessions: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl FakeGateway {
    /// Binds `127.0.0.1:0` and serves.
    pub async fn start(cfg: FakeConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Ok(Self::serve(listener, cfg))
    }

    pub fn serve(listener: TcpListener, cfg: FakeConfig) -> Self {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let seen = Arc::new(Seen::default());
        let task = tokio::spawn(accept_loop(listener, Arc::new(cfg), seen.clone()));
        Self { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Queries received so far.
    pub fn queries(&self) -> u64 {
        self.seen.queries.load(Ordering::Relaxed)
    }

    /// Queries received per `session_id` field (`""`: the query named none).
    pub fn sessions(&self) -> std::collections::BTreeMap<String, u64> {
        self.seen
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Serves until the task ends (it does not, unless the listener fails).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, cfg: Arc<FakeConfig>, seen: Arc<Seen>) {
    // Dropping the set (when this task is aborted) aborts every connection.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(connection(stream, cfg.clone(), seen.clone()));
                }
                // Out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn connection(stream: tokio::net::TcpStream, cfg: Arc<FakeConfig>, seen: Arc<Seen>) {
    let required = cfg.require_token.clone();
    // The handshake callback's signature is tungstenite's, large error type included.
    #[allow(clippy::result_large_err)]
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let Some(token) = &required else {
            return Ok(resp);
        };
        let in_url = req.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|kv| kv.strip_prefix("token=") == Some(token.as_str()))
        });
        let in_header = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            == Some(token.as_str());
        let ok = in_url || in_header;
        if ok {
            Ok(resp)
        } else {
            let mut refusal = ErrorResponse::new(Some("bad token".to_string()));
            *refusal.status_mut() = StatusCode::UNAUTHORIZED;
            Err(refusal)
        }
    };
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config())).await
    else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<ServerFrame>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(Message::text(frame.to_json())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut answers = JoinSet::new();
    while let Some(Ok(msg)) = source.next().await {
        let received = Instant::now();
        let Message::Text(text) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        let frame = match mangaassist_protocol::parse_client_frame(&text) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(ServerFrame::error(None, e.code, e.message));
                continue;
            }
        };
        match frame {
            ClientFrame::Ping {} => {
                let _ = tx.send(ServerFrame::Pong);
            }
            ClientFrame::History { session_id, .. } => {
                // The fake keeps no conversations.
                let _ = tx.send(ServerFrame::History {
                    session_id: session_id.unwrap_or_default(),
                    turns: vec![],
                });
            }
            ClientFrame::Query {
                text,
                session_id,
                message_id,
                ..
            } => {
                seen.queries.fetch_add(1, Ordering::Relaxed);
                *seen
                    .sessions
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(session_id.unwrap_or_default())
                    .or_default() += 1;
                let id = message_id.unwrap_or_else(|| "m".to_string());
                let intent = (cfg.classify)(&text);
                if let Some(&code) = cfg.errors.get(&intent) {
                    let _ = tx.send(ServerFrame::Error {
                        message_id: Some(id),
                        code,
                        message: "fake refusal".into(),
                        retry_after_ms: Some(1000),
                    });
                    continue;
                }
                let delay = cfg.delays.get(&intent).copied().unwrap_or_default();
                let tx = tx.clone();
                let chunks = cfg.chunks;
                if delay.is_zero() {
                    answer(&tx, &id, &intent, chunks, received, Duration::ZERO);
                } else {
                    answers.spawn(async move {
                        let _ = tx.send(status(&id));
                        let _ = tx.send(ServerFrame::Heartbeat { in_flight: 1 });
                        tokio::time::sleep(delay).await;
                        answer(&tx, &id, &intent, chunks, received, delay);
                    });
                }
            }
            ClientFrame::Resume { .. } | ClientFrame::Cancel { .. } => {
                let _ = tx.send(ServerFrame::error(
                    None,
                    ErrorCode::UnknownAction,
                    "query or ping",
                ));
            }
        }
        while answers.try_join_next().is_some() {}
    }
    answers.shutdown().await;
    drop(tx);
    let _ = writer.await;
}

fn status(id: &str) -> ServerFrame {
    ServerFrame::Status {
        message_id: id.to_string(),
        session_id: "s".into(),
        text: "thinking".into(),
        phase: Some(mangaassist_protocol::Phase::Understanding),
        intent: None,
        lang: "en".into(),
    }
}

fn answer(
    tx: &mpsc::UnboundedSender<ServerFrame>,
    id: &str,
    intent: &str,
    chunks: u32,
    received: Instant,
    delay: Duration,
) {
    if delay.is_zero() {
        let _ = tx.send(status(id));
    }
    let first = received.elapsed().as_secs_f64() * 1e3;
    for i in 0..chunks {
        let _ = tx.send(ServerFrame::Chunk {
            message_id: id.to_string(),
            index: i,
            text: format!("w{i} "),
        });
    }
    let total = received.elapsed().as_secs_f64() * 1e3;
    let d = delay.as_secs_f64() * 1e3;
    let stage =
        |stage: &str, start_ms: f64, duration_ms: f64, budget_ms, outcome: &str| StageTiming {
            stage: stage.to_string(),
            start_ms,
            duration_ms,
            budget_ms,
            outcome: outcome.to_string(),
        };
    let _ = tx.send(ServerFrame::Done(Box::new(Done {
        message_id: id.to_string(),
        session_id: "s".into(),
        // Whole milliseconds, as the gateway reports them.
        first_token_ms: first as u64,
        total_ms: total as u64,
        tokens: chunks,
        chunks,
        intent: intent.to_string(),
        model: "fake".into(),
        cache_hit: false,
        served_from: "live".into(),
        stock_removed: vec![],
        degradation: "full".into(),
        trace_id: "0".into(),
        product_ids: vec![],
        tier: String::new(),
        route: String::new(),
        stages: vec![
            stage("intent", 0.0, 0.01, Some(35), "ok"),
            stage("cache", 0.0, 0.005, Some(2), "miss"),
            stage("generation", 0.01, d + 0.01, Some(400), "ok"),
            stage("streaming", first, (total - first).max(0.0), None, "ok"),
        ],
    })));
}
