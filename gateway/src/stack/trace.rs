//! Each stage call in its own `stage` span carrying its budget, deadline and outcome, so an
//! over-budget stage is an event on the message's trace.

use std::task::{Context, Poll};

use futures::{FutureExt, future::BoxFuture};
use tower::{Layer, Service};
use tracing::{Instrument, info_span};

use super::Staged;
use crate::budget::StageError;

#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Trace<S> {
    inner: S,
}

impl<S, R, T> Service<Staged<R>> for Trace<S>
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
        let label = req.stage.label();
        let span = info_span!(
            "stage",
            stage = label,
            budget_ms = req.ctx.budgets.for_stage(label),
            deadline_ms = req.deadline.as_millis() as u64,
            outcome = tracing::field::Empty
        );
        let call = span.in_scope(|| self.inner.call(req));
        async move {
            let result = call.await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.outcome(),
            };
            tracing::Span::current().record("outcome", outcome);
            if let Err(e) = &result {
                tracing::warn!(stage = label, error = %e, "stage failed, degrading");
            }
            result
        }
        .instrument(span)
        .boxed()
    }
}
