//! Work that follows a completed answer, off the critical path and tracked so shutdown waits
//! for it: the turn pair is saved, a cacheable answer is written to the cache, and follow-ups
//! are predicted.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mangaassist_proto::v1 as pb;
use tracing::Instrument;

use super::{Orchestrator, Outcome, Query};
use crate::{degradation::Level, mesh::Mesh};

/// How long each background write (turns, cache, prediction) may take.
const BACKGROUND_DEADLINE: Duration = Duration::from_secs(2);

/// How long a turn keeps being retried while memory is unreachable (restarting, or stopping
/// after the gateway in a shutdown). The gateway's shutdown grace bounds it too.
const SAVE_TURN_WITHIN: Duration = Duration::from_secs(10);

/// Saves a question and its answer in one write (both or neither), retrying while memory is
/// `unavailable`: that code means the request was not served, so a retry cannot store the
/// turn twice. Other errors are final.
async fn save_turn(mesh: &dyn Mesh, req: pb::AppendTurnsRequest) -> Result<(), tonic::Status> {
    let until = Instant::now() + SAVE_TURN_WITHIN;
    let mut pause = Duration::from_millis(50);
    loop {
        match mesh.append_turns(req.clone(), BACKGROUND_DEADLINE).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == tonic::Code::Unavailable && Instant::now() + pause < until => {
                metrics::counter!("turn_save_retries_total").increment(1);
                // Backoff between attempts, not a wait for readiness.
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

impl Orchestrator {
    pub(super) fn after_answer(
        &self,
        q: Query,
        answer: String,
        outcome: Outcome,
        embedding: Option<pb::Embedding>,
    ) {
        let mesh = self.mesh.clone();
        let settings = &self.settings;
        // Every answer that named products shows what customers ask about, served from the
        // cache or not.
        if settings.demand_report_seconds > 0 {
            self.demand.record(&q.store_id, &outcome.product_ids);
        }
        let intent = outcome.intent.label();
        let cacheable = !outcome.cache_hit
            && outcome.level == Level::Full
            && !answer.is_empty()
            && settings.cacheable_intents.iter().any(|i| i == intent)
            && q.reference != super::Reference::Unresolved;
        // An answer written from the customer's own context stays theirs; so does every
        // answer of an intent configured as personal.
        let personal =
            outcome.personal || settings.personalised_intents.iter().any(|i| i == intent);
        // After a cached answer too: the customer's next question is as predictable, and
        // precompute skips what is already cached.
        let wants_prediction = settings.predict_follow_ups && outcome.level == Level::Full;
        // Taken now, while this message still counts as live (it is the one `own` message).
        let prediction_slot = if wants_prediction {
            match self.background_budget.try_prediction(1) {
                Ok(permit) => Some(permit),
                Err(shed) => {
                    metrics::counter!("background_shed_total", "work" => "prediction", "reason" => shed.label())
                        .increment(1);
                    None
                }
            }
        } else {
            None
        };
        let dl = BACKGROUND_DEADLINE;
        let task = async move {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            // The stock the answer states was read after the message arrived.
            let facts_ms = now - i64::try_from(q.received.elapsed().as_millis()).unwrap_or(0);
            let turn = |role: &str, text: String, ts_ms: i64| pb::Turn {
                role: role.into(),
                text,
                ts_ms,
                intent: outcome.intent as i32,
                message_id: q.message_id.clone(),
            };
            let turns = pb::AppendTurnsRequest {
                session_id: q.session_id.clone(),
                user_id: q.user_id.clone(),
                turns: vec![
                    turn("user", q.reference.typed(&q.text).to_string(), now),
                    turn("assistant", answer.clone(), now + 1),
                ],
            };
            if let Err(e) = save_turn(mesh.as_ref(), turns).await {
                metrics::counter!("turn_save_failures_total").increment(1);
                tracing::warn!(error = %e, "could not save turn");
            }
            if cacheable {
                let (user_id, scope) = if personal {
                    (q.user_id.clone(), pb::CacheScope::User)
                } else {
                    (String::new(), pb::CacheScope::Store)
                };
                let put = pb::PutRequest {
                    text: q.text.clone(),
                    store_id: q.store_id.clone(),
                    user_id,
                    session_id: String::new(),
                    scope: scope as i32,
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
                    facts_ms,
                };
                if let Err(e) = mesh.put(put, dl).await {
                    tracing::warn!(error = %e, "could not write cache");
                }
            }
            if let Some(_slot) = prediction_slot {
                let req = pb::PredictFollowUpsRequest {
                    session_id: q.session_id.clone(),
                    user_id: q.user_id.clone(),
                    store_id: q.store_id.clone(),
                    // As typed, like the turn memory keeps: precompute's history is then
                    // the one a live answer to the next message sees.
                    query: q.reference.typed(&q.text).to_string(),
                    intent: outcome.intent as i32,
                    answer,
                    product_ids: outcome.product_ids,
                    orders: outcome
                        .account
                        .as_ref()
                        .map(|a| a.orders.clone())
                        .unwrap_or_default(),
                    profile: outcome.account.and_then(|a| a.profile),
                };
                if let Err(e) = mesh.predict_follow_ups(req, dl).await {
                    tracing::debug!(error = %e, "follow-up prediction unavailable");
                }
            }
        };
        self.background
            .spawn(task.instrument(tracing::Span::current()));
    }
}
