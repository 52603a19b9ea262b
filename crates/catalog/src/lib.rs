//! Loaders for the files under `data/`: products, FAQ/policy documents, demo users and orders,
//! labelled intent examples. Each loader validates every record and reports the file and line
//! of the first bad one, so a broken data file fails start-up with a precise message.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use mangaassist_proto::v1 as pb;
use serde::{Deserialize, de::DeserializeOwned};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Record {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

pub const DEMOGRAPHICS: [&str; 5] = ["shonen", "seinen", "shojo", "josei", "kodomo"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub id: String,
    pub store_id: String,
    pub title: String,
    pub series: String,
    pub volume: u32,
    pub author: String,
    pub genres: Vec<String>,
    pub demographic: String,
    pub synopsis: String,
    pub price_yen: u32,
    pub stock: u32,
    pub release_date: String,
    /// The series' title as a Japanese storefront lists it (manga_jp only), e.g. `ONE PIECE`, `進撃の巨人`.
    #[serde(default)]
    pub series_ja: Option<String>,
    /// Its reading in kana, e.g. `ワンピース`, `しんげきのきょじん`, so a shopper who types the sound finds it.
    #[serde(default)]
    pub series_reading: Option<String>,
    /// This volume's Japanese title, e.g. `ONE PIECE 1`.
    #[serde(default)]
    pub title_ja: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub id: String,
    pub store_id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    /// The Japanese wording, for Japanese questions (optional: a store may have none).
    #[serde(default)]
    pub title_ja: Option<String>,
    #[serde(default)]
    pub body_ja: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub user_id: String,
    pub name: String,
    pub favourite_genres: Vec<String>,
    pub language: String,
    pub store_id: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    pub product_id: String,
    pub title: String,
    pub quantity: u32,
    pub price_yen: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub order_id: String,
    pub user_id: String,
    pub store_id: String,
    pub items: Vec<OrderItem>,
    pub status: String,
    pub placed_at: String,
    pub eta: String,
    pub carrier: String,
    pub tracking: String,
}

/// One labelled message for the intent classifier.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabelledText {
    pub text: String,
    pub intent: String,
}

/// Reads a JSONL file, validating each record with `check`; blank lines are skipped.
pub fn read_jsonl<T: DeserializeOwned>(
    path: &Path,
    mut check: impl FnMut(&T) -> Result<(), String>,
) -> Result<Vec<T>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec = |message: String| DataError::Record {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let value: T = serde_json::from_str(line).map_err(|e| rec(e.to_string()))?;
        check(&value).map_err(rec)?;
        out.push(value);
    }
    Ok(out)
}

fn non_empty(field: &str, v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        Err(format!("`{field}` is empty"))
    } else {
        Ok(())
    }
}

fn date(field: &str, v: &str) -> Result<(), String> {
    let b = v.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!("`{field}` = `{v}` is not a yyyy-mm-dd date"))
    }
}

/// Products and documents of every store.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub products: Vec<Product>,
    pub documents: Vec<Document>,
}

impl Catalog {
    /// Loads `<dir>/catalog/products.jsonl` and `<dir>/docs/documents.jsonl`.
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let products = load_products(&dir.join("catalog/products.jsonl"))?;
        let documents = load_documents(&dir.join("docs/documents.jsonl"))?;
        Ok(Self {
            products,
            documents,
        })
    }

    /// Store ids that have at least one product, sorted.
    pub fn stores(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .products
            .iter()
            .map(|p| p.store_id.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        s.sort();
        s
    }
}

pub fn load_products(path: &Path) -> Result<Vec<Product>, DataError> {
    let mut ids = HashSet::new();
    let products = read_jsonl(path, |p: &Product| {
        non_empty("id", &p.id)?;
        non_empty("store_id", &p.store_id)?;
        non_empty("title", &p.title)?;
        non_empty("series", &p.series)?;
        non_empty("author", &p.author)?;
        non_empty("synopsis", &p.synopsis)?;
        if p.genres.is_empty() || p.genres.iter().any(|g| g.trim().is_empty()) {
            return Err("`genres` must be a non-empty list of names".into());
        }
        if !DEMOGRAPHICS.contains(&p.demographic.as_str()) {
            return Err(format!(
                "`demographic` = `{}` is not one of {}",
                p.demographic,
                DEMOGRAPHICS.join(", ")
            ));
        }
        if p.volume == 0 {
            return Err("`volume` must be ≥ 1".into());
        }
        if p.price_yen == 0 {
            return Err("`price_yen` must be > 0".into());
        }
        date("release_date", &p.release_date)?;
        if !ids.insert(p.id.clone()) {
            return Err(format!("duplicate product id `{}`", p.id));
        }
        Ok(())
    })?;
    if products.is_empty() {
        return Err(DataError::File {
            path: path.to_path_buf(),
            message: "no products".into(),
        });
    }
    Ok(products)
}

pub fn load_documents(path: &Path) -> Result<Vec<Document>, DataError> {
    let mut ids = HashSet::new();
    read_jsonl(path, |d: &Document| {
        non_empty("id", &d.id)?;
        non_empty("store_id", &d.store_id)?;
        non_empty("title", &d.title)?;
        non_empty("body", &d.body)?;
        // A Japanese title without a body (or the reverse) would answer a Japanese question
        // half in English.
        match (&d.title_ja, &d.body_ja) {
            (Some(t), Some(b)) => {
                non_empty("title_ja", t)?;
                non_empty("body_ja", b)?;
            }
            (None, None) => {}
            _ => return Err("`title_ja` and `body_ja` come together or not at all".into()),
        }
        if !matches!(d.kind.as_str(), "faq" | "policy") {
            return Err(format!("`kind` = `{}` is not faq or policy", d.kind));
        }
        if !ids.insert(d.id.clone()) {
            return Err(format!("duplicate document id `{}`", d.id));
        }
        Ok(())
    })
}

pub fn load_users(path: &Path) -> Result<Vec<User>, DataError> {
    let mut ids = HashSet::new();
    read_jsonl(path, |u: &User| {
        non_empty("user_id", &u.user_id)?;
        non_empty("name", &u.name)?;
        if !ids.insert(u.user_id.clone()) {
            return Err(format!("duplicate user id `{}`", u.user_id));
        }
        Ok(())
    })
}

/// Orders, checked against the users and products they reference.
pub fn load_orders(
    path: &Path,
    users: &[User],
    products: &[Product],
) -> Result<Vec<Order>, DataError> {
    let user_ids: HashSet<&str> = users.iter().map(|u| u.user_id.as_str()).collect();
    let product_ids: HashSet<(&str, &str)> = products
        .iter()
        .map(|p| (p.store_id.as_str(), p.id.as_str()))
        .collect();
    let mut ids = HashSet::new();
    read_jsonl(path, |o: &Order| {
        non_empty("order_id", &o.order_id)?;
        if !user_ids.contains(o.user_id.as_str()) {
            return Err(format!("unknown user `{}`", o.user_id));
        }
        if o.items.is_empty() {
            return Err("`items` is empty".into());
        }
        for it in &o.items {
            if !product_ids.contains(&(o.store_id.as_str(), it.product_id.as_str())) {
                return Err(format!(
                    "item `{}` is not a product of store `{}`",
                    it.product_id, o.store_id
                ));
            }
        }
        date("placed_at", &o.placed_at)?;
        if !ids.insert(o.order_id.clone()) {
            return Err(format!("duplicate order id `{}`", o.order_id));
        }
        Ok(())
    })
}

/// Labelled intent examples; every label must be a known intent.
pub fn load_intents(path: &Path) -> Result<Vec<LabelledText>, DataError> {
    read_jsonl(path, |l: &LabelledText| {
        non_empty("text", &l.text)?;
        if pb::Intent::from_label(&l.intent).is_none() {
            return Err(format!("unknown intent `{}`", l.intent));
        }
        Ok(())
    })
}

impl From<&Product> for pb::Product {
    fn from(p: &Product) -> Self {
        pb::Product {
            id: p.id.clone(),
            store_id: p.store_id.clone(),
            title: p.title.clone(),
            series: p.series.clone(),
            volume: p.volume,
            author: p.author.clone(),
            genres: p.genres.clone(),
            demographic: p.demographic.clone(),
            synopsis: p.synopsis.clone(),
            price_yen: p.price_yen,
            stock: p.stock,
            release_date: p.release_date.clone(),
            title_ja: p.title_ja.clone().unwrap_or_default(),
            series_ja: p.series_ja.clone().unwrap_or_default(),
        }
    }
}

impl From<&Document> for pb::Document {
    fn from(d: &Document) -> Self {
        pb::Document {
            id: d.id.clone(),
            store_id: d.store_id.clone(),
            kind: d.kind.clone(),
            title: d.title.clone(),
            body: d.body.clone(),
            title_ja: d.title_ja.clone().unwrap_or_default(),
            body_ja: d.body_ja.clone().unwrap_or_default(),
        }
    }
}

impl From<&User> for pb::UserProfile {
    fn from(u: &User) -> Self {
        pb::UserProfile {
            user_id: u.user_id.clone(),
            name: u.name.clone(),
            favourite_genres: u.favourite_genres.clone(),
            language: u.language.clone(),
            store_id: u.store_id.clone(),
        }
    }
}

impl From<&Order> for pb::Order {
    fn from(o: &Order) -> Self {
        pb::Order {
            order_id: o.order_id.clone(),
            user_id: o.user_id.clone(),
            store_id: o.store_id.clone(),
            items: o
                .items
                .iter()
                .map(|i| pb::OrderItem {
                    product_id: i.product_id.clone(),
                    title: i.title.clone(),
                    quantity: i.quantity,
                    price_yen: i.price_yen,
                })
                .collect(),
            status: o.status.clone(),
            placed_at: o.placed_at.clone(),
            eta: o.eta.clone(),
            carrier: o.carrier.clone(),
            tracking: o.tracking.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_record_reports_file_and_line() {
        let dir = std::env::temp_dir().join(format!("ma-cat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("products.jsonl");
        let good = r#"{"id":"B0AAAAAAAA","store_id":"manga_jp","title":"T, Vol. 1","series":"T","volume":1,"author":"A","genres":["action"],"demographic":"shonen","synopsis":"S.","price_yen":500,"stock":3,"release_date":"2020-01-01"}"#;
        let bad = good.replace("shonen", "adult");
        std::fs::write(&p, format!("{good}\n\n{bad}\n")).unwrap();
        let e = load_products(&p).unwrap_err().to_string();
        assert!(e.contains("products.jsonl:3"), "{e}");
        assert!(e.contains("demographic"), "{e}");
        std::fs::write(&p, format!("{good}\n{{not json\n")).unwrap();
        let e = load_products(&p).unwrap_err().to_string();
        assert!(e.contains("products.jsonl:2"), "{e}");
        std::fs::write(&p, format!("{good}\n{good}\n")).unwrap();
        let e = load_products(&p).unwrap_err().to_string();
        assert!(e.contains("duplicate"), "{e}");
    }

    #[test]
    fn japanese_document_text_comes_as_a_pair() {
        let dir = tempfile_dir("ja-pair");
        let p = dir.join("documents.jsonl");
        let doc = r#"{"id":"faq-x","store_id":"*","kind":"faq","title":"T","body":"B.""#;
        std::fs::write(&p, format!("{doc}}}\n{doc},\"title_ja\":\"題\"}}\n")).unwrap();
        let e = load_documents(&p).unwrap_err().to_string();
        assert!(
            e.contains("documents.jsonl:2") && e.contains("body_ja"),
            "{e}"
        );
        std::fs::write(
            &p,
            format!("{doc},\"title_ja\":\"題\",\"body_ja\":\" \"}}\n"),
        )
        .unwrap();
        let e = load_documents(&p).unwrap_err().to_string();
        assert!(e.contains("body_ja"), "{e}");
    }

    /// The shipped documents: every one a Japanese customer can be shown (`*` and
    /// `manga_jp`) has Japanese text, so a Japanese answer never falls back to English.
    #[test]
    fn shipped_documents_of_the_japanese_store_have_japanese_text() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/docs/documents.jsonl");
        let docs = load_documents(&data).unwrap();
        let japanese = |s: &str| {
            s.chars()
                .any(|c| matches!(c as u32, 0x3040..=0x30ff | 0x4e00..=0x9fff))
        };
        for d in &docs {
            match d.store_id.as_str() {
                "*" | "manga_jp" => {
                    let (t, b) = (d.title_ja.as_deref(), d.body_ja.as_deref());
                    assert!(
                        t.is_some_and(japanese) && b.is_some_and(japanese),
                        "{}",
                        d.id
                    );
                }
                _ => assert!(d.body_ja.is_none(), "{}", d.id),
            }
        }
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ma-cat-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
