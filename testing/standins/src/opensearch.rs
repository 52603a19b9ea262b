//! A **simulation** of OpenSearch for tests and benchmarks: an axum server on
//! `127.0.0.1:0` that speaks the REST subset the OpenSearch backend uses, with the request
//! and response shapes, status codes and error bodies of OpenSearch 2.x, over an in-memory,
//! single-shard store. It is not OpenSearch: k-NN is an exact scan, BM25 uses exact
//! document lengths (Lucene stores them lossily, so real scores differ slightly), the
//! `standard` tokenizer is approximated (letter/digit runs, one token per CJK character),
//! indices are never created implicitly, and only the endpoints and query types below
//! exist. Everything else answers 400 the way OpenSearch answers a request it cannot parse.
//!
//! Modelled on the OpenSearch documentation:
//! - create index and `knn_vector` mapping:
//!   <https://docs.opensearch.org/docs/latest/field-types/supported-field-types/knn-vector/>
//! - k-NN scores per space (`cosinesimil` → (2 − d) / 2 = (1 + cos) / 2):
//!   <https://docs.opensearch.org/docs/2.19/field-types/supported-field-types/knn-spaces/>
//! - `knn` query with `k` and `filter` (efficient filtering: the filter applies during the
//!   search, so k results come back when k documents match):
//!   <https://docs.opensearch.org/docs/latest/vector-search/filter-search-knn/efficient-knn-filtering/>
//! - `_bulk` (NDJSON actions, per-item results, `errors`):
//!   <https://docs.opensearch.org/docs/2.0/api-reference/document-apis/bulk/>
//! - `_msearch`: <https://docs.opensearch.org/docs/api-reference/search-apis/multi-search/>
//! - `_mget`, `_count`, `_refresh`, `match`, `multi_match`, `bool`, `term`, `terms`,
//!   `range`, `ids` queries: the API reference and query DSL pages of the same site.
//!
//! Endpoints: `GET /`, `HEAD|PUT|GET|DELETE /<index>`, `POST /_bulk`, `POST /<index>/_bulk`,
//! `POST /<index>/_refresh`, `GET|POST /<index>/_count`, `GET|POST /<index>/_search`,
//! `POST /_msearch`, `POST /<index>/_msearch`, `GET|POST /<index>/_mget`,
//! `GET /<index>/_doc/<id>`.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::SocketAddr,
    sync::Arc,
    time::Instant,
};

use crate::LocalHttpServer;
use axum::{
    Router,
    body::{Body, Bytes},
    extract::State as AxumState,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

/// BM25 parameters (Lucene's defaults, which OpenSearch uses).
const K1: f32 = 1.2;
const B: f32 = 0.75;
/// `index.max_result_window`.
const MAX_RESULT_WINDOW: usize = 10_000;
/// Lucene's English stop set (`_english_`).
const ENGLISH_STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// The running simulation. Dropping it stops the server.
pub struct FakeOpenSearch {
    server: LocalHttpServer,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeOpenSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeOpenSearch")
            .field("addr", &self.server.addr())
            .finish()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Expected `Authorization` header value, when basic auth is on.
    auth: Option<String>,
}

#[derive(Default)]
struct State {
    indices: BTreeMap<String, Index>,
    /// `METHOD /path` of every request, in order.
    requests: Vec<String>,
    /// Answer every request with 503.
    unavailable: bool,
    seq: u64,
}

impl FakeOpenSearch {
    /// Starts the simulation on a free loopback port, without authentication.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_inner(SocketAddr::from(([127, 0, 0, 1], 0)), None).await
    }

    /// Starts the simulation on `addr`, without authentication (for a stand-in process that
    /// other processes are pointed at).
    pub async fn start_at(addr: SocketAddr) -> std::io::Result<Self> {
        Self::start_inner(addr, None).await
    }

    /// Starts the simulation requiring HTTP basic auth with these credentials (as the
    /// security plugin does: 401 without them).
    pub async fn start_with_basic_auth(user: &str, password: &str) -> std::io::Result<Self> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self::start_inner(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Some(format!("Basic {token}")),
        )
        .await
    }

    async fn start_inner(addr: SocketAddr, auth: Option<String>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            auth,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = LocalHttpServer::start(addr, app).await?;
        Ok(Self { server, shared })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stops accepting connections and waits for the server to finish.
    pub async fn stop(self) {
        self.server.stop().await;
    }

    /// From now on answer every request with 503 (`true`) or normally (`false`).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.shared.state.lock().unavailable = unavailable;
    }

    /// How many requests had this method and a path ending with `path_suffix`
    /// (e.g. `("POST", "/_bulk")`).
    pub fn request_count(&self, method: &str, path_suffix: &str) -> usize {
        self.shared
            .state
            .lock()
            .requests
            .iter()
            .filter(|r| {
                r.split_once(' ')
                    .is_some_and(|(m, p)| m == method && p.ends_with(path_suffix))
            })
            .count()
    }

    /// The names of the existing indices.
    pub fn indices(&self) -> Vec<String> {
        self.shared.state.lock().indices.keys().cloned().collect()
    }

    /// Documents in `index` (refreshed or not), `None` if it does not exist.
    pub fn doc_count(&self, index: &str) -> Option<usize> {
        self.shared
            .state
            .lock()
            .indices
            .get(index)
            .map(|i| i.live.len())
    }
}

// ---------------------------------------------------------------------------------------
// Errors in OpenSearch's format: {"error": {"root_cause": [...], "type", "reason", ...},
// "status": N}.

#[derive(Debug)]
struct ApiError {
    status: u16,
    body: Value,
}

fn cause(ty: &str, reason: impl Into<String>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), ty.into());
    m.insert("reason".into(), reason.into().into());
    m
}

fn api_error(status: u16, error: Map<String, Value>, root: Map<String, Value>) -> ApiError {
    let mut e = error;
    e.insert("root_cause".into(), json!([root]));
    ApiError {
        status,
        body: json!({ "error": e, "status": status }),
    }
}

fn simple_error(status: u16, ty: &str, reason: impl Into<String>) -> ApiError {
    let c = cause(ty, reason);
    api_error(status, c.clone(), c)
}

fn index_not_found(index: &str) -> ApiError {
    let mut c = cause(
        "index_not_found_exception",
        format!("no such index [{index}]"),
    );
    c.insert("index".into(), index.into());
    c.insert("resource.id".into(), index.into());
    c.insert("resource.type".into(), "index_or_alias".into());
    c.insert("index_uuid".into(), "_na_".into());
    api_error(404, c.clone(), c)
}

fn parsing(reason: impl Into<String>) -> ApiError {
    simple_error(400, "parsing_exception", reason)
}

fn illegal(reason: impl Into<String>) -> ApiError {
    simple_error(400, "illegal_argument_exception", reason)
}

/// A failure while executing a search on the (single) shard: OpenSearch reports it as
/// `search_phase_execution_exception: all shards failed` with the shard's cause.
fn shard_failure(index: &str, inner: Map<String, Value>) -> ApiError {
    let mut outer = cause("search_phase_execution_exception", "all shards failed");
    outer.insert("phase".into(), "query".into());
    outer.insert("grouped".into(), true.into());
    outer.insert(
        "failed_shards".into(),
        json!([{ "shard": 0, "index": index, "node": "fake-node", "reason": inner.clone() }]),
    );
    outer.insert("caused_by".into(), Value::Object(inner.clone()));
    api_error(400, outer, inner)
}

/// The cause of a shard failure (`query_shard_exception` etc.).
type ShardCause = Map<String, Value>;

// ---------------------------------------------------------------------------------------
// Analysis.

#[derive(Debug, Clone)]
struct Token {
    text: String,
    cjk: bool,
    pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tokenizer {
    Standard,
    Whitespace,
    Keyword,
}

#[derive(Debug, Clone)]
enum TokenFilter {
    Lowercase,
    Stop(HashSet<String>),
    CjkBigram { unigrams: bool },
}

#[derive(Debug, Clone)]
struct Analyzer {
    /// `mapping` character filters: (from, to) rules, applied before the tokenizer.
    char_maps: Vec<Vec<(String, String)>>,
    tokenizer: Tokenizer,
    filters: Vec<TokenFilter>,
}

/// Han, hiragana, katakana and hangul: the scripts `cjk_bigram` pairs up.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x31F0..=0x31FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0xFF66..=0xFF9F | 0x20000..=0x2FA1F)
}

impl Analyzer {
    fn builtin(name: &str) -> Option<Self> {
        let (tokenizer, filters) = match name {
            "standard" => (Tokenizer::Standard, vec![TokenFilter::Lowercase]),
            "whitespace" => (Tokenizer::Whitespace, vec![]),
            "keyword" => (Tokenizer::Keyword, vec![]),
            _ => return None,
        };
        Some(Self {
            char_maps: vec![],
            tokenizer,
            filters,
        })
    }

    fn analyze(&self, text: &str) -> Vec<String> {
        let mut text = text.to_string();
        for rules in &self.char_maps {
            text = map_chars(&text, rules);
        }
        let mut tokens = tokenize(self.tokenizer, &text);
        for f in &self.filters {
            tokens = match f {
                TokenFilter::Lowercase => tokens
                    .into_iter()
                    .map(|t| Token {
                        text: t.text.to_lowercase(),
                        ..t
                    })
                    .collect(),
                TokenFilter::Stop(words) => tokens
                    .into_iter()
                    .filter(|t| !words.contains(&t.text))
                    .collect(),
                TokenFilter::CjkBigram { unigrams } => cjk_bigrams(tokens, *unigrams),
            };
        }
        tokens.into_iter().map(|t| t.text).collect()
    }
}

/// The standard tokenizer, approximated: runs of letters and digits (an apostrophe between
/// letters stays inside the word, as UAX #29 says), and every CJK character on its own.
fn tokenize(tokenizer: Tokenizer, text: &str) -> Vec<Token> {
    match tokenizer {
        Tokenizer::Keyword => vec![Token {
            text: text.to_string(),
            cjk: false,
            pos: 0,
        }],
        Tokenizer::Whitespace => text
            .split_whitespace()
            .enumerate()
            .map(|(pos, w)| Token {
                text: w.to_string(),
                cjk: false,
                pos,
            })
            .collect(),
        Tokenizer::Standard => {
            let chars: Vec<char> = text.chars().collect();
            let mut out = Vec::new();
            let mut word = String::new();
            let push = |text: String, cjk: bool, out: &mut Vec<Token>| {
                let pos = out.len();
                out.push(Token { text, cjk, pos });
            };
            for (i, &c) in chars.iter().enumerate() {
                let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
                let next = chars.get(i + 1).copied();
                if is_cjk(c) {
                    if !word.is_empty() {
                        push(std::mem::take(&mut word), false, &mut out);
                    }
                    push(c.to_string(), true, &mut out);
                } else if c.is_alphanumeric() || (!word.is_empty() && joins(c, prev, next)) {
                    word.push(c);
                } else if !word.is_empty() {
                    push(std::mem::take(&mut word), false, &mut out);
                }
            }
            if !word.is_empty() {
                push(word, false, &mut out);
            }
            out
        }
    }
}

/// Whether `c` stays inside a word between `prev` and `next` (UAX #29: MidLetter between
/// letters, MidNum between digits, MidNumLet between either, ExtendNumLet always).
fn joins(c: char, prev: Option<char>, next: Option<char>) -> bool {
    let letter = |x: Option<char>| x.is_some_and(|x| x.is_alphabetic() && !is_cjk(x));
    let digit = |x: Option<char>| x.is_some_and(|x| x.is_numeric());
    match c {
        '_' => next.is_some_and(|n| n.is_alphanumeric() && !is_cjk(n)),
        ':' | '\u{00B7}' => letter(prev) && letter(next),
        ',' | ';' => digit(prev) && digit(next),
        '.' | '\'' | '\u{2018}' | '\u{2019}' => {
            (letter(prev) && letter(next)) || (digit(prev) && digit(next))
        }
        _ => false,
    }
}

/// A `mapping` character filter: the longest rule matching at each position wins.
fn map_chars(text: &str, rules: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for (from, to) in rules {
            if !from.is_empty() && rest.starts_with(from.as_str()) {
                out.push_str(to);
                rest = &rest[from.len()..];
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// One `a => b` rule of a mapping character filter (`\uXXXX` escapes allowed).
fn parse_mapping_rule(rule: &str) -> Option<(String, String)> {
    let unescape = |s: &str| -> Option<String> {
        let mut out = String::new();
        let mut it = s.chars().peekable();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next()? {
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| it.next()).collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    other => out.push(other),
                }
            } else {
                out.push(c);
            }
        }
        Some(out)
    };
    let (from, to) = rule.split_once("=>")?;
    Some((unescape(from.trim())?, unescape(to.trim())?))
}

/// `cjk_bigram`: adjacent CJK tokens become bigrams (plus the unigrams when asked); a lone
/// CJK character stays a unigram.
fn cjk_bigrams(tokens: Vec<Token>, unigrams: bool) -> Vec<Token> {
    let mut out = Vec::new();
    let mut run: Vec<Token> = Vec::new();
    let flush = |run: &mut Vec<Token>, out: &mut Vec<Token>| {
        if run.len() == 1 {
            out.append(run);
            return;
        }
        for (i, t) in run.iter().enumerate() {
            if unigrams {
                out.push(t.clone());
            }
            if let Some(n) = run.get(i + 1) {
                out.push(Token {
                    text: format!("{}{}", t.text, n.text),
                    cjk: true,
                    pos: t.pos,
                });
            }
        }
        run.clear();
    };
    for t in tokens {
        if t.cjk {
            if run.last().is_some_and(|l| l.pos + 1 != t.pos) {
                flush(&mut run, &mut out);
            }
            run.push(t);
        } else {
            flush(&mut run, &mut out);
            out.push(t);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn parse_analysis(analysis: &Value) -> Result<HashMap<String, Analyzer>, ApiError> {
    let mut filters: HashMap<String, TokenFilter> = HashMap::new();
    if let Some(defs) = analysis.get("filter").and_then(Value::as_object) {
        for (name, def) in defs {
            let f = match def["type"].as_str().unwrap_or("") {
                "lowercase" => TokenFilter::Lowercase,
                "stop" => TokenFilter::Stop(match &def["stopwords"] {
                    Value::Array(words) => words
                        .iter()
                        .filter_map(|w| w.as_str().map(str::to_string))
                        .collect(),
                    Value::String(s) if s == "_none_" => HashSet::new(),
                    _ => ENGLISH_STOPWORDS.iter().map(|w| w.to_string()).collect(),
                }),
                "cjk_bigram" => TokenFilter::CjkBigram {
                    unigrams: def["output_unigrams"].as_bool().unwrap_or(false),
                },
                other => {
                    return Err(illegal(format!(
                        "Unknown filter type [{other}] for [{name}] (the simulation knows lowercase, stop, cjk_bigram)"
                    )));
                }
            };
            filters.insert(name.clone(), f);
        }
    }
    let mut char_filters: HashMap<String, Vec<(String, String)>> = HashMap::new();
    if let Some(defs) = analysis.get("char_filter").and_then(Value::as_object) {
        for (name, def) in defs {
            if def["type"].as_str() != Some("mapping") {
                return Err(illegal(format!(
                    "Unknown char_filter type [{}] for [{name}] (the simulation knows mapping)",
                    def["type"].as_str().unwrap_or("")
                )));
            }
            let rules: Option<Vec<(String, String)>> = def["mappings"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(parse_mapping_rule)
                        .collect()
                })
                .unwrap_or(None);
            let mut rules = rules.ok_or_else(|| {
                illegal(format!("char_filter [{name}]: mapping requires either `mappings` or `mappings_path` to be configured with valid `a => b` rules"))
            })?;
            rules.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
            char_filters.insert(name.clone(), rules);
        }
    }
    let mut analyzers = HashMap::new();
    if let Some(defs) = analysis.get("analyzer").and_then(Value::as_object) {
        for (name, def) in defs {
            let ty = def["type"].as_str().unwrap_or("custom");
            if ty != "custom" {
                match Analyzer::builtin(ty) {
                    Some(a) => {
                        analyzers.insert(name.clone(), a);
                        continue;
                    }
                    None => {
                        return Err(illegal(format!(
                            "Unknown analyzer type [{ty}] for [{name}]"
                        )));
                    }
                }
            }
            let tokenizer = match def["tokenizer"].as_str() {
                Some("standard") => Tokenizer::Standard,
                Some("whitespace") => Tokenizer::Whitespace,
                Some("keyword") => Tokenizer::Keyword,
                Some(other) => {
                    return Err(illegal(format!(
                        "Custom Analyzer [{name}] failed to find tokenizer under name [{other}]"
                    )));
                }
                None => {
                    return Err(illegal(format!(
                        "analyzer [{name}] must specify either an analyzer type, or a tokenizer"
                    )));
                }
            };
            let names: Vec<&str> = match &def["filter"] {
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                Value::String(s) => vec![s.as_str()],
                _ => vec![],
            };
            let mut chain = Vec::new();
            for f in names {
                chain.push(match (filters.get(f), f) {
                    (Some(f), _) => f.clone(),
                    (None, "lowercase") => TokenFilter::Lowercase,
                    (None, "cjk_bigram") => TokenFilter::CjkBigram { unigrams: false },
                    (None, "stop") => {
                        TokenFilter::Stop(ENGLISH_STOPWORDS.iter().map(|w| w.to_string()).collect())
                    }
                    (None, other) => {
                        return Err(illegal(format!(
                            "Custom Analyzer [{name}] failed to find filter under name [{other}]"
                        )));
                    }
                });
            }
            let mut char_maps = Vec::new();
            let char_names: Vec<&str> = match &def["char_filter"] {
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                Value::String(s) => vec![s.as_str()],
                _ => vec![],
            };
            for c in char_names {
                char_maps.push(char_filters.get(c).cloned().ok_or_else(|| {
                    illegal(format!(
                        "Custom Analyzer [{name}] failed to find char_filter under name [{c}]"
                    ))
                })?);
            }
            analyzers.insert(
                name.clone(),
                Analyzer {
                    char_maps,
                    tokenizer,
                    filters: chain,
                },
            );
        }
    }
    Ok(analyzers)
}

// ---------------------------------------------------------------------------------------
// Indices and documents.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Keyword,
    Number { integral: bool },
    Boolean,
    KnnVector,
}

#[derive(Debug, Clone)]
struct Field {
    kind: Kind,
    type_name: String,
    indexed: bool,
    analyzer: String,
    dimension: usize,
    space: String,
}

#[derive(Debug, Clone)]
struct Doc {
    id: String,
    source: Value,
    version: u64,
    seq_no: u64,
    /// Per text field: term frequencies and the field length in tokens.
    text: HashMap<String, (HashMap<String, u32>, u32)>,
    keywords: HashMap<String, Vec<String>>,
    numbers: HashMap<String, Vec<f64>>,
    vectors: HashMap<String, Vec<f32>>,
}

#[derive(Debug, Default)]
struct TextStats {
    doc_count: u32,
    total_len: u64,
    df: HashMap<String, u32>,
}

/// What searches see: the documents as of the last refresh.
#[derive(Debug, Default)]
struct Snapshot {
    docs: Vec<Doc>,
    text: HashMap<String, TextStats>,
}

#[derive(Debug)]
struct Index {
    name: String,
    created: Value,
    fields: BTreeMap<String, Field>,
    strict: bool,
    analyzers: HashMap<String, Analyzer>,
    live: Vec<Doc>,
    by_id: HashMap<String, usize>,
    snapshot: Snapshot,
}

impl Index {
    fn analyzer(&self, name: &str) -> Option<Analyzer> {
        self.analyzers
            .get(name)
            .cloned()
            .or_else(|| Analyzer::builtin(name))
    }

    fn refresh(&mut self) {
        let mut text: HashMap<String, TextStats> = HashMap::new();
        for d in &self.live {
            for (field, (tf, len)) in &d.text {
                let s = text.entry(field.clone()).or_default();
                if *len > 0 {
                    s.doc_count += 1;
                }
                s.total_len += u64::from(*len);
                for term in tf.keys() {
                    *s.df.entry(term.clone()).or_default() += 1;
                }
            }
        }
        self.snapshot = Snapshot {
            docs: self.live.clone(),
            text,
        };
    }

    /// Parses `source` against the mapping (the checks OpenSearch's mappers make).
    fn parse_doc(&self, id: &str, source: &Value) -> Result<Doc, Map<String, Value>> {
        let obj = source.as_object().ok_or_else(|| {
            cause(
                "mapper_parsing_exception",
                "failed to parse, document is empty or not an object",
            )
        })?;
        let mut doc = Doc {
            id: id.to_string(),
            source: source.clone(),
            version: 1,
            seq_no: 0,
            text: HashMap::new(),
            keywords: HashMap::new(),
            numbers: HashMap::new(),
            vectors: HashMap::new(),
        };
        for (name, value) in obj {
            let Some(field) = self.fields.get(name) else {
                if self.strict {
                    return Err(cause(
                        "strict_dynamic_mapping_exception",
                        format!(
                            "mapping set to strict, dynamic introduction of [{name}] within [_doc] is not allowed"
                        ),
                    ));
                }
                // The simulation does not add dynamic mappings: the value is kept in
                // _source only.
                continue;
            };
            if value.is_null() {
                continue;
            }
            let preview = value.to_string().chars().take(40).collect::<String>();
            let failed = |inner: Option<Map<String, Value>>| {
                let mut c = cause(
                    "mapper_parsing_exception",
                    format!(
                        "failed to parse field [{name}] of type [{}] in document with id '{id}'. Preview of field's value: '{preview}'",
                        field.type_name
                    ),
                );
                if let Some(inner) = inner {
                    c.insert("caused_by".into(), Value::Object(inner));
                }
                c
            };
            if field.kind == Kind::KnnVector {
                let arr = value.as_array().ok_or_else(|| failed(None))?;
                let v: Option<Vec<f32>> =
                    arr.iter().map(|x| x.as_f64().map(|f| f as f32)).collect();
                let v = v.ok_or_else(|| failed(None))?;
                if v.len() != field.dimension {
                    return Err(failed(Some(cause(
                        "illegal_argument_exception",
                        format!(
                            "Vector dimension mismatch. Expected: {}, Given: {}",
                            field.dimension,
                            v.len()
                        ),
                    ))));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(failed(Some(cause(
                        "illegal_argument_exception",
                        "KNN vector values cannot be NaN or Infinity",
                    ))));
                }
                if field.space == "cosinesimil" && v.iter().all(|x| *x == 0.0) {
                    return Err(failed(Some(cause(
                        "illegal_argument_exception",
                        "zero vector is not supported when space type is [cosinesimil]",
                    ))));
                }
                doc.vectors.insert(name.clone(), v);
                continue;
            }
            let values: Vec<&Value> = match value {
                Value::Array(a) => a.iter().filter(|v| !v.is_null()).collect(),
                v => vec![v],
            };
            for v in values {
                if v.is_object() || v.is_array() {
                    return Err(failed(None));
                }
                let as_text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                match field.kind {
                    Kind::Text => {
                        if !field.indexed {
                            continue;
                        }
                        let analyzer =
                            self.analyzer(&field.analyzer).ok_or_else(|| failed(None))?;
                        let entry = doc.text.entry(name.clone()).or_default();
                        for t in analyzer.analyze(&as_text) {
                            *entry.0.entry(t).or_default() += 1;
                            entry.1 += 1;
                        }
                    }
                    Kind::Keyword => doc.keywords.entry(name.clone()).or_default().push(as_text),
                    Kind::Number { integral } => {
                        let n: f64 = match v {
                            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                            Value::String(s) => s.trim().parse().unwrap_or(f64::NAN),
                            _ => f64::NAN,
                        };
                        if !n.is_finite() {
                            return Err(failed(Some(cause(
                                "number_format_exception",
                                format!("For input string: \"{as_text}\""),
                            ))));
                        }
                        let n = if integral { n.trunc() } else { n };
                        doc.numbers.entry(name.clone()).or_default().push(n);
                    }
                    Kind::Boolean => match v {
                        Value::Bool(b) => doc
                            .keywords
                            .entry(name.clone())
                            .or_default()
                            .push(b.to_string()),
                        Value::String(s) if s == "true" || s == "false" => doc
                            .keywords
                            .entry(name.clone())
                            .or_default()
                            .push(s.clone()),
                        _ => return Err(failed(None)),
                    },
                    Kind::KnnVector => {}
                }
            }
        }
        Ok(doc)
    }
}

fn valid_index_name(name: &str) -> Result<(), ApiError> {
    let bad = name.is_empty()
        || name != name.to_lowercase()
        || name.starts_with(['_', '-', '+'])
        || name.contains([' ', '\\', '/', '*', '?', '"', '<', '>', '|', ',', '#', ':'])
        || name == "."
        || name == "..";
    if bad {
        let mut c = cause(
            "invalid_index_name_exception",
            format!(
                "Invalid index name [{name}], must be lowercase, must not contain spaces or \\, /, *, ?, \", <, >, |, ,, #, :, and must not start with _, - or +"
            ),
        );
        c.insert("index".into(), name.into());
        c.insert("index_uuid".into(), "_na_".into());
        return Err(api_error(400, c.clone(), c));
    }
    Ok(())
}

fn create_index(name: &str, body: &Value) -> Result<Index, ApiError> {
    valid_index_name(name)?;
    let settings = body.get("settings").cloned().unwrap_or(json!({}));
    // `{"settings": {"index": {...}}}` and `{"settings": {...}}` are equivalent.
    let index_settings = settings.get("index").cloned().unwrap_or(settings.clone());
    let analysis = index_settings
        .get("analysis")
        .or_else(|| settings.get("analysis"))
        .cloned()
        .unwrap_or(json!({}));
    let analyzers = parse_analysis(&analysis)?;
    let knn = matches!(index_settings.get("knn"), Some(Value::Bool(true)))
        || index_settings.get("knn").and_then(Value::as_str) == Some("true")
        || settings.get("index.knn") == Some(&Value::Bool(true));
    let mappings = body.get("mappings").cloned().unwrap_or(json!({}));
    let strict = mappings.get("dynamic").and_then(Value::as_str) == Some("strict");
    let mut fields = BTreeMap::new();
    let mapper = |reason: String| simple_error(400, "mapper_parsing_exception", reason);
    if let Some(props) = mappings.get("properties") {
        let props = props
            .as_object()
            .ok_or_else(|| mapper("Expected map for property [properties]".into()))?;
        for (fname, def) in props {
            let Some(ty) = def.get("type").and_then(Value::as_str) else {
                return Err(mapper(format!(
                    "No type specified for field [{fname}] (the simulation has no object fields)"
                )));
            };
            let kind = match ty {
                "text" => Kind::Text,
                "keyword" => Kind::Keyword,
                "integer" | "long" | "short" | "byte" => Kind::Number { integral: true },
                "float" | "double" | "half_float" => Kind::Number { integral: false },
                "boolean" => Kind::Boolean,
                "knn_vector" => Kind::KnnVector,
                other => {
                    return Err(mapper(format!(
                        "No handler for type [{other}] declared on field [{fname}]"
                    )));
                }
            };
            let analyzer = def
                .get("analyzer")
                .and_then(Value::as_str)
                .unwrap_or("standard")
                .to_string();
            if kind == Kind::Text
                && !analyzers.contains_key(&analyzer)
                && Analyzer::builtin(&analyzer).is_none()
            {
                return Err(mapper(format!(
                    "analyzer [{analyzer}] has not been configured in mappings"
                )));
            }
            let mut dimension = 0;
            let mut space = String::new();
            if kind == Kind::KnnVector {
                dimension = def
                    .get("dimension")
                    .and_then(Value::as_u64)
                    .filter(|d| (1..=16_000).contains(d))
                    .ok_or_else(|| {
                        mapper(format!(
                            "Dimension value missing or out of range (1..16000) for vector: {fname}"
                        ))
                    })? as usize;
                space = def
                    .pointer("/method/space_type")
                    .or_else(|| def.get("space_type"))
                    .and_then(Value::as_str)
                    .unwrap_or("l2")
                    .to_string();
                if !["l2", "cosinesimil", "innerproduct"].contains(&space.as_str()) {
                    return Err(mapper(format!(
                        "the simulation supports space_type l2, cosinesimil, innerproduct; got [{space}] on [{fname}]"
                    )));
                }
                if !knn && def.get("method").is_some() {
                    // Approximate search needs a graph, and OpenSearch builds one only
                    // for k-NN indices.
                    return Err(illegal(format!(
                        "Cannot set method for knn_vector field [{fname}] unless index.knn is true"
                    )));
                }
            }
            fields.insert(
                fname.clone(),
                Field {
                    kind,
                    type_name: ty.to_string(),
                    indexed: def.get("index").and_then(Value::as_bool).unwrap_or(true),
                    analyzer,
                    dimension,
                    space,
                },
            );
        }
    }
    Ok(Index {
        name: name.to_string(),
        created: body.clone(),
        fields,
        strict,
        analyzers,
        live: Vec::new(),
        by_id: HashMap::new(),
        snapshot: Snapshot::default(),
    })
}

// ---------------------------------------------------------------------------------------
// Queries.

/// Per snapshot document: `Some(score)` when it matches.
type Scores = Vec<Option<f32>>;

fn one_key<'a>(q: &'a Value, what: &str) -> Result<(&'a str, &'a Value), ApiError> {
    let obj = q.as_object().ok_or_else(|| {
        parsing(format!(
            "[{what}] query malformed, no start_object after query name"
        ))
    })?;
    let mut it = obj.iter();
    match (it.next(), it.next()) {
        (Some((k, v)), None) => Ok((k.as_str(), v)),
        (None, _) => Err(parsing(format!(
            "[{what}] query malformed, empty clause found"
        ))),
        _ => Err(parsing(format!(
            "[{what}] query doesn't support multiple fields, found [{}] and [{}]",
            obj.keys().next().map(String::as_str).unwrap_or(""),
            obj.keys().nth(1).map(String::as_str).unwrap_or("")
        ))),
    }
}

fn clauses(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.iter().collect(),
        Some(other) => vec![other],
    }
}

fn bm25(idf: f32, tf: f32, len: f32, avgdl: f32) -> f32 {
    // Lucene's BM25Similarity (no (k1 + 1) factor since Lucene 8).
    idf * tf / (tf + K1 * (1.0 - B + B * len / avgdl.max(1e-6)))
}

fn idf(n: f32, df: f32) -> f32 {
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

struct Searcher<'a> {
    index: &'a Index,
}

impl Searcher<'_> {
    fn docs(&self) -> &[Doc] {
        &self.index.snapshot.docs
    }

    fn field(&self, name: &str) -> Option<&Field> {
        self.index.fields.get(name)
    }

    fn not_indexed(&self, name: &str) -> ShardCause {
        cause(
            "query_shard_exception",
            format!(
                "failed to create query: Cannot search on field [{name}] since it is not indexed."
            ),
        )
    }

    fn eval(&self, q: &Value) -> Result<Result<Scores, ShardCause>, ApiError> {
        let (name, body) = one_key(q, "query")?;
        let n = self.docs().len();
        Ok(Ok(match name {
            "match_all" => vec![Some(boost(body)); n],
            "match_none" => vec![None; n],
            "ids" => {
                let values: HashSet<&str> = body["values"]
                    .as_array()
                    .ok_or_else(|| parsing("[ids] requires [values]"))?
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                self.docs()
                    .iter()
                    .map(|d| values.contains(d.id.as_str()).then_some(boost(body)))
                    .collect()
            }
            "term" | "terms" | "range" => {
                let (field, spec) = one_key(body, name)?;
                let f = match self.field(field) {
                    Some(f) if !f.indexed => return Ok(Err(self.not_indexed(field))),
                    Some(f) if f.kind == Kind::KnnVector => {
                        return Ok(Err(cause(
                            "query_shard_exception",
                            format!(
                                "failed to create query: Field [{field}] of type [knn_vector] does not support {name} queries"
                            ),
                        )));
                    }
                    Some(f) => f.clone(),
                    // Unmapped fields match nothing.
                    None => return Ok(Ok(vec![None; n])),
                };
                match name {
                    "term" => self.term(field, &f, spec)?,
                    "terms" => {
                        let values = spec.as_array().ok_or_else(|| {
                            parsing("[terms] query does not support [values] as an object")
                        })?;
                        let mut out = vec![None; n];
                        for v in values {
                            for (o, s) in out.iter_mut().zip(self.term(field, &f, v)?) {
                                if s.is_some() {
                                    *o = Some(1.0);
                                }
                            }
                        }
                        out
                    }
                    _ => self.range(field, &f, spec)?,
                }
            }
            "match" => {
                let (field, spec) = one_key(body, "match")?;
                let (query, opts) = match spec {
                    Value::Object(o) => (
                        o.get("query")
                            .ok_or_else(|| parsing("[match] requires query value"))?,
                        Some(o),
                    ),
                    other => (other, None),
                };
                let opt = |k: &str| opts.and_then(|o| o.get(k));
                match self.match_field(
                    field,
                    &value_text(query),
                    opt("analyzer").and_then(Value::as_str),
                    opt("operator").and_then(Value::as_str),
                    opt("boost").and_then(Value::as_f64).unwrap_or(1.0) as f32,
                )? {
                    Ok(s) => s,
                    Err(c) => return Ok(Err(c)),
                }
            }
            "multi_match" => {
                let query = value_text(
                    body.get("query")
                        .ok_or_else(|| parsing("No text specified for multi_match query"))?,
                );
                let fields: Vec<(&str, f32)> = body["fields"]
                    .as_array()
                    .ok_or_else(|| {
                        parsing(
                            "[multi_match] requires [fields] (the simulation has no default field)",
                        )
                    })?
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|f| match f.split_once('^') {
                        Some((name, b)) => (name, b.parse().unwrap_or(1.0)),
                        None => (f, 1.0),
                    })
                    .collect();
                let ty = body["type"].as_str().unwrap_or("best_fields");
                if ty != "best_fields" && ty != "most_fields" {
                    return Err(parsing(format!(
                        "the simulation supports multi_match types best_fields and most_fields, not [{ty}]"
                    )));
                }
                let mut out: Scores = vec![None; n];
                for (field, b) in fields {
                    let scores = match self.match_field(
                        field,
                        &query,
                        body["analyzer"].as_str(),
                        body["operator"].as_str(),
                        b,
                    )? {
                        Ok(s) => s,
                        Err(c) => return Ok(Err(c)),
                    };
                    for (o, s) in out.iter_mut().zip(scores) {
                        if let Some(s) = s {
                            *o = Some(match (*o, ty) {
                                (None, _) => s,
                                (Some(prev), "most_fields") => prev + s,
                                (Some(prev), _) => prev.max(s),
                            });
                        }
                    }
                }
                let b = boost(body);
                out.into_iter().map(|s| s.map(|s| s * b)).collect()
            }
            "bool" => match self.bool(body)? {
                Ok(s) => s,
                Err(c) => return Ok(Err(c)),
            },
            "knn" => match self.knn(body)? {
                Ok(s) => s,
                Err(c) => return Ok(Err(c)),
            },
            other => return Err(parsing(format!("unknown query [{other}]"))),
        }))
    }

    fn term(&self, field: &str, f: &Field, spec: &Value) -> Result<Scores, ApiError> {
        let value = match spec {
            Value::Object(o) => o
                .get("value")
                .ok_or_else(|| parsing("[term] query requires [value]"))?,
            v => v,
        };
        let want = value_text(value);
        let docs = self.docs();
        let hit: Vec<bool> = docs
            .iter()
            .map(|d| match f.kind {
                Kind::Text => d
                    .text
                    .get(field)
                    .is_some_and(|(tf, _)| tf.contains_key(&want)),
                Kind::Number { .. } => {
                    let w: f64 = want.parse().unwrap_or(f64::NAN);
                    d.numbers.get(field).is_some_and(|v| v.contains(&w))
                }
                _ => d.keywords.get(field).is_some_and(|v| v.contains(&want)),
            })
            .collect();
        // A term query scores like BM25 with one occurrence and no length norm.
        let with_field = docs
            .iter()
            .filter(|d| {
                d.keywords.contains_key(field)
                    || d.numbers.contains_key(field)
                    || d.text.contains_key(field)
            })
            .count() as f32;
        let df = hit.iter().filter(|h| **h).count() as f32;
        let score = idf(with_field, df) / (1.0 + K1) * boost(spec);
        Ok(hit.into_iter().map(|h| h.then_some(score)).collect())
    }

    fn range(&self, field: &str, f: &Field, spec: &Value) -> Result<Scores, ApiError> {
        let o = spec
            .as_object()
            .ok_or_else(|| parsing("[range] query malformed, no start_object after query name"))?;
        let mut checks: Vec<(&str, &Value)> = Vec::new();
        for (k, v) in o {
            match k.as_str() {
                "gt" | "gte" | "lt" | "lte" => checks.push((k.as_str(), v)),
                "boost" => {}
                other => {
                    return Err(parsing(format!("[range] query does not support [{other}]")));
                }
            }
        }
        let cmp_ok = |ord: std::cmp::Ordering, op: &str| match op {
            "gt" => ord.is_gt(),
            "gte" => ord.is_ge(),
            "lt" => ord.is_lt(),
            _ => ord.is_le(),
        };
        Ok(self
            .docs()
            .iter()
            .map(|d| {
                let ok = match f.kind {
                    Kind::Number { .. } => d.numbers.get(field).is_some_and(|vals| {
                        vals.iter().any(|x| {
                            checks.iter().all(|(op, v)| {
                                let bound = v
                                    .as_f64()
                                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                                    .unwrap_or(f64::NAN);
                                x.partial_cmp(&bound).is_some_and(|o| cmp_ok(o, op))
                            })
                        })
                    }),
                    _ => d.keywords.get(field).is_some_and(|vals| {
                        vals.iter().any(|x| {
                            checks
                                .iter()
                                .all(|(op, v)| cmp_ok(x.as_str().cmp(value_text(v).as_str()), op))
                        })
                    }),
                };
                ok.then_some(boost(spec))
            })
            .collect())
    }

    fn match_field(
        &self,
        field: &str,
        query: &str,
        analyzer: Option<&str>,
        operator: Option<&str>,
        boost: f32,
    ) -> Result<Result<Scores, ShardCause>, ApiError> {
        let n = self.docs().len();
        let f = match self.field(field) {
            None => return Ok(Ok(vec![None; n])),
            Some(f) if !f.indexed => return Ok(Err(self.not_indexed(field))),
            Some(f) => f.clone(),
        };
        if f.kind != Kind::Text {
            // On keyword and numeric fields `match` is a term query.
            return Ok(Ok(self
                .term(field, &f, &Value::String(query.to_string()))?
                .into_iter()
                .map(|s| s.map(|s| s * boost))
                .collect()));
        }
        let name = analyzer.unwrap_or(&f.analyzer);
        let Some(a) = self.index.analyzer(name) else {
            return Ok(Err(cause(
                "query_shard_exception",
                format!("[match] analyzer [{name}] not found"),
            )));
        };
        let terms = a.analyze(query);
        let and = match operator.map(str::to_ascii_lowercase).as_deref() {
            None | Some("or") => false,
            Some("and") => true,
            Some(other) => {
                return Err(illegal(format!("No enum constant for operator [{other}]")));
            }
        };
        let Some(stats) = self.index.snapshot.text.get(field) else {
            return Ok(Ok(vec![None; n]));
        };
        let docs_with_field = stats.doc_count as f32;
        let avgdl = if stats.doc_count == 0 {
            1.0
        } else {
            stats.total_len as f32 / docs_with_field
        };
        Ok(Ok(self
            .docs()
            .iter()
            .map(|d| {
                let (tf, len) = d.text.get(field)?;
                let mut score = 0.0;
                let mut matched = 0;
                for t in &terms {
                    if let Some(&freq) = tf.get(t) {
                        let df = stats.df.get(t).copied().unwrap_or(0) as f32;
                        score += bm25(idf(docs_with_field, df), freq as f32, *len as f32, avgdl);
                        matched += 1;
                    }
                }
                let ok = if and {
                    matched == terms.len() && matched > 0
                } else {
                    matched > 0
                };
                ok.then_some(score * boost)
            })
            .collect()))
    }

    fn bool(&self, body: &Value) -> Result<Result<Scores, ShardCause>, ApiError> {
        let o = body
            .as_object()
            .ok_or_else(|| parsing("[bool] query malformed, no start_object after query name"))?;
        for k in o.keys() {
            if ![
                "must",
                "should",
                "filter",
                "must_not",
                "minimum_should_match",
                "boost",
            ]
            .contains(&k.as_str())
            {
                return Err(parsing(format!("[bool] query does not support [{k}]")));
            }
        }
        let n = self.docs().len();
        let run = |v: Option<&Value>| -> Result<Result<Vec<Scores>, ShardCause>, ApiError> {
            let mut out = Vec::new();
            for c in clauses(v) {
                match self.eval(c)? {
                    Ok(s) => out.push(s),
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(Ok(out))
        };
        macro_rules! ok {
            ($e:expr) => {
                match $e? {
                    Ok(v) => v,
                    Err(c) => return Ok(Err(c)),
                }
            };
        }
        let must = ok!(run(o.get("must")));
        let should = ok!(run(o.get("should")));
        let filter = ok!(run(o.get("filter")));
        let must_not = ok!(run(o.get("must_not")));
        let msm = match o.get("minimum_should_match") {
            None => usize::from(must.is_empty() && filter.is_empty() && !should.is_empty()),
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
            Some(Value::String(s)) => s.trim().parse().map_err(|_| {
                parsing(format!(
                    "the simulation supports integer minimum_should_match only, not [{s}]"
                ))
            })?,
            Some(other) => {
                return Err(parsing(format!(
                    "[bool] minimum_should_match [{other}] is malformed"
                )));
            }
        };
        let b = boost(body);
        Ok(Ok((0..n)
            .map(|i| {
                if filter.iter().any(|s| s[i].is_none())
                    || must.iter().any(|s| s[i].is_none())
                    || must_not.iter().any(|s| s[i].is_some())
                {
                    return None;
                }
                let matched: Vec<f32> = should.iter().filter_map(|s| s[i]).collect();
                if matched.len() < msm {
                    return None;
                }
                let score: f32 =
                    must.iter().filter_map(|s| s[i]).sum::<f32>() + matched.iter().sum::<f32>();
                Some(score * b)
            })
            .collect()))
    }

    fn knn(&self, body: &Value) -> Result<Result<Scores, ShardCause>, ApiError> {
        let (field, spec) = one_key(body, "knn")?;
        let o = spec
            .as_object()
            .ok_or_else(|| parsing("[knn] query malformed, no start_object after field name"))?;
        for k in o.keys() {
            if !["vector", "k", "filter", "boost"].contains(&k.as_str()) {
                return Err(parsing(format!(
                    "[knn] unknown token [{k}] (the simulation supports vector, k, filter, boost)"
                )));
            }
        }
        let vector: Vec<f32> = o
            .get("vector")
            .ok_or_else(|| illegal("[knn] requires 'vector' to be non-null"))?
            .as_array()
            .and_then(|a| a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect())
            .ok_or_else(|| illegal("[knn] requires 'vector' to be an array of numbers"))?;
        let k = o.get("k").and_then(Value::as_u64).ok_or_else(|| {
            illegal("[knn] requires exactly one of k, distance or score to be set")
        })? as usize;
        if k == 0 || k > 10_000 {
            return Err(illegal(format!(
                "[knn] requires k to be in the range (0, 10000], got {k}"
            )));
        }
        let f = match self.field(field) {
            Some(f) if f.kind == Kind::KnnVector => f.clone(),
            _ => {
                return Ok(Err(cause(
                    "query_shard_exception",
                    format!("failed to create query: Field '{field}' is not knn_vector type."),
                )));
            }
        };
        if vector.len() != f.dimension {
            return Ok(Err(cause(
                "illegal_argument_exception",
                format!(
                    "Query vector has invalid dimension: {}. Dimension should be: {}",
                    vector.len(),
                    f.dimension
                ),
            )));
        }
        let n = self.docs().len();
        let allowed: Scores = match o.get("filter") {
            Some(filter) => match self.eval(filter)? {
                Ok(s) => s,
                Err(c) => return Ok(Err(c)),
            },
            None => vec![Some(0.0); n],
        };
        let qnorm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        let mut scored: Vec<(usize, f32)> = self
            .docs()
            .iter()
            .enumerate()
            .filter(|(i, _)| allowed[*i].is_some())
            .filter_map(|(i, d)| {
                let v = d.vectors.get(field)?;
                let dot: f32 = v.iter().zip(&vector).map(|(a, b)| a * b).sum();
                let score = match f.space.as_str() {
                    "cosinesimil" => {
                        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt() * qnorm;
                        let cos = if norm > 0.0 { dot / norm } else { 0.0 };
                        // d = 1 − cos, score = (2 − d) / 2.
                        (1.0 + cos) / 2.0
                    }
                    "innerproduct" => {
                        if dot >= 0.0 {
                            dot + 1.0
                        } else {
                            1.0 / (1.0 - dot)
                        }
                    }
                    _ => {
                        let d: f32 = v.iter().zip(&vector).map(|(a, b)| (a - b) * (a - b)).sum();
                        1.0 / (1.0 + d)
                    }
                };
                Some((i, score))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        let b = boost(spec);
        let mut out = vec![None; n];
        for (i, s) in scored {
            out[i] = Some(s * b);
        }
        Ok(Ok(out))
    }
}

fn boost(v: &Value) -> f32 {
    v.get("boost").and_then(Value::as_f64).unwrap_or(1.0) as f32
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `_source` filtering: `true`/`false`, a field or list of fields, or
/// `{"includes": [...], "excludes": [...]}` (top-level field names; `*` includes all).
fn filter_source(source: &Value, includes: &[String], excludes: &[String]) -> Value {
    let Some(obj) = source.as_object() else {
        return source.clone();
    };
    let keep = |k: &String| {
        (includes.is_empty() || includes.iter().any(|i| i == "*" || i == k))
            && !excludes.contains(k)
    };
    Value::Object(
        obj.iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// `None` = no `_source` at all.
fn source_spec(v: Option<&Value>) -> Option<(Vec<String>, Vec<String>)> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        }
    };
    match v {
        None | Some(Value::Bool(true)) => Some((vec![], vec![])),
        Some(Value::Bool(false)) => None,
        Some(Value::Object(o)) => Some((strings(o.get("includes")), strings(o.get("excludes")))),
        other => Some((strings(other), vec![])),
    }
}

fn search(index: &Index, body: &Value) -> Result<Value, ApiError> {
    let start = Instant::now();
    let empty = Map::new();
    let o = match body {
        Value::Null => &empty,
        Value::Object(o) => o,
        _ => return Err(parsing("request body must be an object")),
    };
    for k in o.keys() {
        if ![
            "query",
            "size",
            "from",
            "_source",
            "track_total_hits",
            "timeout",
        ]
        .contains(&k.as_str())
        {
            return Err(parsing(format!("Unknown key for a START_OBJECT in [{k}].")));
        }
    }
    let size = o.get("size").and_then(Value::as_u64).unwrap_or(10) as usize;
    let from = o.get("from").and_then(Value::as_u64).unwrap_or(0) as usize;
    if from + size > MAX_RESULT_WINDOW {
        return Err(shard_failure(
            &index.name,
            cause(
                "illegal_argument_exception",
                format!(
                    "Result window is too large, from + size must be less than or equal to: [{MAX_RESULT_WINDOW}] but was [{}].",
                    from + size
                ),
            ),
        ));
    }
    let searcher = Searcher { index };
    let scores = match o.get("query") {
        Some(q) => match searcher.eval(q)? {
            Ok(s) => s,
            Err(c) => return Err(shard_failure(&index.name, c)),
        },
        None => vec![Some(1.0); searcher.docs().len()],
    };
    let mut hits: Vec<(usize, f32)> = scores
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.map(|s| (i, s)))
        .collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let total = hits.len();
    let max_score = hits.first().map(|h| h.1);
    let spec = source_spec(o.get("_source"));
    let hits: Vec<Value> = hits
        .into_iter()
        .skip(from)
        .take(size)
        .map(|(i, score)| {
            let d = &searcher.docs()[i];
            let mut h = json!({ "_index": index.name, "_id": d.id, "_score": score });
            if let Some((inc, exc)) = &spec {
                h["_source"] = filter_source(&d.source, inc, exc);
            }
            h
        })
        .collect();
    Ok(json!({
        "took": start.elapsed().as_millis() as u64,
        "timed_out": false,
        "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
        "hits": {
            "total": { "value": total, "relation": "eq" },
            "max_score": max_score,
            "hits": hits
        }
    }))
}

// ---------------------------------------------------------------------------------------
// HTTP.

fn json_response(status: u16, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(if plus_is_space && bytes[i] == b'+' {
            b' '
        } else {
            bytes[i]
        });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_params(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| {
        simple_error(
            400,
            "parse_exception",
            format!("Failed to parse content to map: {e}"),
        )
    })
}

fn ndjson(body: &Bytes) -> Result<Vec<Value>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| illegal("request body is not UTF-8"))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l)
                .map_err(|e| illegal(format!("Malformed content at line [{}]: {e}", n + 1)))
        })
        .collect()
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let mut state = shared.state.lock();
    state.requests.push(format!("{method} {path}"));
    if state.unavailable {
        let mut c = cause(
            "cluster_block_exception",
            "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
        );
        c.insert("status".into(), 503.into());
        let e = api_error(503, c.clone(), c);
        return json_response(e.status, &e.body);
    }
    if let Some(expected) = &shared.auth
        && headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(expected)
    {
        let mut r = Response::new(Body::from("Unauthorized"));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"OpenSearch Security\""),
        );
        return r;
    }
    let params = query_params(&uri);
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let result = route(&mut state, &method, &segs, &params, &body);
    match result {
        Ok((status, value)) if method == Method::HEAD => {
            let _ = value;
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            r
        }
        Ok((status, value)) => json_response(status, &value),
        Err(e) if method == Method::HEAD => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            r
        }
        Err(e) => json_response(e.status, &e.body),
    }
    .into_response()
}

type Answer = Result<(u16, Value), ApiError>;

fn route(
    state: &mut State,
    method: &Method,
    segs: &[&str],
    params: &HashMap<String, String>,
    body: &Bytes,
) -> Answer {
    let m = method.as_str();
    match (m, segs) {
        ("GET" | "HEAD", []) => Ok((
            200,
            json!({
                "name": "fake-node",
                "cluster_name": "mangaassist-simulation",
                "version": { "distribution": "opensearch", "number": "2.19.0-simulated" },
                "tagline": "The OpenSearch Project: https://opensearch.org/"
            }),
        )),
        ("POST" | "PUT", ["_bulk"]) => bulk(state, None, params, body),
        ("POST" | "PUT", [index, "_bulk"]) => bulk(state, Some(index), params, body),
        ("GET" | "POST", ["_msearch"]) => msearch(state, None, body),
        ("GET" | "POST", [index, "_msearch"]) => msearch(state, Some(index), body),
        ("GET" | "POST", [index, "_search"]) => {
            let idx = get_index(state, index)?;
            Ok((200, search(idx, &parse_json(body)?)?))
        }
        ("GET" | "POST", [index, "_count"]) => {
            let idx = get_index(state, index)?;
            let body = parse_json(body)?;
            let query = body.get("query").cloned();
            let mut req = json!({ "size": 0 });
            if let Some(q) = query {
                req["query"] = q;
            }
            let r = search(idx, &req)?;
            Ok((
                200,
                json!({
                    "count": r["hits"]["total"]["value"],
                    "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 }
                }),
            ))
        }
        ("GET" | "POST", [index, "_refresh"]) => {
            let idx = state
                .indices
                .get_mut(*index)
                .ok_or_else(|| index_not_found(index))?;
            idx.refresh();
            Ok((
                200,
                json!({ "_shards": { "total": 1, "successful": 1, "failed": 0 } }),
            ))
        }
        ("GET" | "POST", [index, "_mget"]) => mget(state, index, params, body),
        ("GET", [index, "_doc", id]) => {
            let idx = get_index(state, index)?;
            match idx.by_id.get(*id) {
                Some(&i) => {
                    let d = &idx.live[i];
                    Ok((200, found_doc(&idx.name, d, Some((vec![], vec![])))))
                }
                None => Ok((
                    404,
                    json!({ "_index": idx.name, "_id": id, "found": false }),
                )),
            }
        }
        ("HEAD", [index]) => get_index(state, index).map(|_| (200, Value::Null)),
        ("GET", [index]) => {
            let idx = get_index(state, index)?;
            Ok((
                200,
                json!({ idx.name.clone(): {
                    "aliases": {},
                    "mappings": idx.created.get("mappings").cloned().unwrap_or(json!({})),
                    "settings": idx.created.get("settings").cloned().unwrap_or(json!({}))
                }}),
            ))
        }
        ("PUT", [index]) => {
            if state.indices.contains_key(*index) {
                let mut c = cause(
                    "resource_already_exists_exception",
                    format!("index [{index}/simulated] already exists"),
                );
                c.insert("index".into(), (*index).into());
                c.insert("index_uuid".into(), "simulated".into());
                return Err(api_error(400, c.clone(), c));
            }
            let body = parse_json(body)?;
            let idx = create_index(index, &body)?;
            state.indices.insert(index.to_string(), idx);
            Ok((
                200,
                json!({ "acknowledged": true, "shards_acknowledged": true, "index": index }),
            ))
        }
        ("DELETE", [index]) => match state.indices.remove(*index) {
            Some(_) => Ok((200, json!({ "acknowledged": true }))),
            None => Err(index_not_found(index)),
        },
        _ => Err(ApiError {
            status: 400,
            body: json!({
                "error": format!("no handler found for uri [/{}] and method [{m}] (not part of the simulation)", segs.join("/"))
            }),
        }),
    }
}

fn get_index<'a>(state: &'a State, name: &str) -> Result<&'a Index, ApiError> {
    state.indices.get(name).ok_or_else(|| index_not_found(name))
}

fn found_doc(index: &str, d: &Doc, source: Option<(Vec<String>, Vec<String>)>) -> Value {
    let mut v = json!({
        "_index": index,
        "_id": d.id,
        "_version": d.version,
        "_seq_no": d.seq_no,
        "_primary_term": 1,
        "found": true
    });
    if let Some((inc, exc)) = source {
        v["_source"] = filter_source(&d.source, &inc, &exc);
    }
    v
}

fn bulk(
    state: &mut State,
    path_index: Option<&str>,
    params: &HashMap<String, String>,
    body: &Bytes,
) -> Answer {
    let start = Instant::now();
    let lines = ndjson(body)?;
    if lines.is_empty() {
        return Err(simple_error(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        ));
    }
    let mut items = Vec::new();
    let mut errors = false;
    let mut touched: HashSet<String> = HashSet::new();
    let mut i = 0;
    while i < lines.len() {
        let (action, meta) = one_key(&lines[i], "bulk").map_err(|_| {
            illegal(format!(
                "Malformed action/metadata line [{}], expected START_OBJECT or END_OBJECT",
                i + 1
            ))
        })?;
        let action = action.to_string();
        i += 1;
        if !["index", "create", "delete", "update"].contains(&action.as_str()) {
            return Err(illegal(format!(
                "Malformed action/metadata line [{i}], expected one of [create, delete, index, update] but found [{action}]"
            )));
        }
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(path_index)
            .ok_or_else(|| {
                simple_error(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing;",
                )
            })?
            .to_string();
        let source = if action == "delete" {
            None
        } else {
            let s = lines.get(i).cloned().ok_or_else(|| {
                illegal(format!("The bulk request must be terminated by a newline [\\n] (action line {i} has no source)"))
            })?;
            i += 1;
            Some(s)
        };
        state.seq += 1;
        let id = meta
            .get("_id")
            .map(value_text)
            .unwrap_or_else(|| format!("simulated-{}", state.seq));
        let seq = state.seq;
        let outcome = bulk_item(state, &action, &index, &id, source.as_ref(), seq);
        let item = match outcome {
            Ok(v) => {
                touched.insert(index.clone());
                v
            }
            Err((status, error)) => {
                errors = true;
                json!({ "_index": index, "_id": id, "status": status, "error": error })
            }
        };
        items.push(json!({ action: item }));
    }
    if matches!(
        params.get("refresh").map(String::as_str),
        Some("" | "true" | "wait_for")
    ) {
        for name in touched {
            if let Some(idx) = state.indices.get_mut(&name) {
                idx.refresh();
            }
        }
    }
    Ok((
        200,
        json!({ "took": start.elapsed().as_millis() as u64, "errors": errors, "items": items }),
    ))
}

fn bulk_item(
    state: &mut State,
    action: &str,
    index: &str,
    id: &str,
    source: Option<&Value>,
    seq: u64,
) -> Result<Value, (u16, Map<String, Value>)> {
    let Some(idx) = state.indices.get_mut(index) else {
        // Real OpenSearch would create the index (action.auto_create_index); the
        // simulation answers as a cluster with auto-creation off does.
        let e = index_not_found(index);
        let inner = e.body["error"]["root_cause"][0]
            .as_object()
            .cloned()
            .unwrap_or_default();
        return Err((404, inner));
    };
    let shards = json!({ "total": 1, "successful": 1, "failed": 0 });
    let existing = idx.by_id.get(id).copied();
    match action {
        "delete" => {
            let Some(pos) = existing else {
                return Ok(
                    json!({ "_index": index, "_id": id, "_version": 1, "result": "not_found",
                    "_shards": shards, "_seq_no": seq, "_primary_term": 1, "status": 404 }),
                );
            };
            let version = idx.live[pos].version + 1;
            idx.live.remove(pos);
            idx.by_id = idx
                .live
                .iter()
                .enumerate()
                .map(|(i, d)| (d.id.clone(), i))
                .collect();
            Ok(
                json!({ "_index": index, "_id": id, "_version": version, "result": "deleted",
                "_shards": shards, "_seq_no": seq, "_primary_term": 1, "status": 200 }),
            )
        }
        "update" => Err((
            400,
            cause(
                "illegal_argument_exception",
                "the simulation does not implement bulk update",
            ),
        )),
        _ => {
            let source = source.cloned().unwrap_or(Value::Null);
            let mut doc = idx.parse_doc(id, &source).map_err(|c| (400, c))?;
            doc.seq_no = seq;
            match existing {
                Some(pos) if action == "create" => {
                    let mut c = cause(
                        "version_conflict_engine_exception",
                        format!(
                            "[{id}]: version conflict, document already exists (current version [{}])",
                            idx.live[pos].version
                        ),
                    );
                    c.insert("index".into(), index.into());
                    Err((409, c))
                }
                Some(pos) => {
                    doc.version = idx.live[pos].version + 1;
                    let version = doc.version;
                    idx.live[pos] = doc;
                    Ok(
                        json!({ "_index": index, "_id": id, "_version": version, "result": "updated",
                        "_shards": shards, "_seq_no": seq, "_primary_term": 1, "status": 200 }),
                    )
                }
                None => {
                    idx.by_id.insert(id.to_string(), idx.live.len());
                    idx.live.push(doc);
                    Ok(
                        json!({ "_index": index, "_id": id, "_version": 1, "result": "created",
                        "_shards": shards, "_seq_no": seq, "_primary_term": 1, "status": 201 }),
                    )
                }
            }
        }
    }
}

fn msearch(state: &mut State, path_index: Option<&str>, body: &Bytes) -> Answer {
    let start = Instant::now();
    let lines = ndjson(body)?;
    if lines.is_empty() || lines.len() % 2 != 0 {
        return Err(simple_error(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added; (each search needs a header line and a body line)",
        ));
    }
    let mut responses = Vec::new();
    for pair in lines.chunks(2) {
        let header = &pair[0];
        let index = match header.get("index") {
            Some(Value::String(s)) => Some(s.as_str()),
            Some(Value::Array(a)) if a.len() == 1 => a[0].as_str(),
            Some(_) => {
                return Err(illegal(
                    "the simulation searches one index per msearch item",
                ));
            }
            None => path_index,
        };
        let result = match index {
            None => Err(simple_error(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: no index specified;",
            )),
            Some(name) => get_index(state, name).and_then(|idx| search(idx, &pair[1])),
        };
        responses.push(match result {
            Ok(mut r) => {
                r["status"] = 200.into();
                r
            }
            Err(e) => e.body,
        });
    }
    Ok((
        200,
        json!({ "took": start.elapsed().as_millis() as u64, "responses": responses }),
    ))
}

fn mget(state: &mut State, index: &str, params: &HashMap<String, String>, body: &Bytes) -> Answer {
    let body = parse_json(body)?;
    let ids: Vec<String> = if let Some(ids) = body.get("ids") {
        ids.as_array()
            .ok_or_else(|| parsing("[mget] ids must be an array"))?
            .iter()
            .map(value_text)
            .collect()
    } else if let Some(docs) = body.get("docs").and_then(Value::as_array) {
        docs.iter()
            .filter_map(|d| d.get("_id").map(value_text))
            .collect()
    } else {
        vec![]
    };
    if ids.is_empty() {
        return Err(simple_error(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no documents to get;",
        ));
    }
    let list = |k: &str| -> Vec<String> {
        params
            .get(k)
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let source = match params.get("_source").map(String::as_str) {
        Some("false") => None,
        _ => Some((list("_source_includes"), list("_source_excludes"))),
    };
    let docs: Vec<Value> = match state.indices.get(index) {
        None => {
            let e = index_not_found(index);
            ids.iter()
                .map(|id| json!({ "_index": index, "_id": id, "error": e.body["error"] }))
                .collect()
        }
        // Realtime: documents are visible before a refresh.
        Some(idx) => ids
            .iter()
            .map(|id| match idx.by_id.get(id) {
                Some(&i) => found_doc(index, &idx.live[i], source.clone()),
                None => json!({ "_index": index, "_id": id, "found": false }),
            })
            .collect(),
    };
    Ok((200, json!({ "docs": docs })))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn analysis_matches_the_standard_tokenizer_and_cjk_bigram() {
        let a = Analyzer {
            char_maps: vec![],
            tokenizer: Tokenizer::Standard,
            filters: vec![
                TokenFilter::Lowercase,
                TokenFilter::Stop(["the".to_string()].into_iter().collect()),
                TokenFilter::CjkBigram { unigrams: true },
            ],
        };
        assert_eq!(
            a.analyze("The One-Piece, Vol. 12!"),
            vec!["one", "piece", "vol", "12"]
        );
        assert_eq!(a.analyze("don't"), vec!["don't"]);
        assert_eq!(
            a.analyze("manga_jp ships 3,500 yen, v1.5 U.S. x: y"),
            vec!["manga_jp", "ships", "3,500", "yen", "v1.5", "u.s", "x", "y"]
        );
        let mapped = Analyzer {
            char_maps: vec![vec![
                parse_mapping_rule("' => \\u0020").unwrap(),
                parse_mapping_rule("_ => \\u0020").unwrap(),
            ]],
            ..a.clone()
        };
        assert_eq!(
            mapped.analyze("Chi's manga_jp"),
            vec!["chi", "s", "manga", "jp"]
        );
        assert_eq!(
            a.analyze("進撃の巨人 x"),
            vec![
                "進", "進撃", "撃", "撃の", "の", "の巨", "巨", "巨人", "人", "x"
            ]
        );
        let b = Analyzer {
            char_maps: vec![],
            tokenizer: Tokenizer::Standard,
            filters: vec![TokenFilter::CjkBigram { unigrams: false }],
        };
        assert_eq!(b.analyze("進撃 a 人"), vec!["進撃", "a", "人"]);
    }

    #[test]
    fn bm25_prefers_rarer_terms_and_shorter_fields() {
        assert!(idf(10.0, 1.0) > idf(10.0, 5.0));
        assert!(bm25(1.0, 1.0, 5.0, 10.0) > bm25(1.0, 1.0, 20.0, 10.0));
    }
}
