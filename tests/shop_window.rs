//! The shop window over a real WebSocket against an in-process mesh: progress statuses per
//! phase, product cards with the answer (and again on resume), stock updates of shown cards,
//! the owner-checked conversation history, the storefront list, and Japanese everything at
//! the Japanese storefront.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Answer, TestMesh, WsClient};
use mangaassist_client::InventoryClient;
use mangaassist_proto::v1 as pb;
use mangaassist_protocol::{
    ClientFrame, ErrorCode, Phase, ProductCard, ServerFrame, StockLevel, parse_server_frame,
};
use serde_json::{Value, json};

fn statuses(a: &Answer) -> Vec<(Option<Phase>, Option<String>, String, String)> {
    a.frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Status {
                phase,
                intent,
                text,
                lang,
                ..
            } => Some((*phase, intent.clone(), text.clone(), lang.clone())),
            _ => None,
        })
        .collect()
}

fn cards(a: &Answer) -> Vec<ProductCard> {
    a.frames
        .iter()
        .find_map(|f| match f {
            ServerFrame::Products { products, .. } => Some(products.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn japanese(s: &str) -> bool {
    // Kana and CJK ideographs.
    s.chars()
        .any(|c| matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x9fff))
}

fn quiet(c: &mut mangaassist_config::Config) {
    c.gateway.predict_follow_ups = false;
    c.gateway.limits.user_messages_per_minute = 0;
    c.gateway.limits.connection_messages_per_second = 0;
}

#[tokio::test]
async fn a_recommendation_shows_its_phases_then_cards_then_done() {
    let m = TestMesh::start_with(&[], quiet).await;
    let mut c = WsClient::connect(&m.ws_url_as("u-demo")).await;
    let a = c
        .ask_in("Suggest manga like One Piece", "s-cards", "comics_us")
        .await;
    let done = a.done().clone();
    assert_eq!(done.intent, "recommendation");
    // Status first, phases in order, each once; the intent is named once it is known.
    assert_eq!(a.types()[0], "status");
    let st = statuses(&a);
    let phases: Vec<Option<Phase>> = st.iter().map(|s| s.0).collect();
    assert_eq!(
        phases,
        [
            Some(Phase::Understanding),
            Some(Phase::Searching),
            Some(Phase::Writing)
        ]
    );
    assert_eq!(st[0].1, None);
    assert_eq!(st[1].1.as_deref(), Some("recommendation"));
    assert_eq!(st[1].2, "Searching the catalog…");
    assert!(st.iter().all(|s| s.3 == "en" && !japanese(&s.2)), "{st:?}");
    // The cards come right before `done`, one per named product, in the answer's order.
    let types = a.types();
    assert_eq!(&types[types.len() - 2..], ["products", "done"]);
    let shown = cards(&a);
    let ids: Vec<&str> = shown.iter().map(|c| c.id.as_str()).collect();
    assert!(!ids.is_empty());
    assert_eq!(
        ids,
        done.product_ids
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    let catalog = mangaassist_catalog::Catalog::load(&common::repo().join("data")).unwrap();
    for card in &shown {
        let p = catalog
            .products
            .iter()
            .find(|p| p.id == card.id && p.store_id == "comics_us")
            .expect("a card of this store's catalog");
        assert_eq!(card.title, p.title);
        assert_eq!(card.price, p.price_yen);
        assert!(card.price_text.ends_with(" yen"), "{card:?}");
        assert_eq!(card.stock, StockLevel::of(p.stock));
        assert_eq!(card.currency, "JPY");
    }
    // A resume from the start replays the chunks, the cards and `done`.
    c.resume("s-cards", &done.message_id, None).await;
    let mut replayed = vec![];
    loop {
        let f = c.next_frame().await;
        let end = f.is_terminal();
        replayed.push(f);
        if end {
            break;
        }
    }
    let replay = Answer { frames: replayed };
    assert_eq!(replay.text(), a.text());
    assert_eq!(cards(&replay), shown);
    // Asked again: a cached answer has its cards too (read from the catalog).
    m.wait_for_turns("s-cards", "u-demo", 2).await;
    let until = std::time::Instant::now() + Duration::from_secs(20);
    for round in 0.. {
        let session = format!("s-cards-{round}");
        let again = c
            .ask_in("Suggest manga like One Piece", &session, "comics_us")
            .await;
        if again.done().cache_hit {
            assert_eq!(
                cards(&again).iter().map(|c| &c.id).collect::<Vec<_>>(),
                again.done().product_ids.iter().collect::<Vec<_>>()
            );
            assert!(!cards(&again).is_empty());
            break;
        }
        assert!(std::time::Instant::now() < until, "never cached");
        // The cache write goes with the turn save, after `done`.
        m.wait_for_turns(&session, "u-demo", 2).await;
    }
    m.stop().await;
}

#[tokio::test]
async fn the_japanese_storefront_speaks_japanese() {
    let m = TestMesh::start_with(&["generation=error:1.0"], quiet).await;
    let mut c = WsClient::connect(&m.ws_url_as("u-demo")).await;
    // No model: the canned answer, in the customer's language.
    let a = c
        .ask_in("ワンピースみたいな漫画のおすすめは？", "s-ja", "manga_jp")
        .await;
    let st = statuses(&a);
    assert!(st.iter().all(|s| s.3 == "ja" && japanese(&s.2)), "{st:?}");
    assert_eq!(a.done().degradation, "canned");
    assert!(japanese(&a.text()), "{}", a.text());
    // An English question at the same store is answered in English.
    let en = c
        .ask_in("Suggest manga like One Piece", "s-ja", "manga_jp")
        .await;
    assert!(statuses(&en).iter().all(|s| s.3 == "en"));
    assert!(!japanese(&en.text()), "{}", en.text());
    m.stop().await;
}

#[tokio::test]
async fn japanese_cards_use_the_japanese_names_and_yen_sign() {
    let m = TestMesh::start_with(&[], quiet).await;
    let mut c = WsClient::connect(&m.ws_url_as("u-demo")).await;
    let a = c
        .ask_in("ワンピースの1巻の値段は？", "s-ja-cards", "manga_jp")
        .await;
    let shown = cards(&a);
    assert!(!shown.is_empty(), "{:?}", a.types());
    let catalog = mangaassist_catalog::Catalog::load(&common::repo().join("data")).unwrap();
    for card in &shown {
        let p = catalog
            .products
            .iter()
            .find(|p| p.id == card.id && p.store_id == "manga_jp")
            .unwrap();
        assert_eq!(&card.title, p.title_ja.as_ref().unwrap_or(&p.title));
        assert!(card.price_text.ends_with('円'), "{card:?}");
    }
    m.stop().await;
}

#[tokio::test]
async fn a_shown_product_gets_its_stock_updates_and_others_do_not() {
    let m = TestMesh::start_with(&[], quiet).await;
    let mesh = &m.mesh().config.mesh;
    let inv = InventoryClient::connect_with(
        &mesh.retrieval.endpoint,
        mangaassist_client::service_tokens(mesh, "test").unwrap(),
    )
    .unwrap();
    let mut shopper = WsClient::connect(&m.ws_url_as("u-demo")).await;
    let mut other = WsClient::connect(&m.ws_url_as("u-other")).await;
    let a = shopper
        .ask_in("Suggest manga like One Piece", "s-stock", "comics_us")
        .await;
    let shown = cards(&a)[0].clone();
    let set = |q: u32, id: String| {
        let inv = inv.clone();
        async move {
            inv.set_stock(
                pb::SetStockRequest {
                    store_id: "comics_us".into(),
                    changes: vec![pb::StockChange {
                        product_id: id,
                        quantity: q,
                        price_yen: None,
                    }],
                    source: "test".into(),
                },
                Duration::from_secs(5),
            )
            .await
            .unwrap()
        }
    };
    set(0, shown.id.clone()).await;
    let f = loop {
        match shopper.next_frame().await {
            ServerFrame::Stock(u) => break u,
            ServerFrame::Heartbeat { .. } => continue,
            f => panic!("unexpected {f:?}"),
        }
    };
    assert_eq!(f.product_id, shown.id);
    assert_eq!((f.stock, f.quantity), (StockLevel::SoldOut, 0));
    assert_eq!(f.price, shown.price);
    assert_eq!(f.price_text, shown.price_text);
    // The other customer was shown nothing: a ping is answered with nothing before it.
    other.send(&ClientFrame::Ping {}).await;
    assert!(matches!(other.next_frame().await, ServerFrame::Pong));
    // A product never shown on the connection sends nothing either.
    let catalog = mangaassist_catalog::Catalog::load(&common::repo().join("data")).unwrap();
    let unseen = catalog
        .products
        .iter()
        .find(|p| p.store_id == "comics_us" && !a.done().product_ids.contains(&p.id))
        .unwrap();
    set(1, unseen.id.clone()).await;
    set(3, shown.id.clone()).await;
    match shopper.next_frame().await {
        ServerFrame::Stock(u) => {
            assert_eq!(u.product_id, shown.id, "only the shown product");
            assert_eq!(u.stock, StockLevel::LowStock);
        }
        f => panic!("unexpected {f:?}"),
    }
    m.stop().await;
}

#[tokio::test]
async fn history_shows_the_conversation_to_its_owner_only() {
    let m = TestMesh::start_with(&[], quiet).await;
    let mut c = WsClient::connect(&m.ws_url_as("u-demo")).await;
    let first = c.ask("Hello!", "s-hist").await;
    let second = c.ask("What is your return policy?", "s-hist").await;
    m.wait_for_turns("s-hist", "u-demo", 4).await;
    c.send_json(json!({"action":"history","session_id":"s-hist"}))
        .await;
    let ServerFrame::History { session_id, turns } = c.next_frame().await else {
        panic!("no history frame")
    };
    assert_eq!(session_id, "s-hist");
    let roles: Vec<&str> = turns.iter().map(|t| t.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert_eq!(turns[0].text, "Hello!");
    assert_eq!(turns[1].message_id, first.done().message_id);
    assert_eq!(turns[3].text, second.text());
    assert_eq!(turns[3].intent.as_deref(), Some("faq"));
    assert_eq!(turns[2].intent, None, "a question carries no intent");
    assert!(turns.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
    // `limit` keeps the newest turns.
    c.send_json(json!({"action":"history","session_id":"s-hist","limit":2}))
        .await;
    let ServerFrame::History { turns: last, .. } = c.next_frame().await else {
        panic!()
    };
    assert_eq!(last, turns[2..]);
    // Someone else asking for it is refused, in words and in code.
    let mut thief = WsClient::connect(&m.ws_url_as("u-thief")).await;
    thief
        .send_json(json!({"action":"history","session_id":"s-hist"}))
        .await;
    let f = thief.next_frame().await;
    assert_eq!(common::error_code(&f), Some(ErrorCode::Forbidden), "{f:?}");
    // A bad request is refused and the connection keeps serving.
    thief.send_json(json!({"action":"history","limit":0})).await;
    assert_eq!(
        common::error_code(&thief.next_frame().await),
        Some(ErrorCode::BadRequest)
    );
    thief.send(&ClientFrame::Ping {}).await;
    assert!(matches!(thief.next_frame().await, ServerFrame::Pong));
    m.stop().await;
}

#[tokio::test]
async fn history_says_so_when_memory_is_down() {
    let m = TestMesh::start_with(&["memory=error:1.0"], quiet).await;
    let mut c = WsClient::connect(&m.ws_url_as("u-demo")).await;
    c.send_json(json!({"action":"history"})).await;
    let f = c.next_frame().await;
    assert_eq!(
        common::error_code(&f),
        Some(ErrorCode::Unavailable),
        "{f:?}"
    );
    m.stop().await;
}

#[tokio::test]
async fn the_storefront_list_is_public_and_names_each_locale() {
    let m = TestMesh::start(&[]).await;
    let url = format!("{}stores", m.mesh().gateway_url().unwrap());
    let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(body["default_store"], "manga_jp");
    let stores = body["stores"].as_array().unwrap();
    let jp = stores.iter().find(|s| s["id"] == "manga_jp").unwrap();
    assert_eq!(jp["locale"], "ja");
    assert_eq!(jp["currency"], "JPY");
    // Internal settings stay inside.
    assert!(jp.get("cost_center").is_none() && jp.get("tone").is_none());
    assert!(
        stores
            .iter()
            .any(|s| s["id"] == "comics_us" && s["locale"] == "en")
    );
    m.stop().await;
}

/// Connection-level frames belong to no answer and end none.
#[tokio::test]
async fn connection_frames_belong_to_no_answer() {
    for raw in [
        r#"{"type":"stock","store_id":"s","product_id":"p","stock":"sold_out","quantity":0,"price":1,"price_text":"1 yen"}"#,
        r#"{"type":"history","session_id":"s","turns":[]}"#,
    ] {
        let f = parse_server_frame(raw).unwrap();
        assert!(f.message_id().is_none() && !f.is_terminal());
    }
}

/// `mangaassist chat` (the real binary) prints a line per card after the answer.
#[tokio::test]
async fn the_cli_chat_prints_the_product_cards() {
    let m = TestMesh::start_with(&[], quiet).await;
    let url = m.ws_url();
    let token = m.token("u-demo");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mangaassist"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("MANGAASSIST_CONFIG")
            .args([
                "chat",
                "--url",
                &url,
                "--token",
                &token,
                "--store",
                "comics_us",
                "--timeout",
                "20s",
                "Suggest manga like One Piece",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cards: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  • ")).collect();
    assert!(!cards.is_empty(), "{stdout}");
    for line in cards {
        assert!(line.contains(" yen — ") && line.ends_with(']'), "{line}");
    }
    m.stop().await;
}
