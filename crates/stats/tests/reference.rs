//! The statistics against SciPy/NumPy answers stored in `fixtures/reference.json`
//! (see `fixtures/make_reference.py`). Tolerances: p-values 1e-9 relative, U, percentiles,
//! Cliff's delta 1e-12 relative.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mangaassist_stats::{MwMethod, cliffs_delta, erfc, mann_whitney_u, percentile, summarize};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    scipy: String,
    numpy: String,
    cases: Vec<Case>,
    quantiles: Vec<QuantileGrid>,
    erfc: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    scale: i64,
    a: Vec<i64>,
    b: Vec<i64>,
    ties: bool,
    u1: f64,
    p_value: f64,
    method: String,
    z: Option<f64>,
    cliffs_delta: f64,
    a_summary: RefSummary,
    b_summary: RefSummary,
}

#[derive(Deserialize)]
struct RefSummary {
    n: usize,
    mean: f64,
    min: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

#[derive(Deserialize)]
struct QuantileGrid {
    name: String,
    scale: i64,
    ticks: Vec<i64>,
    q: Vec<f64>,
    expected: Vec<f64>,
}

fn load() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/reference.json");
    let text = std::fs::read_to_string(path).expect("fixtures/reference.json");
    serde_json::from_str(&text).expect("valid reference.json")
}

/// Same construction as the generator: integer tick / integer scale, correctly rounded.
fn values(ticks: &[i64], scale: i64) -> Vec<f64> {
    ticks.iter().map(|&t| t as f64 / scale as f64).collect()
}

fn close(actual: f64, expected: f64, rel: f64) -> bool {
    if actual == expected {
        return true;
    }
    (actual - expected).abs() <= rel * expected.abs().max(actual.abs())
}

#[track_caller]
fn assert_close(what: &str, actual: f64, expected: f64, rel: f64) {
    assert!(
        close(actual, expected, rel),
        "{what}: actual {actual:e}, expected {expected:e}, rel error {:e}",
        ((actual - expected) / expected).abs()
    );
}

#[test]
fn fixture_is_substantial_and_versioned() {
    let r = load();
    assert!(r.scipy.starts_with("1."), "scipy {}", r.scipy);
    assert!(!r.numpy.is_empty());
    assert!(r.cases.len() >= 40, "{} cases", r.cases.len());
    let exact = r.cases.iter().filter(|c| c.method == "exact").count();
    let ties = r.cases.iter().filter(|c| c.ties).count();
    let large = r.cases.iter().filter(|c| c.a.len() >= 1000).count();
    assert!(
        exact >= 10 && ties >= 8 && large >= 5,
        "{exact} {ties} {large}"
    );
}

#[test]
fn mann_whitney_matches_scipy() {
    for case in load().cases {
        let a = values(&case.a, case.scale);
        let b = values(&case.b, case.scale);
        let name = &case.name;
        let r = mann_whitney_u(&a, &b).unwrap();

        let method = match r.method {
            MwMethod::Exact => "exact",
            MwMethod::Asymptotic => "asymptotic",
        };
        assert_eq!(method, case.method, "{name}: method");
        assert_close(&format!("{name}: u1"), r.u1, case.u1, 1e-12);
        assert_close(&format!("{name}: p"), r.p_value, case.p_value, 1e-9);
        match (r.z, case.z) {
            (Some(z), Some(expected)) => {
                assert!(
                    (z - expected).abs() <= 1e-12 * expected.abs().max(1.0),
                    "{name}: z {z} vs {expected}"
                );
            }
            (None, None) => {}
            (z, expected) => panic!("{name}: z {z:?} vs {expected:?}"),
        }

        // Swapping the samples mirrors U and keeps the two-sided p-value.
        let swapped = mann_whitney_u(&b, &a).unwrap();
        let nm = a.len() as f64 * b.len() as f64;
        assert_close(
            &format!("{name}: swapped u1"),
            swapped.u1,
            nm - case.u1,
            1e-12,
        );
        assert_close(
            &format!("{name}: swapped p"),
            swapped.p_value,
            case.p_value,
            1e-9,
        );
    }
}

#[test]
fn cliffs_delta_matches_brute_force() {
    for case in load().cases {
        let a = values(&case.a, case.scale);
        let b = values(&case.b, case.scale);
        let d = cliffs_delta(&a, &b).unwrap();
        assert!(
            (d - case.cliffs_delta).abs() <= 1e-12 * case.cliffs_delta.abs().max(1e-3),
            "{}: {d} vs {}",
            case.name,
            case.cliffs_delta
        );
    }
}

#[test]
fn summaries_match_numpy() {
    for case in load().cases {
        for (ticks, expected, side) in [
            (&case.a, &case.a_summary, "a"),
            (&case.b, &case.b_summary, "b"),
        ] {
            let s = summarize(&values(ticks, case.scale)).unwrap();
            let what = |field: &str| format!("{} {side}.{field}", case.name);
            assert_eq!(s.n, expected.n, "{}", what("n"));
            assert_close(&what("mean"), s.mean, expected.mean, 1e-12);
            assert_eq!(s.min, expected.min, "{}", what("min"));
            assert_eq!(s.max, expected.max, "{}", what("max"));
            assert_close(&what("p50"), s.p50, expected.p50, 1e-12);
            assert_close(&what("p95"), s.p95, expected.p95, 1e-12);
            assert_close(&what("p99"), s.p99, expected.p99, 1e-12);
        }
    }
}

#[test]
fn quantile_grid_matches_numpy() {
    for grid in load().quantiles {
        let x = values(&grid.ticks, grid.scale);
        for (&q, &expected) in grid.q.iter().zip(&grid.expected) {
            let actual = percentile(&x, q).unwrap();
            assert_close(&format!("{} q={q}", grid.name), actual, expected, 1e-12);
        }
    }
}

#[test]
fn erfc_matches_mpmath() {
    let table = load().erfc;
    assert!(table.len() > 250);
    for (x, expected) in table {
        assert_close(&format!("erfc({x})"), erfc(x), expected, 1e-13);
    }
}
