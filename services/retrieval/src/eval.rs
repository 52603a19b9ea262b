//! Retrieval quality on a labelled query set (`data/eval/retrieval.jsonl`): hit@k, recall@k
//! and MRR per query kind, through the same `Retrieve` path the gateway uses.
//!
//! A label is `series:NAME` (any volume of that series in the query's store), `product:ID` or
//! `doc:ID`. Queries labelled only with documents are scored on the document ranking (what an
//! FAQ/policy answer is grounded on), all others on the product ranking. recall@k counts the
//! labels satisfied within the first k results; a series counts once however many of its
//! volumes are there.

use std::{collections::BTreeMap, fmt, path::Path};

use mangaassist_proto::v1 as pb;
use serde::Deserialize;

use crate::{RetrievalDaemon, RetrievalError};

pub const KINDS: [&str; 6] = [
    "exact_title",
    "misspelled_title",
    "plot",
    "genre_mood",
    "japanese",
    "faq_policy",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalQuery {
    pub id: String,
    pub store_id: String,
    pub kind: String,
    pub query: String,
    pub relevant: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Label {
    Series(String),
    Product(String),
    Doc(String),
}

impl Label {
    fn parse(s: &str) -> Option<Self> {
        let (kind, value) = s.split_once(':')?;
        if value.is_empty() {
            return None;
        }
        match kind {
            "series" => Some(Self::Series(value.into())),
            "product" => Some(Self::Product(value.into())),
            "doc" => Some(Self::Doc(value.into())),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] mangaassist_catalog::DataError),
    #[error("{path}: no queries")]
    Empty { path: String },
    #[error("query {id}: {source}")]
    Retrieve { id: String, source: RetrievalError },
}

/// Reads and validates a query file; the first bad line is reported with its number.
pub fn load_queries(path: &Path) -> Result<Vec<EvalQuery>, EvalError> {
    let out = mangaassist_catalog::read_jsonl(path, |q: &EvalQuery| {
        if !KINDS.contains(&q.kind.as_str()) {
            return Err(format!(
                "unknown kind `{}` (one of {})",
                q.kind,
                KINDS.join(", ")
            ));
        }
        if q.query.trim().is_empty() || q.relevant.is_empty() {
            return Err("empty query or no relevant labels".into());
        }
        if let Some(l) = q.relevant.iter().find(|l| Label::parse(l).is_none()) {
            return Err(format!(
                "label `{l}` is not series:NAME, product:ID or doc:ID"
            ));
        }
        Ok(())
    })?;
    if out.is_empty() {
        return Err(EvalError::Empty {
            path: path.display().to_string(),
        });
    }
    Ok(out)
}

/// Scores of one query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryScore {
    pub hit: bool,
    pub recall: f64,
    pub reciprocal_rank: f64,
    /// The first results (series or document id, vector and lexical score), for reading
    /// failures.
    pub top: String,
}

/// Scores a ranking (series name or product id per product result, or document ids) against
/// the labels, looking at the first `k` for hit and recall and at the whole list for MRR.
fn score(labels: &[Label], ranking: &[(String, String, f32, f32)], k: usize) -> QueryScore {
    let satisfies = |l: &Label, (key, series, _, _): &(String, String, f32, f32)| match l {
        Label::Series(s) => s == series,
        Label::Product(id) | Label::Doc(id) => id == key,
    };
    let first = ranking
        .iter()
        .position(|r| labels.iter().any(|l| satisfies(l, r)));
    let found = labels
        .iter()
        .filter(|l| ranking.iter().take(k).any(|r| satisfies(l, r)))
        .count();
    QueryScore {
        hit: first.is_some_and(|p| p < k),
        recall: found as f64 / labels.len().max(1) as f64,
        reciprocal_rank: first.map_or(0.0, |p| 1.0 / (p as f64 + 1.0)),
        top: ranking
            .iter()
            .take(3)
            .map(|(key, series, v, l)| {
                let name = if series.is_empty() { key } else { series };
                format!("{name} (vector {v:.2}, lexical {l:.1})")
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindReport {
    pub queries: usize,
    pub hit: f64,
    pub recall: f64,
    pub mrr: f64,
}

#[derive(Debug, Clone)]
pub struct EvalReport {
    pub model: String,
    pub k: usize,
    pub per_kind: BTreeMap<String, KindReport>,
    pub overall: KindReport,
    /// Queries with no relevant result in the first k: (id, kind, query, first result).
    pub misses: Vec<(String, String, String, String)>,
    /// Embedding time per query as the retrieval daemon reported it, microseconds.
    pub embed_us: Vec<u64>,
}

fn summarise(scores: &[&QueryScore]) -> KindReport {
    let n = scores.len().max(1) as f64;
    KindReport {
        queries: scores.len(),
        hit: scores.iter().filter(|s| s.hit).count() as f64 / n,
        recall: scores.iter().map(|s| s.recall).sum::<f64>() / n,
        mrr: scores.iter().map(|s| s.reciprocal_rank).sum::<f64>() / n,
    }
}

/// Runs every query through `daemon.retrieve` (no supplied vector, so the daemon embeds it as
/// it does for any caller that sends none) and scores the top `k`.
pub async fn evaluate(
    daemon: &RetrievalDaemon,
    queries: &[EvalQuery],
    k: usize,
) -> Result<EvalReport, EvalError> {
    let k = k.max(1);
    let mut scored: Vec<(&EvalQuery, QueryScore)> = Vec::with_capacity(queries.len());
    let mut embed_us = Vec::with_capacity(queries.len());
    for q in queries {
        let labels: Vec<Label> = q.relevant.iter().filter_map(|l| Label::parse(l)).collect();
        let documents_only = labels.iter().all(|l| matches!(l, Label::Doc(_)));
        let resp = daemon
            .retrieve(pb::RetrieveRequest {
                query: q.query.clone(),
                store_id: q.store_id.clone(),
                top_k: if documents_only { 1 } else { 20 } as u32,
                top_k_documents: if documents_only { 20 } else { 0 },
                ..Default::default()
            })
            .await
            .map_err(|source| EvalError::Retrieve {
                id: q.id.clone(),
                source,
            })?;
        embed_us.push(u64::from(resp.embed_us));
        let ranking: Vec<(String, String, f32, f32)> = if documents_only {
            resp.documents
                .iter()
                .filter_map(|h| {
                    h.document
                        .as_ref()
                        .map(|d| (d.id.clone(), String::new(), h.vector_score, h.lexical_score))
                })
                .collect()
        } else {
            resp.products
                .iter()
                .filter_map(|h| {
                    h.product.as_ref().map(|p| {
                        (
                            p.id.clone(),
                            p.series.clone(),
                            h.vector_score,
                            h.lexical_score,
                        )
                    })
                })
                .collect()
        };
        scored.push((q, score(&labels, &ranking, k)));
    }
    let mut per_kind: BTreeMap<String, Vec<&QueryScore>> = BTreeMap::new();
    for (q, s) in &scored {
        per_kind.entry(q.kind.clone()).or_default().push(s);
    }
    let all: Vec<&QueryScore> = scored.iter().map(|(_, s)| s).collect();
    Ok(EvalReport {
        model: daemon.model_id().to_string(),
        k,
        per_kind: per_kind
            .iter()
            .map(|(kind, s)| (kind.clone(), summarise(s)))
            .collect(),
        overall: summarise(&all),
        misses: scored
            .iter()
            .filter(|(_, s)| !s.hit)
            .map(|(q, s)| (q.id.clone(), q.kind.clone(), q.query.clone(), s.top.clone()))
            .collect(),
        embed_us,
    })
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.k;
        writeln!(f, "retrieval quality, embedder {}", self.model)?;
        writeln!(
            f,
            "| kind | queries | hit@{k} | recall@{k} | MRR |\n|---|---|---|---|---|"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, r: &KindReport| {
            writeln!(
                f,
                "| {name} | {} | {:.3} | {:.3} | {:.3} |",
                r.queries, r.hit, r.recall, r.mrr
            )
        };
        for kind in KINDS {
            if let Some(r) = self.per_kind.get(kind) {
                row(f, kind, r)?;
            }
        }
        row(f, "**all**", &self.overall)?;
        let mut us = self.embed_us.clone();
        us.sort_unstable();
        if let (Some(p50), Some(p99)) = (
            us.get(us.len() / 2),
            us.get((us.len() * 99 / 100).min(us.len().saturating_sub(1))),
        ) {
            writeln!(
                f,
                "\nquery embedding in the retrieval daemon: p50 {p50} µs, p99 {p99} µs (n={})",
                us.len()
            )?;
        }
        if !self.misses.is_empty() {
            writeln!(f, "\nmissed (no relevant result in the first {k}):")?;
            for (id, kind, query, top) in &self.misses {
                writeln!(f, "  {id} [{kind}] {query:?} -> {top}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(key: &str, series: &str) -> (String, String, f32, f32) {
        (key.into(), series.into(), 0.5, 1.0)
    }

    #[test]
    fn a_series_label_is_met_by_any_volume_and_counts_once() {
        let labels = vec![
            Label::Series("One Piece".into()),
            Label::Product("B2".into()),
        ];
        let ranking = vec![
            r("X", "Naruto"),
            r("B1", "One Piece"),
            r("B3", "One Piece"),
            r("Y", "Bleach"),
            r("Z", "Bleach"),
            r("B2", "Monster"),
        ];
        let s = score(&labels, &ranking, 5);
        assert!(s.hit);
        assert_eq!(s.recall, 0.5, "B2 is at rank 6, outside the first 5");
        assert_eq!(s.reciprocal_rank, 0.5);
        assert!(
            s.top
                .starts_with("Naruto (vector 0.50, lexical 1.0); One Piece"),
            "{}",
            s.top
        );
        let s = score(&labels, &ranking, 6);
        assert_eq!(s.recall, 1.0);
    }

    #[test]
    fn nothing_relevant_scores_zero() {
        let s = score(
            &[Label::Doc("faq-a".into())],
            &[r("faq-b", ""), r("faq-c", "")],
            5,
        );
        assert_eq!((s.hit, s.recall, s.reciprocal_rank), (false, 0.0, 0.0));
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"a\",\"store_id\":\"s\",\"kind\":\"plot\",\"query\":\"x\",\"relevant\":[\"series:A\"]}\n\
             {\"id\":\"b\",\"store_id\":\"s\",\"kind\":\"plot\",\"query\":\"x\",\"relevant\":[\"volume:A\"]}\n",
        )
        .expect("write");
        let err = load_queries(&path).expect_err("bad label").to_string();
        assert!(err.contains(":2:") && err.contains("volume:A"), "{err}");
        std::fs::write(&path, "{\"id\":\"a\",\"store_id\":\"s\",\"kind\":\"poem\",\"query\":\"x\",\"relevant\":[\"doc:d\"]}\n")
            .expect("write");
        let err = load_queries(&path).expect_err("bad kind").to_string();
        assert!(err.contains(":1:") && err.contains("poem"), "{err}");
    }
}
