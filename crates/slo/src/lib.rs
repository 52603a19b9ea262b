//! SLO monitor for the first-token SLO (seed 003): a message is good when its first visible
//! token arrived within 2,000 ms; an errored message is bad. The error budget is 0.1 % of
//! messages.
//!
//! Alerts use the multiwindow, multi-burn-rate technique: each alert has a long window (1 h,
//! 6 h, 24 h) and a short window of 1/12 of it (5 min, 30 min, 2 h) and fires while the burn
//! rate (error rate ÷ error budget) of BOTH exceeds its threshold (14.4× page, 6× ticket, 3×
//! dashboard). Requiring the long window avoids paging on a blip; requiring the short one makes
//! the alert clear within minutes once the cause is gone, instead of when the long window forgets.
//!
//! Memory is fixed whatever the traffic: counts live in 10 s buckets covering 24 h (8,640
//! buckets), never raw samples. Windows are whole buckets, the current partial bucket included,
//! so a "5m" window spans between 4 min 50 s and 5 min of traffic.
//!
//! The same alerts are available to Prometheus: [`SloMonitor::record`] increments
//! `slo_events_total` / `slo_bad_events_total`, and [`prometheus_rules`] renders the matching
//! recording and alerting rules (committed as `deploy/prometheus/mangaassist-slo.rules.yaml`).

mod rules;

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

pub use rules::prometheus_rules;

/// Width of one count bucket.
pub const BUCKET: Duration = Duration::from_secs(10);
/// How far back counts are kept; also the window of `error_budget_remaining`.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(24 * 3600);
const SLOTS: usize = (BUDGET_WINDOW.as_secs() / BUCKET.as_secs()) as usize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SloError {
    #[error("invalid SLO config: `{field}` {reason}")]
    InvalidConfig { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SloError {
    SloError::InvalidConfig {
        field: field.into(),
        reason: reason.into(),
    }
}

/// One burn-rate alert: fires while both windows burn faster than `threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnAlert {
    /// Also the `severity` label of the Prometheus alert: `page`, `ticket`, `dashboard`.
    pub name: String,
    pub long: Duration,
    pub short: Duration,
    pub threshold: f64,
}

impl BurnAlert {
    /// An alert with the customary short window of 1/12 of the long one.
    pub fn new(name: impl Into<String>, long: Duration, threshold: f64) -> Self {
        Self {
            name: name.into(),
            long,
            short: long / 12,
            threshold,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SloConfig {
    /// A message whose first visible token takes longer than this is bad.
    pub target_ms: f64,
    /// Fraction of messages allowed to be bad.
    pub error_budget: f64,
    pub alerts: Vec<BurnAlert>,
}

impl Default for SloConfig {
    /// Seed 003: 2,000 ms, 0.1 %, page 14.4× over 1 h, ticket 6× over 6 h, dashboard 3× over 24 h.
    fn default() -> Self {
        let hour = Duration::from_secs(3600);
        Self {
            target_ms: 2000.0,
            error_budget: 0.001,
            alerts: vec![
                BurnAlert::new("page", hour, 14.4),
                BurnAlert::new("ticket", 6 * hour, 6.0),
                BurnAlert::new("dashboard", 24 * hour, 3.0),
            ],
        }
    }
}

impl SloConfig {
    pub fn validate(&self) -> Result<(), SloError> {
        if !(self.target_ms.is_finite() && self.target_ms > 0.0) {
            return Err(invalid(
                "target_ms",
                format!(
                    "must be a positive number of milliseconds, got {}",
                    self.target_ms
                ),
            ));
        }
        if !(self.error_budget > 0.0 && self.error_budget < 1.0) {
            return Err(invalid(
                "error_budget",
                format!(
                    "must be a fraction strictly between 0 and 1 (0.001 = 0.1 %), got {}",
                    self.error_budget
                ),
            ));
        }
        for (i, alert) in self.alerts.iter().enumerate() {
            let field = |f: &str| format!("alerts[{i}].{f}");
            let name_ok = !alert.name.is_empty()
                && alert
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !name_ok {
                return Err(invalid(
                    field("name"),
                    format!("must be non-empty [a-z0-9_], got {:?}", alert.name),
                ));
            }
            if self.alerts[..i].iter().any(|a| a.name == alert.name) {
                return Err(invalid(
                    field("name"),
                    format!("{:?} is used by two alerts", alert.name),
                ));
            }
            if !(alert.threshold.is_finite() && alert.threshold > 0.0) {
                return Err(invalid(
                    field("threshold"),
                    format!("must be a positive burn rate, got {}", alert.threshold),
                ));
            }
            // The burn rate cannot exceed 1/budget (every message bad).
            if alert.threshold * self.error_budget >= 1.0 {
                return Err(invalid(
                    field("threshold"),
                    format!(
                        "{} can never be exceeded with an error budget of {} (maximum burn rate {})",
                        alert.threshold,
                        self.error_budget,
                        1.0 / self.error_budget
                    ),
                ));
            }
            for (f, window) in [("long", alert.long), ("short", alert.short)] {
                if window < BUCKET || window > BUDGET_WINDOW || !window_is_whole_buckets(window) {
                    return Err(invalid(
                        field(f),
                        format!(
                            "must be a whole number of {} s buckets between 10s and 24h, got {window:?}",
                            BUCKET.as_secs()
                        ),
                    ));
                }
            }
            if alert.short >= alert.long {
                return Err(invalid(
                    field("short"),
                    format!(
                        "must be shorter than the long window ({} >= {})",
                        window_label(alert.short),
                        window_label(alert.long)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every distinct alert window, shortest first.
    fn windows(&self) -> Vec<Duration> {
        let mut windows: Vec<Duration> =
            self.alerts.iter().flat_map(|a| [a.long, a.short]).collect();
        windows.sort();
        windows.dedup();
        windows
    }
}

fn window_is_whole_buckets(window: Duration) -> bool {
    window.as_nanos().is_multiple_of(BUCKET.as_nanos())
}

/// Prometheus-style label for a window: `5m`, `1h`, `24h`, `90s`.
pub fn window_label(window: Duration) -> String {
    let secs = window.as_secs();
    if secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowStatus {
    pub window: String,
    pub total: u64,
    pub bad: u64,
    pub error_rate: f64,
    /// `error_rate / error_budget`: 1.0 spends the budget exactly as fast as allowed.
    pub burn_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertStatus {
    pub name: String,
    pub threshold: f64,
    pub long_window: String,
    pub short_window: String,
    pub long_burn: f64,
    pub short_burn: f64,
    pub firing: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloStatus {
    pub target_ms: f64,
    pub error_budget: f64,
    /// Every alert window, shortest first.
    pub windows: Vec<WindowStatus>,
    pub alerts: Vec<AlertStatus>,
    /// `1 - bad / (error_budget * total)` over the last 24 h; 1.0 with no traffic. Negative
    /// means the budget is overspent (e.g. -1.0 = twice the allowed bad messages).
    pub error_budget_remaining: f64,
    /// The firing alert with the highest threshold (the most urgent), if any.
    pub highest_firing: Option<String>,
}

#[derive(Clone, Copy, Default)]
struct Bucket {
    /// Absolute bucket number (time since origin / BUCKET) whose counts this slot holds.
    epoch: u64,
    total: u64,
    bad: u64,
}

/// Tracks the SLO. Cheap to call from every connection (one short mutex hold per message).
pub struct SloMonitor {
    cfg: SloConfig,
    origin: Instant,
    buckets: Mutex<Box<[Bucket]>>,
}

impl SloMonitor {
    pub fn new(cfg: SloConfig) -> Result<Self, SloError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            origin: Instant::now(),
            buckets: Mutex::new(vec![Bucket::default(); SLOTS].into_boxed_slice()),
        })
    }

    pub fn config(&self) -> &SloConfig {
        &self.cfg
    }

    /// Whether a message counts against the budget: errored, slower than the target, or with a
    /// latency that is not a real measurement (NaN, negative, infinite).
    pub fn is_bad(&self, first_token_ms: Option<f64>) -> bool {
        match first_token_ms {
            None => true,
            Some(ms) => !(ms.is_finite() && ms >= 0.0 && ms <= self.cfg.target_ms),
        }
    }

    /// Heap bytes of the counts; constant for the monitor's lifetime.
    pub fn memory_bytes(&self) -> usize {
        SLOTS * std::mem::size_of::<Bucket>()
    }

    fn bucket_of(&self, now: Instant) -> u64 {
        // Instants before the monitor existed land in its first bucket.
        let since = now.saturating_duration_since(self.origin);
        (since.as_nanos() / BUCKET.as_nanos()) as u64
    }

    /// Counts one finished message; `first_token_ms` is None when the message errored.
    /// Messages older than 24 h relative to the newest bucket are ignored.
    pub fn record(&self, now: Instant, first_token_ms: Option<f64>) {
        let bad = self.is_bad(first_token_ms);
        metrics::counter!("slo_events_total").increment(1);
        if bad {
            metrics::counter!("slo_bad_events_total").increment(1);
        }
        let abs = self.bucket_of(now);
        let mut buckets = self.buckets.lock();
        let slot = &mut buckets[(abs % SLOTS as u64) as usize];
        if slot.epoch != abs {
            if slot.epoch > abs {
                // The slot already holds a newer bucket: this message fell out of the 24 h.
                return;
            }
            *slot = Bucket {
                epoch: abs,
                total: 0,
                bad: 0,
            };
        }
        slot.total += 1;
        slot.bad += u64::from(bad);
    }

    /// (total, bad) for each of `windows` (sorted ascending), ending with the bucket of `now`.
    fn counts(&self, now: Instant, windows: &[Duration]) -> Vec<(u64, u64)> {
        let cur = self.bucket_of(now);
        let mut out = Vec::with_capacity(windows.len());
        let (mut total, mut bad) = (0u64, 0u64);
        let mut next = windows.iter().peekable();
        let buckets = self.buckets.lock();
        // One walk back from the current bucket serves every window.
        for back in 0..SLOTS as u64 {
            let Some(abs) = cur.checked_sub(back) else {
                break;
            };
            let slot = &buckets[(abs % SLOTS as u64) as usize];
            if slot.epoch == abs {
                total += slot.total;
                bad += slot.bad;
            }
            while let Some(w) = next.peek() {
                if (back + 1) * BUCKET.as_secs() >= w.as_secs() {
                    out.push((total, bad));
                    next.next();
                } else {
                    break;
                }
            }
            if next.peek().is_none() {
                break;
            }
        }
        // Windows reaching back before the first bucket see everything there is.
        while next.next().is_some() {
            out.push((total, bad));
        }
        out
    }

    pub fn status(&self, now: Instant) -> SloStatus {
        let budget = self.cfg.error_budget;
        let mut windows = self.cfg.windows();
        let budget_window_missing = !windows.contains(&BUDGET_WINDOW);
        if budget_window_missing {
            windows.push(BUDGET_WINDOW);
        }
        let counts = self.counts(now, &windows);
        let ratio = |(total, bad): (u64, u64)| {
            if total == 0 {
                0.0
            } else {
                bad as f64 / total as f64
            }
        };
        let burn_of = |window: Duration| {
            windows
                .iter()
                .position(|w| *w == window)
                .map_or(0.0, |i| ratio(counts[i]) / budget)
        };

        let (day_total, day_bad) = windows
            .iter()
            .position(|w| *w == BUDGET_WINDOW)
            .map_or((0, 0), |i| counts[i]);
        let error_budget_remaining = if day_total == 0 {
            1.0
        } else {
            1.0 - day_bad as f64 / (budget * day_total as f64)
        };

        let alerts: Vec<AlertStatus> = self
            .cfg
            .alerts
            .iter()
            .map(|a| {
                let (long_burn, short_burn) = (burn_of(a.long), burn_of(a.short));
                AlertStatus {
                    name: a.name.clone(),
                    threshold: a.threshold,
                    long_window: window_label(a.long),
                    short_window: window_label(a.short),
                    long_burn,
                    short_burn,
                    firing: long_burn > a.threshold && short_burn > a.threshold,
                }
            })
            .collect();
        let highest_firing = alerts
            .iter()
            .filter(|a| a.firing)
            .max_by(|a, b| a.threshold.total_cmp(&b.threshold))
            .map(|a| a.name.clone());

        if budget_window_missing {
            windows.pop();
        }
        SloStatus {
            target_ms: self.cfg.target_ms,
            error_budget: budget,
            windows: windows
                .iter()
                .zip(&counts)
                .map(|(w, &(total, bad))| WindowStatus {
                    window: window_label(*w),
                    total,
                    bad,
                    error_rate: ratio((total, bad)),
                    burn_rate: ratio((total, bad)) / budget,
                })
                .collect(),
            alerts,
            error_budget_remaining,
            highest_firing,
        }
    }

    /// Sets `slo_burn_rate{window}`, `slo_error_budget_remaining` and `slo_alert_firing{alert}`
    /// (1 or 0) from [`SloMonitor::status`]; call it periodically, e.g. before each scrape.
    pub fn publish_metrics(&self, now: Instant) {
        let status = self.status(now);
        for w in &status.windows {
            metrics::gauge!("slo_burn_rate", "window" => w.window.clone()).set(w.burn_rate);
        }
        metrics::gauge!("slo_error_budget_remaining").set(status.error_budget_remaining);
        for a in &status.alerts {
            metrics::gauge!("slo_alert_firing", "alert" => a.name.clone()).set(if a.firing {
                1.0
            } else {
                0.0
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn err_field(cfg: &SloConfig) -> String {
        match cfg.validate().unwrap_err() {
            SloError::InvalidConfig { field, .. } => field,
        }
    }

    #[test]
    fn default_config_is_the_seed() {
        let cfg = SloConfig::default();
        cfg.validate().unwrap();
        let shorts: Vec<String> = cfg.alerts.iter().map(|a| window_label(a.short)).collect();
        assert_eq!(shorts, ["5m", "30m", "2h"]);
        let longs: Vec<String> = cfg.alerts.iter().map(|a| window_label(a.long)).collect();
        assert_eq!(longs, ["1h", "6h", "24h"]);
    }

    #[test]
    fn validation_names_the_bad_field() {
        let base = SloConfig::default();
        let mut cfg = base.clone();
        cfg.error_budget = 0.0;
        assert_eq!(err_field(&cfg), "error_budget");
        cfg.error_budget = 1.0;
        assert_eq!(err_field(&cfg), "error_budget");
        cfg.error_budget = f64::NAN;
        assert_eq!(err_field(&cfg), "error_budget");

        let mut cfg = base.clone();
        cfg.target_ms = -1.0;
        assert_eq!(err_field(&cfg), "target_ms");

        let mut cfg = base.clone();
        cfg.alerts[1].short = cfg.alerts[1].long;
        assert_eq!(err_field(&cfg), "alerts[1].short");

        let mut cfg = base.clone();
        cfg.alerts[2].long = Duration::from_secs(25 * 3600);
        assert_eq!(err_field(&cfg), "alerts[2].long");

        let mut cfg = base.clone();
        cfg.alerts[0].short = Duration::from_secs(95);
        assert_eq!(err_field(&cfg), "alerts[0].short");

        let mut cfg = base.clone();
        cfg.alerts[0].threshold = 0.0;
        assert_eq!(err_field(&cfg), "alerts[0].threshold");
        cfg.alerts[0].threshold = 1000.0;
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.contains("never be exceeded"), "{msg}");

        let mut cfg = base.clone();
        cfg.alerts[2].name = "page".into();
        assert_eq!(err_field(&cfg), "alerts[2].name");
        cfg.alerts[2].name = "Page!".into();
        assert_eq!(err_field(&cfg), "alerts[2].name");
        assert!(SloMonitor::new(cfg).is_err());
    }

    #[test]
    fn labels() {
        assert_eq!(window_label(Duration::from_secs(300)), "5m");
        assert_eq!(window_label(Duration::from_secs(7200)), "2h");
        assert_eq!(window_label(Duration::from_secs(86400)), "24h");
        assert_eq!(window_label(Duration::from_secs(90)), "90s");
        assert_eq!(window_label(Duration::from_secs(5400)), "90m");
    }

    #[test]
    fn what_counts_as_bad() {
        let m = SloMonitor::new(SloConfig::default()).unwrap();
        assert!(m.is_bad(None));
        assert!(!m.is_bad(Some(2000.0)));
        assert!(m.is_bad(Some(2000.5)));
        assert!(m.is_bad(Some(f64::NAN)));
        assert!(m.is_bad(Some(-1.0)));
        assert!(!m.is_bad(Some(0.0)));
    }
}
