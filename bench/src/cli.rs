//! Clap commands; the `mangaassist` binary mounts [`BenchCommand`] under `bench` and
//! [`WeeklyArgs`] under `report weekly`.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    time::Duration,
};

use crate::{
    BenchError,
    ceiling::{self, CeilingOptions},
    compare::{CompareSettings, compare_results},
    driver::{self, LoadMode, RunConfig, TokenSource},
    fake::{FakeConfig, FakeGateway},
    openai,
    prompt::{
        NO_RETRIEVAL, PromptGateConfig, TierChoice, normalize_endpoint, run_prompt_gate,
        write_prompt_gate,
    },
    queries::{MIN_QUERIES_PER_INTENT, QueryMix},
    sample::{Results, write_file},
    spike::{self, SpikeHost, SpikeSettings},
    summary::{fmt_ms, intent_stats, write_outputs},
};

/// What the binary knows that the commands need.
#[derive(Debug, Clone)]
pub struct BenchContext {
    /// `ws://127.0.0.1:8080/ws` from the config (`gateway.listen`).
    pub default_url: String,
    /// The key the gateway verifies tokens with (secret, issuer, audience); `None` = connect
    /// without a token.
    pub token_key: Option<mangaassist_auth::JwtKey>,
    /// The repository's `data/` directory (labelled intents).
    pub data_dir: PathBuf,
    /// The mesh runs the zero-latency model: add the per-stage overhead table.
    pub overhead: bool,
    /// gRPC endpoint of the generation daemon for `bench prompt`, e.g.
    /// `http://127.0.0.1:50065` (from `mesh.generation`); `--generation` overrides it.
    pub generation_endpoint: String,
    /// gRPC endpoint of the retrieval daemon `bench prompt` builds each query's context with
    /// (from `mesh.retrieval`); `--retrieval` overrides it. Empty or `none`: no retrieval,
    /// both arms get an empty context.
    pub retrieval_endpoint: String,
    /// gRPC endpoint of the precompute daemon for `bench release` (from `mesh.precompute`).
    pub precompute_endpoint: String,
    /// Admin-scoped service tokens for the daemons `bench prompt` calls, when the mesh has a
    /// service secret (`None`: calls carry no token).
    pub service_tokens: Option<std::sync::Arc<mangaassist_auth::ServiceTokens>>,
    /// The `mangaassist` binary, which `bench spike` starts as mesh and worker processes;
    /// `None` where the running binary cannot serve (then `bench spike` refuses).
    pub serve_exe: Option<PathBuf>,
    /// The `--config` file, handed to the processes `bench spike` starts.
    pub config_file: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCommand {
    /// Drive the gateway with virtual users and write results.json, summary.md and plots.
    // Boxed: the arguments are large, and enums embedding this one stay small.
    Run(Box<RunArgs>),
    /// Compare two results.json files; exit 1 when the gate fails, 2 on bad input.
    Compare(CompareArgs),
    /// Measure this client's own ceiling against a fake gateway that answers instantly.
    Ceiling(CeilingArgs),
    /// Re-render summary.md and the plots from an existing results.json.
    Render(RenderArgs),
    /// Benchmark a candidate system prompt against the active one on the generation daemon
    /// (registered inactive); exit 1 when it is significantly slower, 2 on bad input.
    // Boxed like `Run`: the arguments are large.
    Prompt(Box<PromptArgs>),
    /// The release spike on this machine: start the mesh as processes (daemons + gateways),
    /// hold many sessions, then step up an open-loop message rate until first-token p99 or
    /// errors give out; writes results.json and summary.md.
    // Boxed like `Run`: the arguments are large.
    Spike(Box<SpikeArgs>),
    /// One load-generator process of `bench spike` (started by it; commands on stdin).
    #[command(hide = true)]
    SpikeWorker,
    /// Drive an OpenAI-compatible `/chat/completions` endpoint closed-loop (streams with
    /// distinct prompts, each read to `[DONE]` and checked) and report TTFT percentiles and the
    /// requests per CPU-second of watched processes (scripts/bench-litellm.sh).
    OpenaiLoad(Box<OpenAiLoadArgs>),
    /// Serve a mock OpenAI upstream that streams N content deltas per answer with no delay.
    #[command(hide = true)]
    MockOpenai(MockOpenAiArgs),
    /// Open-loop load while stock flips: counts answers that present a sold-out product as
    /// available, and how long after the change (exit 1 when any comes after --bound).
    Freshness(Box<crate::freshness::FreshnessArgs>),
    /// Replay written multi-turn conversations (each its own session, a pause between turns)
    /// and report how many later turns were served pre-computed or cached, their first-token
    /// latency against live answers, and wrong served answers (exit 1 on any, or on errors).
    Conversations(Box<crate::conversations::ConversationsArgs>),
    /// Schedule a volume's release (pre-warmed at once), then let customers ask about it in
    /// their own words: how many were served from the pre-warmed answers, first-token
    /// latency against live, wrong answers (exit 1 on errors).
    Release(Box<crate::release::ReleaseArgs>),
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (e.g. 30s, 500ms, 2m)"))
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Gateway WebSocket URL [default: from gateway.listen, e.g. ws://127.0.0.1:8080/ws].
    #[arg(long)]
    pub url: Option<String>,
    /// Virtual users, each with its own connection, user id (bench-vu-<i>) and session.
    #[arg(long, short = 'u', default_value_t = 4)]
    pub vus: usize,
    /// Open loop: Poisson arrivals at this many messages per second (default: closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: answers in flight at most (arrivals beyond are dropped and counted)
    /// [default: 4 per virtual user].
    #[arg(long, requires = "rate")]
    pub max_in_flight: Option<usize>,
    /// Closed loop: pause after each answer before the next message.
    #[arg(long, default_value = "0s", value_parser = parse_duration, conflicts_with = "rate")]
    pub think: Duration,
    /// Messages to send in total [default: 50 per intent when --duration is not given].
    #[arg(long, short = 'n')]
    pub messages: Option<u64>,
    /// Stop sending after this long (with --messages: whichever comes first).
    #[arg(long, short = 'd', value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Only these intents (comma-separated), e.g. greeting,faq.
    #[arg(long, value_delimiter = ',')]
    pub intents: Vec<String>,
    /// Storefront for every connection (store_id), e.g. comics_us.
    #[arg(long)]
    pub store: Option<String>,
    /// Make every text unique so the exact-match cache misses (semantic hits may still happen).
    #[arg(long)]
    pub unique: bool,
    /// Start a new conversation after about this many messages per virtual user (0: one
    /// session per virtual user for the whole run). Long sessions make history reads grow.
    #[arg(long, default_value_t = 0)]
    pub turns_per_session: u64,
    /// First messages of each intent flagged as warm-up and excluded from statistics.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// A message without `done` after this long is recorded as a `timeout` error.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Name of the run (in results and the default output directory).
    #[arg(long, default_value = "run")]
    pub label: String,
    /// Output directory [default: target/bench/<label>].
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Use this token for every virtual user instead of minting one per user.
    #[arg(long, env = "MANGAASSIST_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seed for the question order and open-loop arrivals.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the per-stage overhead table (the mesh runs the zero-latency model).
    #[arg(long)]
    pub overhead: bool,
    /// Directory holding intents/train.jsonl and intents/heldout.jsonl [default: data/].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SpikeArgs {
    /// Concurrent sessions to open and hold, each its own user [default: 25000; --quick: 200].
    #[arg(long)]
    pub sessions: Option<usize>,
    /// Gateway processes, each on its own port, sharing one daemons process over gRPC.
    #[arg(long, default_value_t = 2)]
    pub gateways: usize,
    /// How long the sessions are held idle before the first step [default: 60s; --quick: 2s].
    #[arg(long, value_parser = parse_duration)]
    pub hold: Option<Duration>,
    /// Offered message rates of the steps, messages/s
    /// [default: 100,250,500,1000,1500,2000,2500,3000; --quick: 20,50].
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["start", "factor"])]
    pub steps: Vec<f64>,
    /// Geometric steps instead: the first rate (with --factor) ...
    #[arg(long, requires = "factor")]
    pub start: Option<f64>,
    /// ... multiplied by this from one step to the next (> 1) ...
    #[arg(long, requires = "start")]
    pub factor: Option<f64>,
    /// ... up to this rate.
    #[arg(long, default_value_t = 20_000.0)]
    pub max_rate: f64,
    /// Length of each step [default: 20s; --quick: 3s].
    #[arg(long, value_parser = parse_duration)]
    pub step_duration: Option<Duration>,
    /// Stop after the first step whose first-token p99 exceeds this (it also stops on any
    /// error, timeout, lost or repeated chunk, or closed session).
    #[arg(long, default_value_t = 50.0)]
    pub stop_p99_ms: f64,
    /// Report degraded answers (a stage past its deadline, failed or behind an open circuit)
    /// without stopping on them.
    #[arg(long)]
    pub allow_degraded: bool,
    /// A message without `done` after this long counts as a timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Load-generator processes [default: enough for --sockets-per-worker].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Most sessions per load-generator process (each is a socket, under the open-files limit).
    #[arg(long, default_value_t = 9_000)]
    pub sockets_per_worker: usize,
    /// Ports from here: the six daemons, then each gateway's public and status port
    /// [default: free ports picked by the OS].
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Longest wait for each mesh process to answer /healthz.
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    pub ready_timeout: Duration,
    /// Small parameters for a smoke test: 200 sessions, 2 s hold, steps 20,50 of 3 s.
    #[arg(long)]
    pub quick: bool,
    /// Send the labelled questions as they are (default: unique texts, so the exact-match
    /// cache misses).
    #[arg(long)]
    pub repeat_texts: bool,
    /// Seed of the question order and the arrival times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory holding intents/train.jsonl and intents/heldout.jsonl [default: data/].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output directory for results.json, summary.md and the processes' logs
    /// [default: target/bench/spike].
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

impl SpikeArgs {
    /// The settings, with `--quick` filling what was not given.
    pub fn settings(&self) -> Result<SpikeSettings, BenchError> {
        let q = self.quick;
        let steps = match (self.start, self.factor) {
            (Some(start), Some(factor)) => {
                if !(start > 0.0 && factor > 1.0 && start.is_finite() && factor.is_finite()) {
                    return Err(BenchError::Usage(format!(
                        "--start must be positive and --factor above 1, got {start} and {factor}"
                    )));
                }
                let mut rates = Vec::new();
                let mut r = start;
                while r <= self.max_rate && rates.len() < 100 {
                    rates.push(r);
                    r *= factor;
                }
                rates
            }
            _ if !self.steps.is_empty() => self.steps.clone(),
            _ if q => vec![20.0, 50.0],
            _ => vec![100.0, 250.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0],
        };
        let or = |d: Option<Duration>, full: u64, quick: u64| {
            d.unwrap_or(Duration::from_secs(if q { quick } else { full }))
                .as_secs_f64()
        };
        Ok(SpikeSettings {
            sessions: self.sessions.unwrap_or(if q { 200 } else { 25_000 }),
            gateways: self.gateways,
            hold_s: or(self.hold, 60, 2),
            steps,
            step_duration_s: or(self.step_duration, 20, 3),
            stop_p99_ms: self.stop_p99_ms,
            stop_on_degraded: !self.allow_degraded,
            timeout_ms: self.timeout.as_millis() as u64,
            workers: self.workers,
            sockets_per_worker: self.sockets_per_worker,
            base_port: self.base_port,
            ready_timeout_s: self.ready_timeout.as_secs().max(1),
            unique: !self.repeat_texts,
            seed: self.seed,
            quick: q,
        })
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// results.json of the reference run.
    pub baseline: PathBuf,
    /// results.json of the run under test.
    pub current: PathBuf,
    #[command(flatten)]
    pub verdict: VerdictArgs,
    /// Also write the Markdown report to this file.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

/// How `bench compare` and `bench prompt` judge a latency difference; one set of options so
/// both gates take the same flags with the same defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct VerdictArgs {
    /// Fail on a significant p95 regression (of TTFT or e2e) above this fraction
    /// (0.15 = 15 %).
    #[arg(long, default_value_t = 0.15)]
    pub gate: f64,
    /// Significance level of the Mann-Whitney U test.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// |Cliff's delta| below this is negligible (never a regression).
    #[arg(long, default_value_t = 0.147)]
    pub effect_floor: f64,
    /// Fewer answered samples than this on either side: no verdict (for that row of
    /// `compare`; for `prompt`, none at all and exit 2).
    #[arg(long, default_value_t = 20)]
    pub min_samples: usize,
    /// Bootstrap resamples for the Δp95 confidence interval.
    #[arg(long, default_value_t = 2000)]
    pub resamples: usize,
}

impl VerdictArgs {
    pub fn settings(&self) -> CompareSettings {
        CompareSettings {
            gate: self.gate,
            alpha: self.alpha,
            effect_floor: self.effect_floor,
            min_samples: self.min_samples,
            bootstrap_resamples: self.resamples,
            seed: None,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct PromptArgs {
    /// Intent whose prompt changes, e.g. recommendation.
    #[arg(long)]
    pub intent: String,
    /// The candidate prompt file (may start with `#! style:` / `#! max_tokens:` front matter).
    #[arg(long)]
    pub candidate: PathBuf,
    /// Store whose prompt changes; the candidate is registered for it.
    #[arg(long, default_value = "manga_jp")]
    pub store: String,
    /// Compare against this registered version instead of the active one.
    #[arg(long)]
    pub baseline: Option<String>,
    /// Queries, i.e. calls per arm, warm-up included.
    #[arg(long, short = 'n', default_value_t = 60)]
    pub messages: usize,
    /// First queries excluded from the statistics (both arms).
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Model tier of every call; auto = the intent's tier in seed 001's routing table.
    #[arg(long, value_enum, default_value_t = TierChoice::Auto)]
    pub tier: TierChoice,
    #[command(flatten)]
    pub verdict: VerdictArgs,
    /// Queries in flight at once; each runs its two arms one after the other.
    #[arg(long, short = 'c', default_value_t = 4)]
    pub concurrency: usize,
    /// Deadline of one answer stream.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Seed of the question order and of the arm order per query.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory for prompt_gate.md and prompt_gate.json
    /// [default: target/bench/prompt-<intent>-<candidate version>].
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Generation daemon endpoint [default: from mesh.generation].
    #[arg(long)]
    pub generation: Option<String>,
    /// Retrieval daemon endpoint, or `none` for an empty context [default: from mesh.retrieval].
    #[arg(long)]
    pub retrieval: Option<String>,
    /// Directory holding intents/train.jsonl and intents/heldout.jsonl [default: data/].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CeilingArgs {
    /// Measure against this fake gateway (see --serve) instead of one in this process.
    #[arg(long, conflicts_with = "serve")]
    pub url: Option<String>,
    /// Only run the fake gateway on this address (e.g. 127.0.0.1:9901) until interrupted.
    #[arg(long)]
    pub serve: Option<String>,
    /// Virtual-user counts to try for throughput.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 16, 64, 256])]
    pub vus: Vec<usize>,
    /// Length of each throughput run.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Idle connections to try to hold (capped by the open-files limit).
    #[arg(long, default_value_t = 20_000)]
    pub connections: usize,
    /// Chunk frames per fake answer.
    #[arg(long, default_value_t = 8)]
    pub chunks: u32,
    /// Also write the Markdown report to this file.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct OpenAiLoadArgs {
    /// Base URL; requests go to `{url}/chat/completions`, e.g. http://127.0.0.1:8080/v1.
    #[arg(long)]
    pub url: String,
    /// `model` of every request.
    #[arg(long, default_value = "mangaassist")]
    pub model: String,
    /// Sent as `Authorization: Bearer`.
    #[arg(long, env = "BENCH_OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Concurrent streams, each on its own keep-alive connection (closed loop).
    #[arg(long, short = 'c', default_value_t = 1)]
    pub concurrency: usize,
    /// Measured requests (with --duration: at most this many; 0 = no cap).
    #[arg(long, short = 'n', default_value_t = 500)]
    pub requests: u64,
    /// End the measured window after this long.
    #[arg(long, short = 'd', value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Requests sent first, at the same concurrency, and left out of everything.
    #[arg(long, default_value_t = 50)]
    pub warmup: u64,
    /// Every stream must carry the mock's answer of this many tokens, in however many content
    /// deltas (0: do not check).
    #[arg(long, default_value_t = 50)]
    pub tokens: u32,
    /// A request without `[DONE]` after this long is an error.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// NAME=PID: read this process tree's CPU time around the measured window (repeatable).
    #[arg(long = "watch", value_parser = parse_watch)]
    pub watch: Vec<(String, u32)>,
    /// Kernel clock ticks per second of /proc CPU times (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    pub clk_tck: u64,
    /// Labelled questions (intents/*.jsonl) the prompts are made from [default: data/].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Makes prompts unique to this run [default: random].
    #[arg(long)]
    pub nonce: Option<String>,
    #[arg(long, default_value = "openai")]
    pub label: String,
    /// Write the report with every sample as JSON here.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

fn parse_watch(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected NAME=PID"))?;
    let pid = pid.parse().map_err(|e| format!("`{s}`: bad pid: {e}"))?;
    Ok((name.to_string(), pid))
}

#[derive(Debug, Clone, clap::Args)]
pub struct MockOpenAiArgs {
    /// Address to listen on (port 0: any; the address is printed as `listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Content deltas per streamed answer.
    #[arg(long, default_value_t = 50)]
    pub tokens: u32,
    /// `model` in the chunks.
    #[arg(long, default_value = "mock")]
    pub model: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// The results.json to render.
    pub results: PathBuf,
    /// Output directory [default: the results file's directory].
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Include the per-stage overhead table [default: as recorded in the run].
    #[arg(long)]
    pub overhead: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct WeeklyArgs {
    /// results.json files, gateway recordings (*.jsonl) or directories holding them.
    #[arg(long, short = 'i', required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Output directory for weekly.md and its charts.
    #[arg(long, short = 'o', default_value = "target/bench/weekly")]
    pub out: PathBuf,
}

fn out_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Runs one command; returns the process exit code.
pub async fn execute(cmd: BenchCommand, ctx: BenchContext) -> Result<i32, BenchError> {
    match cmd {
        BenchCommand::Run(args) => run_command(*args, &ctx).await.map(|()| 0),
        BenchCommand::Compare(args) => match compare_command(&args) {
            Ok(code) => Ok(code),
            // Exit 2 here, whatever the caller does with errors: 1 must mean "gate failed".
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "error: {e}");
                Ok(e.exit_code())
            }
        },
        BenchCommand::Ceiling(args) => ceiling_command(args).await.map(|()| 0),
        BenchCommand::Spike(args) => spike_command(&args, &ctx).await.map(|()| 0),
        BenchCommand::SpikeWorker => spike::worker::run().await.map(|()| 0),
        BenchCommand::OpenaiLoad(args) => openai_load_command(*args, &ctx).await.map(|()| 0),
        BenchCommand::MockOpenai(args) => mock_openai_command(args).await.map(|()| 0),
        BenchCommand::Render(args) => render_command(&args).map(|()| 0),
        BenchCommand::Freshness(args) => crate::freshness::run(&args, &ctx).await,
        BenchCommand::Conversations(args) => crate::conversations::run(&args, &ctx).await,
        BenchCommand::Release(args) => crate::release::run(&args, &ctx).await,
        // As for compare: every failure is 2, so 1 keeps meaning "the candidate is slower".
        BenchCommand::Prompt(args) => match prompt_command(&args, &ctx).await {
            Ok(code) => Ok(code),
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "error: {e}");
                Ok(e.exit_code())
            }
        },
    }
}

async fn prompt_command(args: &PromptArgs, ctx: &BenchContext) -> Result<i32, BenchError> {
    let intent = mangaassist_proto::v1::Intent::from_label(&args.intent).ok_or_else(|| {
        BenchError::Usage(format!(
            "unknown intent `{}` (one of {})",
            args.intent,
            mangaassist_proto::v1::Intent::ALL
                .map(mangaassist_proto::v1::Intent::label)
                .join(", ")
        ))
    })?;
    let candidate_text =
        std::fs::read_to_string(&args.candidate).map_err(|source| BenchError::Read {
            path: args.candidate.clone(),
            source,
        })?;
    let generation = args
        .generation
        .clone()
        .unwrap_or_else(|| ctx.generation_endpoint.clone());
    if generation.trim().is_empty() {
        return Err(BenchError::Usage(
            "no generation daemon endpoint: pass --generation URL".into(),
        ));
    }
    let retrieval = args
        .retrieval
        .clone()
        .unwrap_or_else(|| ctx.retrieval_endpoint.clone());
    let retrieval = match retrieval.trim() {
        "" | NO_RETRIEVAL => None,
        r => Some(normalize_endpoint(r)),
    };
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| ctx.data_dir.clone());
    let mix = QueryMix::load(
        &data_dir,
        std::slice::from_ref(&args.intent),
        MIN_QUERIES_PER_INTENT,
        args.seed,
    )?;
    let cfg = PromptGateConfig {
        generation: normalize_endpoint(generation.trim()),
        retrieval,
        store: args.store.clone(),
        intent,
        candidate_file: args.candidate.clone(),
        candidate_text,
        baseline_version: args.baseline.clone(),
        tier: args.tier.resolve(intent),
        messages: args.messages,
        warmup: args.warmup,
        concurrency: args.concurrency,
        timeout: args.timeout,
        seed: args.seed,
        settings: args.verdict.settings(),
        progress: !args.quiet,
        service_tokens: ctx.service_tokens.clone(),
    };
    let report = run_prompt_gate(&cfg, &mix).await?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("target/bench").join(format!(
            "prompt-{}-{}",
            report.intent, report.candidate.version
        ))
    });
    write_prompt_gate(&report, &out)?;
    out_line(&report.to_markdown());
    out_line(&format!(
        "(written to {})",
        out.join("prompt_gate.md").display()
    ));
    Ok(report.exit_code)
}

async fn spike_command(args: &SpikeArgs, ctx: &BenchContext) -> Result<(), BenchError> {
    let settings = args.settings()?;
    let exe = ctx.serve_exe.clone().ok_or_else(|| {
        BenchError::Usage(
            "bench spike starts the mesh from the `mangaassist` binary: run it as \
             `mangaassist bench spike`"
                .into(),
        )
    })?;
    let host = SpikeHost {
        exe,
        config_file: ctx.config_file.clone(),
        token_key: ctx.token_key.clone(),
        data_dir: args
            .data_dir
            .clone()
            .unwrap_or_else(|| ctx.data_dir.clone()),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/bench/spike"));
    // As typed, minus the path of the binary: the command others can rerun.
    let command = std::iter::once("mangaassist".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let report = spike::run(&settings, &host, &out, command).await?;
    out_line(&report.table());
    out_line(&format!("Stopped: {}", report.stop_reason));
    out_line(&format!(
        "(written to {} and {})",
        out.join("results.json").display(),
        out.join("summary.md").display()
    ));
    Ok(())
}

fn render_command(args: &RenderArgs) -> Result<(), BenchError> {
    let results = Results::load(&args.results)?;
    let out = args.out.clone().unwrap_or_else(|| {
        args.results
            .parent()
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf)
    });
    write_outputs(&results, &out, args.overhead || results.run.overhead)?;
    report_run(&results, &out);
    Ok(())
}

async fn run_command(args: RunArgs, ctx: &BenchContext) -> Result<(), BenchError> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| ctx.data_dir.clone());
    let mix = QueryMix::load(&data_dir, &args.intents, MIN_QUERIES_PER_INTENT, args.seed)?;
    let messages = match (args.messages, args.duration) {
        (None, None) => Some(50 * mix.intents().len() as u64),
        (m, _) => m,
    };
    let token = match (&args.token, &ctx.token_key) {
        (Some(t), _) => TokenSource::Fixed(t.clone()),
        (None, Some(key)) => TokenSource::Mint(key.clone()),
        (None, None) => TokenSource::None,
    };
    let overhead = args.overhead || ctx.overhead;
    let cfg = RunConfig {
        url: args.url.clone().unwrap_or_else(|| ctx.default_url.clone()),
        token,
        vus: args.vus,
        mode: match args.rate {
            Some(rate) => LoadMode::Open {
                rate,
                max_in_flight: args.max_in_flight.unwrap_or(args.vus * 4),
            },
            None => LoadMode::Closed { think: args.think },
        },
        messages,
        duration: args.duration,
        store: args.store.clone(),
        unique: args.unique,
        warmup_per_intent: args.warmup,
        timeout: args.timeout,
        label: args.label.clone(),
        seed: args.seed,
        progress: !args.quiet && std::io::stderr().is_terminal(),
        overhead,
        turns_per_session: args.turns_per_session,
    };
    let results = driver::run(&cfg, &mix).await?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/bench").join(&args.label));
    write_outputs(&results, &out, overhead)?;
    report_run(&results, &out);
    Ok(())
}

fn report_run(results: &Results, out: &std::path::Path) {
    let c = &results.counters;
    out_line(&format!(
        "{} sent, {} answered, {} errors, {} dropped in {:.1} s → {}",
        c.sent,
        c.answered,
        c.errors,
        c.dropped,
        results.wall_s,
        out.display()
    ));
    for s in intent_stats(results) {
        out_line(&format!(
            "  {:<16} n={:<5} errors={:<4} ttft p50={} p95={}  e2e p50={} p95={}",
            s.intent,
            s.n,
            s.errors,
            s.ttft.as_ref().map_or("–".into(), |x| fmt_ms(x.p50)),
            s.ttft.as_ref().map_or("–".into(), |x| fmt_ms(x.p95)),
            s.e2e.as_ref().map_or("–".into(), |x| fmt_ms(x.p50)),
            s.e2e.as_ref().map_or("–".into(), |x| fmt_ms(x.p95)),
        ));
    }
}

fn compare_command(args: &CompareArgs) -> Result<i32, BenchError> {
    let settings = args.verdict.settings();
    settings.validate()?;
    let baseline = Results::load(&args.baseline)?;
    let current = Results::load(&args.current)?;
    let report = compare_results(&baseline, &current, &settings)?;
    let md = report.to_markdown();
    if let Some(out) = &args.out {
        write_file(out, md.as_bytes())?;
    }
    out_line(&md);
    Ok(report.exit_code())
}

async fn openai_load_command(args: OpenAiLoadArgs, ctx: &BenchContext) -> Result<(), BenchError> {
    let data_dir = args.data_dir.unwrap_or_else(|| ctx.data_dir.clone());
    let mix = QueryMix::load(&data_dir, &[], MIN_QUERIES_PER_INTENT, 7)?;
    let nonce = args
        .nonce
        .unwrap_or_else(|| format!("{:08x}", rand::random::<u32>()));
    let report = openai::run_load(openai::LoadConfig {
        base_url: args.url,
        model: args.model,
        api_key: args.api_key.filter(|k| !k.is_empty()),
        concurrency: args.concurrency,
        warmup: args.warmup,
        requests: args.requests,
        duration: args.duration,
        tokens: args.tokens,
        timeout: args.timeout,
        watch: args.watch,
        clk_tck: args.clk_tck,
        mix,
        nonce,
        label: args.label,
    })
    .await?;
    if let Some(path) = &args.out {
        openai::write_report(path, &report)?;
    }
    let _ = writeln!(std::io::stdout(), "{}", openai::describe(&report));
    if report.ok == 0 {
        return Err(BenchError::Usage("no request succeeded".into()));
    }
    Ok(())
}

async fn mock_openai_command(args: MockOpenAiArgs) -> Result<(), BenchError> {
    let (listener, addr) = openai::bind(&args.listen)
        .await
        .map_err(|e| BenchError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let _ = writeln!(std::io::stdout(), "listening on {addr}");
    let _ = std::io::stdout().flush();
    tokio::select! {
        r = openai::serve_mock(listener, args.tokens, &args.model) => r?,
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

async fn ceiling_command(args: CeilingArgs) -> Result<(), BenchError> {
    if let Some(addr) = &args.serve {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| BenchError::Usage(format!("cannot listen on {addr}: {e}")))?;
        let fake = FakeGateway::serve(
            listener,
            FakeConfig {
                chunks: args.chunks,
                ..FakeConfig::default()
            },
        );
        let _ = writeln!(
            std::io::stderr(),
            "fake gateway on {} (Ctrl-C to stop)",
            fake.url()
        );
        tokio::select! {
            () = fake.wait() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        return Ok(());
    }
    let report = ceiling::measure(&CeilingOptions {
        url: args.url.clone(),
        vus: args.vus.clone(),
        duration: args.duration,
        connections: args.connections,
        chunks: args.chunks,
    })
    .await?;
    let md = report.to_markdown();
    if let Some(out) = &args.out {
        write_file(out, md.as_bytes())?;
    }
    out_line(&md);
    Ok(())
}

/// `report weekly`.
pub async fn weekly(args: WeeklyArgs) -> Result<(), BenchError> {
    let written = crate::weekly::write_weekly(&args.input, &args.out)?;
    for p in written {
        out_line(&p.display().to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(clap::Subcommand)]
    enum Top {
        #[command(subcommand)]
        Bench(BenchCommand),
        Weekly(WeeklyArgs),
    }

    #[test]
    fn commands_parse() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "x",
            "bench",
            "run",
            "--vus",
            "8",
            "--rate",
            "20",
            "--duration",
            "1m",
            "--intents",
            "greeting,faq",
            "--unique",
            "--label",
            "l",
        ])
        .unwrap();
        let Top::Bench(BenchCommand::Run(args)) = cli.command else {
            panic!("not run");
        };
        assert_eq!(args.intents, ["greeting", "faq"]);
        assert_eq!(args.duration, Some(Duration::from_secs(60)));
        assert_eq!(args.rate, Some(20.0));
        assert!(args.unique);
        // Think time is closed-loop only.
        assert!(
            Cli::try_parse_from(["x", "bench", "run", "--rate", "5", "--think", "1s"]).is_err()
        );
        let cli =
            Cli::try_parse_from(["x", "bench", "compare", "a.json", "b.json", "--gate", "0.2"])
                .unwrap();
        assert!(
            matches!(cli.command, Top::Bench(BenchCommand::Compare(CompareArgs { verdict: VerdictArgs { gate, .. }, .. })) if gate == 0.2)
        );
        assert!(
            Cli::try_parse_from(["x", "weekly"]).is_err(),
            "--input is required"
        );
        let cli = Cli::try_parse_from([
            "x",
            "bench",
            "prompt",
            "--intent",
            "recommendation",
            "--candidate",
            "rec.txt",
            "--retrieval",
            "none",
        ])
        .unwrap();
        let Top::Bench(BenchCommand::Prompt(args)) = cli.command else {
            panic!("not prompt");
        };
        assert_eq!(
            (
                args.store.as_str(),
                args.messages,
                args.warmup,
                args.verdict.gate
            ),
            ("manga_jp", 60, 5, 0.15)
        );
        assert_eq!(args.tier, TierChoice::Auto);
        assert_eq!(args.retrieval.as_deref(), Some("none"));
        assert!(
            Cli::try_parse_from(["x", "bench", "prompt", "--intent", "faq"]).is_err(),
            "--candidate is required"
        );
        assert!(
            Cli::try_parse_from([
                "x",
                "bench",
                "prompt",
                "--intent",
                "faq",
                "--candidate",
                "f",
                "--tier",
                "huge"
            ])
            .is_err()
        );
    }
}
