//! The end of an answer: its terminal frame (`done`, or an error saying why it stopped), the
//! latency metrics, the SLO sample, the over-SLO waterfall log and the recording.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mangaassist_proto::v1 as pb;

use super::{End, Orchestrator, Outcome, Query};
use crate::{
    budget::{StageCtx, StageTiming},
    degradation::Level,
    protocol::{Done, ErrorCode},
    recorder::Record,
    stream::AnswerSink,
};

impl Orchestrator {
    /// Ends the answer on `sink`. Returns the outcome and the answer's text when it completed.
    pub(super) async fn finish(
        &self,
        q: &Query,
        ctx: &StageCtx,
        sink: &mut AnswerSink,
        result: Result<Outcome, End>,
    ) -> Option<(Outcome, String)> {
        let trace_id = mangaassist_telemetry::current_trace_id();
        // Fractional milliseconds: a first token now often comes in under one, and whole
        // milliseconds would record it as 0 in the histograms, the SLO and the recorder.
        let first_token = sink
            .first_chunk_at
            .map(|t| t.duration_since(q.received).as_secs_f64() * 1000.0);
        let total = q.received.elapsed().as_secs_f64() * 1000.0;
        let total_ms = total as u64;
        let stages = ctx.timings.snapshot();
        let outcome = match result {
            Ok(o) => o,
            Err(end) => {
                let code = match end {
                    End::Cancelled => ErrorCode::Cancelled,
                    End::Forbidden => ErrorCode::Forbidden,
                    End::Interrupted | End::TotalDeadline => ErrorCode::StreamInterrupted,
                };
                let text = crate::texts::error_text(self.lang(q), code).unwrap_or_default();
                sink.fail(code, text).await;
                if end != End::Cancelled && end != End::Forbidden {
                    self.slo.record(Instant::now(), None);
                }
                self.record(q, None, first_token, total, &stages, Some(code));
                return None;
            }
        };
        let intent_label = outcome.intent.label();
        tracing::Span::current().record("intent", intent_label);
        tracing::Span::current().record("degradation", outcome.level.label());
        let ft_exact = first_token.unwrap_or(total);
        let ft = ft_exact as u64;
        metrics::histogram!("first_token_latency_ms", "model" => outcome.model.clone(), "intent" => intent_label)
            .record(ft_exact);
        metrics::histogram!("e2e_latency_ms", "intent" => intent_label).record(total);
        let front = self.settings.storefront(&q.store_id);
        metrics::counter!(
            "messages_total",
            "intent" => intent_label,
            "degradation" => outcome.level.label(),
            "store" => q.store_id.clone(),
            "cost_center" => front.cost_center.clone()
        )
        .increment(1);
        metrics::counter!(
            "answer_tokens_total",
            "store" => q.store_id.clone(),
            "cost_center" => front.cost_center,
            "model" => outcome.model.clone()
        )
        .increment(u64::from(outcome.tokens));
        if outcome.level != Level::Full {
            metrics::counter!("degraded_invocations_total", "level" => outcome.level.label())
                .increment(1);
        }
        self.slo.record(Instant::now(), Some(ft_exact));
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
            served_from: outcome.served_from.to_string(),
            stock_removed: outcome.stock_removed.clone(),
            degradation: outcome.level.label().to_string(),
            trace_id,
            product_ids: outcome.product_ids.clone(),
            tier,
            route,
            stages: stages.clone(),
        };
        let cards = self.cards(q, &outcome).await;
        sink.products(&q.store_id, self.lang(q).tag(), cards);
        sink.done(done).await;
        self.record(q, Some(&outcome), Some(ft_exact), total, &stages, None);
        Some((outcome, std::mem::take(&mut sink.text)))
    }

    /// The cards of the products the answer names, in its order: from the model's context
    /// when it had them, else one catalog read (cached answers), bounded by the cache stage's
    /// deadline; a catalog that does not answer in time costs the cards, not the answer.
    async fn cards(&self, q: &Query, outcome: &Outcome) -> Vec<crate::protocol::ProductCard> {
        if outcome.product_ids.is_empty() {
            return vec![];
        }
        let mut known: Vec<&pb::Product> = Vec::with_capacity(outcome.product_ids.len());
        let mut missing = Vec::new();
        for id in &outcome.product_ids {
            match outcome.context_products.iter().find(|p| &p.id == id) {
                Some(p) => known.push(p),
                None => missing.push(id.clone()),
            }
        }
        let fetched = if missing.is_empty() {
            vec![]
        } else {
            let req = pb::GetProductsRequest {
                store_id: q.store_id.clone(),
                ids: missing,
            };
            let deadline = Duration::from_millis(self.settings.deadlines.cache_ms.max(50));
            match self.mesh.get_products(req, deadline).await {
                Ok(r) => r.products,
                Err(e) => {
                    metrics::counter!("product_cards_unavailable_total").increment(1);
                    tracing::debug!(error = %e, "catalog did not answer; answer sent without cards");
                    vec![]
                }
            }
        };
        let lang = self.lang(q);
        let view = self.stock.get();
        outcome
            .product_ids
            .iter()
            .filter_map(|id| {
                known
                    .iter()
                    .copied()
                    .chain(fetched.iter())
                    // Another store's product never becomes this store's card.
                    .find(|p| &p.id == id && p.store_id == q.store_id)
            })
            .map(|p| crate::cards::card(p, lang, view))
            .collect()
    }

    fn record(
        &self,
        q: &Query,
        outcome: Option<&Outcome>,
        first_token_ms: Option<f64>,
        total_ms: f64,
        stages: &[StageTiming],
        error: Option<ErrorCode>,
    ) {
        let Some(rec) = &self.recorder else { return };
        rec.write(Record {
            ts_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            message_id: q.message_id.clone(),
            store_id: q.store_id.clone(),
            intent: outcome.map(|o| o.intent.label().to_string()),
            ttft_ms: first_token_ms,
            e2e_ms: Some(total_ms),
            tokens: outcome.map(|o| o.tokens),
            model: outcome.map(|o| o.model.clone()),
            cache_hit: outcome.is_some_and(|o| o.cache_hit),
            degradation: outcome.map(|o| o.level.label().to_string()),
            error: error.map(|c| c.as_str().to_string()),
            stages: stages.to_vec(),
        });
    }
}
