//! Issue 14, item 9: SIGTERM under load loses nothing. The gateway drains first and the
//! daemons stop after it, so the turn of an answer that finishes during the drain is saved;
//! the socket is told to reconnect (1012) after its last frame; an answer cut at the end of
//! the grace period is marked `stream_interrupted` for whoever resumes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{sync::Arc, time::Duration};

use common::{TestMesh, WsClient, read_until_done};
use mangaassist::mesh::{self, Role};
use mangaassist_proto::v1 as pb;
use mangaassist_protocol::{ErrorCode, ServerFrame};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_in_flight_at_shutdown_is_delivered_and_its_turn_saved() {
    // A slow model: the answer is still being generated when shutdown starts.
    let mut m = TestMesh::start(&["generation.Generate=latency:800ms"]).await;
    let config = m.mesh().config.clone();
    let mut c = m.client().await;
    c.query("Recommend manga like Naruto", "s-down", "m-down")
        .await;
    // Its first frame: the gateway has taken the question and the answer is running.
    c.next_frame().await;
    let reading = async {
        let frames = read_until_done(&mut c, "m-down").await;
        (frames, c.next_raw().await)
    };
    let ((frames, after), ()) = tokio::join!(reading, m.shut_down());
    assert!(
        matches!(frames.last(), Some(ServerFrame::Done(_))),
        "{frames:?}"
    );
    match after {
        Some(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1012),
        other => panic!("expected the 1012 close after the answer, got {other:?}"),
    }
    // Memory, started again on the same state, holds the whole turn.
    let memory = mesh::start(config, &[Role::Memory]).await.unwrap();
    let client =
        mangaassist_client::MemoryClient::connect(&memory.config.mesh.memory.endpoint).unwrap();
    let history = client
        .get_history(
            pb::GetHistoryRequest {
                session_id: "s-down".into(),
                user_id: "u-demo".into(),
                limit: 10,
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let roles: Vec<&str> = history.turns.iter().map(|t| t.role.as_str()).collect();
    assert_eq!(roles, ["assistant", "user"], "{history:?}");
    memory.stop().await.unwrap();
}

/// An answer still running when the grace period ends is cut, and its resume buffer says so:
/// a client resuming it on another gateway gets `stream_interrupted` at once instead of
/// waiting for a stream nobody writes any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cut_at_the_end_of_grace_is_marked_interrupted_for_resume() {
    common::init_telemetry();
    let state = tempfile::tempdir().unwrap();
    let mut config = common::test_config(state.path(), &[]);
    // A model far slower than the grace period: the answer cannot finish in time.
    common::pace_model(&mut config, 50, 5.0);
    config.mesh.shutdown_grace_seconds = 1;
    let roles: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| *r != Role::Gateway)
        .collect();
    let daemons = mesh::start(config, &roles).await.unwrap();
    let cfg = daemons.config.clone();
    // Shared by both gateways, as Redis is in production.
    let store: Arc<dyn mangaassist_resume::ResumeStore> = Arc::new(
        mangaassist_resume::InMemoryResumeStore::new(mangaassist_gateway::resume_limits(&cfg)),
    );
    let tracker = tokio_util::task::TaskTracker::new();
    let start_gateway = |shutdown: CancellationToken| {
        let cfg = cfg.clone();
        let store = store.clone();
        let tracker = tracker.clone();
        async move {
            let clients = mangaassist_client::MeshClients::connect(&cfg.mesh).unwrap();
            let gw = mangaassist_gateway::Gateway::new(&cfg, clients, None, shutdown)
                .unwrap()
                .with_resume_store(store);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            (addr, tracker.spawn(gw.serve(listener, None)))
        }
    };
    let stop_a = CancellationToken::new();
    let (addr_a, task_a) = start_gateway(stop_a.clone()).await;
    let stop_b = CancellationToken::new();
    let (addr_b, task_b) = start_gateway(stop_b.clone()).await;
    let ticket = mangaassist_gateway::issue_ticket(&cfg, "u-demo").unwrap();
    let url = |a: std::net::SocketAddr| format!("ws://{a}/ws?token={ticket}");

    let mut c = WsClient::connect(&url(addr_a)).await;
    c.query("What is your return policy?", "s-cut", "m-cut")
        .await;
    let mut last = None;
    while last.is_none() {
        if let ServerFrame::Chunk { index, .. } = c.next_frame().await {
            last = Some(index);
        }
    }
    stop_a.cancel(); // SIGTERM; the answer needs far longer than the grace period
    // The client on A sees the rest of what was written, then the reconnect hint.
    let close = loop {
        match c.next_raw().await {
            Some(Message::Close(Some(f))) => break u16::from(f.code),
            Some(Message::Text(t)) => {
                if let Ok(ServerFrame::Chunk { index, .. }) =
                    mangaassist_protocol::parse_server_frame(t.as_str())
                {
                    last = Some(index);
                }
            }
            Some(_) => {}
            None => panic!("closed without a close frame"),
        }
    };
    assert_eq!(close, 1012);
    tokio::time::timeout(Duration::from_secs(10), task_a)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut b = WsClient::connect(&url(addr_b)).await;
    b.resume("s-cut", "m-cut", last.map(i64::from)).await;
    let rest = read_until_done(&mut b, "m-cut").await;
    assert_eq!(
        rest.last().and_then(common::error_code),
        Some(ErrorCode::StreamInterrupted),
        "{rest:?}"
    );
    stop_b.cancel();
    tokio::time::timeout(Duration::from_secs(10), task_b)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    daemons.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), daemons.wait())
        .await
        .unwrap()
        .unwrap();
}
