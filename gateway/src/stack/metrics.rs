//! Measures each stage call: `stage_latency_ms{stage}`, the budget check
//! (`budget_violations_total{stage}`) and the message's `done.stages` entry.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use futures::{FutureExt, future::BoxFuture};
use tower::{Layer, Service};

use super::Staged;
use crate::budget::{StageError, record_stage};

#[derive(Clone, Copy, Debug, Default)]
pub struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Metrics<S> {
    inner: S,
}

impl<S, R, T> Service<Staged<R>> for Metrics<S>
where
    S: Service<Staged<R>, Response = T, Error = StageError>,
    S::Future: Send + 'static,
{
    type Response = T;
    type Error = StageError;
    type Future = BoxFuture<'static, Result<T, StageError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Staged<R>) -> Self::Future {
        let ctx = req.ctx.clone();
        let label = req.stage.label();
        let started = Instant::now();
        let call = self.inner.call(req);
        async move {
            let result = call.await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.outcome(),
            };
            record_stage(
                &ctx.timings,
                &ctx.budgets,
                &ctx.clock,
                label,
                started,
                outcome,
            );
            result
        }
        .boxed()
    }
}
