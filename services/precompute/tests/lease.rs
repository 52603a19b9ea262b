//! The scheduler lease on a real Redis: one holder per job at a time, free again when it
//! expires, and a Redis that cannot be reached lets the run go ahead.
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
