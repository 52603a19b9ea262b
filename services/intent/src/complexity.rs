//! Complexity score of a classified message, the input of the routing matrix.

use mangaassist_domain::{normalize_text, routing::base_complexity, text::is_cjk};
use mangaassist_proto::v1 as pb;

use crate::features::words;

/// Named things a message can mention: catalog series, the two stores and the demographic
/// categories. Matched on word boundaries of the normalised text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Entities {
    /// Padded with spaces (" one piece ") so `contains` respects word boundaries.
    names: Vec<String>,
}

fn padded_words(text: &str) -> String {
    let ws: Vec<&str> = words(text).collect();
    format!(" {} ", ws.join(" "))
}

impl Entities {
    /// `series` are catalog series names; "Demon Slayer: Kimetsu no Yaiba" also registers
    /// "demon slayer" and "kimetsu no yaiba", the ways people actually type it.
    pub fn new<'a>(series: impl IntoIterator<Item = &'a str>) -> Self {
        let mut names: Vec<String> = Vec::new();
        let mut push = |s: &str| {
            let p = padded_words(&s.to_lowercase());
            // One- and two-letter names ("K") would match everywhere.
            if p.trim().chars().count() >= 3 && !names.contains(&p) {
                names.push(p);
            }
        };
        for s in series {
            push(s);
            for part in s.split([':', '(', ')']) {
                push(part);
            }
        }
        for extra in [
            "manga_jp",
            "comics_us",
            "japanese store",
            "us store",
            "japanese edition",
            "english edition",
            "shonen",
            "seinen",
            "shojo",
            "shoujo",
            "josei",
            "kodomo",
            "digital",
            "print",
        ] {
            push(extra);
        }
        // Longest first, so "one piece" is not also counted inside a longer name.
        names.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Self { names }
    }

    /// Distinct entities mentioned in `text`; a longer match hides the shorter ones inside it.
    pub fn count(&self, text: &str) -> usize {
        let mut hay = padded_words(&normalize_text(text));
        let mut found = 0;
        for n in &self.names {
            if hay.contains(n.as_str()) {
                found += 1;
                hay = hay.replace(n.as_str(), " | ");
            }
        }
        found
    }
}

const CONNECTIVES: [&str; 12] = [
    "and",
    "vs",
    "versus",
    "compare",
    "compared",
    "comparison",
    "or",
    "than",
    "difference",
    "better",
    "also",
    "between",
];
const CONNECTIVES_JA: [&str; 6] = ["と", "比較", "違い", "どっち", "どちら", "より"];

/// Complexity in `[0, 1]`:
///
/// `clamp(base_complexity(intent) + length + entities + connectives + questions + uncertainty, 0, 1)` where
/// - `length` = 0.01 per word beyond 12 (Japanese: per 3 characters beyond 36), at most 0.15:
///   long messages carry several constraints;
/// - `entities` = 0.08 per named series/store/category beyond the first, at most 0.24: each
///   extra title is more context to reconcile;
/// - `connectives` = 0.04 per "and/or/vs/compared/than/between…" (or と/比較/違い/どっち), at
///   most 0.12: multi-part requests;
/// - `questions` = 0.05 per question mark beyond the first, at most 0.10;
/// - `uncertainty` = `0.25 × (0.6 − confidence) / 0.6` when confidence < 0.6: an unsure
///   classification should err towards the smarter model.
///
/// It is deterministic and monotone in each feature, so "hi" (greeting, no features) scores
/// ~0.05 and "Naruto vs Bleach, which is better?" (comparison, two titles) ~0.9.
pub(crate) fn score(intent: pb::Intent, confidence: f32, text: &str, entities: &Entities) -> f32 {
    let normalized = normalize_text(text);
    let ws: Vec<&str> = normalized
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let cjk = normalized.chars().filter(|c| is_cjk(*c)).count();
    let length_units = ws.len().max(cjk / 3);
    let length = (length_units.saturating_sub(12) as f32 * 0.01).min(0.15);
    let entity = (entities.count(text).saturating_sub(1) as f32 * 0.08).min(0.24);
    let connectives = ws.iter().filter(|w| CONNECTIVES.contains(w)).count()
        + CONNECTIVES_JA
            .iter()
            .map(|c| normalized.matches(c).count())
            .sum::<usize>();
    let connective = (connectives as f32 * 0.04).min(0.12);
    let questions = normalized.matches(['?', '？']).count();
    let question = (questions.saturating_sub(1) as f32 * 0.05).min(0.10);
    let uncertainty = if confidence < 0.6 {
        0.25 * (0.6 - confidence.max(0.0)) / 0.6
    } else {
        0.0
    };
    (base_complexity(intent) + length + entity + connective + question + uncertainty)
        .clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ents() -> Entities {
        Entities::new([
            "Naruto",
            "Bleach",
            "One Piece",
            "Demon Slayer: Kimetsu no Yaiba",
            "K",
        ])
    }

    #[test]
    fn entities_count_distinct_titles() {
        let e = ents();
        assert_eq!(e.count("Naruto vs Bleach?"), 2);
        assert_eq!(e.count("do you have demon slayer vol 3"), 1);
        assert_eq!(e.count("Demon Slayer: Kimetsu no Yaiba"), 1);
        assert_eq!(e.count("ok thanks"), 0);
        assert_eq!(
            e.count("one piece in the japanese store or the us store"),
            3
        );
    }

    #[test]
    fn comparison_of_two_titles_is_more_complex_than_hi() {
        let e = ents();
        let hi = score(pb::Intent::Greeting, 0.95, "hi", &e);
        let cmp = score(
            pb::Intent::Comparison,
            0.9,
            "How does Naruto compare to Bleach? Which is better?",
            &e,
        );
        assert!(hi < 0.1, "{hi}");
        assert!(cmp > 0.85, "{cmp}");
        let one = score(pb::Intent::Comparison, 0.9, "is naruto better", &e);
        assert!(cmp > one);
    }

    #[test]
    fn low_confidence_and_length_raise_complexity_within_bounds() {
        let e = ents();
        let sure = score(pb::Intent::Faq, 0.9, "do you ship to osaka?", &e);
        let unsure = score(pb::Intent::Faq, 0.2, "do you ship to osaka?", &e);
        assert!(unsure > sure);
        let long = "word ".repeat(200);
        let s = score(
            pb::Intent::Comparison,
            0.0,
            &format!("{long} and or vs ? ? ? ?"),
            &e,
        );
        assert!((0.0..=1.0).contains(&s));
        assert!(score(pb::Intent::Faq, 0.9, &long, &e) > sure);
    }
}
