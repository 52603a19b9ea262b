//! The breaker and the routing switch publish what dashboards read: `circuit_state`,
//! `circuit_transitions_total`, `circuit_rejections_total`, `routing_flips_total`,
//! `routing_medium_to_fast`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mangaassist_resilience::{AdaptiveConfig, AdaptiveRouter, BreakerConfig, CircuitBreaker};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};
use parking_lot::Mutex;
use tokio::time::Instant;

/// Last value of every gauge and total of every counter, keyed by `name{k=v,...}`.
#[derive(Default)]
struct Capture {
    values: Mutex<BTreeMap<String, f64>>,
}

struct Handle {
    capture: Arc<Capture>,
    key: String,
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self
            .capture
            .values
            .lock()
            .entry(self.key.clone())
            .or_default() += value as f64;
    }
    fn absolute(&self, value: u64) {
        self.capture
            .values
            .lock()
            .insert(self.key.clone(), value as f64);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        *self
            .capture
            .values
            .lock()
            .entry(self.key.clone())
            .or_default() += value;
    }
    fn decrement(&self, value: f64) {
        *self
            .capture
            .values
            .lock()
            .entry(self.key.clone())
            .or_default() -= value;
    }
    fn set(&self, value: f64) {
        self.capture.values.lock().insert(self.key.clone(), value);
    }
}

struct CaptureRecorder(Arc<Capture>);

impl CaptureRecorder {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        Arc::new(Handle {
            capture: Arc::clone(&self.0),
            key: format!("{}{{{}}}", key.name(), labels.join(",")),
        })
    }
}

impl Recorder for CaptureRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn get(capture: &Capture, key: &str) -> Option<f64> {
    capture.values.lock().get(key).copied()
}

#[test]
fn breaker_transitions_are_visible_as_metrics() {
    let capture = Arc::new(Capture::default());
    let recorder = CaptureRecorder(Arc::clone(&capture));
    metrics::with_local_recorder(&recorder, || {
        let t0 = Instant::now();
        let b = Arc::new(CircuitBreaker::new(
            "intent",
            BreakerConfig {
                failure_threshold: 1,
                open_for: Duration::from_secs(1),
                half_open_probes: 1,
            },
        ));
        assert_eq!(get(&capture, "circuit_state{dependency=intent}"), Some(0.0));
        b.try_acquire_at(t0).unwrap().failure_at(t0);
        assert_eq!(get(&capture, "circuit_state{dependency=intent}"), Some(2.0));
        b.try_acquire_at(t0).unwrap_err();
        b.try_acquire_at(t0).unwrap_err();
        assert_eq!(
            get(&capture, "circuit_rejections_total{dependency=intent}"),
            Some(2.0)
        );
        let t1 = t0 + Duration::from_secs(1);
        let probe = b.try_acquire_at(t1).unwrap();
        assert_eq!(get(&capture, "circuit_state{dependency=intent}"), Some(1.0));
        probe.success_at(t1);
        assert_eq!(get(&capture, "circuit_state{dependency=intent}"), Some(0.0));
        for to in ["open", "half_open", "closed"] {
            assert_eq!(
                get(
                    &capture,
                    &format!("circuit_transitions_total{{dependency=intent,to={to}}}")
                ),
                Some(1.0),
                "transition to {to}"
            );
        }
    });
}

#[test]
fn routing_flips_are_visible_as_metrics() {
    let capture = Arc::new(Capture::default());
    let recorder = CaptureRecorder(Arc::clone(&capture));
    metrics::with_local_recorder(&recorder, || {
        let t0 = Instant::now();
        let r = AdaptiveRouter::new(AdaptiveConfig::default());
        assert_eq!(get(&capture, "routing_medium_to_fast{}"), Some(0.0));
        for _ in 0..20 {
            r.record_smart_first_token(t0, 2000.0);
        }
        assert!(r.medium_to_fast(t0));
        assert_eq!(get(&capture, "routing_medium_to_fast{}"), Some(1.0));
        assert_eq!(get(&capture, "routing_flips_total{to=fast}"), Some(1.0));
        let t1 = t0 + Duration::from_secs(61);
        for _ in 0..20 {
            r.record_smart_first_token(t1, 100.0);
        }
        assert!(!r.medium_to_fast(t1));
        assert_eq!(get(&capture, "routing_medium_to_fast{}"), Some(0.0));
        assert_eq!(get(&capture, "routing_flips_total{to=smart}"), Some(1.0));
    });
}
