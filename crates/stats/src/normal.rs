//! The normal distribution's CDF and survival function for the Mann-Whitney normal
//! approximation, on top of `libm`'s erf/erfc (FreeBSD msun: relative error near machine
//! precision over the whole range, including the far tail where small p-values live; erfc
//! underflows to 0 past x ≈ 26.5, i.e. p < 1e-307).

use std::f64::consts::FRAC_1_SQRT_2;

/// Complementary error function `1 - erf(x)`, accurate in relative terms for large `x`.
pub fn erfc(x: f64) -> f64 {
    libm::erfc(x)
}

/// Standard normal CDF Φ(x), computed like SciPy's `ndtr` (Cephes): erf near 0, erfc in
/// the tails so that Φ(-40) is not rounded to 0 via `1 - 1`.
pub fn normal_cdf(x: f64) -> f64 {
    let t = x * FRAC_1_SQRT_2;
    let z = t.abs();
    if z < FRAC_1_SQRT_2 {
        0.5 + 0.5 * libm::erf(t)
    } else {
        let y = 0.5 * erfc(z);
        if t > 0.0 { 1.0 - y } else { y }
    }
}

/// Standard normal survival function `1 - Φ(z) = Φ(-z)`.
pub fn normal_sf(z: f64) -> f64 {
    normal_cdf(-z)
}

#[cfg(test)]
mod tests {
    // Reference values are kept verbatim as mpmath printed them.
    #![allow(clippy::excessive_precision)]

    use super::*;

    fn assert_rel(actual: f64, expected: f64, tol: f64) {
        let rel = ((actual - expected) / expected).abs();
        assert!(
            rel <= tol,
            "actual {actual:e} expected {expected:e} rel {rel:e}"
        );
    }

    #[test]
    fn known_values() {
        // Values from mpmath at 40 digits.
        assert_rel(erfc(0.5), 0.479_500_122_186_953_5, 1e-15);
        assert_rel(erfc(1.0), 0.157_299_207_050_285_13, 1e-15);
        assert_rel(erfc(10.0), 2.088_487_583_762_544_8e-45, 1e-14);
        assert_rel(normal_sf(1.959_963_984_540_054), 0.025, 1e-14);
        assert_rel(normal_cdf(-1.0), 0.158_655_253_931_457_05, 1e-15);
        assert_eq!(normal_cdf(0.0), 0.5);
        assert_eq!(erfc(0.0), 1.0);
        assert_eq!(erfc(40.0), 0.0);
        assert_eq!(erfc(-40.0), 2.0);
        assert_eq!(normal_sf(f64::INFINITY), 0.0);
        assert_eq!(normal_sf(f64::NEG_INFINITY), 1.0);
        assert!(erfc(f64::NAN).is_nan());
    }

    #[test]
    fn symmetric() {
        for i in 0..200 {
            let x = f64::from(i) * 0.05;
            let sum = normal_cdf(x) + normal_cdf(-x);
            assert!((sum - 1.0).abs() < 1e-15, "x={x}: {sum}");
        }
    }
}
