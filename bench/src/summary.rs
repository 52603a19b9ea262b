//! Per-intent statistics of a run, `summary.md`, and the run's SVG plots.
//!
//! The seed 001 per-intent targets are applied to **TTFT** (client-side time from sending the
//! query to the first `chunk` frame): seed 003 defines the end-to-end SLO as "user message to
//! first visible token", and the first chunk is the first thing the user sees of the answer.
//! Time to `done` (e2e) is reported next to it without a verdict.

use std::{
    collections::BTreeMap,
    fmt::Write,
    path::{Path, PathBuf},
};

use mangaassist_stats::{Summary, summarize};

use crate::{
    BenchError,
    sample::{Results, Sample, Stage, write_file},
    svg::{self, LineChart, RefLine, Scale, Series, WaterfallPanel},
};

/// A seed 001 latency target (ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub intent: &'static str,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Seed 001 "Latency Targets per Intent".
pub const TARGETS: [Target; 7] = [
    Target {
        intent: "greeting",
        p50: 150.0,
        p95: 250.0,
        p99: 400.0,
    },
    Target {
        intent: "faq",
        p50: 200.0,
        p95: 400.0,
        p99: 600.0,
    },
    Target {
        intent: "order_status",
        p50: 300.0,
        p95: 500.0,
        p99: 800.0,
    },
    Target {
        intent: "product_search",
        p50: 800.0,
        p95: 1500.0,
        p99: 2200.0,
    },
    Target {
        intent: "recommendation",
        p50: 1200.0,
        p95: 2500.0,
        p99: 3000.0,
    },
    Target {
        intent: "comparison",
        p50: 1500.0,
        p95: 2800.0,
        p99: 3500.0,
    },
    Target {
        intent: "complaint",
        p50: 1000.0,
        p95: 2000.0,
        p99: 2800.0,
    },
];

pub fn target_for(intent: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.intent == intent)
}

/// Statistics of one intent over the non-warm-up samples.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentStats {
    pub intent: String,
    /// Non-warm-up messages.
    pub n: usize,
    pub answered: usize,
    pub errors: usize,
    pub error_rate: f64,
    pub ttft: Option<Summary>,
    pub e2e: Option<Summary>,
    pub server_ttft: Option<Summary>,
    /// Answered messages per second of run wall time.
    pub throughput: f64,
    pub cache_hits: usize,
    /// Answers not on the `full` step of the degradation ladder.
    pub degraded: usize,
    /// Share of answers whose server-classified intent matched the label.
    pub agreement: Option<f64>,
}

/// Latencies of answered samples.
pub fn ttft_values(samples: &[&Sample]) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.is_ok())
        .filter_map(|s| s.ttft_ms)
        .collect()
}

pub fn e2e_values(samples: &[&Sample]) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.is_ok())
        .filter_map(|s| s.e2e_ms)
        .collect()
}

fn stats_of(intent: &str, samples: &[&Sample], wall_s: f64) -> IntentStats {
    let n = samples.len();
    let errors = samples.iter().filter(|s| s.error.is_some()).count();
    let answered: Vec<&&Sample> = samples.iter().filter(|s| s.is_ok()).collect();
    let labelled: Vec<&&&Sample> = answered
        .iter()
        .filter(|s| s.expected_intent.is_some() && s.intent.is_some())
        .collect();
    let agreement = (!labelled.is_empty()).then(|| {
        labelled
            .iter()
            .filter(|s| s.expected_intent == s.intent)
            .count() as f64
            / labelled.len() as f64
    });
    let server: Vec<f64> = answered
        .iter()
        .filter_map(|s| s.server_first_token_ms)
        .collect();
    IntentStats {
        intent: intent.to_string(),
        n,
        answered: answered.len(),
        errors,
        error_rate: if n == 0 {
            0.0
        } else {
            errors as f64 / n as f64
        },
        ttft: summarize(&ttft_values(samples)),
        e2e: summarize(&e2e_values(samples)),
        server_ttft: summarize(&server),
        throughput: if wall_s > 0.0 {
            answered.len() as f64 / wall_s
        } else {
            0.0
        },
        cache_hits: answered
            .iter()
            .filter(|s| s.cache_hit == Some(true))
            .count(),
        degraded: answered
            .iter()
            .filter(|s| s.degradation.as_deref().is_some_and(|d| d != "full"))
            .count(),
        agreement,
    }
}

/// Intents in report order: the seed's targets first (in its order), then the rest by name.
pub fn ordered_intents<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().cloned().collect();
    names.sort_by_key(|n| {
        (
            TARGETS
                .iter()
                .position(|t| t.intent == n)
                .unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    names.dedup();
    names
}

/// Per-intent statistics, in report order, followed by an `all` row.
pub fn intent_stats(results: &Results) -> Vec<IntentStats> {
    let by = results.measured_by_intent();
    let mut out: Vec<IntentStats> = ordered_intents(by.keys())
        .iter()
        .map(|i| stats_of(i, &by[i], results.wall_s))
        .collect();
    let all: Vec<&Sample> = results.samples.iter().filter(|s| !s.warmup).collect();
    out.push(stats_of("all", &all, results.wall_s));
    out
}

/// Durations of each stage over answered, non-warm-up samples.
#[derive(Debug, Clone, PartialEq)]
pub struct StageStats {
    pub stage: String,
    pub durations: Summary,
    /// Most common budget of the stage.
    pub budget_ms: Option<f64>,
    /// Share of occurrences over their budget.
    pub over_budget: f64,
    /// How often each outcome occurred, most frequent first.
    pub outcomes: Vec<(String, usize)>,
    /// Median start, for ordering.
    pub start_p50: f64,
}

pub fn stage_stats<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Vec<StageStats> {
    let mut by: BTreeMap<&str, Vec<&Stage>> = BTreeMap::new();
    for s in samples {
        for st in &s.stages {
            by.entry(st.stage.as_str()).or_default().push(st);
        }
    }
    let mut out: Vec<StageStats> = by
        .into_iter()
        .filter_map(|(name, stages)| {
            let d: Vec<f64> = stages.iter().map(|s| s.duration_ms).collect();
            let starts: Vec<f64> = stages.iter().map(|s| s.start_ms).collect();
            let durations = summarize(&d)?;
            let budgeted: Vec<&&Stage> = stages.iter().filter(|s| s.budget_ms.is_some()).collect();
            let over = budgeted.iter().filter(|s| s.over_budget()).count();
            Some(StageStats {
                stage: name.to_string(),
                durations,
                budget_ms: mode(stages.iter().filter_map(|s| s.budget_ms)),
                over_budget: if budgeted.is_empty() {
                    0.0
                } else {
                    over as f64 / budgeted.len() as f64
                },
                outcomes: {
                    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                    for s in &stages {
                        *counts
                            .entry(s.outcome.as_deref().unwrap_or("?"))
                            .or_default() += 1;
                    }
                    let mut v: Vec<(String, usize)> = counts
                        .into_iter()
                        .map(|(k, n)| (k.to_string(), n))
                        .collect();
                    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    v
                },
                start_p50: summarize(&starts).map_or(0.0, |s| s.p50),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        a.start_p50
            .total_cmp(&b.start_p50)
            .then(a.stage.cmp(&b.stage))
    });
    out
}

fn mode(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v.to_bits()).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(_, c)| *c)
        .map(|(b, _)| f64::from_bits(b))
}

/// Milliseconds with sensible precision.
pub fn fmt_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// One statistic of a summary as a table cell; `–` when there was nothing to summarise.
pub(crate) fn opt_ms(s: &Option<Summary>, f: impl Fn(&Summary) -> f64) -> String {
    s.as_ref().map_or("–".to_string(), |s| fmt_ms(f(s)))
}

pub fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// `summary.md` of a run.
pub fn render_summary(results: &Results, overhead: bool) -> String {
    let mut md = String::new();
    let r = &results.run;
    let c = &results.counters;
    let m = &results.machine;
    let _ = writeln!(md, "# Benchmark `{}`\n", results.label);
    let _ = writeln!(
        md,
        "- started {} · {} · wall {:.1} s",
        results.started_at, results.tool, results.wall_s
    );
    let load = match r.mode.as_str() {
        "open" => format!(
            "open loop, Poisson {} msg/s, at most {} in flight, over {} connections",
            r.rate.map_or("?".into(), |v| format!("{v}")),
            r.max_in_flight.unwrap_or(0),
            r.vus
        ),
        _ => format!(
            "closed loop, {} virtual users, think time {} ms",
            r.vus,
            r.think_ms.map_or("0".into(), fmt_ms)
        ),
    };
    let _ = writeln!(md, "- {load}; gateway `{}`, auth `{}`", r.url, r.auth);
    let _ = writeln!(
        md,
        "- {} per intent excluded as warm-up · unique texts: {} · sessions: {} · store: {} · timeout {} ms · seed {}",
        r.warmup_per_intent,
        if r.unique { "yes" } else { "no" },
        if r.turns_per_session == 0 {
            "one per virtual user".to_string()
        } else {
            format!("new every ~{} turns", r.turns_per_session)
        },
        r.store.as_deref().unwrap_or("default"),
        fmt_ms(r.timeout_ms),
        r.seed
    );
    let _ = writeln!(
        md,
        "- machine: {} × {} · {} · kernel {} · commit {}{}\n",
        m.cpus,
        if m.cpu_model.is_empty() {
            "?"
        } else {
            &m.cpu_model
        },
        m.os,
        m.kernel,
        m.git_commit
            .as_deref()
            .map_or("unknown", |c| &c[..c.len().min(12)]),
        if m.git_dirty == Some(true) {
            " (dirty)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "Sent {} · answered {} · errors {} · dropped {} · late sends {} (max {} ms) · unattributed errors {} · reconnects {}\n",
        c.sent,
        c.answered,
        c.errors,
        c.dropped,
        c.late,
        fmt_ms(c.max_late_ms),
        c.unattributed_errors,
        c.reconnects
    );

    let stats = intent_stats(results);
    md.push_str("## Latency per intent (ms, warm-up excluded)\n\n");
    md.push_str("TTFT = client send → first `chunk`; e2e = client send → `done`. Percentiles over answered messages (linear interpolation).\n\n");
    md.push_str("| intent | n | errors | TTFT p50 | p95 | p99 | e2e p50 | p95 | p99 | server TTFT p50 | msg/s | cache hits | degraded | intent agrees |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for s in &stats {
        let _ = writeln!(
            md,
            "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} |",
            if s.intent == "all" {
                "**all**".to_string()
            } else {
                s.intent.clone()
            },
            s.n,
            s.errors,
            pct(s.error_rate),
            opt_ms(&s.ttft, |x| x.p50),
            opt_ms(&s.ttft, |x| x.p95),
            opt_ms(&s.ttft, |x| x.p99),
            opt_ms(&s.e2e, |x| x.p50),
            opt_ms(&s.e2e, |x| x.p95),
            opt_ms(&s.e2e, |x| x.p99),
            opt_ms(&s.server_ttft, |x| x.p50),
            s.throughput,
            s.cache_hits,
            s.degraded,
            s.agreement.map_or("–".to_string(), pct),
        );
    }

    md.push_str("\n## Seed 001 targets (applied to TTFT)\n\n");
    md.push_str("| intent | target p50 / p95 / p99 | TTFT p50 | p95 | p99 | verdict |\n|---|---|---|---|---|---|\n");
    let mut failed = 0;
    for s in stats.iter().filter(|s| s.intent != "all") {
        let Some(t) = target_for(&s.intent) else {
            let _ = writeln!(
                md,
                "| {} | no target | {} | {} | {} | – |",
                s.intent,
                opt_ms(&s.ttft, |x| x.p50),
                opt_ms(&s.ttft, |x| x.p95),
                opt_ms(&s.ttft, |x| x.p99)
            );
            continue;
        };
        let Some(ttft) = &s.ttft else {
            let _ = writeln!(
                md,
                "| {} | {} / {} / {} | – | – | – | no answers |",
                s.intent, t.p50, t.p95, t.p99
            );
            failed += 1;
            continue;
        };
        let cell = |v: f64, target: f64| {
            format!(
                "{} {}",
                fmt_ms(v),
                if v <= target { "PASS" } else { "FAIL" }
            )
        };
        let pass = ttft.p50 <= t.p50 && ttft.p95 <= t.p95 && ttft.p99 <= t.p99;
        if !pass {
            failed += 1;
        }
        let _ = writeln!(
            md,
            "| {} | {} / {} / {} | {} | {} | {} | {} |",
            s.intent,
            t.p50,
            t.p95,
            t.p99,
            cell(ttft.p50, t.p50),
            cell(ttft.p95, t.p95),
            cell(ttft.p99, t.p99),
            if pass { "**PASS**" } else { "**FAIL**" }
        );
    }
    let _ = writeln!(md, "\n{failed} intent(s) miss a target.");

    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for s in results.samples.iter().filter(|s| !s.warmup) {
        if let Some(e) = &s.error {
            *errors.entry(e.as_str()).or_default() += 1;
        }
    }
    if !errors.is_empty() {
        md.push_str("\n## Errors (warm-up excluded)\n\n| code | count |\n|---|---:|\n");
        for (code, n) in &errors {
            let _ = writeln!(md, "| `{code}` | {n} |");
        }
        if errors.contains_key("rate_limited") {
            md.push_str("\n`rate_limited`: the per-user limit (30 msg/min by default) refused messages. For load tests start the mesh with `MANGAASSIST_GATEWAY__LIMITS__USER_MESSAGES_PER_MINUTE=0`.\n");
        }
    }

    if overhead {
        let st = stage_stats(results.samples.iter().filter(|s| !s.warmup && s.is_ok()));
        md.push_str("\n## Mesh overhead per stage (zero-latency model)\n\n");
        md.push_str("Stage durations reported by the gateway in `done.stages`: with the model answering instantly this is the mesh's own cost.\n\n");
        md.push_str("| stage | n | start p50 | p50 | p95 | p99 | max | budget | over budget | outcomes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for s in &st {
            let d = &s.durations;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.stage,
                d.n,
                fmt_ms(s.start_p50),
                fmt_ms(d.p50),
                fmt_ms(d.p95),
                fmt_ms(d.p99),
                fmt_ms(d.max),
                s.budget_ms.map_or("–".to_string(), fmt_ms),
                pct(s.over_budget),
                s.outcomes
                    .iter()
                    .map(|(o, n)| format!("{o} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if st.is_empty() {
            md.push_str("| (no stage timings in the answers) | | | | | | | | | |\n");
        }
    }

    md.push_str("\n## Plots\n\n");
    for (file, what) in PLOTS {
        let _ = writeln!(md, "- [{what}]({file})");
    }
    md
}

const PLOTS: [(&str, &str); 4] = [
    ("ttft_cdf.svg", "TTFT CDF per intent (log x)"),
    ("e2e_cdf.svg", "e2e CDF per intent (log x)"),
    ("ttft_hist.svg", "TTFT histogram"),
    (
        "waterfall.svg",
        "stage waterfall of the median and the p99 message",
    ),
];

/// Up to ~400 (value, cumulative share) points of the empirical CDF.
pub fn cdf_points(values: &[f64]) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(400).max(1);
    let mut pts: Vec<(f64, f64)> = (0..n)
        .step_by(step)
        .map(|i| (v[i], (i + 1) as f64 / n as f64))
        .collect();
    if pts.last().is_some_and(|p| p.1 < 1.0) {
        pts.push((v[n - 1], 1.0));
    }
    pts
}

fn cdf_chart(
    results: &Results,
    title: &str,
    x_label: &str,
    pick: fn(&[&Sample]) -> Vec<f64>,
) -> String {
    let by = results.measured_by_intent();
    let series = ordered_intents(by.keys())
        .into_iter()
        .map(|intent| Series {
            points: cdf_points(&pick(&by[&intent])),
            name: intent,
            dashed: false,
        })
        .collect();
    svg::line_chart(&LineChart {
        title: title.to_string(),
        x_label: x_label.to_string(),
        y_label: "share of answered messages".to_string(),
        x_scale: Scale::Log,
        series,
        x_ticks: None,
        y_range: Some((0.0, 1.0)),
        y_percent: true,
        refs: vec![
            RefLine {
                y: 0.5,
                label: "p50".into(),
            },
            RefLine {
                y: 0.95,
                label: "p95".into(),
            },
            RefLine {
                y: 0.99,
                label: "p99".into(),
            },
        ],
        step: true,
        markers: false,
    })
}

/// The answered, measured sample whose e2e is nearest the given quantile (with stages if any).
fn sample_at(results: &Results, q: f64) -> Option<&Sample> {
    let mut ok: Vec<&Sample> = results
        .samples
        .iter()
        .filter(|s| !s.warmup && s.is_ok() && !s.stages.is_empty())
        .collect();
    if ok.is_empty() {
        ok = results
            .samples
            .iter()
            .filter(|s| !s.warmup && s.is_ok())
            .collect();
    }
    ok.sort_by(|a, b| a.e2e_ms.unwrap_or(0.0).total_cmp(&b.e2e_ms.unwrap_or(0.0)));
    let i = ((ok.len().checked_sub(1)?) as f64 * q).round() as usize;
    ok.get(i).copied()
}

fn waterfall_chart(results: &Results) -> String {
    let panels: Vec<WaterfallPanel> = [(0.5, "median"), (0.99, "p99")]
        .iter()
        .filter_map(|(q, name)| {
            let s = sample_at(results, *q)?;
            Some(WaterfallPanel {
                title: format!(
                    "{name} message: {} · {} · client e2e {} ms · TTFT {} ms",
                    s.group(),
                    s.message_id.as_deref().unwrap_or("?"),
                    s.e2e_ms.map_or("?".into(), fmt_ms),
                    s.ttft_ms.map_or("?".into(), fmt_ms),
                ),
                stages: s.stages.clone(),
                first_token_ms: s.server_first_token_ms,
                total_ms: s.server_total_ms,
            })
        })
        .collect();
    svg::waterfall(
        "Server stages of the median and the p99 message (by e2e)",
        &panels,
    )
}

/// Writes `results.json`, `summary.md` and the SVG plots into `dir`; returns the paths.
pub fn write_outputs(
    results: &Results,
    dir: &Path,
    overhead: bool,
) -> Result<Vec<PathBuf>, BenchError> {
    let mut written = Vec::new();
    let path = dir.join("results.json");
    results.save(&path)?;
    written.push(path);
    let mut put = |name: &str, text: String| -> Result<(), BenchError> {
        let path = dir.join(name);
        write_file(&path, text.as_bytes())?;
        written.push(path);
        Ok(())
    };
    put("summary.md", render_summary(results, overhead))?;
    put(
        "ttft_cdf.svg",
        cdf_chart(
            results,
            "Time to first token: CDF per intent",
            "TTFT (ms, log scale)",
            ttft_values,
        ),
    )?;
    put(
        "e2e_cdf.svg",
        cdf_chart(
            results,
            "Time to done: CDF per intent",
            "e2e (ms, log scale)",
            e2e_values,
        ),
    )?;
    let all: Vec<&Sample> = results.samples.iter().filter(|s| !s.warmup).collect();
    let (bins, scale) = svg::bins(&ttft_values(&all), 40);
    put(
        "ttft_hist.svg",
        svg::histogram(
            "Time to first token (all intents)",
            "TTFT (ms)",
            &bins,
            scale,
        ),
    )?;
    put("waterfall.svg", waterfall_chart(results))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample(intent: &str, ttft: f64, warmup: bool) -> Sample {
        Sample {
            expected_intent: Some(intent.into()),
            intent: Some(intent.into()),
            ttft_ms: Some(ttft),
            e2e_ms: Some(ttft * 2.0),
            warmup,
            degradation: Some("full".into()),
            stages: vec![Stage {
                stage: "intent".into(),
                start_ms: 0.0,
                duration_ms: ttft / 10.0,
                budget_ms: Some(35.0),
                outcome: Some("ok".into()),
            }],
            ..Sample::default()
        }
    }

    #[test]
    fn targets_pass_and_fail_on_ttft() {
        let mut samples: Vec<Sample> = (0..50)
            .map(|i| sample("greeting", 100.0 + f64::from(i), false))
            .collect();
        samples.extend((0..50).map(|i| sample("faq", 500.0 + f64::from(i), false)));
        // Warm-up samples are slow but excluded.
        samples.extend((0..5).map(|_| sample("greeting", 10_000.0, true)));
        let r = Results {
            samples,
            wall_s: 10.0,
            ..Results::default()
        };
        let stats = intent_stats(&r);
        assert_eq!(stats[0].intent, "greeting");
        assert_eq!(stats[0].n, 50);
        assert!(stats[0].ttft.as_ref().unwrap().p99 < 150.0);
        assert_eq!(stats.last().unwrap().intent, "all");
        let md = render_summary(&r, true);
        assert!(md.contains("| greeting | 150 / 250 / 400 |"), "{md}");
        let greeting = md
            .lines()
            .find(|l| l.starts_with("| greeting | 150"))
            .unwrap();
        assert!(greeting.ends_with("**PASS** |"), "{greeting}");
        let faq = md.lines().find(|l| l.starts_with("| faq | 200")).unwrap();
        assert!(faq.ends_with("**FAIL** |"), "{faq}");
        assert!(md.contains("Mesh overhead per stage"));
        assert!(md.contains("| intent | 100 |"), "{md}");
        assert!(md.contains("| ok 100 |"), "{md}");
    }

    #[test]
    fn stage_stats_count_over_budget() {
        let samples: Vec<Sample> = (1..=10)
            .map(|i| sample("faq", f64::from(i) * 50.0, false))
            .collect();
        let st = stage_stats(samples.iter());
        assert_eq!(st.len(), 1);
        // durations 5..50 step 5: 36+ over a 35 ms budget = 40, 45, 50.
        assert!((st[0].over_budget - 0.3).abs() < 1e-9);
        assert_eq!(st[0].budget_ms, Some(35.0));
    }

    #[test]
    fn cdf_ends_at_one() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        let p = cdf_points(&v);
        assert!(p.len() <= 402);
        assert_eq!(p.last().unwrap().1, 1.0);
        assert!(p.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }
}
