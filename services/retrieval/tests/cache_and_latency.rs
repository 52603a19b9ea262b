//! The on-disk vector cache with the real model (cold start embeds, the next start reads
//! the file and answers identically), and search latency with caller-supplied vectors.
//! Timings are printed (`--nocapture`), not asserted: the machine is shared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, sync::Arc, time::Instant};

use mangaassist_config::Config;
use mangaassist_embedding::{Embedder, MiniLm, QueryEmbedder};
use mangaassist_proto::v1 as pb;
use mangaassist_retrieval::RetrievalDaemon;

fn percentile(samples: &[f64], q: f64) -> f64 {
    mangaassist_stats::percentile(samples, q).unwrap_or(f64::NAN)
}

fn repo_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// A data dir with the first `n` products of each store and every document, so a cold
/// embedding takes seconds rather than the full catalog's minute.
fn small_data_dir(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let products = std::fs::read_to_string(repo_data().join("catalog/products.jsonl")).unwrap();
    let (mut jp, mut us) = (0, 0);
    let keep: Vec<&str> = products
        .lines()
        .filter(|l| {
            let c = if l.contains("\"store_id\":\"manga_jp\"") {
                &mut jp
            } else {
                &mut us
            };
            *c += 1;
            *c <= n
        })
        .collect();
    std::fs::create_dir_all(dir.path().join("catalog")).unwrap();
    std::fs::create_dir_all(dir.path().join("docs")).unwrap();
    std::fs::write(dir.path().join("catalog/products.jsonl"), keep.join("\n")).unwrap();
    std::fs::copy(
        repo_data().join("docs/documents.jsonl"),
        dir.path().join("docs/documents.jsonl"),
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn vector_cache_is_written_and_reused() {
    let cache = tempfile::tempdir().unwrap();
    let data = small_data_dir(40);
    let mut config = Config::default();
    config.data.dir = data.path().to_path_buf();
    let model_dir = config
        .data
        .resolved_cache_dir()
        .join("models/all-MiniLM-L6-v2");
    config.data.cache_dir = cache.path().to_path_buf();
    let model: Arc<dyn Embedder> = Arc::new(
        MiniLm::load(&model_dir).expect("all-MiniLM-L6-v2 missing: run scripts/fetch-model.sh"),
    );

    let t = Instant::now();
    let cold = RetrievalDaemon::new(&config, QueryEmbedder::new(model.clone(), 100))
        .await
        .unwrap();
    let cold_total = t.elapsed();
    let cold_outcome = cold.vectors_outcome().unwrap().clone();
    assert!(!cold_outcome.cache_hit);
    assert!(cold_outcome.path.starts_with(cache.path().join("vectors")));
    assert!(cold_outcome.path.exists());
    let name = cold_outcome.path.file_name().unwrap().to_string_lossy();
    assert!(
        name.starts_with("all-MiniLM-L6-v2-") && name.ends_with(".bin"),
        "{name}"
    );

    let t = Instant::now();
    let warm = RetrievalDaemon::new(&config, QueryEmbedder::new(model.clone(), 100))
        .await
        .unwrap();
    let warm_total = t.elapsed();
    let warm_outcome = warm.vectors_outcome().unwrap().clone();
    assert!(warm_outcome.cache_hit);
    assert_eq!(warm_outcome.path, cold_outcome.path);
    eprintln!(
        "cold start: {cold_total:?} ({} unique texts embedded in {:?}); cached start: {warm_total:?} (vectors read in {:?})",
        cold_outcome.embedded, cold_outcome.elapsed, warm_outcome.elapsed
    );

    // Identical vectors from the cold and the cached start → identical answers.
    let (texts, vectors) = questions(&model, 60).await;
    for (i, (text, v)) in texts.iter().zip(&vectors).enumerate() {
        let req = request(i, text, v, model.model_id());
        let a = warm.retrieve(req.clone()).await.unwrap();
        let b = cold.retrieve(req).await.unwrap();
        assert_eq!(a.embed_us, 0);
        assert_eq!(a.products, b.products, "query `{text}`");
        assert_eq!(a.documents, b.documents, "query `{text}`");
    }
}

/// Held-out-style user questions and their vectors, computed up front as the gateway does.
async fn questions(model: &Arc<dyn Embedder>, n: usize) -> (Vec<String>, Vec<Vec<f32>>) {
    let questions =
        mangaassist_catalog::load_intents(&repo_data().join("intents/train.jsonl")).unwrap();
    let texts: Vec<String> = questions.iter().take(n).map(|q| q.text.clone()).collect();
    let vectors = {
        let model = model.clone();
        let texts = texts.clone();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            model.embed_batch(&refs).unwrap()
        })
        .await
        .unwrap()
    };
    (texts, vectors)
}

fn request(i: usize, text: &str, v: &[f32], model: &str) -> pb::RetrieveRequest {
    let store = if i.is_multiple_of(2) {
        "manga_jp"
    } else {
        "comics_us"
    };
    pb::RetrieveRequest {
        query: text.to_string(),
        store_id: store.into(),
        embedding: Some(pb::Embedding {
            values: v.to_vec(),
            model: model.into(),
        }),
        top_k: 5,
        top_k_documents: if i.is_multiple_of(3) { 3 } else { 0 },
        filters: i.is_multiple_of(4).then(|| pb::Filters {
            in_stock_only: true,
            ..Default::default()
        }),
    }
}

/// Search latency over the full catalog (vectors from the shared cache that
/// `mangaassist prepare` fills; computed once if absent).
#[tokio::test]
async fn search_latency_with_supplied_vectors() {
    let mut config = Config::default();
    config.data.dir = repo_data();
    let model_dir = config
        .data
        .resolved_cache_dir()
        .join("models/all-MiniLM-L6-v2");
    let model: Arc<dyn Embedder> = Arc::new(
        MiniLm::load(&model_dir).expect("all-MiniLM-L6-v2 missing: run scripts/fetch-model.sh"),
    );
    let daemon = RetrievalDaemon::new(&config, QueryEmbedder::new(model.clone(), 100))
        .await
        .unwrap();
    let (texts, vectors) = questions(&model, 200).await;
    let mut search_us = Vec::new();
    let mut wall_us = Vec::new();
    for (i, (text, v)) in texts.iter().zip(&vectors).enumerate() {
        let t = Instant::now();
        let a = daemon
            .retrieve(request(i, text, v, model.model_id()))
            .await
            .unwrap();
        wall_us.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(a.embed_us, 0);
        assert!(!a.products.is_empty(), "query `{text}`");
        search_us.push(f64::from(a.search_us));
    }
    eprintln!(
        "search over {} queries with supplied embeddings: search_us p50 {:.0} p99 {:.0}; retrieve() wall p50 {:.0} µs p99 {:.0} µs",
        search_us.len(),
        percentile(&search_us, 0.5),
        percentile(&search_us, 0.99),
        percentile(&wall_us, 0.5),
        percentile(&wall_us, 0.99)
    );
}
