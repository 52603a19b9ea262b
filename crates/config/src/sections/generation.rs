//! `[generation]`: the model backend, its latency profile and per-intent output caps.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    choice, ensure, http_url, known_intent, non_negative, optional_http_url, unit, within,
};
use crate::ConfigError;

choice! {
    /// `generation.backend`.
    pub enum GenerationBackend {
        /// The embedded simulated model.
        #[default]
        Simulated = "simulated",
        /// Any OpenAI-compatible chat-completions server (the `generation.openai` section).
        OpenAi = "openai",
        /// Claude on AWS Bedrock through ConverseStream (the `generation.bedrock` section).
        Bedrock = "bedrock",
    }
}

choice! {
    /// `generation.latency_profile` of the simulated model.
    pub enum LatencyProfile {
        /// The tier profiles (`generation.fast`, `generation.smart`).
        #[default]
        Realistic = "realistic",
        /// No artificial delay (tests, overhead benchmarks).
        Zero = "zero",
    }
}

/// Longest configurable delay or timeout, in ms (an hour).
const MAX_MS: u64 = 3_600_000;

/// Latency of one simulated model tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierProfile {
    /// Name reported in `done.model`.
    pub model: String,
    /// Median time to first token (at most an hour).
    pub first_token_ms: u32,
    /// Output speed once streaming (> 0).
    pub tokens_per_second: f32,
    /// Relative spread (log-normal sigma) of the first-token time, 0..=10.
    pub jitter: f32,
}

impl TierProfile {
    fn validate(&self, tier: &str) -> Result<(), ConfigError> {
        within(
            &format!("generation.{tier}.first_token_ms"),
            u64::from(self.first_token_ms),
            0..=MAX_MS,
        )?;
        let tps = self.tokens_per_second;
        ensure(
            tps.is_finite() && tps > 0.0,
            format!("generation.{tier}.tokens_per_second"),
            format!("{tps} must be a finite number > 0"),
        )?;
        let field = format!("generation.{tier}.jitter");
        non_negative(&field, self.jitter)?;
        ensure(
            self.jitter <= 10.0,
            field,
            format!("{} is more than 10", self.jitter),
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationSettings {
    /// `simulated` (embedded default), `openai` or `bedrock`.
    pub backend: GenerationBackend,
    /// `realistic` = the tier profiles below; `zero` = no artificial delay (tests, overhead
    /// benchmarks).
    pub latency_profile: LatencyProfile,
    pub fast: TierProfile,
    pub smart: TierProfile,
    /// Versioned system prompts: `<dir>/<store>/<intent>/<version>.txt`.
    pub prompts_dir: PathBuf,
    /// Output token cap per intent (each > 0).
    pub max_tokens: BTreeMap<String, u32>,
    /// Largest `max_tokens` a `Generate` request may ask for (1 to 1,000,000); more is refused
    /// with `INVALID_ARGUMENT`, so no caller can buy an unbounded answer.
    pub max_request_tokens: u32,
    /// Deltas buffered between the model and a slow reader before the model pauses.
    pub stream_buffer: usize,
    /// A fast-tier answer whose model confidence is below this is marked low-confidence at
    /// its first token; the gateway may escalate it to the smart tier (seed 001 quality gate).
    pub low_confidence_below: f32,
    /// Simulated model only: extra time to first token per 1,000 input tokens (prompt
    /// processing), so a longer prompt costs first-token latency as it does on a real model.
    /// Not negative.
    pub prefill_ms_per_1k_tokens: f32,
    /// `backend = "openai"`: any OpenAI-compatible chat-completions server (vLLM, Ollama,
    /// llama.cpp server, LiteLLM).
    pub openai: OpenAiSettings,
    /// `backend = "bedrock"`: Claude on AWS Bedrock through ConverseStream.
    pub bedrock: BedrockSettings,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        let max_tokens = [
            ("greeting", 60),
            ("chitchat", 80),
            ("faq", 200),
            ("order_status", 160),
            ("product_search", 250),
            ("recommendation", 300),
            ("comparison", 350),
            ("complaint", 250),
            ("return_refund", 220),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Self {
            backend: GenerationBackend::Simulated,
            latency_profile: LatencyProfile::Realistic,
            fast: TierProfile {
                model: "sim-fast (simulated Claude Haiku class)".into(),
                first_token_ms: 250,
                tokens_per_second: 120.0,
                jitter: 0.25,
            },
            smart: TierProfile {
                model: "sim-smart (simulated Claude Sonnet class)".into(),
                first_token_ms: 700,
                tokens_per_second: 60.0,
                jitter: 0.3,
            },
            prompts_dir: "data/prompts".into(),
            max_tokens,
            max_request_tokens: 4_096,
            stream_buffer: 32,
            low_confidence_below: 0.5,
            prefill_ms_per_1k_tokens: 60.0,
            openai: OpenAiSettings::default(),
            bedrock: BedrockSettings::default(),
        }
    }
}

impl GenerationSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.fast.validate("fast")?;
        self.smart.validate("smart")?;
        for (intent, &cap) in &self.max_tokens {
            let field = format!("generation.max_tokens.{intent}");
            known_intent(&field, intent)?;
            within(&field, cap, 1..=1_000_000)?;
        }
        within(
            "generation.max_request_tokens",
            self.max_request_tokens,
            1..=1_000_000,
        )?;
        within("generation.stream_buffer", self.stream_buffer, 1..=65_536)?;
        unit("generation.low_confidence_below", self.low_confidence_below)?;
        let prefill = self.prefill_ms_per_1k_tokens;
        non_negative("generation.prefill_ms_per_1k_tokens", prefill)?;
        ensure(
            prefill <= 60_000.0,
            "generation.prefill_ms_per_1k_tokens",
            format!("{prefill} is more than 60000 (a minute per 1,000 tokens)"),
        )?;
        self.openai.validate()?;
        self.bedrock.validate()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BedrockSettings {
    /// Empty = the standard AWS chain (`AWS_REGION`, profile, instance metadata).
    pub region: String,
    /// Empty = the regional Bedrock runtime endpoint.
    pub endpoint_url: String,
    /// Model (or inference profile) ids per tier.
    pub fast_model_id: String,
    pub smart_model_id: String,
    /// One tiny ConverseStream call per tier at start so the first customer does not pay
    /// for TLS and connection set-up.
    pub warm_up: bool,
    /// Seconds between keep-alive calls per tier; 0 = off. Each call is billed (seed 002
    /// prices it), so it is off by default.
    pub keep_alive_seconds: u64,
    /// Retries of a throttled or unavailable call, each only if it still fits the caller's
    /// deadline; then the other tier is tried.
    pub max_retries: u32,
    /// Base of the jittered exponential back-off between retries.
    pub retry_base_ms: u64,
    /// Ask the other tier when this one stays throttled.
    pub fallback_to_other_tier: bool,
    pub connect_timeout_ms: u64,
}

impl Default for BedrockSettings {
    fn default() -> Self {
        Self {
            region: String::new(),
            endpoint_url: String::new(),
            fast_model_id: "anthropic.claude-3-5-haiku-20241022-v1:0".into(),
            smart_model_id: "anthropic.claude-3-5-sonnet-20241022-v2:0".into(),
            warm_up: true,
            keep_alive_seconds: 0,
            max_retries: 2,
            retry_base_ms: 40,
            fallback_to_other_tier: true,
            connect_timeout_ms: 1_000,
        }
    }
}

impl BedrockSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        optional_http_url("generation.bedrock.endpoint_url", &self.endpoint_url)?;
        for (name, id) in [
            ("fast_model_id", &self.fast_model_id),
            ("smart_model_id", &self.smart_model_id),
        ] {
            ensure(
                !id.trim().is_empty(),
                format!("generation.bedrock.{name}"),
                "model ids must not be empty",
            )?;
        }
        within(
            "generation.bedrock.keep_alive_seconds",
            self.keep_alive_seconds,
            0..=86_400,
        )?;
        within("generation.bedrock.max_retries", self.max_retries, 0..=10)?;
        within(
            "generation.bedrock.retry_base_ms",
            self.retry_base_ms,
            0..=60_000,
        )?;
        within(
            "generation.bedrock.connect_timeout_ms",
            self.connect_timeout_ms,
            1..=MAX_MS,
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiSettings {
    /// Base URL up to and including `/v1`, e.g. `http://127.0.0.1:11434/v1` (Ollama).
    pub base_url: String,
    /// Environment variable holding the API key (sent as a Bearer token when set).
    pub api_key_env: String,
    /// Model names per tier.
    pub fast_model: String,
    pub smart_model: String,
    /// Connect timeout; the caller's deadline bounds the rest.
    pub connect_timeout_ms: u64,
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:11434/v1".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            fast_model: "llama3.2:3b".into(),
            smart_model: "llama3.1:8b".into(),
            connect_timeout_ms: 1_000,
        }
    }
}

impl OpenAiSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        http_url("generation.openai.base_url", &self.base_url)?;
        within(
            "generation.openai.connect_timeout_ms",
            self.connect_timeout_ms,
            1..=MAX_MS,
        )
    }
}
