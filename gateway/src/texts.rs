//! User-facing texts that need no backend: status lines and canned answers.

use mangaassist_proto::v1::Intent;

/// Shown the moment a message arrives (seed 002: progressive status). Chosen from the
/// keyword guess, because the real classifier has not answered yet.
pub fn status_text(intent: Intent) -> &'static str {
    match intent {
        Intent::Greeting | Intent::Chitchat => "Typing…",
        Intent::Faq => "Checking our store policies…",
        Intent::OrderStatus => "Looking up your orders…",
        Intent::ProductSearch => "Searching the catalog…",
        Intent::Recommendation => "Finding manga you might like…",
        Intent::Comparison => "Comparing titles…",
        Intent::Complaint => "Sorry to hear that — looking into it…",
        Intent::ReturnRefund => "Checking the return policy…",
        Intent::Unspecified => "Thinking…",
    }
}

/// The last rung of the ladder: what we say when no model can answer (seed 003).
pub fn canned_answer(intent: Intent) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_intent_has_status_and_canned_text_without_products() {
        for i in Intent::ALL {
            assert!(status_text(i).ends_with('…'), "{i:?}");
            let a = canned_answer(i);
            assert!(a.len() > 40, "{i:?}");
            // A canned answer is used when nothing could be checked: it must not name titles,
            // prices or stock it cannot know.
            assert!(!a.contains("Vol.") && !a.contains("yen"), "{a}");
        }
    }
}
