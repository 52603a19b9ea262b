//! The hashed n-gram block appended to the sentence embedding (over text normalised by
//! [`mangaassist_domain::normalize_text`]).

use mangaassist_domain::text::is_cjk;

use mangaassist_embedding::fnv1a;

/// Width of the hashed n-gram block.
pub(crate) const HASHED_DIM: usize = 1024;

/// Weight of the n-gram block relative to the (unit) sentence embedding. The n-grams add
/// surface cues the sentence model blurs ("vs", "MA-100251", "henpin", typos) and carry
/// Japanese, which the English MiniLM mostly sees as unknown tokens. Block shape and weight
/// were chosen by 5-fold cross-validation on the training set (see the `sweep` test).
pub(crate) const HASHED_WEIGHT: f32 = 1.5;

/// Words of `text`: runs of alphanumerics; CJK text without spaces becomes one long word,
/// which the character n-grams below still cut into useful pieces.
pub(crate) fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Shape of the hashed n-gram block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NgramSpec {
    pub dim: usize,
    pub word: f32,
    pub bigram: f32,
    pub chars: f32,
    pub char_min: usize,
    pub char_max: usize,
    /// Extra weight of single CJK characters (巻, 交換's halves), which carry meaning alone.
    pub cjk_unigram: f32,
}

pub(crate) const NGRAMS: NgramSpec = NgramSpec {
    dim: HASHED_DIM,
    word: 1.0,
    bigram: 0.7,
    chars: 0.3,
    char_min: 2,
    char_max: 4,
    cjk_unigram: 0.5,
};

/// Signed feature hashing of word unigrams, word bigrams and character n-grams of
/// `normalized`, L2-normalised and scaled by [`HASHED_WEIGHT`].
pub(crate) fn hashed_ngrams(normalized: &str) -> Vec<f32> {
    hashed_ngrams_with(normalized, HASHED_WEIGHT, &NGRAMS)
}

pub(crate) fn hashed_ngrams_with(normalized: &str, weight: f32, spec: &NgramSpec) -> Vec<f32> {
    let mut v = vec![0.0f32; spec.dim];
    let mut add = |h: u64, w: f32| {
        let idx = (h % spec.dim as u64) as usize;
        let sign = if (h >> 63) == 1 { -1.0 } else { 1.0 };
        v[idx] += sign * w;
    };
    let ws: Vec<&str> = words(normalized).collect();
    for (i, w) in ws.iter().enumerate() {
        add(fnv1a(&[w.as_bytes(), &[0xff]]), spec.word);
        if let Some(next) = ws.get(i + 1) {
            add(
                fnv1a(&[w.as_bytes(), &[0xfe], next.as_bytes()]),
                spec.bigram,
            );
        }
        let chars: Vec<char> = format!(" {w} ").chars().collect();
        for n in spec.char_min..=spec.char_max {
            for g in chars.windows(n) {
                let gram: String = g.iter().collect();
                add(fnv1a(&[gram.as_bytes(), &[n as u8]]), spec.chars);
            }
        }
        if spec.cjk_unigram > 0.0 {
            for c in w.chars().filter(|c| is_cjk(*c)) {
                let mut buf = [0u8; 4];
                add(
                    fnv1a(&[c.encode_utf8(&mut buf).as_bytes(), &[1]]),
                    spec.cjk_unigram,
                );
            }
        }
    }
    // Question marks carry intent (faq vs complaint) but are not alphanumeric.
    let questions = normalized.matches(['?', '？']).count();
    if questions > 0 {
        add(fnv1a(&[b"<question>".as_slice()]), 1.0);
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
    fn block_shape() {
        let v = hashed_ngrams("where is my order?");
        assert_eq!(v.len(), HASHED_DIM);
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - HASHED_WEIGHT).abs() < 1e-4);
        assert!(hashed_ngrams("").iter().all(|x| *x == 0.0));
        assert_eq!(features(&[1.0, 0.0], "hi").len(), 2 + HASHED_DIM);
    }
}
