//! What to pre-compute: the questions of each job and the follow-ups likely after an answer.
//! Pure functions over the catalog, so they are tested without a mesh.

use std::collections::{BTreeMap, BTreeSet};

use mangaassist_catalog::Product;
use mangaassist_followup::{Ask, Lang, Subject, standalone};
use mangaassist_proto::v1 as pb;

/// One question to answer and cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub store_id: String,
    pub question: String,
    pub intent: pb::Intent,
    pub tier: pb::ModelTier,
    /// Cache the answer only when every product in its context is in stock (genre
    /// recommendations: seed 000 scenario 4, never pre-compute a recommendation that cannot
    /// be bought).
    pub in_stock_only: bool,
    /// Unix milliseconds the answer must be gone by (a release's window); 0 = the job's TTL.
    pub until_ms: i64,
}

impl Item {
    fn new(store_id: &str, question: String, intent: pb::Intent, tier: pb::ModelTier) -> Self {
        Self {
            store_id: store_id.to_string(),
            question,
            intent,
            tier,
            in_stock_only: false,
            until_ms: 0,
        }
    }
}

pub(crate) fn genre_text(g: &str) -> String {
    match g {
        "sci_fi" => "sci-fi".into(),
        other => other.replace('_', " "),
    }
}

/// The `n` most "trending" series of a store: newest in-stock release first, more stock
/// breaking ties (a stand-in for a sales-rank feed), by the catalog's stock.
pub fn trending_series(products: &[Product], store: &str, n: usize) -> Vec<String> {
    trending_series_live(products, store, n, |p| p.stock)
}

/// [`trending_series`] with each product's live quantity from `stock`.
pub fn trending_series_live(
    products: &[Product],
    store: &str,
    n: usize,
    stock: impl Fn(&Product) -> u32,
) -> Vec<String> {
    let mut newest: BTreeMap<&str, (&str, u32)> = BTreeMap::new();
    for (p, q) in products
        .iter()
        .filter(|p| p.store_id == store)
        .map(|p| (p, stock(p)))
        .filter(|(_, q)| *q > 0)
    {
        let e = newest
            .entry(p.series.as_str())
            .or_insert((p.release_date.as_str(), q));
        if (p.release_date.as_str(), q) > *e {
            *e = (p.release_date.as_str(), q);
        }
    }
    let mut ranked: Vec<(&str, (&str, u32))> = newest.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked
        .into_iter()
        .take(n)
        .map(|(s, _)| s.to_string())
        .collect()
}

/// Demand below this (decayed answers) is noise: one answer a few half-lives ago.
pub const MIN_DEMAND: f64 = 0.5;

/// One series the trending job picked, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub series: String,
    /// Decayed answers naming one of its volumes.
    pub demand: f64,
    /// `true`: picked by demand; `false`: by release date, filling a list demand left short.
    pub by_demand: bool,
}

/// The `n` trending series of a store: those customers' answers named most lately (`demand`:
/// decayed answers per product id), in stock now; when fewer than `n` have demand (a fresh
/// store, a quiet night), the newest in-stock releases fill the list.
pub fn trending_by_demand(
    products: &[Product],
    store: &str,
    n: usize,
    stock: impl Fn(&Product) -> u32,
    demand: &std::collections::HashMap<String, f64>,
) -> Vec<Trend> {
    let mut per_series: BTreeMap<&str, (f64, bool)> = BTreeMap::new();
    for p in products.iter().filter(|p| p.store_id == store) {
        let e = per_series.entry(p.series.as_str()).or_insert((0.0, false));
        e.0 += demand.get(&p.id).copied().unwrap_or(0.0);
        e.1 |= stock(p) > 0;
    }
    let mut ranked: Vec<(&str, f64)> = per_series
        .into_iter()
        .filter(|(_, (d, in_stock))| *in_stock && *d >= MIN_DEMAND)
        .map(|(s, (d, _))| (s, d))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut out: Vec<Trend> = ranked
        .into_iter()
        .take(n)
        .map(|(s, d)| Trend {
            series: s.to_string(),
            demand: d,
            by_demand: true,
        })
        .collect();
    if out.len() < n {
        for s in trending_series_live(products, store, n, &stock) {
            if out.len() == n {
                break;
            }
            if !out.iter().any(|t| t.series == s) {
                out.push(Trend {
                    series: s,
                    demand: 0.0,
                    by_demand: false,
                });
            }
        }
    }
    out
}

/// Questions of the trending job for one store (three per series).
pub fn trending_items(products: &[Product], store: &str, n: usize) -> Vec<Item> {
    trending_items_for(store, trending_series(products, store, n))
}

/// The trending job's questions about `series`.
pub fn trending_items_for(store: &str, series: Vec<String>) -> Vec<Item> {
    series
        .into_iter()
        .flat_map(|s| {
            [
                Item::new(
                    store,
                    format!("Tell me about {s}"),
                    pb::Intent::ProductSearch,
                    pb::ModelTier::Fast,
                ),
                Item::new(
                    store,
                    format!("Is {s} in stock?"),
                    pb::Intent::ProductSearch,
                    pb::ModelTier::Fast,
                ),
                Item::new(
                    store,
                    format!("Recommend something like {s}"),
                    pb::Intent::Recommendation,
                    pb::ModelTier::Smart,
                ),
            ]
        })
        .collect()
}

/// The questions customers ask about a volume around its release, answered before it goes
/// on sale (seed 004 Q19): what it is about, whether it is in stock, its price, something
/// similar, and "when is <series> vol. N out?" (asked about the volume before it). In English,
/// and in Japanese too when the catalog has the volume's Japanese names. Each lives until
/// `until_ms`.
pub fn release_items(products: &[Product], product: &Product, until_ms: i64) -> Vec<Item> {
    let previous = products.iter().find(|p| {
        p.store_id == product.store_id
            && p.series == product.series
            && p.volume + 1 == product.volume
    });
    let mut langs = vec![Lang::En];
    if product.title_ja.is_some() || product.series_ja.is_some() {
        langs.push(Lang::Ja);
    }
    let mut out: Vec<Item> = Vec::new();
    for lang in langs {
        let mut asks = vec![
            (Ask::About, subject(product)),
            (Ask::Stock, subject(product)),
        ];
        asks.push((Ask::Price, subject(product)));
        if let Some(prev) = previous {
            asks.push((Ask::NextVolume, subject(prev)));
        }
        asks.push((Ask::Similar, subject(product)));
        for (ask, s) in asks {
            let intent = if ask.is_recommendation() {
                pb::Intent::Recommendation
            } else {
                pb::Intent::ProductSearch
            };
            let question = standalone(ask, lang, &s);
            if out.iter().any(|i| i.question == question) {
                continue;
            }
            let mut item = Item::new(&product.store_id, question, intent, pb::ModelTier::Fast);
            item.until_ms = until_ms;
            out.push(item);
        }
    }
    out
}

/// Genres that have at least one product in the store, sorted.
pub fn store_genres(products: &[Product], store: &str) -> Vec<String> {
    products
        .iter()
        .filter(|p| p.store_id == store)
        .flat_map(|p| p.genres.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Questions of the genre job for one store: one per genre, in-stock only. They are
/// retrieved like any live question (the cached answer stands in for the live one), so a
/// genre whose context holds an out-of-stock product is not pre-computed at all (seed 000
/// scenario 4: never pre-compute a recommendation that cannot be bought).
pub fn genre_items(products: &[Product], store: &str) -> Vec<Item> {
    store_genres(products, store)
        .into_iter()
        .map(|g| {
            let mut it = Item::new(
                store,
                format!("Recommend some {} manga", genre_text(&g)),
                pb::Intent::Recommendation,
                pb::ModelTier::Fast,
            );
            it.in_stock_only = true;
            it
        })
        .collect()
}

/// A predicted next question.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUp {
    pub question: String,
    pub intent: pb::Intent,
}

impl FollowUp {
    fn new(question: String, intent: pb::Intent) -> Self {
        Self { question, intent }
    }

    /// Whether the answer can be written from catalog and policies alone. Answers that need
    /// the customer's orders are pre-generated only with the orders the gateway read for
    /// this customer's answer (a cached "what is your order number?" would be worse than a
    /// live answer).
    pub fn answerable_without_account(&self) -> bool {
        !matches!(
            self.intent,
            pb::Intent::OrderStatus | pb::Intent::Complaint | pb::Intent::ReturnRefund
        )
    }
}

/// `p` as the subject of the standalone questions about it.
fn subject(p: &Product) -> Subject<'_> {
    Subject {
        title: &p.title,
        series: &p.series,
        volume: p.volume,
        title_ja: p.title_ja.as_deref(),
        series_ja: p.series_ja.as_deref(),
    }
}

/// Likely next questions after an answer of `intent` that mentioned `products`, best first,
/// without duplicates, at most `n`. After an answer about products they are the standalone
/// questions the gateway rewrites bare follow-ups into ("is it in stock?" → "Is <the first
/// product> in stock?", `mangaassist_followup`), in the customer's language, so the
/// gateway finds them by exact match.
pub fn follow_ups(
    intent: pb::Intent,
    products: &[&Product],
    lang: Lang,
    n: usize,
) -> Vec<FollowUp> {
    use pb::Intent as I;
    let mut out: Vec<FollowUp> = Vec::new();
    let about_products = matches!(intent, I::Recommendation | I::ProductSearch | I::Comparison);
    match products.first() {
        Some(p) if about_products => {
            let subject = subject(p);
            // Most asked first: a small `n` keeps the likeliest.
            for ask in [
                Ask::Stock,
                Ask::Price,
                Ask::Similar,
                Ask::NextVolume,
                Ask::About,
            ] {
                let intent = if ask.is_recommendation() {
                    I::Recommendation
                } else {
                    I::ProductSearch
                };
                out.push(FollowUp::new(standalone(ask, lang, &subject), intent));
            }
        }
        _ => {
            for &(q, i) in generic_follow_ups(intent, lang) {
                if !out.iter().any(|f| f.question == q) {
                    out.push(FollowUp::new(q.into(), i));
                }
            }
        }
    }
    out.truncate(n);
    out
}

/// The follow-ups after an answer of `intent` that name no product: the intent is not about
/// products, or the answer mentioned none.
fn generic_follow_ups(intent: pb::Intent, lang: Lang) -> &'static [(&'static str, pb::Intent)] {
    use pb::Intent as I;
    match (intent, lang) {
        // A Japanese customer asks about an order in Japanese: the answer pre-computed for
        // the English wording would never be found.
        (I::OrderStatus, Lang::Ja) => &[
            ("いつ届きますか？", I::OrderStatus),
            ("追跡番号を教えてください", I::OrderStatus),
            ("注文はキャンセルできますか？", I::Faq),
        ],
        _ => generic_follow_ups_en(intent),
    }
}

fn generic_follow_ups_en(intent: pb::Intent) -> &'static [(&'static str, pb::Intent)] {
    use pb::Intent as I;
    match intent {
        I::Recommendation => &[
            ("What's popular right now?", I::Recommendation),
            ("Recommend some fantasy manga", I::Recommendation),
            ("Recommend some romance manga", I::Recommendation),
        ],
        I::ProductSearch | I::Comparison => &[
            ("What's popular right now?", I::Recommendation),
            ("Do you have any new releases?", I::Recommendation),
        ],
        I::OrderStatus => &[
            ("When will it arrive?", I::OrderStatus),
            ("What's the tracking number?", I::OrderStatus),
            ("Can I change the delivery address?", I::Faq),
            ("Can I cancel my order?", I::Faq),
        ],
        I::Faq => &[
            ("How much is shipping?", I::Faq),
            ("What payment methods do you accept?", I::Faq),
            ("What is your return policy?", I::Faq),
        ],
        I::ReturnRefund => &[
            ("How long does a refund take?", I::Faq),
            ("Can I exchange it instead?", I::Faq),
            ("Do I pay for return shipping?", I::Faq),
        ],
        I::Complaint => &[
            ("Can I get a refund?", I::ReturnRefund),
            ("What do you do about damaged items?", I::Faq),
            ("How do I contact customer support?", I::Faq),
        ],
        I::Greeting | I::Chitchat | I::Unspecified => &[
            ("Can you recommend some manga?", I::Recommendation),
            ("What's popular right now?", I::Recommendation),
            ("Where is my order?", I::OrderStatus),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, series: &str, volume: u32, stock: u32, date: &str, genres: &[&str]) -> Product {
        Product {
            id: id.into(),
            store_id: "s".into(),
            title: format!("{series}, Vol. {volume}"),
            series: series.into(),
            volume,
            author: "A".into(),
            genres: genres.iter().map(|g| g.to_string()).collect(),
            demographic: "shonen".into(),
            synopsis: "S.".into(),
            price_yen: 500,
            stock,
            release_date: date.into(),
            series_ja: None,
            series_reading: None,
            title_ja: None,
        }
    }

    fn catalog() -> Vec<Product> {
        vec![
            p("1", "Old", 1, 5, "2001-01-01", &["drama"]),
            p("2", "New", 1, 5, "2020-01-01", &["sci_fi", "action"]),
            // Newest volume of "Gone" is out of stock: it ranks by its older in-stock one.
            p("3", "Gone", 1, 9, "2010-01-01", &["horror"]),
            p("4", "Gone", 2, 0, "2025-01-01", &["horror"]),
            p("5", "Tie", 1, 50, "2020-01-01", &["slice_of_life"]),
        ]
    }

    #[test]
    fn trending_ranks_by_newest_in_stock_release_then_stock() {
        let c = catalog();
        assert_eq!(trending_series(&c, "s", 3), vec!["Tie", "New", "Gone"]);
        assert_eq!(trending_series(&c, "other", 3), Vec::<String>::new());
        let items = trending_items(&c, "s", 1);
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].question, "Tell me about Tie");
        assert_eq!(items[2].intent, pb::Intent::Recommendation);
        assert_eq!(items[2].tier, pb::ModelTier::Smart);
    }

    #[test]
    fn trending_follows_demand_in_stock_and_fills_by_release_date() {
        let c = catalog();
        let demand: std::collections::HashMap<String, f64> = [
            ("1".to_string(), 3.0),
            // "Gone" sums both volumes, the sold-out one included: asked about, and still
            // buyable (volume 1).
            ("3".to_string(), 1.0),
            ("4".to_string(), 4.0),
            // Below the noise floor.
            ("5".to_string(), 0.2),
        ]
        .into();
        let t = trending_by_demand(&c, "s", 3, |p| p.stock, &demand);
        let picked: Vec<(&str, bool)> =
            t.iter().map(|t| (t.series.as_str(), t.by_demand)).collect();
        assert_eq!(picked, vec![("Gone", true), ("Old", true), ("Tie", false)]);
        assert!((t[0].demand - 5.0).abs() < 1e-9);
        // A series sold out everywhere is not trending however much it is asked about.
        let t = trending_by_demand(
            &c,
            "s",
            1,
            |p| if p.series == "Gone" { 0 } else { p.stock },
            &demand,
        );
        assert_eq!(t[0].series, "Old");
        // No demand at all: the release-date order.
        let none = trending_by_demand(&c, "s", 3, |p| p.stock, &Default::default());
        let s: Vec<&str> = none.iter().map(|t| t.series.as_str()).collect();
        assert_eq!(s, trending_series(&c, "s", 3));
    }

    #[test]
    fn a_release_is_asked_about_in_both_languages_with_the_volume_before_it() {
        let mut c = catalog();
        c.push(p("6", "Gone", 3, 0, "2027-01-05", &["horror"]));
        c[5].title_ja = Some("ゴーン 3".into());
        c[5].series_ja = Some("ゴーン".into());
        let items = release_items(&c, &c[5], 42);
        let qs: Vec<&str> = items.iter().map(|i| i.question.as_str()).collect();
        assert!(qs.contains(&"Is Gone, Vol. 3 in stock?"), "{qs:?}");
        // Asked about volume 2: "when is the next one out?"
        assert!(qs.contains(&"When is Gone, Vol. 3 out?"), "{qs:?}");
        assert!(qs.iter().any(|q| q.contains("ゴーン")), "{qs:?}");
        assert!(items.iter().all(|i| i.until_ms == 42 && i.store_id == "s"));
        assert_eq!(
            items
                .iter()
                .filter(|i| i.intent == pb::Intent::Recommendation)
                .count(),
            2
        );
        // A first volume has no volume before it; a store without Japanese names, no Japanese.
        let first = release_items(&c, &c[0], 1);
        assert_eq!(first.len(), 4, "{first:?}");
    }

    #[test]
    fn genre_items_ask_for_every_genre() {
        let items = genre_items(&catalog(), "s");
        let qs: Vec<&str> = items.iter().map(|i| i.question.as_str()).collect();
        assert_eq!(
            qs,
            vec![
                "Recommend some action manga",
                "Recommend some drama manga",
                "Recommend some horror manga",
                "Recommend some sci-fi manga",
                "Recommend some slice of life manga"
            ]
        );
        assert!(
            items
                .iter()
                .all(|i| i.intent == pb::Intent::Recommendation && i.in_stock_only)
        );
    }

    #[test]
    fn follow_ups_are_the_standalone_questions_about_the_first_product() {
        let c = catalog();
        let refs: Vec<&Product> = c.iter().take(2).collect();
        let f = follow_ups(pb::Intent::Recommendation, &refs, Lang::En, 3);
        let qs: Vec<&str> = f.iter().map(|f| f.question.as_str()).collect();
        assert_eq!(
            qs,
            vec![
                "Is Old, Vol. 1 in stock?",
                "What is the price of Old, Vol. 1?",
                "Recommend something like Old"
            ]
        );
        assert_eq!(f[2].intent, pb::Intent::Recommendation);
        let all = follow_ups(pb::Intent::ProductSearch, &refs, Lang::Ja, 10);
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].question, "Old, Vol. 1の在庫はありますか？");
        assert_eq!(all[3].question, "Oldの2巻はいつ発売ですか？");
        let o = follow_ups(pb::Intent::OrderStatus, &[], Lang::En, 3);
        assert_eq!(o[0].question, "When will it arrive?");
        assert!(!o[0].answerable_without_account());
        assert!(!o[1].answerable_without_account());
        assert!(o[2].answerable_without_account());
        let ja = follow_ups(pb::Intent::OrderStatus, &[], Lang::Ja, 3);
        assert_eq!(ja[0].question, "いつ届きますか？");
        for i in pb::Intent::ALL {
            assert!(!follow_ups(i, &[], Lang::En, 3).is_empty(), "{i:?}");
        }
    }
}
