//! `[intent]`: the classifier's confidence floor and the seed-001 routing matrix.

use serde::{Deserialize, Serialize};

use super::{ensure, unit, within};
use crate::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntentSettings {
    /// Below this confidence the answer is still used but flagged low-confidence; the
    /// keyword matcher only answers when the classifier cannot run.
    pub min_confidence: f32,
    /// Routing matrix of seed 001: complexity below this → fast tier.
    pub complexity_fast_below: f32,
    /// Above this → smart tier; in between → smart only if the budget allows.
    pub complexity_smart_above: f32,
    /// Medium complexity goes to the fast tier when less than this is left of the budget.
    pub medium_fast_budget_ms: u32,
}

impl Default for IntentSettings {
    fn default() -> Self {
        Self {
            min_confidence: 0.35,
            complexity_fast_below: 0.3,
            complexity_smart_above: 0.6,
            medium_fast_budget_ms: 1_000,
        }
    }
}

impl IntentSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        unit("intent.min_confidence", self.min_confidence)?;
        unit("intent.complexity_fast_below", self.complexity_fast_below)?;
        unit("intent.complexity_smart_above", self.complexity_smart_above)?;
        ensure(
            self.complexity_fast_below <= self.complexity_smart_above,
            "intent.complexity_fast_below",
            "must not exceed intent.complexity_smart_above",
        )?;
        within(
            "intent.medium_fast_budget_ms",
            self.medium_fast_budget_ms,
            0..=3_600_000,
        )
    }
}
