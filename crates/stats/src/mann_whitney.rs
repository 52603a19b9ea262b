use serde::Serialize;

use crate::normal::normal_sf;
use crate::{StatsError, check_finite, sorted_copy};

/// How the p-value of a [`MannWhitney`] test was obtained.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MwMethod {
    /// Exact null distribution of U (no tie correction; only chosen without ties).
    Exact,
    /// Normal approximation with tie correction and continuity correction.
    Asymptotic,
}

/// Result of a two-sided Mann-Whitney U test.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MannWhitney {
    /// U statistic of the first sample, as `scipy.stats.mannwhitneyu` returns it:
    /// the number of (first, second) pairs where the first is larger, ties counting 1/2.
    pub u1: f64,
    /// Two-sided p-value in `[0, 1]`.
    pub p_value: f64,
    pub method: MwMethod,
    /// SciPy's standardized statistic `(max(U1, U2) - n1 n2 / 2 - 0.5) / sigma` (so
    /// `p = 2 Φ(-z)`); `None` for the exact method and when every value is identical
    /// (sigma = 0, p = 1). It is never a direction: use Cliff's delta for that.
    pub z: Option<f64>,
}

/// The exact distribution is tabulated up to U = min(U1, U2), at most this many entries
/// (64 MiB of i128). Only a sample of at most 8 values against about a million or more
/// can exceed it; SciPy's own recursion would need hours there.
const MAX_EXACT_TERMS: usize = 1 << 22;

/// Two-sided Mann-Whitney U test; the same numbers as SciPy 1.17's
/// `scipy.stats.mannwhitneyu(a, b, alternative="two-sided", method="auto", use_continuity=True)`.
///
/// SciPy's `auto` rule (`_mwu_choose_method`): **exact** when at least one sample has at
/// most 8 values (`n1 <= 8 || n2 <= 8`) *and* the pooled data has no ties at all; otherwise
/// **asymptotic**. The exact p-value is `min(1, 2 P(U >= max(U1, U2)))` from the exact
/// null distribution, counted with the Gaussian binomial coefficient
/// `[n1+n2 choose m]_q = prod_{i=1..m} (1 - q^{n+i}) / (1 - q^i)` (`m = min(n1, n2)`,
/// `n = max(n1, n2)`; this yields the same counts as SciPy's recursion, in `O(m^2 n)` instead of
/// `O((mn)^2)` time), in exact 128-bit integers while `C(n1+n2, m)` fits, else in `f64`.
/// The asymptotic p-value is `min(1, 2 Φ(-z))` with
/// `z = (max(U1, U2) - n1 n2 / 2 - 0.5) / sigma` and the tie-corrected
/// `sigma^2 = n1 n2 / 12 ((n1+n2+1) - sum(t^3 - t) / ((n1+n2)(n1+n2-1)))`. All values
/// identical gives sigma = 0 and p = 1.
///
/// Deviation: when the exact table would exceed 2^22 entries (a sample of at most 8 values
/// against about a million) the asymptotic method is used and reported.
///
/// Errors: an empty sample, or a NaN/infinite value (named `first`/`second` with its index).
pub fn mann_whitney_u(a: &[f64], b: &[f64]) -> Result<MannWhitney, StatsError> {
    check_finite("first", a)?;
    check_finite("second", b)?;
    let a = sorted_copy(a);
    let b = sorted_copy(b);
    Ok(mann_whitney_sorted(&a, &b, &rank_sums(&a, &b)))
}

/// Pairwise comparison counts of two ascending samples, found by one merge pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RankSums {
    /// 2 U1 = 2 #(a > b) + #(a == b), kept integral so it is exact for any size.
    pub two_u1: u128,
    /// sum over tie groups of t^3 - t.
    pub tie_term: u128,
    pub has_ties: bool,
}

/// One merge over both ascending samples, value group by value group: each `a` value
/// in a group beats the `j` smaller `b` values and ties with the group's `b` values.
pub(crate) fn rank_sums(a: &[f64], b: &[f64]) -> RankSums {
    let (mut i, mut j) = (0usize, 0usize);
    let mut sums = RankSums {
        two_u1: 0,
        tie_term: 0,
        has_ties: false,
    };
    loop {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => {
                if x <= y {
                    x
                } else {
                    y
                }
            }
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        let ca = a[i..].iter().take_while(|&&x| x == v).count();
        let cb = b[j..].iter().take_while(|&&y| y == v).count();
        sums.two_u1 += ca as u128 * (2 * j as u128 + cb as u128);
        let t = (ca + cb) as u128;
        if t > 1 {
            sums.has_ties = true;
            sums.tie_term += t * t * t - t;
        }
        i += ca;
        j += cb;
    }
    sums
}

/// The test on ascending, non-empty, finite samples whose [`rank_sums`] are known.
pub(crate) fn mann_whitney_sorted(a: &[f64], b: &[f64], sums: &RankSums) -> MannWhitney {
    let (n1, n2) = (a.len(), b.len());
    let u1 = sums.two_u1 as f64 / 2.0;
    let nm = n1 as f64 * n2 as f64;
    let u = u1.max(nm - u1);

    let use_exact = (n1 <= 8 || n2 <= 8) && !sums.has_ties;
    if use_exact {
        // Without ties U1 is an integer; the lower tail at min(U1, U2) equals the upper
        // tail at max(U1, U2) by symmetry.
        let u1_int = sums.two_u1 / 2;
        let k = u1_int.min((n1 as u128 * n2 as u128).saturating_sub(u1_int));
        if let Some(p_value) = exact_p_value(k, n1, n2) {
            return MannWhitney {
                u1,
                p_value,
                method: MwMethod::Exact,
                z: None,
            };
        }
    }

    let n = (n1 + n2) as f64;
    let mu = nm / 2.0;
    // Same operation order as SciPy's `_get_mwu_z`.
    let variance = nm / 12.0 * ((n + 1.0) - sums.tie_term as f64 / (n * (n - 1.0)));
    let sigma = variance.sqrt();
    // All values identical (sigma = 0): SciPy gets z = -inf and clips p = 2 to 1.
    if sigma.is_nan() || sigma <= 0.0 {
        return MannWhitney {
            u1,
            p_value: 1.0,
            method: MwMethod::Asymptotic,
            z: None,
        };
    }
    let z = (u - mu - 0.5) / sigma;
    MannWhitney {
        u1,
        p_value: (2.0 * normal_sf(z)).clamp(0.0, 1.0),
        method: MwMethod::Asymptotic,
        z: Some(z),
    }
}

/// `min(1, 2 P(U <= k))` under the null for sample sizes `n1`, `n2`; `None` if the table
/// would be too large.
fn exact_p_value(k: u128, n1: usize, n2: usize) -> Option<f64> {
    let k = usize::try_from(k).ok().filter(|&k| k < MAX_EXACT_TERMS)?;
    let m = n1.min(n2);
    let big = n1.max(n2);
    let p = match binomial_u128(big + m, m).and_then(|t| i128::try_from(t).ok()) {
        Some(total) => {
            let counts = gaussian_binomial_prefix::<i128>(k, m, big);
            let cumulative: i128 = counts.iter().sum();
            2.0 * (cumulative as f64 / total as f64)
        }
        None => {
            // Beyond 2^127 configurations (n1 = 8 against > 2e5 values) exact integers no
            // longer fit; f64 counts keep ~1e-12 relative accuracy at these sizes.
            let counts = gaussian_binomial_prefix::<f64>(k, m, big);
            let cumulative: f64 = counts.iter().sum();
            let total = (1..=m).fold(1.0_f64, |acc, i| acc * (big + i) as f64 / i as f64);
            2.0 * (cumulative / total)
        }
    };
    Some(p.clamp(0.0, 1.0))
}

/// Binomial coefficient, `None` on u128 overflow.
fn binomial_u128(n: usize, k: usize) -> Option<u128> {
    let mut r: u128 = 1;
    for i in 1..=k as u128 {
        // r = C(n-k+i-1, i-1) here, so the product is divisible by i.
        r = r.checked_mul((n - k) as u128 + i)? / i;
    }
    Some(r)
}

trait Count: Copy + std::ops::AddAssign + std::ops::SubAssign {
    const ZERO: Self;
    const ONE: Self;
}
impl Count for i128 {
    const ZERO: Self = 0;
    const ONE: Self = 1;
}
impl Count for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// Coefficients 0..=k of the Gaussian binomial `[big+m choose m]_q`: entry u is the number
/// of orderings of the pooled sample giving U = u. Built factor by factor; both steps only
/// look backwards, so truncating at degree k is exact, and after each full step the
/// polynomial is `[big+i choose i]_q` whose coefficients are non-negative and bounded by
/// `C(big+m, m)`.
fn gaussian_binomial_prefix<T: Count>(k: usize, m: usize, big: usize) -> Vec<T> {
    let mut c = vec![T::ZERO; k + 1];
    c[0] = T::ONE;
    for i in 1..=m {
        // Multiply by (1 - q^(big+i)).
        let step = big + i;
        for j in (step..=k).rev() {
            let prev = c[j - step];
            c[j] -= prev;
        }
        // Divide by (1 - q^i): a running sum with stride i.
        for j in i..=k {
            let prev = c[j - i];
            c[j] += prev;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Brute-force count of U over all C(n1+n2, n1) splits, for cross-checking the table.
    fn brute_counts(n1: usize, n2: usize) -> Vec<u64> {
        let n = n1 + n2;
        let mut counts = vec![0u64; n1 * n2 + 1];
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize != n1 {
                continue;
            }
            // Positions are ranks; bit set = first sample.
            let mut u = 0;
            let mut seen_second = 0;
            for pos in 0..n {
                if mask & (1 << pos) != 0 {
                    u += seen_second;
                } else {
                    seen_second += 1;
                }
            }
            counts[u] += 1;
        }
        counts
    }

    #[test]
    fn gaussian_binomial_matches_enumeration() {
        for n1 in 1..=6 {
            for n2 in 1..=7 {
                let brute = brute_counts(n1, n2);
                let m = n1.min(n2);
                let big = n1.max(n2);
                let exact = gaussian_binomial_prefix::<i128>(n1 * n2, m, big);
                let float = gaussian_binomial_prefix::<f64>(n1 * n2, m, big);
                for u in 0..=n1 * n2 {
                    assert_eq!(exact[u], i128::from(brute[u]), "n1={n1} n2={n2} u={u}");
                    assert_eq!(float[u], brute[u] as f64, "n1={n1} n2={n2} u={u}");
                }
            }
        }
    }

    #[test]
    fn binomial_overflow_is_detected() {
        assert_eq!(binomial_u128(10, 3), Some(120));
        assert_eq!(binomial_u128(58, 8), Some(1_916_797_311));
        assert!(binomial_u128(100_008, 8).is_some());
        assert_eq!(binomial_u128(300_008, 8), None);
        assert!(binomial_u128(10_000, 5_000).is_none());
    }

    #[test]
    fn float_fallback_agrees_with_integers() {
        // C(100008, 8) fits in i128, so both paths can run and must agree.
        let (k, m, big) = (150_000, 8, 100_000);
        let exact = gaussian_binomial_prefix::<i128>(k, m, big);
        let float = gaussian_binomial_prefix::<f64>(k, m, big);
        let e: i128 = exact.iter().sum();
        let f: f64 = float.iter().sum();
        let rel = ((e as f64 - f) / e as f64).abs();
        assert!(rel < 1e-12, "rel {rel:e}");
    }

    #[test]
    fn one_against_many_is_uniform() {
        // With one value U1 is uniform on 0..=n2: the top rank has p = 2 / (n2 + 1).
        let many: Vec<f64> = (0..1_000_000).map(f64::from).collect();
        let r = mann_whitney_u(&[2e6], &many).unwrap();
        assert_eq!(r.method, MwMethod::Exact);
        assert_eq!(r.u1, 1e6);
        assert!((r.p_value - 2.0 / 1_000_001.0).abs() < 1e-18);
    }

    #[test]
    fn eight_against_half_a_million_uses_the_float_table() {
        // C(500008, 8) > 2^127: exercises the f64 path; symmetric data gives p ~ 1.
        let many: Vec<f64> = (0..500_000).map(|i| f64::from(i) * 2.0).collect();
        // Odd values spread evenly through the even ones: U1 = n1 n2 / 2 + 8.
        let few: Vec<f64> = (0..8)
            .map(|i| f64::from(i) * 125_000.0 + 62_501.0)
            .collect();
        let r = mann_whitney_u(&few, &many).unwrap();
        assert_eq!(r.method, MwMethod::Exact);
        assert!(r.p_value > 0.9 && r.p_value <= 1.0, "{}", r.p_value);
        // Every value of `few` above every value of `many`: p = 2 / C(500008, 8).
        let few_top: Vec<f64> = (0..8).map(|i| 2e6 + f64::from(i)).collect();
        let r = mann_whitney_u(&few_top, &many).unwrap();
        let total = (1..=8).fold(1.0_f64, |acc, i| acc * (500_000 + i) as f64 / i as f64);
        let rel = (r.p_value - 2.0 / total).abs() / (2.0 / total);
        assert!(rel < 1e-12, "{} vs {}", r.p_value, 2.0 / total);
    }

    #[test]
    fn huge_exact_table_falls_back_to_asymptotic() {
        let many: Vec<f64> = (0..5_000_000).map(f64::from).collect();
        let few = [1e3, 2e6, 3e6, 4e6, 4.5e6, 1.5e6, 2.5e6, 3.5e6];
        let r = mann_whitney_u(&few, &many).unwrap();
        assert_eq!(r.method, MwMethod::Asymptotic);
        assert!(r.p_value > 0.5);
    }

    #[test]
    fn errors_name_sample_and_index() {
        assert_eq!(
            mann_whitney_u(&[], &[1.0]),
            Err(StatsError::EmptySample { sample: "first" })
        );
        let err = mann_whitney_u(&[1.0], &[1.0, 2.0, f64::NAN]).unwrap_err();
        assert!(matches!(
            err,
            StatsError::NonFinite {
                sample: "second",
                index: 2,
                ..
            }
        ));
        assert!(err.to_string().contains("index 2"), "{err}");
        let err = mann_whitney_u(&[f64::INFINITY], &[1.0]).unwrap_err();
        assert!(matches!(
            err,
            StatsError::NonFinite {
                sample: "first",
                index: 0,
                ..
            }
        ));
    }

    #[test]
    fn all_identical_is_p_one() {
        let r = mann_whitney_u(&[3.0; 100], &[3.0; 50]).unwrap();
        assert_eq!(r.p_value, 1.0);
        assert_eq!(r.u1, 2500.0);
        assert_eq!(r.z, None);
        assert_eq!(r.method, MwMethod::Asymptotic);
    }

    #[test]
    fn signed_zeros_are_ties() {
        let r = mann_whitney_u(&[-0.0, 1.0], &[0.0, 2.0]).unwrap();
        assert_eq!(r.method, MwMethod::Asymptotic);
        assert_eq!(r.u1, 1.5);
    }
}
