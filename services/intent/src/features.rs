//! Text normalisation and the hashed n-gram block appended to the sentence embedding.

/// Width of the hashed n-gram block.
pub(crate) const HASHED_DIM: usize = 512;

/// Weight of the n-gram block relative to the (unit) sentence embedding. The n-grams add
/// surface cues the sentence model blurs ("vs", "MA-100251", "henpin", typos).
pub(crate) const HASHED_WEIGHT: f32 = 0.6;

/// Lower-case, single-spaced, trimmed; the same key the query embedder embeds, so training
/// and serving vectors come from identical input.
pub(crate) fn normalize_text(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Words of `text`: runs of alphanumerics; CJK text without spaces becomes one long word,
/// which the character n-grams below still cut into useful pieces.
pub(crate) fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Signed feature hashing of word unigrams, word bigrams and character 2..=4-grams of
/// `normalized`, L2-normalised and scaled by [`HASHED_WEIGHT`].
pub(crate) fn hashed_ngrams(normalized: &str) -> Vec<f32> {
    hashed_ngrams_weighted(normalized, HASHED_WEIGHT)
}

pub(crate) fn hashed_ngrams_weighted(normalized: &str, weight: f32) -> Vec<f32> {
    let mut v = vec![0.0f32; HASHED_DIM];
    let mut add = |h: u64, w: f32| {
        let idx = (h % HASHED_DIM as u64) as usize;
        let sign = if (h >> 63) == 1 { -1.0 } else { 1.0 };
        v[idx] += sign * w;
    };
    let ws: Vec<&str> = words(normalized).collect();
    for (i, w) in ws.iter().enumerate() {
        add(fnv1a(w.bytes().chain([0xff])), 1.0);
        if let Some(next) = ws.get(i + 1) {
            add(fnv1a(w.bytes().chain([0xfe]).chain(next.bytes())), 0.7);
        }
        let chars: Vec<char> = format!(" {w} ").chars().collect();
        for n in 2..=4 {
            for g in chars.windows(n) {
                let mut buf = [0u8; 4];
                let bytes = g
                    .iter()
                    .flat_map(|c| c.encode_utf8(&mut buf).as_bytes().to_vec())
                    .chain([n as u8]);
                add(fnv1a(bytes), 0.3);
            }
        }
    }
    // Question marks carry intent (faq vs complaint) but are not alphanumeric.
    let questions = normalized.matches(['?', '？']).count();
    if questions > 0 {
        add(fnv1a(*b"<question>"), 1.0);
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x *= weight / n);
    }
    v
}

/// The classifier input: sentence embedding followed by the weighted n-gram block.
pub(crate) fn features(embedding: &[f32], normalized: &str) -> Vec<f32> {
    let mut f = Vec::with_capacity(embedding.len() + HASHED_DIM);
    f.extend_from_slice(embedding);
    f.extend(hashed_ngrams(normalized));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_and_block_shape() {
        assert_eq!(normalize_text("  Where IS\tmy  order? "), "where is my order?");
        let v = hashed_ngrams("where is my order?");
        assert_eq!(v.len(), HASHED_DIM);
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - HASHED_WEIGHT).abs() < 1e-4);
        assert!(hashed_ngrams("").iter().all(|x| *x == 0.0));
        assert_eq!(features(&[1.0, 0.0], "hi").len(), 2 + HASHED_DIM);
    }
}
