//! The product on its production backends: `mangaassist up` as a child process with memory
//! on DynamoDB (moto_server), the cache and the resume buffer on Redis (redis-server), and
//! retrieval on OpenSearch (the simulated OpenSearch in `mangaassist_standins::opensearch`,
//! since no OpenSearch server can be installed here); a second gateway process shares Redis
//! and resumes an answer the first one was streaming.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{WsClient, chunk_texts, expect_done, read_until_done};
use mangaassist_proto::v1 as pb;
use mangaassist_protocol::ServerFrame;
use mangaassist_standins::opensearch::FakeOpenSearch;
use mangaassist_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_mesh_on_dynamodb_redis_and_opensearch_resumes_across_gateways() {
    let redis = RedisServer::start();
    let moto = mangaassist_testkit::moto();
    let opensearch = FakeOpenSearch::start().await.unwrap();

    let state = tempfile::tempdir().unwrap();
    let mut config = common::test_config(state.path(), &[]);
    config.gateway.auth.required = false;
    config.gateway.limits.user_messages_per_minute = 0;
    config.gateway.predict_follow_ups = false;
    // Tokens spaced out so the answer is still streaming when the client is cut.
    common::pace_model(&mut config, 30, 150.0);
    config.memory.backend = mangaassist_config::MemoryBackend::DynamoDb;
    config.memory.dynamodb.endpoint_url = moto.url.clone();
    config.memory.dynamodb.region = "us-east-1".into();
    config.memory.dynamodb.create_tables = true;
    let tables = format!("e2e-{}", std::process::id());
    config.memory.dynamodb.sessions_table = format!("{tables}-sessions");
    config.memory.dynamodb.users_table = format!("{tables}-users");
    config.memory.dynamodb.orders_table = format!("{tables}-orders");
    config.cache.backend = mangaassist_config::CacheBackend::Redis;
    config.gateway.resume_backend = mangaassist_config::ResumeBackend::Redis;
    config.redis.url = redis.url();
    config.retrieval.backend = mangaassist_config::RetrievalBackend::OpenSearch;
    config.retrieval.opensearch.url = opensearch.url();
    // Every process binds port 0 and reports the ports it got.
    common::listen_on_any_port(&mut config);
    config.validate().unwrap();
    let path_a = state.path().join("a.toml");
    std::fs::write(&path_a, toml::to_string(&config).unwrap()).unwrap();

    let command = |path: &std::path::Path, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mangaassist"));
        cmd.arg("--config")
            .arg(path)
            .args(args)
            // Static keys for the emulator; in production the standard chain (IRSA, ...).
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("RUST_LOG", "warn");
        cmd
    };
    let (up, mut reported) = common::spawn_reporting(command(&path_a, &["up"]));
    let mut procs = common::Processes(vec![("up".into(), up)]);
    let roles: Vec<&str> = mangaassist::mesh::Role::ALL
        .iter()
        .map(|r| r.name())
        .collect();
    let ports = reported.wait_for(&roles).await;
    procs
        .wait_healthy(ports.iter().map(|(r, p)| (r.clone(), *p)))
        .await;
    // Gateway B: same daemons, same Redis, its own port.
    let mut config_b = config.clone();
    common::set_endpoints(&mut config_b, &ports);
    let path_b = state.path().join("b.toml");
    std::fs::write(&path_b, toml::to_string(&config_b).unwrap()).unwrap();
    let (gateway_b, mut reported_b) =
        common::spawn_reporting(command(&path_b, &["serve", "gateway"]));
    procs.0.push(("serve gateway".into(), gateway_b));
    let port_b = reported_b.wait_for(&["gateway"]).await["gateway"];
    procs
        .wait_healthy([("gateway b".to_string(), port_b)])
        .await;

    // A grounded answer through every backend, not degraded.
    let gw_a = format!("ws://127.0.0.1:{}/ws", ports["gateway"]);
    let mut c = WsClient::connect(&gw_a).await;
    let question = "do you have any dark fantasy manga in stock?";
    let first = c.ask(question, "s-one").await;
    let done = first.done().clone();
    assert_eq!(done.degradation, "full", "{done:?}");
    assert!(!done.product_ids.is_empty(), "{done:?}");
    assert!(
        opensearch.request_count("POST", "_msearch") >= 1,
        "retrieval did not query OpenSearch"
    );
    assert!(
        opensearch.doc_count("mangaassist-manga_jp").unwrap_or(0) > 0,
        "catalog not bulk-loaded"
    );
    // A repeated question in another session is served from the Redis cache once the
    // (off-critical-path) cache write has landed.
    let faq = "What payment methods do you accept?";
    assert!(!c.ask(faq, "s-faq-1").await.done().cache_hit);
    let cache =
        mangaassist_client::CacheClient::connect(&format!("http://127.0.0.1:{}", ports["cache"]))
            .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cache
        .stats(std::time::Duration::from_secs(1))
        .await
        .unwrap()
        .entries
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "answers never cached");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let second = c.ask(faq, "s-faq-2").await;
    assert!(second.done().cache_hit, "{:?}", second.done());
    let keys = redis.command(&["KEYS", "ma:*"]);
    assert!(keys.contains("ma:"), "nothing in Redis: {keys}");

    // History went to DynamoDB: the memory daemon (backend = dynamodb) returns both turns,
    // and no embedded store file was created.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", ports["memory"]))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut memory = pb::memory_service_client::MemoryServiceClient::new(channel);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let turns = loop {
        let h = memory
            .get_history(pb::GetHistoryRequest {
                session_id: "s-one".into(),
                user_id: "u-demo".into(),
                limit: 10,
            })
            .await
            .unwrap()
            .into_inner();
        if h.turns.len() >= 2 || std::time::Instant::now() > deadline {
            break h.turns;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(turns.len() >= 2, "{turns:?}");
    assert!(!state.path().join("memory.redb").exists());

    // Cut on gateway A mid-answer, resume on gateway B from the shared Redis buffer.
    let mut a = WsClient::connect(&gw_a).await;
    a.query("What is your shipping policy to Osaka?", "s-cut", "m-cut")
        .await;
    let mut got = vec![];
    while got.len() < 2 {
        match a.next_frame().await {
            ServerFrame::Chunk { index, text, .. } => got.push((index, text)),
            f @ ServerFrame::Done(_) => panic!("answer ended before the cut: {f:?}"),
            _ => {}
        }
    }
    drop(a);
    let mut b = WsClient::connect(&format!("ws://127.0.0.1:{port_b}/ws")).await;
    b.resume("s-cut", "m-cut", Some(i64::from(got.last().unwrap().0)))
        .await;
    let rest = read_until_done(&mut b, "m-cut").await;
    let done = expect_done(&rest).clone();
    got.extend(chunk_texts(&rest));
    let idx: Vec<u32> = got.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        idx,
        (0..done.chunks).collect::<Vec<_>>(),
        "chunks lost or repeated across gateways"
    );
    // A full replay on B equals what the client assembled.
    b.resume("s-cut", "m-cut", Some(-1)).await;
    assert_eq!(chunk_texts(&read_until_done(&mut b, "m-cut").await), got);
}
