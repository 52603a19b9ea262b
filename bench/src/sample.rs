//! The data model shared by runs, comparisons and weekly reports: one [`Sample`] per message,
//! and [`Results`] (`results.json`) holding a whole run with everything needed to recompute
//! every statistic and plot later.
//!
//! `Sample` also parses the gateway's per-message recording lines (JSONL), which use the same
//! field names; every field has a default so either source may omit what it does not know.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Deserializer, Serialize};

use crate::BenchError;

/// Version of the `results.json` layout. Bump when a field changes meaning; adding an optional
/// field does not need a bump (readers default it).
pub const SCHEMA_VERSION: u32 = 1;

/// One stage of the server's pipeline for one message (from `done.stages`). Times are
/// milliseconds relative to the gateway receiving the query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stage {
    pub stage: String,
    pub start_ms: f64,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl Stage {
    /// Whether the stage ran longer than its budget (false when it has none).
    pub fn over_budget(&self) -> bool {
        self.budget_ms.is_some_and(|b| self.duration_ms > b)
    }
}

/// One message: what was sent, what came back and when. Client-side times are milliseconds
/// from the moment the query frame was handed to the socket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sample {
    /// Wall-clock send time, Unix epoch milliseconds.
    pub ts_ms: u64,
    /// Send time relative to the run's start (monotonic clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<f64>,
    /// Virtual user that sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Intent label of the query in the labelled data (what the benchmark meant to ask).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_intent: Option<String>,
    /// Intent the server classified (`done.intent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Time to the `status` frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_ms: Option<f64>,
    /// Time to the first `chunk` frame: the first visible token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Time to the `done` frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<f64>,
    /// Gaps between consecutive chunk frames.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chunk_gaps_ms: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_first_token_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_total_ms: Option<f64>,
    /// Chunk count the server reported in `done`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u32>,
    /// Chunk frames the client actually received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks_received: Option<u32>,
    /// Chunk frames whose `index` was not the next expected one (should always be 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub index_faults: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_hit: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degradation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Error code (`rate_limited`, `busy`, `timeout`, `connection_closed`...); `None` = answered.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_error"
    )]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Among the first messages of its intent: kept for inspection, excluded from statistics.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warmup: bool,
    /// Open loop: how long after its scheduled time the message was actually sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_ms: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Recordings may write `error` as a code, `null`, or a boolean; `true` becomes `"error"`.
fn lenient_error<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        serde_json::Value::Bool(true) => Some("error".to_string()),
        _ => None,
    })
}

impl Sample {
    /// The intent a sample is grouped under: the labelled one when known, so both sides of a
    /// comparison group the same questions even if the classifier changed its mind.
    pub fn group(&self) -> &str {
        self.expected_intent
            .as_deref()
            .or(self.intent.as_deref())
            .unwrap_or("unknown")
    }

    /// Answered completely (a `done` frame arrived, no error).
    pub fn is_ok(&self) -> bool {
        self.error.is_none() && self.e2e_ms.is_some()
    }
}

/// How the run was driven, as recorded in `results.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunRecord {
    /// Gateway URL without credentials.
    pub url: String,
    /// `closed` or `open`.
    pub mode: String,
    pub vus: usize,
    /// Open loop: target arrival rate, messages per second.
    pub rate: Option<f64>,
    pub max_in_flight: Option<usize>,
    pub think_ms: Option<f64>,
    pub messages: Option<u64>,
    pub duration_s: Option<f64>,
    pub timeout_ms: f64,
    pub warmup_per_intent: u64,
    pub intents: Vec<String>,
    pub store: Option<String>,
    pub unique: bool,
    /// Messages per virtual user per session; 0 = one session for the whole run.
    pub turns_per_session: u64,
    pub seed: u64,
    pub overhead: bool,
    /// `mint` (HS256 JWT per virtual user), `fixed` or `none`.
    pub auth: String,
}

/// The machine the client ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub os: String,
    pub kernel: String,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
}

/// Run-level counts that no single sample shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub sent: u64,
    pub answered: u64,
    pub errors: u64,
    /// Open loop: arrivals skipped because every connection had its in-flight maximum.
    pub dropped: u64,
    /// Open loop: sends more than `LATE_THRESHOLD_MS` behind schedule.
    pub late: u64,
    pub max_late_ms: f64,
    /// Error frames without a `message_id` that could not be tied to a message.
    pub unattributed_errors: u64,
    pub reconnects: u64,
}

/// A whole run: `results.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Results {
    pub schema_version: u32,
    pub tool: String,
    pub label: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub started_at_ms: u64,
    /// From the first send to the last answer (or timeout).
    pub wall_s: f64,
    pub run: RunRecord,
    pub machine: Machine,
    pub counters: Counters,
    pub samples: Vec<Sample>,
}

impl Results {
    /// Reads and version-checks a `results.json`.
    pub fn load(path: &Path) -> Result<Self, BenchError> {
        let text = std::fs::read_to_string(path).map_err(|source| BenchError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, BenchError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| BenchError::Parse {
                path: path.to_path_buf(),
                message: format!("not JSON: {e}"),
            })?;
        let version = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| BenchError::Parse {
                path: path.to_path_buf(),
                message: "no `schema_version`: not a bench results.json".to_string(),
            })?;
        let version = u32::try_from(version).unwrap_or(u32::MAX);
        if version > SCHEMA_VERSION {
            return Err(BenchError::Schema {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        serde_json::from_value(value).map_err(|e| BenchError::Parse {
            path: path.to_path_buf(),
            message: format!("bad results: {e}"),
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), BenchError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| BenchError::Parse {
            path: path.to_path_buf(),
            message: format!("cannot encode results: {e}"),
        })?;
        write_file(path, text.as_bytes())
    }

    /// Samples that count for statistics, grouped by intent (see [`Sample::group`]).
    pub fn measured_by_intent(&self) -> BTreeMap<String, Vec<&Sample>> {
        group_measured(&self.samples)
    }
}

/// Non-warm-up samples grouped by intent.
pub fn group_measured(samples: &[Sample]) -> BTreeMap<String, Vec<&Sample>> {
    let mut by: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
    for s in samples.iter().filter(|s| !s.warmup) {
        by.entry(s.group().to_string()).or_default().push(s);
    }
    by
}

/// Reads gateway recording lines (one [`Sample`] per line; blank lines skipped).
pub fn load_jsonl(path: &Path) -> Result<Vec<Sample>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| BenchError::Parse {
                path: path.to_path_buf(),
                message: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| BenchError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, bytes).map_err(|source| BenchError::Write {
        path: PathBuf::from(path),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn gateway_recording_lines_parse() {
        // As gateway/src/recorder.rs writes them: extra fields, integer budgets, nulls.
        let line = r#"{"ts_ms":1735689600000,"message_id":"m1","store_id":"manga_jp","intent":"faq","ttft_ms":12.5,"e2e_ms":40.0,"tokens":30,"model":null,"cache_hit":false,"degradation":"full","error":null,"stages":[{"stage":"retrieval","start_ms":1.0,"duration_ms":210.0,"budget_ms":200,"outcome":"deadline"}]}"#;
        let s: Sample = serde_json::from_str(line).unwrap();
        assert_eq!(s.group(), "faq");
        assert!(s.is_ok());
        assert_eq!(s.stages[0].budget_ms, Some(200.0));
        assert!(s.stages[0].over_budget());
        let s: Sample = serde_json::from_str(r#"{"ts_ms":1,"error":true}"#).unwrap();
        assert_eq!(s.error.as_deref(), Some("error"));
        assert!(!s.is_ok());
    }

    #[test]
    fn newer_schema_is_refused() {
        let err = Results::parse(r#"{"schema_version": 99}"#, Path::new("r.json")).unwrap_err();
        assert!(err.to_string().contains("99"), "{err}");
        let err = Results::parse(r#"{"samples": []}"#, Path::new("r.json")).unwrap_err();
        assert!(err.to_string().contains("schema_version"), "{err}");
    }
}
