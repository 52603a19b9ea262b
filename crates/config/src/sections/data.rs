//! `[data]`: where the mesh finds its data, keeps its state and caches models.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSettings {
    /// Catalog, documents, users, orders, intents, prompts.
    pub dir: PathBuf,
    /// Embedded stores that must survive restarts (memory).
    pub state_dir: PathBuf,
    /// Downloaded models and computed catalog vectors; empty = `$MANGAASSIST_CACHE_DIR`,
    /// else `$XDG_CACHE_HOME/mangaassist`, else `~/.cache/mangaassist`.
    pub cache_dir: PathBuf,
}

impl Default for DataSettings {
    fn default() -> Self {
        Self {
            dir: "data".into(),
            state_dir: ".mangaassist/state".into(),
            cache_dir: PathBuf::new(),
        }
    }
}

impl DataSettings {
    /// The cache directory with the documented fallbacks applied.
    pub fn resolved_cache_dir(&self) -> PathBuf {
        if !self.cache_dir.as_os_str().is_empty() {
            return self.cache_dir.clone();
        }
        if let Some(d) = std::env::var_os("MANGAASSIST_CACHE_DIR") {
            return d.into();
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(d).join("mangaassist");
        }
        match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(".cache/mangaassist"),
            None => PathBuf::from(".mangaassist/cache"),
        }
    }
}
