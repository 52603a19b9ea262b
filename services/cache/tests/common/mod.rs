//! Cache entries and vectors shared by the store tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use mangaassist_cache::{CacheEntry, Clock, Partition, SystemClock};
use mangaassist_proto::v1 as pb;

pub const HOUR_MS: i64 = 3_600_000;

pub fn now() -> i64 {
    SystemClock.now_ms()
}

/// An entry created now that lives `ttl_ms`.
pub fn entry(
    p: &Partition,
    text: &str,
    v: Option<Vec<f32>>,
    products: &[&str],
    ttl_ms: i64,
) -> CacheEntry {
    let created = now();
    CacheEntry {
        key: p.exact_key(text),
        partition: p.clone(),
        vector: v,
        answer: pb::CachedAnswer {
            text: format!("answer to {text}"),
            product_ids: products.iter().map(|s| s.to_string()).collect(),
            created_ms: created,
            expires_ms: created + ttl_ms,
            ..Default::default()
        },
    }
}

pub fn unit(i: usize, dim: usize) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    v[i] = 1.0;
    v
}
