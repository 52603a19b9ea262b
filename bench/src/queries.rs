//! The query mix: labelled questions from `data/intents/{train,heldout}.jsonl`, interleaved so
//! every intent gets the same number of messages and its own warm-up.

use std::{collections::BTreeMap, path::Path};

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::Deserialize;

use crate::BenchError;

/// Fewer distinct questions than this per intent would make the sample mostly repeats.
pub const MIN_QUERIES_PER_INTENT: usize = 20;

/// Marks the suffix `--unique` appends, so fakes (and people reading logs) can strip it.
pub const UNIQUE_MARK: &str = " (ref ";

#[derive(Deserialize)]
struct Line {
    text: String,
    intent: String,
}

/// One message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick<'a> {
    pub intent: &'a str,
    pub text: &'a str,
    /// 0 for the intent's first message, 1 for its second...
    pub seq_in_intent: u64,
}

/// Questions per intent, each list shuffled with the run's seed.
#[derive(Debug, Clone)]
pub struct QueryMix {
    intents: Vec<String>,
    queries: BTreeMap<String, Vec<String>>,
}

impl QueryMix {
    /// Loads both labelled files under `data_dir/intents`, keeping `filter`'s intents (all when
    /// empty). Every kept intent needs at least `min_per_intent` distinct questions.
    pub fn load(
        data_dir: &Path,
        filter: &[String],
        min_per_intent: usize,
        seed: u64,
    ) -> Result<Self, BenchError> {
        let mut all: Vec<(String, String)> = Vec::new();
        for name in ["train.jsonl", "heldout.jsonl"] {
            let path = data_dir.join("intents").join(name);
            let text = std::fs::read_to_string(&path).map_err(|source| BenchError::Read {
                path: path.clone(),
                source,
            })?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let l: Line = serde_json::from_str(line).map_err(|e| BenchError::Parse {
                    path: path.clone(),
                    message: format!("line {}: {e}", i + 1),
                })?;
                all.push((l.intent, l.text));
            }
        }
        Self::from_pairs(all, filter, min_per_intent, seed)
    }

    /// Builds a mix from (intent, text) pairs; duplicates are removed.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
        filter: &[String],
        min_per_intent: usize,
        seed: u64,
    ) -> Result<Self, BenchError> {
        let mut queries: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (intent, text) in pairs {
            let text = text.trim().to_string();
            if text.is_empty() {
                continue;
            }
            let list = queries.entry(intent).or_default();
            if !list.contains(&text) {
                list.push(text);
            }
        }
        if queries.is_empty() {
            return Err(BenchError::Data("no labelled questions found".to_string()));
        }
        if !filter.is_empty() {
            let unknown: Vec<&str> = filter
                .iter()
                .filter(|f| !queries.contains_key(f.as_str()))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err(BenchError::Data(format!(
                    "unknown intent(s) {}; known: {}",
                    unknown.join(", "),
                    queries.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            queries.retain(|k, _| filter.contains(k));
        }
        let short: Vec<String> = queries
            .iter()
            .filter(|(_, q)| q.len() < min_per_intent)
            .map(|(k, q)| format!("{k} has {}", q.len()))
            .collect();
        if !short.is_empty() {
            return Err(BenchError::Data(format!(
                "every intent needs at least {min_per_intent} distinct questions in \
                 intents/train.jsonl + intents/heldout.jsonl, but {}",
                short.join(", ")
            )));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        for list in queries.values_mut() {
            list.shuffle(&mut rng);
        }
        Ok(Self {
            intents: queries.keys().cloned().collect(),
            queries,
        })
    }

    pub fn intents(&self) -> &[String] {
        &self.intents
    }

    /// The `k`-th message of the run: intents round-robin, each cycling through its questions.
    pub fn pick(&self, k: u64) -> Pick<'_> {
        let n = self.intents.len() as u64;
        let intent = &self.intents[(k % n) as usize];
        let seq = k / n;
        let list = &self.queries[intent];
        Pick {
            intent,
            text: &list[(seq % list.len() as u64) as usize],
            seq_in_intent: seq,
        }
    }
}

/// Makes `text` unique to this run and message, so the exact-match cache cannot hit.
pub fn make_unique(text: &str, nonce: &str, k: u64) -> String {
    format!("{text}{UNIQUE_MARK}{nonce}-{k})")
}

/// Removes a [`make_unique`] suffix.
pub fn strip_unique(text: &str) -> &str {
    match text.rfind(UNIQUE_MARK) {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn pairs(intent: &str, n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (intent.to_string(), format!("{intent} question {i}")))
            .collect()
    }

    #[test]
    fn round_robin_with_equal_counts() {
        let mut p = pairs("a", 20);
        p.extend(pairs("b", 25));
        let mix = QueryMix::from_pairs(p, &[], 20, 7).unwrap();
        let picks: Vec<_> = (0..40).map(|k| mix.pick(k)).collect();
        assert_eq!(picks.iter().filter(|p| p.intent == "a").count(), 20);
        assert_eq!(picks[0].intent, "a");
        assert_eq!(picks[1].intent, "b");
        assert_eq!(picks[2].seq_in_intent, 1);
        // The first 20 of intent a are all distinct questions.
        let mut a: Vec<_> = picks
            .iter()
            .filter(|p| p.intent == "a")
            .map(|p| p.text)
            .collect();
        a.sort_unstable();
        a.dedup();
        assert_eq!(a.len(), 20);
    }

    #[test]
    fn too_few_questions_is_a_clear_error() {
        let mut p = pairs("a", 20);
        p.extend(pairs("b", 19));
        // Duplicates do not count.
        p.push(("b".into(), "b question 0".into()));
        let err = QueryMix::from_pairs(p, &[], 20, 7).unwrap_err().to_string();
        assert!(err.contains("b has 19"), "{err}");
        assert!(!err.contains("a has"), "{err}");
    }

    #[test]
    fn filter_keeps_named_intents_and_rejects_unknown_ones() {
        let mut p = pairs("a", 20);
        p.extend(pairs("b", 5));
        let mix = QueryMix::from_pairs(p.clone(), &["a".into()], 20, 1).unwrap();
        assert_eq!(mix.intents(), ["a".to_string()]);
        let err = QueryMix::from_pairs(p, &["zzz".into()], 20, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("zzz") && err.contains("known: a, b"), "{err}");
    }

    #[test]
    fn unique_suffix_round_trips() {
        let u = make_unique("Where is my order?", "ab12", 7);
        assert_ne!(u, "Where is my order?");
        assert_eq!(strip_unique(&u), "Where is my order?");
        assert_eq!(strip_unique("plain (text)"), "plain (text)");
    }

    #[test]
    fn repository_data_has_enough_questions() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
        let mix = QueryMix::load(&dir, &[], MIN_QUERIES_PER_INTENT, 1).unwrap();
        assert!(mix.intents().iter().any(|i| i == "greeting"));
        assert!(mix.intents().len() >= 7);
    }
}
