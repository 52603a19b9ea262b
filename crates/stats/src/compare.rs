use serde::{Deserialize, Serialize};

use crate::bootstrap::{Interval, bootstrap_sorted, check_bootstrap_params};
use crate::effect::delta_from_rank_sums;
use crate::mann_whitney::{MannWhitney, mann_whitney_sorted, rank_sums};
use crate::percentile::{Summary, summary_sorted};
use crate::severity::{Severity, latency_severity};
use crate::{StatsError, check_latencies, relative_change, sorted_copy};

/// Knobs of [`compare`]. Missing fields deserialize to the defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CompareOptions {
    /// Significance level of the Mann-Whitney test (seed 002: 0.05).
    pub alpha: f64,
    /// |Cliff's delta| below this is negligible and never a regression. 0.147 is Romano
    /// et al.'s "negligible" bound; it plays the role of seed 002's "ignore trivially small
    /// regressions" (stated there as Cohen's d, which assumes normal data).
    pub effect_floor: f64,
    /// The gate fails on a regression whose p95 grew by more than this fraction (0.15).
    pub gate_p95_regression: f64,
    pub bootstrap_resamples: usize,
    /// Confidence level of the p95-change interval.
    pub confidence: f64,
    /// Bootstrap seed, fixed so a CI run is reproducible.
    pub seed: u64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            effect_floor: 0.147,
            gate_p95_regression: 0.15,
            bootstrap_resamples: 2000,
            confidence: 0.95,
            seed: 0x6d61_6e67_6173_7374,
        }
    }
}

impl CompareOptions {
    fn validate(&self) -> Result<(), StatsError> {
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(StatsError::InvalidParameter {
                name: "alpha",
                value: self.alpha,
                expected: "in (0, 1]",
            });
        }
        if !(0.0..=1.0).contains(&self.effect_floor) {
            return Err(StatsError::InvalidParameter {
                name: "effect floor",
                value: self.effect_floor,
                expected: "in [0, 1]",
            });
        }
        if !self.gate_p95_regression.is_finite() {
            return Err(StatsError::InvalidParameter {
                name: "p95 regression gate",
                value: self.gate_p95_regression,
                expected: "finite",
            });
        }
        check_bootstrap_params(self.bootstrap_resamples, self.confidence)
    }
}

/// Verdict of [`compare`]; serializes to the JSON report of `bench compare`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub baseline: Summary,
    pub current: Summary,
    /// `p95(current) / p95(baseline) - 1` (0.2 = 20 % slower).
    pub p95_change: f64,
    pub p95_change_ci: Interval,
    /// Test of `(baseline, current)` in that order: `u1` is the baseline's U, and
    /// `cliffs_delta = 1 - 2 u1 / (n_baseline n_current)`.
    pub mann_whitney: MannWhitney,
    /// Positive: current tends to be slower.
    pub cliffs_delta: f64,
    /// `p_value < alpha`.
    pub significant: bool,
    /// `|cliffs_delta| < effect_floor`.
    pub negligible: bool,
    /// Significant, not negligible, current slower by both rank (delta > 0) and p95.
    pub regression: bool,
    /// Significant, not negligible, current faster by both rank and p95.
    pub improvement: bool,
    /// [`latency_severity`] of the p95 change for a regression, else none.
    pub severity: Severity,
    /// `regression && p95_change > gate_p95_regression`: the CI gate refuses the change.
    pub gate_failed: bool,
}

/// Compare a current latency sample against a baseline (values in any unit, e.g. ms).
///
/// A regression needs all of: statistical significance (two-sided Mann-Whitney p < alpha),
/// a non-negligible effect (|Cliff's delta| >= floor) and both the rank shift and the p95
/// pointing at "slower". Requiring the effect size keeps huge samples, where any 1 %
/// wobble is significant, from paging anyone.
///
/// Errors: empty sample, NaN/infinite or negative value (named `baseline`/`current` with
/// the index), invalid options, or a baseline p95 of 0 with a non-zero current p95
/// (the relative change would be infinite).
pub fn compare(
    baseline: &[f64],
    current: &[f64],
    opts: &CompareOptions,
) -> Result<Comparison, StatsError> {
    opts.validate()?;
    check_latencies("baseline", baseline)?;
    check_latencies("current", current)?;
    let base = sorted_copy(baseline);
    let cur = sorted_copy(current);
    let base_summary = summary_sorted(&base);
    let cur_summary = summary_sorted(&cur);

    let p95_change = relative_change(base_summary.p95, cur_summary.p95);
    if !p95_change.is_finite() {
        return Err(StatsError::ZeroBaselineP95 {
            current_p95: cur_summary.p95,
        });
    }
    let p95_change_ci = bootstrap_sorted(
        &base,
        &cur,
        opts.bootstrap_resamples,
        opts.confidence,
        opts.seed,
    );

    let sums = rank_sums(&base, &cur);
    let mann_whitney = mann_whitney_sorted(&base, &cur, &sums);
    let cliffs_delta = delta_from_rank_sums(&sums, base.len(), cur.len());

    let significant = mann_whitney.p_value < opts.alpha;
    let negligible = cliffs_delta.abs() < opts.effect_floor;
    let meaningful = significant && !negligible;
    let regression = meaningful && cliffs_delta > 0.0 && p95_change > 0.0;
    let improvement = meaningful && cliffs_delta < 0.0 && p95_change < 0.0;
    let severity = if regression {
        latency_severity(p95_change)
    } else {
        Severity::None
    };
    Ok(Comparison {
        baseline: base_summary,
        current: cur_summary,
        p95_change,
        p95_change_ci,
        mann_whitney,
        cliffs_delta,
        significant,
        negligible,
        regression,
        improvement,
        severity,
        gate_failed: regression && p95_change > opts.gate_p95_regression,
    })
}
