//! Shared set-up of the retrieval backend tests: the catalog with hashed-n-gram vectors (fast,
//! deterministic), OpenSearch connection settings and query builders.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use mangaassist_catalog::Catalog;
use mangaassist_config::Config;
use mangaassist_embedding::{Embedder, HashedNgrams};
use mangaassist_proto::v1 as pb;
use mangaassist_retrieval::{
    HybridParams, OpenSearchBackend, OpenSearchConfig, ProductFilter, RetrievalError, SearchQuery,
    catalog_vectors,
};

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

pub struct Fixture {
    pub catalog: Catalog,
    pub products: Vec<Arc<[f32]>>,
    pub documents: Vec<Arc<[f32]>>,
    pub embedder: Arc<dyn Embedder>,
    _cache: tempfile::TempDir,
}

/// The catalog with hashed-n-gram vectors (fast, deterministic), cached in a fresh folder.
pub async fn fixture() -> Fixture {
    fixture_with(Arc::new(HashedNgrams::default()), None).await
}

/// The catalog with `embedder`'s vectors, read from (and written to) `cache_dir` when given,
/// else a fresh temporary folder.
pub async fn fixture_with(embedder: Arc<dyn Embedder>, cache_dir: Option<&Path>) -> Fixture {
    let cache = tempfile::tempdir().unwrap();
    let catalog = Catalog::load(&data_dir()).unwrap();
    let texts: Vec<String> = catalog
        .products
        .iter()
        .map(mangaassist_retrieval::product_embedding_text)
        .chain(
            catalog
                .documents
                .iter()
                .map(mangaassist_retrieval::document_embedding_text),
        )
        .collect();
    let dir = cache_dir.unwrap_or(cache.path());
    let (mut products, _) = catalog_vectors(embedder.clone(), texts, dir).await.unwrap();
    let documents = products.split_off(catalog.products.len());
    Fixture {
        catalog,
        products,
        documents,
        embedder,
        _cache: cache,
    }
}

pub fn params() -> HybridParams {
    HybridParams::from(&Config::default().retrieval)
}

pub fn os_config(url: &str, prefix: &str) -> OpenSearchConfig {
    OpenSearchConfig {
        url: url.to_string(),
        index_prefix: prefix.to_string(),
        basic_auth: None,
        index_at_start: true,
        timeout: Duration::from_secs(10),
    }
}

pub async fn connect(
    f: &Fixture,
    config: &OpenSearchConfig,
) -> Result<OpenSearchBackend, RetrievalError> {
    OpenSearchBackend::connect(
        config,
        params(),
        &f.catalog,
        &f.products,
        &f.documents,
        f.embedder.dim(),
    )
    .await
}

pub fn query(f: &Fixture, store: &str, text: &str, top_k: usize, docs: usize) -> SearchQuery {
    SearchQuery {
        store_id: store.into(),
        text: text.into(),
        vector: f.embedder.embed(&text.to_lowercase()).unwrap().into(),
        filter: ProductFilter::default(),
        top_k,
        top_k_documents: docs,
    }
}

pub fn ids(hits: &[pb::ProductHit]) -> Vec<String> {
    hits.iter()
        .map(|h| h.product.as_ref().unwrap().id.clone())
        .collect()
}

pub fn titles(hits: &[pb::ProductHit]) -> Vec<String> {
    hits.iter()
        .map(|h| h.product.as_ref().unwrap().title.clone())
        .collect()
}

/// Japanese questions at the Japanese store, each with the document that answers it.
pub const JAPANESE_QUESTIONS: [(&str, &str); 6] = [
    ("返品できますか？", "policy-returns-jp"),
    ("送料はいくらですか？", "faq-shipping-domestic-jp"),
    ("ポイントの有効期限はいつまでですか", "faq-points-program"),
    ("コンビニで荷物を受け取れますか？", "policy-konbini-pickup"),
    ("注文をキャンセルしたい", "policy-order-cancellation"),
    ("返金はいつされますか？", "policy-refund-timing"),
];

/// Shopper questions that policy documents answer.
pub const POLICY_QUESTIONS: [&str; 5] = [
    "free shipping",
    "how do I return a damaged volume",
    "payment methods",
    "when will my order arrive",
    "gift wrapping",
];
