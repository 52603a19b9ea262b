//! `report weekly`: daily p50/p95/p99 trends of TTFT and e2e, and per-stage budget compliance
//! (seed 003: "Weekly latency reports show p50, p95, p99 trends and budget compliance per
//! service"), from bench `results.json` files and/or gateway recordings (JSONL).

use std::{
    collections::BTreeMap,
    fmt::Write,
    path::{Path, PathBuf},
};

use mangaassist_stats::summarize;

use crate::{
    BenchError,
    sample::{Results, Sample, load_jsonl, write_file},
    summary::{e2e_values, fmt_ms, opt_ms, pct, stage_stats, ttft_values},
    svg::{self, LineChart, RefLine, Scale, Series},
};

/// End-to-end SLO from seed 003 (p95 of time to first visible token).
pub const SLO_P95_MS: f64 = 2000.0;

/// Expands inputs: files as given; directories recursively, taking `*.jsonl` recordings and
/// files named `results.json` (or ending in `.results.json`).
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, BenchError> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(BenchError::Read {
                path: p.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory",
                ),
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BenchError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BenchError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            walk(&p, out)?;
        } else if name.ends_with(".jsonl")
            || name == "results.json"
            || name.ends_with(".results.json")
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads every sample: `.jsonl` as recordings, anything else as `results.json`.
pub fn load_samples(files: &[PathBuf]) -> Result<Vec<Sample>, BenchError> {
    let mut all = Vec::new();
    for f in files {
        if f.extension().is_some_and(|e| e == "jsonl") {
            all.extend(load_jsonl(f)?);
        } else {
            all.extend(Results::load(f)?.samples);
        }
    }
    Ok(all)
}

/// `YYYY-MM-DD` (UTC) of a Unix-epoch millisecond timestamp.
pub fn utc_day(ts_ms: u64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = (ts_ms / 86_400_000) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// One day's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    pub day: String,
    pub n: usize,
    pub errors: usize,
    pub ttft: Option<mangaassist_stats::Summary>,
    pub e2e: Option<mangaassist_stats::Summary>,
}

pub fn days(samples: &[Sample]) -> Vec<Day> {
    let mut by: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
    for s in samples.iter().filter(|s| !s.warmup) {
        by.entry(utc_day(s.ts_ms)).or_default().push(s);
    }
    by.into_iter()
        .map(|(day, s)| Day {
            n: s.len(),
            errors: s.iter().filter(|x| x.error.is_some()).count(),
            ttft: summarize(&ttft_values(&s)),
            e2e: summarize(&e2e_values(&s)),
            day,
        })
        .collect()
}

fn trend_chart(
    days: &[Day],
    title: &str,
    y_label: &str,
    pick: fn(&Day) -> Option<&mangaassist_stats::Summary>,
    slo: bool,
) -> String {
    let mut series = Vec::new();
    for (name, f) in [
        (
            "p50",
            (|s: &mangaassist_stats::Summary| s.p50) as fn(&mangaassist_stats::Summary) -> f64,
        ),
        ("p95", |s| s.p95),
        ("p99", |s| s.p99),
    ] {
        series.push(Series {
            name: name.to_string(),
            points: days
                .iter()
                .enumerate()
                .filter_map(|(i, d)| pick(d).map(|s| (i as f64, f(s))))
                .collect(),
            dashed: false,
        });
    }
    svg::line_chart(&LineChart {
        title: title.to_string(),
        x_label: "day (UTC)".to_string(),
        y_label: y_label.to_string(),
        x_scale: Scale::Linear,
        series,
        x_ticks: Some(
            days.iter()
                .enumerate()
                .map(|(i, d)| (i as f64, d.day.clone()))
                .collect(),
        ),
        y_range: None,
        y_percent: false,
        refs: if slo {
            vec![RefLine {
                y: SLO_P95_MS,
                label: "SLO p95 2,000 ms".into(),
            }]
        } else {
            Vec::new()
        },
        step: false,
        markers: true,
    })
}

/// Builds `weekly.md` and its charts; returns (file name, contents) pairs.
pub fn render_weekly(samples: &[Sample], sources: &[PathBuf]) -> Vec<(String, String)> {
    let days = days(samples);
    let mut md = String::new();
    md.push_str("# Weekly latency report\n\n");
    let _ = writeln!(
        md,
        "{} messages (warm-up excluded) from {} file(s), {} day(s): {}.\n",
        samples.iter().filter(|s| !s.warmup).count(),
        sources.len(),
        days.len(),
        match (days.first(), days.last()) {
            (Some(a), Some(b)) => format!("{} to {}", a.day, b.day),
            _ => "no data".into(),
        }
    );
    md.push_str("## Daily trends (ms)\n\n![TTFT trend](weekly_ttft.svg)\n\n![e2e trend](weekly_e2e.svg)\n\n");
    md.push_str("| day | n | errors | TTFT p50 | p95 | p99 | e2e p50 | p95 | p99 | SLO (TTFT p95 < 2 s) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for d in &days {
        let slo = d.ttft.as_ref().map_or("–", |s| {
            if s.p95 < SLO_P95_MS {
                "met"
            } else {
                "**missed**"
            }
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {slo} |",
            d.day,
            d.n,
            d.errors,
            pct(if d.n == 0 {
                0.0
            } else {
                d.errors as f64 / d.n as f64
            }),
            opt_ms(&d.ttft, |s| s.p50),
            opt_ms(&d.ttft, |s| s.p95),
            opt_ms(&d.ttft, |s| s.p99),
            opt_ms(&d.e2e, |s| s.p50),
            opt_ms(&d.e2e, |s| s.p95),
            opt_ms(&d.e2e, |s| s.p99),
        );
    }

    md.push_str("\n## Stage budget compliance (whole period)\n\nA stage complies when its p95 is within its budget; \"over budget\" is the share of its runs that exceeded the budget.\n\n");
    md.push_str("| stage | runs | p50 | p95 | budget | p95 within budget | over budget |\n|---|---:|---:|---:|---:|---|---:|\n");
    let measured: Vec<&Sample> = samples.iter().filter(|s| !s.warmup).collect();
    let stages = stage_stats(measured.iter().copied());
    for s in &stages {
        let ok = s.budget_ms.map_or("no budget".to_string(), |b| {
            if s.durations.p95 <= b {
                "yes".into()
            } else {
                "**no**".into()
            }
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {ok} | {} |",
            s.stage,
            s.durations.n,
            fmt_ms(s.durations.p50),
            fmt_ms(s.durations.p95),
            s.budget_ms.map_or("–".into(), fmt_ms),
            pct(s.over_budget)
        );
    }
    if stages.is_empty() {
        md.push_str("| (no stage timings in the inputs) | | | | | | |\n");
    } else {
        md.push_str("\n### Share of runs over budget, per day\n\n| stage |");
        for d in &days {
            let _ = write!(md, " {} |", d.day);
        }
        md.push_str("\n|---|");
        md.push_str(&"---:|".repeat(days.len()));
        md.push('\n');
        let mut by_day: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
        for s in &measured {
            by_day.entry(utc_day(s.ts_ms)).or_default().push(s);
        }
        let per_day: Vec<Vec<crate::summary::StageStats>> = days
            .iter()
            .map(|d| stage_stats(by_day.get(&d.day).into_iter().flatten().copied()))
            .collect();
        for s in &stages {
            let _ = write!(md, "| {} |", s.stage);
            for day in &per_day {
                let cell = day
                    .iter()
                    .find(|x| x.stage == s.stage)
                    .map_or("–".to_string(), |x| pct(x.over_budget));
                let _ = write!(md, " {cell} |");
            }
            md.push('\n');
        }
    }
    md.push_str("\n## Sources\n\n");
    for s in sources {
        let _ = writeln!(md, "- `{}`", s.display());
    }
    vec![
        ("weekly.md".to_string(), md),
        (
            "weekly_ttft.svg".to_string(),
            trend_chart(
                &days,
                "Time to first token per day",
                "TTFT (ms)",
                |d| d.ttft.as_ref(),
                true,
            ),
        ),
        (
            "weekly_e2e.svg".to_string(),
            trend_chart(
                &days,
                "Time to done per day",
                "e2e (ms)",
                |d| d.e2e.as_ref(),
                false,
            ),
        ),
    ]
}

/// Reads the inputs and writes `weekly.md`, `weekly_ttft.svg`, `weekly_e2e.svg` into `out`.
pub fn write_weekly(inputs: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>, BenchError> {
    let files = expand_inputs(inputs)?;
    if files.is_empty() {
        return Err(BenchError::Usage(
            "no inputs: give results.json files, *.jsonl recordings or directories holding them"
                .into(),
        ));
    }
    let samples = load_samples(&files)?;
    let mut written = Vec::new();
    for (name, text) in render_weekly(&samples, &files) {
        let p = out.join(name);
        write_file(&p, text.as_bytes())?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(951_782_400_000), "2000-02-29");
        assert_eq!(utc_day(1_709_251_199_999), "2024-02-29");
        assert_eq!(utc_day(1_735_689_600_000), "2025-01-01");
    }
}
