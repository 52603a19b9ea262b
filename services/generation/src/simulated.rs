//! The simulated model: writes a grounded answer from the request's context with per-intent
//! templates, then streams it with the latency profile of its tier. It never names a product
//! that is not in the request, and the same question in the same session always gets the same
//! answer (phrasing is picked from a hash of query and session).
//!
//! Like a real model it pays for its prompt: the time to first token grows with the input
//! tokens (`generation.prefill_ms_per_1k_tokens`), and the prompt's `#! style` front matter
//! changes how much it writes ([`PromptStyle`]).
//!
//! Its confidence is a heuristic standing in for a model's self-assessment (see [`assess`]):
//! it is what the quality gate acts on, so it is low exactly where escalating to the smart
//! tier makes sense and high where the context supports the answer.
//!
//! It writes English (`en`) or Japanese (`ja`): what an answer says — products, order,
//! document, confidence — is decided once here, from a question read in either script
//! (`reading`), and each language only words it, so both name the same products and are
//! equally sure.

mod en;
mod ja;
mod reading;

use std::{collections::HashSet, time::Duration};

use futures::StreamExt;
use mangaassist_config::{GenerationSettings, LatencyProfile, TierProfile};
use mangaassist_domain::Lang;
use mangaassist_proto::v1 as pb;
use rand::Rng;
use tokio::time::Instant;

use self::{
    en::{genre_text, join_and},
    reading::{
        matches_any_word, matches_product, question_parts, requested_tags, requested_volume,
    },
};
use crate::{
    ModelBackend, ModelDone, ModelEvent, ModelStream, PromptStyle, RenderedPrompt, StopReason,
    language::answer_language, tokens::tokenize,
};

/// The embedded default backend (see the module docs).
#[derive(Debug, Clone)]
pub struct SimulatedModel {
    fast: TierProfile,
    smart: TierProfile,
    /// No artificial delay at all.
    zero_latency: bool,
    /// Prompt processing time per 1,000 input tokens.
    prefill_ms_per_1k_tokens: f32,
}

impl SimulatedModel {
    pub fn new(settings: &GenerationSettings) -> Self {
        Self {
            fast: settings.fast.clone(),
            smart: settings.smart.clone(),
            zero_latency: settings.latency_profile == LatencyProfile::Zero,
            prefill_ms_per_1k_tokens: settings.prefill_ms_per_1k_tokens.max(0.0),
        }
    }

    fn profile(&self, tier: pb::ModelTier) -> &TierProfile {
        match tier {
            pb::ModelTier::Smart => &self.smart,
            _ => &self.fast,
        }
    }
}

/// Log-normal around the median: `median * exp(sigma * z)`, clamped so a rare draw neither
/// answers implausibly fast nor stalls the stream.
fn sample_first_token(profile: &TierProfile) -> Duration {
    let mut rng = rand::rng();
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let factor = (f64::from(profile.jitter.max(0.0)) * z)
        .exp()
        .clamp(0.6, 4.0);
    delay_secs(f64::from(profile.first_token_ms) * factor / 1000.0)
}

/// Longest delay the simulation adds: settings are validated far below it, but a profile built
/// in code may hold anything, and `Instant + Duration` must not overflow.
const MAX_DELAY: Duration = Duration::from_secs(3_600);

/// A delay from seconds computed from settings: `Duration::from_secs_f64` panics on a negative,
/// NaN or huge value, which a hand-built profile could produce; those become 0 or
/// [`MAX_DELAY`].
fn delay_secs(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

struct Pacing {
    start: Instant,
    first_token: Duration,
    per_token: Duration,
    /// Tokens released together; fast tiers send small groups rather than waking per token.
    group: usize,
}

impl Pacing {
    fn due(&self, index: usize) -> Instant {
        let groups = u32::try_from(index / self.group).unwrap_or(u32::MAX);
        let group_len = u32::try_from(self.group).unwrap_or(1);
        self.start + self.first_token + self.per_token * group_len * groups
    }
}

struct StreamState {
    /// Sent at the first token's time, just before it.
    assessment: Option<(f32, String)>,
    tokens: std::vec::IntoIter<String>,
    index: usize,
    pacing: Option<Pacing>,
    done: Option<ModelDone>,
}

impl ModelBackend for SimulatedModel {
    fn model_name(&self, tier: pb::ModelTier) -> String {
        self.profile(tier).model.clone()
    }

    fn stream(
        &self,
        prompt: RenderedPrompt,
        req: &pb::GenerateRequest,
        tier: pb::ModelTier,
        max_tokens: u32,
    ) -> ModelStream {
        let c = compose_styled(req, prompt.intent, prompt.style);
        let (confidence, reason) = assess(req, prompt.intent, tier, &c);
        let input_tokens = prompt.input_tokens();
        let limit = usize::try_from(max_tokens).unwrap_or(usize::MAX);
        let all = tokenize(&c.text);
        let stop_reason = if all.len() > limit {
            StopReason::MaxTokens
        } else {
            StopReason::EndTurn
        };
        let tokens: Vec<String> = all.into_iter().take(limit).map(str::to_string).collect();
        let done = ModelDone {
            input_tokens,
            output_tokens: u32::try_from(tokens.len()).unwrap_or(u32::MAX),
            product_ids: c.product_ids,
            confidence,
            stop_reason,
            model: None,
            personal_context: c.personal_context,
        };
        let pacing = (!self.zero_latency).then(|| {
            let p = self.profile(tier);
            let tps = f64::from(p.tokens_per_second.max(1.0));
            let prefill = delay_secs(
                f64::from(input_tokens) * f64::from(self.prefill_ms_per_1k_tokens) / 1_000_000.0,
            );
            Pacing {
                start: Instant::now(),
                first_token: sample_first_token(p) + prefill,
                per_token: delay_secs(1.0 / tps),
                group: if tps >= 100.0 {
                    3
                } else if tps >= 50.0 {
                    2
                } else {
                    1
                },
            }
        });
        let state = StreamState {
            assessment: Some((confidence, reason)),
            tokens: tokens.into_iter(),
            index: 0,
            pacing,
            done: Some(done),
        };
        futures::stream::unfold(state, |mut st| async move {
            // A real model can judge its answer only once it has started writing it.
            if let Some((confidence, reason)) = st.assessment.take() {
                if let Some(p) = &st.pacing {
                    tokio::time::sleep_until(p.due(0)).await;
                }
                return Some((Ok(ModelEvent::Assessment { confidence, reason }), st));
            }
            match st.tokens.next() {
                Some(t) => {
                    if let Some(p) = &st.pacing {
                        tokio::time::sleep_until(p.due(st.index)).await;
                    }
                    st.index += 1;
                    Some((Ok(ModelEvent::Token(t)), st))
                }
                None => st.done.take().map(|d| (Ok(ModelEvent::Done(d)), st)),
            }
        })
        .boxed()
    }
}

/// A composed answer before streaming.
#[derive(Debug, Clone, PartialEq)]
pub struct Composition {
    pub text: String,
    /// Products (and order items) the answer names.
    pub product_ids: Vec<String>,
    /// How well the context supports the answer (before the tier is considered, see
    /// [`assess`]).
    pub confidence: f32,
    /// Why, in a few words.
    pub reason: String,
    /// The answer uses the customer's profile, history or orders.
    pub personal_context: bool,
}

/// FNV-1a (the `fnv` crate, stable across platforms) of the parts, each ended by a unit
/// separator so `["ab", "c"]` and `["a", "bc"]` differ: the same question in the same session
/// always gets the same wording.
fn fnv1a(parts: &[&str]) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    for p in parts {
        h.write(p.as_bytes());
        h.write_u8(0x1f);
    }
    h.finish()
}

/// Confidence of a fast-tier answer to a question in several parts: below the default
/// `generation.low_confidence_below` (0.5), so the quality gate escalates it.
const FAST_MULTI_PART_CAP: f32 = 0.42;

/// The simulated model's self-assessment for `tier`: the composition's confidence (how well
/// the context supports the answer), capped on the fast tier when the question has several
/// parts, which a small model tends to answer only in part. Simulated: a real backend reports
/// what its model says.
pub fn assess(
    req: &pb::GenerateRequest,
    intent: pb::Intent,
    tier: pb::ModelTier,
    c: &Composition,
) -> (f32, String) {
    let parts = question_parts(&req.query);
    if tier != pb::ModelTier::Smart
        && parts >= 2
        && !matches!(intent, pb::Intent::Greeting | pb::Intent::Chitchat)
        && c.confidence > FAST_MULTI_PART_CAP
    {
        return (
            FAST_MULTI_PART_CAP,
            format!(
                "a question in {parts} parts is more than the fast tier answers reliably ({})",
                c.reason
            ),
        );
    }
    (c.confidence, c.reason.clone())
}

/// The answer as it is being written. What each intent says — which products and order,
/// which document, how sure — is decided here once; a [`Voice`] words it in one language, so
/// an answer in Japanese names the same products with the same confidence as one in English.
struct Writer<'a> {
    req: &'a pb::GenerateRequest,
    /// Set when the answer uses anything of the customer's own (profile, history, orders):
    /// such an answer must never be shown to another customer.
    personal: std::cell::Cell<bool>,
    hash: u64,
    out: String,
    mentioned: Vec<String>,
    degraded: bool,
    style: PromptStyle,
    reason: String,
    /// Between two sentences on a line: a space in English, nothing in Japanese.
    sep: &'static str,
}

/// What a customer's small talk is about.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SmallTalk {
    Thanks,
    Bye,
    Who,
    Joke,
    Other,
}

impl SmallTalk {
    fn of(query: &str) -> Self {
        let q = query.to_lowercase();
        let has = |ws: &[&str]| ws.iter().any(|w| q.contains(w));
        if has(&[
            "thank",
            "arigato",
            "ありがと",
            "thx",
            "感謝",
            "助かりました",
        ]) {
            SmallTalk::Thanks
        } else if has(&[
            "bye",
            "see you",
            "sayonara",
            "またね",
            "good night",
            "さようなら",
            "じゃあね",
            "おやすみ",
            "失礼します",
        ]) {
            SmallTalk::Bye
        } else if has(&[
            "who are you",
            "your name",
            "are you a bot",
            "are you human",
            "what are you",
            "誰",
            "だれ",
            "名前",
            "ボット",
            "人間",
        ]) {
            SmallTalk::Who
        } else if has(&["joke", "冗談", "ジョーク", "ダジャレ", "笑わせて"]) {
            SmallTalk::Joke
        } else {
            SmallTalk::Other
        }
    }
}

/// A product search's answer: the product asked for (or the closest), and a few more.
struct Found<'p> {
    best: &'p pb::Product,
    /// The volume asked for when no product of it is in context.
    missing_volume: Option<u32>,
    others: Vec<&'p pb::Product>,
}

/// A recommendation's answer.
struct Picks<'p> {
    /// One volume per series, in stock first.
    picks: Vec<&'p pb::Product>,
    /// The customer's first name, when the profile has one.
    name: Option<&'p str>,
    /// Their previous question in this conversation.
    previous: Option<&'p str>,
    /// Their favourite genres (labels such as `sci_fi`).
    favourites: Vec<String>,
    all_out: bool,
}

/// The words of an answer in one language. Every function writes through the [`Writer`]
/// (its `pick` keeps the phrasing deterministic); none decides what to say.
trait Voice {
    fn greeting_opener(w: &mut Writer<'_>, name: Option<&str>, returning: bool);
    fn greeting_offer(w: &mut Writer<'_>);
    /// `genres`: the customer's favourites (labels), at most two.
    fn greeting_mood(w: &mut Writer<'_>, genres: &[String]);
    const GREETING_CLOSINGS: &'static [&'static str];

    fn small_talk(w: &mut Writer<'_>, talk: SmallTalk);

    /// Quotes the sentence of `d` that answers the question.
    fn quote_policy(w: &mut Writer<'_>, salt: u64, d: &pb::Document);
    /// A FAQ answer's second sentence: the document's first one, when it is not the quote.
    fn policy_opening(w: &mut Writer<'_>, d: &pb::Document);
    /// Detailed style: more sentences of the first document that share words with the
    /// question, and the second document's answer.
    fn more_policy(w: &mut Writer<'_>, docs: &[&pb::Document]);
    const FAQ_CLOSINGS: &'static [&'static str];
    fn no_policy(w: &mut Writer<'_>);

    fn no_order(w: &mut Writer<'_>);
    fn order_status(w: &mut Writer<'_>, o: &pb::Order);
    /// Detailed style: when the order was placed and exactly what is in it.
    fn order_details(w: &mut Writer<'_>, o: &pb::Order);
    fn orders_on_the_way(w: &mut Writer<'_>, others: &[&pb::Order]);
    const ORDER_CLOSINGS: &'static [&'static str];

    /// No products to answer from; `genres` are the customer's favourites.
    fn no_catalog(w: &mut Writer<'_>, genres: &[String]);
    fn found(w: &mut Writer<'_>, f: &Found<'_>);
    fn recommend(w: &mut Writer<'_>, p: &Picks<'_>);
    const RECOMMENDATION_CLOSINGS: &'static [&'static str];
    /// Only one of the titles to compare is in context.
    fn compare_one(w: &mut Writer<'_>, a: &pb::Product);
    fn compare_two(w: &mut Writer<'_>, a: &pb::Product, b: &pb::Product);

    fn apology(w: &mut Writer<'_>);
    fn order_in_complaint(w: &mut Writer<'_>, o: &pb::Order);
    fn remedies(w: &mut Writer<'_>);
    fn order_to_return(w: &mut Writer<'_>, o: &pb::Order);
    fn return_window(w: &mut Writer<'_>);
    fn ask_which_order(w: &mut Writer<'_>);
}

impl<'a> Writer<'a> {
    fn pick<'s>(&self, salt: u64, options: &[&'s str]) -> &'s str {
        let h = fnv1a(&[&self.hash.to_string(), &salt.to_string()]);
        let n = u64::try_from(options.len()).unwrap_or(1).max(1);
        options[usize::try_from(h % n).unwrap_or(0)]
    }

    fn line(&mut self, s: &str) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push_str(self.sep);
        }
        self.out.push_str(s);
    }

    fn newline(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    fn mention(&mut self, p: &pb::Product) {
        if !self.mentioned.contains(&p.id) {
            self.mentioned.push(p.id.clone());
        }
    }

    /// Marks the answer personal when `used` says the customer's own context went into it.
    fn personal<T>(&self, used: T, is_used: impl FnOnce(&T) -> bool) -> T {
        if is_used(&used) {
            self.personal.set(true);
        }
        used
    }

    fn first_name(&self) -> Option<&'a str> {
        let name = self
            .req
            .profile
            .as_ref()
            .and_then(|p| p.name.split_whitespace().next());
        self.personal(name, Option::is_some)
    }

    fn products(&self) -> Vec<&'a pb::Product> {
        self.req
            .products
            .iter()
            .filter_map(|h| h.product.as_ref())
            .collect()
    }

    fn documents(&self) -> Vec<&'a pb::Document> {
        self.req
            .documents
            .iter()
            .filter_map(|h| h.document.as_ref())
            .collect()
    }

    /// The customer's favourite genres, as labels (`sci_fi`).
    fn favourite_genres(&self) -> Vec<String> {
        let genres = self
            .req
            .profile
            .as_ref()
            .map(|p| p.favourite_genres.clone())
            .unwrap_or_default();
        self.personal(genres, |g: &Vec<String>| !g.is_empty())
    }

    /// The customer's previous question, if the history has one.
    fn previous_question(&self) -> Option<&'a str> {
        let previous = self
            .req
            .history
            .iter()
            .find(|t| t.role == "user" && t.text.trim() != self.req.query.trim())
            .map(|t| t.text.as_str());
        self.personal(previous, Option::is_some)
    }

    /// Quotes the first document, if there is one.
    fn quote_policy<V: Voice>(&mut self, salt: u64) -> bool {
        let docs = self.documents();
        let Some(d) = docs.first() else {
            return false;
        };
        V::quote_policy(self, salt, d);
        true
    }

    fn more_policy<V: Voice>(&mut self) {
        let docs = self.documents();
        if !docs.is_empty() {
            V::more_policy(self, &docs);
        }
    }

    /// The order the message names, else the newest one still on its way, else the newest.
    fn pick_order(&self) -> Option<&'a pb::Order> {
        let order = self.find_order();
        self.personal(order, Option::is_some)
    }

    fn find_order(&self) -> Option<&'a pb::Order> {
        let q = self.req.query.to_uppercase();
        let orders = &self.req.orders;
        if let Some(o) = orders.iter().find(|o| {
            !o.order_id.is_empty()
                && (q.contains(&o.order_id.to_uppercase())
                    || o.order_id
                        .rsplit('-')
                        .next()
                        .is_some_and(|digits| digits.len() >= 4 && q.contains(digits)))
        }) {
            return Some(o);
        }
        orders
            .iter()
            .filter(|o| on_its_way(o))
            .max_by(|a, b| a.placed_at.cmp(&b.placed_at))
            .or_else(|| orders.iter().max_by(|a, b| a.placed_at.cmp(&b.placed_at)))
    }

    fn mention_order(&mut self, o: &pb::Order) {
        for i in &o.items {
            if !i.product_id.is_empty() && !self.mentioned.contains(&i.product_id) {
                self.mentioned.push(i.product_id.clone());
            }
        }
    }

    fn because(&mut self, confidence: f32, reason: impl Into<String>) -> f32 {
        self.reason = reason.into();
        confidence
    }

    /// 0.80-0.95, varying by query so dashboards show a spread rather than one value.
    fn grounded(&mut self, reason: impl Into<String>) -> f32 {
        let c = 0.8 + f32::from(u8::try_from(self.hash % 16).unwrap_or(0)) / 100.0;
        self.because(c, reason)
    }

    fn detailed(&self) -> bool {
        self.style == PromptStyle::Detailed
    }

    /// A closing pleasantry, which a concise prompt leaves out.
    fn closing(&mut self, salt: u64, options: &[&str]) {
        if self.style != PromptStyle::Concise {
            self.line(self.pick(salt, options));
        }
    }

    fn write<V: Voice>(&mut self, intent: pb::Intent) -> f32 {
        match intent {
            pb::Intent::Greeting => self.greeting::<V>(),
            pb::Intent::Faq => self.faq::<V>(),
            pb::Intent::OrderStatus => self.order_status::<V>(),
            pb::Intent::ProductSearch => self.product_search::<V>(),
            pb::Intent::Recommendation => self.recommendation::<V>(),
            pb::Intent::Comparison => self.comparison::<V>(),
            pb::Intent::Complaint => self.complaint::<V>(),
            pb::Intent::ReturnRefund => self.return_refund::<V>(),
            pb::Intent::Chitchat | pb::Intent::Unspecified => self.chitchat::<V>(),
        }
    }

    fn greeting<V: Voice>(&mut self) -> f32 {
        // "Welcome back" says the customer was here before: only with their name (which
        // already makes the answer personal).
        let name = self.first_name();
        V::greeting_opener(self, name, !self.req.history.is_empty());
        V::greeting_offer(self);
        let genres = self.favourite_genres();
        if !genres.is_empty() {
            V::greeting_mood(self, &genres[..genres.len().min(2)]);
        }
        self.closing(3, V::GREETING_CLOSINGS);
        self.because(0.9, "a greeting needs no context")
    }

    fn chitchat<V: Voice>(&mut self) -> f32 {
        V::small_talk(self, SmallTalk::of(&self.req.query));
        self.because(0.85, "small talk needs no context")
    }

    fn faq<V: Voice>(&mut self) -> f32 {
        let docs = self.documents();
        let Some(d) = docs.first().copied() else {
            V::no_policy(self);
            return self.because(0.45, "no policy document in context");
        };
        V::quote_policy(self, 1, d);
        V::policy_opening(self, d);
        let on_topic = matches_any_word(
            &self.req.query,
            &format!("{} {}", d.title, d.body),
            &format!("{} {}", d.title_ja, d.body_ja),
        );
        if self.detailed() {
            V::more_policy(self, &docs);
        }
        self.closing(2, V::FAQ_CLOSINGS);
        if !on_topic {
            return self.because(
                0.45,
                "the policy page found shares no words with the question",
            );
        }
        self.because(0.9, "quoted the store policy")
    }

    fn order_status<V: Voice>(&mut self) -> f32 {
        let Some(o) = self.pick_order() else {
            V::no_order(self);
            return self.because(0.8, "asked for the order number instead of guessing");
        };
        V::order_status(self, o);
        self.mention_order(o);
        if self.detailed() {
            V::order_details(self, o);
        }
        let others: Vec<&pb::Order> = self
            .req
            .orders
            .iter()
            .filter(|x| x.order_id != o.order_id && on_its_way(x))
            .collect();
        if !others.is_empty() {
            V::orders_on_the_way(self, &others);
        }
        self.closing(2, V::ORDER_CLOSINGS);
        self.because(0.92, "answered from the order record")
    }

    fn no_catalog<V: Voice>(&mut self) -> f32 {
        let genres = self.favourite_genres();
        V::no_catalog(self, &genres);
        let c = 0.4 + f32::from(u8::try_from(self.hash % 10).unwrap_or(0)) / 100.0;
        self.because(
            c,
            if self.degraded {
                "the catalog is unavailable, so no products are in context"
            } else {
                "no catalog products in context"
            },
        )
    }

    fn product_search<V: Voice>(&mut self) -> f32 {
        let products = self.products();
        let Some(&first) = products.first() else {
            return self.no_catalog::<V>();
        };
        let wanted = requested_volume(&self.req.query);
        let exact = wanted.and_then(|v| {
            products
                .iter()
                .find(|p| p.volume == v && p.series == first.series)
                .copied()
        });
        let best = exact.unwrap_or(first);
        let found = Found {
            best,
            missing_volume: wanted.filter(|_| exact.is_none()),
            others: products
                .iter()
                .copied()
                .filter(|p| p.id != best.id)
                .take(if self.detailed() { 4 } else { 2 })
                .collect(),
        };
        V::found(self, &found);
        self.mention(best);
        for p in &found.others {
            self.mention(p);
        }
        if !matches_product(&self.req.query, &products) {
            return self.because(
                0.45,
                "the products retrieved match none of the names or genres asked for",
            );
        }
        if let Some(v) = found.missing_volume {
            return self.because(0.48, format!("volume {v} is not among the products found"));
        }
        self.grounded("answered from matching catalog products")
    }

    fn recommendation<V: Voice>(&mut self) -> f32 {
        let products = self.products();
        if products.is_empty() {
            return self.no_catalog::<V>();
        }
        let q = self.req.query.to_lowercase();
        // "Something like X" should not answer with X itself when there are alternatives.
        let names = |p: &pb::Product| {
            q.contains(&p.series.to_lowercase())
                || (!p.series_ja.is_empty() && q.contains(&p.series_ja.to_lowercase()))
        };
        let mut candidates: Vec<&pb::Product> =
            products.iter().copied().filter(|p| !names(p)).collect();
        if candidates.is_empty() {
            candidates = products.clone();
        }
        // Titles of the genre or audience asked for come first (stable, so retrieval order
        // decides otherwise).
        let asked = requested_tags(&self.req.query);
        let fits = |p: &pb::Product| {
            asked
                .iter()
                .any(|t| p.genres.iter().any(|g| g == t) || p.demographic == *t)
        };
        if !asked.is_empty() {
            candidates.sort_by_key(|p| !fits(p));
        }
        // One volume per series, in-stock first, keeping the order above otherwise.
        let mut seen = HashSet::new();
        let mut picks: Vec<&pb::Product> = Vec::new();
        for in_stock in [true, false] {
            for p in &candidates {
                if (p.stock > 0) == in_stock && seen.insert(p.series.clone()) {
                    picks.push(p);
                }
            }
        }
        picks.truncate(3);
        let favourites = self.favourite_genres();
        let plan = Picks {
            all_out: picks.iter().all(|p| p.stock == 0),
            picks,
            name: self.first_name(),
            previous: self.previous_question(),
            favourites,
        };
        V::recommend(self, &plan);
        for p in &plan.picks {
            self.mention(p);
        }
        self.closing(2, V::RECOMMENDATION_CLOSINGS);
        if !asked.is_empty() && !plan.picks.iter().any(|p| fits(p)) {
            return self.because(
                0.45,
                format!(
                    "no product in context is {} as asked",
                    join_and(&asked.iter().map(|t| genre_text(t)).collect::<Vec<_>>())
                ),
            );
        }
        if plan.all_out {
            return self.because(0.48, "every candidate in context is out of stock");
        }
        self.grounded("recommended from catalog products in context")
    }

    fn comparison<V: Voice>(&mut self) -> f32 {
        let products = self.products();
        let mut seen = HashSet::new();
        let firsts: Vec<&pb::Product> = products
            .iter()
            .copied()
            .filter(|p| seen.insert(p.series.clone()))
            .take(2)
            .collect();
        match firsts.as_slice() {
            [] => {
                if self.quote_policy::<V>(1) {
                    return self.because(0.45, "no catalog products to compare");
                }
                self.no_catalog::<V>()
            }
            [a] => {
                V::compare_one(self, a);
                self.mention(a);
                self.because(0.45, "only one of the titles to compare is in context")
            }
            [a, b, ..] => {
                V::compare_two(self, a, b);
                self.mention(a);
                self.mention(b);
                self.grounded("compared two catalog series from context")
            }
        }
    }

    fn complaint<V: Voice>(&mut self) -> f32 {
        V::apology(self);
        if let Some(o) = self.pick_order() {
            V::order_in_complaint(self, o);
            self.mention_order(o);
            if self.detailed() {
                V::order_details(self, o);
            }
        }
        if self.quote_policy::<V>(2) && self.detailed() {
            self.more_policy::<V>();
        }
        V::remedies(self);
        self.because(0.85, "apologised and offered the standard remedies")
    }

    fn return_refund<V: Voice>(&mut self) -> f32 {
        let quoted = self.quote_policy::<V>(1);
        if quoted && self.detailed() {
            self.more_policy::<V>();
        }
        match self.pick_order() {
            Some(o) => {
                V::order_to_return(self, o);
                self.mention_order(o);
                if self.detailed() {
                    V::order_details(self, o);
                }
                V::return_window(self);
            }
            None => V::ask_which_order(self),
        }
        if quoted {
            self.because(0.88, "quoted the return policy")
        } else {
            self.because(0.48, "no return policy document in context")
        }
    }
}

/// An order that has not reached the customer yet.
fn on_its_way(o: &pb::Order) -> bool {
    matches!(
        o.status.as_str(),
        "out_for_delivery" | "shipped" | "processing"
    )
}

/// Writes the simulated model's answer for `req` (deterministic for a query and session).
pub fn compose(req: &pb::GenerateRequest, intent: pb::Intent) -> Composition {
    compose_styled(req, intent, PromptStyle::Standard)
}

/// [`compose`] for a prompt's `#! style`: `detailed` adds facts from the context (more of a
/// synopsis, release dates, order lines, further policy sentences), `concise` leaves out
/// closing pleasantries. Neither adds anything the context does not hold. The answer is in
/// the language [`answer_language`] picks: the request's locale, else the question's.
pub fn compose_styled(
    req: &pb::GenerateRequest,
    intent: pb::Intent,
    style: PromptStyle,
) -> Composition {
    let language = answer_language(req);
    let mut w = Writer {
        req,
        personal: std::cell::Cell::new(false),
        hash: fnv1a(&[req.query.trim(), &req.session_id]),
        out: String::new(),
        mentioned: Vec::new(),
        degraded: !req.degradation.is_empty() && req.degradation != "full",
        style,
        reason: String::new(),
        sep: " ",
    };
    // Japanese because the customer's profile says so is their preference, not the question's
    // (a language the gateway chose is not theirs).
    w.personal(language.from_profile, |p| *p);
    let confidence = match language.lang {
        Lang::Ja => {
            w.sep = "";
            w.write::<ja::Japanese>(intent)
        }
        Lang::En => w.write::<en::English>(intent),
    };
    Composition {
        text: w.out.trim_end().to_string(),
        product_ids: w.mentioned,
        confidence,
        reason: w.reason,
        personal_context: w.personal.get(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use en::{stock_phrase, yen};
    use reading::{first_sentence, second_sentence, sentences};

    #[test]
    fn delays_from_out_of_range_settings_are_bounded_not_panics() {
        assert_eq!(delay_secs(-0.06), Duration::ZERO);
        assert_eq!(delay_secs(f64::NAN), Duration::ZERO);
        assert_eq!(delay_secs(f64::NEG_INFINITY), Duration::ZERO);
        assert_eq!(delay_secs(f64::INFINITY), MAX_DELAY);
        assert_eq!(delay_secs(1e30), MAX_DELAY);
        assert_eq!(delay_secs(0.25), Duration::from_millis(250));
        // A negative prefill rate (what `generation.prefill_ms_per_1k_tokens = -60` used to
        // feed `Duration::from_secs_f64`) and non-finite tier numbers.
        assert_eq!(delay_secs(2_000.0 * -60.0 / 1_000_000.0), Duration::ZERO);
        let wild = TierProfile {
            model: "m".into(),
            first_token_ms: u32::MAX,
            tokens_per_second: f32::NAN,
            jitter: f32::INFINITY,
        };
        for _ in 0..200 {
            assert!(sample_first_token(&wild) <= MAX_DELAY);
        }
    }

    fn product(id: &str, series: &str, volume: u32, stock: u32) -> pb::ProductHit {
        pb::ProductHit {
            product: Some(pb::Product {
                id: id.into(),
                store_id: "manga_jp".into(),
                title: format!("{series}, Vol. {volume}"),
                series: series.into(),
                volume,
                author: "Some Author".into(),
                genres: vec!["action".into(), "sci_fi".into()],
                demographic: "shonen".into(),
                synopsis: "A hero rises. More happens.".into(),
                price_yen: 1_210,
                stock,
                release_date: "2020-01-01".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn req(query: &str) -> pb::GenerateRequest {
        pb::GenerateRequest {
            query: query.into(),
            session_id: "s".into(),
            ..Default::default()
        }
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(yen(495), "495 yen");
        assert_eq!(yen(1_210), "1,210 yen");
        assert_eq!(yen(1_234_567), "1,234,567 yen");
        assert_eq!(stock_phrase(0), "out of stock");
        assert_eq!(stock_phrase(3), "only 3 left");
        assert_eq!(stock_phrase(40), "in stock");
        assert_eq!(requested_volume("do you have berserk vol 2"), Some(2));
        assert_eq!(requested_volume("Berserk vol.7?"), Some(7));
        assert_eq!(requested_volume("volume 12 of naruto"), Some(12));
        assert_eq!(requested_volume("berserk"), None);
        assert_eq!(first_sentence("One. Two."), "One.");
        let luffy = "Monkey D. Luffy sets out to sea. He finds Zoro in Vol. 1 of it. End.";
        assert_eq!(first_sentence(luffy), "Monkey D. Luffy sets out to sea.");
        assert_eq!(second_sentence(luffy), "He finds Zoro in Vol. 1 of it.");
        assert_eq!(second_sentence("Only one."), "");
        assert_eq!(
            sentences("Order by 5 p.m. Eastern Time. It ships. Done"),
            ["Order by 5 p.m. Eastern Time.", "It ships.", "Done"]
        );
    }

    #[test]
    fn product_search_picks_the_requested_volume_and_cites_stock() {
        let mut r = req("is Alpha vol 2 in stock?");
        r.products = vec![product("P1", "Alpha", 1, 10), product("P2", "Alpha", 2, 2)];
        let c = compose(&r, pb::Intent::ProductSearch);
        assert!(
            c.text
                .contains("Alpha, Vol. 2 by Some Author is 1,210 yen and only 2 left"),
            "{}",
            c.text
        );
        assert_eq!(c.product_ids, vec!["P2", "P1"]);
        assert!(c.confidence >= 0.8);
    }

    #[test]
    fn comparison_uses_two_series_and_asks_when_one_is_missing() {
        let mut r = req("Alpha vs Beta");
        r.products = vec![
            product("P1", "Alpha", 1, 10),
            product("P2", "Alpha", 2, 10),
            product("P3", "Beta", 1, 0),
        ];
        let c = compose(&r, pb::Intent::Comparison);
        assert!(
            c.text.contains("Alpha is a shonen series") && c.text.contains("Beta"),
            "{}",
            c.text
        );
        assert!(c.text.contains("out of stock"), "{}", c.text);
        r.products.truncate(1);
        let c = compose(&r, pb::Intent::Comparison);
        assert!(c.text.contains("Which one"), "{}", c.text);
        // Only one of the two titles: low, so a fast answer is escalated.
        assert!(c.confidence < 0.5, "{}", c.confidence);
        r.products.clear();
        let c = compose(&r, pb::Intent::Comparison);
        assert!((0.4..=0.6).contains(&c.confidence), "{}", c.confidence);
    }

    #[test]
    fn faq_quotes_the_sentence_with_the_answer() {
        let mut r = req("how much is shipping?");
        r.documents = vec![pb::DocumentHit {
            document: Some(pb::Document {
                id: "faq-ship".into(),
                store_id: "*".into(),
                kind: "faq".into(),
                title: "Shipping".into(),
                body: "We ship from Saitama. Shipping costs 550 yen and is free from 3,500 yen. Parcels take 2 days.".into(),
                ..Default::default()
            }),
            ..Default::default()
        }];
        let c = compose(&r, pb::Intent::Faq);
        assert!(
            c.text
                .contains("\"Shipping costs 550 yen and is free from 3,500 yen.\""),
            "{}",
            c.text
        );
    }

    #[test]
    fn recommendation_refers_to_history_and_profile() {
        let mut r = req("what should I read next?");
        r.products = vec![product("P1", "Alpha", 1, 0), product("P2", "Beta", 1, 9)];
        r.history = vec![pb::Turn {
            role: "user".into(),
            text: "do you have Gamma?".into(),
            ..Default::default()
        }];
        r.profile = Some(pb::UserProfile {
            user_id: "u".into(),
            name: "Aiko Tanaka".into(),
            favourite_genres: vec!["sci_fi".into()],
            language: "en".into(),
            store_id: "manga_jp".into(),
        });
        let c = compose(&r, pb::Intent::Recommendation);
        assert!(
            c.text.contains("earlier question (\"do you have Gamma?\")"),
            "{}",
            c.text
        );
        assert!(c.text.contains("Aiko"), "{}", c.text);
        assert!(c.text.contains("sci-fi you enjoy"), "{}", c.text);
        // In-stock first.
        let beta = c.text.find("Beta, Vol. 1").unwrap();
        let alpha = c.text.find("Alpha, Vol. 1").unwrap();
        assert!(beta < alpha, "{}", c.text);
        assert_eq!(c.product_ids, vec!["P2", "P1"]);
    }

    #[test]
    fn phrasing_depends_on_query_and_session_only() {
        let a = compose(&req("hello"), pb::Intent::Greeting);
        assert_eq!(a, compose(&req("hello"), pb::Intent::Greeting));
        let texts: HashSet<String> = (0..20)
            .map(|i| {
                let mut r = req("hello");
                r.session_id = format!("s{i}");
                compose(&r, pb::Intent::Greeting).text
            })
            .collect();
        assert!(texts.len() > 1, "no variety");
    }

    #[test]
    fn confidence_is_low_where_escalation_helps_and_high_otherwise() {
        let alpha = || vec![product("P1", "Alpha", 1, 10), product("P2", "Beta", 1, 3)];
        let conf = |q: &str, intent: pb::Intent, products: Vec<pb::ProductHit>| {
            let mut r = req(q);
            r.products = products;
            compose(&r, intent)
        };
        // Grounded answers.
        for (q, intent) in [
            ("is Alpha in stock?", pb::Intent::ProductSearch),
            ("any sci-fi manga?", pb::Intent::ProductSearch),
            ("recommend something", pb::Intent::Recommendation),
            ("recommend some action manga", pb::Intent::Recommendation),
            ("Alpha vs Beta", pb::Intent::Comparison),
            ("hello", pb::Intent::Greeting),
        ] {
            let c = conf(q, intent, alpha());
            assert!(c.confidence >= 0.8, "{q}: {} ({})", c.confidence, c.reason);
            assert!(!c.reason.is_empty());
        }
        // Weak or missing context.
        let horror = conf(
            "recommend some scary manga",
            pb::Intent::Recommendation,
            alpha(),
        );
        assert!(horror.confidence < 0.5, "{}", horror.reason);
        assert!(horror.reason.contains("horror"), "{}", horror.reason);
        for (q, intent, products) in [
            (
                "do you have Zeta Force?",
                pb::Intent::ProductSearch,
                alpha(),
            ),
            ("do you have Zeta Force?", pb::Intent::ProductSearch, vec![]),
            ("recommend something", pb::Intent::Recommendation, vec![]),
            (
                "recommend something",
                pb::Intent::Recommendation,
                vec![product("P1", "Alpha", 1, 0), product("P2", "Beta", 1, 0)],
            ),
            (
                "Alpha vs Zeta",
                pb::Intent::Comparison,
                vec![product("P1", "Alpha", 1, 3)],
            ),
            ("Alpha vs Zeta", pb::Intent::Comparison, vec![]),
            ("how long does shipping take?", pb::Intent::Faq, vec![]),
            ("can I return this?", pb::Intent::ReturnRefund, vec![]),
        ] {
            let c = conf(q, intent, products);
            assert!(
                c.confidence < 0.5,
                "{q} {intent:?}: {} ({})",
                c.confidence,
                c.reason
            );
        }
        // A genre match is preferred over retrieval order.
        let mut mixed = alpha();
        if let Some(p) = mixed[1].product.as_mut() {
            p.genres = vec!["horror".into()];
        }
        let c = conf(
            "recommend some scary manga",
            pb::Intent::Recommendation,
            mixed,
        );
        assert!(c.confidence >= 0.8, "{}", c.reason);
        assert!(
            c.text.find("Beta").unwrap() < c.text.find("Alpha").unwrap(),
            "{}",
            c.text
        );
    }

    #[test]
    fn fast_tier_is_unsure_of_multi_part_questions() {
        let mut r = req("Is Alpha vol 2 in stock? And how much is Beta?");
        r.products = vec![product("P2", "Alpha", 2, 4), product("P3", "Beta", 1, 9)];
        let c = compose(&r, pb::Intent::ProductSearch);
        assert!(c.confidence >= 0.8, "{}", c.reason);
        let (fast, why) = assess(&r, pb::Intent::ProductSearch, pb::ModelTier::Fast, &c);
        assert!(fast < 0.5 && why.contains("2 parts"), "{fast} {why}");
        let (smart, _) = assess(&r, pb::Intent::ProductSearch, pb::ModelTier::Smart, &c);
        assert_eq!(smart, c.confidence);
        // One question stays as it is on the fast tier too.
        r.query = "Is Alpha vol 2 in stock?".into();
        let c = compose(&r, pb::Intent::ProductSearch);
        assert_eq!(
            assess(&r, pb::Intent::ProductSearch, pb::ModelTier::Fast, &c).0,
            c.confidence
        );
        assert_eq!(
            question_parts("recommend a romance and what ships today"),
            2
        );
        assert_eq!(question_parts("I also like action, recommend something"), 1);
    }

    #[test]
    fn detailed_style_says_more_from_the_context_and_concise_less() {
        let mut r = req("what should I read next?");
        r.products = vec![
            product("P1", "Alpha", 1, 9),
            product("P2", "Beta", 1, 2),
            product("P3", "Gamma", 1, 0),
        ];
        let standard = compose(&r, pb::Intent::Recommendation);
        let detailed = compose_styled(&r, pb::Intent::Recommendation, PromptStyle::Detailed);
        let concise = compose_styled(&r, pb::Intent::Recommendation, PromptStyle::Concise);
        let n = |c: &Composition| tokenize(&c.text).len() as f64;
        assert!(
            n(&detailed) >= n(&standard) * 1.25,
            "{} vs {}",
            detailed.text,
            standard.text
        );
        assert!(n(&concise) < n(&standard), "{}", concise.text);
        // More facts, all from the context: the second synopsis sentence and release dates.
        assert!(detailed.text.contains("More happens."), "{}", detailed.text);
        assert!(
            detailed.text.contains("Released 2020-01-01."),
            "{}",
            detailed.text
        );
        assert!(
            detailed
                .text
                .contains("Alpha and Beta can ship right away."),
            "{}",
            detailed.text
        );
        assert_eq!(detailed.product_ids, standard.product_ids);
        assert_eq!(detailed.confidence, standard.confidence);
    }
}
