//! Command-line interface: parsing, config loading, dispatch.

use std::{io::Write, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mangaassist::{
    chat::{self, ChatOptions},
    mesh::{self, Role},
};
use mangaassist_config::{Config, FaultSpec, LatencyProfile, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "mangaassist",
    version,
    about = "MangaAssist mesh: an AI shopping assistant for a manga store that feels instant"
)]
pub struct Cli {
    /// TOML config file (defaults are documented in `mangaassist config print`).
    #[arg(long, short, global = true, env = "MANGAASSIST_CONFIG")]
    config: Option<PathBuf>,
    /// Log format: text or json (overrides telemetry.log_format).
    #[arg(
        long,
        global = true,
        value_parser = clap::builder::TypedValueParser::try_map(
            clap::builder::PossibleValuesParser::new(LogFormat::ALL.iter().map(|f| f.as_str())),
            |s| s.parse::<LogFormat>(),
        ),
    )]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info,mangaassist_gateway=debug` (overrides telemetry.log_level).
    #[arg(long, global = true, env = "MANGAASSIST_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every daemon and the gateway in this process, each on its own port.
    Up {
        /// Inject a fault (repeatable): retrieval=hang, intent=error:1.0, generation=latency:300ms,
        /// retrieval.Retrieve=hang.
        #[arg(long = "fault", value_parser = parse_fault)]
        faults: Vec<FaultSpec>,
    },
    /// Run one daemon, or several in one process (`serve gateway intent cache`: the gateway
    /// calls the daemons it runs with in process); other peers are reached at the configured
    /// endpoints.
    Serve {
        /// intent, retrieval, memory, cache, generation, precompute or gateway (one or more).
        #[arg(value_parser = parse_role, required = true, num_args = 1..)]
        daemons: Vec<Role>,
        /// Inject a fault (repeatable), as for `up`.
        #[arg(long = "fault", value_parser = parse_fault)]
        faults: Vec<FaultSpec>,
    },
    /// Ask the gateway one question and stream the answer.
    Chat {
        /// The message.
        text: String,
        /// Conversation id (keeps history between calls).
        #[arg(long, short)]
        session: Option<String>,
        /// Storefront: manga_jp or comics_us.
        #[arg(long)]
        store: Option<String>,
        /// User id (demo users live in data/users/users.jsonl).
        #[arg(long)]
        user: Option<String>,
        /// Gateway WebSocket URL (default: from gateway.listen).
        #[arg(long)]
        url: Option<String>,
        /// JWT to connect with (default: one issued for --user from the configured secret).
        #[arg(long, env = "MANGAASSIST_TOKEN")]
        token: Option<String>,
        /// Give up after this long.
        #[arg(long, default_value = "30s", value_parser = humantime_duration)]
        timeout: Duration,
    },
    /// Show or check the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Measure a running gateway: time to first chunk and to done, cache misses vs hits.
    Probe {
        /// Distinct questions (each is asked twice: miss, then hit where cacheable).
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// Gateway WebSocket URL (default: from gateway.listen).
        #[arg(long)]
        url: Option<String>,
    },
    /// Compute and cache the catalog and training vectors (first start is then fast).
    Prepare,
    /// Benchmarks: load over real WebSockets, statistical compare gate, prompt gate, ceiling.
    Bench {
        /// Start the whole mesh in this process for the run (ports chosen by the OS, fresh
        /// state, no rate limits, no precompute warm-up); with `run --overhead` it
        /// also uses the zero-latency model, so the report is the mesh's own cost.
        #[arg(long)]
        local_mesh: bool,
        /// With --local-mesh: inject a fault (repeatable), as for `up`.
        #[arg(long = "fault", value_parser = parse_fault, requires = "local_mesh")]
        faults: Vec<FaultSpec>,
        #[command(subcommand)]
        cmd: mangaassist_bench::BenchCommand,
    },
    /// Rehearse faults at load: every daemon its own process, hundreds of conversations, one
    /// fault at a time (docs/measured/chaos.md).
    Chaos {
        #[command(subcommand)]
        action: ChaosAction,
    },
    /// Reports from recorded data.
    Report {
        #[command(subcommand)]
        action: ReportAction,
    },
    /// Manage the generation daemon's system prompts while it runs (no redeploy).
    Prompt {
        #[command(subcommand)]
        action: PromptAction,
        /// Generation daemon endpoint (default: mesh.generation.endpoint).
        #[arg(long, global = true)]
        endpoint: Option<String>,
    },
    /// Issue a gateway token (HS256 JWT) for a user, or with `--service` a service token for
    /// calling one daemon directly (grpcurl -H "authorization: Bearer $(mangaassist token
    /// --service memory)"), signed with the mesh service secret and valid for an hour.
    #[command(group(clap::ArgGroup::new("who").required(true).args(["user", "service"])))]
    Token {
        /// User id (the token's `sub`).
        #[arg(long, short)]
        user: Option<String>,
        /// Daemon the service token is for: intent, retrieval, memory, cache, generation or
        /// precompute.
        #[arg(long, value_parser = ["intent", "retrieval", "memory", "cache", "generation", "precompute"])]
        service: Option<String>,
        /// Scope the service token `admin` (needed to change prompts).
        #[arg(long, requires = "service")]
        admin: bool,
    },
    /// Change or show live stock and prices (the retrieval daemon's InventoryService). Every
    /// daemon that uses stock reacts: search results, cache entries, cached-answer checks.
    Stock {
        #[command(subcommand)]
        action: StockAction,
        /// Retrieval daemon endpoint (default: mesh.retrieval.endpoint).
        #[arg(long, global = true)]
        endpoint: Option<String>,
    },
    /// Turn a store's flash-sale mode on or off: pre-computed recommendations are not served
    /// and new pre-computed answers live at most a minute while it is on.
    FlashSale {
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[arg(long)]
        store: String,
        /// Retrieval daemon endpoint (default: mesh.retrieval.endpoint).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Announce a volume's release time: precompute answers the questions customers will ask
    /// about it `precompute.release_lead_seconds` (an hour) before it goes on sale.
    Release {
        #[command(subcommand)]
        action: ReleaseAction,
        /// Precompute daemon endpoint (default: mesh.precompute.endpoint).
        #[arg(long, global = true)]
        endpoint: Option<String>,
    },
    /// Model quality on labelled files: retrieval (hit@k, recall@k, MRR per query kind) or
    /// the intent classifier (held-out accuracy).
    Eval {
        #[command(subcommand)]
        what: EvalWhat,
    },
}

#[derive(Debug, Subcommand)]
enum StockAction {
    /// Set one product's quantity (and price).
    Set {
        #[arg(long)]
        store: String,
        #[arg(long)]
        product: String,
        #[arg(long)]
        quantity: u32,
        /// Price in yen (default: unchanged).
        #[arg(long)]
        price: Option<u32>,
    },
    /// Apply a bulk feed: JSONL lines of {"store_id", "product_id", "quantity",
    /// "price_yen"?, "release_at"?}. A bad line or unknown product fails the file (file:line),
    /// nothing applied. A line with `release_at` (RFC 3339, UTC) also schedules that volume's
    /// release with precompute (mesh.precompute.endpoint), which pre-warms its answers.
    Import { file: PathBuf },
    /// Show the live stock of products.
    Get {
        #[arg(long)]
        store: String,
        #[arg(required = true)]
        products: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ReleaseAction {
    /// Schedule (or move) a release.
    Schedule {
        #[arg(long)]
        store: String,
        #[arg(long)]
        product: String,
        /// When it goes on sale, RFC 3339 in UTC (2027-01-05T15:00:00Z).
        #[arg(long)]
        at: Option<String>,
        /// Or how long from now (90m, 2h).
        #[arg(long = "in")]
        in_: Option<String>,
    },
    /// Show the scheduled releases and whether they are pre-warmed.
    List {
        #[arg(long)]
        store: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum EvalWhat {
    /// Retrieval quality per query kind through the retrieval daemon's own search.
    Retrieval {
        #[arg(long, default_value = "data/eval/retrieval.jsonl")]
        file: PathBuf,
        /// Embedder to evaluate (default: embedding.backend): static, minilm, hashed, auto.
        #[arg(long)]
        embedder: Option<String>,
        /// Results that count (hit@k, recall@k).
        #[arg(long, default_value_t = 5)]
        k: usize,
    },
    /// Intent classifier accuracy per intent (held-out split by default).
    Intent {
        #[arg(long, default_value = "data/intents/heldout.jsonl")]
        file: PathBuf,
        /// Embedder the classifier uses (default: embedding.backend).
        #[arg(long)]
        embedder: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ChaosAction {
    /// The fault matrix: each daemon killed, hung, erroring and slowed; 5 % loss, 50±20 ms
    /// jitter and a 10 s partition between the gateway and each daemon (root: a private
    /// network namespace with tc netem); the gateway rolled under 1,000 streams; Redis
    /// restarted; the memory file locked and its disk full; 1,000 answers cut mid-stream and
    /// resumed. Writes DIR/results.json and DIR/results.md; exits 1 when a target is missed.
    Run {
        /// A representative subset (one fault of each kind, shorter windows): ~3 minutes.
        #[arg(long)]
        quick: bool,
        #[arg(long, default_value = "target/chaos")]
        out: PathBuf,
        /// Conversations held throughout.
        #[arg(long, default_value_t = 200)]
        conversations: usize,
        /// Answers streaming when the gateway is rolled (default: 1,000; 300 with --quick).
        #[arg(long)]
        roll_streams: Option<usize>,
        /// Answers cut mid-stream (default: 1,000; 200 with --quick).
        #[arg(long)]
        disconnects: Option<u64>,
        /// How long each fault stays in force (default 10s; 4s with --quick).
        #[arg(long, value_parser = humantime_duration)]
        window: Option<Duration>,
        /// Only the faults whose name contains one of these words (repeatable).
        #[arg(long)]
        only: Vec<String>,
        /// Fail when a fault cannot run here (network faults need root and nftables) instead
        /// of reporting it skipped; CI runs with it.
        #[arg(long)]
        strict: bool,
    },
    /// Hold a steady load with nothing broken and watch memory, descriptors and the
    /// first-token tail for drift. Writes DIR/soak.json and DIR/soak.md.
    Soak {
        #[arg(long, default_value = "30")]
        minutes: f64,
        #[arg(long, default_value_t = 400)]
        conversations: usize,
        #[arg(long, default_value = "target/chaos")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ReportAction {
    /// p50/p95/p99 trends per day and stage budget compliance, as Markdown with SVG charts,
    /// from bench results and gateway recordings (`gateway.record_path`).
    Weekly(mangaassist_bench::WeeklyArgs),
}

#[derive(Debug, Subcommand)]
enum PromptAction {
    /// Every prompt version per store and intent, the active one marked.
    List,
    /// Register a new version from a file (inactive unless --activate).
    Put {
        #[command(flatten)]
        slot: PromptSlot,
        #[arg(long)]
        version: String,
        file: PathBuf,
        #[arg(long)]
        activate: bool,
    },
    /// Make a version the active one for new answers.
    Activate {
        #[command(flatten)]
        slot: PromptSlot,
        #[arg(long)]
        version: String,
    },
    /// Re-activate the version that was active before the last activation.
    Rollback {
        #[command(flatten)]
        slot: PromptSlot,
    },
}

/// The store and intent whose prompt a command changes.
#[derive(Debug, clap::Args)]
struct PromptSlot {
    #[arg(long, default_value = "default")]
    store: String,
    #[arg(long)]
    intent: String,
}

fn intent_arg(label: &str) -> anyhow::Result<mangaassist_proto::v1::Intent> {
    mangaassist_proto::v1::Intent::from_label(label).with_context(|| {
        format!(
            "unknown intent `{label}` (one of {})",
            mangaassist_config::INTENTS.join(", ")
        )
    })
}

fn show_prompt(p: &mangaassist_proto::v1::PromptInfo) -> String {
    let intent = mangaassist_proto::v1::Intent::try_from(p.intent)
        .map(|i| i.label())
        .unwrap_or("?");
    format!(
        "{:<10} {:<15} {:<12} {:<6} {:>5} tokens  max {:>4}  {:<8}{}",
        p.store_id,
        intent,
        p.version,
        if p.active { "active" } else { "" },
        p.tokens,
        p.max_tokens,
        p.style,
        if p.rollback_to.is_empty() {
            String::new()
        } else {
            format!("  (rollback → {})", p.rollback_to)
        }
    )
}

/// The CLI's service-token minter (`admin` scoped when asked), `None` without a service secret.
fn cli_service_tokens(
    config: &Config,
    admin: bool,
) -> anyhow::Result<Option<mangaassist_auth::ServiceTokens>> {
    let Some(secret) = mangaassist_auth::resolve_service_secret(
        &config.mesh.service_secret,
        &config.mesh.service_secret_file,
    )?
    else {
        return Ok(None);
    };
    let tokens = mangaassist_auth::ServiceTokens::new(&secret, "cli")?;
    Ok(Some(if admin { tokens.admin() } else { tokens }))
}

/// The retrieval daemon's inventory service, with an admin-scoped token when the mesh has a
/// service secret.
fn inventory_client(
    config: &Config,
    endpoint: Option<&str>,
) -> anyhow::Result<mangaassist_client::InventoryClient> {
    let endpoint = endpoint.unwrap_or(&config.mesh.retrieval.endpoint);
    Ok(mangaassist_client::InventoryClient::connect_with(
        endpoint,
        cli_service_tokens(config, true)?.map(std::sync::Arc::new),
    )?)
}

/// Admin-scoped, like [`inventory_client`]: announcing a release is an operator's change.
fn precompute_client(
    config: &Config,
    endpoint: Option<&str>,
) -> anyhow::Result<mangaassist_client::PrecomputeClient> {
    let endpoint = endpoint.unwrap_or(&config.mesh.precompute.endpoint);
    Ok(mangaassist_client::PrecomputeClient::connect_with(
        endpoint,
        cli_service_tokens(config, true)?.map(std::sync::Arc::new),
    )?)
}

async fn prompt_command(
    config: &Config,
    action: &PromptAction,
    endpoint: Option<&str>,
) -> anyhow::Result<()> {
    let endpoint = endpoint.unwrap_or(&config.mesh.generation.endpoint);
    let c = mangaassist_client::GenerationClient::connect_with(
        endpoint,
        cli_service_tokens(config, true)?.map(std::sync::Arc::new),
    )?;
    let dl = Duration::from_secs(10);
    let mut out = std::io::stdout();
    let unreachable = || format!("generation daemon at {endpoint}");
    let p = match action {
        PromptAction::List => {
            for p in c.list_prompts(dl).await.with_context(unreachable)?.prompts {
                writeln!(out, "{}", show_prompt(&p))?;
            }
            return Ok(());
        }
        PromptAction::Put {
            slot,
            version,
            file,
            activate,
        } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read prompt file {}", file.display()))?;
            let req = mangaassist_proto::v1::PutPromptRequest {
                store_id: slot.store.clone(),
                intent: intent_arg(&slot.intent)? as i32,
                version: version.clone(),
                text,
                activate: *activate,
            };
            c.put_prompt(req, dl).await
        }
        PromptAction::Activate { slot, version } => {
            let req = mangaassist_proto::v1::ActivatePromptRequest {
                store_id: slot.store.clone(),
                intent: intent_arg(&slot.intent)? as i32,
                version: version.clone(),
            };
            c.activate_prompt(req, dl).await
        }
        PromptAction::Rollback { slot } => {
            let req = mangaassist_proto::v1::RollbackPromptRequest {
                store_id: slot.store.clone(),
                intent: intent_arg(&slot.intent)? as i32,
            };
            c.rollback_prompt(req, dl).await
        }
    }
    .with_context(unreachable)?;
    writeln!(out, "{}", show_prompt(&p))?;
    Ok(())
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (defaults ← file ← MANGAASSIST_* env) as TOML.
    Print,
    /// Validate the configuration and exit.
    Check,
}

fn parse_fault(s: &str) -> Result<FaultSpec, String> {
    s.parse()
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else {
        (s, 1000)
    };
    num.parse::<u64>()
        .map(|n| Duration::from_millis(n * mul))
        .map_err(|_| format!("`{s}` is not a duration like 30s or 500ms"))
}

async fn chaos_command(config: &Config, action: &ChaosAction) -> anyhow::Result<()> {
    // As root the run moves into its own network and mount namespaces first, so netem and
    // the small disk touch nothing outside it.
    // A terminal's Ctrl-C reaches both this process and the re-run inside the namespace;
    // this one must outlive it (the re-run heals and stops its mesh, then exits).
    let _sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    if let Some(status) = mangaassist_chaos::net::reexec_in_private_namespace() {
        let status = status.context("cannot start the rehearsal in a private namespace")?;
        std::process::exit(status.code().unwrap_or(1));
    }
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let command = std::iter::once("mangaassist".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    match action {
        ChaosAction::Run {
            quick,
            out,
            conversations,
            roll_streams,
            disconnects,
            window,
            only,
            strict,
        } => {
            let mut s =
                mangaassist_chaos::Settings::new(*quick, out.clone(), exe, config.data.dir.clone());
            s.conversations = *conversations;
            if let Some(r) = roll_streams {
                s.roll_streams = *r;
            }
            if let Some(d) = disconnects {
                s.disconnects = *d;
            }
            if let Some(w) = window {
                s.window = *w;
            }
            s.only = only.clone();
            s.strict = *strict;
            s.command = command;
            let report = mangaassist_chaos::run(&s).await?;
            let mut out_text = report.table();
            out_text.push_str(&format!(
                "\nresults: {}/results.json and results.md\n",
                out.display()
            ));
            std::io::stdout().write_all(out_text.as_bytes())?;
            if !report.passed {
                anyhow::bail!("the rehearsal missed targets (see the verdict column)");
            }
            Ok(())
        }
        ChaosAction::Soak {
            minutes,
            conversations,
            out,
        } => {
            if !(minutes.is_finite() && *minutes > 0.0 && *minutes <= 24.0 * 60.0) {
                anyhow::bail!("--minutes must be within (0, 1440]");
            }
            let s = mangaassist_chaos::SoakSettings {
                out: out.clone(),
                duration: Duration::from_secs_f64(minutes * 60.0),
                conversations: *conversations,
                think: (Duration::from_millis(500), Duration::from_millis(3_000)),
                exe,
                data_dir: config.data.dir.clone(),
                redis_bin: std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()),
                command,
            };
            let report = mangaassist_chaos::soak(&s).await?;
            std::io::stdout().write_all(report.to_markdown().as_bytes())?;
            if !report.passed() {
                anyhow::bail!("the soak missed targets");
            }
            Ok(())
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = mangaassist_config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(f) = &cli.log_format {
        config.telemetry.log_format = *f;
    }
    Ok(config)
}

/// `service` names the process in exported traces (daemon spans are exported per daemon).
fn init_logs(cli: &Cli, config: &Config, service: &str) -> anyhow::Result<()> {
    let filter = cli.log.clone().or_else(|| std::env::var("RUST_LOG").ok());
    mangaassist_telemetry::init(&config.telemetry, filter.as_deref(), service)?;
    Ok(())
}

pub async fn run(mut cli: Cli) -> anyhow::Result<()> {
    let mut config = load_config(&cli)?;
    // Bench commands are handed over by value; `cli` keeps its global options.
    match std::mem::replace(&mut cli.command, Command::Prepare) {
        Command::Bench {
            local_mesh,
            faults,
            cmd,
        } => {
            config.faults.extend(faults);
            let code = bench_command(&cli, config, local_mesh, cmd).await?;
            if code != 0 {
                std::process::exit(code);
            }
            return Ok(());
        }
        other => cli.command = other,
    }
    match &cli.command {
        Command::Config { action } => {
            match action {
                ConfigAction::Print => {
                    let redacted = config.redacted().context("cannot print config")?;
                    let text = toml::to_string_pretty(&redacted).context("cannot print config")?;
                    std::io::stdout().write_all(text.as_bytes())?;
                }
                ConfigAction::Check => {
                    writeln!(std::io::stderr(), "config ok")?;
                }
            }
            Ok(())
        }
        Command::Chat {
            text,
            session,
            store,
            user,
            url,
            token,
            timeout,
        } => {
            let url = url
                .clone()
                .unwrap_or_else(|| format!("ws://{}/ws", config.gateway.listen));
            let token = match token {
                Some(t) => Some(t.clone()),
                None if config.gateway.auth.required => {
                    let u = user
                        .clone()
                        .unwrap_or_else(|| config.gateway.default_user.clone());
                    Some(mangaassist_gateway::issue_token(&config, &u)?)
                }
                None => None,
            };
            chat::run(
                ChatOptions {
                    url,
                    session: session.clone(),
                    store: store.clone(),
                    user: user.clone(),
                    token,
                    timeout: *timeout,
                },
                text,
            )
            .await
        }
        Command::Probe { messages, url } => {
            let url = url
                .clone()
                .unwrap_or_else(|| format!("ws://{}/ws", config.gateway.listen));
            let report = mangaassist::probe::run(&url, &config.data.dir, *messages, |u| {
                Ok(mangaassist_gateway::issue_token(&config, u)?)
            })
            .await?;
            writeln!(std::io::stdout(), "{report}")?;
            Ok(())
        }
        Command::Report {
            action: ReportAction::Weekly(args),
        } => {
            mangaassist_bench::weekly(args.clone()).await?;
            Ok(())
        }
        Command::Bench { .. } => Ok(()),
        Command::Chaos { action } => chaos_command(&config, action).await,
        Command::Prompt { action, endpoint } => {
            prompt_command(&config, action, endpoint.as_deref()).await
        }
        Command::Stock { action, endpoint } => {
            let client = inventory_client(&config, endpoint.as_deref())?;
            let out = match action {
                StockAction::Set {
                    store,
                    product,
                    quantity,
                    price,
                } => mangaassist::stock::set(&client, store, product, *quantity, *price).await?,
                StockAction::Import { file } => {
                    let text = std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let changes = mangaassist::stock::parse_feed(file, &text)?;
                    let releases: Vec<(String, String, i64)> = changes
                        .iter()
                        .filter_map(|c| {
                            c.release_at_ms
                                .map(|t| (c.store_id.clone(), c.change.product_id.clone(), t))
                        })
                        .collect();
                    let n = mangaassist::stock::import(&client, file, changes).await?;
                    let mut out = format!("{n} change(s) applied from {}", file.display());
                    if !releases.is_empty() {
                        // New volumes in the feed: precompute pre-warms their answers.
                        let precompute = precompute_client(&config, None)?;
                        for (store, product, at) in &releases {
                            let line = mangaassist::release::schedule(
                                &precompute,
                                store,
                                product,
                                *at,
                            )
                            .await
                            .with_context(|| {
                                format!("stock applied; scheduling the release of {product} failed")
                            })?;
                            out.push('\n');
                            out.push_str(line.lines().next().unwrap_or_default());
                        }
                    }
                    out
                }
                StockAction::Get { store, products } => {
                    mangaassist::stock::get(&client, store, products).await?
                }
            };
            writeln!(std::io::stdout(), "{out}")?;
            Ok(())
        }
        Command::Release { action, endpoint } => {
            let client = precompute_client(&config, endpoint.as_deref())?;
            let out = match action {
                ReleaseAction::Schedule {
                    store,
                    product,
                    at,
                    in_,
                } => {
                    let t = mangaassist::release::release_time(at.as_deref(), in_.as_deref())?;
                    mangaassist::release::schedule(&client, store, product, t).await?
                }
                ReleaseAction::List { store } => {
                    mangaassist::release::list(&client, store.as_deref()).await?
                }
            };
            writeln!(std::io::stdout(), "{out}")?;
            Ok(())
        }
        Command::FlashSale {
            state,
            store,
            endpoint,
        } => {
            let client = inventory_client(&config, endpoint.as_deref())?;
            let out = mangaassist::stock::flash_sale(&client, store, state == "on").await?;
            writeln!(std::io::stdout(), "{out}")?;
            Ok(())
        }
        Command::Token {
            user,
            service,
            admin,
        } => {
            let token = match (user, service) {
                (Some(user), _) => mangaassist_gateway::issue_token(&config, user)?,
                (None, Some(daemon)) => {
                    let Some(tokens) = cli_service_tokens(&config, *admin)? else {
                        anyhow::bail!(
                            "the mesh has no service secret (mesh.service_secret or \
                             mesh.service_secret_file), so its daemons take calls without a token"
                        );
                    };
                    tokens.mint(daemon, std::time::SystemTime::now())?
                }
                (None, None) => anyhow::bail!("give --user or --service"),
            };
            writeln!(std::io::stdout(), "{token}")?;
            Ok(())
        }
        Command::Prepare => {
            init_logs(&cli, &config, "mangaassist")?;
            let started = std::time::Instant::now();
            let embedder = mesh::load_embedder(&config).await?;
            mangaassist_intent::IntentDaemon::new(&config, embedder.clone()).await?;
            mangaassist_retrieval::RetrievalDaemon::new(&config, embedder).await?;
            writeln!(
                std::io::stderr(),
                "vectors ready in {} ms",
                started.elapsed().as_millis()
            )?;
            Ok(())
        }
        Command::Eval { what } => {
            init_logs(&cli, &config, "mangaassist")?;
            let mut config = config;
            let pick = |config: &mut Config, embedder: &Option<String>| -> anyhow::Result<()> {
                if let Some(name) = embedder {
                    config.embedding.backend = name
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--embedder: {e}"))?;
                }
                Ok(())
            };
            match what {
                EvalWhat::Retrieval { file, embedder, k } => {
                    pick(&mut config, embedder)?;
                    let queries = mangaassist_retrieval::eval::load_queries(file)?;
                    let embedder = mesh::load_embedder(&config).await?;
                    let daemon =
                        mangaassist_retrieval::RetrievalDaemon::new(&config, embedder).await?;
                    let report =
                        mangaassist_retrieval::eval::evaluate(&daemon, &queries, *k).await?;
                    write!(std::io::stdout(), "{report}")?;
                }
                EvalWhat::Intent { file, embedder } => {
                    pick(&mut config, embedder)?;
                    let embedder = mesh::load_embedder(&config).await?;
                    let daemon = mangaassist_intent::IntentDaemon::new(&config, embedder).await?;
                    let examples = mangaassist_catalog::load_intents(file)?;
                    let report = daemon.evaluate(&examples);
                    writeln!(std::io::stdout(), "{report}")?;
                }
            }
            Ok(())
        }
        Command::Up { faults } => {
            config.faults.extend(faults.iter().cloned());
            // Gateway spans have no `daemon` attribute: they take the process's name.
            init_logs(&cli, &config, "mangaassist-gateway")?;
            run_roles(config, &Role::ALL).await
        }
        Command::Serve { daemons, faults } => {
            config.faults.extend(faults.iter().cloned());
            // One service name per process: the gateway's when it is here (as for `up`; the
            // daemons' spans carry their `daemon` attribute), else the first daemon's.
            let name = if daemons.contains(&Role::Gateway) {
                Role::Gateway
            } else {
                daemons[0]
            };
            init_logs(&cli, &config, &format!("mangaassist-{}", name.name()))?;
            let mut roles = daemons.clone();
            roles.sort();
            roles.dedup();
            run_roles(config, &roles).await
        }
    }
}

async fn bench_command(
    cli: &Cli,
    mut config: Config,
    local_mesh: bool,
    cmd: mangaassist_bench::BenchCommand,
) -> anyhow::Result<i32> {
    if local_mesh
        && matches!(
            &cmd,
            mangaassist_bench::BenchCommand::Spike(_)
                | mangaassist_bench::BenchCommand::SpikeWorker
        )
    {
        anyhow::bail!("bench spike starts its own mesh as separate processes: drop --local-mesh");
    }
    let overhead_run = matches!(&cmd, mangaassist_bench::BenchCommand::Run(a) if a.overhead);
    let mut state = None;
    let running = if local_mesh {
        let dir = tempfile::tempdir().context("cannot create a state directory")?;
        config.data.state_dir = dir.path().to_path_buf();
        state = Some(dir);
        config.gateway.listen = "127.0.0.1:0".into();
        for (_, d) in config.mesh.daemons_mut() {
            d.listen = "127.0.0.1:0".into();
        }
        config.gateway.limits.user_messages_per_minute = 0;
        config.gateway.limits.connection_messages_per_second = 0;
        config.precompute.run_at_start = false;
        if overhead_run {
            config.generation.latency_profile = LatencyProfile::Zero;
            config.gateway.predict_follow_ups = false;
        }
        init_logs(cli, &config, "mangaassist-bench")?;
        Some(mesh::start(config.clone(), &Role::ALL).await?)
    } else {
        None
    };
    let cfg = running.as_ref().map_or(&config, |r| &r.config);
    let ctx = mangaassist_bench::BenchContext {
        default_url: running
            .as_ref()
            .and_then(mesh::RunningMesh::ws_url)
            .unwrap_or_else(|| format!("ws://{}/ws", cfg.gateway.listen)),
        token_key: if cfg.gateway.auth.required {
            Some(mangaassist_gateway::signing_key(cfg)?)
        } else {
            None
        },
        data_dir: cfg.data.dir.clone(),
        overhead: cfg.generation.latency_profile == LatencyProfile::Zero,
        generation_endpoint: cfg.mesh.generation.endpoint.clone(),
        retrieval_endpoint: cfg.mesh.retrieval.endpoint.clone(),
        precompute_endpoint: cfg.mesh.precompute.endpoint.clone(),
        service_tokens: cli_service_tokens(cfg, true)?.map(std::sync::Arc::new),
        serve_exe: std::env::current_exe().ok(),
        config_file: cli.config.clone(),
    };
    let result = mangaassist_bench::execute(cmd, ctx).await;
    if let Some(r) = running {
        r.shutdown.cancel();
        r.wait().await?;
    }
    drop(state);
    Ok(match result {
        Ok(code) => code,
        Err(e) => {
            writeln!(std::io::stderr(), "bench: {e}")?;
            e.exit_code()
        }
    })
}

async fn run_roles(config: Config, roles: &[Role]) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let running = mesh::start(config, roles).await?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "MangaAssist mesh ready in {} ms",
        started.elapsed().as_millis()
    )?;
    for (role, addr) in &running.addrs {
        if *role != Role::Gateway {
            writeln!(
                out,
                "  {:<11} grpc://{addr}  (grpcurl -plaintext {addr} list)",
                role.name()
            )?;
        }
    }
    if !running.config.faults.is_empty() {
        let f: Vec<String> = running
            .config
            .faults
            .iter()
            .map(ToString::to_string)
            .collect();
        writeln!(out, "  faults      {}", f.join(", "))?;
    }
    if let Some(url) = running.gateway_url() {
        writeln!(
            out,
            "  gateway     {url}  (WebSocket {})",
            running.ws_url().unwrap_or_default()
        )?;
        if let Some(internal) = running.internal_url() {
            writeln!(
                out,
                "  status      {internal}  (/metrics /slo /routing /breakers, operators only)"
            )?;
        }
        let c = &running.config;
        if c.gateway.auth.required {
            let user = &c.gateway.default_user;
            let token = mangaassist_gateway::issue_token(c, user)?;
            // A fragment never leaves the browser: the token stays out of request lines and
            // logs; the page trades it for a short-lived `/ws` ticket.
            writeln!(out, "\nChat in a browser as {user} at {url}#token={token}")?;
        } else {
            writeln!(out, "\nChat in a browser at {url}")?;
        }
        writeln!(out, "or: mangaassist chat \"Suggest manga like One Piece\"")?;
    }
    out.flush()?;
    let shutdown = running.shutdown.clone();
    #[allow(
        clippy::disallowed_methods,
        reason = "lives as long as the process to turn a signal into the shutdown token; it holds nothing that shutdown would have to drain"
    )]
    tokio::spawn(async move {
        mangaassist_server::shutdown_signal().await;
        shutdown.cancel();
    });
    let r = running.wait().await;
    mangaassist_telemetry::shutdown();
    r
}
