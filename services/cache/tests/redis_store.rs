//! [`RedisCacheStore`] against a real `redis-server` started per test: what only Redis does —
//! real TTLs, state shared by replicas, errors (not panics) when Redis dies. The semantics it
//! shares with the in-memory store are checked by `store_conformance.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use mangaassist_cache::{CacheDaemon, CacheError, CacheStore, Partition, RedisCacheStore};
use mangaassist_config::Config;
use mangaassist_embedding::{HashedNgrams, QueryEmbedder};
use mangaassist_proto::v1::{self as pb, cache_service_server::CacheService};
use mangaassist_testkit::RedisServer;
use tonic::{Code, Request};

mod common;
use common::*;

async fn store(server: &RedisServer, max_entries: usize) -> RedisCacheStore {
    RedisCacheStore::connect(&server.settings(), max_entries)
        .await
        .unwrap()
}

async fn text_of(s: &RedisCacheStore, p: &Partition, text: &str) -> Option<String> {
    s.get_exact(&p.exact_key(text), now())
        .await
        .unwrap()
        .map(|a| a.text)
}

/// Issue 14: a lookup `HGETALL`s its partition, so an unbounded store partition meant
/// megabytes per question. A full partition now drops its oldest entry on put.
#[tokio::test]
async fn a_full_partition_evicts_its_oldest_entry_so_lookups_stay_bounded() {
    let server = RedisServer::start();
    let s = store(&server, 100).await.with_max_partition_entries(3);
    let p = Partition::store("s1");
    let other = Partition::store("s2");
    s.put(entry(&other, "elsewhere", Some(unit(0, 4)), &[], HOUR_MS))
        .await
        .unwrap();
    let mut evicted = 0;
    for i in 0..5 {
        let e = entry(&p, &format!("q{i}"), Some(unit(i % 4, 4)), &["P1"], HOUR_MS);
        evicted += s.put(e).await.unwrap().evicted;
    }
    assert_eq!(evicted, 2);
    assert_eq!(s.semantic_len(&p).await.unwrap(), 3);
    assert_eq!(s.stats().await.unwrap().entries, 4);
    assert_eq!(s.stats().await.unwrap().evictions, 2);
    for gone in ["q0", "q1"] {
        assert!(text_of(&s, &p, gone).await.is_none(), "{gone}");
    }
    for kept in ["q2", "q3", "q4"] {
        assert!(text_of(&s, &p, kept).await.is_some(), "{kept}");
    }
    // The other partition is not touched, and the evicted entries left no traces.
    assert!(text_of(&s, &other, "elsewhere").await.is_some());
    assert_eq!(s.semantic_len(&other).await.unwrap(), 1);
    assert_eq!(s.invalidate_products("", &["P1".into()]).await.unwrap(), 3);
}

#[tokio::test]
async fn entries_vanish_at_their_redis_ttl_and_purge_cleans_the_indexes() {
    let server = RedisServer::start();
    let s = store(&server, 100).await;
    let p = Partition::store("s1");
    let start = Instant::now();
    s.put(entry(&p, "short", Some(unit(0, 4)), &["P1"], 300))
        .await
        .unwrap();
    s.put(entry(&p, "long", Some(unit(1, 4)), &["P1"], HOUR_MS))
        .await
        .unwrap();
    assert!(text_of(&s, &p, "short").await.is_some());
    // Asking with the epoch as "now" so only Redis's own expiry can make it disappear.
    while s
        .get_exact(&p.exact_key("short"), 0)
        .await
        .unwrap()
        .is_some()
    {
        assert!(start.elapsed() < Duration::from_secs(10), "never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    // Its vector is still indexed but can no longer produce a hit.
    assert_eq!(s.semantic_len(&p).await.unwrap(), 2);
    assert!(
        s.semantic_search(&p, &unit(0, 4), 0.9, 0)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.purge_expired(now()).await.unwrap(), 1);
    assert_eq!(s.semantic_len(&p).await.unwrap(), 1);
    assert_eq!(s.stats().await.unwrap().entries, 1);
    assert!(text_of(&s, &p, "long").await.is_some());
    // The long entry's key carries a real TTL close to an hour.
    let keys = server.command(&["KEYS", "test:cache:a:*"]);
    let key = keys.lines().find(|l| l.starts_with("test:")).unwrap();
    let pttl: i64 = server
        .command(&["PTTL", key])
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    assert!(pttl > HOUR_MS - 60_000 && pttl <= HOUR_MS, "{pttl}");
    // Product index of the purged entry is gone: only the live one is invalidated.
    assert_eq!(s.invalidate_products("", &["P1".into()]).await.unwrap(), 1);
}

#[tokio::test]
async fn two_store_instances_share_everything() {
    let server = RedisServer::start();
    let (a, b) = (store(&server, 100).await, store(&server, 100).await);
    let p = Partition::session("s1", "alice", "sess");
    a.put(entry(&p, "q", Some(unit(2, 4)), &["P1"], HOUR_MS))
        .await
        .unwrap();
    assert_eq!(text_of(&b, &p, "q").await.as_deref(), Some("answer to q"));
    assert!(
        b.semantic_search(&p, &unit(2, 4), 0.9, now())
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        b.invalidate_products("s1", &["P1".into()]).await.unwrap(),
        1
    );
    assert!(text_of(&a, &p, "q").await.is_none());
    // A fresh connection after both are gone still sees the shared state.
    a.put(entry(&p, "kept", None, &[], HOUR_MS)).await.unwrap();
    drop((a, b));
    let c = store(&server, 100).await;
    assert!(text_of(&c, &p, "kept").await.is_some());
}

#[tokio::test]
async fn a_dead_redis_gives_unavailable_errors_not_panics() {
    let mut server = RedisServer::start();
    let s = store(&server, 100).await;
    let p = Partition::store("s1");
    s.put(entry(&p, "q", Some(unit(0, 4)), &["P1"], HOUR_MS))
        .await
        .unwrap();
    server.kill();
    let start = Instant::now();
    let err = s.get_exact(&p.exact_key("q"), now()).await.unwrap_err();
    assert!(matches!(err, CacheError::Backend(_)), "{err:?}");
    assert_eq!(err.code(), Code::Unavailable);
    assert!(s.put(entry(&p, "r", None, &[], HOUR_MS)).await.is_err());
    assert!(
        s.semantic_search(&p, &unit(0, 4), 0.5, now())
            .await
            .is_err()
    );
    assert!(s.invalidate_products("", &["P1".into()]).await.is_err());
    assert!(s.stats().await.is_err());
    assert!(s.purge_expired(now()).await.is_err());
    // Bounded by the command timeout (500 ms per call here), not hanging.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn connecting_to_nothing_names_redis_url() {
    let server = RedisServer::start();
    let mut settings = server.settings();
    drop(server);
    settings.url = format!(
        "{}/0",
        settings.url.replace("127.0.0.1", "user:hunter2@127.0.0.1")
    );
    let err = RedisCacheStore::connect(&settings, 10).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("redis.url"), "{msg}");
    assert!(msg.contains("127.0.0.1"), "{msg}");
    assert!(!msg.contains("hunter2"), "password leaked: {msg}");
}

fn hashed() -> QueryEmbedder {
    QueryEmbedder::new(Arc::new(HashedNgrams::default()), 1_000)
}

#[tokio::test]
async fn the_daemon_uses_redis_when_configured() {
    let mut server = RedisServer::start();
    let mut config = Config::default();
    config.cache.backend = mangaassist_config::CacheBackend::Redis;
    config.redis = server.settings();
    let d = CacheDaemon::new(&config, hashed()).await.unwrap();
    let put = pb::PutRequest {
        text: "Where is my order?".into(),
        store_id: "s1".into(),
        scope: pb::CacheScope::Store as i32,
        answer: Some(pb::CachedAnswer {
            text: "in transit".into(),
            product_ids: vec!["P9".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    d.put(Request::new(put)).await.unwrap();
    let lookup = pb::LookupRequest {
        text: "where is my order".into(),
        store_id: "s1".into(),
        ..Default::default()
    };
    // A second replica on the same Redis answers it.
    let replica = CacheDaemon::new(&config, hashed()).await.unwrap();
    let r = replica
        .lookup(Request::new(lookup.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(r.hit);
    assert_eq!(r.answer.unwrap().text, "in transit");
    let stats = replica
        .stats(Request::new(pb::StatsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.entries, 1);

    server.kill();
    let status = d.lookup(Request::new(lookup)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    let err = CacheDaemon::new(&config, hashed()).await.unwrap_err();
    assert!(err.to_string().contains("redis.url"), "{err}");
}
