//! `bench prompt`: the prompt-change gate of seed 000 scenario 5 ("prompt changes are latency
//! changes"). A candidate system prompt is benchmarked against the active version on the
//! generation daemon itself, before anyone activates it:
//!
//! 1. The active version of the store and intent is read with `ListPrompts` (the store's own,
//!    else the `default` store's). The candidate is registered with `PutPrompt` **inactive**,
//!    as `cand-<first 8 hex of SHA-256 of the trimmed text>`, so re-running the gate with the
//!    same file reuses the version and live traffic never sees it.
//! 2. The labelled questions of the intent (`data/intents`) are the queries. For each one the
//!    context is built once through the retrieval daemon with the gateway's own request and
//!    assembly (`mangaassist_domain::context`, default `gateway` settings), and both arms get
//!    exactly that context; `Generate` is then called for both arms, each
//!    pinned with `prompt_version`, in a seeded random order that puts the candidate first in
//!    exactly half the pairs, so drift (a warming cache, a neighbour's build) hits both arms
//!    alike.
//! 3. Per call: prompt (input) tokens, output tokens, client-side time to the first token
//!    delta and to the summary, and the server's own first-token time. TTFT and e2e of the
//!    two arms go through `mangaassist_stats::compare` with the same settings as
//!    `bench compare`; a significant, non-negligible p95 regression above the gate fails it.

use std::{
    fmt::Write as _,
    io::IsTerminal,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mangaassist_client::{GenerationClient, RetrievalClient};
use mangaassist_config::IntentSettings;
use mangaassist_domain::{ContextSettings, Sources, assemble, routing};
use mangaassist_proto::v1 as pb;
use mangaassist_stats::{Comparison, Summary, summarize};
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    BenchError,
    compare::{CompareSettings, comparison_cells},
    conn::ms,
    machine,
    queries::QueryMix,
    sample::{Machine, write_file},
    summary::{fmt_ms, pct, target_for},
};

/// Version of the `prompt_gate.json` layout.
pub const PROMPT_GATE_SCHEMA: u32 = 1;
/// Largest prompt the generation daemon accepts (`MAX_PROMPT_BYTES` there).
pub const MAX_CANDIDATE_BYTES: usize = 32 * 1024;
/// `--retrieval` value that builds no context.
pub const NO_RETRIEVAL: &str = "none";
/// Deadline of the prompt-management calls.
const ADMIN_DEADLINE: Duration = Duration::from_secs(10);

/// `--tier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TierChoice {
    Fast,
    Smart,
    /// The tier the routing matrix gives a plain, confidently classified message of the
    /// intent with the whole budget left (the intent's base complexity, default thresholds).
    Auto,
}

impl TierChoice {
    pub fn resolve(self, intent: pb::Intent) -> pb::ModelTier {
        match self {
            TierChoice::Fast => pb::ModelTier::Fast,
            TierChoice::Smart => pb::ModelTier::Smart,
            TierChoice::Auto => routing::route(
                &IntentSettings::default(),
                routing::base_complexity(intent),
                None,
            ),
        }
    }
}

/// `cand-<8 hex>` from the trimmed text, the way the daemon compares prompt files: the same
/// file always maps to the same version, which `PutPrompt` accepts again as a no-op.
pub fn candidate_version(text: &str) -> String {
    let digest = Sha256::digest(text.trim().as_bytes());
    let mut v = String::from("cand-");
    for b in &digest[..4] {
        let _ = write!(v, "{b:02x}");
    }
    v
}

/// Which prompt a call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    Baseline,
    Candidate,
}

impl Arm {
    pub fn label(self) -> &'static str {
        match self {
            Arm::Baseline => "baseline",
            Arm::Candidate => "candidate",
        }
    }
}

/// One `Generate` call. Times are milliseconds on the client's monotonic clock from the
/// moment the call was started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromptSample {
    /// Index of the query in the run (both arms of a query share it).
    pub query: usize,
    /// `None` only in hand-made files.
    pub arm: Option<Arm>,
    /// 0 when this arm ran first for the query, 1 when second.
    pub position: u8,
    pub text: String,
    /// The query is one of the first `--warmup`: kept here, excluded from every statistic.
    pub warmup: bool,
    /// Context given to both arms of this query.
    pub context_products: u32,
    pub context_documents: u32,
    /// Version the daemon reports it used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u32>,
    /// Client: time to the first token delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Client: time to the summary (the whole answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<f64>,
    /// The daemon's own `first_token_ms` / `total_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_first_token_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_total_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// Why the call produced no answer (gRPC code and message, `retrieval: ...`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PromptSample {
    fn measured(&self, arm: Arm) -> bool {
        self.arm == Some(arm) && !self.warmup
    }

    fn answered(&self) -> bool {
        self.error.is_none() && self.e2e_ms.is_some() && self.ttft_ms.is_some()
    }
}

/// One prompt version as the daemon describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromptMeta {
    pub version: String,
    /// Store folder the version lives in (`default` when the store uses the shared prompt).
    pub store_id: String,
    pub active: bool,
    /// Tokens of the system prompt text (front matter excluded).
    pub tokens: u32,
    pub style: String,
    pub max_tokens: u32,
    /// The candidate's file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

impl From<&pb::PromptInfo> for PromptMeta {
    fn from(p: &pb::PromptInfo) -> Self {
        Self {
            version: p.version.clone(),
            store_id: p.store_id.clone(),
            active: p.active,
            tokens: p.tokens,
            style: p.style.clone(),
            max_tokens: p.max_tokens,
            file: None,
        }
    }
}

/// Location of one quantity in one arm (measured, answered calls).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArmStats {
    /// Measured calls (warm-up excluded).
    pub n: usize,
    pub errors: usize,
    pub prompt_tokens: Option<Summary>,
    pub output_tokens: Option<Summary>,
    pub ttft_ms: Option<Summary>,
    pub e2e_ms: Option<Summary>,
    pub server_ttft_ms: Option<Summary>,
}

/// The statistical verdict on one latency.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GateRow {
    Compared {
        comparison: Box<Comparison>,
    },
    /// Fewer answered measured calls than `--min-samples` on one side.
    Insufficient {
        baseline: usize,
        candidate: usize,
    },
    /// The statistics refused the data.
    Failed {
        message: String,
    },
}

impl GateRow {
    fn gate_failed(&self) -> bool {
        matches!(self, GateRow::Compared { comparison } if comparison.gate_failed)
    }
}

/// Knobs as recorded in the report.
#[derive(Debug, Clone, Serialize)]
pub struct GateSettings {
    pub gate: f64,
    pub alpha: f64,
    pub effect_floor: f64,
    pub min_samples: usize,
    pub bootstrap_resamples: usize,
}

/// `prompt_gate.json`: the whole run, with every call.
#[derive(Debug, Clone, Serialize)]
pub struct PromptGateReport {
    pub schema_version: u32,
    pub tool: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub wall_s: f64,
    pub intent: String,
    pub store_id: String,
    pub tier: String,
    pub generation: String,
    /// `None`: no retrieval, empty context.
    pub retrieval: Option<String>,
    /// Queries (= calls per arm), warm-up included.
    pub messages: usize,
    pub warmup: usize,
    pub concurrency: usize,
    pub seed: u64,
    pub settings: GateSettings,
    pub baseline: PromptMeta,
    pub candidate: PromptMeta,
    pub baseline_stats: ArmStats,
    pub candidate_stats: ArmStats,
    pub ttft: GateRow,
    pub e2e: GateRow,
    /// `pass`, `fail` (exit 1) or `inconclusive` (exit 2: too few answers to judge).
    pub verdict: String,
    pub exit_code: i32,
    pub machine: Machine,
    pub samples: Vec<PromptSample>,
}

/// Everything a prompt gate run needs besides the queries.
#[derive(Debug, Clone)]
pub struct PromptGateConfig {
    /// Generation daemon endpoint, e.g. `http://127.0.0.1:50065`.
    pub generation: String,
    /// Service tokens for both daemons (admin-scoped: the candidate is registered with
    /// `PutPrompt`); `None` when the mesh has no service secret.
    pub service_tokens: Option<std::sync::Arc<mangaassist_auth::ServiceTokens>>,
    /// Retrieval daemon endpoint; `None` = empty context.
    pub retrieval: Option<String>,
    pub store: String,
    pub intent: pb::Intent,
    /// Shown in the report.
    pub candidate_file: PathBuf,
    /// The file's contents, front matter included.
    pub candidate_text: String,
    /// Compare against this registered version instead of the active one.
    pub baseline_version: Option<String>,
    pub tier: pb::ModelTier,
    /// Queries, i.e. calls per arm, warm-up included.
    pub messages: usize,
    /// The first queries, excluded from the statistics.
    pub warmup: usize,
    /// Queries in flight at once (each runs its two arms one after the other).
    pub concurrency: usize,
    /// Deadline of one `Generate` stream.
    pub timeout: Duration,
    /// Seeds the question order and the arm order.
    pub seed: u64,
    pub settings: CompareSettings,
    pub progress: bool,
}

/// Adds `http://` when the endpoint has no scheme (`127.0.0.1:50065`).
pub fn normalize_endpoint(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

fn rpc_error(what: &str, endpoint: &str, status: &tonic::Status) -> BenchError {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown => {
            BenchError::Connect {
                url: endpoint.to_string(),
                reason: format!("{what}: {}", status.message()),
            }
        }
        code => BenchError::Daemon {
            what: what.to_string(),
            message: format!("{code:?}: {}", status.message()),
        },
    }
}

/// Picks the baseline from `ListPrompts`: `wanted` if given (the store's own first, then the
/// default store's, as `Generate` resolves a pin), else what new streams of the store get.
pub fn resolve_baseline(
    prompts: &[pb::PromptInfo],
    store: &str,
    intent: pb::Intent,
    wanted: Option<&str>,
) -> Result<pb::PromptInfo, BenchError> {
    let of = |s: &str| -> Vec<&pb::PromptInfo> {
        prompts
            .iter()
            .filter(|p| p.store_id == s && p.intent == intent as i32)
            .collect()
    };
    let own = of(store);
    let shared = of(DEFAULT_STORE);
    let found = match wanted {
        Some(v) => own
            .iter()
            .chain(shared.iter())
            .find(|p| p.version == v)
            .copied()
            .ok_or_else(|| {
                let known: Vec<&str> = own
                    .iter()
                    .chain(shared.iter())
                    .map(|p| p.version.as_str())
                    .collect();
                BenchError::Usage(format!(
                    "--baseline `{v}` is not registered for store `{store}` intent {} (registered: {})",
                    intent.label(),
                    known.join(", ")
                ))
            })?,
        None => own
            .iter()
            .find(|p| p.active)
            .or_else(|| shared.iter().find(|p| p.active))
            .copied()
            .ok_or_else(|| {
                BenchError::Daemon {
                    what: "ListPrompts".into(),
                    message: format!(
                        "no active prompt for store `{store}` intent {} (neither its own nor the default store's)",
                        intent.label()
                    ),
                }
            })?,
    };
    // A pin resolves the store's own versions first: a default-store baseline whose name the
    // store also uses would silently measure the store's version instead.
    if found.store_id != store && own.iter().any(|p| p.version == found.version) {
        return Err(BenchError::Usage(format!(
            "the baseline is the default store's `{}`, but store `{store}` has its own version of that name, which a pinned request would get instead; pass --baseline with another version",
            found.version
        )));
    }
    Ok(found.clone())
}

/// Store folder shared by every store (the generation daemon's `DEFAULT_STORE`).
pub const DEFAULT_STORE: &str = "default";

/// For each query, whether the candidate runs first: exactly half of them (rounded down),
/// in an order shuffled with `seed`.
pub fn arm_orders(n: usize, seed: u64) -> Vec<bool> {
    let mut v: Vec<bool> = (0..n).map(|i| i < n / 2).collect();
    // Separate stream from the question shuffle, which uses the same seed.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5052_4f4d_5054);
    v.shuffle(&mut rng);
    v
}

struct Context {
    products: Vec<pb::ProductHit>,
    documents: Vec<pb::DocumentHit>,
}

struct Shared<'a> {
    cfg: &'a PromptGateConfig,
    generation: GenerationClient,
    retrieval: Option<RetrievalClient>,
    baseline: &'a str,
    candidate: &'a str,
    bar: ProgressBar,
}

async fn build_context(s: &Shared<'_>, text: &str) -> Result<Context, String> {
    let Some(client) = &s.retrieval else {
        return Ok(Context {
            products: Vec::new(),
            documents: Vec::new(),
        });
    };
    let settings = ContextSettings::default();
    let resp = client
        .retrieve(
            settings.retrieval_request(text, &s.cfg.store, None),
            s.cfg.timeout,
        )
        .await
        .map_err(|e| format!("retrieval: {:?}: {}", e.code(), e.message()))?;
    let sources = Sources {
        retrieved: Some(resp),
        ..Sources::default()
    };
    let ctx = assemble(s.cfg.intent, sources, &settings);
    Ok(Context {
        products: ctx.products,
        documents: ctx.documents,
    })
}

async fn generate_once(s: &Shared<'_>, req: pb::GenerateRequest, sample: &mut PromptSample) {
    let pinned = req.prompt_version.clone();
    let t0 = Instant::now();
    let mut stream = match s.generation.generate(req, s.cfg.timeout).await {
        Ok(st) => st,
        Err(e) => {
            sample.error = Some(format!("{:?}: {}", e.code(), e.message()));
            return;
        }
    };
    // The daemon enforces the deadline too; this only guards against a peer that never
    // ends the stream.
    let guard = s.cfg.timeout + Duration::from_secs(1);
    loop {
        let next =
            match tokio::time::timeout(guard.saturating_sub(t0.elapsed()), stream.next()).await {
                Ok(n) => n,
                Err(_) => {
                    sample.error = Some("timeout".into());
                    return;
                }
            };
        match next {
            None => {
                sample.error = Some("stream ended without a summary".into());
                return;
            }
            Some(Err(e)) => {
                sample.error = Some(format!("{:?}: {}", e.code(), e.message()));
                return;
            }
            Some(Ok(ev)) => match ev.event {
                Some(pb::generate_response::Event::Delta(_)) => {
                    if sample.ttft_ms.is_none() {
                        sample.ttft_ms = Some(ms(t0.elapsed()));
                    }
                }
                Some(pb::generate_response::Event::Done(d)) => {
                    sample.e2e_ms = Some(ms(t0.elapsed()));
                    sample.input_tokens = Some(d.input_tokens);
                    sample.output_tokens = Some(d.output_tokens);
                    sample.server_first_token_ms = Some(f64::from(d.first_token_ms));
                    sample.server_total_ms = Some(f64::from(d.total_ms));
                    sample.stop_reason = Some(d.stop_reason.clone());
                    sample.confidence = Some(d.confidence);
                    if d.prompt_version != pinned {
                        sample.error = Some(format!(
                            "the daemon used prompt `{}` instead of the pinned `{pinned}`",
                            d.prompt_version
                        ));
                    } else if sample.ttft_ms.is_none() {
                        sample.error = Some("answer without any token".into());
                    }
                    sample.prompt_version = Some(d.prompt_version);
                    return;
                }
                Some(pb::generate_response::Event::Assessment(_)) | None => {}
            },
        }
    }
}

async fn run_query(
    s: &Shared<'_>,
    index: usize,
    text: &str,
    candidate_first: bool,
) -> [PromptSample; 2] {
    let arms = if candidate_first {
        [Arm::Candidate, Arm::Baseline]
    } else {
        [Arm::Baseline, Arm::Candidate]
    };
    let mut out = arms.map(|arm| PromptSample {
        query: index,
        arm: Some(arm),
        text: text.to_string(),
        warmup: index < s.cfg.warmup,
        ..Default::default()
    });
    out[1].position = 1;
    let ctx = match build_context(s, text).await {
        Ok(c) => c,
        Err(e) => {
            for sample in &mut out {
                sample.error = Some(e.clone());
            }
            s.bar.inc(2);
            return out;
        }
    };
    for sample in &mut out {
        sample.context_products = ctx.products.len() as u32;
        sample.context_documents = ctx.documents.len() as u32;
        let version = match sample.arm {
            Some(Arm::Candidate) => s.candidate,
            _ => s.baseline,
        };
        let req = pb::GenerateRequest {
            query: text.to_string(),
            intent: s.cfg.intent as i32,
            tier: s.cfg.tier as i32,
            store_id: s.cfg.store.clone(),
            session_id: format!("bench-prompt-{index}"),
            user_id: "bench-prompt".into(),
            products: ctx.products.clone(),
            documents: ctx.documents.clone(),
            prompt_version: version.to_string(),
            ..Default::default()
        };
        generate_once(s, req, sample).await;
        s.bar.inc(1);
    }
    out
}

fn progress_bar(enabled: bool, calls: u64) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(calls), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} calls {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn validate(cfg: &PromptGateConfig) -> Result<(), BenchError> {
    let s = &cfg.settings;
    s.validate()?;
    if cfg.messages < cfg.warmup + s.min_samples {
        return Err(BenchError::Usage(format!(
            "--messages {} leaves {} measured calls per arm after {} warm-up; the verdict needs at least --min-samples {}",
            cfg.messages,
            cfg.messages.saturating_sub(cfg.warmup),
            cfg.warmup,
            s.min_samples
        )));
    }
    if cfg.concurrency == 0 {
        return Err(BenchError::Usage("--concurrency must be at least 1".into()));
    }
    if cfg.candidate_text.trim().is_empty() {
        return Err(BenchError::Usage(format!(
            "candidate {} is empty",
            cfg.candidate_file.display()
        )));
    }
    if cfg.candidate_text.len() > MAX_CANDIDATE_BYTES {
        return Err(BenchError::Usage(format!(
            "candidate {} has {} bytes; the generation daemon accepts at most {MAX_CANDIDATE_BYTES}",
            cfg.candidate_file.display(),
            cfg.candidate_text.len()
        )));
    }
    Ok(())
}

/// Registers the candidate (inactive), runs both arms and judges the result. The report's
/// `exit_code` is 0 (pass), 1 (gate failed) or 2 (too few answers for a verdict).
pub async fn run_prompt_gate(
    cfg: &PromptGateConfig,
    mix: &QueryMix,
) -> Result<PromptGateReport, BenchError> {
    validate(cfg)?;
    let connect = |daemon: &str, endpoint: &str, e: mangaassist_client::ClientError| {
        BenchError::Usage(format!("--{daemon} `{endpoint}`: {e}"))
    };
    let tokens = cfg.service_tokens.clone();
    let generation = GenerationClient::connect_with(&cfg.generation, tokens.clone())
        .map_err(|e| connect("generation", &cfg.generation, e))?;
    let retrieval = match &cfg.retrieval {
        Some(ep) => Some(
            RetrievalClient::connect_with(ep, tokens).map_err(|e| connect("retrieval", ep, e))?,
        ),
        None => None,
    };

    let listed = generation
        .list_prompts(ADMIN_DEADLINE)
        .await
        .map_err(|e| rpc_error("ListPrompts", &cfg.generation, &e))?;
    let baseline_info = resolve_baseline(
        &listed.prompts,
        &cfg.store,
        cfg.intent,
        cfg.baseline_version.as_deref(),
    )?;
    let version = candidate_version(&cfg.candidate_text);
    let put = generation
        .put_prompt(
            pb::PutPromptRequest {
                store_id: cfg.store.clone(),
                intent: cfg.intent as i32,
                version: version.clone(),
                text: cfg.candidate_text.clone(),
                activate: false,
            },
            ADMIN_DEADLINE,
        )
        .await
        .map_err(|e| match e.code() {
            tonic::Code::InvalidArgument | tonic::Code::AlreadyExists => {
                BenchError::Usage(format!(
                    "the generation daemon refused candidate {} as `{version}`: {}",
                    cfg.candidate_file.display(),
                    e.message()
                ))
            }
            _ => rpc_error("PutPrompt", &cfg.generation, &e),
        })?;
    let mut candidate = PromptMeta::from(&put);
    candidate.file = Some(cfg.candidate_file.clone());
    let baseline = PromptMeta::from(&baseline_info);

    let started_wall = SystemTime::now();
    let t0 = Instant::now();
    let orders = arm_orders(cfg.messages, cfg.seed);
    let texts: Vec<String> = (0..cfg.messages)
        .map(|k| mix.pick(k as u64).text.to_string())
        .collect();
    let shared = Shared {
        cfg,
        generation,
        retrieval,
        baseline: &baseline.version,
        candidate: &candidate.version,
        bar: progress_bar(cfg.progress, 2 * cfg.messages as u64),
    };
    let mut samples: Vec<PromptSample> =
        futures::stream::iter(texts.iter().zip(&orders).enumerate())
            .map(|(i, (text, first))| run_query(&shared, i, text, *first))
            .buffer_unordered(cfg.concurrency)
            .flat_map(futures::stream::iter)
            .collect()
            .await;
    shared.bar.finish_and_clear();
    samples.sort_by_key(|s| (s.query, s.position));
    let wall_s = t0.elapsed().as_secs_f64();

    let baseline_stats = arm_stats(&samples, Arm::Baseline);
    let candidate_stats = arm_stats(&samples, Arm::Candidate);
    let ttft = judge(&samples, &cfg.settings, |s| s.ttft_ms);
    let e2e = judge(&samples, &cfg.settings, |s| s.e2e_ms);
    let (verdict, exit_code) = if ttft.gate_failed() || e2e.gate_failed() {
        ("fail", 1)
    } else if matches!(ttft, GateRow::Compared { .. }) && matches!(e2e, GateRow::Compared { .. }) {
        ("pass", 0)
    } else {
        ("inconclusive", 2)
    };
    let s = &cfg.settings;
    Ok(PromptGateReport {
        schema_version: PROMPT_GATE_SCHEMA,
        tool: format!("mangaassist-bench {}", env!("CARGO_PKG_VERSION")),
        started_at: humantime::format_rfc3339_seconds(started_wall).to_string(),
        wall_s,
        intent: cfg.intent.label().to_string(),
        store_id: cfg.store.clone(),
        tier: cfg.tier.label().to_string(),
        generation: cfg.generation.clone(),
        retrieval: cfg.retrieval.clone(),
        messages: cfg.messages,
        warmup: cfg.warmup,
        concurrency: cfg.concurrency,
        seed: cfg.seed,
        settings: GateSettings {
            gate: s.gate,
            alpha: s.alpha,
            effect_floor: s.effect_floor,
            min_samples: s.min_samples,
            bootstrap_resamples: s.bootstrap_resamples,
        },
        baseline,
        candidate,
        baseline_stats,
        candidate_stats,
        ttft,
        e2e,
        verdict: verdict.to_string(),
        exit_code,
        machine: machine::collect(),
        samples,
    })
}

fn values(
    samples: &[PromptSample],
    arm: Arm,
    f: impl Fn(&PromptSample) -> Option<f64>,
) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.measured(arm) && s.answered())
        .filter_map(f)
        .collect()
}

fn arm_stats(samples: &[PromptSample], arm: Arm) -> ArmStats {
    let v = |f: fn(&PromptSample) -> Option<f64>| summarize(&values(samples, arm, f));
    ArmStats {
        n: samples.iter().filter(|s| s.measured(arm)).count(),
        errors: samples
            .iter()
            .filter(|s| s.measured(arm) && !s.answered())
            .count(),
        prompt_tokens: v(|s| s.input_tokens.map(f64::from)),
        output_tokens: v(|s| s.output_tokens.map(f64::from)),
        ttft_ms: v(|s| s.ttft_ms),
        e2e_ms: v(|s| s.e2e_ms),
        server_ttft_ms: v(|s| s.server_first_token_ms),
    }
}

fn judge(
    samples: &[PromptSample],
    settings: &CompareSettings,
    f: impl Fn(&PromptSample) -> Option<f64> + Copy,
) -> GateRow {
    let b = values(samples, Arm::Baseline, f);
    let c = values(samples, Arm::Candidate, f);
    if b.len() < settings.min_samples || c.len() < settings.min_samples {
        return GateRow::Insufficient {
            baseline: b.len(),
            candidate: c.len(),
        };
    }
    match mangaassist_stats::compare(&b, &c, &settings.options()) {
        Ok(cmp) => GateRow::Compared {
            comparison: Box::new(cmp),
        },
        Err(e) => GateRow::Failed {
            message: e.to_string(),
        },
    }
}

fn change(base: f64, cur: f64) -> String {
    if base > 0.0 {
        format!("{:+.1} %", (cur / base - 1.0) * 100.0)
    } else if cur == base {
        "±0".into()
    } else {
        "n/a".into()
    }
}

/// Name, baseline, candidate and number format of one row of the per-call table.
type TableRow<'a> = (
    &'a str,
    &'a Option<Summary>,
    &'a Option<Summary>,
    fn(f64) -> String,
);

fn fmt_count(v: f64) -> String {
    format!("{v:.0}")
}

impl PromptGateReport {
    /// `prompt_gate.md`.
    pub fn to_markdown(&self) -> String {
        let (b, c) = (&self.baseline, &self.candidate);
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Prompt-change gate: `{}` on store `{}`\n",
            self.intent, self.store_id
        );
        let describe = |p: &PromptMeta| {
            format!(
                "{} system-prompt tokens, style {}, max_tokens {}",
                p.tokens, p.style, p.max_tokens
            )
        };
        let _ = writeln!(
            md,
            "- baseline: `{}` ({}, from the `{}` prompts; {})",
            b.version,
            if b.active { "active" } else { "not active" },
            b.store_id,
            describe(b)
        );
        let _ = writeln!(
            md,
            "- candidate: `{}` from `{}` (registered for `{}`, {}; {}; Δ system prompt {:+} tokens)",
            c.version,
            c.file
                .as_deref()
                .map_or_else(String::new, |f| f.display().to_string()),
            c.store_id,
            if c.active { "ACTIVE" } else { "not active" },
            describe(c),
            i64::from(c.tokens) - i64::from(b.tokens)
        );
        let _ = writeln!(
            md,
            "- {} queries per arm ({} warm-up excluded), {} tier, arms in seeded random order per query (seed {}), {} quer{} at a time · {:.1} s",
            self.messages,
            self.warmup,
            self.tier,
            self.seed,
            self.concurrency,
            if self.concurrency == 1 { "y" } else { "ies" },
            self.wall_s
        );
        let _ = writeln!(
            md,
            "- context: {} · generation `{}` · {}\n",
            self.retrieval.as_deref().map_or_else(
                || "none (`--retrieval none`: empty context, low-context answers)".to_string(),
                |r| {
                    let c = ContextSettings::default();
                    format!(
                        "retrieval `{r}`, up to {} products and {} documents per query, identical for both arms",
                        c.top_k_products, c.top_k_documents
                    )
                }
            ),
            self.generation,
            self.started_at
        );

        md.push_str(
            "| per call | baseline mean · p50 · p95 | candidate mean · p50 · p95 | Δ mean | Δ p95 |\n",
        );
        md.push_str("|---|---|---|---:|---:|\n");
        let (bs, cs) = (&self.baseline_stats, &self.candidate_stats);
        let rows: [TableRow<'_>; 5] = [
            (
                "prompt tokens (input)",
                &bs.prompt_tokens,
                &cs.prompt_tokens,
                fmt_count,
            ),
            (
                "output tokens",
                &bs.output_tokens,
                &cs.output_tokens,
                fmt_count,
            ),
            ("TTFT, client (ms)", &bs.ttft_ms, &cs.ttft_ms, fmt_ms),
            (
                "TTFT, server (ms)",
                &bs.server_ttft_ms,
                &cs.server_ttft_ms,
                fmt_ms,
            ),
            ("e2e, client (ms)", &bs.e2e_ms, &cs.e2e_ms, fmt_ms),
        ];
        for (name, x, y, f) in rows {
            let cell = |s: &Option<Summary>| {
                s.as_ref().map_or("–".to_string(), |s| {
                    format!("{} · {} · {}", f(s.mean), f(s.p50), f(s.p95))
                })
            };
            let (dm, dp) = match (x, y) {
                (Some(x), Some(y)) => (change(x.mean, y.mean), change(x.p95, y.p95)),
                _ => ("–".into(), "–".into()),
            };
            let _ = writeln!(md, "| {name} | {} | {} | {dm} | {dp} |", cell(x), cell(y));
        }
        let _ = writeln!(
            md,
            "| errors | {} of {} | {} of {} | | |\n",
            bs.errors, bs.n, cs.errors, cs.n
        );
        if let Some(t) = target_for(&self.intent) {
            let p95 = |s: &Option<Summary>| {
                s.as_ref().map_or("–".to_string(), |s| {
                    format!(
                        "{} ms ({})",
                        fmt_ms(s.p95),
                        if s.p95 <= t.p95 { "within" } else { "OVER" }
                    )
                })
            };
            let _ = writeln!(
                md,
                "Seed 001 TTFT p95 target for {}: {} ms (generation only here; the gateway adds its stages): baseline {}, candidate {}.\n",
                self.intent,
                t.p95,
                p95(&bs.ttft_ms),
                p95(&cs.ttft_ms)
            );
        }

        let s = &self.settings;
        md.push_str("## Verdict\n\n");
        let _ = writeln!(
            md,
            "Fails on a significant (Mann-Whitney p < {}), non-negligible (|Cliff's δ| ≥ {}) p95 regression above {} of TTFT or e2e (answered, measured calls; at least {} per arm).\n",
            s.alpha,
            s.effect_floor,
            pct(s.gate),
            s.min_samples
        );
        md.push_str("| metric | n base / cand | p50 base → cand (ms) | p95 base → cand (ms) | Δp95 [95 % CI] | MW p | Cliff's δ | verdict | severity |\n");
        md.push_str("|---|---|---|---|---|---:|---:|---|---|\n");
        for (name, row) in [("ttft", &self.ttft), ("e2e", &self.e2e)] {
            let line = match row {
                GateRow::Compared { comparison } => {
                    format!("| {name} | {}", comparison_cells(comparison))
                }
                GateRow::Insufficient {
                    baseline,
                    candidate,
                } => format!(
                    "| {name} | {baseline} / {candidate} | | | | | | insufficient samples (< {}) | – |",
                    s.min_samples
                ),
                GateRow::Failed { message } => {
                    format!("| {name} | | | | | | | not comparable: {message} | – |")
                }
            };
            md.push_str(&line);
            md.push('\n');
        }
        let failed: Vec<&str> = [("ttft", &self.ttft), ("e2e", &self.e2e)]
            .into_iter()
            .filter(|(_, r)| r.gate_failed())
            .map(|(n, _)| n)
            .collect();
        let activate = format!(
            "mangaassist prompt activate --store {} --intent {} --version {}",
            c.store_id, self.intent, c.version
        );
        let rollback = format!(
            "mangaassist prompt rollback --store {} --intent {}",
            c.store_id, self.intent
        );
        match self.verdict.as_str() {
            "fail" => {
                let _ = writeln!(
                    md,
                    "\n**Gate: FAIL** ({}): the candidate makes answers significantly slower. Shorten the prompt, cap the output (`#! max_tokens`) or move static instructions out of it, then run the gate again. `{}` stays registered but inactive; live traffic keeps `{}`.",
                    failed.join(", "),
                    c.version,
                    b.version
                );
                let _ = writeln!(
                    md,
                    "\nTo activate it anyway: `{activate}` (undo: `{rollback}`)."
                );
            }
            "pass" => {
                let _ = writeln!(
                    md,
                    "\n**Gate: PASS**: no significant p95 regression above {}. `{}` is registered but not active yet.",
                    pct(s.gate),
                    c.version
                );
                let _ = writeln!(
                    md,
                    "\nActivate: `{activate}`\n\nRoll back if production disagrees: `{rollback}`"
                );
            }
            _ => {
                let _ = writeln!(
                    md,
                    "\n**Gate: INCONCLUSIVE**: too few answered calls for a verdict (see the errors in prompt_gate.json). `{}` is registered but not active.",
                    c.version
                );
            }
        }
        md
    }
}

/// Writes `prompt_gate.md` and `prompt_gate.json` into `dir`.
pub fn write_prompt_gate(report: &PromptGateReport, dir: &Path) -> Result<(), BenchError> {
    write_file(&dir.join("prompt_gate.md"), report.to_markdown().as_bytes())?;
    let json = serde_json::to_vec_pretty(report).map_err(|e| BenchError::Parse {
        path: dir.join("prompt_gate.json"),
        message: e.to_string(),
    })?;
    write_file(&dir.join("prompt_gate.json"), &json)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn info(store: &str, version: &str, active: bool) -> pb::PromptInfo {
        pb::PromptInfo {
            store_id: store.into(),
            intent: pb::Intent::Recommendation as i32,
            version: version.into(),
            active,
            ..Default::default()
        }
    }

    #[test]
    fn candidate_versions_are_stable_and_valid() {
        let a = candidate_version("#! style: detailed\nBe brief.\n");
        assert_eq!(a, candidate_version("  #! style: detailed\nBe brief."));
        assert_ne!(a, candidate_version("#! style: detailed\nBe briefer."));
        assert_eq!(a.len(), "cand-".len() + 8);
        assert!(
            a[5..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn auto_tier_follows_the_routing_matrix() {
        use pb::{Intent as I, ModelTier as T};
        for (i, t) in [
            (I::Recommendation, T::Smart),
            (I::Comparison, T::Smart),
            (I::Complaint, T::Smart),
            (I::Faq, T::Fast),
            (I::Greeting, T::Fast),
            // Medium complexity with the whole budget left: the smart tier, as live.
            (I::ProductSearch, T::Smart),
        ] {
            assert_eq!(TierChoice::Auto.resolve(i), t, "{i:?}");
        }
        assert_eq!(TierChoice::Fast.resolve(I::Recommendation), T::Fast);
    }

    #[test]
    fn arm_orders_are_balanced_seeded_and_mixed() {
        let a = arm_orders(60, 1);
        assert_eq!(a.iter().filter(|x| **x).count(), 30);
        assert_eq!(a, arm_orders(60, 1));
        assert_ne!(a, arm_orders(60, 2));
        // Not simply alternating or blocked.
        let switches = a.windows(2).filter(|w| w[0] != w[1]).count();
        assert!((10..59).contains(&switches), "{switches}");
        assert_eq!(arm_orders(7, 3).iter().filter(|x| **x).count(), 3);
    }

    #[test]
    fn baseline_is_the_stores_active_else_the_defaults() {
        let rec = pb::Intent::Recommendation;
        let list = vec![
            info("default", "v1", true),
            info("manga_jp", "v1", false),
            info("manga_jp", "v2", true),
            info("shop", "v7", false),
        ];
        assert_eq!(
            resolve_baseline(&list, "manga_jp", rec, None)
                .unwrap()
                .version,
            "v2"
        );
        let d = resolve_baseline(&list, "comics_us", rec, None).unwrap();
        assert_eq!((d.store_id.as_str(), d.version.as_str()), ("default", "v1"));
        // A store without an active version of its own uses the default's...
        let d = resolve_baseline(&list, "shop", rec, None).unwrap();
        assert_eq!(d.store_id, "default");
        // ...unless a pin would resolve to the store's own version of the same name.
        let e = resolve_baseline(&list, "manga_jp", rec, Some("v1"))
            .map(|p| p.store_id)
            .unwrap();
        assert_eq!(e, "manga_jp");
        let mut shadow = list.clone();
        shadow[2].active = false;
        let e = resolve_baseline(&shadow, "manga_jp", rec, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("own version"), "{e}");
        let e = resolve_baseline(&list, "manga_jp", rec, Some("v9"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("v9") && e.contains("v1, v2"), "{e}");
        let e = resolve_baseline(&list, "manga_jp", pb::Intent::Faq, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no active prompt"), "{e}");
    }

    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(normalize_endpoint("127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(normalize_endpoint("https://x:1"), "https://x:1");
    }

    fn sample(query: usize, arm: Arm, ttft: f64, e2e: f64, tokens: u32) -> PromptSample {
        PromptSample {
            query,
            arm: Some(arm),
            warmup: query < 2,
            input_tokens: Some(tokens),
            output_tokens: Some(tokens / 2),
            ttft_ms: Some(ttft),
            e2e_ms: Some(e2e),
            server_first_token_ms: Some(ttft - 1.0),
            ..Default::default()
        }
    }

    #[test]
    fn verdict_uses_measured_answered_calls_only() {
        let mut samples = Vec::new();
        for q in 0..30 {
            let jitter = (q % 7) as f64;
            samples.push(sample(
                q,
                Arm::Baseline,
                100.0 + jitter,
                400.0 + jitter,
                200,
            ));
            samples.push(sample(
                q,
                Arm::Candidate,
                150.0 + jitter,
                700.0 + jitter,
                500,
            ));
        }
        // Warm-up outliers and errors do not count.
        samples[0].ttft_ms = Some(10_000.0);
        samples[11].error = Some("Unavailable: down".into());
        let settings = CompareSettings {
            bootstrap_resamples: 200,
            ..CompareSettings::default()
        };
        let b = arm_stats(&samples, Arm::Baseline);
        let c = arm_stats(&samples, Arm::Candidate);
        assert_eq!((b.n, b.errors, c.n, c.errors), (28, 0, 28, 1));
        assert_eq!(b.ttft_ms.as_ref().unwrap().n, 28);
        assert!(b.ttft_ms.as_ref().unwrap().max < 200.0);
        assert_eq!(c.prompt_tokens.as_ref().unwrap().mean, 500.0);
        let ttft = judge(&samples, &settings, |s| s.ttft_ms);
        assert!(ttft.gate_failed(), "{ttft:?}");
        // The same numbers on both sides: no verdict against it.
        let same: Vec<PromptSample> = samples
            .iter()
            .map(|s| PromptSample {
                ttft_ms: Some(100.0 + (s.query % 7) as f64),
                error: None,
                ..s.clone()
            })
            .collect();
        assert!(!judge(&same, &settings, |s| s.ttft_ms).gate_failed());
        let strict = CompareSettings {
            min_samples: 29,
            ..settings
        };
        assert!(matches!(
            judge(&samples, &strict, |s| s.ttft_ms),
            GateRow::Insufficient {
                baseline: 28,
                candidate: 27
            }
        ));
    }
}
