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

/// Katakana folded to hiragana (ヴ and the small forms included), so a shopper who types a
/// title's sound in either script finds it: `ちぇんそーまん` meets `チェンソーマン`.
pub fn fold_kana(c: char) -> char {
    match c as u32 {
        cp @ 0x30A1..=0x30F6 => char::from_u32(cp - 0x60).unwrap_or(c),
        _ => c,
    }
}

/// Lower-case alphanumeric words (stopwords dropped) plus, for every run of CJK characters,
/// each adjacent pair (kana folded to hiragana); a lone CJK character is its own token. Single
/// characters of longer runs are left out: in Japanese they are mostly fragments (少 of 少年
/// matching 美少女) that pull unrelated titles into the lexical ranking. This is what
/// OpenSearch's `cjk_bigram` filter does without unigrams, which the OpenSearch backend uses.
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
        if let [only] = cjk.as_slice() {
            out.push(only.to_string());
        }
        for pair in cjk.windows(2) {
            out.push(pair.iter().collect());
        }
        cjk.clear();
    };
    for c in text.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut out);
            cjk.push(fold_kana(c));
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

/// [`tokenize`] for a query: also drops the shopper's request words, and splits a word that
/// runs letters into a number ("piece10" of "ONE PIECE10巻", how Japanese shoppers often type
/// a volume) so the series and the volume are both found. Only queries: titles are written
/// with spaces, and OpenSearch indexes them with its own tokenizer.
pub fn query_tokens(text: &str) -> Vec<String> {
    let mut t = Vec::new();
    for w in tokenize(text) {
        match w.find(|c: char| c.is_ascii_digit()) {
            Some(i)
                if i >= 2
                    && w[..i].chars().all(|c| c.is_ascii_alphabetic())
                    && w[i..].chars().all(|c| c.is_ascii_digit()) =>
            {
                t.push(w[..i].to_string());
                t.push(w[i..].to_string());
            }
            _ => t.push(w),
        }
    }
    t.retain(|w| !QUERY_STOPWORDS.contains(&w.as_str()));
    t
}

fn is_hiragana(c: char) -> bool {
    matches!(c as u32, 0x3041..=0x309F)
}

/// The query terms a document search uses: `tokens` (the query's, [`query_tokens`]) without
/// the pairs of `text` written only in hiragana, when it has pairs with a kanji or katakana
/// in them. In a Japanese question the hiragana pairs are mostly endings and particles
/// (できますか), and policy text is full of the same ones, so they would rank the wordiest
/// document first; the words that say what is asked (返品, キャンセル) hold kanji or
/// katakana. Katakana is told apart here, before [`tokenize`] folds it into hiragana. A
/// question with no such pair (all hiragana, or no Japanese) keeps every term.
pub fn document_query_tokens(text: &str, tokens: &[String]) -> Vec<String> {
    let mut content: Vec<String> = Vec::new();
    let mut run: Vec<char> = Vec::new();
    let mut flush = |run: &mut Vec<char>| {
        if let [only] = run.as_slice()
            && !is_hiragana(*only)
        {
            content.push(fold_kana(*only).to_string());
        }
        for pair in run.windows(2) {
            if pair.iter().any(|&c| !is_hiragana(c)) {
                content.push(pair.iter().map(|&c| fold_kana(c)).collect());
            }
        }
        run.clear();
    };
    for c in text.chars() {
        if is_cjk(c) {
            run.push(c);
        } else {
            flush(&mut run);
        }
    }
    flush(&mut run);
    if content.is_empty() {
        return tokens.to_vec();
    }
    tokens
        .iter()
        .filter(|t| !t.chars().any(is_cjk) || content.contains(t))
        .cloned()
        .collect()
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

/// [`japanese_names`] with kana folded, as the lexical index sees them: folded in the text
/// itself so an engine without a kana filter (OpenSearch's default analyzers) indexes the same
/// terms as the embedded BM25.
fn japanese_names_folded(p: &Product) -> String {
    japanese_names(p).chars().map(fold_kana).collect()
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

/// A document's Japanese title and body, space-separated; empty when it has none.
fn japanese_document(d: &Document) -> String {
    [&d.title_ja, &d.body_ja]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a document's vector is computed from: the English and, after it, the Japanese
/// wording, so a question in either language lands near the document. The vector cache is
/// keyed by these texts, so a changed translation is embedded again.
pub fn document_embedding_text(d: &Document) -> String {
    let ja = japanese_document(d);
    format!(
        "{}. {}{}{}",
        d.title,
        d.body,
        if ja.is_empty() { "" } else { " / " },
        ja
    )
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
    let ja = japanese_names_folded(p);
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

/// The BM25 field text of a document; the title counts double, in either language. The
/// Japanese text has its kana folded here, as product names do, so OpenSearch indexes the
/// same terms as the embedded BM25.
pub fn document_lexical_text(d: &Document) -> String {
    let fold = |s: &Option<String>| -> String {
        s.as_deref()
            .unwrap_or_default()
            .chars()
            .map(fold_kana)
            .collect()
    };
    format!(
        "{t} {t} {tj} {tj} {b} {bj}",
        t = d.title,
        b = d.body,
        tj = fold(&d.title_ja),
        bj = fold(&d.body_ja)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_typed_against_the_title_is_its_own_query_word() {
        assert_eq!(
            query_tokens("ONE PIECE10巻ありますか"),
            query_tokens("ONE PIECE 10巻ありますか")
        );
        assert!(query_tokens("piece10").contains(&"10".to_string()));
        // Not a word and a number: left whole.
        assert_eq!(query_tokens("x2"), vec!["x2"]);
        assert_eq!(query_tokens("4k"), vec!["4k"]);
    }

    #[test]
    fn document_queries_drop_hiragana_only_pairs_when_there_are_words() {
        let q = "注文をキャンセルできますか？ refund";
        let got = document_query_tokens(q, &query_tokens(q));
        assert_eq!(
            got,
            [
                "注文", "文を", "をき", "きゃ", "ゃん", "んせ", "せる", "るで", "refund"
            ]
        );
        // Nothing but hiragana (or no Japanese at all): every term stays.
        for q in ["へんぴんできますか", "can I return it?"] {
            assert_eq!(document_query_tokens(q, &query_tokens(q)), query_tokens(q));
        }
    }

    #[test]
    fn documents_are_indexed_and_embedded_in_both_languages() {
        let mut d = Document {
            id: "policy-returns-jp".into(),
            store_id: "manga_jp".into(),
            kind: "policy".into(),
            title: "Return policy".into(),
            body: "Returns within 14 days.".into(),
            title_ja: None,
            body_ja: None,
        };
        let english = document_embedding_text(&d);
        assert_eq!(english, "Return policy. Returns within 14 days.");
        d.title_ja = Some("返品について".into());
        d.body_ja = Some("お届けから14日以内ならキャンセルできます。".into());
        // A translation changes the embedded text, and with it the vector cache's key.
        assert_ne!(document_embedding_text(&d), english);
        assert!(document_embedding_text(&d).contains("返品について"));
        let terms = tokenize(&document_lexical_text(&d));
        for t in ["return", "返品", "きゃ", "ゃん"] {
            assert!(terms.iter().any(|x| x == t), "{t} not in {terms:?}");
        }
        // Title words count double in both languages.
        assert_eq!(terms.iter().filter(|x| *x == "返品").count(), 2);
    }

    #[test]
    fn words_are_lowercased_and_cjk_becomes_folded_bigrams() {
        assert_eq!(
            tokenize("The One-Piece, Vol. 12!"),
            vec!["one", "piece", "vol", "12"]
        );
        assert_eq!(
            tokenize("ワンピース vol1"),
            vec!["わん", "んぴ", "ぴー", "ーす", "vol1"]
        );
        assert_eq!(tokenize("進撃ABC"), vec!["進撃", "abc"]);
        assert_eq!(tokenize("鬼 の"), vec!["鬼", "の"]);
        assert_eq!(tokenize("チェンソーマン"), tokenize("ちぇんそーまん"));
        assert!(tokenize(" ,. ").is_empty());
    }
}
