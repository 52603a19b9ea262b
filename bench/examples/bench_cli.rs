//! Standalone driver for the bench commands, for use before (or without) the `mangaassist`
//! binary: `cargo run --release -p mangaassist-bench --example bench_cli -- ceiling`.
//! The real entry points are `mangaassist bench ...` and `mangaassist report weekly`.

use std::{io::Write, path::PathBuf};

use clap::{Parser, Subcommand};
use mangaassist_bench::{BenchCommand, BenchContext, WeeklyArgs};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Bench(BenchCommand),
    /// Weekly report (`mangaassist report weekly`).
    Weekly(WeeklyArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Signing secret of the gateway's tokens, when it requires them; the tokens carry the
    // default `gateway.auth` issuer and audience.
    let token_key = match std::env::var("MANGAASSIST_BENCH_TOKEN_SECRET") {
        Err(_) => None,
        Ok(secret) => {
            let auth = mangaassist_config::AuthSettings::default();
            match mangaassist_auth::JwtKey::new(secret.as_bytes()) {
                Ok(key) => Some(key.with_issuer(auth.issuer).with_audience(auth.audience)),
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "MANGAASSIST_BENCH_TOKEN_SECRET: {e}");
                    return std::process::ExitCode::from(2);
                }
            }
        }
    };
    let ctx = BenchContext {
        default_url: "ws://127.0.0.1:8080/ws".to_string(),
        token_key,
        data_dir: PathBuf::from("data"),
        overhead: false,
        // The default `mesh.generation` / `mesh.retrieval` endpoints.
        generation_endpoint: "http://127.0.0.1:50065".to_string(),
        retrieval_endpoint: "http://127.0.0.1:50062".to_string(),
        precompute_endpoint: "http://127.0.0.1:50066".to_string(),
        service_tokens: None,
        serve_exe: None,
        config_file: None,
    };
    let result = match cli.command {
        Command::Bench(cmd) => mangaassist_bench::execute(cmd, ctx).await,
        Command::Weekly(args) => mangaassist_bench::weekly(args).await.map(|()| 0),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            std::process::ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}
