//! Generation daemon: streams an answer grounded in the context the gateway assembled (products,
//! documents, history, profile, orders) as token deltas followed by a summary, over a
//! server-streaming gRPC call. Answers come from a [`ModelBackend`]; the embedded default is
//! [`SimulatedModel`], a deterministic template writer with realistic per-tier latency, so the
//! whole mesh runs and can be benchmarked without an LLM.
//! `generation.backend = "openai"` selects [`OpenAiBackend`] instead: any OpenAI-compatible
//! chat-completions server (vLLM, Ollama, llama.cpp server, LiteLLM) streamed over SSE; it
//! reports confidence 1.0, since such a server gives none.
//! `generation.backend = "bedrock"` selects [`BedrockBackend`]: Claude on AWS Bedrock through
//! ConverseStream, with warm-up calls, retries with jittered back-off within the caller's
//! deadline, and a fall-back to the other tier's model when one stays throttled (the `bedrock`
//! module documents the policy).
//!
//! - **Prompts**: versioned per-store, per-intent system prompts are loaded from
//!   `generation.prompts_dir` at start and can be registered (`PutPrompt`), activated
//!   (`ActivatePrompt`) and rolled back (`RollbackPrompt`) while serving, without a redeploy.
//!   Changes are written to the same folder, so they survive a restart, and apply to streams
//!   that start afterwards. A prompt file may begin with `#! style: detailed` /
//!   `#! max_tokens: 450` front matter; the `prompts` module documents the layout and syntax.
//! - **Quality gate**: every successful stream sends one `Assessment` right before its first
//!   token, with the model's confidence and `low_confidence` when it is below
//!   `generation.low_confidence_below`, so the gateway can drop a weak fast-tier answer and
//!   escalate to the smart tier before the customer sees any of it (seed 001).
//! - **Deadlines**: the caller's `grpc-timeout` bounds the whole stream, not only the call's
//!   set-up: when it passes, the model is stopped and the stream ends with
//!   `DEADLINE_EXCEEDED`.
//! - **Language**: an answer is written in the request's `locale` (`en`, `ja`; the gateway
//!   decides it); without one, in Japanese when the question has Japanese script or the
//!   customer's profile says `ja`. A real model is told the gateway's choice on the last line
//!   of its system prompt, and for a Japanese answer its context carries the Japanese titles
//!   and document text.
//!
//! # The simulated model
//!
//! Latency: the time to first token is drawn around the tier's `first_token_ms`, plus prompt
//! processing (`input_tokens * generation.prefill_ms_per_1k_tokens / 1000`); tokens then
//! stream at `tokens_per_second`. The `zero` profile has no delay at all. A longer prompt so
//! costs first-token latency, and a prompt with `#! style: detailed` makes longer answers
//! (more facts from the same context, never invented ones), so a prompt change shows up in
//! benchmarks as it would with a real model (seed 000, scenario 5).
//!
//! Confidence is a simulated heuristic, not a model's judgement: high (0.8 and up) when the
//! answer is grounded in context that matches the request; below 0.5 when it is not (no
//! products for a product search, recommendation or comparison; products that match none of
//! the names, genres or audience asked for; only one of two titles to compare; no policy
//! document for a policy question) and, on the fast tier, for a question in several parts.
//! See [`compose`] and [`assess`].

mod backend;
mod bedrock;
mod language;
mod openai;
mod prompts;
mod registry;
mod service;
mod simulated;
mod tokens;

use std::path::PathBuf;

pub use backend::{ModelBackend, ModelDone, ModelEvent, ModelStream, StopReason};
pub use bedrock::{BEDROCK_CONFIDENCE, BedrockBackend};
pub use openai::{OPENAI_CONFIDENCE, OpenAiBackend, SseParser};
pub use prompts::{
    DEFAULT_STORE, MAX_PROMPT_BYTES, PromptStore, PromptStyle, PromptVersion, RenderedPrompt,
    is_valid_version, render_context, validate_store_id,
};
pub use registry::PromptRegistry;
pub use service::{ADMIN_METHODS, GenerationDaemon, parse_grpc_timeout};
pub use simulated::{Composition, SimulatedModel, assess, compose, compose_styled};
pub use tokens::{count_tokens, tokenize};

#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// The request cannot be served as sent (empty query, unknown prompt version, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// A prompt version or folder the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A prompt version exists with other text.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the state does not allow it (nothing to roll back to).
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("prompt {path}: {message}")]
    Prompt { path: PathBuf, message: String },
    /// A prompt change could not be written.
    #[error("writing {path}: {message}")]
    Storage { path: PathBuf, message: String },
    #[error("model backend failed: {0}")]
    Backend(String),
    #[error("config: {0}")]
    Config(String),
}

impl GenerationError {
    pub fn code(&self) -> tonic::Code {
        match self {
            GenerationError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            GenerationError::NotFound(_) => tonic::Code::NotFound,
            GenerationError::AlreadyExists(_) => tonic::Code::AlreadyExists,
            GenerationError::FailedPrecondition(_)
            | GenerationError::Prompt { .. }
            | GenerationError::Config(_) => tonic::Code::FailedPrecondition,
            GenerationError::Storage { .. } => tonic::Code::Internal,
            GenerationError::Backend(_) => tonic::Code::Unavailable,
        }
    }
}

impl From<GenerationError> for tonic::Status {
    fn from(e: GenerationError) -> Self {
        tonic::Status::new(e.code(), e.to_string())
    }
}
