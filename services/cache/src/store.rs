//! The storage trait and the in-process implementation.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use mangaassist_proto::v1 as pb;
use parking_lot::RwLock;

use crate::CacheError;

/// The set of entries one lookup step can see: a scope, a store, and who owns them. A
/// session partition belongs to the authenticated user *and* the session, so a session id
/// sent by someone else names a different (empty) partition; `user` and `session` are empty
/// where the scope has none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partition {
    pub scope: pb::CacheScope,
    pub store_id: String,
    pub user: String,
    pub session: String,
}

impl Partition {
    pub fn store(store_id: &str) -> Self {
        Self {
            scope: pb::CacheScope::Store,
            store_id: store_id.into(),
            user: String::new(),
            session: String::new(),
        }
    }

    pub fn user(store_id: &str, user_id: &str) -> Self {
        Self {
            scope: pb::CacheScope::User,
            store_id: store_id.into(),
            user: user_id.into(),
            session: String::new(),
        }
    }

    pub fn session(store_id: &str, user_id: &str, session_id: &str) -> Self {
        Self {
            scope: pb::CacheScope::Session,
            store_id: store_id.into(),
            user: user_id.into(),
            session: session_id.into(),
        }
    }

    /// The exact-match key of a normalised question in this partition. Fields are length
    /// prefixed so no choice of ids can make two partitions share a key.
    pub fn exact_key(&self, normalized_text: &str) -> String {
        let (user, session) = (&self.user, &self.session);
        format!(
            "{}|{}:{}|{}:{}|{}:{}|{}",
            self.scope.as_str_name(),
            self.store_id.len(),
            self.store_id,
            user.len(),
            user,
            session.len(),
            session,
            normalized_text
        )
    }
}

/// One answer to store. `answer.expires_ms` must be set.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// From [`Partition::exact_key`]; a put with an existing key replaces that entry.
    pub key: String,
    pub partition: Partition,
    /// Unit vector of the question, for semantic lookups; `None` = exact matches only.
    pub vector: Option<Vec<f32>>,
    pub answer: pb::CachedAnswer,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutOutcome {
    /// Older entries dropped to make room.
    pub evicted: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub entries: u64,
    pub evictions: u64,
}

/// Where cached answers live. The default is [`InMemoryStore`]; a Redis backend implements
/// the same trait. Expired entries are never returned; `now_ms` comes from the caller's clock.
#[async_trait::async_trait]
pub trait CacheStore: Send + Sync {
    async fn get_exact(
        &self,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<pb::CachedAnswer>, CacheError>;

    async fn put(&self, entry: CacheEntry) -> Result<PutOutcome, CacheError>;

    /// Entries with vectors in the partition (expired ones may be counted), so a caller can
    /// skip computing a query embedding when there is nothing to compare it with.
    async fn semantic_len(&self, partition: &Partition) -> Result<usize, CacheError>;

    /// The live entry most similar to `vector` if its cosine is at least `threshold`.
    async fn semantic_search(
        &self,
        partition: &Partition,
        vector: &[f32],
        threshold: f32,
        now_ms: i64,
    ) -> Result<Option<(pb::CachedAnswer, f32)>, CacheError>;

    /// Drops every entry mentioning one of the products; `store_id` empty = every store.
    async fn invalidate_products(
        &self,
        store_id: &str,
        product_ids: &[String],
    ) -> Result<u64, CacheError>;

    async fn stats(&self) -> Result<StoreStats, CacheError>;

    /// Drops expired entries; returns how many.
    async fn purge_expired(&self, now_ms: i64) -> Result<u64, CacheError>;
}

/// Partitions with more vectors than this are scanned on the blocking pool (~0.2 ms of work).
const INLINE_SCAN_MAX: usize = 2_048;

/// Everything in process memory behind one `RwLock`: lookups share the read lock, puts and
/// invalidations take the write lock briefly. Semantic search is a brute-force scan over
/// the partition's vectors, stored contiguously.
#[derive(Debug, Clone)]
pub struct InMemoryStore {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    max_entries: usize,
    /// Ids grow with every put, so the first entry is the oldest.
    entries: BTreeMap<u64, Stored>,
    by_key: HashMap<String, u64>,
    by_product: HashMap<String, HashSet<u64>>,
    vectors: HashMap<Partition, VectorIndex>,
    next_id: u64,
    evictions: u64,
}

#[derive(Debug)]
struct Stored {
    key: String,
    partition: Partition,
    answer: pb::CachedAnswer,
    /// Position in the partition's [`VectorIndex`].
    slot: Option<usize>,
}

#[derive(Debug, Default)]
struct VectorIndex {
    dim: usize,
    ids: Vec<u64>,
    /// `ids.len() * dim` floats, row i belonging to `ids[i]`.
    data: Vec<f32>,
}

impl InMemoryStore {
    /// `max_entries` (at least 1) entries are kept; the oldest go first.
    pub fn new(max_entries: usize) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Inner {
                max_entries: max_entries.max(1),
                ..Default::default()
            })),
        }
    }

    fn stats_now(&self) -> StoreStats {
        let g = self.inner.read();
        StoreStats {
            entries: g.entries.len() as u64,
            evictions: g.evictions,
        }
    }
}

impl Inner {
    fn remove(&mut self, id: u64) -> bool {
        let Some(stored) = self.entries.remove(&id) else {
            return false;
        };
        if self.by_key.get(&stored.key) == Some(&id) {
            self.by_key.remove(&stored.key);
        }
        for p in &stored.answer.product_ids {
            if let Some(set) = self.by_product.get_mut(p) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_product.remove(p);
                }
            }
        }
        if let Some(slot) = stored.slot
            && let Some(index) = self.vectors.get_mut(&stored.partition)
        {
            let last = index.ids.len() - 1;
            index.ids.swap_remove(slot);
            let dim = index.dim;
            if slot != last {
                index
                    .data
                    .copy_within(last * dim..(last + 1) * dim, slot * dim);
                let moved = index.ids[slot];
                if let Some(m) = self.entries.get_mut(&moved) {
                    m.slot = Some(slot);
                }
            }
            index.data.truncate(last * dim);
            if index.ids.is_empty() {
                self.vectors.remove(&stored.partition);
            }
        }
        true
    }

    fn insert(&mut self, entry: CacheEntry) -> PutOutcome {
        if let Some(old) = self.by_key.get(&entry.key).copied() {
            self.remove(old);
        }
        let mut evicted = 0;
        while self.entries.len() >= self.max_entries {
            let Some((&oldest, _)) = self.entries.first_key_value() else {
                break;
            };
            self.remove(oldest);
            evicted += 1;
        }
        self.evictions += evicted;
        self.next_id += 1;
        let id = self.next_id;
        let slot = entry.vector.and_then(|v| {
            let index = self.vectors.entry(entry.partition.clone()).or_default();
            if index.ids.is_empty() {
                index.dim = v.len();
            }
            // A vector of another size comes from another model: keep the entry exact-only.
            (index.dim == v.len() && !v.is_empty()).then(|| {
                index.ids.push(id);
                index.data.extend_from_slice(&v);
                index.ids.len() - 1
            })
        });
        if self
            .vectors
            .get(&entry.partition)
            .is_some_and(|i| i.ids.is_empty())
        {
            self.vectors.remove(&entry.partition);
        }
        for p in &entry.answer.product_ids {
            self.by_product.entry(p.clone()).or_default().insert(id);
        }
        self.by_key.insert(entry.key.clone(), id);
        self.entries.insert(
            id,
            Stored {
                key: entry.key,
                partition: entry.partition,
                answer: entry.answer,
                slot,
            },
        );
        PutOutcome { evicted }
    }

    fn search(
        &self,
        partition: &Partition,
        vector: &[f32],
        threshold: f32,
        now_ms: i64,
    ) -> Option<(pb::CachedAnswer, f32)> {
        let index = self.vectors.get(partition)?;
        if index.dim != vector.len() {
            return None;
        }
        let mut best: Option<(u64, f32)> = None;
        for (row, &id) in index.data.chunks_exact(index.dim).zip(&index.ids) {
            let sim = mangaassist_embedding::cosine(row, vector);
            if sim >= threshold
                && best.is_none_or(|(_, b)| sim > b)
                && self
                    .entries
                    .get(&id)
                    .is_some_and(|e| e.answer.expires_ms > now_ms)
            {
                best = Some((id, sim));
            }
        }
        let (id, sim) = best?;
        self.entries.get(&id).map(|e| (e.answer.clone(), sim))
    }
}

#[async_trait::async_trait]
impl CacheStore for InMemoryStore {
    async fn get_exact(
        &self,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<pb::CachedAnswer>, CacheError> {
        let expired = {
            let g = self.inner.read();
            let Some(&id) = g.by_key.get(key) else {
                return Ok(None);
            };
            match g.entries.get(&id) {
                Some(e) if e.answer.expires_ms > now_ms => return Ok(Some(e.answer.clone())),
                Some(_) => id,
                None => return Ok(None),
            }
        };
        // Lazy expiry: the entry is dead, drop it now rather than at the next purge.
        let mut g = self.inner.write();
        if g.entries
            .get(&expired)
            .is_some_and(|e| e.answer.expires_ms <= now_ms)
        {
            g.remove(expired);
        }
        Ok(None)
    }

    async fn put(&self, entry: CacheEntry) -> Result<PutOutcome, CacheError> {
        Ok(self.inner.write().insert(entry))
    }

    async fn semantic_len(&self, partition: &Partition) -> Result<usize, CacheError> {
        Ok(self
            .inner
            .read()
            .vectors
            .get(partition)
            .map_or(0, |i| i.ids.len()))
    }

    async fn semantic_search(
        &self,
        partition: &Partition,
        vector: &[f32],
        threshold: f32,
        now_ms: i64,
    ) -> Result<Option<(pb::CachedAnswer, f32)>, CacheError> {
        let len = self.semantic_len(partition).await?;
        if len <= INLINE_SCAN_MAX {
            return Ok(self
                .inner
                .read()
                .search(partition, vector, threshold, now_ms));
        }
        let (inner, partition, vector) = (self.inner.clone(), partition.clone(), vector.to_vec());
        tokio::task::spawn_blocking(move || {
            inner.read().search(&partition, &vector, threshold, now_ms)
        })
        .await
        .map_err(|e| CacheError::Task(e.to_string()))
    }

    async fn invalidate_products(
        &self,
        store_id: &str,
        product_ids: &[String],
    ) -> Result<u64, CacheError> {
        let mut g = self.inner.write();
        let mut doomed: Vec<u64> = product_ids
            .iter()
            .filter_map(|p| g.by_product.get(p))
            .flatten()
            .copied()
            .filter(|id| {
                store_id.is_empty()
                    || g.entries
                        .get(id)
                        .is_some_and(|e| e.partition.store_id == store_id)
            })
            .collect();
        doomed.sort_unstable();
        doomed.dedup();
        let mut removed = 0;
        for id in doomed {
            removed += u64::from(g.remove(id));
        }
        Ok(removed)
    }

    async fn stats(&self) -> Result<StoreStats, CacheError> {
        Ok(self.stats_now())
    }

    async fn purge_expired(&self, now_ms: i64) -> Result<u64, CacheError> {
        let doomed: Vec<u64> = {
            let g = self.inner.read();
            g.entries
                .iter()
                .filter(|(_, e)| e.answer.expires_ms <= now_ms)
                .map(|(&id, _)| id)
                .collect()
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        let mut g = self.inner.write();
        let mut removed = 0;
        for id in doomed {
            // Re-check: the key may have been put again since the read.
            if g.entries
                .get(&id)
                .is_some_and(|e| e.answer.expires_ms <= now_ms)
            {
                removed += u64::from(g.remove(id));
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn entry(p: &Partition, text: &str, v: Option<Vec<f32>>, products: &[&str]) -> CacheEntry {
        CacheEntry {
            key: p.exact_key(text),
            partition: p.clone(),
            vector: v,
            answer: pb::CachedAnswer {
                text: format!("answer to {text}"),
                product_ids: products.iter().map(|s| s.to_string()).collect(),
                expires_ms: 1_000,
                ..Default::default()
            },
        }
    }

    fn unit(i: usize, dim: usize) -> Vec<f32> {
        let mut v = vec![0.0; dim];
        v[i] = 1.0;
        v
    }

    #[test]
    fn keys_cannot_collide_across_partitions() {
        let a = Partition::user("s", "a|1:b").exact_key("x");
        let b = Partition::user("s|1:a", "b").exact_key("x");
        assert_ne!(a, b);
        assert_ne!(
            Partition::user("s", "u").exact_key("x"),
            Partition::session("s", "u", "").exact_key("x")
        );
        // One session id under two users is two partitions.
        assert_ne!(
            Partition::session("s", "alice", "sess").exact_key("x"),
            Partition::session("s", "bob", "sess").exact_key("x")
        );
    }

    #[tokio::test]
    async fn removal_keeps_vector_slots_consistent() {
        let s = InMemoryStore::new(100);
        let p = Partition::store("s");
        for i in 0..5 {
            s.put(entry(
                &p,
                &format!("q{i}"),
                Some(unit(i, 8)),
                &[&format!("P{i}")],
            ))
            .await
            .unwrap();
        }
        // Remove a middle row: the last row moves into its slot and must still be found.
        assert_eq!(s.invalidate_products("", &["P1".into()]).await.unwrap(), 1);
        for i in [0, 2, 3, 4] {
            let (a, sim) = s
                .semantic_search(&p, &unit(i, 8), 0.9, 0)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(a.text, format!("answer to q{i}"));
            assert!((sim - 1.0).abs() < 1e-6);
        }
        assert!(
            s.semantic_search(&p, &unit(1, 8), 0.9, 0)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(s.semantic_len(&p).await.unwrap(), 4);
        // Replacing a key does not leave its old vector behind.
        s.put(entry(&p, "q0", Some(unit(7, 8)), &[])).await.unwrap();
        assert_eq!(s.semantic_len(&p).await.unwrap(), 4);
        assert!(
            s.semantic_search(&p, &unit(0, 8), 0.9, 0)
                .await
                .unwrap()
                .is_none()
        );
        // The product index of the replaced entry is gone too.
        assert_eq!(s.invalidate_products("", &["P0".into()]).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn semantic_search_skips_expired_and_mismatched_vectors() {
        let s = InMemoryStore::new(100);
        let p = Partition::store("s");
        let mut e = entry(&p, "old", Some(unit(0, 4)), &[]);
        e.answer.expires_ms = 10;
        s.put(e).await.unwrap();
        assert!(
            s.semantic_search(&p, &unit(0, 4), 0.5, 10)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.semantic_search(&p, &unit(0, 4), 0.5, 9)
                .await
                .unwrap()
                .is_some()
        );
        // A vector of another dimension is stored exact-only.
        s.put(entry(&p, "other", Some(vec![1.0; 3]), &[]))
            .await
            .unwrap();
        assert_eq!(s.semantic_len(&p).await.unwrap(), 1);
        assert!(
            s.get_exact(&p.exact_key("other"), 0)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(s.purge_expired(10).await.unwrap(), 1);
        assert_eq!(s.semantic_len(&p).await.unwrap(), 0);
    }
}
