//! Phase 1: every call that needs only the message, started together, each as its own task
//! under its stage deadline (so it also travels as the RPC's `grpc-timeout`), with retrieval
//! started speculatively beside them. The cache answers first (tightest deadline): a hit
//! needs nothing else. Then the rest is joined into what the message is understood to be.

use std::time::{Duration, Instant};

use mangaassist_domain::{ContextSettings, keyword, needs_retrieval, wants_orders};
use mangaassist_proto::v1::{self as pb, Intent};
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::{End, Orchestrator, Outcome, Query, replay};
use crate::{
    budget::{StageCtx, StageError},
    degradation::{Ladder, Level, Stage},
    stack::{self, StageService},
    stream::AnswerSink,
};

/// A phase-1 call running as its own task. Dropping the handle aborts the task, which
/// cancels the RPC (neither success nor failure for the breaker): on a cache hit, an early
/// return, or when the answer itself is dropped (cancel, total deadline).
pub(super) type Running<T> = AbortOnDropHandle<Result<T, StageError>>;

/// The speculative retrieval and when it started (to count what an unneeded one cost).
pub(super) struct Speculation {
    pub handle: Running<pb::RetrieveResponse>,
    pub started: Instant,
}

pub(super) struct Calls {
    intent: Running<pb::ClassifyResponse>,
    history: Running<pb::GetHistoryResponse>,
    profile: Running<pb::GetProfileResponse>,
    orders: Running<pb::GetOrdersResponse>,
}

pub(super) struct Phase1 {
    pub retrieval: Speculation,
    pub calls: Calls,
}

/// What phase 1 learnt about the message, failures already on the ladder.
pub(super) struct Understood {
    pub classified: pb::ClassifyResponse,
    /// False when the keyword fallback stood in for the intent daemon.
    pub from_daemon: bool,
    pub intent: Intent,
    pub history: Option<Vec<pb::Turn>>,
    pub profile: Option<pb::GetProfileResponse>,
    pub orders: Vec<pb::Order>,
}

impl Calls {
    /// Refuses a session that belongs to another user (memory's `PERMISSION_DENIED`); the
    /// other calls are dropped, so aborted. A memory daemon that cannot say lets the answer
    /// through: cached answers of a session are keyed by its user as well.
    pub async fn check_owner(self) -> Result<(), End> {
        match joined(self.history).await {
            Err(Some(e)) if is_forbidden(&e) => Err(End::Forbidden),
            _ => Ok(()),
        }
    }
}

fn is_forbidden(e: &StageError) -> bool {
    matches!(e, StageError::Rpc(s) if s.code() == tonic::Code::PermissionDenied)
}

/// Starts `req` through `svc` as its own task.
fn spawn<R, T>(
    svc: &StageService<R, T>,
    ctx: &StageCtx,
    stage: Stage,
    stage_ms: u64,
    req: R,
) -> Running<T>
where
    R: Send + 'static,
    T: Send + 'static,
{
    let deadline = ctx.clock.stage_deadline(stage_ms);
    let (svc, ctx) = (svc.clone(), ctx.clone());
    #[allow(
        clippy::disallowed_methods,
        reason = "the handle aborts the task when dropped: it never outlives the answer that awaits it, and answers belong to the gateway's tracker"
    )]
    let task = tokio::spawn(
        async move { stack::call(&svc, &ctx, stage, deadline, req).await }.in_current_span(),
    );
    AbortOnDropHandle::new(task)
}

/// The result of a phase-1 task; an aborted or panicked task is a failed stage.
async fn joined<T>(handle: Running<T>) -> Result<T, Option<StageError>> {
    match handle.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}

impl Orchestrator {
    pub(super) fn start_phase1(
        &self,
        q: &Query,
        ctx: &StageCtx,
        context: &ContextSettings,
        embedding: Option<pb::Embedding>,
    ) -> Phase1 {
        let d = &self.settings.deadlines;
        let s = &self.stacks;
        let retrieval = Speculation {
            started: Instant::now(),
            handle: spawn(
                &s.retrieval,
                ctx,
                Stage::Retrieval,
                d.retrieval_ms,
                context.retrieval_request(&q.text, &q.store_id, embedding.clone()),
            ),
        };
        let intent = pb::ClassifyRequest {
            text: q.text.clone(),
            store_id: q.store_id.clone(),
            session_id: q.session_id.clone(),
            embedding,
            // The routing matrix weighs the first-token SLO left, not the hard cap.
            remaining_budget_ms: self
                .budgets
                .end_to_end_ms
                .saturating_sub(ctx.clock.elapsed().as_millis() as u64)
                as u32,
        };
        let history = pb::GetHistoryRequest {
            session_id: q.session_id.clone(),
            user_id: q.user_id.clone(),
            limit: self.settings.history_turns,
        };
        let profile = pb::GetProfileRequest {
            user_id: q.user_id.clone(),
        };
        let orders = pb::GetOrdersRequest {
            user_id: q.user_id.clone(),
            store_id: q.store_id.clone(),
            limit: 5,
        };
        Phase1 {
            retrieval,
            calls: Calls {
                intent: spawn(&s.intent, ctx, Stage::Intent, d.intent_ms, intent),
                history: spawn(&s.history, ctx, Stage::History, d.memory_ms, history),
                profile: spawn(&s.profile, ctx, Stage::Profile, d.memory_ms, profile),
                orders: spawn(&s.orders, ctx, Stage::Orders, d.memory_ms, orders),
            },
        }
    }

    /// The cached answer for this message, if the cache has one and answers in time.
    /// A cache hit checked against the live stock (seed 000, scenario 4): `None` sends the
    /// message to live generation. Pre-computed recommendations are not served while the
    /// store is in flash-sale mode; lines naming a product sold out since the answer was
    /// written are dropped, and when fewer than two named products remain the hit is refused.
    pub(super) fn check_stock(
        &self,
        q: &Query,
        (mut answer, kind): (pb::CachedAnswer, pb::HitKind),
    ) -> Option<CheckedHit> {
        let Some(view) = self.stock.get() else {
            return Some(CheckedHit {
                answer,
                kind,
                removed: vec![],
            });
        };
        let refuse = |reason: &'static str| {
            metrics::counter!("cache_hits_refused_total", "reason" => reason).increment(1);
            tracing::debug!(reason, source = %answer.source, "cached answer refused, answering live");
        };
        let precomputed = answer.source.starts_with("precompute");
        if precomputed
            && answer.intent == Intent::Recommendation as i32
            && view.flash_sale(&q.store_id)
        {
            refuse("flash_sale");
            return None;
        }
        match mangaassist_inventory::validate(&answer.text, &q.store_id, &answer.product_ids, view)
        {
            Ok(v) => {
                if !v.removed.is_empty() {
                    metrics::counter!("cache_hits_trimmed_total").increment(1);
                }
                answer.text = v.text;
                answer.product_ids = v.product_ids;
                Some(CheckedHit {
                    answer,
                    kind,
                    removed: v.removed,
                })
            }
            Err(e) => {
                refuse(e.reason());
                None
            }
        }
    }

    pub(super) async fn lookup_cache(
        &self,
        q: &Query,
        ctx: &StageCtx,
        embedding: Option<pb::Embedding>,
        ladder: &mut Ladder,
    ) -> Option<(pb::CachedAnswer, pb::HitKind)> {
        let req = pb::LookupRequest {
            text: q.text.clone(),
            store_id: q.store_id.clone(),
            user_id: q.user_id.clone(),
            session_id: q.session_id.clone(),
            embedding,
            semantic_threshold: 0.0,
        };
        let deadline = ctx.clock.stage_deadline(self.settings.deadlines.cache_ms);
        match stack::call(&self.stacks.cache, ctx, Stage::Cache, deadline, req).await {
            Ok(pb::LookupResponse {
                hit: true,
                answer: Some(answer),
                kind,
                ..
            }) if !answer.text.trim().is_empty() => Some((
                answer,
                pb::HitKind::try_from(kind).unwrap_or(pb::HitKind::Exact),
            )),
            Ok(_) => {
                metrics::counter!("cache_misses_total").increment(1);
                None
            }
            Err(_) => {
                ladder.record_failure(Stage::Cache);
                None
            }
        }
    }

    /// Joins intent and memory; the keyword guess stands in for a failed intent daemon.
    pub(super) async fn understand(
        &self,
        ctx: &StageCtx,
        calls: Calls,
        guess: (Intent, f32),
        ladder: &mut Ladder,
    ) -> Result<Understood, End> {
        let Calls {
            intent,
            history,
            profile,
            orders,
        } = calls;
        let (classified, from_daemon) = match joined(intent).await {
            Ok(c) => (c, true),
            Err(_) => {
                ladder.record_failure(Stage::Intent);
                let complexity = 0.5;
                let budget_left = Duration::from_millis(self.budgets.end_to_end_ms)
                    .saturating_sub(ctx.clock.elapsed());
                (
                    pb::ClassifyResponse {
                        intent: guess.0 as i32,
                        confidence: guess.1,
                        scores: vec![],
                        complexity,
                        tier: self.router.matrix(complexity, budget_left) as i32,
                        needs_retrieval: needs_retrieval(guess.0),
                        classifier: keyword::CLASSIFIER_NAME.into(),
                    },
                    false,
                )
            }
        };
        let intent = Intent::try_from(classified.intent).unwrap_or(Intent::Unspecified);
        let history = match joined(history).await {
            Err(Some(e)) if is_forbidden(&e) => return Err(End::Forbidden),
            r => r.ok().map(|h| h.turns),
        };
        if history.is_none() {
            ladder.record_failure(Stage::History);
        }
        let profile = joined(profile).await.ok();
        if profile.is_none() {
            ladder.record_failure(Stage::Profile);
        }
        let orders = if wants_orders(intent) {
            let o = joined(orders).await.ok().map(|o| o.orders);
            if o.is_none() {
                ladder.record_failure(Stage::Orders);
            }
            o.unwrap_or_default()
        } else {
            drop(orders);
            vec![]
        };
        Ok(Understood {
            classified,
            from_daemon,
            intent,
            history,
            profile,
            orders,
        })
    }
}

/// Streams a cached answer as it was stored.
/// A cache hit that passed [`Orchestrator::check_stock`].
pub(super) struct CheckedHit {
    pub answer: pb::CachedAnswer,
    pub kind: pb::HitKind,
    /// Sold-out products whose lines were dropped.
    pub removed: Vec<String>,
}

pub(super) async fn replay_cached(
    sink: &mut AnswerSink,
    CheckedHit {
        answer,
        kind,
        removed,
    }: CheckedHit,
) -> Outcome {
    let kind = if kind == pb::HitKind::Semantic {
        "semantic"
    } else {
        "exact"
    };
    metrics::counter!("cache_hits_total", "kind" => kind).increment(1);
    replay(sink, &answer.text).await;
    Outcome {
        intent: Intent::try_from(answer.intent).unwrap_or(Intent::Unspecified),
        model: answer.model,
        tokens: answer.text.split_whitespace().count() as u32,
        cache_hit: true,
        served_from: if answer.source.starts_with("precompute") {
            "precomputed"
        } else {
            "cache"
        },
        stock_removed: removed,
        level: Level::Full,
        product_ids: answer.product_ids,
        route: None,
        // Already cached: the cache's partitions decided who may see it.
        personal: false,
        account: None,
        context_products: vec![],
    }
}
