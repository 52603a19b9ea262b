//! One WebSocket connection: a reader loop that validates frames, applies rate limits and
//! starts answers, resumes and cancels; and a writer task that owns the socket's sending half
//! and sends heartbeats while answers are in flight.
//!
//! Close codes: 1000 normal, 1001 idle timeout, 1009 message over the hard limit (tungstenite),
//! 1012 server restarting (reconnect, then `resume` any answer that was cut).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use mangaassist_resilience::TokenBucket;
use mangaassist_resume::{BufferedFrame, ResumeError, ResumeStore, StreamKey, replay_stream};
use parking_lot::Mutex;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    pipeline::{Orchestrator, Query},
    protocol::{ClientFrame, ErrorCode, FrameError, ServerFrame, parse_client_frame},
    stream::{AnswerOutput, Outgoing},
};

/// Close code sent when the gateway shuts down: "service restart", reconnect later (RFC 6455).
pub const CLOSE_SERVICE_RESTART: u16 = 1012;
/// Close code for connections idle longer than `gateway.stream.idle_timeout_seconds`.
pub const CLOSE_IDLE: u16 = 1001;

/// The authenticated identity and defaults of one connection.
pub struct Connection {
    pub session_id: String,
    pub user_id: String,
    pub store_id: String,
}

/// What every connection of a gateway shares.
pub struct Shared {
    pub orchestrator: Arc<Orchestrator>,
    pub resume: Arc<dyn ResumeStore>,
    pub user_limits: crate::admission::UserLimits,
    /// Every answer and resume task, so shutdown can wait for them (grace-bounded).
    pub answers: TaskTracker,
}

/// The refusal of a query or resume beyond the connection's answers in flight.
fn busy(message_id: String, max_in_flight: usize) -> Outgoing {
    Outgoing::Frame(ServerFrame::error(
        Some(message_id),
        ErrorCode::Busy,
        format!("{max_in_flight} answers already in flight on this connection"),
    ))
}

fn rate_limited(message_id: Option<String>, what: &str, retry: Duration) -> Outgoing {
    Outgoing::Frame(ServerFrame::Error {
        message_id,
        code: ErrorCode::RateLimited,
        message: format!("{what}; retry in {} ms", retry.as_millis()),
        retry_after_ms: Some(retry.as_millis().max(1) as u64),
    })
}

pub async fn run(
    socket: WebSocket,
    conn: Connection,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    metrics::gauge!("websocket_connections").increment(1.0);
    let settings = shared.orchestrator.settings.clone();
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(256);
    let in_flight = Arc::new(AtomicU32::new(0));
    let writer_stop = CancellationToken::new();
    #[allow(
        clippy::disallowed_methods,
        reason = "the writer is joined (`writer.await`) before `run` returns, and ends when the reader drops its sender, so it never outlives the connection"
    )]
    let writer = {
        let stop = writer_stop.clone();
        let in_flight = in_flight.clone();
        let every = Duration::from_secs(settings.stream.heartbeat_seconds);
        tokio::spawn(async move {
            let mut heartbeat =
                tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let encode = |o: Outgoing| match o {
                Outgoing::Frame(f) => Message::Text(f.to_json().into()),
                Outgoing::Raw(s) => Message::Text(s.into()),
                Outgoing::Close(code, reason) => Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })),
            };
            loop {
                // Biased, stop first: on drain the reader drops its sender right after
                // cancelling, and a closed channel must not win over the 1012 goodbye.
                tokio::select! {
                    biased;
                    () = stop.cancelled() => {
                        // Flush what is queued, then say goodbye with a reconnect hint.
                        while let Ok(o) = rx.try_recv() {
                            if sink.send(encode(o)).await.is_err() {
                                break;
                            }
                        }
                        let _ = sink
                            .send(Message::Close(Some(CloseFrame {
                                code: CLOSE_SERVICE_RESTART,
                                reason: "server restarting; reconnect and resume".into(),
                            })))
                            .await;
                        break;
                    }
                    out = rx.recv() => match out {
                        Some(o) => {
                            let closing = matches!(o, Outgoing::Close(..));
                            if sink.send(encode(o)).await.is_err() || closing {
                                break;
                            }
                        }
                        None => break,
                    },
                    _ = heartbeat.tick() => {
                        let n = in_flight.load(Ordering::Relaxed);
                        if n > 0 {
                            let f = ServerFrame::Heartbeat { in_flight: n };
                            if sink.send(Message::Text(f.to_json().into())).await.is_err() {
                                break;
                            }
                            metrics::counter!("websocket_heartbeats_total").increment(1);
                        }
                    }
                }
            }
        })
    };
    let max_in_flight = settings.limits.max_in_flight as usize;
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let cancels: Arc<Mutex<HashMap<String, CancellationToken>>> = Arc::default();
    let mut conn_bucket = TokenBucket::per(
        settings.limits.connection_messages_per_second,
        Duration::from_secs(1),
    );
    let idle_limit = Duration::from_secs(settings.stream.idle_timeout_seconds);
    let max_bytes = settings.max_frame_bytes;
    let send = |o: Outgoing| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(o).await;
        }
    };
    loop {
        let msg = tokio::select! {
            m = tokio::time::timeout(idle_limit, stream.next()) => m,
            () = shutdown.cancelled() => break,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(_) => {
                if in_flight.load(Ordering::Relaxed) > 0 {
                    continue;
                }
                metrics::counter!("websocket_idle_closed_total").increment(1);
                send(Outgoing::Close(CLOSE_IDLE, "idle timeout".into())).await;
                break;
            }
        };
        let Some(Ok(msg)) = msg else { break };
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                send(Outgoing::Frame(ServerFrame::error(
                    None,
                    ErrorCode::UnsupportedFrame,
                    "binary frames are not supported; send JSON text frames",
                )))
                .await;
                continue;
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if let Err(retry) = conn_bucket.try_take(tokio::time::Instant::now()) {
            metrics::counter!("rate_limited_total", "scope" => "connection").increment(1);
            send(rate_limited(
                None,
                "more than the allowed frames per second on this connection",
                retry,
            ))
            .await;
            continue;
        }
        if text.len() > max_bytes {
            send(Outgoing::Frame(ServerFrame::error(
                None,
                ErrorCode::FrameTooLarge,
                format!(
                    "frame of {} bytes exceeds the {max_bytes}-byte limit",
                    text.len()
                ),
            )))
            .await;
            continue;
        }
        let received = Instant::now();
        let frame = match parse_client_frame(text.as_str()) {
            Ok(f) => f,
            Err(FrameError { code, message }) => {
                metrics::counter!("websocket_bad_frames_total", "code" => format!("{code:?}"))
                    .increment(1);
                send(Outgoing::Frame(ServerFrame::error(None, code, message))).await;
                continue;
            }
        };
        match frame {
            ClientFrame::Ping {} => send(Outgoing::Frame(ServerFrame::Pong)).await,
            ClientFrame::Cancel { message_id } => {
                let token = cancels.lock().get(&message_id).cloned();
                match token {
                    Some(t) => t.cancel(),
                    None => {
                        send(Outgoing::Frame(ServerFrame::error(
                            Some(message_id),
                            ErrorCode::NotFound,
                            "no answer in flight with this message_id on this connection",
                        )))
                        .await;
                    }
                }
            }
            ClientFrame::Query {
                text,
                session_id,
                store_id,
                message_id,
            } => {
                let message_id = message_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                if let Err(retry) = shared.admit(&conn.user_id).await {
                    send(rate_limited(
                        Some(message_id),
                        "message limit per user reached",
                        retry,
                    ))
                    .await;
                    continue;
                }
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    send(busy(message_id, max_in_flight)).await;
                    continue;
                };
                let query = Query {
                    message_id: message_id.clone(),
                    session_id: session_id
                        .filter(|s| !s.trim().is_empty())
                        .unwrap_or_else(|| conn.session_id.clone()),
                    user_id: conn.user_id.clone(),
                    store_id: store_id
                        .filter(|s| !s.trim().is_empty())
                        .unwrap_or_else(|| conn.store_id.clone()),
                    text,
                    received,
                };
                let answer = match shared
                    .open_answer(query, AnswerOutput::Socket(tx.clone()))
                    .await
                {
                    Ok(a) => a,
                    Err(_) => {
                        send(Outgoing::Frame(ServerFrame::error(
                            Some(message_id),
                            ErrorCode::DuplicateMessage,
                            "this message_id was already used in this session; use a new one (or `resume` it)",
                        )))
                        .await;
                        continue;
                    }
                };
                let cancel = CancellationToken::new();
                cancels.lock().insert(message_id.clone(), cancel.clone());
                let cancels = cancels.clone();
                let in_flight = in_flight.clone();
                in_flight.fetch_add(1, Ordering::Relaxed);
                answer.spawn(&shared, cancel, move || {
                    cancels.lock().remove(&message_id);
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
            ClientFrame::Resume {
                session_id,
                message_id,
                last_chunk_idx,
            } => {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    send(busy(message_id, max_in_flight)).await;
                    continue;
                };
                let key = StreamKey {
                    session_id,
                    message_id,
                };
                let after = last_chunk_idx.and_then(|i| u32::try_from(i).ok());
                let store = shared.resume.clone();
                let user = conn.user_id.clone();
                let tx = tx.clone();
                let in_flight = in_flight.clone();
                let total = Duration::from_millis(settings.deadlines.total_ms);
                in_flight.fetch_add(1, Ordering::Relaxed);
                shared.answers.spawn(async move {
                    metrics::counter!("stream_resumes_total").increment(1);
                    let replay = resume(store, key.clone(), user, after, &tx);
                    if tokio::time::timeout(total, replay).await.is_err() {
                        let _ = tx
                            .send(Outgoing::Frame(ServerFrame::error(
                                Some(key.message_id),
                                ErrorCode::StreamInterrupted,
                                "the resumed answer did not finish in time",
                            )))
                            .await;
                    }
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
        }
    }
    if shutdown.is_cancelled() {
        // Drain: answers in flight finish (the server's grace period bounds this), then the
        // client is told to reconnect with 1012.
        let _ = permits.acquire_many(max_in_flight as u32).await;
        writer_stop.cancel();
    }
    drop(tx);
    let _ = writer.await;
    metrics::gauge!("websocket_connections").decrement(1.0);
}

/// Replays the buffered frames of `key` after chunk `after`, then follows it live.
async fn resume(
    store: Arc<dyn ResumeStore>,
    key: StreamKey,
    user: String,
    after: Option<u32>,
    tx: &mpsc::Sender<Outgoing>,
) {
    let fail = |code: ErrorCode, message: String| {
        Outgoing::Frame(ServerFrame::error(
            Some(key.message_id.clone()),
            code,
            message,
        ))
    };
    let replay = replay_stream(store, key.clone(), user, after, Duration::from_secs(1));
    futures::pin_mut!(replay);
    while let Some(item) = replay.next().await {
        let out = match item {
            Ok(BufferedFrame::Chunk { json, .. } | BufferedFrame::Terminal { json }) => {
                Outgoing::Raw(json)
            }
            Err(ResumeError::Forbidden) => {
                metrics::counter!("stream_resume_refused_total", "reason" => "forbidden")
                    .increment(1);
                fail(
                    ErrorCode::Forbidden,
                    "this answer belongs to another user".into(),
                )
            }
            Err(ResumeError::NotFound) => fail(
                ErrorCode::NotFound,
                "no such answer to resume (unknown message_id or expired: answers are kept 60 s after they finish)".into(),
            ),
            Err(e) => fail(ErrorCode::Internal, format!("resume failed: {e}")),
        };
        let stop = matches!(out, Outgoing::Frame(_));
        if tx.send(out).await.is_err() || stop {
            return;
        }
    }
}
