//! Budgets become deadlines. Each message carries a clock; every stage gets the smaller of its
//! own deadline and what is left before the message's first-token deadline, and that value
//! travels as the call's `grpc-timeout`. The stacks that run each call under its deadline
//! and breaker are in `crate::stack`; an over-budget stage adds a span event and counts
//! `budget_violations_total{stage}`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use mangaassist_config::{StageBudgets, StageDeadlines};
use mangaassist_resilience::BreakerOpen;
use parking_lot::Mutex;

/// Where a message stands against its deadlines.
#[derive(Debug, Clone)]
pub struct MessageClock {
    pub received: Instant,
    first_token: Duration,
    total: Duration,
}

impl MessageClock {
    pub fn new(received: Instant, deadlines: &StageDeadlines) -> Self {
        Self {
            received,
            first_token: Duration::from_millis(deadlines.first_token_ms),
            total: Duration::from_millis(deadlines.total_ms),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.received.elapsed()
    }

    pub fn elapsed_ms(&self) -> f64 {
        self.elapsed().as_secs_f64() * 1e3
    }

    /// Time left before the first token must be on its way.
    pub fn first_token_left(&self) -> Duration {
        self.first_token.saturating_sub(self.elapsed())
    }

    pub fn total_left(&self) -> Duration {
        self.total.saturating_sub(self.elapsed())
    }

    /// A stage's deadline: its own, capped by the message's remaining first-token budget
    /// (never zero: a zero `grpc-timeout` is invalid, and 1 ms fails fast anyway).
    pub fn stage_deadline(&self, stage_ms: u64) -> Duration {
        Duration::from_millis(stage_ms)
            .min(self.first_token_left())
            .max(Duration::from_millis(1))
    }
}

/// One stage of one message, as reported in `done.stages` and the waterfall log.
pub use mangaassist_protocol::StageTiming;

/// The stage timings of one message; shared with spawned phase-1 tasks.
#[derive(Debug, Clone, Default)]
pub struct Timings(Arc<Mutex<Vec<StageTiming>>>);

impl Timings {
    pub fn push(&self, t: StageTiming) {
        self.0.lock().push(t);
    }

    /// Sorted by start.
    pub fn snapshot(&self) -> Vec<StageTiming> {
        let mut v = self.0.lock().clone();
        v.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
        v
    }
}

/// Records a stage measured by the caller (embedding, context assembly, generation phases):
/// metric, budget check and timing entry.
pub fn record_stage(
    timings: &Timings,
    budgets: &StageBudgets,
    clock: &MessageClock,
    stage: &str,
    started: Instant,
    outcome: &str,
) {
    let duration = started.elapsed();
    let start_ms = started
        .saturating_duration_since(clock.received)
        .as_secs_f64()
        * 1e3;
    let duration_ms = duration.as_secs_f64() * 1e3;
    let budget_ms = budgets.for_stage(stage);
    metrics::histogram!("stage_latency_ms", "stage" => stage.to_string()).record(duration_ms);
    if let Some(b) = budget_ms
        && duration_ms > b as f64
    {
        metrics::counter!("budget_violations_total", "stage" => stage.to_string()).increment(1);
        // Inside the stage's span this becomes a span event on the trace; as a log line it is
        // noise (the `budget` target is at warn in the default filter).
        tracing::info!(
            target: "budget",
            stage,
            duration_ms,
            budget_ms = b,
            "stage over its latency budget"
        );
    }
    timings.push(StageTiming {
        stage: stage.to_string(),
        start_ms,
        duration_ms,
        budget_ms,
        outcome: outcome.to_string(),
    });
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("deadline of {0} ms exceeded")]
    Deadline(u64),
    #[error("{0}")]
    Rpc(#[from] tonic::Status),
    #[error("{0}")]
    Open(#[from] BreakerOpen),
}

impl StageError {
    pub fn outcome(&self) -> &'static str {
        match self {
            StageError::Deadline(_) => "deadline",
            StageError::Rpc(_) => "error",
            StageError::Open(_) => "circuit_open",
        }
    }

    /// Whether the failure says something about the dependency's health (and so counts
    /// toward opening its circuit). A caller's own mistake (bad argument, not found,
    /// permission) does not.
    pub fn is_dependency_failure(&self) -> bool {
        match self {
            StageError::Deadline(_) => true,
            StageError::Open(_) => false,
            StageError::Rpc(s) => matches!(
                s.code(),
                tonic::Code::Unavailable
                    | tonic::Code::Unknown
                    | tonic::Code::Internal
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Cancelled
                    | tonic::Code::DataLoss
            ),
        }
    }
}

/// What a stage needs besides its call: the message clock, the shared timings and budgets.
#[derive(Clone)]
pub struct StageCtx {
    pub clock: MessageClock,
    pub timings: Timings,
    pub budgets: Arc<StageBudgets>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_deadline_is_capped_by_the_first_token_budget() {
        let d = StageDeadlines {
            first_token_ms: 300,
            ..StageDeadlines::default()
        };
        let clock = MessageClock::new(Instant::now() - Duration::from_millis(200), &d);
        let got = clock.stage_deadline(500);
        assert!(got <= Duration::from_millis(100), "{got:?}");
        assert!(got >= Duration::from_millis(1));
        let late = MessageClock::new(Instant::now() - Duration::from_secs(5), &d);
        assert_eq!(late.stage_deadline(500), Duration::from_millis(1));
    }

    #[test]
    fn only_dependency_failures_count_for_breakers() {
        assert!(StageError::Deadline(5).is_dependency_failure());
        assert!(StageError::Rpc(tonic::Status::unavailable("x")).is_dependency_failure());
        assert!(!StageError::Rpc(tonic::Status::invalid_argument("x")).is_dependency_failure());
        assert!(!StageError::Rpc(tonic::Status::permission_denied("x")).is_dependency_failure());
    }
}
