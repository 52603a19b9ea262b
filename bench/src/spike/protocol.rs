//! What the spike coordinator and its worker processes say to each other: one JSON object per
//! line, commands on the worker's stdin, events on its stdout. Workers send raw first-token
//! times, so the coordinator's percentiles are those of the merged sample, not an average of
//! per-worker percentiles.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Coordinator → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Open this worker's sessions; answered by [`Event::Opened`].
    Open(OpenJob),
    /// Keep the sessions idle for a while, checking every second that they are still open,
    /// then ping each one; answered by [`Event::Held`].
    Hold { duration_ms: u64 },
    /// Open-loop Poisson arrivals at `rate` messages/s for `duration_ms` over the sessions;
    /// answered by [`Event::Step`] once every answer is in (or timed out).
    Step {
        index: usize,
        rate: f64,
        duration_ms: u64,
        seed: u64,
    },
}

/// How a worker's sessions authenticate: the gateways' HS256 key, as `bench run` mints with.
#[derive(Clone, Serialize, Deserialize)]
pub struct AuthJob {
    pub secret: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl std::fmt::Debug for AuthJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthJob")
            .field("secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenJob {
    pub worker: usize,
    /// `ws://…/ws` of every gateway; session `u` goes to gateway `u % len`.
    pub gateways: Vec<String>,
    /// Global index of this worker's first session (user `spike-vu-<index>`).
    pub first_session: usize,
    pub sessions: usize,
    /// `None`: connect with `?user_id=` (gateways without auth).
    pub auth: Option<AuthJob>,
    pub token_ttl_s: u64,
    pub run_id: String,
    pub data_dir: PathBuf,
    pub seed: u64,
    pub unique: bool,
    /// A message without `done` after this long is a `timeout` error.
    pub timeout_ms: u64,
    /// WebSocket handshakes in flight at once.
    pub concurrency: usize,
}

/// Worker → coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Opened {
        open: usize,
        failed: usize,
        first_error: Option<String>,
        open_s: f64,
    },
    Held(HoldReport),
    Step(StepReport),
    /// The command could not be carried out; the worker stays up for the next one.
    Failed {
        message: String,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HoldReport {
    /// Fewest sessions open at any one-second check.
    pub open_min: usize,
    pub open_end: usize,
    /// Sessions that answered the ping at the end of the hold.
    pub pinged: usize,
    /// Round trips of those pings, microseconds.
    pub ping_us: Vec<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StepReport {
    pub index: usize,
    /// Messages sent (arrivals that found a free session).
    pub sent: u64,
    /// Answered with `done` and no error.
    pub answered: u64,
    /// Arrivals with no open session below its in-flight limit.
    pub dropped: u64,
    /// Sends more than 5 ms behind their schedule (the worker could not keep up).
    pub late: u64,
    pub max_late_ms: f64,
    /// Error code → count (`timeout`, `connection_closed`, gateway codes...).
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Answered, but degraded: a level below `full`, or a stage that hit its deadline,
    /// failed or found its circuit open (the answer went on without that context).
    pub degraded: u64,
    /// Chunk indices below `done.chunks` that never arrived.
    pub lost_chunks: u64,
    /// Chunk frames whose index had been seen already.
    pub duplicate_chunks: u64,
    /// Chunk frames out of order (`bench run`'s `index_faults`).
    pub index_faults: u64,
    /// Sessions open when the step ended.
    pub open_end: usize,
    /// Send to first chunk of every answered message, microseconds.
    pub ttft_us: Vec<u32>,
}

/// Microseconds, saturating (a sample never comes near 71 minutes).
pub fn micros(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
