//! Word-ish tokenisation shared by streaming and token accounting. A token is a run of
//! non-space characters plus the spaces after it (so concatenating the tokens gives the text
//! back); each CJK character counts as a token of its own, as it roughly does for real
//! tokenizers.

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF   // hiragana, katakana
        | 0x3400..=0x4DBF // CJK extension A
        | 0x4E00..=0x9FFF // CJK unified ideographs
        | 0xF900..=0xFAFF // compatibility ideographs
        | 0xFF66..=0xFF9F // half-width katakana
        | 0x3000..=0x303F // CJK punctuation
    )
}

/// Splits `text` into tokens; `tokenize(t).concat() == t`.
pub fn tokenize(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        if let Some(p) = prev {
            let boundary = (p.is_whitespace() && !c.is_whitespace())
                || (is_cjk(c) && !c.is_whitespace())
                || (is_cjk(p) && !c.is_whitespace());
            if boundary && i > start {
                out.push(&text[start..i]);
                start = i;
            }
        }
        prev = Some(c);
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Number of tokens in `text`.
pub fn count_tokens(text: &str) -> u32 {
    u32::try_from(tokenize(text).len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_count_words() {
        let t = "One Piece, Vol. 1 is 495 yen.\nOnly 1 left!";
        let toks = tokenize(t);
        assert_eq!(toks.concat(), t);
        assert_eq!(toks[0], "One ");
        assert_eq!(toks[1], "Piece, ");
        assert_eq!(toks.len(), 10);
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("   "), 1);
    }

    #[test]
    fn japanese_characters_are_one_token_each() {
        let t = "こんにちは! Hi";
        let toks = tokenize(t);
        assert_eq!(toks.concat(), t);
        assert_eq!(toks.len(), 7, "{toks:?}");
    }
}
