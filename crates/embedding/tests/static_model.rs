//! Loads the distilled static multilingual model (fails, not skips, when it is missing: run
//! scripts/fetch-model.sh), checks that it embeds meaning across Japanese and English, that
//! hostile input cannot break it, and prints what one query costs on one core. Timings are
//! printed, never asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::{path::PathBuf, time::Instant};

use mangaassist_embedding::{Embedder, StaticEmbedder, cosine};

fn model_dir() -> PathBuf {
    common::models_dir().join("static-me5s-v2")
}

fn load() -> StaticEmbedder {
    StaticEmbedder::load(&model_dir()).expect("static model (scripts/fetch-model.sh)")
}

#[test]
fn japanese_and_english_meet_in_one_space() {
    let m = load();
    let e = |t: &str| m.embed(t).unwrap();
    let order = e("where is my order");
    assert!((order.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-3);
    assert!(
        cosine(&order, &e("when will my package arrive"))
            > cosine(&order, &e("recommend a horror manga")),
        "paraphrases are closer than unrelated text"
    );
    // The same request in the other language beats an unrelated one in the same language.
    let pirate = e("pirate adventure");
    assert!(
        cosine(&pirate, &e("海賊の冒険")) > cosine(&pirate, &e("cooking recipes")),
        "a Japanese paraphrase is closer than unrelated English"
    );
    let ja_ship = e("送料はいくらですか");
    assert!(
        cosine(&ja_ship, &e("shipping cost")) > cosine(&ja_ship, &e("horror manga")),
        "shipping in Japanese is closer to shipping in English than to horror"
    );
}

#[test]
fn segmentation_follows_the_vocabulary_and_survives_anything() {
    let m = load();
    // Case, width and spacing do not change the vector (queries arrive lower-cased; the
    // catalog is embedded as written).
    assert_eq!(
        m.embed("One Piece").unwrap(),
        m.embed("  one   piece ").unwrap()
    );
    assert_eq!(
        m.embed("ＯＮＥ ＰＩＥＣＥ").unwrap(),
        m.embed("one piece").unwrap()
    );
    // Unknown scripts, emoji, control characters and a very long input neither panic nor
    // produce NaN.
    for t in [
        "",
        "   ",
        "مرحبا بالعالم",
        "🦀🦀🦀",
        "\u{0}\u{7}\u{feff}",
        &"あ".repeat(20_000),
    ] {
        let v = m.embed(t).unwrap();
        assert_eq!(v.len(), m.dim());
        assert!(v.iter().all(|x| x.is_finite()), "{t:?}");
    }
    assert!(!m.pieces("ワンピース").is_empty());
}

#[test]
fn one_query_costs_microseconds() {
    let m = load();
    let queries: Vec<String> = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/eval/retrieval.jsonl"),
    )
    .unwrap()
    .lines()
    .map(|l| {
        serde_json::from_str::<serde_json::Value>(l).unwrap()["query"]
            .as_str()
            .unwrap()
            .to_lowercase()
    })
    .collect();
    let mut us = Vec::new();
    for _ in 0..20 {
        for q in &queries {
            let t = Instant::now();
            let v = m.embed(q).unwrap();
            us.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(v.len(), m.dim());
        }
    }
    let pct = |p: f64| mangaassist_stats::percentile(&us, p).unwrap_or(f64::NAN);
    println!(
        "static model, one query on one thread ({} queries of data/eval/retrieval.jsonl x20): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        queries.len(),
        pct(0.5),
        pct(0.99),
        us.iter().copied().fold(0.0, f64::max)
    );
}
