//! The search behind the gRPC service: a small trait so another engine (OpenSearch k-NN)
//! can replace the in-process indexes without touching the service, and the in-process
//! implementation (HNSW + BM25 fused with reciprocal rank fusion).

use std::{collections::HashMap, sync::Arc};

use mangaassist_catalog::{Catalog, Document, Product};
use mangaassist_proto::v1 as pb;

use crate::{
    RetrievalError,
    ann::{Ann, sort_desc},
    bm25::Bm25,
    text,
};

/// Product constraints applied before the top k is taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductFilter {
    /// Any of these (lower-case); empty = all.
    pub genres: Vec<String>,
    /// Lower-case; `None` = all.
    pub demographic: Option<String>,
    pub in_stock_only: bool,
}

impl ProductFilter {
    pub fn is_empty(&self) -> bool {
        self.genres.is_empty() && self.demographic.is_none() && !self.in_stock_only
    }

    pub fn matches(&self, p: &Product) -> bool {
        self.matches_with_stock(p, p.stock)
    }

    /// [`Self::matches`] with the product's live quantity in place of the catalog's.
    pub fn matches_with_stock(&self, p: &Product, stock: u32) -> bool {
        (!self.in_stock_only || stock > 0)
            && self
                .demographic
                .as_deref()
                .is_none_or(|d| p.demographic.eq_ignore_ascii_case(d))
            && (self.genres.is_empty()
                || p.genres
                    .iter()
                    .any(|g| self.genres.iter().any(|w| g.eq_ignore_ascii_case(w))))
    }
}

/// A validated search: the store exists, the vector matches the backend's model, the
/// counts are capped.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub store_id: String,
    pub text: String,
    pub vector: Arc<[f32]>,
    pub filter: ProductFilter,
    pub top_k: usize,
    pub top_k_documents: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchResults {
    pub products: Vec<pb::ProductHit>,
    pub documents: Vec<pb::DocumentHit>,
}

/// What the retrieval service needs from a search engine.
#[tonic::async_trait]
pub trait SearchBackend: Send + Sync + std::fmt::Debug + 'static {
    /// Stores that can be searched, sorted.
    fn stores(&self) -> &[String];

    async fn search(&self, query: SearchQuery) -> Result<SearchResults, RetrievalError>;

    /// The products of `store_id` with these ids, in request order, and the ids not found.
    async fn get_products(
        &self,
        store_id: &str,
        ids: &[String],
    ) -> Result<(Vec<pb::Product>, Vec<String>), RetrievalError>;
}

/// Fusion and over-fetch parameters.
#[derive(Debug, Clone, Copy)]
pub struct HybridParams {
    /// Taken from each ranking before fusion.
    pub candidates: usize,
    pub rrf_k: f32,
    /// HNSW search breadth; the graph is built to return at least 4 × candidates so that
    /// filters applied afterwards still leave enough.
    pub ef_search: usize,
    /// Most products of one series in a result (0 = no limit).
    pub max_per_series: usize,
}

impl From<&mangaassist_config::RetrievalSettings> for HybridParams {
    fn from(s: &mangaassist_config::RetrievalSettings) -> Self {
        Self {
            candidates: (s.candidates as usize).max(1),
            rrf_k: s.rrf_k,
            ef_search: s.ef_search,
            max_per_series: s.max_per_series as usize,
        }
    }
}

/// One searchable collection: items, their vectors in an HNSW graph, and a BM25 index.
#[derive(Debug)]
struct Corpus<T> {
    items: Vec<T>,
    ann: Ann,
    bm25: Bm25,
}

/// Collections up to this size are searched by an exact scan instead of the HNSW graph.
const EXACT_SCAN_MAX: usize = 4096;

/// Lexical hits scoring below this fraction of the best one are left out of the fusion.
const LEXICAL_FLOOR: f32 = 0.3;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scored {
    pub(crate) idx: usize,
    pub(crate) fused: f32,
    pub(crate) vector: f32,
    pub(crate) lexical: f32,
}

impl Scored {
    /// `product` (the item at `idx`) as a hit carrying these scores.
    pub(crate) fn product_hit(&self, product: pb::Product) -> pb::ProductHit {
        pb::ProductHit {
            product: Some(product),
            score: self.fused,
            vector_score: self.vector,
            lexical_score: self.lexical,
        }
    }

    /// `document` (the item at `idx`) as a hit carrying these scores.
    pub(crate) fn document_hit(&self, document: pb::Document) -> pb::DocumentHit {
        pb::DocumentHit {
            document: Some(document),
            score: self.fused,
            vector_score: self.vector,
            lexical_score: self.lexical,
        }
    }
}

impl<T> Corpus<T> {
    fn new(items: Vec<(T, Arc<[f32]>)>, lexical: impl Fn(&T) -> String, ef: usize) -> Self {
        let texts: Vec<String> = items.iter().map(|(t, _)| lexical(t)).collect();
        let (items, vectors): (Vec<T>, Vec<Arc<[f32]>>) = items.into_iter().unzip();
        Self {
            items,
            ann: Ann::build(vectors, ef),
            bm25: Bm25::new(&texts),
        }
    }

    /// Reciprocal rank fusion of the vector and BM25 rankings over the items `keep`
    /// accepts, best first (every fused candidate: the caller cuts to `k`); `filtered`
    /// says whether `keep` can reject anything.
    fn hybrid(
        &self,
        bm25: &[f32],
        vector: &[f32],
        k: usize,
        p: &HybridParams,
        filtered: bool,
        keep: impl Fn(&T) -> bool,
    ) -> Vec<Scored> {
        if k == 0 || self.items.is_empty() {
            return vec![];
        }
        let cands = p.candidates.max(k);
        let keep_idx = |i: usize| keep(&self.items[i]);

        if self.items.len() <= EXACT_SCAN_MAX {
            // A store's few hundred items are scanned exactly: at the breadth the filters
            // need (ef ≥ 200) the graph visits most of them anyway, with heap and allocation
            // overhead on top (a profile under load showed the graph search as the retrieval
            // daemon's largest cost), and the scan is exact.
            let by_vector = self.ann.brute_force(vector, cands, keep_idx);
            return self.fuse_with_text(bm25, vector, &by_vector, cands, p, filtered, &keep);
        }
        let mut by_vector: Vec<(usize, f32)> = self
            .ann
            .search(vector)
            .into_iter()
            .filter(|(i, _)| !filtered || keep_idx(*i))
            .take(cands)
            .collect();
        let eligible = if filtered {
            (0..self.items.len()).filter(|&i| keep_idx(i)).count()
        } else {
            self.items.len()
        };
        if by_vector.len() < cands.min(eligible) {
            // The filter removed too much of the ANN over-fetch: a store is small enough
            // that the exact scan costs well under a millisecond.
            by_vector = self.ann.brute_force(vector, cands, keep_idx);
        }
        self.fuse_with_text(bm25, vector, &by_vector, cands, p, filtered, &keep)
    }

    /// The BM25 ranking of the items `keep` accepts, fused with `by_vector`.
    #[allow(clippy::too_many_arguments)]
    fn fuse_with_text(
        &self,
        bm25: &[f32],
        vector: &[f32],
        by_vector: &[(usize, f32)],
        cands: usize,
        p: &HybridParams,
        filtered: bool,
        keep: &impl Fn(&T) -> bool,
    ) -> Vec<Scored> {
        let keep_idx = |i: usize| keep(&self.items[i]);
        let mut by_text: Vec<(usize, f32)> = bm25
            .iter()
            .enumerate()
            .filter(|(i, s)| **s > 0.0 && (!filtered || keep_idx(*i)))
            .map(|(i, s)| (i, *s))
            .collect();
        sort_desc(&mut by_text);
        apply_lexical_floor(&mut by_text);
        by_text.truncate(cands);

        fuse(
            by_vector,
            &by_text,
            p.rrf_k,
            |idx| crate::ann::dot(vector, self.ann.vector(idx)),
            |idx| bm25[idx],
        )
    }
}

/// Every backend takes one vector per catalog item, paired by position: a count that
/// differs would pair items with another item's vector.
pub(crate) fn check_vector_counts(
    catalog: &Catalog,
    product_vectors: &[Arc<[f32]>],
    document_vectors: &[Arc<[f32]>],
) -> Result<(), RetrievalError> {
    if product_vectors.len() != catalog.products.len()
        || document_vectors.len() != catalog.documents.len()
    {
        return Err(RetrievalError::Internal(
            "catalog and vector counts differ".into(),
        ));
    }
    Ok(())
}

/// Drops the lexical hits (sorted best first) far below the best one: they share only an
/// incidental word with the query ("one" in "One Piece"), and in a rank-based fusion they
/// would still earn nearly as much as a strong match at the same rank.
pub(crate) fn apply_lexical_floor(by_text: &mut Vec<(usize, f32)>) {
    let floor = by_text
        .first()
        .map_or(0.0, |(_, best)| best * LEXICAL_FLOOR);
    by_text.retain(|(_, s)| *s >= floor);
}

/// Reciprocal rank fusion of two rankings (best first), sorted by fused score, then
/// vector score, then index so equal scores rank deterministically.
pub(crate) fn fuse(
    by_vector: &[(usize, f32)],
    by_text: &[(usize, f32)],
    rrf_k: f32,
    vector: impl Fn(usize) -> f32,
    lexical: impl Fn(usize) -> f32,
) -> Vec<Scored> {
    let mut fused: HashMap<usize, f32> = HashMap::new();
    for list in [by_vector, by_text] {
        for (rank, (i, _)) in list.iter().enumerate() {
            *fused.entry(*i).or_default() += 1.0 / (rrf_k + rank as f32 + 1.0);
        }
    }
    let mut out: Vec<Scored> = fused
        .into_iter()
        .map(|(idx, f)| Scored {
            idx,
            fused: f,
            vector: vector(idx),
            lexical: lexical(idx),
        })
        .collect();
    out.sort_by(|a, b| {
        b.fused
            .total_cmp(&a.fused)
            .then(b.vector.total_cmp(&a.vector))
            .then(a.idx.cmp(&b.idx))
    });
    out
}

/// The first `k` of `ranked`, taking at most `per_group` from any group before allowing
/// more; the order within the result stays the ranking order.
pub(crate) fn diversify<'a>(
    ranked: Vec<Scored>,
    k: usize,
    per_group: usize,
    group: impl Fn(&Scored) -> &'a str,
) -> Vec<Scored> {
    if per_group == 0 || ranked.len() <= k {
        let mut ranked = ranked;
        ranked.truncate(k);
        return ranked;
    }
    let mut taken: HashMap<&str, usize> = HashMap::new();
    let mut chosen = vec![false; ranked.len()];
    let mut left = k;
    for (i, s) in ranked.iter().enumerate() {
        if left == 0 {
            break;
        }
        let n = taken.entry(group(s)).or_default();
        if *n < per_group {
            *n += 1;
            chosen[i] = true;
            left -= 1;
        }
    }
    for c in chosen.iter_mut() {
        if left == 0 {
            break;
        }
        if !*c {
            *c = true;
            left -= 1;
        }
    }
    ranked
        .into_iter()
        .zip(chosen)
        .filter_map(|(s, c)| c.then_some(s))
        .collect()
}

#[derive(Debug)]
struct StoreIndex {
    products: Corpus<Product>,
    documents: Corpus<Document>,
    by_id: HashMap<String, usize>,
    series: Vec<Series>,
}

/// A series name as tokens, its volumes, and their mean vector.
#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) tokens: Vec<String>,
    /// Every name the series goes by as tokens: the English one (`tokens`), the Japanese
    /// storefront's title and its kana reading; duplicates left out.
    pub(crate) aliases: Vec<Vec<String>>,
    /// What a misspelled query word may be corrected to: each alias word of four or more
    /// letters, and each multi-word alias written as one word, as characters (built once so a
    /// query allocates nothing to compare).
    pub(crate) spellings: Vec<(Vec<char>, Vec<String>)>,
    /// Positions of the volumes among the products the series were built from.
    pub(crate) members: Vec<usize>,
    pub(crate) centroid: Vec<f32>,
}

impl Series {
    /// The aliases found as a contiguous run in `tokens`.
    pub(crate) fn found_in<'a>(
        &'a self,
        tokens: &'a [String],
    ) -> impl Iterator<Item = &'a [String]> + 'a {
        self.aliases
            .iter()
            .filter(move |a| !a.is_empty() && tokens.windows(a.len()).any(|w| w == a.as_slice()))
            .map(Vec::as_slice)
    }
}

/// The series of one store's products (`products[i]` with its vector), sorted by tokens.
pub(crate) fn build_series(products: &[(&Product, &[f32])]) -> Vec<Series> {
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (p, _)) in products.iter().enumerate() {
        groups.entry(p.series.as_str()).or_default().push(i);
    }
    let mut series: Vec<Series> = groups
        .into_iter()
        .map(|(name, members)| {
            let mut centroid = vec![0.0f32; products[members[0]].1.len()];
            for &i in &members {
                let v = products[i].1;
                centroid.iter_mut().zip(v.iter()).for_each(|(c, x)| *c += x);
            }
            mangaassist_embedding::normalize(&mut centroid);
            let first = products[members[0]].0;
            let tokens = text::tokenize(name);
            let mut aliases = vec![tokens.clone()];
            for other in [&first.series_ja, &first.series_reading]
                .into_iter()
                .flatten()
            {
                let t = text::tokenize(other);
                if !t.is_empty() && !aliases.contains(&t) {
                    aliases.push(t);
                }
            }
            let mut spellings = Vec::new();
            for alias in &aliases {
                if alias.len() > 1 {
                    spellings.push((alias.concat().chars().collect(), alias.clone()));
                }
                for w in alias.iter().filter(|w| w.chars().count() >= 4) {
                    spellings.push((w.chars().collect(), vec![w.clone()]));
                }
            }
            Series {
                name: name.to_string(),
                tokens,
                aliases,
                spellings,
                members,
                centroid,
            }
        })
        .collect();
    series.sort_by(|a, b| a.tokens.cmp(&b.tokens).then(a.name.cmp(&b.name)));
    series
}

/// The series one of whose names appears in the query tokens.
pub(crate) fn named_series<'a>(series: &'a [Series], tokens: &[String]) -> Vec<&'a Series> {
    series
        .iter()
        .filter(|s| s.found_in(tokens).next().is_some())
        .collect()
}

/// The query tokens without the named series' names (they score as phrases for those series
/// only).
pub(crate) fn without_series(tokens: &[String], named: &[&Series]) -> Vec<String> {
    let mut rest: Vec<String> = tokens.to_vec();
    for alias in named.iter().flat_map(|s| s.aliases.iter()) {
        let n = alias.len();
        if n == 0 {
            continue;
        }
        let mut i = 0;
        while i + n <= rest.len() {
            if rest[i..i + n] == alias[..] {
                rest.drain(i..i + n);
            } else {
                i += 1;
            }
        }
    }
    rest
}

/// Edit distance with adjacent transpositions (optimal string alignment), stopping early
/// once it exceeds `max`: "naurto" is 1 from "naruto".
fn edit_distance(a: &[char], b: &[char], max: usize) -> usize {
    if a.len().abs_diff(b.len()) > max {
        return max + 1;
    }
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
            row_min = row_min.min(d);
        }
        if row_min > max {
            return max + 1;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Misspelled or run-together series names corrected: a query word of four or more letters
/// within one edit (two from eight letters) of a word of a series name, or of a whole name
/// written as one word ("chainsawman"), becomes that word or name. The correction is kept
/// only when it makes the query name a series it did not name before, so an ordinary word
/// that happens to sit near a title word ("live" and "love") is left alone.
pub(crate) fn correct_series_names(series: &[Series], tokens: &[String]) -> Option<Vec<String>> {
    let allowed = |len: usize| if len >= 8 { 2 } else { 1 };
    let mut corrected: Vec<String> = Vec::with_capacity(tokens.len());
    let mut changed = false;
    for t in tokens {
        // Cheapest test first: most query words are short or not plain ASCII letters, and
        // only the rest are looked up among every alias word of the store.
        let chars: Vec<char> = t.chars().collect();
        if chars.len() < 4
            || !chars.iter().all(|c| c.is_ascii_alphabetic())
            || series
                .iter()
                .flat_map(|s| s.aliases.iter())
                .any(|a| a.iter().any(|w| w == t))
        {
            corrected.push(t.clone());
            continue;
        }
        let max = allowed(chars.len());
        let mut best: Option<(usize, &Vec<String>)> = None;
        for (form, words) in series.iter().flat_map(|s| s.spellings.iter()) {
            if form.len().abs_diff(chars.len()) > max {
                continue;
            }
            let d = edit_distance(&chars, form, max);
            if d <= max && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, words));
            }
        }
        match best {
            Some((_, words)) => {
                changed = true;
                corrected.extend(words.iter().cloned());
            }
            None => corrected.push(t.clone()),
        }
    }
    if !changed {
        return None;
    }
    let before = named_series(series, tokens).len();
    (named_series(series, &corrected).len() > before).then_some(corrected)
}

/// The volume a query asks for: "vol 3", "vol.3", "volume 3", "#3", "3巻", "第3巻", "3かん",
/// or a number right after a series name it names ("fruits basket 1", "進撃の巨人 1").
pub(crate) fn requested_volume(text: &str, tokens: &[String], named: &[&Series]) -> Option<u32> {
    let lower = text.to_lowercase();
    let number_at = |s: &str| -> Option<u32> {
        let digits: String = s
            .trim_start_matches([' ', '.', '#', '-'])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok().filter(|&n| (1..=999).contains(&n))
    };
    for marker in ["volume", "vol", "#"] {
        for (i, _) in lower.match_indices(marker) {
            let before_ok = marker == "#"
                || lower[..i]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !c.is_alphanumeric());
            if before_ok && let Some(n) = number_at(&lower[i + marker.len()..]) {
                return Some(n);
            }
        }
    }
    for marker in ["巻", "かん"] {
        for (i, _) in lower.match_indices(marker) {
            let digits: String = lower[..i]
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if let Ok(n) = digits.parse::<u32>()
                && (1..=999).contains(&n)
            {
                return Some(n);
            }
        }
    }
    for s in named {
        for alias in &s.aliases {
            let n = alias.len();
            for (i, w) in tokens.windows(n).enumerate() {
                if w == alias.as_slice()
                    && let Some(next) = tokens.get(i + n)
                    && let Ok(v) = next.parse::<u32>()
                    && (1..=999).contains(&v)
                {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// `ranked` with the requested volume of a named series moved to the front (keeping the
/// order otherwise): a shopper who asks for "Berserk vol 1" means that book, not the three
/// Berserk volumes whose synopses happen to score higher.
pub(crate) fn prefer_volume<'a>(
    ranked: &mut [Scored],
    volume: Option<u32>,
    named: &[&Series],
    product: impl Fn(usize) -> (u32, &'a str),
) {
    let Some(volume) = volume else { return };
    if named.is_empty() {
        return;
    }
    ranked.sort_by_key(|s| {
        let (v, series) = product(s.idx);
        let wanted = v == volume && named.iter().any(|n| n.name == series);
        !wanted
    });
}

/// The query vector moved towards the series the query names. "Manga like One Piece"
/// embeds close to "manga" in general; the volumes of One Piece say what it is like
/// (query expansion with known-item feedback).
pub(crate) fn expand(named: &[&Series], vector: &[f32]) -> Option<Vec<f32>> {
    if named.is_empty() {
        return None;
    }
    let weight = SERIES_WEIGHT / named.len() as f32;
    let mut v = vector.to_vec();
    for s in named {
        for (x, c) in v.iter_mut().zip(&s.centroid) {
            *x += weight * c;
        }
    }
    mangaassist_embedding::normalize(&mut v);
    Some(v)
}

impl StoreIndex {
    /// BM25 of every product where a named series counts as a phrase: its words score
    /// only for that series' volumes, so "like One Piece" does not pull in One-Punch Man
    /// through "one".
    fn product_lexical(&self, tokens: &[String], named: &[&Series]) -> Vec<f32> {
        let rest = without_series(tokens, named);
        let mut scores = self.products.bm25.scores_tokens(&rest);
        for s in named {
            for alias in s.found_in(tokens) {
                let phrase = self.products.bm25.scores_tokens(alias);
                for &i in &s.members {
                    scores[i] += phrase[i];
                }
            }
        }
        scores
    }
}

/// Weight of the named series' centroid against the query vector (which has weight 1).
const SERIES_WEIGHT: f32 = 1.0;

/// Everything in memory: per store, an HNSW graph and a BM25 index for products and
/// another pair for documents (documents for store `*` are in every store).
#[derive(Debug)]
pub struct LocalBackend {
    stores: Vec<String>,
    by_store: HashMap<String, StoreIndex>,
    params: HybridParams,
    /// Live stock for the in-stock filter; `None` = the catalog's values.
    inventory: Option<mangaassist_inventory::Inventory>,
}

impl LocalBackend {
    /// `product_vectors[i]` belongs to `catalog.products[i]`, likewise for documents.
    /// CPU-bound (graph construction): call from a blocking context.
    pub fn build(
        catalog: &Catalog,
        product_vectors: &[Arc<[f32]>],
        document_vectors: &[Arc<[f32]>],
        params: HybridParams,
    ) -> Result<Self, RetrievalError> {
        check_vector_counts(catalog, product_vectors, document_vectors)?;
        let ef = params.ef_search.max(4 * params.candidates.max(50));
        let stores = catalog.stores();
        let mut by_store = HashMap::new();
        for store in &stores {
            let products: Vec<(Product, Arc<[f32]>)> = catalog
                .products
                .iter()
                .zip(product_vectors)
                .filter(|(p, _)| &p.store_id == store)
                .map(|(p, v)| (p.clone(), v.clone()))
                .collect();
            let documents: Vec<(Document, Arc<[f32]>)> = catalog
                .documents
                .iter()
                .zip(document_vectors)
                .filter(|(d, _)| &d.store_id == store || d.store_id == "*")
                .map(|(d, v)| (d.clone(), v.clone()))
                .collect();
            let by_id = products
                .iter()
                .enumerate()
                .map(|(i, (p, _))| (p.id.clone(), i))
                .collect();
            let refs: Vec<(&Product, &[f32])> = products.iter().map(|(p, v)| (p, &v[..])).collect();
            let series = build_series(&refs);
            by_store.insert(
                store.clone(),
                StoreIndex {
                    products: Corpus::new(products, text::product_lexical_text, ef),
                    documents: Corpus::new(documents, text::document_lexical_text, ef),
                    by_id,
                    series,
                },
            );
        }
        Ok(Self {
            stores,
            by_store,
            params,
            inventory: None,
        })
    }

    /// Filters by the live stock of `inventory` instead of the catalog's.
    pub fn with_inventory(mut self, inventory: mangaassist_inventory::Inventory) -> Self {
        self.inventory = Some(inventory);
        self
    }

    fn store(&self, store_id: &str) -> Result<&StoreIndex, RetrievalError> {
        self.by_store
            .get(store_id)
            .ok_or_else(|| RetrievalError::unknown_store(store_id, &self.stores))
    }

    /// The synchronous search (well under a millisecond for a store of a few hundred
    /// products, so it runs on the async thread).
    pub fn search_now(&self, q: &SearchQuery) -> Result<SearchResults, RetrievalError> {
        let store = self.store(&q.store_id)?;
        let filtered = !q.filter.is_empty();
        let mut tokens = text::query_tokens(&q.text);
        if let Some(corrected) = correct_series_names(&store.series, &tokens) {
            tokens = corrected;
        }
        let named = named_series(&store.series, &tokens);
        let volume = requested_volume(&q.text, &tokens, &named);
        let expanded = expand(&named, &q.vector);
        let lexical = store.product_lexical(&tokens, &named);
        let mut products = store.products.hybrid(
            &lexical,
            expanded.as_deref().unwrap_or(&q.vector),
            q.top_k,
            &self.params,
            filtered,
            |p| match &self.inventory {
                Some(inv) if q.filter.in_stock_only => {
                    let live = inv.current(&p.store_id, &p.id).map_or(p.stock, |c| c.0);
                    q.filter.matches_with_stock(p, live)
                }
                _ => q.filter.matches(p),
            },
        );
        prefer_volume(&mut products, volume, &named, |idx| {
            let p = &store.products.items[idx];
            (p.volume, p.series.as_str())
        });
        let products = diversify(products, q.top_k, self.params.max_per_series, |s| {
            store.products.items[s.idx].series.as_str()
        })
        .into_iter()
        .map(|s| s.product_hit((&store.products.items[s.idx]).into()))
        .collect();
        let documents = store
            .documents
            .hybrid(
                &store
                    .documents
                    .bm25
                    .scores_tokens(&text::document_query_tokens(&q.text, &tokens)),
                &q.vector,
                q.top_k_documents,
                &self.params,
                false,
                |_| true,
            )
            .into_iter()
            .take(q.top_k_documents)
            .map(|s| s.document_hit((&store.documents.items[s.idx]).into()))
            .collect();
        Ok(SearchResults {
            products,
            documents,
        })
    }

    #[cfg(test)]
    pub(crate) fn product_ann(&self, store_id: &str) -> Option<&Ann> {
        self.by_store.get(store_id).map(|s| &s.products.ann)
    }
}

#[tonic::async_trait]
impl SearchBackend for LocalBackend {
    fn stores(&self) -> &[String] {
        &self.stores
    }

    async fn search(&self, query: SearchQuery) -> Result<SearchResults, RetrievalError> {
        self.search_now(&query)
    }

    async fn get_products(
        &self,
        store_id: &str,
        ids: &[String],
    ) -> Result<(Vec<pb::Product>, Vec<String>), RetrievalError> {
        let store = self.store(store_id)?;
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for id in ids {
            match store.by_id.get(id) {
                Some(&i) => found.push((&store.products.items[i]).into()),
                None => missing.push(id.clone()),
            }
        }
        Ok((found, missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diversify_caps_each_group_then_fills_in_rank_order() {
        let groups = ["a", "a", "a", "b", "a", "c"];
        let ranked: Vec<Scored> = (0..groups.len())
            .map(|idx| Scored {
                idx,
                fused: 1.0 - idx as f32 / 10.0,
                vector: 0.0,
                lexical: 0.0,
            })
            .collect();
        let pick = |k, per| -> Vec<usize> {
            diversify(ranked.clone(), k, per, |s| groups[s.idx])
                .iter()
                .map(|s| s.idx)
                .collect()
        };
        assert_eq!(pick(4, 2), vec![0, 1, 3, 5]);
        assert_eq!(pick(5, 1), vec![0, 1, 2, 3, 5]);
        assert_eq!(pick(3, 0), vec![0, 1, 2]);
        assert_eq!(pick(10, 1), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn filter_matching_is_case_insensitive_any_of() {
        let p = Product {
            id: "B000000000".into(),
            store_id: "s".into(),
            title: "T".into(),
            series: "T".into(),
            volume: 1,
            author: "A".into(),
            genres: vec!["action".into(), "comedy".into()],
            demographic: "shonen".into(),
            synopsis: "S".into(),
            price_yen: 1,
            stock: 0,
            release_date: "2020-01-01".into(),
            series_ja: None,
            series_reading: None,
            title_ja: None,
        };
        let f = |genres: &[&str], demo: Option<&str>, stock| ProductFilter {
            genres: genres.iter().map(|s| s.to_string()).collect(),
            demographic: demo.map(str::to_string),
            in_stock_only: stock,
        };
        assert!(f(&[], None, false).matches(&p));
        assert!(f(&["romance", "Comedy"], Some("SHONEN"), false).matches(&p));
        assert!(!f(&["romance"], None, false).matches(&p));
        assert!(!f(&[], Some("seinen"), false).matches(&p));
        assert!(!f(&[], None, true).matches(&p));
    }
}
