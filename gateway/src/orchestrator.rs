//! The per-message pipeline (docs/architecture.md): status at once; phase 1 in parallel under
//! per-stage deadlines (intent, history, profile, orders, cache lookup, plus speculative
//! retrieval); cache hit short-circuits; retrieval joined only when the intent needs it;
//! streamed generation relayed as chunks; turn saving, cache writes and follow-up prediction
//! off the critical path.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use mangaassist_client::MeshClients;
use mangaassist_config::GatewaySettings;
use mangaassist_embedding::QueryEmbedder;
use mangaassist_intent::keyword::classify_keywords;
use mangaassist_proto::v1::{self as pb, Intent};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info_span};

use crate::{
    degradation::{Ladder, Level, Stage},
    protocol::{Done, ErrorCode, ServerFrame},
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

/// Everything the pipeline needs, shared by all connections.
pub struct Orchestrator {
    pub settings: GatewaySettings,
    pub clients: MeshClients,
    pub embedder: Option<QueryEmbedder>,
    /// Off-critical-path work (turn saving, cache writes) that shutdown waits for.
    pub background: TaskTracker,
}

#[derive(Debug, thiserror::Error)]
enum StageError {
    #[error("deadline of {0} ms exceeded")]
    Deadline(u64),
    #[error("{0}")]
    Rpc(#[from] tonic::Status),
}

/// Runs `fut` under `deadline_ms`, in a span carrying the stage and its budget, and records
/// the stage latency.
async fn stage<T>(
    stage: Stage,
    deadline_ms: u64,
    fut: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, StageError> {
    let started = Instant::now();
    let span = info_span!(
        "stage",
        stage = stage.label(),
        budget_ms = deadline_ms,
        outcome = tracing::field::Empty
    );
    let result = async {
        match tokio::time::timeout(Duration::from_millis(deadline_ms), fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(status)) => Err(StageError::Rpc(status)),
            Err(_) => Err(StageError::Deadline(deadline_ms)),
        }
    }
    .instrument(span.clone())
    .await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(StageError::Deadline(_)) => "deadline",
        Err(StageError::Rpc(_)) => "error",
    };
    span.record("outcome", outcome);
    metrics::histogram!("stage_latency_ms", "stage" => stage.label())
        .record(started.elapsed().as_secs_f64() * 1e3);
    if let Err(e) = &result {
        tracing::warn!(stage = stage.label(), error = %e, "stage failed, degrading");
    }
    result
}

/// Starts one phase-1 call as its own task under its stage deadline; `call` receives the
/// deadline so it also travels as the RPC's `grpc-timeout`. Aborting the handle cancels the RPC.
fn spawn_stage<T, F>(
    stage_kind: Stage,
    deadline_ms: u64,
    call: impl FnOnce(Duration) -> F,
) -> tokio::task::JoinHandle<Result<T, StageError>>
where
    F: Future<Output = Result<T, tonic::Status>> + Send + 'static,
    T: Send + 'static,
{
    let fut = call(Duration::from_millis(deadline_ms));
    tokio::spawn(stage(stage_kind, deadline_ms, fut).in_current_span())
}

/// The value of a spawned stage, `None` when it failed, timed out or was aborted.
fn joined<T>(r: Result<Result<T, StageError>, tokio::task::JoinError>) -> Option<T> {
    match r {
        Ok(Ok(v)) => Some(v),
        _ => None,
    }
}

fn wants_orders(intent: Intent) -> bool {
    matches!(
        intent,
        Intent::OrderStatus | Intent::ReturnRefund | Intent::Complaint
    )
}

/// Context assembly for products: recommendations and comparisons want breadth (one
/// volume per series, best-ranked first), searches want the best matches as ranked.
fn assemble_products(intent: Intent, hits: Vec<pb::ProductHit>, k: usize) -> Vec<pb::ProductHit> {
    if !matches!(intent, Intent::Recommendation | Intent::Comparison) {
        return hits.into_iter().take(k).collect();
    }
    let mut seen = std::collections::HashSet::new();
    let (mut diverse, rest): (Vec<_>, Vec<_>) = hits.into_iter().partition(|h| {
        let series = h
            .product
            .as_ref()
            .map(|p| p.series.clone())
            .unwrap_or_default();
        seen.insert(series)
    });
    // Fewer distinct series than slots: fill with further volumes rather than send less.
    diverse.extend(rest);
    diverse.truncate(k);
    diverse
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

/// Sends frames of one answer and tracks chunk numbering and timing.
struct Relay<'a> {
    out: &'a mpsc::Sender<ServerFrame>,
    q: &'a Query,
    chunks: u32,
    first_chunk_at: Option<Instant>,
    text: String,
}

impl Relay<'_> {
    /// False when the client is gone; the caller stops work.
    async fn chunk(&mut self, text: String) -> bool {
        if self.first_chunk_at.is_none() {
            self.first_chunk_at = Some(Instant::now());
        }
        self.text.push_str(&text);
        let frame = ServerFrame::Chunk {
            message_id: self.q.message_id.clone(),
            index: self.chunks,
            text,
        };
        self.chunks += 1;
        self.out.send(frame).await.is_ok()
    }

    fn first_token_ms(&self) -> u64 {
        self.first_chunk_at
            .map(|t| t.duration_since(self.q.received).as_millis() as u64)
            .unwrap_or(0)
    }
}

/// The answer's outcome, for `done`, metrics and background work.
struct Outcome {
    intent: Intent,
    model: String,
    tokens: u32,
    cache_hit: bool,
    level: Level,
    product_ids: Vec<String>,
}

impl Orchestrator {
    /// Answers one query, sending frames to `out`. Returns when `done` (or an error) is sent
    /// or the client went away.
    pub async fn handle(self: Arc<Self>, q: Query, out: mpsc::Sender<ServerFrame>) {
        let span = info_span!(
            "message",
            message_id = %q.message_id,
            session_id = %q.session_id,
            store_id = %q.store_id,
            intent = tracing::field::Empty,
            degradation = tracing::field::Empty,
        );
        self.handle_inner(q, out).instrument(span).await;
    }

    async fn handle_inner(self: Arc<Self>, q: Query, out: mpsc::Sender<ServerFrame>) {
        let trace_id = mangaassist_telemetry::current_trace_id();
        let (guess, guess_conf) = classify_keywords(&q.text);
        let status = ServerFrame::Status {
            message_id: q.message_id.clone(),
            session_id: q.session_id.clone(),
            text: texts::status_text(guess).to_string(),
        };
        if out.send(status).await.is_err() {
            return;
        }
        let mut relay = Relay {
            out: &out,
            q: &q,
            chunks: 0,
            first_chunk_at: None,
            text: String::new(),
        };
        let embedding = self.embed(&q.text).await;
        let Some(outcome) = self
            .answer(&q, &mut relay, (guess, guess_conf), embedding.clone())
            .await
        else {
            metrics::counter!("stream_cancellations_total").increment(1);
            return;
        };
        let total_ms = q.received.elapsed().as_millis() as u64;
        let intent_label = outcome.intent.label();
        tracing::Span::current().record("intent", intent_label);
        tracing::Span::current().record("degradation", outcome.level.label());
        metrics::histogram!("first_token_latency_ms", "model" => outcome.model.clone(), "intent" => intent_label)
            .record(relay.first_token_ms() as f64);
        metrics::histogram!("e2e_latency_ms", "intent" => intent_label).record(total_ms as f64);
        metrics::counter!("messages_total", "intent" => intent_label, "degradation" => outcome.level.label()).increment(1);
        if outcome.level != Level::Full {
            metrics::counter!("degraded_invocations_total", "level" => outcome.level.label())
                .increment(1);
        }
        let done = ServerFrame::Done(Box::new(Done {
            message_id: q.message_id.clone(),
            session_id: q.session_id.clone(),
            first_token_ms: relay.first_token_ms(),
            total_ms,
            tokens: outcome.tokens,
            chunks: relay.chunks,
            intent: intent_label.to_string(),
            model: outcome.model.clone(),
            cache_hit: outcome.cache_hit,
            degradation: outcome.level.label().to_string(),
            trace_id,
            product_ids: outcome.product_ids.clone(),
        }));
        let answer_text = std::mem::take(&mut relay.text);
        let _ = out.send(done).await;
        self.after_answer(q, answer_text, outcome, embedding);
    }

    async fn embed(&self, text: &str) -> Option<pb::Embedding> {
        let embedder = self.embedder.clone()?;
        let text = text.to_string();
        let started = Instant::now();
        let r = tokio::task::spawn_blocking(move || {
            embedder.embed_query(&text).map(|v| pb::Embedding {
                values: v.to_vec(),
                model: embedder.model_id().to_string(),
            })
        })
        .instrument(info_span!("stage", stage = "embed"))
        .await;
        metrics::histogram!("stage_latency_ms", "stage" => "embed")
            .record(started.elapsed().as_secs_f64() * 1e3);
        match r {
            Ok(Ok(e)) => Some(e),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "embedding failed; services will embed themselves");
                None
            }
            Err(_) => None,
        }
    }

    /// Produces the answer. `None` when the client went away.
    async fn answer(
        &self,
        q: &Query,
        relay: &mut Relay<'_>,
        guess: (Intent, f32),
        embedding: Option<pb::Embedding>,
    ) -> Option<Outcome> {
        let s = &self.settings;
        let d = &s.deadlines;
        let mut ladder = Ladder::default();
        let elapsed_ms = || q.received.elapsed().as_millis() as u64;

        // Speculative retrieval: starts with phase 1, aborted if the intent does not need it.
        let retrieval = {
            let (c, req) = (
                self.clients.retrieval.clone(),
                pb::RetrieveRequest {
                    query: q.text.clone(),
                    store_id: q.store_id.clone(),
                    embedding: embedding.clone(),
                    // Over-fetch: context assembly diversifies by series for some intents.
                    top_k: s.retrieval_candidates.max(s.top_k_products),
                    filters: None,
                    top_k_documents: s.top_k_documents,
                },
            );
            spawn_stage(Stage::Retrieval, d.retrieval_ms, move |dl| async move {
                c.retrieve(req, dl).await
            })
        };
        let intent = {
            let (c, req) = (
                self.clients.intent.clone(),
                pb::ClassifyRequest {
                    text: q.text.clone(),
                    store_id: q.store_id.clone(),
                    session_id: q.session_id.clone(),
                    embedding: embedding.clone(),
                    remaining_budget_ms: d.total_ms.saturating_sub(elapsed_ms()) as u32,
                },
            );
            spawn_stage(Stage::Intent, d.intent_ms, move |dl| async move {
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
            spawn_stage(Stage::History, d.memory_ms, move |dl| async move {
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
            spawn_stage(Stage::Profile, d.memory_ms, move |dl| async move {
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
            spawn_stage(Stage::Orders, d.memory_ms, move |dl| async move {
                c.get_orders(req, dl).await
            })
        };
        let phase1 = [
            retrieval.abort_handle(),
            intent.abort_handle(),
            history.abort_handle(),
            profile.abort_handle(),
            orders.abort_handle(),
        ];
        let abort_all = || phase1.iter().for_each(tokio::task::AbortHandle::abort);

        // The cache answers first (tightest deadline); a hit needs nothing else.
        let cached = stage(
            Stage::Cache,
            d.cache_ms,
            self.clients.cache.lookup(
                pb::LookupRequest {
                    text: q.text.clone(),
                    store_id: q.store_id.clone(),
                    user_id: q.user_id.clone(),
                    session_id: q.session_id.clone(),
                    embedding: embedding.clone(),
                    semantic_threshold: 0.0,
                },
                Duration::from_millis(d.cache_ms),
            ),
        )
        .await;
        match cached {
            Ok(pb::LookupResponse {
                hit: true,
                answer: Some(answer),
                kind,
                ..
            }) => {
                abort_all();
                metrics::counter!("cache_hits_total", "kind" => if kind == pb::HitKind::Semantic as i32 { "semantic" } else { "exact" }).increment(1);
                for piece in split_for_replay(&answer.text) {
                    if !relay.chunk(piece).await {
                        return None;
                    }
                }
                return Some(Outcome {
                    intent: Intent::try_from(answer.intent).unwrap_or(Intent::Unspecified),
                    model: answer.model,
                    tokens: answer.text.split_whitespace().count() as u32,
                    cache_hit: true,
                    level: Level::Full,
                    product_ids: answer.product_ids,
                });
            }
            Ok(_) => metrics::counter!("cache_misses_total").increment(1),
            Err(_) => ladder.record_failure(Stage::Cache),
        }

        let classified = match joined(intent.await) {
            Some(c) => c,
            None => {
                ladder.record_failure(Stage::Intent);
                pb::ClassifyResponse {
                    intent: guess.0 as i32,
                    confidence: guess.1,
                    scores: vec![],
                    complexity: 0.5,
                    tier: pb::ModelTier::Fast as i32,
                    needs_retrieval: mangaassist_intent::needs_retrieval(guess.0),
                    classifier: "keyword-fallback".into(),
                }
            }
        };
        let intent_kind = Intent::try_from(classified.intent).unwrap_or(Intent::Unspecified);
        let history = joined(history.await).map(|h| h.turns);
        if history.is_none() {
            ladder.record_failure(Stage::History);
        }
        let profile = joined(profile.await);
        if profile.is_none() {
            ladder.record_failure(Stage::Profile);
        }
        let orders = if wants_orders(intent_kind) {
            let o = joined(orders.await).map(|o| o.orders);
            if o.is_none() {
                ladder.record_failure(Stage::Orders);
            }
            o.unwrap_or_default()
        } else {
            orders.abort();
            vec![]
        };
        let (products, documents) = if classified.needs_retrieval {
            match joined(retrieval.await) {
                Some(r) => (
                    assemble_products(intent_kind, r.products, s.top_k_products as usize),
                    r.documents,
                ),
                None => {
                    ladder.record_failure(Stage::Retrieval);
                    (vec![], vec![])
                }
            }
        } else {
            retrieval.abort();
            metrics::counter!("speculative_retrieval_cancelled_total").increment(1);
            (vec![], vec![])
        };

        let gen_req = pb::GenerateRequest {
            query: q.text.clone(),
            intent: intent_kind as i32,
            tier: classified.tier,
            store_id: q.store_id.clone(),
            session_id: q.session_id.clone(),
            user_id: q.user_id.clone(),
            products,
            documents,
            history: history.unwrap_or_default(),
            profile: profile.and_then(|p| p.profile),
            orders,
            max_tokens: 0,
            prompt_version: String::new(),
            degradation: ladder.level().label().to_string(),
        };
        self.generate(q, relay, gen_req, intent_kind, ladder).await
    }

    async fn generate(
        &self,
        q: &Query,
        relay: &mut Relay<'_>,
        req: pb::GenerateRequest,
        intent: Intent,
        mut ladder: Ladder,
    ) -> Option<Outcome> {
        let d = &self.settings.deadlines;
        let elapsed = q.received.elapsed();
        let total_left = Duration::from_millis(d.total_ms).saturating_sub(elapsed);
        let first_left = Duration::from_millis(d.first_token_ms).saturating_sub(elapsed);
        let started = Instant::now();
        let span = info_span!("stage", stage = "generation", budget_ms = d.first_token_ms);
        let stream = tokio::time::timeout(
            first_left,
            self.clients.generation.generate(req, total_left),
        )
        .instrument(span.clone())
        .await;
        let mut model = String::new();
        let mut tokens = 0;
        let mut product_ids = Vec::new();
        let mut failed = false;
        match stream {
            Ok(Ok(mut stream)) => loop {
                let wait = if relay.chunks == 0 {
                    first_left.saturating_sub(started.elapsed())
                } else {
                    Duration::from_millis(d.idle_ms)
                };
                match tokio::time::timeout(wait, stream.next()).await {
                    Ok(Some(Ok(ev))) => match ev.event {
                        Some(pb::generate_response::Event::Delta(delta)) => {
                            let delivered = relay.chunk(delta.text).await;
                            if !delivered {
                                return None;
                            }
                        }
                        Some(pb::generate_response::Event::Done(summary)) => {
                            model = summary.model;
                            tokens = summary.output_tokens;
                            product_ids = summary.product_ids;
                        }
                        None => {}
                    },
                    Ok(None) => break,
                    Ok(Some(Err(status))) => {
                        tracing::warn!(error = %status, "generation stream failed");
                        failed = true;
                        break;
                    }
                    Err(_) => {
                        tracing::warn!(chunks = relay.chunks, "generation deadline exceeded");
                        failed = true;
                        break;
                    }
                }
            },
            Ok(Err(status)) => {
                tracing::warn!(error = %status, "generation unavailable");
                failed = true;
            }
            Err(_) => {
                tracing::warn!("generation first-token deadline exceeded");
                failed = true;
            }
        }
        metrics::histogram!("stage_latency_ms", "stage" => "generation")
            .record(started.elapsed().as_secs_f64() * 1e3);
        if failed && relay.chunks > 0 {
            // Part of the answer is on screen: say so rather than pretend it is complete.
            let _ = relay
                .out
                .send(ServerFrame::error(
                    Some(q.message_id.clone()),
                    ErrorCode::StreamInterrupted,
                    "the answer was interrupted; please ask again",
                ))
                .await;
            return None;
        }
        if failed || relay.chunks == 0 {
            ladder.record_failure(Stage::Generation);
            metrics::counter!("canned_responses_total", "intent" => intent.label()).increment(1);
            let canned = texts::canned_answer(intent);
            for piece in split_for_replay(canned) {
                if !relay.chunk(piece).await {
                    return None;
                }
            }
            return Some(Outcome {
                intent,
                model: "canned".into(),
                tokens: canned.split_whitespace().count() as u32,
                cache_hit: false,
                level: ladder.level(),
                product_ids: vec![],
            });
        }
        Some(Outcome {
            intent,
            model,
            tokens,
            cache_hit: false,
            level: ladder.level(),
            product_ids,
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

    fn hit(series: &str, vol: u32) -> pb::ProductHit {
        pb::ProductHit {
            product: Some(pb::Product {
                series: series.into(),
                volume: vol,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn recommendations_get_one_volume_per_series_first() {
        let hits = vec![
            hit("A", 1),
            hit("A", 2),
            hit("B", 1),
            hit("A", 3),
            hit("C", 1),
        ];
        let got: Vec<(String, u32)> = assemble_products(Intent::Recommendation, hits.clone(), 4)
            .into_iter()
            .map(|h| h.product.map(|p| (p.series, p.volume)).unwrap())
            .collect();
        let want = [("A", 1), ("B", 1), ("C", 1), ("A", 2)];
        assert_eq!(got, want.map(|(s, v)| (s.to_string(), v)).to_vec());
        let search = assemble_products(Intent::ProductSearch, hits, 2);
        assert_eq!(search[1].product.as_ref().unwrap().volume, 2);
    }

    #[test]
    fn replay_split_keeps_every_character() {
        let t = "one two three four five six seven eight nine";
        let parts = split_for_replay(t);
        assert_eq!(parts.concat(), t);
        assert_eq!(parts.len(), 3);
        assert!(split_for_replay("").is_empty());
    }
}
