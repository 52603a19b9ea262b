//! Seed 000, scenario 4 end to end: a flash sale sells out a series while cached and
//! pre-computed answers recommend it. Stock changes through the inventory service; within
//! the freshness bound no answer presents the sold-out product as available, pre-computed
//! recommendations stop while the store is in flash-sale mode, and changes survive a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Answer, TestMesh, WsClient, test_config};
use futures::StreamExt;
use mangaassist::mesh::{self, Role};
use mangaassist_client::{InventoryClient, PrecomputeClient};
use mangaassist_proto::v1 as pb;

/// The bound: from a stock change to no answer presenting the product as available.
const BOUND: Duration = Duration::from_secs(1);

fn inventory(m: &TestMesh) -> InventoryClient {
    let mesh = &m.mesh().config.mesh;
    InventoryClient::connect_with(
        &mesh.retrieval.endpoint,
        mangaassist_client::service_tokens(mesh, "test").unwrap(),
    )
    .unwrap()
}

async fn set_stock(inv: &InventoryClient, store: &str, id: &str, quantity: u32) {
    inv.set_stock(
        pb::SetStockRequest {
            store_id: store.into(),
            changes: vec![pb::StockChange {
                product_id: id.into(),
                quantity,
                price_yen: None,
            }],
            source: "test".into(),
        },
        Duration::from_secs(5),
    )
    .await
    .unwrap();
}

/// Whether the answer presents `title` as something to buy now: it names it on a line that
/// does not say it is out of stock.
fn presents_as_available(a: &Answer, title: &str) -> bool {
    a.text()
        .lines()
        .any(|l| l.contains(title) && !l.contains("out of stock"))
}

async fn title_of(inv: &InventoryClient, store: &str, id: &str) -> String {
    inv.get_stock(
        pb::GetStockRequest {
            store_id: store.into(),
            product_ids: vec![id.into()],
        },
        Duration::from_secs(5),
    )
    .await
    .unwrap()
    .stock[0]
        .title
        .clone()
}

#[tokio::test]
async fn a_sold_out_product_leaves_cached_answers_within_the_bound() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.predict_follow_ups = false;
        c.gateway.limits.user_messages_per_minute = 0;
        c.gateway.limits.connection_messages_per_second = 0;
    })
    .await;
    let inv = inventory(&m);
    let mut c = WsClient::connect(&m.ws_url_as("u-demo")).await;
    let q = "What shonen manga should I read?";
    let first = c.ask(q, "s-1").await;
    let products = first.done().product_ids.clone();
    assert!(products.len() >= 2, "{:?}", first.done());
    // Asked again until the answer is cached.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let a = c.ask(q, "s-1").await;
        if a.done().cache_hit {
            assert_eq!(a.done().served_from, "cache");
            break;
        }
        assert!(Instant::now() < until, "the answer never reached the cache");
        m.wait_for_turns("s-1", "u-demo", 2).await;
    }
    let sold = products[0].clone();
    let title = title_of(&inv, "manga_jp", &sold).await;
    assert!(presents_as_available(&first, &title), "{}", first.text());
    set_stock(&inv, "manga_jp", &sold, 0).await;
    let changed = Instant::now();
    // Every answer from here on: the first one may still be the trimmed cached answer or a
    // live one; none may offer the sold-out volume, and all must be answers.
    let mut served = Vec::new();
    while changed.elapsed() < BOUND {
        let a = c.ask(q, "s-1").await;
        let d = a.done();
        assert!(
            !presents_as_available(&a, &title),
            "{:?} after the change, served from {}: {}",
            changed.elapsed(),
            d.served_from,
            a.text()
        );
        served.push(d.served_from.clone());
    }
    assert!(!served.is_empty());
    eprintln!("answers within the bound after the change, by path: {served:?}");
    // Restocked: the live stock says so at once.
    set_stock(&inv, "manga_jp", &sold, 12).await;
    let r = inv
        .get_stock(
            pb::GetStockRequest {
                store_id: "manga_jp".into(),
                product_ids: vec![sold.clone()],
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(r.stock[0].quantity, 12);
    m.stop().await;
}

#[tokio::test]
async fn precomputed_answers_follow_stock_and_stop_in_a_flash_sale() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.predict_follow_ups = false;
        // Only pre-computed answers in the cache: a live answer cached meanwhile would
        // stand where the rewritten one should.
        c.gateway.cacheable_intents = vec!["faq".into()];
        c.gateway.limits.user_messages_per_minute = 0;
        c.gateway.limits.connection_messages_per_second = 0;
    })
    .await;
    let mesh = &m.mesh().config.mesh;
    let pre = PrecomputeClient::connect_with(
        &mesh.precompute.endpoint,
        mangaassist_client::service_tokens(mesh, "test").unwrap(),
    )
    .unwrap();
    let mut progress = pre
        .run_job(
            pb::RunJobRequest {
                job: "genre_recommendations".into(),
                store_id: "manga_jp".into(),
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let mut written = 0;
    while let Some(p) = progress.next().await {
        let p = p.unwrap();
        if p.finished {
            written = p.written;
        }
    }
    assert!(written > 0, "the genre job wrote nothing");
    let inv = inventory(&m);
    let mut c = WsClient::connect(&m.ws_url_as("u-demo")).await;
    // A genre question the job answered.
    let mut question = None;
    for g in [
        "action",
        "adventure",
        "fantasy",
        "comedy",
        "romance",
        "drama",
        "sports",
    ] {
        let q = format!("Recommend some {g} manga");
        if c.ask(&q, "s-2").await.done().served_from == "precomputed" {
            question = Some(q);
            break;
        }
    }
    let q = question.expect("no genre question was served pre-computed");
    // A stock change to a product the pre-computed answer names: the cache drops it and the
    // precompute daemon writes it again from the new stock.
    let before = c.ask(&q, "s-2").await;
    assert_eq!(before.done().served_from, "precomputed");
    let named = before.done().product_ids[0].clone();
    let title = title_of(&inv, "manga_jp", &named).await;
    set_stock(&inv, "manga_jp", &named, 3).await;
    let changed = Instant::now();
    loop {
        let a = c.ask(&q, "s-2").await;
        let line = a
            .text()
            .lines()
            .find(|l| l.contains(&title))
            .map(str::to_string);
        if a.done().served_from == "precomputed"
            && line.as_deref().is_some_and(|l| l.contains("only 3 left"))
        {
            break;
        }
        // Meanwhile the message is answered live (also with the new stock).
        assert!(
            changed.elapsed() < Duration::from_secs(5),
            "the pre-computed answer was not rewritten: {}",
            a.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    inv.set_flash_sale(
        pb::SetFlashSaleRequest {
            store_id: "manga_jp".into(),
            on: true,
        },
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let on = Instant::now();
    loop {
        let a = c.ask(&q, "s-2").await;
        if a.done().served_from != "precomputed" {
            break;
        }
        assert!(
            on.elapsed() < BOUND,
            "still pre-computed {:?} after flash-sale on",
            on.elapsed()
        );
    }
    // While it is on, never again.
    for _ in 0..5 {
        assert_ne!(c.ask(&q, "s-2").await.done().served_from, "precomputed");
    }
    m.stop().await;
}

#[tokio::test]
async fn stock_changes_survive_a_restart() {
    common::init_telemetry();
    let state = tempfile::tempdir().unwrap();
    let start = || async {
        mesh::start(test_config(state.path(), &[]), &[Role::Retrieval])
            .await
            .unwrap()
    };
    let m = start().await;
    let endpoint = format!("http://{}", m.addrs[&Role::Retrieval]);
    let inv = InventoryClient::connect_with(&endpoint, None).unwrap();
    let id = {
        // Any product of the store.
        let r = mangaassist_client::RetrievalClient::connect(&endpoint)
            .unwrap()
            .retrieve(
                pb::RetrieveRequest {
                    query: "pirates".into(),
                    store_id: "manga_jp".into(),
                    ..Default::default()
                },
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        r.products[0].product.as_ref().unwrap().id.clone()
    };
    inv.set_stock(
        pb::SetStockRequest {
            store_id: "manga_jp".into(),
            changes: vec![pb::StockChange {
                product_id: id.clone(),
                quantity: 0,
                price_yen: Some(999),
            }],
            source: "test".into(),
        },
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    // Bad input is refused with a clear error and changes nothing.
    let e = inv
        .set_stock(
            pb::SetStockRequest {
                store_id: "manga_jp".into(),
                changes: vec![pb::StockChange {
                    product_id: "NOPE".into(),
                    quantity: 1,
                    price_yen: None,
                }],
                source: "test".into(),
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    assert!(e.message().contains("NOPE"), "{e:?}");
    m.stop().await.unwrap();
    let m = start().await;
    let endpoint = format!("http://{}", m.addrs[&Role::Retrieval]);
    let r = mangaassist_client::RetrievalClient::connect(&endpoint)
        .unwrap()
        .get_products(
            pb::GetProductsRequest {
                store_id: "manga_jp".into(),
                ids: vec![id.clone()],
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let p = &r.products[0];
    assert_eq!((p.stock, p.price_yen), (0, 999), "{p:?}");
    // And the in-stock filter uses the live value.
    let filtered = mangaassist_client::RetrievalClient::connect(&endpoint)
        .unwrap()
        .retrieve(
            pb::RetrieveRequest {
                query: "pirates".into(),
                store_id: "manga_jp".into(),
                filters: Some(pb::Filters {
                    in_stock_only: true,
                    ..Default::default()
                }),
                ..Default::default()
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(
        filtered
            .products
            .iter()
            .all(|h| h.product.as_ref().unwrap().id != id)
    );
    m.stop().await.unwrap();
}
