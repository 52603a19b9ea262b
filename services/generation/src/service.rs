//! The gRPC face of generation: validates the request, resolves the prompt, and runs the
//! backend in a spawned producer that feeds a bounded channel, so a slow reader pauses the
//! model and a reader that goes away stops it.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::StreamExt;
use mangaassist_config::Config;
use mangaassist_proto::v1 as pb;
use mangaassist_server::{Daemon, ServeOptions, ServerError};
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::{
    GenerationError, ModelBackend, ModelEvent, PromptStore, RenderedPrompt, SimulatedModel,
    StopReason,
};

/// Output cap for an intent missing from `generation.max_tokens`.
const FALLBACK_MAX_TOKENS: u32 = 256;

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    finished: AtomicU64,
    cancelled: AtomicU64,
}

struct Inner {
    backend: Arc<dyn ModelBackend>,
    prompts: PromptStore,
    max_tokens: BTreeMap<String, u32>,
    stream_buffer: usize,
    counters: Counters,
}

/// The generation daemon. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct GenerationDaemon {
    inner: Arc<Inner>,
}

type EventStream = ReceiverStream<Result<pb::GenerateResponse, Status>>;

fn ms(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl GenerationDaemon {
    /// Loads the prompts and builds the configured backend (`simulated`).
    pub async fn new(config: &Config) -> Result<Self, GenerationError> {
        let backend: Arc<dyn ModelBackend> = match config.generation.backend.as_str() {
            "simulated" => Arc::new(SimulatedModel::new(&config.generation)),
            other => {
                return Err(GenerationError::Config(format!(
                    "generation.backend `{other}` is not available (one of: simulated)"
                )));
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
        let dir = config.generation.prompts_dir.clone();
        let prompts = tokio::task::spawn_blocking(move || PromptStore::load(&dir))
            .await
            .map_err(|e| GenerationError::Config(format!("prompt loader panicked: {e}")))??;
        tracing::info!(
            prompts = prompts.list(|_| 0).len(),
            dir = %config.generation.prompts_dir.display(),
            "prompts loaded"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                prompts,
                max_tokens: config.generation.max_tokens.clone(),
                stream_buffer: config.generation.stream_buffer.max(1),
                counters: Counters::default(),
            }),
        })
    }

    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        opts: ServeOptions,
    ) -> Result<(), ServerError> {
        Daemon::new("generation")
            .add_service(pb::generation_service_server::GenerationServiceServer::new(
                self,
            ))
            .serve(listener, opts)
            .await
    }

    /// The prompts loaded at start.
    pub fn prompts(&self) -> &PromptStore {
        &self.inner.prompts
    }

    fn max_tokens_for(&self, intent: pb::Intent) -> u32 {
        self.inner
            .max_tokens
            .get(intent.label())
            .copied()
            .unwrap_or(FALLBACK_MAX_TOKENS)
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

    /// Validates `req` and starts generating: the in-process entry point (the gRPC handler
    /// wraps it). Dropping the returned stream stops the producer.
    pub fn start(&self, req: pb::GenerateRequest) -> Result<EventStream, GenerationError> {
        let t0 = Instant::now();
        if req.query.trim().is_empty() {
            return Err(GenerationError::InvalidArgument("query is empty".into()));
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
        let (prompt_store, prompt) =
            self.inner
                .prompts
                .resolve(&req.store_id, intent, &req.prompt_version)?;
        let rendered = RenderedPrompt::new(prompt_store, prompt, &req, intent);
        let prompt_version = rendered.version.clone();
        let max_tokens = if req.max_tokens == 0 {
            self.max_tokens_for(intent)
        } else {
            req.max_tokens
        };
        let model = self.inner.backend.model_name(tier);
        let mut events = self.inner.backend.stream(rendered, &req, tier, max_tokens);
        let (tx, rx) = mpsc::channel(self.inner.stream_buffer);
        let inner = self.inner.clone();
        inner.counters.started.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(intent = intent.label(), tier = tier.label(), %model, max_tokens, prompt_version, "generation started");
        tokio::spawn(async move {
            let cancelled = || {
                inner.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("generation_cancelled_total", "model" => model.clone())
                    .increment(1);
                tracing::debug!(%model, "reader went away, generation stopped");
            };
            let mut index: u32 = 0;
            let mut first_token_ms: Option<u32> = None;
            let mut stop = StopReason::EndTurn;
            let done = loop {
                // Also watch the reader while the model is thinking, so a client that leaves
                // before the first token frees the model at once.
                let ev = tokio::select! {
                    biased;
                    () = tx.closed() => { cancelled(); return; }
                    ev = events.next() => ev,
                };
                match ev {
                    Some(Ok(ModelEvent::Token(text))) => {
                        if index >= max_tokens {
                            stop = StopReason::MaxTokens;
                            break None;
                        }
                        if first_token_ms.is_none() {
                            let ft = ms(t0.elapsed());
                            first_token_ms = Some(ft);
                            metrics::histogram!("generation_first_token_ms", "model" => model.clone())
                                .record(f64::from(ft));
                        }
                        let delta = pb::GenerateResponse {
                            event: Some(pb::generate_response::Event::Delta(pb::TokenDelta {
                                text,
                                index,
                            })),
                        };
                        index += 1;
                        if tx.send(Ok(delta)).await.is_err() {
                            cancelled();
                            return;
                        }
                    }
                    Some(Ok(ModelEvent::Done(d))) => break Some(d),
                    Some(Err(e)) => {
                        tracing::warn!(%model, error = %e, "model backend failed");
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                    None => break None,
                }
            };
            // Drop the backend's stream before the summary so its work stops now.
            drop(events);
            let (input_tokens, product_ids, confidence) = match &done {
                Some(d) => {
                    if d.stop_reason == StopReason::MaxTokens {
                        stop = StopReason::MaxTokens;
                    }
                    (d.input_tokens, d.product_ids.clone(), d.confidence)
                }
                None => (0, Vec::new(), 0.5),
            };
            let summary = pb::GenerateSummary {
                model: model.clone(),
                tier: tier as i32,
                input_tokens,
                output_tokens: index,
                first_token_ms: first_token_ms.unwrap_or_else(|| ms(t0.elapsed())),
                total_ms: ms(t0.elapsed()),
                prompt_version,
                product_ids,
                confidence,
                stop_reason: stop.as_str().to_string(),
            };
            metrics::counter!("generation_output_tokens_total", "model" => model.clone())
                .increment(u64::from(index));
            metrics::counter!("generation_streams_total", "model" => model.clone(), "stop_reason" => stop.as_str())
                .increment(1);
            let done_msg = pb::GenerateResponse {
                event: Some(pb::generate_response::Event::Done(summary)),
            };
            if tx.send(Ok(done_msg)).await.is_err() {
                cancelled();
                return;
            }
            inner.counters.finished.fetch_add(1, Ordering::Relaxed);
        });
        Ok(ReceiverStream::new(rx))
    }
}

#[tonic::async_trait]
impl pb::generation_service_server::GenerationService for GenerationDaemon {
    type GenerateStream = EventStream;

    async fn generate(
        &self,
        request: Request<pb::GenerateRequest>,
    ) -> Result<Response<Self::GenerateStream>, Status> {
        Ok(Response::new(self.start(request.into_inner())?))
    }

    async fn list_prompts(
        &self,
        _request: Request<pb::ListPromptsRequest>,
    ) -> Result<Response<pb::ListPromptsResponse>, Status> {
        Ok(Response::new(pb::ListPromptsResponse {
            prompts: self.inner.prompts.list(|i| self.max_tokens_for(i)),
        }))
    }
}
