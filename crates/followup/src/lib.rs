//! Follow-up questions that lean on the conversation: "is it in stock?", "how much?",
//! "when is the next volume out?", "anything similar?", "それはいくら？".
//!
//! Said alone they name no product, so neither retrieval nor a cache can answer them right.
//! The gateway recognises them ([`recognise`]) and rewrites them into one standalone question
//! about the product the conversation is about ([`standalone`]); after each answer,
//! precompute pre-answers exactly those standalone questions. Both sides use this crate, so a
//! pre-computed follow-up is found by exact match, and it was produced from the very question
//! a live answer would have been produced from: same product, same wording.
//!
//! Recognition is deliberately narrow: every word of the message must come from a small
//! vocabulary of pronouns, function words and the follow-up's own keywords. A message that
//! names anything (a title, a volume number, a genre) is not a bare follow-up and is answered
//! as written.

/// What a follow-up asks about the conversation's product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ask {
    Stock,
    Price,
    NextVolume,
    Similar,
    About,
}

impl Ask {
    pub const ALL: [Ask; 5] = [
        Ask::Stock,
        Ask::Price,
        Ask::NextVolume,
        Ask::Similar,
        Ask::About,
    ];

    /// Metric and report label.
    pub fn label(self) -> &'static str {
        match self {
            Ask::Stock => "stock",
            Ask::Price => "price",
            Ask::NextVolume => "next_volume",
            Ask::Similar => "similar",
            Ask::About => "about",
        }
    }

    /// Whether the standalone question is a recommendation (others are product searches).
    pub fn is_recommendation(self) -> bool {
        matches!(self, Ask::Similar)
    }
}

/// The language a customer wrote in, as far as follow-ups care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Ja,
}

/// Japanese if the text holds any kana or CJK ideograph.
pub fn lang_of(text: &str) -> Lang {
    if text.chars().any(is_japanese) {
        Lang::Ja
    } else {
        Lang::En
    }
}

fn is_japanese(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30ff}' // hiragana, katakana
        | '\u{3400}'..='\u{4dbf}' // CJK extension A
        | '\u{4e00}'..='\u{9fff}' // CJK unified ideographs
        | '\u{ff66}'..='\u{ff9f}') // half-width katakana
}

/// The product a follow-up is resolved against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    pub title: &'a str,
    pub series: &'a str,
    pub volume: u32,
    /// Japanese names, used for Japanese questions when the catalog has them.
    pub title_ja: Option<&'a str>,
    pub series_ja: Option<&'a str>,
}

/// The standalone question a follow-up stands for, in the customer's language.
pub fn standalone(ask: Ask, lang: Lang, s: &Subject<'_>) -> String {
    let next = s.volume.saturating_add(1);
    match lang {
        Lang::En => {
            let (t, series) = (s.title, s.series);
            match ask {
                Ask::Stock => format!("Is {t} in stock?"),
                Ask::Price => format!("What is the price of {t}?"),
                Ask::NextVolume => format!("When is {series}, Vol. {next} out?"),
                Ask::Similar => format!("Recommend something like {series}"),
                Ask::About => format!("Tell me more about {t}"),
            }
        }
        Lang::Ja => {
            let t = s.title_ja.filter(|t| !t.is_empty()).unwrap_or(s.title);
            let series = s.series_ja.filter(|t| !t.is_empty()).unwrap_or(s.series);
            match ask {
                Ask::Stock => format!("{t}の在庫はありますか？"),
                Ask::Price => format!("{t}はいくらですか？"),
                Ask::NextVolume => format!("{series}の{next}巻はいつ発売ですか？"),
                Ask::Similar => format!("{series}に似たおすすめを教えてください"),
                Ask::About => format!("{t}について教えてください"),
            }
        }
    }
}

/// Longest message considered: follow-ups are short, and recognition stays cheap.
const MAX_CHARS: usize = 120;

/// What a bare follow-up asks, and in which language; `None` for anything else (including
/// every message that names a product, a volume or a genre).
pub fn recognise(text: &str) -> Option<(Ask, Lang)> {
    if text.chars().count() > MAX_CHARS {
        return None;
    }
    match lang_of(text) {
        Lang::En => recognise_en(text).map(|a| (a, Lang::En)),
        Lang::Ja => recognise_ja(text).map(|a| (a, Lang::Ja)),
    }
}

/// Words a bare English follow-up may consist of.
const EN_WORDS: &[&str] = &[
    "a",
    "about",
    "after",
    "again",
    "alike",
    "all",
    "also",
    "an",
    "and",
    "another",
    "any",
    "anything",
    "are",
    "as",
    "at",
    "availability",
    "available",
    "awesome",
    "be",
    "been",
    "bit",
    "book",
    "books",
    "but",
    "buy",
    "by",
    "came",
    "can",
    "carry",
    "cheap",
    "cheaper",
    "come",
    "comes",
    "coming",
    "cool",
    "copies",
    "copy",
    "cost",
    "costs",
    "could",
    "currently",
    "date",
    "detail",
    "details",
    "did",
    "do",
    "does",
    "else",
    "expensive",
    "following",
    "for",
    "from",
    "get",
    "going",
    "good",
    "got",
    "great",
    "has",
    "have",
    "hey",
    "hi",
    "hmm",
    "how",
    "i",
    "i'd",
    "i'm",
    "if",
    "in",
    "interesting",
    "is",
    "it",
    "it's",
    "its",
    "just",
    "kind",
    "know",
    "latest",
    "left",
    "let",
    "like",
    "lot",
    "manga",
    "many",
    "may",
    "me",
    "might",
    "more",
    "much",
    "my",
    "need",
    "new",
    "next",
    "nice",
    "no",
    "not",
    "now",
    "of",
    "oh",
    "ok",
    "okay",
    "on",
    "one",
    "ones",
    "or",
    "order",
    "other",
    "others",
    "out",
    "please",
    "plot",
    "price",
    "priced",
    "pricey",
    "pricing",
    "read",
    "reading",
    "really",
    "recommend",
    "recommendation",
    "recommendations",
    "release",
    "released",
    "releasing",
    "right",
    "say",
    "see",
    "sequel",
    "series",
    "should",
    "show",
    "similar",
    "so",
    "sold",
    "some",
    "something",
    "sort",
    "sounds",
    "still",
    "stock",
    "stocked",
    "story",
    "suggest",
    "summary",
    "synopsis",
    "tell",
    "than",
    "thank",
    "thanks",
    "that",
    "that's",
    "the",
    "them",
    "then",
    "there",
    "there's",
    "these",
    "they",
    "they're",
    "this",
    "those",
    "title",
    "to",
    "too",
    "um",
    "up",
    "us",
    "vol",
    "volume",
    "volumes",
    "wanna",
    "want",
    "was",
    "we",
    "well",
    "were",
    "what",
    "what's",
    "whats",
    "when",
    "where",
    "which",
    "will",
    "with",
    "would",
    "yen",
    "yes",
    "yet",
    "you",
    "your",
];

fn recognise_en(text: &str) -> Option<Ask> {
    let lower = text.to_lowercase().replace('’', "'");
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() || words.len() > 16 {
        return None;
    }
    if !words.iter().all(|w| EN_WORDS.binary_search(w).is_ok()) {
        return None;
    }
    let has = |w: &str| words.contains(&w);
    let any = |ws: &[&str]| ws.iter().any(|w| has(w));
    let phrase = |a: &str, b: &str| words.windows(2).any(|p| p[0] == a && p[1] == b);
    let stock = any(&[
        "stock",
        "stocked",
        "available",
        "availability",
        "sold",
        "left",
        "carry",
        "buy",
    ]);
    let price = any(&[
        "price",
        "priced",
        "pricing",
        "pricey",
        "cost",
        "costs",
        "expensive",
        "cheap",
        "yen",
    ]) || phrase("how", "much");
    if any(&["next", "sequel", "following"]) {
        // "Is the next volume in stock?" asks about another product than the one shown:
        // answered as written.
        return (!stock && !price).then_some(Ask::NextVolume);
    }
    let referent = any(&["anything", "something", "more", "other", "others", "else"])
        || any(&["recommend", "suggest", "recommendation", "recommendations"]);
    if any(&["similar", "alike"]) || (has("like") && referent) {
        return Some(Ask::Similar);
    }
    if price {
        return Some(Ask::Price);
    }
    if stock {
        return Some(Ask::Stock);
    }
    if any(&["plot", "story", "synopsis", "summary", "details", "detail"])
        || (has("about") && any(&["what", "what's", "whats", "tell", "more"]))
        || (has("tell") && has("more"))
    {
        return Some(Ask::About);
    }
    None
}

/// Keywords of each Japanese follow-up, checked in this order.
const JA_ASKS: &[(Ask, &[&str])] = &[
    (
        Ask::NextVolume,
        &["次の巻", "次巻", "続刊", "続き", "次は", "次の"],
    ),
    (
        Ask::Similar,
        &[
            "似た",
            "似てる",
            "似ている",
            "同じような",
            "みたいな",
            "ような",
        ],
    ),
    (Ask::Price, &["いくら", "値段", "価格", "料金", "何円"]),
    (
        Ask::Stock,
        &[
            "在庫",
            "売り切れ",
            "買えます",
            "買える",
            "残って",
            "入荷",
            "ありますか",
        ],
    ),
    (
        Ask::About,
        &["あらすじ", "どんな話", "内容", "詳しく", "について"],
    ),
];

/// What a bare Japanese follow-up may hold besides its keyword, longest first so that a
/// longer filler is removed before a shorter one inside it.
const JA_FILLER: &[&str] = &[
    "教えてください",
    "でしょうか",
    "ありますか",
    "おすすめ",
    "オススメ",
    "ください",
    "シリーズ",
    "発売日",
    "ですか",
    "ますか",
    "あります",
    "ほかに",
    "他に",
    "なにか",
    "何か",
    "いつ",
    "まだ",
    "もう",
    "作品",
    "漫画",
    "マンガ",
    "教えて",
    "発売",
    "出ます",
    "出る",
    "出",
    "あと",
    "こういう",
    "そういう",
    "残り",
    "です",
    "ます",
    "ある",
    "それ",
    "これ",
    "あれ",
    "その",
    "この",
    "あの",
    "どう",
    "どんな",
    "もっと",
    "今",
    "本",
    "巻",
    "冊",
    "何",
    "他",
    "は",
    "の",
    "が",
    "を",
    "に",
    "も",
    "で",
    "と",
    "か",
    "ね",
    "よ",
    "な",
    "へ",
    "て",
    "お",
];

fn recognise_ja(text: &str) -> Option<Ask> {
    let mut rest: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && !is_punctuation(*c))
        .collect();
    if rest.is_empty() {
        return None;
    }
    let ask = JA_ASKS
        .iter()
        .find(|(_, keys)| keys.iter().any(|k| rest.contains(k)))
        .map(|(ask, _)| *ask)?;
    for (_, keys) in JA_ASKS {
        for k in *keys {
            rest = rest.replace(k, "");
        }
    }
    for f in JA_FILLER {
        rest = rest.replace(f, "");
    }
    // Whatever is left names something (a title, a genre, a volume number).
    rest.is_empty().then_some(ask)
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '？' | '！'
                | '。'
                | '、'
                | '「'
                | '」'
                | '『'
                | '』'
                | '（'
                | '）'
                | '…'
                | 'ー'
                | '～'
                | '〜'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_vocabulary_is_sorted_for_binary_search() {
        let mut sorted = EN_WORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, EN_WORDS);
    }

    #[test]
    fn recognises_natural_english_follow_ups() {
        let cases = [
            ("is it in stock?", Ask::Stock),
            ("Is it still available?", Ask::Stock),
            ("do you have any copies left", Ask::Stock),
            ("Can I buy it now?", Ask::Stock),
            ("how much is it?", Ask::Price),
            ("How much?", Ask::Price),
            ("what's the price", Ask::Price),
            ("Is that one expensive?", Ask::Price),
            ("When is the next volume out?", Ask::NextVolume),
            ("when does the next one come out?", Ask::NextVolume),
            ("is there a sequel?", Ask::NextVolume),
            ("anything similar?", Ask::Similar),
            ("Can you recommend something like it?", Ask::Similar),
            ("more like this please", Ask::Similar),
            ("what's it about?", Ask::About),
            ("Tell me more", Ask::About),
            ("what is the story?", Ask::About),
        ];
        for (text, want) in cases {
            assert_eq!(recognise(text), Some((want, Lang::En)), "{text}");
        }
    }

    #[test]
    fn messages_that_name_something_are_not_follow_ups() {
        for text in [
            "Is Berserk in stock?",
            "how much is volume 3?",
            "Is the next volume in stock?",
            "Recommend some horror manga",
            "What's popular right now?",
            "Do you have any new releases?",
            "thanks so much",
            "Where is my order?",
            "hello",
            "",
            "   ",
            "?!",
            "What is your return policy?",
            "I would like a refund",
        ] {
            assert_eq!(recognise(text), None, "{text}");
        }
        let long = "is it in stock ".repeat(20);
        assert_eq!(recognise(&long), None);
    }

    #[test]
    fn recognises_natural_japanese_follow_ups() {
        let cases = [
            ("在庫ありますか？", Ask::Stock),
            ("それはまだ買えますか", Ask::Stock),
            ("いくらですか？", Ask::Price),
            ("これの値段は？", Ask::Price),
            ("次の巻はいつ出ますか？", Ask::NextVolume),
            ("続刊はありますか", Ask::NextVolume),
            ("似た作品はありますか？", Ask::Similar),
            ("他にこういうのみたいなおすすめある？", Ask::Similar),
            ("どんな話ですか？", Ask::About),
            ("あらすじを教えてください", Ask::About),
        ];
        for (text, want) in cases {
            assert_eq!(recognise(text), Some((want, Lang::Ja)), "{text}");
        }
    }

    #[test]
    fn japanese_messages_that_name_something_are_not_follow_ups() {
        for text in [
            "ベルセルクの在庫はありますか？",
            "3巻はいくらですか",
            "ホラー漫画のおすすめは？",
            "こんにちは",
            "注文はいつ届きますか",
        ] {
            assert_eq!(recognise(text), None, "{text}");
        }
    }

    /// The replay benchmark's conversations (data/eval/conversations.jsonl): every follow-up
    /// turn is recognised as what it asks, and no opener (which names its series) is.
    #[test]
    fn the_benchmark_conversations_are_recognised_as_labelled() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/eval/conversations.jsonl"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let mut checked = 0;
        for line in text.lines() {
            let c: serde_json::Value = serde_json::from_str(line).unwrap();
            for (i, turn) in c["turns"].as_array().unwrap().iter().enumerate() {
                let say = turn["say"].as_str().unwrap();
                let got = recognise(say).map(|(a, _)| a.label());
                match turn["ask"].as_str() {
                    Some("followup_after_similar") => assert!(got.is_some(), "{say}"),
                    Some(ask) => assert_eq!(got, Some(ask), "{say}"),
                    None if i == 0 => assert_eq!(got, None, "{say}"),
                    None => {}
                }
                checked += 1;
            }
        }
        assert!(checked > 400, "{checked}");
    }

    #[test]
    fn standalone_questions_name_the_subject() {
        let s = Subject {
            title: "Berserk, Vol. 2",
            series: "Berserk",
            volume: 2,
            title_ja: Some("ベルセルク 2"),
            series_ja: None,
        };
        assert_eq!(
            standalone(Ask::Stock, Lang::En, &s),
            "Is Berserk, Vol. 2 in stock?"
        );
        assert_eq!(
            standalone(Ask::NextVolume, Lang::En, &s),
            "When is Berserk, Vol. 3 out?"
        );
        assert_eq!(
            standalone(Ask::Similar, Lang::En, &s),
            "Recommend something like Berserk"
        );
        assert_eq!(
            standalone(Ask::Price, Lang::Ja, &s),
            "ベルセルク 2はいくらですか？"
        );
        // No Japanese series name: the catalog's own name stands in.
        assert_eq!(
            standalone(Ask::NextVolume, Lang::Ja, &s),
            "Berserkの3巻はいつ発売ですか？"
        );
        // Every standalone question names its subject, so it is never itself a follow-up.
        for ask in Ask::ALL {
            for lang in [Lang::En, Lang::Ja] {
                assert_eq!(
                    recognise(&standalone(ask, lang, &s)),
                    None,
                    "{ask:?} {lang:?}"
                );
            }
        }
    }
}
