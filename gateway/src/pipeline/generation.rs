//! The streamed model answer: each attempt goes through the generation stack (breaker and
//! first-token deadline judge whether the model answers at all), then its events are relayed
//! as batched chunks under the idle deadline. A low-confidence fast answer is re-asked of the
//! smart tier while nothing is on screen and the first-token budget allows; a model that is
//! unavailable before anything was sent gives way to a canned answer.

use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use mangaassist_proto::v1::{self as pb, Intent, ModelTier, generate_response::Event};
use tracing::{Instrument, info_span};

use super::{End, Orchestrator, Outcome, replay};
use crate::{
    budget::{StageCtx, record_stage},
    degradation::{Ladder, Stage},
    mesh::GenerationStart,
    routing::Route,
    stack,
    stream::AnswerSink,
    texts,
};

/// How one attempt at the model ended.
enum Attempt {
    /// The stream ended normally.
    Complete,
    /// The quality gate asked for the smart tier.
    Escalate,
    /// The stream failed or stalled.
    Failed,
}

impl Orchestrator {
    pub(super) async fn generate(
        &self,
        ctx: &StageCtx,
        sink: &mut AnswerSink,
        mut req: pb::GenerateRequest,
        intent: Intent,
        mut route: Route,
        mut ladder: Ladder,
    ) -> Result<Outcome, End> {
        // From here the message waits on the model: background work may use the cores.
        let _on_model = self.background_budget.on_model();
        // The model's `done` event, kept as it came.
        let mut summary: Option<pb::GenerateSummary> = None;
        let mut escalated = false;
        let mut failed = false;
        let mut first_token_at = None;
        let lang = mangaassist_domain::Lang::parse(&req.locale).unwrap_or_default();
        sink.status(super::status_line(
            lang,
            mangaassist_protocol::Phase::Writing,
            intent,
            Some(intent),
        ))
        .await;
        loop {
            sink.waiting_first_token();
            let call_started = Instant::now();
            let first_left = ctx.clock.first_token_left();
            let start = stack::call(
                &self.stacks.generation,
                ctx,
                Stage::Generation,
                first_left,
                req.clone(),
            )
            .await;
            let start = match start {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "generation unavailable; canned answer");
                    failed = true;
                    break;
                }
            };
            let span = info_span!(
                "stage",
                stage = "streaming",
                tier = route.tier.label(),
                budget_ms = ctx.budgets.streaming_ms,
            );
            first_token_at = None;
            let attempt = self
                .relay(
                    ctx,
                    sink,
                    start,
                    call_started,
                    first_left,
                    route,
                    escalated,
                    &mut first_token_at,
                    &mut summary,
                )
                .instrument(span)
                .await;
            match attempt {
                Attempt::Complete => break,
                Attempt::Failed => {
                    failed = true;
                    break;
                }
                Attempt::Escalate => {
                    record_stage(
                        &ctx.timings,
                        &ctx.budgets,
                        &ctx.clock,
                        "generation",
                        call_started,
                        "escalated",
                    );
                    metrics::counter!("quality_escalations_total", "intent" => intent.label())
                        .increment(1);
                    escalated = true;
                    route = Route {
                        tier: ModelTier::Smart,
                        reason: "escalated",
                    };
                    req.tier = ModelTier::Smart as i32;
                }
            }
        }
        sink.flush().await;
        if let Some(t) = first_token_at {
            let outcome = if failed { "error" } else { "ok" };
            record_stage(
                &ctx.timings,
                &ctx.budgets,
                &ctx.clock,
                "streaming",
                t,
                outcome,
            );
        }
        if failed && sink.chunks > 0 {
            // Part of the answer is on screen: say so rather than pretend it is complete.
            return Err(End::Interrupted);
        }
        if failed || sink.chunks == 0 {
            ladder.record_failure(Stage::Generation);
            metrics::counter!("canned_responses_total", "intent" => intent.label()).increment(1);
            let canned = texts::canned_answer(lang, intent);
            replay(sink, canned).await;
            return Ok(Outcome {
                intent,
                model: "canned".into(),
                tokens: canned.split_whitespace().count() as u32,
                cache_hit: false,
                served_from: "live",
                stock_removed: vec![],
                level: ladder.level(),
                product_ids: vec![],
                route: None,
                personal: false,
                account: None,
                context_products: vec![],
            });
        }
        // A stream that ended without its summary never said what it used: treat the answer
        // as the customer's own rather than share it.
        let personal = summary.as_ref().is_none_or(|s| s.personal_context);
        let summary = summary.unwrap_or_default();
        Ok(Outcome {
            intent,
            model: summary.model,
            tokens: summary.output_tokens,
            cache_hit: false,
            served_from: "live",
            stock_removed: vec![],
            level: ladder.level(),
            product_ids: summary.product_ids,
            route: Some(route),
            personal,
            account: None,
            context_products: std::mem::take(&mut req.products)
                .into_iter()
                .filter_map(|h| h.product)
                .collect(),
        })
    }

    /// Relays one attempt's events to the sink until the stream ends, fails, stalls, or the
    /// quality gate asks for the smart tier.
    #[allow(
        clippy::too_many_arguments,
        reason = "one attempt's state, borrowed from the loop that retries it"
    )]
    async fn relay(
        &self,
        ctx: &StageCtx,
        sink: &mut AnswerSink,
        start: GenerationStart,
        call_started: Instant,
        first_left: Duration,
        route: Route,
        escalated: bool,
        first_token_at: &mut Option<Instant>,
        summary: &mut Option<pb::GenerateSummary>,
    ) -> Attempt {
        let idle = Duration::from_millis(self.settings.deadlines.idle_ms);
        let GenerationStart { first, mut rest } = start;
        // An event already taken off the stream (`Some(None)`: its end).
        let mut pending = first.map(|f| Some(Ok(f)));
        loop {
            let ev = match pending.take() {
                Some(ev) => Ok(ev),
                None => match rest.next().now_or_never() {
                    // Already waiting: no timer to arm.
                    Some(ev) => Ok(ev),
                    None => {
                        // The stream has nothing ready: a batch held back for a ready delta
                        // goes out now rather than after the wait.
                        sink.flush_full().await;
                        let mut wait = if first_token_at.is_none() {
                            first_left.saturating_sub(call_started.elapsed())
                        } else {
                            idle
                        };
                        if let Some(at) = sink.flush_due() {
                            wait = wait.min(at.saturating_duration_since(Instant::now()));
                        }
                        tokio::time::timeout(wait, rest.next()).await
                    }
                },
            };
            match ev {
                Ok(Some(Ok(ev))) => match ev.event {
                    Some(Event::Assessment(a))
                        if a.low_confidence
                            && route.tier == ModelTier::Fast
                            && !escalated
                            && self.router.quality_gate()
                            && sink.chunks == 0
                            && ctx.clock.first_token_left()
                                >= self.router.escalation_min_budget() =>
                    {
                        // Nothing is on screen yet: ask the smart tier instead (dropping the
                        // stream cancels this one).
                        tracing::info!(confidence = a.confidence, reason = %a.reason, "low-confidence fast answer escalated to the smart tier");
                        return Attempt::Escalate;
                    }
                    Some(Event::Assessment(_)) | None => {}
                    Some(Event::Delta(delta)) => {
                        if first_token_at.is_none() {
                            let now = Instant::now();
                            *first_token_at = Some(now);
                            self.router.observe_first_token(
                                route.tier,
                                now.duration_since(call_started).as_secs_f64() * 1e3,
                            );
                            record_stage(
                                &ctx.timings,
                                &ctx.budgets,
                                &ctx.clock,
                                "first_token",
                                call_started,
                                "ok",
                            );
                        }
                        // Peeking is free for a ready stream: if the next event is a
                        // delta already here, this one may share its frame.
                        match rest.next().now_or_never() {
                            Some(next) => {
                                sink.delta_more_ready(delta.text).await;
                                pending = Some(next);
                            }
                            None => sink.delta(delta.text).await,
                        }
                    }
                    Some(Event::Done(done)) => *summary = Some(done),
                },
                Ok(None) => return Attempt::Complete,
                Ok(Some(Err(status))) => {
                    tracing::warn!(error = %status, "generation stream failed");
                    return Attempt::Failed;
                }
                Err(_) => {
                    if sink.flush_due().is_some_and(|at| Instant::now() >= at) {
                        sink.flush().await;
                        continue;
                    }
                    tracing::warn!(chunks = sink.chunks, "generation deadline exceeded");
                    return Attempt::Failed;
                }
            }
        }
    }
}
