//! `bench compare BASELINE CURRENT`: per intent and metric (TTFT, e2e), the
//! `mangaassist_stats::compare` verdict, plus the error-rate severity; the gate fails on a
//! significant, non-negligible p95 regression above `--gate`.

use std::fmt::Write;

use mangaassist_stats::{CompareOptions, Comparison, Severity, error_rate_severity};

use crate::{
    BenchError,
    sample::{Results, Sample},
    summary::{e2e_values, fmt_ms, ordered_intents, pct, ttft_values},
};

/// Knobs of a comparison.
#[derive(Debug, Clone)]
pub struct CompareSettings {
    /// Fail on a p95 regression above this fraction (0.15 = 15 %).
    pub gate: f64,
    pub alpha: f64,
    /// |Cliff's delta| below this is negligible.
    pub effect_floor: f64,
    /// Fewer answered samples than this on either side: no verdict for that row.
    pub min_samples: usize,
    pub bootstrap_resamples: usize,
    pub seed: Option<u64>,
}

impl Default for CompareSettings {
    fn default() -> Self {
        let d = CompareOptions::default();
        Self {
            gate: d.gate_p95_regression,
            alpha: d.alpha,
            effect_floor: d.effect_floor,
            min_samples: 20,
            bootstrap_resamples: d.bootstrap_resamples,
            seed: None,
        }
    }
}

impl CompareSettings {
    /// The settings as flags, checked the same way for every gate that takes them.
    pub fn validate(&self) -> Result<(), BenchError> {
        if !(self.gate.is_finite() && self.gate >= 0.0) {
            return Err(BenchError::Usage(format!(
                "--gate must be a fraction ≥ 0, got {}",
                self.gate
            )));
        }
        if self.min_samples < 2 {
            return Err(BenchError::Usage(
                "--min-samples must be at least 2".to_string(),
            ));
        }
        Ok(())
    }

    pub(crate) fn options(&self) -> CompareOptions {
        let d = CompareOptions::default();
        CompareOptions {
            alpha: self.alpha,
            effect_floor: self.effect_floor,
            gate_p95_regression: self.gate,
            bootstrap_resamples: self.bootstrap_resamples,
            confidence: d.confidence,
            seed: self.seed.unwrap_or(d.seed),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Ttft,
    E2e,
}

impl Metric {
    pub fn label(self) -> &'static str {
        match self {
            Metric::Ttft => "ttft",
            Metric::E2e => "e2e",
        }
    }

    fn values(self, samples: &[&Sample]) -> Vec<f64> {
        match self {
            Metric::Ttft => ttft_values(samples),
            Metric::E2e => e2e_values(samples),
        }
    }
}

/// What one (intent, metric) row concluded.
#[derive(Debug, Clone)]
pub enum Outcome {
    Compared(Box<Comparison>),
    /// Not enough answered samples on one side.
    Insufficient {
        baseline: usize,
        current: usize,
    },
    /// The intent appears in only one file.
    Missing {
        in_baseline: bool,
    },
    /// The statistics refused the data (e.g. a zero baseline p95).
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub intent: String,
    pub metric: Metric,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub struct ErrorRow {
    pub intent: String,
    pub baseline_rate: Option<f64>,
    pub current_rate: Option<f64>,
    pub severity: Severity,
}

#[derive(Debug, Clone)]
pub struct CompareReport {
    pub baseline_label: String,
    pub current_label: String,
    pub settings: CompareSettings,
    pub rows: Vec<Row>,
    pub errors: Vec<ErrorRow>,
    pub gate_failed: bool,
}

impl CompareReport {
    /// Process exit code: 0 pass, 1 gate failed.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.gate_failed)
    }
}

/// Compares two runs (warm-up samples excluded, errors excluded from latencies).
pub fn compare_results(
    baseline: &Results,
    current: &Results,
    settings: &CompareSettings,
) -> Result<CompareReport, BenchError> {
    settings.validate()?;
    let opts = settings.options();
    let base = baseline.measured_by_intent();
    let cur = current.measured_by_intent();
    let intents = ordered_intents(base.keys().chain(cur.keys()));
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut gate_failed = false;
    for intent in intents {
        let (b, c) = (base.get(&intent), cur.get(&intent));
        let rate = |s: Option<&Vec<&Sample>>| {
            s.filter(|s| !s.is_empty())
                .map(|s| s.iter().filter(|x| x.error.is_some()).count() as f64 / s.len() as f64)
        };
        let current_rate = rate(c);
        errors.push(ErrorRow {
            intent: intent.clone(),
            baseline_rate: rate(b),
            current_rate,
            severity: current_rate.map_or(Severity::None, error_rate_severity),
        });
        for metric in [Metric::Ttft, Metric::E2e] {
            let outcome = match (b, c) {
                (None, _) => Outcome::Missing { in_baseline: false },
                (_, None) => Outcome::Missing { in_baseline: true },
                (Some(b), Some(c)) => {
                    let (bv, cv) = (metric.values(b), metric.values(c));
                    if bv.len() < settings.min_samples || cv.len() < settings.min_samples {
                        Outcome::Insufficient {
                            baseline: bv.len(),
                            current: cv.len(),
                        }
                    } else {
                        match mangaassist_stats::compare(&bv, &cv, &opts) {
                            Ok(cmp) => {
                                gate_failed |= cmp.gate_failed;
                                Outcome::Compared(Box::new(cmp))
                            }
                            Err(e) => Outcome::Failed(e.to_string()),
                        }
                    }
                }
            };
            rows.push(Row {
                intent: intent.clone(),
                metric,
                outcome,
            });
        }
    }
    Ok(CompareReport {
        baseline_label: baseline.label.clone(),
        current_label: current.label.clone(),
        settings: settings.clone(),
        rows,
        errors,
        gate_failed,
    })
}

fn signed_pct(v: f64) -> String {
    format!("{:+.1} %", v * 100.0)
}

/// The verdict word of one comparison.
pub(crate) fn verdict_label(c: &Comparison) -> &'static str {
    if c.gate_failed {
        "**GATE FAILED**"
    } else if c.regression {
        "regression"
    } else if c.improvement {
        "improvement"
    } else if c.significant && c.negligible {
        "negligible shift"
    } else {
        "no change"
    }
}

/// The cells after the row's name: `n | p50 → p50 | p95 → p95 | Δp95 [CI] | p | δ | verdict |
/// severity |` (shared by `bench compare` and `bench prompt`).
pub(crate) fn comparison_cells(c: &Comparison) -> String {
    format!(
        "{} / {} | {} → {} | {} → {} | {} [{}, {}] | {:.3} | {:+.2} | {} | {} |",
        c.baseline.n,
        c.current.n,
        fmt_ms(c.baseline.p50),
        fmt_ms(c.current.p50),
        fmt_ms(c.baseline.p95),
        fmt_ms(c.current.p95),
        signed_pct(c.p95_change),
        signed_pct(c.p95_change_ci.lo),
        signed_pct(c.p95_change_ci.hi),
        c.mann_whitney.p_value,
        c.cliffs_delta,
        verdict_label(c),
        c.severity.label()
    )
}

impl CompareReport {
    pub fn to_markdown(&self) -> String {
        let s = &self.settings;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Benchmark comparison: `{}` → `{}`\n",
            self.baseline_label, self.current_label
        );
        let _ = writeln!(
            md,
            "Gate: fail on a significant (Mann-Whitney p < {}), non-negligible (|Cliff's δ| ≥ {}) p95 regression above {}. Warm-up excluded; latencies of answered messages only; rows with fewer than {} samples get no verdict.\n",
            s.alpha,
            s.effect_floor,
            pct(s.gate),
            s.min_samples
        );
        md.push_str("| intent | metric | n base / cur | p50 base → cur (ms) | p95 base → cur (ms) | Δp95 [95 % CI] | MW p | Cliff's δ | verdict | severity |\n");
        md.push_str("|---|---|---|---|---|---|---:|---:|---|---|\n");
        for r in &self.rows {
            let head = format!("| {} | {} |", r.intent, r.metric.label());
            let line = match &r.outcome {
                Outcome::Compared(c) => format!("{head} {}", comparison_cells(c)),
                Outcome::Insufficient { baseline, current } => format!(
                    "{head} {baseline} / {current} | | | | | | insufficient samples (< {}) | – |",
                    s.min_samples
                ),
                Outcome::Missing { in_baseline } => format!(
                    "{head} | | | | | | only in {} | – |",
                    if *in_baseline { "baseline" } else { "current" }
                ),
                Outcome::Failed(e) => format!("{head} | | | | | | not comparable: {e} | – |"),
            };
            md.push_str(&line);
            md.push('\n');
        }
        md.push_str("\n## Error rate (seed 002: 1–3 % SEV-3, 3–10 % SEV-2, > 10 % SEV-1)\n\n");
        md.push_str("| intent | baseline | current | severity |\n|---|---:|---:|---|\n");
        for e in &self.errors {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                e.intent,
                e.baseline_rate.map_or("–".into(), pct),
                e.current_rate.map_or("–".into(), pct),
                e.severity.label()
            );
        }
        let failed: Vec<String> = self
            .rows
            .iter()
            .filter(|r| matches!(&r.outcome, Outcome::Compared(c) if c.gate_failed))
            .map(|r| format!("{} {}", r.intent, r.metric.label()))
            .collect();
        if failed.is_empty() {
            md.push_str("\n**Gate: PASS**\n");
        } else {
            let _ = writeln!(md, "\n**Gate: FAIL** ({})", failed.join(", "));
        }
        md
    }
}
