//! Search quality with the real sentence model (all-MiniLM-L6-v2). These tests fail when
//! the model is missing: run scripts/fetch-model.sh first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, sync::Arc};

use mangaassist_config::Config;
use mangaassist_embedding::{MiniLm, QueryEmbedder};
use mangaassist_proto::v1 as pb;
use mangaassist_retrieval::RetrievalDaemon;
use tokio::sync::OnceCell;

static DAEMON: OnceCell<RetrievalDaemon> = OnceCell::const_new();

/// One daemon for every test here (the model load and, on a cold cache, the catalog
/// embedding are the slow part). Vectors are cached where the real daemon keeps them.
async fn daemon() -> &'static RetrievalDaemon {
    DAEMON
        .get_or_init(|| async {
            let mut config = Config::default();
            config.data.dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
            let model_dir = config
                .data
                .resolved_cache_dir()
                .join("models/all-MiniLM-L6-v2");
            let model = MiniLm::load(&model_dir)
                .expect("all-MiniLM-L6-v2 missing: run scripts/fetch-model.sh");
            RetrievalDaemon::new(&config, QueryEmbedder::new(Arc::new(model), 1000))
                .await
                .unwrap()
        })
        .await
}

fn describe(r: &pb::RetrieveResponse) -> String {
    r.products
        .iter()
        .map(|h| {
            let p = h.product.as_ref().unwrap();
            format!(
                "{} [{} {:?}] fused {:.4} cos {:.3} bm25 {:.2}",
                p.title, p.demographic, p.genres, h.score, h.vector_score, h.lexical_score
            )
        })
        .chain(r.documents.iter().map(|h| {
            let d = h.document.as_ref().unwrap();
            format!(
                "doc {} fused {:.4} cos {:.3} bm25 {:.2}",
                d.id, h.score, h.vector_score, h.lexical_score
            )
        }))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn like_one_piece_finds_shonen_adventure() {
    let d = daemon().await;
    for store in ["manga_jp", "comics_us"] {
        let resp = d
            .retrieve(pb::RetrieveRequest {
                query: "Suggest manga like One Piece".into(),
                store_id: store.into(),
                top_k: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        let shown = describe(&resp);
        eprintln!("{store}: Suggest manga like One Piece\n{shown}\n");
        assert_eq!(resp.products.len(), 5);
        let ps: Vec<&pb::Product> = resp
            .products
            .iter()
            .map(|h| h.product.as_ref().unwrap())
            .collect();
        assert!(
            ps[..3].iter().any(|p| p.series == "One Piece"),
            "One Piece should rank in the top 3:\n{shown}"
        );
        let shonen_adventure = ps
            .iter()
            .filter(|p| p.demographic == "shonen" && p.genres.iter().any(|g| g == "adventure"))
            .count();
        assert!(
            shonen_adventure >= 4,
            "top 5 should be shonen adventure:\n{shown}"
        );
        assert!(ps.iter().all(|p| p.store_id == store));
    }
}

#[tokio::test]
async fn free_shipping_threshold_finds_the_shipping_faq() {
    let d = daemon().await;
    for store in ["manga_jp", "comics_us"] {
        let resp = d
            .retrieve(pb::RetrieveRequest {
                query: "free shipping threshold".into(),
                store_id: store.into(),
                top_k_documents: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        let shown = describe(&resp);
        eprintln!("{store}: free shipping threshold\n{shown}\n");
        assert_eq!(resp.documents.len(), 3);
        assert!(
            resp.documents[..2].iter().any(|h| h
                .document
                .as_ref()
                .unwrap()
                .id
                .contains("shipping")),
            "a shipping document should be in the top 2:\n{shown}"
        );
    }
}

#[tokio::test]
async fn semantic_queries_without_shared_words() {
    let d = daemon().await;
    // No title word in the query: the vector side has to carry it.
    let resp = d
        .retrieve(pb::RetrieveRequest {
            query: "a boy who becomes a ninja and dreams of leading his village".into(),
            store_id: "comics_us".into(),
            top_k: 5,
            top_k_documents: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let shown = describe(&resp);
    eprintln!("ninja\n{shown}\n");
    assert!(
        resp.products[..3]
            .iter()
            .any(|h| h.product.as_ref().unwrap().series == "Naruto"),
        "{shown}"
    );
    let resp = d
        .retrieve(pb::RetrieveRequest {
            query: "can I send back a damaged book and get my money back".into(),
            store_id: "manga_jp".into(),
            top_k_documents: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    let shown = describe(&resp);
    eprintln!("returns\n{shown}\n");
    assert!(
        resp.documents.iter().any(|h| {
            let d = h.document.as_ref().unwrap();
            d.id.contains("return") || d.id.contains("refund") || d.id.contains("damage")
        }),
        "{shown}"
    );
}
