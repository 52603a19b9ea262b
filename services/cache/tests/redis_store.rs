//! [`RedisCacheStore`] against a real `redis-server` started per test: the same semantics as
//! the in-memory store, shared by replicas, real TTLs, and errors (not panics) when Redis dies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use mangaassist_cache::{
    CacheDaemon, CacheEntry, CacheError, CacheStore, Clock, Partition, RedisCacheStore, SystemClock,
};
use mangaassist_config::Config;
use mangaassist_embedding::{HashedNgrams, QueryEmbedder};
use mangaassist_proto::v1::{self as pb, cache_service_server::CacheService};
use mangaassist_testkit::RedisServer;
use tonic::{Code, Request};

const HOUR_MS: i64 = 3_600_000;

fn now() -> i64 {
    SystemClock.now_ms()
}

/// An entry created now that lives `ttl_ms`.
fn entry(
    p: &Partition,
    text: &str,
    v: Option<Vec<f32>>,
    products: &[&str],
    ttl_ms: i64,
) -> CacheEntry {
    let created = now();
    CacheEntry {
        key: p.exact_key(text),
        partition: p.clone(),
        vector: v,
        answer: pb::CachedAnswer {
            text: format!("answer to {text}"),
            product_ids: products.iter().map(|s| s.to_string()).collect(),
            created_ms: created,
            expires_ms: created + ttl_ms,
            ..Default::default()
        },
    }
}

fn unit(i: usize, dim: usize) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    v[i] = 1.0;
    v
}

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

#[tokio::test]
async fn exact_hit_miss_and_replacement() {
    let server = RedisServer::start();
    let s = store(&server, 100).await;
    let p = Partition::store("s1");
    assert_eq!(text_of(&s, &p, "q").await, None);
    s.put(entry(&p, "q", None, &[], HOUR_MS)).await.unwrap();
    assert_eq!(text_of(&s, &p, "q").await.as_deref(), Some("answer to q"));
    assert_eq!(text_of(&s, &p, "other").await, None);
    assert_eq!(text_of(&s, &Partition::store("s2"), "q").await, None);

    let mut newer = entry(&p, "q", None, &[], HOUR_MS);
    newer.answer.text = "second answer".into();
    newer.answer.intent = pb::Intent::Faq as i32;
    s.put(newer.clone()).await.unwrap();
    let got = s
        .get_exact(&p.exact_key("q"), now())
        .await
        .unwrap()
        .unwrap();
    // The whole answer round-trips through prost.
    assert_eq!(got, newer.answer);
    assert_eq!(s.stats().await.unwrap().entries, 1);
    // The caller's clock decides liveness too: past expires_ms it is a miss.
    assert!(
        s.get_exact(&p.exact_key("q"), newer.answer.expires_ms)
            .await
            .unwrap()
            .is_none()
    );
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
async fn semantic_hits_respect_threshold_partition_and_dimension() {
    let server = RedisServer::start();
    let s = store(&server, 100).await;
    let alice = Partition::user("s1", "alice");
    s.put(entry(&alice, "q0", Some(unit(0, 8)), &[], HOUR_MS))
        .await
        .unwrap();
    s.put(entry(&alice, "q1", Some(unit(1, 8)), &[], HOUR_MS))
        .await
        .unwrap();
    // cos = 0.8 with q0, 0.6 with q1.
    let mut query = vec![0.0; 8];
    query[0] = 0.8;
    query[1] = 0.6;
    let (a, sim) = s
        .semantic_search(&alice, &query, 0.75, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.text, "answer to q0");
    assert!((sim - 0.8).abs() < 1e-5, "{sim}");
    assert!(
        s.semantic_search(&alice, &query, 0.85, now())
            .await
            .unwrap()
            .is_none()
    );
    // Other partitions see nothing of alice's.
    for other in [
        Partition::user("s1", "bob"),
        Partition::session("s1", "alice"),
        Partition::store("s1"),
        Partition::user("s2", "alice"),
    ] {
        assert_eq!(s.semantic_len(&other).await.unwrap(), 0, "{other:?}");
        assert!(
            s.semantic_search(&other, &unit(0, 8), 0.1, now())
                .await
                .unwrap()
                .is_none()
        );
        assert!(text_of(&s, &other, "q0").await.is_none());
    }
    // A vector of another dimension is stored exact-only.
    s.put(entry(&alice, "odd", Some(vec![1.0; 3]), &[], HOUR_MS))
        .await
        .unwrap();
    assert_eq!(s.semantic_len(&alice).await.unwrap(), 2);
    assert!(text_of(&s, &alice, "odd").await.is_some());
    assert!(
        s.semantic_search(&alice, &[1.0, 1.0, 1.0], 0.1, now())
            .await
            .unwrap()
            .is_none()
    );
    // Replacing a key does not leave its old vector behind.
    s.put(entry(&alice, "q0", Some(unit(7, 8)), &[], HOUR_MS))
        .await
        .unwrap();
    assert_eq!(s.semantic_len(&alice).await.unwrap(), 2);
    assert!(
        s.semantic_search(&alice, &unit(0, 8), 0.9, now())
            .await
            .unwrap()
            .is_none()
    );
    let (a, _) = s
        .semantic_search(&alice, &unit(7, 8), 0.9, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.text, "answer to q0");
}

#[tokio::test]
async fn invalidation_by_product_and_store() {
    let server = RedisServer::start();
    let s = store(&server, 100).await;
    let (s1, s2) = (Partition::store("s1"), Partition::store("s2"));
    s.put(entry(&s1, "a", Some(unit(0, 4)), &["P1", "P2"], HOUR_MS))
        .await
        .unwrap();
    s.put(entry(&s1, "b", Some(unit(1, 4)), &["P2"], HOUR_MS))
        .await
        .unwrap();
    s.put(entry(&s2, "c", None, &["P1"], HOUR_MS))
        .await
        .unwrap();
    s.put(entry(&s1, "d", None, &["P3"], HOUR_MS))
        .await
        .unwrap();

    assert_eq!(
        s.invalidate_products("s1", &["P1".into()]).await.unwrap(),
        1
    );
    assert!(text_of(&s, &s1, "a").await.is_none());
    assert!(
        text_of(&s, &s2, "c").await.is_some(),
        "other store untouched"
    );
    assert_eq!(s.semantic_len(&s1).await.unwrap(), 1, "a's vector is gone");
    // Entries named by two products are counted once.
    assert_eq!(
        s.invalidate_products("", &["P1".into(), "P2".into(), "nope".into()])
            .await
            .unwrap(),
        2
    );
    assert!(text_of(&s, &s1, "b").await.is_none());
    assert!(text_of(&s, &s2, "c").await.is_none());
    assert!(text_of(&s, &s1, "d").await.is_some());
    assert_eq!(s.stats().await.unwrap().entries, 1);
    // A replaced entry's old products no longer point at it.
    s.put(entry(&s1, "d", None, &["P4"], HOUR_MS))
        .await
        .unwrap();
    assert_eq!(s.invalidate_products("", &["P3".into()]).await.unwrap(), 0);
    assert_eq!(s.invalidate_products("", &["P4".into()]).await.unwrap(), 1);
}

#[tokio::test]
async fn oldest_entries_are_evicted_at_max_entries() {
    let server = RedisServer::start();
    let s = store(&server, 3).await;
    let p = Partition::store("s1");
    let mut evicted = 0;
    for i in 0..5 {
        evicted += s
            .put(entry(&p, &format!("q{i}"), Some(unit(i, 8)), &[], HOUR_MS))
            .await
            .unwrap()
            .evicted;
    }
    assert_eq!(evicted, 2);
    let stats = s.stats().await.unwrap();
    assert_eq!((stats.entries, stats.evictions), (3, 2));
    for i in 0..5 {
        assert_eq!(
            text_of(&s, &p, &format!("q{i}")).await.is_some(),
            i >= 2,
            "q{i}"
        );
    }
    assert_eq!(s.semantic_len(&p).await.unwrap(), 3);
    // Replacing an existing key makes room by itself: nothing else goes.
    assert_eq!(
        s.put(entry(&p, "q4", None, &[], HOUR_MS))
            .await
            .unwrap()
            .evicted,
        0
    );
    assert!(text_of(&s, &p, "q2").await.is_some());
}

#[tokio::test]
async fn two_store_instances_share_everything() {
    let server = RedisServer::start();
    let (a, b) = (store(&server, 100).await, store(&server, 100).await);
    let p = Partition::session("s1", "sess");
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
