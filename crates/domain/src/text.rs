//! Text normalisation. Two rules, one built on the other:
//! - [`normalize_text`] is what the sentence model embeds: the intent classifier trains and
//!   serves on it and the query-vector cache keys on it, so training and serving vectors
//!   come from identical input;
//! - [`normalize_question`] is the answer cache's exact key: the same text without trailing
//!   sentence punctuation, so "Where is my order?" and "where is  my order" are one question
//!   to the cache, while the classifier still sees the question mark (it carries intent).

/// Lower-case, single-spaced, trimmed.
pub fn normalize_text(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// [`normalize_text`] without trailing sentence punctuation (`?`, `!`, `.`, `…`, `~` and
/// their full-width forms): the answer cache's exact key.
pub fn normalize_question(text: &str) -> String {
    let normalized = normalize_text(text);
    normalized
        .trim_end_matches(|c: char| {
            c.is_whitespace()
                || matches!(c, '?' | '!' | '.' | '。' | '？' | '！' | '…' | '~' | '～')
        })
        .to_string()
}

/// Kana, CJK ideographs and half-width katakana: Japanese script, written without spaces.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x9fff | 0xff66..=0xff9f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_lower_cased_and_single_spaced() {
        assert_eq!(
            normalize_text("  Where IS\tmy  order? "),
            "where is my order?"
        );
        assert_eq!(normalize_text(""), "");
        assert_eq!(normalize_text("ＡＢＣ　注文"), "ａｂｃ 注文");
    }

    #[test]
    fn questions_also_lose_trailing_punctuation() {
        assert_eq!(
            normalize_question("  Where is   my Order?! "),
            "where is my order"
        );
        assert_eq!(normalize_question("注文はどこ？"), "注文はどこ");
        assert_eq!(normalize_question("???"), "");
        assert_eq!(normalize_question("v1.5 or 2.0"), "v1.5 or 2.0");
        assert_eq!(normalize_question("what ? !"), "what");
    }

    #[test]
    fn japanese_script_is_cjk() {
        assert!("注文はどこ".chars().all(is_cjk));
        assert!(!"order 12".chars().any(is_cjk));
    }
}
