//! Per-dependency circuit breaker.
//!
//! Closed: calls go through; `failure_threshold` consecutive failures open the circuit.
//! Open: calls are rejected at once (no waiting on a dependency known to be down) for `open_for`.
//! Half-open: up to `half_open_probes` calls are let through; that many successes close the
//! circuit, any failure opens it again.
//!
//! Each admitted call holds a [`Permit`] and reports its outcome through it. Dropping a permit
//! without reporting is neutral (the caller cancelled, e.g. a speculative retrieval that was no
//! longer needed): a cancelled call says nothing about the dependency's health.
//!
//! Outcomes of calls admitted before the last state change (an earlier "epoch") still count in the
//! totals but never move the state: a slow call that started before the circuit opened must not
//! close it again, nor may a straggler failure re-open a circuit that probes have just closed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;

/// Tuning of one [`CircuitBreaker`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit (0 is treated as 1).
    pub failure_threshold: u32,
    /// How long the circuit stays open before letting probes through.
    #[serde(serialize_with = "serialize_ms")]
    pub open_for: Duration,
    /// Calls let through while half-open; that many successes close the circuit (0 is treated as 1).
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

fn serialize_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(duration_ms(*d))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The externally visible state of a circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    HalfOpen,
    Open,
}

impl CircuitState {
    pub fn label(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::HalfOpen => "half_open",
            CircuitState::Open => "open",
        }
    }

    /// Value of the `circuit_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> f64 {
        match self {
            CircuitState::Closed => 0.0,
            CircuitState::HalfOpen => 1.0,
            CircuitState::Open => 2.0,
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A call was refused because the dependency's circuit is open (or half-open with all probe
/// slots taken).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit for {dependency} is open; next probe in {} ms", duration_ms(*retry_in))]
pub struct BreakerOpen {
    pub dependency: String,
    /// Time until the circuit lets a probe through; zero while half-open probes are in flight
    /// (their outcome is imminent).
    pub retry_in: Duration,
}

/// Point-in-time view of a breaker, for `/status` pages and tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BreakerSnapshot {
    pub dependency: String,
    pub state: CircuitState,
    pub consecutive_failures: u32,
    /// Time since the circuit left the closed state (kept across half-open re-opens); `None` while
    /// closed.
    pub opened_for_ms: Option<u64>,
    /// Time until the next probe is allowed; `Some` only while open.
    pub retry_in_ms: Option<u64>,
    pub successes: u64,
    pub failures: u64,
    pub rejected: u64,
    /// Neutral outcomes: permits dropped without a verdict (cancelled calls, errors the caller
    /// did not attribute to the dependency).
    pub neutral: u64,
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

impl Phase {
    fn public(&self) -> CircuitState {
        match self {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Bumped on every state change; permits remember the epoch they were issued in.
    epoch: u64,
    consecutive_failures: u32,
    /// When the circuit last left the closed state.
    unhealthy_since: Option<Instant>,
    successes: u64,
    failures: u64,
    rejected: u64,
    neutral: u64,
}

#[derive(Clone, Copy)]
struct Transition {
    from: CircuitState,
    to: CircuitState,
}

impl Inner {
    fn set(&mut self, phase: Phase) -> Transition {
        let from = self.phase.public();
        self.phase = phase;
        self.epoch += 1;
        Transition {
            from,
            to: self.phase.public(),
        }
    }

    /// Open → half-open once `open_for` has elapsed.
    fn advance(&mut self, now: Instant) -> Option<Transition> {
        match self.phase {
            Phase::Open { until } if now >= until => Some(self.set(Phase::HalfOpen {
                in_flight: 0,
                successes: 0,
            })),
            _ => None,
        }
    }
}

/// Per-dependency circuit breaker; share it through an `Arc`.
pub struct CircuitBreaker {
    dependency: String,
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("dependency", &self.dependency)
            .field("cfg", &self.cfg)
            .field("inner", &*self.inner.lock())
            .finish()
    }
}

enum Outcome {
    Success,
    Failure,
    Cancelled,
}

impl CircuitBreaker {
    pub fn new(dependency: impl Into<String>, cfg: BreakerConfig) -> Self {
        let cfg = BreakerConfig {
            failure_threshold: cfg.failure_threshold.max(1),
            half_open_probes: cfg.half_open_probes.max(1),
            ..cfg
        };
        let breaker = Self {
            dependency: dependency.into(),
            cfg,
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                epoch: 0,
                consecutive_failures: 0,
                unhealthy_since: None,
                successes: 0,
                failures: 0,
                rejected: 0,
                neutral: 0,
            }),
        };
        metrics::gauge!("circuit_state", "dependency" => breaker.dependency.clone())
            .set(CircuitState::Closed.gauge_value());
        breaker
    }

    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    /// Asks to make one call to the dependency now.
    pub fn try_acquire(self: &Arc<Self>) -> Result<Permit, BreakerOpen> {
        self.try_acquire_at(Instant::now())
    }

    pub fn try_acquire_at(self: &Arc<Self>, now: Instant) -> Result<Permit, BreakerOpen> {
        let (result, transition) = {
            let mut inner = self.inner.lock();
            let transition = inner.advance(now);
            let result = match &mut inner.phase {
                Phase::Closed => Ok(false),
                Phase::HalfOpen {
                    in_flight,
                    successes,
                } if *in_flight + *successes < self.cfg.half_open_probes => {
                    *in_flight += 1;
                    Ok(true)
                }
                Phase::HalfOpen { .. } => Err(Duration::ZERO),
                Phase::Open { until } => Err(until.saturating_duration_since(now)),
            };
            let result = match result {
                Ok(probe) => Ok(Permit {
                    breaker: Some(Arc::clone(self)),
                    epoch: inner.epoch,
                    probe,
                }),
                Err(retry_in) => {
                    inner.rejected += 1;
                    Err(BreakerOpen {
                        dependency: self.dependency.clone(),
                        retry_in,
                    })
                }
            };
            (result, transition)
        };
        if let Some(t) = transition {
            self.emit(t);
        }
        if result.is_err() {
            metrics::counter!("circuit_rejections_total", "dependency" => self.dependency.clone())
                .increment(1);
        }
        result
    }

    /// Current state; an open circuit whose `open_for` has elapsed reports (and becomes) half-open.
    pub fn state(&self) -> CircuitState {
        self.state_at(Instant::now())
    }

    pub fn state_at(&self, now: Instant) -> CircuitState {
        let (state, transition) = {
            let mut inner = self.inner.lock();
            let transition = inner.advance(now);
            (inner.phase.public(), transition)
        };
        if let Some(t) = transition {
            self.emit(t);
        }
        state
    }

    pub fn snapshot(&self) -> BreakerSnapshot {
        self.snapshot_at(Instant::now())
    }

    pub fn snapshot_at(&self, now: Instant) -> BreakerSnapshot {
        let (snapshot, transition) = {
            let mut inner = self.inner.lock();
            let transition = inner.advance(now);
            let retry_in_ms = match inner.phase {
                Phase::Open { until } => Some(duration_ms(until.saturating_duration_since(now))),
                _ => None,
            };
            let snapshot = BreakerSnapshot {
                dependency: self.dependency.clone(),
                state: inner.phase.public(),
                consecutive_failures: inner.consecutive_failures,
                opened_for_ms: inner
                    .unhealthy_since
                    .map(|since| duration_ms(now.saturating_duration_since(since))),
                retry_in_ms,
                successes: inner.successes,
                failures: inner.failures,
                rejected: inner.rejected,
                neutral: inner.neutral,
            };
            (snapshot, transition)
        };
        if let Some(t) = transition {
            self.emit(t);
        }
        snapshot
    }

    fn report(&self, epoch: u64, probe: bool, outcome: Outcome, now: Instant) {
        let transition = {
            let mut inner = self.inner.lock();
            match outcome {
                Outcome::Success => inner.successes += 1,
                Outcome::Failure => inner.failures += 1,
                Outcome::Cancelled => inner.neutral += 1,
            }
            if epoch != inner.epoch {
                None
            } else {
                self.apply(&mut inner, probe, outcome, now)
            }
        };
        if let Some(t) = transition {
            self.emit(t);
        }
    }

    fn apply(
        &self,
        inner: &mut Inner,
        probe: bool,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Transition> {
        let open = Phase::Open {
            until: now + self.cfg.open_for,
        };
        match (&mut inner.phase, outcome) {
            (Phase::Closed, Outcome::Success) => {
                inner.consecutive_failures = 0;
                None
            }
            (Phase::Closed, Outcome::Failure) => {
                inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
                if inner.consecutive_failures >= self.cfg.failure_threshold {
                    inner.unhealthy_since = Some(now);
                    Some(inner.set(open))
                } else {
                    None
                }
            }
            (Phase::HalfOpen { .. }, Outcome::Failure) if probe => {
                inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
                Some(inner.set(open))
            }
            (
                Phase::HalfOpen {
                    in_flight,
                    successes,
                },
                Outcome::Success,
            ) if probe => {
                *in_flight = in_flight.saturating_sub(1);
                *successes += 1;
                if *successes >= self.cfg.half_open_probes {
                    inner.consecutive_failures = 0;
                    inner.unhealthy_since = None;
                    Some(inner.set(Phase::Closed))
                } else {
                    None
                }
            }
            (Phase::HalfOpen { in_flight, .. }, Outcome::Cancelled) if probe => {
                // Frees the probe slot so another call can find out whether the dependency is back.
                *in_flight = in_flight.saturating_sub(1);
                None
            }
            _ => None,
        }
    }

    fn emit(&self, t: Transition) {
        let dependency = self.dependency.as_str();
        match t.to {
            CircuitState::Open => tracing::warn!(
                dependency,
                from = t.from.label(),
                to = t.to.label(),
                open_for_ms = duration_ms(self.cfg.open_for),
                "circuit opened"
            ),
            CircuitState::HalfOpen => tracing::info!(
                dependency,
                from = t.from.label(),
                to = t.to.label(),
                "circuit half-open, probing"
            ),
            CircuitState::Closed => tracing::info!(
                dependency,
                from = t.from.label(),
                to = t.to.label(),
                "circuit closed"
            ),
        }
        metrics::gauge!("circuit_state", "dependency" => self.dependency.clone())
            .set(t.to.gauge_value());
        metrics::counter!(
            "circuit_transitions_total",
            "dependency" => self.dependency.clone(),
            "to" => t.to.label()
        )
        .increment(1);
    }
}

/// Leave to make one call; report the outcome with [`Permit::success`] or [`Permit::failure`].
/// Dropping it without either is neutral (cancelled call).
#[must_use = "a permit must report the call's outcome; dropping it counts as cancelled"]
pub struct Permit {
    breaker: Option<Arc<CircuitBreaker>>,
    epoch: u64,
    probe: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field(
                "dependency",
                &self.breaker.as_ref().map(|b| b.dependency.as_str()),
            )
            .field("epoch", &self.epoch)
            .field("probe", &self.probe)
            .finish()
    }
}

impl Permit {
    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    pub fn success(self) {
        self.success_at(Instant::now());
    }

    pub fn failure(self) {
        self.failure_at(Instant::now());
    }

    pub fn success_at(mut self, now: Instant) {
        self.finish(Outcome::Success, now);
    }

    pub fn failure_at(mut self, now: Instant) {
        self.finish(Outcome::Failure, now);
    }

    fn finish(&mut self, outcome: Outcome, now: Instant) {
        if let Some(breaker) = self.breaker.take() {
            breaker.report(self.epoch, self.probe, outcome, now);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.breaker.is_some() {
            self.finish(Outcome::Cancelled, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn breaker(threshold: u32, open_ms: u64, probes: u32) -> Arc<CircuitBreaker> {
        Arc::new(CircuitBreaker::new(
            "rag",
            BreakerConfig {
                failure_threshold: threshold,
                open_for: Duration::from_millis(open_ms),
                half_open_probes: probes,
            },
        ))
    }

    fn fail_n(b: &Arc<CircuitBreaker>, n: u32, now: Instant) {
        for _ in 0..n {
            b.try_acquire_at(now).unwrap().failure_at(now);
        }
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let cfg = BreakerConfig::default();
        assert_eq!(cfg.failure_threshold, 5);
        assert_eq!(cfg.open_for, Duration::from_secs(5));
        assert_eq!(cfg.half_open_probes, 1);
        assert_eq!(CircuitState::HalfOpen.gauge_value(), 1.0);
        assert_eq!(
            serde_json::to_value(CircuitState::HalfOpen).unwrap(),
            "half_open"
        );
    }

    #[test]
    fn opens_after_threshold_consecutive_failures_only() {
        let t0 = Instant::now();
        let b = breaker(3, 1000, 1);
        fail_n(&b, 2, t0);
        // A success in between resets the streak.
        b.try_acquire_at(t0).unwrap().success_at(t0);
        fail_n(&b, 2, t0);
        assert_eq!(b.state_at(t0), CircuitState::Closed);
        assert_eq!(b.snapshot_at(t0).consecutive_failures, 2);
        fail_n(&b, 1, t0);
        assert_eq!(b.state_at(t0), CircuitState::Open);
        let err = b
            .try_acquire_at(t0 + Duration::from_millis(400))
            .unwrap_err();
        assert_eq!(err.dependency, "rag");
        assert_eq!(err.retry_in, Duration::from_millis(600));
        assert_eq!(
            err.to_string(),
            "circuit for rag is open; next probe in 600 ms"
        );
        let snap = b.snapshot_at(t0 + Duration::from_millis(400));
        assert_eq!(snap.rejected, 1);
        assert_eq!(snap.failures, 5);
        assert_eq!(snap.successes, 1);
        assert_eq!(snap.opened_for_ms, Some(400));
        assert_eq!(snap.retry_in_ms, Some(600));
    }

    #[test]
    fn half_open_admits_only_the_configured_probes_and_closes_on_their_success() {
        let t0 = Instant::now();
        let b = breaker(1, 1000, 2);
        fail_n(&b, 1, t0);
        let t1 = t0 + Duration::from_millis(1000);
        assert_eq!(b.state_at(t1), CircuitState::HalfOpen);
        let p1 = b.try_acquire_at(t1).unwrap();
        let p2 = b.try_acquire_at(t1).unwrap();
        assert!(p1.is_probe() && p2.is_probe());
        let err = b.try_acquire_at(t1).unwrap_err();
        assert_eq!(err.retry_in, Duration::ZERO);
        p1.success_at(t1);
        // One success of two: still half-open, and the freed slot is not reusable (1 in flight +
        // 1 success = 2 probes).
        assert_eq!(b.state_at(t1), CircuitState::HalfOpen);
        assert!(b.try_acquire_at(t1).is_err());
        p2.success_at(t1);
        assert_eq!(b.state_at(t1), CircuitState::Closed);
        let snap = b.snapshot_at(t1);
        assert_eq!(snap.opened_for_ms, None);
        assert_eq!(snap.consecutive_failures, 0);
        assert!(!b.try_acquire_at(t1).unwrap().is_probe());
    }

    #[test]
    fn a_failed_probe_reopens_for_a_full_period() {
        let t0 = Instant::now();
        let b = breaker(2, 1000, 1);
        fail_n(&b, 2, t0);
        let t1 = t0 + Duration::from_millis(1500);
        b.try_acquire_at(t1).unwrap().failure_at(t1);
        assert_eq!(b.state_at(t1), CircuitState::Open);
        let err = b.try_acquire_at(t1).unwrap_err();
        assert_eq!(err.retry_in, Duration::from_millis(1000));
        // Unhealthy since the first opening, not the re-opening.
        assert_eq!(b.snapshot_at(t1).opened_for_ms, Some(1500));
    }

    #[test]
    fn a_dropped_probe_frees_its_slot_without_changing_state() {
        let t0 = Instant::now();
        let b = breaker(1, 100, 1);
        fail_n(&b, 1, t0);
        let t1 = t0 + Duration::from_millis(100);
        let probe = b.try_acquire_at(t1).unwrap();
        assert!(b.try_acquire_at(t1).is_err());
        drop(probe);
        assert_eq!(b.state_at(t1), CircuitState::HalfOpen);
        let probe = b.try_acquire_at(t1).unwrap();
        probe.success_at(t1);
        assert_eq!(b.state_at(t1), CircuitState::Closed);
        assert_eq!(b.snapshot_at(t1).neutral, 1);
    }

    #[test]
    fn dropping_a_permit_while_closed_does_not_reset_the_failure_streak() {
        let t0 = Instant::now();
        let b = breaker(2, 100, 1);
        fail_n(&b, 1, t0);
        drop(b.try_acquire_at(t0).unwrap());
        fail_n(&b, 1, t0);
        assert_eq!(b.state_at(t0), CircuitState::Open);
    }

    #[test]
    fn outcomes_from_an_earlier_epoch_do_not_move_the_state() {
        let t0 = Instant::now();
        let b = breaker(1, 100, 1);
        let slow = b.try_acquire_at(t0).unwrap();
        let straggler = b.try_acquire_at(t0).unwrap();
        fail_n(&b, 1, t0);
        assert_eq!(b.state_at(t0), CircuitState::Open);
        // A call admitted before the circuit opened succeeds late: the circuit stays open.
        slow.success_at(t0 + Duration::from_millis(10));
        assert_eq!(
            b.state_at(t0 + Duration::from_millis(10)),
            CircuitState::Open
        );
        let t1 = t0 + Duration::from_millis(100);
        b.try_acquire_at(t1).unwrap().success_at(t1);
        assert_eq!(b.state_at(t1), CircuitState::Closed);
        // A pre-open straggler failing after recovery does not re-open it.
        straggler.failure_at(t1);
        assert_eq!(b.state_at(t1), CircuitState::Closed);
        let snap = b.snapshot_at(t1);
        assert_eq!((snap.successes, snap.failures), (2, 2));
    }

    #[test]
    fn zero_threshold_and_probes_are_treated_as_one() {
        let t0 = Instant::now();
        let b = breaker(0, 10, 0);
        assert_eq!(b.config().failure_threshold, 1);
        fail_n(&b, 1, t0);
        assert_eq!(b.state_at(t0), CircuitState::Open);
        let t1 = t0 + Duration::from_millis(10);
        b.try_acquire_at(t1).unwrap().success_at(t1);
        assert_eq!(b.state_at(t1), CircuitState::Closed);
    }

    #[test]
    fn snapshot_serializes_with_snake_case_state() {
        let t0 = Instant::now();
        let b = breaker(1, 2000, 1);
        fail_n(&b, 1, t0);
        let v = serde_json::to_value(b.snapshot_at(t0 + Duration::from_millis(500))).unwrap();
        assert_eq!(v["dependency"], "rag");
        assert_eq!(v["state"], "open");
        assert_eq!(v["retry_in_ms"], 1500);
        assert_eq!(v["opened_for_ms"], 500);
        let cfg = serde_json::to_value(b.config()).unwrap();
        assert_eq!(cfg["open_for"], 2000);
    }

    #[test]
    fn breaker_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CircuitBreaker>();
        assert_send_sync::<Permit>();
    }
}
