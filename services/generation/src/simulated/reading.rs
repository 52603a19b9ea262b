//! Reading the question and the context, the same whatever language the answer is written
//! in: what the customer asks for (a volume, genres, names, how many questions), whether the
//! products and documents in context match it, and which sentence of a document answers it.
//! A Japanese question is read as carefully as an English one, so both writers pick the same
//! products and are as sure of them.

use std::collections::HashSet;

use mangaassist_domain::{Lang, language::detect, text::is_cjk};
use mangaassist_proto::v1 as pb;

use super::en::genre_text;

pub(super) fn first_sentence(text: &str) -> &str {
    let end = text
        .char_indices()
        .find(|&(i, c)| {
            (c == '.' && text[i + 1..].starts_with(' ') && !is_abbreviation(&text[..i]))
                || c == '!'
                || c == '?'
                || c == '。'
        })
        .map_or(text.len(), |(i, c)| i + c.len_utf8());
    text[..end].trim()
}

/// True when the word ending `before` is an initial ("Monkey D. Luffy") or a common
/// abbreviation, so the period after it does not end a sentence.
pub(super) fn is_abbreviation(before: &str) -> bool {
    let word = before.rsplit(char::is_whitespace).next().unwrap_or("");
    let mut chars = word.chars();
    let initial = matches!((chars.next(), chars.next()), (Some(c), None) if c.is_uppercase());
    // "a.m." and "e.g." carry their own inner period.
    initial
        || word.contains('.')
        || ["Vol", "Mr", "Mrs", "Ms", "Dr", "St", "Jr", "No", "vs"].contains(&word)
}

/// The sentences of `text`, split as [`first_sentence`] does.
pub(super) fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let s = first_sentence(rest);
        if s.is_empty() {
            break;
        }
        out.push(s);
        rest = rest[rest.find(s).map_or(rest.len(), |i| i + s.len())..].trim_start();
    }
    out
}

/// The sentence after the first one (empty when there is none).
pub(super) fn second_sentence(text: &str) -> &str {
    let text = text.trim();
    let first = first_sentence(text);
    first_sentence(text[first.len()..].trim())
}

pub(super) fn words(text: &str) -> HashSet<String> {
    const STOP: [&str; 24] = [
        "the", "a", "an", "is", "are", "do", "does", "you", "your", "i", "my", "me", "to", "of",
        "for", "in", "on", "and", "or", "can", "what", "how", "it", "with",
    ];
    // A four-letter prefix is a cheap stem: "ship" matches "shipping", "refund" "refunds".
    // Japanese script ends a word too ("PIECEの在庫" is "piece"): it is read by
    // [`japanese_names`] and [`content_pairs`].
    text.split(|c: char| !c.is_alphanumeric() || is_cjk(c))
        .map(str::to_lowercase)
        .filter(|w| w.len() > 1 && !STOP.contains(&w.as_str()))
        .map(|w| w.chars().take(4).collect())
        .collect()
}

pub(super) fn asks_for_a_number(query: &str) -> bool {
    let q = query.to_lowercase();
    [
        "how much",
        "how long",
        "how many",
        "cost",
        "fee",
        "price",
        "days",
        "when",
        "いくら",
        "何日",
        "何円",
        "何時",
        "何冊",
        "何回",
        "何か月",
        "いつ",
        "料金",
        "送料",
        "手数料",
        "値段",
        "価格",
        "日数",
        "どのくらい",
        "どれくらい",
        "期限",
        "期間",
    ]
    .iter()
    .any(|w| q.contains(w))
}

pub(super) fn asks_for_money(query: &str) -> bool {
    let q = query.to_lowercase();
    [
        "how much",
        "cost",
        "fee",
        "price",
        "charge",
        "pay",
        "いくら",
        "料金",
        "送料",
        "手数料",
        "費用",
        "値段",
        "価格",
        "支払",
        "払",
    ]
    .iter()
    .any(|w| q.contains(w))
}

/// The document sentence sharing the most words with the query (first sentence on a tie).
pub(super) fn best_sentence(query: &str, body: &str) -> String {
    let q = words(query);
    let numeric = asks_for_a_number(query);
    let money = asks_for_money(query);
    let mut best = (0usize, String::new());
    for sentence in sentences(body) {
        let s = sentence.trim();
        let lower = s.to_lowercase();
        let mut score = 2 * words(s).intersection(&q).count();
        // Questions about amounts are answered by the sentence that has the amount.
        if numeric && s.chars().any(|c| c.is_ascii_digit()) {
            score += 2;
        }
        if money
            && ["cost", "fee", "free", "yen", "$"]
                .iter()
                .any(|w| lower.contains(w))
        {
            score += 1;
        }
        if best.1.is_empty() || score > best.0 {
            best = (score, s.to_string());
        }
    }
    best.1
}

/// The volume a question asks for: "vol 2", "volume 12", or the Japanese "2巻" / "第２巻".
pub(super) fn requested_volume(query: &str) -> Option<u32> {
    if let Some(n) = volume_in_kan(query) {
        return Some(n);
    }
    let q = query.to_lowercase();
    let toks: Vec<&str> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    for (i, t) in toks.iter().enumerate() {
        if let Some(rest) = t.strip_prefix("vol")
            && let Ok(n) = rest.trim_start_matches("ume").parse::<u32>()
        {
            return Some(n);
        }
        if matches!(*t, "vol" | "volume" | "v")
            && let Some(n) = toks.get(i + 1).and_then(|n| n.parse().ok())
        {
            return Some(n);
        }
    }
    None
}

/// The number before the first 巻 (half- or full-width digits).
fn volume_in_kan(query: &str) -> Option<u32> {
    let chars: Vec<char> = query.chars().collect();
    let at = chars.iter().position(|&c| c == '巻')?;
    let digits: String = chars[..at]
        .iter()
        .rev()
        .map_while(|&c| match c {
            '0'..='9' => Some(c),
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
            _ => None,
        })
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok()
}

/// Words of a shopping question that name nothing (as [`words`] stems them).
const GENERIC_WORDS: &str = "have has had stock stocks manga mangas volume volumes vol vols buy \
    buying price prices much many available availability any anything there looking look find \
    search want wants sell sells selling carry carries got get does did some something title \
    titles series book books comic comics read reading next new release released releases \
    latest also please show tell know this that these those edition editions copy copies cheap \
    cheapest expensive all by from about who wrote written write still left sale store shop here \
    which where why when will would could should need like good best recommend suggest their \
    they them its we us our yes no not be been if at as so up out order japanese english \
    language version print physical set box complete first last part number yen cost costs \
    hi hello thanks thank interested else other more another similar kind type sort genre story \
    stories check see copy";

/// The Japanese words for the labels of [`requested_tags`]. Japanese has no spaces to find
/// words by, so these are looked for anywhere in a question with Japanese script in it ("sf"
/// included, as in SF漫画).
const JA_TAGS: &[(&str, &[&str])] = &[
    (
        "comedy",
        &["ギャグ", "コメディ", "笑える", "爆笑", "お笑い"],
    ),
    ("action", &["アクション", "バトル", "戦い", "戦闘"]),
    ("drama", &["ドラマ", "感動", "泣ける"]),
    (
        "romance",
        &["恋愛", "ラブコメ", "ラブストーリー", "ロマンス", "恋"],
    ),
    ("adventure", &["冒険"]),
    ("fantasy", &["ファンタジー", "魔法", "ドラゴン"]),
    ("slice_of_life", &["日常", "ほのぼの", "癒し", "まったり"]),
    ("supernatural", &["妖怪", "幽霊", "怪異", "霊", "超常"]),
    ("school", &["学園", "学校", "高校", "部活"]),
    (
        "sci_fi",
        &["sf", "ＳＦ", "ロボット", "宇宙", "メカ", "近未来"],
    ),
    (
        "historical",
        &["歴史", "時代劇", "時代物", "戦国", "武士", "侍"],
    ),
    ("horror", &["ホラー", "怖い", "こわい", "恐怖"]),
    ("psychological", &["心理"]),
    ("mystery", &["ミステリー", "推理", "探偵", "謎解き"]),
    (
        "martial_arts",
        &["格闘", "武術", "拳法", "空手", "カンフー"],
    ),
    (
        "sports",
        &[
            "スポーツ",
            "サッカー",
            "野球",
            "バスケ",
            "バレー",
            "テニス",
            "ボクシング",
        ],
    ),
    ("cooking", &["料理", "グルメ", "食べ物", "ごはん"]),
    ("thriller", &["サスペンス", "スリラー"]),
    ("music", &["音楽", "バンド"]),
    ("isekai", &["異世界", "転生"]),
    ("workplace", &["お仕事", "職場", "仕事", "会社"]),
    ("shonen", &["少年"]),
    ("seinen", &["青年"]),
    ("shojo", &["少女"]),
    ("josei", &["女性"]),
    ("kodomo", &["子ども", "子供", "キッズ", "児童"]),
];

/// Genre and audience labels a question asks for, from everyday words ("scary" is horror).
pub(super) fn requested_tags(query: &str) -> Vec<&'static str> {
    const TAGS: &[(&str, &[&str])] = &[
        (
            "comedy",
            &["comedy", "funny", "humor", "humour", "hilarious", "laugh"],
        ),
        (
            "action",
            &["action", "fight", "fighting", "battle", "battles"],
        ),
        ("drama", &["drama", "dramatic"]),
        ("romance", &["romance", "romantic", "love story"]),
        ("adventure", &["adventure", "adventures", "journey"]),
        ("fantasy", &["fantasy", "magic", "wizard", "dragons"]),
        (
            "slice_of_life",
            &["slice of life", "cozy", "cosy", "relaxing", "wholesome"],
        ),
        (
            "supernatural",
            &["supernatural", "ghost", "ghosts", "yokai", "spirits"],
        ),
        ("school", &["school", "high school", "classroom"]),
        (
            "sci_fi",
            &[
                "sci-fi",
                "scifi",
                "sci fi",
                "science fiction",
                "robot",
                "robots",
                "mecha",
                "space",
            ],
        ),
        (
            "historical",
            &["historical", "history", "samurai", "feudal"],
        ),
        ("horror", &["horror", "scary", "creepy", "terrifying"]),
        ("psychological", &["psychological", "mind games"]),
        (
            "mystery",
            &["mystery", "mysteries", "detective", "whodunit"],
        ),
        ("martial_arts", &["martial arts", "kung fu", "karate"]),
        (
            "sports",
            &[
                "sports",
                "sport",
                "soccer",
                "football",
                "basketball",
                "volleyball",
                "baseball",
                "tennis",
                "boxing",
            ],
        ),
        ("cooking", &["cooking", "food", "cuisine", "chef"]),
        ("thriller", &["thriller", "suspense", "suspenseful"]),
        ("music", &["music", "band", "musician"]),
        ("isekai", &["isekai", "another world", "reincarnated"]),
        ("workplace", &["workplace", "office", "work life"]),
        ("shonen", &["shonen", "shounen"]),
        ("seinen", &["seinen"]),
        ("shojo", &["shojo", "shoujo"]),
        ("josei", &["josei"]),
        ("kodomo", &["kodomo", "kids", "children", "child"]),
    ];
    let q = format!(
        " {} ",
        query
            .to_lowercase()
            .chars()
            .map(|c| if c.is_alphanumeric() || c == '-' {
                c
            } else {
                ' '
            })
            .collect::<String>()
    );
    let japanese = detect(query) == Some(Lang::Ja);
    let lower = query.to_lowercase();
    let in_japanese = |tag: &str| {
        japanese
            && JA_TAGS
                .iter()
                .any(|(t, cues)| *t == tag && cues.iter().any(|c| lower.contains(c)))
    };
    TAGS.iter()
        .filter(|(tag, cues)| {
            cues.iter().any(|c| q.contains(&format!(" {c} "))) || in_japanese(tag)
        })
        .map(|(tag, _)| *tag)
        .collect()
}

/// Words of `query` that could name a title, an author or a genre.
pub(super) fn naming_words(query: &str) -> HashSet<String> {
    let generic = words(GENERIC_WORDS);
    words(query)
        .into_iter()
        .filter(|w| !generic.contains(w) && !w.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// False when the question names things and none of them occurs in any product (title,
/// series, author, genres, audience, synopsis, Japanese title and series): retrieval brought
/// back something else.
pub(super) fn matches_product(query: &str, products: &[&pb::Product]) -> bool {
    let naming = naming_words(query);
    // Katakana names are left out: the one for "ONE PIECE" is ワンピース, a reading the
    // request does not carry, so they cannot be checked against a product.
    let names = japanese_names(query, false);
    let tags = requested_tags(query);
    if naming.is_empty() && names.is_empty() && tags.is_empty() {
        return true;
    }
    products.iter().any(|p| {
        let japanese = format!("{} {}", p.title_ja, p.series_ja);
        if names.iter().any(|n| shares_a_pair(n, &japanese)) {
            return true;
        }
        let text = format!(
            "{} {} {} {} {} {}",
            p.title,
            p.series,
            p.author,
            p.genres
                .iter()
                .map(|g| genre_text(g))
                .collect::<Vec<_>>()
                .join(" "),
            p.demographic,
            p.synopsis
        );
        !words(&text).is_disjoint(&naming)
            || tags
                .iter()
                .any(|t| p.genres.iter().any(|g| g == t) || p.demographic == *t)
    })
}

/// False when a question of two or more naming words (English words and Japanese names)
/// shares none with `text` (English) or `japanese`.
pub(super) fn matches_any_word(query: &str, text: &str, japanese: &str) -> bool {
    let naming = naming_words(query);
    let names = japanese_names(query, true);
    naming.len() + names.len() < 2
        || !words(text).is_disjoint(&naming)
        || names.iter().any(|n| shares_a_pair(n, japanese))
}

/// Rough count of the questions in one message ("Is X in stock? And how much is Y?" is 2).
pub(super) fn question_parts(query: &str) -> usize {
    const JOINS: [&str; 18] = [
        " and what ",
        " and how ",
        " and when ",
        " and where ",
        " and which ",
        " and is ",
        " and are ",
        " and do ",
        " and does ",
        " and can ",
        " and will ",
        " and also ",
        ". also ",
        "; ",
        "それと",
        "それから",
        "ついでに",
        "あと、",
    ];
    let q = format!(" {} ", query.to_lowercase());
    let marks = q.matches(['?', '？']).count();
    let joins = JOINS.iter().filter(|j| q.contains(**j)).count();
    let mut parts = marks.max(1).max(1 + joins);
    if q.split_whitespace().count() > 40 {
        parts = parts.max(2);
    }
    parts
}

/// Words of Japanese shopping questions that name nothing (as [`GENERIC_WORDS`] for English);
/// single characters are the stems of verbs (探す, 読みたい) and counters.
const GENERIC_JA: &[&str] = &[
    "最新刊",
    "新刊",
    "最新",
    "漫画",
    "マンガ",
    "コミックス",
    "コミック",
    "単行本",
    "シリーズ",
    "ジャンル",
    "タイトル",
    "オススメ",
    "セット",
    "全巻",
    "在庫",
    "値段",
    "価格",
    "発売日",
    "発売",
    "続刊",
    "続き",
    "購入",
    "注文",
    "作品",
    "作者",
    "著者",
    "商品",
    "日本語版",
    "英語版",
    "取り扱",
    "取扱",
    "予約",
    "入荷",
    "比較",
    "違い",
    "以外",
    "人気",
    "一番",
    "感じ",
    "雰囲気",
    "気分",
    "今日",
    "今度",
    "何巻",
    "何冊",
    "何円",
    "巻",
    "冊",
    "円",
    "本",
    "版",
    "次",
    "何",
    "似",
    "他",
    "方",
    "系",
    "向け",
    "教",
    "探",
    "欲",
    "読",
    "買",
    "売",
    "知",
    "好",
    "比",
    "違",
    "店",
    "今",
];

fn is_kanji(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF) || c == '々'
}

fn is_katakana(c: char) -> bool {
    matches!(c as u32, 0x30A1..=0x30FA | 0x30FC)
}

/// Names a Japanese question gives: the runs of kanji (and, with `katakana`, katakana) of two
/// or more characters left once the shopping and genre words are taken out ("進撃の巨人の3巻は
/// ありますか" gives 進撃 and 巨人). Hiragana is left out: in a question it is grammar.
pub(super) fn japanese_names(query: &str, katakana: bool) -> Vec<String> {
    let mut generic: Vec<&str> = GENERIC_JA
        .iter()
        .copied()
        .chain(JA_TAGS.iter().flat_map(|(_, cues)| cues.iter().copied()))
        .filter(|w| w.chars().any(is_cjk))
        .collect();
    generic.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    let mut q = query.to_string();
    for w in generic {
        q = q.replace(w, " ");
    }
    let mut names = Vec::new();
    let mut run = String::new();
    for c in q.chars().chain([' ']) {
        if is_kanji(c) || is_katakana(c) {
            run.push(c);
            continue;
        }
        if run.chars().count() >= 2
            && (katakana || run.chars().any(is_kanji))
            && !names.contains(&run)
        {
            names.push(run.clone());
        }
        run.clear();
    }
    names
}

/// True when `text` holds `name` or one of its pairs of characters (進撃 of 進撃の巨人).
fn shares_a_pair(name: &str, text: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    text.contains(name)
        || chars
            .windows(2)
            .any(|w| text.contains(&w.iter().collect::<String>()))
}

/// The pairs of Japanese characters of `query` that carry meaning: those with a kanji or
/// katakana in them (返品, キャ), and a lone kanji or katakana; pairs of hiragana are endings
/// and particles (ます, すか) that every polite sentence shares.
pub(super) fn content_pairs(query: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut run: Vec<char> = Vec::new();
    let hiragana = |c: char| matches!(c as u32, 0x3041..=0x309F);
    for c in query.chars().chain([' ']) {
        if is_cjk(c) {
            run.push(c);
            continue;
        }
        let mut found: Vec<String> = Vec::new();
        if let [only] = run.as_slice()
            && !hiragana(*only)
        {
            found.push(only.to_string());
        }
        for w in run.windows(2) {
            if w.iter().any(|&c| !hiragana(c)) {
                found.push(w.iter().collect());
            }
        }
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
        run.clear();
    }
    out
}

/// The sentences of Japanese `text`, each with its 。！？ (or ! ?), split at line ends too.
pub(super) fn sentences_ja(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '。' | '！' | '？' | '!' | '?' | '\n') {
            let end = i + c.len_utf8();
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// The first of [`sentences_ja`] (empty for an empty text).
pub(super) fn first_sentence_ja(text: &str) -> &str {
    sentences_ja(text).first().copied().unwrap_or_default()
}

/// [`best_sentence`] for a Japanese document: the sentence sharing the most meaningful pairs
/// (and English words) with the query, the one with the amount for a question about an
/// amount; the first on a tie.
pub(super) fn best_sentence_ja<'t>(query: &str, body: &'t str) -> &'t str {
    let pairs = content_pairs(query);
    let latin = words(query);
    let numeric = asks_for_a_number(query);
    let money = asks_for_money(query);
    let mut best: Option<(usize, &str)> = None;
    for s in sentences_ja(body) {
        let lower = s.to_lowercase();
        let shared = pairs.iter().filter(|p| lower.contains(p.as_str())).count()
            + words(s).intersection(&latin).count();
        let mut score = 2 * shared;
        if numeric
            && s.chars()
                .any(|c| c.is_ascii_digit() || matches!(c, '０'..='９'))
        {
            score += 2;
        }
        if money
            && ["円", "無料", "料金", "手数料", "送料", "$"]
                .iter()
                .any(|w| s.contains(w))
        {
            score += 1;
        }
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, s));
        }
    }
    best.map(|(_, s)| s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japanese_questions_name_volumes_genres_and_titles() {
        assert_eq!(requested_volume("ONE PIECEの10巻はありますか"), Some(10));
        assert_eq!(requested_volume("呪術廻戦 第３巻"), Some(3));
        assert_eq!(requested_volume("最新巻はいつ？"), None);
        assert_eq!(requested_volume("vol 7 please"), Some(7));
        assert_eq!(requested_tags("怖いホラー漫画ある？"), ["horror"]);
        assert_eq!(requested_tags("SF漫画のおすすめ"), ["sci_fi"]);
        assert_eq!(requested_tags("少女向けの恋愛もの"), ["romance", "shojo"]);
        // Latin "sf" counts only in a Japanese question ("transfer" is not sci-fi).
        assert!(requested_tags("how do I transfer points?").is_empty());
        assert_eq!(
            japanese_names("進撃の巨人の3巻の在庫はありますか？", false),
            ["進撃", "巨人"]
        );
        // Katakana names only where they can be checked (a document's text).
        assert!(japanese_names("ワンピースの新刊は？", false).is_empty());
        assert_eq!(japanese_names("ワンピースの新刊は？", true), ["ワンピース"]);
        assert!(japanese_names("ホラー漫画のおすすめ", true).is_empty());
    }

    #[test]
    fn japanese_text_is_split_and_matched_on_its_content_words() {
        assert_eq!(content_pairs("返品できますか？"), ["返品", "品で"]);
        assert_eq!(content_pairs("本を"), ["本を"]);
        assert_eq!(content_pairs("本 を"), ["本"]);
        assert_eq!(
            sentences_ja("送料は550円です。無料になりますか？はい！ 最後"),
            ["送料は550円です。", "無料になりますか？", "はい！", "最後"]
        );
        assert_eq!(first_sentence_ja(""), "");
        let body = "倉庫は埼玉です。送料は550円で、3,500円以上は無料です。通常2日で届きます。";
        assert_eq!(
            best_sentence_ja("送料はいくらですか？", body),
            "送料は550円で、3,500円以上は無料です。"
        );
        assert_eq!(
            best_sentence_ja("何日で届きますか", body),
            "通常2日で届きます。"
        );
        assert_eq!(best_sentence_ja("こんにちは", body), "倉庫は埼玉です。");
        assert!(question_parts("在庫はありますか？それと送料はいくら？") >= 2);
        assert_eq!(question_parts("在庫はありますか"), 1);
    }

    #[test]
    fn a_japanese_name_matches_the_japanese_title() {
        let product = |series_ja: &str| pb::Product {
            title: "X, Vol. 1".into(),
            series_ja: series_ja.into(),
            ..Default::default()
        };
        let titan = product("進撃の巨人");
        let other = product("鬼滅の刃");
        assert!(matches_product("進撃の巨人はありますか", &[&titan]));
        assert!(!matches_product("進撃の巨人はありますか", &[&other]));
        // Nothing checkable named: the products are taken as they come.
        assert!(matches_product("ワンピースの在庫は？", &[&other]));
        assert!(matches_any_word(
            "ポイントの有効期限",
            "",
            "ポイントは12か月で失効します"
        ));
        assert!(!matches_any_word(
            "ポイントの有効期限",
            "",
            "送料は550円です"
        ));
    }
}
