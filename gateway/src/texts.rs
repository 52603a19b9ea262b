//! What the gateway itself says to customers, in their language: the progress line of each
//! phase, the canned answers of the ladder's last rung, the errors a customer may see, and how
//! prices are written. Protocol errors that only a broken client causes (`bad_json`,
//! `bad_request`, ...) stay in English: they are read by developers, not shoppers.

use mangaassist_domain::Lang;
use mangaassist_proto::v1::Intent;
use mangaassist_protocol::{ErrorCode, Phase};

/// The progress line for `phase`. The first one is chosen from the keyword guess (the
/// classifier has not answered yet); later ones from the real intent.
pub fn status_text(lang: Lang, phase: Phase, intent: Intent) -> &'static str {
    match lang {
        Lang::En => status_en(phase, intent),
        Lang::Ja => status_ja(phase, intent),
    }
}

fn status_en(phase: Phase, intent: Intent) -> &'static str {
    match (phase, intent) {
        (Phase::Understanding, Intent::Greeting | Intent::Chitchat) => "Typing…",
        (Phase::Understanding, Intent::OrderStatus) => "Looking up your orders…",
        (Phase::Understanding, Intent::Complaint) => "Sorry to hear that — looking into it…",
        (Phase::Understanding, _) => "Reading your question…",
        (Phase::Searching, Intent::ProductSearch | Intent::Recommendation | Intent::Comparison) => {
            "Searching the catalog…"
        }
        (Phase::Searching, Intent::Faq | Intent::ReturnRefund | Intent::Complaint) => {
            "Checking our store policies…"
        }
        (Phase::Searching, _) => "Looking things up…",
        (Phase::Writing, Intent::Recommendation) => "Picking titles for you…",
        (Phase::Writing, Intent::Comparison) => "Comparing titles…",
        (Phase::Writing, _) => "Writing your answer…",
    }
}

fn status_ja(phase: Phase, intent: Intent) -> &'static str {
    match (phase, intent) {
        (Phase::Understanding, Intent::Greeting | Intent::Chitchat) => "入力中…",
        (Phase::Understanding, Intent::OrderStatus) => "ご注文を確認しています…",
        (Phase::Understanding, Intent::Complaint) => {
            "ご不便をおかけして申し訳ございません。確認しています…"
        }
        (Phase::Understanding, _) => "ご質問を確認しています…",
        (Phase::Searching, Intent::ProductSearch | Intent::Recommendation | Intent::Comparison) => {
            "カタログを検索しています…"
        }
        (Phase::Searching, Intent::Faq | Intent::ReturnRefund | Intent::Complaint) => {
            "ストアのポリシーを確認しています…"
        }
        (Phase::Searching, _) => "情報を調べています…",
        (Phase::Writing, Intent::Recommendation) => "おすすめを選んでいます…",
        (Phase::Writing, Intent::Comparison) => "作品を比較しています…",
        (Phase::Writing, _) => "回答を作成しています…",
    }
}

/// The last rung of the ladder: what we say when no model can answer (seed 003).
pub fn canned_answer(lang: Lang, intent: Intent) -> &'static str {
    match lang {
        Lang::En => canned_en(intent),
        Lang::Ja => canned_ja(intent),
    }
}

fn canned_en(intent: Intent) -> &'static str {
    match intent {
        Intent::Greeting => {
            "Hello! Welcome to MangaAssist. I can help you find manga, check an order or answer store questions."
        }
        Intent::Chitchat => {
            "I'm MangaAssist, the store's manga guide. Ask me for a recommendation or about your order any time!"
        }
        Intent::Faq => {
            "I can't reach our policy assistant right now. Shipping, payment and return details are on the Help page, and support can answer within a day."
        }
        Intent::OrderStatus => {
            "I can't load live order details at the moment. Your order status and tracking link are always under Account → Orders."
        }
        Intent::ProductSearch => {
            "Search is a little slow right now. Please try the catalog search bar — every title shows price and stock there."
        }
        Intent::Recommendation => {
            "I can't put together personal picks right now. Our Trending and Staff Picks pages are a great place to start!"
        }
        Intent::Comparison => {
            "I can't compare titles in detail right now. Each product page lists volumes, author and genres side by side."
        }
        Intent::Complaint => {
            "I'm sorry about this. I can't open a case automatically right now — please contact support from Account → Help and we'll make it right."
        }
        Intent::ReturnRefund => {
            "Returns can be started from Account → Orders within the return window. I can't process it for you right now, sorry."
        }
        Intent::Unspecified => "Sorry, I can't answer right now. Please try again in a moment.",
    }
}

fn canned_ja(intent: Intent) -> &'static str {
    match intent {
        Intent::Greeting => {
            "こんにちは！MangaAssistへようこそ。漫画探し、ご注文の確認、ストアについてのご質問をお手伝いします。"
        }
        Intent::Chitchat => {
            "MangaAssistは当ストアの漫画案内係です。おすすめやご注文について、いつでもお気軽にお尋ねください。"
        }
        Intent::Faq => {
            "ただいまストアのご案内を読み込めません。配送・お支払い・返品の詳細はヘルプページに掲載しており、サポートへのお問い合わせには1日以内にお返事します。"
        }
        Intent::OrderStatus => {
            "ただいまご注文の最新情報を読み込めません。ご注文状況と追跡リンクは「アカウント → ご注文履歴」でいつでもご確認いただけます。"
        }
        Intent::ProductSearch => {
            "ただいま検索に時間がかかっています。カタログの検索バーをお試しください。各作品の価格と在庫が表示されます。"
        }
        Intent::Recommendation => {
            "ただいまおすすめをお選びできません。「人気ランキング」や「スタッフのおすすめ」のページもぜひご覧ください。"
        }
        Intent::Comparison => {
            "ただいま作品を詳しく比較できません。各商品ページで巻数・著者・ジャンルをご確認いただけます。"
        }
        Intent::Complaint => {
            "ご迷惑をおかけして申し訳ございません。ただいま自動でお問い合わせを受け付けられないため、「アカウント → ヘルプ」からサポートへご連絡ください。必ず対応いたします。"
        }
        Intent::ReturnRefund => {
            "返品は返品期間内であれば「アカウント → ご注文履歴」から手続きできます。申し訳ございませんが、ただいまこちらでは手続きできません。"
        }
        Intent::Unspecified => {
            "申し訳ございません。ただいまお答えできません。少し時間をおいてもう一度お試しください。"
        }
    }
}

/// The message of an error a customer may see, in their language. `None` for protocol errors
/// only a broken client causes: those keep the gateway's precise English message.
pub fn error_text(lang: Lang, code: ErrorCode) -> Option<&'static str> {
    let (en, ja) = match code {
        ErrorCode::RateLimited => (
            "You are sending messages faster than we can answer; please wait a moment.",
            "メッセージの送信が速すぎます。少しお待ちください。",
        ),
        ErrorCode::Busy => (
            "Several answers are still on their way; please wait for one to finish.",
            "回答をいくつか作成中です。完了するまでお待ちください。",
        ),
        ErrorCode::StreamInterrupted => (
            "The answer was interrupted; please ask again.",
            "回答が途中で中断されました。もう一度お尋ねください。",
        ),
        ErrorCode::Cancelled => ("The answer was cancelled.", "回答を中止しました。"),
        ErrorCode::Forbidden => (
            "This conversation belongs to another customer.",
            "この会話は別のお客様のものです。",
        ),
        ErrorCode::UnknownStore => (
            "This assistant does not serve that store.",
            "このアシスタントはそのストアに対応していません。",
        ),
        ErrorCode::Unavailable => (
            "The conversation history is not available right now; please try again shortly.",
            "ただいま会話履歴を読み込めません。しばらくしてからもう一度お試しください。",
        ),
        ErrorCode::Internal => (
            "Something went wrong on our side; please ask again.",
            "エラーが発生しました。もう一度お試しください。",
        ),
        ErrorCode::NotFound
        | ErrorCode::DuplicateMessage
        | ErrorCode::TextTooLong
        | ErrorCode::BadJson
        | ErrorCode::BadRequest
        | ErrorCode::UnknownAction
        | ErrorCode::UnsupportedFrame
        | ErrorCode::FrameTooLarge => return None,
    };
    Some(match lang {
        Lang::En => en,
        Lang::Ja => ja,
    })
}

/// A price as the customer's storefront writes it: `1,680 yen`, `1,680円`.
pub fn price_text(lang: Lang, yen: u32) -> String {
    let digits = yen.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match lang {
        Lang::En => format!("{grouped} yen"),
        Lang::Ja => format!("{grouped}円"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHASES: [Phase; 3] = [Phase::Understanding, Phase::Searching, Phase::Writing];

    fn japanese(s: &str) -> bool {
        s.chars().any(mangaassist_domain::text::is_cjk)
    }

    #[test]
    fn every_intent_and_phase_has_a_line_in_both_languages() {
        for i in Intent::ALL {
            for p in PHASES {
                let en = status_text(Lang::En, p, i);
                let ja = status_text(Lang::Ja, p, i);
                assert!(en.ends_with('…') && ja.ends_with('…'), "{i:?} {p:?}");
                assert!(!japanese(en) && japanese(ja), "{i:?} {p:?}");
            }
            let (en, ja) = (canned_answer(Lang::En, i), canned_answer(Lang::Ja, i));
            assert!(en.len() > 40 && !japanese(en), "{i:?}");
            // No English words left in the Japanese canned answers.
            assert!(
                japanese(ja) && !ja.split(' ').any(|w| w.len() > 3 && w.is_ascii()),
                "{ja}"
            );
            // A canned answer is used when nothing could be checked: it must not name
            // titles, prices or stock it cannot know.
            for a in [en, ja] {
                assert!(
                    !a.contains("Vol.") && !a.contains("yen") && !a.contains('円'),
                    "{a}"
                );
            }
        }
    }

    #[test]
    fn customer_facing_errors_are_translated_and_protocol_errors_are_not() {
        for code in [
            ErrorCode::RateLimited,
            ErrorCode::StreamInterrupted,
            ErrorCode::Forbidden,
            ErrorCode::Unavailable,
        ] {
            assert!(japanese(error_text(Lang::Ja, code).unwrap_or_default()));
            assert!(!japanese(error_text(Lang::En, code).unwrap_or_default()));
        }
        assert_eq!(error_text(Lang::Ja, ErrorCode::BadJson), None);
    }

    #[test]
    fn prices_are_grouped_in_thousands() {
        assert_eq!(price_text(Lang::En, 495), "495 yen");
        assert_eq!(price_text(Lang::En, 1_680), "1,680 yen");
        assert_eq!(price_text(Lang::Ja, 1_234_567), "1,234,567円");
        assert_eq!(price_text(Lang::Ja, 0), "0円");
    }
}
