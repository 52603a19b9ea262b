use crate::{EmbedError, Embedder, fnv1a, normalize};

/// Fallback embedder: character 3-grams and word unigrams hashed into 384 buckets (signed
/// feature hashing), L2-normalised. No model files; captures spelling overlap, not meaning.
#[derive(Debug, Clone)]
pub struct HashedNgrams {
    dim: usize,
}

impl Default for HashedNgrams {
    fn default() -> Self {
        Self { dim: 384 }
    }
}

impl HashedNgrams {
    fn one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dim];
        let lower = text.to_lowercase();
        let mut add = |h: u64, w: f32| {
            let idx = (h % self.dim as u64) as usize;
            let sign = if (h >> 63) == 1 { -1.0 } else { 1.0 };
            v[idx] += sign * w;
        };
        for word in lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            add(fnv1a(&[word.as_bytes(), &[0xff]]), 1.0);
            let chars: Vec<char> = format!(" {word} ").chars().collect();
            for g in chars.windows(3) {
                add(fnv1a(&[g.iter().collect::<String>().as_bytes()]), 0.5);
            }
        }
        normalize(&mut v);
        v
    }
}

impl Embedder for HashedNgrams {
    fn model_id(&self) -> &str {
        "hashed-ngrams-384"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| self.one(t)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosine;

    #[test]
    fn similar_texts_score_higher_than_unrelated_ones() {
        let e = HashedNgrams::default();
        let a = e.embed("where is my order").unwrap();
        let b = e.embed("where is my order?").unwrap();
        let c = e.embed("recommend a horror manga").unwrap();
        assert!(cosine(&a, &b) > 0.9);
        assert!(cosine(&a, &c) < cosine(&a, &b));
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
    }
}
