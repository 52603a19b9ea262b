//! One behavioural suite for [`CacheStore`], run against every backend: the in-memory
//! default and Redis (a real `redis-server` per test). A backend passes only if it behaves
//! exactly like the others; backend-specific behaviour (Redis TTLs, sharing between replicas,
//! a dead server) stays in that backend's own test file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;

use mangaassist_cache::{CacheStore, InMemoryStore, Partition, RedisCacheStore};
use mangaassist_proto::v1 as pb;
use mangaassist_testkit::RedisServer;

mod common;
use common::*;

/// A store under test and whatever must outlive it (the Redis server).
struct Backend {
    store: Box<dyn CacheStore>,
    _keep: Box<dyn Any>,
}

async fn text_of(s: &dyn CacheStore, p: &Partition, text: &str) -> Option<String> {
    s.get_exact(&p.exact_key(text), now())
        .await
        .unwrap()
        .map(|a| a.text)
}

async fn exact_hit_miss_and_replacement(s: &dyn CacheStore) {
    let p = Partition::store("s1");
    assert_eq!(text_of(s, &p, "q").await, None);
    s.put(entry(&p, "q", None, &[], HOUR_MS)).await.unwrap();
    assert_eq!(text_of(s, &p, "q").await.as_deref(), Some("answer to q"));
    assert_eq!(text_of(s, &p, "other").await, None);
    assert_eq!(text_of(s, &Partition::store("s2"), "q").await, None);

    let mut newer = entry(&p, "q", None, &[], HOUR_MS);
    newer.answer.text = "second answer".into();
    newer.answer.intent = pb::Intent::Faq as i32;
    s.put(newer.clone()).await.unwrap();
    let got = s
        .get_exact(&p.exact_key("q"), now())
        .await
        .unwrap()
        .unwrap();
    // The whole answer round-trips, every field.
    assert_eq!(got, newer.answer);
    assert_eq!(s.stats().await.unwrap().entries, 1);
    // The caller's clock decides liveness: at expires_ms it is a miss.
    assert!(
        s.get_exact(&p.exact_key("q"), newer.answer.expires_ms)
            .await
            .unwrap()
            .is_none()
    );
}

async fn expired_entries_never_hit_and_purge_counts_them(s: &dyn CacheStore) {
    let p = Partition::store("s1");
    s.put(entry(&p, "short", Some(unit(0, 4)), &["P1"], 1_000))
        .await
        .unwrap();
    s.put(entry(&p, "long", Some(unit(1, 4)), &["P1"], HOUR_MS))
        .await
        .unwrap();
    let later = now() + 60_000;
    // Nothing has touched the expired entry yet, so the sweep is what removes it.
    assert_eq!(s.purge_expired(later).await.unwrap(), 1);
    assert_eq!(s.semantic_len(&p).await.unwrap(), 1);
    assert_eq!(s.stats().await.unwrap().entries, 1);
    assert!(text_of(s, &p, "long").await.is_some());
    // The purged entry left the product index too: only the live one is invalidated.
    assert_eq!(s.invalidate_products("", &["P1".into()]).await.unwrap(), 1);

    // Whether a lookup drops an expired entry at once or leaves it to the sweep is the
    // backend's choice; that it never answers with it is not.
    s.put(entry(&p, "brief", Some(unit(2, 4)), &[], 1_000))
        .await
        .unwrap();
    assert!(
        s.get_exact(&p.exact_key("brief"), later)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.semantic_search(&p, &unit(2, 4), 0.9, later)
            .await
            .unwrap()
            .is_none(),
        "an expired vector must not produce a hit"
    );
    assert!(s.purge_expired(later).await.unwrap() <= 1);
    assert_eq!(s.stats().await.unwrap().entries, 0);
    assert_eq!(s.semantic_len(&p).await.unwrap(), 0);
}

async fn semantic_hits_respect_threshold_partition_and_dimension(s: &dyn CacheStore) {
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
        Partition::session("s1", "alice", "sess"),
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
        assert!(text_of(s, &other, "q0").await.is_none());
    }
    // A vector of another dimension is stored exact-only.
    s.put(entry(&alice, "odd", Some(vec![1.0; 3]), &[], HOUR_MS))
        .await
        .unwrap();
    assert_eq!(s.semantic_len(&alice).await.unwrap(), 2);
    assert!(text_of(s, &alice, "odd").await.is_some());
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

async fn invalidation_by_product_and_store(s: &dyn CacheStore) {
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
    assert!(text_of(s, &s1, "a").await.is_none());
    assert!(
        text_of(s, &s2, "c").await.is_some(),
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
    assert!(text_of(s, &s1, "b").await.is_none());
    assert!(text_of(s, &s2, "c").await.is_none());
    assert!(text_of(s, &s1, "d").await.is_some());
    assert_eq!(s.stats().await.unwrap().entries, 1);
    // A replaced entry's old products no longer point at it.
    s.put(entry(&s1, "d", None, &["P4"], HOUR_MS))
        .await
        .unwrap();
    assert_eq!(s.invalidate_products("", &["P3".into()]).await.unwrap(), 0);
    assert_eq!(s.invalidate_products("", &["P4".into()]).await.unwrap(), 1);
}

/// Needs a store built with `max_entries = 3`.
async fn oldest_entries_are_evicted_at_max_entries(s: &dyn CacheStore) {
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
            text_of(s, &p, &format!("q{i}")).await.is_some(),
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
    assert!(text_of(s, &p, "q2").await.is_some());
}

async fn memory(max_entries: usize) -> Backend {
    Backend {
        store: Box::new(InMemoryStore::new(max_entries)),
        _keep: Box::new(()),
    }
}

async fn redis(max_entries: usize) -> Backend {
    let server = RedisServer::start();
    let store = RedisCacheStore::connect(&server.settings(), max_entries)
        .await
        .unwrap();
    Backend {
        store: Box::new(store),
        _keep: Box::new(server),
    }
}

/// Every case of the suite, once per backend.
macro_rules! conformance {
    ($($backend:ident),+) => {$(
        mod $backend {
            #[tokio::test]
            async fn exact_hit_miss_and_replacement() {
                let b = super::$backend(100).await;
                super::exact_hit_miss_and_replacement(&*b.store).await;
            }

            #[tokio::test]
            async fn expired_entries_never_hit_and_purge_counts_them() {
                let b = super::$backend(100).await;
                super::expired_entries_never_hit_and_purge_counts_them(&*b.store).await;
            }

            #[tokio::test]
            async fn semantic_hits_respect_threshold_partition_and_dimension() {
                let b = super::$backend(100).await;
                super::semantic_hits_respect_threshold_partition_and_dimension(&*b.store).await;
            }

            #[tokio::test]
            async fn invalidation_by_product_and_store() {
                let b = super::$backend(100).await;
                super::invalidation_by_product_and_store(&*b.store).await;
            }

            #[tokio::test]
            async fn oldest_entries_are_evicted_at_max_entries() {
                let b = super::$backend(3).await;
                super::oldest_entries_are_evicted_at_max_entries(&*b.store).await;
            }
        }
    )+};
}

conformance!(memory, redis);
