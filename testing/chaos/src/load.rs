//! The customers: conversations that each hold a WebSocket, ask the bench query mix with a
//! think time between questions, and behave like the chat page when the network or a
//! gateway goes away: reconnect (to the other gateway if this one refuses) and `resume` the
//! answer from the last chunk they have. Every message ends as one [`Outcome`] that says
//! whether the customer got an answer, on which rung, and whether any chunk went missing or
//! came twice.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use futures::{SinkExt, StreamExt};
use mangaassist_bench::{QueryMix, conn::Ws, queries::make_unique};
use mangaassist_protocol::{ClientFrame, ErrorCode, ServerFrame};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::{sync::watch, task::JoinSet};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Longest a customer waits for one answer (the gateway's own total deadline is 30 s).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(35);

/// Stage deadlines an answer is checked against: a degraded answer must respect them.
#[derive(Debug, Clone)]
pub struct Deadlines {
    pub stages: Vec<(&'static str, u64)>,
    pub first_token_ms: u64,
}

impl Deadlines {
    pub fn from_config(c: &mangaassist_config::Config) -> Self {
        let d = &c.gateway.deadlines;
        Self {
            stages: vec![
                ("intent", d.intent_ms),
                ("memory", d.memory_ms),
                ("cache", d.cache_ms),
                ("retrieval", d.retrieval_ms),
            ],
            first_token_ms: d.first_token_ms,
        }
    }

    /// How far past its deadline the worst stage of `done` ran (negative = within).
    fn overrun_ms(&self, done: &mangaassist_protocol::Done) -> f64 {
        let mut worst = done.first_token_ms as f64 - self.first_token_ms as f64;
        for (stage, limit) in &self.stages {
            if let Some(t) = done.stage(stage) {
                worst = worst.max(t.duration_ms - *limit as f64);
            }
        }
        worst
    }
}

/// What happened to one message.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub conversation: usize,
    pub session: String,
    pub message_id: String,
    pub sent_at: Instant,
    pub ended_at: Instant,
    /// Client time from sending the query to the first chunk.
    pub first_chunk: Option<Duration>,
    /// The rung of the answer (`full`, `no_rag`, …, `canned`); `None` = no answer at all.
    pub degradation: Option<String>,
    /// Why there was no answer (an error code or a client-side reason).
    pub failure: Option<String>,
    /// A degraded answer's worst stage overrun past its deadline, in ms (≤ 0 = within).
    pub overrun_ms: Option<f64>,
    pub lost_chunks: u32,
    pub duplicated_chunks: u32,
    /// Times the customer reconnected and resumed this answer.
    pub resumes: u32,
    /// The answer was cut on purpose by the rehearsal (a forced disconnect).
    pub forced_disconnects: u32,
    /// The question went into a socket the gateway was closing and was asked again on a new
    /// one (resume found nothing to resume: no gateway had taken it).
    pub reasked: u32,
}

/// Everything the conversations share with the conductor.
pub struct Shared {
    /// `ws://host:port/ws` of each gateway slot.
    pub urls: Vec<String>,
    /// The slot new connections go to first.
    pub active: AtomicUsize,
    pub key: mangaassist_auth::JwtKey,
    pub mix: QueryMix,
    pub deadlines: Deadlines,
    pub outcomes: parking_lot::Mutex<Vec<Outcome>>,
    /// Forced disconnects still to make: a conversation that sees its answer's second chunk
    /// takes one and drops its socket.
    pub disconnects_wanted: AtomicU64,
    pub disconnects_made: AtomicU64,
    /// Answers that have shown their first chunk and not ended.
    pub streaming: AtomicUsize,
    /// Bumped to make every thinking conversation ask within `burst_spread` (a burst).
    pub burst: watch::Sender<u64>,
    pub burst_spread: Duration,
    pub think: (Duration, Duration),
    /// Saved turns are checked by asking for `history` as the conversation's user.
    pub nonce: String,
}

/// The running conversations.
pub struct Fleet {
    pub shared: Arc<Shared>,
    tasks: JoinSet<()>,
    stops: Vec<CancellationToken>,
}

impl Fleet {
    pub fn new(shared: Shared) -> Self {
        Self {
            shared: Arc::new(shared),
            tasks: JoinSet::new(),
            stops: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.stops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stops.is_empty()
    }

    /// Starts conversations until there are `n`.
    pub fn grow_to(&mut self, n: usize) {
        while self.stops.len() < n {
            let i = self.stops.len();
            let stop = CancellationToken::new();
            self.stops.push(stop.clone());
            let shared = self.shared.clone();
            self.tasks.spawn(conversation(shared, i, stop));
        }
    }

    /// Lets conversations past the first `n` finish their current answer and leave.
    pub fn shrink_to(&mut self, n: usize) {
        while self.stops.len() > n {
            if let Some(s) = self.stops.pop() {
                s.cancel();
            }
        }
        // The tasks that leave are reaped by `finish`; nothing waits on them here.
    }

    /// Every conversation finishes its answer in flight and closes its socket.
    pub async fn finish(mut self) {
        for s in &self.stops {
            s.cancel();
        }
        while self.tasks.join_next().await.is_some() {}
    }

    /// Outcomes of messages sent in `[from, to)`.
    pub fn outcomes_between(&self, from: Instant, to: Instant) -> Vec<Outcome> {
        self.shared
            .outcomes
            .lock()
            .iter()
            .filter(|o| o.sent_at >= from && o.sent_at < to)
            .cloned()
            .collect()
    }

    /// Messages that have ended so far.
    pub fn ended(&self) -> usize {
        self.shared.outcomes.lock().len()
    }
}

fn token(shared: &Shared, user: &str) -> Result<String, String> {
    shared
        .key
        .issue(user, Duration::from_secs(12 * 3600), SystemTime::now())
        .map_err(|e| format!("cannot issue a token: {e}"))
}

async fn conversation(shared: Arc<Shared>, i: usize, stop: CancellationToken) {
    let user = format!("chaos-{}-u{i}", shared.nonce);
    let session = format!("chaos-{}-s{i}", shared.nonce);
    let mut rng = StdRng::seed_from_u64(i as u64 ^ 0x5eed);
    let mut burst = shared.burst.subscribe();
    burst.borrow_and_update();
    let Ok(token) = token(&shared, &user) else {
        return;
    };
    let mut ws: Option<Ws> = None;
    let (lo, hi) = shared.think;
    // Conversations start spread over one think time, not all in the same millisecond.
    let mut wait = Duration::from_secs_f64(rng.random_range(0.0..hi.as_secs_f64().max(0.01)));
    let mut k: u64 = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
            _ = burst.changed() => {
                // Everyone asks within the spread, not in one instant: a crowd, not a
                // synchronised benchmark.
                let spread = shared.burst_spread.as_secs_f64();
                if spread > 0.0 {
                    tokio::time::sleep(Duration::from_secs_f64(rng.random_range(0.0..spread))).await;
                }
            }
        }
        k += 1;
        let pick = shared.mix.pick(i as u64 * 7_919 + k);
        // Half the questions are asked word for word (the cache can answer them), half made
        // unique (the full pipeline runs).
        let text = if k.is_multiple_of(2) {
            make_unique(pick.text, &shared.nonce, i as u64 * 100_000 + k)
        } else {
            pick.text.to_string()
        };
        let message_id = format!("c{i}-m{k}");
        let outcome = ask(&shared, &mut ws, &token, &session, i, &message_id, &text).await;
        shared.outcomes.lock().push(outcome);
        wait = Duration::from_secs_f64(rng.random_range(lo.as_secs_f64()..=hi.as_secs_f64()));
    }
    if let Some(mut w) = ws {
        let _ = w.close(None).await;
    }
}

/// Opens a socket to the active gateway, or the other one if the active refuses, until
/// `deadline`.
async fn connect(shared: &Shared, token: &str, deadline: Instant) -> Result<Ws, String> {
    let mut last = String::new();
    let mut pause = Duration::from_millis(50);
    while Instant::now() < deadline {
        let first = shared.active.load(Ordering::Relaxed);
        for k in 0..shared.urls.len() {
            let url = &shared.urls[(first + k) % shared.urls.len()];
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(
                left.min(Duration::from_secs(5)),
                mangaassist_bench::conn::connect(&format!("{url}?token={token}")),
            )
            .await
            {
                Ok(Ok(ws)) => return Ok(ws),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("connecting to {url} timed out"),
            }
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
    Err(format!("no gateway took the connection: {last}"))
}

/// Counts an answer as streaming from its first chunk until it ends.
struct Streaming<'a>(&'a AtomicUsize, bool);

impl Streaming<'_> {
    fn start(&mut self) {
        if !self.1 {
            self.1 = true;
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Streaming<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one state machine of a customer's answer: send, read, reconnect, resume"
)]
async fn ask(
    shared: &Shared,
    ws: &mut Option<Ws>,
    token: &str,
    session: &str,
    conversation: usize,
    message_id: &str,
    text: &str,
) -> Outcome {
    let sent_at = Instant::now();
    let deadline = sent_at + ANSWER_TIMEOUT;
    let mut out = Outcome {
        conversation,
        session: session.to_string(),
        message_id: message_id.to_string(),
        sent_at,
        ended_at: sent_at,
        first_chunk: None,
        degradation: None,
        failure: None,
        overrun_ms: None,
        lost_chunks: 0,
        duplicated_chunks: 0,
        resumes: 0,
        forced_disconnects: 0,
        reasked: 0,
    };
    // A page reads all the time and sees a 1012 while idle; this customer looks for one
    // only now, before asking on a socket the gateway may have said goodbye on.
    if let Some(sock) = ws.as_mut() {
        while let Some(pending) = futures::FutureExt::now_or_never(sock.next()) {
            match pending {
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    *ws = None;
                    break;
                }
                Some(Ok(_)) => {}
            }
        }
    }
    let mut got: BTreeSet<u32> = BTreeSet::new();
    let mut streaming = Streaming(&shared.streaming, false);
    // Whether the gateway may have the query: then a new socket resumes instead of asking.
    let mut sent = false;
    // The socket broke after the query went out: the next socket sends `resume`.
    let mut resume_owed = false;
    let fail = |mut out: Outcome, why: String| {
        out.failure = Some(why);
        out.ended_at = Instant::now();
        out
    };
    loop {
        if Instant::now() >= deadline {
            return fail(out, "timeout".into());
        }
        if ws.is_none() {
            match connect(shared, token, deadline).await {
                Ok(w) => *ws = Some(w),
                Err(e) => return fail(out, e),
            }
        }
        let Some(sock) = ws.as_mut() else { continue };
        let frame = if !sent {
            Some(ClientFrame::Query {
                text: text.to_string(),
                session_id: Some(session.to_string()),
                store_id: None,
                message_id: Some(message_id.to_string()),
            })
        } else if resume_owed {
            out.resumes += 1;
            Some(ClientFrame::Resume {
                session_id: session.to_string(),
                message_id: message_id.to_string(),
                last_chunk_idx: contiguous_last(&got),
            })
        } else {
            None
        };
        if let Some(f) = frame {
            let is_query = matches!(f, ClientFrame::Query { .. });
            let sending = sock.send(Message::text(f.to_json()));
            match tokio::time::timeout_at(deadline.into(), sending).await {
                Ok(Ok(())) => {
                    sent = true;
                    resume_owed = false;
                }
                Ok(Err(_)) => {
                    // Never reached the gateway: a new socket sends it again.
                    *ws = None;
                    if !is_query {
                        resume_owed = true;
                    }
                    continue;
                }
                Err(_) => return fail(out, "timeout".into()),
            }
        }
        let next = tokio::time::timeout_at(deadline.into(), sock.next()).await;
        let msg = match next {
            Err(_) => return fail(out, "timeout".into()),
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(_)) | None) => {
                // The socket broke: reconnect and resume what the gateway may have.
                *ws = None;
                resume_owed = sent;
                continue;
            }
        };
        let text_frame = match msg {
            Message::Text(t) => t,
            Message::Close(_) => {
                *ws = None;
                resume_owed = sent;
                continue;
            }
            _ => continue,
        };
        let Ok(frame) = mangaassist_protocol::parse_server_frame(text_frame.as_str()) else {
            continue;
        };
        match frame {
            ServerFrame::Chunk {
                message_id: id,
                index,
                ..
            } if id == message_id => {
                if !got.insert(index) {
                    out.duplicated_chunks += 1;
                }
                if out.first_chunk.is_none() {
                    out.first_chunk = Some(sent_at.elapsed());
                    streaming.start();
                }
                // Mid-stream (the second chunk) is where a cut hurts: take a wanted disconnect.
                if index == 1
                    && shared
                        .disconnects_wanted
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                {
                    shared.disconnects_made.fetch_add(1, Ordering::Relaxed);
                    out.forced_disconnects += 1;
                    // Dropped without a close handshake, as a phone losing its network.
                    *ws = None;
                    resume_owed = true;
                }
            }
            ServerFrame::Done(done) if done.message_id == message_id => {
                let total = done.chunks;
                let have = got.iter().filter(|&&i| i < total).count() as u32;
                out.lost_chunks = total.saturating_sub(have);
                if done.degradation != "full" {
                    out.overrun_ms = Some(shared.deadlines.overrun_ms(&done));
                }
                out.degradation = Some(done.degradation.clone());
                out.ended_at = Instant::now();
                return out;
            }
            ServerFrame::Error {
                message_id: id,
                code,
                ..
            } if id.as_deref().is_none_or(|m| m == message_id) => {
                match code {
                    // The query never reached a gateway that kept it (it was sent into a
                    // socket the gateway was closing): ask again, as the page does.
                    ErrorCode::NotFound if got.is_empty() => {
                        sent = false;
                        out.resumes = out.resumes.saturating_sub(1);
                        out.reasked += 1;
                    }
                    ErrorCode::Busy if !sent || got.is_empty() => {
                        // Refused before it started (a draining gateway): try again shortly.
                        sent = false;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    _ => return fail(out, code.as_str().to_string()),
                }
            }
            _ => {}
        }
    }
}

/// The last index of the unbroken run of chunks from 0 (`None` = none yet).
fn contiguous_last(got: &BTreeSet<u32>) -> Option<i64> {
    let mut last: Option<i64> = None;
    for (want, have) in got.iter().enumerate() {
        if want as u32 != *have {
            break;
        }
        last = Some(want as i64);
    }
    last
}

/// The assistant turns `history` shows for `session` (as `user`), by message id.
pub async fn saved_answers(
    shared: &Shared,
    conversation: usize,
    timeout: Duration,
) -> Result<BTreeSet<String>, String> {
    let user = format!("chaos-{}-u{conversation}", shared.nonce);
    let session = format!("chaos-{}-s{conversation}", shared.nonce);
    let token = token(shared, &user)?;
    let deadline = Instant::now() + timeout;
    let mut ws = connect(shared, &token, deadline).await?;
    let ask = ClientFrame::History {
        session_id: Some(session),
        limit: Some(mangaassist_protocol::MAX_HISTORY_TURNS),
    };
    ws.send(Message::text(ask.to_json()))
        .await
        .map_err(|e| format!("cannot ask for history: {e}"))?;
    loop {
        let msg = tokio::time::timeout_at(deadline.into(), ws.next())
            .await
            .map_err(|_| "no history within the timeout".to_string())?;
        let Some(Ok(Message::Text(t))) = msg else {
            return Err("the socket closed before the history came".into());
        };
        match mangaassist_protocol::parse_server_frame(t.as_str()) {
            Ok(ServerFrame::History { turns, .. }) => {
                let _ = ws.close(None).await;
                return Ok(turns
                    .into_iter()
                    .filter(|t| t.role == "assistant")
                    .map(|t| t.message_id)
                    .collect());
            }
            Ok(ServerFrame::Error { code, message, .. }) => {
                return Err(format!("history refused: {}: {message}", code.as_str()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_run_stops_at_the_first_gap() {
        let s: BTreeSet<u32> = [0, 1, 2, 4].into_iter().collect();
        assert_eq!(contiguous_last(&s), Some(2));
        assert_eq!(contiguous_last(&BTreeSet::new()), None);
        let s: BTreeSet<u32> = [1, 2].into_iter().collect();
        assert_eq!(contiguous_last(&s), None);
    }
}
