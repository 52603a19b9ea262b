//! Command-line interface: parsing, config loading, dispatch.

use std::{io::Write, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mangaassist::{
    chat::{self, ChatOptions},
    mesh::{self, Role},
};
use mangaassist_config::{Config, FaultSpec};

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
    #[arg(long, global = true, value_parser = ["text", "json"])]
    log_format: Option<String>,
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
    /// Run one daemon; its peers are reached at the configured endpoints.
    Serve {
        /// intent, retrieval, memory, cache, generation, precompute or gateway.
        #[arg(value_parser = parse_role)]
        daemon: Role,
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
    /// Evaluate the intent classifier on a labelled file (held-out split by default).
    EvalIntent {
        #[arg(long, default_value = "data/intents/heldout.jsonl")]
        file: PathBuf,
    },
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

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = mangaassist_config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(f) = &cli.log_format {
        config.telemetry.log_format = f.clone();
    }
    Ok(config)
}

fn init_logs(cli: &Cli, config: &Config) -> anyhow::Result<()> {
    let filter = cli.log.clone().or_else(|| std::env::var("RUST_LOG").ok());
    mangaassist_telemetry::init(&config.telemetry, filter.as_deref())?;
    Ok(())
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = load_config(&cli)?;
    match &cli.command {
        Command::Config { action } => {
            match action {
                ConfigAction::Print => {
                    let text = toml::to_string_pretty(&config).context("cannot print config")?;
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
            timeout,
        } => {
            let url = url
                .clone()
                .unwrap_or_else(|| format!("ws://{}/ws", config.gateway.listen));
            chat::run(
                ChatOptions {
                    url,
                    session: session.clone(),
                    store: store.clone(),
                    user: user.clone(),
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
            let report = mangaassist::probe::run(&url, &config.data.dir, *messages).await?;
            writeln!(std::io::stdout(), "{report}")?;
            Ok(())
        }
        Command::Prepare => {
            init_logs(&cli, &config)?;
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
        Command::EvalIntent { file } => {
            init_logs(&cli, &config)?;
            let embedder = mesh::load_embedder(&config).await?;
            let daemon = mangaassist_intent::IntentDaemon::new(&config, embedder).await?;
            let examples = mangaassist_catalog::load_intents(file)?;
            let report = daemon.evaluate(&examples);
            writeln!(std::io::stdout(), "{report}")?;
            Ok(())
        }
        Command::Up { faults } => {
            config.faults.extend(faults.iter().cloned());
            init_logs(&cli, &config)?;
            run_roles(config, &Role::ALL).await
        }
        Command::Serve { daemon, faults } => {
            config.faults.extend(faults.iter().cloned());
            init_logs(&cli, &config)?;
            run_roles(config, &[*daemon]).await
        }
    }
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
        writeln!(out, "\nChat in a browser at {url}")?;
        writeln!(out, "or: mangaassist chat \"Suggest manga like One Piece\"")?;
    }
    out.flush()?;
    let shutdown = running.shutdown.clone();
    tokio::spawn(async move {
        mangaassist_server::shutdown_signal().await;
        shutdown.cancel();
    });
    let r = running.wait().await;
    mangaassist_telemetry::shutdown();
    r
}
