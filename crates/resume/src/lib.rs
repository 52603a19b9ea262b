//! The stream resume buffer (seed 000, scenario 3): the gateway writes every frame of every
//! answer here, so a client whose WebSocket dropped can reconnect with
//! `{"action":"resume","session_id","message_id","last_chunk_idx"}` and receive exactly the
//! chunks after `last_chunk_idx`, then the rest live while the answer is still streaming.
//!
//! [`ResumeStore`] is the contract, small enough for a shared backend to let one gateway resume
//! a stream another one produced. Buffers live 60 s after the answer finished, and 120 s after
//! the last write when the producer vanished. [`replay_stream`] turns repeated `read_after`
//! calls into one stream a resuming connection simply forwards.
//!
//! Two backends: [`InMemoryResumeStore`] (one gateway) and [`RedisResumeStore`] (shared by every
//! gateway on the same Redis; the gateway builds it when `gateway.resume_backend = "redis"`):
//! Lua scripts over a hash and a list per stream with key TTLs, and pub/sub to wake long polls
//! (its module docs say why not `XREAD BLOCK`).

mod memory;
mod redis;

use std::{collections::VecDeque, fmt, sync::Arc, time::Duration};

use futures::Stream;

pub use memory::InMemoryResumeStore;
pub use redis::RedisResumeStore;

/// Identifies one answer's stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub session_id: String,
    pub message_id: String,
}

impl StreamKey {
    pub fn new(session_id: impl Into<String>, message_id: impl Into<String>) -> Self {
        Self {
            session_id: session_id.into(),
            message_id: message_id.into(),
        }
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.session_id, self.message_id)
    }
}

/// One frame as it was sent to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BufferedFrame {
    /// A `chunk` frame; `json` is the exact text frame.
    Chunk { index: u32, json: String },
    /// The frames that end the answer: its `done` or `error`, after the frames that go
    /// with it (a `products` frame), one per line. Compact JSON never holds a raw newline,
    /// and one record means a reader gets the cards and the `done` together or neither.
    Terminal { json: String },
}

impl BufferedFrame {
    pub fn chunk(index: u32, json: impl Into<String>) -> Self {
        Self::Chunk {
            index,
            json: json.into(),
        }
    }

    pub fn terminal(json: impl Into<String>) -> Self {
        Self::Terminal { json: json.into() }
    }

    /// A terminal record of `before` (one frame) followed by the terminal frame `last`.
    pub fn terminal_after(before: &str, last: &str) -> Self {
        Self::Terminal {
            json: format!("{before}\n{last}"),
        }
    }

    /// The text frames to send, in order (a terminal record may hold more than one).
    pub fn frames(&self) -> impl Iterator<Item = &str> {
        self.json().split('\n').filter(|f| !f.is_empty())
    }

    /// The exact text frame to send.
    pub fn json(&self) -> &str {
        match self {
            Self::Chunk { json, .. } | Self::Terminal { json } => json,
        }
    }

    pub fn chunk_index(&self) -> Option<u32> {
        match self {
            Self::Chunk { index, .. } => Some(*index),
            Self::Terminal { .. } => None,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Terminal { .. })
    }
}

/// What one `read_after` returns.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Replay {
    /// Chunks with `index > after`, in order, then the terminal frame if the answer finished.
    pub frames: Vec<BufferedFrame>,
    /// The answer finished; `frames` ends with its terminal frame.
    pub finished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error(
        "no resumable stream for this session_id/message_id: unknown, or its buffer expired \
         (kept 60 s after the answer finished)"
    )]
    NotFound,
    // Deliberately silent about the real owner: the caller may be probing other users' streams.
    #[error("this stream belongs to another user")]
    Forbidden,
    #[error("a stream with this session_id/message_id already exists")]
    AlreadyExists,
    #[error("chunk out of order: expected index {expected}, got {got}")]
    OutOfOrder { expected: u32, got: u32 },
    #[error("the stream already ended with a terminal frame; nothing may follow it")]
    Finished,
    #[error("the stream exceeds the resume buffer's per-stream size cap")]
    TooLarge,
    #[error("resume buffer backend failed: {0}")]
    Backend(String),
}

impl ResumeError {
    /// Stable snake_case code for error frames and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Forbidden => "forbidden",
            Self::AlreadyExists => "already_exists",
            Self::OutOfOrder { .. } => "out_of_order",
            Self::Finished => "finished",
            Self::TooLarge => "too_large",
            Self::Backend(_) => "backend",
        }
    }
}

/// Size and lifetime limits of a resume buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeLimits {
    /// How long a finished answer stays resumable.
    pub keep_after_done: Duration,
    /// How long an unfinished answer stays after its last write (its producer vanished).
    pub ttl: Duration,
    /// Streams kept at once; beyond it the oldest finished stream (else the least recently
    /// written one) is evicted.
    pub max_streams: usize,
    /// Bytes of frames per stream (plus a small fixed cost per frame, so empty frames count).
    pub max_bytes_per_stream: usize,
    /// Bytes of frames across every stream of the in-memory buffer; beyond it the oldest
    /// finished streams (else the least recently written) are evicted. Redis bounds its own
    /// memory (`maxmemory`), so the Redis store does not enforce it.
    pub max_total_bytes: usize,
}

impl Default for ResumeLimits {
    fn default() -> Self {
        Self {
            keep_after_done: Duration::from_secs(60),
            ttl: Duration::from_secs(120),
            max_streams: 100_000,
            max_bytes_per_stream: 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Where answers are buffered for resumption.
#[async_trait::async_trait]
pub trait ResumeStore: Send + Sync + 'static {
    /// Starts a buffer owned by `owner` (user id). Err(AlreadyExists) if the key exists.
    async fn open(&self, key: &StreamKey, owner: &str) -> Result<(), ResumeError>;
    /// Chunk indices must arrive consecutively from 0 (Err OutOfOrder{expected, got}); nothing
    /// after Terminal (Err Finished). The terminal frame is accepted even past the size cap so a
    /// stream can always be closed.
    async fn append(&self, key: &StreamKey, frame: BufferedFrame) -> Result<(), ResumeError>;
    /// Frames after chunk `after` (None = from the start). If there are none yet and the stream
    /// is not finished, waits up to `wait` for more (long poll), then returns what it has
    /// (possibly empty). A finished stream always returns its terminal frame, even when `after`
    /// is at or past the last chunk.
    async fn read_after(
        &self,
        key: &StreamKey,
        owner: &str,
        after: Option<u32>,
        wait: Duration,
    ) -> Result<Replay, ResumeError>;
    /// Whether a stream exists and who owns it (for error messages / tests).
    async fn owner(&self, key: &StreamKey) -> Result<Option<String>, ResumeError>;
}

/// Replays a stream from chunk `after` (exclusive; None = from the start) to its terminal frame,
/// long-polling `poll` at a time while the answer is still being produced. Ends after the
/// terminal frame, or after yielding the first error (e.g. NotFound once the buffer of a
/// vanished producer expires).
pub fn replay_stream(
    store: Arc<dyn ResumeStore>,
    key: StreamKey,
    owner: String,
    after: Option<u32>,
    poll: Duration,
) -> impl Stream<Item = Result<BufferedFrame, ResumeError>> + Send + 'static {
    struct State {
        store: Arc<dyn ResumeStore>,
        key: StreamKey,
        owner: String,
        after: Option<u32>,
        poll: Duration,
        pending: VecDeque<BufferedFrame>,
        done: bool,
    }

    let state = State {
        store,
        key,
        owner,
        after,
        poll,
        pending: VecDeque::new(),
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(frame) = st.pending.pop_front() {
                return Some((Ok(frame), st));
            }
            if st.done {
                return None;
            }
            match st
                .store
                .read_after(&st.key, &st.owner, st.after, st.poll)
                .await
            {
                Ok(replay) => {
                    let (before, got_any) = (st.pending.len(), !replay.frames.is_empty());
                    for frame in replay.frames {
                        match frame.chunk_index() {
                            // A backend that re-delivers overlapping ranges must not cause
                            // duplicates on the client.
                            Some(index) if st.after.is_some_and(|a| index <= a) => {}
                            Some(index) => {
                                st.after = Some(index);
                                st.pending.push_back(frame);
                            }
                            None => st.pending.push_back(frame),
                        }
                    }
                    st.done = replay.finished;
                    if got_any && !st.done && st.pending.len() == before {
                        // Only already-seen chunks: asking again would spin on the same answer.
                        st.done = true;
                        let msg = "backend replayed only chunks at or before the resume point";
                        return Some((Err(ResumeError::Backend(msg.into())), st));
                    }
                }
                Err(e) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use futures::StreamExt;
    use parking_lot::Mutex;

    /// A backend that answers each read with a scripted replay, ignoring `after`.
    struct Scripted(Mutex<VecDeque<Replay>>);

    #[async_trait::async_trait]
    impl ResumeStore for Scripted {
        async fn open(&self, _: &StreamKey, _: &str) -> Result<(), ResumeError> {
            Ok(())
        }
        async fn append(&self, _: &StreamKey, _: BufferedFrame) -> Result<(), ResumeError> {
            Ok(())
        }
        async fn read_after(
            &self,
            _: &StreamKey,
            _: &str,
            _: Option<u32>,
            _: Duration,
        ) -> Result<Replay, ResumeError> {
            self.0
                .lock()
                .pop_front()
                .ok_or(ResumeError::Backend("script exhausted".into()))
        }
        async fn owner(&self, _: &StreamKey) -> Result<Option<String>, ResumeError> {
            Ok(None)
        }
    }

    fn chunks(range: std::ops::RangeInclusive<u32>) -> Vec<BufferedFrame> {
        range
            .map(|i| BufferedFrame::chunk(i, i.to_string()))
            .collect()
    }

    async fn run(
        script: Vec<Replay>,
        after: Option<u32>,
    ) -> Vec<Result<BufferedFrame, ResumeError>> {
        let store: Arc<dyn ResumeStore> = Arc::new(Scripted(Mutex::new(script.into())));
        replay_stream(
            store,
            StreamKey::new("s", "m"),
            "u".into(),
            after,
            Duration::from_secs(1),
        )
        .collect()
        .await
    }

    #[tokio::test]
    async fn replay_stream_drops_overlapping_chunks() {
        let mut last = chunks(3..=5);
        last.push(BufferedFrame::terminal("t"));
        let script = vec![
            Replay {
                frames: chunks(2..=4),
                finished: false,
            },
            Replay::default(),
            Replay {
                frames: last,
                finished: true,
            },
        ];
        let got: Vec<_> = run(script, Some(2))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let mut expected = chunks(3..=5);
        expected.push(BufferedFrame::terminal("t"));
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn replay_stream_fails_instead_of_spinning_on_stale_chunks() {
        let script = vec![Replay {
            frames: chunks(0..=1),
            finished: false,
        }];
        let got = run(script, Some(1)).await;
        assert!(
            matches!(got.as_slice(), [Err(ResumeError::Backend(_))]),
            "{got:?}"
        );
    }
}
