//! `[memory]`: conversation history, profiles and orders, and the store that keeps them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{choice, ensure, optional_http_url, within};
use crate::ConfigError;

choice! {
    /// `memory.backend`.
    pub enum MemoryBackend {
        /// An embedded redb file.
        #[default]
        Redb = "redb",
        /// DynamoDB tables (the `memory.dynamodb` section).
        DynamoDb = "dynamodb",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemorySettings {
    /// redb file; empty = `<data.state_dir>/memory.redb`.
    pub path: PathBuf,
    /// Turns returned when the caller asks for 0 (1..=100, the most a call returns).
    pub history_limit: u32,
    /// Turns older than this are dropped (the DynamoDB backend uses a TTL attribute); 0 keeps
    /// them forever.
    pub turn_ttl_days: u32,
    /// Load the demo users and orders (`data/users`) into the store at start (idempotent).
    /// Unset = only into the embedded redb store: a DynamoDB backend is someone's real data,
    /// so demo profiles and orders go there only when this says `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_demo_data: Option<bool>,
    /// `redb` (embedded file, the default) or `dynamodb`.
    pub backend: MemoryBackend,
    pub dynamodb: DynamoDbSettings,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            history_limit: 10,
            turn_ttl_days: 30,
            seed_demo_data: None,
            backend: MemoryBackend::Redb,
            dynamodb: DynamoDbSettings::default(),
        }
    }
}

impl MemorySettings {
    /// Whether the demo users and orders are loaded at start (see `seed_demo_data`).
    pub fn seeds_demo_data(&self) -> bool {
        self.seed_demo_data
            .unwrap_or(self.backend == MemoryBackend::Redb)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        within("memory.history_limit", self.history_limit, 1..=100)?;
        within("memory.turn_ttl_days", self.turn_ttl_days, 0..=36_500)?;
        self.dynamodb.validate()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DynamoDbSettings {
    /// Empty = the standard AWS chain (`AWS_REGION`, profile, instance metadata).
    pub region: String,
    /// Empty = AWS; e.g. `http://127.0.0.1:8000` for DynamoDB Local or moto.
    pub endpoint_url: String,
    /// session_id (S) + ts (N): turns, newest-first queries, TTL attribute `expires_at`.
    pub sessions_table: String,
    /// user_id (S): profiles.
    pub users_table: String,
    /// user_id (S) + order_key (S): orders, newest first.
    pub orders_table: String,
    /// Create missing tables at start (local use; production tables come from infrastructure
    /// code, see docs/operations.md).
    pub create_tables: bool,
}

impl Default for DynamoDbSettings {
    fn default() -> Self {
        Self {
            region: String::new(),
            endpoint_url: String::new(),
            sessions_table: "mangaassist-sessions".into(),
            users_table: "mangaassist-users".into(),
            orders_table: "mangaassist-orders".into(),
            create_tables: false,
        }
    }
}

impl DynamoDbSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        optional_http_url("memory.dynamodb.endpoint_url", &self.endpoint_url)?;
        for (name, table) in [
            ("sessions_table", &self.sessions_table),
            ("users_table", &self.users_table),
            ("orders_table", &self.orders_table),
        ] {
            ensure(
                !table.trim().is_empty(),
                format!("memory.dynamodb.{name}"),
                "must not be empty",
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_data_is_seeded_by_default_only_into_the_embedded_store() {
        let mut m = MemorySettings::default();
        assert!(m.seeds_demo_data());
        m.backend = MemoryBackend::DynamoDb;
        assert!(!m.seeds_demo_data());
        m.seed_demo_data = Some(true);
        assert!(m.seeds_demo_data());
        m.backend = MemoryBackend::Redb;
        m.seed_demo_data = Some(false);
        assert!(!m.seeds_demo_data());
    }
}
