//! What the model tests share: where `scripts/fetch-model.sh` put the models.

use std::path::PathBuf;

/// `$MANGAASSIST_CACHE_DIR`, else `$XDG_CACHE_HOME/mangaassist`, else `~/.cache/mangaassist`
/// (the order the config resolves `data.cache_dir` in).
#[allow(
    clippy::expect_used,
    reason = "a test without HOME cannot find its models"
)]
pub fn models_dir() -> PathBuf {
    std::env::var_os("MANGAASSIST_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("mangaassist"))
        })
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/mangaassist")
        })
        .join("models")
}
