//! The circuit breaker as a tower layer over real services.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use mangaassist_resilience::{
    BreakerConfig, CircuitBreaker, CircuitBreakerLayer, CircuitError, CircuitState,
};
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt};

#[derive(Debug, PartialEq, thiserror::Error)]
enum DepError {
    #[error("dependency unavailable")]
    Unavailable,
    #[error("bad request")]
    BadRequest,
}

fn is_dependency_failure(e: &DepError) -> bool {
    matches!(e, DepError::Unavailable)
}

fn breaker(threshold: u32, open_for: Duration) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(
        "retrieval",
        BreakerConfig {
            failure_threshold: threshold,
            open_for,
            half_open_probes: 1,
        },
    ))
}

#[tokio::test(start_paused = true)]
async fn classified_errors_open_the_circuit_and_calls_then_fail_fast() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let inner = tower::service_fn(move |fail: bool| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if fail {
                Err(DepError::Unavailable)
            } else {
                Ok::<_, DepError>("answer")
            }
        }
    });
    let b = breaker(3, Duration::from_secs(5));
    let mut svc = CircuitBreakerLayer::new(Arc::clone(&b), is_dependency_failure).layer(inner);

    assert_eq!(
        svc.ready().await.unwrap().call(false).await.unwrap(),
        "answer"
    );
    for _ in 0..3 {
        let err = svc.ready().await.unwrap().call(true).await.unwrap_err();
        assert!(matches!(err, CircuitError::Inner(DepError::Unavailable)));
    }
    assert_eq!(b.state(), CircuitState::Open);
    let err = svc.ready().await.unwrap().call(false).await.unwrap_err();
    let open = err.as_open().unwrap();
    assert_eq!(open.retry_in, Duration::from_secs(5));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "rejected call must not reach the dependency"
    );

    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(b.state(), CircuitState::HalfOpen);
    assert_eq!(
        svc.ready().await.unwrap().call(false).await.unwrap(),
        "answer"
    );
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn unclassified_errors_are_neutral() {
    let inner = tower::service_fn(|_: ()| async { Err::<(), _>(DepError::BadRequest) });
    let b = breaker(2, Duration::from_secs(5));
    let mut svc = CircuitBreakerLayer::new(Arc::clone(&b), is_dependency_failure).layer(inner);
    for _ in 0..10 {
        let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
        assert_eq!(err.into_inner(), Some(DepError::BadRequest));
    }
    let snap = b.snapshot();
    assert_eq!(snap.state, CircuitState::Closed);
    assert_eq!(snap.failures, 0);
    assert_eq!(snap.neutral, 10);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_response_future_releases_the_probe_as_neutral() {
    // The dependency hangs until told to answer.
    let (tx, rx) = tokio::sync::watch::channel(false);
    let inner = tower::service_fn(move |_: ()| {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|answer| *answer).await;
            Ok::<_, DepError>(())
        }
    });
    let b = breaker(1, Duration::from_secs(1));
    b.try_acquire().unwrap().failure();
    tokio::time::advance(Duration::from_secs(1)).await;

    let mut svc = CircuitBreakerLayer::new(Arc::clone(&b), is_dependency_failure).layer(inner);
    let mut probe = svc.ready().await.unwrap().call(());
    assert!((&mut probe).now_or_never().is_none(), "probe is in flight");
    // The only probe slot is taken.
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(err.is_open());
    // A speculative call that is no longer needed: cancelled, not failed.
    drop(probe);
    assert_eq!(b.state(), CircuitState::HalfOpen);
    tx.send(true).unwrap();
    svc.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(b.snapshot().neutral, 1);
}

#[tokio::test(start_paused = true)]
async fn in_a_service_builder_stack_timeouts_count_as_failures() {
    let delay = Arc::new(AtomicUsize::new(500));
    let d = Arc::clone(&delay);
    let slow = tower::service_fn(move |q: &'static str| {
        let ms = d.load(Ordering::SeqCst) as u64;
        async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, Infallible>(q.len())
        }
    });
    let b = breaker(2, Duration::from_secs(3));
    let is_timeout = |e: &BoxError| e.is::<tower::timeout::error::Elapsed>();
    let mut svc = ServiceBuilder::new()
        // Outermost: converts the breaker's error back to BoxError like the rest of the stack.
        .map_err(CircuitError::into_box_error)
        // Outside the timeout so that deadline misses count as dependency failures.
        .layer(CircuitBreakerLayer::new(Arc::clone(&b), is_timeout))
        .timeout(Duration::from_millis(200))
        .service(slow);

    for _ in 0..2 {
        let err = svc.ready().await.unwrap().call("q").await.unwrap_err();
        assert!(err.is::<tower::timeout::error::Elapsed>());
    }
    assert_eq!(b.state(), CircuitState::Open);
    let err = svc.ready().await.unwrap().call("q").await.unwrap_err();
    let open = err
        .downcast_ref::<mangaassist_resilience::BreakerOpen>()
        .unwrap();
    assert_eq!(open.dependency, "retrieval");
    assert_eq!(open.retry_in, Duration::from_secs(3));

    // The dependency recovers; after open_for one probe closes the circuit.
    delay.store(10, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(svc.ready().await.unwrap().call("four").await.unwrap(), 4);
    assert_eq!(b.state(), CircuitState::Closed);
}

#[tokio::test]
async fn layered_services_share_one_breaker_across_clones() {
    let b = breaker(2, Duration::from_secs(5));
    let layer = CircuitBreakerLayer::new(Arc::clone(&b), is_dependency_failure);
    let failing = tower::service_fn(|_: ()| async { Err::<(), _>(DepError::Unavailable) });
    let a = layer.layer(failing);
    let c = a.clone();
    a.oneshot(()).await.unwrap_err();
    c.oneshot(()).await.unwrap_err();
    assert_eq!(b.state(), CircuitState::Open);
}
