//! The on-disk vector cache: the one file format and naming rule for every set of vectors
//! the mesh embeds once and reads back on the next start (retrieval's catalog, intent's
//! training set).
//!
//! A file is named after the model and a fingerprint of exactly what was embedded (the
//! dimension and every text, length-prefixed), so a changed text, model or dimension misses
//! and recomputes instead of reading stale vectors. The file holds `MAVEC001`, the vector
//! count and dimension as little-endian `u32`s, then the floats, little-endian; a reader
//! accepts it only when count and dimension match what it asked for, the length is exact
//! and every value is finite.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::fnv1a;

const MAGIC: &[u8; 8] = b"MAVEC001";
const HEADER: usize = 8 + 4 + 4;

/// Why a cache file was not used; the caller recomputes either way.
#[derive(Debug, thiserror::Error)]
pub enum VectorFileError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a vector file (bad magic or short header)")]
    BadMagic,
    #[error("holds {found_count}×{found_dim}, expected {count}×{dim}")]
    Shape {
        found_count: usize,
        found_dim: usize,
        count: usize,
        dim: usize,
    },
    #[error("{found} bytes, expected {expected}")]
    Length { found: usize, expected: usize },
    #[error("non-finite value")]
    NonFinite,
}

/// `<cache_dir>/vectors/<model_id>-<fingerprint of dim and texts>.bin`. Characters of the
/// model id that do not belong in a file name become `_`.
pub fn cache_path<T: AsRef<str>>(
    cache_dir: &Path,
    model_id: &str,
    dim: usize,
    texts: &[T],
) -> PathBuf {
    // Incremental FNV-1a over the same bytes as one call over their concatenation; the
    // length prefixes keep ["ab", "c"] and ["a", "bc"] apart.
    let mut h = fnv1a(&[&(dim as u64).to_le_bytes()]);
    for t in texts {
        let t = t.as_ref();
        h = fnv1a_from(h, &(t.len() as u64).to_le_bytes());
        h = fnv1a_from(h, t.as_bytes());
    }
    let model: String = model_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cache_dir
        .join("vectors")
        .join(format!("{model}-{h:016x}.bin"))
}

/// FNV-1a continued from state `h`.
fn fnv1a_from(h: u64, bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = fnv::FnvHasher::with_key(h);
    hasher.write(bytes);
    hasher.finish()
}

/// Reads a cache file, checking it holds exactly `count` vectors of `dim` finite floats.
pub fn read(path: &Path, count: usize, dim: usize) -> Result<Vec<Arc<[f32]>>, VectorFileError> {
    let bytes = std::fs::read(path)?;
    if bytes.len() < HEADER || bytes.get(..8) != Some(MAGIC.as_slice()) {
        return Err(VectorFileError::BadMagic);
    }
    let word = |at: usize| -> usize {
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
    };
    let (n, d) = (word(8), word(12));
    if n != count || d != dim {
        return Err(VectorFileError::Shape {
            found_count: n,
            found_dim: d,
            count,
            dim,
        });
    }
    let expected = n
        .checked_mul(d)
        .and_then(|v| v.checked_mul(4))
        .and_then(|v| v.checked_add(HEADER));
    if expected != Some(bytes.len()) {
        return Err(VectorFileError::Length {
            found: bytes.len(),
            expected: expected.unwrap_or(usize::MAX),
        });
    }
    let floats: Vec<f32> = bytes[HEADER..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if floats.iter().any(|x| !x.is_finite()) {
        return Err(VectorFileError::NonFinite);
    }
    Ok(floats.chunks_exact(d.max(1)).map(Arc::from).collect())
}

/// Writes `vectors` (each of `dim` floats) through a temporary file and a rename, so a crash
/// or a concurrent reader never sees half a file.
pub fn write<V: AsRef<[f32]>>(path: &Path, vectors: &[V], dim: usize) -> std::io::Result<()> {
    let as_u32 = |v: usize| u32::try_from(v).map_err(std::io::Error::other);
    let (n, d) = (as_u32(vectors.len())?, as_u32(dim)?);
    if let Some(v) = vectors.iter().find(|v| v.as_ref().len() != dim) {
        return Err(std::io::Error::other(format!(
            "vector of {} values in a file of dimension {dim}",
            v.as_ref().len()
        )));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = path.with_extension(format!("tmp.{}.{nanos}", std::process::id()));
    let result = (|| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(MAGIC)?;
        f.write_all(&n.to_le_bytes())?;
        f.write_all(&d.to_le_bytes())?;
        for v in vectors {
            for x in v.as_ref() {
                f.write_all(&x.to_le_bytes())?;
            }
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_every_mismatch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = cache_path(dir.path(), "m/1", 2, &["a", "b"]);
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("m_1-") && name.ends_with(".bin"), "{name}");
        let v = vec![vec![1.0f32, -2.5], vec![0.0, 3.0]];
        write(&p, &v, 2).unwrap();
        let back: Vec<Vec<f32>> = read(&p, 2, 2).unwrap().iter().map(|v| v.to_vec()).collect();
        assert_eq!(back, v);
        assert!(matches!(read(&p, 3, 2), Err(VectorFileError::Shape { .. })));
        assert!(matches!(read(&p, 2, 3), Err(VectorFileError::Shape { .. })));
        assert!(matches!(
            read(&dir.path().join("nope"), 2, 2),
            Err(VectorFileError::Io(_))
        ));

        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(
            read(&p, 2, 2),
            Err(VectorFileError::Length { .. })
        ));
        let mut nan = bytes.clone();
        let at = nan.len() - 4;
        nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
        std::fs::write(&p, &nan).unwrap();
        assert!(matches!(read(&p, 2, 2), Err(VectorFileError::NonFinite)));
        std::fs::write(&p, b"not a vector file").unwrap();
        assert!(matches!(read(&p, 2, 2), Err(VectorFileError::BadMagic)));

        // Ragged input is refused rather than written as a file that reads back shifted.
        assert!(write(&p, &[vec![1.0f32], vec![1.0, 2.0]], 2).is_err());
    }

    #[test]
    fn the_name_fingerprints_model_dim_and_every_text() {
        let d = Path::new("/c");
        let base = cache_path(d, "m", 2, &["ab", "c"]);
        assert_ne!(base, cache_path(d, "m", 2, &["a", "bc"]));
        assert_ne!(base, cache_path(d, "m", 3, &["ab", "c"]));
        assert_ne!(base, cache_path(d, "n", 2, &["ab", "c"]));
        assert_ne!(base, cache_path(d, "m", 2, &["ab"]));
        assert_eq!(
            base,
            cache_path(d, "m", 2, &["ab".to_string(), "c".to_string()])
        );
        assert!(base.starts_with("/c/vectors"));
    }

    /// The rule the retrieval daemon used before this module existed, so catalog vector
    /// files written by earlier builds stay readable instead of being recomputed.
    #[test]
    fn names_match_files_written_by_earlier_builds() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        feed(&384u64.to_le_bytes());
        for t in ["one", "two"] {
            feed(&(t.len() as u64).to_le_bytes());
            feed(t.as_bytes());
        }
        assert_eq!(
            cache_path(Path::new("/c"), "all-MiniLM-L6-v2", 384, &["one", "two"]),
            Path::new(&format!("/c/vectors/all-MiniLM-L6-v2-{h:016x}.bin"))
        );
    }
}
