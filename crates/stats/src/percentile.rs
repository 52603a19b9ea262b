use serde::{Deserialize, Serialize};

use crate::sorted_copy;

/// Sample quantile with linear interpolation between closest ranks (NumPy's default
/// `linear` method, Hyndman-Fan type 7): with the sorted sample `x` and `h = (n - 1) q`,
/// the result is `x[floor(h)] + (h - floor(h)) (x[floor(h) + 1] - x[floor(h)])`.
///
/// `q` is a fraction in `[0, 1]` (0.95 for p95). Returns `None` for an empty sample, a
/// sample containing NaN or an infinity, or `q` outside `[0, 1]`. The input need not be
/// sorted.
pub fn percentile(samples: &[f64], q: f64) -> Option<f64> {
    if samples.is_empty() || !(0.0..=1.0).contains(&q) || samples.iter().any(|x| !x.is_finite()) {
        return None;
    }
    Some(percentile_sorted(&sorted_copy(samples), q))
}

/// 1-based nearest rank of the `q` quantile among `n` samples: the smallest rank with at
/// least `q·n` samples at or below it. `None` when `n` is 0 or `q` is outside `[0, 1]`.
///
/// This is the one other quantile rule in the mesh, for the adaptive router: it decides
/// "p95 > T" by counting samples at or below `T` (O(1) per message), and only a quantile that
/// is an actual sample, at this rank, makes that count equivalent to comparing the p95.
/// Everything that reports a percentile uses [`percentile`].
pub fn nearest_rank(n: usize, q: f64) -> Option<usize> {
    if n == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    // The epsilon keeps float noise (0.95 · 100 = 95.000…01) from bumping the rank.
    Some((((q * n as f64) - 1e-9).ceil() as usize).clamp(1, n))
}

/// [`percentile`] on an ascending, non-empty slice with `q` in `[0, 1]`.
pub(crate) fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    // NumPy computes the virtual index as (n - 1) * q, not n*q - q, to avoid rounding.
    let h = last as f64 * q;
    if h >= last as f64 {
        return sorted[last];
    }
    let lo = h.floor();
    let i = lo as usize;
    lerp(sorted[i], sorted[i + 1], h - lo)
}

/// NumPy's `_lerp`: interpolating from the nearer end keeps the result within `[a, b]`
/// and bit-identical to NumPy.
pub(crate) fn lerp(a: f64, b: f64, t: f64) -> f64 {
    if t == 0.0 || a == b {
        return a;
    }
    let diff = b - a;
    if !diff.is_finite() {
        // Infinite endpoints (only in bootstrap changes) or a difference that overflows.
        return if a.is_infinite() {
            a
        } else if b.is_infinite() {
            b
        } else {
            a * (1.0 - t) + b * t
        };
    }
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// Location summary of one latency sample. Percentiles follow [`percentile`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Summary of a sample; `None` when it is empty or contains NaN or an infinity.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
        return None;
    }
    Some(summary_sorted(&sorted_copy(samples)))
}

/// Summary of an ascending, non-empty, finite slice.
pub(crate) fn summary_sorted(sorted: &[f64]) -> Summary {
    Summary {
        n: sorted.len(),
        mean: mean(sorted),
        min: sorted.first().copied().unwrap_or(f64::NAN),
        p50: percentile_sorted(sorted, 0.50),
        p95: percentile_sorted(sorted, 0.95),
        p99: percentile_sorted(sorted, 0.99),
        max: sorted.last().copied().unwrap_or(f64::NAN),
    }
}

/// Neumaier-compensated mean: 10^5 samples summed naively would lose ~5 digits.
fn mean(xs: &[f64]) -> f64 {
    let mut sum = 0.0_f64;
    let mut compensation = 0.0_f64;
    for &x in xs {
        let t = sum + x;
        if sum.abs() >= x.abs() {
            compensation += (sum - t) + x;
        } else {
            compensation += (x - t) + sum;
        }
        sum = t;
    }
    (sum + compensation) / xs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_between_closest_ranks() {
        let x = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&x, 0.0), Some(1.0));
        assert_eq!(percentile(&x, 1.0), Some(4.0));
        assert_eq!(percentile(&x, 0.5), Some(2.5));
        // h = 3 * 0.95 = 2.85 → 3 + 0.85 * (4 - 3)
        let p95 = percentile(&x, 0.95).unwrap();
        assert!((p95 - 3.85).abs() < 1e-15, "{p95}");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[1.0], -0.1), None);
        assert_eq!(percentile(&[1.0], 1.1), None);
        assert_eq!(percentile(&[1.0], f64::NAN), None);
        assert_eq!(percentile(&[1.0, f64::NAN], 0.5), None);
        assert_eq!(percentile(&[1.0, f64::INFINITY], 0.5), None);
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[f64::NEG_INFINITY]), None);
    }

    #[test]
    fn single_value_summary() {
        let s = summarize(&[7.5]).unwrap();
        assert_eq!(
            s,
            Summary {
                n: 1,
                mean: 7.5,
                min: 7.5,
                p50: 7.5,
                p95: 7.5,
                p99: 7.5,
                max: 7.5
            }
        );
    }

    #[test]
    fn compensated_mean_is_exact_where_naive_sum_is_not() {
        let mut xs = vec![1e16];
        xs.extend(std::iter::repeat_n(1.0, 1000));
        xs.push(-1e16);
        let s = summarize(&xs).unwrap();
        assert_eq!(s.mean, 1000.0 / 1002.0);
    }

    #[test]
    fn lerp_handles_infinite_endpoints() {
        assert_eq!(lerp(1.0, f64::INFINITY, 0.7), f64::INFINITY);
        assert_eq!(lerp(1.0, f64::INFINITY, 0.2), f64::INFINITY);
        assert_eq!(lerp(f64::INFINITY, f64::INFINITY, 0.5), f64::INFINITY);
        assert_eq!(lerp(-f64::MAX, f64::MAX, 0.5), 0.0);
    }

    #[test]
    fn nearest_rank_matches_the_integer_rule() {
        // ⌈q·n⌉ in exact integer arithmetic, for every window size the router can hold.
        for n in 1..=5000usize {
            assert_eq!(
                nearest_rank(n, 0.95),
                Some((n * 95).div_ceil(100)),
                "n = {n}"
            );
            assert_eq!(nearest_rank(n, 0.5), Some(n.div_ceil(2)), "n = {n}");
        }
        assert_eq!(nearest_rank(100, 0.0), Some(1));
        assert_eq!(nearest_rank(100, 1.0), Some(100));
        assert_eq!(nearest_rank(0, 0.5), None);
        assert_eq!(nearest_rank(10, 1.5), None);
        assert_eq!(nearest_rank(10, f64::NAN), None);
    }
}
