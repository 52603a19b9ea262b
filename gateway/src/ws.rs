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
use futures::{SinkExt, StreamExt, stream::SplitSink};
use mangaassist_resilience::TokenBucket;
use mangaassist_resume::{BufferedFrame, ResumeError, ResumeStore, StreamKey, replay_stream};
use parking_lot::Mutex;
use tokio::sync::{
    OwnedSemaphorePermit, Semaphore,
    mpsc::{self, error::SendTimeoutError},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use mangaassist_domain::{Lang, reply_language};
use mangaassist_proto::v1 as pb;
use tokio::sync::broadcast;

use crate::{
    cards::Shown,
    pipeline::{Orchestrator, Query},
    protocol::{
        ClientFrame, DEFAULT_HISTORY_TURNS, ErrorCode, FrameError, HistoryTurn, ServerFrame,
        parse_client_frame,
    },
    stream::{AnswerOutput, Outgoing},
    texts,
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
    /// Every socket task, so shutdown waits for their last frames and the 1012 close.
    pub sockets: TaskTracker,
    /// Cancelled when the shutdown grace period is over: answers still running stop and
    /// leave `stream_interrupted` in the resume buffer, so a client resuming on another
    /// gateway is told at once instead of waiting for the buffer to expire.
    pub cut: CancellationToken,
    /// Open `/ws` connections per user.
    pub user_connections: Arc<Mutex<HashMap<String, u32>>>,
}

/// One of a user's `gateway.limits.max_connections_per_user` connection slots, given back
/// when dropped.
pub struct ConnectionSlot {
    user: String,
    open: Arc<Mutex<HashMap<String, u32>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl Shared {
    /// Takes a connection slot of `user`; `None` when they have `max` open already (0 =
    /// unlimited).
    pub fn connection_slot(&self, user: &str, max: u32) -> Option<ConnectionSlot> {
        let mut open = self.user_connections.lock();
        let n = open.entry(user.to_string()).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            user: user.to_string(),
            open: self.user_connections.clone(),
        })
    }
}

/// The refusal of a query or resume beyond the connection's answers in flight.
fn busy(message_id: String, max_in_flight: usize, lang: Lang) -> Outgoing {
    Outgoing::Frame(ServerFrame::error(
        Some(message_id),
        ErrorCode::Busy,
        match lang {
            Lang::En => format!(
                "{} ({max_in_flight} in flight)",
                texts::error_text(lang, ErrorCode::Busy).unwrap_or_default()
            ),
            Lang::Ja => texts::error_text(lang, ErrorCode::Busy)
                .unwrap_or_default()
                .to_string(),
        },
    ))
}

fn rate_limited(message_id: Option<String>, what: &str, retry: Duration, lang: Lang) -> Outgoing {
    let said = texts::error_text(lang, ErrorCode::RateLimited).unwrap_or_default();
    // The limit's name is English operator vocabulary; a Japanese customer gets the sentence
    // and the wait (the page counts `retry_after_ms` down either way).
    let message = match lang {
        Lang::En => format!("{said} ({what}; retry in {} ms)", retry.as_millis()),
        Lang::Ja => format!("{said}（{:.1} 秒後に再送できます）", retry.as_secs_f64()),
    };
    Outgoing::Frame(ServerFrame::Error {
        message_id,
        code: ErrorCode::RateLimited,
        message,
        retry_after_ms: Some(retry.as_millis().max(1) as u64),
    })
}

/// Remembers the products a frame about to be sent shows, for their stock updates.
fn note_products(shown: &mut Shown, out: &Outgoing) {
    let parsed;
    let frame = match out {
        Outgoing::Frame(f) => f,
        // Only the rare products frame is parsed back; chunks are recognised by their prefix.
        Outgoing::Raw(json) if json.starts_with(r#"{"type":"products""#) => {
            match mangaassist_protocol::parse_server_frame(json) {
                Ok(f) => {
                    parsed = f;
                    &parsed
                }
                Err(_) => return,
            }
        }
        _ => return,
    };
    if let ServerFrame::Products {
        store_id,
        lang,
        products,
        ..
    } = frame
    {
        let lang = Lang::parse(lang).unwrap_or_default();
        shown.add(store_id, lang, products.iter().map(|p| p.id.clone()));
    }
}

/// The next stock change of the inventory feed, skipping what a lag lost (the next change of
/// a product carries its whole state); pending forever without a feed.
async fn next_change(rx: &mut Option<broadcast::Receiver<pb::StockState>>) -> pb::StockState {
    let Some(r) = rx else {
        return std::future::pending().await;
    };
    loop {
        match r.recv().await {
            Ok(s) => return s,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                metrics::counter!("stock_updates_skipped_total").increment(n);
            }
            Err(broadcast::error::RecvError::Closed) => {
                *rx = None;
                return std::future::pending().await;
            }
        }
    }
}

/// Frames queued for one socket. Small: a client that reads gets them at network speed, and
/// what a client that does not read can hold is this many frames, not its answers.
const QUEUED_FRAMES: usize = 64;

/// Sends `msg` unless the client has taken nothing for `limit`.
async fn put(
    sink: &mut SplitSink<WebSocket, Message>,
    msg: Message,
    limit: Duration,
) -> Result<(), ()> {
    match tokio::time::timeout(limit, sink.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            metrics::counter!("websocket_slow_closed_total").increment(1);
            Err(())
        }
    }
}

pub async fn run(
    socket: WebSocket,
    conn: Connection,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    slot: ConnectionSlot,
) {
    metrics::gauge!("websocket_connections").increment(1.0);
    let settings = shared.orchestrator.settings.clone();
    let write_limit = Duration::from_millis(settings.stream.write_timeout_ms);
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(QUEUED_FRAMES);
    let in_flight = Arc::new(AtomicU32::new(0));
    let writer_stop = CancellationToken::new();
    // Cancelled when the socket is lost: the writer ended (send failed or timed out) or an
    // answer found the queue full for the write timeout. The reader then stops too, and the
    // answers go on into the resume buffer for the client to resume.
    let lost = CancellationToken::new();
    #[allow(
        clippy::disallowed_methods,
        reason = "the writer is joined (`writer.await`) before `run` returns, and ends when the reader drops its sender, so it never outlives the connection"
    )]
    let writer = {
        let stop = writer_stop.clone();
        let lost = lost.clone();
        let in_flight = in_flight.clone();
        let every = Duration::from_secs(settings.stream.heartbeat_seconds);
        let view = shared.orchestrator.stock.get().cloned();
        tokio::spawn(async move {
            // Products shown here, kept up to date by `stock` frames; the feed is followed
            // only once something was shown, so idle connections cost the feed nothing.
            let mut shown = Shown::default();
            let mut changes: Option<broadcast::Receiver<pb::StockState>> = None;
            let _lost_on_exit = lost.clone().drop_guard();
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
                            if put(&mut sink, encode(o), write_limit).await.is_err() {
                                return;
                            }
                        }
                        let close = Message::Close(Some(CloseFrame {
                            code: CLOSE_SERVICE_RESTART,
                            reason: "server restarting; reconnect and resume".into(),
                        }));
                        let _ = put(&mut sink, close, write_limit).await;
                        break;
                    }
                    () = lost.cancelled() => break,
                    out = rx.recv() => match out {
                        Some(o) => {
                            note_products(&mut shown, &o);
                            if changes.is_none() && !shown.is_empty() {
                                changes = view.as_ref().map(|v| v.subscribe());
                            }
                            let closing = matches!(o, Outgoing::Close(..));
                            if put(&mut sink, encode(o), write_limit).await.is_err() || closing {
                                break;
                            }
                        }
                        None => break,
                    },
                    change = next_change(&mut changes) => {
                        let Some(lang) = shown.lang(&change.store_id, &change.product_id) else {
                            continue;
                        };
                        let f = ServerFrame::Stock(crate::cards::stock_update(&change, lang));
                        if put(&mut sink, Message::Text(f.to_json().into()), write_limit).await.is_err() {
                            break;
                        }
                        metrics::counter!("stock_updates_sent_total").increment(1);
                    }
                    _ = heartbeat.tick() => {
                        let n = in_flight.load(Ordering::Relaxed);
                        if n > 0 {
                            let f = ServerFrame::Heartbeat { in_flight: n };
                            let msg = Message::Text(f.to_json().into());
                            if put(&mut sink, msg, write_limit).await.is_err() {
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
    loop {
        let msg = tokio::select! {
            m = tokio::time::timeout(idle_limit, stream.next()) => m,
            () = shutdown.cancelled() => break,
            () = lost.cancelled() => break,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(_) => {
                if in_flight.load(Ordering::Relaxed) > 0 {
                    continue;
                }
                metrics::counter!("websocket_idle_closed_total").increment(1);
                // The queue is free unless the client stopped reading, and then the writer
                // is about to drop it anyway.
                let _ = tx.try_send(Outgoing::Close(CLOSE_IDLE, "idle timeout".into()));
                break;
            }
        };
        let Some(Ok(msg)) = msg else { break };
        if matches!(msg, Message::Close(_)) {
            break;
        }
        // Every frame counts, whatever its kind: binary frames and pings cost work too.
        let reply = if let Err(retry) = conn_bucket.try_take(tokio::time::Instant::now()) {
            metrics::counter!("rate_limited_total", "scope" => "connection").increment(1);
            Some(rate_limited(
                None,
                "more than the allowed frames per second on this connection",
                retry,
                shared.orchestrator.store_lang(&conn.store_id),
            ))
        } else {
            match msg {
                Message::Text(text) => {
                    let ctx = FrameCtx {
                        shared: &shared,
                        conn: &conn,
                        tx: &tx,
                        lost: &lost,
                        in_flight: &in_flight,
                        permits: &permits,
                        cancels: &cancels,
                        max_in_flight,
                        max_bytes,
                    };
                    ctx.on_text(text.as_str()).await
                }
                Message::Binary(_) => Some(Outgoing::Frame(ServerFrame::error(
                    None,
                    ErrorCode::UnsupportedFrame,
                    "binary frames are not supported; send JSON text frames",
                ))),
                Message::Ping(_) | Message::Pong(_) | Message::Close(_) => None,
            }
        };
        // Never wait on the queue here: a client that sends without reading would stall
        // the reader, and with it the idle timeout. A full queue means it stopped reading.
        if let Some(o) = reply
            && tx.try_send(o).is_err()
        {
            metrics::counter!("websocket_slow_closed_total").increment(1);
            lost.cancel();
            break;
        }
    }
    if shutdown.is_cancelled() && !lost.is_cancelled() {
        // Drain: answers in flight finish (the server's grace period bounds this), then the
        // client is told to reconnect with 1012.
        let _ = permits.acquire_many(max_in_flight as u32).await;
        writer_stop.cancel();
    }
    drop(tx);
    let _ = writer.await;
    drop(slot);
    metrics::gauge!("websocket_connections").decrement(1.0);
}

/// What handling one text frame needs of its connection.
struct FrameCtx<'a> {
    shared: &'a Arc<Shared>,
    conn: &'a Connection,
    tx: &'a mpsc::Sender<Outgoing>,
    lost: &'a CancellationToken,
    in_flight: &'a Arc<AtomicU32>,
    permits: &'a Arc<Semaphore>,
    cancels: &'a Arc<Mutex<HashMap<String, CancellationToken>>>,
    max_in_flight: usize,
    max_bytes: usize,
}

impl FrameCtx<'_> {
    /// Takes one message from the user's allowance and one answer slot of this connection,
    /// or says which limit refused it.
    async fn admit(&self, message_id: &str, lang: Lang) -> Result<OwnedSemaphorePermit, Outgoing> {
        if let Err(retry) = self.shared.admit(&self.conn.user_id).await {
            return Err(rate_limited(
                Some(message_id.to_string()),
                "message limit per user reached",
                retry,
                lang,
            ));
        }
        self.permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy(message_id.to_string(), self.max_in_flight, lang))
    }

    /// The connection's storefront language (for replies to frames that carry no text).
    fn store_lang(&self) -> Lang {
        self.shared.orchestrator.store_lang(&self.conn.store_id)
    }

    /// Answers a `history` action: the session's turns from memory, owner-checked there.
    async fn history(&self, session_id: Option<String>, limit: Option<u32>) -> Outgoing {
        let lang = self.store_lang();
        // A history read costs memory a query's worth of work: same allowance.
        if let Err(retry) = self.shared.admit(&self.conn.user_id).await {
            return rate_limited(None, "message limit per user reached", retry, lang);
        }
        let session_id = session_id
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| self.conn.session_id.clone());
        let orchestrator = &self.shared.orchestrator;
        let req = pb::GetHistoryRequest {
            session_id: session_id.clone(),
            user_id: self.conn.user_id.clone(),
            limit: limit.unwrap_or(DEFAULT_HISTORY_TURNS),
        };
        let deadline = Duration::from_millis(orchestrator.settings.deadlines.memory_ms.max(200));
        let refuse = |code: ErrorCode| {
            Outgoing::Frame(ServerFrame::error(
                None,
                code,
                texts::error_text(lang, code).unwrap_or_default(),
            ))
        };
        match orchestrator.mesh.get_history(req, deadline).await {
            Ok(r) => {
                metrics::counter!("history_reads_total").increment(1);
                // Memory answers newest first; a page shows the conversation oldest first.
                let turns = r
                    .turns
                    .into_iter()
                    .rev()
                    .map(|t| HistoryTurn {
                        intent: (t.role == "assistant")
                            .then(|| pb::Intent::try_from(t.intent).ok())
                            .flatten()
                            .filter(|i| *i != pb::Intent::Unspecified)
                            .map(|i| i.label().to_string()),
                        role: t.role,
                        text: t.text,
                        message_id: t.message_id,
                        ts_ms: t.ts_ms,
                    })
                    .collect();
                Outgoing::Frame(ServerFrame::History { session_id, turns })
            }
            Err(s) if s.code() == tonic::Code::PermissionDenied => {
                metrics::counter!("history_refused_total").increment(1);
                refuse(ErrorCode::Forbidden)
            }
            Err(s) => {
                tracing::warn!(error = %s, "history unavailable");
                refuse(ErrorCode::Unavailable)
            }
        }
    }

    /// Handles one text frame; returns the immediate reply, if any.
    async fn on_text(&self, text: &str) -> Option<Outgoing> {
        let max_bytes = self.max_bytes;
        if text.len() > max_bytes {
            return Some(Outgoing::Frame(ServerFrame::error(
                None,
                ErrorCode::FrameTooLarge,
                format!(
                    "frame of {} bytes exceeds the {max_bytes}-byte limit",
                    text.len()
                ),
            )));
        }
        let received = Instant::now();
        let frame = match parse_client_frame(text) {
            Ok(f) => f,
            Err(FrameError { code, message }) => {
                metrics::counter!("websocket_bad_frames_total", "code" => format!("{code:?}"))
                    .increment(1);
                return Some(Outgoing::Frame(ServerFrame::error(None, code, message)));
            }
        };
        let shared = self.shared;
        let conn = self.conn;
        match frame {
            ClientFrame::Ping {} => Some(Outgoing::Frame(ServerFrame::Pong)),
            ClientFrame::History { session_id, limit } => {
                Some(self.history(session_id, limit).await)
            }
            ClientFrame::Cancel { message_id } => {
                let token = self.cancels.lock().get(&message_id).cloned();
                match token {
                    Some(t) => {
                        t.cancel();
                        None
                    }
                    None => Some(Outgoing::Frame(ServerFrame::error(
                        Some(message_id),
                        ErrorCode::NotFound,
                        "no answer in flight with this message_id on this connection",
                    ))),
                }
            }
            ClientFrame::Query {
                text,
                session_id,
                store_id,
                message_id,
            } => {
                let message_id = message_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                let lang = reply_language(&text, self.store_lang());
                let permit = match self.admit(&message_id, lang).await {
                    Ok(permit) => permit,
                    Err(refusal) => return Some(refusal),
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
                    reference: Default::default(),
                };
                let output = AnswerOutput::Socket {
                    tx: self.tx.clone(),
                    lost: self.lost.clone(),
                };
                let Ok(answer) = shared.open_answer(query, output).await else {
                    return Some(Outgoing::Frame(ServerFrame::error(
                        Some(message_id),
                        ErrorCode::DuplicateMessage,
                        "this message_id was already used in this session; use a new one (or `resume` it)",
                    )));
                };
                let cancel = CancellationToken::new();
                self.cancels
                    .lock()
                    .insert(message_id.clone(), cancel.clone());
                let cancels = self.cancels.clone();
                let in_flight = self.in_flight.clone();
                in_flight.fetch_add(1, Ordering::Relaxed);
                answer.spawn(shared, cancel, move || {
                    cancels.lock().remove(&message_id);
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
                None
            }
            ClientFrame::Resume {
                session_id,
                message_id,
                last_chunk_idx,
            } => {
                // A resume streams a whole answer again: it takes from the same allowances
                // as a question, so reconnect loops cannot replay answers for free.
                let permit = match self.admit(&message_id, self.store_lang()).await {
                    Ok(permit) => permit,
                    Err(refusal) => return Some(refusal),
                };
                let key = StreamKey {
                    session_id,
                    message_id,
                };
                let after = last_chunk_idx.and_then(|i| u32::try_from(i).ok());
                let store = shared.resume.clone();
                let user = conn.user_id.clone();
                let tx = self.tx.clone();
                let lost = self.lost.clone();
                let cut = shared.cut.clone();
                let in_flight = self.in_flight.clone();
                let settings = &shared.orchestrator.settings;
                let total = Duration::from_millis(settings.deadlines.total_ms);
                let write_limit = Duration::from_millis(settings.stream.write_timeout_ms);
                in_flight.fetch_add(1, Ordering::Relaxed);
                shared.answers.spawn(async move {
                    metrics::counter!("stream_resumes_total").increment(1);
                    let out = Out {
                        tx: &tx,
                        lost: &lost,
                        write_limit,
                    };
                    let replay = resume(store, key.clone(), user, after, &out);
                    tokio::select! {
                        r = tokio::time::timeout(total, replay) => if r.is_err() {
                            out.send(Outgoing::Frame(ServerFrame::error(
                                Some(key.message_id),
                                ErrorCode::StreamInterrupted,
                                "the resumed answer did not finish in time",
                            )))
                            .await;
                        },
                        () = cut.cancelled() => {}
                    }
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
                None
            }
        }
    }
}

/// A task's way to the socket's queue: waits at most the write timeout, and a client that
/// took nothing for that long loses the socket.
struct Out<'a> {
    tx: &'a mpsc::Sender<Outgoing>,
    lost: &'a CancellationToken,
    write_limit: Duration,
}

impl Out<'_> {
    /// `false` once the socket is gone.
    async fn send(&self, o: Outgoing) -> bool {
        match self.tx.send_timeout(o, self.write_limit).await {
            Ok(()) => true,
            Err(SendTimeoutError::Timeout(_)) => {
                metrics::counter!("websocket_slow_closed_total").increment(1);
                self.lost.cancel();
                false
            }
            Err(SendTimeoutError::Closed(_)) => false,
        }
    }
}

/// Replays the buffered frames of `key` after chunk `after`, then follows it live.
async fn resume(
    store: Arc<dyn ResumeStore>,
    key: StreamKey,
    user: String,
    after: Option<u32>,
    out: &Out<'_>,
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
        let o = match item {
            Ok(BufferedFrame::Chunk { json, .. }) => Outgoing::Raw(json),
            Ok(terminal @ BufferedFrame::Terminal { .. }) => {
                // The frames that end the answer (its cards, then `done` or `error`).
                for frame in terminal.frames() {
                    if !out.send(Outgoing::Raw(frame.to_string())).await {
                        return;
                    }
                }
                continue;
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
        let frame = matches!(o, Outgoing::Frame(_));
        if !out.send(o).await || frame {
            return;
        }
    }
}
