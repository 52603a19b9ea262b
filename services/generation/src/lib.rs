//! Generation daemon: streams an answer grounded in the context the gateway assembled (products,
//! documents, history, profile, orders) as token deltas followed by a summary, over a
//! server-streaming gRPC call. Answers come from a [`ModelBackend`]; the embedded default is
//! [`SimulatedModel`], a deterministic template writer with realistic per-tier latency, so the
//! whole mesh runs and can be benchmarked without an LLM. Versioned per-store, per-intent system
//! prompts are loaded from `generation.prompts_dir` at start.

mod backend;
mod prompts;
mod service;
mod simulated;
mod tokens;

use std::path::PathBuf;

pub use backend::{ModelBackend, ModelDone, ModelEvent, ModelStream, StopReason};
pub use prompts::{PromptStore, PromptVersion, RenderedPrompt, render_context};
pub use service::GenerationDaemon;
pub use simulated::{Composition, SimulatedModel, compose};
pub use tokens::{count_tokens, tokenize};

#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// The request cannot be served as sent (empty query, unknown prompt version, ...).
    #[error("{0}")]
    InvalidArgument(String),
    #[error("prompt {path}: {message}")]
    Prompt { path: PathBuf, message: String },
    #[error("model backend failed: {0}")]
    Backend(String),
    #[error("config: {0}")]
    Config(String),
}

impl GenerationError {
    pub fn code(&self) -> tonic::Code {
        match self {
            GenerationError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            GenerationError::Prompt { .. } | GenerationError::Config(_) => {
                tonic::Code::FailedPrecondition
            }
            GenerationError::Backend(_) => tonic::Code::Unavailable,
        }
    }
}

impl From<GenerationError> for tonic::Status {
    fn from(e: GenerationError) -> Self {
        tonic::Status::new(e.code(), e.to_string())
    }
}
