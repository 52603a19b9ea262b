//! The speculative retrieval, joined when the intent needs catalog or policy context and
//! stopped (its cost counted) when it does not.

use mangaassist_proto::v1 as pb;

use super::{Orchestrator, Query, phase1::Speculation};
use crate::{
    budget::{StageCtx, StageTiming},
    degradation::{Ladder, Stage},
};

impl Orchestrator {
    pub(super) async fn join_retrieval(
        &self,
        q: &Query,
        ctx: &StageCtx,
        speculation: Speculation,
        needed: bool,
        ladder: &mut Ladder,
    ) -> Option<pb::RetrieveResponse> {
        let Speculation { handle, started } = speculation;
        if needed {
            return match handle.await {
                Ok(Ok(r)) => Some(r),
                _ => {
                    ladder.record_failure(Stage::Retrieval);
                    None
                }
            };
        }
        let finished = handle.is_finished();
        handle.abort();
        let wasted_ms = started.elapsed().as_secs_f64() * 1e3;
        metrics::counter!("speculative_retrieval_cancelled_total").increment(1);
        metrics::histogram!("speculative_retrieval_wasted_ms").record(wasted_ms);
        if !finished {
            // The stack records a finished call; an aborted one only here.
            ctx.timings.push(StageTiming {
                stage: "retrieval".into(),
                start_ms: started.saturating_duration_since(q.received).as_secs_f64() * 1e3,
                duration_ms: wasted_ms,
                budget_ms: self.budgets.for_stage("retrieval"),
                outcome: "cancelled".into(),
            });
        }
        None
    }
}
