//! Which language an answer is written in. The customer's own words decide: a question in
//! Japanese script is answered in Japanese and one in Latin letters in English, whatever the
//! storefront; only a message with neither (digits, emoji, "??") falls back to the
//! storefront's locale. Decided once, in the gateway, from the text alone (no model), so the
//! first status line is already in the customer's language.

use crate::text::is_cjk;

/// A language the shop speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    #[default]
    En,
    Ja,
}

impl Lang {
    /// The BCP 47 tag as it travels (`GenerateRequest.locale`, store settings, the page).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    /// Parses a locale tag; `ja-JP` and `en-US` count as their language.
    pub fn parse(tag: &str) -> Option<Self> {
        let primary = tag.split(['-', '_']).next().unwrap_or_default();
        match primary.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "ja" => Some(Lang::Ja),
            _ => None,
        }
    }
}

/// The language of `text`: Japanese when it has any Japanese script, English when it has
/// Latin letters, else `None` (nothing to go by).
pub fn detect(text: &str) -> Option<Lang> {
    let mut latin = false;
    for c in text.chars() {
        if is_cjk(c) {
            return Some(Lang::Ja);
        }
        latin |= c.is_ascii_alphabetic();
    }
    latin.then_some(Lang::En)
}

/// The language to answer `text` in at a storefront whose locale is `store`.
pub fn reply_language(text: &str, store: Lang) -> Lang {
    detect(text).unwrap_or(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_customers_words_decide_then_the_store() {
        assert_eq!(
            reply_language("ワンピースのおすすめは？", Lang::En),
            Lang::Ja
        );
        assert_eq!(reply_language("ONE PIECE 10巻", Lang::En), Lang::Ja);
        assert_eq!(
            reply_language("Suggest manga like One Piece", Lang::Ja),
            Lang::En
        );
        assert_eq!(reply_language("??? 123", Lang::Ja), Lang::Ja);
        assert_eq!(reply_language("👍", Lang::En), Lang::En);
    }

    #[test]
    fn tags_round_trip_and_regions_are_ignored() {
        for l in [Lang::En, Lang::Ja] {
            assert_eq!(Lang::parse(l.tag()), Some(l));
        }
        assert_eq!(Lang::parse("ja-JP"), Some(Lang::Ja));
        assert_eq!(Lang::parse("EN_us"), Some(Lang::En));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::parse(""), None);
    }
}
