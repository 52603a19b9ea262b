//! One row per fault, computed from every message's outcome once all answers have ended;
//! written as `results.json` and a Markdown table with the targets checked.

use std::{collections::BTreeMap, fmt::Write as _, path::Path, time::Duration};

use serde::Serialize;

use crate::{ChaosError, Played, Settings, faults::Family, load::Outcome};

/// A degraded answer may overrun its stage deadline by this much (timer and scheduling slack).
pub const DEADLINE_SLACK_MS: f64 = 10.0;
/// Whether the deadline target is checked: in optimised builds only (see `Report::build`).
pub const DEADLINES_CHECKED: bool = !cfg!(debug_assertions);
/// Breakers must be closed this soon after the heal.
pub const RECOVERY_TARGET_S: f64 = 30.0;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub fault: String,
    pub family: Family,
    /// Conversations that asked something while the fault was in force or healing.
    pub conversations: usize,
    pub messages: usize,
    /// Messages that got no answer at all.
    pub failed: usize,
    /// Answers cut after part of them was on screen: the model's stream broke (its process
    /// died, or its network went) and the gateway ended the answer with `stream_interrupted`
    /// ("ask again") instead of pretending it was complete.
    pub cut: usize,
    /// Answers per rung of the degradation ladder (`full` included).
    pub degraded: BTreeMap<String, usize>,
    pub lost_chunks: u64,
    pub duplicated_chunks: u64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    /// Seconds from the heal until every breaker of the active gateway was closed.
    pub recovery_s: Option<f64>,
    /// Degraded answers whose worst stage ran past its deadline by more than 10 ms.
    pub late_degraded: usize,
    pub max_overrun_ms: Option<f64>,
    /// Answers a customer had to reconnect and resume.
    pub resumed: usize,
    /// Questions asked again because they went into a socket the gateway was closing.
    pub reasked: usize,
    /// Answers saved before the fault that `history` no longer shows (memory faults only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_turns: Option<u32>,
    /// Why messages failed, by reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, usize>,
    pub window_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The targets this row missed (empty = passed).
    pub missed: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: String,
    pub started_at: String,
    pub machine: mangaassist_bench::sample::Machine,
    pub quick: bool,
    pub conversations: usize,
    pub window_s: f64,
    pub wall_s: f64,
    pub messages: usize,
    pub rows: Vec<Row>,
    pub passed: bool,
    pub shutdown_notes: Vec<String>,
}

fn pct(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    Some((sorted[i.min(sorted.len() - 1)] * 10.0).round() / 10.0)
}

impl Row {
    /// The row of `p` from the messages the fault could touch: asked during it, or still in
    /// flight when it began (a stream cut by a kill belongs to the kill, not to the row
    /// before). A message that overlaps the next fault too belongs to that one only.
    pub fn build(p: &Played, next: Option<&Played>, outcomes: &[Outcome]) -> Row {
        let overlaps = |p: &Played, o: &Outcome| o.sent_at < p.to && o.ended_at >= p.from;
        let mine: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| overlaps(p, o) && !next.is_some_and(|n| overlaps(n, o)))
            .collect();
        let mut degraded = BTreeMap::new();
        let mut failures = BTreeMap::new();
        let mut ttft: Vec<f64> = Vec::new();
        let mut convs = std::collections::BTreeSet::new();
        let (mut lost, mut dup, mut late, mut resumed) = (0u64, 0u64, 0usize, 0usize);
        let mut reasked = 0usize;
        let mut cut = 0usize;
        let mut max_overrun: Option<f64> = None;
        for o in &mine {
            convs.insert(o.conversation);
            match (&o.degradation, &o.failure) {
                (Some(d), _) => *degraded.entry(d.clone()).or_insert(0) += 1,
                (None, Some(f)) if f == "stream_interrupted" && o.first_chunk.is_some() => {
                    cut += 1;
                }
                (None, f) => {
                    *failures
                        .entry(f.clone().unwrap_or_else(|| "unknown".into()))
                        .or_insert(0) += 1;
                }
            }
            if let Some(t) = o.first_chunk {
                ttft.push(t.as_secs_f64() * 1e3);
            }
            lost += u64::from(o.lost_chunks);
            dup += u64::from(o.duplicated_chunks);
            if o.resumes > 0 {
                resumed += 1;
            }
            if o.reasked > 0 {
                reasked += 1;
            }
            if let Some(over) = o.overrun_ms {
                max_overrun = Some(max_overrun.map_or(over, |m: f64| m.max(over)));
                if over > DEADLINE_SLACK_MS {
                    late += 1;
                }
            }
        }
        ttft.sort_by(f64::total_cmp);
        let failed = failures.values().sum();
        let mut row = Row {
            fault: p.fault.name.clone(),
            family: p.fault.family,
            conversations: convs.len(),
            messages: mine.len(),
            failed,
            cut,
            degraded,
            lost_chunks: lost,
            duplicated_chunks: dup,
            ttft_p50_ms: pct(&ttft, 0.5),
            ttft_p99_ms: pct(&ttft, 0.99),
            recovery_s: p.recovery_s.map(|s| (s * 10.0).round() / 10.0),
            late_degraded: late,
            max_overrun_ms: max_overrun.map(|m| (m * 10.0).round() / 10.0),
            resumed,
            reasked,
            lost_turns: p.lost_turns,
            failures,
            window_s: (p.to - p.from).as_secs_f64(),
            skipped: p.skipped.clone(),
            notes: p.notes.clone(),
            missed: Vec::new(),
        };
        row.missed = row.check(true);
        row
    }

    /// The targets this row missed; `deadlines` false leaves the deadline target unchecked.
    fn check(&self, deadlines: bool) -> Vec<String> {
        if self.skipped.is_some() {
            return Vec::new();
        }
        let mut m = Vec::new();
        if self.failed > 0 {
            m.push(format!("{} without an answer", self.failed));
        }
        if self.lost_chunks > 0 {
            m.push(format!("{} chunks lost", self.lost_chunks));
        }
        if self.duplicated_chunks > 0 {
            m.push(format!("{} chunks duplicated", self.duplicated_chunks));
        }
        if deadlines && self.late_degraded > 0 {
            m.push(format!(
                "{} degraded answers past their deadline + {DEADLINE_SLACK_MS} ms",
                self.late_degraded
            ));
        }
        match self.recovery_s {
            Some(s) if s <= RECOVERY_TARGET_S => {}
            Some(s) => m.push(format!("breakers closed {s:.1} s after the heal")),
            None => m.push("breakers still open 60 s after the heal".into()),
        }
        if let Some(n) = self.lost_turns
            && n > 0
        {
            m.push(format!("{n} saved turns lost"));
        }
        if self.messages == 0 {
            m.push("no message was sent during the fault".into());
        }
        m
    }
}

impl Report {
    pub fn build(
        settings: &Settings,
        played: &[Played],
        outcomes: &[Outcome],
        wall: Duration,
        shutdown_notes: Vec<String>,
    ) -> Report {
        let mut rows: Vec<Row> = played
            .iter()
            .enumerate()
            .map(|(i, p)| Row::build(p, played.get(i + 1), outcomes))
            .collect();
        // The deadline target is about the product's timers; an unoptimised (debug) build on
        // two saturated cores fires them up to ~15 ms late, which says nothing about a release
        // build. A debug build reports its late answers (the column stays) but does not fail
        // on them.
        if !DEADLINES_CHECKED {
            for r in &mut rows {
                r.missed = r.check(false);
            }
        }
        if settings.strict {
            for r in &mut rows {
                if let Some(why) = &r.skipped {
                    r.missed.push(format!("could not run: {why}"));
                }
            }
        }
        Report {
            command: settings.command.clone(),
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now() - wall)
                .to_string(),
            machine: mangaassist_bench::machine::collect(),
            quick: settings.quick,
            conversations: settings.conversations,
            window_s: settings.window.as_secs_f64(),
            wall_s: wall.as_secs_f64(),
            messages: outcomes.len(),
            passed: rows.iter().all(|r| r.missed.is_empty()),
            rows,
            shutdown_notes,
        }
    }

    pub fn write(&self, out: &Path) -> Result<(), ChaosError> {
        std::fs::create_dir_all(out).map_err(|e| ChaosError::Io(out.to_path_buf(), e))?;
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| ChaosError::Usage(format!("cannot encode the results: {e}")))?;
        let p = out.join("results.json");
        std::fs::write(&p, json).map_err(|e| ChaosError::Io(p.clone(), e))?;
        let p = out.join("results.md");
        std::fs::write(&p, self.to_markdown()).map_err(|e| ChaosError::Io(p.clone(), e))
    }

    pub fn table(&self) -> String {
        let mut t = String::from(
            "| fault | conv. | msgs | failed | cut | answers by rung | lost / dup chunks | resumed | first token p50 / p99 ms | breakers closed after | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            if let Some(why) = &r.skipped {
                let verdict = if r.missed.is_empty() {
                    format!("skipped: {why}")
                } else {
                    format!("**not run: {why}**")
                };
                let _ = writeln!(t, "| {} | | | | | | | | | | {verdict} |", r.fault);
                continue;
            }
            let rungs = r
                .degraded
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            let f = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.0}"));
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} / {} | {} | {} / {} | {} | {} |",
                r.fault,
                r.conversations,
                r.messages,
                r.failed,
                r.cut,
                rungs,
                r.lost_chunks,
                r.duplicated_chunks,
                r.resumed,
                f(r.ttft_p50_ms),
                f(r.ttft_p99_ms),
                r.recovery_s
                    .map_or("> 60 s".to_string(), |s| format!("{s:.1} s")),
                if r.missed.is_empty() {
                    "pass".to_string()
                } else {
                    format!("**{}**", r.missed.join("; "))
                }
            );
        }
        t
    }

    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(
            md,
            "# Chaos rehearsal{}\n\n`{}` — {}, {} × {} ({}, kernel {}), commit {}{}; {} conversations, {:.0} s per fault, {} messages in {:.0} s.\n",
            if self.quick { " (quick)" } else { "" },
            self.command,
            self.started_at,
            m.cpus,
            m.cpu_model,
            m.os,
            m.kernel,
            m.git_commit
                .as_deref()
                .map_or("?", |c| &c[..c.len().min(10)]),
            if m.git_dirty == Some(true) {
                " (dirty)"
            } else {
                ""
            },
            self.conversations,
            self.window_s,
            self.messages,
            self.wall_s,
        );
        md.push_str(&self.table());
        let _ = writeln!(
            md,
            "\nTargets: every message answered (a degraded or canned answer counts; a *cut* answer, \
             ended by `stream_interrupted` after part of it was shown, is counted apart), no chunk lost or \
             duplicated, every degraded answer within its stage deadlines + {DEADLINE_SLACK_MS} ms, \
             breakers closed ≤ {RECOVERY_TARGET_S} s after the heal, no saved turn lost. **{}**",
            if self.passed {
                "All met."
            } else {
                "Missed (see verdicts)."
            }
        );
        let notes: Vec<String> = self
            .rows
            .iter()
            .filter(|r| {
                !r.notes.is_empty()
                    || !r.failures.is_empty()
                    || r.reasked > 0
                    || r.max_overrun_ms.is_some()
            })
            .map(|r| {
                let mut n = r.notes.clone();
                if !r.failures.is_empty() {
                    n.push(format!(
                        "no answer: {}",
                        r.failures
                            .iter()
                            .map(|(k, v)| format!("{k} × {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if r.reasked > 0 {
                    n.push(format!(
                        "{} questions asked again (sent into a socket the gateway was closing)",
                        r.reasked
                    ));
                }
                if let Some(o) = r.max_overrun_ms {
                    n.push(format!("worst degraded-answer stage overrun {o:.1} ms"));
                }
                format!("- **{}**: {}", r.fault, n.join("; "))
            })
            .collect();
        if !notes.is_empty() {
            md.push_str("\n## Notes\n\n");
            md.push_str(&notes.join("\n"));
            md.push('\n');
        }
        for n in &self.shutdown_notes {
            let _ = writeln!(md, "\n- shutdown: {n}");
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::faults;

    fn outcome(at: Instant, rung: Option<&str>, lost: u32, over: Option<f64>) -> Outcome {
        Outcome {
            conversation: 1,
            session: "s".into(),
            message_id: "m".into(),
            sent_at: at,
            ended_at: at,
            first_chunk: Some(Duration::from_millis(40)),
            degradation: rung.map(str::to_string),
            failure: rung.is_none().then(|| "timeout".to_string()),
            overrun_ms: over,
            lost_chunks: lost,
            duplicated_chunks: 0,
            resumes: 0,
            forced_disconnects: 0,
            reasked: 0,
        }
    }

    #[test]
    fn a_row_fails_on_a_missing_answer_a_lost_chunk_or_a_late_degraded_answer() {
        let t0 = Instant::now();
        let played = Played {
            fault: faults::quick(10, 10).remove(0),
            from: t0,
            to: t0 + Duration::from_secs(5),
            recovery_s: Some(3.0),
            skipped: None,
            lost_turns: None,
            notes: vec![],
        };
        let ok = vec![
            outcome(t0, Some("full"), 0, None),
            outcome(t0, Some("no_rag"), 0, Some(4.0)),
            // Outside the window: not counted.
            outcome(t0 + Duration::from_secs(6), None, 0, None),
        ];
        let row = Row::build(&played, None, &ok);
        assert_eq!(row.messages, 2);
        assert!(row.missed.is_empty(), "{:?}", row.missed);
        assert_eq!(row.degraded["no_rag"], 1);

        let bad = vec![
            outcome(t0, None, 0, None),
            outcome(t0, Some("full"), 2, None),
            outcome(t0, Some("canned"), 0, Some(25.0)),
        ];
        let row = Row::build(&played, None, &bad);
        assert_eq!(row.failed, 1);
        assert_eq!(row.lost_chunks, 2);
        assert_eq!(row.late_degraded, 1);
        assert_eq!(row.missed.len(), 3, "{:?}", row.missed);

        // A stream cut after its first chunk is counted apart, not as a missing answer; a
        // message still in flight when the fault began belongs to its row.
        let mut cut = outcome(t0 - Duration::from_secs(1), None, 0, None);
        cut.failure = Some("stream_interrupted".into());
        cut.ended_at = t0 + Duration::from_millis(10);
        let row = Row::build(&played, None, &[cut.clone()]);
        assert_eq!((row.messages, row.cut, row.failed), (1, 1, 0));
        // ... unless it overlaps the next fault as well: then it is that fault's.
        let next = Played {
            from: t0 + Duration::from_millis(5),
            to: t0 + Duration::from_secs(9),
            ..played.clone()
        };
        let row = Row::build(&played, Some(&next), &[cut]);
        assert_eq!(row.messages, 0);

        let slow = Played {
            recovery_s: None,
            ..played
        };
        assert!(Row::build(&slow, None, &ok).missed[0].contains("60 s"));
    }
}
