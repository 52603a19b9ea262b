//! Measures each stage call: `stage_latency_ms{stage}`, the budget check
//! (`budget_violations_total{stage}`) and the message's `done.stages` entry.

use std::time::Instant;

use futures::{FutureExt, future::BoxFuture};

use super::around::{Around, AroundLayer, StageCall};
use crate::budget::{StageError, record_stage};

#[derive(Clone, Copy, Debug, Default)]
pub struct Metrics;

pub type MetricsLayer = AroundLayer<Metrics>;

impl Around for Metrics {
    fn around<T: Send + 'static>(
        &self,
        call: StageCall,
        inner: BoxFuture<'static, Result<T, StageError>>,
    ) -> BoxFuture<'static, Result<T, StageError>> {
        let started = Instant::now();
        async move {
            let result = inner.await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.outcome(),
            };
            let ctx = &call.ctx;
            record_stage(
                &ctx.timings,
                &ctx.budgets,
                &ctx.clock,
                call.stage.label(),
                started,
                outcome,
            );
            result
        }
        .boxed()
    }
}
