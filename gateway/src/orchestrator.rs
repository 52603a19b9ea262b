//! The per-message pipeline (docs/architecture.md): status at once; phase 1 in parallel under
//! per-stage deadlines (intent, history, profile, orders, cache lookup, plus speculative
//! retrieval); cache hit short-circuits; retrieval joined only when the intent needs it;
//! routing (matrix, adaptive, quality gate); streamed generation relayed as batched chunks
//! through the resume buffer; turn saving, cache writes and follow-up prediction off the
//! critical path. Every dependency call runs under its breaker and its share of the budget
//! (budget.rs); a failed stage moves the message down the ladder (degradation.rs).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use mangaassist_client::MeshClients;
use mangaassist_config::{GatewaySettings, StageBudgets};
use mangaassist_domain::{
    Asked, ContextSettings, Sources, assemble,
    keyword::{self, classify_keywords},
    needs_retrieval, wants_orders,
};
use mangaassist_embedding::QueryEmbedder;
use mangaassist_proto::v1::{self as pb, Intent, ModelTier};
use mangaassist_resilience::{BreakerConfig, BreakerSnapshot, CircuitBreaker};
use mangaassist_slo::SloMonitor;
use tokio_util::{
    sync::CancellationToken,
    task::{AbortOnDropHandle, TaskTracker},
};
use tracing::{Instrument, info_span};

use crate::{
    budget::{MessageClock, StageCtx, StageError, Timings, record_stage, run_stage},
    degradation::{Ladder, Level, Stage},
    protocol::{Done, ErrorCode},
    recorder::{Record, Recorder},
    routing::{Route, Router},
    stream::{AnswerSink, StreamState},
    texts,
};

/// One user message, as the socket handler hands it over.
#[derive(Debug, Clone)]
pub struct Query {
    pub message_id: String,
    pub session_id: String,
    pub user_id: String,
    pub store_id: String,
    pub text: String,
    pub received: Instant,
}

/// One circuit breaker per dependency the critical path calls.
pub struct Breakers {
    pub intent: Arc<CircuitBreaker>,
    pub retrieval: Arc<CircuitBreaker>,
    pub memory: Arc<CircuitBreaker>,
    pub cache: Arc<CircuitBreaker>,
    pub generation: Arc<CircuitBreaker>,
}

impl Breakers {
    pub fn new(settings: &mangaassist_config::BreakerSettings) -> Self {
        let cfg = BreakerConfig {
            failure_threshold: settings.failure_threshold,
            open_for: Duration::from_millis(settings.open_ms),
            half_open_probes: settings.half_open_probes,
        };
        let b = |name: &str| Arc::new(CircuitBreaker::new(name, cfg.clone()));
        Self {
            intent: b("intent"),
            retrieval: b("retrieval"),
            memory: b("memory"),
            cache: b("cache"),
            generation: b("generation"),
        }
    }

    pub fn for_stage(&self, stage: Stage) -> &Arc<CircuitBreaker> {
        match stage {
            Stage::Intent => &self.intent,
            Stage::Retrieval => &self.retrieval,
            Stage::History | Stage::Profile | Stage::Orders => &self.memory,
            Stage::Cache => &self.cache,
            Stage::Generation => &self.generation,
        }
    }

    pub fn snapshot(&self) -> Vec<BreakerSnapshot> {
        [
            &self.intent,
            &self.retrieval,
            &self.memory,
            &self.cache,
            &self.generation,
        ]
        .iter()
        .map(|b| b.snapshot())
        .collect()
    }
}

/// Everything the pipeline needs, shared by all connections.
pub struct Orchestrator {
    pub settings: GatewaySettings,
    pub clients: MeshClients,
    pub embedder: Option<QueryEmbedder>,
    /// Off-critical-path work (turn saving, cache writes) that shutdown waits for.
    pub background: TaskTracker,
    pub breakers: Breakers,
    pub router: Router,
    pub budgets: Arc<StageBudgets>,
    pub slo: Arc<SloMonitor>,
    pub recorder: Option<Recorder>,
}

/// Why an answer ended without `done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The model stream broke after part of the answer was sent.
    Interrupted,
    /// The whole-message deadline passed.
    TotalDeadline,
    /// The client sent `cancel`.
    Cancelled,
    /// The session belongs to another user.
    Forbidden,
}

/// Starts one phase-1 call as its own task under its stage deadline; `call` receives the
/// deadline so it also travels as the RPC's `grpc-timeout`. Aborting or dropping the handle
/// cancels the RPC (and counts as neither success nor failure for the breaker), so dropping
/// the answer future (cancel, total deadline) stops phase 1 too.
fn spawn_stage<T, F>(
    ctx: &StageCtx,
    breakers: &Breakers,
    stage: Stage,
    stage_ms: u64,
    call: impl FnOnce(Duration) -> F,
) -> AbortOnDropHandle<Result<T, StageError>>
where
    F: std::future::Future<Output = Result<T, tonic::Status>> + Send + 'static,
    T: Send + 'static,
{
    let deadline = ctx.clock.stage_deadline(stage_ms);
    let fut = call(deadline);
    let ctx = ctx.clone();
    let breaker = breakers.for_stage(stage).clone();
    #[allow(
        clippy::disallowed_methods,
        reason = "the handle aborts the task when dropped: it never outlives the answer that awaits it, and answers belong to the gateway's tracker"
    )]
    let task = tokio::spawn(
        async move { run_stage(&ctx, stage, deadline, &breaker, fut).await }.in_current_span(),
    );
    AbortOnDropHandle::new(task)
}

/// The result of a spawned stage; an aborted or panicked task is a failed stage.
fn joined<T>(
    r: Result<Result<T, StageError>, tokio::task::JoinError>,
) -> Result<T, Option<StageError>> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}

fn is_permission_denied<T>(r: &Result<T, Option<StageError>>) -> bool {
    matches!(r, Err(Some(StageError::Rpc(s))) if s.code() == tonic::Code::PermissionDenied)
}

/// Splits a finished answer into chunk-sized pieces (a few words each) for replay.
fn split_for_replay(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut words = 0;
    for piece in text.split_inclusive(' ') {
        cur.push_str(piece);
        words += 1;
        if words == 4 {
            out.push(std::mem::take(&mut cur));
            words = 0;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The answer's outcome, for `done`, metrics and background work.
struct Outcome {
    intent: Intent,
    model: String,
    tokens: u32,
    cache_hit: bool,
    level: Level,
    product_ids: Vec<String>,
    route: Option<Route>,
}

impl Orchestrator {
    /// Answers one query through `sink`. Returns when the terminal frame (done or error) is
    /// written; the answer continues into the resume buffer if the client drops, and stops
    /// when `cancel` fires or the message's total deadline passes.
    pub async fn handle(self: Arc<Self>, q: Query, sink: AnswerSink, cancel: CancellationToken) {
        let span = info_span!(
            "message",
            message_id = %q.message_id,
            session_id = %q.session_id,
            store_id = %q.store_id,
            intent = tracing::field::Empty,
            degradation = tracing::field::Empty,
        );
        self.handle_inner(q, sink, cancel).instrument(span).await;
    }

    async fn handle_inner(
        self: Arc<Self>,
        q: Query,
        mut sink: AnswerSink,
        cancel: CancellationToken,
    ) {
        let trace_id = mangaassist_telemetry::current_trace_id();
        let ctx = StageCtx {
            clock: MessageClock::new(q.received, &self.settings.deadlines),
            timings: Timings::default(),
            budgets: self.budgets.clone(),
        };
        let (guess, guess_conf) = classify_keywords(&q.text);
        sink.status(texts::status_text(guess).to_string()).await;
        let embedding = self.embed(&q.text, &ctx).await;
        let total_left = ctx.clock.total_left();
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => Err(End::Cancelled),
            r = tokio::time::timeout(
                total_left,
                self.answer(&q, &ctx, &mut sink, (guess, guess_conf), embedding.clone()),
            ) => r.unwrap_or(Err(End::TotalDeadline)),
        };
        let first_token_ms = sink
            .first_chunk_at
            .map(|t| t.duration_since(q.received).as_millis() as u64);
        let total_ms = q.received.elapsed().as_millis() as u64;
        let stages = ctx.timings.snapshot();
        let outcome = match result {
            Ok(o) => o,
            Err(end) => {
                let (code, text, state) = match end {
                    End::Cancelled => (
                        ErrorCode::Cancelled,
                        "the answer was cancelled",
                        StreamState::Cancelled,
                    ),
                    End::Forbidden => (
                        ErrorCode::Forbidden,
                        "this session belongs to another user",
                        StreamState::Error,
                    ),
                    End::Interrupted | End::TotalDeadline => (
                        ErrorCode::StreamInterrupted,
                        "the answer was interrupted; please ask again",
                        StreamState::Error,
                    ),
                };
                sink.fail(code, text).await;
                sink.lifecycle.go(state);
                if end != End::Cancelled && end != End::Forbidden {
                    self.slo.record(std::time::Instant::now(), None);
                }
                self.record(&q, None, first_token_ms, total_ms, &stages, Some(code));
                return;
            }
        };
        let intent_label = outcome.intent.label();
        tracing::Span::current().record("intent", intent_label);
        tracing::Span::current().record("degradation", outcome.level.label());
        let ft = first_token_ms.unwrap_or(total_ms);
        metrics::histogram!("first_token_latency_ms", "model" => outcome.model.clone(), "intent" => intent_label)
            .record(ft as f64);
        metrics::histogram!("e2e_latency_ms", "intent" => intent_label).record(total_ms as f64);
        metrics::counter!("messages_total", "intent" => intent_label, "degradation" => outcome.level.label()).increment(1);
        if outcome.level != Level::Full {
            metrics::counter!("degraded_invocations_total", "level" => outcome.level.label())
                .increment(1);
        }
        self.slo.record(std::time::Instant::now(), Some(ft as f64));
        if ft > self.settings.slo.target_ms {
            // One structured record with the whole waterfall (seed 003: every request over
            // the SLO must be explainable from its trace).
            tracing::warn!(
                target: "waterfall",
                message_id = %q.message_id,
                trace_id = %trace_id,
                intent = intent_label,
                degradation = outcome.level.label(),
                first_token_ms = ft,
                total_ms,
                slo_ms = self.settings.slo.target_ms,
                stages = %serde_json::to_string(&stages).unwrap_or_default(),
                "first token over the SLO"
            );
        }
        let (tier, route) = outcome
            .route
            .map(|r| (r.tier.label().to_string(), r.reason.to_string()))
            .unwrap_or_default();
        let done = Done {
            message_id: q.message_id.clone(),
            session_id: q.session_id.clone(),
            first_token_ms: ft,
            total_ms,
            tokens: outcome.tokens,
            chunks: sink.chunks,
            intent: intent_label.to_string(),
            model: outcome.model.clone(),
            cache_hit: outcome.cache_hit,
            degradation: outcome.level.label().to_string(),
            trace_id,
            product_ids: outcome.product_ids.clone(),
            tier,
            route,
            stages: stages.clone(),
        };
        sink.done(done).await;
        sink.lifecycle.go(StreamState::Completed);
        self.record(&q, Some(&outcome), Some(ft), total_ms, &stages, None);
        let answer_text = std::mem::take(&mut sink.text);
        self.after_answer(q, answer_text, outcome, embedding);
    }

    fn record(
        &self,
        q: &Query,
        outcome: Option<&Outcome>,
        first_token_ms: Option<u64>,
        total_ms: u64,
        stages: &[crate::budget::StageTiming],
        error: Option<ErrorCode>,
    ) {
        let Some(rec) = &self.recorder else { return };
        rec.write(Record {
            ts_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            message_id: q.message_id.clone(),
            store_id: q.store_id.clone(),
            intent: outcome.map(|o| o.intent.label().to_string()),
            ttft_ms: first_token_ms.map(|v| v as f64),
            e2e_ms: Some(total_ms as f64),
            tokens: outcome.map(|o| o.tokens),
            model: outcome.map(|o| o.model.clone()),
            cache_hit: outcome.is_some_and(|o| o.cache_hit),
            degradation: outcome.map(|o| o.level.label().to_string()),
            error: error.map(|c| {
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            }),
            stages: stages.to_vec(),
        });
    }

    async fn embed(&self, text: &str, ctx: &StageCtx) -> Option<pb::Embedding> {
        let embedder = self.embedder.clone()?;
        let text = text.to_string();
        let started = Instant::now();
        let span = info_span!(
            "stage",
            stage = "embed",
            budget_ms = ctx.budgets.orchestrator_ms
        );
        let r = tokio::task::spawn_blocking(move || {
            embedder.embed_query(&text).map(|v| pb::Embedding {
                values: v.to_vec(),
                model: embedder.model_id().to_string(),
            })
        })
        .instrument(span.clone())
        .await;
        let _e = span.enter();
        let (out, outcome) = match r {
            Ok(Ok(e)) => (Some(e), "ok"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "embedding failed; services will embed themselves");
                (None, "error")
            }
            Err(_) => (None, "error"),
        };
        record_stage(
            &ctx.timings,
            &ctx.budgets,
            &ctx.clock,
            "embed",
            started,
            outcome,
        );
        out
    }

    /// Produces the answer through `sink`.
    async fn answer(
        &self,
        q: &Query,
        ctx: &StageCtx,
        sink: &mut AnswerSink,
        guess: (Intent, f32),
        embedding: Option<pb::Embedding>,
    ) -> Result<Outcome, End> {
        let s = &self.settings;
        let d = &s.deadlines;
        let br = &self.breakers;
        let mut ladder = Ladder::default();

        // Speculative retrieval: starts with phase 1, aborted if the intent does not need it.
        let spec_started = Instant::now();
        let context_settings = ContextSettings::from(s);
        let retrieval = {
            let (c, req) = (
                self.clients.retrieval.clone(),
                context_settings.retrieval_request(&q.text, &q.store_id, embedding.clone()),
            );
            spawn_stage(
                ctx,
                br,
                Stage::Retrieval,
                d.retrieval_ms,
                move |dl| async move { c.retrieve(req, dl).await },
            )
        };
        let intent = {
            let (c, req) = (
                self.clients.intent.clone(),
                pb::ClassifyRequest {
                    text: q.text.clone(),
                    store_id: q.store_id.clone(),
                    session_id: q.session_id.clone(),
                    embedding: embedding.clone(),
                    // The routing matrix weighs the first-token SLO left, not the hard cap.
                    remaining_budget_ms: self
                        .budgets
                        .end_to_end_ms
                        .saturating_sub(ctx.clock.elapsed().as_millis() as u64)
                        as u32,
                },
            );
            spawn_stage(ctx, br, Stage::Intent, d.intent_ms, move |dl| async move {
                c.classify(req, dl).await
            })
        };
        let history = {
            let (c, req) = (
                self.clients.memory.clone(),
                pb::GetHistoryRequest {
                    session_id: q.session_id.clone(),
                    user_id: q.user_id.clone(),
                    limit: s.history_turns,
                },
            );
            spawn_stage(ctx, br, Stage::History, d.memory_ms, move |dl| async move {
                c.get_history(req, dl).await
            })
        };
        let profile = {
            let (c, req) = (
                self.clients.memory.clone(),
                pb::GetProfileRequest {
                    user_id: q.user_id.clone(),
                },
            );
            spawn_stage(ctx, br, Stage::Profile, d.memory_ms, move |dl| async move {
                c.get_profile(req, dl).await
            })
        };
        let orders = {
            let (c, req) = (
                self.clients.memory.clone(),
                pb::GetOrdersRequest {
                    user_id: q.user_id.clone(),
                    store_id: q.store_id.clone(),
                    limit: 5,
                },
            );
            spawn_stage(ctx, br, Stage::Orders, d.memory_ms, move |dl| async move {
                c.get_orders(req, dl).await
            })
        };
        // Each phase-1 handle aborts its task when dropped: on a cache hit, an early return
        // or when the answer future itself is dropped (cancel, total deadline).

        // The cache answers first (tightest deadline); a hit needs nothing else.
        let cache_deadline = ctx.clock.stage_deadline(d.cache_ms);
        let cached = run_stage(ctx, Stage::Cache, cache_deadline, &br.cache, {
            let c = self.clients.cache.clone();
            let req = pb::LookupRequest {
                text: q.text.clone(),
                store_id: q.store_id.clone(),
                user_id: q.user_id.clone(),
                session_id: q.session_id.clone(),
                embedding: embedding.clone(),
                semantic_threshold: 0.0,
            };
            async move { c.lookup(req, cache_deadline).await }
        })
        .await;
        match cached {
            Ok(pb::LookupResponse {
                hit: true,
                answer: Some(answer),
                kind,
                ..
            }) if !answer.text.trim().is_empty() => {
                drop((retrieval, intent, history, profile, orders));
                metrics::counter!("cache_hits_total", "kind" => if kind == pb::HitKind::Semantic as i32 { "semantic" } else { "exact" }).increment(1);
                for piece in split_for_replay(&answer.text) {
                    sink.delta(piece).await;
                }
                sink.flush().await;
                return Ok(Outcome {
                    intent: Intent::try_from(answer.intent).unwrap_or(Intent::Unspecified),
                    model: answer.model,
                    tokens: answer.text.split_whitespace().count() as u32,
                    cache_hit: true,
                    level: Level::Full,
                    product_ids: answer.product_ids,
                    route: None,
                });
            }
            Ok(_) => metrics::counter!("cache_misses_total").increment(1),
            Err(_) => ladder.record_failure(Stage::Cache),
        }

        let (classified, from_daemon) = match joined(intent.await) {
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
        let intent_kind = Intent::try_from(classified.intent).unwrap_or(Intent::Unspecified);
        let history = joined(history.await);
        if is_permission_denied(&history) {
            return Err(End::Forbidden);
        }
        let history = history.ok().map(|h| h.turns);
        if history.is_none() {
            ladder.record_failure(Stage::History);
        }
        let profile = joined(profile.await).ok();
        if profile.is_none() {
            ladder.record_failure(Stage::Profile);
        }
        let orders = if wants_orders(intent_kind) {
            let o = joined(orders.await).ok().map(|o| o.orders);
            if o.is_none() {
                ladder.record_failure(Stage::Orders);
            }
            o.unwrap_or_default()
        } else {
            orders.abort();
            vec![]
        };
        let retrieved = if classified.needs_retrieval {
            match joined(retrieval.await) {
                Ok(r) => Some(r),
                Err(_) => {
                    ladder.record_failure(Stage::Retrieval);
                    None
                }
            }
        } else {
            // The speculation was not needed: stop it and count what it cost.
            let finished = retrieval.is_finished();
            retrieval.abort();
            let wasted_ms = spec_started.elapsed().as_secs_f64() * 1e3;
            metrics::counter!("speculative_retrieval_cancelled_total").increment(1);
            metrics::histogram!("speculative_retrieval_wasted_ms").record(wasted_ms);
            if !finished {
                ctx.timings.push(crate::budget::StageTiming {
                    stage: "retrieval".into(),
                    start_ms: spec_started
                        .saturating_duration_since(q.received)
                        .as_secs_f64()
                        * 1e3,
                    duration_ms: wasted_ms,
                    budget_ms: self.budgets.for_stage("retrieval"),
                    outcome: "cancelled".into(),
                });
            }
            None
        };

        let assembly_started = Instant::now();
        let route = self.router.route(&classified, intent_kind, from_daemon);
        let sources = Sources {
            retrieved,
            history: history.unwrap_or_default(),
            profile: profile.and_then(|p| p.profile),
            orders,
        };
        let asked = Asked {
            query: &q.text,
            store_id: &q.store_id,
            session_id: &q.session_id,
            user_id: &q.user_id,
        };
        let gen_req = assemble(intent_kind, sources, &context_settings).into_request(
            asked,
            intent_kind,
            route.tier,
            ladder.level().label(),
        );
        record_stage(
            &ctx.timings,
            &ctx.budgets,
            &ctx.clock,
            "context_assembly",
            assembly_started,
            "ok",
        );
        self.generate(ctx, sink, gen_req, intent_kind, route, ladder)
            .await
    }

    /// Streams the model's answer; escalates a low-confidence fast answer to the smart tier
    /// while the first-token budget allows; falls back to a canned answer when the model is
    /// unavailable before anything was sent.
    async fn generate(
        &self,
        ctx: &StageCtx,
        sink: &mut AnswerSink,
        mut req: pb::GenerateRequest,
        intent: Intent,
        mut route: Route,
        mut ladder: Ladder,
    ) -> Result<Outcome, End> {
        let d = &self.settings.deadlines;
        let mut model = String::new();
        let mut tokens = 0;
        let mut product_ids = Vec::new();
        let mut failed = false;
        let mut escalated = false;
        let mut first_token_at: Option<Instant> = None;
        'attempt: loop {
            let Ok(permit) = self.breakers.generation.try_acquire() else {
                tracing::warn!("generation circuit open; canned answer");
                failed = true;
                break;
            };
            sink.lifecycle.go(StreamState::WaitingFirstToken);
            let call_started = Instant::now();
            let first_left = ctx.clock.first_token_left();
            let span = info_span!(
                "stage",
                stage = "generation",
                tier = route.tier.label(),
                budget_ms = ctx.budgets.first_token_ms,
                deadline_ms = first_left.as_millis() as u64
            );
            let stream = tokio::time::timeout(
                first_left,
                self.clients
                    .generation
                    .generate(req.clone(), ctx.clock.total_left()),
            )
            .instrument(span.clone())
            .await;
            // Stage records made here become events of the generation span.
            let record = |stage: &str, started: Instant, outcome: &str| {
                span.in_scope(|| {
                    record_stage(
                        &ctx.timings,
                        &ctx.budgets,
                        &ctx.clock,
                        stage,
                        started,
                        outcome,
                    );
                });
            };
            let mut stream = match stream {
                Ok(Ok(s)) => s,
                Ok(Err(status)) => {
                    tracing::warn!(error = %status, "generation unavailable");
                    permit.failure();
                    record("generation", call_started, "error");
                    failed = true;
                    break;
                }
                Err(_) => {
                    tracing::warn!("generation first-token deadline exceeded");
                    permit.failure();
                    record("generation", call_started, "deadline");
                    failed = true;
                    break;
                }
            };
            let mut permit = Some(permit);
            first_token_at = None;
            loop {
                let mut wait = if first_token_at.is_none() {
                    first_left.saturating_sub(call_started.elapsed())
                } else {
                    Duration::from_millis(d.idle_ms)
                };
                let flush_at = sink.flush_due();
                if let Some(at) = flush_at {
                    wait = wait.min(at.saturating_duration_since(Instant::now()));
                }
                let ev = tokio::time::timeout(wait, stream.next())
                    .instrument(span.clone())
                    .await;
                match ev {
                    Ok(Some(Ok(ev))) => match ev.event {
                        Some(pb::generate_response::Event::Assessment(a))
                            if a.low_confidence
                                && route.tier == ModelTier::Fast
                                && !escalated
                                && self.router.quality_gate()
                                && sink.chunks == 0
                                && ctx.clock.first_token_left()
                                    >= self.router.escalation_min_budget() =>
                        {
                            // Nothing is on screen yet: ask the smart tier instead.
                            drop(stream);
                            if let Some(p) = permit.take() {
                                p.success();
                            }
                            record("generation", call_started, "escalated");
                            metrics::counter!("quality_escalations_total", "intent" => intent.label()).increment(1);
                            tracing::info!(confidence = a.confidence, reason = %a.reason, "low-confidence fast answer escalated to the smart tier");
                            escalated = true;
                            route = Route {
                                tier: ModelTier::Smart,
                                reason: "escalated",
                            };
                            req.tier = ModelTier::Smart as i32;
                            continue 'attempt;
                        }
                        Some(pb::generate_response::Event::Assessment(_)) => {}
                        Some(pb::generate_response::Event::Delta(delta)) => {
                            if first_token_at.is_none() {
                                let now = Instant::now();
                                first_token_at = Some(now);
                                if let Some(p) = permit.take() {
                                    p.success();
                                }
                                self.router.observe_first_token(
                                    route.tier,
                                    now.duration_since(call_started).as_secs_f64() * 1e3,
                                );
                                record("first_token", call_started, "ok");
                            }
                            sink.delta(delta.text).await;
                        }
                        Some(pb::generate_response::Event::Done(summary)) => {
                            model = summary.model;
                            tokens = summary.output_tokens;
                            product_ids = summary.product_ids;
                        }
                        None => {}
                    },
                    Ok(None) => break 'attempt,
                    Ok(Some(Err(status))) => {
                        tracing::warn!(error = %status, "generation stream failed");
                        if let Some(p) = permit.take() {
                            p.failure();
                        }
                        failed = true;
                        break 'attempt;
                    }
                    Err(_) => {
                        if flush_at.is_some_and(|at| Instant::now() >= at) {
                            sink.flush().await;
                            continue;
                        }
                        tracing::warn!(chunks = sink.chunks, "generation deadline exceeded");
                        if let Some(p) = permit.take() {
                            p.failure();
                        }
                        failed = true;
                        break 'attempt;
                    }
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
            let canned = texts::canned_answer(intent);
            for piece in split_for_replay(canned) {
                sink.delta(piece).await;
            }
            sink.flush().await;
            return Ok(Outcome {
                intent,
                model: "canned".into(),
                tokens: canned.split_whitespace().count() as u32,
                cache_hit: false,
                level: ladder.level(),
                product_ids: vec![],
                route: None,
            });
        }
        Ok(Outcome {
            intent,
            model,
            tokens,
            cache_hit: false,
            level: ladder.level(),
            product_ids,
            route: Some(route),
        })
    }

    /// Turn saving, cache write and follow-up prediction, tracked so shutdown waits for them.
    fn after_answer(
        &self,
        q: Query,
        answer: String,
        outcome: Outcome,
        embedding: Option<pb::Embedding>,
    ) {
        let clients = self.clients.clone();
        let settings = &self.settings;
        let cacheable = !outcome.cache_hit
            && outcome.level == Level::Full
            && !answer.is_empty()
            && settings
                .cacheable_intents
                .iter()
                .any(|i| i == outcome.intent.label());
        let personal = settings
            .personalised_intents
            .iter()
            .any(|i| i == outcome.intent.label());
        let predict =
            settings.predict_follow_ups && outcome.level == Level::Full && !outcome.cache_hit;
        let span = tracing::Span::current();
        self.background.spawn(
            async move {
                let dl = Duration::from_secs(2);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                for (role, text, ts) in [
                    ("user", q.text.clone(), now),
                    ("assistant", answer.clone(), now + 1),
                ] {
                    let r = clients
                        .memory
                        .append_turn(
                            pb::AppendTurnRequest {
                                session_id: q.session_id.clone(),
                                user_id: q.user_id.clone(),
                                turn: Some(pb::Turn {
                                    role: role.into(),
                                    text,
                                    ts_ms: ts,
                                    intent: outcome.intent as i32,
                                    message_id: q.message_id.clone(),
                                }),
                            },
                            dl,
                        )
                        .await;
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "could not save turn");
                        break;
                    }
                }
                if cacheable {
                    let r = clients
                        .cache
                        .put(
                            pb::PutRequest {
                                text: q.text.clone(),
                                store_id: q.store_id.clone(),
                                user_id: if personal {
                                    q.user_id.clone()
                                } else {
                                    String::new()
                                },
                                session_id: String::new(),
                                scope: if personal {
                                    pb::CacheScope::User as i32
                                } else {
                                    pb::CacheScope::Store as i32
                                },
                                // The message's vector: the cache need not embed it again.
                                embedding,
                                answer: Some(pb::CachedAnswer {
                                    text: answer.clone(),
                                    intent: outcome.intent as i32,
                                    model: outcome.model.clone(),
                                    product_ids: outcome.product_ids.clone(),
                                    created_ms: now,
                                    expires_ms: 0,
                                    source: "live".into(),
                                    query: q.text.clone(),
                                }),
                                ttl_seconds: 0,
                            },
                            dl,
                        )
                        .await;
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "could not write cache");
                    }
                }
                if predict {
                    let r = clients
                        .precompute
                        .predict_follow_ups(
                            pb::PredictFollowUpsRequest {
                                session_id: q.session_id.clone(),
                                user_id: q.user_id.clone(),
                                store_id: q.store_id.clone(),
                                query: q.text.clone(),
                                intent: outcome.intent as i32,
                                answer,
                                product_ids: outcome.product_ids,
                            },
                            dl,
                        )
                        .await;
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "follow-up prediction unavailable");
                    }
                }
            }
            .instrument(span),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_split_keeps_every_character() {
        let t = "one two three four five six seven eight nine";
        let parts = split_for_replay(t);
        assert_eq!(parts.concat(), t);
        assert_eq!(parts.len(), 3);
        assert!(split_for_replay("").is_empty());
    }
}
