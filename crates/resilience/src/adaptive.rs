//! Sliding-window latency percentiles and the adaptive routing switch of seed 000 scenario 1
//! ("route medium-complexity traffic to the fast model when the smart model's first-token p95
//! exceeds 1500 ms").
//!
//! The switch has hysteresis: it turns on when the window's p95 rises above `threshold_ms` and
//! off only when it falls below `recover_below_ms`, so a p95 hovering around the threshold does
//! not flip routing on every message.
//!
//! Recovery when little smart traffic remains: while the switch is on, only high-complexity
//! messages still reach the smart model, so its window may hold too few samples for a
//! trustworthy p95. The switch then stays on (no evidence that the smart model recovered) until
//! the window has held fewer than `min_samples` for one whole window length, and then turns
//! off: the samples that justified the flip are long gone, and sending medium traffic back to
//! the smart model is the only way to measure it again. If it is still slow, the next
//! `min_samples` first tokens flip the switch back on. Worst case after smart traffic stops
//! entirely, medium traffic returns to the smart model two window lengths after the last slow
//! sample (one for the samples to age out, one of starvation).

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;

/// Latencies (ms) observed during the last `window`, at most `max_samples` of them (the oldest
/// are dropped first, so under heavy traffic the window effectively covers the most recent
/// `max_samples` observations).
#[derive(Clone, Debug)]
pub struct LatencyWindow {
    window: Duration,
    max_samples: usize,
    samples: VecDeque<(Instant, f64)>,
    scratch: Vec<f64>,
}

impl LatencyWindow {
    pub fn new(window: Duration, max_samples: usize) -> Self {
        let max_samples = max_samples.max(1);
        Self {
            window,
            max_samples,
            samples: VecDeque::with_capacity(max_samples.min(4096)),
            scratch: Vec::new(),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Records one latency; negative and non-finite values are ignored.
    pub fn record(&mut self, now: Instant, ms: f64) {
        if !ms.is_finite() || ms < 0.0 {
            return;
        }
        self.prune(now);
        self.push_evicting(now, ms);
    }

    /// Appends a sample, returning the oldest one if the window was at `max_samples`.
    fn push_evicting(&mut self, now: Instant, ms: f64) -> Option<f64> {
        let evicted = if self.samples.len() >= self.max_samples {
            self.samples.pop_front().map(|(_, ms)| ms)
        } else {
            None
        };
        self.samples.push_back((now, ms));
        evicted
    }

    /// Nearest-rank percentile ([`mangaassist_stats::nearest_rank`]), `q` in `[0, 1]` (0.95 for
    /// p95); `None` if the window is empty or `q` is out of range.
    pub fn percentile(&mut self, now: Instant, q: f64) -> Option<f64> {
        self.prune(now);
        let rank = mangaassist_stats::nearest_rank(self.samples.len(), q)?;
        self.scratch.clear();
        self.scratch.extend(self.samples.iter().map(|&(_, ms)| ms));
        let (_, value, _) = self
            .scratch
            .select_nth_unstable_by(rank - 1, f64::total_cmp);
        Some(*value)
    }

    /// Samples within the window at `now`.
    pub fn len(&mut self, now: Instant) -> usize {
        self.prune(now);
        self.samples.len()
    }

    pub fn is_empty(&mut self, now: Instant) -> bool {
        self.len(now) == 0
    }

    fn expired(&self, recorded: Instant, now: Instant) -> bool {
        now.saturating_duration_since(recorded) >= self.window
    }

    fn prune(&mut self, now: Instant) {
        while self.pop_expired(now).is_some() {}
    }

    /// Removes and returns the oldest sample if it has left the window.
    fn pop_expired(&mut self, now: Instant) -> Option<f64> {
        let &(recorded, _) = self.samples.front()?;
        if !self.expired(recorded, now) {
            return None;
        }
        self.samples.pop_front().map(|(_, ms)| ms)
    }

    /// When the window will hold fewer than `min` samples if nothing new arrives.
    fn drops_below(&self, min: usize) -> Option<Instant> {
        let n = self.samples.len();
        if n < min {
            return None;
        }
        self.samples
            .get(n - min)
            .map(|&(recorded, _)| recorded + self.window)
    }
}

/// Tuning of the adaptive routing switch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdaptiveConfig {
    /// Smart-model first-token p95 above which medium traffic goes to the fast model.
    pub threshold_ms: f64,
    /// p95 below which it goes back (hysteresis; clamped to at most `threshold_ms`).
    pub recover_below_ms: f64,
    #[serde(serialize_with = "serialize_ms")]
    pub window: Duration,
    /// Samples needed before the p95 is trusted (0 is treated as 1).
    pub min_samples: usize,
    pub enabled: bool,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            threshold_ms: 1500.0,
            recover_below_ms: 1200.0,
            window: Duration::from_secs(60),
            min_samples: 20,
            enabled: true,
        }
    }
}

fn serialize_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(duration_ms(*d))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// State of the switch, for `/status` pages and tests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoutingSnapshot {
    pub enabled: bool,
    /// Medium-complexity traffic currently goes to the fast model.
    pub active: bool,
    pub smart_p95_ms: Option<f64>,
    pub samples: usize,
    pub min_samples: usize,
    pub threshold_ms: f64,
    pub recover_below_ms: f64,
    /// Flips in either direction since start.
    pub flips: u64,
    /// How long the switch has been on; `None` while off.
    pub active_since_ms: Option<u64>,
}

/// Samples kept by the router; at 1 first token per 15 ms this still covers a whole minute.
const ROUTER_MAX_SAMPLES: usize = 4096;

/// The adaptive routing switch; share it through an `Arc`.
///
/// The decision is O(1) per call: instead of selecting the p95 on every message, the router
/// counts the window's samples at or below `threshold_ms` and below `recover_below_ms`, which is
/// all a nearest-rank comparison needs (p95 > T ⇔ fewer than ⌈0.95·n⌉ samples are ≤ T). The p95
/// value itself is only computed for snapshots and flip logs.
#[derive(Debug)]
pub struct AdaptiveRouter {
    cfg: AdaptiveConfig,
    inner: Mutex<RouterInner>,
}

#[derive(Debug)]
struct RouterInner {
    window: LatencyWindow,
    /// Samples in the window that are <= threshold_ms.
    at_or_below_threshold: usize,
    /// Samples in the window that are < recover_below_ms.
    below_recover: usize,
    active_since: Option<Instant>,
    /// While active: when the window fell below `min_samples`.
    starved_since: Option<Instant>,
    flips: u64,
}

impl RouterInner {
    fn forget(&mut self, cfg: &AdaptiveConfig, ms: f64) {
        if ms <= cfg.threshold_ms {
            self.at_or_below_threshold -= 1;
        }
        if ms < cfg.recover_below_ms {
            self.below_recover -= 1;
        }
    }

    fn prune(&mut self, cfg: &AdaptiveConfig, now: Instant) {
        while let Some(ms) = self.window.pop_expired(now) {
            self.forget(cfg, ms);
        }
    }
}

/// Nearest rank of the 95th percentile among `n` samples: the rule [`LatencyWindow::percentile`]
/// reports with, so the counted decision and the reported p95 always agree.
fn p95_rank(n: usize) -> usize {
    mangaassist_stats::nearest_rank(n, 0.95).unwrap_or(1)
}

#[derive(Clone, Copy)]
enum Flip {
    On,
    Off { starved: bool },
}

impl AdaptiveRouter {
    pub fn new(cfg: AdaptiveConfig) -> Self {
        let mut cfg = cfg;
        if cfg.threshold_ms.is_nan() || cfg.recover_below_ms.is_nan() {
            // A NaN compares false with everything and would flip on any traffic.
            tracing::warn!("adaptive routing: threshold is NaN, routing switch disabled");
            cfg.enabled = false;
        } else if cfg.recover_below_ms > cfg.threshold_ms {
            tracing::warn!(
                threshold_ms = cfg.threshold_ms,
                recover_below_ms = cfg.recover_below_ms,
                "adaptive routing: recover_below_ms above threshold_ms, clamped to the threshold"
            );
            cfg.recover_below_ms = cfg.threshold_ms;
        }
        cfg.min_samples = cfg.min_samples.clamp(1, ROUTER_MAX_SAMPLES);
        metrics::gauge!("routing_medium_to_fast").set(0.0);
        Self {
            inner: Mutex::new(RouterInner {
                window: LatencyWindow::new(cfg.window, ROUTER_MAX_SAMPLES),
                at_or_below_threshold: 0,
                below_recover: 0,
                active_since: None,
                starved_since: None,
                flips: 0,
            }),
            cfg,
        }
    }

    pub fn config(&self) -> &AdaptiveConfig {
        &self.cfg
    }

    /// Records one smart-model time-to-first-token; negative and non-finite values are ignored.
    pub fn record_smart_first_token(&self, now: Instant, ms: f64) {
        if !ms.is_finite() || ms < 0.0 {
            return;
        }
        let mut inner = self.inner.lock();
        self.note_starvation(&mut inner, now);
        inner.prune(&self.cfg, now);
        if let Some(evicted) = inner.window.push_evicting(now, ms) {
            inner.forget(&self.cfg, evicted);
        }
        if ms <= self.cfg.threshold_ms {
            inner.at_or_below_threshold += 1;
        }
        if ms < self.cfg.recover_below_ms {
            inner.below_recover += 1;
        }
    }

    /// Whether medium-complexity traffic should go to the fast model now.
    pub fn medium_to_fast(&self, now: Instant) -> bool {
        self.evaluate(now)
    }

    pub fn snapshot(&self, now: Instant) -> RoutingSnapshot {
        self.evaluate(now);
        let mut inner = self.inner.lock();
        RoutingSnapshot {
            enabled: self.cfg.enabled,
            active: inner.active_since.is_some(),
            smart_p95_ms: inner.window.percentile(now, 0.95),
            samples: inner.window.len(now),
            min_samples: self.cfg.min_samples,
            threshold_ms: self.cfg.threshold_ms,
            recover_below_ms: self.cfg.recover_below_ms,
            flips: inner.flips,
            active_since_ms: inner
                .active_since
                .map(|since| duration_ms(now.saturating_duration_since(since))),
        }
    }

    /// While active, remembers the exact moment the window fell below `min_samples` (not the
    /// moment somebody noticed), before pruning forgets which samples were there.
    fn note_starvation(&self, inner: &mut RouterInner, now: Instant) {
        if inner.active_since.is_some()
            && inner.starved_since.is_none()
            && let Some(at) = inner.window.drops_below(self.cfg.min_samples)
            && at <= now
        {
            inner.starved_since = Some(at);
        }
    }

    /// Applies the flip rules at `now` and returns whether the switch is on.
    fn evaluate(&self, now: Instant) -> bool {
        let (active, flip) = {
            let mut inner = self.inner.lock();
            self.note_starvation(&mut inner, now);
            inner.prune(&self.cfg, now);
            let samples = inner.window.samples.len();
            let rank = p95_rank(samples);
            let enough = samples >= self.cfg.min_samples;
            let flip = if inner.active_since.is_none() {
                let p95_above = enough && inner.at_or_below_threshold < rank;
                (self.cfg.enabled && p95_above).then_some(Flip::On)
            } else if enough {
                inner.starved_since = None;
                (inner.below_recover >= rank).then_some(Flip::Off { starved: false })
            } else {
                let since = *inner.starved_since.get_or_insert(now);
                (now.saturating_duration_since(since) >= self.cfg.window)
                    .then_some(Flip::Off { starved: true })
            };
            match flip {
                Some(Flip::On) => {
                    inner.active_since = Some(now);
                    inner.starved_since = None;
                }
                Some(Flip::Off { .. }) => {
                    inner.active_since = None;
                    inner.starved_since = None;
                }
                None => {}
            }
            let flip = flip.map(|flip| {
                inner.flips += 1;
                (flip, inner.window.percentile(now, 0.95), samples)
            });
            (inner.active_since.is_some(), flip)
        };
        if let Some((flip, p95, samples)) = flip {
            self.emit(flip, p95, samples);
        }
        active
    }

    fn emit(&self, flip: Flip, p95: Option<f64>, samples: usize) {
        let p95_ms = p95.unwrap_or(f64::NAN);
        match flip {
            Flip::On => tracing::warn!(
                p95_ms,
                samples,
                threshold_ms = self.cfg.threshold_ms,
                "smart model slow, routing medium-complexity traffic to the fast model"
            ),
            Flip::Off { starved: false } => tracing::info!(
                p95_ms,
                samples,
                recover_below_ms = self.cfg.recover_below_ms,
                "smart model recovered, routing medium-complexity traffic back to it"
            ),
            Flip::Off { starved: true } => tracing::info!(
                samples,
                min_samples = self.cfg.min_samples,
                "too few smart-model samples for a whole window, routing medium-complexity traffic back to it"
            ),
        }
        let (to, gauge) = match flip {
            Flip::On => ("fast", 1.0),
            Flip::Off { .. } => ("smart", 0.0),
        };
        metrics::counter!("routing_flips_total", "to" => to).increment(1);
        metrics::gauge!("routing_medium_to_fast").set(gauge);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn nearest_rank_percentiles() {
        let t0 = Instant::now();
        let mut w = LatencyWindow::new(Duration::from_secs(60), 1000);
        assert_eq!(w.percentile(t0, 0.95), None);
        for ms in (1..=100).rev() {
            w.record(t0, ms as f64);
        }
        assert_eq!(w.percentile(t0, 0.95), Some(95.0));
        assert_eq!(w.percentile(t0, 0.5), Some(50.0));
        assert_eq!(w.percentile(t0, 0.0), Some(1.0));
        assert_eq!(w.percentile(t0, 1.0), Some(100.0));
        assert_eq!(w.percentile(t0, 1.5), None);
        assert_eq!(w.percentile(t0, f64::NAN), None);
        w.record(t0, f64::NAN);
        w.record(t0, -1.0);
        assert_eq!(w.len(t0), 100);
    }

    #[test]
    fn window_drops_old_samples_and_is_bounded() {
        let t0 = Instant::now();
        let mut w = LatencyWindow::new(10 * S, 3);
        w.record(t0, 1000.0);
        w.record(t0 + 5 * S, 10.0);
        assert_eq!(w.percentile(t0 + 9 * S, 1.0), Some(1000.0));
        assert_eq!(w.percentile(t0 + 10 * S, 1.0), Some(10.0));
        assert_eq!(w.len(t0 + 15 * S), 0);
        for i in 0..10 {
            w.record(t0 + 20 * S, i as f64);
        }
        assert_eq!(w.len(t0 + 20 * S), 3);
        assert_eq!(w.percentile(t0 + 20 * S, 0.0), Some(7.0));
    }

    fn router() -> AdaptiveRouter {
        AdaptiveRouter::new(AdaptiveConfig::default())
    }

    fn feed(r: &AdaptiveRouter, at: Instant, n: usize, ms: f64) {
        for _ in 0..n {
            r.record_smart_first_token(at, ms);
        }
    }

    #[test]
    fn needs_min_samples_before_flipping() {
        let t0 = Instant::now();
        let r = router();
        feed(&r, t0, 19, 3000.0);
        assert!(!r.medium_to_fast(t0));
        feed(&r, t0, 1, 3000.0);
        assert!(r.medium_to_fast(t0));
        let snap = r.snapshot(t0 + S);
        assert!(snap.active);
        assert_eq!(snap.flips, 1);
        assert_eq!(snap.samples, 20);
        assert_eq!(snap.smart_p95_ms, Some(3000.0));
        assert_eq!(snap.active_since_ms, Some(1000));
    }

    #[test]
    fn hysteresis_between_recover_and_threshold() {
        let t0 = Instant::now();
        let r = router();
        // p95 of 1400 ms: below the threshold, so no flip.
        feed(&r, t0, 40, 1400.0);
        assert!(!r.medium_to_fast(t0));
        // New slow samples push p95 over 1500.
        feed(&r, t0 + S, 40, 1600.0);
        assert!(r.medium_to_fast(t0 + S));
        // Both batches aged out; a p95 between recover_below and the threshold keeps it on.
        feed(&r, t0 + 62 * S, 40, 1400.0);
        assert!(r.medium_to_fast(t0 + 62 * S));
        assert_eq!(r.snapshot(t0 + 62 * S).smart_p95_ms, Some(1400.0));
        // Below 1200: flips off.
        feed(&r, t0 + 123 * S, 40, 900.0);
        assert!(!r.medium_to_fast(t0 + 123 * S));
        assert_eq!(r.snapshot(t0 + 123 * S).flips, 2);
    }

    #[test]
    fn recovers_after_a_whole_window_without_enough_samples() {
        let t0 = Instant::now();
        let r = router();
        feed(&r, t0, 25, 2500.0);
        assert!(r.medium_to_fast(t0));
        // A trickle of smart traffic (complex queries only) keeps the window under 20 samples.
        feed(&r, t0 + 30 * S, 5, 2500.0);
        // All first 25 samples expire at t0+60 s: the window drops to 5 < 20 then.
        assert!(r.medium_to_fast(t0 + 60 * S));
        assert!(r.medium_to_fast(t0 + 119 * S));
        // Starved since t0+60 s for a whole window (60 s): back to the smart model at t0+120 s.
        assert!(!r.medium_to_fast(t0 + 120 * S));
        let snap = r.snapshot(t0 + 120 * S);
        assert_eq!(snap.flips, 2);
        assert_eq!(snap.active_since_ms, None);
    }

    #[test]
    fn starvation_time_is_exact_even_when_nobody_asked_in_between() {
        let t0 = Instant::now();
        let r = router();
        feed(&r, t0, 20, 2500.0);
        assert!(r.medium_to_fast(t0));
        // Nobody asks between t0 and t0+119 s; the window dropped below 20 at t0+60 s.
        assert!(r.medium_to_fast(t0 + 119 * S));
        assert!(!r.medium_to_fast(t0 + 120 * S));
    }

    #[test]
    fn disabled_router_never_flips_but_still_reports_p95() {
        let t0 = Instant::now();
        let r = AdaptiveRouter::new(AdaptiveConfig {
            enabled: false,
            ..AdaptiveConfig::default()
        });
        feed(&r, t0, 50, 5000.0);
        assert!(!r.medium_to_fast(t0));
        let snap = r.snapshot(t0);
        assert_eq!(snap.smart_p95_ms, Some(5000.0));
        assert_eq!(snap.flips, 0);
    }

    #[test]
    fn inverted_hysteresis_is_clamped() {
        let r = AdaptiveRouter::new(AdaptiveConfig {
            recover_below_ms: 2000.0,
            ..AdaptiveConfig::default()
        });
        assert_eq!(r.config().recover_below_ms, 1500.0);
    }

    #[test]
    fn snapshot_serializes() {
        let t0 = Instant::now();
        let r = router();
        let v = serde_json::to_value(r.snapshot(t0)).unwrap();
        assert_eq!(v["active"], false);
        assert_eq!(v["smart_p95_ms"], serde_json::Value::Null);
        assert_eq!(v["threshold_ms"], 1500.0);
        let cfg = serde_json::to_value(r.config()).unwrap();
        assert_eq!(cfg["window"], 60_000);
    }
}
