//! `[gateway]`: the WebSocket front door: stage deadlines and budgets, breakers, routing,
//! streaming, abuse limits, authentication, the SLO, and what it caches and personalises.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::{choice, ensure, known_intent, positive, socket_addr, within};
use crate::ConfigError;

/// Longest stage deadline or budget accepted (an hour): far past any useful answer, and it
/// keeps `Instant + deadline` arithmetic clear of overflow.
const MAX_MS: u64 = 3_600_000;
/// Longest connection, resume or token lifetime accepted (a year).
const MAX_SECONDS: u64 = 366 * 24 * 3_600;
/// Most clock skew tolerated on token times: more only stretches how long an expired token
/// still works.
const MAX_LEEWAY_SECONDS: u64 = 300;

choice! {
    /// `gateway.resume_backend`: where streamed answers are buffered for `resume`.
    pub enum ResumeBackend {
        /// This gateway's own memory.
        #[default]
        Memory = "memory",
        /// The shared Redis of the `redis` section: any gateway on it can resume a stream.
        Redis = "redis",
    }
}

choice! {
    /// `gateway.limits.backend`: where the per-user message allowance is counted.
    pub enum LimitBackend {
        /// This gateway's own memory: a user who spreads connections over N gateways gets N
        /// allowances.
        #[default]
        Memory = "memory",
        /// The shared Redis of the `redis` section (one atomic GCRA script per message): every
        /// gateway on it spends the same allowance.
        Redis = "redis",
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
    /// Whole message, first byte in to `done` (at most an hour).
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

impl StageDeadlines {
    pub fn validate(&self) -> Result<(), ConfigError> {
        within("gateway.deadlines.total_ms", self.total_ms, 1..=MAX_MS)?;
        for (name, v) in [
            ("intent_ms", self.intent_ms),
            ("memory_ms", self.memory_ms),
            ("cache_ms", self.cache_ms),
            ("retrieval_ms", self.retrieval_ms),
            ("first_token_ms", self.first_token_ms),
            ("idle_ms", self.idle_ms),
        ] {
            let field = format!("gateway.deadlines.{name}");
            positive(&field, v)?;
            ensure(
                v <= self.total_ms,
                field,
                format!(
                    "{v} ms exceeds gateway.deadlines.total_ms ({} ms)",
                    self.total_ms
                ),
            )?;
        }
        Ok(())
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

    pub fn validate(&self) -> Result<(), ConfigError> {
        within(
            "gateway.budgets.end_to_end_ms",
            self.end_to_end_ms,
            1..=MAX_MS,
        )?;
        for (name, v) in [
            ("edge_ms", self.edge_ms),
            ("orchestrator_ms", self.orchestrator_ms),
            ("intent_ms", self.intent_ms),
            ("memory_ms", self.memory_ms),
            ("cache_ms", self.cache_ms),
            ("retrieval_ms", self.retrieval_ms),
            ("context_assembly_ms", self.context_assembly_ms),
            ("first_token_ms", self.first_token_ms),
            ("streaming_ms", self.streaming_ms),
        ] {
            ensure(
                v <= self.end_to_end_ms,
                format!("gateway.budgets.{name}"),
                format!(
                    "{v} ms exceeds the end-to-end budget gateway.budgets.end_to_end_ms ({} ms)",
                    self.end_to_end_ms
                ),
            )?;
        }
        Ok(())
    }
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

impl BreakerSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("gateway.breakers.failure_threshold", self.failure_threshold)?;
        within("gateway.breakers.open_ms", self.open_ms, 1..=MAX_MS)?;
        positive("gateway.breakers.half_open_probes", self.half_open_probes)
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
    /// Sliding window of smart-tier first-token samples (at most a day).
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

impl RoutingSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        within(
            "gateway.routing.smart_p95_threshold_ms",
            self.smart_p95_threshold_ms,
            1..=MAX_MS,
        )?;
        ensure(
            self.recover_below_ms <= self.smart_p95_threshold_ms,
            "gateway.routing.recover_below_ms",
            "must not exceed gateway.routing.smart_p95_threshold_ms",
        )?;
        within(
            "gateway.routing.window_seconds",
            self.window_seconds,
            1..=86_400,
        )?;
        within(
            "gateway.routing.escalation_min_budget_ms",
            self.escalation_min_budget_ms,
            0..=MAX_MS,
        )
    }
}

/// One answer's resume-buffer cap: the total cap must hold at least one whole answer.
const MIN_RESUME_BYTES: usize = 1024 * 1024;

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
    /// A client that has not taken a frame (WebSocket) or a write (SSE, any HTTP response)
    /// within this long is disconnected; its answers go on into the resume buffer. Bounds
    /// what a client that stops reading can hold.
    pub write_timeout_ms: u64,
    /// Kernel send buffer of each client socket (SO_SNDBUF), so a client that stops reading
    /// pins at most this much kernel memory (autotuning grows it to MiBs on fast links).
    /// 64 KiB carries chat traffic easily; 0 leaves the kernel's autotuning.
    pub send_buffer_bytes: usize,
    /// Resume buffer: kept this long after an answer completes (seed: 60 s) ...
    pub resume_keep_seconds: u64,
    /// ... and this long after the last write for streams that never complete (seed: 120 s).
    pub resume_ttl_seconds: u64,
    /// Streams held in the in-memory resume buffer before the oldest finished ones go.
    pub resume_max_streams: usize,
    /// Bytes of answers the in-memory resume buffer holds at most, across all streams
    /// (beyond it the oldest finished answers go first); at least 1 MiB, one stream's cap.
    pub resume_max_bytes: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            unbatched_chunks: 3,
            batch_size: 3,
            batch_max_wait_ms: 50,
            heartbeat_seconds: 5,
            idle_timeout_seconds: 600,
            write_timeout_ms: 10_000,
            send_buffer_bytes: 64 * 1024,
            resume_keep_seconds: 60,
            resume_ttl_seconds: 120,
            resume_max_streams: 100_000,
            resume_max_bytes: 256 * 1024 * 1024,
        }
    }
}

impl StreamSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("gateway.stream.batch_size", self.batch_size)?;
        within(
            "gateway.stream.batch_max_wait_ms",
            self.batch_max_wait_ms,
            0..=MAX_MS,
        )?;
        within(
            "gateway.stream.heartbeat_seconds",
            self.heartbeat_seconds,
            1..=MAX_SECONDS,
        )?;
        within(
            "gateway.stream.idle_timeout_seconds",
            self.idle_timeout_seconds,
            1..=MAX_SECONDS,
        )?;
        within(
            "gateway.stream.write_timeout_ms",
            self.write_timeout_ms,
            1..=MAX_MS,
        )?;
        ensure(
            self.send_buffer_bytes == 0 || (4096..=16 << 20).contains(&self.send_buffer_bytes),
            "gateway.stream.send_buffer_bytes",
            format!(
                "{} is neither 0 (kernel autotuning) nor within 4096..=16777216",
                self.send_buffer_bytes
            ),
        )?;
        within(
            "gateway.stream.resume_ttl_seconds",
            self.resume_ttl_seconds,
            0..=MAX_SECONDS,
        )?;
        ensure(
            self.resume_max_bytes >= MIN_RESUME_BYTES,
            "gateway.stream.resume_max_bytes",
            format!("must be at least {MIN_RESUME_BYTES} (one stream's cap)"),
        )?;
        ensure(
            self.resume_keep_seconds <= self.resume_ttl_seconds,
            "gateway.stream.resume_keep_seconds",
            "must not exceed gateway.stream.resume_ttl_seconds",
        )
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
    /// Answers in flight per connection before new queries get `busy` (not 0: nothing
    /// could be asked). Resumes count too.
    pub max_in_flight: u32,
    /// Where `user_messages_per_minute` is counted: `memory` (per gateway) or `redis` (shared
    /// by every gateway; if Redis cannot answer, each gateway falls back to its own count).
    pub backend: LimitBackend,
    /// Open `/ws` connections per user on this gateway; one more is refused with HTTP 429
    /// `too_many_connections`.
    pub max_connections_per_user: u32,
    /// Open TCP connections on the public listener (WebSockets included); beyond it new ones
    /// are closed at once (not 0).
    pub max_connections: u32,
    /// A client must send a request's whole header within this long, and an idle keep-alive
    /// connection is closed after it (slowloris).
    pub header_read_timeout_ms: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            user_messages_per_minute: 30,
            connection_messages_per_second: 100,
            max_in_flight: 4,
            backend: LimitBackend::Memory,
            max_connections_per_user: 8,
            max_connections: 10_000,
            header_read_timeout_ms: 10_000,
        }
    }
}

impl LimitSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("gateway.limits.max_in_flight", self.max_in_flight)?;
        positive("gateway.limits.max_connections", self.max_connections)?;
        within(
            "gateway.limits.header_read_timeout_ms",
            self.header_read_timeout_ms,
            1..=MAX_MS,
        )
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
    /// Clock skew tolerated on `exp` and `nbf` (at most 300 s).
    pub leeway_seconds: u64,
    /// `iss` the gateway puts in the tokens it issues and requires in the ones it accepts.
    pub issuer: String,
    /// `aud` the gateway puts in the tokens it issues and requires in the ones it accepts (a
    /// token's `aud` may also be an array that contains it).
    pub audience: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            required: true,
            secret: String::new(),
            secret_file: PathBuf::new(),
            token_ttl_seconds: 24 * 3_600,
            leeway_seconds: 30,
            issuer: "mangaassist".into(),
            audience: "mangaassist-gateway".into(),
        }
    }
}

impl AuthSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        ensure(
            self.secret.is_empty() || self.secret.len() >= 32,
            "gateway.auth.secret",
            format!(
                "{} bytes is too short for HS256; use at least 32",
                self.secret.len()
            ),
        )?;
        within(
            "gateway.auth.token_ttl_seconds",
            self.token_ttl_seconds,
            1..=MAX_SECONDS,
        )?;
        within(
            "gateway.auth.leeway_seconds",
            self.leeway_seconds,
            0..=MAX_LEEWAY_SECONDS,
        )?;
        for (field, value) in [
            ("gateway.auth.issuer", &self.issuer),
            ("gateway.auth.audience", &self.audience),
        ] {
            ensure(
                !value.is_empty()
                    && value.chars().count() <= 128
                    && !value.chars().any(char::is_control),
                field,
                "must be 1 to 128 characters without control characters",
            )?;
        }
        Ok(())
    }
}

/// The first-token SLO the gateway monitors (seed 003).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SloSettings {
    /// A message is good when its first token arrives within this.
    pub target_ms: u64,
    /// Share of messages allowed to be bad (0.001 = 0.1 %), inside (0, 1).
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

impl SloSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        within("gateway.slo.target_ms", self.target_ms, 1..=MAX_MS)?;
        ensure(
            self.error_budget > 0.0 && self.error_budget < 1.0,
            "gateway.slo.error_budget",
            format!("{} is outside (0, 1)", self.error_budget),
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// HTTP + WebSocket listener (chat page at `/`, socket at `/ws`, the OpenAI endpoint).
    pub listen: String,
    /// Operators' listener: `/metrics`, `/slo`, `/routing`, `/breakers` (and `/healthz`).
    /// Never the public one; keep it on loopback or a private network.
    pub internal_listen: String,
    /// Largest accepted WebSocket message (seed 002: 128 KB; at most 64 MiB).
    pub max_frame_bytes: usize,
    pub deadlines: StageDeadlines,
    pub budgets: StageBudgets,
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
    /// Stores this gateway serves; a message for any other gets `unknown_store` before any
    /// daemon is called. Must include `default_store`.
    pub stores: Vec<String>,
    /// How each storefront speaks to its customers (`[gateway.storefronts.<store>]`); a store
    /// listed in `stores` without an entry gets [`Storefront::default`].
    pub storefronts: BTreeMap<String, Storefront>,
    /// User id of unauthenticated local clients when `auth.required = false`.
    pub default_user: String,
    /// Ask precompute for follow-up answers after each message.
    pub predict_follow_ups: bool,
    /// Follow-up prediction is background work and yields to live messages: it is skipped
    /// (counted in `background_shed_total`) while more than this many other live messages are
    /// being worked on in this gateway (in flight and not waiting on the model).
    pub background_live_threshold: u32,
    /// Follow-up predictions requested at once by this gateway; more are skipped, not queued.
    pub background_max_predictions: u32,
    /// How often the products answers named are reported to precompute for the trending
    /// job (one call per interval; 0 = never: trending then follows release dates).
    pub demand_report_seconds: u64,
    /// Where streamed answers are buffered for `resume`: `memory` (this gateway only) or
    /// `redis` (any gateway sharing the `redis` section can resume them).
    pub resume_backend: ResumeBackend,
}

/// One storefront's voice: the language its page, status lines, canned answers and errors
/// use, how prices are shown, the tone the model is asked for, and the tag its token and
/// message metrics carry for cost reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Storefront {
    /// Shown in the page header.
    pub name: String,
    /// `en` or `ja` (a region such as `ja-JP` is accepted). A customer who writes in the other
    /// language is still answered in theirs; this is the default for everything else.
    pub locale: String,
    /// ISO 4217 code of the prices shown. The catalog prices every product in yen, so only
    /// `JPY` is accepted until it carries other currencies.
    pub currency: String,
    /// `polite` (です/ます in Japanese, formal English) or `friendly`.
    pub tone: String,
    /// Label on `messages_total` and `answer_tokens_total` ([a-z0-9_-], at most 32).
    pub cost_center: String,
}

impl Default for Storefront {
    fn default() -> Self {
        Self {
            name: "MangaAssist".into(),
            locale: "en".into(),
            currency: "JPY".into(),
            tone: "friendly".into(),
            cost_center: "default".into(),
        }
    }
}

impl Storefront {
    fn validate(&self, store: &str) -> Result<(), ConfigError> {
        let field = |f: &str| format!("gateway.storefronts.{store}.{f}");
        ensure(
            !self.name.trim().is_empty() && self.name.chars().count() <= 64,
            field("name"),
            "must be 1-64 characters",
        )?;
        ensure(
            matches!(
                self.locale
                    .split(['-', '_'])
                    .next()
                    .map(str::to_ascii_lowercase)
                    .as_deref(),
                Some("en" | "ja")
            ),
            field("locale"),
            format!("`{}` is not a supported locale (en, ja)", self.locale),
        )?;
        ensure(
            self.currency == "JPY",
            field("currency"),
            format!(
                "`{}`: the catalog prices products in yen, so only JPY can be shown",
                self.currency
            ),
        )?;
        ensure(
            matches!(self.tone.as_str(), "polite" | "friendly"),
            field("tone"),
            format!("`{}` is not a tone (polite, friendly)", self.tone),
        )?;
        ensure(
            !self.cost_center.is_empty()
                && self.cost_center.len() <= 32
                && self.cost_center.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                }),
            field("cost_center"),
            "must be 1-32 characters of [a-z0-9_-] (it is a metric label)",
        )
    }
}

impl GatewaySettings {
    /// The settings of `store` (the defaults when it has none of its own).
    pub fn storefront(&self, store: &str) -> Storefront {
        self.storefronts.get(store).cloned().unwrap_or_default()
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            internal_listen: "127.0.0.1:8081".into(),
            max_frame_bytes: 128 * 1024,
            deadlines: StageDeadlines::default(),
            budgets: StageBudgets::default(),
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
            stores: vec!["manga_jp".into(), "comics_us".into()],
            storefronts: BTreeMap::from([
                (
                    "manga_jp".to_string(),
                    Storefront {
                        name: "MangaAssist 日本".into(),
                        locale: "ja".into(),
                        currency: "JPY".into(),
                        tone: "polite".into(),
                        cost_center: "jp-retail".into(),
                    },
                ),
                (
                    "comics_us".to_string(),
                    Storefront {
                        name: "MangaAssist US".into(),
                        locale: "en".into(),
                        currency: "JPY".into(),
                        tone: "friendly".into(),
                        cost_center: "us-retail".into(),
                    },
                ),
            ]),
            default_user: "u-demo".into(),
            predict_follow_ups: true,
            background_live_threshold: 0,
            background_max_predictions: 8,
            demand_report_seconds: 10,
            resume_backend: ResumeBackend::Memory,
        }
    }
}

impl GatewaySettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        ensure(
            self.background_max_predictions >= 1,
            "gateway.background_max_predictions",
            "must be at least 1 (set predict_follow_ups = false to turn prediction off)",
        )?;
        ensure(
            self.demand_report_seconds <= 3_600,
            "gateway.demand_report_seconds",
            "must be at most 3600 (an hour of counts held in one gateway)",
        )?;
        socket_addr("gateway.listen", &self.listen)?;
        socket_addr("gateway.internal_listen", &self.internal_listen)?;
        ensure(
            self.internal_listen != self.listen || self.listen.ends_with(":0"),
            "gateway.internal_listen",
            "must differ from gateway.listen: the status pages must not be public",
        )?;
        within(
            "gateway.max_frame_bytes",
            self.max_frame_bytes,
            1..=64 * 1024 * 1024,
        )?;
        self.deadlines.validate()?;
        self.budgets.validate()?;
        self.breakers.validate()?;
        self.routing.validate()?;
        self.stream.validate()?;
        self.limits.validate()?;
        self.auth.validate()?;
        self.slo.validate()?;
        ensure(
            !self.stores.is_empty(),
            "gateway.stores",
            "lists no store: every message would be refused",
        )?;
        for store in &self.stores {
            ensure(
                !store.is_empty()
                    && store.len() <= 32
                    && store
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "gateway.stores",
                format!("`{store}` is not a store id ([a-z0-9_]{{1,32}})"),
            )?;
        }
        ensure(
            self.stores.contains(&self.default_store),
            "gateway.default_store",
            format!(
                "`{}` is not one of gateway.stores {:?}",
                self.default_store, self.stores
            ),
        )?;
        for (store, front) in &self.storefronts {
            ensure(
                self.stores.contains(store),
                "gateway.storefronts",
                format!("`{store}` is not one of gateway.stores {:?}", self.stores),
            )?;
            front.validate(store)?;
        }
        within("gateway.history_turns", self.history_turns, 0..=1_000)?;
        within("gateway.top_k_products", self.top_k_products, 0..=100)?;
        within("gateway.top_k_documents", self.top_k_documents, 0..=100)?;
        within(
            "gateway.retrieval_candidates",
            self.retrieval_candidates,
            0..=1_000,
        )?;
        for intent in &self.cacheable_intents {
            known_intent("gateway.cacheable_intents", intent)?;
        }
        for intent in &self.personalised_intents {
            known_intent("gateway.personalised_intents", intent)?;
        }
        Ok(())
    }
}
