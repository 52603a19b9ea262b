//! The load driver: virtual users over real WebSockets, closed or open loop.
//!
//! - Closed loop: each virtual user sends its next message when the previous one ended
//!   (optionally after a think time). Throughput adapts to latency.
//! - Open loop: Poisson arrivals at a fixed rate, spread round-robin over the users'
//!   connections (at most 4 answers in flight per connection and a global bound). An arrival
//!   with no free slot is dropped and counted; sends behind schedule are counted as late, so a
//!   saturated client never hides as a fast server.

use std::{
    io::IsTerminal,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::sync::mpsc;

use crate::{
    BenchError,
    conn::{self, Connection, Exchange, MAX_IN_FLIGHT_PER_CONNECTION, ms},
    machine,
    queries::{self, QueryMix},
    sample::{Counters, Results, RunRecord, SCHEMA_VERSION, Sample, Stage},
};

/// An open-loop send more than this behind its schedule counts as late.
pub const LATE_THRESHOLD_MS: f64 = 5.0;

/// The arrival after `scheduled` in a Poisson process of `rate` per second: exponential gaps.
pub(crate) fn next_arrival(rng: &mut StdRng, scheduled: Instant, rate: f64) -> Instant {
    let u: f64 = rng.random();
    scheduled + Duration::from_secs_f64(-(1.0 - u).ln() / rate)
}

/// The first of `n` connections, from `cursor` on and wrapping, that `free` accepts: arrivals
/// are spread round-robin over the connections with room.
pub(crate) fn next_free(cursor: usize, n: usize, free: impl Fn(usize) -> bool) -> Option<usize> {
    (0..n).map(|i| (cursor + i) % n).find(|&i| free(i))
}

/// How virtual users authenticate.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// No token: `user_id` is passed as a query parameter (gateways without auth).
    None,
    /// The same token for every user.
    Fixed(String),
    /// An HS256 JWT per virtual user (`sub` = `bench-vu-<i>`) issued with this key (the
    /// gateway's secret, issuer and audience).
    Mint(mangaassist_auth::JwtKey),
}

impl TokenSource {
    fn label(&self) -> &'static str {
        match self {
            TokenSource::None => "none",
            TokenSource::Fixed(_) => "fixed",
            TokenSource::Mint(_) => "mint",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum LoadMode {
    Closed { think: Duration },
    Open { rate: f64, max_in_flight: usize },
}

/// Everything a run needs besides the query mix.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// `ws://host:port/ws`; extra query parameters are kept.
    pub url: String,
    pub token: TokenSource,
    pub vus: usize,
    pub mode: LoadMode,
    /// Stop after this many messages were sent...
    pub messages: Option<u64>,
    /// ...or when this much time has passed (whichever comes first).
    pub duration: Option<Duration>,
    pub store: Option<String>,
    pub unique: bool,
    pub warmup_per_intent: u64,
    pub timeout: Duration,
    pub label: String,
    pub seed: u64,
    pub progress: bool,
    pub overhead: bool,
    /// Start a new session (conversation) after about this many messages per virtual user;
    /// 0 keeps one session per virtual user for the whole run.
    pub turns_per_session: u64,
}

impl RunConfig {
    /// A closed-loop configuration with the documented defaults.
    pub fn closed(url: impl Into<String>, vus: usize, messages: u64) -> Self {
        Self {
            url: url.into(),
            token: TokenSource::None,
            vus,
            mode: LoadMode::Closed {
                think: Duration::ZERO,
            },
            messages: Some(messages),
            duration: None,
            store: None,
            unique: false,
            warmup_per_intent: 5,
            timeout: Duration::from_secs(30),
            label: "run".to_string(),
            seed: 1,
            progress: false,
            overhead: false,
            turns_per_session: 0,
        }
    }

    fn validate(&self) -> Result<(), BenchError> {
        if self.vus == 0 {
            return Err(BenchError::Usage("--vus must be at least 1".to_string()));
        }
        if self.messages.is_none() && self.duration.is_none() {
            return Err(BenchError::Usage(
                "give --messages or --duration".to_string(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(BenchError::Usage("--timeout must be positive".to_string()));
        }
        if let LoadMode::Open {
            rate,
            max_in_flight,
        } = self.mode
        {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(BenchError::Usage(format!(
                    "--rate must be a positive number of messages per second, got {rate}"
                )));
            }
            if max_in_flight == 0 {
                return Err(BenchError::Usage(
                    "--max-in-flight must be at least 1".to_string(),
                ));
            }
        }
        Ok(())
    }

    fn keep_going(&self, k: u64, started: Instant) -> bool {
        self.messages.is_none_or(|n| k < n) && self.duration.is_none_or(|d| started.elapsed() < d)
    }
}

/// Which message of the run a sample is, and what was asked.
struct Meta {
    vu: u32,
    message_id: String,
    text: String,
    /// `None`: the connection's session.
    session_id: Option<String>,
    expected_intent: String,
    warmup: bool,
    late_ms: Option<f64>,
}

struct Clock {
    t0: Instant,
    t0_unix_ms: u64,
}

/// Drives one run and returns its results (not yet written anywhere).
pub async fn run(cfg: &RunConfig, mix: &QueryMix) -> Result<Results, BenchError> {
    cfg.validate()?;
    let mix = Arc::new(mix.clone());
    let run_id = run_id();
    let urls = (0..cfg.vus)
        .map(|i| vu_url(cfg, i, &run_id))
        .collect::<Result<Vec<_>, _>>()?;
    let connections = open_all(&urls, cfg.timeout).await?;

    let machine = machine::collect();
    let started_wall = SystemTime::now();
    let clock = Arc::new(Clock {
        t0: Instant::now(),
        t0_unix_ms: unix_ms(started_wall),
    });
    let bar = progress_bar(cfg);
    let (sample_tx, mut sample_rx) = mpsc::unbounded_channel::<Sample>();
    let collector = {
        let bar = bar.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0u64;
            while let Some(s) = sample_rx.recv().await {
                if s.error.is_some() {
                    errors += 1;
                    bar.set_message(format!("{errors} errors"));
                }
                bar.inc(1);
                samples.push(s);
            }
            samples
        })
    };

    let shared = Shared {
        cfg: Arc::new(cfg.clone()),
        mix,
        run_id: Arc::from(run_id.as_str()),
        clock: clock.clone(),
        urls: Arc::new(urls),
    };
    let mut counters = match cfg.mode {
        LoadMode::Closed { think } => closed_loop(&shared, connections, think, sample_tx).await,
        LoadMode::Open {
            rate,
            max_in_flight,
        } => open_loop(&shared, connections, rate, max_in_flight, sample_tx).await,
    };
    let mut samples = collector.await.unwrap_or_default();
    let wall_s = clock.t0.elapsed().as_secs_f64();
    bar.finish_and_clear();

    samples.sort_by(|a, b| {
        a.offset_ms
            .unwrap_or(0.0)
            .total_cmp(&b.offset_ms.unwrap_or(0.0))
    });
    counters.answered = samples.iter().filter(|s| s.is_ok()).count() as u64;
    counters.errors = samples.iter().filter(|s| s.error.is_some()).count() as u64;
    let (mode, rate, max_in_flight, think_ms) = match cfg.mode {
        LoadMode::Closed { think } => ("closed", None, None, Some(ms(think))),
        LoadMode::Open {
            rate,
            max_in_flight,
        } => ("open", Some(rate), Some(max_in_flight), None),
    };
    Ok(Results {
        schema_version: SCHEMA_VERSION,
        tool: format!("mangaassist-bench {}", env!("CARGO_PKG_VERSION")),
        label: cfg.label.clone(),
        started_at: humantime::format_rfc3339_seconds(started_wall).to_string(),
        started_at_ms: clock.t0_unix_ms,
        wall_s,
        run: RunRecord {
            url: conn::redact(&cfg.url),
            mode: mode.to_string(),
            vus: cfg.vus,
            rate,
            max_in_flight,
            think_ms,
            messages: cfg.messages,
            duration_s: cfg.duration.map(|d| d.as_secs_f64()),
            timeout_ms: ms(cfg.timeout),
            warmup_per_intent: cfg.warmup_per_intent,
            intents: shared.mix.intents().to_vec(),
            store: cfg.store.clone(),
            unique: cfg.unique,
            turns_per_session: cfg.turns_per_session,
            seed: cfg.seed,
            overhead: cfg.overhead,
            auth: cfg.token.label().to_string(),
        },
        machine,
        counters,
        samples,
    })
}

#[derive(Clone)]
struct Shared {
    cfg: Arc<RunConfig>,
    mix: Arc<QueryMix>,
    run_id: Arc<str>,
    clock: Arc<Clock>,
    urls: Arc<Vec<String>>,
}

impl Shared {
    /// The k-th message: its id, text and bookkeeping.
    fn message(&self, k: u64, vu: usize, late_ms: Option<f64>) -> Meta {
        let pick = self.mix.pick(k);
        let text = if self.cfg.unique {
            queries::make_unique(pick.text, &self.run_id, k)
        } else {
            pick.text.to_string()
        };
        // Messages are spread over the virtual users, so every `turns * vus` messages each
        // user has had about `turns` in the current session.
        let session_id = (self.cfg.turns_per_session > 0).then(|| {
            let per_round = self.cfg.turns_per_session * self.cfg.vus.max(1) as u64;
            format!("bench-{}-vu{vu}-s{}", self.run_id, k / per_round)
        });
        Meta {
            vu: vu as u32,
            message_id: format!("{}-{k}", self.run_id),
            text,
            session_id,
            expected_intent: pick.intent.to_string(),
            warmup: pick.seq_in_intent < self.cfg.warmup_per_intent,
            late_ms,
        }
    }

    /// A live connection for `vu`, reconnecting if the old one broke.
    async fn ensure_open(
        &self,
        conn: &mut Option<Connection>,
        vu: usize,
        counters: &mut Counters,
    ) -> Result<(), BenchError> {
        if conn.as_ref().is_some_and(Connection::is_open) {
            return Ok(());
        }
        if let Some(old) = conn.take() {
            counters.unattributed_errors += old.close().await.unattributed_errors;
        }
        counters.reconnects += 1;
        *conn = Some(Connection::open(&self.urls[vu], self.cfg.timeout).await?);
        Ok(())
    }

    fn connect_failed(&self, meta: Meta, err: &BenchError) -> Sample {
        let ex = Exchange::failed(Instant::now(), "connect_failed", err.to_string());
        build_sample(ex, meta, &self.clock)
    }
}

async fn closed_loop(
    shared: &Shared,
    connections: Vec<Connection>,
    think: Duration,
    sample_tx: mpsc::UnboundedSender<Sample>,
) -> Counters {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(connections.len());
    for (vu, conn) in connections.into_iter().enumerate() {
        let shared = shared.clone();
        let next = next.clone();
        let sample_tx = sample_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut counters = Counters::default();
            let mut conn = Some(conn);
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if !shared.cfg.keep_going(k, shared.clock.t0) {
                    break;
                }
                let meta = shared.message(k, vu, None);
                if let Err(e) = shared.ensure_open(&mut conn, vu, &mut counters).await {
                    let _ = sample_tx.send(shared.connect_failed(meta, &e));
                    // Do not spin on a gateway that refuses connections.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                let Some(c) = conn.as_ref() else { continue };
                counters.sent += 1;
                let rx = c.send(
                    meta.message_id.clone(),
                    meta.text.clone(),
                    meta.session_id.clone(),
                );
                let ex = rx.await.unwrap_or_else(|_| {
                    Exchange::failed(Instant::now(), "connection_closed", "connection task ended")
                });
                let _ = sample_tx.send(build_sample(ex, meta, &shared.clock));
                if !think.is_zero() {
                    tokio::time::sleep(think).await;
                }
            }
            if let Some(c) = conn {
                counters.unattributed_errors += c.close().await.unattributed_errors;
            }
            counters
        }));
    }
    drop(sample_tx);
    let mut total = Counters::default();
    for t in tasks {
        if let Ok(c) = t.await {
            total.sent += c.sent;
            total.unattributed_errors += c.unattributed_errors;
            total.reconnects += c.reconnects;
        }
    }
    total
}

async fn open_loop(
    shared: &Shared,
    connections: Vec<Connection>,
    rate: f64,
    max_in_flight: usize,
    sample_tx: mpsc::UnboundedSender<Sample>,
) -> Counters {
    let mut counters = Counters::default();
    let mut conns: Vec<Option<Connection>> = connections.into_iter().map(Some).collect();
    let per_conn: Vec<Arc<AtomicUsize>> = (0..conns.len())
        .map(|_| Arc::new(AtomicUsize::new(0)))
        .collect();
    let total_in_flight = Arc::new(AtomicUsize::new(0));
    let mut rng = StdRng::seed_from_u64(shared.cfg.seed);
    let mut cursor = 0usize;
    let mut scheduled = shared.clock.t0;
    let mut k = 0u64;
    loop {
        scheduled = next_arrival(&mut rng, scheduled, rate);
        if shared
            .cfg
            .duration
            .is_some_and(|d| scheduled.duration_since(shared.clock.t0) >= d)
            || !shared.cfg.keep_going(k, shared.clock.t0)
        {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let late_ms = ms(Instant::now().saturating_duration_since(scheduled));
        if total_in_flight.load(Ordering::Acquire) >= max_in_flight {
            counters.dropped += 1;
            continue;
        }
        let n = conns.len();
        let Some(vu) = next_free(cursor, n, |i| {
            per_conn[i].load(Ordering::Acquire) < MAX_IN_FLIGHT_PER_CONNECTION
        }) else {
            counters.dropped += 1;
            continue;
        };
        cursor = (vu + 1) % n;
        if late_ms > LATE_THRESHOLD_MS {
            counters.late += 1;
        }
        counters.max_late_ms = counters.max_late_ms.max(late_ms);
        let meta = shared.message(k, vu, Some(late_ms));
        k += 1;
        if let Err(e) = shared.ensure_open(&mut conns[vu], vu, &mut counters).await {
            let _ = sample_tx.send(shared.connect_failed(meta, &e));
            continue;
        }
        let Some(c) = conns[vu].as_ref() else {
            continue;
        };
        counters.sent += 1;
        per_conn[vu].fetch_add(1, Ordering::AcqRel);
        total_in_flight.fetch_add(1, Ordering::AcqRel);
        let rx = c.send(
            meta.message_id.clone(),
            meta.text.clone(),
            meta.session_id.clone(),
        );
        let slot = per_conn[vu].clone();
        let total = total_in_flight.clone();
        let clock = shared.clock.clone();
        let tx = sample_tx.clone();
        tokio::spawn(async move {
            let ex = rx.await.unwrap_or_else(|_| {
                Exchange::failed(Instant::now(), "connection_closed", "connection task ended")
            });
            slot.fetch_sub(1, Ordering::AcqRel);
            total.fetch_sub(1, Ordering::AcqRel);
            let _ = tx.send(build_sample(ex, meta, &clock));
        });
    }
    drop(sample_tx);
    // Closing lets each connection finish what is in flight (bounded by the timeout).
    let closing: Vec<_> = conns.into_iter().flatten().map(Connection::close).collect();
    for stats in futures::future::join_all(closing).await {
        counters.unattributed_errors += stats.unattributed_errors;
    }
    counters
}

/// Client-side times at microsecond resolution: finer is noise, and it keeps files readable.
fn us(d: Duration) -> f64 {
    (ms(d) * 1e3).round() / 1e3
}

fn build_sample(ex: Exchange, meta: Meta, clock: &Clock) -> Sample {
    let since = |t: Option<Instant>| t.map(|t| us(t.saturating_duration_since(ex.sent_at)));
    let offset = ex.sent_at.saturating_duration_since(clock.t0);
    let mut s = Sample {
        ts_ms: clock.t0_unix_ms + offset.as_millis() as u64,
        offset_ms: Some(us(offset)),
        vu: Some(meta.vu),
        message_id: Some(meta.message_id),
        text: Some(meta.text),
        expected_intent: Some(meta.expected_intent),
        status_ms: since(ex.status_at),
        ttft_ms: since(ex.first_chunk_at),
        chunk_gaps_ms: ex
            .chunk_gaps_ms
            .iter()
            .map(|g| (g * 1e3).round() / 1e3)
            .collect(),
        chunks_received: Some(ex.chunks_received),
        index_faults: ex.index_faults,
        warmup: meta.warmup,
        late_ms: meta.late_ms,
        ..Sample::default()
    };
    if let Some((code, message)) = ex.error {
        s.error = Some(code);
        s.error_message = Some(message);
    }
    if let Some(done) = ex.done {
        s.e2e_ms = since(ex.done_at);
        let done = *done;
        s.server_first_token_ms = Some(done.first_token_ms as f64);
        s.server_total_ms = Some(done.total_ms as f64);
        s.tokens = Some(done.tokens);
        s.chunks = Some(done.chunks);
        s.intent = Some(done.intent);
        s.model = Some(done.model);
        s.degradation = Some(done.degradation);
        s.trace_id = Some(done.trace_id);
        s.cache_hit = Some(done.cache_hit);
        s.stages = done
            .stages
            .into_iter()
            .map(|t| Stage {
                stage: t.stage,
                start_ms: t.start_ms,
                duration_ms: t.duration_ms,
                budget_ms: t.budget_ms.map(|b| b as f64),
                outcome: Some(t.outcome),
            })
            .collect();
    }
    s
}

async fn open_all(urls: &[String], timeout: Duration) -> Result<Vec<Connection>, BenchError> {
    // Bounded concurrency: a burst of thousands of handshakes would overflow the listen backlog.
    let results: Vec<(usize, Result<Connection, BenchError>)> =
        futures::stream::iter(urls.iter().enumerate())
            .map(|(i, url)| async move { (i, Connection::open(url, timeout).await) })
            .buffer_unordered(128)
            .collect()
            .await;
    let mut ordered: Vec<Option<Connection>> = (0..urls.len()).map(|_| None).collect();
    let mut first_err = None;
    let mut failed = 0usize;
    for (i, r) in results {
        match r {
            Ok(c) => ordered[i] = Some(c),
            Err(e) => {
                failed += 1;
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        let opened: Vec<Connection> = ordered.into_iter().flatten().collect();
        let ok = opened.len();
        for c in opened {
            c.close().await;
        }
        return Err(match e {
            BenchError::Connect { url, reason } => BenchError::Connect {
                url,
                reason: format!(
                    "{reason} ({failed} of {} virtual users failed, {ok} connected)",
                    urls.len()
                ),
            },
            other => other,
        });
    }
    Ok(ordered.into_iter().flatten().collect())
}

/// The URL of virtual user `i`: its own user id (in the token, or as `user_id` without auth),
/// its own session, the store if given.
pub(crate) fn vu_url(cfg: &RunConfig, i: usize, run_id: &str) -> Result<String, BenchError> {
    let user = format!("bench-vu-{i}");
    let mut params: Vec<(String, String)> = Vec::new();
    match &cfg.token {
        TokenSource::None => params.push(("user_id".into(), user.clone())),
        TokenSource::Fixed(t) => params.push(("token".into(), t.clone())),
        TokenSource::Mint(key) => {
            let ttl =
                cfg.duration.unwrap_or(Duration::ZERO) + cfg.timeout + Duration::from_secs(3600);
            let token =
                key.issue(&user, ttl, SystemTime::now())
                    .map_err(|e| BenchError::Token {
                        user: user.clone(),
                        reason: e.to_string(),
                    })?;
            params.push(("token".into(), token));
        }
    }
    params.push(("session_id".into(), format!("bench-{run_id}-vu{i}")));
    if let Some(store) = &cfg.store {
        params.push(("store_id".into(), store.clone()));
    }
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let sep = if cfg.url.contains('?') { '&' } else { '?' };
    Ok(format!("{}{sep}{}", cfg.url, query.join("&")))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Short id that makes message ids, sessions and `--unique` texts distinct per run.
fn run_id() -> String {
    let mut rng = rand::rng();
    format!("{:08x}", rng.random::<u32>())
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn progress_bar(cfg: &RunConfig) -> ProgressBar {
    if !cfg.progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match cfg.messages {
        Some(n) => (
            ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            "{elapsed_precise} [{bar:40}] {pos}/{len} answers ({per_sec}) {msg}",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} {elapsed_precise} {pos} answers ({per_sec}) {msg}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn vu_urls_carry_user_session_and_store() {
        let mut cfg = RunConfig::closed("ws://127.0.0.1:1/ws", 2, 10);
        cfg.store = Some("comics us".into());
        let url = vu_url(&cfg, 1, "abc").unwrap();
        assert_eq!(
            url,
            "ws://127.0.0.1:1/ws?user_id=bench-vu-1&session_id=bench-abc-vu1&store_id=comics%20us"
        );
        cfg.token = TokenSource::Fixed("t.k.n".into());
        cfg.url = "ws://h/ws?x=1".into();
        let url = vu_url(&cfg, 0, "abc").unwrap();
        assert!(
            url.starts_with("ws://h/ws?x=1&token=t.k.n&session_id="),
            "{url}"
        );
        assert_eq!(
            conn::redact(&url),
            "ws://h/ws?x=1&session_id=bench-abc-vu0&store_id=comics%20us"
        );
    }

    #[test]
    fn minted_tokens_differ_per_user() {
        let mut cfg = RunConfig::closed("ws://h/ws", 2, 10);
        let key = mangaassist_auth::JwtKey::new(b"0123456789abcdef0123456789abcdef")
            .unwrap()
            .with_issuer("mangaassist")
            .with_audience("mangaassist-gateway");
        cfg.token = TokenSource::Mint(key.clone());
        let a = vu_url(&cfg, 0, "r").unwrap();
        let b = vu_url(&cfg, 1, "r").unwrap();
        assert!(a.contains("token=") && b.contains("token="));
        assert_ne!(a, b);
        assert!(!a.contains("user_id="));
        // The gateway's key accepts it, for the right user.
        let token = a.split("token=").nth(1).unwrap().split('&').next().unwrap();
        let claims = key
            .verify(token, SystemTime::now(), Duration::ZERO)
            .unwrap();
        assert_eq!(claims.sub, "bench-vu-0");
        assert!(claims.exp >= claims.iat + 3600);
        // Issued by the key it was given, so the gateway's iss/aud checks pass.
        assert_eq!(claims.iss.as_deref(), Some("mangaassist"));
        assert_eq!(claims.aud.as_deref(), Some("mangaassist-gateway"));
    }

    #[test]
    fn options_are_validated() {
        let mut cfg = RunConfig::closed("ws://h/ws", 0, 10);
        assert!(cfg.validate().is_err());
        cfg.vus = 1;
        cfg.messages = None;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("--messages")
        );
        cfg.messages = Some(1);
        cfg.mode = LoadMode::Open {
            rate: 0.0,
            max_in_flight: 4,
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("--rate"));
    }
}
