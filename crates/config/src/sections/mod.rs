//! Every section of the config file, with its documented defaults.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::{ConfigError, FaultSpec};

/// Rejects a value outside a fixed set, naming the field and the choices.
fn one_of(field: &str, value: &str, choices: &[&str]) -> Result<(), ConfigError> {
    if choices.contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::field(
            field,
            format!("`{value}` is not one of {}", choices.join(", ")),
        ))
    }
}

/// The whole mesh. Each daemon reads the sections it needs; `mangaassist config print` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Fault injection rules (`retrieval=hang`, `intent=error:1.0`,
    /// `generation.Generate=latency:300ms`). Off by default.
    pub faults: Vec<FaultSpec>,
    pub telemetry: TelemetrySettings,
    pub data: DataSettings,
    pub embedding: EmbeddingSettings,
    pub mesh: MeshSettings,
    pub gateway: GatewaySettings,
    pub intent: IntentSettings,
    pub retrieval: RetrievalSettings,
    pub memory: MemorySettings,
    pub cache: CacheSettings,
    pub generation: GenerationSettings,
    pub precompute: PrecomputeSettings,
    /// Shared Redis for `cache.backend = "redis"` and `gateway.resume_backend = "redis"`.
    pub redis: RedisSettings,
}

impl Config {
    /// Semantic checks serde cannot express. Called by the loader; call it again after
    /// changing a config in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let unit = |field: &str, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::field(field, format!("{v} is outside 0..=1")))
            }
        };
        unit("cache.semantic_threshold", self.cache.semantic_threshold)?;
        unit("intent.min_confidence", self.intent.min_confidence)?;
        unit(
            "intent.complexity_fast_below",
            self.intent.complexity_fast_below,
        )?;
        unit(
            "intent.complexity_smart_above",
            self.intent.complexity_smart_above,
        )?;
        if self.intent.complexity_fast_below > self.intent.complexity_smart_above {
            return Err(ConfigError::field(
                "intent.complexity_fast_below",
                "must not exceed intent.complexity_smart_above",
            ));
        }
        if !matches!(self.telemetry.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::field(
                "telemetry.log_format",
                format!("`{}` is not one of text, json", self.telemetry.log_format),
            ));
        }
        if !matches!(
            self.embedding.backend.as_str(),
            "auto" | "minilm" | "hashed"
        ) {
            return Err(ConfigError::field(
                "embedding.backend",
                format!(
                    "`{}` is not one of auto, minilm, hashed",
                    self.embedding.backend
                ),
            ));
        }
        one_of(
            "generation.backend",
            &self.generation.backend,
            &["simulated", "openai", "bedrock"],
        )?;
        one_of(
            "memory.backend",
            &self.memory.backend,
            &["redb", "dynamodb"],
        )?;
        one_of("cache.backend", &self.cache.backend, &["memory", "redis"])?;
        one_of(
            "retrieval.backend",
            &self.retrieval.backend,
            &["embedded", "opensearch"],
        )?;
        one_of(
            "gateway.resume_backend",
            &self.gateway.resume_backend,
            &["memory", "redis"],
        )?;
        for (field, url, schemes) in [
            ("redis.url", &self.redis.url, &["redis://", "rediss://"][..]),
            (
                "retrieval.opensearch.url",
                &self.retrieval.opensearch.url,
                &["http://", "https://"][..],
            ),
        ] {
            if !schemes.iter().any(|s| url.starts_with(s)) {
                return Err(ConfigError::field(
                    field,
                    format!("`{url}` must start with {}", schemes.join(" or ")),
                ));
            }
        }
        for (field, url) in [
            (
                "memory.dynamodb.endpoint_url",
                &self.memory.dynamodb.endpoint_url,
            ),
            (
                "generation.bedrock.endpoint_url",
                &self.generation.bedrock.endpoint_url,
            ),
            ("telemetry.otlp_endpoint", &self.telemetry.otlp_endpoint),
        ] {
            let http = url.starts_with("http://") || url.starts_with("https://");
            if !url.is_empty() && !http {
                return Err(ConfigError::field(
                    field,
                    format!("`{url}` must be empty or start with http:// or https://"),
                ));
            }
        }
        if self.redis.pool_size == 0 || self.redis.pool_size > 64 {
            return Err(ConfigError::field(
                "redis.pool_size",
                format!("{} is outside 1..=64", self.redis.pool_size),
            ));
        }
        let bedrock = &self.generation.bedrock;
        if bedrock.fast_model_id.trim().is_empty() || bedrock.smart_model_id.trim().is_empty() {
            return Err(ConfigError::field(
                "generation.bedrock.fast_model_id",
                "model ids must not be empty",
            ));
        }
        let os = &self.retrieval.opensearch;
        if os.index_prefix.is_empty()
            || os.index_prefix != os.index_prefix.to_lowercase()
            || os.index_prefix.starts_with(['_', '-', '+'])
            || os
                .index_prefix
                .contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'])
        {
            return Err(ConfigError::field(
                "retrieval.opensearch.index_prefix",
                format!(
                    "`{}` is not a valid OpenSearch index name prefix (lowercase, no spaces or \\/*?\"<>|,#:, not starting with _ - +)",
                    os.index_prefix
                ),
            ));
        }
        let oa = &self.generation.openai;
        if !(oa.base_url.starts_with("http://") || oa.base_url.starts_with("https://")) {
            return Err(ConfigError::field(
                "generation.openai.base_url",
                format!("`{}` must start with http:// or https://", oa.base_url),
            ));
        }
        if !matches!(
            self.generation.latency_profile.as_str(),
            "realistic" | "zero"
        ) {
            return Err(ConfigError::field(
                "generation.latency_profile",
                format!(
                    "`{}` is not one of realistic, zero",
                    self.generation.latency_profile
                ),
            ));
        }
        for intent in self.generation.max_tokens.keys() {
            if !crate::sections::INTENTS.contains(&intent.as_str()) {
                return Err(ConfigError::field(
                    format!("generation.max_tokens.{intent}"),
                    format!("unknown intent (one of {})", INTENTS.join(", ")),
                ));
            }
        }
        for intent in &self.gateway.cacheable_intents {
            if !INTENTS.contains(&intent.as_str()) {
                return Err(ConfigError::field(
                    "gateway.cacheable_intents",
                    format!("unknown intent `{intent}` (one of {})", INTENTS.join(", ")),
                ));
            }
        }
        for intent in &self.gateway.personalised_intents {
            if !INTENTS.contains(&intent.as_str()) {
                return Err(ConfigError::field(
                    "gateway.personalised_intents",
                    format!("unknown intent `{intent}` (one of {})", INTENTS.join(", ")),
                ));
            }
        }
        let d = &self.gateway.deadlines;
        for (name, v) in [
            ("intent_ms", d.intent_ms),
            ("memory_ms", d.memory_ms),
            ("cache_ms", d.cache_ms),
            ("retrieval_ms", d.retrieval_ms),
            ("first_token_ms", d.first_token_ms),
            ("idle_ms", d.idle_ms),
        ] {
            if v == 0 {
                return Err(ConfigError::field(
                    format!("gateway.deadlines.{name}"),
                    "must be greater than 0",
                ));
            }
            if v > d.total_ms {
                return Err(ConfigError::field(
                    format!("gateway.deadlines.{name}"),
                    format!(
                        "{v} ms exceeds gateway.deadlines.total_ms ({} ms)",
                        d.total_ms
                    ),
                ));
            }
        }
        let b = &self.gateway.budgets;
        for (name, v) in [
            ("edge_ms", b.edge_ms),
            ("orchestrator_ms", b.orchestrator_ms),
            ("intent_ms", b.intent_ms),
            ("memory_ms", b.memory_ms),
            ("cache_ms", b.cache_ms),
            ("retrieval_ms", b.retrieval_ms),
            ("context_assembly_ms", b.context_assembly_ms),
            ("first_token_ms", b.first_token_ms),
            ("streaming_ms", b.streaming_ms),
        ] {
            if v > b.end_to_end_ms {
                return Err(ConfigError::field(
                    format!("gateway.budgets.{name}"),
                    format!(
                        "{v} ms exceeds the end-to-end budget gateway.budgets.end_to_end_ms ({} ms)",
                        b.end_to_end_ms
                    ),
                ));
            }
        }
        if b.end_to_end_ms == 0 || b.degraded_ms < b.end_to_end_ms {
            return Err(ConfigError::field(
                "gateway.budgets.degraded_ms",
                format!(
                    "{} ms must be at least gateway.budgets.end_to_end_ms ({} ms, itself > 0)",
                    b.degraded_ms, b.end_to_end_ms
                ),
            ));
        }
        for (intent, t) in &self.gateway.targets {
            if !INTENTS.contains(&intent.as_str()) {
                return Err(ConfigError::field(
                    format!("gateway.targets.{intent}"),
                    format!("unknown intent (one of {})", INTENTS.join(", ")),
                ));
            }
            if !(t.p50 <= t.p95 && t.p95 <= t.p99) {
                return Err(ConfigError::field(
                    format!("gateway.targets.{intent}"),
                    format!("needs p50 <= p95 <= p99, got {}/{}/{}", t.p50, t.p95, t.p99),
                ));
            }
        }
        let r = &self.gateway.routing;
        if r.recover_below_ms > r.smart_p95_threshold_ms {
            return Err(ConfigError::field(
                "gateway.routing.recover_below_ms",
                "must not exceed gateway.routing.smart_p95_threshold_ms",
            ));
        }
        if r.window_seconds == 0 {
            return Err(ConfigError::field(
                "gateway.routing.window_seconds",
                "must be > 0",
            ));
        }
        let br = &self.gateway.breakers;
        if br.failure_threshold == 0 || br.half_open_probes == 0 || br.open_ms == 0 {
            return Err(ConfigError::field(
                "gateway.breakers",
                "failure_threshold, open_ms and half_open_probes must all be > 0",
            ));
        }
        let st = &self.gateway.stream;
        if st.batch_size == 0 {
            return Err(ConfigError::field(
                "gateway.stream.batch_size",
                "must be > 0",
            ));
        }
        if st.heartbeat_seconds == 0 || st.idle_timeout_seconds == 0 {
            return Err(ConfigError::field(
                "gateway.stream",
                "heartbeat_seconds and idle_timeout_seconds must be > 0",
            ));
        }
        if st.resume_keep_seconds > st.resume_ttl_seconds {
            return Err(ConfigError::field(
                "gateway.stream.resume_keep_seconds",
                "must not exceed gateway.stream.resume_ttl_seconds",
            ));
        }
        if self.gateway.limits.max_in_flight == 0 {
            return Err(ConfigError::field(
                "gateway.limits.max_in_flight",
                "must be > 0",
            ));
        }
        let a = &self.gateway.auth;
        if !a.secret.is_empty() && a.secret.len() < 32 {
            return Err(ConfigError::field(
                "gateway.auth.secret",
                format!(
                    "{} bytes is too short for HS256; use at least 32",
                    a.secret.len()
                ),
            ));
        }
        if a.token_ttl_seconds == 0 {
            return Err(ConfigError::field(
                "gateway.auth.token_ttl_seconds",
                "must be > 0",
            ));
        }
        let slo = &self.gateway.slo;
        if slo.target_ms == 0 || !(slo.error_budget > 0.0 && slo.error_budget < 1.0) {
            return Err(ConfigError::field(
                "gateway.slo",
                "target_ms must be > 0 and error_budget inside (0, 1)",
            ));
        }
        if self.gateway.max_frame_bytes == 0 {
            return Err(ConfigError::field("gateway.max_frame_bytes", "must be > 0"));
        }
        for (name, addr) in self.mesh.daemons() {
            addr.listen
                .parse::<std::net::SocketAddr>()
                .map_err(|e| ConfigError::field(format!("mesh.{name}.listen"), e.to_string()))?;
            if !(addr.endpoint.starts_with("http://") || addr.endpoint.starts_with("https://")) {
                return Err(ConfigError::field(
                    format!("mesh.{name}.endpoint"),
                    format!("`{}` must start with http:// or https://", addr.endpoint),
                ));
            }
        }
        self.gateway
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| ConfigError::field("gateway.listen", e.to_string()))?;
        Ok(())
    }
}

/// The intent labels accepted in config (same as the WebSocket protocol).
pub const INTENTS: [&str; 9] = [
    "greeting",
    "faq",
    "order_status",
    "product_search",
    "recommendation",
    "comparison",
    "complaint",
    "return_refund",
    "chitchat",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `text` for people, `json` for log pipelines.
    pub log_format: String,
    /// `tracing` filter directive, e.g. `info,mangaassist_gateway=debug`.
    pub log_level: String,
    /// OTLP/HTTP collector base URL (e.g. `http://jaeger:4318`) to export spans to. Empty =
    /// the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// variables; when neither is set, spans are not exported.
    pub otlp_endpoint: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: "text".into(),
            // Over-budget stages are span events on every trace; one log line each would drown
            // the rest (they are counted in `budget_violations_total`).
            log_level: "info,budget=warn".into(),
            otlp_endpoint: String::new(),
        }
    }
}

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingSettings {
    /// `auto` = all-MiniLM-L6-v2 when its files are present, else the hashed n-gram fallback;
    /// `minilm` = the model or fail; `hashed` = the fallback only (no model files needed).
    pub backend: String,
    /// Directory holding `model.safetensors`, `config.json`, `tokenizer.json`; empty =
    /// `<cache_dir>/models/all-MiniLM-L6-v2`.
    pub model_dir: PathBuf,
    /// Query vectors kept in memory (LRU) so a repeated message is embedded once.
    pub query_cache_entries: usize,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        Self {
            backend: "auto".into(),
            model_dir: PathBuf::new(),
            query_cache_entries: 10_000,
        }
    }
}

/// Where a daemon listens and where its peers reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonAddr {
    pub listen: String,
    pub endpoint: String,
}

impl DaemonAddr {
    fn local(port: u16) -> Self {
        Self {
            listen: format!("127.0.0.1:{port}"),
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshSettings {
    pub intent: DaemonAddr,
    pub retrieval: DaemonAddr,
    pub memory: DaemonAddr,
    pub cache: DaemonAddr,
    pub generation: DaemonAddr,
    pub precompute: DaemonAddr,
    /// Seconds to let in-flight RPCs finish after SIGTERM before exiting.
    pub shutdown_grace_seconds: u64,
    /// Upper bound on any RPC's deadline, whatever the caller asked for.
    pub max_rpc_seconds: u64,
}

impl Default for MeshSettings {
    fn default() -> Self {
        Self {
            intent: DaemonAddr::local(50061),
            retrieval: DaemonAddr::local(50062),
            memory: DaemonAddr::local(50063),
            cache: DaemonAddr::local(50064),
            generation: DaemonAddr::local(50065),
            precompute: DaemonAddr::local(50066),
            shutdown_grace_seconds: 10,
            max_rpc_seconds: 60,
        }
    }
}

impl MeshSettings {
    pub fn daemons(&self) -> [(&'static str, &DaemonAddr); 6] {
        [
            ("intent", &self.intent),
            ("retrieval", &self.retrieval),
            ("memory", &self.memory),
            ("cache", &self.cache),
            ("generation", &self.generation),
            ("precompute", &self.precompute),
        ]
    }

    pub fn daemons_mut(&mut self) -> [(&'static str, &mut DaemonAddr); 6] {
        [
            ("intent", &mut self.intent),
            ("retrieval", &mut self.retrieval),
            ("memory", &mut self.memory),
            ("cache", &mut self.cache),
            ("generation", &mut self.generation),
            ("precompute", &mut self.precompute),
        ]
    }
}

/// Hard per-call deadlines of the gateway's stages (ms): a call still running at its deadline
/// is cancelled and the message moves down the degradation ladder. Every deadline is also
/// capped by what is left of the message's first-token deadline, so a late stage gets less.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StageDeadlines {
    pub intent_ms: u64,
    pub memory_ms: u64,
    pub cache_ms: u64,
    pub retrieval_ms: u64,
    /// Generation: time from receiving the message to the first token.
    pub first_token_ms: u64,
    /// Generation: longest silence between two tokens.
    pub idle_ms: u64,
    /// Whole message, first byte in to `done`.
    pub total_ms: u64,
}

impl Default for StageDeadlines {
    fn default() -> Self {
        Self {
            intent_ms: 250,
            memory_ms: 150,
            cache_ms: 100,
            retrieval_ms: 500,
            first_token_ms: 2_500,
            idle_ms: 2_000,
            total_ms: 30_000,
        }
    }
}

/// The p95 latency budget of each stage (seed 003, ms). Exceeding one does not stop the
/// stage (deadlines do that); it adds a span event and counts `budget_violations{stage}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StageBudgets {
    /// Load balancer + TLS before the gateway sees the frame (not measured here; kept so the
    /// table adds up like the seed's).
    pub edge_ms: u64,
    /// Routing + fan-out set-up, including embedding the message once.
    pub orchestrator_ms: u64,
    pub intent_ms: u64,
    pub memory_ms: u64,
    pub cache_ms: u64,
    pub retrieval_ms: u64,
    pub context_assembly_ms: u64,
    /// Model time to first token (from the call, not from the message).
    pub first_token_ms: u64,
    pub streaming_ms: u64,
    /// The SLO: first visible token within this (p95).
    pub end_to_end_ms: u64,
    /// A degraded answer (non-critical dependency down) must finish its first token in this.
    pub degraded_ms: u64,
}

impl Default for StageBudgets {
    fn default() -> Self {
        Self {
            edge_ms: 50,
            orchestrator_ms: 50,
            intent_ms: 35,
            memory_ms: 10,
            cache_ms: 2,
            retrieval_ms: 200,
            context_assembly_ms: 20,
            first_token_ms: 400,
            streaming_ms: 1_050,
            end_to_end_ms: 2_000,
            degraded_ms: 3_000,
        }
    }
}

impl StageBudgets {
    /// Budget of a stage by the name used in spans and metrics.
    pub fn for_stage(&self, stage: &str) -> Option<u64> {
        Some(match stage {
            "edge" => self.edge_ms,
            "orchestrator" | "embed" => self.orchestrator_ms,
            "intent" => self.intent_ms,
            "history" | "profile" | "orders" | "memory" => self.memory_ms,
            "cache" => self.cache_ms,
            "retrieval" => self.retrieval_ms,
            "context_assembly" => self.context_assembly_ms,
            "first_token" | "generation" => self.first_token_ms,
            "streaming" => self.streaming_ms,
            _ => return None,
        })
    }
}

/// Latency targets of one intent (seed 001), first visible token, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentTarget {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
}

fn default_targets() -> BTreeMap<String, IntentTarget> {
    [
        ("greeting", 150, 250, 400),
        ("chitchat", 150, 250, 400),
        ("faq", 200, 400, 600),
        ("order_status", 300, 500, 800),
        ("return_refund", 300, 500, 800),
        ("product_search", 800, 1_500, 2_200),
        ("recommendation", 1_200, 2_500, 3_000),
        ("comparison", 1_500, 2_800, 3_500),
        ("complaint", 1_000, 2_000, 2_800),
    ]
    .into_iter()
    .map(|(k, p50, p95, p99)| (k.to_string(), IntentTarget { p50, p95, p99 }))
    .collect()
}

/// Per-dependency circuit breakers on the gateway's clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Consecutive failures (errors or missed deadlines) that open a circuit.
    pub failure_threshold: u32,
    /// How long an open circuit rejects calls before letting a probe through.
    pub open_ms: u64,
    /// Probe calls let through while half-open; that many successes close it.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_ms: 5_000,
            half_open_probes: 1,
        }
    }
}

/// Model routing on top of the seed-001 matrix the intent daemon applies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingSettings {
    /// Seed 000 scenario 1: while the smart tier's first-token p95 is above the threshold,
    /// medium-complexity messages go to the fast tier.
    pub adaptive: bool,
    pub smart_p95_threshold_ms: u64,
    /// Hysteresis: back to normal routing below this.
    pub recover_below_ms: u64,
    /// Sliding window of smart-tier first-token samples.
    pub window_seconds: u64,
    /// Samples needed in the window before it may flip.
    pub min_samples: u32,
    /// Seed 001 quality gate: a fast-tier answer the model marks low-confidence is replaced
    /// by a smart-tier one if at least `escalation_min_budget_ms` of the first-token deadline
    /// is left.
    pub quality_gate: bool,
    pub escalation_min_budget_ms: u64,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        Self {
            adaptive: true,
            smart_p95_threshold_ms: 1_500,
            recover_below_ms: 1_200,
            window_seconds: 60,
            min_samples: 20,
            quality_gate: true,
            escalation_min_budget_ms: 1_000,
        }
    }
}

/// How answers travel over the socket (seed 000 scenario 3, seed 002).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSettings {
    /// The first chunks go out one model delta per frame so text appears at once.
    pub unbatched_chunks: u32,
    /// After those, deltas are batched this many per frame.
    pub batch_size: u32,
    /// A partial batch is flushed after this long, so a slow model never holds text back.
    pub batch_max_wait_ms: u64,
    /// Heartbeat frames while a message is being processed (keeps idle-timeout proxies open).
    pub heartbeat_seconds: u64,
    /// Connections with no client frame and nothing in flight for this long are closed.
    pub idle_timeout_seconds: u64,
    /// Resume buffer: kept this long after an answer completes (seed: 60 s) ...
    pub resume_keep_seconds: u64,
    /// ... and this long after the last write for streams that never complete (seed: 120 s).
    pub resume_ttl_seconds: u64,
    /// Streams held in the in-memory resume buffer before the oldest finished ones go.
    pub resume_max_streams: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            unbatched_chunks: 3,
            batch_size: 3,
            batch_max_wait_ms: 50,
            heartbeat_seconds: 5,
            idle_timeout_seconds: 600,
            resume_keep_seconds: 60,
            resume_ttl_seconds: 120,
            resume_max_streams: 100_000,
        }
    }
}

/// Abuse limits (seed 004, seed 002). 0 = unlimited.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Token bucket per user across all their connections to this gateway.
    pub user_messages_per_minute: u32,
    /// Token bucket per connection (every client frame counts).
    pub connection_messages_per_second: u32,
    /// Answers in flight per connection before new queries get `busy`.
    pub max_in_flight: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            user_messages_per_minute: 30,
            connection_messages_per_second: 100,
            max_in_flight: 4,
        }
    }
}

/// Who may connect: HS256 JWTs whose `sub` is the user id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `false` lets anyone connect as `?user_id=` (local experiments only; logged loudly).
    pub required: bool,
    /// The HMAC secret (≥ 32 bytes); prefer `MANGAASSIST_GATEWAY__AUTH__SECRET` or a file.
    pub secret: String,
    /// Read (or, when missing, created with a random secret) if `secret` is empty; empty =
    /// `<data.state_dir>/jwt.secret`.
    pub secret_file: PathBuf,
    /// Lifetime of tokens `mangaassist token` and `up` issue.
    pub token_ttl_seconds: u64,
    /// Clock skew tolerated on `exp`.
    pub leeway_seconds: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            required: true,
            secret: String::new(),
            secret_file: PathBuf::new(),
            token_ttl_seconds: 24 * 3_600,
            leeway_seconds: 30,
        }
    }
}

/// The first-token SLO the gateway monitors (seed 003).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SloSettings {
    /// A message is good when its first token arrives within this.
    pub target_ms: u64,
    /// Share of messages allowed to be bad (0.001 = 0.1 %).
    pub error_budget: f64,
}

impl Default for SloSettings {
    fn default() -> Self {
        Self {
            target_ms: 2_000,
            error_budget: 0.001,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// HTTP + WebSocket listener (chat page at `/`, socket at `/ws`).
    pub listen: String,
    /// Largest accepted WebSocket message (seed 002: 128 KB).
    pub max_frame_bytes: usize,
    pub deadlines: StageDeadlines,
    pub budgets: StageBudgets,
    /// Per-intent first-token targets (seed 001), used by the benchmark and the waterfall log.
    pub targets: BTreeMap<String, IntentTarget>,
    pub breakers: BreakerSettings,
    pub routing: RoutingSettings,
    pub stream: StreamSettings,
    pub limits: LimitSettings,
    pub auth: AuthSettings,
    pub slo: SloSettings,
    /// Append one JSON line per answered message (stage timings, latencies) to this file for
    /// `mangaassist report weekly`; empty = off.
    pub record_path: PathBuf,
    /// Turns of history given to the model.
    pub history_turns: u32,
    /// Products and documents put into the context.
    pub top_k_products: u32,
    pub top_k_documents: u32,
    /// Products fetched by the speculative retrieval before context assembly narrows them
    /// to `top_k_products` (recommendations pick one volume per series from these).
    pub retrieval_candidates: u32,
    /// Answers of these intents are written to the cache after they are generated.
    pub cacheable_intents: Vec<String>,
    /// Of the cacheable ones, these are cached per user rather than per store.
    pub personalised_intents: Vec<String>,
    /// Store used when the client sends none.
    pub default_store: String,
    /// User id of unauthenticated local clients when `auth.required = false`.
    pub default_user: String,
    /// Ask precompute for follow-up answers after each message.
    pub predict_follow_ups: bool,
    /// Where streamed answers are buffered for `resume`: `memory` (this gateway only) or
    /// `redis` (any gateway sharing the `redis` section can resume them).
    pub resume_backend: String,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_frame_bytes: 128 * 1024,
            deadlines: StageDeadlines::default(),
            budgets: StageBudgets::default(),
            targets: default_targets(),
            breakers: BreakerSettings::default(),
            routing: RoutingSettings::default(),
            stream: StreamSettings::default(),
            limits: LimitSettings::default(),
            auth: AuthSettings::default(),
            slo: SloSettings::default(),
            record_path: PathBuf::new(),
            history_turns: 6,
            top_k_products: 5,
            top_k_documents: 2,
            retrieval_candidates: 20,
            cacheable_intents: [
                "faq",
                "product_search",
                "recommendation",
                "comparison",
                "greeting",
            ]
            .map(String::from)
            .to_vec(),
            personalised_intents: vec![],
            default_store: "manga_jp".into(),
            default_user: "u-demo".into(),
            predict_follow_ups: true,
            resume_backend: "memory".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntentSettings {
    /// Below this confidence the answer is still used but flagged low-confidence; the
    /// keyword matcher only answers when the classifier cannot run.
    pub min_confidence: f32,
    /// Routing matrix of seed 001: complexity below this → fast tier.
    pub complexity_fast_below: f32,
    /// Above this → smart tier; in between → smart only if the budget allows.
    pub complexity_smart_above: f32,
    /// Medium complexity goes to the fast tier when less than this is left of the budget.
    pub medium_fast_budget_ms: u32,
}

impl Default for IntentSettings {
    fn default() -> Self {
        Self {
            min_confidence: 0.35,
            complexity_fast_below: 0.3,
            complexity_smart_above: 0.6,
            medium_fast_budget_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalSettings {
    pub top_k: u32,
    /// Candidates taken from each ranking (vector, lexical) before fusion.
    pub candidates: u32,
    /// Reciprocal-rank-fusion constant (k in 1 / (k + rank)).
    pub rrf_k: f32,
    /// HNSW search breadth; higher = better recall, slower.
    pub ef_search: usize,
    /// Most volumes of one series among the products returned (0 = no limit), so "manga
    /// like X" shows other series instead of X's volumes 1-5. Further volumes still fill
    /// the list when too few other products match.
    pub max_per_series: u32,
    /// `embedded` (in-process HNSW + BM25, the default) or `opensearch`.
    pub backend: String,
    pub opensearch: OpenSearchSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenSearchSettings {
    /// Cluster URL, e.g. `https://search-x.eu-west-1.es.amazonaws.com` or
    /// `http://127.0.0.1:9200`.
    pub url: String,
    /// One index per store: `<prefix><store>` for products and `<prefix><store>-docs` for
    /// documents.
    pub index_prefix: String,
    /// Environment variables with basic-auth credentials (unset = no auth).
    pub username_env: String,
    pub password_env: String,
    /// Create missing indices with the `knn_vector` mapping and bulk-load the catalog at
    /// start when an index holds a different number of documents.
    pub index_at_start: bool,
    /// Per-request timeout; the caller's deadline bounds it further.
    pub timeout_ms: u64,
}

impl Default for OpenSearchSettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:9200".into(),
            index_prefix: "mangaassist-".into(),
            username_env: "OPENSEARCH_USERNAME".into(),
            password_env: "OPENSEARCH_PASSWORD".into(),
            index_at_start: true,
            timeout_ms: 2_000,
        }
    }
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        Self {
            top_k: 5,
            candidates: 50,
            rrf_k: 60.0,
            ef_search: 64,
            max_per_series: 2,
            backend: "embedded".into(),
            opensearch: OpenSearchSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemorySettings {
    /// redb file; empty = `<data.state_dir>/memory.redb`.
    pub path: PathBuf,
    /// Turns returned when the caller asks for 0.
    pub history_limit: u32,
    /// Turns older than this are dropped (the DynamoDB backend uses a TTL attribute).
    pub turn_ttl_days: u32,
    /// Load `data/users` into the store at start (idempotent).
    pub seed_demo_data: bool,
    /// `redb` (embedded file, the default) or `dynamodb`.
    pub backend: String,
    pub dynamodb: DynamoDbSettings,
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

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            history_limit: 10,
            turn_ttl_days: 30,
            seed_demo_data: true,
            backend: "redb".into(),
            dynamodb: DynamoDbSettings::default(),
        }
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
    /// `memory` (in-process, the default) or `redis` (shared by every cache replica; see
    /// the `redis` section).
    pub backend: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db` or `rediss://` for TLS.
    pub url: String,
    /// Connections in the pool (commands are pipelined on each).
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

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            semantic_threshold: 0.95,
            default_ttl_seconds: 3_600,
            recommendation_ttl_seconds: 4 * 3_600,
            follow_up_ttl_seconds: 300,
            max_entries: 50_000,
            backend: "memory".into(),
        }
    }
}

/// Latency of one simulated model tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierProfile {
    /// Name reported in `done.model`.
    pub model: String,
    /// Median time to first token.
    pub first_token_ms: u32,
    /// Output speed once streaming.
    pub tokens_per_second: f32,
    /// Relative spread (log-normal sigma) of the first-token time.
    pub jitter: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationSettings {
    /// `simulated` (embedded default; Bedrock and OpenAI-compatible come with the backends).
    pub backend: String,
    /// `realistic` = the tier profiles below; `zero` = no artificial delay (tests, overhead
    /// benchmarks).
    pub latency_profile: String,
    pub fast: TierProfile,
    pub smart: TierProfile,
    /// Versioned system prompts: `<dir>/<store>/<intent>/<version>.txt`.
    pub prompts_dir: PathBuf,
    /// Output token cap per intent.
    pub max_tokens: BTreeMap<String, u32>,
    /// Deltas buffered between the model and a slow reader before the model pauses.
    pub stream_buffer: usize,
    /// A fast-tier answer whose model confidence is below this is marked low-confidence at
    /// its first token; the gateway may escalate it to the smart tier (seed 001 quality gate).
    pub low_confidence_below: f32,
    /// Simulated model only: extra time to first token per 1,000 input tokens (prompt
    /// processing), so a longer prompt costs first-token latency as it does on a real model.
    pub prefill_ms_per_1k_tokens: f32,
    /// `backend = "openai"`: any OpenAI-compatible chat-completions server (vLLM, Ollama,
    /// llama.cpp server, LiteLLM).
    pub openai: OpenAiSettings,
    /// `backend = "bedrock"`: Claude on AWS Bedrock through ConverseStream.
    pub bedrock: BedrockSettings,
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
            backend: "simulated".into(),
            latency_profile: "realistic".into(),
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
            stream_buffer: 32,
            low_confidence_below: 0.5,
            prefill_ms_per_1k_tokens: 60.0,
            openai: OpenAiSettings::default(),
            bedrock: BedrockSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrecomputeSettings {
    /// Run the scheduled jobs (the RPCs work either way).
    pub scheduler: bool,
    /// Trending-title answers (seed 001: hourly).
    pub trending_interval_seconds: u64,
    /// Genre recommendations (seed 001: nightly).
    pub genre_interval_seconds: u64,
    /// Titles per store in the trending job.
    pub trending_titles: u32,
    /// Follow-up questions pre-generated after each answer.
    pub follow_ups: u32,
    /// Run every job once shortly after start so a fresh mesh has warm answers.
    pub run_at_start: bool,
}

impl Default for PrecomputeSettings {
    fn default() -> Self {
        Self {
            scheduler: true,
            trending_interval_seconds: 3_600,
            genre_interval_seconds: 24 * 3_600,
            trending_titles: 10,
            follow_ups: 3,
            run_at_start: true,
        }
    }
}
