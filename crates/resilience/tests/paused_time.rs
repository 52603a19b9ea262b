//! Rate limits and breakers against tokio's clock (paused, advanced by hand).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use mangaassist_resilience::{
    AdaptiveConfig, AdaptiveRouter, BreakerConfig, CircuitBreaker, CircuitState, KeyedLimiter,
    RetryAfter,
};
use tokio::time::{Instant, advance};

#[tokio::test(start_paused = true)]
async fn per_user_limit_30_per_minute_with_exact_retry_after() {
    let limiter = KeyedLimiter::new(30, Duration::from_secs(60), 100_000);
    for _ in 0..30 {
        limiter.check("user-1").unwrap();
    }
    assert_eq!(
        limiter.check("user-1"),
        Err(RetryAfter(Duration::from_secs(2)))
    );
    // Another user's burst does not touch user-1's bucket, and vice versa.
    for _ in 0..30 {
        limiter.check("user-2").unwrap();
    }
    advance(Duration::from_millis(1250)).await;
    assert_eq!(
        limiter.check("user-1"),
        Err(RetryAfter(Duration::from_millis(750)))
    );
    advance(Duration::from_millis(750)).await;
    limiter.check("user-1").unwrap();
    assert_eq!(
        limiter.check("user-1"),
        Err(RetryAfter(Duration::from_secs(2)))
    );
    assert_eq!(limiter.len(), 2);
    // After a whole period every bucket is full again and the sweep forgets them.
    advance(Duration::from_secs(61)).await;
    limiter.check("user-3").unwrap();
    assert_eq!(limiter.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn breaker_convenience_methods_follow_tokio_time() {
    let b = Arc::new(CircuitBreaker::new(
        "generation",
        BreakerConfig {
            failure_threshold: 1,
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        },
    ));
    b.try_acquire().unwrap().failure();
    advance(Duration::from_millis(4999)).await;
    assert_eq!(
        b.try_acquire().unwrap_err().retry_in,
        Duration::from_millis(1)
    );
    assert_eq!(b.snapshot().opened_for_ms, Some(4999));
    advance(Duration::from_millis(1)).await;
    assert_eq!(b.state(), CircuitState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn adaptive_router_with_tokio_clock() {
    let r = AdaptiveRouter::new(AdaptiveConfig::default());
    for _ in 0..20 {
        r.record_smart_first_token(Instant::now(), 1800.0);
    }
    assert!(r.medium_to_fast(Instant::now()));
    advance(Duration::from_secs(10)).await;
    for _ in 0..20 {
        r.record_smart_first_token(Instant::now(), 300.0);
    }
    // 40 samples, half slow: p95 still 1800 ms.
    assert!(r.medium_to_fast(Instant::now()));
    advance(Duration::from_secs(50)).await;
    // The slow half aged out: p95 300 ms < 1200 ms.
    assert!(!r.medium_to_fast(Instant::now()));
    assert_eq!(r.snapshot(Instant::now()).flips, 2);
}
