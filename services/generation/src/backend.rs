//! The seam between the daemon and a model: the simulated model, the OpenAI-compatible
//! backend and Bedrock ConverseStream each turn their provider's stream into [`ModelEvent`]s.

use std::collections::VecDeque;

use futures::{future::BoxFuture, stream::BoxStream};
use mangaassist_proto::v1 as pb;
use tokio::time::Instant;

use crate::{GenerationError, RenderedPrompt};

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::MaxTokens => "max_tokens",
        }
    }
}

/// What the model reports once it has finished.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDone {
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Catalog products the answer mentions.
    pub product_ids: Vec<String>,
    pub confidence: f32,
    pub stop_reason: StopReason,
    /// The model that actually answered, when it is not [`ModelBackend::model_name`] of the
    /// requested tier (a backend that fell back to another model); `None` = that one.
    pub model: Option<String>,
    /// The answer was written from the customer's own context (profile, history, orders), so
    /// it is theirs alone: the gateway never shares it with other customers.
    pub personal_context: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    /// The model's confidence in the answer it is writing, sent once, before its first token
    /// (a real model knows only once it has started; the simulated one sends it at its
    /// first-token time). The daemon turns it into the stream's `Assessment`; a backend that
    /// never sends one is reported as confident.
    Assessment { confidence: f32, reason: String },
    /// One output token (text to append).
    Token(String),
    /// Last event of a successful stream.
    Done(ModelDone),
}

/// The answer a remote provider streams, as far as it has come: the provider reports no
/// confidence and does not know the catalog, so the assessment, the products named and the
/// fallback token counts are worked out here, the same way for every remote backend.
#[derive(Debug)]
pub(crate) struct StreamedAnswer {
    text: String,
    /// Text deltas handed out; after the first, a backend retries nothing.
    deltas: u32,
    /// `(id, lower-case titles)` of the request's products: the title and, on the Japanese
    /// storefront, the Japanese one, which a Japanese answer names instead.
    products: Vec<(String, Vec<String>)>,
    /// The prompt's own estimate, for a provider that reports no input tokens.
    estimated_input: u32,
    confidence: f32,
    /// Why `confidence` is what it is, sent with the assessment.
    reason: &'static str,
    /// A provider's model is given all the context (`prompts::render_context`, history as
    /// turns) and cannot say what it used: any of the customer's own context makes the
    /// answer theirs.
    personal_context: bool,
}

/// Whether `req` carries anything of the customer's own: profile, history or orders.
pub fn carries_personal_context(req: &pb::GenerateRequest) -> bool {
    req.profile.is_some() || !req.history.is_empty() || !req.orders.is_empty()
}

impl StreamedAnswer {
    pub(crate) fn new(
        req: &pb::GenerateRequest,
        prompt: &RenderedPrompt,
        confidence: f32,
        reason: &'static str,
    ) -> Self {
        let products = req
            .products
            .iter()
            .filter_map(|h| h.product.as_ref())
            .map(|p| {
                let titles = [&p.title, &p.title_ja]
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| t.to_lowercase())
                    .collect();
                (p.id.clone(), titles)
            })
            .filter(|(_, titles): &(String, Vec<String>)| !titles.is_empty())
            .collect();
        Self {
            text: String::new(),
            deltas: 0,
            products,
            estimated_input: prompt.input_tokens(),
            confidence,
            reason,
            personal_context: carries_personal_context(req),
        }
    }

    pub(crate) fn deltas(&self) -> u32 {
        self.deltas
    }

    /// Queues one text delta, the assessment before the first; empty deltas carry nothing
    /// and do not count.
    pub(crate) fn push(&mut self, text: String, queue: &mut VecDeque<ModelEvent>) {
        if text.is_empty() {
            return;
        }
        if self.deltas == 0 {
            queue.push_back(ModelEvent::Assessment {
                confidence: self.confidence,
                reason: self.reason.into(),
            });
        }
        self.deltas = self.deltas.saturating_add(1);
        self.text.push_str(&text);
        queue.push_back(ModelEvent::Token(text));
    }

    /// The last event, with the token counts the provider reported (`None`: the prompt's
    /// estimate for input, the deltas for output) and the products whose title the answer
    /// names.
    pub(crate) fn done(
        &self,
        input_tokens: Option<u32>,
        output_tokens: Option<u32>,
        stop_reason: StopReason,
        model: Option<String>,
    ) -> ModelEvent {
        let answer = self.text.to_lowercase();
        let product_ids = self
            .products
            .iter()
            .filter(|(_, titles)| titles.iter().any(|t| answer.contains(t.as_str())))
            .map(|(id, _)| id.clone())
            .collect();
        ModelEvent::Done(ModelDone {
            input_tokens: input_tokens.unwrap_or(self.estimated_input),
            output_tokens: output_tokens.unwrap_or(self.deltas),
            product_ids,
            confidence: self.confidence,
            stop_reason,
            model,
            personal_context: self.personal_context,
        })
    }
}

/// A model's output. Dropping it must stop the model's work (and its provider request).
pub type ModelStream = BoxStream<'static, Result<ModelEvent, GenerationError>>;

pub trait ModelBackend: Send + Sync {
    /// Name reported in `done.model` and metric labels for this tier.
    fn model_name(&self, tier: pb::ModelTier) -> String;

    /// Starts generating. `max_tokens` is already resolved (never 0); the backend should stop
    /// there with [`StopReason::MaxTokens`] (the daemon enforces it too).
    fn stream(
        &self,
        prompt: RenderedPrompt,
        req: &pb::GenerateRequest,
        tier: pb::ModelTier,
        max_tokens: u32,
    ) -> ModelStream;

    /// [`ModelBackend::stream`] for a caller whose deadline is known (`None`: none), so a
    /// backend that retries can keep its retries within it. The daemon calls this one; the
    /// default ignores the deadline (the daemon enforces it anyway).
    fn stream_with_deadline(
        &self,
        prompt: RenderedPrompt,
        req: &pb::GenerateRequest,
        tier: pb::ModelTier,
        max_tokens: u32,
        deadline: Option<Instant>,
    ) -> ModelStream {
        let _ = deadline;
        self.stream(prompt, req, tier, max_tokens)
    }

    /// Stops the backend's own background work (warm-up and keep-alive calls) and waits for
    /// it to end. The daemon calls it once its server has stopped; the default has none.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
