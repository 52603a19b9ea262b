//! Context assembly: what a generation request carries besides the question and the tier,
//! and the retrieval request it is built from. The live gateway path, pre-computed answers
//! and the prompt benchmark all go through these functions, so a pre-computed answer is
//! written from exactly the context the live answer it stands in for would have seen.
//!
//! The retrieval request over-fetches ([`ContextSettings::candidates`]) because assembly
//! narrows the hits: recommendations and comparisons want breadth (one volume per series,
//! best-ranked first), searches the best matches as ranked ([`assemble_products`]).

use std::collections::HashSet;

use mangaassist_config::GatewaySettings;
use mangaassist_proto::v1::{self as pb, Intent};

/// The `gateway` settings that shape the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextSettings {
    /// Products put into the context.
    pub top_k_products: u32,
    /// Policy documents asked of retrieval (and so put into the context).
    pub top_k_documents: u32,
    /// Products asked of retrieval before assembly narrows them.
    pub retrieval_candidates: u32,
    /// Turns of history given to the model, newest first.
    pub history_turns: u32,
}

impl From<&GatewaySettings> for ContextSettings {
    fn from(g: &GatewaySettings) -> Self {
        Self {
            top_k_products: g.top_k_products,
            top_k_documents: g.top_k_documents,
            retrieval_candidates: g.retrieval_candidates,
            history_turns: g.history_turns,
        }
    }
}

impl Default for ContextSettings {
    /// The gateway's defaults.
    fn default() -> Self {
        Self::from(&GatewaySettings::default())
    }
}

impl ContextSettings {
    /// Products to ask retrieval for: the candidates assembly chooses from, never fewer than
    /// the context holds.
    pub fn candidates(&self) -> u32 {
        self.retrieval_candidates.max(self.top_k_products)
    }

    /// The retrieval request for a question: every intent gets the same shape (no filters;
    /// the documents ride along), which is why it can start before the intent is known.
    /// `embedding` is the question's vector when the caller already has it.
    pub fn retrieval_request(
        &self,
        query: &str,
        store_id: &str,
        embedding: Option<pb::Embedding>,
    ) -> pb::RetrieveRequest {
        pb::RetrieveRequest {
            query: query.to_string(),
            store_id: store_id.to_string(),
            embedding,
            top_k: self.candidates(),
            filters: None,
            top_k_documents: self.top_k_documents,
        }
    }
}

/// Whether answers of `intent` need the customer's recent orders.
pub fn wants_orders(intent: Intent) -> bool {
    matches!(
        intent,
        Intent::OrderStatus | Intent::ReturnRefund | Intent::Complaint
    )
}

/// Narrows retrieval hits to the `k` products of the context: recommendations and
/// comparisons get one volume per series (best-ranked first), topped up with further volumes
/// when there are fewer series than slots; other intents the best matches as ranked.
pub fn assemble_products(
    intent: Intent,
    hits: Vec<pb::ProductHit>,
    k: usize,
) -> Vec<pb::ProductHit> {
    if !matches!(intent, Intent::Recommendation | Intent::Comparison) {
        return hits.into_iter().take(k).collect();
    }
    let mut seen = HashSet::new();
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

/// What the context is assembled from; a part that was not fetched (or failed) is empty.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The answer to [`ContextSettings::retrieval_request`]; `None` when retrieval was not
    /// needed or failed.
    pub retrieved: Option<pb::RetrieveResponse>,
    /// Newest first, as memory returns it.
    pub history: Vec<pb::Turn>,
    pub profile: Option<pb::UserProfile>,
    pub orders: Vec<pb::Order>,
}

/// The context of one generation request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    pub products: Vec<pb::ProductHit>,
    pub documents: Vec<pb::DocumentHit>,
    pub history: Vec<pb::Turn>,
    pub profile: Option<pb::UserProfile>,
    pub orders: Vec<pb::Order>,
}

/// Assembles the context of an answer of `intent`: products narrowed by
/// [`assemble_products`], the retrieved documents, the newest `history_turns` turns, the
/// profile, and the orders when the intent [wants them](wants_orders).
pub fn assemble(intent: Intent, sources: Sources, settings: &ContextSettings) -> Context {
    let (products, documents) = match sources.retrieved {
        Some(r) => (
            assemble_products(intent, r.products, settings.top_k_products as usize),
            r.documents,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let mut history = sources.history;
    history.truncate(settings.history_turns as usize);
    Context {
        products,
        documents,
        history,
        profile: sources.profile,
        orders: if wants_orders(intent) {
            sources.orders
        } else {
            Vec::new()
        },
    }
}

/// Who asked what, for the generation request.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub query: &'a str,
    pub store_id: &'a str,
    pub session_id: &'a str,
    pub user_id: &'a str,
    /// The language to answer in (see [`crate::language`]).
    pub locale: crate::Lang,
}

impl Context {
    /// The generation request for `asked` with this context, the model's default length and
    /// the active prompt; `degradation` is the ladder level ("full", "no_rag", ...).
    pub fn into_request(
        self,
        asked: Asked<'_>,
        intent: Intent,
        tier: pb::ModelTier,
        degradation: &str,
    ) -> pb::GenerateRequest {
        pb::GenerateRequest {
            query: asked.query.to_string(),
            intent: intent as i32,
            tier: tier as i32,
            store_id: asked.store_id.to_string(),
            session_id: asked.session_id.to_string(),
            user_id: asked.user_id.to_string(),
            products: self.products,
            documents: self.documents,
            history: self.history,
            profile: self.profile,
            orders: self.orders,
            max_tokens: 0,
            prompt_version: String::new(),
            degradation: degradation.to_string(),
            locale: asked.locale.tag().to_string(),
            tone: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn hit(series: &str, vol: u32) -> pb::ProductHit {
        pb::ProductHit {
            product: Some(pb::Product {
                id: format!("{series}{vol}"),
                series: series.into(),
                volume: vol,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ids(v: &[pb::ProductHit]) -> Vec<String> {
        v.iter()
            .map(|h| h.product.as_ref().unwrap().id.clone())
            .collect()
    }

    fn hits() -> Vec<pb::ProductHit> {
        vec![
            hit("A", 1),
            hit("A", 2),
            hit("B", 1),
            hit("A", 3),
            hit("C", 1),
        ]
    }

    #[test]
    fn recommendations_get_one_volume_per_series_first() {
        assert_eq!(
            ids(&assemble_products(Intent::Recommendation, hits(), 4)),
            ["A1", "B1", "C1", "A2"]
        );
        assert_eq!(
            ids(&assemble_products(Intent::Comparison, hits(), 2)),
            ["A1", "B1"]
        );
        assert_eq!(
            ids(&assemble_products(Intent::ProductSearch, hits(), 3)),
            ["A1", "A2", "B1"]
        );
        assert!(assemble_products(Intent::Recommendation, hits(), 0).is_empty());
        assert_eq!(assemble_products(Intent::Faq, hits(), 50).len(), 5);
    }

    #[test]
    fn retrieval_over_fetches_for_assembly() {
        let s = ContextSettings::default();
        assert_eq!((s.top_k_products, s.retrieval_candidates), (5, 20));
        let r = s.retrieval_request("naruto", "manga_jp", None);
        assert_eq!((r.top_k, r.top_k_documents), (20, 2));
        assert!(r.filters.is_none() && r.embedding.is_none());
        assert_eq!(
            (r.query.as_str(), r.store_id.as_str()),
            ("naruto", "manga_jp")
        );
        let few = ContextSettings {
            retrieval_candidates: 3,
            ..s
        };
        assert_eq!(few.candidates(), 5, "never fewer candidates than slots");
    }

    #[test]
    fn assembly_keeps_what_the_intent_uses() {
        let s = ContextSettings {
            top_k_products: 2,
            history_turns: 1,
            ..ContextSettings::default()
        };
        let turn = |t: &str| pb::Turn {
            text: t.into(),
            ..Default::default()
        };
        let sources = Sources {
            retrieved: Some(pb::RetrieveResponse {
                products: hits(),
                documents: vec![pb::DocumentHit::default()],
                ..Default::default()
            }),
            history: vec![turn("newest"), turn("older")],
            profile: Some(pb::UserProfile::default()),
            orders: vec![pb::Order::default()],
        };
        let rec = assemble(Intent::Recommendation, sources.clone(), &s);
        assert_eq!(ids(&rec.products), ["A1", "B1"]);
        assert_eq!(rec.documents.len(), 1);
        assert_eq!(rec.history, vec![turn("newest")]);
        assert!(rec.profile.is_some());
        assert!(rec.orders.is_empty(), "recommendations do not need orders");
        let complaint = assemble(Intent::Complaint, sources, &s);
        assert_eq!(ids(&complaint.products), ["A1", "A2"]);
        assert_eq!(complaint.orders.len(), 1);
        let bare = assemble(Intent::Faq, Sources::default(), &s);
        assert_eq!(bare, Context::default());
    }

    #[test]
    fn request_carries_the_context() {
        let ctx = Context {
            products: vec![hit("A", 1)],
            ..Context::default()
        };
        let asked = Asked {
            query: "q",
            store_id: "s",
            session_id: "sess",
            user_id: "u",
            locale: crate::Lang::En,
        };
        let r = ctx
            .clone()
            .into_request(asked, Intent::Faq, pb::ModelTier::Fast, "full");
        assert_eq!(r.products, ctx.products);
        assert_eq!(r.intent, Intent::Faq as i32);
        assert_eq!(r.tier, pb::ModelTier::Fast as i32);
        assert_eq!(
            (
                r.query.as_str(),
                r.store_id.as_str(),
                r.session_id.as_str(),
                r.user_id.as_str()
            ),
            ("q", "s", "sess", "u")
        );
        assert_eq!(r.degradation, "full");
        assert!(r.prompt_version.is_empty() && r.max_tokens == 0);
    }
}
