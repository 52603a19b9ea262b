//! Keyword matcher: the degraded fallback when the trained classifier cannot run (the
//! intent daemon is down, or its embedder failed). It knows English, romanised Japanese
//! shop-talk ("osusume", "henpin") and common Japanese words, and follows the labelling
//! rules of `data/README.md` for the boundary cases it can see. Never the primary path.

use mangaassist_proto::v1 as pb;

/// Name reported in `ClassifyResponse.classifier` when this matcher answered.
pub const CLASSIFIER_NAME: &str = "keyword-fallback";

/// A cue: a phrase matched on word boundaries of the lower-cased text (English/romaji) or
/// as a plain substring (Japanese), and its weight for one intent.
type Cues = &'static [(&'static str, f32)];

const GREETING: Cues = &[
    ("hello", 1.0),
    ("hi", 1.0),
    ("hey", 1.0),
    ("hiya", 1.0),
    ("heya", 1.0),
    ("yo", 1.0),
    ("howdy", 1.0),
    ("greetings", 1.0),
    ("good morning", 1.0),
    ("good afternoon", 1.0),
    ("good evening", 1.0),
    ("good day", 1.0),
    ("morning", 0.8),
    ("evening", 0.8),
    ("konnichiwa", 1.0),
    ("konbanwa", 1.0),
    ("ohayo", 1.0),
    ("ohayou", 1.0),
    ("moshi moshi", 1.0),
    ("hallo", 1.0),
    ("helo", 1.0),
    ("hullo", 1.0),
    ("hai", 0.8),
    ("sup", 0.8),
    ("yahallo", 1.0),
    ("hellooo", 1.0),
    ("helloo", 1.0),
    ("oi", 0.8),
    ("yahoo", 0.8),
    ("こんにちは", 1.0),
    ("おはよう", 1.0),
    ("こんばんは", 1.0),
    ("はじめまして", 1.0),
    ("ハロー", 1.0),
    ("よろしく", 0.8),
];

const CHITCHAT: Cues = &[
    ("thank", 1.5),
    ("thanks", 1.5),
    ("thank you", 1.5),
    ("bye", 1.5),
    ("joke", 1.5),
    ("weather", 1.5),
    ("who are you", 2.0),
    ("your name", 2.0),
    ("robot", 1.5),
    ("human", 1.5),
    ("your favourite", 2.0),
    ("your favorite", 2.0),
    ("lol", 1.5),
    ("haha", 1.5),
    ("bored", 1.5),
    ("good night", 1.5),
    ("see you", 1.5),
    ("arigatou", 1.5),
    ("mata ne", 1.5),
    ("raining", 1.5),
    ("who would win", 3.0),
    ("how old are you", 2.0),
    ("who made you", 2.0),
    ("do you like", 1.0),
    ("feelings", 1.0),
    ("ok cool", 1.5),
    ("funny", 0.8),
    ("ありがとう", 1.5),
    ("暑い", 1.5),
    ("寒い", 1.5),
    ("天気", 1.5),
    ("誰", 1.5),
    ("またね", 1.5),
    ("さようなら", 1.5),
];

const FAQ: Cues = &[
    ("shipping", 1.2),
    ("ship to", 1.5),
    ("ship internationally", 2.0),
    ("payment", 1.5),
    ("pay with", 1.5),
    ("pay at", 1.5),
    ("do you accept", 1.5),
    ("points", 1.2),
    ("gift wrap", 1.5),
    ("gift wrapping", 1.5),
    ("policy", 2.0),
    ("password", 1.2),
    ("account", 1.2),
    ("coupon", 1.0),
    ("coupons", 1.0),
    ("customs", 1.5),
    ("carriers", 1.5),
    ("support hours", 1.5),
    ("contact", 1.2),
    ("sales tax", 1.5),
    ("konbini", 0.8),
    ("cash on delivery", 1.5),
    ("how do i", 0.6),
    ("newsletter", 1.0),
    ("restocked", 1.0),
    ("delivery take", 1.5),
    ("free shipping", 1.5),
    ("gift card", 1.2),
    ("gift cards", 1.2),
    ("preorder bonuses", 1.2),
    ("how long do refunds", 3.0),
    ("an order before it ships", 3.0),
    ("price match", 1.5),
    ("digital", 0.8),
    ("送料", 1.5),
    ("支払", 1.5),
    ("ポイント", 1.5),
    ("有効期限", 1.5),
    ("払い", 1.2),
    ("ラッピング", 1.5),
    ("配送料", 1.5),
    ("決済", 1.5),
    ("パスワード", 1.5),
];

const ORDER_STATUS: Cues = &[
    ("where is my", 2.5),
    ("where's my", 2.5),
    ("wheres my", 2.5),
    ("where is it", 2.0),
    ("my order", 1.0),
    ("my package", 1.0),
    ("my parcel", 1.0),
    ("tracking", 1.2),
    ("track", 1.5),
    ("shipped", 1.5),
    ("arrive", 1.2),
    ("delivered", 1.0),
    ("eta", 2.0),
    ("status", 1.5),
    ("dispatched", 1.5),
    ("out for delivery", 2.0),
    ("order status", 2.5),
    ("on its way", 2.0),
    ("any update", 1.5),
    ("my orders", 1.5),
    ("oder", 1.0),
    ("届き", 1.5),
    ("届く", 1.5),
    ("追跡", 2.0),
    ("発送", 1.5),
    ("注文", 1.0),
    ("配送状況", 2.5),
];

const PRODUCT_SEARCH: Cues = &[
    ("do you have", 1.5),
    ("in stock", 2.0),
    ("stock", 1.2),
    ("price of", 1.5),
    ("how much is", 1.2),
    ("vol", 1.0),
    ("volume", 1.0),
    ("volumes", 1.0),
    ("available", 1.2),
    ("looking for", 1.5),
    ("search", 1.5),
    ("find", 1.2),
    ("do you sell", 1.5),
    ("released", 1.2),
    ("do you carry", 1.5),
    ("by", 0.5),
    ("price check", 1.5),
    ("check stock", 2.0),
    ("out of stock", 2.0),
    ("i want to buy", 1.5),
    ("look up", 1.0),
    ("show me", 1.0),
    ("巻", 1.5),
    ("在庫", 2.0),
    ("ありますか", 1.0),
    ("値段", 1.5),
];

const RECOMMENDATION: Cues = &[
    ("recommend", 2.5),
    ("recommendation", 2.5),
    ("recommendations", 2.5),
    ("suggest", 2.5),
    ("something like", 2.5),
    ("similar to", 2.0),
    ("what should i read", 2.5),
    ("read next", 2.5),
    ("gift idea", 2.5),
    ("present", 1.5),
    ("osusume", 2.5),
    ("good manga", 1.5),
    ("any good", 1.5),
    ("best", 1.2),
    ("trending", 2.0),
    ("popular", 1.5),
    ("where should i start", 2.5),
    ("ideas", 1.2),
    ("books like", 2.5),
    ("anything like", 2.5),
    ("more like that", 2.5),
    ("what else", 1.5),
    ("a good pick", 2.0),
    ("should i try", 1.5),
    ("hidden gems", 2.0),
    ("i want something", 1.5),
    ("おすすめ", 2.5),
    ("オススメ", 2.5),
    ("みたいな", 2.0),
    ("似た", 2.0),
];

const COMPARISON: Cues = &[
    ("vs", 3.0),
    ("versus", 3.0),
    ("compare", 3.0),
    ("compared", 3.0),
    ("difference", 3.0),
    ("differences", 3.0),
    ("different from", 2.5),
    ("differ", 2.5),
    ("which is better", 3.0),
    ("which is", 1.5),
    ("which one", 1.5),
    ("better than", 2.5),
    ("more expensive than", 3.0),
    ("pros and cons", 3.0),
    ("which has", 2.0),
    ("both stores", 2.5),
    ("two stores", 2.5),
    ("or", 0.8),
    ("cheaper", 1.2),
    ("比較", 3.0),
    ("違い", 3.0),
    ("どっち", 3.0),
    ("どちら", 2.5),
];

const COMPLAINT: Cues = &[
    ("terrible", 2.0),
    ("ridiculous", 2.0),
    ("unacceptable", 2.0),
    ("disappointed", 2.0),
    ("awful", 2.0),
    ("worst", 2.0),
    ("hate", 1.5),
    ("annoying", 2.0),
    ("frustrating", 2.0),
    ("frustrated", 2.0),
    ("damaged", 1.5),
    ("broken", 1.5),
    ("crushed", 1.5),
    ("torn", 1.5),
    ("ripped", 1.5),
    ("bent", 1.5),
    ("wrong", 1.5),
    ("late", 1.2),
    ("crashing", 2.0),
    ("charged twice", 2.5),
    ("doesn't work", 2.0),
    ("didn't work", 2.0),
    ("not working", 2.0),
    ("never", 1.0),
    ("rude", 2.0),
    ("useless", 2.0),
    ("unhappy", 2.0),
    ("not happy", 2.0),
    ("rip-off", 2.0),
    ("rip off", 2.0),
    ("missing", 1.2),
    ("ruined", 1.5),
    ("soaked", 1.5),
    ("scratch", 1.5),
    ("gross", 1.5),
    ("not helpful", 2.0),
    ("fed up", 2.0),
    ("not fair", 2.0),
    ("cracked", 1.5),
    ("without telling me", 2.0),
    ("so slow", 1.5),
    ("waiting", 1.0),
    ("破れ", 2.0),
    ("遅", 1.2),
    ("ひどい", 2.0),
    ("最悪", 2.0),
    ("落ち", 1.5),
    ("壊れ", 2.0),
    ("使えません", 1.5),
    ("不満", 2.0),
];

const RETURN_REFUND: Cues = &[
    ("refund", 3.5),
    ("return", 2.5),
    ("returned", 2.0),
    ("exchange", 3.5),
    ("replacement", 3.5),
    ("money back", 3.5),
    ("send back", 3.5),
    ("send one back", 3.5),
    ("cancel", 2.0),
    ("swap", 3.0),
    ("henpin", 3.5),
    ("store credit", 3.5),
    ("return label", 3.5),
    ("new copy", 2.5),
    ("返品", 3.5),
    ("返金", 3.5),
    ("交換", 3.5),
    ("キャンセル", 2.5),
    ("払い戻し", 3.5),
];

/// Scored in this order; on a tie the earlier intent wins (a remedy beats venting, a
/// comparison beats a plain lookup: labelling rules 1, 7 and 8).
const TABLE: [(pb::Intent, Cues); 9] = [
    (pb::Intent::ReturnRefund, RETURN_REFUND),
    (pb::Intent::Comparison, COMPARISON),
    (pb::Intent::OrderStatus, ORDER_STATUS),
    (pb::Intent::Recommendation, RECOMMENDATION),
    (pb::Intent::Complaint, COMPLAINT),
    (pb::Intent::Faq, FAQ),
    (pb::Intent::ProductSearch, PRODUCT_SEARCH),
    (pb::Intent::Chitchat, CHITCHAT),
    (pb::Intent::Greeting, GREETING),
];

fn is_ascii_cue(cue: &str) -> bool {
    cue.is_ascii()
}

/// Weighted cue score of every intent for `text`, in [`TABLE`] order.
fn scores(text: &str) -> [(pb::Intent, f32); 9] {
    let lower = text.to_lowercase();
    // Word-boundary matching for Latin cues: "hi" must not fire inside "shipping".
    let padded = format!(
        " {} ",
        lower
            .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut out = TABLE.map(|(i, _)| (i, 0.0f32));
    for (slot, (_, cues)) in out.iter_mut().zip(TABLE.iter()) {
        for (cue, w) in cues.iter() {
            let hit = if is_ascii_cue(cue) {
                padded.contains(&format!(" {cue} "))
            } else {
                lower.contains(cue)
            };
            if hit {
                slot.1 += w;
            }
        }
    }
    let has_order_id = lower.match_indices("ma").any(|(i, _)| {
        lower[i + 2..]
            .trim_start_matches('-')
            .starts_with(|c: char| c.is_ascii_digit())
    });
    if has_order_id {
        out[2].1 += 1.5; // order_status
    }
    out
}

/// Best intent for `text` and a confidence in `[0.2, 0.7]`: keyword evidence is never as
/// trustworthy as the trained model, and the gateway should know it. A message with no cue
/// at all is `chitchat` at 0.2.
pub fn classify_keywords(text: &str) -> (pb::Intent, f32) {
    let mut s = scores(text);
    let lower = text.to_lowercase();
    // Rule 3: general policy questions about returns/refunds/cancellation are FAQ unless
    // they are about the user's own order.
    // Japanese rarely says "my"; there only an explicit policy word makes it general.
    let japanese = lower.chars().any(crate::text::is_cjk);
    let own = if japanese {
        !["ポリシー", "規定", "方針"]
            .iter()
            .any(|m| lower.contains(m))
    } else {
        [" my ", " me ", " i ", "ma-", " it", "this", " i'd", " i've"]
            .iter()
            .any(|m| format!(" {lower} ").contains(m))
    };
    if !own && s[0].1 > 0.0 {
        s[5].1 += s[0].1;
        s[0].1 = 0.0;
    }
    // Rule 9: a fictional match-up is small talk, not a shopping comparison.
    if lower.contains("who would win") {
        s[1].1 = 0.0;
    }
    // Rule 5: a greeting counts only when nothing else was asked.
    let other: f32 = s[..8].iter().map(|(_, v)| v).sum();
    if other > 0.0 {
        s[8].1 = 0.0;
    }
    let mut best = (pb::Intent::Chitchat, 0.0f32);
    let mut second = 0.0f32;
    for (intent, v) in s {
        if v > best.1 {
            second = best.1;
            best = (intent, v);
        } else if v > second {
            second = v;
        }
    }
    if best.1 <= 0.0 {
        return (pb::Intent::Chitchat, 0.2);
    }
    let margin = (best.1 - second) / best.1;
    (best.0, (0.35 + 0.35 * margin).clamp(0.2, 0.7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_cases() {
        let cases = [
            ("hello", pb::Intent::Greeting),
            ("こんにちは", pb::Intent::Greeting),
            ("Hello, where is my order?", pb::Intent::OrderStatus),
            ("track MA-100234", pb::Intent::OrderStatus),
            ("Do you have One Piece vol 5?", pb::Intent::ProductSearch),
            (
                "ワンピースの5巻の在庫はありますか",
                pb::Intent::ProductSearch,
            ),
            (
                "recommend something like Naruto",
                pb::Intent::Recommendation,
            ),
            ("おすすめの漫画は？", pb::Intent::Recommendation),
            ("Naruto vs Bleach", pb::Intent::Comparison),
            ("進撃の巨人と東京喰種の違いは？", pb::Intent::Comparison),
            (
                "the package was crushed and two books have torn pages",
                pb::Intent::Complaint,
            ),
            (
                "my package arrived damaged, I want a refund",
                pb::Intent::ReturnRefund,
            ),
            ("返品したいです", pb::Intent::ReturnRefund),
            ("What is your return policy?", pb::Intent::Faq),
            ("How much is shipping to Osaka?", pb::Intent::Faq),
            ("thanks, bye", pb::Intent::Chitchat),
            ("Who would win, Goku or Saitama?", pb::Intent::Chitchat),
        ];
        for (text, want) in cases {
            let (got, conf) = classify_keywords(text);
            assert_eq!(got, want, "{text}");
            assert!((0.2..=0.7).contains(&conf), "{text}: {conf}");
        }
    }

    #[test]
    fn no_cue_is_low_confidence_chitchat() {
        assert_eq!(classify_keywords("zzz qqq"), (pb::Intent::Chitchat, 0.2));
        // "hi" inside another word is not a greeting.
        assert_ne!(classify_keywords("shipping").0, pb::Intent::Greeting);
    }
}
