//! The responsiveness core over real WebSockets and real gRPC, with injected faults: budgets
//! as deadlines, circuit breakers, speculative retrieval, adaptive routing, batching,
//! heartbeats, resume, auth, rate limits and graceful drain.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

mod common;

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{TestMesh, WsClient, chunk_texts, error_code, expect_done, read_until_done};
use futures::StreamExt;
use mangaassist_config::FaultSpec;
use mangaassist_protocol::{ClientFrame, Done, ErrorCode, ServerFrame, parse_server_frame};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, Message};

fn faults(specs: &[&str]) -> Vec<FaultSpec> {
    specs.iter().map(|f| f.parse().unwrap()).collect()
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The gateway's status pages (`/breakers`, `/routing`, `/metrics`): the internal listener.
fn http_base(m: &TestMesh) -> String {
    m.mesh()
        .internal_url()
        .unwrap()
        .trim_end_matches('/')
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_reports_its_timing_and_budget() {
    let m = TestMesh::start(&[]).await;
    let mut c = m.client().await;
    let a = c.ask("Suggest manga like One Piece", "s-stages").await;
    let done = a.done();
    for s in [
        "embed",
        "intent",
        "cache",
        "retrieval",
        "context_assembly",
        "first_token",
    ] {
        let st = done
            .stage(s)
            .unwrap_or_else(|| panic!("no `{s}` stage in {done:?}"));
        assert!(st.duration_ms >= 0.0);
        assert!(st.start_ms >= 0.0);
    }
    assert_eq!(done.stage("intent").unwrap().budget_ms, Some(35));
    assert_eq!(done.stage("retrieval").unwrap().budget_ms, Some(200));
    assert!(matches!(done.tier.as_str(), "fast" | "smart"));
    assert!(matches!(
        done.route.as_str(),
        "matrix" | "adaptive" | "escalated"
    ));
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_retrieval_answers_without_rag_within_its_deadline() {
    let m = TestMesh::start_with(&["retrieval=hang"], |c| {
        c.gateway.deadlines.retrieval_ms = 300;
    })
    .await;
    let mut c = m.client().await;
    let a = c.ask("Recommend a dark fantasy manga", "s-hung").await;
    let done = a.done();
    // A hung call only ends by its deadline: the answer came, without RAG, because of it.
    assert_eq!(done.degradation, "no_rag", "{done:?}");
    assert_eq!(done.stage("retrieval").unwrap().outcome, "deadline");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_after_failures_and_closes_after_recovery() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.breakers.failure_threshold = 3;
        c.gateway.breakers.open_ms = 300;
        c.gateway.deadlines.retrieval_ms = 200;
        // The loop below asks until a probe closes the circuit; answers take a few ms, so
        // the per-user allowance would end the test before the breaker does.
        c.gateway.limits.user_messages_per_minute = 100_000;
        c.gateway.limits.connection_messages_per_second = 10_000;
    })
    .await;
    let base = http_base(&m);
    let mut c = m.client().await;
    m.mesh().faults.set(faults(&["retrieval=error:1.0"]));
    for i in 0..3 {
        let a = c
            .ask(&format!("Recommend a sports manga number {i}"), "s-br")
            .await;
        assert_eq!(a.done().degradation, "no_rag");
        assert_eq!(a.done().stage("retrieval").unwrap().outcome, "error");
    }
    let breakers = get_json(&format!("{base}/breakers")).await;
    let retrieval = breakers
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["dependency"] == "retrieval")
        .unwrap();
    assert_eq!(retrieval["state"], "open", "{breakers}");
    // Open: the dependency is skipped at once, not waited for (the call is never made).
    let a = c.ask("Recommend a horror manga", "s-br").await;
    assert_eq!(a.done().stage("retrieval").unwrap().outcome, "circuit_open");
    // Heal it; once the open period is over a probe goes through and closes the circuit.
    m.mesh().faults.set(vec![]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        let a = c
            .ask(&format!("Recommend a romance manga {n}"), "s-br")
            .await;
        if a.done().degradation == "full" {
            break;
        }
        assert!(Instant::now() < deadline, "breaker never closed");
    }
    let breakers = get_json(&format!("{base}/breakers")).await;
    let retrieval = breakers
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["dependency"] == "retrieval")
        .unwrap();
    assert_eq!(retrieval["state"], "closed", "{breakers}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speculative_retrieval_is_cancelled_for_a_greeting() {
    // Retrieval never answers: had the greeting waited for it, the stage would end by its
    // deadline (outcome "deadline", a degraded answer) instead of being cancelled unfinished.
    let m = TestMesh::start(&["retrieval=hang"]).await;
    let mut c = m.client().await;
    let a = c.ask("hello there!", "s-spec").await;
    let done = a.done();
    assert_eq!(done.intent, "greeting", "{done:?}");
    assert_eq!(done.degradation, "full", "{done:?}");
    assert_eq!(
        done.stage("retrieval").unwrap().outcome,
        "cancelled",
        "{done:?}"
    );
    let metrics = reqwest::get(format!("{}/metrics", http_base(&m)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("speculative_retrieval_cancelled_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_routing_flips_under_a_slow_smart_tier_and_back() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.routing.smart_p95_threshold_ms = 150;
        c.gateway.routing.recover_below_ms = 100;
        c.gateway.routing.min_samples = 3;
        c.gateway.routing.window_seconds = 1;
        c.gateway.routing.quality_gate = false;
        // Every question must reach the model, not the (semantic) cache.
        c.gateway.cacheable_intents = vec![];
    })
    .await;
    let base = http_base(&m);
    let mut c = m.client().await;
    // Complex questions go to the smart tier whatever the routing state.
    let complex = "Compare One Piece and Naruto: which has better world-building, pacing and art, and which should I start first if I liked Bleach?";
    m.mesh()
        .faults
        .set(faults(&["generation.Generate=latency:200ms"]));
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !get_json(&format!("{base}/routing")).await["medium_complexity_to_fast"]
        .as_bool()
        .unwrap()
    {
        n += 1;
        let a = c.ask(&format!("{complex} ({n})"), "s-adapt").await;
        assert_eq!(a.done().tier, "smart", "{:?}", a.done());
        assert!(Instant::now() < deadline, "routing never flipped");
    }
    m.mesh().faults.set(vec![]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(&format!("{base}/routing")).await["medium_complexity_to_fast"]
        .as_bool()
        .unwrap()
    {
        n += 1;
        c.ask(&format!("{complex} ({n})"), "s-adapt").await;
        assert!(Instant::now() < deadline, "routing never recovered");
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_confidence_fast_answers_escalate_to_the_smart_tier() {
    let m = TestMesh::start_with(&["retrieval=error:1.0"], |c| {
        // Everything routes to the fast tier; retrieval failing leaves the model without
        // products, so its answer to a product question is low-confidence.
        c.intent.complexity_fast_below = 1.0;
        c.intent.complexity_smart_above = 1.0;
        c.gateway.cacheable_intents = vec![];
    })
    .await;
    let mut c = m.client().await;
    let a = c
        .ask("Do you have volume 3 of Blue Lock in stock?", "s-qg")
        .await;
    let done = a.done();
    assert_eq!(done.intent, "product_search", "{done:?}");
    assert_eq!(
        (done.tier.as_str(), done.route.as_str()),
        ("smart", "escalated"),
        "{done:?}"
    );
    // The fast attempt's generation stage ends `escalated`, the smart one's `ok`.
    let generation: Vec<&str> = done
        .stages
        .iter()
        .filter(|s| s.stage == "generation")
        .map(|s| s.outcome.as_str())
        .collect();
    assert!(generation.contains(&"escalated"), "{generation:?}");
    assert!(!a.text().is_empty());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_are_batched_after_the_first_three() {
    let m = TestMesh::start(&[]).await;
    let mut c = m.client().await;
    let a = c.ask("Suggest manga like Attack on Titan", "s-batch").await;
    let done = a.done();
    let tokens = done.tokens;
    let chunks = done.chunks;
    assert!(tokens > 10, "{done:?}");
    // The first three deltas go out alone. The rest of a zero-latency answer arrives faster
    // than it can be sent, so deltas already waiting share a frame: never more frames than
    // batches of three, and fewer when several batches were ready at once.
    assert!(
        chunks > 3 && chunks <= 3 + (tokens - 3).div_ceil(3),
        "{done:?}"
    );
    assert_eq!(a.chunk_indexes(), (0..chunks).collect::<Vec<_>>());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_slow_answer_alive() {
    let m = TestMesh::start_with(&["generation.Generate=latency:1500ms"], |c| {
        c.gateway.stream.heartbeat_seconds = 1;
    })
    .await;
    let mut c = m.client().await;
    let a = c.ask("What is your return policy?", "s-hb").await;
    let types = a.types();
    let hb = a
        .frames
        .iter()
        .position(|f| matches!(f, ServerFrame::Heartbeat { .. }));
    let first_chunk = a
        .frames
        .iter()
        .position(|f| matches!(f, ServerFrame::Chunk { .. }));
    assert!(
        hb.is_some() && hb < first_chunk,
        "no heartbeat before the first chunk: {types:?}"
    );
    m.stop().await;
}

/// Cuts the connection after `cut` chunks and resumes on a new one; returns the chunks the
/// client ended up with, the `done` frame, and the whole answer as a full replay shows it.
async fn cut_and_resume(
    url: &str,
    question: &str,
    session: &str,
    cut: usize,
) -> (Vec<(u32, String)>, Done, Vec<(u32, String)>) {
    let mid = format!("m-{session}-{cut}");
    let mut a = WsClient::connect(url).await;
    a.query(question, session, &mid).await;
    let mut got = vec![];
    // Any frame of the answer (the status comes first) means the gateway has accepted the
    // query and opened its resume buffer; dropping the socket before that would cut a
    // question, not an answer, and there would be nothing to resume.
    let mut accepted = false;
    while !accepted || got.len() < cut {
        let frame = a.next_frame().await;
        accepted = true;
        match frame {
            ServerFrame::Chunk { index, text, .. } => got.push((index, text)),
            // Answers differ a little per session: a cut past this one's end resumes after
            // its last chunk and must get just the `done`.
            ServerFrame::Done(_) => break,
            _ => {}
        }
    }
    drop(a);
    let mut b = WsClient::connect(url).await;
    let last = got.last().map_or(-1, |(i, _)| i64::from(*i));
    b.resume(session, &mid, Some(last)).await;
    let rest = read_until_done(&mut b, &mid).await;
    let done = expect_done(&rest).clone();
    got.extend(chunk_texts(&rest));
    b.resume(session, &mid, Some(-1)).await;
    let full = chunk_texts(&read_until_done(&mut b, &mid).await);
    (got, done, full)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_disconnect_yields_exactly_the_missing_chunks() {
    let m = TestMesh::start_with(&[], |c| {
        // Tokens spaced out so cuts land while the answer is still streaming.
        common::pace_model(c, 20, 400.0);
        c.gateway.limits.user_messages_per_minute = 0;
    })
    .await;
    let url = m.ws_url_as("u-demo");
    let question = "What is your shipping policy to Osaka?";
    // The answer's length, to choose cut points (answers differ a little per session).
    let (_, _, full) = cut_and_resume(&url, question, "s-ref", 0).await;
    let n = full.len();
    assert!(n > 8, "answer too short to cut: {n} chunks");
    let mut cuts: BTreeSet<usize> = (0..n).step_by((n / 12).max(1)).collect();
    cuts.insert(1);
    cuts.insert(n - 1);
    for &cut in &cuts {
        let (got, done, whole) = cut_and_resume(&url, question, &format!("s-cut{cut}"), cut).await;
        let idx: Vec<u32> = got.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            idx,
            (0..got.len() as u32).collect::<Vec<_>>(),
            "cut {cut}: indices {idx:?}"
        );
        assert_eq!(got.len() as u32, done.chunks, "cut {cut}");
        assert_eq!(got, whole, "cut {cut}");
        assert!(!whole.is_empty());
    }
    // After completion every cut point replays from the buffer too.
    let mut b = m.client().await;
    for last in -1..n as i64 {
        b.resume("s-ref", "m-s-ref-0", Some(last)).await;
        let frames = read_until_done(&mut b, "m-s-ref-0").await;
        let got = chunk_texts(&frames);
        assert_eq!(got.len() as i64, n as i64 - 1 - last, "last {last}");
        assert_eq!(got, full[(last + 1) as usize..].to_vec(), "last {last}");
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_resume_another_users_stream() {
    let m = TestMesh::start(&[]).await;
    let mut alice = WsClient::connect(&m.ws_url_as("u-demo")).await;
    alice.query("hello", "s-alice", "m-alice").await;
    read_until_done(&mut alice, "m-alice").await;
    // Her turn is saved off the critical path; wait until the session is hers.
    m.wait_for_turns("s-alice", "u-demo", 1).await;
    let mut mallory = WsClient::connect(&m.ws_url_as("u-mallory")).await;
    mallory.resume("s-alice", "m-alice", Some(-1)).await;
    let f = mallory.next_frame().await;
    assert_eq!(error_code(&f), Some(ErrorCode::Forbidden), "{f:?}");
    // Nor ask in her session.
    let a = mallory.ask("what did I just ask?", "s-alice").await;
    assert_eq!(
        a.frames.last().and_then(error_code),
        Some(ErrorCode::Forbidden),
        "{:?}",
        a.frames
    );
    // Unknown streams are reported as such.
    mallory.resume("s-x", "nope", None).await;
    assert_eq!(
        error_code(&mallory.next_frame().await),
        Some(ErrorCode::NotFound)
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_are_refused() {
    let m = TestMesh::start(&[]).await;
    let status = |r: Result<_, tungstenite::Error>| match r {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => 101,
    };
    let base = m.ws_url();
    let r = tokio_tungstenite::connect_async(base.clone())
        .await
        .map(|_| ());
    assert_eq!(status(r), 401);
    let r = tokio_tungstenite::connect_async(format!("{base}?token=abc.def.ghi"))
        .await
        .map(|_| ());
    assert_eq!(status(r), 401);
    // A token signed with another secret.
    let other = mangaassist_auth::JwtKey::new(&[7u8; 32])
        .unwrap()
        .issue(
            "u-demo",
            Duration::from_secs(60),
            std::time::SystemTime::now(),
        )
        .unwrap();
    let r = tokio_tungstenite::connect_async(format!("{base}?token={other}"))
        .await
        .map(|_| ());
    assert_eq!(status(r), 401);
    // The gateway's own secret, but no `iss`/`aud` or another audience: refused, and the body
    // says which check failed.
    let secret = mangaassist_gateway::resolve_secret(&m.mesh().config).unwrap();
    let own = mangaassist_auth::JwtKey::new(&secret).unwrap();
    for (key, want) in [
        (own.clone(), "bad_issuer"),
        (
            own.clone()
                .with_issuer("mangaassist")
                .with_audience("mangaassist-admin"),
            "bad_audience",
        ),
    ] {
        let token = key
            .issue(
                "u-demo",
                Duration::from_secs(60),
                std::time::SystemTime::now(),
            )
            .unwrap();
        match tokio_tungstenite::connect_async(format!("{base}?token={token}")).await {
            Err(tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 401);
                let body: serde_json::Value =
                    serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
                assert_eq!(body["token_error"], want, "{body}");
            }
            other => panic!("expected a 401, got {:?}", other.map(|_| ())),
        }
    }
    let r = tokio_tungstenite::connect_async(format!(
        "{base}?token={}&user_id=u-other",
        m.ticket("u-demo")
    ))
    .await
    .map(|_| ());
    assert_eq!(status(r), 403);
    // The Authorization header works too.
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(base).unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", m.token("u-demo")).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    futures::SinkExt::send(&mut ws, Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .unwrap();
    let pong = ws.next().await.unwrap().unwrap();
    assert_eq!(
        parse_server_frame(pong.to_text().unwrap()).unwrap(),
        ServerFrame::Pong
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_rate_limit_answers_with_retry_after() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.limits.user_messages_per_minute = 3;
    })
    .await;
    let mut c = m.client().await;
    for i in 0..3 {
        let a = c.ask(&format!("hello {i}"), "s-rl").await;
        a.done();
    }
    let a = c.ask("hello again", "s-rl").await;
    let err = a.frames.last().unwrap();
    let ServerFrame::Error {
        code: ErrorCode::RateLimited,
        retry_after_ms: Some(retry),
        ..
    } = *err
    else {
        panic!("not a rate limit with retry_after_ms: {err:?}");
    };
    assert!((1..=20_000).contains(&retry), "{retry}");
    // The connection stays usable, and another user is not affected.
    c.send(&ClientFrame::Ping {}).await;
    assert_eq!(c.next_frame().await, ServerFrame::Pong);
    let mut other = WsClient::connect(&m.ws_url_as("u-other")).await;
    other.ask("hello", "s-rl-other").await.done();
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_an_answer_in_flight() {
    // The model never answers, so only the cancel can end this answer as `cancelled` (a
    // broken cancel would end it by a deadline, with another code).
    let m = TestMesh::start(&["generation.Generate=hang"]).await;
    let mut c = m.client().await;
    c.query("tell me about your shipping", "s-c", "m-cancel")
        .await;
    let status = c.next_frame().await;
    assert!(matches!(status, ServerFrame::Status { .. }), "{status:?}");
    c.send(&ClientFrame::Cancel {
        message_id: "m-cancel".into(),
    })
    .await;
    let frames = read_until_done(&mut c, "m-cancel").await;
    assert_eq!(
        frames.last().and_then(error_code),
        Some(ErrorCode::Cancelled),
        "{frames:?}"
    );
    m.stop().await;
}

/// A rolling deploy: gateway A drains while a client's answer is streaming; the client's
/// connection is cut and it resumes on gateway B (the resume buffer is shared, as Redis
/// shares it in production) — nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_on_sigterm_then_resume_on_another_gateway_loses_nothing() {
    use mangaassist::mesh::{self, Role};
    common::init_telemetry();
    let state = tempfile::tempdir().unwrap();
    let mut config = common::test_config(state.path(), &[]);
    common::pace_model(&mut config, 50, 150.0);
    config.mesh.shutdown_grace_seconds = 5;
    let roles: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| *r != Role::Gateway)
        .collect();
    let daemons = mesh::start(config, &roles).await.unwrap();
    let cfg = daemons.config.clone();
    let store: Arc<dyn mangaassist_resume::ResumeStore> = Arc::new(
        mangaassist_resume::InMemoryResumeStore::new(mangaassist_resume::ResumeLimits {
            keep_after_done: Duration::from_secs(60),
            ttl: Duration::from_secs(120),
            max_streams: 1000,
            max_bytes_per_stream: 1 << 20,
            ..Default::default()
        }),
    );
    let start_gateway = |shutdown: tokio_util::sync::CancellationToken| {
        let cfg = cfg.clone();
        let store = store.clone();
        async move {
            let clients = mangaassist_client::MeshClients::connect(&cfg.mesh).unwrap();
            let gw = mangaassist_gateway::Gateway::new(&cfg, clients, None, shutdown)
                .unwrap()
                .with_resume_store(store);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let task = tokio::spawn(gw.serve(listener, None));
            (addr, task)
        }
    };
    let stop_a = tokio_util::sync::CancellationToken::new();
    let (addr_a, task_a) = start_gateway(stop_a.clone()).await;
    let stop_b = tokio_util::sync::CancellationToken::new();
    let (addr_b, task_b) = start_gateway(stop_b.clone()).await;
    let token = mangaassist_gateway::issue_ticket(&cfg, "u-demo").unwrap();
    let url = |a: std::net::SocketAddr| format!("ws://{a}/ws?token={token}");

    // A bystander with nothing in flight is told to reconnect (1012) when A drains.
    let mut idle = WsClient::connect(&url(addr_a)).await;
    let mut c = WsClient::connect(&url(addr_a)).await;
    c.query(
        "What is your shipping policy to Osaka?",
        "s-drain",
        "m-drain",
    )
    .await;
    let mut got = vec![];
    while got.len() < 2 {
        if let ServerFrame::Chunk { index, text, .. } = c.next_frame().await {
            got.push((index, text));
        }
    }
    stop_a.cancel(); // SIGTERM
    drop(c); // the load balancer cuts the connection mid-answer
    let close = loop {
        match idle.next_raw().await {
            Some(Message::Close(Some(f))) => break u16::from(f.code),
            Some(_) => continue,
            None => panic!("closed without a close frame"),
        }
    };
    assert_eq!(close, 1012);
    let mut b = WsClient::connect(&url(addr_b)).await;
    b.resume("s-drain", "m-drain", Some(i64::from(got.last().unwrap().0)))
        .await;
    let rest = read_until_done(&mut b, "m-drain").await;
    let done = expect_done(&rest).clone();
    got.extend(chunk_texts(&rest));
    let idx: Vec<u32> = got.iter().map(|(i, _)| *i).collect();
    assert_eq!(idx, (0..done.chunks).collect::<Vec<_>>());
    tokio::time::timeout(Duration::from_secs(10), task_a)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
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
