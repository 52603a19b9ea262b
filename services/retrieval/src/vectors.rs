//! Catalog vectors: computed once per model and catalog, then cached on disk so a restart
//! costs a file read instead of a minute of CPU. The file format and name are
//! [`mangaassist_embedding::vector_file`]'s.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use mangaassist_embedding::{
    Embedder,
    vector_file::{self, cache_path},
};

use crate::RetrievalError;

/// Texts per forward pass; larger batches pad more and gain little on CPU.
const BATCH: usize = 32;

/// How the catalog vectors were obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorsOutcome {
    pub path: PathBuf,
    pub cache_hit: bool,
    pub elapsed: std::time::Duration,
    /// Texts run through the model (duplicates are embedded once).
    pub embedded: usize,
}

/// The vector of every text, from the cache when it matches, else embedded in batches on
/// the blocking pool and written back to the cache.
pub async fn catalog_vectors(
    embedder: Arc<dyn Embedder>,
    texts: Vec<String>,
    cache_dir: &Path,
) -> Result<(Vec<Arc<[f32]>>, VectorsOutcome), RetrievalError> {
    let start = Instant::now();
    let dim = embedder.dim();
    let path = cache_path(cache_dir, embedder.model_id(), dim, &texts);
    let count = texts.len();
    let read_path = path.clone();
    let cached = tokio::task::spawn_blocking(move || vector_file::read(&read_path, count, dim))
        .await
        .map_err(|e| RetrievalError::Internal(e.to_string()))?;
    match cached {
        Ok(vectors) => {
            let outcome = VectorsOutcome {
                path,
                cache_hit: true,
                elapsed: start.elapsed(),
                embedded: 0,
            };
            tracing::info!(path = %outcome.path.display(), texts = count, elapsed_ms = outcome.elapsed.as_millis() as u64, cache_hit = true, "catalog vectors loaded");
            return Ok((vectors, outcome));
        }
        Err(reason) if path.exists() => {
            tracing::warn!(path = %path.display(), %reason, "ignoring unusable vector cache, recomputing");
        }
        Err(_) => {}
    }

    // Identical texts (the same volume sold in both stores) are embedded once.
    let mut unique: Vec<String> = Vec::new();
    let mut slot: HashMap<&str, usize> = HashMap::new();
    let mut which = Vec::with_capacity(texts.len());
    for t in &texts {
        let next = slot.len();
        let i = *slot.entry(t.as_str()).or_insert(next);
        if i == unique.len() {
            unique.push(t.clone());
        }
        which.push(i);
    }
    // Batches pad to their longest text, so texts of similar length go together.
    let mut order: Vec<usize> = (0..unique.len()).collect();
    order.sort_by_key(|&i| unique[i].len());
    let mut computed: Vec<Option<Arc<[f32]>>> = vec![None; unique.len()];
    for chunk in order.chunks(BATCH) {
        let emb = embedder.clone();
        let batch_texts: Vec<String> = chunk.iter().map(|&i| unique[i].clone()).collect();
        let batch = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = batch_texts.iter().map(String::as_str).collect();
            emb.embed_batch(&refs)
        })
        .await
        .map_err(|e| RetrievalError::Internal(e.to_string()))??;
        if batch.len() != chunk.len() {
            return Err(RetrievalError::Internal(format!(
                "embedder returned {} vectors for {} texts",
                batch.len(),
                chunk.len()
            )));
        }
        for (&i, v) in chunk.iter().zip(batch) {
            if v.len() != dim {
                return Err(RetrievalError::Internal(format!(
                    "embedder returned {} dimensions, expected {dim}",
                    v.len()
                )));
            }
            computed[i] = Some(v.into());
        }
    }
    let computed: Vec<Arc<[f32]>> = computed.into_iter().flatten().collect();
    let vectors: Vec<Arc<[f32]>> = which.iter().map(|&i| computed[i].clone()).collect();
    let outcome = VectorsOutcome {
        path: path.clone(),
        cache_hit: false,
        elapsed: start.elapsed(),
        embedded: unique.len(),
    };
    tracing::info!(path = %path.display(), texts = count, embedded = unique.len(), elapsed_ms = outcome.elapsed.as_millis() as u64, cache_hit = false, "catalog vectors computed");
    let to_write = vectors.clone();
    let write = tokio::task::spawn_blocking(move || vector_file::write(&path, &to_write, dim))
        .await
        .map_err(|e| RetrievalError::Internal(e.to_string()))?;
    if let Err(e) = write {
        // Not fatal: the daemon works, the next start just embeds again.
        tracing::warn!(path = %outcome.path.display(), error = %e, "cannot write vector cache");
    }
    Ok((vectors, outcome))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mangaassist_embedding::HashedNgrams;

    #[tokio::test]
    async fn cache_round_trip_and_corrupt_files_are_recomputed() {
        let dir = tempfile::tempdir().unwrap();
        let emb: Arc<dyn Embedder> = Arc::new(HashedNgrams::default());
        let texts: Vec<String> = ["alpha beta", "gamma", "alpha beta", "delta"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (v1, o1) = catalog_vectors(emb.clone(), texts.clone(), dir.path())
            .await
            .unwrap();
        assert!(!o1.cache_hit);
        assert_eq!(o1.embedded, 3);
        assert_eq!(v1.len(), 4);
        assert_eq!(v1[0], v1[2]);
        assert!(o1.path.exists());
        let (v2, o2) = catalog_vectors(emb.clone(), texts.clone(), dir.path())
            .await
            .unwrap();
        assert!(o2.cache_hit);
        assert_eq!(v1, v2);

        // Truncated file → ignored and rewritten.
        let len = std::fs::metadata(&o1.path).unwrap().len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&o1.path)
            .unwrap();
        f.set_len(len - 3).unwrap();
        drop(f);
        let (v3, o3) = catalog_vectors(emb.clone(), texts.clone(), dir.path())
            .await
            .unwrap();
        assert!(!o3.cache_hit);
        assert_eq!(v1, v3);
        assert!(vector_file::read(&o1.path, 4, emb.dim()).is_ok());
        // Garbage → ignored.
        std::fs::write(&o1.path, b"not a vector file").unwrap();
        assert!(vector_file::read(&o1.path, 4, emb.dim()).is_err());
        let (_, o4) = catalog_vectors(emb.clone(), texts.clone(), dir.path())
            .await
            .unwrap();
        assert!(!o4.cache_hit);

        // Different texts → different file.
        let other = cache_path(dir.path(), emb.model_id(), emb.dim(), &texts[..3]);
        assert_ne!(other, o1.path);
        // No stray temp files.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("vectors"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
