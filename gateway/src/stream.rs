//! One answer on its way to the client: the stream lifecycle as an explicit state machine
//! (seed 002 `StreamState`), chunk batching (first chunks alone, then batches), and the sink
//! that writes every chunk to the resume buffer before the socket, so a client that drops
//! and reconnects can replay exactly what it missed (seed 000 scenario 3).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use mangaassist_config::StreamSettings;
use mangaassist_resume::{BufferedFrame, ResumeError, ResumeStore, StreamKey};
use tokio::sync::mpsc::{self, error::SendTimeoutError};
use tokio_util::sync::CancellationToken;

use crate::protocol::{Done, ErrorCode, Phase, ProductCard, ServerFrame};

/// Largest chunk text assembled from deltas that were ready at once (bytes).
pub const MAX_COALESCED_BYTES: usize = 2048;
/// What the connection's writer task sends: typed frames, or frames already encoded (chunks
/// are encoded once for both the resume buffer and the socket; replays come encoded).
#[derive(Debug)]
pub enum Outgoing {
    Frame(ServerFrame),
    Raw(String),
    /// Close the socket with this code and reason.
    Close(u16, String),
}

/// One step of an answer, as the pipeline produces it. Each endpoint renders these its own
/// way: `/ws` as protocol frames, the OpenAI endpoint as SSE chunks or one completion.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerEvent {
    /// Progress: the phase that just started.
    Status(StatusLine),
    /// The products the answer names, as cards (right before `Done`).
    Products {
        store_id: String,
        /// The language the cards are written in, for later stock updates.
        lang: String,
        products: Vec<ProductCard>,
    },
    Chunk {
        index: u32,
        text: String,
    },
    /// The answer is complete (terminal).
    Done(Box<Done>),
    /// The answer ended without completing (terminal).
    Failed {
        code: ErrorCode,
        message: String,
    },
}

impl AnswerEvent {
    /// The protocol frame of this event for the answer `key`.
    pub fn to_frame(&self, key: &StreamKey) -> ServerFrame {
        match self {
            AnswerEvent::Status(line) => ServerFrame::Status {
                message_id: key.message_id.clone(),
                session_id: key.session_id.clone(),
                text: line.text.to_string(),
                phase: Some(line.phase),
                intent: line.intent.map(str::to_string),
                lang: line.lang.to_string(),
            },
            AnswerEvent::Products {
                store_id,
                lang,
                products,
            } => ServerFrame::Products {
                message_id: key.message_id.clone(),
                session_id: key.session_id.clone(),
                store_id: store_id.clone(),
                lang: lang.clone(),
                products: products.clone(),
            },
            AnswerEvent::Chunk { index, text } => ServerFrame::Chunk {
                message_id: key.message_id.clone(),
                index: *index,
                text: text.clone(),
            },
            AnswerEvent::Done(done) => ServerFrame::Done(done.clone()),
            AnswerEvent::Failed { code, message } => {
                ServerFrame::error(Some(key.message_id.clone()), *code, message.clone())
            }
        }
    }
}

/// One progress line: the phase that started, in the customer's language.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusLine {
    pub text: &'static str,
    pub phase: Phase,
    /// Known once the classifier (or the keyword fallback) decided.
    pub intent: Option<&'static str>,
    pub lang: &'static str,
}

/// Where an answer's events go while its client is attached.
pub enum AnswerOutput {
    /// A `/ws` connection's writer: each event as a frame, encoded once for the resume buffer
    /// and the socket. `lost` is cancelled when its queue stays full for the write timeout:
    /// the client stopped reading, and the connection is closed.
    Socket {
        tx: mpsc::Sender<Outgoing>,
        lost: CancellationToken,
    },
    /// Typed events for an endpoint that renders them itself (OpenAI).
    Events(mpsc::Sender<AnswerEvent>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    Initializing,
    WaitingFirstToken,
    Streaming,
    Completed,
    Error,
    Cancelled,
}

impl StreamState {
    pub fn label(self) -> &'static str {
        match self {
            StreamState::Initializing => "initializing",
            StreamState::WaitingFirstToken => "waiting_first_token",
            StreamState::Streaming => "streaming",
            StreamState::Completed => "completed",
            StreamState::Error => "error",
            StreamState::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StreamState::Completed | StreamState::Error | StreamState::Cancelled
        )
    }

    /// The allowed transitions. A cached or canned answer streams without waiting for a
    /// model; a quality-gate escalation waits for a first token again.
    pub fn can_go(self, to: StreamState) -> bool {
        use StreamState::*;
        matches!(
            (self, to),
            (
                Initializing | WaitingFirstToken,
                WaitingFirstToken | Streaming | Error | Cancelled
            ) | (Streaming, Completed | Error | Cancelled)
        )
    }
}

/// Tracks one stream's state and reports its outcome once.
#[derive(Debug)]
pub struct Lifecycle {
    state: StreamState,
}

impl Lifecycle {
    pub fn new() -> Self {
        metrics::gauge!("streams_active").increment(1.0);
        Self {
            state: StreamState::Initializing,
        }
    }

    pub fn state(&self) -> StreamState {
        self.state
    }

    pub fn go(&mut self, to: StreamState) {
        if !self.state.can_go(to) {
            // A bug in the orchestrator, not a user error: log it and keep serving.
            tracing::error!(
                from = self.state.label(),
                to = to.label(),
                "invalid stream transition"
            );
            if self.state.is_terminal() {
                return;
            }
        }
        self.state = to;
        if to.is_terminal() {
            metrics::gauge!("streams_active").decrement(1.0);
            metrics::counter!("streams_total", "outcome" => to.label()).increment(1);
            if to == StreamState::Cancelled {
                metrics::counter!("stream_cancellations_total").increment(1);
            }
        }
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        // Aborted (e.g. at the end of a shutdown grace period) without reaching an end.
        if !self.state.is_terminal() {
            self.go(StreamState::Cancelled);
        }
    }
}

/// Writes one answer's frames: resume buffer first, then the socket while it is attached.
pub struct AnswerSink {
    key: StreamKey,
    store: Arc<dyn ResumeStore>,
    buffered: bool,
    conn: Option<AnswerOutput>,
    settings: StreamSettings,
    /// The stream's state; only the sink moves it, as it writes the frames that change it.
    lifecycle: Lifecycle,
    /// Chunk frames sent so far (= the next chunk's index).
    pub chunks: u32,
    pub first_chunk_at: Option<Instant>,
    /// The whole answer text, for the turn log and the cache.
    pub text: String,
    pending: String,
    pending_deltas: u32,
    pending_since: Option<Instant>,
    /// The cards of the answer, sent with its `done`.
    cards: Option<AnswerEvent>,
}

impl AnswerSink {
    /// Opens the resume buffer of `key` for `owner`. A buffer that cannot be opened (the
    /// message id is taken) is the caller's error; other store failures only cost resumability.
    pub async fn open(
        key: StreamKey,
        owner: &str,
        store: Arc<dyn ResumeStore>,
        conn: AnswerOutput,
        settings: StreamSettings,
    ) -> Result<Self, ResumeError> {
        let buffered = match store.open(&key, owner).await {
            Ok(()) => true,
            Err(ResumeError::AlreadyExists) => return Err(ResumeError::AlreadyExists),
            Err(e) => {
                tracing::warn!(error = %e, "resume buffer unavailable; answer not resumable");
                false
            }
        };
        Ok(Self {
            key,
            store,
            buffered,
            conn: Some(conn),
            settings,
            lifecycle: Lifecycle::new(),
            chunks: 0,
            first_chunk_at: None,
            text: String::new(),
            pending: String::new(),
            pending_deltas: 0,
            pending_since: None,
            cards: None,
        })
    }

    pub fn key(&self) -> &StreamKey {
        &self.key
    }

    pub fn message_id(&self) -> &str {
        &self.key.message_id
    }

    /// The stream's state.
    pub fn state(&self) -> StreamState {
        self.lifecycle.state()
    }

    /// A model was asked and nothing of its answer is on screen yet (again, after a
    /// quality-gate escalation).
    pub fn waiting_first_token(&mut self) {
        self.lifecycle.go(StreamState::WaitingFirstToken);
    }

    /// Whether the client's socket still takes frames.
    pub fn attached(&self) -> bool {
        self.conn.is_some()
    }

    /// A progress line: it only makes sense live, so it goes to the client only.
    pub async fn status(&mut self, line: StatusLine) {
        self.send(AnswerEvent::Status(line), None).await;
    }

    /// The products the answer names, as cards: they go out with `done` (and are buffered
    /// with it), so a resumed answer gets them too and an answer that fails shows none.
    pub fn products(&mut self, store_id: &str, lang: &str, products: Vec<ProductCard>) {
        self.cards = (!products.is_empty()).then(|| AnswerEvent::Products {
            store_id: store_id.to_string(),
            lang: lang.to_string(),
            products,
        });
    }

    /// Sends `event` to the attached client; `json` is its frame if already encoded. Waits
    /// at most the write timeout: a client that takes nothing for that long is detached (and
    /// its socket closed), and the answer goes on into the resume buffer without it.
    async fn send(&mut self, event: AnswerEvent, json: Option<String>) {
        let wait = Duration::from_millis(self.settings.write_timeout_ms);
        let sent = match &self.conn {
            None => return,
            Some(AnswerOutput::Socket { tx, lost }) => {
                let out = match json {
                    Some(json) => Outgoing::Raw(json),
                    None => Outgoing::Frame(event.to_frame(&self.key)),
                };
                match tx.send_timeout(out, wait).await {
                    Ok(()) => true,
                    Err(SendTimeoutError::Timeout(_)) => {
                        metrics::counter!("websocket_slow_closed_total").increment(1);
                        lost.cancel();
                        false
                    }
                    Err(SendTimeoutError::Closed(_)) => false,
                }
            }
            Some(AnswerOutput::Events(c)) => c.send_timeout(event, wait).await.is_ok(),
        };
        if !sent {
            self.conn = None;
            metrics::counter!("streams_detached_total").increment(1);
            tracing::debug!(
                message_id = %self.key.message_id,
                "client went away; answer continues into the resume buffer"
            );
        }
    }

    /// A model delta: the first chunks go out alone, later ones in batches.
    pub async fn delta(&mut self, text: String) {
        self.delta_with(text, false).await;
    }

    /// Like [`AnswerSink::delta`] when the caller already holds the next delta: a full batch
    /// then waits for it instead of going out, so a model that is faster than the socket
    /// sends what it has in one frame rather than a frame per few tokens. Nothing waits for
    /// text that has not arrived yet; the caller ends a run of these with
    /// [`AnswerSink::flush_full`]. A batch never grows past [`MAX_COALESCED_BYTES`].
    pub async fn delta_more_ready(&mut self, text: String) {
        self.delta_with(text, true).await;
    }

    async fn delta_with(&mut self, text: String, more_ready: bool) {
        if text.is_empty() {
            return;
        }
        if self.chunks < self.settings.unbatched_chunks && self.pending.is_empty() {
            self.emit(text).await;
            return;
        }
        if self.pending.is_empty() {
            self.pending_since = Some(Instant::now());
        }
        self.pending.push_str(&text);
        self.pending_deltas += 1;
        if (!more_ready && self.pending_deltas >= self.settings.batch_size)
            || self.pending.len() >= MAX_COALESCED_BYTES
        {
            self.flush().await;
        }
    }

    /// Sends the pending batch if it has reached the batch size.
    pub async fn flush_full(&mut self) {
        if self.pending_deltas >= self.settings.batch_size {
            self.flush().await;
        }
    }

    /// When the pending batch must go out even if no further delta arrives.
    pub fn flush_due(&self) -> Option<Instant> {
        self.pending_since
            .map(|t| t + Duration::from_millis(self.settings.batch_max_wait_ms))
    }

    pub async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.pending);
        self.pending_deltas = 0;
        self.pending_since = None;
        self.emit(text).await;
    }

    async fn emit(&mut self, text: String) {
        if self.first_chunk_at.is_none() {
            self.first_chunk_at = Some(Instant::now());
            self.lifecycle.go(StreamState::Streaming);
        }
        self.text.push_str(&text);
        let index = self.chunks;
        self.chunks += 1;
        let event = AnswerEvent::Chunk { index, text };
        let json = self.encode(&event);
        if let Some(json) = &json
            && self.buffered
            && let Err(e) = self
                .store
                .append(
                    &self.key,
                    BufferedFrame::Chunk {
                        index,
                        json: json.clone(),
                    },
                )
                .await
        {
            tracing::warn!(error = %e, "resume buffer write failed; answer no longer resumable");
            self.buffered = false;
        }
        self.send(event, json).await;
    }

    /// The frame of `event` when the resume buffer or the socket needs it, encoded once.
    fn encode(&self, event: &AnswerEvent) -> Option<String> {
        let socket = matches!(self.conn, Some(AnswerOutput::Socket { .. }));
        (self.buffered || socket).then(|| event.to_frame(&self.key).to_json())
    }

    /// Ends the answer with its cards, if any, and its `done` frame: completed.
    pub async fn done(&mut self, done: Done) {
        let cards = self.cards.take();
        self.finish(cards, AnswerEvent::Done(Box::new(done))).await;
        self.lifecycle.go(StreamState::Completed);
    }

    /// Ends the answer with an `error` frame: cancelled when the client asked for it, else
    /// an error.
    pub async fn fail(&mut self, code: ErrorCode, message: impl Into<String>) {
        let message = message.into();
        self.finish(None, AnswerEvent::Failed { code, message })
            .await;
        self.lifecycle.go(if code == ErrorCode::Cancelled {
            StreamState::Cancelled
        } else {
            StreamState::Error
        });
    }

    /// The last event, after the cards: buffered together as the stream's terminal record
    /// (one write, so a resume sees both or neither), then sent.
    async fn finish(&mut self, cards: Option<AnswerEvent>, event: AnswerEvent) {
        self.flush().await;
        let cards_json = cards.as_ref().and_then(|c| self.encode(c));
        let json = self.encode(&event);
        if let Some(json) = &json
            && self.buffered
        {
            let record = match &cards_json {
                Some(c) => BufferedFrame::terminal_after(c, json),
                None => BufferedFrame::terminal(json.clone()),
            };
            if let Err(e) = self.store.append(&self.key, record).await {
                tracing::warn!(error = %e, "resume buffer terminal write failed");
            }
        }
        if let Some(cards) = cards {
            self.send(cards, cards_json).await;
        }
        self.send(event, json).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use futures::StreamExt;
    use mangaassist_resume::{InMemoryResumeStore, ResumeLimits, replay_stream};

    fn done(key: &StreamKey) -> Done {
        Done {
            message_id: key.message_id.clone(),
            session_id: key.session_id.clone(),
            first_token_ms: 1,
            total_ms: 2,
            tokens: 2,
            chunks: 2,
            intent: "faq".into(),
            model: "m".into(),
            cache_hit: false,
            served_from: "live".into(),
            stock_removed: vec![],
            degradation: "full".into(),
            trace_id: "t".into(),
            product_ids: vec![],
            tier: "fast".into(),
            route: "matrix".into(),
            stages: vec![],
        }
    }

    /// Runs one short answer into `output` and returns what its resume buffer holds.
    async fn answer(key: &StreamKey, output: AnswerOutput) -> Vec<String> {
        let store: Arc<dyn ResumeStore> = Arc::new(InMemoryResumeStore::new(ResumeLimits {
            keep_after_done: Duration::from_secs(60),
            ttl: Duration::from_secs(60),
            max_streams: 10,
            max_bytes_per_stream: 1 << 20,
            ..Default::default()
        }));
        let mut sink = AnswerSink::open(
            key.clone(),
            "u",
            store.clone(),
            output,
            StreamSettings::default(),
        )
        .await
        .unwrap();
        sink.status(StatusLine {
            text: "thinking",
            phase: Phase::Understanding,
            intent: None,
            lang: "en",
        })
        .await;
        sink.delta("Hello ".into()).await;
        sink.delta("there".into()).await;
        sink.done(done(key)).await;
        replay_stream(store, key.clone(), "u".into(), None, Duration::ZERO)
            .map(|f| match f.unwrap() {
                BufferedFrame::Chunk { json, .. } | BufferedFrame::Terminal { json } => json,
            })
            .collect()
            .await
    }

    /// `/ws` gets frames, the OpenAI endpoint typed events, and both buffer the same frames
    /// for `resume`.
    #[tokio::test]
    async fn both_outputs_see_one_answer_and_buffer_the_same_frames() {
        let key = StreamKey {
            session_id: "s".into(),
            message_id: "m".into(),
        };
        let (tx, mut rx) = mpsc::channel(16);
        let lost = CancellationToken::new();
        let socket_buffer = answer(&key, AnswerOutput::Socket { tx, lost }).await;
        let mut socket = vec![];
        while let Ok(out) = rx.try_recv() {
            socket.push(match out {
                Outgoing::Frame(f) => f.to_json(),
                Outgoing::Raw(json) => json,
                Outgoing::Close(..) => panic!("an answer does not close the socket"),
            });
        }
        let (tx, mut rx) = mpsc::channel(16);
        let events_buffer = answer(&key, AnswerOutput::Events(tx)).await;
        let mut events = vec![];
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        assert_eq!(
            events,
            [
                AnswerEvent::Status(StatusLine {
                    text: "thinking",
                    phase: Phase::Understanding,
                    intent: None,
                    lang: "en",
                }),
                AnswerEvent::Chunk {
                    index: 0,
                    text: "Hello ".into()
                },
                AnswerEvent::Chunk {
                    index: 1,
                    text: "there".into()
                },
                AnswerEvent::Done(Box::new(done(&key))),
            ]
        );
        let frames: Vec<String> = events.iter().map(|e| e.to_frame(&key).to_json()).collect();
        assert_eq!(socket, frames);
        // The status line is live only; everything else is resumable, identically.
        assert_eq!(socket_buffer, frames[1..]);
        assert_eq!(events_buffer, socket_buffer);
    }

    /// Deltas that were already waiting share a frame beyond the batch size; the first
    /// chunks still go out alone, and a batch that reached its size goes out once nothing
    /// more is ready.
    #[tokio::test]
    async fn ready_deltas_coalesce_without_holding_text_back() {
        let key = StreamKey {
            session_id: "s".into(),
            message_id: "m".into(),
        };
        let store: Arc<dyn ResumeStore> =
            Arc::new(InMemoryResumeStore::new(ResumeLimits::default()));
        let (tx, mut rx) = mpsc::channel(64);
        let mut sink = AnswerSink::open(
            key,
            "u",
            store,
            AnswerOutput::Events(tx),
            StreamSettings::default(),
        )
        .await
        .unwrap();
        let unbatched = StreamSettings::default().unbatched_chunks as usize;
        for i in 0..unbatched + 10 {
            sink.delta_more_ready(format!("{i} ")).await;
        }
        sink.flush_full().await;
        // Two short of a full batch: held until the next delta or the flush deadline.
        sink.delta("a ".into()).await;
        sink.delta("b ".into()).await;
        assert!(sink.flush_due().is_some());
        let mut chunks = vec![];
        while let Ok(AnswerEvent::Chunk { text, .. }) = rx.try_recv() {
            chunks.push(text);
        }
        let mut expected: Vec<String> = (0..unbatched).map(|i| format!("{i} ")).collect();
        expected.push(
            (unbatched..unbatched + 10)
                .map(|i| format!("{i} "))
                .collect(),
        );
        assert_eq!(chunks, expected);
        // A batch is capped in bytes even while more is ready.
        let big = "x".repeat(MAX_COALESCED_BYTES / 2);
        for _ in 0..4 {
            sink.delta_more_ready(big.clone()).await;
        }
        let sizes: Vec<usize> = std::iter::from_fn(|| match rx.try_recv() {
            Ok(AnswerEvent::Chunk { text, .. }) => Some(text.len()),
            _ => None,
        })
        .collect();
        assert!(!sizes.is_empty() && sizes.iter().all(|&n| n <= MAX_COALESCED_BYTES + big.len()));
    }

    #[test]
    fn transitions_follow_the_lifecycle() {
        use StreamState::*;
        assert!(Initializing.can_go(WaitingFirstToken));
        assert!(WaitingFirstToken.can_go(Streaming));
        assert!(WaitingFirstToken.can_go(WaitingFirstToken));
        assert!(Streaming.can_go(Completed));
        assert!(!Completed.can_go(Streaming));
        assert!(!Initializing.can_go(Completed));
        assert!(!Cancelled.can_go(Error));
    }
}
