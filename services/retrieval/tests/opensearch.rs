//! The OpenSearch backend against the simulated OpenSearch server (`testing` feature) over
//! HTTP: index creation and loading, hybrid search compared with the embedded backend, error
//! mapping, and the daemon over real gRPC. Filters, GetProducts and document search, which
//! every backend must do alike, are in `backend_conformance.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{sync::Arc, time::Duration};

use mangaassist_catalog::Catalog;
use mangaassist_config::Config;
use mangaassist_embedding::{Embedder, HashedNgrams, QueryEmbedder};
use mangaassist_proto::v1 as pb;
use mangaassist_retrieval::{
    LocalBackend, OpenSearchBackend, ProductFilter, RetrievalDaemon, SearchBackend, SearchQuery,
};
use mangaassist_standins::opensearch::FakeOpenSearch;

mod common;
use common::*;

/// Catalog titles (every 20th product of each store) and shopper-style questions.
fn agreement_queries(catalog: &Catalog) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for store in ["manga_jp", "comics_us"] {
        for p in catalog
            .products
            .iter()
            .filter(|p| p.store_id == store)
            .step_by(20)
        {
            out.push((store.to_string(), p.title.clone()));
        }
        for q in [
            "pirates sailing the sea",
            "manga like One Piece",
            "something like Death Note",
            "dark psychological thriller",
            "romance in high school",
            "basketball team",
            "cooking competition",
            "a cozy camping story",
            "Naruto volume 3",
            "giant titans attacking walls",
            "ninja",
            "ワンピース",
        ] {
            out.push((store.to_string(), q.to_string()));
        }
    }
    out
}

#[tokio::test]
async fn indices_are_created_and_loaded_once() {
    let f = fixture().await;
    let fake = FakeOpenSearch::start().await.unwrap();
    let config = os_config(&fake.url(), "ma-");
    let backend = connect(&f, &config).await.unwrap();
    let expected = [
        "ma-comics_us",
        "ma-comics_us-docs",
        "ma-manga_jp",
        "ma-manga_jp-docs",
    ];
    assert_eq!(fake.indices(), expected);
    let report = backend.startup_report();
    assert_eq!(report.created.len(), 4, "{report:?}");
    assert_eq!(report.loaded.len(), 4, "{report:?}");
    for store in ["manga_jp", "comics_us"] {
        let products = f
            .catalog
            .products
            .iter()
            .filter(|p| p.store_id == store)
            .count();
        let docs = f
            .catalog
            .documents
            .iter()
            .filter(|d| d.store_id == store || d.store_id == "*")
            .count();
        assert_eq!(fake.doc_count(&format!("ma-{store}")), Some(products));
        assert_eq!(fake.doc_count(&format!("ma-{store}-docs")), Some(docs));
        assert!(report.loaded.contains(&(format!("ma-{store}"), products)));
    }
    // 445 products in chunks of 200 → 3 requests, and 1 per documents index.
    let bulks = fake.request_count("POST", "/_bulk");
    assert!(bulks >= 4, "{bulks}");
    let refreshes =
        || fake.request_count("GET", "/_refresh") + fake.request_count("POST", "/_refresh");
    assert_eq!(refreshes(), 4);

    // The second start finds everything in place.
    let again = connect(&f, &config).await.unwrap();
    assert_eq!(again.startup_report().created, Vec::<String>::new());
    assert_eq!(again.startup_report().loaded, vec![]);
    assert_eq!(fake.request_count("POST", "/_bulk"), bulks);
    assert_eq!(refreshes(), 4);

    // Another prefix is another set of indices.
    let other = connect(&f, &os_config(&fake.url(), "other-"))
        .await
        .unwrap();
    assert_eq!(other.startup_report().created.len(), 4);
    assert_eq!(fake.indices().len(), 8);
}

#[tokio::test]
async fn hybrid_search_finds_the_products_and_agrees_with_the_embedded_backend() {
    let f = fixture().await;
    let fake = FakeOpenSearch::start().await.unwrap();
    let os = connect(&f, &os_config(&fake.url(), "ma-")).await.unwrap();
    let local = LocalBackend::build(&f.catalog, &f.products, &f.documents, params()).unwrap();

    // Known answers.
    let r = os
        .search(query(&f, "manga_jp", "One Piece, Vol. 4", 5, 0))
        .await
        .unwrap();
    assert_eq!(titles(&r.products)[0], "One Piece, Vol. 4");
    let top = &r.products[0];
    assert!(
        top.score > 0.0 && top.vector_score > 0.0 && top.lexical_score > 0.0,
        "{top:?}"
    );
    assert!(r.products.windows(2).all(|w| w[0].score >= w[1].score));
    let r = os
        .search(query(&f, "comics_us", "Attack on Titan, Vol. 2", 5, 0))
        .await
        .unwrap();
    assert_eq!(titles(&r.products)[0], "Attack on Titan, Vol. 2");
    assert!(
        r.products
            .iter()
            .all(|h| h.product.as_ref().unwrap().store_id == "comics_us")
    );
    // "Like One Piece" names a series: the per-series cap keeps each series to 2 volumes,
    // as in the embedded backend (the hashed test embedder still finds "One-Punch Man"
    // close through "one").
    let q = query(&f, "manga_jp", "manga like One Piece", 5, 0);
    let r = os.search(q.clone()).await.unwrap();
    let series: Vec<String> = r
        .products
        .iter()
        .map(|h| h.product.as_ref().unwrap().series.clone())
        .collect();
    assert_eq!(
        series.iter().filter(|s| *s == "One Piece").count(),
        2,
        "{series:?}"
    );
    assert!(
        series
            .iter()
            .all(|s| series.iter().filter(|t| *t == s).count() <= 2),
        "{series:?}"
    );
    assert_eq!(
        ids(&r.products),
        ids(&local.search(q).await.unwrap().products)
    );

    // Agreement with the embedded backend over many queries.
    let queries = agreement_queries(&f.catalog);
    let (mut top1, mut overlap, mut identical) = (0usize, 0.0f64, 0usize);
    for (store, text) in &queries {
        let q = query(&f, store, text, 5, 0);
        let a = ids(&os.search(q.clone()).await.unwrap().products);
        let b = ids(&local.search(q).await.unwrap().products);
        assert_eq!(a.len(), b.len(), "{text}");
        top1 += usize::from(a[0] == b[0]);
        identical += usize::from(a == b);
        overlap += a.iter().filter(|id| b.contains(id)).count() as f64 / b.len() as f64;
        if a[0] != b[0] {
            eprintln!("top-1 differs for `{text}` in {store}: {a:?} vs {b:?}");
        }
    }
    let n = queries.len();
    let top1_rate = top1 as f64 / n as f64;
    let overlap_rate = overlap / n as f64;
    eprintln!(
        "OpenSearch (simulated) vs embedded over {n} queries: top-1 agreement {top1_rate:.3}, top-5 overlap {overlap_rate:.3}, identical top-5 {identical}/{n}"
    );
    assert!(top1_rate >= 0.97, "top-1 agreement {top1_rate}");
    assert!(overlap_rate >= 0.97, "top-5 overlap {overlap_rate}");
}

#[tokio::test]
async fn documents_agree_with_the_embedded_backend() {
    let f = fixture().await;
    let fake = FakeOpenSearch::start().await.unwrap();
    let os = connect(&f, &os_config(&fake.url(), "ma-")).await.unwrap();
    let local = LocalBackend::build(&f.catalog, &f.products, &f.documents, params()).unwrap();
    let mut agree = 0;
    for store in ["manga_jp", "comics_us"] {
        for text in POLICY_QUESTIONS {
            let r = os.search(query(&f, store, text, 0, 50)).await.unwrap();
            let l = local.search(query(&f, store, text, 0, 50)).await.unwrap();
            assert_eq!(r.documents.len(), l.documents.len(), "{text}");
            agree += usize::from(r.documents[0].document == l.documents[0].document);
        }
    }
    eprintln!(
        "documents: top-1 agreement {agree}/{}",
        POLICY_QUESTIONS.len() * 2
    );
    assert!(agree >= POLICY_QUESTIONS.len() * 2 - 1, "{agree}");
}

#[tokio::test]
async fn wrong_dimensions_are_rejected_with_a_clear_error() {
    let f = fixture().await;
    let fake = FakeOpenSearch::start().await.unwrap();
    // The indices are created for 8 dimensions; the catalog vectors have more.
    let e = OpenSearchBackend::connect(
        &os_config(&fake.url(), "ma-"),
        params(),
        &f.catalog,
        &f.products,
        &f.documents,
        8,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    let msg = e.to_string();
    assert!(
        msg.contains("Vector dimension mismatch. Expected: 8"),
        "{msg}"
    );
    assert!(
        msg.contains("ma-comics_us") && msg.contains(&fake.url()),
        "{msg}"
    );

    // A query vector of the wrong size is refused by the engine, and said so.
    let good = FakeOpenSearch::start().await.unwrap();
    let os = connect(&f, &os_config(&good.url(), "ma-")).await.unwrap();
    let mut q = query(&f, "manga_jp", "naruto", 5, 0);
    q.vector = vec![0.5f32; 3].into();
    let e = os.search(q).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Internal);
    assert!(
        e.to_string()
            .contains("Query vector has invalid dimension: 3"),
        "{e}"
    );
}

#[tokio::test]
async fn engine_failures_map_to_grpc_codes_without_panics() {
    let f = fixture().await;
    // Nothing listening.
    let fake = FakeOpenSearch::start().await.unwrap();
    let url = fake.url();
    fake.stop().await;
    let e = connect(&f, &os_config(&url, "ma-")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    assert!(e.to_string().contains(&url), "{e}");

    // Up but failing (503), then back.
    let fake = FakeOpenSearch::start().await.unwrap();
    let os = connect(&f, &os_config(&fake.url(), "ma-")).await.unwrap();
    fake.set_unavailable(true);
    let e = os
        .search(query(&f, "manga_jp", "naruto", 5, 2))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    assert!(e.to_string().contains("503"), "{e}");
    let e = os
        .get_products("manga_jp", &["x".into()])
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    fake.set_unavailable(false);
    assert_eq!(
        os.search(query(&f, "manga_jp", "naruto", 5, 2))
            .await
            .unwrap()
            .products
            .len(),
        5
    );

    // Indices missing and not created at start.
    let empty = FakeOpenSearch::start().await.unwrap();
    let mut config = os_config(&empty.url(), "ma-");
    config.index_at_start = false;
    let os = connect(&f, &config).await.unwrap();
    let e = os
        .search(query(&f, "manga_jp", "naruto", 5, 0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    assert!(
        e.to_string().contains("ma-manga_jp") && e.to_string().contains("index_at_start"),
        "{e}"
    );

    // Basic auth: refused without credentials, accepted with them.
    let secured = FakeOpenSearch::start_with_basic_auth("reader", "s3cret")
        .await
        .unwrap();
    let mut config = os_config(&secured.url(), "ma-");
    let e = connect(&f, &config).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    assert!(e.to_string().contains("401"), "{e}");
    config.basic_auth = Some(("reader".into(), "s3cret".into()));
    let os = connect(&f, &config).await.unwrap();
    assert_eq!(
        os.search(query(&f, "comics_us", "batman", 3, 0))
            .await
            .unwrap()
            .products
            .len(),
        3
    );
}

#[tokio::test]
async fn the_daemon_serves_from_opensearch_over_grpc() {
    let fake = FakeOpenSearch::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let embedder = || QueryEmbedder::new(Arc::new(HashedNgrams::default()), 100);
    let mut config = Config::default();
    config.data.dir = data_dir();
    config.data.cache_dir = cache.path().to_path_buf();
    let embedded = RetrievalDaemon::new(&config, embedder()).await.unwrap();
    config.retrieval.backend = mangaassist_config::RetrievalBackend::OpenSearch;
    config.retrieval.opensearch.url = fake.url();
    config.retrieval.opensearch.username_env = String::new();
    config.retrieval.opensearch.password_env = String::new();
    let daemon = RetrievalDaemon::new(&config, embedder()).await.unwrap();
    assert!(format!("{daemon:?}").contains("OpenSearchBackend"));
    assert_eq!(fake.indices().len(), 4);

    let listener = mangaassist_server::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = mangaassist_server::ServeOptions::for_tests();
    let shutdown = opts.shutdown.clone();
    let server = tokio::spawn(daemon.serve(listener, opts));
    let client = mangaassist_client::RetrievalClient::connect(&format!("http://{addr}")).unwrap();
    let deadline = Duration::from_secs(10);

    let catalog = Catalog::load(&data_dir()).unwrap();
    let queries = agreement_queries(&catalog);
    let mut top1 = 0;
    for (store, text) in &queries {
        let req = pb::RetrieveRequest {
            query: text.clone(),
            store_id: store.clone(),
            top_k_documents: 2,
            ..Default::default()
        };
        let remote = client.retrieve(req.clone(), deadline).await.unwrap();
        let local = embedded.retrieve(req).await.unwrap();
        assert_eq!(remote.products.len(), 5, "{text}");
        assert_eq!(remote.documents.len(), 2, "{text}");
        top1 += usize::from(ids(&remote.products)[0] == ids(&local.products)[0]);
    }
    let rate = top1 as f64 / queries.len() as f64;
    eprintln!(
        "daemon over gRPC, OpenSearch (simulated) vs embedded: top-1 agreement {rate:.3} over {} queries",
        queries.len()
    );
    assert!(rate >= 0.97, "{rate}");

    let got = client
        .get_products(
            pb::GetProductsRequest {
                store_id: "comics_us".into(),
                ids: vec!["B0NOPENOPE".into()],
            },
            deadline,
        )
        .await
        .unwrap();
    assert_eq!(got.missing, vec!["B0NOPENOPE".to_string()]);

    // The engine going away is UNAVAILABLE to the caller.
    fake.set_unavailable(true);
    let status = client
        .retrieve(
            pb::RetrieveRequest {
                query: "naruto".into(),
                store_id: "manga_jp".into(),
                ..Default::default()
            },
            deadline,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// The same comparison with the production model (all-MiniLM-L6-v2), whose vectors are
/// read from the shared cache the daemon writes.
#[tokio::test]
async fn agreement_with_the_embedded_backend_on_minilm_vectors() {
    let config = Config::default();
    let cache_dir = config.data.resolved_cache_dir();
    let model: Arc<dyn Embedder> = Arc::new(
        mangaassist_embedding::MiniLm::load(&cache_dir.join("models/all-MiniLM-L6-v2"))
            .expect("all-MiniLM-L6-v2 missing: run scripts/fetch-model.sh"),
    );
    let f = fixture_with(model.clone(), Some(&cache_dir)).await;
    let fake = FakeOpenSearch::start().await.unwrap();
    let os = connect(&f, &os_config(&fake.url(), "ma-")).await.unwrap();
    let local = LocalBackend::build(&f.catalog, &f.products, &f.documents, params()).unwrap();
    let queries = agreement_queries(&f.catalog);
    let (mut top1, mut overlap, mut docs_top1) = (0usize, 0.0f64, 0usize);
    for (store, text) in &queries {
        let vector: Arc<[f32]> = {
            let model = model.clone();
            let text = text.clone();
            tokio::task::spawn_blocking(move || model.embed(&text))
                .await
                .unwrap()
                .unwrap()
                .into()
        };
        let q = SearchQuery {
            store_id: store.clone(),
            text: text.clone(),
            vector,
            filter: ProductFilter::default(),
            top_k: 5,
            top_k_documents: 3,
        };
        let a = os.search(q.clone()).await.unwrap();
        let b = local.search(q).await.unwrap();
        let (pa, pb) = (ids(&a.products), ids(&b.products));
        top1 += usize::from(pa[0] == pb[0]);
        overlap += pa.iter().filter(|id| pb.contains(id)).count() as f64 / pb.len() as f64;
        docs_top1 += usize::from(a.documents[0].document == b.documents[0].document);
        if pa[0] != pb[0] {
            eprintln!("top-1 differs for `{text}` in {store}: {pa:?} vs {pb:?}");
            for h in a.products.iter().take(2) {
                eprintln!(
                    "  os  {} f={} v={} l={}",
                    h.product.as_ref().unwrap().title,
                    h.score,
                    h.vector_score,
                    h.lexical_score
                );
            }
            for h in b.products.iter().take(2) {
                eprintln!(
                    "  loc {} f={} v={} l={}",
                    h.product.as_ref().unwrap().title,
                    h.score,
                    h.vector_score,
                    h.lexical_score
                );
            }
        }
    }
    let n = queries.len() as f64;
    let (top1, overlap, docs_top1) = (top1 as f64 / n, overlap / n, docs_top1 as f64 / n);
    eprintln!(
        "MiniLM: OpenSearch (simulated) vs embedded over {n} queries: product top-1 {top1:.3}, top-5 overlap {overlap:.3}, document top-1 {docs_top1:.3}"
    );
    assert!(top1 >= 0.97, "{top1}");
    assert!(overlap >= 0.97, "{overlap}");
    assert!(docs_top1 >= 0.97, "{docs_top1}");
}
