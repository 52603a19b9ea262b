//! The language an answer is written in, for every backend: the one the gateway decided
//! (`GenerateRequest.locale`), else the question's script, else the customer's profile.

use mangaassist_domain::{Lang, language::detect};
use mangaassist_proto::v1 as pb;

/// The language of an answer and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AnswerLanguage {
    pub lang: Lang,
    /// Chosen from the customer's profile: the answer then uses something of theirs, so it
    /// is personal (a locale from the gateway or the question's own script is not).
    pub from_profile: bool,
}

/// The language to answer `req` in: `locale` when it names one; without it (an older
/// gateway, a direct call), Japanese when the question has Japanese script or the profile
/// says `ja`, else English.
pub(crate) fn answer_language(req: &pb::GenerateRequest) -> AnswerLanguage {
    let chosen = |lang, from_profile| AnswerLanguage { lang, from_profile };
    if let Some(lang) = Lang::parse(req.locale.trim()) {
        return chosen(lang, false);
    }
    if detect(&req.query) == Some(Lang::Ja) {
        return chosen(Lang::Ja, false);
    }
    let profile = req.profile.as_ref().and_then(|p| Lang::parse(&p.language));
    if profile == Some(Lang::Ja) {
        return chosen(Lang::Ja, true);
    }
    chosen(Lang::En, false)
}

/// The last line of a real model's system prompt when the gateway named the language, so
/// the model does not have to guess it from a short or mixed question.
pub(crate) fn instruction(req: &pb::GenerateRequest) -> Option<&'static str> {
    Lang::parse(req.locale.trim()).map(|lang| match lang {
        Lang::Ja => "Answer in Japanese, in polite です/ます form.",
        Lang::En => "Answer in English.",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(query: &str, locale: &str, profile: Option<&str>) -> pb::GenerateRequest {
        pb::GenerateRequest {
            query: query.into(),
            locale: locale.into(),
            profile: profile.map(|l| pb::UserProfile {
                user_id: "u".into(),
                language: l.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_gateways_locale_wins_then_the_question_then_the_profile() {
        let ja = |from_profile| AnswerLanguage {
            lang: Lang::Ja,
            from_profile,
        };
        let en = AnswerLanguage {
            lang: Lang::En,
            from_profile: false,
        };
        assert_eq!(
            answer_language(&req("where is my order", "ja", None)),
            ja(false)
        );
        assert_eq!(answer_language(&req("注文はどこ？", "en", Some("ja"))), en);
        assert_eq!(answer_language(&req("注文はどこ？", "", None)), ja(false));
        assert_eq!(answer_language(&req("hello", "", Some("ja"))), ja(true));
        assert_eq!(answer_language(&req("hello", "", Some("en"))), en);
        // An unknown locale is no decision: the question decides.
        assert_eq!(answer_language(&req("hello", "fr", None)), en);
        assert_eq!(answer_language(&req("hello", "ja-JP", None)), ja(false));
        assert_eq!(instruction(&req("hello", "", None)), None);
        assert_eq!(
            instruction(&req("hello", "en", None)),
            Some("Answer in English.")
        );
        assert!(instruction(&req("hello", "ja", None)).is_some_and(|l| l.contains("Japanese")));
    }
}
