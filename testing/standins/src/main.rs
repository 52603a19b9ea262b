//! `mangaassist-standins`: the **simulated** OpenSearch and Bedrock endpoints the tests use,
//! as long-running processes, so the mesh can be run and benchmarked with
//! `retrieval.backend = "opensearch"` or `generation.backend = "bedrock"` on a machine with
//! neither a cluster nor an AWS account (`scripts/bench-backends.sh` uses them).
//!
//! Neither is the real service: the OpenSearch simulation does exact k-NN and BM25 in memory
//! (see `mangaassist_standins::opensearch`); the Bedrock simulation restates the question with
//! filler words (see `mangaassist_standins::bedrock`). Numbers measured against them are
//! the cost of the client path (HTTP, serialisation, event-stream decoding, fusion), not of
//! the services.

use std::{io::Write as _, net::SocketAddr, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mangaassist_standins::bedrock::{SimulatedAnswer, SimulatedBedrock};
use mangaassist_standins::opensearch::FakeOpenSearch;

#[derive(Parser)]
#[command(
    version,
    about = "Simulated OpenSearch / Bedrock endpoints for local runs and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// The OpenSearch REST subset the retrieval daemon uses (in memory, no security plugin).
    Opensearch {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9200")]
        listen: SocketAddr,
    },
    /// Bedrock runtime ConverseStream (AWS event-stream frames; any credentials accepted).
    Bedrock {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        /// Output tokens per answer (capped by the request's maxTokens).
        #[arg(long, default_value_t = 60)]
        tokens: usize,
        /// Delay before the first event, in milliseconds.
        #[arg(long, default_value_t = 0)]
        first_token_ms: u64,
        /// Delay between text deltas, in milliseconds.
        #[arg(long, default_value_t = 0)]
        token_interval_ms: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.what {
        What::Opensearch { listen } => {
            let server = FakeOpenSearch::start_at(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let stop = stop_signal()?;
            say(&format!("simulated OpenSearch ready at {}", server.url()))?;
            stop.await;
            server.stop().await;
        }
        What::Bedrock {
            listen,
            tokens,
            first_token_ms,
            token_interval_ms,
        } => {
            anyhow::ensure!(tokens > 0, "--tokens must be at least 1");
            let server = SimulatedBedrock::start(
                listen,
                SimulatedAnswer {
                    tokens,
                    first_token_delay: Duration::from_millis(first_token_ms),
                    token_interval: Duration::from_millis(token_interval_ms),
                },
            )
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
            let stop = stop_signal()?;
            say(&format!("simulated Bedrock ready at {}", server.url()))?;
            stop.await;
            say(&format!("answered {} ConverseStream calls", server.calls()))?;
            server.stop().await;
        }
    }
    Ok(())
}

/// Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the future is
/// first polled: a caller installs them before announcing "ready", so a signal sent the moment
/// the ready line is read is not lost to the default action (exit by signal).
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// One line on stdout, flushed (scripts wait for the "ready" line).
fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}
