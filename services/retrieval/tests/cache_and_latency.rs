//! The on-disk vector cache with the real model (cold start embeds, the next start reads
//! the file and answers identically), and search latency with caller-supplied vectors.
//! Timings are printed (`--nocapture`), not asserted: the machine is shared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, sync::Arc, time::Instant};

use mangaassist_config::Config;
use mangaassist_embedding::{Embedder, MiniLm, QueryEmbedder};
use mangaassist_proto::v1 as pb;
use mangaassist_retrieval::RetrievalDaemon;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test]
async fn vector_cache_is_written_and_reused_and_search_latency() {
    let cache = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.data.dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
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

    // Queries with vectors computed up front, as the gateway sends them.
    let questions =
        mangaassist_catalog::load_intents(&config.data.dir.join("intents/train.jsonl")).unwrap();
    let texts: Vec<String> = questions.iter().take(200).map(|q| q.text.clone()).collect();
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
    let mut search_us = Vec::new();
    let mut wall_us = Vec::new();
    for (i, (text, v)) in texts.iter().zip(&vectors).enumerate() {
        let store = if i % 2 == 0 { "manga_jp" } else { "comics_us" };
        let req = pb::RetrieveRequest {
            query: text.clone(),
            store_id: store.into(),
            embedding: Some(pb::Embedding {
                values: v.clone(),
                model: model.model_id().into(),
            }),
            top_k: 5,
            top_k_documents: if i % 3 == 0 { 3 } else { 0 },
            filters: (i % 4 == 0).then(|| pb::Filters {
                in_stock_only: true,
                ..Default::default()
            }),
        };
        // Identical vectors from the cold and the cached start → identical answers.
        let t = Instant::now();
        let a = warm.retrieve(req.clone()).await.unwrap();
        wall_us.push(t.elapsed().as_secs_f64() * 1e6);
        let b = cold.retrieve(req).await.unwrap();
        assert_eq!(a.embed_us, 0);
        assert_eq!(a.products, b.products, "query `{text}`");
        assert_eq!(a.documents, b.documents, "query `{text}`");
        search_us.push(f64::from(a.search_us));
    }
    search_us.sort_by(f64::total_cmp);
    wall_us.sort_by(f64::total_cmp);
    eprintln!(
        "search over {} queries with supplied embeddings: search_us p50 {:.0} p99 {:.0}; retrieve() wall p50 {:.0} µs p99 {:.0} µs",
        search_us.len(),
        percentile(&search_us, 0.5),
        percentile(&search_us, 0.99),
        percentile(&wall_us, 0.5),
        percentile(&wall_us, 0.99)
    );
}
