//! The intent daemon: classifies a chat message into one of the nine intents with a
//! confidence, scores its complexity, picks the model tier with the routing matrix of seed
//! 001 and says whether retrieval is needed. The classifier is trained at start-up from
//! `data/intents/train.jsonl`: multinomial logistic regression over the sentence embedding
//! concatenated with a hashed character/word n-gram block. Nearest centroid over the same
//! features is kept as the measured baseline: on `data/intents/heldout.jsonl` logistic
//! regression scores 0.873 with MiniLM (centroid 0.786) and 0.754 with the hashed fallback
//! embedder (centroid 0.675), so it is the one served. The keyword matcher
//! ([`mangaassist_domain::keyword`], 0.690) is only the degraded fallback. The routing
//! matrix, the retrieval need and text normalisation are the shared rules of
//! `mangaassist-domain`; this daemon supplies their inputs (intent, confidence, complexity).

mod complexity;
mod features;
mod model;

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use mangaassist_catalog::{DataError, LabelledText};
use mangaassist_config::{Config, IntentSettings};
use mangaassist_domain::{keyword, needs_retrieval, normalize_text, route};
use mangaassist_embedding::{EmbedError, QueryEmbedder, vector_file};
use mangaassist_proto::v1 as pb;
use mangaassist_server::{Daemon, ServeOptions, ServerError};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::{
    complexity::Entities,
    model::{Centroid, LogReg, Model, TrainParams},
};

/// Longest accepted message, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Sentences per forward pass when embedding the training or evaluation set.
const EMBED_BATCH: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("embedding failed: {0}")]
    Embed(#[from] EmbedError),
    #[error("training failed: {0}")]
    Train(String),
    #[error("background task failed: {0}")]
    Task(String),
}

impl IntentError {
    pub fn code(&self) -> tonic::Code {
        match self {
            IntentError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            IntentError::Data(_) | IntentError::Train(_) => tonic::Code::FailedPrecondition,
            IntentError::Embed(_) | IntentError::Task(_) => tonic::Code::Internal,
        }
    }
}

impl From<IntentError> for Status {
    fn from(e: IntentError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}

/// Algorithm used by [`IntentDaemon::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    LogReg,
    #[cfg_attr(not(test), allow(dead_code))]
    Centroid,
}

/// The trained intent classifier and its gRPC service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct IntentDaemon {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    embedder: QueryEmbedder,
    model: Model,
    settings: IntentSettings,
    entities: Entities,
    /// e.g. `logreg-minilm-v1`.
    classifier: String,
}

/// Held-out evaluation of the classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    pub accuracy: f32,
    /// `(intent, precision, recall, support)` for every intent, in proto order.
    pub per_intent: Vec<(String, f32, f32, usize)>,
    pub total: usize,
    pub correct: usize,
    /// `(expected, predicted, count)` for every kind of mistake, most frequent first.
    pub confusion: Vec<(String, String, usize)>,
    /// Which classifier was evaluated.
    pub classifier: String,
    /// `(text, expected, predicted)` of every misclassified example, in file order, so a
    /// reader can see what the classifier gets wrong, not only how often.
    pub misses: Vec<(String, String, String)>,
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "classifier `{}`: accuracy {:.3} ({}/{})\n",
            self.classifier, self.accuracy, self.correct, self.total
        )?;
        writeln!(f, "| intent | precision | recall | support |")?;
        writeln!(f, "|---|---:|---:|---:|")?;
        for (intent, p, r, n) in &self.per_intent {
            writeln!(f, "| {intent} | {p:.3} | {r:.3} | {n} |")?;
        }
        if !self.confusion.is_empty() {
            writeln!(f, "\n| expected | predicted | count |")?;
            writeln!(f, "|---|---|---:|")?;
            for (e, p, n) in &self.confusion {
                writeln!(f, "| {e} | {p} | {n} |")?;
            }
        }
        if !self.misses.is_empty() {
            writeln!(f, "\n| misclassified text | expected | predicted |")?;
            writeln!(f, "|---|---|---|")?;
            for (t, e, p) in &self.misses {
                let t = t.replace('|', "\\|");
                writeln!(f, "| {t} | {e} | {p} |")?;
            }
        }
        Ok(())
    }
}

fn validate_text(text: &str) -> Result<(), IntentError> {
    if text.trim().is_empty() {
        return Err(IntentError::InvalidArgument("text is empty".into()));
    }
    let n = text.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(IntentError::InvalidArgument(format!(
            "text has {n} characters, more than the limit of {MAX_TEXT_CHARS}"
        )));
    }
    Ok(())
}

fn label_index(label: &str) -> Option<usize> {
    pb::Intent::ALL.iter().position(|i| i.label() == label)
}

/// Embeds `texts` (already normalised) in batches on the calling thread.
fn embed_all(embedder: &QueryEmbedder, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(EMBED_BATCH) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        out.extend(embedder.inner().embed_batch(&refs)?);
    }
    Ok(out)
}

/// Training vectors from the disk cache, or embedded and then cached (best effort).
fn training_vectors(
    embedder: &QueryEmbedder,
    texts: &[String],
    cache_dir: &Path,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let dim = embedder.inner().dim();
    // Keyed by the texts actually embedded: editing the data or changing the model misses
    // and rewrites.
    let path = vector_file::cache_path(cache_dir, embedder.model_id(), dim, texts);
    match vector_file::read(&path, texts.len(), dim) {
        Ok(v) => {
            tracing::debug!(path = %path.display(), "intent training vectors loaded from cache");
            return Ok(v.iter().map(|v| v.to_vec()).collect());
        }
        Err(reason) if path.exists() => {
            tracing::warn!(path = %path.display(), %reason, "ignoring unusable intent vector cache, recomputing");
        }
        Err(_) => {}
    }
    let started = Instant::now();
    let v = embed_all(embedder, texts)?;
    tracing::info!(
        n = texts.len(),
        ms = started.elapsed().as_millis() as u64,
        model = embedder.model_id(),
        "embedded intent training set"
    );
    if let Err(e) = vector_file::write(&path, &v, dim) {
        tracing::warn!(error = %e, path = %path.display(), "cannot cache intent training vectors");
    }
    Ok(v)
}

fn embedder_family(model_id: &str) -> &'static str {
    if model_id.to_lowercase().contains("minilm") {
        "minilm"
    } else if model_id.starts_with("hashed") {
        "hashed"
    } else {
        "embed"
    }
}

impl IntentDaemon {
    /// Loads `<data.dir>/intents/train.jsonl`, embeds it (or reads the vectors cached under
    /// `<cache_dir>/vectors/`) and trains the classifier. Catalog series names, used to count
    /// titles for the complexity score, come from `<data.dir>/catalog/products.jsonl` when
    /// it is readable.
    pub async fn new(config: &Config, embedder: QueryEmbedder) -> Result<Self, IntentError> {
        Self::build(config, embedder, Algorithm::LogReg).await
    }

    async fn build(
        config: &Config,
        embedder: QueryEmbedder,
        algorithm: Algorithm,
    ) -> Result<Self, IntentError> {
        let data_dir = config.data.dir.clone();
        let cache_dir = config.data.resolved_cache_dir();
        let settings = config.intent.clone();
        tokio::task::spawn_blocking(move || {
            Self::build_blocking(&data_dir, &cache_dir, settings, embedder, algorithm)
        })
        .await
        .map_err(|e| IntentError::Task(e.to_string()))?
    }

    fn build_blocking(
        data_dir: &Path,
        cache_dir: &Path,
        settings: IntentSettings,
        embedder: QueryEmbedder,
        algorithm: Algorithm,
    ) -> Result<Self, IntentError> {
        let train_path = data_dir.join("intents/train.jsonl");
        let examples = mangaassist_catalog::load_intents(&train_path)?;
        let texts: Vec<String> = examples.iter().map(|e| normalize_text(&e.text)).collect();
        let labels: Vec<usize> = examples
            .iter()
            .map(|e| label_index(&e.intent))
            .collect::<Option<_>>()
            .ok_or_else(|| IntentError::Train("unknown intent label".into()))?;
        let vectors = training_vectors(&embedder, &texts, cache_dir)?;
        let started = Instant::now();
        let x: Vec<Vec<f32>> = vectors
            .iter()
            .zip(&texts)
            .map(|(v, t)| features::features(v, t))
            .collect();
        let classes = pb::Intent::ALL.len();
        let model = match algorithm {
            Algorithm::LogReg => Model::LogReg(
                LogReg::train(&x, &labels, classes, TrainParams::default())
                    .map_err(IntentError::Train)?,
            ),
            Algorithm::Centroid => {
                Model::Centroid(Centroid::train(&x, &labels, classes).map_err(IntentError::Train)?)
            }
        };
        let classifier = format!(
            "{}-{}-v1",
            model.algorithm(),
            embedder_family(embedder.model_id())
        );
        tracing::info!(
            classifier = %classifier,
            examples = x.len(),
            train_ms = started.elapsed().as_millis() as u64,
            "intent classifier trained"
        );
        let products_path = data_dir.join("catalog/products.jsonl");
        let entities = match mangaassist_catalog::load_products(&products_path) {
            Ok(products) => {
                let mut series: Vec<&str> = products.iter().map(|p| p.series.as_str()).collect();
                series.sort_unstable();
                series.dedup();
                Entities::new(series)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no catalog for title counting; complexity ignores titles");
                Entities::new([])
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                embedder,
                model,
                settings,
                entities,
                classifier,
            }),
        })
    }

    /// Which classifier answers, e.g. `logreg-minilm-v1`.
    pub fn classifier_name(&self) -> &str {
        &self.inner.classifier
    }

    /// Serves `IntentService` (plus health, reflection and metrics) until shutdown.
    pub async fn serve(self, listener: TcpListener, opts: ServeOptions) -> Result<(), ServerError> {
        Daemon::new("intent")
            .add_service(pb::intent_service_server::IntentServiceServer::new(self))
            .serve(listener, opts)
            .await
    }

    /// The request's embedding when it was made by our model; otherwise `None` (re-embed).
    fn supplied_vector<'a>(&self, req: &'a pb::ClassifyRequest) -> Option<&'a [f32]> {
        let e = req.embedding.as_ref()?;
        let ok = e.model == self.inner.embedder.model_id()
            && e.values.len() == self.inner.embedder.inner().dim()
            && e.values.iter().all(|v| v.is_finite());
        ok.then_some(e.values.as_slice())
    }

    /// Direct call without gRPC (same logic as the RPC). Embeds on the calling thread when
    /// the request carries no usable embedding.
    pub fn classify(&self, req: &pb::ClassifyRequest) -> Result<pb::ClassifyResponse, IntentError> {
        validate_text(&req.text)?;
        let started = Instant::now();
        let normalized = normalize_text(&req.text);
        let scored = match self.supplied_vector(req) {
            Some(v) => Some(self.predict(v, &normalized)),
            None => match self.inner.embedder.embed_query(&req.text) {
                Ok(v) => Some(self.predict(&v, &normalized)),
                Err(e) => {
                    tracing::warn!(error = %e, "embedding failed, answering with the keyword matcher");
                    None
                }
            },
        };
        let (scores, classifier) = match scored {
            Some(s) => (s, self.inner.classifier.as_str()),
            None => {
                let (intent, conf) = keyword::classify_keywords(&req.text);
                (keyword_scores(intent, conf), keyword::CLASSIFIER_NAME)
            }
        };
        let resp = self.respond(req, scores, classifier);
        let elapsed = started.elapsed();
        metrics::counter!("intent_classifications_total", "intent" => pb::Intent::try_from(resp.intent).unwrap_or_default().label()).increment(1);
        metrics::histogram!("intent_classify_latency_ms").record(elapsed.as_secs_f64() * 1e3);
        Ok(resp)
    }

    /// `(intent, probability)` for every intent, best first.
    fn predict(&self, vector: &[f32], normalized: &str) -> Vec<(pb::Intent, f32)> {
        let x = features::features(vector, normalized);
        let p = self.inner.model.predict(&x);
        let mut scores: Vec<(pb::Intent, f32)> = pb::Intent::ALL.iter().copied().zip(p).collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1));
        scores
    }

    fn respond(
        &self,
        req: &pb::ClassifyRequest,
        scores: Vec<(pb::Intent, f32)>,
        classifier: &str,
    ) -> pb::ClassifyResponse {
        let (intent, confidence) = scores
            .first()
            .copied()
            .unwrap_or((pb::Intent::Chitchat, 0.0));
        let complexity = complexity::score(intent, confidence, &req.text, &self.inner.entities);
        // 0 on the wire: the caller did not say how much budget is left.
        let budget = (req.remaining_budget_ms != 0)
            .then(|| Duration::from_millis(u64::from(req.remaining_budget_ms)));
        let tier = route(&self.inner.settings, complexity, budget);
        if confidence < self.inner.settings.min_confidence {
            tracing::debug!(intent = intent.label(), confidence, "low-confidence intent");
        }
        tracing::debug!(
            intent = intent.label(),
            confidence,
            complexity,
            tier = tier.label(),
            classifier,
            "classified"
        );
        pb::ClassifyResponse {
            intent: intent as i32,
            confidence,
            scores: scores
                .into_iter()
                .map(|(i, s)| pb::IntentScore {
                    intent: i as i32,
                    score: s,
                })
                .collect(),
            complexity,
            tier: tier as i32,
            needs_retrieval: needs_retrieval(intent),
            classifier: classifier.to_string(),
        }
    }

    /// Accuracy on a labelled file (held-out evaluation): overall accuracy, per-intent
    /// precision/recall, confusion counts. Embeds in batches on the calling thread; examples
    /// with an unknown label count as mistakes. Falls back to the keyword matcher if the
    /// embedder fails, and says so in `classifier`.
    pub fn evaluate(&self, examples: &[LabelledText]) -> EvalReport {
        let texts: Vec<String> = examples.iter().map(|e| normalize_text(&e.text)).collect();
        let (predicted, classifier): (Vec<pb::Intent>, String) =
            match embed_all(&self.inner.embedder, &texts) {
                Ok(vectors) => (
                    vectors
                        .iter()
                        .zip(&texts)
                        .map(|(v, t)| self.predict(v, t)[0].0)
                        .collect(),
                    self.inner.classifier.clone(),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "evaluation falls back to the keyword matcher");
                    (
                        examples
                            .iter()
                            .map(|e| keyword::classify_keywords(&e.text).0)
                            .collect(),
                        keyword::CLASSIFIER_NAME.to_string(),
                    )
                }
            };
        eval_report(examples, &predicted, classifier)
    }
}

fn keyword_scores(intent: pb::Intent, confidence: f32) -> Vec<(pb::Intent, f32)> {
    let rest = (1.0 - confidence) / (pb::Intent::ALL.len() - 1) as f32;
    let mut v = vec![(intent, confidence)];
    v.extend(
        pb::Intent::ALL
            .iter()
            .filter(|i| **i != intent)
            .map(|i| (*i, rest)),
    );
    v
}

fn eval_report(
    examples: &[LabelledText],
    predicted: &[pb::Intent],
    classifier: String,
) -> EvalReport {
    let k = pb::Intent::ALL.len();
    let mut confusion = vec![vec![0usize; k]; k];
    let mut unknown = 0;
    let mut misses = Vec::new();
    for (e, p) in examples.iter().zip(predicted) {
        if e.intent != p.label() {
            misses.push((e.text.clone(), e.intent.clone(), p.label().to_string()));
        }
        let pi = pb::Intent::ALL.iter().position(|i| i == p);
        match (label_index(&e.intent), pi) {
            (Some(a), Some(b)) => confusion[a][b] += 1,
            _ => unknown += 1,
        }
    }
    let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
    let total = examples.len();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f32 / b as f32 };
    let per_intent = pb::Intent::ALL
        .iter()
        .enumerate()
        .map(|(i, intent)| {
            let support: usize = confusion[i].iter().sum();
            let predicted_as: usize = (0..k).map(|r| confusion[r][i]).sum();
            (
                intent.label().to_string(),
                ratio(confusion[i][i], predicted_as),
                ratio(confusion[i][i], support),
                support,
            )
        })
        .collect();
    let mut mistakes: Vec<(String, String, usize)> = Vec::new();
    for (a, row) in confusion.iter().enumerate() {
        for (b, &n) in row.iter().enumerate() {
            if a != b && n > 0 {
                mistakes.push((
                    pb::Intent::ALL[a].label().to_string(),
                    pb::Intent::ALL[b].label().to_string(),
                    n,
                ));
            }
        }
    }
    if unknown > 0 {
        mistakes.push(("unknown".into(), "-".into(), unknown));
    }
    mistakes.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.cmp(b)));
    EvalReport {
        accuracy: ratio(correct, total),
        per_intent,
        total,
        correct,
        confusion: mistakes,
        classifier,
        misses,
    }
}

#[tonic::async_trait]
impl pb::intent_service_server::IntentService for IntentDaemon {
    async fn classify(
        &self,
        request: Request<pb::ClassifyRequest>,
    ) -> Result<Response<pb::ClassifyResponse>, Status> {
        let req = request.into_inner();
        validate_text(&req.text)?;
        // With a supplied vector the work is a few microseconds; otherwise a forward pass
        // (~10 ms) that must not stall the async workers.
        let resp = if self.supplied_vector(&req).is_some() {
            IntentDaemon::classify(self, &req)?
        } else {
            let this = self.clone();
            tokio::task::spawn_blocking(move || IntentDaemon::classify(&this, &req))
                .await
                .map_err(|e| Status::internal(format!("classify task failed: {e}")))??
        };
        Ok(Response::new(resp))
    }
}

#[cfg(test)]
mod tests;
