//! Approximate nearest neighbours (HNSW from `instant-distance`) over unit vectors, with
//! the exact scan kept alongside for filtered fallbacks and for measuring recall.

use std::sync::Arc;

use instant_distance::{Builder, HnswMap, Point, Search};

/// Above this many vectors the build computes distances on the fly instead of from a
/// precomputed similarity matrix (n² floats: 16 MiB at this size).
const MATRIX_MAX: usize = 2048;

pub use mangaassist_embedding::cosine as dot;

/// The indexed vectors, and for small sets their full similarity matrix so building the
/// graph is table look-ups.
#[derive(Debug)]
struct Table {
    vectors: Vec<Arc<[f32]>>,
    sims: Option<Vec<f32>>,
}

impl Table {
    fn new(vectors: Vec<Arc<[f32]>>) -> Self {
        let n = vectors.len();
        let sims = (n <= MATRIX_MAX).then(|| {
            let mut m = vec![0.0f32; n * n];
            for i in 0..n {
                for j in i..n {
                    let s = dot(&vectors[i], &vectors[j]);
                    m[i * n + j] = s;
                    m[j * n + i] = s;
                }
            }
            m
        });
        Self { vectors, sims }
    }

    fn sim(&self, i: u32, j: u32) -> f32 {
        let (i, j) = (i as usize, j as usize);
        match &self.sims {
            Some(m) => m[i * self.vectors.len() + j],
            None => dot(&self.vectors[i], &self.vectors[j]),
        }
    }
}

/// A graph node (an indexed vector) or a query; distance is 1 − cosine.
#[derive(Clone, Debug)]
enum Node {
    Item(u32, Arc<Table>),
    Query(Arc<[f32]>, Arc<Table>),
}

impl Point for Node {
    fn distance(&self, other: &Self) -> f32 {
        let sim = match (self, other) {
            (Node::Item(i, t), Node::Item(j, _)) => t.sim(*i, *j),
            (Node::Item(i, t), Node::Query(q, _)) | (Node::Query(q, t), Node::Item(i, _)) => {
                dot(q, &t.vectors[*i as usize])
            }
            (Node::Query(a, _), Node::Query(b, _)) => dot(a, b),
        };
        1.0 - sim
    }
}

/// An HNSW graph over a fixed set of unit vectors. `ef` is fixed at build time (the
/// crate's design) and bounds how many neighbours one search returns.
pub struct Ann {
    table: Arc<Table>,
    map: Option<HnswMap<Node, u32>>,
    ef: usize,
}

impl std::fmt::Debug for Ann {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ann")
            .field("len", &self.len())
            .field("ef", &self.ef)
            .finish()
    }
}

impl Ann {
    /// Builds the graph (CPU-bound: call from a blocking context). A fixed seed keeps
    /// results reproducible across restarts.
    pub fn build(vectors: Vec<Arc<[f32]>>, ef: usize) -> Self {
        let ef = ef.max(1);
        let n = vectors.len() as u32;
        let table = Arc::new(Table::new(vectors));
        let map = (n > 0).then(|| {
            let points: Vec<Node> = (0..n).map(|i| Node::Item(i, table.clone())).collect();
            Builder::default()
                .ef_construction(ef.max(100))
                .ef_search(ef)
                .seed(0x6d61_6e67_6161)
                .build(points, (0..n).collect())
        });
        Self { table, map, ef }
    }

    pub fn len(&self) -> usize {
        self.table.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.vectors.is_empty()
    }

    pub fn vector(&self, i: usize) -> &[f32] {
        &self.table.vectors[i]
    }

    /// Up to `ef` approximate nearest neighbours as (index, cosine), most similar first.
    pub fn search(&self, query: &[f32]) -> Vec<(usize, f32)> {
        let Some(map) = &self.map else {
            return vec![];
        };
        let mut search = Search::default();
        map.search(&Node::Query(query.into(), self.table.clone()), &mut search)
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
            .table
            .vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(i, v)| (i, dot(query, v)))
            .collect();
        // Only the best k need ordering.
        if k > 0 && all.len() > k {
            all.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(k);
        }
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
        let exact: std::collections::HashSet<usize> = ann
            .brute_force(q, k, |_| true)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        let approx = ann.search(q);
        let found = approx
            .iter()
            .take(k)
            .filter(|(i, _)| exact.contains(i))
            .count();
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
        // structure), and 1,200 points is several times a store's catalogue.
        let data = random_units(1200, 384, 7);
        let queries = random_units(100, 384, 99);
        let start = std::time::Instant::now();
        let ann = Ann::build(data, 64);
        let built = start.elapsed();
        let recall = recall_at(&ann, &queries, 10);
        eprintln!(
            "hnsw recall@10 on 1200 random 384-d unit vectors (ef 64): {recall:.3}, built in {built:?}"
        );
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
