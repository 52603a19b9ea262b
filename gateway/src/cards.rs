//! Product cards: what an answer names, as the shop window shows it (title in the customer's
//! language, price as the storefront writes it, stock as a badge), with the live inventory
//! laid over the catalog's figures so a card never shows stock the shop no longer has.

use std::collections::{HashMap, VecDeque};

use mangaassist_domain::Lang;
use mangaassist_inventory::{Availability, StockView};
use mangaassist_proto::v1 as pb;
use mangaassist_protocol::{ProductCard, StockLevel, StockUpdate};

use crate::texts::price_text;

/// The card of `p`; `view` (when the gateway follows the inventory) has the last word on
/// quantity and price.
pub fn card(p: &pb::Product, lang: Lang, view: Option<&StockView>) -> ProductCard {
    let (quantity, price) = match view.map(|v| v.availability(&p.store_id, &p.id)) {
        Some(Availability::Changed {
            quantity,
            price_yen,
            ..
        }) => (quantity, price_yen),
        _ => (p.stock, p.price_yen),
    };
    let ja = |local: &str, base: &str| {
        if lang == Lang::Ja && !local.is_empty() {
            local.to_string()
        } else {
            base.to_string()
        }
    };
    ProductCard {
        id: p.id.clone(),
        title: ja(&p.title_ja, &p.title),
        series: ja(&p.series_ja, &p.series),
        volume: p.volume,
        author: p.author.clone(),
        price,
        currency: "JPY".into(),
        price_text: price_text(lang, price),
        stock: StockLevel::of(quantity),
        quantity,
    }
}

/// The `stock` frame of a change, in the language the product's card was shown in.
pub fn stock_update(s: &pb::StockState, lang: Lang) -> StockUpdate {
    StockUpdate {
        store_id: s.store_id.clone(),
        product_id: s.product_id.clone(),
        stock: StockLevel::of(s.quantity),
        quantity: s.quantity,
        price: s.price_yen,
        price_text: price_text(lang, s.price_yen),
    }
}

/// Most products one connection follows for stock updates; past it the longest-shown ones
/// are forgotten (a customer scrolls away from them long before).
pub const SHOWN_PER_CONNECTION: usize = 256;

/// The products shown on one connection and the language of their cards.
#[derive(Debug, Default)]
pub struct Shown {
    langs: HashMap<(String, String), Lang>,
    order: VecDeque<(String, String)>,
}

impl Shown {
    /// Remembers the cards of a `products` frame.
    pub fn add(&mut self, store: &str, lang: Lang, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            let key = (store.to_string(), id);
            if self.langs.insert(key.clone(), lang).is_none() {
                self.order.push_back(key);
            }
            while self.order.len() > SHOWN_PER_CONNECTION {
                if let Some(old) = self.order.pop_front() {
                    self.langs.remove(&old);
                }
            }
        }
    }

    /// The language `product` was shown in, if it was shown here.
    pub fn lang(&self, store: &str, product: &str) -> Option<Lang> {
        // A borrowed-tuple lookup would need a custom key type; this runs once per stock
        // change per connection that shows products, rarely enough to allocate.
        self.langs
            .get(&(store.to_string(), product.to_string()))
            .copied()
    }

    pub fn is_empty(&self) -> bool {
        self.langs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product() -> pb::Product {
        pb::Product {
            id: "p1".into(),
            store_id: "manga_jp".into(),
            title: "One Piece, Vol. 1".into(),
            series: "One Piece".into(),
            volume: 1,
            author: "Eiichiro Oda".into(),
            price_yen: 1_680,
            stock: 3,
            title_ja: "ONE PIECE 1".into(),
            series_ja: "ONE PIECE".into(),
            ..Default::default()
        }
    }

    #[test]
    fn cards_speak_the_customers_language() {
        let en = card(&product(), Lang::En, None);
        assert_eq!(
            (en.title.as_str(), en.price_text.as_str()),
            ("One Piece, Vol. 1", "1,680 yen")
        );
        assert_eq!((en.stock, en.quantity), (StockLevel::LowStock, 3));
        let ja = card(&product(), Lang::Ja, None);
        assert_eq!(
            (ja.title.as_str(), ja.price_text.as_str()),
            ("ONE PIECE 1", "1,680円")
        );
        // No Japanese name: the catalog's own.
        let plain = pb::Product {
            title_ja: String::new(),
            ..product()
        };
        assert_eq!(card(&plain, Lang::Ja, None).title, "One Piece, Vol. 1");
    }

    #[test]
    fn stock_levels_follow_the_quantity() {
        assert_eq!(StockLevel::of(0), StockLevel::SoldOut);
        assert_eq!(StockLevel::of(4), StockLevel::LowStock);
        assert_eq!(StockLevel::of(5), StockLevel::InStock);
    }

    #[test]
    fn a_connection_follows_a_bounded_set_of_products() {
        let mut shown = Shown::default();
        shown.add("s", Lang::Ja, ["a".to_string()]);
        shown.add(
            "s",
            Lang::En,
            (0..SHOWN_PER_CONNECTION).map(|i| i.to_string()),
        );
        assert_eq!(shown.lang("s", "a"), None, "the oldest is forgotten");
        assert_eq!(shown.lang("s", "0"), Some(Lang::En));
        assert_eq!(shown.lang("t", "0"), None, "stores are apart");
    }
}
