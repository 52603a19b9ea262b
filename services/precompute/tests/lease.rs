//! The scheduler lease on a real Redis: one holder per job at a time, free again when it
//! expires, and a Redis that cannot be reached lets the run go ahead. Also the demand the
//! trending job ranks by, shared by replicas on the same Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use mangaassist_precompute::JobLease;
use mangaassist_testkit::RedisServer;

#[tokio::test]
async fn one_replica_holds_each_job() {
    let server = RedisServer::start();
    let settings = server.settings();
    let a = JobLease::redis(&settings, "a".into()).await.unwrap();
    let b = JobLease::redis(&settings, "b".into()).await.unwrap();
    assert!(a.acquire("trending", Duration::from_secs(3600)).await);
    assert!(!b.acquire("trending", Duration::from_secs(3600)).await);
    assert!(
        !a.acquire("trending", Duration::from_secs(3600)).await,
        "one run per interval"
    );
    // Another job is its own lease.
    assert!(
        b.acquire("genre_recommendations", Duration::from_secs(3600))
            .await
    );
    // A short lease expires and the next replica takes the next run.
    assert!(a.acquire("short", Duration::from_millis(20)).await);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.acquire("short", Duration::from_millis(20)).await {
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        JobLease::None
            .acquire("trending", Duration::from_secs(1))
            .await
    );
}

#[tokio::test]
async fn an_unreachable_redis_lets_the_run_go_ahead() {
    let mut server = RedisServer::start();
    let settings = server.settings();
    let a = JobLease::redis(&settings, "a".into()).await.unwrap();
    server.kill();
    assert!(a.acquire("trending", Duration::from_secs(3600)).await);
}

/// Demand on a real Redis: two replicas add to the same counts, and they decay as the
/// embedded map's do.
#[tokio::test]
async fn replicas_share_demand_through_redis() {
    use mangaassist_precompute::Demand;
    let server = RedisServer::start();
    let settings = server.settings();
    let a = Demand::redis(&settings, 3_600).await.unwrap();
    let b = Demand::redis(&settings, 3_600).await.unwrap();
    let t0 = 1.8e9;
    a.add("manga_jp", &[("p1".into(), 3), ("p2".into(), 1)], t0)
        .await
        .unwrap();
    b.add("manga_jp", &[("p1".into(), 1)], t0 + 3_600.0)
        .await
        .unwrap();
    b.add("comics_us", &[("p9".into(), 1)], t0).await.unwrap();
    let mut seen = a.counts("manga_jp", t0 + 3_600.0).await.unwrap();
    seen.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(seen.len(), 2, "{seen:?}");
    // 3 an hour ago count 1.5, plus 1 now.
    assert!((seen[0].1 - 2.5).abs() < 1e-6, "{seen:?}");
    assert!((seen[1].1 - 0.5).abs() < 1e-6, "{seen:?}");
    let memory = Demand::memory(3_600, None).unwrap();
    memory
        .add("manga_jp", &[("p1".into(), 3)], t0)
        .await
        .unwrap();
    memory
        .add("manga_jp", &[("p1".into(), 1)], t0 + 3_600.0)
        .await
        .unwrap();
    let m = memory.counts("manga_jp", t0 + 3_600.0).await.unwrap();
    assert!((m[0].1 - seen[0].1).abs() < 1e-6);
}
