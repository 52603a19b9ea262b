//! A gateway balances its intent calls over two intent replicas (the real classifier behind
//! two gRPC servers), and when one leaves the replica set — as a pod leaves its headless
//! Service's DNS answer before it stops — and then stops, no message fails or degrades.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a test owns and joins every task it spawns"
)]

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::WsClient;
use mangaassist::mesh::{self, Role};
use mangaassist_client::{IntentClient, Listed, MeshClients, balanced_channel};
use mangaassist_intent::IntentDaemon;
use mangaassist_proto::v1 as pb;
use mangaassist_server::{Daemon, ServeOptions};
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

/// One intent replica: the real daemon, counting the calls this replica answers.
#[derive(Clone)]
struct Counting {
    daemon: IntentDaemon,
    calls: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl pb::intent_service_server::IntentService for Counting {
    async fn classify(
        &self,
        request: Request<pb::ClassifyRequest>,
    ) -> Result<Response<pb::ClassifyResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        pb::intent_service_server::IntentService::classify(&self.daemon, request).await
    }
}

struct Replica {
    addr: SocketAddr,
    calls: Arc<AtomicU64>,
    opts: ServeOptions,
    task: JoinHandle<()>,
}

impl Replica {
    async fn start(daemon: IntentDaemon) -> Self {
        let (listener, addr) = mangaassist_server::bind_with_addr("127.0.0.1:0")
            .await
            .unwrap();
        let svc = Counting {
            daemon,
            calls: Arc::default(),
        };
        let calls = svc.calls.clone();
        let opts = ServeOptions::for_tests();
        let serve = opts.clone();
        let task = tokio::spawn(async move {
            Daemon::new("intent")
                .add_service(pb::intent_service_server::IntentServiceServer::new(svc))
                .serve(listener, serve)
                .await
                .unwrap();
        });
        Self {
            addr,
            calls,
            opts,
            task,
        }
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    async fn stop(self) {
        self.opts.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("replica stops")
            .unwrap();
    }
}

const QUESTIONS: [&str; 6] = [
    "Where is my order?",
    "Suggest manga like One Piece",
    "How much is shipping to Osaka?",
    "Do you have Attack on Titan volume 3 in stock?",
    "Hello there!",
    "I want to return a book and get my money back",
];

/// Asks one question and insists the answer is whole: nothing degraded, and intent (when
/// asked: a cache hit answers before it) answered.
async fn ask_ok(c: &mut WsClient, n: usize) {
    let a = c
        .ask(
            &format!("{} ({n})", QUESTIONS[n % QUESTIONS.len()]),
            &format!("s-bal-{n}"),
        )
        .await;
    let done = a.done();
    assert_eq!(done.degradation, "full", "message {n}: {done:?}");
    if let Some(intent) = done.stage("intent") {
        assert_eq!(intent.outcome, "ok", "message {n}: {done:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_spread_over_intent_replicas_and_none_fails_when_one_leaves() {
    common::init_telemetry();
    let state = tempfile::tempdir().unwrap();
    let mut config = common::test_config(state.path(), &[]);
    config.gateway.limits.user_messages_per_minute = 0;
    // This test is about where calls go, not their speed: on 2 shared cores a debug build
    // misses the production deadlines now and then, which would degrade a message for reasons
    // unrelated to balancing.
    config.gateway.deadlines.intent_ms = 2_000;
    config.gateway.deadlines.cache_ms = 2_000;
    config.gateway.deadlines.memory_ms = 2_000;
    config.gateway.deadlines.retrieval_ms = 2_000;
    // Every daemon but intent (and the gateway, built here with its own intent client).
    let roles: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| !matches!(r, Role::Gateway | Role::Intent))
        .collect();
    let daemons = mesh::start(config, &roles).await.unwrap();
    let cfg = daemons.config.clone();
    let embedder = mesh::load_embedder(&cfg).await.unwrap();
    let intent = IntentDaemon::new(&cfg, embedder.clone()).await.unwrap();
    let a = Replica::start(intent.clone()).await;
    let b = Replica::start(intent).await;

    let addrs = Listed::new(vec![a.addr, b.addr]);
    let channel = balanced_channel(
        "intent",
        "http://intent.mangaassist.svc:50061",
        addrs.clone(),
        Duration::from_millis(20),
    )
    .unwrap();
    let mut clients = MeshClients::connect(&cfg.mesh).unwrap();
    clients.intent = IntentClient::new(channel);
    let stop_gateway = tokio_util::sync::CancellationToken::new();
    let gw = mangaassist_gateway::Gateway::new(&cfg, clients, Some(embedder), stop_gateway.clone())
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_addr = listener.local_addr().unwrap();
    let gw_task = tokio::spawn(gw.serve(listener, None));
    assert!(
        addrs.applied(Duration::from_secs(10)).await,
        "resolver runs"
    );

    let ticket = mangaassist_gateway::issue_ticket(&cfg, "u-demo").unwrap();
    let mut c = WsClient::connect(&format!("ws://{gw_addr}/ws?token={ticket}")).await;
    // Both replicas answer some of the messages (p2c picks at random between idle ones).
    let mut n = 0;
    while (a.calls() == 0 || b.calls() == 0) && n < 60 {
        ask_ok(&mut c, n).await;
        n += 1;
    }
    assert!(
        a.calls() > 0 && b.calls() > 0,
        "after {n} messages: a {} b {}",
        a.calls(),
        b.calls()
    );

    // `b` leaves the answer, then drains and stops while messages keep coming.
    addrs.update(|l| l.retain(|x| *x != b.addr));
    assert!(
        addrs.applied(Duration::from_secs(10)).await,
        "resolver runs"
    );
    let b_calls = b.calls.clone();
    let b_before = b.calls();
    let stopping = tokio::spawn(b.stop());
    for _ in 0..6 {
        ask_ok(&mut c, n).await;
        n += 1;
    }
    stopping.await.unwrap();
    let a_before = a.calls();
    for _ in 0..6 {
        ask_ok(&mut c, n).await;
        n += 1;
    }
    assert!(
        a.calls() >= a_before + 6,
        "a {} (was {a_before})",
        a.calls()
    );
    assert_eq!(
        b_calls.load(Ordering::SeqCst),
        b_before,
        "b took calls after it left"
    );

    stop_gateway.cancel();
    drop(c);
    tokio::time::timeout(Duration::from_secs(20), gw_task)
        .await
        .expect("gateway stops")
        .unwrap()
        .unwrap();
    a.stop().await;
    tokio::time::timeout(Duration::from_secs(20), daemons.stop())
        .await
        .expect("daemons stop")
        .unwrap();
}
