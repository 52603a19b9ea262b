//! Serve-time validation of a cached or pre-computed answer (seed 000, scenario 4): before
//! it is replayed, the products it names are checked against the live stock. In a list
//! answer (one product per `- ` line) the lines naming a product now sold out are dropped;
//! when fewer than two products or list lines remain, when a sold-out product cannot be
//! found in the text, or when the answer is prose (a sentence may name several products,
//! so no line can be dropped safely), the answer is not served and the message goes to live
//! generation.

use crate::{Availability, StockView};

/// An answer that may be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub text: String,
    pub product_ids: Vec<String>,
    /// Products dropped because they sold out after the answer was written.
    pub removed: Vec<String>,
}

/// Why an answer may not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the stock view is not caught up with the inventory")]
    Unverifiable,
    #[error("{0} named product(s) sold out and fewer than 2 remain")]
    TooFewLeft(usize),
    #[error("sold-out product `{0}` cannot be cut out of the text")]
    CannotRemove(String),
}

impl Rejected {
    /// Label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejected::Unverifiable => "unverifiable",
            Rejected::TooFewLeft(_) => "too_few_left",
            Rejected::CannotRemove(_) => "cannot_remove",
        }
    }
}

/// A list line: one product each (how answers list products).
fn is_item(line: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("- ") || l.starts_with("* ") || l.starts_with('・')
}

/// Whether `name` occurs in `line` as a whole phrase (not inside a longer word), ignoring
/// case: "NANA" must not match "banana".
fn mentions(line: &str, name: &str) -> bool {
    let name = name.trim();
    if name.is_empty() {
        return false;
    }
    let hay = line.to_lowercase();
    let needle = name.to_lowercase();
    let mut from = 0;
    while let Some(pos) = hay[from..].find(&needle) {
        let start = from + pos;
        let end = start + needle.len();
        let before = hay[..start].chars().next_back();
        let after = hay[end..].chars().next();
        // CJK text has no spaces: any position counts there.
        let boundary = |c: Option<char>| {
            c.is_none_or(|c| !c.is_alphanumeric() || !c.is_ascii() || !needle.is_ascii())
        };
        if boundary(before) && boundary(after) {
            return true;
        }
        from = start + needle.chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// Checks `text`, which names `product_ids` of `store`, against `view`.
pub fn validate(
    text: &str,
    store: &str,
    product_ids: &[String],
    view: &StockView,
) -> Result<Validated, Rejected> {
    let unchanged = || Validated {
        text: text.to_string(),
        product_ids: product_ids.to_vec(),
        removed: vec![],
    };
    if product_ids.is_empty() {
        return Ok(unchanged());
    }
    let mut sold_out = Vec::new();
    for id in product_ids {
        match view.availability(store, id) {
            Availability::Unknown => return Err(Rejected::Unverifiable),
            Availability::Changed { quantity: 0, .. } => sold_out.push(id.clone()),
            Availability::Changed { .. } | Availability::Catalog => {}
        }
    }
    if sold_out.is_empty() {
        return Ok(unchanged());
    }
    let remaining: Vec<String> = product_ids
        .iter()
        .filter(|id| !sold_out.contains(id))
        .cloned()
        .collect();
    if remaining.len() < 2 {
        return Err(Rejected::TooFewLeft(sold_out.len()));
    }
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    for id in &sold_out {
        let Some((title, series)) = view.names(store, id) else {
            return Err(Rejected::CannotRemove(id.clone()));
        };
        let before = lines.len();
        lines.retain(|l| !mentions(l, &title) && !mentions(l, &series));
        if lines.len() == before {
            return Err(Rejected::CannotRemove(id.clone()));
        }
    }
    // What is left must still be a list of at least two products: prose naming a sold-out
    // product went whole, and with it whatever else it said.
    if lines.iter().filter(|l| is_item(l)).count() < 2 {
        return Err(Rejected::CannotRemove(sold_out[0].clone()));
    }
    Ok(Validated {
        text: lines.concat(),
        product_ids: remaining,
        removed: sold_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_is_never_cut() {
        let view = StockView::default();
        view.apply(&crate::Change::Stock(mangaassist_proto::v1::StockState {
            store_id: "s".into(),
            product_id: "A".into(),
            quantity: 0,
            seq: 1,
            title: "Alpha, Vol. 7".into(),
            series: "Alpha".into(),
            ..Default::default()
        }));
        view.set_ready(true);
        let ids: Vec<String> = ["A", "B", "C"].map(String::from).to_vec();
        // One paragraph naming three products: dropping the line would drop all three.
        let prose = "Yes: Alpha, Vol. 2 is in stock. I also found Alpha, Vol. 7 and Beta, Vol. 1.";
        assert!(matches!(
            validate(prose, "s", &ids, &view),
            Err(Rejected::CannotRemove(_))
        ));
    }

    #[test]
    fn whole_phrase_matching() {
        assert!(mentions("- NANA, Vol. 1 by Ai Yazawa", "nana"));
        assert!(!mentions("a banana story", "NANA"));
        assert!(mentions("One Piece and Naruto can ship", "Naruto"));
        assert!(mentions("ワンピース第1巻は在庫あり", "ワンピース"));
        assert!(!mentions("anything", ""));
    }
}
