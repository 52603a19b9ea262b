//! `[cache]`: the semantic answer cache.

use serde::{Deserialize, Serialize};

use super::{choice, positive, unit};
use crate::ConfigError;

choice! {
    /// `cache.backend`.
    pub enum CacheBackend {
        /// In process.
        #[default]
        Memory = "memory",
        /// The shared Redis of the `redis` section, used by every cache replica.
        Redis = "redis",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Cosine similarity at or above which a cached answer serves a new question.
    pub semantic_threshold: f32,
    pub default_ttl_seconds: u32,
    /// Shorter TTL for recommendations (seed 000 scenario 4: 4 h).
    pub recommendation_ttl_seconds: u32,
    /// Predicted follow-up answers (seed 002: 5 min).
    pub follow_up_ttl_seconds: u32,
    /// Entries kept before the oldest are evicted.
    pub max_entries: usize,
    /// Redis backend: entries with a question vector kept per partition (store, user or
    /// session) before that partition's oldest is evicted. A semantic lookup fetches the
    /// whole partition, so this bounds its transfer (1,000 × 1.5 KiB at 384 dimensions).
    pub redis_max_partition_entries: usize,
    /// `memory` (in-process, the default) or `redis` (shared by every cache replica; see
    /// the `redis` section).
    pub backend: CacheBackend,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            semantic_threshold: 0.95,
            default_ttl_seconds: 3_600,
            recommendation_ttl_seconds: 4 * 3_600,
            follow_up_ttl_seconds: 300,
            max_entries: 50_000,
            redis_max_partition_entries: 1_000,
            backend: CacheBackend::Memory,
        }
    }
}

impl CacheSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        unit("cache.semantic_threshold", self.semantic_threshold)?;
        positive("cache.default_ttl_seconds", self.default_ttl_seconds)?;
        positive(
            "cache.recommendation_ttl_seconds",
            self.recommendation_ttl_seconds,
        )?;
        positive("cache.follow_up_ttl_seconds", self.follow_up_ttl_seconds)?;
        positive("cache.max_entries", self.max_entries)?;
        positive(
            "cache.redis_max_partition_entries",
            self.redis_max_partition_entries,
        )
    }
}
