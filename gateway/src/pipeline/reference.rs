//! Follow-ups that refer back to the conversation ("is it in stock?", "それはいくら？").
//!
//! Answered as typed they name no product: retrieval finds whatever the words match, and the
//! shared cache could replay another customer's answer about another product. So a bare
//! follow-up (`mangaassist_followup::recognise`) is rewritten into the standalone question
//! about the session's focus, the first product of its last answer, before anything else
//! sees it; precompute pre-answers the same standalone questions after each answer. One that
//! cannot be resolved (no focus yet, or the product cannot be read) is answered as typed with
//! the conversation's history, and neither read from nor written to the cache.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use mangaassist_followup::{Ask, Lang, Subject, recognise, standalone};
use mangaassist_proto::v1 as pb;
use parking_lot::Mutex;

use super::{Orchestrator, Query};

/// The intent of a resolved follow-up; precompute (`follow_ups`) answers it with the same.
pub(super) fn intent_of(ask: Ask) -> pb::Intent {
    if ask.is_recommendation() {
        pb::Intent::Recommendation
    } else {
        pb::Intent::ProductSearch
    }
}

/// How a query's text relates to what the customer typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reference {
    /// Answered as typed.
    #[default]
    AsTyped,
    /// `Query::text` is the standalone question for what the customer typed.
    Resolved { typed: String, ask: Ask },
    /// A bare follow-up with nothing to resolve it against.
    Unresolved,
}

impl Reference {
    /// What the customer typed, for the saved turn.
    pub fn typed<'a>(&'a self, text: &'a str) -> &'a str {
        match self {
            Reference::Resolved { typed, .. } => typed,
            _ => text,
        }
    }
}

/// A session's focus: the product its last answer was about.
#[derive(Debug, Clone)]
struct Focus {
    store_id: String,
    product_id: String,
    at: Instant,
}

/// Sessions this gateway answered recently, by (user, session): the user is part of the key so
/// a client naming someone else's session id finds nothing.
pub struct Foci {
    map: Mutex<HashMap<(String, String), Focus>>,
    capacity: usize,
    ttl: Duration,
}

impl Foci {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            ttl,
        }
    }

    pub fn set(&self, q: &Query, product_id: &str) {
        let mut map = self.map.lock();
        if map.len() >= self.capacity {
            // Expired sessions first; a full map of live sessions starts over (a lost focus
            // only means one follow-up answered live).
            let ttl = self.ttl;
            map.retain(|_, f| f.at.elapsed() < ttl);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(
            (q.user_id.clone(), q.session_id.clone()),
            Focus {
                store_id: q.store_id.clone(),
                product_id: product_id.to_string(),
                at: Instant::now(),
            },
        );
    }

    fn get(&self, q: &Query) -> Option<Focus> {
        let map = self.map.lock();
        let f = map.get(&(q.user_id.clone(), q.session_id.clone()))?;
        (f.store_id == q.store_id && f.at.elapsed() < self.ttl).then(|| f.clone())
    }
}

impl Orchestrator {
    /// Rewrites a bare follow-up into its standalone question (see the module docs).
    pub(super) async fn resolve_reference(&self, mut q: Query, deadline: Duration) -> Query {
        let Some((ask, lang)) = recognise(&q.text) else {
            return q;
        };
        let resolved = match self.foci.get(&q) {
            Some(focus) => self.subject_question(&focus, ask, lang, deadline).await,
            None => None,
        };
        match resolved {
            Some(question) => {
                metrics::counter!("followups_resolved_total", "ask" => ask.label()).increment(1);
                tracing::debug!(typed = %q.text, %question, "follow-up resolved");
                let typed = std::mem::replace(&mut q.text, question);
                q.reference = Reference::Resolved { typed, ask };
            }
            None => {
                metrics::counter!("followups_unresolved_total", "ask" => ask.label()).increment(1);
                q.reference = Reference::Unresolved;
            }
        }
        q
    }

    /// The standalone question about the focus product, read through retrieval (the gateway
    /// holds no catalog); `None` when retrieval is down or does not know the product.
    async fn subject_question(
        &self,
        focus: &Focus,
        ask: Ask,
        lang: Lang,
        deadline: Duration,
    ) -> Option<String> {
        // An open retrieval breaker means retrieval is known down: do not wait on it.
        let permit = self.breakers.retrieval.try_acquire().ok()?;
        let req = pb::GetProductsRequest {
            store_id: focus.store_id.clone(),
            ids: vec![focus.product_id.clone()],
        };
        let products = match self.mesh.get_products(req, deadline).await {
            Ok(r) => {
                permit.success();
                r.products
            }
            Err(e) => {
                permit.failure();
                tracing::debug!(error = %e, "focus product unavailable; follow-up answered as typed");
                return None;
            }
        };
        let p = products.into_iter().find(|p| p.id == focus.product_id)?;
        let subject = Subject {
            title: &p.title,
            series: &p.series,
            volume: p.volume,
            title_ja: Some(p.title_ja.as_str()),
            series_ja: Some(p.series_ja.as_str()),
        };
        Some(standalone(ask, lang, &subject))
    }
}
