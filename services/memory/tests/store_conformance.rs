//! One behavioural suite for [`MemoryStore`], run against every backend: redb (the embedded
//! default, a fresh file per test) and DynamoDB (fresh tables on a moto server). What only
//! one backend does — DynamoDB's table schema, TTL attribute and racing claims, redb's prune
//! sweep and reopen — stays in that backend's own tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    any::Any,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU32, Ordering},
    },
    time::Duration,
};

use mangaassist_aws::AwsTarget;
use mangaassist_config::DynamoDbSettings;
use mangaassist_memory::{DynamoStore, MemoryStore, RedbStore};
use mangaassist_proto::v1 as pb;
use mangaassist_testkit::moto;
use tonic::Code;

mod common;
use common::*;

/// A store under test, the clock it reads (epoch ms; starts at 10,000 s) and whatever must
/// outlive it.
struct Backend {
    store: Box<dyn MemoryStore>,
    now: Arc<AtomicI64>,
    _keep: Box<dyn Any>,
}

const START_MS: i64 = 10_000_000;

async fn redb(ttl: Duration) -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(START_MS));
    let clock = now.clone();
    let store = RedbStore::open(&dir.path().join("m.redb"), ttl)
        .unwrap()
        .with_clock(move || clock.load(Ordering::SeqCst));
    Backend {
        store: Box::new(store),
        now,
        _keep: Box::new(dir),
    }
}

async fn dynamodb(ttl: Duration) -> Backend {
    // Fresh tables per test: one moto server serves the whole test binary.
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let settings = DynamoDbSettings {
        region: "us-east-1".into(),
        endpoint_url: moto().url.clone(),
        sessions_table: format!("c{n}-sessions"),
        users_table: format!("c{n}-users"),
        orders_table: format!("c{n}-orders"),
        create_tables: true,
    };
    let target = AwsTarget {
        region: "us-east-1".into(),
        endpoint_url: moto().url.clone(),
        connect_timeout: Duration::from_secs(1),
        static_credentials: Some(("test".into(), "test".into())),
    };
    let now = Arc::new(AtomicI64::new(START_MS));
    let clock = now.clone();
    let store = DynamoStore::connect_to(&target, &settings, ttl)
        .await
        .unwrap()
        .with_clock(move || clock.load(Ordering::SeqCst));
    Backend {
        store: Box::new(store),
        now,
        _keep: Box::new(()),
    }
}

async fn history_is_newest_first_with_limit_and_sessions_stay_apart(b: Backend) {
    let store = &*b.store;
    store
        .append_turn("s", "u", turn("user", "a", 1_000))
        .await
        .unwrap();
    store
        .append_turn("s", "u", turn("assistant", "b", 1_000))
        .await
        .unwrap();
    let n = store
        .append_turn("s", "u", turn("user", "c", 2_000))
        .await
        .unwrap();
    assert_eq!(n, 3);
    let h = store.history("s", "u", 10).await.unwrap();
    assert_eq!(texts(&h), ["c", "b", "a"]);
    assert_eq!(h[0].ts_ms, 2_000);
    assert_eq!(h[0].role, "user");
    // Another session's turns never leak in, whatever their timestamps.
    store
        .append_turn("s2", "u", turn("user", "x", 1_500))
        .await
        .unwrap();
    assert_eq!(
        texts(&store.history("s", "u", 10).await.unwrap()),
        ["c", "b", "a"]
    );
    assert_eq!(
        texts(&store.history("s", "u", 2).await.unwrap()),
        ["c", "b"]
    );
    assert!(store.history("s", "u", 0).await.unwrap().is_empty());
    assert!(store.history("unknown", "u", 10).await.unwrap().is_empty());
    // The store stamps turns sent without a time with its clock.
    store
        .append_turn("s3", "u", turn("user", "now", 0))
        .await
        .unwrap();
    assert_eq!(
        store.history("s3", "u", 1).await.unwrap()[0].ts_ms,
        START_MS
    );
}

async fn turns_in_the_same_millisecond_are_all_kept_in_write_order(b: Backend) {
    let store = &*b.store;
    for i in 0..30 {
        let n = store
            .append_turn("s", "u", turn("user", &format!("t{i}"), 5_000))
            .await
            .unwrap();
        assert_eq!(n, i + 1);
    }
    let h = store.history("s", "u", 100).await.unwrap();
    let expected: Vec<String> = (0..30).rev().map(|i| format!("t{i}")).collect();
    assert_eq!(texts(&h), expected);
}

/// An exchange is one write: both turns, in order, or neither (another user's session).
async fn an_exchange_is_appended_whole(b: Backend) {
    let store = &*b.store;
    let n = store
        .append_turns(
            "s",
            "alice",
            vec![turn("user", "q", 5_000), turn("assistant", "a", 5_000)],
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        texts(&store.history("s", "alice", 10).await.unwrap()),
        ["a", "q"]
    );
    let e = store
        .append_turns(
            "s",
            "mallory",
            vec![turn("user", "q2", 0), turn("assistant", "a2", 0)],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    assert_eq!(
        texts(&store.history("s", "alice", 10).await.unwrap()),
        ["a", "q"]
    );
}

/// Many exchanges at once (the embedded store commits them in groups): each is stored whole
/// and counted, and an intruder refused in the same moment takes nobody's turns with it.
async fn concurrent_exchanges_are_each_stored_whole(b: Backend) {
    let store: Arc<dyn MemoryStore> = Arc::from(b.store);
    for k in 0..8 {
        store
            .append_turn(&format!("s{k}"), "alice", turn("user", "hello", 0))
            .await
            .unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..48 {
        let alice = store.clone();
        tasks.spawn(async move {
            let session = format!("s{}", i % 8);
            let turns = vec![
                turn("user", &format!("q{i}"), 0),
                turn("assistant", &format!("a{i}"), 0),
            ];
            alice.append_turns(&session, "alice", turns).await
        });
        if i % 8 == 3 {
            let mallory = store.clone();
            tasks.spawn(async move {
                mallory
                    .append_turns("s3", "mallory", vec![turn("user", "mine now", 0)])
                    .await
            });
        }
    }
    let (mut stored, mut refused) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(n) => {
                assert!(n >= 3 && n % 2 == 1, "a pair was split: {n} turns");
                stored += 1;
            }
            Err(e) => {
                assert_eq!(e.code(), Code::PermissionDenied, "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!((stored, refused), (48, 6));
    for k in 0..8 {
        let h = store.history(&format!("s{k}"), "alice", 100).await.unwrap();
        let t = texts(&h);
        assert_eq!(t.len(), 13, "s{k}: {t:?}");
        assert!(!t.contains(&"mine now"));
        for i in (k..48).step_by(8) {
            let (q, a) = (format!("q{i}"), format!("a{i}"));
            assert!(
                t.contains(&q.as_str()) && t.contains(&a.as_str()),
                "s{k}: {t:?}"
            );
        }
    }
}

async fn a_session_belongs_to_its_first_writer(b: Backend) {
    let store = &*b.store;
    store
        .append_turn("s", "alice", turn("user", "hi", 0))
        .await
        .unwrap();
    let e = store
        .append_turn("s", "mallory", turn("user", "hi", 0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    assert!(e.to_string().contains("`s`"), "{e}");
    let e = store.history("s", "mallory", 10).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(
        texts(&store.history("s", "alice", 10).await.unwrap()),
        ["hi"]
    );
    // Alice keeps writing.
    assert_eq!(
        store
            .append_turn("s", "alice", turn("assistant", "hello", 0))
            .await
            .unwrap(),
        2
    );
}

/// Needs a store built with a 60 s turn TTL.
async fn expired_turns_are_hidden_and_not_counted(b: Backend) {
    let store = &*b.store;
    store
        .append_turn("s", "u", turn("user", "old", 0))
        .await
        .unwrap();
    b.now.fetch_add(59_000, Ordering::SeqCst);
    assert_eq!(texts(&store.history("s", "u", 10).await.unwrap()), ["old"]);
    b.now.fetch_add(2_000, Ordering::SeqCst);
    assert!(store.history("s", "u", 10).await.unwrap().is_empty());
    let n = store
        .append_turn("s", "u", turn("user", "new", 0))
        .await
        .unwrap();
    assert_eq!(n, 1, "the expired turn is not counted");
    assert_eq!(texts(&store.history("s", "u", 10).await.unwrap()), ["new"]);
    // The new turn renewed the claim.
    let e = store.history("s", "other", 10).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

/// Issue 14: a session's owner row never expired, so every connection or OpenAI call without
/// a session id left a permanent session behind. A claim now lasts as long as the session's
/// newest turn. Needs a store built with a 60 s turn TTL.
async fn ownership_lapses_with_the_last_turn(b: Backend) {
    let store = &*b.store;
    store
        .append_turn("s", "alice", turn("user", "alice's", 0))
        .await
        .unwrap();
    b.now.fetch_add(30_000, Ordering::SeqCst);
    store
        .append_turn("s", "alice", turn("user", "alice's again", 0))
        .await
        .unwrap();
    b.now.fetch_add(59_000, Ordering::SeqCst);
    // The second turn renewed the claim past the first turn's expiry.
    let e = store
        .append_turn("s", "mallory", turn("user", "mine?", 0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(
        store.history("s", "mallory", 10).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    b.now.fetch_add(2_000, Ordering::SeqCst);
    // Lapsed: the session is no one's, and nothing of alice's is readable through it.
    assert!(store.history("s", "mallory", 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .append_turn("s", "mallory", turn("user", "mallory's", 0))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        texts(&store.history("s", "mallory", 10).await.unwrap()),
        ["mallory's"]
    );
    assert_eq!(
        store.history("s", "alice", 10).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}

async fn profiles_round_trip_and_are_replaced(b: Backend) {
    let store = &*b.store;
    assert!(store.profile("u").await.unwrap().is_none());
    let mut p = pb::UserProfile {
        user_id: "u".into(),
        language: "en".into(),
        favourite_genres: vec!["seinen".into()],
        ..Default::default()
    };
    store.upsert_profile(p.clone()).await.unwrap();
    assert_eq!(store.profile("u").await.unwrap(), Some(p.clone()));
    p.language = "ja".into();
    store.upsert_profile(p.clone()).await.unwrap();
    assert_eq!(store.profile("u").await.unwrap().unwrap().language, "ja");
    let e = store
        .upsert_profile(pb::UserProfile::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

async fn orders_newest_first_per_user_and_store_and_upsert_moves_rows(b: Backend) {
    let store = &*b.store;
    store
        .seed(
            vec![],
            vec![
                order("o1", "u", "manga_jp", "2026-01-01"),
                order("o2", "u", "comics_us", "2026-02-01"),
                order("o3", "u", "manga_jp", "2026-03-01"),
                order("o4", "u2", "manga_jp", "2026-04-01"),
                // A user id that is a prefix of another plus a control byte: no leak.
                order("o5", "u\u{1}", "manga_jp", "2026-05-01"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        ids(store.orders("u", "", 0).await.unwrap()),
        ["o3", "o2", "o1"]
    );
    assert_eq!(ids(store.orders("u", "", 2).await.unwrap()), ["o3", "o2"]);
    assert_eq!(ids(store.orders("u", "manga_jp", 1).await.unwrap()), ["o3"]);
    assert_eq!(
        ids(store.orders("u", "manga_jp", 0).await.unwrap()),
        ["o3", "o1"]
    );
    assert_eq!(
        ids(store.orders("u", "comics_us", 5).await.unwrap()),
        ["o2"]
    );
    assert!(store.orders("nobody", "", 0).await.unwrap().is_empty());
    // Re-dating an order replaces its row instead of duplicating it.
    store
        .upsert_order(order("o1", "u", "manga_jp", "2026-06-01"))
        .await
        .unwrap();
    assert_eq!(
        ids(store.orders("u", "", 0).await.unwrap()),
        ["o1", "o3", "o2"]
    );
    let o1 = &store.orders("u", "", 1).await.unwrap()[0];
    assert_eq!(o1.placed_at, "2026-06-01");
    let e = store
        .upsert_order(order("", "u", "manga_jp", "2026-01-01"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

async fn seeding_is_idempotent_and_the_last_duplicate_wins(b: Backend) {
    let store = &*b.store;
    let profiles: Vec<pb::UserProfile> = (0..30)
        .map(|i| pb::UserProfile {
            user_id: format!("u{i}"),
            ..Default::default()
        })
        .collect();
    let orders: Vec<pb::Order> = (0..60)
        .map(|i| {
            order(
                &format!("o{i:02}"),
                "u",
                "manga_jp",
                &format!("2026-01-{:02}", i % 28 + 1),
            )
        })
        .collect();
    for _ in 0..2 {
        store.seed(profiles.clone(), orders.clone()).await.unwrap();
        assert_eq!(store.orders("u", "", 0).await.unwrap().len(), 60);
        assert!(store.profile("u29").await.unwrap().is_some());
    }
    let got = store.orders("u", "", 0).await.unwrap();
    assert!(
        got.windows(2)
            .all(|w| (&w[0].placed_at, &w[0].order_id) > (&w[1].placed_at, &w[1].order_id)),
        "newest first"
    );
    store
        .seed(
            vec![],
            vec![
                order("dup", "v", "manga_jp", "2026-01-01"),
                order("dup", "v", "manga_jp", "2026-02-01"),
            ],
        )
        .await
        .unwrap();
    let v = store.orders("v", "", 0).await.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].placed_at, "2026-02-01");
}

/// Every case of the suite, once per backend.
macro_rules! conformance {
    ($($backend:ident),+) => {$(
        mod $backend {
            use super::Duration;

            #[tokio::test]
            async fn history_is_newest_first_with_limit_and_sessions_stay_apart() {
                super::history_is_newest_first_with_limit_and_sessions_stay_apart(
                    super::$backend(Duration::ZERO).await,
                )
                .await;
            }

            #[tokio::test]
            async fn turns_in_the_same_millisecond_are_all_kept_in_write_order() {
                super::turns_in_the_same_millisecond_are_all_kept_in_write_order(
                    super::$backend(Duration::ZERO).await,
                )
                .await;
            }

            #[tokio::test]
            async fn an_exchange_is_appended_whole() {
                super::an_exchange_is_appended_whole(super::$backend(Duration::ZERO).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_exchanges_are_each_stored_whole() {
                super::concurrent_exchanges_are_each_stored_whole(
                    super::$backend(Duration::ZERO).await,
                )
                .await;
            }

            #[tokio::test]
            async fn a_session_belongs_to_its_first_writer() {
                super::a_session_belongs_to_its_first_writer(super::$backend(Duration::ZERO).await)
                    .await;
            }

            #[tokio::test]
            async fn expired_turns_are_hidden_and_not_counted() {
                super::expired_turns_are_hidden_and_not_counted(
                    super::$backend(Duration::from_secs(60)).await,
                )
                .await;
            }

            #[tokio::test]
            async fn ownership_lapses_with_the_last_turn() {
                super::ownership_lapses_with_the_last_turn(
                    super::$backend(Duration::from_secs(60)).await,
                )
                .await;
            }

            #[tokio::test]
            async fn profiles_round_trip_and_are_replaced() {
                super::profiles_round_trip_and_are_replaced(super::$backend(Duration::ZERO).await)
                    .await;
            }

            #[tokio::test]
            async fn orders_newest_first_per_user_and_store_and_upsert_moves_rows() {
                super::orders_newest_first_per_user_and_store_and_upsert_moves_rows(
                    super::$backend(Duration::ZERO).await,
                )
                .await;
            }

            #[tokio::test]
            async fn seeding_is_idempotent_and_the_last_duplicate_wins() {
                super::seeding_is_idempotent_and_the_last_duplicate_wins(
                    super::$backend(Duration::ZERO).await,
                )
                .await;
            }
        }
    )+};
}

conformance!(redb, dynamodb);
