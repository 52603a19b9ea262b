//! The memory daemon through its service trait and through the real gRPC client.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{path::Path, time::Duration};

use mangaassist_client::MemoryClient;
use mangaassist_config::Config;
use mangaassist_memory::MemoryDaemon;
use mangaassist_proto::v1::{self as pb, memory_service_server::MemoryService};
use mangaassist_server::ServeOptions;
use tonic::{Code, Request};

fn config(state_dir: &Path, seed: bool) -> Config {
    let mut c = Config::default();
    c.data.dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    c.data.state_dir = state_dir.join("state");
    c.memory.seed_demo_data = Some(seed);
    c
}

fn append(session: &str, user: &str, role: &str, text: &str) -> pb::AppendTurnRequest {
    pb::AppendTurnRequest {
        session_id: session.into(),
        user_id: user.into(),
        turn: Some(pb::Turn {
            role: role.into(),
            text: text.into(),
            ..Default::default()
        }),
    }
}

fn history(session: &str, user: &str, limit: u32) -> pb::GetHistoryRequest {
    pb::GetHistoryRequest {
        session_id: session.into(),
        user_id: user.into(),
        limit,
    }
}

async fn texts(d: &MemoryDaemon, session: &str, user: &str, limit: u32) -> Vec<String> {
    d.get_history(Request::new(history(session, user, limit)))
        .await
        .unwrap()
        .into_inner()
        .turns
        .into_iter()
        .map(|t| t.text)
        .collect()
}

#[tokio::test]
async fn history_newest_first_with_limit_and_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), false);
    cfg.memory.history_limit = 3;
    let d = MemoryDaemon::new(&cfg).await.unwrap();
    assert!(dir.path().join("state/memory.redb").is_file());
    for i in 0..5 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        let r = d
            .append_turn(Request::new(append("s1", "u1", role, &format!("t{i}"))))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.turns, i + 1);
    }
    assert_eq!(texts(&d, "s1", "u1", 2).await, ["t4", "t3"]);
    assert_eq!(
        texts(&d, "s1", "u1", 0).await,
        ["t4", "t3", "t2"],
        "0 = history_limit"
    );
    assert_eq!(texts(&d, "s1", "u1", 1_000).await.len(), 5);
    assert!(texts(&d, "unknown", "u1", 0).await.is_empty());
}

#[tokio::test]
async fn history_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), false);
    {
        let d = MemoryDaemon::new(&cfg).await.unwrap();
        d.append_turn(Request::new(append("s", "u", "user", "remember me")))
            .await
            .unwrap();
    }
    let d = MemoryDaemon::new(&cfg).await.unwrap();
    assert_eq!(texts(&d, "s", "u", 0).await, ["remember me"]);
}

#[tokio::test]
async fn a_session_belongs_to_its_first_writer() {
    let dir = tempfile::tempdir().unwrap();
    let d = MemoryDaemon::new(&config(dir.path(), false)).await.unwrap();
    d.append_turn(Request::new(append("s", "alice", "user", "hi")))
        .await
        .unwrap();
    let e = d
        .append_turn(Request::new(append("s", "mallory", "user", "hi")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = d
        .get_history(Request::new(history("s", "mallory", 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(texts(&d, "s", "alice", 0).await, ["hi"]);
}

#[tokio::test]
async fn bad_requests_are_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let d = MemoryDaemon::new(&config(dir.path(), false)).await.unwrap();
    let cases = [
        append("", "u", "user", "x"),
        append("s", "", "user", "x"),
        append("s", "u", "robot", "x"),
        append("s", "u", "user", &"x".repeat(16 * 1024 + 1)),
        pb::AppendTurnRequest {
            session_id: "s".into(),
            user_id: "u".into(),
            turn: None,
        },
    ];
    for req in cases {
        let e = d.append_turn(Request::new(req)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    }
    let e = d
        .get_history(Request::new(history("", "u", 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = d
        .get_profile(Request::new(pb::GetProfileRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = d
        .get_orders(Request::new(pb::GetOrdersRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Exactly 16 KiB is fine.
    d.append_turn(Request::new(append(
        "s",
        "u",
        "user",
        &"x".repeat(16 * 1024),
    )))
    .await
    .unwrap();
}

#[tokio::test]
async fn demo_user_is_seeded_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), true);
    drop(MemoryDaemon::new(&cfg).await.unwrap());
    // A second start upserts the same records again without duplicating them.
    let d = MemoryDaemon::new(&cfg).await.unwrap();
    let profile = d
        .get_profile(Request::new(pb::GetProfileRequest {
            user_id: "u-demo".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .profile
        .expect("u-demo has a profile");
    assert!(!profile.favourite_genres.is_empty());
    assert_eq!(profile.language, "en");
    let orders = d
        .get_orders(Request::new(pb::GetOrdersRequest {
            user_id: "u-demo".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .orders;
    assert!(orders.len() >= 3, "{} orders", orders.len());
    let file_count = std::fs::read_to_string(cfg.data.dir.join("users/orders.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"u-demo\""))
        .count();
    assert_eq!(orders.len(), file_count);
    assert!(
        orders.windows(2).all(|w| w[0].placed_at >= w[1].placed_at),
        "newest first"
    );
    assert!(orders.iter().all(|o| o.user_id == "u-demo"));
    let none = d
        .get_profile(Request::new(pb::GetProfileRequest {
            user_id: "nobody".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(none.profile.is_none());
}

#[tokio::test]
async fn grpc_round_trip_through_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = MemoryDaemon::new(&config(dir.path(), true)).await.unwrap();
    let listener = mangaassist_server::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ServeOptions::for_tests();
    let shutdown = opts.shutdown.clone();
    let server = tokio::spawn(d.serve(listener, opts));

    let client = MemoryClient::connect(&format!("http://{addr}")).unwrap();
    let deadline = Duration::from_secs(5);
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
    let t: Vec<&str> = h.turns.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(t, ["it ships today", "where is my order"]);
    assert!(
        h.turns.iter().all(|t| t.ts_ms > 0),
        "server stamps the time"
    );
    let e = client
        .get_history(history("s", "u-aiko", 0), deadline)
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
    assert_eq!(p.profile.unwrap().user_id, "u-demo");
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

/// A question and its answer are stored by one `AppendTurns`, in order, or not at all: a
/// batch with one bad turn, another user's session or too many turns leaves nothing behind.
#[tokio::test]
async fn append_turns_stores_an_exchange_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let d = MemoryDaemon::new(&config(dir.path(), false)).await.unwrap();
    let turn = |role: &str, text: &str| pb::Turn {
        role: role.into(),
        text: text.into(),
        ..Default::default()
    };
    let exchange = |session: &str, user: &str, turns: Vec<pb::Turn>| pb::AppendTurnsRequest {
        session_id: session.into(),
        user_id: user.into(),
        turns,
    };
    let r = d
        .append_turns(Request::new(exchange(
            "s",
            "alice",
            vec![turn("user", "q1"), turn("assistant", "a1")],
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.turns, 2);
    assert_eq!(texts(&d, "s", "alice", 0).await, ["a1", "q1"]);
    for (req, code) in [
        (
            exchange("s", "alice", vec![turn("user", "q2"), turn("robot", "a2")]),
            Code::InvalidArgument,
        ),
        (exchange("s", "alice", vec![]), Code::InvalidArgument),
        (
            exchange("s", "alice", vec![turn("user", "q"); 9]),
            Code::InvalidArgument,
        ),
        (
            exchange(
                "s",
                "mallory",
                vec![turn("user", "q3"), turn("assistant", "a3")],
            ),
            Code::PermissionDenied,
        ),
    ] {
        let e = d.append_turns(Request::new(req)).await.unwrap_err();
        assert_eq!(e.code(), code, "{e}");
    }
    assert_eq!(texts(&d, "s", "alice", 0).await, ["a1", "q1"]);
}
