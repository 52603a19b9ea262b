//! `bench ceiling`: the client's own limits, measured against the fake gateway, so nobody
//! mistakes the load generator's ceiling for the mesh's.
//!
//! 1. Throughput: closed-loop runs at several virtual-user counts against a gateway that
//!    answers instantly; the best sustained answers/s is the most this client can drive.
//! 2. Connections: how many idle WebSockets it can hold open (each verified with a ping),
//!    bounded by the open-files limit (and the ~28k ephemeral loopback ports per port).
//!
//! With the fake in the same process both ends share the CPUs and every connection costs two
//! file descriptors; `--url` against `bench ceiling --serve` in another process measures the
//! client alone.

use std::{fmt::Write, time::Duration, time::Instant};

use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    BenchError,
    conn::{self, Ws},
    driver::{self, RunConfig},
    fake::{FakeConfig, FakeGateway},
    machine,
    queries::QueryMix,
    summary::{fmt_ms, ttft_values},
};

#[derive(Debug, Clone)]
pub struct CeilingOptions {
    /// Measure against this gateway (normally `bench ceiling --serve` elsewhere) instead of
    /// an in-process fake.
    pub url: Option<String>,
    pub vus: Vec<usize>,
    pub duration: Duration,
    /// Try to hold this many idle connections (capped by the open-files limit).
    pub connections: usize,
    pub chunks: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputPoint {
    pub vus: usize,
    pub answered: u64,
    pub errors: u64,
    pub wall_s: f64,
    pub per_second: f64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsResult {
    pub attempted: usize,
    pub held: usize,
    /// Of the held connections, how many answered a ping afterwards.
    pub answered_ping: usize,
    pub first_error: Option<String>,
    pub open_files_limit: Option<u64>,
    pub fds_per_connection: u32,
    pub rss_kib_per_connection: Option<f64>,
    pub open_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CeilingReport {
    pub in_process_server: bool,
    pub cpus: usize,
    pub cpu_model: String,
    pub throughput: Vec<ThroughputPoint>,
    pub connections: ConnectionsResult,
}

impl CeilingReport {
    pub fn best(&self) -> Option<&ThroughputPoint> {
        self.throughput
            .iter()
            .max_by(|a, b| a.per_second.total_cmp(&b.per_second))
    }

    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Benchmark client ceiling ({} × {}, fake gateway {})\n",
            self.cpus,
            self.cpu_model,
            if self.in_process_server {
                "in the same process"
            } else {
                "in another process"
            }
        );
        md.push_str("| virtual users | answered | errors | wall s | answers/s | TTFT p50 ms | TTFT p99 ms |\n|---:|---:|---:|---:|---:|---:|---:|\n");
        for p in &self.throughput {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {:.0} | {} | {} |",
                p.vus,
                p.answered,
                p.errors,
                p.wall_s,
                p.per_second,
                p.ttft_p50_ms.map_or("–".into(), fmt_ms),
                p.ttft_p99_ms.map_or("–".into(), fmt_ms)
            );
        }
        if let Some(b) = self.best() {
            let _ = writeln!(
                md,
                "\nMax sustained: **{:.0} answers/s** (at {} virtual users).",
                b.per_second, b.vus
            );
        }
        let c = &self.connections;
        let _ = writeln!(
            md,
            "\nIdle connections held: **{}** of {} attempted ({} answered a ping afterwards); {} fd(s) per connection in this process, open-files limit {}, RSS {} KiB per connection, opened in {:.1} s.",
            c.held,
            c.attempted,
            c.answered_ping,
            c.fds_per_connection,
            c.open_files_limit
                .map_or("unknown".into(), |n| n.to_string()),
            c.rss_kib_per_connection
                .map_or("?".into(), |v| format!("{v:.1}")),
            c.open_s
        );
        if let Some(e) = &c.first_error {
            let _ = writeln!(md, "First failure: {e}");
        }
        md
    }
}

/// Runs both measurements.
pub async fn measure(opts: &CeilingOptions) -> Result<CeilingReport, BenchError> {
    if opts.vus.is_empty() || opts.vus.contains(&0) {
        return Err(BenchError::Usage(
            "--vus needs positive counts, e.g. 1,16,64".into(),
        ));
    }
    let fake = match &opts.url {
        Some(_) => None,
        None => Some(
            FakeGateway::start(FakeConfig {
                chunks: opts.chunks,
                ..FakeConfig::default()
            })
            .await?,
        ),
    };
    let url = opts
        .url
        .clone()
        .or_else(|| fake.as_ref().map(FakeGateway::url))
        .unwrap_or_default();
    let mix = QueryMix::from_pairs(
        (0..20).map(|i| ("ceiling".to_string(), format!("ceiling question {i}"))),
        &[],
        1,
        1,
    )?;
    let mut throughput = Vec::new();
    for &vus in &opts.vus {
        let mut cfg = RunConfig::closed(url.clone(), vus, 0);
        cfg.messages = None;
        cfg.duration = Some(opts.duration);
        cfg.warmup_per_intent = 0;
        cfg.timeout = Duration::from_secs(10);
        cfg.label = format!("ceiling-{vus}");
        let r = driver::run(&cfg, &mix).await?;
        let all: Vec<_> = r.samples.iter().collect();
        let ttft = mangaassist_stats::summarize(&ttft_values(&all));
        throughput.push(ThroughputPoint {
            vus,
            answered: r.counters.answered,
            errors: r.counters.errors,
            wall_s: r.wall_s,
            per_second: r.counters.answered as f64 / r.wall_s.max(1e-9),
            ttft_p50_ms: ttft.as_ref().map(|s| s.p50),
            ttft_p99_ms: ttft.as_ref().map(|s| s.p99),
        });
    }
    let fds_per_connection = if fake.is_some() { 2 } else { 1 };
    let connections = hold_connections(&url, opts.connections, fds_per_connection).await;
    let m = machine::collect();
    Ok(CeilingReport {
        in_process_server: fake.is_some(),
        cpus: m.cpus,
        cpu_model: m.cpu_model,
        throughput,
        connections,
    })
}

async fn hold_connections(url: &str, wanted: usize, fds_per_connection: u32) -> ConnectionsResult {
    let limit = machine::open_files_limit();
    let in_use = machine::open_fds().unwrap_or(0);
    // Keep headroom for the runtime, log files and the listener.
    let budget = limit.map_or(wanted, |l| {
        (l.saturating_sub(in_use).saturating_sub(64) / u64::from(fds_per_connection)) as usize
    });
    let attempted = wanted.min(budget);
    let rss_before = machine::rss_kib();
    let started = Instant::now();
    let mut held: Vec<Ws> = Vec::with_capacity(attempted);
    let mut first_error = None;
    let mut stream = futures::stream::iter(0..attempted)
        .map(|_| conn::connect(url))
        .buffer_unordered(128);
    while let Some(r) = stream.next().await {
        match r {
            Ok(ws) => held.push(ws),
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    drop(stream);
    let open_s = started.elapsed().as_secs_f64();
    let rss_after = machine::rss_kib();
    let n = held.len();
    let answered_ping = futures::stream::iter(held.iter_mut())
        .map(ping)
        .buffer_unordered(512)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    drop(held);
    ConnectionsResult {
        attempted,
        held: n,
        answered_ping,
        first_error,
        open_files_limit: limit,
        fds_per_connection,
        rss_kib_per_connection: match (rss_before, rss_after) {
            (Some(a), Some(b)) if n > 0 => Some(b.saturating_sub(a) as f64 / n as f64),
            _ => None,
        },
        open_s,
    }
}

async fn ping(ws: &mut Ws) -> bool {
    let fut = async {
        ws.send(Message::text(r#"{"action":"ping"}"#)).await.ok()?;
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m
                && t.contains("\"pong\"")
            {
                return Some(());
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .ok()
        .flatten()
        .is_some()
}
