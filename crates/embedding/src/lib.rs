//! Sentence embeddings for the mesh. The default is a static multilingual embedding distilled
//! from multilingual-e5-small ([`StaticEmbedder`]: a table lookup per SentencePiece piece,
//! microseconds per message, Japanese and English in one space). all-MiniLM-L6-v2 run on CPU
//! with candle (English only, ~15 ms a message) remains selectable, and when no model files
//! can be had a hashed character n-gram embedder keeps every feature working with lower
//! quality. Query vectors are cached so a message is embedded once however many stages need
//! it. [`vector_file`] is the on-disk cache format for vectors embedded once and read back on
//! the next start.

mod hashed;
mod minilm;
mod query_cache;
mod static_model;
pub mod vector_file;

use std::{path::PathBuf, sync::Arc};

pub use hashed::HashedNgrams;
pub use minilm::MiniLm;
pub use query_cache::QueryEmbedder;
pub use static_model::StaticEmbedder;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("model files missing in {dir}: {missing} (run scripts/fetch-model.sh)")]
    ModelMissing { dir: String, missing: String },
    #[error("cannot load model: {0}")]
    Load(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("unknown embedding backend `{0}`")]
    Backend(String),
}

/// Turns texts into unit-length vectors. Implementations are CPU-bound: call them from
/// `spawn_blocking` or accept the few milliseconds on the async thread knowingly.
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// Identifies model and version; vectors from different ids must not be compared.
    fn model_id(&self) -> &str;
    fn dim(&self) -> usize;
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// True when one text costs microseconds, so callers embed on the async thread instead of
    /// paying a `spawn_blocking` hand-off that would cost more than the work.
    fn is_cheap(&self) -> bool {
        false
    }

    fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.embed_batch(&[text])?
            .pop()
            .ok_or_else(|| EmbedError::Inference("empty batch result".into()))
    }
}

/// Where each embedder's files live.
#[derive(Debug, Clone)]
pub struct ModelDirs {
    /// `vocab.json` + `vectors.bin` of the distilled static model.
    pub static_model: PathBuf,
    /// all-MiniLM-L6-v2's `model.safetensors`, `config.json`, `tokenizer.json`.
    pub minilm: PathBuf,
}

/// Builds the configured embedder: `auto` (the static model if present, else MiniLM if
/// present, else hashed), `static`, `minilm`, `hashed`.
pub fn from_backend(backend: &str, dirs: &ModelDirs) -> Result<Arc<dyn Embedder>, EmbedError> {
    match backend {
        "hashed" => Ok(Arc::new(HashedNgrams::default())),
        "static" => Ok(Arc::new(StaticEmbedder::load(&dirs.static_model)?)),
        "minilm" => Ok(Arc::new(MiniLm::load(&dirs.minilm)?)),
        "auto" => match StaticEmbedder::load(&dirs.static_model) {
            Ok(m) => Ok(Arc::new(m)),
            Err(static_err) => match MiniLm::load(&dirs.minilm) {
                Ok(m) => {
                    tracing::warn!(error = %static_err, "static multilingual model unavailable, using all-MiniLM-L6-v2 (English only, ~15 ms a message)");
                    Ok(Arc::new(m))
                }
                Err(e) => {
                    tracing::warn!(static_model = %static_err, minilm = %e, "no sentence model available, using hashed n-gram embeddings (lower quality)");
                    Ok(Arc::new(HashedNgrams::default()))
                }
            },
        },
        other => Err(EmbedError::Backend(other.to_string())),
    }
}

/// 64-bit FNV-1a of the concatenated `parts` (the `fnv` crate's hasher). Feature hashing and
/// on-disk cache keys need a hash that is stable across Rust versions and platforms, which
/// `DefaultHasher` does not promise; every such hash in the mesh is this one.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    for p in parts {
        h.write(p);
    }
    h.finish()
}

/// Dot product; equals cosine similarity for the unit vectors every embedder returns.
/// Summed in eight independent lanes so the compiler vectorises it: the semantic-cache scan
/// and the HNSW build call it millions of times.
#[inline]
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]) + tail
}

/// Scales `v` to unit length (no-op for the zero vector).
pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cosine_matches_the_naive_dot_product_for_any_length() {
        for n in [0, 1, 7, 8, 13, 19, 384] {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.1).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!(
                (super::cosine(&a, &b) - naive).abs() < 1e-3 * (1.0 + naive.abs()),
                "n={n}"
            );
        }
    }
}
