//! The stage deadline as a layer: the call gets `Staged::deadline` and not a moment more.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use futures::{FutureExt, future::BoxFuture};
use tower::{Layer, Service};

use super::Staged;
use crate::budget::StageError;

#[derive(Clone, Copy, Debug, Default)]
pub struct DeadlineLayer;

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
}

impl<S, R, T> Service<Staged<R>> for Deadline<S>
where
    S: Service<Staged<R>, Response = T, Error = tonic::Status>,
    S::Future: Send + 'static,
{
    type Response = T;
    type Error = StageError;
    type Future = BoxFuture<'static, Result<T, StageError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(StageError::Rpc)
    }

    fn call(&mut self, req: Staged<R>) -> Self::Future {
        let deadline = req.deadline;
        let deadline_ms = deadline.as_millis() as u64;
        let call = self.inner.call(req);
        async move {
            let started = Instant::now();
            match tokio::time::timeout(deadline, call).await {
                Ok(Ok(v)) => Ok(v),
                // tonic's client enforces the same `grpc-timeout` and may be a hair faster
                // than this timer: that is the deadline too, not a dependency error.
                Ok(Err(status))
                    if status.code() == tonic::Code::DeadlineExceeded
                        || (status.code() == tonic::Code::Cancelled
                            && started.elapsed() >= deadline.mul_f32(0.9)) =>
                {
                    Err(StageError::Deadline(deadline_ms))
                }
                Ok(Err(status)) => Err(StageError::Rpc(status)),
                Err(_) => Err(StageError::Deadline(deadline_ms)),
            }
        }
        .boxed()
    }
}
