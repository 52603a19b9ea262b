//! `[redis]`: the shared Redis behind `cache.backend = "redis"` and
//! `gateway.resume_backend = "redis"`.

use serde::{Deserialize, Serialize};

use super::{ensure, within};
use crate::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db` or `rediss://` for TLS.
    pub url: String,
    /// Connections in the pool (commands are pipelined on each), 1..=64.
    pub pool_size: usize,
    /// Prefix of every key, so several meshes can share one Redis.
    pub key_prefix: String,
    /// Connect and per-command timeout; the caller's deadline bounds it further.
    pub timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            pool_size: 4,
            key_prefix: "ma:".into(),
            timeout_ms: 1_000,
        }
    }
}

impl RedisSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        ensure(
            self.url.starts_with("redis://") || self.url.starts_with("rediss://"),
            "redis.url",
            format!("`{}` must start with redis:// or rediss://", self.url),
        )?;
        within("redis.pool_size", self.pool_size, 1..=64)?;
        within("redis.timeout_ms", self.timeout_ms, 1..=3_600_000)
    }
}
