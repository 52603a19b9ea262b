//! A static multilingual embedding: one vector per SentencePiece piece, distilled once from
//! multilingual-e5-small by `scripts/distill/distill.py` (see there for how). Embedding a text
//! is segmenting it into pieces with the teacher's own unigram model and summing their
//! vectors: microseconds on one core, no matrix multiply, and Japanese and English land in the
//! same space because the teacher put them there.
//!
//! Files (in the model directory): `vocab.json` (pieces, their log-probabilities, the
//! per-code-point normalisation map) and `vectors.bin` (`n × dim` int8 rows, then `n` f32
//! row scales, little-endian).

use std::{collections::HashMap, path::Path};

use serde::Deserialize;

use crate::{EmbedError, Embedder, normalize};

/// SentencePiece's word-boundary marker, which stands for a space inside pieces.
const META: char = '\u{2581}';
const FORMAT: u32 = 1;
/// Pieces never span more bytes than this in any vocabulary we ship; a corrupt file claiming
/// more would only make segmentation slower, so it is rejected.
const MAX_PIECE_BYTES: usize = 64;

#[derive(Deserialize)]
struct VocabFile {
    format: u32,
    model_id: String,
    dim: usize,
    pieces: Vec<String>,
    scores: Vec<f32>,
    unk_score: f32,
    normalize: Vec<(u32, Vec<u32>)>,
}

type FnvMap<K, V> = HashMap<K, V, fnv::FnvBuildHasher>;

/// An index entry that only starts pieces and is none itself.
const PREFIX_ONLY: u32 = u32::MAX;

pub struct StaticEmbedder {
    model_id: String,
    dim: usize,
    index: FnvMap<Box<str>, u32>,
    scores: Vec<f32>,
    unk_score: f32,
    max_piece_bytes: usize,
    normalize: FnvMap<char, Box<str>>,
    rows: Vec<i8>,
    scales: Vec<f32>,
}

impl std::fmt::Debug for StaticEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticEmbedder")
            .field("model_id", &self.model_id)
            .field("pieces", &self.scores.len())
            .field("dim", &self.dim)
            .finish()
    }
}

impl StaticEmbedder {
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let vocab_path = dir.join("vocab.json");
        let vectors_path = dir.join("vectors.bin");
        let missing: Vec<&str> = [("vocab.json", &vocab_path), ("vectors.bin", &vectors_path)]
            .iter()
            .filter(|(_, p)| !p.is_file())
            .map(|(n, _)| *n)
            .collect();
        if !missing.is_empty() {
            return Err(EmbedError::ModelMissing {
                dir: dir.display().to_string(),
                missing: missing.join(", "),
            });
        }
        let bad = |what: String| EmbedError::Load(format!("{}: {what}", dir.display()));
        let vocab: VocabFile = serde_json::from_slice(
            &std::fs::read(&vocab_path).map_err(|e| bad(format!("vocab.json: {e}")))?,
        )
        .map_err(|e| bad(format!("vocab.json: {e}")))?;
        if vocab.format != FORMAT {
            return Err(bad(format!(
                "vocab.json has format {}, this build reads {FORMAT} (rerun scripts/fetch-model.sh)",
                vocab.format
            )));
        }
        let n = vocab.pieces.len();
        if vocab.scores.len() != n || n == 0 || vocab.dim == 0 || vocab.dim > 4096 {
            return Err(bad(format!(
                "{} pieces, {} scores, dim {}",
                n,
                vocab.scores.len(),
                vocab.dim
            )));
        }
        let bytes = std::fs::read(&vectors_path).map_err(|e| bad(format!("vectors.bin: {e}")))?;
        if bytes.len() != n * vocab.dim + n * 4 {
            return Err(bad(format!(
                "vectors.bin is {} bytes, expected {} for {n} pieces of {} dims",
                bytes.len(),
                n * vocab.dim + n * 4,
                vocab.dim
            )));
        }
        let (rows, scales) = bytes.split_at(n * vocab.dim);
        let rows: Vec<i8> = rows.iter().map(|&b| b as i8).collect();
        let scales: Vec<f32> = scales
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut index = FnvMap::default();
        index.reserve(n);
        let mut max_piece_bytes = 1;
        for (i, p) in vocab.pieces.into_iter().enumerate() {
            if p.is_empty() || p.len() > MAX_PIECE_BYTES {
                return Err(bad(format!(
                    "piece {i} is empty or longer than {MAX_PIECE_BYTES} bytes"
                )));
            }
            max_piece_bytes = max_piece_bytes.max(p.len());
            index.insert(p.into_boxed_str(), i as u32);
        }
        // Every proper prefix of a piece is in the index too (as PREFIX_ONLY unless it is a
        // piece itself), so segmentation stops extending a candidate at the first substring
        // no piece starts with: a handful of look-ups per position instead of one per byte
        // length up to the longest piece, each a likely cache miss under load.
        let prefixes: Vec<Box<str>> = index
            .keys()
            .flat_map(|p| {
                p.char_indices()
                    .skip(1)
                    .map(|(end, _)| Box::<str>::from(&p[..end]))
            })
            .collect();
        for prefix in prefixes {
            index.entry(prefix).or_insert(PREFIX_ONLY);
        }
        let mut normalize = FnvMap::default();
        for (cp, out) in vocab.normalize {
            let from = char::from_u32(cp).ok_or_else(|| bad(format!("bad code point {cp}")))?;
            let to: String = out
                .into_iter()
                .map(|c| char::from_u32(c).ok_or_else(|| bad(format!("bad code point {c}"))))
                .collect::<Result<_, _>>()?;
            normalize.insert(from, to.into_boxed_str());
        }
        Ok(Self {
            model_id: vocab.model_id,
            dim: vocab.dim,
            index,
            scores: vocab.scores,
            unk_score: vocab.unk_score,
            max_piece_bytes,
            normalize,
            rows,
            scales,
        })
    }

    /// The piece ids of `text` (unknown characters left out), as the teacher's tokenizer would
    /// segment it over the kept vocabulary: lower-cased (queries arrive lower-cased, so the
    /// catalog must be too), the normalisation map applied, spaces collapsed and turned into
    /// word-boundary markers, then the most probable segmentation (Viterbi).
    pub fn pieces(&self, text: &str) -> Vec<u32> {
        let mut buf = String::with_capacity(text.len() + 8);
        let mut last_space = true;
        buf.push(META);
        let mut push = |c: char| {
            for c in c.to_lowercase() {
                if c.is_whitespace() {
                    if !last_space {
                        buf.push(META);
                        last_space = true;
                    }
                } else {
                    buf.push(c);
                    last_space = false;
                }
            }
        };
        for c in text.chars() {
            match self.normalize.get(&c) {
                Some(s) => s.chars().for_each(&mut push),
                None => push(c),
            }
        }
        if buf.ends_with(META) && buf.len() > META.len_utf8() {
            buf.truncate(buf.len() - META.len_utf8());
        }
        let bounds: Vec<usize> = buf
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(buf.len()))
            .collect();
        let n = bounds.len() - 1;
        // best[i]: score of the best segmentation of the first i characters; from[i]: where its
        // last piece starts and which piece it is (u32::MAX = an unknown character).
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut from = vec![(0usize, u32::MAX); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            let start = bounds[i];
            for e in i + 1..=n {
                let end = bounds[e];
                if end - start > self.max_piece_bytes {
                    break;
                }
                match self.index.get(&buf[start..end]) {
                    None => break,
                    Some(&PREFIX_ONLY) => {}
                    Some(&id) => {
                        let s = best[i] + self.scores[id as usize];
                        if s > best[e] {
                            best[e] = s;
                            from[e] = (i, id);
                        }
                    }
                }
            }
            let s = best[i] + self.unk_score;
            if s > best[i + 1] {
                best[i + 1] = s;
                from[i + 1] = (i, u32::MAX);
            }
        }
        let mut out = Vec::new();
        let mut i = n;
        while i > 0 {
            let (prev, id) = from[i];
            if id != u32::MAX {
                out.push(id);
            }
            i = prev;
        }
        out.reverse();
        out
    }

    fn one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dim];
        for id in self.pieces(text) {
            let row = id as usize;
            let scale = self.scales[row];
            let r = &self.rows[row * self.dim..(row + 1) * self.dim];
            for (acc, &q) in v.iter_mut().zip(r) {
                *acc += scale * f32::from(q);
            }
        }
        normalize(&mut v);
        v
    }
}

impl Embedder for StaticEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| self.one(t)).collect())
    }

    fn is_cheap(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model of four pieces in two dimensions, written as `distill.py` writes one.
    fn tiny(dir: &Path, vectors: &[u8]) {
        let vocab = serde_json::json!({
            "format": 1, "model_id": "tiny", "dim": 2,
            "pieces": ["\u{2581}one", "\u{2581}on", "e", "\u{2581}piece"],
            "scores": [-2.0, -3.0, -3.0, -2.5],
            "unk_score": -20.0,
            "normalize": [[0xFF2F_u32, [0x4F_u32]]],
        });
        std::fs::write(dir.join("vocab.json"), vocab.to_string()).expect("write");
        std::fs::write(dir.join("vectors.bin"), vectors).expect("write");
    }

    fn rows() -> Vec<u8> {
        let mut v: Vec<u8> = [[127i8, 0], [0, 127], [0, -127], [64, 64]]
            .iter()
            .flatten()
            .map(|&x| x as u8)
            .collect();
        for _ in 0..4 {
            v.extend(1.0f32.to_le_bytes());
        }
        v
    }

    #[test]
    fn viterbi_takes_the_most_probable_segmentation_and_skips_unknowns() {
        let dir = tempfile::tempdir().expect("tempdir");
        tiny(dir.path(), &rows());
        let m = StaticEmbedder::load(dir.path()).expect("load");
        // "▁one" (-2) beats "▁on"+"e" (-6); the full-width Ｏ is normalised first.
        assert_eq!(m.pieces("One piece"), vec![0, 3]);
        assert_eq!(m.pieces("Ｏne"), vec![0]);
        assert_eq!(
            m.pieces("x one"),
            vec![0],
            "unknown characters are left out"
        );
        let v = m.embed("one").expect("embed");
        assert!((v[0] - 1.0).abs() < 1e-6 && v[1].abs() < 1e-6);
    }

    #[test]
    fn a_truncated_or_foreign_file_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        tiny(dir.path(), &rows()[..10]);
        let err = StaticEmbedder::load(dir.path())
            .expect_err("short vectors")
            .to_string();
        assert!(err.contains("vectors.bin is 10 bytes"), "{err}");
        std::fs::write(dir.path().join("vocab.json"), "{\"format\": 2}").expect("write");
        let err = StaticEmbedder::load(dir.path())
            .expect_err("bad vocab")
            .to_string();
        assert!(err.contains("vocab.json"), "{err}");
        let empty = tempfile::tempdir().expect("tempdir");
        let err = StaticEmbedder::load(empty.path())
            .expect_err("missing")
            .to_string();
        assert!(
            err.contains("fetch-model.sh") && err.contains("vocab.json, vectors.bin"),
            "{err}"
        );
    }
}
