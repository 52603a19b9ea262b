use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::percentile::{lerp, percentile_sorted};
use crate::{StatsError, check_latencies, relative_change, sorted_copy};

/// A two-sided confidence interval `[lo, hi]` at confidence `level` (0.95 = 95 %).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
    pub level: f64,
}

impl Interval {
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    pub fn width(&self) -> f64 {
        self.hi - self.lo
    }
}

/// Percentile-bootstrap confidence interval of the relative p95 change
/// `p95(current) / p95(baseline) - 1`: each of `resamples` rounds resamples both samples
/// independently with replacement (same sizes) and recomputes the change; the interval is
/// the `(1 - level) / 2` and `(1 + level) / 2` quantiles of those changes. Deterministic for
/// a given `seed` (rand's `StdRng`, stable within rand 0.9).
///
/// A resample's p95 depends only on two of its order statistics, so instead of drawing all
/// n indices each round the order statistics are drawn directly, with the same
/// distribution: the resample is `floor(n U_i)` for n iid uniforms, the top uniform order
/// statistic is `V^(1/n)` and, given `U_(r+1)`, `U_(r) = U_(r+1) V^(1/r)`. A round costs
/// O(0.05 n) instead of O(n), which keeps 2000 rounds on 10^5-point samples fast.
///
/// A resampled baseline p95 of 0 (only when ≥ 95 % of the baseline is 0) counts as an
/// unbounded increase (`+inf`, serialized by serde_json as `null`).
///
/// Errors: empty sample, NaN/infinite or negative value, `resamples == 0`, `level` not in
/// `(0, 1)`.
pub fn bootstrap_p95_change(
    baseline: &[f64],
    current: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<Interval, StatsError> {
    check_latencies("baseline", baseline)?;
    check_latencies("current", current)?;
    check_bootstrap_params(resamples, level)?;
    Ok(bootstrap_sorted(
        &sorted_copy(baseline),
        &sorted_copy(current),
        resamples,
        level,
        seed,
    ))
}

pub(crate) fn check_bootstrap_params(resamples: usize, level: f64) -> Result<(), StatsError> {
    if resamples == 0 {
        return Err(StatsError::InvalidParameter {
            name: "bootstrap resamples",
            value: 0.0,
            expected: "at least 1",
        });
    }
    if !(level > 0.0 && level < 1.0) {
        return Err(StatsError::InvalidParameter {
            name: "confidence level",
            value: level,
            expected: "strictly between 0 and 1",
        });
    }
    Ok(())
}

/// [`bootstrap_p95_change`] on validated, ascending samples.
pub(crate) fn bootstrap_sorted(
    baseline: &[f64],
    current: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Interval {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut changes: Vec<f64> = (0..resamples)
        .map(|_| {
            let b = resampled_quantile(baseline, 0.95, &mut rng);
            let c = resampled_quantile(current, 0.95, &mut rng);
            relative_change(b, c)
        })
        .collect();
    changes.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    Interval {
        lo: percentile_sorted(&changes, tail),
        hi: percentile_sorted(&changes, 1.0 - tail),
        level,
    }
}

/// The `q` quantile (as [`percentile`](crate::percentile)) of one with-replacement resample
/// of the ascending, non-empty `sorted`, drawn via uniform order statistics from the top.
/// Cost O(n (1 - q)).
fn resampled_quantile<R: Rng>(sorted: &[f64], q: f64, rng: &mut R) -> f64 {
    let n = sorted.len();
    let Some(last) = n.checked_sub(1) else {
        return f64::NAN;
    };
    let h = last as f64 * q;
    let (lo, t) = if h >= last as f64 {
        (last, 0.0)
    } else {
        (h.floor() as usize, h - h.floor())
    };
    // 1-based ranks: the quantile needs ranks lo+1 and, when interpolating, lo+2.
    let mut u = 1.0_f64;
    let mut upper = u;
    for rank in (lo + 1..=n).rev() {
        // V in (0, 1] so ln(V) is finite.
        let v = 1.0 - rng.random::<f64>();
        u *= (v.ln() / rank as f64).exp();
        if rank == lo + 2 {
            upper = u;
        }
    }
    let at = |u: f64| sorted[((u * n as f64) as usize).min(last)];
    let value = at(u);
    if t > 0.0 {
        lerp(value, at(upper), t)
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::HashMap;

    use super::*;

    /// Exact distribution of the resample p95 for a tiny sample by enumerating all n^n
    /// index tuples, against the order-statistic sampler: total variation must be at the
    /// Monte-Carlo noise level.
    #[test]
    fn order_statistic_sampler_has_the_resampling_distribution() {
        let sorted = [1.0, 2.0, 4.0, 8.0, 16.0];
        let n = sorted.len();
        for q in [0.95, 0.5, 1.0, 0.0] {
            let mut exact: HashMap<u64, f64> = HashMap::new();
            let total = n.pow(n as u32);
            for code in 0..total {
                let mut resample: Vec<f64> = (0..n)
                    .map(|i| sorted[(code / n.pow(i as u32)) % n])
                    .collect();
                resample.sort_by(f64::total_cmp);
                let v = percentile_sorted(&resample, q);
                *exact.entry(v.to_bits()).or_default() += 1.0 / total as f64;
            }
            let draws = 200_000;
            let mut rng = StdRng::seed_from_u64(11);
            let mut seen: HashMap<u64, f64> = HashMap::new();
            for _ in 0..draws {
                let v = resampled_quantile(&sorted, q, &mut rng);
                assert!(exact.contains_key(&v.to_bits()), "impossible value {v}");
                *seen.entry(v.to_bits()).or_default() += 1.0 / f64::from(draws);
            }
            let tv: f64 = exact
                .iter()
                .map(|(k, p)| (p - seen.get(k).copied().unwrap_or(0.0)).abs())
                .sum::<f64>()
                / 2.0;
            assert!(tv < 0.01, "q={q}: total variation {tv}");
        }
    }

    #[test]
    fn single_point_resamples_to_itself() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(resampled_quantile(&[3.5], 0.95, &mut rng), 3.5);
        let ci = bootstrap_p95_change(&[2.0], &[3.0], 10, 0.9, 0).unwrap();
        assert_eq!((ci.lo, ci.hi), (0.5, 0.5));
    }

    #[test]
    fn zero_baseline_resamples_are_unbounded() {
        let ci = bootstrap_p95_change(&[0.0; 20], &[1.0; 20], 50, 0.95, 3).unwrap();
        assert_eq!(ci.lo, f64::INFINITY);
        let ci = bootstrap_p95_change(&[0.0; 20], &[0.0; 20], 50, 0.95, 3).unwrap();
        assert_eq!((ci.lo, ci.hi), (0.0, 0.0));
    }

    #[test]
    fn validates_input() {
        assert!(matches!(
            bootstrap_p95_change(&[1.0], &[1.0], 0, 0.95, 0),
            Err(StatsError::InvalidParameter { .. })
        ));
        for level in [0.0, 1.0, f64::NAN, 95.0] {
            assert!(matches!(
                bootstrap_p95_change(&[1.0], &[1.0], 10, level, 0),
                Err(StatsError::InvalidParameter { .. })
            ));
        }
        assert!(matches!(
            bootstrap_p95_change(&[1.0, -2.0], &[1.0], 10, 0.95, 0),
            Err(StatsError::NegativeLatency {
                sample: "baseline",
                index: 1,
                ..
            })
        ));
        assert_eq!(
            bootstrap_p95_change(&[1.0], &[], 10, 0.95, 0),
            Err(StatsError::EmptySample { sample: "current" })
        );
    }
}
