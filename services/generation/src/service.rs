//! The gRPC face of generation: validates the request, resolves the prompt, and runs the
//! backend in a spawned producer that feeds a bounded channel, so a slow reader pauses the
//! model, and a reader that goes away or a caller's deadline that passes stops it.

use std::{
    collections::BTreeMap,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use mangaassist_config::{Config, GenerationBackend};
use mangaassist_proto::v1 as pb;
use mangaassist_server::{Daemon, ServeOptions, ServerError};
use tokio::{
    sync::mpsc,
    time::{Instant, Sleep},
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

use crate::{
    BedrockBackend, GenerationError, ModelBackend, ModelDone, ModelEvent, OpenAiBackend,
    PromptRegistry, PromptStore, RenderedPrompt, SimulatedModel, StopReason,
    prompts::PromptChange,
    registry::{parse_intent, parse_put},
};

/// Output cap for an intent missing from `generation.max_tokens`.
const FALLBACK_MAX_TOKENS: u32 = 256;
/// Reported for a backend that streams tokens without assessing its answer first: it must
/// not trigger the quality gate on its own.
const UNASSESSED_CONFIDENCE: f32 = 1.0;

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    finished: AtomicU64,
    cancelled: AtomicU64,
    deadline_exceeded: AtomicU64,
}

struct Inner {
    backend: Arc<dyn ModelBackend>,
    prompts: PromptRegistry,
    max_tokens: BTreeMap<String, u32>,
    max_request_tokens: u32,
    stream_buffer: usize,
    low_confidence_below: f32,
    counters: Counters,
    /// Stream producers and prompt changes; [`GenerationDaemon::serve`] waits for them.
    tasks: TaskTracker,
}

impl Inner {
    fn max_tokens_for(&self, intent: pb::Intent) -> u32 {
        self.max_tokens
            .get(intent.label())
            .copied()
            .unwrap_or(FALLBACK_MAX_TOKENS)
    }
}

/// The generation daemon. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct GenerationDaemon {
    inner: Arc<Inner>,
}

type EventStream = ReceiverStream<Result<pb::GenerateResponse, Status>>;

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// RPCs that change what every customer of a store is told: with a mesh service secret they
/// need an admin-scoped token, which the gateway and precompute never hold.
pub const ADMIN_METHODS: &[&str] = &["PutPrompt", "ActivatePrompt", "RollbackPrompt"];

/// Parses a `grpc-timeout` value (1-8 digits and a unit: `H`, `M`, `S`, `m`, `u`, `n`, per
/// the gRPC over HTTP/2 spec). `None` when it is malformed.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(n * 3600),
        'M' => Duration::from_secs(n * 60),
        'S' => Duration::from_secs(n),
        'm' => Duration::from_millis(n),
        'u' => Duration::from_micros(n),
        'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Why a stream stopped before its summary was delivered.
enum Stopped {
    ReaderGone,
    DeadlineExceeded,
}

/// How the model part of a producer's run ended.
enum End {
    /// The model finished (`None`: its stream ended without a summary).
    Finished(Option<ModelDone>),
    MaxTokens,
    Stopped(Stopped),
    Failed(GenerationError),
}

/// Resolves when the caller's deadline passes; never without one.
async fn expiry(deadline: &mut Option<Pin<Box<Sleep>>>) {
    match deadline {
        Some(s) => s.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Sends `msg` unless the reader is gone or the deadline passes first (a reader that stops
/// reading must not hold the producer past the caller's deadline).
async fn send(
    tx: &mpsc::Sender<Result<pb::GenerateResponse, Status>>,
    event: pb::generate_response::Event,
    deadline: &mut Option<Pin<Box<Sleep>>>,
) -> Result<(), Stopped> {
    let msg = pb::GenerateResponse { event: Some(event) };
    tokio::select! {
        biased;
        () = expiry(deadline) => Err(Stopped::DeadlineExceeded),
        r = tx.send(Ok(msg)) => r.map_err(|_| Stopped::ReaderGone),
    }
}

impl GenerationDaemon {
    /// Loads the prompts and builds the configured backend (`simulated`, `openai` with the
    /// API key read from `generation.openai.api_key_env`, or `bedrock` with the AWS
    /// credential chain; Bedrock's warm-up calls start in the background).
    pub async fn new(config: &Config) -> Result<Self, GenerationError> {
        let backend: Arc<dyn ModelBackend> = match config.generation.backend {
            GenerationBackend::Simulated => Arc::new(SimulatedModel::new(&config.generation)),
            GenerationBackend::OpenAi => {
                Arc::new(OpenAiBackend::from_settings(&config.generation.openai)?)
            }
            GenerationBackend::Bedrock => {
                Arc::new(BedrockBackend::new(&config.generation.bedrock).await?)
            }
        };
        Self::with_backend(config, backend).await
    }

    /// Same as [`GenerationDaemon::new`] with another backend (a provider client or a test
    /// double).
    pub async fn with_backend(
        config: &Config,
        backend: Arc<dyn ModelBackend>,
    ) -> Result<Self, GenerationError> {
        let prompts = PromptRegistry::load(config.generation.prompts_dir.clone()).await?;
        tracing::info!(
            prompts = prompts.snapshot().list(|_| 0).len(),
            dir = %config.generation.prompts_dir.display(),
            "prompts loaded"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                prompts,
                max_tokens: config.generation.max_tokens.clone(),
                max_request_tokens: config.generation.max_request_tokens,
                stream_buffer: config.generation.stream_buffer.max(1),
                low_confidence_below: config.generation.low_confidence_below,
                counters: Counters::default(),
                tasks: TaskTracker::new(),
            }),
        })
    }

    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        opts: ServeOptions,
    ) -> Result<(), ServerError> {
        let inner = self.inner.clone();
        let grace = opts.grace;
        let result = Daemon::new("generation")
            .admin_methods(ADMIN_METHODS)
            .add_service(pb::generation_service_server::GenerationServiceServer::new(
                self,
            ))
            .serve(listener, opts)
            .await;
        // A producer ends when its reader goes; a stream the server did not close in its
        // grace gets one more grace, then the process may exit under it. A prompt change
        // finishes writing. Then the backend's own calls.
        inner.tasks.close();
        if tokio::time::timeout(grace, inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                streams = inner.tasks.len(),
                "generation streams still running after the grace period"
            );
        }
        inner.backend.shutdown().await;
        result
    }

    /// The prompts as they are now (a snapshot; later changes do not show in it).
    pub fn prompts(&self) -> Arc<PromptStore> {
        self.inner.prompts.snapshot()
    }

    /// Streams started so far.
    pub fn streams_started(&self) -> u64 {
        self.inner.counters.started.load(Ordering::Relaxed)
    }

    /// Streams whose producer ran to the summary.
    pub fn streams_finished(&self) -> u64 {
        self.inner.counters.finished.load(Ordering::Relaxed)
    }

    /// Streams stopped because the reader went away (`generation_cancelled_total`).
    pub fn streams_cancelled(&self) -> u64 {
        self.inner.counters.cancelled.load(Ordering::Relaxed)
    }

    /// Streams stopped because the caller's deadline passed
    /// (`generation_deadline_exceeded_total`).
    pub fn streams_deadline_exceeded(&self) -> u64 {
        self.inner
            .counters
            .deadline_exceeded
            .load(Ordering::Relaxed)
    }

    /// Validates `req` and starts generating without a deadline: the in-process entry point.
    /// Dropping the returned stream stops the producer.
    pub fn start(&self, req: pb::GenerateRequest) -> Result<EventStream, GenerationError> {
        self.start_with_deadline(req, None)
    }

    /// Like [`GenerationDaemon::start`]; when `deadline` (counted from now) passes before the
    /// summary is sent, the model is stopped and the stream ends with `DEADLINE_EXCEEDED`.
    pub fn start_with_deadline(
        &self,
        req: pb::GenerateRequest,
        deadline: Option<Duration>,
    ) -> Result<EventStream, GenerationError> {
        let t0 = Instant::now();
        if req.query.trim().is_empty() {
            return Err(GenerationError::InvalidArgument("query is empty".into()));
        }
        // `{store_id}` in a prompt becomes this value: only an identifier may get there, never
        // a caller's sentence.
        if !req.store_id.is_empty() {
            crate::prompts::validate_store_id(&req.store_id)?;
        }
        if req.max_tokens > self.inner.max_request_tokens {
            return Err(GenerationError::InvalidArgument(format!(
                "max_tokens {} is more than the {} this daemon allows \
                 (generation.max_request_tokens); 0 uses the intent's default",
                req.max_tokens, self.inner.max_request_tokens
            )));
        }
        let intent = match pb::Intent::try_from(req.intent) {
            Ok(pb::Intent::Unspecified) => {
                return Err(GenerationError::InvalidArgument(
                    "intent is unspecified".into(),
                ));
            }
            Ok(i) => i,
            Err(_) => {
                return Err(GenerationError::InvalidArgument(format!(
                    "unknown intent {}",
                    req.intent
                )));
            }
        };
        let tier = match pb::ModelTier::try_from(req.tier) {
            Ok(pb::ModelTier::Unspecified) => pb::ModelTier::Fast,
            Ok(t) => t,
            Err(_) => {
                return Err(GenerationError::InvalidArgument(format!(
                    "unknown tier {}",
                    req.tier
                )));
            }
        };
        // Resolved once: a prompt activated while this stream runs applies to the next one.
        let prompts = self.inner.prompts.snapshot();
        let (prompt_store, prompt) = prompts.resolve(&req.store_id, intent, &req.prompt_version)?;
        let rendered = RenderedPrompt::new(prompt_store, prompt, &req, intent);
        let prompt_version = rendered.version.clone();
        let max_tokens = if req.max_tokens != 0 {
            req.max_tokens
        } else {
            prompt
                .max_tokens
                .unwrap_or_else(|| self.inner.max_tokens_for(intent))
        };
        drop(prompts);
        let model = self.inner.backend.model_name(tier);
        let mut events = self.inner.backend.stream_with_deadline(
            rendered,
            &req,
            tier,
            max_tokens,
            deadline.map(|d| t0 + d),
        );
        let (tx, rx) = mpsc::channel(self.inner.stream_buffer);
        let personal = crate::backend::carries_personal_context(&req);
        let inner = self.inner.clone();
        inner.counters.started.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(intent = intent.label(), tier = tier.label(), %model, max_tokens, prompt_version, deadline_ms = deadline.map(ms), "generation started");
        self.inner.tasks.spawn(async move {
            let mut expired: Option<Pin<Box<Sleep>>> =
                deadline.map(|d| Box::pin(tokio::time::sleep_until(t0 + d)));
            let mut index: u32 = 0;
            let mut first_token_ms: Option<u32> = None;
            let mut assessed: Option<f32> = None;
            let low_below = inner.low_confidence_below;
            let assessment = |confidence: f32, reason: String| {
                pb::generate_response::Event::Assessment(pb::Assessment {
                    confidence,
                    low_confidence: confidence < low_below,
                    reason,
                })
            };
            let end = loop {
                // Also watch the reader and the deadline while the model is thinking, so a
                // caller that leaves or gives up before the first token frees the model.
                let ev = tokio::select! {
                    biased;
                    () = tx.closed() => break End::Stopped(Stopped::ReaderGone),
                    () = expiry(&mut expired) => break End::Stopped(Stopped::DeadlineExceeded),
                    ev = events.next() => ev,
                };
                match ev {
                    Some(Ok(ModelEvent::Assessment { confidence, reason })) => {
                        if assessed.is_some() {
                            tracing::debug!(%model, "second assessment from the model ignored");
                            continue;
                        }
                        assessed = Some(confidence);
                        if let Err(why) =
                            send(&tx, assessment(confidence, reason), &mut expired).await
                        {
                            break End::Stopped(why);
                        }
                    }
                    Some(Ok(ModelEvent::Token(text))) => {
                        if index >= max_tokens {
                            break End::MaxTokens;
                        }
                        if assessed.is_none() {
                            assessed = Some(UNASSESSED_CONFIDENCE);
                            let a = assessment(
                                UNASSESSED_CONFIDENCE,
                                "the model did not assess its answer".into(),
                            );
                            if let Err(why) = send(&tx, a, &mut expired).await {
                                break End::Stopped(why);
                            }
                        }
                        if first_token_ms.is_none() {
                            let ft = ms(t0.elapsed());
                            first_token_ms = Some(ft);
                            metrics::histogram!("generation_first_token_ms", "model" => model.clone())
                                .record(f64::from(ft));
                        }
                        let delta =
                            pb::generate_response::Event::Delta(pb::TokenDelta { text, index });
                        if let Err(why) = send(&tx, delta, &mut expired).await {
                            break End::Stopped(why);
                        }
                        index += 1;
                    }
                    Some(Ok(ModelEvent::Done(d))) => break End::Finished(Some(d)),
                    Some(Err(e)) => break End::Failed(e),
                    None => break End::Finished(None),
                }
            };
            // Stop the model's work now, before anything else is sent.
            drop(events);
            let (done, mut stop) = match end {
                End::Finished(d) => (d, StopReason::EndTurn),
                End::MaxTokens => (None, StopReason::MaxTokens),
                End::Stopped(why) => {
                    stopped(&inner, &tx, why, &model, deadline, t0, index).await;
                    return;
                }
                End::Failed(e) => {
                    tracing::warn!(%model, error = %e, "model backend failed");
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            // A backend that fell back to another model says which one answered.
            let model = done.as_ref().and_then(|d| d.model.clone()).unwrap_or(model);
            // A model that finished on its own knows its output count best (a provider's
            // delta may hold several tokens); when the daemon cut it short, the deltas sent.
            let (input_tokens, output_tokens, product_ids, confidence, personal_context) =
                match &done {
                    Some(d) => {
                        if d.stop_reason == StopReason::MaxTokens {
                            stop = StopReason::MaxTokens;
                        }
                        (
                            d.input_tokens,
                            d.output_tokens,
                            d.product_ids.clone(),
                            d.confidence,
                            d.personal_context,
                        )
                    }
                    // Cut short before the model said what it used: assume the worst.
                    None => (
                        0,
                        index,
                        Vec::new(),
                        assessed.unwrap_or(0.5),
                        personal,
                    ),
                };
            // A stream without tokens still tells the caller how sure the model was.
            if assessed.is_none() {
                let a = assessment(confidence, "the model wrote no tokens".into());
                if let Err(why) = send(&tx, a, &mut expired).await {
                    stopped(&inner, &tx, why, &model, deadline, t0, index).await;
                    return;
                }
            }
            let summary = pb::GenerateSummary {
                model: model.clone(),
                tier: tier as i32,
                input_tokens,
                output_tokens,
                first_token_ms: first_token_ms.unwrap_or_else(|| ms(t0.elapsed())),
                total_ms: ms(t0.elapsed()),
                prompt_version,
                product_ids,
                confidence,
                stop_reason: stop.as_str().to_string(),
                personal_context,
            };
            metrics::counter!("generation_output_tokens_total", "model" => model.clone())
                .increment(u64::from(index));
            metrics::counter!("generation_streams_total", "model" => model.clone(), "stop_reason" => stop.as_str())
                .increment(1);
            if let Err(why) = send(
                &tx,
                pb::generate_response::Event::Done(summary),
                &mut expired,
            )
            .await
            {
                stopped(&inner, &tx, why, &model, deadline, t0, index).await;
                return;
            }
            inner.counters.finished.fetch_add(1, Ordering::Relaxed);
        });
        Ok(ReceiverStream::new(rx))
    }

    /// Runs a prompt change on its own task, so a caller that disconnects half-way cannot
    /// leave the files written but the change not applied.
    async fn change_prompts<F>(
        &self,
        store: &str,
        intent: pb::Intent,
        change: F,
    ) -> Result<Arc<PromptStore>, GenerationError>
    where
        F: FnOnce(&mut PromptStore) -> Result<PromptChange, GenerationError> + Send + 'static,
    {
        let inner = self.inner.clone();
        let applied = self
            .inner
            .tasks
            .spawn(async move { inner.prompts.apply(change).await })
            .await
            .map_err(|e| GenerationError::Storage {
                path: self.inner.prompts.dir().to_path_buf(),
                message: format!("prompt change panicked: {e}"),
            })??;
        if applied.switched {
            metrics::counter!("prompt_activations_total", "store" => store.to_string(), "intent" => intent.label())
                .increment(1);
            let active = applied
                .store
                .describe_active(store, intent, |_| 0)
                .map(|p| format!("{}/{}", p.store_id, p.version))
                .unwrap_or_default();
            tracing::info!(
                store,
                intent = intent.label(),
                active,
                "active prompt changed"
            );
        }
        Ok(applied.store)
    }

    /// What `PutPrompt` and `ActivatePrompt` answer: the version as the changed store has it.
    fn describe_version(
        &self,
        snapshot: &PromptStore,
        store: &str,
        intent: pb::Intent,
        version: &str,
    ) -> Result<Response<pb::PromptInfo>, Status> {
        let info = snapshot
            .describe(store, intent, version, |i| self.inner.max_tokens_for(i))
            .ok_or_else(|| Self::not_found(store, intent, version))?;
        Ok(Response::new(info))
    }

    fn not_found(store: &str, intent: pb::Intent, version: &str) -> GenerationError {
        GenerationError::NotFound(format!(
            "version `{version}` of store `{store}` intent {}",
            intent.label()
        ))
    }
}

/// Accounts for a stream that stopped early and tells a caller whose deadline passed why.
/// The model's stream has been dropped already.
async fn stopped(
    inner: &Inner,
    tx: &mpsc::Sender<Result<pb::GenerateResponse, Status>>,
    why: Stopped,
    model: &str,
    deadline: Option<Duration>,
    t0: Instant,
    tokens: u32,
) {
    match why {
        Stopped::ReaderGone => {
            inner.counters.cancelled.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("generation_cancelled_total", "model" => model.to_string())
                .increment(1);
            tracing::debug!(%model, "reader went away, generation stopped");
        }
        Stopped::DeadlineExceeded => {
            inner
                .counters
                .deadline_exceeded
                .fetch_add(1, Ordering::Relaxed);
            metrics::counter!("generation_deadline_exceeded_total", "model" => model.to_string())
                .increment(1);
            let elapsed = ms(t0.elapsed());
            let budget = deadline.map(ms).unwrap_or_default();
            tracing::debug!(%model, elapsed_ms = elapsed, budget_ms = budget, tokens, "caller deadline passed, generation stopped");
            let status = Status::deadline_exceeded(format!(
                "generation deadline of {budget} ms exceeded after {elapsed} ms and {tokens} tokens; the model was stopped"
            ));
            let _ = tx.send(Err(status)).await;
        }
    }
}

#[tonic::async_trait]
impl pb::generation_service_server::GenerationService for GenerationDaemon {
    type GenerateStream = EventStream;

    async fn generate(
        &self,
        request: Request<pb::GenerateRequest>,
    ) -> Result<Response<Self::GenerateStream>, Status> {
        // tonic bounds only this handler, not the stream it returns, so the deadline is
        // enforced by the producer; a stream without one could hold a model forever.
        let deadline = match request.metadata().get("grpc-timeout") {
            None => {
                return Err(Status::invalid_argument(
                    "Generate needs a deadline (grpc-timeout; grpcurl: -max-time SECONDS)",
                ));
            }
            Some(v) => v
                .to_str()
                .ok()
                .and_then(parse_grpc_timeout)
                .ok_or_else(|| Status::invalid_argument(format!("malformed grpc-timeout {v:?}")))?,
        };
        Ok(Response::new(self.start_with_deadline(
            request.into_inner(),
            Some(deadline),
        )?))
    }

    async fn list_prompts(
        &self,
        _request: Request<pb::ListPromptsRequest>,
    ) -> Result<Response<pb::ListPromptsResponse>, Status> {
        Ok(Response::new(pb::ListPromptsResponse {
            prompts: self
                .inner
                .prompts
                .snapshot()
                .list(|i| self.inner.max_tokens_for(i)),
        }))
    }

    async fn put_prompt(
        &self,
        request: Request<pb::PutPromptRequest>,
    ) -> Result<Response<pb::PromptInfo>, Status> {
        let r = request.into_inner();
        let intent = parse_intent(r.intent)?;
        let prompt = parse_put(&r.store_id, &r.version, &r.text)?;
        let (store, activate) = (r.store_id.clone(), r.activate);
        let snapshot = self
            .change_prompts(&r.store_id, intent, move |s| {
                s.put(&store, intent, prompt, activate)
            })
            .await?;
        self.describe_version(&snapshot, &r.store_id, intent, &r.version)
    }

    async fn activate_prompt(
        &self,
        request: Request<pb::ActivatePromptRequest>,
    ) -> Result<Response<pb::PromptInfo>, Status> {
        let r = request.into_inner();
        let intent = parse_intent(r.intent)?;
        crate::validate_store_id(&r.store_id)?;
        let (store, version) = (r.store_id.clone(), r.version.clone());
        let snapshot = self
            .change_prompts(&r.store_id, intent, move |s| {
                s.activate(&store, intent, &version)
            })
            .await?;
        self.describe_version(&snapshot, &r.store_id, intent, &r.version)
    }

    async fn rollback_prompt(
        &self,
        request: Request<pb::RollbackPromptRequest>,
    ) -> Result<Response<pb::PromptInfo>, Status> {
        let r = request.into_inner();
        let intent = parse_intent(r.intent)?;
        crate::validate_store_id(&r.store_id)?;
        let store = r.store_id.clone();
        let snapshot = self
            .change_prompts(&r.store_id, intent, move |s| s.rollback(&store, intent))
            .await?;
        // After rolling back to "none" this is the default store's prompt, which is what the
        // store's new streams get.
        let info = snapshot
            .describe_active(&r.store_id, intent, |i| self.inner.max_tokens_for(i))
            .ok_or_else(|| Self::not_found(&r.store_id, intent, "(active)"))?;
        Ok(Response::new(info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_values() {
        assert_eq!(parse_grpc_timeout("150m"), Some(Duration::from_millis(150)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(
            parse_grpc_timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("5n"), Some(Duration::from_nanos(5)));
        for bad in [
            "",
            "m",
            "150",
            "150ms",
            "123456789m",
            "-1m",
            "1.5S",
            "15x",
            "1é",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }
}
