//! Verdicts of `compare` and the bootstrap on synthetic latency data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mangaassist_stats::{
    CompareOptions, MwMethod, Severity, StatsError, bootstrap_p95_change, cliffs_delta, compare,
    mann_whitney_u, percentile,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Lognormal latencies (ms) with the given median and log-sd, via Box-Muller.
fn lognormal(seed: u64, n: usize, median: f64, sigma: f64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u1 = 1.0 - rng.random::<f64>();
            let u2 = rng.random::<f64>();
            let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            median * (sigma * normal).exp()
        })
        .collect()
}

fn scaled(xs: &[f64], factor: f64) -> Vec<f64> {
    xs.iter().map(|x| x * factor).collect()
}

#[test]
fn identical_samples_are_no_regression() {
    let base = lognormal(1, 500, 800.0, 0.5);
    let c = compare(&base, &base, &CompareOptions::default()).unwrap();
    assert_eq!(c.mann_whitney.p_value, 1.0);
    assert_eq!(c.cliffs_delta, 0.0);
    assert_eq!(c.p95_change, 0.0);
    assert!(!c.significant && c.negligible && !c.regression && !c.improvement);
    assert_eq!(c.severity, Severity::None);
    assert!(!c.gate_failed);
    assert!(c.p95_change_ci.contains(0.0), "{:?}", c.p95_change_ci);

    // Independent draws of one distribution: whatever the p-value, no regression.
    let other = lognormal(2, 500, 800.0, 0.5);
    let c = compare(&base, &other, &CompareOptions::default()).unwrap();
    assert!(!c.regression && !c.gate_failed, "{c:?}");
    assert!(c.negligible, "delta {}", c.cliffs_delta);
    assert!(c.p95_change_ci.contains(0.0), "{:?}", c.p95_change_ci);
}

#[test]
fn thirty_percent_slower_is_a_sev2_gate_failure() {
    let base = lognormal(3, 500, 800.0, 0.5);
    let current = scaled(&lognormal(4, 500, 800.0, 0.5), 1.3);
    let c = compare(&base, &current, &CompareOptions::default()).unwrap();
    assert!(c.significant && !c.negligible, "{c:?}");
    assert!(c.cliffs_delta > 0.2, "delta {}", c.cliffs_delta);
    assert!(c.regression && !c.improvement);
    assert!(
        c.p95_change > 0.25 && c.p95_change <= 0.5,
        "p95 change {}",
        c.p95_change
    );
    assert_eq!(c.severity, Severity::Sev2);
    assert!(c.gate_failed);
    assert!(
        c.p95_change_ci.contains(c.p95_change),
        "{:?}",
        c.p95_change_ci
    );
    assert!(c.p95_change_ci.lo > 0.0, "{:?}", c.p95_change_ci);
    assert_eq!(c.mann_whitney.method, MwMethod::Asymptotic);

    // Exactly +30 % on the same draws: p95 change is 0.3 up to rounding.
    let c = compare(&base, &scaled(&base, 1.3), &CompareOptions::default()).unwrap();
    assert!((c.p95_change - 0.3).abs() < 1e-12, "{}", c.p95_change);
    assert_eq!(c.severity, Severity::Sev2);
    assert!(c.regression && c.gate_failed);
}

#[test]
fn tiny_shift_on_huge_samples_is_significant_but_passes() {
    let base = lognormal(5, 50_000, 800.0, 0.5);
    let current = scaled(&lognormal(6, 50_000, 800.0, 0.5), 1.05);
    let c = compare(&base, &current, &CompareOptions::default()).unwrap();
    assert!(c.significant, "p {}", c.mann_whitney.p_value);
    assert!(
        c.mann_whitney.p_value < 1e-10,
        "p {}",
        c.mann_whitney.p_value
    );
    assert!(
        c.cliffs_delta > 0.0 && c.negligible,
        "delta {}",
        c.cliffs_delta
    );
    assert!(
        c.p95_change > 0.0 && c.p95_change < 0.15,
        "{}",
        c.p95_change
    );
    assert!(!c.regression && !c.gate_failed);
    assert_eq!(c.severity, Severity::None);
    // The interval is tight enough to exclude both no change and the gate.
    assert!(
        c.p95_change_ci.lo > 0.0 && c.p95_change_ci.hi < 0.15,
        "{:?}",
        c.p95_change_ci
    );
}

#[test]
fn regression_below_the_gate_is_reported_but_passes() {
    let base = lognormal(7, 2000, 500.0, 0.3);
    let c = compare(&base, &scaled(&base, 1.12), &CompareOptions::default()).unwrap();
    assert!(c.regression, "{c:?}");
    assert_eq!(c.severity, Severity::Sev3);
    assert!(!c.gate_failed);
}

#[test]
fn faster_is_an_improvement() {
    let base = lognormal(8, 400, 800.0, 0.5);
    let current = scaled(&lognormal(9, 400, 800.0, 0.5), 0.7);
    let c = compare(&base, &current, &CompareOptions::default()).unwrap();
    assert!(c.improvement && !c.regression && !c.gate_failed);
    assert!(c.cliffs_delta < -0.147 && c.p95_change < 0.0);
    assert_eq!(c.severity, Severity::None);
}

#[test]
fn hundred_thousand_points_per_side() {
    // Every step (sort, merge-based U and delta, bootstrap) is O(n log n) or better;
    // an O(n*m) Cliff's delta would take 10^10 steps here.
    let base = lognormal(10, 100_000, 800.0, 0.5);
    let current = scaled(&lognormal(11, 100_000, 800.0, 0.5), 1.02);
    let c = compare(&base, &current, &CompareOptions::default()).unwrap();
    assert_eq!(c.baseline.n, 100_000);
    assert!(c.significant && c.negligible && !c.regression);
    assert!(
        c.p95_change_ci.contains(c.p95_change),
        "{:?}",
        c.p95_change_ci
    );
    assert!(c.p95_change_ci.width() < 0.03, "{:?}", c.p95_change_ci);
    let d = cliffs_delta(&base, &current).unwrap();
    assert_eq!(d, c.cliffs_delta);
}

#[test]
fn bootstrap_is_deterministic_per_seed() {
    let base = lognormal(12, 300, 800.0, 0.5);
    let current = lognormal(13, 300, 900.0, 0.5);
    let a = bootstrap_p95_change(&base, &current, 1000, 0.95, 42).unwrap();
    let b = bootstrap_p95_change(&base, &current, 1000, 0.95, 42).unwrap();
    let c = bootstrap_p95_change(&base, &current, 1000, 0.95, 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.level, 0.95);
    assert!(a.lo < a.hi);
    // A 50 % interval is nested in the 95 % one from the same resamples.
    let half = bootstrap_p95_change(&base, &current, 1000, 0.5, 42).unwrap();
    assert!(a.lo <= half.lo && half.hi <= a.hi, "{a:?} {half:?}");
}

#[test]
fn bootstrap_covers_the_true_change_of_a_clear_shift() {
    // Population p95 ratio of lognormals with equal sigma is exactly the median ratio.
    let base = lognormal(14, 2000, 800.0, 0.5);
    let current = lognormal(15, 2000, 1040.0, 0.5);
    let ci = bootstrap_p95_change(&base, &current, 2000, 0.95, 7).unwrap();
    assert!(ci.contains(0.3), "{ci:?}");
    assert!(ci.lo > 0.1, "{ci:?}");
    let point = percentile(&current, 0.95).unwrap() / percentile(&base, 0.95).unwrap() - 1.0;
    assert!(ci.contains(point), "{ci:?} vs {point}");
}

#[test]
fn bootstrap_narrows_with_sample_size() {
    let small = bootstrap_p95_change(
        &lognormal(16, 200, 800.0, 0.5),
        &lognormal(17, 200, 800.0, 0.5),
        2000,
        0.95,
        1,
    )
    .unwrap();
    let large = bootstrap_p95_change(
        &lognormal(18, 20_000, 800.0, 0.5),
        &lognormal(19, 20_000, 800.0, 0.5),
        2000,
        0.95,
        1,
    )
    .unwrap();
    // Width shrinks like 1/sqrt(n): a factor ~10 here.
    assert!(large.width() < 0.06, "{large:?}");
    assert!(
        large.width() * 5.0 < small.width(),
        "{small:?} vs {large:?}"
    );
    assert!(large.contains(0.0), "{large:?}");
}

#[test]
fn compare_rejects_bad_input() {
    let ok = [1.0, 2.0, 3.0];
    let opts = CompareOptions::default();
    assert_eq!(
        compare(&[], &ok, &opts).unwrap_err(),
        StatsError::EmptySample { sample: "baseline" }
    );
    let err = compare(&ok, &[1.0, f64::NAN], &opts).unwrap_err();
    assert!(
        matches!(
            err,
            StatsError::NonFinite {
                sample: "current",
                index: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = compare(&ok, &[1.0, 2.0, -3.0], &opts).unwrap_err();
    assert!(
        matches!(
            err,
            StatsError::NegativeLatency {
                sample: "current",
                index: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = compare(&[0.0; 10], &ok, &opts).unwrap_err();
    assert!(matches!(err, StatsError::ZeroBaselineP95 { .. }), "{err}");
    // All-zero both sides is simply "no change".
    let c = compare(&[0.0; 10], &[0.0; 12], &opts).unwrap();
    assert_eq!(c.p95_change, 0.0);
    assert!(!c.regression);

    for bad in [
        CompareOptions {
            alpha: 0.0,
            ..CompareOptions::default()
        },
        CompareOptions {
            alpha: f64::NAN,
            ..CompareOptions::default()
        },
        CompareOptions {
            effect_floor: 1.5,
            ..CompareOptions::default()
        },
        CompareOptions {
            gate_p95_regression: f64::INFINITY,
            ..CompareOptions::default()
        },
        CompareOptions {
            bootstrap_resamples: 0,
            ..CompareOptions::default()
        },
        CompareOptions {
            confidence: 1.0,
            ..CompareOptions::default()
        },
    ] {
        let err = compare(&ok, &ok, &bad).unwrap_err();
        assert!(matches!(err, StatsError::InvalidParameter { .. }), "{err}");
    }
}

#[test]
fn tiny_inputs_do_not_panic() {
    let opts = CompareOptions::default();
    let c = compare(&[5.0], &[7.0], &opts).unwrap();
    assert_eq!(c.mann_whitney.method, MwMethod::Exact);
    assert_eq!(c.mann_whitney.p_value, 1.0);
    assert!(!c.regression);
    let c = compare(&[1.0, 1.0], &[1.0], &opts).unwrap();
    assert_eq!(c.mann_whitney.p_value, 1.0);
    let r = mann_whitney_u(&[f64::MAX, -f64::MAX], &[0.0]).unwrap();
    assert!(r.p_value > 0.0 && r.p_value <= 1.0);
}

#[test]
fn options_and_report_serialize() {
    let opts: CompareOptions = serde_json::from_str(r#"{"alpha": 0.01}"#).unwrap();
    assert_eq!(opts.alpha, 0.01);
    assert_eq!(opts.effect_floor, 0.147);
    assert_eq!(opts.gate_p95_regression, 0.15);
    assert_eq!(opts.bootstrap_resamples, 2000);
    assert_eq!(opts.confidence, 0.95);

    let base = lognormal(20, 100, 800.0, 0.5);
    let c = compare(&base, &scaled(&base, 1.6), &opts).unwrap();
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["severity"], "SEV-1");
    assert_eq!(json["mann_whitney"]["method"], "asymptotic");
    assert_eq!(json["gate_failed"], true);
    assert_eq!(json["baseline"]["n"], 100);
    assert!(json["p95_change_ci"]["lo"].is_number());
}

/// Randomized cross-check of the merge-based statistics against the pairwise definitions
/// on small samples with many ties.
#[test]
fn merge_statistics_match_pairwise_definitions() {
    let mut rng = StdRng::seed_from_u64(99);
    for _ in 0..300 {
        let n1 = rng.random_range(1..30);
        let n2 = rng.random_range(1..30);
        let levels = rng.random_range(1..12);
        let a: Vec<f64> = (0..n1)
            .map(|_| f64::from(rng.random_range(0..levels)))
            .collect();
        let b: Vec<f64> = (0..n2)
            .map(|_| f64::from(rng.random_range(0..levels)))
            .collect();
        let mut u1 = 0.0;
        let mut score = 0i64;
        for x in &a {
            for y in &b {
                u1 += if x > y {
                    1.0
                } else if x == y {
                    0.5
                } else {
                    0.0
                };
                score += i64::from(y > x) - i64::from(y < x);
            }
        }
        let r = mann_whitney_u(&a, &b).unwrap();
        assert_eq!(r.u1, u1, "{a:?} {b:?}");
        assert!((0.0..=1.0).contains(&r.p_value));
        let d = cliffs_delta(&a, &b).unwrap();
        assert_eq!(d, score as f64 / (n1 * n2) as f64, "{a:?} {b:?}");
    }
}
