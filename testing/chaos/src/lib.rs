//! `mangaassist chaos run`: the rehearsal of the seeds' failure stories at load. The mesh runs
//! as separate processes (one per daemon, two gateway slots, Redis), hundreds of
//! conversations chat with it, and one fault at a time breaks a part of it for a fixed
//! window and is healed. Each fault gets a row: did every customer get an answer, on which
//! rung of the degradation ladder, did any chunk go missing or come twice, how fast was the
//! first token meanwhile, and how long after the heal the gateway's breakers closed.
//! `chaos soak` holds a steady load for a long time and watches memory, descriptors and the
//! first-token tail for drift.

pub mod faults;
pub mod load;
pub mod mesh;
pub mod net;
mod report;
mod soak;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use faults::{Action, Fault};
use load::{Deadlines, Fleet, Shared};
use mesh::{DAEMONS, Layout, Mesh};
use net::{NetFault, Network, Proxy};
pub use report::{Report, Row};
pub use soak::{SoakReport, SoakSettings, soak};

#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("cannot start the mesh: {0}")]
    Start(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Bench(#[from] mangaassist_bench::BenchError),
}

/// What `chaos run` does.
#[derive(Debug, Clone)]
pub struct Settings {
    pub quick: bool,
    pub out: PathBuf,
    /// Conversations held throughout.
    pub conversations: usize,
    /// How long each fault stays in force (the partition always lasts 10 s).
    pub window: Duration,
    /// Quiet time before each fault (the baseline the saved-turn check reads).
    pub settle: Duration,
    pub warmup: Duration,
    pub roll_streams: usize,
    pub disconnects: u64,
    /// Think time between a customer's questions.
    pub think: (Duration, Duration),
    /// Only faults whose name contains one of these.
    pub only: Vec<String>,
    /// A fault that cannot run here (no root, no nftables) is a missed target, not a skip:
    /// CI must not pass by leaving faults out.
    pub strict: bool,
    /// The `mangaassist` binary the mesh runs as.
    pub exe: PathBuf,
    /// The repository's `data/` (the bench query mix).
    pub data_dir: PathBuf,
    pub redis_bin: String,
    pub command: String,
}

impl Settings {
    pub fn new(quick: bool, out: PathBuf, exe: PathBuf, data_dir: PathBuf) -> Self {
        Self {
            quick,
            out,
            conversations: 200,
            window: Duration::from_secs(if quick { 4 } else { 10 }),
            settle: Duration::from_secs(2),
            warmup: Duration::from_secs(if quick { 4 } else { 15 }),
            // The quick run rolls under fewer streams: CI runs it on a debug build.
            roll_streams: if quick { 300 } else { 1_000 },
            disconnects: if quick { 200 } else { 1_000 },
            think: (Duration::from_millis(500), Duration::from_millis(3_000)),
            only: Vec::new(),
            strict: false,
            exe,
            data_dir,
            redis_bin: std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()),
            command: String::new(),
        }
    }

    pub fn faults(&self) -> Vec<Fault> {
        let all = if self.quick {
            faults::quick(self.roll_streams, self.disconnects)
        } else {
            faults::full(self.roll_streams, self.disconnects)
        };
        faults::select(all, &self.only)
    }
}

fn hex_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Cancelled by Ctrl-C or SIGTERM: the run then heals what it broke, stops every process it
/// started and writes what it measured, rather than leaving a mesh and a Redis behind.
pub(crate) fn interrupted() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    #[allow(
        clippy::disallowed_methods,
        reason = "waits for a signal for the life of the run; it only cancels a token"
    )]
    tokio::spawn(async move {
        mangaassist_bench::spike::interrupted().await;
        progress("interrupted: healing and stopping the mesh");
        t.cancel();
    });
    token
}

fn progress(msg: &str) {
    eprintln!("chaos: {msg}");
}

/// The environment of every mesh process: the ports, the Redis backends, fresh secrets and
/// limits sized for the rehearsal's customers (one user each).
fn mesh_env(
    ports: &BTreeMap<&'static str, u16>,
    proxy_ports: &BTreeMap<&'static str, u16>,
    redis_port: u16,
    jwt: &str,
    service: &str,
    max_connections: usize,
    slow_model: bool,
) -> Vec<(String, String)> {
    let mut e: Vec<(String, String)> = vec![
        ("MANGAASSIST_GATEWAY__AUTH__SECRET".into(), jwt.into()),
        ("MANGAASSIST_MESH__SERVICE_SECRET".into(), service.into()),
        (
            "MANGAASSIST_REDIS__URL".into(),
            format!("redis://127.0.0.1:{redis_port}"),
        ),
        ("MANGAASSIST_CACHE__BACKEND".into(), "redis".into()),
        ("MANGAASSIST_GATEWAY__RESUME_BACKEND".into(), "redis".into()),
        (
            "MANGAASSIST_GATEWAY__LIMITS__BACKEND".into(),
            "redis".into(),
        ),
        // Each customer is its own user and asks at most every half second; the per-user
        // minute limit is about abuse, which this is not.
        (
            "MANGAASSIST_GATEWAY__LIMITS__USER_MESSAGES_PER_MINUTE".into(),
            "0".into(),
        ),
        (
            "MANGAASSIST_GATEWAY__LIMITS__MAX_CONNECTIONS".into(),
            max_connections.to_string(),
        ),
        (
            "MANGAASSIST_PRECOMPUTE__RUN_AT_START".into(),
            "false".into(),
        ),
    ];
    if slow_model {
        // A model at the pace of a busy hosted LLM (the simulated tiers default to 120 and
        // 60 tokens/s): answers stream for seconds, so a roll can find 1,000 of them in flight.
        // A tier is set whole (its fields have no defaults of their own).
        let g = mangaassist_config::Config::default().generation;
        for (tier, profile, tps) in [("FAST", &g.fast, 50), ("SMART", &g.smart, 30)] {
            let key = |f: &str| format!("MANGAASSIST_GENERATION__{tier}__{f}");
            e.push((key("MODEL"), profile.model.clone()));
            e.push((key("FIRST_TOKEN_MS"), profile.first_token_ms.to_string()));
            e.push((key("TOKENS_PER_SECOND"), tps.to_string()));
            e.push((key("JITTER"), profile.jitter.to_string()));
        }
    }
    if std::env::var_os("MANGAASSIST_LOG").is_none() {
        e.push(("MANGAASSIST_LOG".into(), "warn".into()));
    }
    for (d, p) in ports {
        let key = d.to_uppercase();
        e.push((
            format!("MANGAASSIST_MESH__{key}__LISTEN"),
            mesh::addr(*p).to_string(),
        ));
        // Callers reach the daemon through its proxy: the rehearsal's network.
        e.push((
            format!("MANGAASSIST_MESH__{key}__ENDPOINT"),
            format!("http://{}", mesh::addr(proxy_ports[d])),
        ));
    }
    e
}

/// A mesh, its customers and the tools to hurt it: what `run` and `soak` share.
pub(crate) struct Stage {
    pub mesh: Mesh,
    pub fleet: Fleet,
    pub network: Network,
    /// The proxy each daemon is reached through, by daemon.
    pub proxies: BTreeMap<&'static str, Proxy>,
    /// Where the memory file's small disk is mounted (`None` = no disk-full fault here).
    pub memory_disk: Option<PathBuf>,
    _state: tempfile::TempDir,
}

#[allow(
    clippy::too_many_arguments,
    reason = "the run's and the soak's settings differ; each of the two callers passes its own"
)]
pub(crate) async fn stage(
    out: &Path,
    exe: &Path,
    data_dir: &Path,
    redis_bin: &str,
    conversations: usize,
    max_connections: usize,
    think: (Duration, Duration),
    slow_model: bool,
) -> Result<Stage, ChaosError> {
    std::fs::create_dir_all(out.join("logs")).map_err(|e| ChaosError::Io(out.to_path_buf(), e))?;
    let state = tempfile::Builder::new()
        .prefix("mangaassist-chaos-")
        .tempdir()
        .map_err(|e| ChaosError::Io(std::env::temp_dir(), e))?;
    Network::loopback_up().map_err(ChaosError::Start)?;
    let network = Network::setup();
    if let Some(why) = &network.unavailable {
        progress(&format!("packet loss and partitions unavailable: {why}"));
    }
    let memfs = state.path().join("memory-disk");
    let memory_disk = match net::mount_small_tmpfs(&memfs, 512) {
        Ok(()) => Some(memfs.clone()),
        Err(why) => {
            progress(&format!("memory disk-full fault unavailable: {why}"));
            None
        }
    };
    let memory_file = match &memory_disk {
        Some(d) => d.join("memory.redb"),
        None => state.path().join("memory").join("memory.redb"),
    };
    let n = DAEMONS.len();
    let ports = mangaassist_bench::spike::procs::ports(None, 2 * n + 5)?;
    let daemon_ports: BTreeMap<&'static str, u16> =
        DAEMONS.iter().copied().zip(ports.iter().copied()).collect();
    let mut proxies = BTreeMap::new();
    for (i, d) in DAEMONS.iter().enumerate() {
        let p = Proxy::start(ports[n + 5 + i], ports[i])
            .await
            .map_err(|e| ChaosError::Start(format!("proxy for {d}: {e}")))?;
        proxies.insert(*d, p);
    }
    let proxy_ports: BTreeMap<&'static str, u16> =
        proxies.iter().map(|(d, p)| (*d, p.port)).collect();
    let jwt = hex_secret();
    let service = hex_secret();
    let redis_port = ports[n + 4];
    let layout = Layout {
        exe: exe.to_path_buf(),
        logs: out.join("logs"),
        state: state.path().to_path_buf(),
        env: mesh_env(
            &daemon_ports,
            &proxy_ports,
            redis_port,
            &jwt,
            &service,
            max_connections,
            slow_model,
        ),
        daemon_ports,
        gateway_ports: [(ports[n], ports[n + 1]), (ports[n + 2], ports[n + 3])],
        redis_port,
        redis_bin: redis_bin.to_string(),
        memory_file,
    };
    let mut mesh = Mesh::new(layout, Duration::from_secs(180));
    let t = Instant::now();
    mesh.start_redis().await?;
    for d in DAEMONS {
        mesh.spawn_daemon(d)?;
    }
    for d in DAEMONS {
        mesh.wait_daemon(d, Duration::from_secs(180)).await?;
    }
    mesh.start_gateway(0).await?;
    mesh.start_gateway(1).await?;
    progress(&format!(
        "mesh up in {:.1} s: {} processes ({})",
        t.elapsed().as_secs_f64(),
        mesh.pids().len(),
        mesh.pids()
            .iter()
            .map(|(n, p)| format!("{n}={p}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let cfg = mangaassist_config::Config::default();
    let key = mangaassist_auth::JwtKey::new(jwt.as_bytes())
        .map_err(|e| ChaosError::Start(e.to_string()))?
        .with_issuer(cfg.gateway.auth.issuer.clone())
        .with_audience(cfg.gateway.auth.audience.clone());
    let mix = mangaassist_bench::QueryMix::load(data_dir, &[], 1, 17)?;
    let (burst, _) = tokio::sync::watch::channel(0u64);
    let shared = Shared {
        urls: mesh.gateway_urls(),
        active: 0.into(),
        key,
        mix,
        deadlines: Deadlines::from_config(&cfg),
        outcomes: parking_lot::Mutex::new(Vec::new()),
        disconnects_wanted: 0.into(),
        disconnects_made: 0.into(),
        streaming: 0.into(),
        burst,
        burst_spread: Duration::from_secs(2),
        think,
        nonce: format!("{:08x}", rand::random::<u32>()),
    };
    let mut fleet = Fleet::new(shared);
    fleet.grow_to(conversations);
    Ok(Stage {
        mesh,
        fleet,
        network,
        proxies,
        memory_disk,
        _state: state,
    })
}

/// Runs the rehearsal, writes `results.json` and `results.md` into `settings.out`.
pub async fn run(settings: &Settings) -> Result<Report, ChaosError> {
    let faults = settings.faults();
    if faults.is_empty() {
        return Err(ChaosError::Usage(format!(
            "no fault matches --only {}",
            settings.only.join(",")
        )));
    }
    let started = Instant::now();
    let max_conn = settings.roll_streams.max(settings.conversations) * 2 + 1_024;
    let mut st = stage(
        &settings.out,
        &settings.exe,
        &settings.data_dir,
        &settings.redis_bin,
        settings.conversations,
        max_conn,
        settings.think,
        // The quick run (CI, a debug build) keeps the shipped pace: more, smaller frames
        // per answer would overload two cores running an unoptimised gateway.
        !settings.quick,
    )
    .await?;
    progress(&format!(
        "{} conversations chatting; warming up for {} s",
        settings.conversations,
        settings.warmup.as_secs()
    ));
    let stop = interrupted();
    tokio::select! {
        () = tokio::time::sleep(settings.warmup) => {}
        () = stop.cancelled() => {}
    }
    let mut plans: Vec<Played> = Vec::new();
    let mut outcome = Ok(());
    for (i, fault) in faults.iter().enumerate() {
        if stop.is_cancelled() {
            outcome = Err(ChaosError::Usage("interrupted".into()));
            break;
        }
        let since = plans.last().map_or(started, |p| p.to);
        match play(&mut st, settings, fault, since).await {
            Ok(p) => {
                progress(&format!(
                    "[{}/{}] {}: healed, breakers closed after {}{}",
                    i + 1,
                    faults.len(),
                    fault.name,
                    p.recovery_s
                        .map_or("(not within 60 s)".to_string(), |s| format!("{s:.1} s")),
                    p.notes.iter().map(|n| format!("; {n}")).collect::<String>()
                ));
                plans.push(p);
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    progress("letting the last answers finish");
    let Stage {
        mut mesh,
        fleet,
        mut network,
        ..
    } = st;
    let _ = network.heal();
    let shared = fleet.shared.clone();
    fleet.finish().await;
    let notes = mesh.stop().await;
    let outcomes = shared.outcomes.lock().clone();
    let report = Report::build(settings, &plans, &outcomes, started.elapsed(), notes);
    report.write(&settings.out)?;
    outcome.map(|()| report)
}

/// What happened while one fault was in force; the row's numbers are computed from the
/// outcomes once every answer has ended.
#[derive(Debug, Clone)]
pub struct Played {
    pub fault: Fault,
    pub from: Instant,
    pub to: Instant,
    pub recovery_s: Option<f64>,
    pub skipped: Option<String>,
    pub lost_turns: Option<u32>,
    pub notes: Vec<String>,
}

#[allow(
    clippy::too_many_lines,
    reason = "one match over the fault kinds: each arm is the break and the heal of one fault"
)]
async fn play(
    st: &mut Stage,
    settings: &Settings,
    fault: &Fault,
    since: Instant,
) -> Result<Played, ChaosError> {
    // Saved-turn checks need answers from a quiet time before the fault.
    let settle = if fault.touches_memory_store() {
        settings.settle * 2
    } else {
        settings.settle
    };
    tokio::time::sleep(settle).await;
    let mut played = Played {
        fault: fault.clone(),
        from: Instant::now(),
        to: Instant::now(),
        recovery_s: None,
        skipped: None,
        lost_turns: None,
        notes: Vec::new(),
    };
    // Answers asked after the previous fault was healed and finished before this one: saved
    // before anything broke, so a restart must not lose them.
    let mut expected = if fault.touches_memory_store() {
        answered_between(&st.fleet, since, played.from - Duration::from_millis(500))
    } else {
        BTreeMap::new()
    };
    let window = settings.window;
    let active = st.fleet.shared.active.load(Ordering::Relaxed);
    let heal_at;
    match &fault.action {
        Action::Kill(d) => {
            st.mesh.kill_daemon(d).await;
            tokio::time::sleep(window).await;
            heal_at = Instant::now();
            st.mesh.start_daemon(d).await?;
        }
        Action::Rpc(d, action) => {
            st.mesh.set_fault(d, action)?;
            tokio::time::sleep(window).await;
            heal_at = Instant::now();
            st.mesh.set_fault(d, "")?;
        }
        Action::Net(d, nf) => {
            let port = st.mesh.layout.daemon_ports[d];
            if *nf == NetFault::Jitter {
                st.proxies[d].set_jitter(true);
            } else if let Err(why) = st.network.drop_packets(port, *nf) {
                played.skipped = Some(why);
                played.to = Instant::now();
                return Ok(played);
            }
            let w = if *nf == NetFault::Partition {
                Duration::from_secs(10)
            } else {
                window
            };
            tokio::time::sleep(w).await;
            heal_at = Instant::now();
            st.proxies[d].set_jitter(false);
            st.network.heal().map_err(ChaosError::Start)?;
        }
        Action::RollGateway(streams) => {
            let base = st.fleet.len();
            st.fleet.grow_to(*streams);
            // The new customers connect and ask once, spread over their first think time.
            let grown = Instant::now();
            let want_ended = st.fleet.ended() + (*streams - base);
            while st.fleet.ended() < want_ended && grown.elapsed() < Duration::from_secs(60) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Everyone asks at once; the roll starts when the answers are streaming.
            st.fleet.shared.burst.send_modify(|b| *b += 1);
            let shared = st.fleet.shared.clone();
            let t = Instant::now();
            let mut peak = 0;
            while t.elapsed() < Duration::from_secs(10) {
                let now = shared.streaming.load(Ordering::Relaxed);
                peak = peak.max(now);
                if now >= *streams * 95 / 100 {
                    break;
                }
                if peak >= *streams / 2 && now * 10 < peak * 9 {
                    // Past the crest: the earliest answers are finishing.
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let streaming = shared.streaming.load(Ordering::Relaxed);
            played.from = Instant::now();
            played
                .notes
                .push(format!("{streaming} answers streaming at SIGTERM"));
            let other = 1 - active;
            shared.active.store(other, Ordering::Relaxed);
            let t = Instant::now();
            if let Some(n) = st.mesh.stop_gateway(active, Duration::from_secs(40)).await {
                played.notes.push(n);
            }
            played.notes.push(format!(
                "old gateway drained in {:.1} s",
                t.elapsed().as_secs_f64()
            ));
            heal_at = Instant::now();
            // A fresh spare for the next roll.
            st.mesh.start_gateway(active).await?;
            st.fleet.shrink_to(base);
        }
        Action::RestartRedis => {
            st.mesh.kill_redis().await;
            tokio::time::sleep(window).await;
            heal_at = Instant::now();
            st.mesh.start_redis().await?;
        }
        Action::MemoryLocked => {
            st.mesh.kill_daemon("memory").await;
            let path = st.mesh.layout.memory_file.clone();
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| ChaosError::Io(path.clone(), e))?;
            file.try_lock()
                .map_err(|e| ChaosError::Start(format!("cannot lock {}: {e}", path.display())))?;
            // As an orchestrator would: start it, and again whenever it exits.
            let until = Instant::now() + window;
            let mut attempts = 0;
            st.mesh.spawn_daemon("memory")?;
            attempts += 1;
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if st.mesh.daemon_exited("memory") && Instant::now() < until {
                    st.mesh.spawn_daemon("memory")?;
                    attempts += 1;
                }
            }
            let still_up = !st.mesh.daemon_exited("memory");
            played.notes.push(format!(
                "{attempts} start(s) while locked{}",
                if still_up {
                    ", the daemon is up and waiting for the lock"
                } else {
                    ""
                }
            ));
            heal_at = Instant::now();
            drop(file);
            if st.mesh.daemon_exited("memory") {
                st.mesh.spawn_daemon("memory")?;
            }
            st.mesh
                .wait_daemon("memory", Duration::from_secs(60))
                .await?;
        }
        Action::MemoryFull => {
            let Some(disk) = st.memory_disk.clone() else {
                played.skipped = Some("needs root for a private mount namespace (tmpfs)".into());
                played.to = Instant::now();
                return Ok(played);
            };
            let filler = disk.join("filler");
            let n = net::fill_disk(&filler).map_err(ChaosError::Start)?;
            played
                .notes
                .push(format!("disk filled with {} KiB", n / 1024));
            tokio::time::sleep(window).await;
            heal_at = Instant::now();
            std::fs::remove_file(&filler).map_err(|e| ChaosError::Io(filler.clone(), e))?;
        }
        Action::Disconnects(n) => {
            let shared = st.fleet.shared.clone();
            let made_before = shared.disconnects_made.load(Ordering::Relaxed);
            shared.disconnects_wanted.store(*n, Ordering::Relaxed);
            let t = Instant::now();
            let limit = Duration::from_secs(300);
            while shared.disconnects_made.load(Ordering::Relaxed) - made_before < *n
                && t.elapsed() < limit
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            shared.disconnects_wanted.store(0, Ordering::Relaxed);
            let made = shared.disconnects_made.load(Ordering::Relaxed) - made_before;
            played.notes.push(format!(
                "{made} answers cut mid-stream in {:.1} s",
                t.elapsed().as_secs_f64()
            ));
            heal_at = Instant::now();
        }
    }
    played.recovery_s = wait_breakers_closed(
        &st.mesh,
        st.fleet.shared.active.load(Ordering::Relaxed),
        heal_at,
        Duration::from_secs(60),
    )
    .await;
    // Answers asked just after the breakers closed still belong to the fault's row.
    tokio::time::sleep(Duration::from_secs(1)).await;
    played.to = Instant::now();
    if fault.touches_memory_store() {
        // And answers asked after the heal: the store must take turns again.
        let healed = Instant::now();
        tokio::time::sleep(settings.settle * 2).await;
        for (c, ids) in answered_between(
            &st.fleet,
            healed,
            Instant::now() - Duration::from_millis(500),
        ) {
            expected.entry(c).or_default().extend(ids);
        }
        played.lost_turns = Some(check_saved(&st.fleet.shared, &expected, &mut played.notes).await);
    }
    Ok(played)
}

/// Message ids of answers (any rung) asked at or after `from` and finished by `until`, for
/// the first 40 conversations.
fn answered_between(fleet: &Fleet, from: Instant, until: Instant) -> BTreeMap<usize, Vec<String>> {
    let mut m: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for o in fleet.shared.outcomes.lock().iter() {
        if o.conversation < 40
            && o.degradation.is_some()
            && o.sent_at >= from
            && o.ended_at <= until
        {
            m.entry(o.conversation)
                .or_default()
                .push(o.message_id.clone());
        }
    }
    m
}

/// Seconds from `heal_at` until every breaker of the gateway in `slot` is closed.
async fn wait_breakers_closed(
    mesh: &Mesh,
    slot: usize,
    heal_at: Instant,
    limit: Duration,
) -> Option<f64> {
    loop {
        if let Ok(b) = mesh.breakers(slot).await
            && b.iter().all(|(_, s)| s == "closed")
        {
            return Some(heal_at.elapsed().as_secs_f64());
        }
        if heal_at.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks `history` for each baseline conversation and counts saved answers that are gone.
async fn check_saved(
    shared: &Arc<Shared>,
    baseline: &BTreeMap<usize, Vec<String>>,
    notes: &mut Vec<String>,
) -> u32 {
    let mut lost = 0;
    let mut checked = 0;
    for (conv, ids) in baseline {
        match load::saved_answers(shared, *conv, Duration::from_secs(10)).await {
            Ok(saved) => {
                for id in ids {
                    checked += 1;
                    if !saved.contains(id) {
                        lost += 1;
                    }
                }
            }
            Err(e) => {
                notes.push(format!("history of conversation {conv}: {e}"));
                lost += ids.len() as u32;
            }
        }
    }
    notes.push(format!(
        "{checked} answers from before the fault and after the heal looked up in history, {lost} missing"
    ));
    lost
}
