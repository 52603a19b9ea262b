//! The degradation ladder of seed 003 and the one table that maps a failed stage to a step on
//! it. A failing dependency lowers the answer's quality, never its availability.

use serde::Serialize;

/// Ordered from best to worst; a message ends at the worst level any stage pushed it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Every stage answered.
    Full,
    /// Retrieval failed or timed out: answer without catalog/policy context.
    NoRag,
    /// Intent failed: keyword fallback classified the message.
    NoIntent,
    /// Intent and retrieval both failed: the model sees the question alone.
    Minimal,
    /// Generation failed: a per-intent canned answer.
    Canned,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Full => "full",
            Level::NoRag => "no_rag",
            Level::NoIntent => "no_intent",
            Level::Minimal => "minimal",
            Level::Canned => "canned",
        }
    }
}

/// A stage of the per-message pipeline that can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Intent,
    Retrieval,
    History,
    Profile,
    Orders,
    Cache,
    Generation,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Intent => "intent",
            Stage::Retrieval => "retrieval",
            Stage::History => "history",
            Stage::Profile => "profile",
            Stage::Orders => "orders",
            Stage::Cache => "cache",
            Stage::Generation => "generation",
        }
    }
}

/// Tracks the failures of one message and derives its level.
#[derive(Debug, Default, Clone)]
pub struct Ladder {
    intent_failed: bool,
    retrieval_failed: bool,
    generation_failed: bool,
    /// Skipped optional stages (memory, cache), for logs.
    pub skipped: Vec<&'static str>,
}

impl Ladder {
    /// The error→action table: what a failed stage does to the answer.
    pub fn record_failure(&mut self, stage: Stage) {
        match stage {
            Stage::Intent => self.intent_failed = true,
            Stage::Retrieval => self.retrieval_failed = true,
            Stage::Generation => self.generation_failed = true,
            // Optional context: skip it, the answer stays FULL.
            Stage::History | Stage::Profile | Stage::Orders | Stage::Cache => {
                self.skipped.push(stage.label());
            }
        }
        metrics::counter!("stage_failures_total", "stage" => stage.label()).increment(1);
    }

    pub fn level(&self) -> Level {
        match (
            self.generation_failed,
            self.intent_failed,
            self.retrieval_failed,
        ) {
            (true, _, _) => Level::Canned,
            (false, true, true) => Level::Minimal,
            (false, true, false) => Level::NoIntent,
            (false, false, true) => Level::NoRag,
            (false, false, false) => Level::Full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_maps_failures_to_levels() {
        let mut l = Ladder::default();
        l.record_failure(Stage::Cache);
        l.record_failure(Stage::History);
        assert_eq!(l.level(), Level::Full);
        l.record_failure(Stage::Retrieval);
        assert_eq!(l.level(), Level::NoRag);
        l.record_failure(Stage::Intent);
        assert_eq!(l.level(), Level::Minimal);
        l.record_failure(Stage::Generation);
        assert_eq!(l.level(), Level::Canned);
        let mut l = Ladder::default();
        l.record_failure(Stage::Intent);
        assert_eq!(l.level(), Level::NoIntent);
        assert!(Level::Full < Level::Canned);
    }
}
