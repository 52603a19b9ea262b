//! One behavioural suite for [`ResumeStore`], run against every backend: the in-memory
//! buffer (one gateway) and Redis (a real `redis-server` per test; any gateway). Timing
//! behaviour — long-poll wake-ups, expiry, eviction — is tested per backend, on paused tokio
//! time in memory and on Redis's own clock with Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{any::Any, sync::Arc, time::Duration};

use futures::StreamExt;
use mangaassist_resume::{
    BufferedFrame, InMemoryResumeStore, RedisResumeStore, Replay, ResumeError, ResumeLimits,
    ResumeStore, StreamKey, replay_stream,
};
use mangaassist_testkit::RedisServer;

/// A store under test and whatever must outlive it (the Redis server).
struct Backend {
    store: Arc<dyn ResumeStore>,
    _keep: Box<dyn Any>,
}

async fn memory(limits: ResumeLimits) -> Backend {
    Backend {
        store: Arc::new(InMemoryResumeStore::new(limits)),
        _keep: Box::new(()),
    }
}

async fn redis(limits: ResumeLimits) -> Backend {
    let server = RedisServer::start();
    let store = RedisResumeStore::connect(&server.settings(), limits)
        .await
        .unwrap();
    Backend {
        store: Arc::new(store),
        _keep: Box::new(server),
    }
}

fn key(m: &str) -> StreamKey {
    StreamKey::new("s1", m)
}

async fn chunk(store: &dyn ResumeStore, k: &StreamKey, i: u32) {
    store
        .append(k, BufferedFrame::chunk(i, format!("c{i}")))
        .await
        .unwrap();
}

/// A wait long enough that a store honouring it would fail the test's own timeout.
const FOREVER: Duration = Duration::from_secs(3_600);

async fn refused_at_once<T: std::fmt::Debug>(
    read: impl Future<Output = Result<T, ResumeError>>,
) -> ResumeError {
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("a refused read must not wait")
        .unwrap_err()
}

async fn owner_checks(b: Backend) {
    let store = &*b.store;
    let k = key("m1");
    store.open(&k, "alice").await.unwrap();
    assert_eq!(
        store.open(&k, "alice").await,
        Err(ResumeError::AlreadyExists)
    );
    chunk(store, &k, 0).await;
    let err = store
        .read_after(&k, "bob", None, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err, ResumeError::Forbidden);
    assert!(!err.to_string().contains("alice"), "{err}");
    // Also when long-polling: refused at once, not after the wait.
    let err = refused_at_once(store.read_after(&k, "bob", Some(0), FOREVER)).await;
    assert_eq!(err, ResumeError::Forbidden);
    let ok = store
        .read_after(&k, "alice", None, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(ok.frames, vec![BufferedFrame::chunk(0, "c0")]);
    assert_eq!(store.owner(&k).await.unwrap().as_deref(), Some("alice"));
    assert_eq!(store.owner(&key("nope")).await.unwrap(), None);
    let err = store
        .read_after(&key("nope"), "alice", None, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err, ResumeError::NotFound);
    assert!(err.to_string().contains("expired"), "{err}");
}

async fn chunks_must_be_consecutive_and_nothing_follows_terminal(b: Backend) {
    let store = &*b.store;
    let k = key("m1");
    assert_eq!(
        store.append(&k, BufferedFrame::chunk(0, "x")).await,
        Err(ResumeError::NotFound)
    );
    store.open(&k, "alice").await.unwrap();
    assert_eq!(
        store.append(&k, BufferedFrame::chunk(1, "x")).await,
        Err(ResumeError::OutOfOrder {
            expected: 0,
            got: 1
        })
    );
    chunk(store, &k, 0).await;
    assert_eq!(
        store.append(&k, BufferedFrame::chunk(0, "x")).await,
        Err(ResumeError::OutOfOrder {
            expected: 1,
            got: 0
        })
    );
    chunk(store, &k, 1).await;
    store
        .append(&k, BufferedFrame::terminal("done"))
        .await
        .unwrap();
    assert_eq!(
        store.append(&k, BufferedFrame::chunk(2, "x")).await,
        Err(ResumeError::Finished)
    );
    assert_eq!(
        store.append(&k, BufferedFrame::terminal("again")).await,
        Err(ResumeError::Finished)
    );
    let replay = store
        .read_after(&k, "alice", Some(0), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        replay,
        Replay {
            frames: vec![
                BufferedFrame::chunk(1, "c1"),
                BufferedFrame::terminal("done")
            ],
            finished: true
        }
    );
    let replay = store
        .read_after(&k, "alice", None, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(replay.frames.len(), 3);
    // Past the last chunk: only the terminal frame, at once even with a long wait.
    let replay = tokio::time::timeout(
        Duration::from_secs(60),
        store.read_after(&k, "alice", Some(7), FOREVER),
    )
    .await
    .expect("a finished stream must answer at once")
    .unwrap();
    assert_eq!(replay.frames, vec![BufferedFrame::terminal("done")]);
    // Frames survive byte-exact, including non-ASCII JSON.
    let k2 = key("m2");
    store.open(&k2, "alice").await.unwrap();
    let json = r#"{"type":"chunk","text":"ワンピース 105巻 \"限定版\""}"#;
    store
        .append(&k2, BufferedFrame::chunk(0, json))
        .await
        .unwrap();
    let replay = store
        .read_after(&k2, "alice", None, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(replay.frames, vec![BufferedFrame::chunk(0, json)]);
}

/// Needs a store with `max_bytes_per_stream = 110`.
async fn size_cap_refuses_chunks_but_not_the_terminal(b: Backend) {
    let store = &*b.store;
    let k = key("m1");
    store.open(&k, "alice").await.unwrap();
    // 40 + 32 overhead fits in 110; a second such chunk would need 144 bytes.
    store
        .append(&k, BufferedFrame::chunk(0, "x".repeat(40)))
        .await
        .unwrap();
    assert_eq!(
        store
            .append(&k, BufferedFrame::chunk(1, "y".repeat(40)))
            .await,
        Err(ResumeError::TooLarge)
    );
    assert_eq!(store.append(&k, BufferedFrame::chunk(1, "")).await, Ok(()));
    assert_eq!(
        store.append(&k, BufferedFrame::chunk(2, "")).await,
        Err(ResumeError::TooLarge)
    );
    store
        .append(&k, BufferedFrame::terminal("error: too large"))
        .await
        .unwrap();
    let replay = store
        .read_after(&k, "alice", Some(1), Duration::ZERO)
        .await
        .unwrap();
    assert!(replay.finished);
}

async fn replay_stream_stops_on_forbidden(b: Backend) {
    let k = key("m1");
    b.store.open(&k, "alice").await.unwrap();
    let got: Vec<_> = replay_stream(
        b.store.clone(),
        k,
        "mallory".into(),
        None,
        Duration::from_secs(10),
    )
    .collect()
    .await;
    assert_eq!(got, vec![Err(ResumeError::Forbidden)]);
}

/// Every case of the suite, once per backend.
macro_rules! conformance {
    ($($backend:ident),+) => {$(
        mod $backend {
            use mangaassist_resume::ResumeLimits;

            #[tokio::test]
            async fn owner_checks() {
                super::owner_checks(super::$backend(ResumeLimits::default()).await).await;
            }

            #[tokio::test]
            async fn chunks_must_be_consecutive_and_nothing_follows_terminal() {
                super::chunks_must_be_consecutive_and_nothing_follows_terminal(
                    super::$backend(ResumeLimits::default()).await,
                )
                .await;
            }

            #[tokio::test]
            async fn size_cap_refuses_chunks_but_not_the_terminal() {
                let limits = ResumeLimits {
                    max_bytes_per_stream: 110,
                    ..ResumeLimits::default()
                };
                super::size_cap_refuses_chunks_but_not_the_terminal(
                    super::$backend(limits).await,
                )
                .await;
            }

            #[tokio::test]
            async fn replay_stream_stops_on_forbidden() {
                super::replay_stream_stops_on_forbidden(
                    super::$backend(ResumeLimits::default()).await,
                )
                .await;
            }
        }
    )+};
}

conformance!(memory, redis);
