//! Follow-ups in the customer's words, end to end: after an answer about a product, "is it in
//! stock?" is rewritten into the standalone question about that product, served from the
//! answer precompute wrote for this session, and says what a live answer would (same
//! product, same stock); once the product sells out, no follow-up offers it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Answer, TestMesh, WsClient};
use mangaassist_client::{CacheClient, InventoryClient};
use mangaassist_proto::v1 as pb;

fn presents_as_available(a: &Answer, title: &str) -> bool {
    a.text()
        .lines()
        .any(|l| l.contains(title) && !l.contains("out of stock"))
}

/// Polls the cache until this session's exact answer to `question` is there.
async fn until_cached(cache: &CacheClient, question: &str, session: &str, user: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let r = cache
            .lookup(
                pb::LookupRequest {
                    text: question.into(),
                    store_id: "manga_jp".into(),
                    user_id: user.into(),
                    session_id: session.into(),
                    embedding: None,
                    semantic_threshold: 0.0,
                },
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        if r.hit && r.kind == pb::HitKind::Exact as i32 {
            return;
        }
        assert!(
            Instant::now() < until,
            "`{question}` was never pre-computed"
        );
        // Polling the cache for the background write.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_bare_follow_up_is_served_precomputed_about_the_product_shown() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.predict_follow_ups = true;
        c.gateway.limits.user_messages_per_minute = 0;
        c.gateway.limits.connection_messages_per_second = 0;
    })
    .await;
    let mesh = &m.mesh().config.mesh;
    let tokens = mangaassist_client::service_tokens(mesh, "test").unwrap();
    let cache = CacheClient::connect_with(&mesh.cache.endpoint, tokens.clone()).unwrap();
    let inv = InventoryClient::connect_with(&mesh.retrieval.endpoint, tokens).unwrap();
    let (user, session) = ("u-demo", "s-follow");
    let mut c = WsClient::connect(&m.ws_url_as(user)).await;

    let first = c
        .ask(
            "Can you tell me about Frieren: Beyond Journey's End, volume 1?",
            session,
        )
        .await;
    let focus = first.done().product_ids.first().cloned().expect("products");
    let stock = inv
        .get_stock(
            pb::GetStockRequest {
                store_id: "manga_jp".into(),
                product_ids: vec![focus.clone()],
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap()
        .stock[0]
        .clone();
    assert!(stock.quantity > 0, "{stock:?}");
    let standalone = format!("Is {} in stock?", stock.title);
    until_cached(&cache, &standalone, session, user).await;

    let hit = c.ask("is it in stock?", session).await;
    let d = hit.done();
    assert_eq!(d.served_from, "precomputed", "{}", hit.text());
    assert_eq!(d.product_ids.first(), Some(&focus));
    assert!(presents_as_available(&hit, &stock.title), "{}", hit.text());
    // The same question from another customer's session is not theirs to read.
    let mut other = WsClient::connect(&m.ws_url_as("u-other")).await;
    let theirs = other.ask("is it in stock?", "s-other").await;
    assert_eq!(theirs.done().served_from, "live");

    // Sold out: the pre-computed "in stock" answer is gone, the live one says so.
    inv.set_stock(
        pb::SetStockRequest {
            store_id: "manga_jp".into(),
            changes: vec![pb::StockChange {
                product_id: focus.clone(),
                quantity: 0,
                price_yen: None,
            }],
            source: "test".into(),
        },
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let after = c.ask("is it in stock?", session).await;
    assert!(
        !presents_as_available(&after, &stock.title),
        "served from {}: {}",
        after.done().served_from,
        after.text()
    );
    assert_eq!(after.done().product_ids.first(), Some(&focus));
    assert!(after.text().contains("out of stock"), "{}", after.text());
    m.stop().await;
}

/// What customers ask about reaches the trending job: the gateway reports the products its
/// answers named, and precompute ranks the asked-about series first.
#[tokio::test]
async fn asked_about_series_become_trending() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.demand_report_seconds = 1;
        c.gateway.limits.user_messages_per_minute = 0;
        c.gateway.limits.connection_messages_per_second = 0;
    })
    .await;
    let mesh = &m.mesh().config.mesh;
    let tokens = mangaassist_client::service_tokens(mesh, "test").unwrap();
    let precompute =
        mangaassist_client::PrecomputeClient::connect_with(&mesh.precompute.endpoint, tokens)
            .unwrap();
    let mut c = WsClient::connect(&m.ws_url_as("u-demo")).await;
    let a = c
        .ask(
            "Can you tell me about Frieren: Beyond Journey's End, volume 1?",
            "s-trend",
        )
        .await;
    assert!(!a.done().product_ids.is_empty());
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let t = precompute
            .trending(
                pb::TrendingRequest {
                    store_id: "manga_jp".into(),
                    limit: 3,
                },
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        if let Some(first) = t.series.first()
            && first.reason == "demand"
        {
            assert!(first.series.contains("Frieren"), "{t:?}");
            break;
        }
        assert!(
            Instant::now() < until,
            "demand never reached precompute: {t:?}"
        );
        // Polling for the gateway's next report.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After an order question, "when will it arrive?" is answered from the customer's own
/// orders, pre-computed into their session: the same answer the live path gives, and
/// nobody else's.
#[tokio::test]
async fn an_order_follow_up_is_precomputed_for_that_customer_only() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.predict_follow_ups = true;
        c.gateway.limits.user_messages_per_minute = 0;
        c.gateway.limits.connection_messages_per_second = 0;
    })
    .await;
    let mesh = &m.mesh().config.mesh;
    let tokens = mangaassist_client::service_tokens(mesh, "test").unwrap();
    let cache = CacheClient::connect_with(&mesh.cache.endpoint, tokens).unwrap();
    let mut c = WsClient::connect(&m.ws_url_as("u-demo")).await;
    let first = c.ask("Where is my order?", "s-order").await;
    assert!(first.text().contains("MA-"), "{}", first.text());
    until_cached(&cache, "When will it arrive?", "s-order", "u-demo").await;
    let served = c.ask("When will it arrive?", "s-order").await;
    assert_eq!(
        served.done().served_from,
        "precomputed",
        "{:?}",
        served.done()
    );
    // The live answer to the same question in a new session of the same customer.
    let live = c.ask("When will it arrive?", "s-order-live").await;
    assert_eq!(live.done().served_from, "live");
    // The same facts; the simulated model varies only its closing sentence.
    let facts = |t: String| t.rsplit_once(". ").map(|(f, _)| f.to_string()).unwrap_or(t);
    assert_eq!(facts(served.text()), facts(live.text()));
    assert!(served.text().contains("MA-100251"), "{}", served.text());
    // Another customer asking the same words gets their own answer, not u-demo's orders.
    let mut other = WsClient::connect(&m.ws_url_as("u-aiko")).await;
    let theirs = other.ask("When will it arrive?", "s-aiko").await;
    assert_eq!(theirs.done().served_from, "live");
    assert!(!theirs.text().contains("MA-100251"), "{}", theirs.text());
}
