//! Behaviour of the daemon with the fast hashed embedder: filters, store isolation,
//! validation, GetProducts, and the gRPC surface through the real client.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{path::PathBuf, sync::Arc, time::Duration};

use mangaassist_config::Config;
use mangaassist_embedding::{Embedder, HashedNgrams, QueryEmbedder};
use mangaassist_proto::v1 as pb;
use mangaassist_retrieval::{RetrievalDaemon, RetrievalError};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

async fn daemon() -> (RetrievalDaemon, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.data.dir = data_dir();
    config.data.cache_dir = cache.path().to_path_buf();
    let embedder = QueryEmbedder::new(Arc::new(HashedNgrams::default()), 100);
    (
        RetrievalDaemon::new(&config, embedder).await.unwrap(),
        cache,
    )
}

fn req(store: &str, query: &str) -> pb::RetrieveRequest {
    pb::RetrieveRequest {
        query: query.into(),
        store_id: store.into(),
        ..Default::default()
    }
}

fn invalid(r: Result<pb::RetrieveResponse, RetrievalError>) -> String {
    match r {
        Err(e @ RetrievalError::InvalidArgument(_)) => {
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            e.to_string()
        }
        other => panic!("expected invalid argument, got {other:?}"),
    }
}

fn products(r: &pb::RetrieveResponse) -> Vec<&pb::Product> {
    r.products
        .iter()
        .map(|h| h.product.as_ref().unwrap())
        .collect()
}

#[tokio::test]
async fn filters_apply_before_top_k_and_stores_are_isolated() {
    let (d, _cache) = daemon().await;
    let catalog = mangaassist_catalog::Catalog::load(&data_dir()).unwrap();

    // in_stock_only: a query aimed at products that are out of stock still fills top_k
    // with in-stock ones.
    let out_of_stock: Vec<_> = catalog
        .products
        .iter()
        .filter(|p| p.store_id == "manga_jp" && p.stock == 0)
        .collect();
    assert!(!out_of_stock.is_empty());
    for p in out_of_stock.iter().take(10) {
        let mut r = req("manga_jp", &p.title);
        r.top_k = 10;
        let unfiltered = d.retrieve(r.clone()).await.unwrap();
        assert!(
            products(&unfiltered).iter().any(|q| q.stock == 0),
            "the unfiltered search for `{}` should find out-of-stock volumes",
            p.title
        );
        r.filters = Some(pb::Filters {
            in_stock_only: true,
            ..Default::default()
        });
        let filtered = d.retrieve(r).await.unwrap();
        assert_eq!(filtered.products.len(), 10);
        assert!(products(&filtered).iter().all(|q| q.stock > 0));
    }

    // Demographic and any-of genres, including a combination rare enough to force the
    // exact fallback (kodomo is 4% of the catalogue).
    for (demo, genres, query) in [
        ("seinen", vec![], "pirates sailing the sea"),
        (
            "",
            vec!["romance".to_string(), "sports".into()],
            "dragon ball fights",
        ),
        ("kodomo", vec![], "One Piece"),
        (
            "kodomo",
            vec!["adventure".to_string()],
            "dark psychological thriller",
        ),
    ] {
        let mut r = req("manga_jp", query);
        r.top_k = 20;
        r.filters = Some(pb::Filters {
            genres: genres.clone(),
            demographic: demo.into(),
            in_stock_only: false,
        });
        let resp = d.retrieve(r).await.unwrap();
        let eligible = catalog
            .products
            .iter()
            .filter(|p| {
                p.store_id == "manga_jp"
                    && (demo.is_empty() || p.demographic == demo)
                    && (genres.is_empty() || p.genres.iter().any(|g| genres.contains(g)))
            })
            .count();
        assert_eq!(resp.products.len(), eligible.min(20), "{demo} {genres:?}");
        for p in products(&resp) {
            assert!(demo.is_empty() || p.demographic == demo, "{p:?}");
            assert!(
                genres.is_empty() || p.genres.iter().any(|g| genres.contains(g)),
                "{p:?}"
            );
        }
    }

    // Store isolation, for products and documents.
    for q in [
        "One Piece",
        "Kirby Manga Mania",
        "free shipping",
        "Naruto volume 3",
    ] {
        for (store, other) in [("manga_jp", "comics_us"), ("comics_us", "manga_jp")] {
            let mut r = req(store, q);
            r.top_k = 50;
            r.top_k_documents = 50;
            let resp = d.retrieve(r).await.unwrap();
            assert_eq!(resp.products.len(), 50);
            assert!(products(&resp).iter().all(|p| p.store_id == store));
            assert!(!resp.documents.is_empty());
            for h in &resp.documents {
                let doc = h.document.as_ref().unwrap();
                assert_ne!(doc.store_id, other, "{doc:?}");
            }
            // Shared ("*") documents are in both stores.
            assert!(
                resp.documents
                    .iter()
                    .any(|h| h.document.as_ref().unwrap().store_id == "*")
            );
        }
    }
}

#[tokio::test]
async fn scores_counts_and_supplied_embeddings() {
    let (d, _cache) = daemon().await;
    let resp = d
        .retrieve(req("manga_jp", "One Piece, Vol. 4"))
        .await
        .unwrap();
    // top_k 0 → the configured default; documents only on request.
    assert_eq!(
        resp.products.len(),
        Config::default().retrieval.top_k as usize
    );
    assert!(resp.documents.is_empty());
    assert!(resp.embed_us > 0);
    assert_eq!(products(&resp)[0].title, "One Piece, Vol. 4");
    let top = &resp.products[0];
    assert!(top.lexical_score > 0.0 && top.vector_score > 0.0 && top.score > 0.0);
    // Fused scores are sorted and bounded by two first places.
    let rrf_k = Config::default().retrieval.rrf_k;
    assert!(top.score <= 2.0 / (rrf_k + 1.0) + 1e-6);
    assert!(resp.products.windows(2).all(|w| w[0].score >= w[1].score));

    // Capped at 50.
    let mut r = req("comics_us", "adventure");
    r.top_k = 1000;
    r.top_k_documents = 1000;
    let resp = d.retrieve(r).await.unwrap();
    assert_eq!(resp.products.len(), 50);
    assert!(!resp.documents.is_empty() && resp.documents.len() <= 50);

    // A supplied vector from the same model is used as is (no embedding time) and gives
    // the same answer as letting the daemon embed.
    let hashed = HashedNgrams::default();
    let v = hashed.embed("one piece, vol. 4").unwrap();
    let mut r = req("manga_jp", "One Piece, Vol. 4");
    r.embedding = Some(pb::Embedding {
        values: v.clone(),
        model: hashed.model_id().into(),
    });
    let supplied = d.retrieve(r.clone()).await.unwrap();
    assert_eq!(supplied.embed_us, 0);
    let own = d
        .retrieve(req("manga_jp", "One Piece, Vol. 4"))
        .await
        .unwrap();
    assert_eq!(supplied.products, own.products);
    // Vector-only search (no text) works with a supplied vector.
    r.query.clear();
    let vector_only = d.retrieve(r.clone()).await.unwrap();
    assert_eq!(vector_only.products.len(), 5);
    assert!(vector_only.products.iter().all(|h| h.lexical_score == 0.0));
    // A vector from another model is ignored: re-embedded from the text.
    r.query = "One Piece, Vol. 4".into();
    r.embedding.as_mut().unwrap().model = "some-other-model".into();
    let other = d.retrieve(r.clone()).await.unwrap();
    assert!(other.embed_us > 0);
    assert_eq!(other.products, own.products);
}

#[tokio::test]
async fn bad_requests_are_invalid_arguments() {
    let (d, _cache) = daemon().await;
    let e = invalid(d.retrieve(req("nowhere", "naruto")).await);
    assert!(e.contains("manga_jp") && e.contains("comics_us"), "{e}");
    let e = invalid(d.retrieve(req("", "naruto")).await);
    assert!(e.contains("store_id"), "{e}");
    let e = invalid(d.retrieve(req("manga_jp", "   ")).await);
    assert!(e.contains("empty"), "{e}");
    let e = invalid(d.retrieve(req("manga_jp", &"a".repeat(4097))).await);
    assert!(e.contains("4096"), "{e}");
    // 4096 characters of multi-byte text is fine.
    assert!(
        d.retrieve(req("manga_jp", &"漫".repeat(4096)))
            .await
            .is_ok()
    );
    let mut r = req("manga_jp", "");
    r.embedding = Some(pb::Embedding {
        values: vec![0.1; 7],
        model: "x".into(),
    });
    let e = invalid(d.retrieve(r).await);
    assert!(e.contains("does not match"), "{e}");
    let mut r = req("manga_jp", "naruto");
    r.filters = Some(pb::Filters {
        demographic: "adult".into(),
        ..Default::default()
    });
    let e = invalid(d.retrieve(r).await);
    assert!(e.contains("shonen"), "{e}");
}

#[tokio::test]
async fn get_products_reports_missing_ids_per_store() {
    let (d, _cache) = daemon().await;
    let catalog = mangaassist_catalog::Catalog::load(&data_dir()).unwrap();
    let jp = catalog
        .products
        .iter()
        .find(|p| p.store_id == "manga_jp")
        .unwrap();
    let us = catalog
        .products
        .iter()
        .find(|p| p.store_id == "comics_us")
        .unwrap();
    let resp = d
        .get_products(pb::GetProductsRequest {
            store_id: "manga_jp".into(),
            ids: vec![jp.id.clone(), us.id.clone(), "B0NOPENOPE".into()],
        })
        .await
        .unwrap();
    assert_eq!(resp.products, vec![pb::Product::from(jp)]);
    assert_eq!(resp.missing, vec![us.id.clone(), "B0NOPENOPE".to_string()]);
    let e = d
        .get_products(pb::GetProductsRequest {
            store_id: "mars".into(),
            ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn grpc_through_the_real_client() {
    let (d, _cache) = daemon().await;
    let listener = mangaassist_server::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = mangaassist_server::ServeOptions::for_tests();
    let shutdown = opts.shutdown.clone();
    let server = tokio::spawn(d.serve(listener, opts));
    let client = mangaassist_client::RetrievalClient::connect(&format!("http://{addr}")).unwrap();
    let deadline = Duration::from_secs(10);

    let mut r = req("comics_us", "Attack on Titan, Vol. 2");
    r.top_k_documents = 2;
    r.filters = Some(pb::Filters {
        in_stock_only: true,
        ..Default::default()
    });
    let resp = client.retrieve(r, deadline).await.unwrap();
    assert_eq!(resp.products.len(), 5);
    assert_eq!(resp.documents.len(), 2);
    assert!(
        products(&resp)
            .iter()
            .all(|p| p.store_id == "comics_us" && p.stock > 0)
    );
    assert!(
        products(&resp)
            .iter()
            .any(|p| p.series == "Attack on Titan")
    );

    let ids: Vec<String> = products(&resp).iter().map(|p| p.id.clone()).collect();
    let got = client
        .get_products(
            pb::GetProductsRequest {
                store_id: "comics_us".into(),
                ids: ids.clone(),
            },
            deadline,
        )
        .await
        .unwrap();
    assert_eq!(
        got.products
            .iter()
            .map(|p| p.id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    assert!(got.missing.is_empty());

    let status = client
        .retrieve(req("moon_base", "hi"), deadline)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("manga_jp"),
        "{}",
        status.message()
    );

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
