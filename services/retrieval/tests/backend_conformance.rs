//! One behavioural suite for [`SearchBackend`], run against every backend: the embedded
//! HNSW + BM25 engine and OpenSearch (the simulated server in `mangaassist-standins`).
//! Filters, GetProducts and document search must behave the same whichever engine answers;
//! ranking agreement between the two is measured in `opensearch.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;

use mangaassist_proto::v1 as pb;
use mangaassist_retrieval::{LocalBackend, ProductFilter, SearchBackend};
use mangaassist_standins::opensearch::FakeOpenSearch;

mod common;
use common::*;

/// A backend under test and whatever must outlive it (the simulated server).
struct Backend {
    search: Box<dyn SearchBackend>,
    _keep: Box<dyn Any>,
}

async fn embedded(f: &Fixture) -> Backend {
    let local = LocalBackend::build(&f.catalog, &f.products, &f.documents, params()).unwrap();
    Backend {
        search: Box::new(local),
        _keep: Box::new(()),
    }
}

async fn opensearch(f: &Fixture) -> Backend {
    let fake = FakeOpenSearch::start().await.unwrap();
    let os = connect(f, &os_config(&fake.url(), "ma-")).await.unwrap();
    Backend {
        search: Box::new(os),
        _keep: Box::new(fake),
    }
}

async fn filters_apply_before_top_k(f: &Fixture, b: &dyn SearchBackend) {
    for (store, genres, demo, in_stock, text) in [
        ("manga_jp", vec![], None, true, "One Piece, Vol. 1"),
        (
            "manga_jp",
            vec!["romance".to_string(), "sports".into()],
            None,
            false,
            "dragon ball fights",
        ),
        (
            "manga_jp",
            vec![],
            Some("kodomo".to_string()),
            false,
            "One Piece",
        ),
        (
            "comics_us",
            vec!["horror".to_string()],
            Some("seinen".to_string()),
            true,
            "pirates",
        ),
    ] {
        let mut q = query(f, store, text, 20, 0);
        q.filter = ProductFilter {
            genres: genres.clone(),
            demographic: demo.clone(),
            in_stock_only: in_stock,
        };
        let eligible = f
            .catalog
            .products
            .iter()
            .filter(|p| p.store_id == store && q.filter.matches(p))
            .count();
        let r = b.search(q.clone()).await.unwrap();
        assert_eq!(
            r.products.len(),
            eligible.min(20),
            "{text} {genres:?} {demo:?}"
        );
        for h in &r.products {
            let p = h.product.as_ref().unwrap();
            assert_eq!(p.store_id, store);
            assert!(!in_stock || p.stock > 0, "{p:?}");
            assert!(demo.as_deref().is_none_or(|d| p.demographic == d), "{p:?}");
            assert!(
                genres.is_empty() || p.genres.iter().any(|g| genres.contains(g)),
                "{p:?}"
            );
        }
    }
    // Without the stock filter an out-of-stock title is found first; with it, never.
    let p = f
        .catalog
        .products
        .iter()
        .find(|p| p.store_id == "manga_jp" && p.stock == 0)
        .unwrap();
    let r = b
        .search(query(f, "manga_jp", &p.title, 5, 0))
        .await
        .unwrap();
    assert_eq!(ids(&r.products)[0], p.id);
    let mut q = query(f, "manga_jp", &p.title, 5, 0);
    q.filter.in_stock_only = true;
    let r = b.search(q).await.unwrap();
    assert!(!ids(&r.products).contains(&p.id));
}

async fn get_products_keeps_request_order_and_reports_missing_ids(
    f: &Fixture,
    b: &dyn SearchBackend,
) {
    let jp: Vec<_> = f
        .catalog
        .products
        .iter()
        .filter(|p| p.store_id == "manga_jp")
        .collect();
    let us = f
        .catalog
        .products
        .iter()
        .find(|p| p.store_id == "comics_us")
        .unwrap();
    let request = vec![
        jp[7].id.clone(),
        "B0NOPENOPE".to_string(),
        jp[2].id.clone(),
        us.id.clone(),
        jp[7].id.clone(),
    ];
    let (found, missing) = b.get_products("manga_jp", &request).await.unwrap();
    assert_eq!(
        found,
        vec![
            pb::Product::from(jp[7]),
            pb::Product::from(jp[2]),
            pb::Product::from(jp[7])
        ]
    );
    // Another store's product is missing here: stores never see each other's catalog.
    assert_eq!(missing, vec!["B0NOPENOPE".to_string(), us.id.clone()]);
    assert_eq!(
        b.get_products("manga_jp", &[]).await.unwrap(),
        (vec![], vec![])
    );
    let e = b.get_products("mars", &request).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

async fn documents_are_searched_per_store_with_shared_ones(f: &Fixture, b: &dyn SearchBackend) {
    for (store, other) in [("manga_jp", "comics_us"), ("comics_us", "manga_jp")] {
        for text in POLICY_QUESTIONS {
            let r = b.search(query(f, store, text, 0, 50)).await.unwrap();
            assert!(r.products.is_empty());
            assert!(!r.documents.is_empty(), "{text}");
            for h in &r.documents {
                assert_ne!(h.document.as_ref().unwrap().store_id, other);
            }
        }
        let r = b.search(query(f, store, "shipping", 0, 50)).await.unwrap();
        assert!(
            r.documents
                .iter()
                .any(|h| h.document.as_ref().unwrap().store_id == "*"),
            "documents shared by every store are found"
        );
    }
}

/// The Japanese wording of the documents is searched too: a question in Japanese finds the
/// document that answers it, with its Japanese text. The hashed n-gram vectors of these tests
/// barely tell Japanese sentences apart, so the lexical side carries this and the document is
/// asked for among the first three; `japanese.rs` holds the served model to first place.
async fn japanese_questions_find_japanese_documents(f: &Fixture, b: &dyn SearchBackend) {
    for (text, want) in JAPANESE_QUESTIONS {
        let r = b.search(query(f, "manga_jp", text, 0, 3)).await.unwrap();
        let hit = r
            .documents
            .iter()
            .filter_map(|h| h.document.as_ref())
            .find(|d| d.id == want);
        let ids: Vec<&str> = r
            .documents
            .iter()
            .filter_map(|h| h.document.as_ref())
            .map(|d| d.id.as_str())
            .collect();
        let hit = hit.unwrap_or_else(|| panic!("{text}: {want} not in {ids:?}"));
        assert!(!hit.body_ja.is_empty(), "{text}: the Japanese text travels");
    }
}

/// Every case of the suite, once per backend.
macro_rules! conformance {
    ($($backend:ident),+) => {$(
        mod $backend {
            #[tokio::test]
            async fn filters_apply_before_top_k() {
                let f = super::fixture().await;
                let b = super::$backend(&f).await;
                super::filters_apply_before_top_k(&f, &*b.search).await;
            }

            #[tokio::test]
            async fn get_products_keeps_request_order_and_reports_missing_ids() {
                let f = super::fixture().await;
                let b = super::$backend(&f).await;
                super::get_products_keeps_request_order_and_reports_missing_ids(&f, &*b.search)
                    .await;
            }

            #[tokio::test]
            async fn documents_are_searched_per_store_with_shared_ones() {
                let f = super::fixture().await;
                let b = super::$backend(&f).await;
                super::documents_are_searched_per_store_with_shared_ones(&f, &*b.search).await;
            }

            #[tokio::test]
            async fn japanese_questions_find_japanese_documents() {
                let f = super::fixture().await;
                let b = super::$backend(&f).await;
                super::japanese_questions_find_japanese_documents(&f, &*b.search).await;
            }
        }
    )+};
}

conformance!(embedded, opensearch);
