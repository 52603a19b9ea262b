//! Side-by-side benchmarks of OpenAI-compatible proxies (scripts/bench-litellm.sh):
//!
//! - [`serve_mock`]: a mock OpenAI upstream whose `POST …/chat/completions` answers every
//!   request at once with a pre-rendered SSE stream of N content deltas (zero delay), a final
//!   chunk with the finish reason and usage, and `[DONE]`. The body is rendered once at start,
//!   so a request costs the HTTP server's work only: the mock is never the bottleneck.
//! - [`run_load`]: a closed-loop client. C workers, each on its own HTTP/1.1 keep-alive
//!   connection, send `stream: true` requests with a distinct prompt each, read every SSE
//!   stream to the end and check it carried exactly the expected number of non-empty content
//!   deltas and `[DONE]`. It records per request the time to the first non-empty content delta
//!   (TTFT; a role-only delta does not count) and to `[DONE]`, and reads the CPU time
//!   (utime + stime, every thread of every process of the tree) of the processes it is told to
//!   watch and of itself around the measured window, after a warm-up.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderValue, Request, StatusCode, header},
    response::Response,
    routing::{get, post},
};
use futures::StreamExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};

use crate::{
    BenchError,
    queries::{QueryMix, make_unique},
};

// ---------------------------------------------------------------------------------------------
// Mock upstream
// ---------------------------------------------------------------------------------------------

/// The SSE body of one streamed answer: a role delta, `tokens` content deltas, a final chunk
/// with `finish_reason` `stop` and the usage, then `[DONE]`.
pub fn mock_stream_body(tokens: u32, model: &str) -> String {
    let id = "chatcmpl-mock";
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        serde_json::json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let mut out = String::new();
    let mut push = |v: serde_json::Value| {
        out.push_str("data: ");
        out.push_str(&v.to_string());
        out.push_str("\n\n");
    };
    push(chunk(
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    ));
    for i in 0..tokens {
        push(chunk(serde_json::json!({ "content": mock_word(i) }), None));
    }
    let mut last = chunk(serde_json::json!({}), Some("stop"));
    last["usage"] = serde_json::json!({
        "prompt_tokens": 10,
        "completion_tokens": tokens,
        "total_tokens": 10 + tokens,
    });
    push(last);
    out.push_str("data: [DONE]\n\n");
    out
}

/// The `i`th content delta of a mock answer.
fn mock_word(i: u32) -> String {
    if i == 0 {
        "Token0".to_string()
    } else {
        format!(" token{i}")
    }
}

/// The answer text the mock streams with `tokens` content deltas.
pub fn mock_text(tokens: u32) -> String {
    (0..tokens).map(mock_word).collect()
}

/// The non-streamed answer (`stream` false or absent).
fn mock_completion_body(tokens: u32, model: &str) -> String {
    let text = mock_text(tokens);
    serde_json::json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens},
    })
    .to_string()
}

/// Whether a request body asks for a stream. A cheap byte search instead of parsing JSON: the
/// clients in this benchmark write `"stream":true` or `"stream": true`.
fn wants_stream(body: &[u8]) -> bool {
    let needle = b"\"stream\"";
    body.windows(needle.len())
        .position(|w| w == needle)
        .is_some_and(|i| {
            body[i + needle.len()..]
                .iter()
                .find(|b| !matches!(b, b' ' | b':' | b'\t' | b'\n' | b'\r'))
                == Some(&b't')
        })
}

/// Serves the mock on `listener` until the process ends. `tokens` content deltas per answer.
pub async fn serve_mock(listener: TcpListener, tokens: u32, model: &str) -> std::io::Result<()> {
    let stream_body = Bytes::from(mock_stream_body(tokens, model));
    let json_body = Bytes::from(mock_completion_body(tokens, model));
    let served = Arc::new(AtomicU64::new(0));
    let count = served.clone();
    let completions = move |body: Bytes| {
        let (stream_body, json_body, served) =
            (stream_body.clone(), json_body.clone(), served.clone());
        async move {
            served.fetch_add(1, Ordering::Relaxed);
            let (ct, body) = if wants_stream(&body) {
                ("text/event-stream", stream_body)
            } else {
                ("application/json", json_body)
            };
            let mut r = Response::new(Body::from(body));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            r
        }
    };
    let models = {
        let model = model.to_string();
        move || async move {
            axum::Json(serde_json::json!({
                "object": "list",
                "data": [{"id": model, "object": "model", "created": 0, "owned_by": "mock"}],
            }))
        }
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(completions.clone()))
        .route("/chat/completions", post(completions))
        .route("/v1/models", get(models.clone()))
        .route("/models", get(models))
        .route(
            "/health",
            get(move || async move { count.load(Ordering::Relaxed).to_string() }),
        );
    axum::serve(listener, app).await
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// What [`run_load`] does.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `http://host:port/prefix`: requests go to `{base}/chat/completions`.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer` when set.
    pub api_key: Option<String>,
    /// Concurrent streams (workers, one connection each).
    pub concurrency: usize,
    /// Requests before the measured window (same concurrency), excluded from everything.
    pub warmup: u64,
    /// Measured requests (the window ends earlier when `duration` passes).
    pub requests: u64,
    pub duration: Option<Duration>,
    /// Non-empty content deltas every stream must carry (0: any number).
    pub tokens: u32,
    pub timeout: Duration,
    /// Processes whose CPU time (with all their descendants) is read around the window.
    pub watch: Vec<(String, u32)>,
    /// Kernel clock ticks per second (`getconf CLK_TCK`).
    pub clk_tck: u64,
    /// Questions the prompts are made from (made unique per request).
    pub mix: QueryMix,
    /// Makes prompts unique to this run.
    pub nonce: String,
    pub label: String,
}

/// One measured request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadSample {
    /// Time to the first non-empty content delta, from just before the request was written.
    pub ttft_ms: Option<f64>,
    /// Time to `[DONE]`.
    pub e2e_ms: Option<f64>,
    pub deltas: u32,
    /// Why it failed (`None`: complete and as expected).
    pub error: Option<String>,
    /// The gateway's `mangaassist.cache_hit` in the last chunk, when present.
    pub cache_hit: Option<bool>,
    /// Stages the gateway reports as failed (`error`, `deadline`, `circuit_open`) in
    /// `mangaassist.stages`: the answer came, but without that stage's work.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_stages: Vec<String>,
}

impl LoadSample {
    fn failed(error: impl Into<String>) -> Self {
        Self {
            ttft_ms: None,
            e2e_ms: None,
            deltas: 0,
            error: Some(error.into()),
            cache_hit: None,
            failed_stages: Vec::new(),
        }
    }
}

/// CPU seconds a watched process tree spent in the window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CpuUse {
    pub name: String,
    pub pid: u32,
    /// Processes in the tree at the end of the window.
    pub processes: usize,
    pub cpu_seconds: f64,
    /// Successful requests per CPU-second of this tree.
    pub requests_per_cpu_second: f64,
    /// Average cores busy over the window.
    pub cores_busy: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(xs: &[f64]) -> Option<Self> {
        let p = |q| mangaassist_stats::percentile(xs, q);
        Some(Self {
            p50: p(0.5)?,
            p90: p(0.9)?,
            p99: p(0.99)?,
            mean: xs.iter().sum::<f64>() / xs.len() as f64,
            max: xs.iter().copied().fold(f64::MIN, f64::max),
        })
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub label: String,
    pub url: String,
    pub concurrency: usize,
    pub tokens: u32,
    pub warmup: u64,
    pub ok: u64,
    pub errors: u64,
    /// Error kinds and how often.
    pub error_kinds: BTreeMap<String, u64>,
    pub cache_hits: u64,
    /// Successful answers with a failed stage, per `stage:outcome` (see [`LoadSample`]).
    pub degraded: u64,
    pub failed_stages: BTreeMap<String, u64>,
    pub wall_seconds: f64,
    pub requests_per_second: f64,
    pub ttft_ms: Option<Percentiles>,
    pub e2e_ms: Option<Percentiles>,
    pub cpu: Vec<CpuUse>,
    /// This client's own CPU time in the window.
    pub client_cpu_seconds: f64,
    pub samples: Vec<LoadSample>,
}

/// Sums utime + stime (all threads) of `root` and all its descendants, in clock ticks, and
/// counts the processes. `None` when `root` is gone.
pub fn tree_cpu_ticks(root: u32) -> Option<(u64, usize)> {
    let mut stats: HashMap<u32, (u32, u64)> = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(s) = read_stat(pid) {
            stats.insert(pid, s);
        }
    }
    stats.get(&root)?;
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, &(ppid, _)) in &stats {
        children.entry(ppid).or_default().push(pid);
    }
    let (mut ticks, mut n, mut todo) = (0, 0, vec![root]);
    while let Some(p) = todo.pop() {
        if let Some(&(_, t)) = stats.get(&p) {
            ticks += t;
            n += 1;
        }
        if let Some(c) = children.get(&p) {
            todo.extend(c);
        }
    }
    Some((ticks, n))
}

/// `(ppid, utime + stime)` of one process from `/proc/<pid>/stat`.
fn read_stat(pid: u32) -> Option<(u32, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(text: &str) -> Option<(u32, u64)> {
    // The command name may hold spaces and parentheses: fields start after the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// Utime + stime of this process (all threads), in clock ticks.
fn self_cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_stat(&s))
        .map_or(0, |(_, t)| t)
}

/// Where requests go: `host:port` to connect to, the `Host` header, the request path.
#[derive(Debug, Clone)]
struct Target {
    addr: String,
    host: String,
    path: String,
}

fn parse_base(base: &str) -> Result<Target, BenchError> {
    let rest = base.strip_prefix("http://").ok_or_else(|| {
        BenchError::Usage(format!(
            "--url `{base}`: only http:// URLs are supported (a local benchmark)"
        ))
    })?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(BenchError::Usage(format!("--url `{base}` has no host")));
    }
    let addr = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(Target {
        addr,
        host: authority.to_string(),
        path: format!("{prefix}/chat/completions"),
    })
}

type Conn = SendRequest<Body>;

async fn connect(addr: &str) -> Result<Conn, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes the connection.
        let _ = conn.await;
    });
    Ok(sender)
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    error: Option<serde_json::Value>,
    mangaassist: Option<GatewayDone>,
}

#[derive(Deserialize)]
struct Choice {
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct GatewayDone {
    cache_hit: Option<bool>,
    #[serde(default)]
    stages: Vec<GatewayStage>,
}

#[derive(Deserialize)]
struct GatewayStage {
    stage: String,
    outcome: String,
}

/// Reads the `data:` lines of an SSE body (one event per `data:` line: none of the servers
/// measured here splits an event over several lines).
#[derive(Default)]
struct Stream {
    buf: Vec<u8>,
    deltas: u32,
    /// The content so far: a proxy may regroup deltas (the gateway sends the ones that
    /// arrived together as one), so the answer is checked by its text.
    text: String,
    first: Option<Instant>,
    done: Option<Instant>,
    cache_hit: Option<bool>,
    failed_stages: Vec<String>,
}

impl Stream {
    fn push(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(i) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + i;
            let line = &self.buf[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(data) = line.strip_prefix(b"data:") {
                let data = data.strip_prefix(b" ").unwrap_or(data);
                // Borrow ends before `self` is mutated again: copy the event out.
                let data = data.to_vec();
                self.event(&data)?;
            }
            start = end + 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > 1 << 20 {
            return Err("line_too_long".into());
        }
        Ok(())
    }

    fn event(&mut self, data: &[u8]) -> Result<(), String> {
        if self.done.is_some() {
            return Err("data_after_done".into());
        }
        if data == b"[DONE]" {
            self.done = Some(Instant::now());
            return Ok(());
        }
        let chunk: Chunk = serde_json::from_slice(data).map_err(|_| "bad_chunk".to_string())?;
        if let Some(e) = chunk.error {
            let code = e
                .get("code")
                .and_then(|c| c.as_str())
                .unwrap_or("unknown")
                .to_string();
            return Err(format!("stream_error:{code}"));
        }
        if let Some(d) = chunk.mangaassist {
            self.cache_hit = d.cache_hit;
            self.failed_stages = d
                .stages
                .into_iter()
                .filter(|s| matches!(s.outcome.as_str(), "error" | "deadline" | "circuit_open"))
                .map(|s| format!("{}:{}", s.stage, s.outcome))
                .collect();
        }
        for c in chunk.choices {
            if let Some(t) = c.delta.and_then(|d| d.content).filter(|t| !t.is_empty()) {
                self.text.push_str(&t);
                self.deltas += 1;
                if self.first.is_none() {
                    self.first = Some(Instant::now());
                }
            }
        }
        Ok(())
    }
}

/// One request on `conn`: the sample, and whether the connection may be reused.
async fn one(conn: &mut Conn, target: &Target, cfg: &LoadConfig, prompt: &str) -> LoadSample {
    let body = serde_json::json!({
        "model": cfg.model,
        "stream": true,
        "messages": [{"role": "user", "content": prompt}],
    })
    .to_string();
    let mut req = Request::post(target.path.as_str())
        .header(header::HOST, &target.host)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "text/event-stream");
    if let Some(k) = &cfg.api_key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let req = match req.body(Body::from(body)) {
        Ok(r) => r,
        Err(e) => return LoadSample::failed(format!("request: {e}")),
    };
    let t0 = Instant::now();
    let resp = match conn.send_request(req).await {
        Ok(r) => r,
        Err(e) => return LoadSample::failed(format!("send: {e}")),
    };
    let status = resp.status();
    let mut body = Body::new(resp.into_body()).into_data_stream();
    if status != StatusCode::OK {
        while body.next().await.is_some() {}
        return LoadSample::failed(format!("http_{}", status.as_u16()));
    }
    let mut s = Stream::default();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(b) => {
                if let Err(e) = s.push(&b) {
                    return LoadSample::failed(e);
                }
            }
            Err(e) => return LoadSample::failed(format!("body: {e}")),
        }
    }
    let ms = |t: Option<Instant>| t.map(|t| t.duration_since(t0).as_secs_f64() * 1e3);
    let error = if s.done.is_none() {
        Some("no_done".to_string())
    } else if cfg.tokens > 0 && s.text != mock_text(cfg.tokens) {
        Some(format!("wrong_text_{}_deltas", s.deltas))
    } else {
        None
    };
    LoadSample {
        ttft_ms: ms(s.first),
        e2e_ms: ms(s.done),
        deltas: s.deltas,
        error,
        cache_hit: s.cache_hit,
        failed_stages: s.failed_stages,
    }
}

/// Runs one phase: workers take request numbers `from..from + n` (or until `until`) and keep
/// their connections for the next phase.
async fn phase(
    conns: Vec<Option<Conn>>,
    target: &Arc<Target>,
    cfg: &Arc<LoadConfig>,
    from: u64,
    n: u64,
    until: Option<Instant>,
) -> (Vec<Option<Conn>>, Vec<LoadSample>) {
    let next = Arc::new(AtomicU64::new(from));
    let end = from + n;
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (next, target, cfg) = (next.clone(), target.clone(), cfg.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                if until.is_some_and(|u| Instant::now() >= u) {
                    break;
                }
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= end {
                    break;
                }
                let pick = cfg.mix.pick(k);
                let prompt = make_unique(pick.text, &cfg.nonce, k);
                let reused = match conn.take() {
                    Some(mut c) => c.ready().await.is_ok().then_some(c),
                    None => None,
                };
                let mut c = match reused {
                    Some(c) => c,
                    None => match connect(&target.addr).await {
                        Ok(c) => c,
                        Err(e) => {
                            out.push(LoadSample::failed(e));
                            // Do not spin on a refused connection.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let sample =
                    match tokio::time::timeout(cfg.timeout, one(&mut c, &target, &cfg, &prompt))
                        .await
                    {
                        Ok(s) => {
                            if s.error.is_none() {
                                conn = Some(c);
                            }
                            s
                        }
                        Err(_) => LoadSample::failed("timeout"),
                    };
                out.push(sample);
            }
            (conn, out)
        }));
    }
    let mut conns = Vec::new();
    let mut samples = Vec::new();
    for t in tasks {
        match t.await {
            Ok((c, s)) => {
                conns.push(c);
                samples.extend(s);
            }
            Err(e) => samples.push(LoadSample::failed(format!("worker: {e}"))),
        }
    }
    (conns, samples)
}

/// Runs the warm-up, then the measured window, and reports.
pub async fn run_load(cfg: LoadConfig) -> Result<LoadReport, BenchError> {
    if cfg.concurrency == 0 {
        return Err(BenchError::Usage("--concurrency must be at least 1".into()));
    }
    let target = Arc::new(parse_base(&cfg.base_url)?);
    let cfg = Arc::new(cfg);
    let mut conns = Vec::new();
    for _ in 0..cfg.concurrency {
        conns.push(Some(connect(&target.addr).await.map_err(|reason| {
            BenchError::Connect {
                url: cfg.base_url.clone(),
                reason,
            }
        })?));
    }
    let (conns, warm) = phase(conns, &target, &cfg, 0, cfg.warmup, None).await;
    if !warm.is_empty() && warm.iter().all(|s| s.error.is_some()) {
        return Err(BenchError::Connect {
            url: cfg.base_url.clone(),
            reason: format!(
                "every warm-up request failed, e.g. {}",
                warm[0].error.clone().unwrap_or_default()
            ),
        });
    }
    let before: Vec<Option<(u64, usize)>> = cfg
        .watch
        .iter()
        .map(|(_, pid)| tree_cpu_ticks(*pid))
        .collect();
    let self_before = self_cpu_ticks();
    let start = Instant::now();
    let until = cfg.duration.map(|d| start + d);
    let requests = if cfg.duration.is_some() && cfg.requests == 0 {
        u64::MAX / 2
    } else {
        cfg.requests
    };
    let (conns, samples) = phase(conns, &target, &cfg, cfg.warmup, requests, until).await;
    let wall = start.elapsed().as_secs_f64();
    let self_after = self_cpu_ticks();
    let after: Vec<Option<(u64, usize)>> = cfg
        .watch
        .iter()
        .map(|(_, pid)| tree_cpu_ticks(*pid))
        .collect();
    drop(conns);

    let ok = samples.iter().filter(|s| s.error.is_none()).count() as u64;
    let mut error_kinds = BTreeMap::new();
    for e in samples.iter().filter_map(|s| s.error.as_ref()) {
        *error_kinds.entry(e.clone()).or_insert(0) += 1;
    }
    let mut failed_stages = BTreeMap::new();
    for f in samples.iter().flat_map(|s| &s.failed_stages) {
        *failed_stages.entry(f.clone()).or_insert(0) += 1;
    }
    let degraded = samples
        .iter()
        .filter(|s| s.error.is_none() && !s.failed_stages.is_empty())
        .count() as u64;
    let tick = cfg.clk_tck.max(1) as f64;
    let mut cpu = Vec::new();
    for (((name, pid), b), a) in cfg.watch.iter().zip(&before).zip(&after) {
        let (Some((b, _)), Some((a, n))) = (b, a) else {
            return Err(BenchError::Usage(format!(
                "watched process {name} (pid {pid}) is gone"
            )));
        };
        let secs = a.saturating_sub(*b) as f64 / tick;
        cpu.push(CpuUse {
            name: name.clone(),
            pid: *pid,
            processes: *n,
            cpu_seconds: secs,
            requests_per_cpu_second: if secs > 0.0 { ok as f64 / secs } else { 0.0 },
            cores_busy: secs / wall,
        });
    }
    let good = |f: fn(&LoadSample) -> Option<f64>| -> Vec<f64> {
        samples
            .iter()
            .filter(|s| s.error.is_none())
            .filter_map(f)
            .collect()
    };
    Ok(LoadReport {
        label: cfg.label.clone(),
        url: cfg.base_url.clone(),
        concurrency: cfg.concurrency,
        tokens: cfg.tokens,
        warmup: cfg.warmup,
        ok,
        errors: samples.len() as u64 - ok,
        error_kinds,
        cache_hits: samples.iter().filter(|s| s.cache_hit == Some(true)).count() as u64,
        degraded,
        failed_stages,
        wall_seconds: wall,
        requests_per_second: ok as f64 / wall,
        ttft_ms: Percentiles::of(&good(|s| s.ttft_ms)),
        e2e_ms: Percentiles::of(&good(|s| s.e2e_ms)),
        cpu,
        client_cpu_seconds: self_after.saturating_sub(self_before) as f64 / tick,
        samples,
    })
}

/// One line per run for people; the JSON file has everything.
pub fn describe(r: &LoadReport) -> String {
    let p = |x: &Option<Percentiles>| {
        x.as_ref().map_or("-".to_string(), |p| {
            format!(
                "p50 {:.3} p90 {:.3} p99 {:.3} max {:.3} ms",
                p.p50, p.p90, p.p99, p.max
            )
        })
    };
    let mut s = format!(
        "{}: {} streams, {} ok, {} errors {:?}, {} cache hits, {} degraded {:?}, {:.1} req/s \
         over {:.1} s; TTFT {}; done {}; client CPU {:.2} s",
        r.label,
        r.concurrency,
        r.ok,
        r.errors,
        r.error_kinds,
        r.cache_hits,
        r.degraded,
        r.failed_stages,
        r.requests_per_second,
        r.wall_seconds,
        p(&r.ttft_ms),
        p(&r.e2e_ms),
        r.client_cpu_seconds
    );
    for c in &r.cpu {
        let _ = write!(
            s,
            "; {} CPU {:.2} s ({} processes, {:.2} cores) = {:.0} req per CPU-second",
            c.name, c.cpu_seconds, c.processes, c.cores_busy, c.requests_per_cpu_second
        );
    }
    s
}

/// Writes the report as JSON.
pub fn write_report(path: &Path, r: &LoadReport) -> Result<(), BenchError> {
    let write_err = |source| BenchError::Write {
        path: PathBuf::from(path),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let json = serde_json::to_string(r).map_err(|e| BenchError::Write {
        path: PathBuf::from(path),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(path, json).map_err(write_err)
}

/// Binds the mock's listener.
pub async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), BenchError> {
    let l = TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn stat_lines_parse_with_odd_names() {
        let line = "1234 (tokio (rt) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(parse_stat(line), Some((1, 325)));
    }

    #[test]
    fn stream_detection_is_tolerant_of_spacing() {
        assert!(wants_stream(br#"{"model":"m","stream":true}"#));
        assert!(wants_stream(br#"{"stream" : true, "x": 1}"#));
        assert!(!wants_stream(br#"{"stream":false}"#));
        assert!(!wants_stream(br#"{"model":"m"}"#));
    }

    #[test]
    fn base_urls_split_into_address_and_path() {
        let t = parse_base("http://127.0.0.1:4000/v1/").unwrap();
        assert_eq!(
            (t.addr.as_str(), t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:4000", "127.0.0.1:4000", "/v1/chat/completions")
        );
        assert_eq!(parse_base("http://h").unwrap().addr, "h:80");
        assert!(parse_base("https://h/v1").is_err());
    }

    #[test]
    fn the_mock_body_reads_as_n_deltas_and_done() {
        let body = mock_stream_body(50, "m");
        // Any split gives the same reading.
        for cut in [0, 1, 7, body.len() / 2, body.len() - 3, body.len()] {
            let mut s = Stream::default();
            s.push(&body.as_bytes()[..cut]).unwrap();
            s.push(&body.as_bytes()[cut..]).unwrap();
            assert_eq!(s.deltas, 50, "cut {cut}");
            assert_eq!(s.text, mock_text(50));
            assert!(s.done.is_some() && s.first.is_some());
        }
    }

    #[test]
    fn failed_gateway_stages_are_recorded() {
        let mut s = Stream::default();
        s.push(
            br#"data: {"choices":[],"mangaassist":{"cache_hit":false,"stages":[{"stage":"cache","outcome":"circuit_open"},{"stage":"intent","outcome":"ok"}]}}

"#,
        )
        .unwrap();
        assert_eq!(s.failed_stages, vec!["cache:circuit_open".to_string()]);
        assert_eq!(s.cache_hit, Some(false));
    }

    #[test]
    fn an_error_event_fails_the_stream() {
        let mut s = Stream::default();
        let e = s
            .push(b"data: {\"error\":{\"code\":\"internal\",\"message\":\"x\"}}\n\n")
            .unwrap_err();
        assert_eq!(e, "stream_error:internal");
    }

    #[tokio::test]
    async fn client_and_mock_agree() {
        let (listener, addr) = bind("127.0.0.1:0").await.unwrap();
        tokio::spawn(serve_mock(listener, 50, "mock"));
        let mix = QueryMix::from_pairs(
            (0..3).map(|i| ("faq".to_string(), format!("question {i}"))),
            &[],
            1,
            1,
        )
        .unwrap();
        let pid = std::process::id();
        let r = run_load(LoadConfig {
            base_url: format!("http://{addr}/v1"),
            model: "mock".into(),
            api_key: None,
            concurrency: 3,
            warmup: 3,
            requests: 30,
            duration: None,
            tokens: 50,
            timeout: Duration::from_secs(10),
            watch: vec![("self".into(), pid)],
            clk_tck: 100,
            mix,
            nonce: "t".into(),
            label: "test".into(),
        })
        .await
        .unwrap();
        assert_eq!((r.ok, r.errors), (30, 0), "{:?}", r.error_kinds);
        assert!(r.ttft_ms.is_some());
        assert_eq!(r.cpu[0].processes, 1);
    }
}
