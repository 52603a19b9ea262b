//! [`RedisResumeStore`] against a real `redis-server` started per test: its timing (long-poll
//! wake-ups through pub/sub, expiry on Redis's clock with short limits), resumption on another
//! store instance (another gateway), and atomic appends under concurrent writers. The rules
//! every resume store shares are checked by `store_conformance.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use mangaassist_resume::{
    BufferedFrame, RedisResumeStore, Replay, ResumeError, ResumeLimits, ResumeStore, StreamKey,
    replay_stream,
};
use mangaassist_testkit::RedisServer;

fn key(m: &str) -> StreamKey {
    StreamKey::new("s1", m)
}

async fn store_with(server: &RedisServer, limits: ResumeLimits) -> RedisResumeStore {
    RedisResumeStore::connect(&server.settings(), limits)
        .await
        .unwrap()
}

async fn store(server: &RedisServer) -> RedisResumeStore {
    store_with(server, ResumeLimits::default()).await
}

async fn chunk(store: &RedisResumeStore, k: &StreamKey, i: u32) {
    store
        .append(k, BufferedFrame::chunk(i, format!("c{i}")))
        .await
        .unwrap();
}

/// Waits until `store` has a reader long-polling `k` that already told Redis it waits (its
/// read found nothing), so the next append must reach it through pub/sub.
async fn wait_for_parked_reader(server: &RedisServer, store: &RedisResumeStore, k: &StreamKey) {
    let start = Instant::now();
    while store.waiting_readers(k) == 0
        || !server.command(&["KEYS", "test:resume:*:w"]).contains(":w")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "reader never parked"
        );
        tokio::task::yield_now().await;
    }
}

/// Polls `owner` until the stream is gone; returns when that happened.
async fn wait_gone(store: &RedisResumeStore, k: &StreamKey, within: Duration) -> Instant {
    let start = Instant::now();
    while store.owner(k).await.unwrap().is_some() {
        assert!(start.elapsed() < within, "{k} never expired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Instant::now()
}

#[tokio::test]
async fn long_poll_wakes_as_soon_as_a_frame_is_appended() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let k = key("m1");
    store.open(&k, "alice").await.unwrap();
    chunk(&store, &k, 0).await;
    let start = Instant::now();
    let reader = {
        let (store, k) = (store.clone(), k.clone());
        tokio::spawn(async move {
            store
                .read_after(&k, "alice", Some(0), Duration::from_secs(60))
                .await
        })
    };
    wait_for_parked_reader(&server, &store, &k).await;
    chunk(&store, &k, 1).await;
    let replay = reader.await.unwrap().unwrap();
    assert_eq!(replay.frames, vec![BufferedFrame::chunk(1, "c1")]);
    assert!(!replay.finished);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(store.waiting_readers(&k), 0, "the reader unregistered");
}

#[tokio::test]
async fn long_poll_returns_empty_after_wait() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let k = key("m1");
    store.open(&k, "alice").await.unwrap();
    let start = Instant::now();
    let replay = store
        .read_after(&k, "alice", None, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(replay, Replay::default());
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn finished_stream_expires_after_keep_after_done() {
    let server = RedisServer::start();
    let store = store_with(
        &server,
        ResumeLimits {
            keep_after_done: Duration::from_millis(300),
            ttl: Duration::from_secs(30),
            ..ResumeLimits::default()
        },
    )
    .await;
    let k = key("m1");
    store.open(&k, "alice").await.unwrap();
    chunk(&store, &k, 0).await;
    let finished = Instant::now();
    store
        .append(&k, BufferedFrame::terminal("d"))
        .await
        .unwrap();
    let replay = store
        .read_after(&k, "alice", None, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(replay.frames.len(), 2);
    // Gone after keep_after_done, long before the 30 s ttl.
    let gone = wait_gone(&store, &k, Duration::from_secs(10)).await;
    let after = gone - finished;
    assert!(after >= Duration::from_millis(250), "{after:?}");
    assert_eq!(
        store.read_after(&k, "alice", None, Duration::ZERO).await,
        Err(ResumeError::NotFound)
    );
    // The key is free again, and starts empty.
    store.open(&k, "bob").await.unwrap();
    assert_eq!(
        store.read_after(&k, "bob", None, Duration::ZERO).await,
        Ok(Replay::default())
    );
}

/// The one stream's meta key (`P{h}`) in `server`.
fn meta_key(server: &RedisServer) -> String {
    let keys = server.command(&["KEYS", "test:resume:*"]);
    keys.lines()
        .filter(|l| l.starts_with("test:resume:"))
        .find(|l| !l.contains("notify") && !l.ends_with(":c") && !l.ends_with(":w"))
        .unwrap_or_else(|| panic!("no stream key in {keys:?}"))
        .to_string()
}

/// The key's remaining time to live by Redis's own clock, in ms (-2: gone).
fn pttl(server: &RedisServer, key: &str) -> i64 {
    let reply = server.command(&["PTTL", key]);
    reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or_else(|_| panic!("PTTL {key}: {reply:?}"))
}

#[tokio::test]
async fn unfinished_stream_expires_ttl_after_last_write() {
    let server = RedisServer::start();
    let ttl = Duration::from_millis(2000);
    let store = store_with(
        &server,
        ResumeLimits {
            ttl,
            ..ResumeLimits::default()
        },
    )
    .await;
    let k = key("m1");
    store.open(&k, "alice").await.unwrap();
    let meta = meta_key(&server);
    // Let a quarter of the ttl pass on Redis's clock (observed, not slept for), then write.
    let mut left = pttl(&server, &meta);
    while left > 1500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        left = pttl(&server, &meta);
    }
    assert!(left > 0, "expired before the write: {left}");
    let write_started = Instant::now();
    chunk(&store, &k, 0).await;
    // The write renewed the ttl: more time is left than before it.
    let renewed = pttl(&server, &meta);
    assert!(
        renewed > left,
        "{left} ms left before the write, {renewed} after"
    );
    let gone = wait_gone(&store, &k, Duration::from_secs(10)).await;
    // Redis never expires a key early: gone no sooner than a full ttl after the write.
    assert!(
        gone - write_started >= ttl - Duration::from_millis(5),
        "{:?}",
        gone - write_started
    );
    assert_eq!(
        store.append(&k, BufferedFrame::chunk(1, "late")).await,
        Err(ResumeError::NotFound)
    );
}

#[tokio::test]
async fn replay_stream_ends_with_not_found_when_the_producer_vanishes() {
    let server = RedisServer::start();
    let store = store_with(
        &server,
        ResumeLimits {
            ttl: Duration::from_millis(500),
            ..ResumeLimits::default()
        },
    )
    .await;
    let k = key("m1");
    store.open(&k, "alice").await.unwrap();
    chunk(&store, &k, 0).await;
    chunk(&store, &k, 1).await;
    let got: Vec<_> = tokio::time::timeout(
        Duration::from_secs(20),
        replay_stream(
            Arc::new(store.clone()),
            k,
            "alice".into(),
            None,
            Duration::from_millis(200),
        )
        .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert_eq!(
        got,
        vec![
            Ok(BufferedFrame::chunk(0, "c0")),
            Ok(BufferedFrame::chunk(1, "c1")),
            Err(ResumeError::NotFound)
        ]
    );
}

#[tokio::test]
async fn a_stream_produced_on_one_instance_resumes_on_another() {
    let server = RedisServer::start();
    let (a, b) = (store(&server).await, store(&server).await);
    let k = key("m1");
    a.open(&k, "alice").await.unwrap();
    chunk(&a, &k, 0).await;
    chunk(&a, &k, 1).await;
    assert_eq!(b.owner(&k).await.unwrap().as_deref(), Some("alice"));

    // A long poll on B wakes on A's append, well before its 60 s wait.
    let start = Instant::now();
    let reader = {
        let (b, k) = (b.clone(), k.clone());
        tokio::spawn(async move {
            b.read_after(&k, "alice", Some(1), Duration::from_secs(60))
                .await
        })
    };
    wait_for_parked_reader(&server, &b, &k).await;
    chunk(&a, &k, 2).await;
    let replay = reader.await.unwrap().unwrap();
    assert_eq!(replay.frames, vec![BufferedFrame::chunk(2, "c2")]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );

    // A full resume on B from several cut points while A keeps producing.
    let texts: Vec<String> = (3..40).map(|i| format!("c{i}")).collect();
    let readers: Vec<_> = [None, Some(0), Some(2), Some(20)]
        .into_iter()
        .map(|cut| {
            let dyn_b: Arc<dyn ResumeStore> = Arc::new(b.clone());
            let k = k.clone();
            tokio::spawn(async move {
                let got: Vec<_> =
                    replay_stream(dyn_b, k, "alice".into(), cut, Duration::from_secs(5))
                        .collect()
                        .await;
                (cut, got)
            })
        })
        .collect();
    for (i, t) in texts.iter().enumerate() {
        a.append(&k, BufferedFrame::chunk(i as u32 + 3, t.clone()))
            .await
            .unwrap();
        if i % 5 == 0 {
            tokio::task::yield_now().await;
        }
    }
    a.append(&k, BufferedFrame::terminal("done")).await.unwrap();
    for r in readers {
        let (cut, got) = tokio::time::timeout(Duration::from_secs(30), r)
            .await
            .expect("replay must end after the terminal frame")
            .unwrap();
        let first = cut.map_or(0, |c| c + 1);
        let mut expected: Vec<BufferedFrame> = (first..40)
            .map(|i| BufferedFrame::chunk(i, format!("c{i}")))
            .collect();
        expected.push(BufferedFrame::terminal("done"));
        let got: Vec<BufferedFrame> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, expected, "cut {cut:?}");
    }
}

#[tokio::test]
async fn concurrent_appenders_with_the_same_index_exactly_one_wins() {
    let server = RedisServer::start();
    let stores = [store(&server).await, store(&server).await];
    let k = key("race");
    stores[0].open(&k, "alice").await.unwrap();
    for index in 0..20u32 {
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let (s, k) = (stores[w % 2].clone(), k.clone());
                tokio::spawn(async move {
                    s.append(&k, BufferedFrame::chunk(index, format!("w{w}")))
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        for w in writers {
            match w.await.unwrap() {
                Ok(()) => wins += 1,
                Err(e) => assert_eq!(
                    e,
                    ResumeError::OutOfOrder {
                        expected: index + 1,
                        got: index
                    }
                ),
            }
        }
        assert_eq!(wins, 1, "index {index}");
    }
    let replay = stores[1]
        .read_after(&k, "alice", None, Duration::ZERO)
        .await
        .unwrap();
    let indices: Vec<u32> = replay
        .frames
        .iter()
        .filter_map(BufferedFrame::chunk_index)
        .collect();
    assert_eq!(indices, (0..20).collect::<Vec<_>>());
    // Two producers racing to open the same stream: one gets AlreadyExists.
    let k2 = key("race-open");
    let (x, y) = tokio::join!(stores[0].open(&k2, "alice"), stores[1].open(&k2, "alice"));
    assert!(
        matches!(
            (&x, &y),
            (Ok(()), Err(ResumeError::AlreadyExists)) | (Err(ResumeError::AlreadyExists), Ok(()))
        ),
        "{x:?} {y:?}"
    );
}

#[tokio::test]
async fn a_dead_redis_gives_backend_errors_not_panics() {
    let mut server = RedisServer::start();
    let store = store(&server).await;
    let k = key("m1");
    store.open(&k, "alice").await.unwrap();
    server.kill();
    let start = Instant::now();
    let err = store
        .append(&k, BufferedFrame::chunk(0, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ResumeError::Backend(_)), "{err:?}");
    assert_eq!(err.code(), "backend");
    assert!(matches!(
        store
            .read_after(&k, "alice", None, Duration::from_secs(1))
            .await,
        Err(ResumeError::Backend(_))
    ));
    assert!(store.open(&key("m2"), "alice").await.is_err());
    assert!(store.owner(&k).await.is_err());
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn connecting_to_nothing_names_redis_url() {
    let server = RedisServer::start();
    let settings = server.settings();
    drop(server);
    let err = RedisResumeStore::connect(&settings, ResumeLimits::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ResumeError::Backend(_)), "{err:?}");
    assert!(
        msg.contains("redis.url") && msg.contains(&settings.url),
        "{msg}"
    );
}
