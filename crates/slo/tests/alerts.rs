//! Alerts fire and clear exactly when the multiwindow rule says, driven by synthetic time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use mangaassist_slo::{BUCKET, SloConfig, SloMonitor, SloStatus};

/// Messages per 10 s bucket: with a 0.1 % budget, `bad` bad messages per bucket burn at `bad`×.
const PER_BUCKET: u64 = 1000;
const DAY_BUCKETS: usize = 8640;

/// Feeds whole buckets of traffic and keeps the per-bucket bad counts as a reference model.
struct Sim {
    monitor: SloMonitor,
    t0: Instant,
    bads: Vec<u64>,
}

impl Sim {
    fn new() -> Self {
        let monitor = SloMonitor::new(SloConfig::default()).unwrap();
        Self {
            monitor,
            t0: Instant::now(),
            bads: Vec::new(),
        }
    }

    /// Time of the bucket just fed (mid-bucket, so rounding cannot move it).
    fn now(&self) -> Instant {
        self.t0 + BUCKET * (self.bads.len() as u32 - 1) + BUCKET / 2
    }

    fn feed(&mut self, bad: u64) {
        let at = self.t0 + BUCKET * self.bads.len() as u32 + BUCKET / 2;
        for i in 0..PER_BUCKET {
            // Alternate the two kinds of bad message: errored and slow.
            let ms = match i {
                i if i < bad && i % 2 == 0 => None,
                i if i < bad => Some(2500.0),
                _ => Some(800.0),
            };
            self.monitor.record(at, ms);
        }
        self.bads.push(bad);
    }

    fn status(&self) -> SloStatus {
        self.monitor.status(self.now())
    }

    /// Burn rate of the last `buckets` buckets from the raw per-bucket counts.
    fn reference_burn(&self, buckets: usize) -> f64 {
        let recent = &self.bads[self.bads.len().saturating_sub(buckets)..];
        let bad: u64 = recent.iter().sum();
        let total = PER_BUCKET * recent.len() as u64;
        (bad as f64 / total as f64) / 0.001
    }

    fn reference_firing(&self) -> Vec<bool> {
        SloConfig::default()
            .alerts
            .iter()
            .map(|a| {
                let long = self.reference_burn((a.long.as_secs() / 10) as usize);
                let short = self.reference_burn((a.short.as_secs() / 10) as usize);
                long > a.threshold && short > a.threshold
            })
            .collect()
    }
}

fn firing(s: &SloStatus) -> Vec<bool> {
    s.alerts.iter().map(|a| a.firing).collect()
}

/// Index (0-based) of the first step of `steps` where alert `i` has `state`.
fn first_step(history: &[Vec<bool>], i: usize, state: bool) -> Option<usize> {
    history.iter().position(|f| f[i] == state)
}

#[test]
fn each_alert_fires_and_clears_exactly_when_expected() {
    let mut sim = Sim::new();
    for _ in 0..DAY_BUCKETS {
        sim.feed(0);
    }
    let s = sim.status();
    assert_eq!(firing(&s), [false, false, false]);
    assert_eq!(s.error_budget_remaining, 1.0);

    // 1.9 % of messages bad: burn rate 19×, above every threshold (14.4, 6, 3).
    let mut history = Vec::new();
    for _ in 0..1800 {
        sim.feed(19);
        let s = sim.status();
        let got = firing(&s);
        assert_eq!(got, sim.reference_firing(), "bad step {}", history.len());
        for (a, (long, short)) in s.alerts.iter().zip(
            SloConfig::default()
                .alerts
                .iter()
                .map(|a| (a.long.as_secs() / 10, a.short.as_secs() / 10)),
        ) {
            assert!((a.long_burn - sim.reference_burn(long as usize)).abs() < 1e-9);
            assert!((a.short_burn - sim.reference_burn(short as usize)).abs() < 1e-9);
        }
        history.push(got);
    }
    // The long windows gate the firing (the short ones saturate within minutes):
    // 19n/360 > 14.4 → n = 273; 19n/2160 > 6 → n = 683; 19n/8640 > 3 → n = 1365.
    assert_eq!(first_step(&history, 0, true), Some(272), "page");
    assert_eq!(first_step(&history, 1, true), Some(682), "ticket");
    assert_eq!(first_step(&history, 2, true), Some(1364), "dashboard");
    // Once firing they stay firing while the bad traffic lasts.
    assert!(history[272..].iter().all(|f| f[0]));
    assert!(history[682..].iter().all(|f| f[1]));
    assert!(history[1364..].iter().all(|f| f[2]));
    assert_eq!(sim.status().highest_firing.as_deref(), Some("page"));
    let remaining = sim.status().error_budget_remaining;
    // 1800 of 8640 buckets at 19×: 1 - 19·1800/8640.
    assert!(
        (remaining - (1.0 - 19.0 * 1800.0 / 8640.0)).abs() < 1e-9,
        "{remaining}"
    );
    assert!(remaining < 0.0, "overspent budget must show as negative");

    // The cause is fixed: all good traffic. Each alert clears when its SHORT window cools down,
    // while its long window is still far above the threshold:
    // 19(30-g)/30 ≤ 14.4 → g = 8; 19(180-g)/180 ≤ 6 → g = 124; 19(720-g)/720 ≤ 3 → g = 607.
    let mut history = Vec::new();
    let mut highest = Vec::new();
    for _ in 0..720 {
        sim.feed(0);
        let s = sim.status();
        let got = firing(&s);
        assert_eq!(got, sim.reference_firing(), "good step {}", history.len());
        let before = history.last().cloned().unwrap_or(vec![true; 3]);
        for (a, was) in s.alerts.iter().zip(before) {
            if a.firing || !was {
                continue;
            }
            // Cleared while the long window still burns: the short window did it.
            assert!(
                a.long_burn > a.threshold,
                "{} long window {} not above {}",
                a.name,
                a.long_burn,
                a.threshold
            );
        }
        highest.push(s.highest_firing.clone());
        history.push(got);
    }
    assert_eq!(first_step(&history, 0, false), Some(7), "page clears");
    assert_eq!(first_step(&history, 1, false), Some(123), "ticket clears");
    assert_eq!(
        first_step(&history, 2, false),
        Some(606),
        "dashboard clears"
    );
    // Cleared within one short window of good traffic, and they stay cleared.
    assert!(history[30..].iter().all(|f| !f[0]));
    assert!(history[180..].iter().all(|f| !f[1]));
    assert!(history[720 - 1..].iter().all(|f| !f[2]));
    assert_eq!(highest[6].as_deref(), Some("page"));
    assert_eq!(highest[7].as_deref(), Some("ticket"));
    assert_eq!(highest[123].as_deref(), Some("dashboard"));
    assert_eq!(highest[606], None);
}

#[test]
fn each_level_fires_only_for_its_burn_band() {
    // From a cold start the long and short windows hold the same traffic, so the burn rate
    // alone decides: 2× nothing, 4× dashboard, 10× ticket + dashboard, 19× everything.
    for (burn, expected, highest) in [
        (2, [false, false, false], None),
        (4, [false, false, true], Some("dashboard")),
        (10, [false, true, true], Some("ticket")),
        (19, [true, true, true], Some("page")),
    ] {
        let mut sim = Sim::new();
        for _ in 0..360 {
            sim.feed(burn);
        }
        let s = sim.status();
        assert_eq!(firing(&s), expected, "burn {burn}");
        assert_eq!(s.highest_firing.as_deref(), highest, "burn {burn}");
        for w in &s.windows {
            assert!((w.burn_rate - burn as f64).abs() < 1e-9, "{w:?}");
        }
    }
}

#[test]
fn buckets_roll_over_after_24h() {
    let m = SloMonitor::new(SloConfig::default()).unwrap();
    let t0 = Instant::now();
    let day = Duration::from_secs(86_400);
    let day_window = |now| {
        let s = m.status(now);
        let w = s.windows.iter().find(|w| w.window == "24h").unwrap();
        (w.total, w.bad)
    };
    for _ in 0..10 {
        m.record(t0, None);
    }
    m.record(t0 + Duration::from_secs(12 * 3600), Some(100.0));
    assert_eq!(day_window(t0 + day - Duration::from_secs(1)), (11, 10));
    // Bucket 0 leaves the 24 h window.
    assert_eq!(day_window(t0 + day), (1, 0));
    // Its slot is reused: the old counts must not come back.
    m.record(t0 + day, Some(100.0));
    assert_eq!(day_window(t0 + day), (2, 0));
    // A late message for the dropped bucket is ignored rather than merged into the new one.
    m.record(t0, None);
    assert_eq!(day_window(t0 + day), (2, 0));
    // A late message still inside the window counts.
    m.record(t0 + Duration::from_secs(13 * 3600), None);
    assert_eq!(day_window(t0 + day), (3, 1));
    // Short windows only see the last minutes.
    let s = m.status(t0 + day);
    let five = s.windows.iter().find(|w| w.window == "5m").unwrap();
    assert_eq!((five.total, five.bad), (1, 0));
    // After a long silence everything is forgotten.
    let later = t0 + 100 * day;
    assert_eq!(day_window(later), (0, 0));
    assert_eq!(m.status(later).error_budget_remaining, 1.0);
    m.record(later, None);
    assert_eq!(day_window(later), (1, 1));
    assert_eq!(m.status(later).error_budget_remaining, 1.0 - 1.0 / 0.001);
}

#[test]
fn memory_stays_bounded_at_250k_messages_per_minute() {
    let m = SloMonitor::new(SloConfig::default()).unwrap();
    let before = m.memory_bytes();
    assert!(before <= 8640 * 24, "{before} bytes");
    let t0 = Instant::now();
    // 250,000 per minute for 10 minutes, spread evenly, 1 in 2000 slow.
    let per_minute = 250_000u64;
    for minute in 0..10u64 {
        for i in 0..per_minute {
            let at = t0 + Duration::from_secs(minute * 60) + Duration::from_micros(i * 240);
            m.record(at, Some(if i % 2000 == 0 { 3000.0 } else { 100.0 }));
        }
    }
    assert_eq!(m.memory_bytes(), before);
    let s = m.status(t0 + Duration::from_secs(600));
    let day = s.windows.iter().find(|w| w.window == "24h").unwrap();
    assert_eq!(day.total, 2_500_000);
    assert_eq!(day.bad, 1_250);
    assert!((day.burn_rate - 0.5).abs() < 1e-9);
    assert!((s.error_budget_remaining - 0.5).abs() < 1e-9);
}

#[test]
fn concurrent_recording_loses_nothing() {
    let m = std::sync::Arc::new(SloMonitor::new(SloConfig::default()).unwrap());
    let t0 = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|k| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    let at = t0 + Duration::from_millis(i % 300_000 + k);
                    m.record(at, if i % 100 == 0 { None } else { Some(10.0) });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = m.status(t0 + Duration::from_secs(60));
    let w = s.windows.iter().find(|w| w.window == "1h").unwrap();
    assert_eq!((w.total, w.bad), (80_000, 800));
}

#[test]
fn status_serializes_for_the_admin_endpoint() {
    let m = SloMonitor::new(SloConfig::default()).unwrap();
    let now = Instant::now();
    m.record(now, None);
    m.publish_metrics(now);
    let v = serde_json::to_value(m.status(now)).unwrap();
    assert_eq!(v["target_ms"], 2000.0);
    assert_eq!(v["windows"].as_array().unwrap().len(), 6);
    assert_eq!(v["windows"][0]["window"], "5m");
    assert_eq!(v["alerts"][0]["name"], "page");
    assert_eq!(v["alerts"][0]["long_window"], "1h");
    assert_eq!(v["alerts"][0]["short_window"], "5m");
    assert_eq!(v["alerts"][0]["firing"], true);
    assert_eq!(v["highest_firing"], "page");
}
