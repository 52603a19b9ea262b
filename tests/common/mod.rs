//! A whole mesh in this test process: every daemon on 127.0.0.1:0, zero-latency simulated
//! model, a fresh state directory, and a WebSocket client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod proxy;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use futures::{SinkExt, StreamExt};
use mangaassist::mesh::{self, Role, RunningMesh};
use mangaassist_config::{Config, FaultSpec};
use mangaassist_protocol::{ClientFrame, Done, ErrorCode, ServerFrame, parse_server_frame};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Defaults for tests: every port 0, zero-latency model, real sentence model (must be fetched:
/// `scripts/fetch-model.sh`; the tests fail rather than skip without it).
pub fn test_config(state: &std::path::Path, faults: &[&str]) -> Config {
    let mut c = Config::default();
    c.data.dir = repo().join("data");
    c.data.state_dir = state.to_path_buf();
    c.embedding.backend = mangaassist_config::EmbeddingBackend::Static;
    c.generation.latency_profile = mangaassist_config::LatencyProfile::Zero;
    c.generation.prompts_dir = repo().join("data/prompts");
    c.precompute.run_at_start = false;
    c.precompute.scheduler = false;
    c.gateway.listen = "127.0.0.1:0".into();
    c.gateway.internal_listen = "127.0.0.1:0".into();
    for (_, d) in c.mesh.daemons_mut() {
        d.listen = "127.0.0.1:0".into();
    }
    c.mesh.shutdown_grace_seconds = 2;
    c.faults = faults
        .iter()
        .map(|f| f.parse::<FaultSpec>().expect("fault spec"))
        .collect();
    c.validate().expect("test config is valid");
    c
}

/// A simulated model that streams at a steady, known pace (no jitter, no prompt cost), both
/// tiers alike: tests that cut, drain or resume need answers still streaming at a known time.
pub fn pace_model(c: &mut Config, first_token_ms: u32, tokens_per_second: f32) {
    c.generation.latency_profile = mangaassist_config::LatencyProfile::Realistic;
    c.generation.fast.first_token_ms = first_token_ms;
    c.generation.fast.tokens_per_second = tokens_per_second;
    c.generation.fast.jitter = 0.0;
    c.generation.smart = c.generation.fast.clone();
    c.generation.prefill_ms_per_1k_tokens = 0.0;
}

/// Spans (and so trace ids) need the subscriber; tests share one per process.
pub fn init_telemetry() {
    let settings = mangaassist_config::TelemetrySettings {
        log_format: mangaassist_config::LogFormat::Text,
        log_level: "warn".into(),
        otlp_endpoint: String::new(),
    };
    let _ = mangaassist_telemetry::init(
        &settings,
        std::env::var("RUST_LOG").ok().as_deref(),
        "mangaassist-test",
    );
}

/// How the gateway reaches the daemons of a [`TestMesh`] (all in the same process).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calls {
    /// Through each daemon's in-process door (the default of `mangaassist up`).
    InProcess,
    /// Through each daemon's gRPC port, as between pods (`mesh.in_process = []`).
    Grpc,
}

/// Makes every daemon of `c` reached as `calls` says.
pub fn set_calls(c: &mut Config, calls: Calls) {
    c.mesh.in_process = match calls {
        Calls::InProcess => mangaassist_config::DAEMONS.map(String::from).to_vec(),
        Calls::Grpc => Vec::new(),
    };
}

pub struct TestMesh {
    pub mesh: Option<RunningMesh>,
    _state: tempfile::TempDir,
}

impl TestMesh {
    pub async fn start(faults: &[&str]) -> Self {
        Self::start_with(faults, |_| {}).await
    }

    /// A mesh whose gateway reaches its daemons as `calls` says.
    pub async fn start_calling(calls: Calls, faults: &[&str]) -> Self {
        Self::start_with(faults, |c| set_calls(c, calls)).await
    }

    pub async fn start_with(faults: &[&str], tweak: impl FnOnce(&mut Config)) -> Self {
        init_telemetry();
        let state = tempfile::tempdir().unwrap();
        let mut config = test_config(state.path(), faults);
        tweak(&mut config);
        let mesh = mesh::start(config, &Role::ALL).await.expect("mesh starts");
        Self {
            mesh: Some(mesh),
            _state: state,
        }
    }

    pub fn mesh(&self) -> &RunningMesh {
        self.mesh.as_ref().unwrap()
    }

    pub fn ws_url(&self) -> String {
        self.mesh().ws_url().unwrap()
    }

    /// Where the gateway's public listener is bound (to put a [`proxy::Proxy`] in front).
    pub fn gateway_addr(&self) -> std::net::SocketAddr {
        self.mesh().addrs[&Role::Gateway]
    }

    /// A token for `user`, signed with this mesh's secret.
    pub fn token(&self, user: &str) -> String {
        mangaassist_gateway::issue_token(&self.mesh().config, user).unwrap()
    }

    /// A short-lived ticket for `user`: what `/ws` accepts in its URL.
    pub fn ticket(&self, user: &str) -> String {
        mangaassist_gateway::issue_ticket(&self.mesh().config, user).unwrap()
    }

    /// `/ws` URL authenticated as `user` (with a ticket, as the browser page does).
    pub fn ws_url_as(&self, user: &str) -> String {
        format!("{}?token={}", self.ws_url(), self.ticket(user))
    }

    /// Polls the memory daemon until `session` holds at least `turns` turns of `user`
    /// (turns are saved off the critical path, after `done`); returns them newest first.
    pub async fn wait_for_turns(
        &self,
        session: &str,
        user: &str,
        turns: usize,
    ) -> Vec<mangaassist_proto::v1::Turn> {
        let mesh = &self.mesh().config.mesh;
        let memory = mangaassist_client::MemoryClient::connect_with(
            &mesh.memory.endpoint,
            mangaassist_client::service_tokens(mesh, "test").unwrap(),
        )
        .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let h = memory
                .get_history(
                    mangaassist_proto::v1::GetHistoryRequest {
                        session_id: session.into(),
                        user_id: user.into(),
                        limit: 10,
                    },
                    Duration::from_secs(1),
                )
                .await
                .unwrap();
            if h.turns.len() >= turns {
                return h.turns;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{turns} turns of {session} never saved"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn client(&self) -> WsClient {
        WsClient::connect(&self.ws_url_as("u-demo")).await
    }

    /// Stops the mesh like SIGTERM does, keeping the state directory for a restart.
    pub async fn shut_down(&mut self) {
        if let Some(m) = self.mesh.take() {
            tokio::time::timeout(Duration::from_secs(20), m.stop())
                .await
                .expect("mesh stops within 20 s")
                .expect("mesh stops cleanly");
        }
    }

    pub async fn stop(mut self) {
        if let Some(m) = self.mesh.take() {
            tokio::time::timeout(Duration::from_secs(20), m.stop())
                .await
                .expect("mesh stops within 20 s")
                .expect("mesh stops cleanly");
        }
    }
}

pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Frames of one answer, in arrival order.
#[derive(Debug, Default)]
pub struct Answer {
    pub frames: Vec<ServerFrame>,
}

impl Answer {
    pub fn text(&self) -> String {
        self.frames
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Chunk { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn done(&self) -> &Done {
        self.frames
            .iter()
            .find_map(|f| match f {
                ServerFrame::Done(d) => Some(&**d),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no done frame in {:#?}", self.frames))
    }

    /// The `code` of the answer's `error` frame, if it ended in one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.frames.iter().find_map(error_code)
    }

    /// Chunk indexes, in arrival order.
    pub fn chunk_indexes(&self) -> Vec<u32> {
        chunk_texts(&self.frames)
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    }

    pub fn types(&self) -> Vec<&'static str> {
        self.frames.iter().map(ServerFrame::kind).collect()
    }
}

/// The `code` of an `error` frame (`None` for any other frame).
pub fn error_code(f: &ServerFrame) -> Option<ErrorCode> {
    match f {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
    }
}

impl WsClient {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        Self { ws }
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    /// Sends raw JSON: only for tests about the wire format itself.
    pub async fn send_json(&mut self, v: Value) {
        self.send_raw(Message::Text(v.to_string().into())).await;
    }

    /// Sends a typed client frame.
    pub async fn send(&mut self, frame: &ClientFrame) {
        self.send_raw(Message::Text(frame.to_json().into())).await;
    }

    /// Sends a query with its session and message id.
    pub async fn query(&mut self, text: &str, session: &str, message_id: &str) {
        self.send(&ClientFrame::Query {
            text: text.into(),
            session_id: Some(session.into()),
            store_id: None,
            message_id: Some(message_id.into()),
        })
        .await;
    }

    /// Asks to replay `message_id` after `last_chunk_idx` (`None` = from the start).
    pub async fn resume(&mut self, session: &str, message_id: &str, last_chunk_idx: Option<i64>) {
        self.send(&ClientFrame::Resume {
            session_id: session.into(),
            message_id: message_id.into(),
            last_chunk_idx,
        })
        .await;
    }

    /// Next message of any kind (None when the socket ended), failing after 10 s.
    pub async fn next_raw(&mut self) -> Option<Message> {
        tokio::time::timeout(Duration::from_secs(10), self.ws.next())
            .await
            .expect("a message within 10 s")
            .and_then(Result::ok)
    }

    /// Next gateway frame (skipping control frames), failing after 10 s.
    pub async fn next_frame(&mut self) -> ServerFrame {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a frame within 10 s")
                .expect("socket open")
                .expect("frame ok");
            if let Message::Text(t) = msg {
                return parse_server_frame(t.as_str())
                    .unwrap_or_else(|e| panic!("{e}: {}", t.as_str()));
            }
        }
    }

    /// Sends a query and reads frames until `done` or `error`.
    pub async fn ask(&mut self, text: &str, session: &str) -> Answer {
        self.ask_in(text, session, "manga_jp").await
    }

    pub async fn ask_in(&mut self, text: &str, session: &str, store: &str) -> Answer {
        self.send(&ClientFrame::Query {
            text: text.into(),
            session_id: Some(session.into()),
            store_id: Some(store.into()),
            message_id: None,
        })
        .await;
        let mut a = Answer::default();
        loop {
            let f = self.next_frame().await;
            let end = f.is_terminal();
            a.frames.push(f);
            if end {
                return a;
            }
        }
    }
}

/// Every product title of the catalog, for grounding checks.
pub fn catalog_titles() -> Vec<(String, String, String)> {
    let cat = mangaassist_catalog::Catalog::load(&repo().join("data")).unwrap();
    cat.products
        .into_iter()
        .map(|p| (p.id, p.title, p.series))
        .collect()
}

/// `mangaassist` child processes, killed when the test ends however it ends.
pub struct Processes(pub Vec<(String, std::process::Child)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Processes {
    /// Polls `GET /healthz` on each port until it answers 200, failing fast if a process exits.
    pub async fn wait_healthy(&mut self, ports: impl IntoIterator<Item = (String, u16)>) {
        let http = reqwest::Client::new();
        let started = std::time::Instant::now();
        for (role, port) in ports {
            loop {
                for (name, child) in &mut self.0 {
                    if let Some(status) = child.try_wait().unwrap() {
                        panic!("`mangaassist {name}` exited early: {status}");
                    }
                }
                let ok = http
                    .get(format!("http://127.0.0.1:{port}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(180),
                    "{role} not healthy after 180 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Every daemon and the gateway listen on port 0: a child process binds its own port and
/// reports it ([`spawn_reporting`]). A port picked by the test, freed and handed to a child
/// could be taken by anyone in between; a port the child bound itself cannot.
pub fn listen_on_any_port(config: &mut Config) {
    for (_, d) in config.mesh.daemons_mut() {
        d.listen = "127.0.0.1:0".into();
    }
    config.gateway.listen = "127.0.0.1:0".into();
    config.gateway.internal_listen = "127.0.0.1:0".into();
}

/// Points the mesh's endpoints at the ports children reported (role → port).
pub fn set_endpoints(config: &mut Config, ports: &BTreeMap<String, u16>) {
    for (name, d) in config.mesh.daemons_mut() {
        if let Some(port) = ports.get(name) {
            d.endpoint = format!("http://127.0.0.1:{port}");
        }
    }
}

/// The ports a child reported in its ready banner, as it reports them.
pub struct Reported(tokio::sync::mpsc::UnboundedReceiver<(String, u16)>);

impl Reported {
    /// Waits until each of `roles` has reported its port; fails if the child's output ends
    /// first (it exited) or after 180 s, as [`Processes::wait_healthy`] does.
    pub async fn wait_for(&mut self, roles: &[&str]) -> BTreeMap<String, u16> {
        let mut ports = BTreeMap::new();
        while roles.iter().any(|r| !ports.contains_key(*r)) {
            let next = tokio::time::timeout(Duration::from_secs(180), self.0.recv())
                .await
                .unwrap_or_else(|_| panic!("{roles:?} not reported after 180 s: {ports:?}"));
            let (role, port) = next
                .unwrap_or_else(|| panic!("child exited before reporting {roles:?}: {ports:?}"));
            ports.insert(role, port);
        }
        ports
    }
}

/// Spawns `cmd` (a `mangaassist up` or `serve`) with stdout piped. A thread passes on each
/// role and port of the ready banner (`  cache       grpc://127.0.0.1:PORT  ...`,
/// `  gateway     http://127.0.0.1:PORT/  ...`), then keeps draining, so the child never
/// blocks on a full pipe.
pub fn spawn_reporting(mut cmd: std::process::Command) -> (std::process::Child, Reported) {
    use std::io::BufRead;
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            let (Some(role), Some(url)) = (words.next(), words.next()) else {
                continue;
            };
            let Some(addr) = url
                .strip_prefix("grpc://")
                .or_else(|| url.strip_prefix("http://"))
            else {
                continue;
            };
            if let Some(Ok(port)) = addr
                .trim_end_matches('/')
                .rsplit_once(':')
                .map(|(_, p)| p.parse::<u16>())
            {
                let _ = tx.send((role.to_string(), port));
            }
        }
    });
    (child, Reported(rx))
}

/// Frames of one message up to and including its `done` or `error`.
pub async fn read_until_done(c: &mut WsClient, mid: &str) -> Vec<ServerFrame> {
    let mut frames = vec![];
    loop {
        let f = c.next_frame().await;
        if f.message_id() != Some(mid) {
            continue;
        }
        let end = f.is_terminal();
        frames.push(f);
        if end {
            return frames;
        }
    }
}

/// (index, text) of the chunk frames.
pub fn chunk_texts(frames: &[ServerFrame]) -> Vec<(u32, String)> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Chunk { index, text, .. } => Some((*index, text.clone())),
            _ => None,
        })
        .collect()
}

/// The `done` of frames that must end in one.
pub fn expect_done(frames: &[ServerFrame]) -> &Done {
    match frames.last() {
        Some(ServerFrame::Done(d)) => d,
        _ => panic!("no done frame at the end of {frames:#?}"),
    }
}
