//! `[embedding]`: the sentence embedder every daemon of a process shares.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{choice, positive};
use crate::ConfigError;

choice! {
    /// `embedding.backend`.
    pub enum EmbeddingBackend {
        /// The static multilingual model when its files are present, else all-MiniLM-L6-v2 when
        /// its files are present, else the hashed n-gram fallback.
        #[default]
        Auto = "auto",
        /// The static multilingual model (distilled from multilingual-e5-small) or fail.
        Static = "static",
        /// all-MiniLM-L6-v2 (English only, ~15 ms a message) or fail.
        MiniLm = "minilm",
        /// The fallback only (no model files needed).
        Hashed = "hashed",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingSettings {
    /// `auto` = the static multilingual model, else all-MiniLM-L6-v2, else hashed n-grams,
    /// whichever has its files first; `static` / `minilm` = that model or fail; `hashed` = the
    /// fallback only (no model files needed).
    pub backend: EmbeddingBackend,
    /// Directory holding the static model's `vocab.json` and `vectors.bin` (made by
    /// `scripts/fetch-model.sh`); empty = `<cache_dir>/models/static-me5s-v2`.
    pub static_model_dir: PathBuf,
    /// Directory holding MiniLM's `model.safetensors`, `config.json`, `tokenizer.json`; empty
    /// = `<cache_dir>/models/all-MiniLM-L6-v2`.
    pub model_dir: PathBuf,
    /// Query vectors kept in memory (LRU) so a repeated message is embedded once.
    pub query_cache_entries: usize,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        Self {
            backend: EmbeddingBackend::Auto,
            static_model_dir: PathBuf::new(),
            model_dir: PathBuf::new(),
            query_cache_entries: 10_000,
        }
    }
}

impl EmbeddingSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("embedding.query_cache_entries", self.query_cache_entries)
    }
}
