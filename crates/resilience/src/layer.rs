//! The circuit breaker as a tower layer.
//!
//! Place it outside a timeout layer so that deadline misses count as dependency failures, and
//! classify errors with care: a caller-side error (invalid argument, cancelled) says nothing
//! about the dependency's health and must not open its circuit.
//!
//! The breaker is consulted in `call`, not in `poll_ready`: readiness reflects the inner
//! service, and a rejected call fails at once with [`CircuitError::Open`] without reaching it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use crate::breaker::{BreakerOpen, CircuitBreaker, Permit};

/// Error of a [`CircuitBreakerService`]: either the circuit refused the call or the inner
/// service failed.
#[derive(Debug)]
pub enum CircuitError<E> {
    Open(BreakerOpen),
    Inner(E),
}

impl<E> CircuitError<E> {
    pub fn is_open(&self) -> bool {
        matches!(self, CircuitError::Open(_))
    }

    pub fn as_open(&self) -> Option<&BreakerOpen> {
        match self {
            CircuitError::Open(open) => Some(open),
            CircuitError::Inner(_) => None,
        }
    }

    pub fn into_inner(self) -> Option<E> {
        match self {
            CircuitError::Open(_) => None,
            CircuitError::Inner(e) => Some(e),
        }
    }

    /// For stacks whose error type is tower's `BoxError` (e.g. under a timeout layer).
    pub fn into_box_error(self) -> BoxError
    where
        E: Into<BoxError>,
    {
        match self {
            CircuitError::Open(open) => Box::new(open),
            CircuitError::Inner(e) => e.into(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for CircuitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CircuitError::Open(open) => open.fmt(f),
            CircuitError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CircuitError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // Transparent: the inner error's own chain follows.
        match self {
            CircuitError::Open(_) => None,
            CircuitError::Inner(e) => e.source(),
        }
    }
}

impl<E> From<BreakerOpen> for CircuitError<E> {
    fn from(open: BreakerOpen) -> Self {
        CircuitError::Open(open)
    }
}

/// Wraps a service in a [`CircuitBreaker`]. `classify(&err)` returns true when the error counts
/// as a failure of the dependency; other errors are neutral.
#[derive(Clone)]
pub struct CircuitBreakerLayer<F> {
    breaker: Arc<CircuitBreaker>,
    classify: F,
}

impl<F> CircuitBreakerLayer<F> {
    pub fn new(breaker: Arc<CircuitBreaker>, classify: F) -> Self {
        Self { breaker, classify }
    }

    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

impl<F> fmt::Debug for CircuitBreakerLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("dependency", &self.breaker.dependency())
            .finish_non_exhaustive()
    }
}

impl<S, F: Clone> Layer<S> for CircuitBreakerLayer<F> {
    type Service = CircuitBreakerService<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: Arc::clone(&self.breaker),
            classify: self.classify.clone(),
        }
    }
}

/// Service produced by [`CircuitBreakerLayer`].
#[derive(Clone)]
pub struct CircuitBreakerService<S, F> {
    inner: S,
    breaker: Arc<CircuitBreaker>,
    classify: F,
}

impl<S, F> CircuitBreakerService<S, F> {
    pub fn new(inner: S, breaker: Arc<CircuitBreaker>, classify: F) -> Self {
        Self {
            inner,
            breaker,
            classify,
        }
    }

    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: fmt::Debug, F> fmt::Debug for CircuitBreakerService<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("dependency", &self.breaker.dependency())
            .finish_non_exhaustive()
    }
}

impl<S, F, Req> Service<Req> for CircuitBreakerService<S, F>
where
    S: Service<Req>,
    F: Fn(&S::Error) -> bool + Clone,
{
    type Response = S::Response;
    type Error = CircuitError<S::Error>;
    type Future = ResponseFuture<S::Future, F>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(CircuitError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.breaker.try_acquire() {
            Ok(permit) => ResponseFuture {
                state: State::Running {
                    // Boxed so the future can be polled without pin projection (no unsafe, no
                    // extra dependency); one allocation per call is noise next to an RPC.
                    future: Box::pin(self.inner.call(req)),
                    permit: Some(permit),
                    classify: self.classify.clone(),
                },
            },
            Err(open) => ResponseFuture {
                state: State::Rejected(Some(open)),
            },
        }
    }
}

/// Future of [`CircuitBreakerService`]. Dropping it before completion releases the permit as
/// neutral (cancelled).
pub struct ResponseFuture<Fut, F> {
    state: State<Fut, F>,
}

enum State<Fut, F> {
    Rejected(Option<BreakerOpen>),
    Running {
        future: Pin<Box<Fut>>,
        permit: Option<Permit>,
        classify: F,
    },
}

// Sound without unsafe: the inner future is boxed and no field is ever structurally pinned.
impl<Fut, F> Unpin for ResponseFuture<Fut, F> {}

impl<Fut, F> fmt::Debug for ResponseFuture<Fut, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Rejected(_) => "rejected",
            State::Running { .. } => "running",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<Fut, F, T, E> Future for ResponseFuture<Fut, F>
where
    Fut: Future<Output = Result<T, E>>,
    F: Fn(&E) -> bool,
{
    type Output = Result<T, CircuitError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            State::Rejected(open) => match open.take() {
                Some(open) => Poll::Ready(Err(CircuitError::Open(open))),
                // Polled again after completion: tower futures need not be fused, but stay
                // pending rather than panic.
                None => Poll::Pending,
            },
            State::Running {
                future,
                permit,
                classify,
            } => {
                let result = std::task::ready!(future.as_mut().poll(cx));
                if let Some(permit) = permit.take() {
                    match &result {
                        Ok(_) => permit.success(),
                        Err(e) if classify(e) => permit.failure(),
                        // Not the dependency's fault: release the permit as neutral.
                        Err(_) => drop(permit),
                    }
                }
                Poll::Ready(result.map_err(CircuitError::Inner))
            }
        }
    }
}
