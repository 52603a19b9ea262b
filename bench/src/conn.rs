//! One virtual user's WebSocket: a task that owns the socket, stamps every frame with the
//! monotonic clock the moment it is read, and routes frames to the message they belong to.
//! Frames are read with `mangaassist-protocol`'s lenient reader: new fields are ignored and
//! frame types this client does not know are skipped, so a newer gateway never breaks it.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use mangaassist_protocol::{ClientFrame, Done, ServerFrame};
use tokio::{
    net::TcpStream,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, protocol::WebSocketConfig},
};

use crate::BenchError;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The gateway's per-connection limit on answers in flight.
pub const MAX_IN_FLIGHT_PER_CONNECTION: usize = 4;

/// Small socket buffers: thousands of virtual users must fit in memory (tungstenite's default
/// read buffer is 128 KiB per socket). A zero write buffer sends every frame at once.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Opens a WebSocket with Nagle off (small frames must not wait for ACKs).
/// A `token=` in `url` travels as `Authorization: Bearer` instead: the gateway takes only
/// short-lived tickets in URLs, and the run's tokens live as long as the run.
pub async fn connect(url: &str) -> Result<Ws, BenchError> {
    let token = url.split_once('?').and_then(|(_, q)| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    });
    let bare = redact(url);
    let refused = |reason: String| BenchError::Connect {
        url: bare.clone(),
        reason,
    };
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(bare.as_str())
        .map_err(|e| refused(describe_connect_error(&e)))?;
    if let Some(t) = &token {
        let value = tungstenite::http::HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| refused("the token is not a valid header value".into()))?;
        request.headers_mut().insert("authorization", value);
    }
    match tokio_tungstenite::connect_async_with_config(request, Some(ws_config()), true).await {
        Ok((ws, _)) => Ok(ws),
        Err(e) => Err(BenchError::Connect {
            url: redact(url),
            reason: describe_connect_error(&e),
        }),
    }
}

fn describe_connect_error(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(resp) if resp.status().as_u16() == 401 => {
            "HTTP 401: the gateway rejected the token (check the signing secret, or pass --token)"
                .to_string()
        }
        tungstenite::Error::Http(resp) => format!("HTTP {}", resp.status()),
        other => other.to_string(),
    }
}

/// The URL without its `token` query parameter, for messages and results.
pub fn redact(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.starts_with("token="))
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// What happened to one message, as seen by the client.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub sent_at: Instant,
    pub status_at: Option<Instant>,
    pub first_chunk_at: Option<Instant>,
    pub last_chunk_at: Option<Instant>,
    pub done_at: Option<Instant>,
    pub chunk_gaps_ms: Vec<f64>,
    pub chunks_received: u32,
    pub index_faults: u32,
    /// The `index` of every chunk frame, in arrival order: tells lost chunks (an index never
    /// seen) from repeated ones, which `index_faults` alone cannot.
    pub chunk_indices: Vec<u32>,
    /// The `done` frame.
    pub done: Option<Box<Done>>,
    /// The answer's text, chunks joined in arrival order; empty unless the connection was
    /// opened with [`Connection::open_keeping_text`] (the load driver does not pay for it).
    pub text: String,
    /// (code, message) of an `error` frame or of a client-side failure (`timeout`...).
    pub error: Option<(String, String)>,
}

impl Exchange {
    fn new(sent_at: Instant) -> Self {
        Self {
            sent_at,
            status_at: None,
            first_chunk_at: None,
            last_chunk_at: None,
            done_at: None,
            chunk_gaps_ms: Vec::new(),
            chunks_received: 0,
            index_faults: 0,
            chunk_indices: Vec::new(),
            done: None,
            text: String::new(),
            error: None,
        }
    }

    /// Chunk frames whose index had been seen already in this answer.
    pub fn duplicate_chunks(&self) -> u32 {
        let mut seen = self.chunk_indices.clone();
        seen.sort_unstable();
        seen.dedup();
        (self.chunk_indices.len() - seen.len()) as u32
    }

    /// Indices below the chunk count `done` reported that never arrived; `None` without
    /// `done` (an unfinished answer has no known length).
    pub fn lost_chunks(&self) -> Option<u32> {
        let total = self.done.as_ref()?.chunks;
        let mut seen: Vec<u32> = self
            .chunk_indices
            .iter()
            .copied()
            .filter(|&i| i < total)
            .collect();
        seen.sort_unstable();
        seen.dedup();
        Some(total - seen.len() as u32)
    }

    /// An exchange that got no answer: `code` is a client-side error code (`timeout`, …).
    pub(crate) fn failed(sent_at: Instant, code: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(sent_at);
        e.error = Some((code.to_string(), message.into()));
        e
    }
}

enum Request {
    Query {
        message_id: String,
        text: String,
        session_id: Option<String>,
        reply: oneshot::Sender<Exchange>,
    },
    /// Answered with the round-trip time when the `pong` arrives.
    Ping(oneshot::Sender<Duration>),
}

struct InFlight {
    ex: Exchange,
    reply: oneshot::Sender<Exchange>,
}

/// Handle to a connection task. Dropping it lets the task finish the messages in flight and
/// close the socket.
pub struct Connection {
    tx: mpsc::Sender<Request>,
    task: JoinHandle<ConnStats>,
}

/// Counts the task reports when it ends.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnStats {
    pub unattributed_errors: u64,
}

impl Connection {
    pub async fn open(url: &str, timeout: Duration) -> Result<Self, BenchError> {
        Self::open_with(url, timeout, false).await
    }

    /// [`Self::open`], keeping each answer's text in its [`Exchange`].
    pub async fn open_keeping_text(url: &str, timeout: Duration) -> Result<Self, BenchError> {
        Self::open_with(url, timeout, true).await
    }

    async fn open_with(url: &str, timeout: Duration, keep_text: bool) -> Result<Self, BenchError> {
        let ws = connect(url).await?;
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT_PER_CONNECTION * 4);
        let task = tokio::spawn(run_connection(ws, rx, timeout, keep_text));
        Ok(Self { tx, task })
    }

    /// False once the socket is gone; the caller should reconnect.
    pub fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Sends one query; the receiver yields the exchange when `done`, an `error`, the timeout
    /// or a dropped connection ends it. Never hangs longer than the timeout.
    pub fn send(
        &self,
        message_id: String,
        text: String,
        session_id: Option<String>,
    ) -> oneshot::Receiver<Exchange> {
        let (reply, rx) = oneshot::channel();
        if let Err(e) = self.tx.try_send(Request::Query {
            message_id,
            text,
            session_id,
            reply,
        }) {
            let req = match e {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            if let Request::Query { reply, .. } = req {
                let _ = reply.send(Exchange::failed(
                    Instant::now(),
                    "connection_closed",
                    "the connection task is gone or saturated",
                ));
            }
        }
        rx
    }

    /// Sends an application-level `ping`; the receiver yields the round trip when the `pong`
    /// arrives, and errors when the connection ends first (or is saturated). The caller
    /// bounds the wait: the task does not time pings out.
    pub fn ping(&self) -> oneshot::Receiver<Duration> {
        let (reply, rx) = oneshot::channel();
        // A refused ping drops `reply`, which the receiver sees as the error.
        let _ = self.tx.try_send(Request::Ping(reply));
        rx
    }

    /// Waits for the task to finish (after the handle's sender is dropped).
    pub async fn close(self) -> ConnStats {
        drop(self.tx);
        self.task.await.unwrap_or_default()
    }
}

async fn run_connection(
    ws: Ws,
    mut rx: mpsc::Receiver<Request>,
    timeout: Duration,
    keep_text: bool,
) -> ConnStats {
    let (mut sink, mut stream) = ws.split();
    let mut inflight: HashMap<String, InFlight> = HashMap::new();
    // The gateway answers pings in order, and a pong carries no id.
    let mut pings: VecDeque<(Instant, oneshot::Sender<Duration>)> = VecDeque::new();
    let mut stats = ConnStats::default();
    let mut tick = tokio::time::interval(Duration::from_millis(50).min(timeout / 4));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut accepting = true;
    loop {
        if !accepting && inflight.is_empty() {
            let _ = sink.send(Message::Close(None)).await;
            break;
        }
        tokio::select! {
            req = rx.recv(), if accepting => match req {
                Some(Request::Ping(reply)) => {
                    let sent_at = Instant::now();
                    let sent = tokio::time::timeout(timeout, sink.send(Message::text(ClientFrame::Ping {}.to_json())))
                        .await
                        .unwrap_or_else(|_| Err(tungstenite::Error::Io(std::io::ErrorKind::TimedOut.into())));
                    if sent.is_err() {
                        fail_all(&mut inflight, "connection_closed", "the connection broke");
                        break;
                    }
                    pings.push_back((sent_at, reply));
                }
                Some(Request::Query { message_id, text, session_id, reply }) => {
                    let frame = ClientFrame::Query {
                        text,
                        session_id,
                        store_id: None,
                        message_id: Some(message_id.clone()),
                    }
                    .to_json();
                    let sent_at = Instant::now();
                    // A peer that stops reading must not stall this task past the timeout.
                    let sent = tokio::time::timeout(timeout, sink.send(Message::text(frame)))
                        .await
                        .unwrap_or_else(|_| Err(tungstenite::Error::Io(std::io::ErrorKind::TimedOut.into())));
                    match sent {
                        Ok(()) => {
                            inflight.insert(message_id, InFlight { ex: Exchange::new(sent_at), reply });
                        }
                        Err(e) => {
                            let _ = reply.send(Exchange::failed(sent_at, "connection_closed", format!("send failed: {e}")));
                            fail_all(&mut inflight, "connection_closed", "the connection broke");
                            break;
                        }
                    }
                }
                None => accepting = false,
            },
            msg = stream.next() => {
                let now = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        if on_frame(&text, now, &mut inflight, &mut stats, keep_text)
                            && let Some((sent_at, reply)) = pings.pop_front()
                        {
                            let _ = reply.send(now.duration_since(sent_at));
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame.map(|f| format!("closed by the server: {} {}", f.code, f.reason)).unwrap_or_else(|| "closed by the server".to_string());
                        fail_all(&mut inflight, "connection_closed", &why);
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        fail_all(&mut inflight, "connection_closed", &format!("read failed: {e}"));
                        break;
                    }
                    None => {
                        fail_all(&mut inflight, "connection_closed", "the server closed the socket");
                        break;
                    }
                }
            }
            // Only while answers are in flight: thousands of idle sessions must not wake
            // 20 times a second each (25,000 of them would cost the load generator a core).
            _ = tick.tick(), if !inflight.is_empty() => {
                let now = Instant::now();
                let expired: Vec<String> = inflight
                    .iter()
                    .filter(|(_, f)| now.duration_since(f.ex.sent_at) >= timeout)
                    .map(|(k, _)| k.clone())
                    .collect();
                for id in expired {
                    if let Some(mut f) = inflight.remove(&id) {
                        f.ex.error = Some(("timeout".to_string(), format!("no done frame within {}", humantime::format_duration(timeout))));
                        let _ = f.reply.send(f.ex);
                    }
                }
            }
        }
    }
    // Requests queued after the socket broke: answer them so no caller waits.
    rx.close();
    while let Ok(req) = rx.try_recv() {
        if let Request::Query { reply, .. } = req {
            let _ = reply.send(Exchange::failed(
                Instant::now(),
                "connection_closed",
                "the connection broke before the query was sent",
            ));
        }
    }
    stats
}

fn fail_all(inflight: &mut HashMap<String, InFlight>, code: &str, message: &str) {
    for (_, mut f) in inflight.drain() {
        f.ex.error = Some((code.to_string(), message.to_string()));
        let _ = f.reply.send(f.ex);
    }
}

/// Routes one text frame; true when it was a `pong`.
fn on_frame(
    text: &str,
    now: Instant,
    inflight: &mut HashMap<String, InFlight>,
    stats: &mut ConnStats,
    keep_text: bool,
) -> bool {
    // Unknown frame types (a newer gateway) and frames this client cannot read are skipped.
    let Ok(frame) = mangaassist_protocol::parse_server_frame(text) else {
        return false;
    };
    match frame {
        ServerFrame::Status { message_id, .. } => {
            if let Some(f) = inflight.get_mut(&message_id) {
                f.ex.status_at.get_or_insert(now);
            }
        }
        ServerFrame::Chunk {
            message_id,
            index,
            text: chunk,
        } => {
            let Some(f) = inflight.get_mut(&message_id) else {
                return false;
            };
            if index != f.ex.chunks_received {
                f.ex.index_faults += 1;
            }
            f.ex.chunks_received += 1;
            f.ex.chunk_indices.push(index);
            if keep_text {
                f.ex.text.push_str(&chunk);
            }
            if let Some(last) = f.ex.last_chunk_at {
                f.ex.chunk_gaps_ms.push(ms(now.duration_since(last)));
            }
            f.ex.first_chunk_at.get_or_insert(now);
            f.ex.last_chunk_at = Some(now);
        }
        ServerFrame::Done(done) => {
            if let Some(mut f) = inflight.remove(&done.message_id) {
                f.ex.done_at = Some(now);
                f.ex.done = Some(done);
                let _ = f.reply.send(f.ex);
            }
        }
        ServerFrame::Error {
            message_id,
            code,
            message,
            retry_after_ms,
        } => {
            let message = match retry_after_ms {
                Some(after) => format!("{message} (retry after {after} ms)"),
                None => message,
            };
            // Without a message id: the gateway answers queries in order and a refusal comes
            // instead of `status`, so it concerns the oldest query that has seen no frame.
            let target = message_id
                .filter(|id| inflight.contains_key(id))
                .or_else(|| {
                    inflight
                        .iter()
                        .filter(|(_, f)| f.ex.status_at.is_none() && f.ex.first_chunk_at.is_none())
                        .min_by_key(|(_, f)| f.ex.sent_at)
                        .map(|(k, _)| k.clone())
                });
            match target.and_then(|id| inflight.remove(&id)) {
                Some(mut f) => {
                    f.ex.done_at = Some(now);
                    f.ex.error = Some((code.as_str().to_string(), message));
                    let _ = f.reply.send(f.ex);
                }
                None => stats.unattributed_errors += 1,
            }
        }
        ServerFrame::Pong => return true,
        ServerFrame::Heartbeat { .. }
        | ServerFrame::Products { .. }
        | ServerFrame::Stock(_)
        | ServerFrame::History { .. } => {}
    }
    false
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
