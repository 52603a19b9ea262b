//! Loads the real all-MiniLM-L6-v2 (fails, not skips, when it is missing: run
//! scripts/fetch-model.sh), checks that it embeds meaning, and prints the cost of a single
//! query, a batch, and a query-cache hit. Timings are printed, never asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::{path::PathBuf, sync::Arc, time::Instant};

use mangaassist_embedding::{Embedder, MiniLm, QueryEmbedder, cosine};

fn model_dir() -> PathBuf {
    common::models_dir().join("all-MiniLM-L6-v2")
}

fn pct(v: Vec<f64>, p: f64) -> f64 {
    mangaassist_stats::percentile(&v, p / 100.0).unwrap_or(f64::NAN)
}

#[test]
fn minilm_embeds_meaning_and_the_query_cache_pays_off() {
    let model = MiniLm::load(&model_dir()).expect("model files (scripts/fetch-model.sh)");
    let a = model.embed("Where is my order?").unwrap();
    let b = model.embed("When will my package arrive?").unwrap();
    let c = model.embed("Recommend a horror manga").unwrap();
    assert_eq!(a.len(), 384);
    assert!(
        (a.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-3,
        "unit length"
    );
    assert!(
        cosine(&a, &b) > cosine(&a, &c) + 0.1,
        "paraphrases are closer than unrelated text"
    );

    let queries: Vec<String> = (0..60)
        .map(|i| format!("suggest a manga like series number {i}"))
        .collect();
    let single: Vec<f64> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            model.embed(q).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let refs: Vec<&str> = queries.iter().map(String::as_str).take(32).collect();
    let t = Instant::now();
    model.embed_batch(&refs).unwrap();
    let batch_per_s = 32.0 / t.elapsed().as_secs_f64();

    let cached = QueryEmbedder::new(Arc::new(model), 1000);
    cached.embed_query("where is my order").unwrap();
    let hits: Vec<f64> = (0..1000)
        .map(|_| {
            let t = Instant::now();
            cached.embed_query("Where is my   order").unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    println!(
        "minilm single query p50 {:.1} ms p99 {:.1} ms; batch of 32: {batch_per_s:.0} sentences/s; \
         query-cache hit p50 {:.1} µs p99 {:.1} µs",
        pct(single.clone(), 50.0),
        pct(single, 99.0),
        pct(hits.clone(), 50.0),
        pct(hits, 99.0)
    );
    assert_eq!(cached.stats().0, 1000);
}
