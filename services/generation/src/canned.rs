use mangaassist_proto::v1 as pb;

/// Canned per-intent answers for when generation is unavailable (the gateway's last degradation
/// level). They promise nothing specific and name no product.
pub fn canned_answer(intent: pb::Intent) -> &'static str {
    match intent {
        pb::Intent::Greeting => {
            "Hello and welcome to MangaAssist! I can help you find manga, check an order or answer questions about the store."
        }
        pb::Intent::Faq => {
            "I can't look that up right now. Our Help pages cover shipping, payment, points and returns, and customer support can confirm the details."
        }
        pb::Intent::OrderStatus => {
            "I can't reach order tracking right now. You can see the status of every order under Account > Orders, or try again in a minute."
        }
        pb::Intent::ProductSearch => {
            "I can't search the catalog right now. Please use the search bar on the store page, or ask me again in a minute."
        }
        pb::Intent::Recommendation => {
            "I can't put personal recommendations together right now. The New Releases and Bestsellers pages are a good place to start, or ask me again in a minute."
        }
        pb::Intent::Comparison => {
            "I can't compare titles right now. Each product page lists the author, genres, price and stock, or ask me again in a minute."
        }
        pb::Intent::Complaint => {
            "I'm sorry about the trouble. I can't reach our systems right now, so please contact customer support from the Help page and they will sort it out."
        }
        pb::Intent::ReturnRefund => {
            "I can't start a return right now. You can request a return or refund under Account > Orders, or contact customer support from the Help page."
        }
        pb::Intent::Chitchat => {
            "Thanks for chatting! I'm having trouble answering right now, but I'm happy to help with manga or your orders in a moment."
        }
        pb::Intent::Unspecified => "Sorry, I can't answer right now. Please try again in a moment.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_intent_has_a_canned_answer() {
        for i in pb::Intent::ALL {
            assert!(canned_answer(i).len() > 20, "{i:?}");
        }
    }
}
