//! On-disk cache of the training-set embeddings, so a restart skips the ~4 s of MiniLM
//! forward passes. Keyed by a hash of model id and the training file's bytes: editing the
//! data or changing the model simply misses and rewrites.

use std::path::{Path, PathBuf};

use crate::features::fnv1a;

const MAGIC: &[u8; 8] = b"MAIVEC01";

/// `<cache_dir>/vectors/intent-train-<hash>.f32`.
pub(crate) fn path_for(cache_dir: &Path, model_id: &str, data: &[u8]) -> PathBuf {
    let key = fnv1a(model_id.bytes().chain([0]).chain(data.iter().copied()));
    cache_dir
        .join("vectors")
        .join(format!("intent-train-{key:016x}.f32"))
}

/// The cached vectors if the file exists and has exactly `n × dim` values.
pub(crate) fn load(path: &Path, n: usize, dim: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    let header = MAGIC.len() + 8;
    if bytes.get(..MAGIC.len())? != MAGIC {
        return None;
    }
    let read_u32 = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    if read_u32(MAGIC.len())? != n || read_u32(MAGIC.len() + 4)? != dim {
        return None;
    }
    let body = bytes.get(header..)?;
    if body.len() != n * dim * 4 {
        return None;
    }
    let values: Vec<f32> = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    Some(values.chunks_exact(dim).map(<[f32]>::to_vec).collect())
}

/// Writes atomically (temp file + rename) so concurrent starts never read a torn file.
pub(crate) fn store(path: &Path, vectors: &[Vec<f32>]) -> std::io::Result<()> {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut bytes = Vec::with_capacity(MAGIC.len() + 8 + vectors.len() * dim * 4);
    bytes.extend_from_slice(MAGIC);
    let as_u32 = |v: usize| u32::try_from(v).map_err(std::io::Error::other);
    bytes.extend_from_slice(&as_u32(vectors.len())?.to_le_bytes());
    bytes.extend_from_slice(&as_u32(dim)?.to_le_bytes());
    for v in vectors.iter().flatten() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_shape_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let p = path_for(dir.path(), "m", b"data");
        assert_ne!(p, path_for(dir.path(), "m2", b"data"));
        let v = vec![vec![1.0, -2.5], vec![0.0, 3.0]];
        store(&p, &v).unwrap();
        assert_eq!(load(&p, 2, 2), Some(v));
        assert_eq!(load(&p, 3, 2), None);
        assert_eq!(load(&dir.path().join("nope"), 2, 2), None);
    }
}
