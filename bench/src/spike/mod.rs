//! `bench spike`: the release spike on one machine, as one command (issue 13, item 7).
//!
//! The coordinator starts the mesh as separate processes of the same binary — one serving
//! every daemon but the gateway, and several gateways reaching those daemons over gRPC — with
//! the zero-latency model and the rate limits lifted, so first-token time is the mesh's own
//! overhead. It then starts load-generator worker processes (`bench spike-worker`, the same
//! binary again: one process cannot hold 25,000 sockets under the open-files limit), and
//! drives two phases through them:
//!
//! 1. open the sessions (spread over the gateways) and hold them idle, checking every second
//!    that they stay open and pinging each at the end;
//! 2. open-loop message rates in steps on top of the held sessions, stopping after the first
//!    step whose first-token p99 exceeds the limit or that has any error, timeout, lost or
//!    repeated chunk, dropped arrival or closed session.
//!
//! Per phase it reports what the workers measured (raw first-token times, merged here) next to
//! what `/proc` says the mesh processes and the load generator cost. Children run in their
//! own process groups and are stopped in order (workers, gateways, daemons) with a signal,
//! also on errors and Ctrl-C.

pub mod procs;
pub mod protocol;
pub mod worker;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    sync::mpsc,
};

use self::{
    procs::Proc,
    protocol::{AuthJob, Command, Event, HoldReport, OpenJob, StepReport},
};
use crate::{BenchError, machine, sample::Machine, sample::write_file, summary::fmt_ms};
// Every spike runs all of them in its one non-gateway process.
use mangaassist_config::DAEMONS;

/// Version of the spike's `results.json` layout.
pub const SPIKE_SCHEMA_VERSION: u32 = 1;

/// File descriptors a process needs besides its sockets (runtime, logs, model files, gRPC).
const FD_HEADROOM: usize = 512;

/// Everything that shapes a spike, as recorded in `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpikeSettings {
    pub sessions: usize,
    pub gateways: usize,
    pub hold_s: f64,
    /// Offered message rate of each step, messages/s.
    pub steps: Vec<f64>,
    pub step_duration_s: f64,
    pub stop_p99_ms: f64,
    /// Degraded answers stop the spike like errors do.
    pub stop_on_degraded: bool,
    pub timeout_ms: u64,
    /// Load-generator processes; `None` = enough for `sockets_per_worker`.
    pub workers: Option<usize>,
    pub sockets_per_worker: usize,
    pub base_port: Option<u16>,
    pub ready_timeout_s: u64,
    /// Texts made unique so the exact-match cache misses.
    pub unique: bool,
    pub seed: u64,
    pub quick: bool,
}

impl SpikeSettings {
    fn validate(&self) -> Result<(), BenchError> {
        let usage = |m: String| Err(BenchError::Usage(m));
        if self.sessions == 0 {
            return usage("--sessions must be at least 1".into());
        }
        if self.gateways == 0 {
            return usage("--gateways must be at least 1".into());
        }
        if self.steps.is_empty() {
            return usage("no steps: give --steps or --start/--factor".into());
        }
        if let Some(r) = self.steps.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
            return usage(format!(
                "step rates must be positive messages per second, got {r}"
            ));
        }
        if self.step_duration_s.is_nan() || self.step_duration_s <= 0.0 {
            return usage("--step-duration must be positive".into());
        }
        if self.stop_p99_ms.is_nan() || self.stop_p99_ms <= 0.0 {
            return usage("--stop-p99-ms must be positive".into());
        }
        if self.timeout_ms == 0 {
            return usage("--timeout must be positive".into());
        }
        if let Some(base) = self.base_port {
            let last = usize::from(base) + DAEMONS.len() + 2 * self.gateways - 1;
            if base == 0 || last > usize::from(u16::MAX) {
                return usage(format!(
                    "--base-port {base}: {} daemons and {} gateways need ports {base}..={last}, \
                     beyond 65535",
                    DAEMONS.len(),
                    self.gateways
                ));
            }
        }
        if self.sockets_per_worker == 0 || self.workers == Some(0) {
            return usage("--workers and --sockets-per-worker must be at least 1".into());
        }
        Ok(())
    }

    /// Sessions per worker process.
    fn worker_shares(&self) -> Vec<usize> {
        let n = self
            .workers
            .unwrap_or_else(|| self.sessions.div_ceil(self.sockets_per_worker))
            .clamp(1, self.sessions);
        (0..n)
            .map(|i| self.sessions / n + usize::from(i < self.sessions % n))
            .collect()
    }

    /// A generous bound on the whole run (token lifetime, gateway idle timeout).
    fn estimated_run(&self) -> Duration {
        let per_step = self.step_duration_s + self.timeout_ms as f64 / 1e3 + 10.0;
        Duration::from_secs_f64(
            120.0 + self.sessions as f64 / 200.0 + self.hold_s + self.steps.len() as f64 * per_step,
        )
    }
}

/// What the binary provides: itself (to start the mesh and workers) and the configuration.
#[derive(Debug, Clone)]
pub struct SpikeHost {
    /// The `mangaassist` binary (`serve`, `bench spike-worker`).
    pub exe: PathBuf,
    /// `--config FILE` of the coordinator, handed to every child.
    pub config_file: Option<PathBuf>,
    /// The configured user-token key: the spike's gateways get a fresh secret with its issuer
    /// and audience. `None`: the gateways do not require tokens.
    pub token_key: Option<mangaassist_auth::JwtKey>,
    pub data_dir: PathBuf,
}

/// One phase of the spike: the hold (rate 0) or a message-rate step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Row {
    /// `hold` or `step`.
    pub phase: String,
    /// 1-based step number (0 for the hold).
    pub step: usize,
    pub offered_rate: f64,
    pub duration_s: f64,
    /// Sessions open at the end of the phase (for the hold: the fewest seen at any check).
    pub sessions_open: usize,
    /// Hold: sessions that answered a ping at its end.
    pub pinged: Option<usize>,
    pub ping_p99_ms: Option<f64>,
    pub sent: u64,
    pub answered: u64,
    pub achieved_rate: f64,
    pub dropped: u64,
    pub late: u64,
    pub max_late_ms: f64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub ttft_max_ms: Option<f64>,
    pub errors: u64,
    pub timeouts: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Answered without some stage's result (deadline, failure, open circuit) or below the
    /// `full` level of the degradation ladder.
    pub degraded: u64,
    pub lost_chunks: u64,
    pub duplicate_chunks: u64,
    pub index_faults: u64,
    /// Sum of `VmRSS` of the daemons process and every gateway at the end of the phase.
    pub mesh_rss_mib: f64,
    /// User + system CPU of the mesh processes during the phase.
    pub mesh_cpu_s: f64,
    pub mesh_cpu_ms_per_message: Option<f64>,
    /// User + system CPU of the workers and the coordinator during the phase.
    pub loadgen_cpu_s: f64,
    pub loadgen_rss_mib: f64,
    /// Why the spike stopped after this phase (`None`: it passed).
    pub failed: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenPhase {
    pub sessions: usize,
    pub opened: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub open_s: f64,
    pub mesh_rss_mib: f64,
    pub loadgen_rss_mib: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessInfo {
    pub role: String,
    pub pid: u32,
    /// Addresses it serves (gateways: the WebSocket URL first).
    pub addrs: Vec<String>,
    pub log: PathBuf,
    /// Workers: sessions it holds.
    pub sessions: Option<usize>,
}

/// `results.json` of a spike.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpikeReport {
    pub schema_version: u32,
    pub tool: String,
    pub command: String,
    pub started_at: String,
    pub wall_s: f64,
    pub machine: Machine,
    pub open_files_limit: Option<u64>,
    /// `/proc/loadavg` (1, 5, 15 minutes) when the spike started and ended: other work on
    /// the machine shares its cores and shows here.
    pub load_average_start: Option<String>,
    pub load_average_end: Option<String>,
    pub settings: Option<SpikeSettings>,
    pub processes: Vec<ProcessInfo>,
    pub open: Option<OpenPhase>,
    pub rows: Vec<Row>,
    /// The highest offered rate whose step passed.
    pub highest_passing_rate: Option<f64>,
    pub stop_reason: String,
    /// Children that had to be killed or failed on the way out.
    pub shutdown_notes: Vec<String>,
}

impl SpikeReport {
    pub fn load(path: &Path) -> Result<Self, BenchError> {
        let text = std::fs::read_to_string(path).map_err(|source| BenchError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| BenchError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The per-phase table (Markdown).
    pub fn table(&self) -> String {
        let mut md = String::from(
            "| phase | offered msg/s | achieved msg/s | sessions open | sent / answered | first token p50 (ms) | p99 (ms) | errors (timeouts) | degraded | lost / dup chunks | mesh RSS | mesh CPU per msg | load gen CPU | load gen RSS |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let ms = |v: Option<f64>| v.map_or("–".into(), fmt_ms);
        for r in &self.rows {
            let cores = |cpu: f64| {
                if r.duration_s > 0.0 {
                    format!("{cpu:.1} s ({:.2} cores)", cpu / r.duration_s)
                } else {
                    format!("{cpu:.1} s")
                }
            };
            let (phase, offered, achieved, sessions, sent) = if r.phase == "hold" {
                (
                    format!("hold {:.0} s", r.duration_s),
                    "–".to_string(),
                    "–".to_string(),
                    format!(
                        "{} ({} answered a ping, p99 {} ms)",
                        r.sessions_open,
                        r.pinged.unwrap_or(0),
                        ms(r.ping_p99_ms)
                    ),
                    "–".to_string(),
                )
            } else {
                (
                    format!("step {}", r.step),
                    format!("{:.0}", r.offered_rate),
                    format!("{:.0}", r.achieved_rate),
                    r.sessions_open.to_string(),
                    format!("{} / {}", r.sent, r.answered),
                )
            };
            let _ = writeln!(
                md,
                "| {phase}{} | {offered} | {achieved} | {sessions} | {sent} | {} | {} | {} ({}) | {} | {} / {} | {:.0} MiB | {} | {} | {:.0} MiB |",
                if r.failed.is_some() { " ✗" } else { "" },
                ms(r.ttft_p50_ms),
                ms(r.ttft_p99_ms),
                r.errors,
                r.timeouts,
                r.degraded,
                r.lost_chunks,
                r.duplicate_chunks,
                r.mesh_rss_mib,
                r.mesh_cpu_ms_per_message
                    .map_or("–".into(), |v| format!("{v:.2} ms")),
                cores(r.loadgen_cpu_s),
                r.loadgen_rss_mib
            );
        }
        md
    }

    /// `summary.md`: how it was run, the table, why it stopped.
    pub fn to_markdown(&self) -> String {
        let mut md = String::from("# Release spike\n\n");
        let m = &self.machine;
        let _ = writeln!(md, "- command: `{}`", self.command);
        let _ = writeln!(
            md,
            "- machine: {} × {} ({}, kernel {}); the load generator runs on the same cores; open-files limit {}",
            m.cpus,
            m.cpu_model,
            m.os,
            m.kernel,
            self.open_files_limit
                .map_or("unknown".into(), |n| n.to_string())
        );
        if let Some(c) = &m.git_commit {
            let _ = writeln!(
                md,
                "- commit: {c}{}",
                if m.git_dirty == Some(true) {
                    " (with uncommitted changes)"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(
            md,
            "- started: {}, {:.0} s in all; load average (1/5/15 min) {} at the start, {} at the end",
            self.started_at,
            self.wall_s,
            self.load_average_start.as_deref().unwrap_or("?"),
            self.load_average_end.as_deref().unwrap_or("?")
        );
        if let Some(s) = &self.settings {
            let workers = self.processes.iter().filter(|p| p.role == "worker").count();
            let _ = writeln!(
                md,
                "- mesh: 1 process serving {} + {} gateway process(es) calling it over gRPC; zero-latency simulated model, precompute jobs and follow-up prediction off, per-user rate limit off",
                DAEMONS.join(", "),
                s.gateways
            );
            let _ = writeln!(
                md,
                "- load: {} sessions over {} worker process(es), held {:.0} s; steps of {:.0} s at {} msg/s (open loop, Poisson); stop after the first step with first-token p99 > {} ms or any error{}; {} texts",
                s.sessions,
                workers,
                s.hold_s,
                s.step_duration_s,
                s.steps
                    .iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                s.stop_p99_ms,
                if s.stop_on_degraded {
                    " or degraded answer"
                } else {
                    ""
                },
                if s.unique { "unique" } else { "repeated" }
            );
        }
        if let Some(o) = &self.open {
            let _ = writeln!(
                md,
                "- opening: {} of {} sessions in {:.1} s{}; then mesh RSS {:.0} MiB, load generator RSS {:.0} MiB",
                o.opened,
                o.sessions,
                o.open_s,
                o.first_error.as_ref().map_or(String::new(), |e| format!(
                    " ({} failed, first: {e})",
                    o.failed
                )),
                o.mesh_rss_mib,
                o.loadgen_rss_mib
            );
        }
        md.push('\n');
        md.push_str(&self.table());
        let _ = writeln!(md, "\n**Stopped:** {}", self.stop_reason);
        let late: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.late > 0)
            .map(|r| {
                format!(
                    "step {} {} of {} (max {:.1} ms)",
                    r.step, r.late, r.sent, r.max_late_ms
                )
            })
            .collect();
        if !late.is_empty() {
            let _ = writeln!(
                md,
                "\nSends more than 5 ms behind their schedule (the load generator, sharing the \
                 cores, fell behind; latency is measured from the actual send): {}.",
                late.join("; ")
            );
        }
        if let Some(r) = self.highest_passing_rate {
            let _ = writeln!(
                md,
                "\nHighest step that passed: **{r:.0} msg/s** on top of the held sessions."
            );
        }
        md.push_str(
            "\nFirst token = client time from sending the query to its first `chunk` frame; with \
             the zero-latency model this is the mesh's overhead. Percentiles are over every \
             answered message of the step, merged from all workers' raw samples. Mesh RSS is \
             the sum of VmRSS of the daemons process and the gateways; CPU is user + system time \
             from /proc during the phase (load generator = workers + coordinator).\n",
        );
        for n in &self.shutdown_notes {
            let _ = writeln!(md, "\n- shutdown: {n}");
        }
        md
    }
}

/// The processes of a running spike, stopped in order by [`Children::stop`].
#[derive(Default)]
struct Children {
    daemons: Option<Proc>,
    gateways: Vec<Proc>,
    workers: Vec<Proc>,
}

impl Children {
    fn mesh(&self) -> impl Iterator<Item = &Proc> {
        self.daemons.iter().chain(self.gateways.iter())
    }

    fn mesh_rss_mib(&self) -> f64 {
        self.mesh().filter_map(Proc::rss_kib).sum::<u64>() as f64 / 1024.0
    }

    fn mesh_cpu_s(&self) -> f64 {
        self.mesh().filter_map(Proc::cpu_s).sum()
    }

    fn loadgen_rss_mib(&self) -> f64 {
        (self.workers.iter().filter_map(Proc::rss_kib).sum::<u64>()
            + machine::rss_kib().unwrap_or(0)) as f64
            / 1024.0
    }

    fn loadgen_cpu_s(&self) -> f64 {
        self.workers.iter().filter_map(Proc::cpu_s).sum::<f64>()
            + procs::cpu_s("/proc/self/stat").unwrap_or(0.0)
    }

    /// The first mesh process that has exited, as an error.
    fn check_mesh(&mut self) -> Result<(), BenchError> {
        for p in self.daemons.iter_mut().chain(self.gateways.iter_mut()) {
            if let Some(status) = p.exited() {
                return Err(p.died(status));
            }
        }
        Ok(())
    }

    /// Workers first (their sessions close while the gateways still serve them), then the
    /// gateways (they drain), then the daemons.
    async fn stop(&mut self, grace: Duration) -> Vec<String> {
        let mut notes = Vec::new();
        let workers = self.workers.iter_mut().map(|w| w.finish(grace));
        notes.extend(
            futures::future::join_all(workers)
                .await
                .into_iter()
                .flatten(),
        );
        let gateways = self.gateways.iter_mut().map(|g| g.stop("TERM", grace));
        notes.extend(
            futures::future::join_all(gateways)
                .await
                .into_iter()
                .flatten(),
        );
        if let Some(d) = &mut self.daemons {
            notes.extend(d.stop("TERM", grace).await);
        }
        notes
    }
}

type WorkerLine = (usize, Result<Event, String>);

/// Runs the spike, writes `out/results.json` and `out/summary.md` (also when it fails or is
/// interrupted part-way), and returns the report.
pub async fn run(
    settings: &SpikeSettings,
    host: &SpikeHost,
    out: &Path,
    command: String,
) -> Result<SpikeReport, BenchError> {
    settings.validate()?;
    let shares = settings.worker_shares();
    check_limits(settings, &shares)?;
    std::fs::create_dir_all(out).map_err(|source| BenchError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let started = Instant::now();
    let mut report = SpikeReport {
        schema_version: SPIKE_SCHEMA_VERSION,
        tool: format!("mangaassist-bench {}", env!("CARGO_PKG_VERSION")),
        command,
        started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        machine: machine::collect(),
        open_files_limit: machine::open_files_limit(),
        load_average_start: load_average(),
        settings: Some(settings.clone()),
        ..SpikeReport::default()
    };
    let state = tempfile::Builder::new()
        .prefix("mangaassist-spike-")
        .tempdir()?;
    let mut children = Children::default();
    let outcome = {
        let drive = drive(
            settings,
            host,
            out,
            state.path(),
            &shares,
            &mut children,
            &mut report,
        );
        tokio::select! {
            r = drive => r,
            () = interrupted() => Err(BenchError::Spike("interrupted".into())),
        }
    };
    let grace = Duration::from_secs(20);
    report.shutdown_notes = children.stop(grace).await;
    report.wall_s = started.elapsed().as_secs_f64();
    report.load_average_end = load_average();
    if let Err(e) = &outcome {
        report.stop_reason = format!("error: {e}");
    }
    report.highest_passing_rate = report
        .rows
        .iter()
        .filter(|r| r.phase == "step" && r.failed.is_none())
        .map(|r| r.offered_rate)
        .reduce(f64::max);
    let json = serde_json::to_string_pretty(&report).map_err(|e| BenchError::Parse {
        path: out.join("results.json"),
        message: e.to_string(),
    })?;
    write_file(&out.join("results.json"), json.as_bytes())?;
    write_file(&out.join("summary.md"), report.to_markdown().as_bytes())?;
    drop(state);
    outcome.map(|()| report)
}

/// The three load averages of `/proc/loadavg`.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Ctrl-C or SIGTERM.
pub async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Fails early, with the way out, when a process would need more sockets than it may open.
fn check_limits(settings: &SpikeSettings, shares: &[usize]) -> Result<(), BenchError> {
    let per_worker = shares.iter().copied().max().unwrap_or(0);
    let per_gateway = settings.sessions.div_ceil(settings.gateways);
    if let Some(limit) = machine::open_files_limit().and_then(|l| usize::try_from(l).ok()) {
        if per_worker + FD_HEADROOM > limit {
            return Err(BenchError::Usage(format!(
                "{per_worker} sessions per worker process need about {} file descriptors, but \
                 the open-files limit is {limit}: use more workers (--workers {} or a lower \
                 --sockets-per-worker) or raise `ulimit -n`",
                per_worker + FD_HEADROOM,
                settings
                    .sessions
                    .div_ceil(limit.saturating_sub(FD_HEADROOM).max(1))
            )));
        }
        if per_gateway + FD_HEADROOM > limit {
            return Err(BenchError::Usage(format!(
                "{per_gateway} sessions per gateway process need about {} file descriptors, but \
                 the open-files limit is {limit}: use more gateways (--gateways {})",
                per_gateway + FD_HEADROOM,
                settings
                    .sessions
                    .div_ceil(limit.saturating_sub(FD_HEADROOM).max(1))
            )));
        }
    }
    if let Some(ports) = procs::ephemeral_ports()
        && per_gateway > ports.saturating_sub(1000)
    {
        return Err(BenchError::Usage(format!(
            "{per_gateway} sessions per gateway exceed the {ports} ephemeral ports loopback has \
             per destination port (net.ipv4.ip_local_port_range, keeping 1000 spare): use more \
             --gateways"
        )));
    }
    Ok(())
}

fn env(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[allow(
    clippy::too_many_lines,
    reason = "one linear script of the spike's phases; splitting it would scatter the order"
)]
async fn drive(
    settings: &SpikeSettings,
    host: &SpikeHost,
    out: &Path,
    state: &Path,
    shares: &[usize],
    children: &mut Children,
    report: &mut SpikeReport,
) -> Result<(), BenchError> {
    let g = settings.gateways;
    let ports = procs::ports(settings.base_port, DAEMONS.len() + 2 * g)?;
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let run = settings.estimated_run();
    let per_gateway = settings.sessions.div_ceil(g);
    // Shared by every mesh process: the zero-latency mesh of scripts/bench-load.sh.
    let mut common = vec![
        env("MANGAASSIST_GENERATION__LATENCY_PROFILE", "zero"),
        env("MANGAASSIST_PRECOMPUTE__RUN_AT_START", "false"),
        env("MANGAASSIST_PRECOMPUTE__SCHEDULER", "false"),
        env("MANGAASSIST_GATEWAY__PREDICT_FOLLOW_UPS", "false"),
        env("MANGAASSIST_GATEWAY__LIMITS__USER_MESSAGES_PER_MINUTE", 0),
        env(
            "MANGAASSIST_GATEWAY__LIMITS__CONNECTION_MESSAGES_PER_SECOND",
            1000,
        ),
        env(
            "MANGAASSIST_GATEWAY__LIMITS__MAX_CONNECTIONS",
            per_gateway + 1024,
        ),
        // Held sessions are idle between messages for longer than a chat user would be;
        // the default idle timeout (600 s) must not end them before the run does.
        env(
            "MANGAASSIST_GATEWAY__STREAM__IDLE_TIMEOUT_SECONDS",
            (run.as_secs() + 300).max(600),
        ),
    ];
    if std::env::var_os("MANGAASSIST_LOG").is_none() {
        common.push(env("MANGAASSIST_LOG", "warn"));
    }
    if let Some(c) = &host.config_file {
        common.push(env("MANGAASSIST_CONFIG", c.display()));
    }
    for (i, d) in DAEMONS.iter().enumerate() {
        let key = d.to_uppercase();
        common.push(env(
            &format!("MANGAASSIST_MESH__{key}__LISTEN"),
            addr(ports[i]),
        ));
        common.push(env(
            &format!("MANGAASSIST_MESH__{key}__ENDPOINT"),
            format!("http://{}", addr(ports[i])),
        ));
    }
    // A fresh secret: the spike's tokens are worthless outside it.
    let auth = host.token_key.as_ref().map(|k| {
        let bytes: [u8; 32] = rand::rng().random();
        AuthJob {
            secret: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            issuer: k.issuer().map(str::to_string),
            audience: k.audience().map(str::to_string),
        }
    });
    if let Some(a) = &auth {
        common.push(env("MANGAASSIST_GATEWAY__AUTH__SECRET", &a.secret));
    }
    let ready = Duration::from_secs(settings.ready_timeout_s);

    // The daemons, one process.
    let t = Instant::now();
    let mut args = vec!["serve"];
    args.extend(DAEMONS);
    let mut denv = common.clone();
    denv.push(env(
        "MANGAASSIST_DATA__STATE_DIR",
        state.join("daemons").display(),
    ));
    // The daemons never serve a gateway here, so its ports only need to differ from theirs.
    denv.push(env("MANGAASSIST_GATEWAY__LISTEN", "127.0.0.1:0"));
    denv.push(env("MANGAASSIST_GATEWAY__INTERNAL_LISTEN", "127.0.0.1:0"));
    let (daemons, _) = Proc::spawn(
        "daemons",
        &host.exe,
        &args,
        &denv,
        out.join("daemons.log"),
        false,
    )?;
    report.processes.push(ProcessInfo {
        role: "daemons".into(),
        pid: daemons.pid,
        addrs: ports[..DAEMONS.len()]
            .iter()
            .map(|&p| addr(p).to_string())
            .collect(),
        log: daemons.log.clone(),
        sessions: None,
    });
    let daemons = children.daemons.insert(daemons);
    let daemon_addrs: Vec<SocketAddr> = ports[..DAEMONS.len()].iter().map(|&p| addr(p)).collect();
    procs::wait_healthy(daemons, &daemon_addrs, ready).await?;
    progress(&format!(
        "daemons ready (pid {}) in {:.1} s",
        daemons.pid,
        t.elapsed().as_secs_f64()
    ));

    // The gateways, each its own process and port.
    let t = Instant::now();
    let mut urls = Vec::new();
    for i in 0..g {
        let public = addr(ports[DAEMONS.len() + 2 * i]);
        let internal = addr(ports[DAEMONS.len() + 2 * i + 1]);
        let mut genv = common.clone();
        genv.push(env(
            "MANGAASSIST_DATA__STATE_DIR",
            state.join(format!("gateway-{i}")).display(),
        ));
        genv.push(env("MANGAASSIST_GATEWAY__LISTEN", public));
        genv.push(env("MANGAASSIST_GATEWAY__INTERNAL_LISTEN", internal));
        let (p, _) = Proc::spawn(
            &format!("gateway-{i}"),
            &host.exe,
            &["serve", "gateway"],
            &genv,
            out.join(format!("gateway-{i}.log")),
            false,
        )?;
        let url = format!("ws://{public}/ws");
        report.processes.push(ProcessInfo {
            role: "gateway".into(),
            pid: p.pid,
            addrs: vec![url.clone(), format!("http://{internal}/")],
            log: p.log.clone(),
            sessions: None,
        });
        urls.push(url);
        children.gateways.push(p);
    }
    for (i, gw) in children.gateways.iter_mut().enumerate() {
        let public = addr(ports[DAEMONS.len() + 2 * i]);
        let internal = addr(ports[DAEMONS.len() + 2 * i + 1]);
        procs::wait_healthy(gw, &[public, internal], ready).await?;
    }
    progress(&format!(
        "{g} gateways ready in {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        urls.join(" ")
    ));

    // The load generator: worker processes of this binary.
    let (tx, mut rx) = mpsc::unbounded_channel::<WorkerLine>();
    let run_id = format!("{:08x}", rand::rng().random::<u32>());
    let mut first = 0;
    for (i, &n) in shares.iter().enumerate() {
        let (mut p, stdout) = Proc::spawn(
            &format!("worker-{i}"),
            &host.exe,
            &["bench", "spike-worker"],
            &[],
            out.join(format!("worker-{i}.log")),
            true,
        )?;
        let stdout = stdout.ok_or_else(|| BenchError::Spike(format!("worker-{i}: no stdout")))?;
        tokio::spawn(read_events(i, stdout, tx.clone()));
        let job = OpenJob {
            worker: i,
            gateways: urls.clone(),
            first_session: first,
            sessions: n,
            auth: auth.clone(),
            token_ttl_s: run.as_secs() + 3600,
            run_id: run_id.clone(),
            data_dir: host.data_dir.clone(),
            seed: settings.seed.wrapping_add(i as u64),
            unique: settings.unique,
            timeout_ms: settings.timeout_ms,
            concurrency: 64,
        };
        first += n;
        send(&mut p, &Command::Open(job)).await?;
        report.processes.push(ProcessInfo {
            role: "worker".into(),
            pid: p.pid,
            addrs: Vec::new(),
            log: p.log.clone(),
            sessions: Some(n),
        });
        children.workers.push(p);
    }
    drop(tx);

    // Phase 1: open and hold.
    let t = Instant::now();
    let opened = collect(&mut rx, children, Duration::from_secs(600), "open").await?;
    let mut phase = OpenPhase {
        sessions: settings.sessions,
        open_s: t.elapsed().as_secs_f64(),
        ..OpenPhase::default()
    };
    for e in opened {
        if let Event::Opened {
            open,
            failed,
            first_error,
            ..
        } = e
        {
            phase.opened += open;
            phase.failed += failed;
            if phase.first_error.is_none() {
                phase.first_error = first_error;
            }
        }
    }
    phase.mesh_rss_mib = children.mesh_rss_mib();
    phase.loadgen_rss_mib = children.loadgen_rss_mib();
    progress(&format!(
        "opened {} of {} sessions in {:.1} s (mesh RSS {:.0} MiB)",
        phase.opened, phase.sessions, phase.open_s, phase.mesh_rss_mib
    ));
    let open_failed = phase.failed > 0;
    report.open = Some(phase.clone());
    if open_failed {
        report.stop_reason = format!(
            "{} of {} sessions could not be opened (first: {})",
            phase.failed,
            phase.sessions,
            phase.first_error.unwrap_or_default()
        );
        return Ok(());
    }

    let hold = Duration::from_secs_f64(settings.hold_s);
    progress(&format!(
        "holding {} sessions for {:.0} s",
        settings.sessions, settings.hold_s
    ));
    let before = Usage::now(children);
    for w in &mut children.workers {
        send(
            w,
            &Command::Hold {
                duration_ms: hold.as_millis() as u64,
            },
        )
        .await?;
    }
    let held = collect(&mut rx, children, hold + Duration::from_secs(60), "hold").await?;
    let mut h = HoldReport {
        open_min: 0,
        ..HoldReport::default()
    };
    for e in held {
        if let Event::Held(r) = e {
            h.open_min += r.open_min;
            h.open_end += r.open_end;
            h.pinged += r.pinged;
            h.ping_us.extend(r.ping_us);
        }
    }
    let mut row = Row {
        phase: "hold".into(),
        duration_s: settings.hold_s,
        sessions_open: h.open_min,
        pinged: Some(h.pinged),
        ping_p99_ms: pct(&h.ping_us, 0.99),
        errors: (settings.sessions - h.open_min.min(settings.sessions)) as u64,
        ..Row::default()
    };
    before.fill(children, &mut row);
    if h.open_min < settings.sessions || h.pinged < settings.sessions {
        row.failed = Some(format!(
            "{} of {} sessions stayed open through the hold, {} answered the ping",
            h.open_min, settings.sessions, h.pinged
        ));
    }
    progress(&format!(
        "hold: {} open, {} answered a ping; mesh RSS {:.0} MiB",
        h.open_min, h.pinged, row.mesh_rss_mib
    ));
    let hold_failed = row.failed.clone();
    report.rows.push(row);
    if let Some(why) = hold_failed {
        report.stop_reason = format!("hold: {why}");
        return Ok(());
    }
    children.check_mesh()?;

    // Phase 2: message-rate steps on top of the held sessions.
    let step_duration = Duration::from_secs_f64(settings.step_duration_s);
    for (i, &rate) in settings.steps.iter().enumerate() {
        let before = Usage::now(children);
        for (k, (w, share)) in children.workers.iter_mut().zip(shares).enumerate() {
            let cmd = Command::Step {
                index: i + 1,
                rate: rate * *share as f64 / settings.sessions as f64,
                duration_ms: step_duration.as_millis() as u64,
                // Independent arrivals per worker and step, reproducible from --seed.
                seed: settings
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add((i * 1000 + k) as u64),
            };
            send(w, &cmd).await?;
        }
        let wait =
            step_duration + Duration::from_millis(settings.timeout_ms) + Duration::from_secs(60);
        let reports = collect(&mut rx, children, wait, &format!("step {}", i + 1)).await?;
        let mut row = step_row(i + 1, rate, settings, reports);
        before.fill(children, &mut row);
        row.mesh_cpu_ms_per_message =
            (row.answered > 0).then(|| row.mesh_cpu_s * 1e3 / row.answered as f64);
        row.failed = verdict(&row, settings);
        progress(&format!(
            "step {}: {:.0} msg/s offered, {:.0} answered/s, first token p50 {} p99 {}, {} errors{}",
            i + 1,
            rate,
            row.achieved_rate,
            row.ttft_p50_ms.map_or("–".into(), fmt_ms),
            row.ttft_p99_ms.map_or("–".into(), fmt_ms),
            row.errors,
            row.failed
                .as_ref()
                .map_or(String::new(), |f| format!(" — stop: {f}"))
        ));
        let failed = row.failed.clone();
        report.rows.push(row);
        if let Some(why) = failed {
            report.stop_reason = format!("step {} ({rate:.0} msg/s): {why}", i + 1);
            return Ok(());
        }
        children.check_mesh()?;
    }
    report.stop_reason = format!(
        "every step passed (up to {:.0} msg/s)",
        settings.steps.iter().copied().fold(0.0, f64::max)
    );
    Ok(())
}

/// Why a step stops the spike, if it does.
fn verdict(row: &Row, settings: &SpikeSettings) -> Option<String> {
    let mut why = Vec::new();
    if let Some(p99) = row.ttft_p99_ms
        && p99 > settings.stop_p99_ms
    {
        why.push(format!(
            "first-token p99 {} > {} ms",
            fmt_ms(p99),
            settings.stop_p99_ms
        ));
    }
    if row.answered == 0 {
        why.push("nothing answered".into());
    }
    if row.errors > 0 {
        let codes: Vec<String> = row
            .errors_by_code
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        why.push(format!("{} errors ({})", row.errors, codes.join(", ")));
    }
    if row.degraded > 0 && settings.stop_on_degraded {
        why.push(format!(
            "{} degraded answers (a stage hit its deadline, failed or had its circuit open)",
            row.degraded
        ));
    }
    if row.lost_chunks + row.duplicate_chunks > 0 {
        why.push(format!(
            "{} lost and {} repeated chunks",
            row.lost_chunks, row.duplicate_chunks
        ));
    }
    if row.dropped > 0 {
        why.push(format!(
            "{} arrivals dropped (every session had 4 answers in flight)",
            row.dropped
        ));
    }
    if row.sessions_open < settings.sessions {
        why.push(format!(
            "{} of {} sessions still open",
            row.sessions_open, settings.sessions
        ));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

fn step_row(step: usize, rate: f64, settings: &SpikeSettings, events: Vec<Event>) -> Row {
    let mut row = Row {
        phase: "step".into(),
        step,
        offered_rate: rate,
        duration_s: settings.step_duration_s,
        ..Row::default()
    };
    let mut ttft: Vec<u32> = Vec::new();
    for e in events {
        let Event::Step(r) = e else { continue };
        let StepReport {
            sent,
            answered,
            dropped,
            late,
            max_late_ms,
            errors,
            degraded,
            lost_chunks,
            duplicate_chunks,
            index_faults,
            open_end,
            ttft_us,
            ..
        } = r;
        row.sent += sent;
        row.answered += answered;
        row.dropped += dropped;
        row.late += late;
        row.max_late_ms = row.max_late_ms.max(max_late_ms);
        for (code, n) in errors {
            *row.errors_by_code.entry(code).or_default() += n;
        }
        row.degraded += degraded;
        row.lost_chunks += lost_chunks;
        row.duplicate_chunks += duplicate_chunks;
        row.index_faults += index_faults;
        row.sessions_open += open_end;
        ttft.extend(ttft_us);
    }
    row.errors = row.errors_by_code.values().sum();
    row.timeouts = row.errors_by_code.get("timeout").copied().unwrap_or(0);
    row.achieved_rate = row.answered as f64 / settings.step_duration_s;
    row.ttft_p50_ms = pct(&ttft, 0.5);
    row.ttft_p99_ms = pct(&ttft, 0.99);
    row.ttft_max_ms = ttft.iter().max().map(|&m| f64::from(m) / 1e3);
    row
}

/// Percentile of microsecond samples, in milliseconds.
fn pct(us: &[u32], q: f64) -> Option<f64> {
    let ms: Vec<f64> = us.iter().map(|&u| f64::from(u) / 1e3).collect();
    mangaassist_stats::percentile(&ms, q)
}

/// CPU counters at the start of a phase.
struct Usage {
    at: Instant,
    mesh_cpu_s: f64,
    loadgen_cpu_s: f64,
}

impl Usage {
    fn now(c: &Children) -> Self {
        Self {
            at: Instant::now(),
            mesh_cpu_s: c.mesh_cpu_s(),
            loadgen_cpu_s: c.loadgen_cpu_s(),
        }
    }

    /// Fills the phase's resource columns, measured from `self` to now.
    fn fill(&self, c: &Children, row: &mut Row) {
        row.mesh_cpu_s = c.mesh_cpu_s() - self.mesh_cpu_s;
        row.loadgen_cpu_s = c.loadgen_cpu_s() - self.loadgen_cpu_s;
        row.mesh_rss_mib = c.mesh_rss_mib();
        row.loadgen_rss_mib = c.loadgen_rss_mib();
        // The phase's own length: from its first command to its last report.
        if row.phase == "hold" {
            row.duration_s = self.at.elapsed().as_secs_f64();
        }
    }
}

async fn send(w: &mut Proc, cmd: &Command) -> Result<(), BenchError> {
    let mut line = serde_json::to_string(cmd).map_err(|e| BenchError::Spike(e.to_string()))?;
    line.push('\n');
    let name = w.name.clone();
    let stdin = w
        .stdin
        .as_mut()
        .ok_or_else(|| BenchError::Spike(format!("{name}: stdin closed")))?;
    let written = async {
        stdin.write_all(line.as_bytes()).await?;
        stdin.flush().await
    };
    match written.await {
        Ok(()) => Ok(()),
        Err(e) => Err(match w.exited() {
            Some(status) => w.died(status),
            None => BenchError::Spike(format!("{name}: cannot send a command: {e}")),
        }),
    }
}

/// Forwards a worker's events; a line that is not an event, or the end of its output, is
/// an error for that worker.
async fn read_events(
    worker: usize,
    stdout: tokio::process::ChildStdout,
    tx: mpsc::UnboundedSender<WorkerLine>,
) {
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let item = match lines.next_line().await {
            Ok(Some(line)) if line.trim().is_empty() => continue,
            Ok(Some(line)) => serde_json::from_str::<Event>(&line)
                .map_err(|e| format!("unreadable event ({e}): {}", truncate(&line, 200))),
            Ok(None) => Err("its output ended (the process exited)".to_string()),
            Err(e) => Err(format!("cannot read its output: {e}")),
        };
        let end = item.is_err();
        if tx.send((worker, item)).is_err() || end {
            return;
        }
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// One event from every worker, in worker order.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<WorkerLine>,
    children: &mut Children,
    timeout: Duration,
    what: &str,
) -> Result<Vec<Event>, BenchError> {
    let n = children.workers.len();
    let mut got: Vec<Option<Event>> = (0..n).map(|_| None).collect();
    let deadline = tokio::time::Instant::now() + timeout;
    while got.iter().any(Option::is_none) {
        let next = tokio::time::timeout_at(deadline, rx.recv()).await;
        let (i, item) = match next {
            Ok(Some(x)) => x,
            Ok(None) => return Err(BenchError::Spike(format!("{what}: every worker is gone"))),
            Err(_) => {
                let missing: Vec<String> = got
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.is_none())
                    .map(|(i, _)| format!("worker-{i}"))
                    .collect();
                return Err(BenchError::Spike(format!(
                    "{what}: no report from {} within {} s",
                    missing.join(", "),
                    timeout.as_secs()
                )));
            }
        };
        let worker = &mut children.workers[i];
        match item {
            Ok(Event::Failed { message }) => {
                return Err(BenchError::Spike(format!(
                    "{what}: {} failed: {message}",
                    worker.name
                )));
            }
            Ok(e) => got[i] = Some(e),
            Err(why) => {
                let tail = procs::log_tail(&worker.log, 15);
                return Err(BenchError::Spike(format!(
                    "{what}: {}: {why}; last lines of {}:\n{tail}",
                    worker.name,
                    worker.log.display()
                )));
            }
        }
    }
    Ok(got.into_iter().flatten().collect())
}

fn progress(msg: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "spike: {msg}");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings() -> SpikeSettings {
        SpikeSettings {
            sessions: 25_000,
            gateways: 2,
            hold_s: 60.0,
            steps: vec![100.0, 250.0],
            step_duration_s: 20.0,
            stop_p99_ms: 50.0,
            stop_on_degraded: true,
            timeout_ms: 10_000,
            workers: None,
            sockets_per_worker: 9_000,
            base_port: None,
            ready_timeout_s: 180,
            unique: true,
            seed: 1,
            quick: false,
        }
    }

    #[test]
    fn sessions_are_shared_out_below_the_socket_cap() {
        let s = settings();
        assert_eq!(s.worker_shares(), vec![8334, 8333, 8333]);
        let mut s = settings();
        s.sessions = 10;
        s.workers = Some(3);
        assert_eq!(s.worker_shares(), vec![4, 3, 3]);
        s.workers = Some(50);
        assert_eq!(
            s.worker_shares().len(),
            10,
            "never more workers than sessions"
        );
    }

    #[test]
    fn limits_name_the_way_out() {
        let mut s = settings();
        s.sockets_per_worker = 1_000_000;
        let limit = machine::open_files_limit().unwrap() as usize;
        if limit < 25_000 + FD_HEADROOM {
            let e = check_limits(&s, &s.worker_shares())
                .unwrap_err()
                .to_string();
            assert!(e.contains("--workers"), "{e}");
        }
        let mut s = settings();
        s.gateways = 1;
        s.sessions = 60_000;
        s.sockets_per_worker = 1000;
        let e = check_limits(&s, &s.worker_shares())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--gateways"), "{e}");
    }

    #[test]
    fn a_step_stops_on_p99_or_any_error() {
        let s = settings();
        let ok = Row {
            phase: "step".into(),
            answered: 10,
            sessions_open: 25_000,
            ttft_p99_ms: Some(12.0),
            ..Row::default()
        };
        assert_eq!(verdict(&ok, &s), None);
        let slow = Row {
            ttft_p99_ms: Some(51.0),
            ..ok.clone()
        };
        assert!(verdict(&slow, &s).unwrap().contains("p99"));
        let mut broken = ok.clone();
        broken.errors = 1;
        broken.errors_by_code.insert("timeout".into(), 1);
        assert!(verdict(&broken, &s).unwrap().contains("timeout 1"));
        let lost = Row {
            lost_chunks: 1,
            ..ok
        };
        assert!(verdict(&lost, &s).unwrap().contains("lost"));
        let degraded = Row {
            lost_chunks: 0,
            degraded: 3,
            ..lost
        };
        assert!(verdict(&degraded, &s).unwrap().contains("3 degraded"));
        let tolerant = SpikeSettings {
            stop_on_degraded: false,
            ..s
        };
        assert_eq!(verdict(&degraded, &tolerant), None);
    }

    #[test]
    fn percentiles_merge_raw_samples_of_all_workers() {
        let events = vec![
            Event::Step(StepReport {
                sent: 3,
                answered: 3,
                open_end: 10,
                ttft_us: vec![1000, 2000, 3000],
                ..StepReport::default()
            }),
            Event::Step(StepReport {
                sent: 2,
                answered: 1,
                open_end: 10,
                errors: [("timeout".to_string(), 1)].into(),
                ttft_us: vec![100_000],
                ..StepReport::default()
            }),
        ];
        let row = step_row(1, 100.0, &settings(), events);
        assert_eq!(
            (row.sent, row.answered, row.errors, row.timeouts),
            (5, 4, 1, 1)
        );
        assert_eq!(row.sessions_open, 20);
        // Linear interpolation over the merged sample {1, 2, 3, 100} ms.
        assert_eq!(row.ttft_p50_ms, Some(2.5));
        assert_eq!(row.ttft_max_ms, Some(100.0));
    }
}
