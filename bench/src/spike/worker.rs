//! `bench spike-worker` (hidden): one load-generator process of `bench spike`. It holds its
//! share of the sessions and sends its share of the open-loop rate, taking commands on stdin
//! and answering with events on stdout ([`super::protocol`]). One process cannot hold 25,000
//! sockets (the open-files limit), so the coordinator starts several.

use std::{
    io::Write as _,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use futures::StreamExt;
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::{mpsc, oneshot},
};

use super::protocol::{Command, Event, HoldReport, OpenJob, StepReport, micros};
use crate::{
    BenchError,
    conn::{Connection, Exchange, MAX_IN_FLIGHT_PER_CONNECTION, ms},
    driver::{LATE_THRESHOLD_MS, encode, next_arrival, next_free},
    queries::{self, MIN_QUERIES_PER_INTENT, QueryMix},
};

/// Longest wait for one WebSocket handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the pongs at the end of the hold.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

struct Sessions {
    job: OpenJob,
    mix: QueryMix,
    conns: Vec<Connection>,
    in_flight: Vec<Arc<AtomicUsize>>,
    /// Messages sent by this worker so far (message ids and unique texts).
    next_message: u64,
}

/// Runs the worker until stdin closes, which also cuts short the command in progress (the
/// coordinator is stopping); then closes every session.
pub async fn run() -> Result<(), BenchError> {
    let (tx, mut commands) = mpsc::unbounded_channel::<String>();
    let (eof_tx, mut eof) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                return;
            }
        }
        let _ = eof_tx.send(());
    });
    let mut sessions: Option<Sessions> = None;
    loop {
        let line = tokio::select! {
            line = commands.recv() => match line {
                Some(line) => line,
                None => break,
            },
            _ = &mut eof => break,
        };
        if line.trim().is_empty() {
            continue;
        }
        let event = tokio::select! {
            event = execute(&line, &mut sessions) => event,
            _ = &mut eof => break,
        };
        emit(&event)?;
    }
    if let Some(s) = sessions {
        // Each close waits for answers still in flight, which the timeout bounds.
        futures::future::join_all(s.conns.into_iter().map(Connection::close)).await;
    }
    Ok(())
}

async fn execute(line: &str, sessions: &mut Option<Sessions>) -> Event {
    match serde_json::from_str::<Command>(line) {
        Err(e) => Event::Failed {
            message: format!("unreadable command: {e}"),
        },
        Ok(Command::Open(job)) => match open(job).await {
            Ok((s, event)) => {
                *sessions = Some(s);
                event
            }
            Err(e) => Event::Failed {
                message: e.to_string(),
            },
        },
        Ok(Command::Hold { duration_ms }) => match sessions {
            Some(s) => Event::Held(hold(s, Duration::from_millis(duration_ms)).await),
            None => not_open(),
        },
        Ok(Command::Step {
            index,
            rate,
            duration_ms,
            seed,
        }) => match sessions {
            Some(s) => {
                Event::Step(step(s, index, rate, Duration::from_millis(duration_ms), seed).await)
            }
            None => not_open(),
        },
    }
}

fn not_open() -> Event {
    Event::Failed {
        message: "no sessions: `open` must come first".into(),
    }
}

fn emit(event: &Event) -> Result<(), BenchError> {
    let line = serde_json::to_string(event).map_err(|e| BenchError::Spike(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// The URL of session `u`: its own user and conversation, spread over the gateways.
fn session_url(
    job: &OpenJob,
    u: usize,
    key: Option<&mangaassist_auth::JwtKey>,
) -> Result<String, BenchError> {
    let user = format!("spike-vu-{u}");
    let base = &job.gateways[u % job.gateways.len()];
    let who = match key {
        Some(key) => {
            let token = key
                .issue(
                    &user,
                    Duration::from_secs(job.token_ttl_s),
                    SystemTime::now(),
                )
                .map_err(|e| BenchError::Token {
                    user: user.clone(),
                    reason: e.to_string(),
                })?;
            format!("token={}", encode(&token))
        }
        None => format!("user_id={}", encode(&user)),
    };
    Ok(format!(
        "{base}?{who}&session_id={}",
        encode(&format!("spike-{}-vu{u}", job.run_id))
    ))
}

async fn open(job: OpenJob) -> Result<(Sessions, Event), BenchError> {
    if job.gateways.is_empty() {
        return Err(BenchError::Usage("no gateway URLs".into()));
    }
    let mix = QueryMix::load(&job.data_dir, &[], MIN_QUERIES_PER_INTENT, job.seed)?;
    let key = match &job.auth {
        Some(a) => {
            let mut key = mangaassist_auth::JwtKey::new(a.secret.as_bytes())
                .map_err(|e| BenchError::Usage(format!("signing key: {e}")))?;
            if let Some(iss) = &a.issuer {
                key = key.with_issuer(iss.clone());
            }
            if let Some(aud) = &a.audience {
                key = key.with_audience(aud.clone());
            }
            Some(key)
        }
        None => None,
    };
    let urls = (job.first_session..job.first_session + job.sessions)
        .map(|u| session_url(&job, u, key.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let timeout = Duration::from_millis(job.timeout_ms);
    let results: Vec<Result<Connection, String>> = futures::stream::iter(urls)
        .map(|url| async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, Connection::open(&url, timeout)).await {
                Ok(Ok(c)) => Ok(c),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "no WebSocket handshake within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )),
            }
        })
        .buffer_unordered(job.concurrency.max(1))
        .collect()
        .await;
    let mut conns = Vec::with_capacity(results.len());
    let mut failed = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(c) => conns.push(c),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let event = Event::Opened {
        open: conns.len(),
        failed,
        first_error,
        open_s: started.elapsed().as_secs_f64(),
    };
    let in_flight = (0..conns.len())
        .map(|_| Arc::new(AtomicUsize::new(0)))
        .collect();
    Ok((
        Sessions {
            job,
            mix,
            conns,
            in_flight,
            next_message: 0,
        },
        event,
    ))
}

fn open_count(s: &Sessions) -> usize {
    s.conns.iter().filter(|c| c.is_open()).count()
}

async fn hold(s: &Sessions, duration: Duration) -> HoldReport {
    let until = tokio::time::Instant::now() + duration;
    let mut open_min = open_count(s);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => break,
            _ = tick.tick() => open_min = open_min.min(open_count(s)),
        }
    }
    // A socket can look open while its gateway no longer serves it: a ping proves it does.
    let pongs = s.conns.iter().map(|c| {
        let rx = c.ping();
        async move {
            tokio::time::timeout(PING_TIMEOUT, rx)
                .await
                .ok()
                .and_then(Result::ok)
        }
    });
    let ping_us: Vec<u32> = futures::future::join_all(pongs)
        .await
        .into_iter()
        .flatten()
        .map(micros)
        .collect();
    let open_end = open_count(s);
    HoldReport {
        open_min: open_min.min(open_end),
        open_end,
        pinged: ping_us.len(),
        ping_us,
    }
}

/// What one message came to.
struct Outcome {
    ttft_us: Option<u32>,
    error: Option<String>,
    degraded: bool,
    lost: u32,
    duplicate: u32,
    faults: u32,
}

/// Stage outcomes that mean the answer went on without that stage's result.
const FAILED_STAGE: [&str; 3] = ["deadline", "error", "circuit_open"];

impl Outcome {
    fn of(ex: &Exchange) -> Self {
        let error = match (&ex.error, &ex.done) {
            (Some((code, _)), _) => Some(code.clone()),
            (None, None) => Some("no_done".to_string()),
            (None, Some(_)) => None,
        };
        Self {
            ttft_us: match (&error, ex.first_chunk_at) {
                (None, Some(t)) => Some(micros(t.saturating_duration_since(ex.sent_at))),
                _ => None,
            },
            error,
            degraded: ex.done.as_ref().is_some_and(|d| {
                d.degradation != "full"
                    || d.stages
                        .iter()
                        .any(|s| FAILED_STAGE.contains(&s.outcome.as_str()))
            }),
            lost: ex.lost_chunks().unwrap_or(0),
            duplicate: ex.duplicate_chunks(),
            faults: ex.index_faults,
        }
    }
}

async fn step(
    s: &mut Sessions,
    index: usize,
    rate: f64,
    duration: Duration,
    seed: u64,
) -> StepReport {
    let mut report = StepReport {
        index,
        ..StepReport::default()
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let collector = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        while let Some(o) = rx.recv().await {
            outcomes.push(o);
        }
        outcomes
    });
    let n = s.conns.len();
    if n > 0 && rate > 0.0 {
        let mut rng = StdRng::seed_from_u64(seed);
        let t0 = Instant::now();
        let mut scheduled = t0;
        // Different workers start at different sessions, so their first sends do not all
        // land on the same gateway.
        let mut cursor = rng.random_range(0..n);
        let nonce = format!("{}w{}", s.job.run_id, s.job.worker);
        loop {
            // Exponential inter-arrival times make a Poisson process; the workers' processes
            // together are one Poisson process at the step's total rate.
            scheduled = next_arrival(&mut rng, scheduled, rate);
            if scheduled.duration_since(t0) >= duration {
                break;
            }
            tokio::time::sleep_until(scheduled.into()).await;
            let late_ms = ms(Instant::now().saturating_duration_since(scheduled));
            let Some(c) = next_free(cursor, n, |i| {
                s.in_flight[i].load(Ordering::Acquire) < MAX_IN_FLIGHT_PER_CONNECTION
                    && s.conns[i].is_open()
            }) else {
                report.dropped += 1;
                continue;
            };
            cursor = (c + 1) % n;
            if late_ms > LATE_THRESHOLD_MS {
                report.late += 1;
            }
            report.max_late_ms = report.max_late_ms.max(late_ms);
            let k = s.next_message;
            s.next_message += 1;
            let pick = s.mix.pick(k);
            let text = if s.job.unique {
                queries::make_unique(pick.text, &nonce, k)
            } else {
                pick.text.to_string()
            };
            let reply = s.conns[c].send(format!("{nonce}-{k}"), text, None);
            report.sent += 1;
            let slot = s.in_flight[c].clone();
            slot.fetch_add(1, Ordering::AcqRel);
            let tx = tx.clone();
            tokio::spawn(async move {
                let ex = reply.await.unwrap_or_else(|_| {
                    Exchange::failed(Instant::now(), "connection_closed", "connection task ended")
                });
                slot.fetch_sub(1, Ordering::AcqRel);
                let _ = tx.send(Outcome::of(&ex));
            });
        }
    }
    drop(tx);
    // Every spawned wait ends: the connection task fails or times out what it holds.
    let outcomes = collector.await.unwrap_or_default();
    for o in outcomes {
        match o.error {
            Some(code) => *report.errors.entry(code).or_default() += 1,
            None => report.answered += 1,
        }
        report.degraded += u64::from(o.degraded);
        report.ttft_us.extend(o.ttft_us);
        report.lost_chunks += u64::from(o.lost);
        report.duplicate_chunks += u64::from(o.duplicate);
        report.index_faults += u64::from(o.faults);
    }
    report.open_end = open_count(s);
    report
}
