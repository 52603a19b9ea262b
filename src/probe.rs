//! `mangaassist probe`: a quick latency probe of a running gateway. Sends distinct questions
//! (cache misses), then the same questions again (cache hits for cacheable intents), one at
//! a time over one WebSocket, and reports client-side time to first chunk and to `done`.
//! The full benchmark (virtual users, per-intent targets, statistics) is separate work.

use std::{path::Path, time::Duration};

use anyhow::Context;

use crate::chat::{self, ChatOptions};

#[derive(Debug, Default, Clone)]
pub struct Samples {
    pub first_chunk_ms: Vec<f64>,
    pub done_ms: Vec<f64>,
}

/// Percentile (`p` in 0..=100) of the measured samples, by the mesh's one definition
/// ([`mangaassist_stats::percentile`], the one `bench` reports too). A NaN marks an answer
/// without a first chunk: it is not a latency and is left out. NaN when nothing was measured.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    let measured: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    mangaassist_stats::percentile(&measured, p / 100.0).unwrap_or(f64::NAN)
}

#[derive(Debug, Default)]
pub struct ProbeReport {
    pub misses: Samples,
    pub hits: Samples,
    pub errors: usize,
}

impl std::fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "| answers | n | first chunk p50 | p99 | done p50 | p99 |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|")?;
        for (name, s) in [("cache miss", &self.misses), ("cache hit", &self.hits)] {
            writeln!(
                f,
                "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
                s.done_ms.len(),
                percentile(&s.first_chunk_ms, 50.0),
                percentile(&s.first_chunk_ms, 99.0),
                percentile(&s.done_ms, 50.0),
                percentile(&s.done_ms, 99.0),
            )?;
        }
        write!(f, "errors: {}", self.errors)
    }
}

/// Runs the probe with `messages` distinct questions from the labelled intent data.
/// Messages are spread over this many users (each with its own session and token) so the
/// per-user rate limit (30/min by default) is not what gets measured.
const PROBE_USERS: usize = 200;

pub async fn run(
    url: &str,
    data_dir: &Path,
    messages: usize,
    token_for: impl Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<ProbeReport> {
    let mut texts: Vec<String> =
        mangaassist_catalog::load_intents(&data_dir.join("intents/train.jsonl"))?
            .into_iter()
            .chain(mangaassist_catalog::load_intents(
                &data_dir.join("intents/heldout.jsonl"),
            )?)
            .map(|l| l.text)
            .collect();
    // Distinct questions only: a repeat in round one would be counted as a miss that hit.
    let mut seen = std::collections::HashSet::new();
    texts.retain(|t| seen.insert(t.clone()));
    texts.truncate(messages);
    let users: Vec<ChatOptions> = (0..PROBE_USERS.min(texts.len().max(1)))
        .map(|i| {
            let user = format!("probe-{i}");
            Ok(ChatOptions {
                url: url.to_string(),
                session: Some(format!("probe-{}-{i}", std::process::id())),
                store: None,
                token: Some(token_for(&user)?),
                user: Some(user),
                timeout: Duration::from_secs(30),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut report = ProbeReport::default();
    for round in 0..2 {
        for (i, text) in texts.iter().enumerate() {
            let opts = &users[i % users.len()];
            let t = chat::ask(opts, text, |_| {})
                .await
                .with_context(|| format!("round {round}, message {i}"))?;
            let Some(done) = &t.done else {
                report.errors += 1;
                continue;
            };
            let s = if done.cache_hit {
                &mut report.hits
            } else {
                &mut report.misses
            };
            s.first_chunk_ms
                .push(t.first_chunk.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3));
            s.done_ms.push(t.elapsed.as_secs_f64() * 1e3);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_interpolate_and_skip_missing_first_chunks() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), 50.5);
        assert!((percentile(&s, 99.0) - 99.01).abs() < 1e-9);
        assert_eq!(percentile(&s, 100.0), 100.0);
        assert_eq!(percentile(&[3.0, 1.0, f64::NAN, 2.0], 50.0), 2.0);
        assert!(percentile(&[], 50.0).is_nan());
        assert!(percentile(&[f64::NAN], 50.0).is_nan());
    }
}
