//! Japanese in, Japanese out: for every intent, a Japanese question with realistic context
//! (the shipped catalog, documents and orders) is answered entirely in Japanese, with the
//! product facts in Japanese form, the same products and the same confidence as an English
//! answer from the same context, and within the intent's token budget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use futures::StreamExt;
use mangaassist_catalog::{Catalog, load_orders, load_users};
use mangaassist_config::Config;
use mangaassist_generation::{Composition, GenerationDaemon, PromptStyle, compose_styled};
use mangaassist_proto::v1 as pb;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

struct Data {
    catalog: Catalog,
    orders: Vec<pb::Order>,
    kenji: pb::UserProfile,
}

fn data() -> Data {
    let catalog = Catalog::load(&data_dir()).unwrap();
    let users = load_users(&data_dir().join("users/users.jsonl")).unwrap();
    let orders = load_orders(
        &data_dir().join("users/orders.jsonl"),
        &users,
        &catalog.products,
    )
    .unwrap()
    .iter()
    .filter(|o| o.user_id == "u-demo")
    .map(Into::into)
    .collect();
    let kenji = users
        .iter()
        .find(|u| u.user_id == "u-kenji")
        .unwrap()
        .into();
    Data {
        catalog,
        orders,
        kenji,
    }
}

impl Data {
    fn product(&self, series: &str, volume: u32) -> pb::ProductHit {
        let p = self
            .catalog
            .products
            .iter()
            .find(|p| p.store_id == "manga_jp" && p.series == series && p.volume == volume)
            .unwrap();
        pb::ProductHit {
            product: Some(p.into()),
            score: 0.5,
            ..Default::default()
        }
    }

    fn document(&self, id: &str) -> pb::DocumentHit {
        let d = self.catalog.documents.iter().find(|d| d.id == id).unwrap();
        pb::DocumentHit {
            document: Some(d.into()),
            score: 0.5,
            ..Default::default()
        }
    }
}

/// One intent's Japanese question and the context retrieval and memory would give it.
struct Case {
    intent: pb::Intent,
    req: pb::GenerateRequest,
    /// Facts the answer must state, in Japanese form.
    facts: &'static [&'static str],
}

fn request(query: &str, intent: pb::Intent) -> pb::GenerateRequest {
    pb::GenerateRequest {
        query: query.into(),
        intent: intent as i32,
        tier: pb::ModelTier::Fast as i32,
        store_id: "manga_jp".into(),
        session_id: "s-ja".into(),
        user_id: "u-demo".into(),
        locale: "ja".into(),
        ..Default::default()
    }
}

fn cases(d: &Data) -> Vec<Case> {
    use pb::Intent as I;
    let one_piece = || vec![d.product("One Piece", 1), d.product("One Piece", 2)];
    let mut out = Vec::new();
    let mut case = |query: &str, intent, facts, fill: &dyn Fn(&mut pb::GenerateRequest)| {
        let mut req = request(query, intent);
        fill(&mut req);
        out.push(Case { intent, req, facts });
    };
    case("こんにちは", I::Greeting, &["Kenjiさん"], &|r| {
        r.profile = Some(d.kenji.clone());
    });
    case(
        "送料はいくらですか？",
        I::Faq,
        &["550円", "3,500円"],
        &|r| {
            r.documents = vec![
                d.document("faq-shipping-domestic-jp"),
                d.document("faq-shipping-international"),
            ];
        },
    );
    case(
        "MA-100234の注文はいつ届きますか？",
        I::OrderStatus,
        &[
            "MA-100234",
            "ヤマト運輸",
            "4512-3345-9981",
            "2026年11月25日",
            "ONE PIECE 1",
        ],
        &|r| {
            r.orders = d.orders.clone();
            r.products = one_piece();
        },
    );
    case(
        "ONE PIECEの2巻はありますか？",
        I::ProductSearch,
        &["ONE PIECE 2", "495円", "在庫あり", "残りわずか（あと1冊）"],
        &|r| {
            r.products = vec![
                d.product("One Piece", 1),
                d.product("One Piece", 2),
                d.product("One Piece", 3),
            ];
        },
    );
    case(
        "ファンタジーのおすすめはありますか？",
        I::Recommendation,
        &["葬送のフリーレン 1", "506円", "在庫あり"],
        &|r| {
            r.products = vec![
                d.product("Frieren: Beyond Journey's End", 1),
                d.product("One Piece", 1),
                d.product("Dandadan", 1),
            ];
            r.profile = Some(d.kenji.clone());
        },
    );
    case(
        "ONE PIECEとNARUTOはどう違いますか？",
        I::Comparison,
        &["ONE PIECE", "NARUTO -ナルト-", "495円", "506円"],
        &|r| r.products = vec![d.product("One Piece", 1), d.product("Naruto", 1)],
    );
    case(
        "届いた本のページが破れていました",
        I::Complaint,
        &["申し訳ございません", "MA-100251", "準備中"],
        &|r| {
            r.documents = vec![d.document("policy-damaged-items")];
            r.orders = d.orders.clone();
        },
    );
    case(
        "MA-100198の本を返品できますか？",
        I::ReturnRefund,
        &["14日以内", "MA-100198", "配達完了"],
        &|r| {
            r.documents = vec![d.document("policy-returns-jp")];
            r.orders = d.orders.clone();
        },
    );
    case(
        "ありがとうございました！",
        I::Chitchat,
        &["お気軽に"],
        &|_| {},
    );
    case("今日はいい天気ですね", I::Unspecified, &["漫画"], &|_| {});
    out
}

/// Runs of three or more English words in `text` once the names it may quote as they are
/// (product titles, series, authors, ids, order numbers, tracking numbers) are taken out.
/// Words are runs of ASCII letters; two are consecutive when only spaces and ASCII
/// punctuation stand between them.
fn english_runs(text: &str, req: &pb::GenerateRequest) -> Vec<String> {
    let mut names: Vec<String> = vec!["MangaAssist".into()];
    for p in req.products.iter().filter_map(|h| h.product.as_ref()) {
        names.extend(
            [
                &p.title,
                &p.title_ja,
                &p.series,
                &p.series_ja,
                &p.author,
                &p.id,
            ]
            .map(String::clone),
        );
    }
    for o in &req.orders {
        names.extend([o.order_id.clone(), o.tracking.clone()]);
        names.extend(o.items.iter().map(|i| i.title.clone()));
    }
    names.retain(|n| !n.is_empty());
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut rest = text.to_string();
    for n in &names {
        rest = rest.replace(n.as_str(), "\u{3000}");
    }
    let mut runs = Vec::new();
    let mut run: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut gap_ok = true;
    for c in rest.chars().chain(['\u{3000}']) {
        if c.is_ascii_alphabetic() || (!word.is_empty() && matches!(c, '\'' | '-')) {
            if word.is_empty() && !gap_ok {
                if run.len() >= 3 {
                    runs.push(run.join(" "));
                }
                run.clear();
            }
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            run.push(std::mem::take(&mut word));
            gap_ok = true;
        }
        if !(c == ' ' || (c.is_ascii_punctuation() && c != '\'')) {
            gap_ok = false;
        }
    }
    if run.len() >= 3 {
        runs.push(run.join(" "));
    }
    runs
}

fn is_japanese(text: &str) -> bool {
    mangaassist_domain::language::detect(text) == Some(mangaassist_domain::Lang::Ja)
}

#[test]
fn the_english_checker_finds_runs_and_spares_names() {
    let req = pb::GenerateRequest {
        products: vec![pb::ProductHit {
            product: Some(pb::Product {
                title: "Frieren: Beyond Journey's End, Vol. 1".into(),
                author: "Kanehito Yamada, Tsukasa Abe".into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(
        english_runs("これは in stock now です", &req),
        ["in stock now"]
    );
    assert_eq!(
        english_runs("It's a shonen series.", &req),
        ["It's a shonen series"]
    );
    assert!(
        english_runs(
            "『Frieren: Beyond Journey's End, Vol. 1』（Kanehito Yamada, Tsukasa Abe）",
            &req
        )
        .is_empty()
    );
    assert!(english_runs("VisaやAmerican Express、Diners Club", &req).is_empty());
    assert!(english_runs("in stock、only 3 left", &req).is_empty());
}

/// The facts of every catalog product a product answer names: its Japanese title, price and
/// stock wording.
fn assert_product_facts(c: &Composition, req: &pb::GenerateRequest, case: &str) {
    for id in &c.product_ids {
        let Some(p) = req
            .products
            .iter()
            .filter_map(|h| h.product.as_ref())
            .find(|p| &p.id == id)
        else {
            continue; // an order line's product, not in the catalog context
        };
        let price = format!("{}円", thousands(p.price_yen));
        let stock = match p.stock {
            0 => "在庫切れ".to_string(),
            1..=4 => format!("残りわずか（あと{}冊）", p.stock),
            _ => "在庫あり".to_string(),
        };
        assert!(
            c.text.contains(&price),
            "{case}: {price} of {id}: {}",
            c.text
        );
        assert!(
            c.text.contains(&stock),
            "{case}: {stock} of {id}: {}",
            c.text
        );
        assert!(
            c.text.contains(&p.title_ja),
            "{case}: {} : {}",
            p.title_ja,
            c.text
        );
    }
}

fn thousands(n: u32) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[test]
fn every_intent_answers_a_japanese_question_in_japanese() {
    let d = data();
    for case in cases(&d) {
        let name = format!("{:?} {}", case.intent, case.req.query);
        for style in [
            PromptStyle::Standard,
            PromptStyle::Detailed,
            PromptStyle::Concise,
        ] {
            let c = compose_styled(&case.req, case.intent, style);
            assert!(is_japanese(&c.text), "{name} {style:?}: {}", c.text);
            let runs = english_runs(&c.text, &case.req);
            assert!(runs.is_empty(), "{name} {style:?}: {runs:?} in {}", c.text);
            if style != PromptStyle::Concise {
                for fact in case.facts {
                    assert!(
                        c.text.contains(fact),
                        "{name} {style:?}: {fact} in {}",
                        c.text
                    );
                }
            }
            if matches!(
                case.intent,
                pb::Intent::ProductSearch | pb::Intent::Recommendation | pb::Intent::Comparison
            ) {
                assert_product_facts(&c, &case.req, &name);
            }
            // The same context answered in English names the same products and is as sure.
            let english = compose_styled(
                &pb::GenerateRequest {
                    locale: "en".into(),
                    ..case.req.clone()
                },
                case.intent,
                style,
            );
            assert!(!is_japanese(&english.text), "{name}: {}", english.text);
            assert_eq!(c.product_ids, english.product_ids, "{name} {style:?}");
            assert_eq!(c.confidence, english.confidence, "{name} {style:?}");
            assert_eq!(c.reason, english.reason, "{name} {style:?}");
            assert_eq!(
                c.personal_context, english.personal_context,
                "{name} {style:?}"
            );
        }
        // Deterministic for the question and the session.
        let again = compose_styled(&case.req, case.intent, PromptStyle::Standard);
        assert_eq!(
            again,
            compose_styled(&case.req, case.intent, PromptStyle::Standard)
        );
    }
}

#[test]
fn thin_context_is_said_in_japanese_too() {
    use pb::Intent as I;
    let d = data();
    for (query, intent, degradation) in [
        ("ONE PIECEの10巻はありますか？", I::ProductSearch, ""),
        ("ONE PIECEの10巻はありますか？", I::ProductSearch, "no_rag"),
        ("ホラー漫画のおすすめは？", I::Recommendation, ""),
        ("ホラー漫画のおすすめは？", I::Recommendation, "no_rag"),
        ("ONE PIECEとNARUTOの違いは？", I::Comparison, ""),
        ("送料はいくらですか？", I::Faq, ""),
        ("送料はいくらですか？", I::Faq, "no_rag"),
        ("返品したいです", I::ReturnRefund, ""),
        ("注文はどこですか？", I::OrderStatus, ""),
        ("注文はどこですか？", I::OrderStatus, "no_orders"),
        ("本が破れていました", I::Complaint, ""),
    ] {
        let mut req = request(query, intent);
        req.degradation = degradation.into();
        let c = compose_styled(&req, intent, PromptStyle::Standard);
        let name = format!("{intent:?} {query} {degradation}");
        assert!(is_japanese(&c.text), "{name}: {}", c.text);
        assert!(english_runs(&c.text, &req).is_empty(), "{name}: {}", c.text);
        let english = compose_styled(
            &pb::GenerateRequest {
                locale: "en".into(),
                ..req.clone()
            },
            intent,
            PromptStyle::Standard,
        );
        assert_eq!(c.confidence, english.confidence, "{name}");
        assert!(c.product_ids.is_empty(), "{name}");
    }
    // A volume that is not in context, and products of another genre, are doubted as in
    // English, so the quality gate can escalate.
    let mut req = request("ONE PIECEの10巻はありますか？", I::ProductSearch);
    req.products = vec![d.product("One Piece", 1), d.product("One Piece", 2)];
    let c = compose_styled(&req, I::ProductSearch, PromptStyle::Standard);
    assert!(c.text.contains("10巻"), "{}", c.text);
    assert!(c.confidence < 0.5, "{} {}", c.confidence, c.reason);
    let mut req = request("ホラー漫画のおすすめは？", I::Recommendation);
    req.products = vec![d.product("One Piece", 1), d.product("Naruto", 1)];
    let c = compose_styled(&req, I::Recommendation, PromptStyle::Standard);
    assert!(
        c.confidence < 0.5 && c.reason.contains("horror"),
        "{}",
        c.reason
    );
    // A title the products are not: 進撃の巨人 asked, ONE PIECE found.
    let mut req = request("進撃の巨人の1巻はありますか？", I::ProductSearch);
    req.products = vec![d.product("One Piece", 1)];
    let c = compose_styled(&req, I::ProductSearch, PromptStyle::Standard);
    assert!(c.confidence < 0.5, "{} {}", c.confidence, c.reason);
    req.products = vec![d.product("Attack on Titan", 1)];
    let c = compose_styled(&req, I::ProductSearch, PromptStyle::Standard);
    assert!(c.confidence >= 0.8, "{} {}", c.confidence, c.reason);
}

#[test]
fn a_document_without_japanese_text_is_pointed_to_not_quoted() {
    let d = data();
    let mut req = request("アメリカの送料は？", pb::Intent::Faq);
    req.documents = vec![d.document("faq-shipping-domestic-us")];
    assert!(
        req.documents[0]
            .document
            .as_ref()
            .unwrap()
            .body_ja
            .is_empty()
    );
    let c = compose_styled(&req, pb::Intent::Faq, PromptStyle::Detailed);
    assert!(c.text.contains("ヘルプページ"), "{}", c.text);
    assert!(english_runs(&c.text, &req).is_empty(), "{}", c.text);
    assert!(!c.text.contains("USPS"), "{}", c.text);
}

#[test]
fn the_gateway_decides_the_language_not_the_script() {
    let d = data();
    let products = vec![d.product("One Piece", 1), d.product("One Piece", 2)];
    // English at the Japanese store stays English.
    let mut req = request("Is One Piece vol 2 in stock?", pb::Intent::ProductSearch);
    req.locale = "en".into();
    req.products = products.clone();
    let english = compose_styled(&req, pb::Intent::ProductSearch, PromptStyle::Standard);
    assert!(!is_japanese(&english.text), "{}", english.text);
    assert!(english.text.contains("One Piece, Vol. 2") && english.text.contains("495 yen"));
    // The same English words with `ja` (say, a customer whose page is in Japanese): Japanese.
    req.locale = "ja".into();
    let japanese = compose_styled(&req, pb::Intent::ProductSearch, PromptStyle::Standard);
    assert!(is_japanese(&japanese.text), "{}", japanese.text);
    assert!(japanese.text.contains("ONE PIECE 2") && japanese.text.contains("495円"));
    assert!(
        english_runs(&japanese.text, &req).is_empty(),
        "{}",
        japanese.text
    );
    assert_eq!(japanese.product_ids, english.product_ids);
    // A locale from the gateway is not the customer's own context; a profile language is.
    let mut req = request("hello", pb::Intent::Greeting);
    req.profile = Some(pb::UserProfile {
        language: "ja".into(),
        ..Default::default()
    });
    req.locale = String::new();
    let c = compose_styled(&req, pb::Intent::Greeting, PromptStyle::Standard);
    assert!(is_japanese(&c.text) && c.personal_context, "{}", c.text);
    req.profile = None;
    req.locale = "ja".into();
    let c = compose_styled(&req, pb::Intent::Greeting, PromptStyle::Standard);
    assert!(is_japanese(&c.text) && !c.personal_context, "{}", c.text);
}

#[tokio::test]
async fn japanese_answers_fit_each_intents_token_budget() {
    let d = data();
    let mut config = Config::default();
    config.generation.prompts_dir = data_dir().join("prompts");
    config.generation.latency_profile = "zero".parse().unwrap();
    let daemon = GenerationDaemon::new(&config).await.unwrap();
    // The daemon asks for an intent (the gateway always sends one).
    for case in cases(&d)
        .into_iter()
        .filter(|c| c.intent != pb::Intent::Unspecified)
    {
        let mut s = daemon.start(case.req.clone()).unwrap();
        let mut text = String::new();
        let mut done = None;
        while let Some(ev) = s.next().await {
            match ev.unwrap().event.unwrap() {
                pb::generate_response::Event::Delta(t) => text.push_str(&t.text),
                pb::generate_response::Event::Done(x) => done = Some(x),
                pb::generate_response::Event::Assessment(_) => {}
            }
        }
        let done = done.unwrap();
        assert_eq!(done.stop_reason, "end_turn", "{:?}: {text}", case.intent);
        assert!(is_japanese(&text));
    }
}
