//! Tokenising and the texts that get embedded.

use mangaassist_catalog::{Document, Product};

/// Words so common in English questions and synopses that matching them says nothing about
/// relevance; dropping them keeps "the"/"with" from pulling random products into the
/// lexical ranking.
pub(crate) const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "for", "from", "has", "have", "i", "in",
    "is", "it", "its", "me", "my", "of", "on", "or", "that", "the", "their", "this", "to", "was",
    "what", "with", "you", "your",
];

/// Words that say what the shopper wants done ("suggest manga like …") rather than what
/// it is about; matching them in a synopsis is noise. Removed from queries only.
const QUERY_STOPWORDS: &[&str] = &[
    "any",
    "anything",
    "book",
    "books",
    "can",
    "comic",
    "comics",
    "find",
    "like",
    "looking",
    "manga",
    "please",
    "recommend",
    "recommendation",
    "recommendations",
    "read",
    "show",
    "similar",
    "some",
    "something",
    "suggest",
    "suggestions",
    "want",
];

/// Hiragana, katakana, CJK ideographs and hangul: scripts written without spaces, where a
/// "word" cannot be found by splitting, so they are indexed as character uni- and bigrams.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF     // hiragana, katakana
        | 0x31F0..=0x31FF   // katakana phonetic extensions
        | 0x3400..=0x4DBF   // CJK extension A
        | 0x4E00..=0x9FFF   // CJK unified ideographs
        | 0xAC00..=0xD7AF   // hangul syllables
        | 0xF900..=0xFAFF   // CJK compatibility ideographs
        | 0xFF66..=0xFF9F   // half-width katakana
        | 0x20000..=0x2FA1F // CJK extensions B..F, compatibility supplement
    )
}

/// Lower-case alphanumeric words (stopwords dropped) plus, for every run of CJK characters,
/// each character and each adjacent pair.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut cjk: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            if !STOPWORDS.contains(&word.as_str()) {
                out.push(std::mem::take(word));
            }
            word.clear();
        }
    };
    let flush_cjk = |cjk: &mut Vec<char>, out: &mut Vec<String>| {
        for (i, c) in cjk.iter().enumerate() {
            out.push(c.to_string());
            if let Some(next) = cjk.get(i + 1) {
                out.push([*c, *next].iter().collect());
            }
        }
        cjk.clear();
    };
    for c in text.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut out);
            cjk.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk, &mut out);
            word.extend(c.to_lowercase());
        } else {
            flush_word(&mut word, &mut out);
            flush_cjk(&mut cjk, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_cjk(&mut cjk, &mut out);
    out
}

/// [`tokenize`] for a query: also drops the shopper's request words.
pub fn query_tokens(text: &str) -> Vec<String> {
    let mut t = tokenize(text);
    t.retain(|w| !QUERY_STOPWORDS.contains(&w.as_str()));
    t
}

/// The Japanese names of a product (title, series, reading), space-separated; empty outside
/// the Japanese storefront.
fn japanese_names(p: &Product) -> String {
    [&p.title_ja, &p.series_ja, &p.series_reading]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a product's vector is computed from. The Japanese names come first with the English
/// ones so a Japanese title query and an English one land near the same products.
pub fn product_embedding_text(p: &Product) -> String {
    let ja = japanese_names(p);
    format!(
        "{}{}{}. {} by {}. {}. {}. {}",
        p.title,
        if ja.is_empty() { "" } else { " / " },
        ja,
        p.series,
        p.author,
        p.genres.join(", "),
        p.demographic,
        p.synopsis
    )
}

/// What a document's vector is computed from.
pub fn document_embedding_text(d: &Document) -> String {
    format!("{}. {}", d.title, d.body)
}

/// Every text of a catalog that gets a vector: products, then documents (the order the
/// vector cache file stores them in).
pub fn catalog_embedding_texts(catalog: &mangaassist_catalog::Catalog) -> Vec<String> {
    catalog
        .products
        .iter()
        .map(product_embedding_text)
        .chain(catalog.documents.iter().map(document_embedding_text))
        .collect()
}

/// The BM25 field text of a product. Title, series and author are repeated because a query
/// naming them is far more telling than the same word somewhere in a synopsis; the Japanese
/// names count like the title.
pub fn product_lexical_text(p: &Product) -> String {
    let ja = japanese_names(p);
    format!(
        "{t} {t} {t} {j} {j} {j} {s} {s} {a} {a} {g} {d} {syn}",
        t = p.title,
        j = ja,
        s = p.series,
        a = p.author,
        g = p.genres.join(" "),
        d = p.demographic,
        syn = p.synopsis
    )
}

/// The BM25 field text of a document; the title counts double.
pub fn document_lexical_text(d: &Document) -> String {
    format!("{t} {t} {b}", t = d.title, b = d.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_and_cjk_becomes_uni_and_bigrams() {
        assert_eq!(
            tokenize("The One-Piece, Vol. 12!"),
            vec!["one", "piece", "vol", "12"]
        );
        assert_eq!(
            tokenize("ワンピース vol1"),
            vec![
                "ワ", "ワン", "ン", "ンピ", "ピ", "ピー", "ー", "ース", "ス", "vol1"
            ]
        );
        assert_eq!(tokenize("進撃ABC"), vec!["進", "進撃", "撃", "abc"]);
        assert!(tokenize(" ,. ").is_empty());
    }
}
