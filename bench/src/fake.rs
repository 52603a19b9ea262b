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
use serde_json::{Value, json};
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
    pub errors: HashMap<String, String>,
    pub classify: Classifier,
    /// Refuse the upgrade with HTTP 401 unless the URL carries `token=<this>`.
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
        let ok = req.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|kv| kv.strip_prefix("token=") == Some(token.as_str()))
        });
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
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(Message::text(frame)).await.is_err() {
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
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            let _ = tx.send(
                json!({"type":"error","code":"bad_json","message":"malformed JSON"}).to_string(),
            );
            continue;
        };
        match frame.get("action").and_then(Value::as_str) {
            Some("ping") => {
                let _ = tx.send(json!({"type":"pong"}).to_string());
            }
            Some("query") => {
                seen.queries.fetch_add(1, Ordering::Relaxed);
                let session = frame
                    .get("session_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                *seen
                    .sessions
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(session)
                    .or_default() += 1;
                let id = frame
                    .get("message_id")
                    .and_then(Value::as_str)
                    .unwrap_or("m")
                    .to_string();
                let text = frame
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let intent = (cfg.classify)(&text);
                if let Some(code) = cfg.errors.get(&intent) {
                    let _ = tx.send(json!({"type":"error","message_id":id,"code":code,"message":"fake refusal","retry_after_ms":1000}).to_string());
                    continue;
                }
                let delay = cfg.delays.get(&intent).copied().unwrap_or_default();
                let tx = tx.clone();
                let chunks = cfg.chunks;
                if delay.is_zero() {
                    answer(&tx, &id, &intent, chunks, received, Duration::ZERO);
                } else {
                    answers.spawn(async move {
                        let _ = tx.send(json!({"type":"status","message_id":id,"session_id":"s","text":"thinking"}).to_string());
                        let _ = tx.send(json!({"type":"heartbeat","in_flight":1}).to_string());
                        tokio::time::sleep(delay).await;
                        answer(&tx, &id, &intent, chunks, received, delay);
                    });
                }
            }
            _ => {
                let _ = tx.send(
                    json!({"type":"error","code":"unknown_action","message":"query or ping"})
                        .to_string(),
                );
            }
        }
        while answers.try_join_next().is_some() {}
    }
    answers.shutdown().await;
    drop(tx);
    let _ = writer.await;
}

fn answer(
    tx: &mpsc::UnboundedSender<String>,
    id: &str,
    intent: &str,
    chunks: u32,
    received: Instant,
    delay: Duration,
) {
    if delay.is_zero() {
        let _ = tx.send(
            json!({"type":"status","message_id":id,"session_id":"s","text":"thinking"}).to_string(),
        );
    }
    let first = received.elapsed().as_secs_f64() * 1e3;
    for i in 0..chunks {
        let _ = tx.send(
            json!({"type":"chunk","message_id":id,"index":i,"text":format!("w{i} ")}).to_string(),
        );
    }
    let total = received.elapsed().as_secs_f64() * 1e3;
    let d = delay.as_secs_f64() * 1e3;
    let _ = tx.send(
        json!({
            "type": "done",
            "message_id": id,
            "session_id": "s",
            "first_token_ms": first,
            "total_ms": total,
            "tokens": chunks,
            "chunks": chunks,
            "intent": intent,
            "model": "fake",
            "cache_hit": false,
            "degradation": "full",
            "trace_id": "0",
            "product_ids": [],
            "stages": [
                {"stage": "intent", "start_ms": 0.0, "duration_ms": 0.01, "budget_ms": 35, "outcome": "ok"},
                {"stage": "cache", "start_ms": 0.0, "duration_ms": 0.005, "budget_ms": 2, "outcome": "miss"},
                {"stage": "generation", "start_ms": 0.01, "duration_ms": d + 0.01, "budget_ms": 400, "outcome": "ok"},
                {"stage": "streaming", "start_ms": first, "duration_ms": (total - first).max(0.0), "budget_ms": null, "outcome": "ok"}
            ]
        })
        .to_string(),
    );
}
