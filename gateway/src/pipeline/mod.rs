//! The per-message pipeline (docs/architecture.md), one file per phase:
//!
//! - [`phase1`]: status at once, then intent, history, profile, orders and the cache lookup
//!   in parallel under their stage deadlines, with retrieval started speculatively beside
//!   them; a cache hit short-circuits;
//! - [`retrieval`]: the speculative retrieval joined when the intent needs it, else stopped;
//! - [`generation`]: routing, context assembly and the streamed model answer (quality-gate
//!   escalation, canned fallback);
//! - [`finish`]: the terminal frame, metrics, SLO and the recording;
//! - [`after_answer`]: turn saving, cache write and follow-up prediction off the critical path.
//!
//! Every dependency call goes through its tower stack (`crate::stack`); a failed stage moves
//! the message down the ladder (`crate::degradation`). The answer's stream lifecycle belongs
//! to its [`AnswerSink`]: the pipeline only writes to it.

mod after_answer;
pub mod background;
mod finish;
mod generation;
mod phase1;
mod reference;
mod retrieval;
#[cfg(test)]
mod tests;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use mangaassist_config::{Config, GatewaySettings, StageBudgets};
use mangaassist_domain::{
    Asked, ContextSettings, Lang, Sources, assemble, keyword::classify_keywords, reply_language,
};
use mangaassist_embedding::QueryEmbedder;
use mangaassist_proto::v1::{self as pb, Intent};
use mangaassist_protocol::{ErrorCode, Phase};
use mangaassist_slo::{SloConfig, SloMonitor};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{Instrument, info_span};

use crate::{
    GatewayError,
    budget::{MessageClock, StageCtx, Timings, record_stage},
    degradation::{Ladder, Level},
    mesh::Mesh,
    recorder::Recorder,
    routing::{Route, Router},
    stack::{Breakers, Stacks},
    stream::{AnswerSink, StatusLine},
    texts,
};

/// One user message, as the socket handler hands it over.
#[derive(Debug, Clone)]
pub struct Query {
    pub message_id: String,
    pub session_id: String,
    pub user_id: String,
    pub store_id: String,
    /// The question answered: what the customer typed, or the standalone question a bare
    /// follow-up stands for (see `reference`).
    pub text: String,
    pub received: Instant,
    pub reference: Reference,
}

pub use reference::Reference;

/// How long a session's focus (the product its last answer was about) resolves follow-ups.
const FOCUS_TTL: Duration = Duration::from_secs(30 * 60);
/// Sessions whose focus one gateway keeps (about 150 bytes each).
const FOCUS_CAPACITY: usize = 200_000;

/// Everything the pipeline needs, shared by all connections.
pub struct Orchestrator {
    pub settings: GatewaySettings,
    pub mesh: Arc<dyn Mesh>,
    /// One tower stack per dependency call, built here once.
    stacks: Stacks,
    pub embedder: Option<QueryEmbedder>,
    /// Off-critical-path work (turn saving, cache writes) that shutdown waits for.
    pub background: TaskTracker,
    /// How much background work (follow-up prediction) live messages leave room for.
    pub background_budget: background::BackgroundBudget,
    pub breakers: Breakers,
    pub router: Router,
    pub budgets: Arc<StageBudgets>,
    pub slo: Arc<SloMonitor>,
    pub recorder: Option<Recorder>,
    /// The live stock, for checking cached answers before they are replayed; unset = the
    /// gateway has no inventory feed and replays them unchecked.
    pub stock: std::sync::OnceLock<mangaassist_inventory::StockView>,
    /// The product each recent session's last answer was about, for follow-ups.
    foci: reference::Foci,
    /// Products answers named since the last report to precompute (trending).
    pub demand: crate::demand::DemandTally,
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

/// The answer's outcome, for `done`, metrics and background work.
struct Outcome {
    intent: Intent,
    model: String,
    tokens: u32,
    cache_hit: bool,
    /// `live`, `cache` or `precomputed` (see `Done::served_from`).
    served_from: &'static str,
    /// Sold-out products left out of a cached answer.
    stock_removed: Vec<String>,
    level: Level,
    product_ids: Vec<String>,
    route: Option<Route>,
    /// Written from the customer's own context (generation says so): never shared.
    personal: bool,
    /// The customer's orders and profile as read for this answer (live answers only), for
    /// pre-answering their likely questions about them in this session.
    account: Option<Account>,
    /// The products the model was given (live answers), for the answer's cards without
    /// another catalog read.
    context_products: Vec<pb::Product>,
}

/// What the gateway read of the customer for one answer.
#[derive(Debug, Clone, Default)]
struct Account {
    orders: Vec<pb::Order>,
    profile: Option<pb::UserProfile>,
}

impl Orchestrator {
    /// `embedder` = `None` lets each daemon embed the message itself.
    pub fn new(
        config: &Config,
        mesh: Arc<dyn Mesh>,
        embedder: Option<QueryEmbedder>,
    ) -> Result<Self, GatewayError> {
        let g = &config.gateway;
        let slo = SloMonitor::new(SloConfig {
            target_ms: g.slo.target_ms as f64,
            error_budget: g.slo.error_budget,
            ..SloConfig::default()
        })?;
        let recorder = if g.record_path.as_os_str().is_empty() {
            None
        } else {
            Some(Recorder::open(&g.record_path)?)
        };
        let breakers = Breakers::new(&g.breakers);
        Ok(Self {
            settings: g.clone(),
            stacks: Stacks::new(&mesh, &breakers),
            mesh,
            embedder,
            background: TaskTracker::new(),
            background_budget: background::BackgroundBudget::new(
                g.background_live_threshold as usize,
                g.background_max_predictions as usize,
            ),
            breakers,
            router: Router::new(&g.routing, &config.intent),
            budgets: Arc::new(g.budgets.clone()),
            slo: Arc::new(slo),
            recorder,
            stock: std::sync::OnceLock::new(),
            foci: reference::Foci::new(FOCUS_CAPACITY, FOCUS_TTL),
            demand: crate::demand::DemandTally::default(),
        })
    }

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
        let this = self.clone();
        let _live = this.background_budget.live();
        self.handle_inner(q, sink, cancel).instrument(span).await;
    }

    async fn handle_inner(
        self: Arc<Self>,
        q: Query,
        mut sink: AnswerSink,
        cancel: CancellationToken,
    ) {
        if !self.settings.stores.contains(&q.store_id) {
            // Before any daemon call: a made-up store reaches no prompt, cache partition or
            // retrieval filter.
            metrics::counter!("unknown_store_total").increment(1);
            let lang = reply_language(&q.text, Lang::En);
            let said = texts::error_text(lang, ErrorCode::UnknownStore).unwrap_or_default();
            sink.fail(
                ErrorCode::UnknownStore,
                format!("{said} ({})", self.settings.stores.join(", ")),
            )
            .await;
            return;
        }
        let ctx = StageCtx {
            clock: MessageClock::new(q.received, &self.settings.deadlines),
            timings: Timings::default(),
            budgets: self.budgets.clone(),
        };
        let guess = classify_keywords(&q.text);
        let lang = self.lang(&q);
        sink.status(status_line(lang, Phase::Understanding, guess.0, None))
            .await;
        let q = self
            .resolve_reference(q, Duration::from_millis(self.settings.deadlines.cache_ms))
            .await;
        let embedding = self.embed(&q.text, &ctx).await;
        let total_left = ctx.clock.total_left();
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => Err(End::Cancelled),
            r = tokio::time::timeout(
                total_left,
                self.answer(&q, &ctx, &mut sink, guess, embedding.clone()),
            ) => r.unwrap_or(Err(End::TotalDeadline)),
        };
        // Before `done` goes out: the customer's next message may be a follow-up about it.
        if let Ok(o) = &result
            && let Some(first) = o.product_ids.first()
        {
            self.foci.set(&q, first);
        }
        if let Some((outcome, answer)) = self.finish(&q, &ctx, &mut sink, result).await {
            self.after_answer(q, answer, outcome, embedding);
        }
    }

    /// The language this message is answered in: the customer's, else the storefront's.
    pub(crate) fn lang(&self, q: &Query) -> Lang {
        reply_language(&q.text, self.store_lang(&q.store_id))
    }

    /// The storefront's own language (for what is said before a customer wrote anything).
    pub(crate) fn store_lang(&self, store: &str) -> Lang {
        self.settings
            .storefronts
            .get(store)
            .and_then(|s| Lang::parse(&s.locale))
            .unwrap_or_default()
    }

    /// The message's query vector, computed once here for every daemon that needs it.
    async fn embed(&self, text: &str, ctx: &StageCtx) -> Option<pb::Embedding> {
        let embedder = self.embedder.clone()?;
        let started = Instant::now();
        let span = info_span!(
            "stage",
            stage = "embed",
            budget_ms = ctx.budgets.orchestrator_ms
        );
        let r = embedder
            .embed_query_async(text)
            .instrument(span.clone())
            .await
            .map(|v| pb::Embedding {
                values: v.to_vec(),
                model: embedder.model_id().to_string(),
            });
        let _e = span.enter();
        let (out, outcome) = match r {
            Ok(e) => (Some(e), "ok"),
            Err(e) => {
                tracing::warn!(error = %e, "embedding failed; services will embed themselves");
                (None, "error")
            }
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

    /// Produces the answer through `sink`: phase 1, then retrieval, then generation.
    async fn answer(
        &self,
        q: &Query,
        ctx: &StageCtx,
        sink: &mut AnswerSink,
        guess: (Intent, f32),
        embedding: Option<pb::Embedding>,
    ) -> Result<Outcome, End> {
        let context_settings = ContextSettings::from(&self.settings);
        let mut ladder = Ladder::default();
        let phase1 = self.start_phase1(q, ctx, &context_settings, embedding.clone());
        // An unresolved follow-up ("is it in stock?" with nothing to say what "it" is) must
        // not be matched to anyone's cached answer about some product.
        let lookup = if q.reference == Reference::Unresolved {
            None
        } else {
            self.lookup_cache(q, ctx, embedding, &mut ladder).await
        };
        if let Some(hit) = lookup.and_then(|hit| self.check_stock(q, hit)) {
            // Dropping phase 1 aborts every call still running, once the session is known to
            // be this user's: no cached answer is shown in someone else's session.
            let phase1::Phase1 { retrieval, calls } = phase1;
            drop(retrieval);
            calls.check_owner().await?;
            return Ok(phase1::replay_cached(sink, hit).await);
        }
        let mut understood = self
            .understand(ctx, phase1.calls, guess, &mut ladder)
            .await?;
        if let Reference::Resolved { ask, .. } = &q.reference {
            // What a resolved follow-up asks is known: its intent is the one precompute
            // answered it with, whatever a classifier makes of the rewritten wording.
            let intent = reference::intent_of(*ask);
            understood.intent = intent;
            understood.classified.intent = intent as i32;
            understood.classified.needs_retrieval = true;
        }
        if understood.classified.needs_retrieval {
            let line = status_line(
                self.lang(q),
                Phase::Searching,
                understood.intent,
                Some(understood.intent),
            );
            sink.status(line).await;
        }
        let retrieved = self
            .join_retrieval(
                q,
                ctx,
                phase1.retrieval,
                understood.classified.needs_retrieval,
                &mut ladder,
            )
            .await;

        let assembly_started = Instant::now();
        let route = self.router.route(
            &understood.classified,
            understood.intent,
            understood.from_daemon,
        );
        let profile = understood.profile.and_then(|p| p.profile);
        // The orders go on to precompute only after an answer about them: no one's orders
        // travel the mesh for a question that did not need them.
        let account = Account {
            orders: if mangaassist_domain::context::wants_orders(understood.intent) {
                understood.orders.clone()
            } else {
                Vec::new()
            },
            profile: profile.clone(),
        };
        let sources = Sources {
            retrieved,
            history: understood.history.unwrap_or_default(),
            profile,
            orders: understood.orders,
        };
        let asked = Asked {
            query: &q.text,
            store_id: &q.store_id,
            session_id: &q.session_id,
            user_id: &q.user_id,
            locale: self.lang(q),
        };
        let mut gen_req = assemble(understood.intent, sources, &context_settings).into_request(
            asked,
            understood.intent,
            route.tier,
            ladder.level().label(),
        );
        gen_req.tone = self
            .settings
            .storefronts
            .get(&q.store_id)
            .map(|s| s.tone.clone())
            .unwrap_or_default();
        record_stage(
            &ctx.timings,
            &ctx.budgets,
            &ctx.clock,
            "context_assembly",
            assembly_started,
            "ok",
        );
        let mut outcome = self
            .generate(ctx, sink, gen_req, understood.intent, route, ladder)
            .await?;
        outcome.account = Some(account);
        Ok(outcome)
    }
}

/// The progress line of `phase` in `lang`; `known` is the decided intent (absent while only
/// the keyword guess stands).
fn status_line(lang: Lang, phase: Phase, intent: Intent, known: Option<Intent>) -> StatusLine {
    StatusLine {
        text: texts::status_text(lang, phase, intent),
        phase,
        intent: known.map(Intent::label),
        lang: lang.tag(),
    }
}

/// Sends a finished text (cached or canned answer) as chunks of a few words each.
async fn replay(sink: &mut AnswerSink, text: &str) {
    for piece in split_for_replay(text) {
        sink.delta(piece).await;
    }
    sink.flush().await;
}

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
