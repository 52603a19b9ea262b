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

use std::{collections::HashSet, time::Duration};

use futures::StreamExt;
use mangaassist_config::{GenerationSettings, LatencyProfile, TierProfile};
use mangaassist_proto::v1 as pb;
use rand::Rng;
use tokio::time::Instant;

use crate::{
    ModelBackend, ModelDone, ModelEvent, ModelStream, PromptStyle, RenderedPrompt, StopReason,
    tokens::{has_japanese, tokenize},
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
}

fn yen(price: u32) -> String {
    let digits = price.to_string();
    let mut s = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
    }
    format!("{s} yen")
}

fn stock_phrase(stock: u32) -> String {
    match stock {
        0 => "out of stock".into(),
        1..=4 => format!("only {stock} left"),
        _ => "in stock".into(),
    }
}

fn genre_text(g: &str) -> String {
    match g {
        "sci_fi" => "sci-fi".into(),
        other => other.replace('_', " "),
    }
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn first_sentence(text: &str) -> &str {
    let end = text
        .char_indices()
        .find(|&(i, c)| {
            (c == '.' && text[i + 1..].starts_with(' ') && !is_abbreviation(&text[..i]))
                || c == '!'
                || c == '?'
                || c == '。'
        })
        .map_or(text.len(), |(i, c)| i + c.len_utf8());
    text[..end].trim()
}

/// True when the word ending `before` is an initial ("Monkey D. Luffy") or a common
/// abbreviation, so the period after it does not end a sentence.
fn is_abbreviation(before: &str) -> bool {
    let word = before.rsplit(char::is_whitespace).next().unwrap_or("");
    let mut chars = word.chars();
    let initial = matches!((chars.next(), chars.next()), (Some(c), None) if c.is_uppercase());
    // "a.m." and "e.g." carry their own inner period.
    initial
        || word.contains('.')
        || ["Vol", "Mr", "Mrs", "Ms", "Dr", "St", "Jr", "No", "vs"].contains(&word)
}

/// The sentences of `text`, split as [`first_sentence`] does.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let s = first_sentence(rest);
        if s.is_empty() {
            break;
        }
        out.push(s);
        rest = rest[rest.find(s).map_or(rest.len(), |i| i + s.len())..].trim_start();
    }
    out
}

/// The sentence after the first one (empty when there is none).
fn second_sentence(text: &str) -> &str {
    let text = text.trim();
    let first = first_sentence(text);
    first_sentence(text[first.len()..].trim())
}

fn words(text: &str) -> HashSet<String> {
    const STOP: [&str; 24] = [
        "the", "a", "an", "is", "are", "do", "does", "you", "your", "i", "my", "me", "to", "of",
        "for", "in", "on", "and", "or", "can", "what", "how", "it", "with",
    ];
    // A four-letter prefix is a cheap stem: "ship" matches "shipping", "refund" "refunds".
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.len() > 1 && !STOP.contains(&w.as_str()))
        .map(|w| w.chars().take(4).collect())
        .collect()
}

fn asks_for_a_number(query: &str) -> bool {
    let q = query.to_lowercase();
    [
        "how much", "how long", "how many", "cost", "fee", "price", "days", "when",
    ]
    .iter()
    .any(|w| q.contains(w))
}

fn asks_for_money(query: &str) -> bool {
    let q = query.to_lowercase();
    ["how much", "cost", "fee", "price", "charge", "pay"]
        .iter()
        .any(|w| q.contains(w))
}

/// The document sentence sharing the most words with the query (first sentence on a tie).
fn best_sentence(query: &str, body: &str) -> String {
    let q = words(query);
    let numeric = asks_for_a_number(query);
    let money = asks_for_money(query);
    let mut best = (0usize, String::new());
    for sentence in sentences(body) {
        let s = sentence.trim();
        let lower = s.to_lowercase();
        let mut score = 2 * words(s).intersection(&q).count();
        // Questions about amounts are answered by the sentence that has the amount.
        if numeric && s.chars().any(|c| c.is_ascii_digit()) {
            score += 2;
        }
        if money
            && ["cost", "fee", "free", "yen", "$"]
                .iter()
                .any(|w| lower.contains(w))
        {
            score += 1;
        }
        if best.1.is_empty() || score > best.0 {
            best = (score, s.to_string());
        }
    }
    best.1
}

fn requested_volume(query: &str) -> Option<u32> {
    let q = query.to_lowercase();
    let toks: Vec<&str> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    for (i, t) in toks.iter().enumerate() {
        if let Some(rest) = t.strip_prefix("vol")
            && let Ok(n) = rest.trim_start_matches("ume").parse::<u32>()
        {
            return Some(n);
        }
        if matches!(*t, "vol" | "volume" | "v")
            && let Some(n) = toks.get(i + 1).and_then(|n| n.parse().ok())
        {
            return Some(n);
        }
    }
    None
}

/// Words of a shopping question that name nothing (as [`words`] stems them).
const GENERIC_WORDS: &str = "have has had stock stocks manga mangas volume volumes vol vols buy \
    buying price prices much many available availability any anything there looking look find \
    search want wants sell sells selling carry carries got get does did some something title \
    titles series book books comic comics read reading next new release released releases \
    latest also please show tell know this that these those edition editions copy copies cheap \
    cheapest expensive all by from about who wrote written write still left sale store shop here \
    which where why when will would could should need like good best recommend suggest their \
    they them its we us our yes no not be been if at as so up out order japanese english \
    language version print physical set box complete first last part number yen cost costs \
    hi hello thanks thank interested else other more another similar kind type sort genre story \
    stories check see copy";

/// Genre and audience labels a question asks for, from everyday words ("scary" is horror).
fn requested_tags(query: &str) -> Vec<&'static str> {
    const TAGS: &[(&str, &[&str])] = &[
        (
            "comedy",
            &["comedy", "funny", "humor", "humour", "hilarious", "laugh"],
        ),
        (
            "action",
            &["action", "fight", "fighting", "battle", "battles"],
        ),
        ("drama", &["drama", "dramatic"]),
        ("romance", &["romance", "romantic", "love story"]),
        ("adventure", &["adventure", "adventures", "journey"]),
        ("fantasy", &["fantasy", "magic", "wizard", "dragons"]),
        (
            "slice_of_life",
            &["slice of life", "cozy", "cosy", "relaxing", "wholesome"],
        ),
        (
            "supernatural",
            &["supernatural", "ghost", "ghosts", "yokai", "spirits"],
        ),
        ("school", &["school", "high school", "classroom"]),
        (
            "sci_fi",
            &[
                "sci-fi",
                "scifi",
                "sci fi",
                "science fiction",
                "robot",
                "robots",
                "mecha",
                "space",
            ],
        ),
        (
            "historical",
            &["historical", "history", "samurai", "feudal"],
        ),
        ("horror", &["horror", "scary", "creepy", "terrifying"]),
        ("psychological", &["psychological", "mind games"]),
        (
            "mystery",
            &["mystery", "mysteries", "detective", "whodunit"],
        ),
        ("martial_arts", &["martial arts", "kung fu", "karate"]),
        (
            "sports",
            &[
                "sports",
                "sport",
                "soccer",
                "football",
                "basketball",
                "volleyball",
                "baseball",
                "tennis",
                "boxing",
            ],
        ),
        ("cooking", &["cooking", "food", "cuisine", "chef"]),
        ("thriller", &["thriller", "suspense", "suspenseful"]),
        ("music", &["music", "band", "musician"]),
        ("isekai", &["isekai", "another world", "reincarnated"]),
        ("workplace", &["workplace", "office", "work life"]),
        ("shonen", &["shonen", "shounen"]),
        ("seinen", &["seinen"]),
        ("shojo", &["shojo", "shoujo"]),
        ("josei", &["josei"]),
        ("kodomo", &["kodomo", "kids", "children", "child"]),
    ];
    let q = format!(
        " {} ",
        query
            .to_lowercase()
            .chars()
            .map(|c| if c.is_alphanumeric() || c == '-' {
                c
            } else {
                ' '
            })
            .collect::<String>()
    );
    TAGS.iter()
        .filter(|(_, cues)| cues.iter().any(|c| q.contains(&format!(" {c} "))))
        .map(|(tag, _)| *tag)
        .collect()
}

/// Words of `query` that could name a title, an author or a genre.
fn naming_words(query: &str) -> HashSet<String> {
    let generic = words(GENERIC_WORDS);
    words(query)
        .into_iter()
        .filter(|w| !generic.contains(w) && !w.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// False when the question names things and none of them occurs in any product (title,
/// series, author, genres, audience, synopsis): retrieval brought back something else.
fn matches_product(query: &str, products: &[&pb::Product]) -> bool {
    let naming = naming_words(query);
    let tags = requested_tags(query);
    if naming.is_empty() && tags.is_empty() {
        return true;
    }
    products.iter().any(|p| {
        let text = format!(
            "{} {} {} {} {} {}",
            p.title,
            p.series,
            p.author,
            p.genres
                .iter()
                .map(|g| genre_text(g))
                .collect::<Vec<_>>()
                .join(" "),
            p.demographic,
            p.synopsis
        );
        !words(&text).is_disjoint(&naming)
            || tags
                .iter()
                .any(|t| p.genres.iter().any(|g| g == t) || p.demographic == *t)
    })
}

/// False when a question of two or more naming words shares none with `text`.
fn matches_any_word(query: &str, text: &str) -> bool {
    let naming = naming_words(query);
    naming.len() < 2 || !words(text).is_disjoint(&naming)
}

/// Rough count of the questions in one message ("Is X in stock? And how much is Y?" is 2).
fn question_parts(query: &str) -> usize {
    const JOINS: [&str; 14] = [
        " and what ",
        " and how ",
        " and when ",
        " and where ",
        " and which ",
        " and is ",
        " and are ",
        " and do ",
        " and does ",
        " and can ",
        " and will ",
        " and also ",
        ". also ",
        "; ",
    ];
    let q = format!(" {} ", query.to_lowercase());
    let marks = q.matches(['?', '？']).count();
    let joins = JOINS.iter().filter(|j| q.contains(**j)).count();
    let mut parts = marks.max(1).max(1 + joins);
    if q.split_whitespace().count() > 40 {
        parts = parts.max(2);
    }
    parts
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

impl<'a> Writer<'a> {
    fn pick<'s>(&self, salt: u64, options: &[&'s str]) -> &'s str {
        let h = fnv1a(&[&self.hash.to_string(), &salt.to_string()]);
        let n = u64::try_from(options.len()).unwrap_or(1).max(1);
        options[usize::try_from(h % n).unwrap_or(0)]
    }

    fn line(&mut self, s: &str) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push(' ');
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

    fn favourite_genres(&self) -> Vec<String> {
        let genres = self
            .req
            .profile
            .as_ref()
            .map(|p| p.favourite_genres.iter().map(|g| genre_text(g)).collect())
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

    fn describe(&self, p: &pb::Product) -> String {
        format!(
            "{} by {} ({}, {})",
            p.title,
            p.author,
            yen(p.price_yen),
            stock_phrase(p.stock)
        )
    }

    fn quote_policy(&mut self, salt: u64) -> bool {
        let docs = self.documents();
        let Some(d) = docs.first() else {
            return false;
        };
        let sentence = best_sentence(&self.req.query, &d.body);
        let intro = self.pick(
            salt,
            &[
                "According to our \"{t}\" page:",
                "Our \"{t}\" policy says:",
                "From \"{t}\":",
            ],
        );
        self.line(&format!(
            "{} \"{sentence}\"",
            intro.replace("{t}", &d.title)
        ));
        true
    }

    fn order_items(&self, o: &pb::Order) -> String {
        let titles: Vec<String> = o.items.iter().map(|i| i.title.clone()).collect();
        if titles.len() > 3 {
            format!("{}, {} and {} more", titles[0], titles[1], titles.len() - 2)
        } else {
            join_and(&titles)
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
        let active = |o: &&pb::Order| {
            matches!(
                o.status.as_str(),
                "out_for_delivery" | "shipped" | "processing"
            )
        };
        orders
            .iter()
            .filter(active)
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

    fn order_sentence(&self, o: &pb::Order) -> String {
        let items = self.order_items(o);
        let id = &o.order_id;
        match o.status.as_str() {
            "shipped" => format!(
                "Your order {id} ({items}) has shipped with {}. The tracking number is {}, and it should arrive by {}.",
                o.carrier, o.tracking, o.eta
            ),
            "out_for_delivery" => format!(
                "Good news: your order {id} ({items}) is out for delivery with {} and should arrive today ({}). Tracking number: {}.",
                o.carrier, o.eta, o.tracking
            ),
            "processing" => format!(
                "Your order {id} ({items}) is still processing and has not shipped yet; the current estimate is {}.",
                o.eta
            ),
            "delivered" => format!(
                "Your order {id} ({items}) was delivered on {}{}.",
                o.eta,
                if o.carrier.is_empty() {
                    String::new()
                } else {
                    format!(" by {}", o.carrier)
                }
            ),
            "returned" => format!(
                "Your order {id} ({items}) has been returned; it reached us on {}.",
                o.eta
            ),
            "cancelled" => {
                format!("Your order {id} ({items}) was cancelled, so nothing will ship.")
            }
            other => format!(
                "Your order {id} ({items}) is currently {}.",
                other.replace('_', " ")
            ),
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

    /// Detailed style: the synopsis beyond its first sentence (one more sentence).
    fn more_synopsis(&mut self, p: &pb::Product) {
        let second = second_sentence(&p.synopsis);
        if !second.is_empty() {
            self.line(second);
        }
    }

    /// Detailed style: the other policy sentences that share words with the question.
    fn more_policy(&mut self) {
        let docs = self.documents();
        let Some(d) = docs.first() else {
            return;
        };
        let quoted = best_sentence(&self.req.query, &d.body);
        let q = words(&self.req.query);
        let extra: Vec<&str> = sentences(&d.body)
            .into_iter()
            .filter(|s| *s != quoted && *s != first_sentence(&d.body))
            .filter(|s| !words(s).is_disjoint(&q))
            .take(2)
            .collect();
        for s in extra {
            self.line(s);
        }
        if let Some(d2) = docs.get(1) {
            let s = best_sentence(&self.req.query, &d2.body);
            self.line(&format!("Also see \"{}\": \"{s}\"", d2.title));
        }
    }

    /// Detailed style: when the order was placed and exactly what is in it.
    fn order_details(&mut self, o: &pb::Order) {
        let items: Vec<String> = o
            .items
            .iter()
            .map(|i| format!("{} x{} ({})", i.title, i.quantity, yen(i.price_yen)))
            .collect();
        if !items.is_empty() {
            self.line(&format!(
                "It was placed on {} and contains {}.",
                o.placed_at,
                join_and(&items)
            ));
        }
    }

    fn greeting(&mut self) -> f32 {
        let name = self.first_name();
        // "Welcome back" says the customer was here before: only with their name (which
        // already makes the answer personal).
        let opener = match (name, self.req.history.is_empty()) {
            (Some(n), true) => self
                .pick(
                    1,
                    &[
                        "Hello {n}, welcome to MangaAssist!",
                        "Hi {n}! Great to see you.",
                        "Welcome, {n}!",
                    ],
                )
                .replace("{n}", n),
            (Some(n), false) => format!("Welcome back, {n}!"),
            (None, _) => self
                .pick(
                    1,
                    &[
                        "Hello, welcome to MangaAssist!",
                        "Hi there, welcome!",
                        "Hello!",
                    ],
                )
                .to_string(),
        };
        self.line(&opener);
        self.line(self.pick(
            2,
            &[
                "I can help you find a title, suggest what to read next, check on an order, or answer questions about shipping and returns.",
                "Ask me about any series, for a recommendation, about an order, or about shipping, payment and returns.",
            ],
        ));
        let genres = self.favourite_genres();
        if !genres.is_empty() {
            let g = join_and(&genres.iter().take(2).cloned().collect::<Vec<_>>());
            self.line(&format!(
                "If you're in the mood for some {g}, just say the word."
            ));
        }
        self.closing(
            3,
            &["What can I do for you today?", "What are you looking for?"],
        );
        self.because(0.9, "a greeting needs no context")
    }

    fn chitchat(&mut self) -> f32 {
        let q = self.req.query.to_lowercase();
        let has = |ws: &[&str]| ws.iter().any(|w| q.contains(w));
        if has(&["thank", "arigato", "ありがと", "thx"]) {
            self.line(self.pick(1, &["You're very welcome!", "Happy to help!", "Anytime!"]));
            self.closing(
                2,
                &["If anything else comes up, about manga or your orders, just ask."],
            );
        } else if has(&["bye", "see you", "sayonara", "またね", "good night"]) {
            self.line(self.pick(
                1,
                &[
                    "Goodbye, and happy reading!",
                    "See you soon, enjoy your manga!",
                ],
            ));
        } else if has(&[
            "who are you",
            "your name",
            "are you a bot",
            "are you human",
            "what are you",
        ]) {
            self.line("I'm MangaAssist, the store's AI shopping assistant.");
            self.line("I can find titles, suggest what to read next, check orders and explain store policies.");
        } else if has(&["joke"]) {
            self.line(self.pick(
                1,
                &[
                    "Why did the manga go to the doctor? It had too many cliffhangers and not enough resolution.",
                    "I'd tell you a joke about an unfinished manga series, but it's still on hiatus.",
                ],
            ));
            self.closing(2, &["Now, can I help you find something to read?"]);
        } else {
            self.line(self.pick(
                1,
                &[
                    "That's a fun question!",
                    "I enjoy a good chat.",
                    "Ha, I hear you.",
                ],
            ));
            self.line("I'm best at manga, though: finding titles, recommendations, orders and store questions. What can I help with?");
        }
        self.because(0.85, "small talk needs no context")
    }

    fn faq(&mut self) -> f32 {
        if self.quote_policy(1) {
            let docs = self.documents();
            let mut on_topic = true;
            if let Some(d) = docs.first() {
                let extra = first_sentence(&d.body).to_string();
                let quoted = best_sentence(&self.req.query, &d.body);
                if !extra.is_empty() && extra != quoted {
                    self.line(&extra);
                }
                on_topic = matches_any_word(&self.req.query, &format!("{} {}", d.title, d.body));
            }
            if self.detailed() {
                self.more_policy();
            }
            self.closing(
                2,
                &[
                    "Let me know if you need anything else.",
                    "Is there anything else I can help with?",
                    "Happy to explain anything else about the store.",
                ],
            );
            if !on_topic {
                return self.because(
                    0.45,
                    "the policy page found shares no words with the question",
                );
            }
            return self.because(0.9, "quoted the store policy");
        }
        if self.degraded {
            self.line("I can't reach our help articles right now, so I don't want to guess at the exact policy.");
        } else {
            self.line("I couldn't find a store policy that answers that exactly, and I don't want to guess.");
        }
        self.line("Customer support can confirm the details from the Help page, or try asking me in a different way.");
        self.because(0.45, "no policy document in context")
    }

    fn order_status(&mut self) -> f32 {
        let Some(o) = self.pick_order() else {
            if self.degraded {
                self.line("I can't reach order records right now.");
            } else {
                self.line(self.pick(
                    1,
                    &[
                        "I'd be glad to check on that.",
                        "Let me look that up for you.",
                    ],
                ));
            }
            self.line("Could you tell me your order number? It starts with MA- followed by six digits and is in your confirmation email.");
            return self.because(0.8, "asked for the order number instead of guessing");
        };
        let s = self.order_sentence(o);
        self.line(&s);
        self.mention_order(o);
        if self.detailed() {
            self.order_details(o);
        }
        let others: Vec<String> = self
            .req
            .orders
            .iter()
            .filter(|x| {
                x.order_id != o.order_id
                    && matches!(
                        x.status.as_str(),
                        "out_for_delivery" | "shipped" | "processing"
                    )
            })
            .map(|x| format!("{} ({})", x.order_id, x.status.replace('_', " ")))
            .collect();
        if !others.is_empty() {
            self.line(&format!("You also have {} on the way.", join_and(&others)));
        }
        self.closing(
            2,
            &[
                "Anything else I can check for you?",
                "Let me know if you need help with anything else.",
            ],
        );
        self.because(0.92, "answered from the order record")
    }

    fn no_catalog(&mut self) -> f32 {
        if self.degraded {
            self.line("I can't look up the catalog right now, so I can't confirm titles, prices or stock.");
        } else {
            self.line("I couldn't find a match for that in this store's catalog.");
        }
        let genres = self.favourite_genres();
        if genres.is_empty() {
            self.line("Tell me a series, an author or a genre you like and I'll search again; the store's New Releases page is also a good place to browse.");
        } else {
            let g = join_and(&genres.iter().take(2).cloned().collect::<Vec<_>>());
            self.line(&format!(
                "Since you enjoy {g}, browsing those genres on the store page is a good start, and I can check stock for anything you find."
            ));
        }
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

    fn product_search(&mut self) -> f32 {
        let products = self.products();
        if products.is_empty() {
            return self.no_catalog();
        }
        let wanted = requested_volume(&self.req.query);
        let exact = wanted.and_then(|v| {
            products
                .iter()
                .find(|p| p.volume == v && p.series == products[0].series)
                .copied()
        });
        let best = exact.unwrap_or(products[0]);
        let missing_volume = wanted.filter(|_| exact.is_none());
        if let Some(v) = missing_volume {
            self.line(&format!(
                "I couldn't find volume {v} among this store's results."
            ));
        }
        let intro = if missing_volume.is_some() {
            "Here's the closest match: "
        } else {
            self.pick(1, &["", "Yes, we carry it: ", "Here's what I found: "])
        };
        let mut s = format!(
            "{intro}{} by {} is {} and {}.",
            best.title,
            best.author,
            yen(best.price_yen),
            if best.stock == 0 {
                "currently out of stock".to_string()
            } else {
                stock_phrase(best.stock)
            }
        );
        if let Some(c) = s.get(..1) {
            let upper = c.to_uppercase();
            s.replace_range(..1, &upper);
        }
        self.line(&s);
        self.mention(best);
        let genres: Vec<String> = best.genres.iter().map(|g| genre_text(g)).collect();
        self.line(&format!(
            "It's a {} series ({}).",
            best.demographic,
            join_and(&genres)
        ));
        if best.volume == 1 {
            self.line(first_sentence(&best.synopsis));
        }
        if self.detailed() {
            if best.volume == 1 {
                self.more_synopsis(best);
            } else {
                self.line(first_sentence(&best.synopsis));
            }
            self.line(&format!("It was released on {}.", best.release_date));
        }
        let others: Vec<&pb::Product> = products
            .iter()
            .copied()
            .filter(|p| p.id != best.id)
            .take(if self.detailed() { 4 } else { 2 })
            .collect();
        if !others.is_empty() {
            let described: Vec<String> = others.iter().map(|p| self.describe(p)).collect();
            self.line(&format!("I also found {}.", join_and(&described)));
            for p in others {
                self.mention(p);
            }
        }
        if best.stock == 0 {
            self.line("Would you like an in-stock alternative?");
        }
        if !matches_product(&self.req.query, &products) {
            return self.because(
                0.45,
                "the products retrieved match none of the names or genres asked for",
            );
        }
        if let Some(v) = missing_volume {
            return self.because(0.48, format!("volume {v} is not among the products found"));
        }
        self.grounded("answered from matching catalog products")
    }

    fn recommendation(&mut self) -> f32 {
        let products = self.products();
        if products.is_empty() {
            return self.no_catalog();
        }
        let q = self.req.query.to_lowercase();
        // "Something like X" should not answer with X itself when there are alternatives.
        let mut candidates: Vec<&pb::Product> = products
            .iter()
            .copied()
            .filter(|p| !q.contains(&p.series.to_lowercase()))
            .collect();
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
        let name = self.first_name();
        let mut intro = self
            .pick(
                1,
                &[
                    "Here are a few picks{for}:",
                    "I'd suggest these{for}:",
                    "These could be a good fit{for}:",
                ],
            )
            .replace(
                "{for}",
                &name.map(|n| format!(" for you, {n}")).unwrap_or_default(),
            );
        if let Some(prev) = self.previous_question() {
            let short: String = prev.chars().take(60).collect();
            let ell = if prev.chars().count() > 60 { "..." } else { "" };
            intro = format!(
                "Following on from your earlier question (\"{short}{ell}\"), {}",
                lower_first(&intro)
            );
        }
        let favourites: Vec<String> = self
            .req
            .profile
            .as_ref()
            .map(|p| p.favourite_genres.clone())
            .unwrap_or_default();
        let favourites = self.personal(favourites, |f: &Vec<String>| !f.is_empty());
        self.line(&intro);
        self.newline();
        for p in &picks {
            let genres: Vec<String> = p.genres.iter().take(3).map(|g| genre_text(g)).collect();
            let liked: Vec<String> = p
                .genres
                .iter()
                .filter(|g| favourites.contains(g))
                .map(|g| genre_text(g))
                .collect();
            let why = if liked.is_empty() {
                format!("a {} {} story", p.demographic, join_and(&genres))
            } else {
                format!(
                    "{} you enjoy, in a {} series",
                    join_and(&liked),
                    p.demographic
                )
            };
            let mut synopsis = if p.volume == 1 && self.style != PromptStyle::Concise {
                format!(" {}", first_sentence(&p.synopsis))
            } else {
                String::new()
            };
            if self.detailed() {
                let second = second_sentence(&p.synopsis);
                if p.volume != 1 {
                    synopsis = format!(" {}", first_sentence(&p.synopsis));
                } else if !second.is_empty() {
                    synopsis = format!("{synopsis} {second}");
                }
                synopsis = format!("{synopsis} Released {}.", p.release_date);
            }
            self.out.push_str(&format!(
                "- {} by {}: {why}.{synopsis} {}, {}.\n",
                p.title,
                p.author,
                yen(p.price_yen),
                stock_phrase(p.stock)
            ));
            self.mention(p);
        }
        let all_out = picks.iter().all(|p| p.stock == 0);
        if all_out {
            self.line("All of these are out of stock at the moment, sorry about that.");
        } else if self.detailed() {
            let ready: Vec<String> = picks
                .iter()
                .filter(|p| p.stock > 0)
                .map(|p| p.series.clone())
                .collect();
            self.line(&format!("{} can ship right away.", join_and(&ready)));
        }
        self.closing(
            2,
            &[
                "Want more details on any of these?",
                "Shall I check the next volumes for you?",
                "Let me know if you'd like something different.",
            ],
        );
        if !asked.is_empty() && !picks.iter().any(|p| fits(p)) {
            return self.because(
                0.45,
                format!(
                    "no product in context is {} as asked",
                    join_and(&asked.iter().map(|t| genre_text(t)).collect::<Vec<_>>())
                ),
            );
        }
        if all_out {
            return self.because(0.48, "every candidate in context is out of stock");
        }
        self.grounded("recommended from catalog products in context")
    }

    fn comparison(&mut self) -> f32 {
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
                if self.quote_policy(1) {
                    return self.because(0.45, "no catalog products to compare");
                }
                self.no_catalog()
            }
            [a] => {
                self.line(&format!(
                    "I found {}, a {} series: {}",
                    self.describe(a),
                    a.demographic,
                    first_sentence(&a.synopsis)
                ));
                self.mention(a);
                if self.detailed() {
                    self.more_synopsis(a);
                }
                self.line("I couldn't find the other title in this store. Which one would you like to compare it with?");
                self.because(0.45, "only one of the titles to compare is in context")
            }
            [a, b, ..] => {
                let ga: Vec<String> = a.genres.iter().map(|g| genre_text(g)).collect();
                let gb: Vec<String> = b.genres.iter().map(|g| genre_text(g)).collect();
                self.line(&format!(
                    "{} is a {} series by {} ({}), while {} is a {} series by {} ({}).",
                    a.series,
                    a.demographic,
                    a.author,
                    join_and(&ga),
                    b.series,
                    b.demographic,
                    b.author,
                    join_and(&gb)
                ));
                if self.detailed() {
                    for p in [a, b] {
                        self.line(&format!(
                            "{} (released {}): {}",
                            p.title,
                            p.release_date,
                            first_sentence(&p.synopsis)
                        ));
                    }
                }
                let shared: Vec<String> = ga.iter().filter(|g| gb.contains(g)).cloned().collect();
                if shared.is_empty() {
                    self.line("They have little in common in genre, so it comes down to taste.");
                } else {
                    self.line(&format!("Both offer {}.", join_and(&shared)));
                }
                self.line(&format!(
                    "Here, {} is {} ({}) and {} is {} ({}).",
                    a.title,
                    yen(a.price_yen),
                    stock_phrase(a.stock),
                    b.title,
                    yen(b.price_yen),
                    stock_phrase(b.stock)
                ));
                self.mention(a);
                self.mention(b);
                let only_a = ga.iter().find(|g| !gb.contains(g)).unwrap_or(&ga[0]);
                let only_b = gb.iter().find(|g| !ga.contains(g)).unwrap_or(&gb[0]);
                self.line(&format!(
                    "If you want more {only_a}, start with {}; for more {only_b}, go with {}.",
                    a.series, b.series
                ));
                self.grounded("compared two catalog series from context")
            }
        }
    }

    fn complaint(&mut self) -> f32 {
        self.line(self.pick(
            1,
            &[
                "I'm really sorry about this; that's not the experience we want you to have.",
                "I'm sorry, that must be frustrating.",
                "Thank you for telling us, and I'm sorry this happened.",
            ],
        ));
        if let Some(o) = self.pick_order() {
            let items = self.order_items(o);
            self.line(&format!(
                "I can see your order {} ({items}), currently {}.",
                o.order_id,
                o.status.replace('_', " ")
            ));
            self.mention_order(o);
            if self.detailed() {
                self.order_details(o);
            }
        }
        if self.quote_policy(2) && self.detailed() {
            self.more_policy();
        }
        self.line(self.pick(
            3,
            &[
                "If you'd like, I can start a replacement or refund request, or connect you with our support team.",
                "I can raise this with our support team right away, or help you request a replacement or refund.",
            ],
        ));
        self.because(0.85, "apologised and offered the standard remedies")
    }

    fn return_refund(&mut self) -> f32 {
        let quoted = self.quote_policy(1);
        if quoted && self.detailed() {
            self.more_policy();
        }
        match self.pick_order() {
            Some(o) => {
                let items = self.order_items(o);
                self.line(&format!(
                    "Your order {} ({items}) is {}.",
                    o.order_id,
                    o.status.replace('_', " ")
                ));
                self.mention_order(o);
                if self.detailed() {
                    self.order_details(o);
                }
                self.line("If it is within the return window, I can start the request for you; the refund goes back to your original payment method.");
            }
            None => {
                self.line("Which order is it? Please share the order number (MA- followed by six digits) and I'll check whether it can be returned.");
            }
        }
        if quoted {
            self.because(0.88, "quoted the return policy")
        } else {
            self.because(0.48, "no return policy document in context")
        }
    }
}

fn lower_first(s: &str) -> String {
    if s.starts_with("I'") || s.starts_with("I ") {
        return s.to_string();
    }
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Writes the simulated model's answer for `req` (deterministic for a query and session).
pub fn compose(req: &pb::GenerateRequest, intent: pb::Intent) -> Composition {
    compose_styled(req, intent, PromptStyle::Standard)
}

/// [`compose`] for a prompt's `#! style`: `detailed` adds facts from the context (more of a
/// synopsis, release dates, order lines, further policy sentences), `concise` leaves out
/// closing pleasantries. Neither adds anything the context does not hold.
pub fn compose_styled(
    req: &pb::GenerateRequest,
    intent: pb::Intent,
    style: PromptStyle,
) -> Composition {
    let mut w = Writer {
        req,
        personal: std::cell::Cell::new(false),
        hash: fnv1a(&[req.query.trim(), &req.session_id]),
        out: String::new(),
        mentioned: Vec::new(),
        degraded: !req.degradation.is_empty() && req.degradation != "full",
        style,
        reason: String::new(),
    };
    // Japanese because the customer's profile says so is their preference, not the question's.
    let japanese_profile = req.profile.as_ref().is_some_and(|p| p.language == "ja");
    let japanese = has_japanese(&req.query) || w.personal(japanese_profile, |j| *j);
    if japanese {
        let hello = if intent == pb::Intent::Greeting {
            "こんにちは！"
        } else {
            "いらっしゃいませ！"
        };
        w.out.push_str(hello);
        w.out.push('\n');
    }
    let confidence = match intent {
        pb::Intent::Greeting => w.greeting(),
        pb::Intent::Faq => w.faq(),
        pb::Intent::OrderStatus => w.order_status(),
        pb::Intent::ProductSearch => w.product_search(),
        pb::Intent::Recommendation => w.recommendation(),
        pb::Intent::Comparison => w.comparison(),
        pb::Intent::Complaint => w.complaint(),
        pb::Intent::ReturnRefund => w.return_refund(),
        pb::Intent::Chitchat | pb::Intent::Unspecified => w.chitchat(),
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
