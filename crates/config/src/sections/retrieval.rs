//! `[retrieval]`: hybrid search parameters and the backend that runs them.

use serde::{Deserialize, Serialize};

use super::{choice, ensure, http_url, non_negative, within};
use crate::ConfigError;

choice! {
    /// `retrieval.backend`.
    pub enum RetrievalBackend {
        /// In-process HNSW + BM25.
        #[default]
        Embedded = "embedded",
        /// k-NN and BM25 in an OpenSearch cluster (the `retrieval.opensearch` section).
        OpenSearch = "opensearch",
    }
}

choice! {
    /// `retrieval.inventory_backend`.
    pub enum InventoryBackend {
        /// A redb file (`retrieval.inventory_path`), for one retrieval replica.
        #[default]
        Embedded = "embedded",
        /// The shared Redis of the `redis` section: every retrieval replica applies every
        /// change (published on a channel, state in a hash).
        Redis = "redis",
    }
}

/// Most results a query may ask for; the retrieval daemon caps requests at the same number.
const MAX_TOP_K: u32 = 50;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalSettings {
    /// Results per query, 1..=50.
    pub top_k: u32,
    /// Candidates taken from each ranking (vector, lexical) before fusion.
    pub candidates: u32,
    /// Reciprocal-rank-fusion constant (k in 1 / (k + rank)), finite and >= 0.
    pub rrf_k: f32,
    /// HNSW search breadth; higher = better recall, slower.
    pub ef_search: usize,
    /// Most volumes of one series among the products returned (0 = no limit), so "manga
    /// like X" shows other series instead of X's volumes 1-5. Further volumes still fill
    /// the list when too few other products match.
    pub max_per_series: u32,
    /// `embedded` (in-process HNSW + BM25, the default) or `opensearch`.
    pub backend: RetrievalBackend,
    pub opensearch: OpenSearchSettings,
    /// Where live stock, prices and flash-sale mode are kept: `embedded` (a redb file, the
    /// default) or `redis` (shared by every replica).
    pub inventory_backend: InventoryBackend,
    /// redb file of the embedded inventory; empty = `<data.state_dir>/inventory.redb`.
    pub inventory_path: std::path::PathBuf,
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        Self {
            top_k: 5,
            candidates: 50,
            rrf_k: 60.0,
            ef_search: 64,
            max_per_series: 2,
            backend: RetrievalBackend::Embedded,
            opensearch: OpenSearchSettings::default(),
            inventory_backend: InventoryBackend::Embedded,
            inventory_path: std::path::PathBuf::new(),
        }
    }
}

impl RetrievalSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        within("retrieval.top_k", self.top_k, 1..=MAX_TOP_K)?;
        within("retrieval.candidates", self.candidates, 1..=10_000)?;
        non_negative("retrieval.rrf_k", self.rrf_k)?;
        within("retrieval.ef_search", self.ef_search, 1..=10_000)?;
        self.opensearch.validate()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenSearchSettings {
    /// Cluster URL, e.g. `https://search-x.eu-west-1.es.amazonaws.com` or
    /// `http://127.0.0.1:9200`.
    pub url: String,
    /// One index per store: `<prefix><store>` for products and `<prefix><store>-docs` for
    /// documents.
    pub index_prefix: String,
    /// Environment variables with basic-auth credentials (unset = no auth).
    pub username_env: String,
    pub password_env: String,
    /// Create missing indices with the `knn_vector` mapping and bulk-load the catalog at
    /// start when an index holds a different number of documents.
    pub index_at_start: bool,
    /// Per-request timeout; the caller's deadline bounds it further.
    pub timeout_ms: u64,
}

impl Default for OpenSearchSettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:9200".into(),
            index_prefix: "mangaassist-".into(),
            username_env: "OPENSEARCH_USERNAME".into(),
            password_env: "OPENSEARCH_PASSWORD".into(),
            index_at_start: true,
            timeout_ms: 2_000,
        }
    }
}

impl OpenSearchSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        http_url("retrieval.opensearch.url", &self.url)?;
        let p = &self.index_prefix;
        ensure(
            !p.is_empty()
                && *p == p.to_lowercase()
                && !p.starts_with(['_', '-', '+'])
                && !p.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':']),
            "retrieval.opensearch.index_prefix",
            format!(
                "`{p}` is not a valid OpenSearch index name prefix (lowercase, no spaces or \\/*?\"<>|,#:, not starting with _ - +)"
            ),
        )?;
        within(
            "retrieval.opensearch.timeout_ms",
            self.timeout_ms,
            1..=3_600_000,
        )
    }
}
