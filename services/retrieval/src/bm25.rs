//! Okapi BM25 over an in-memory corpus (one per store and kind).

use std::collections::HashMap;

use crate::text::tokenize;

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// An inverted index scoring documents with BM25 (k1 = 1.2, b = 0.75, Lucene's
/// non-negative idf).
#[derive(Debug, Default)]
pub struct Bm25 {
    /// term → (doc, term frequency)
    postings: HashMap<String, Vec<(u32, u32)>>,
    doc_len: Vec<u32>,
    avgdl: f32,
}

impl Bm25 {
    pub fn new<S: AsRef<str>>(docs: &[S]) -> Self {
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut doc_len = Vec::with_capacity(docs.len());
        for (i, d) in docs.iter().enumerate() {
            let tokens = tokenize(d.as_ref());
            doc_len.push(tokens.len() as u32);
            let mut tf: HashMap<String, u32> = HashMap::new();
            for t in tokens {
                *tf.entry(t).or_default() += 1;
            }
            for (t, n) in tf {
                postings.entry(t).or_default().push((i as u32, n));
            }
        }
        let total: u64 = doc_len.iter().map(|&l| u64::from(l)).sum();
        let avgdl = if doc_len.is_empty() {
            0.0
        } else {
            total as f32 / doc_len.len() as f32
        };
        Self {
            postings,
            doc_len,
            avgdl,
        }
    }

    pub fn len(&self) -> usize {
        self.doc_len.len()
    }

    pub fn is_empty(&self) -> bool {
        self.doc_len.is_empty()
    }

    /// The BM25 score of every document (0 for documents sharing no term with the query).
    /// Repeated query terms count once.
    pub fn scores(&self, query: &str) -> Vec<f32> {
        self.scores_tokens(&tokenize(query))
    }

    /// [`Bm25::scores`] for an already tokenised query. When the query has two or more CJK
    /// bigrams, a document scores for them only if it matches one with a kanji in it or at
    /// least two: a single shared kana bigram between a Japanese sentence and a title is
    /// nearly always a particle or a fragment ("ある", "たち"), while a kanji pair is a word
    /// (巨人) and a real kana title match is a chain of bigrams.
    pub fn scores_tokens(&self, terms: &[String]) -> Vec<f32> {
        let mut out = vec![0.0; self.doc_len.len()];
        let mut terms = terms.to_vec();
        terms.sort();
        terms.dedup();
        let is_cjk_term = |t: &str| t.chars().any(crate::text::is_cjk);
        let cjk_terms = terms.iter().filter(|t| is_cjk_term(t)).count();
        let mut cjk = if cjk_terms >= 2 {
            vec![(0.0f32, 0u32); self.doc_len.len()]
        } else {
            Vec::new()
        };
        let n = self.doc_len.len() as f32;
        let avgdl = self.avgdl.max(1.0);
        for t in &terms {
            let Some(list) = self.postings.get(t) else {
                continue;
            };
            let df = list.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            let gated = !cjk.is_empty() && is_cjk_term(t);
            for &(doc, tf) in list {
                let tf = tf as f32;
                let len = self.doc_len[doc as usize] as f32;
                let s = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / avgdl));
                if gated {
                    let c = &mut cjk[doc as usize];
                    c.0 += s;
                    c.1 += if t.chars().any(is_kanji) { 2 } else { 1 };
                } else {
                    out[doc as usize] += s;
                }
            }
        }
        for (o, (s, matched)) in out.iter_mut().zip(cjk) {
            if matched >= 2 {
                *o += s;
            }
        }
        out
    }
}

/// CJK ideographs (kanji), as opposed to kana.
pub(crate) fn is_kanji(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::text::product_lexical_text;
    use mangaassist_catalog::Catalog;

    fn ranked(index: &Bm25, q: &str) -> Vec<(usize, f32)> {
        let mut r: Vec<(usize, f32)> = index
            .scores(q)
            .into_iter()
            .enumerate()
            .filter(|(_, s)| *s > 0.0)
            .collect();
        r.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        r
    }

    #[test]
    fn exact_title_match_ranks_first_in_the_real_catalog() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        let cat = Catalog::load(&dir).unwrap();
        let products: Vec<_> = cat
            .products
            .iter()
            .filter(|p| p.store_id == "manga_jp")
            .collect();
        let texts: Vec<String> = products.iter().map(|p| product_lexical_text(p)).collect();
        let index = Bm25::new(&texts);
        assert_eq!(index.len(), products.len());
        for title in [
            "One Piece, Vol. 3",
            "Attack on Titan, Vol. 2",
            "Demon Slayer: Kimetsu no Yaiba, Vol. 5",
        ] {
            let r = ranked(&index, title);
            assert_eq!(products[r[0].0].title, title, "query {title}: {r:?}");
        }
        // An author name finds that author's work.
        let r = ranked(&index, "eiichiro oda");
        assert_eq!(products[r[0].0].author, "Eiichiro Oda");
        assert!(ranked(&index, "zzzzqqq").is_empty());
    }

    #[test]
    fn cjk_query_matches_by_character_ngrams() {
        let docs = [
            "ワンピース 第1巻 海賊王を目指す少年の冒険",
            "進撃の巨人 第1巻 巨人と戦う人類",
            "One Piece volume one pirates",
        ];
        let index = Bm25::new(&docs);
        let r = ranked(&index, "ワンピース");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, 0);
        // A partial word still matches through the bigrams, and the better match wins.
        let r = ranked(&index, "巨人の話");
        assert_eq!(r[0].0, 1);
        let r = ranked(&index, "海賊");
        assert_eq!(r[0].0, 0);
        // One shared kana pair is not a match when the query has more to say.
        let r = ranked(&index, "ースの話はある");
        assert!(r.is_empty(), "{r:?}");
        // Longer documents with the same term frequency score lower (length normalisation).
        let index = Bm25::new(&["pirate", "pirate ship crew sea treasure map island"]);
        let s = index.scores("pirate");
        assert!(s[0] > s[1] && s[1] > 0.0, "{s:?}");
    }
}
