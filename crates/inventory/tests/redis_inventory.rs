//! Two retrieval replicas sharing one inventory through a real Redis server: a change made
//! on either reaches both in number order; a replica that missed messages catches up; a new
//! replica starts from the shared state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mangaassist_inventory::{Base, Change, FeedSource, Inventory, follow};
use mangaassist_proto::v1 as pb;
use mangaassist_testkit::RedisServer;
use tokio_util::sync::CancellationToken;

fn catalog() -> Vec<(String, String, Base)> {
    ["A", "B", "C"]
        .into_iter()
        .map(|id| {
            (
                "s".to_string(),
                id.to_string(),
                Base {
                    quantity: 5,
                    price_yen: 400,
                    title: format!("{id} title"),
                    series: id.to_string(),
                },
            )
        })
        .collect()
}

fn change(id: &str, q: u32, price: Option<u32>) -> pb::StockChange {
    pb::StockChange {
        product_id: id.into(),
        quantity: q,
        price_yen: price,
    }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A Redis server and two replicas on it (the server stops when dropped).
async fn two_replicas() -> (
    RedisServer,
    mangaassist_config::RedisSettings,
    Inventory,
    Inventory,
) {
    let server = RedisServer::start();
    let settings = server.settings();
    let a = Inventory::connect_redis(catalog(), &settings)
        .await
        .unwrap();
    let b = Inventory::connect_redis(catalog(), &settings)
        .await
        .unwrap();
    (server, settings, a, b)
}

#[tokio::test]
async fn replicas_share_every_change_in_order() {
    let (_server, settings, a, b) = two_replicas().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let f = follow(
        FeedSource::Local(b.clone()),
        "test",
        move |c| {
            let _ = tx.send(c.seq());
        },
        stop.clone(),
    );
    // Writers on both replicas at once.
    let (ca, cb) = (
        [change("A", 0, Some(450)), change("B", 1, None)],
        [change("C", 2, None)],
    );
    let (ra, rb) = tokio::join!(a.set_stock("s", &ca, "t"), b.set_stock("s", &cb, "t"));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // Read-your-writes on the writing replica.
    assert_eq!(a.current("s", "A"), Some((0, 450)));
    assert_eq!(b.current("s", "C"), Some((2, 400)));
    let mut seqs: Vec<u64> = ra.iter().chain(&rb).map(|s| s.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, vec![1, 2, 3]);
    until("b sees all three", || b.seq() == 3).await;
    assert_eq!(b.current("s", "A"), Some((0, 450)));
    assert_eq!(a.current("s", "C"), Some((2, 400)));
    // B's watcher got each change once, in order.
    let mut got = vec![];
    while got.len() < 3 {
        got.push(rx.recv().await.unwrap());
    }
    assert_eq!(got, vec![1, 2, 3]);
    assert!(f.view.is_ready());
    // Price kept when not given: the shared value, not the catalog's.
    a.set_stock("s", &[change("A", 7, None)], "t")
        .await
        .unwrap();
    until("b sees the price", || b.current("s", "A") == Some((7, 450))).await;
    // Flash sale on one replica is seen by the other.
    b.set_flash_sale("s", true).await.unwrap();
    until("a sees flash sale", || a.flash_sale("s")).await;
    // A replica started now begins from the shared state.
    let c = Inventory::connect_redis(catalog(), &settings)
        .await
        .unwrap();
    assert_eq!(c.current("s", "A"), Some((7, 450)));
    assert!(c.flash_sale("s"));
    assert_eq!(c.seq(), a.seq());
    stop.cancel();
}

#[tokio::test]
async fn a_replica_that_missed_a_message_catches_up() {
    let (server, settings, a, b) = two_replicas().await;
    // A change written behind everyone's back (as if its message were lost): state and
    // counter move, nothing is published.
    let rec = r#"{"kind":"stock","store_id":"s","product_id":"B","quantity":0,"price_yen":400,"seq":1,"changed_ms":1,"title":"B title","series":"B"}"#;
    let prefix = format!("{}inventory:", settings.key_prefix);
    server.command(&["HSET", &format!("{prefix}state"), "ss\u{1f}B", rec]);
    server.command(&["SET", &format!("{prefix}seq"), "1"]);
    // The next published change (number 2) shows B the gap: it reloads and has both.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let _f = follow(
        FeedSource::Local(b.clone()),
        "test",
        move |c: &Change| {
            let _ = tx.send(c.seq());
        },
        stop.clone(),
    );
    a.set_stock("s", &[change("C", 3, None)], "t")
        .await
        .unwrap();
    until("b caught up", || b.seq() == 2).await;
    assert_eq!(b.current("s", "B"), Some((0, 400)));
    assert_eq!(b.current("s", "C"), Some((3, 400)));
    assert_eq!(rx.recv().await, Some(1));
    assert_eq!(rx.recv().await, Some(2));
    stop.cancel();
}
