//! The live prompt store: a snapshot that every stream start reads (an `Arc` clone under a
//! read lock, so it stays cheap), replaced as a whole by the prompt RPCs. A change is applied
//! to a copy, written to disk (each file through a temporary file and a rename, so a crash
//! leaves either the old or the new file), and only then swapped in; streams already running
//! keep the prompt they started with.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use mangaassist_proto::v1 as pb;
use mangaassist_statefile::write_atomic;
use parking_lot::RwLock;

use crate::{
    GenerationError, PromptStore, PromptVersion,
    prompts::{MAX_PROMPT_BYTES, PromptChange, validate_store_id},
};

/// Prompts loaded from `dir`, changeable while serving.
pub struct PromptRegistry {
    dir: PathBuf,
    current: RwLock<Arc<PromptStore>>,
    /// One change at a time, so two changes never start from the same snapshot.
    writer: tokio::sync::Mutex<()>,
}

/// Result of a change: the new snapshot and whether the active version switched.
pub(crate) struct Applied {
    pub store: Arc<PromptStore>,
    pub switched: bool,
}

/// Parses an intent field of a prompt RPC.
pub(crate) fn parse_intent(raw: i32) -> Result<pb::Intent, GenerationError> {
    match pb::Intent::try_from(raw) {
        Ok(pb::Intent::Unspecified) => Err(GenerationError::InvalidArgument(
            "intent is unspecified".into(),
        )),
        Ok(i) => Ok(i),
        Err(_) => Err(GenerationError::InvalidArgument(format!(
            "intent {raw} is not a known intent"
        ))),
    }
}

/// Validates a `PutPrompt` body and parses its front matter.
pub(crate) fn parse_put(
    store: &str,
    version: &str,
    text: &str,
) -> Result<PromptVersion, GenerationError> {
    validate_store_id(store)?;
    if !crate::prompts::is_valid_version(version) {
        return Err(GenerationError::InvalidArgument(format!(
            "version `{version}` must be v<N> or match [a-z0-9][a-z0-9._-]{{0,31}}"
        )));
    }
    if text.len() > MAX_PROMPT_BYTES {
        return Err(GenerationError::InvalidArgument(format!(
            "text is {} bytes; prompts are limited to {MAX_PROMPT_BYTES}",
            text.len()
        )));
    }
    if text.trim().is_empty() {
        return Err(GenerationError::InvalidArgument("text is empty".into()));
    }
    PromptVersion::parse(version, text)
        .map_err(|m| GenerationError::InvalidArgument(format!("text: {m}")))
}

impl PromptRegistry {
    /// Loads every prompt under `dir` (see [`PromptStore::load`]).
    pub async fn load(dir: PathBuf) -> Result<Self, GenerationError> {
        let d = dir.clone();
        let store = tokio::task::spawn_blocking(move || PromptStore::load(&d))
            .await
            .map_err(|e| GenerationError::Config(format!("prompt loader panicked: {e}")))??;
        Ok(Self {
            dir,
            current: RwLock::new(Arc::new(store)),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    /// The prompts as they are now.
    pub fn snapshot(&self) -> Arc<PromptStore> {
        self.current.read().clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Applies `change` to a copy of the current prompts, persists it, then swaps it in.
    pub(crate) async fn apply<F>(&self, change: F) -> Result<Applied, GenerationError>
    where
        F: FnOnce(&mut PromptStore) -> Result<PromptChange, GenerationError>,
    {
        let _one_at_a_time = self.writer.lock().await;
        let mut next = (*self.snapshot()).clone();
        let PromptChange { writes, switched } = change(&mut next)?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            for (rel, contents) in &writes {
                let path = dir.join(rel);
                write_atomic(&path, contents).map_err(|e| GenerationError::Storage {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            }
            Ok::<_, GenerationError>(())
        })
        .await
        .map_err(|e| GenerationError::Storage {
            path: self.dir.clone(),
            message: format!("prompt writer panicked: {e}"),
        })??;
        let next = Arc::new(next);
        *self.current.write() = next.clone();
        Ok(Applied {
            store: next,
            switched,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn put_validation_names_the_field() {
        let cases = [
            ("Bad-Store", "v1", "x", "store_id"),
            ("", "v1", "x", "store_id"),
            ("shop", "V1", "x", "version"),
            ("shop", "-x", "x", "version"),
            ("shop", "v1", "   ", "text"),
            ("shop", "v1", "#! style: loud\nx", "text"),
            ("shop", "v1", "#! style: concise\n", "text"),
        ];
        for (store, version, text, field) in cases {
            let e = parse_put(store, version, text).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
            assert!(e.to_string().starts_with(field), "{field}: {e}");
        }
        let big = "x ".repeat(MAX_PROMPT_BYTES);
        let e = parse_put("shop", "v1", &big).unwrap_err().to_string();
        assert!(e.starts_with("text"), "{e}");
        assert!(parse_put("default", "rec-detailed.2", "ok").is_ok());
        assert!(parse_intent(0).is_err() && parse_intent(99).is_err());
    }
}
