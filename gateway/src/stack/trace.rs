//! Each stage call in its own `stage` span carrying its budget, deadline and outcome, so an
//! over-budget stage is an event on the message's trace.

use futures::{FutureExt, future::BoxFuture};
use tracing::{Instrument, info_span};

use super::around::{Around, AroundLayer, StageCall};
use crate::budget::StageError;

#[derive(Clone, Copy, Debug, Default)]
pub struct Trace;

pub type TraceLayer = AroundLayer<Trace>;

impl Around for Trace {
    fn around<T: Send + 'static>(
        &self,
        call: StageCall,
        inner: BoxFuture<'static, Result<T, StageError>>,
    ) -> BoxFuture<'static, Result<T, StageError>> {
        let label = call.stage.label();
        let span = info_span!(
            "stage",
            stage = label,
            budget_ms = call.ctx.budgets.for_stage(label),
            deadline_ms = call.deadline.as_millis() as u64,
            outcome = tracing::field::Empty
        );
        async move {
            let result = inner.await;
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
