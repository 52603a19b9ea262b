use std::{collections::HashMap, sync::Arc};

use mangaassist_domain::normalize_text;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::{EmbedError, Embedder};

/// An embedder with an LRU-ish cache of query vectors keyed by the SHA-256 of the normalised
/// text ([`normalize_text`], which is also what is embedded), so the same question (or a
/// retry) costs a hash lookup instead of a forward pass. The digest, not the text, is kept:
/// the cache holds no customer's words and its keys cost 32 bytes whatever the question's
/// length.
#[derive(Debug, Clone)]
pub struct QueryEmbedder {
    inner: Arc<dyn Embedder>,
    cache: Arc<Mutex<Cache>>,
}

#[derive(Debug, Default)]
struct Cache {
    map: HashMap<[u8; 32], (Arc<[f32]>, u64)>,
    tick: u64,
    capacity: usize,
    hits: u64,
    misses: u64,
}

impl QueryEmbedder {
    pub fn new(inner: Arc<dyn Embedder>, capacity: usize) -> Self {
        Self {
            inner,
            cache: Arc::new(Mutex::new(Cache {
                capacity: capacity.max(1),
                ..Default::default()
            })),
        }
    }

    pub fn inner(&self) -> &Arc<dyn Embedder> {
        &self.inner
    }

    pub fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        let c = self.cache.lock();
        (c.hits, c.misses)
    }

    /// [`embed_query`](Self::embed_query) for async callers: inline when the model is cheap
    /// (the static model costs microseconds, less than a hand-off to the blocking pool),
    /// otherwise on the blocking pool so a transformer's milliseconds never stall the runtime.
    pub async fn embed_query_async(&self, text: &str) -> Result<Arc<[f32]>, EmbedError> {
        if self.inner.is_cheap() {
            return self.embed_query(text);
        }
        let (this, text) = (self.clone(), text.to_string());
        tokio::task::spawn_blocking(move || this.embed_query(&text))
            .await
            .map_err(|e| EmbedError::Inference(format!("embedding task failed: {e}")))?
    }

    /// The vector of `text`, from the cache when possible. Runs the model on the calling
    /// thread on a miss.
    pub fn embed_query(&self, text: &str) -> Result<Arc<[f32]>, EmbedError> {
        let text = normalize_text(text);
        let key: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        {
            let mut c = self.cache.lock();
            c.tick += 1;
            let tick = c.tick;
            if let Some(entry) = c.map.get_mut(&key) {
                entry.1 = tick;
                let v = entry.0.clone();
                c.hits += 1;
                return Ok(v);
            }
            c.misses += 1;
        }
        let v: Arc<[f32]> = self.inner.embed(&text)?.into();
        let mut c = self.cache.lock();
        if c.map.len() >= c.capacity {
            // Evict the least recently used tenth in one pass to amortise the sort.
            let mut ticks: Vec<u64> = c.map.values().map(|(_, t)| *t).collect();
            ticks.sort_unstable();
            let cut = ticks[(ticks.len() / 10).min(ticks.len() - 1)];
            c.map.retain(|_, (_, t)| *t > cut);
        }
        let tick = c.tick;
        c.map.insert(key, (v.clone(), tick));
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HashedNgrams;

    #[test]
    fn second_lookup_is_a_hit_and_eviction_bounds_size() {
        let q = QueryEmbedder::new(Arc::new(HashedNgrams::default()), 20);
        let a = q.embed_query("Hello  There").unwrap();
        let b = q.embed_query("hello there").unwrap();
        assert_eq!(a, b);
        assert_eq!(q.stats(), (1, 1));
        for i in 0..100 {
            q.embed_query(&format!("q {i}")).unwrap();
        }
        assert!(q.cache.lock().map.len() <= 20);
    }
}
