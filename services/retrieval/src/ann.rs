//! Approximate nearest neighbours (HNSW from `instant-distance`) over unit vectors, with
//! the exact scan kept alongside for filtered fallbacks and for measuring recall.

use std::sync::Arc;

use instant_distance::{Builder, HnswMap, Point, Search};

/// A unit vector; distance is 1 − cosine.
#[derive(Clone, Debug)]
struct Unit(Arc<[f32]>);

impl Point for Unit {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - mangaassist_embedding::cosine(&self.0, &other.0)
    }
}

/// An HNSW graph over a fixed set of vectors. `ef` is fixed at build time (the crate's
/// design) and bounds how many neighbours one search returns.
pub struct Ann {
    vectors: Vec<Arc<[f32]>>,
    map: Option<HnswMap<Unit, u32>>,
    ef: usize,
}

impl std::fmt::Debug for Ann {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ann")
            .field("len", &self.vectors.len())
            .field("ef", &self.ef)
            .finish()
    }
}

impl Ann {
    /// Builds the graph (parallel, CPU-bound: call from a blocking context). A fixed seed
    /// keeps results reproducible across restarts.
    pub fn build(vectors: Vec<Arc<[f32]>>, ef: usize) -> Self {
        let ef = ef.max(1);
        let map = if vectors.is_empty() {
            None
        } else {
            let points: Vec<Unit> = vectors.iter().cloned().map(Unit).collect();
            let values: Vec<u32> = (0..vectors.len() as u32).collect();
            Some(
                Builder::default()
                    .ef_construction(ef.max(100))
                    .ef_search(ef)
                    .seed(0x6d61_6e67_6161)
                    .build(points, values),
            )
        };
        Self { vectors, map, ef }
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i]
    }

    /// Up to `ef` approximate nearest neighbours as (index, cosine), most similar first.
    pub fn search(&self, query: &[f32]) -> Vec<(usize, f32)> {
        let Some(map) = &self.map else {
            return vec![];
        };
        let mut search = Search::default();
        map.search(&Unit(query.into()), &mut search)
            .map(|item| (*item.value as usize, 1.0 - item.distance))
            .collect()
    }

    /// The exact `k` nearest among the vectors `keep` accepts, most similar first.
    pub fn brute_force(
        &self,
        query: &[f32],
        k: usize,
        keep: impl Fn(usize) -> bool,
    ) -> Vec<(usize, f32)> {
        let mut all: Vec<(usize, f32)> = self
            .vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(i, v)| (i, mangaassist_embedding::cosine(query, v)))
            .collect();
        sort_desc(&mut all);
        all.truncate(k);
        all
    }
}

/// Highest score first, ties by index so rankings are deterministic.
pub fn sort_desc(v: &mut [(usize, f32)]) {
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
}

/// Mean over `queries` of |ANN top-k ∩ exact top-k| / k.
pub fn recall_at(ann: &Ann, queries: &[Arc<[f32]>], k: usize) -> f64 {
    let mut total = 0.0;
    for q in queries {
        let exact: std::collections::HashSet<usize> =
            ann.brute_force(q, k, |_| true).into_iter().map(|(i, _)| i).collect();
        let approx = ann.search(q);
        let found = approx.iter().take(k).filter(|(i, _)| exact.contains(i)).count();
        total += found as f64 / exact.len().max(1) as f64;
    }
    total / queries.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift so the test needs no RNG crate.
    fn random_units(n: usize, dim: usize, seed: u64) -> Vec<Arc<[f32]>> {
        let mut s = seed;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
        };
        (0..n)
            .map(|_| {
                let mut v: Vec<f32> = (0..dim).map(|_| next()).collect();
                mangaassist_embedding::normalize(&mut v);
                v.into()
            })
            .collect()
    }

    #[test]
    fn hnsw_recall_on_random_unit_vectors() {
        // Random high-dimensional vectors are the hard case for graph indexes (no cluster
        // structure), and 3,000 points is several times a store's catalogue.
        let data = random_units(3000, 384, 7);
        let queries = random_units(100, 384, 99);
        let ann = Ann::build(data, 64);
        let recall = recall_at(&ann, &queries, 10);
        eprintln!("hnsw recall@10 on 3000 random 384-d unit vectors (ef 64): {recall:.3}");
        assert!(recall >= 0.95, "recall@10 = {recall}");
        // It is genuinely approximate: a search returns ef results, not a full scan.
        assert_eq!(ann.search(&queries[0]).len(), 64);
    }

    #[test]
    fn brute_force_respects_the_filter_and_empty_index_is_fine() {
        let data = random_units(50, 8, 3);
        let ann = Ann::build(data.clone(), 16);
        let r = ann.brute_force(&data[4], 5, |i| i % 2 == 0);
        assert_eq!(r[0].0, 4);
        assert!(r.iter().all(|(i, _)| i % 2 == 0));
        assert!((r[0].1 - 1.0).abs() < 1e-5);
        let empty = Ann::build(vec![], 16);
        assert!(empty.search(&data[0]).is_empty());
        assert!(empty.brute_force(&data[0], 3, |_| true).is_empty());
    }
}
