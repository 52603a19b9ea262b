//! The DynamoDB backend against a real moto server: what only this backend does (table schema,
//! TTL attribute, racing claims and colliding sort keys between replicas), and the memory
//! daemon over gRPC with `memory.backend = "dynamodb"`. The semantics every memory backend
//! shares are checked by `store_conformance.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU32, Ordering},
    },
    time::Duration,
};

use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, KeyType, TimeToLiveStatus};
use mangaassist_aws::AwsTarget;
use mangaassist_client::MemoryClient;
use mangaassist_config::{Config, DynamoDbSettings};
use mangaassist_memory::{DynamoStore, MemoryDaemon, MemoryError, MemoryStore};
use mangaassist_proto::v1 as pb;
use mangaassist_server::ServeOptions;
use mangaassist_testkit::{closed_port, moto};
use tonic::Code;

mod common;
use common::*;

fn target(endpoint: &str) -> AwsTarget {
    AwsTarget {
        region: "us-east-1".into(),
        endpoint_url: endpoint.into(),
        connect_timeout: Duration::from_secs(1),
        static_credentials: Some(("test".into(), "test".into())),
    }
}

/// Fresh table names per test: the moto server is shared by the whole binary.
fn settings(create_tables: bool) -> DynamoDbSettings {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    DynamoDbSettings {
        region: "us-east-1".into(),
        endpoint_url: moto().url.clone(),
        sessions_table: format!("t{n}-sessions"),
        users_table: format!("t{n}-users"),
        orders_table: format!("t{n}-orders"),
        create_tables,
    }
}

async fn store(ttl: Duration) -> (DynamoStore, DynamoDbSettings) {
    let s = settings(true);
    let store = DynamoStore::connect_to(&target(&moto().url), &s, ttl)
        .await
        .unwrap();
    (store, s)
}

async fn raw_client() -> aws_sdk_dynamodb::Client {
    let sdk = mangaassist_aws::sdk_config(&target(&moto().url), "test")
        .await
        .unwrap();
    aws_sdk_dynamodb::Client::new(&sdk)
}

#[tokio::test]
async fn create_tables_builds_the_documented_schema_and_is_idempotent() {
    let (store, s) = store(Duration::from_secs(3600)).await;
    let client = raw_client().await;
    let schema = |t: &str| {
        let client = client.clone();
        let t = t.to_string();
        async move {
            let d = client.describe_table().table_name(&t).send().await.unwrap();
            let table = d.table().unwrap().clone();
            let keys: Vec<(String, KeyType)> = table
                .key_schema()
                .iter()
                .map(|k| (k.attribute_name().to_string(), k.key_type().clone()))
                .collect();
            let billing = table
                .billing_mode_summary()
                .and_then(|b| b.billing_mode())
                .cloned();
            (keys, billing)
        }
    };
    let (keys, billing) = schema(&s.sessions_table).await;
    assert_eq!(
        keys,
        [
            ("session_id".to_string(), KeyType::Hash),
            ("ts".to_string(), KeyType::Range)
        ]
    );
    assert_eq!(billing, Some(BillingMode::PayPerRequest));
    let (keys, _) = schema(&s.users_table).await;
    assert_eq!(keys, [("user_id".to_string(), KeyType::Hash)]);
    let (keys, _) = schema(&s.orders_table).await;
    assert_eq!(
        keys,
        [
            ("user_id".to_string(), KeyType::Hash),
            ("order_key".to_string(), KeyType::Range)
        ]
    );
    let ttl = client
        .describe_time_to_live()
        .table_name(&s.sessions_table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some("expires_at"));

    // A second start over existing tables (create_tables on or off) just works.
    DynamoStore::connect_to(&target(&moto().url), &s, Duration::from_secs(3600))
        .await
        .unwrap();
    let mut off = s.clone();
    off.create_tables = false;
    DynamoStore::connect_to(&target(&moto().url), &off, Duration::from_secs(3600))
        .await
        .unwrap();
    store
        .append_turn("s", "u", turn("user", "hi", 0))
        .await
        .unwrap();
}

#[tokio::test]
async fn missing_tables_fail_the_start_with_a_clear_error() {
    let s = settings(false);
    let e = DynamoStore::connect_to(&target(&moto().url), &s, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(e, MemoryError::MissingTable { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&s.sessions_table), "{msg}");
    assert!(msg.contains("create_tables"), "{msg}");
    assert!(msg.contains("docs/operations.md"), "{msg}");

    // A table dropped under a running store: requests name it too.
    let (store, s) = store(Duration::ZERO).await;
    raw_client()
        .await
        .delete_table()
        .table_name(&s.users_table)
        .send()
        .await
        .unwrap();
    let e = store.profile("u").await.unwrap_err();
    assert!(e.to_string().contains(&s.users_table), "{e}");
    assert_eq!(e.code(), Code::Internal);
}

#[tokio::test]
async fn replicas_with_colliding_sequences_retry_instead_of_overwriting() {
    let (a, s) = store(Duration::ZERO).await;
    // Two replicas whose sequences start at the same number: the second one's sort keys
    // collide and must be retried, not overwrite.
    let b = DynamoStore::connect_to(&target(&moto().url), &s, Duration::ZERO)
        .await
        .unwrap()
        .with_sequence_start(0);
    for i in 0..5 {
        b.append_turn("r", "u", turn("user", &format!("b{i}"), 7_000))
            .await
            .unwrap();
    }
    let c = DynamoStore::connect_to(&target(&moto().url), &s, Duration::ZERO)
        .await
        .unwrap()
        .with_sequence_start(0);
    for i in 0..5 {
        c.append_turn("r", "u", turn("user", &format!("c{i}"), 7_000))
            .await
            .unwrap();
    }
    let h = a.history("r", "u", 100).await.unwrap();
    assert_eq!(h.len(), 10, "{:?}", texts(&h));
    let mut all = texts(&h);
    all.sort_unstable();
    assert_eq!(
        all,
        ["b0", "b1", "b2", "b3", "b4", "c0", "c1", "c2", "c3", "c4"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_claims_on_a_new_session_have_one_winner() {
    let (_, s) = store(Duration::ZERO).await;
    let upstream = moto().url.trim_start_matches("http://").to_string();
    let proxy = mangaassist_testkit::serializing_proxy(&upstream).await;
    // Eight replicas, each with its own client and connections.
    let mut replicas = Vec::new();
    for _ in 0..8 {
        replicas.push(
            DynamoStore::connect_to(&target(&proxy), &s, Duration::ZERO)
                .await
                .unwrap(),
        );
    }
    for round in 0..5 {
        let session = format!("race-{round}");
        let tasks: Vec<_> = (0..8)
            .map(|u| {
                let store = replicas[u].clone();
                let session = session.clone();
                tokio::spawn(async move {
                    let user = format!("user{u}");
                    let r = store
                        .append_turn(&session, &user, turn("user", &user, 0))
                        .await;
                    (user, r)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (user, r) = t.await.unwrap();
            match r {
                Ok(n) => {
                    assert_eq!(n, 1);
                    winners.push(user);
                }
                Err(e) => assert_eq!(e.code(), Code::PermissionDenied, "{e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let h = replicas[0]
            .history(&session, &winners[0], 10)
            .await
            .unwrap();
        assert_eq!(texts(&h), [winners[0].as_str()]);
    }
}

#[tokio::test]
async fn turns_carry_a_ttl_attribute_in_epoch_seconds() {
    let now = Arc::new(AtomicI64::new(10_000_000));
    let clock = now.clone();
    let (store, s) = store(Duration::from_secs(60)).await;
    let store = store.with_clock(move || clock.load(Ordering::SeqCst));
    store
        .append_turn("s", "u", turn("user", "old", 0))
        .await
        .unwrap();
    let item = raw_client()
        .await
        .query()
        .table_name(&s.sessions_table)
        .key_condition_expression("session_id = :s AND ts > :z")
        .expression_attribute_values(":s", AttributeValue::S("s".into()))
        .expression_attribute_values(":z", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap()
        .items()[0]
        .clone();
    // 10_000 s + 60 s TTL, in epoch seconds.
    assert_eq!(item["expires_at"], AttributeValue::N("10060".into()));
    assert_eq!(item["ts_ms"], AttributeValue::N("10000000".into()));
    assert_eq!(item["role"], AttributeValue::S("user".into()));

    // Hiding expired turns (the same rule as the embedded store) is in store_conformance.rs.
}

/// Issue 14: `seed_demo_data` defaulted to on for every backend, so pointing the memory
/// daemon at a real DynamoDB wrote demo profiles and orders into it.
#[tokio::test]
async fn demo_data_goes_into_dynamodb_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = daemon_config(dir.path(), settings(true), false);
    cfg.memory.seed_demo_data = None;
    let d = MemoryDaemon::new_with_aws_credentials(&cfg, creds())
        .await
        .unwrap();
    assert_eq!(d.store().profile("u-demo").await.unwrap(), None);
    assert!(d.store().orders("u-demo", "", 0).await.unwrap().is_empty());

    cfg.memory.seed_demo_data = Some(true);
    let d = MemoryDaemon::new_with_aws_credentials(&cfg, creds())
        .await
        .unwrap();
    assert!(d.store().profile("u-demo").await.unwrap().is_some());
}

fn daemon_config(state_dir: &Path, dynamodb: DynamoDbSettings, seed: bool) -> Config {
    let mut c = Config::default();
    c.data.dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    c.data.state_dir = state_dir.join("state");
    c.memory.seed_demo_data = Some(seed);
    c.memory.backend = mangaassist_config::MemoryBackend::DynamoDb;
    c.memory.dynamodb = dynamodb;
    c
}

fn append(session: &str, user: &str, role: &str, text: &str) -> pb::AppendTurnRequest {
    pb::AppendTurnRequest {
        session_id: session.into(),
        user_id: user.into(),
        turn: Some(turn(role, text, 0)),
    }
}

fn history(session: &str, user: &str, limit: u32) -> pb::GetHistoryRequest {
    pb::GetHistoryRequest {
        session_id: session.into(),
        user_id: user.into(),
        limit,
    }
}

fn creds() -> Option<(String, String)> {
    Some(("test".into(), "test".into()))
}

#[tokio::test]
async fn daemon_serves_grpc_from_dynamodb() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = daemon_config(dir.path(), settings(true), true);
    // Two starts: seeding again must not duplicate anything.
    drop(
        MemoryDaemon::new_with_aws_credentials(&cfg, creds())
            .await
            .unwrap(),
    );
    let d = MemoryDaemon::new_with_aws_credentials(&cfg, creds())
        .await
        .unwrap();
    assert!(
        !dir.path().join("state/memory.redb").exists(),
        "the redb file is not opened with backend = dynamodb"
    );
    let listener = mangaassist_server::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ServeOptions::for_tests();
    let shutdown = opts.shutdown.clone();
    let server = tokio::spawn(d.serve(listener, opts));

    let client = MemoryClient::connect(&format!("http://{addr}")).unwrap();
    let deadline = Duration::from_secs(10);
    let r = client
        .append_turn(append("s", "u-demo", "user", "where is my order"), deadline)
        .await
        .unwrap();
    assert_eq!(r.turns, 1);
    client
        .append_turn(
            append("s", "u-demo", "assistant", "it ships today"),
            deadline,
        )
        .await
        .unwrap();
    let h = client
        .get_history(history("s", "u-demo", 0), deadline)
        .await
        .unwrap();
    assert_eq!(texts(&h.turns), ["it ships today", "where is my order"]);
    assert!(
        h.turns.iter().all(|t| t.ts_ms > 0),
        "server stamps the time"
    );
    let h = client
        .get_history(history("s", "u-demo", 1), deadline)
        .await
        .unwrap();
    assert_eq!(texts(&h.turns), ["it ships today"]);
    let e = client
        .get_history(history("s", "u-aiko", 0), deadline)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = client
        .append_turn(append("s", "u-aiko", "user", "mine now"), deadline)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    let p = client
        .get_profile(
            pb::GetProfileRequest {
                user_id: "u-demo".into(),
            },
            deadline,
        )
        .await
        .unwrap();
    let p = p.profile.expect("u-demo is seeded");
    assert_eq!(p.user_id, "u-demo");
    assert_eq!(p.language, "en");
    let all = client
        .get_orders(
            pb::GetOrdersRequest {
                user_id: "u-demo".into(),
                ..Default::default()
            },
            deadline,
        )
        .await
        .unwrap()
        .orders;
    let file_count = std::fs::read_to_string(cfg.data.dir.join("users/orders.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"u-demo\""))
        .count();
    assert_eq!(all.len(), file_count, "seeded twice, stored once");
    assert!(all.windows(2).all(|w| w[0].placed_at >= w[1].placed_at));
    let o = client
        .get_orders(
            pb::GetOrdersRequest {
                user_id: "u-demo".into(),
                store_id: "manga_jp".into(),
                limit: 2,
            },
            deadline,
        )
        .await
        .unwrap();
    assert_eq!(o.orders.len(), 2);
    assert!(o.orders.iter().all(|o| o.store_id == "manga_jp"));
    let e = client
        .append_turn(append("", "u", "user", "x"), deadline)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn unreachable_dynamodb_is_unavailable_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(false);
    s.endpoint_url = format!("http://127.0.0.1:{}", closed_port());

    // Creating tables needs DynamoDB: the start fails, with a retryable error.
    let mut create = s.clone();
    create.create_tables = true;
    let e =
        MemoryDaemon::new_with_aws_credentials(&daemon_config(dir.path(), create, false), creds())
            .await
            .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e}");

    // Without create_tables the daemon starts and each request reports UNAVAILABLE.
    let d = MemoryDaemon::new_with_aws_credentials(&daemon_config(dir.path(), s, false), creds())
        .await
        .unwrap();
    let listener = mangaassist_server::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ServeOptions::for_tests();
    let shutdown = opts.shutdown.clone();
    let server = tokio::spawn(d.serve(listener, opts));
    let client = MemoryClient::connect(&format!("http://{addr}")).unwrap();
    let deadline = Duration::from_secs(30);
    let e = client
        .append_turn(append("s", "u", "user", "hello"), deadline)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let e = client
        .get_profile(
            pb::GetProfileRequest {
                user_id: "u".into(),
            },
            deadline,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
