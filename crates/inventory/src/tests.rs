#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use mangaassist_proto::v1 as pb;
use tokio_util::sync::CancellationToken;

use crate::*;

fn catalog() -> Vec<(String, String, Base)> {
    let p = |store: &str, id: &str, q: u32, title: &str, series: &str| {
        (
            store.to_string(),
            id.to_string(),
            Base {
                quantity: q,
                price_yen: 500,
                title: title.into(),
                series: series.into(),
            },
        )
    };
    vec![
        p("s", "A", 5, "Alpha, Vol. 1", "Alpha"),
        p("s", "B", 0, "Beta, Vol. 1", "Beta"),
        p("s", "C", 9, "Gamma, Vol. 2", "Gamma"),
        p("t", "A", 1, "Alpha, Vol. 1", "Alpha"),
    ]
}

fn change(id: &str, q: u32) -> pb::StockChange {
    pb::StockChange {
        product_id: id.into(),
        quantity: q,
        price_yen: None,
    }
}

#[tokio::test]
async fn changes_are_validated_all_or_nothing() {
    let inv = Inventory::in_memory(catalog());
    let e = inv
        .set_stock("s", &[change("A", 1), change("Z", 1)], "test")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("change 1"), "{e}");
    assert_eq!(inv.current("s", "A"), Some((5, 500)));
    assert!(inv.set_stock("nope", &[change("A", 1)], "t").await.is_err());
    assert!(inv.set_stock("s", &[], "t").await.is_err());
    let bad_price = pb::StockChange {
        price_yen: Some(0),
        ..change("A", 1)
    };
    assert!(inv.set_stock("s", &[bad_price], "t").await.is_err());
    let applied = inv.set_stock("s", &[change("A", 0)], "t").await.unwrap();
    assert_eq!(applied[0].seq, 1);
    assert_eq!(applied[0].price_yen, 500);
    assert_eq!(applied[0].title, "Alpha, Vol. 1");
    assert_eq!(inv.current("s", "A"), Some((0, 500)));
    // Another store's product of the same id is untouched.
    assert_eq!(inv.current("t", "A"), Some((1, 500)));
}

#[tokio::test]
async fn changes_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inv/inventory.redb");
    {
        let inv = Inventory::open(catalog(), &path).unwrap();
        inv.set_stock(
            "s",
            &[pb::StockChange {
                price_yen: Some(700),
                ..change("C", 2)
            }],
            "t",
        )
        .await
        .unwrap();
        inv.set_flash_sale("s", true).await.unwrap();
    }
    let inv = Inventory::open(catalog(), &path).unwrap();
    assert_eq!(inv.current("s", "C"), Some((2, 700)));
    assert!(inv.flash_sale("s"));
    assert_eq!(inv.seq(), 2);
    let next = inv.set_stock("s", &[change("A", 3)], "t").await.unwrap();
    assert_eq!(next[0].seq, 3, "numbers continue after a restart");
}

#[tokio::test]
async fn a_watcher_gets_state_then_live_changes_once_each() {
    let inv = Inventory::in_memory(catalog());
    inv.set_stock("s", &[change("A", 4)], "t").await.unwrap();
    inv.set_stock("s", &[change("A", 3)], "t").await.unwrap();
    let stop = CancellationToken::new();
    let mut w = watch(&inv, 0, stop.clone());
    let first = w.next().await.unwrap().unwrap();
    // Only the latest state of A, not its history.
    match first.event {
        Some(pb::inventory_event::Event::Stock(s)) => assert_eq!((s.quantity, s.seq), (3, 2)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w.next().await.unwrap().unwrap().event,
        Some(pb::inventory_event::Event::CaughtUp(2))
    );
    inv.set_stock("s", &[change("C", 0)], "t").await.unwrap();
    match w.next().await.unwrap().unwrap().event {
        Some(pb::inventory_event::Event::Stock(s)) => {
            assert_eq!((s.product_id.as_str(), s.seq), ("C", 3))
        }
        other => panic!("{other:?}"),
    }
    stop.cancel();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_slow_watcher_catches_up_from_state() {
    let inv = Inventory::in_memory(catalog());
    let stop = CancellationToken::new();
    let mut w = watch(&inv, 0, stop.clone());
    assert_eq!(
        w.next().await.unwrap().unwrap().event,
        Some(pb::inventory_event::Event::CaughtUp(0))
    );
    // Far more changes than the broadcast holds, while the watcher does not read.
    for i in 0..(BROADCAST_CAPACITY as u32 + 500) {
        inv.set_stock("s", &[change("A", i % 7), change("C", i % 5)], "t")
            .await
            .unwrap();
    }
    let last = inv.seq();
    let mut seen = 0;
    let mut latest_a = None;
    while seen < last {
        let e = w.next().await.unwrap().unwrap();
        if let Some(pb::inventory_event::Event::Stock(s)) = e.event {
            assert!(
                s.seq > seen,
                "numbers only increase: {} after {seen}",
                s.seq
            );
            seen = s.seq;
            if s.product_id == "A" {
                latest_a = Some(s.quantity);
            }
        }
    }
    assert_eq!(latest_a, inv.current("s", "A").map(|c| c.0));
}

#[tokio::test]
async fn a_follower_keeps_a_view_and_reports_each_change() {
    let inv = Inventory::in_memory(catalog());
    inv.set_flash_sale("s", true).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let f = follow(
        FeedSource::Local(inv.clone()),
        "test",
        move |c| {
            let _ = tx.send(c.clone());
        },
        stop.clone(),
    );
    assert!(matches!(rx.recv().await, Some(Change::FlashSale(_))));
    inv.set_stock("s", &[change("A", 0)], "t").await.unwrap();
    assert!(matches!(rx.recv().await, Some(Change::Stock(s)) if s.product_id == "A"));
    assert!(f.view.is_ready());
    assert!(f.view.flash_sale("s"));
    assert!(matches!(
        f.view.availability("s", "A"),
        Availability::Changed { quantity: 0, .. }
    ));
    assert_eq!(f.view.availability("s", "C"), Availability::Catalog);
    stop.cancel();
}

#[tokio::test]
async fn validation_drops_sold_out_lines_or_refuses() {
    let inv = Inventory::in_memory(catalog());
    let stop = CancellationToken::new();
    let f = follow(FeedSource::Local(inv.clone()), "test", |_| {}, stop.clone());
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let text = "Here are a few picks:\n- Alpha, Vol. 1 by X: fun. 500 yen, in stock.\n- Beta, Vol. 1 by Y: sad. 500 yen, in stock.\n- Gamma, Vol. 2 by Z: odd. 500 yen, in stock.\nAlpha and Gamma can ship right away.\n";
    // Not caught up yet at first: nothing can be verified.
    let early = validate(text, "s", &ids(&["A", "B", "C"]), &StockView::default());
    assert_eq!(early, Err(validate::Rejected::Unverifiable));
    while !f.view.is_ready() {
        tokio::task::yield_now().await;
    }
    // Nothing changed: served as is.
    let same = validate(text, "s", &ids(&["A", "B", "C"]), &f.view).unwrap();
    assert_eq!(same.text, text);
    inv.set_stock("s", &[change("A", 0)], "t").await.unwrap();
    while f.view.seq() < 1 {
        tokio::task::yield_now().await;
    }
    let v = validate(text, "s", &ids(&["A", "B", "C"]), &f.view).unwrap();
    assert!(!v.text.contains("Alpha"), "{}", v.text);
    assert!(v.text.contains("Beta") && v.text.contains("Gamma"));
    assert_eq!(v.product_ids, ids(&["B", "C"]));
    assert_eq!(v.removed, ids(&["A"]));
    inv.set_stock("s", &[change("C", 0)], "t").await.unwrap();
    while f.view.seq() < 2 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        validate(text, "s", &ids(&["A", "B", "C"]), &f.view),
        Err(validate::Rejected::TooFewLeft(2))
    );
    stop.cancel();
}
