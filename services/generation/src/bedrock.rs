//! A [`ModelBackend`] for Claude (or any Converse-capable model) on AWS Bedrock, streamed with
//! ConverseStream.
//!
//! One call per stream: the rendered system prompt as `system`, the conversation history as
//! alternating user/assistant messages (oldest first), then the customer's question with the
//! context (products, documents, orders, profile) as the last user message, and
//! `inferenceConfig.maxTokens` from the request. `contentBlockDelta` text becomes tokens,
//! `metadata.usage` the token counts, and `messageStop.stopReason` the stop reason.
//!
//! - **Connections**: one SDK client (one hyper pool, from `mangaassist-aws`) per backend, so
//!   calls reuse warm TLS connections. `warm_up` makes one tiny call per tier (`maxTokens` 1)
//!   in the background at start, so the first customer does not pay for TLS and connection
//!   set-up; a failure is logged, not fatal. `keep_alive_seconds > 0` repeats that call per
//!   tier on an interval so the pool never goes cold. **Each of these calls is billed** (a few
//!   input tokens and one output token), which is why keep-alive is off by default.
//! - **Retries**: the SDK's own retries are disabled; this backend owns the policy, within
//!   the caller's deadline. A throttled, unavailable, not-ready or 5xx call (before the HTTP
//!   response, or as an exception event before the first token) is retried after a full-jitter
//!   back-off (random in `0..=retry_base_ms * 2^n`), at most `max_retries` times and only while
//!   even the longest back-off ends before the deadline. Then, with
//!   `fallback_to_other_tier`, the other tier's model is tried once, and `ModelDone::model`
//!   names it so `done.model` tells the truth. Otherwise the stream fails with
//!   [`GenerationError::Backend`] (gRPC `UNAVAILABLE`) listing every attempt.
//! - **No duplicated text**: once a token has been handed out, a throttle or a broken stream
//!   is an error, never a retry (the customer already has part of the answer).
//! - **Errors**: `ValidationException`, `AccessDeniedException`, `ResourceNotFoundException`
//!   (an unknown model id), other 4xx answers and missing credentials are configuration
//!   problems: `FAILED_PRECONDITION` with the service's own message.
//! - **Deadlines**: each call's SDK operation timeout is the caller's remaining deadline
//!   (bounding the wait for the HTTP response); the daemon stops the stream at the deadline.
//! - **Cancellation**: the SDK's event receiver lives inside the returned stream, so dropping
//!   the stream (the reader left, the deadline passed) drops the response body and closes the
//!   upstream HTTP stream, and Bedrock stops generating. A back-off sleep is dropped as well.
//! - **Confidence**: Bedrock does not report one, so every answer is assessed
//!   [`BEDROCK_CONFIDENCE`] before its first token (the fast-tier quality gate never
//!   escalates it).

use std::{collections::VecDeque, sync::Arc, time::Duration};

use aws_sdk_bedrockruntime::{
    Client,
    config::{http::HttpResponse, retry::RetryConfig, timeout::TimeoutConfig},
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    operation::converse_stream::ConverseStreamError,
    types::{
        ContentBlock, ContentBlockDelta, ConversationRole, ConverseStreamOutput,
        InferenceConfiguration, Message, SystemContentBlock, error::ConverseStreamOutputError,
    },
};
use aws_smithy_types::retry::ErrorKind;
use futures::StreamExt;
use mangaassist_aws::AwsTarget;
use mangaassist_config::BedrockSettings;
use mangaassist_proto::v1 as pb;
use rand::Rng;
use tokio::time::Instant;
use tokio_util::{
    sync::{CancellationToken, DropGuard},
    task::TaskTracker,
};

use crate::{
    GenerationError, ModelBackend, ModelEvent, ModelStream, RenderedPrompt, StopReason,
    backend::StreamedAnswer, render_context,
};

/// Confidence reported for every answer: Bedrock gives none (see the module docs).
pub const BEDROCK_CONFIDENCE: f32 = 1.0;

/// What a warm-up or keep-alive call says; the model writes one token back.
const PING_TEXT: &str = "Hi";
/// A warm-up or keep-alive call that takes longer than this is abandoned.
const PING_TIMEOUT: Duration = Duration::from_secs(30);
/// Back-off doubling stops here (2^16 times the base is far beyond any deadline).
const MAX_BACKOFF_DOUBLINGS: u32 = 16;

type Events = aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver<
    ConverseStreamOutput,
    ConverseStreamOutputError,
>;

/// What is shared by every stream and the background calls.
#[derive(Debug)]
struct Shared {
    client: Client,
    fast_model: String,
    smart_model: String,
    max_retries: u32,
    retry_base: Duration,
    fallback_to_other_tier: bool,
    connect_timeout: Duration,
}

impl Shared {
    fn model(&self, tier: pb::ModelTier) -> &str {
        match tier {
            pb::ModelTier::Smart => &self.smart_model,
            _ => &self.fast_model,
        }
    }

    fn other_model(&self, tier: pb::ModelTier) -> &str {
        match tier {
            pb::ModelTier::Smart => &self.fast_model,
            _ => &self.smart_model,
        }
    }
}

/// Streams answers from Bedrock ConverseStream.
#[derive(Debug)]
pub struct BedrockBackend {
    shared: Arc<Shared>,
    /// The warm-up and keep-alive tasks; [`ModelBackend::shutdown`] stops and awaits them.
    background: TaskTracker,
    stop: CancellationToken,
    /// Stops them as well when the backend goes without a shutdown.
    _stop_on_drop: DropGuard,
}

impl BedrockBackend {
    /// Builds the backend with the standard AWS credential chain, the settings' region
    /// (empty: the chain's) and endpoint, and starts the warm-up and keep-alive calls the
    /// settings ask for. Must run inside a Tokio runtime.
    pub async fn new(settings: &BedrockSettings) -> Result<Self, GenerationError> {
        Self::with_target(
            settings,
            AwsTarget {
                region: settings.region.clone(),
                endpoint_url: settings.endpoint_url.clone(),
                connect_timeout: Duration::from_millis(settings.connect_timeout_ms.max(1)),
                static_credentials: None,
            },
        )
        .await
    }

    /// Same as [`BedrockBackend::new`] with an explicit AWS target (static credentials for a
    /// local test server); the region and endpoint of `target` win over the settings'.
    pub async fn with_target(
        settings: &BedrockSettings,
        target: AwsTarget,
    ) -> Result<Self, GenerationError> {
        for (field, id) in [
            ("fast_model_id", &settings.fast_model_id),
            ("smart_model_id", &settings.smart_model_id),
        ] {
            if id.trim().is_empty() {
                return Err(GenerationError::Config(format!(
                    "generation.bedrock.{field} is empty"
                )));
            }
        }
        let sdk = mangaassist_aws::sdk_config(&target, "generation.bedrock.region")
            .await
            .map_err(|e| GenerationError::Config(e.to_string()))?;
        // The backend retries itself, within the caller's deadline; SDK retries would not
        // know the deadline and could repeat a call whose answer was already half sent.
        let conf = aws_sdk_bedrockruntime::config::Builder::from(&sdk)
            .retry_config(RetryConfig::disabled())
            .build();
        let shared = Arc::new(Shared {
            client: Client::from_conf(conf),
            fast_model: settings.fast_model_id.clone(),
            smart_model: settings.smart_model_id.clone(),
            max_retries: settings.max_retries,
            retry_base: Duration::from_millis(settings.retry_base_ms),
            fallback_to_other_tier: settings.fallback_to_other_tier,
            connect_timeout: target.connect_timeout.max(Duration::from_millis(1)),
        });
        let stop = CancellationToken::new();
        let background = TaskTracker::new();
        if settings.warm_up {
            let shared = shared.clone();
            let stop = stop.clone();
            background.spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = ping_tiers(&shared, "warm-up") => {}
                }
            });
        }
        if settings.keep_alive_seconds > 0 {
            let period = Duration::from_secs(settings.keep_alive_seconds);
            let shared = shared.clone();
            let stop = stop.clone();
            background.spawn(async move {
                let mut tick = tokio::time::interval_at(Instant::now() + period, period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = tick.tick() => ping_tiers(&shared, "keep-alive").await,
                    }
                }
            });
        }
        background.close();
        Ok(Self {
            shared,
            background,
            stop: stop.clone(),
            _stop_on_drop: stop.drop_guard(),
        })
    }
}

/// One tiny call per tier, both at once; failures are logged.
async fn ping_tiers(shared: &Shared, why: &'static str) {
    let (fast, smart) = futures::join!(
        ping(shared, &shared.fast_model),
        ping(shared, &shared.smart_model)
    );
    for (model, result) in [(&shared.fast_model, fast), (&shared.smart_model, smart)] {
        match result {
            Ok(took) => {
                tracing::info!(%model, ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX), "bedrock {why} call done");
            }
            Err(e) => tracing::warn!(%model, error = %e, "bedrock {why} call failed"),
        }
    }
}

/// A `maxTokens` 1 call, read to its end so the connection returns to the pool.
async fn ping(shared: &Shared, model: &str) -> Result<Duration, String> {
    let t0 = Instant::now();
    let call = async {
        let message =
            text_message(ConversationRole::User, PING_TEXT.into()).map_err(|e| e.to_string())?;
        let out = shared
            .client
            .converse_stream()
            .model_id(model)
            .messages(message)
            .inference_config(InferenceConfiguration::builder().max_tokens(1).build())
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        let mut events = out.stream;
        while events
            .recv()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?
            .is_some()
        {}
        Ok(t0.elapsed())
    };
    tokio::time::timeout(PING_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {PING_TIMEOUT:?}")))
}

impl ModelBackend for BedrockBackend {
    fn shutdown(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stop.cancel();
            self.background.wait().await;
        })
    }

    fn model_name(&self, tier: pb::ModelTier) -> String {
        self.shared.model(tier).to_string()
    }

    fn stream(
        &self,
        prompt: RenderedPrompt,
        req: &pb::GenerateRequest,
        tier: pb::ModelTier,
        max_tokens: u32,
    ) -> ModelStream {
        self.stream_with_deadline(prompt, req, tier, max_tokens, None)
    }

    fn stream_with_deadline(
        &self,
        prompt: RenderedPrompt,
        req: &pb::GenerateRequest,
        tier: pb::ModelTier,
        max_tokens: u32,
        deadline: Option<Instant>,
    ) -> ModelStream {
        let mut models = vec![self.shared.model(tier).to_string()];
        let other = self.shared.other_model(tier);
        if self.shared.fallback_to_other_tier && other != models[0] {
            models.push(other.to_string());
        }
        let turns = conversation(&req.history, last_message(req, &prompt));
        let messages: Result<Vec<Message>, GenerationError> = turns
            .into_iter()
            .map(|(role, text)| text_message(role, text))
            .collect();
        let run = Run {
            shared: self.shared.clone(),
            system: prompt.system.clone(),
            messages: Vec::new(),
            max_tokens: i32::try_from(max_tokens).unwrap_or(i32::MAX),
            deadline,
            models,
            model_index: 0,
            retries: 0,
            failures: Vec::new(),
            events: None,
            queue: VecDeque::new(),
            answer: StreamedAnswer::new(
                req,
                &prompt,
                BEDROCK_CONFIDENCE,
                "Bedrock does not report confidence",
            ),
            usage: None,
            stop: None,
            finished: false,
        };
        match messages {
            Ok(messages) => futures::stream::unfold(Run { messages, ..run }, |mut run| async {
                let item = run.next().await?;
                Some((item, run))
            })
            .boxed(),
            Err(e) => futures::stream::once(async { Err(e) }).boxed(),
        }
    }
}

/// The last user message for `req`: its context (in the answer's language, see
/// [`render_context`]) and the question. The history goes in as messages of its own, not a
/// second time in the context.
fn last_message(req: &pb::GenerateRequest, prompt: &RenderedPrompt) -> String {
    let context = render_context(&pb::GenerateRequest {
        history: Vec::new(),
        ..req.clone()
    });
    question(&context, &prompt.query)
}

/// The last user message: the context the gateway assembled, then the question.
fn question(context: &str, query: &str) -> String {
    if context.trim().is_empty() {
        query.to_string()
    } else {
        format!("{context}\nQuestion: {query}")
    }
}

/// The messages of a Converse call: `history` (newest first, as memory returns it) oldest
/// first, then `last` as the user's. Converse wants them to start with the user and
/// alternate, so turns of other roles and empty ones are skipped, an opening assistant turn
/// is dropped, and consecutive turns of one role are joined.
fn conversation(history: &[pb::Turn], last: String) -> Vec<(ConversationRole, String)> {
    let mut out: Vec<(ConversationRole, String)> = Vec::new();
    let turns = history.iter().rev().filter_map(|t| {
        let role = match t.role.as_str() {
            "user" => ConversationRole::User,
            "assistant" => ConversationRole::Assistant,
            _ => return None,
        };
        (!t.text.trim().is_empty()).then(|| (role, t.text.clone()))
    });
    for (role, text) in turns.chain(std::iter::once((ConversationRole::User, last))) {
        match out.last_mut() {
            None if role == ConversationRole::Assistant => {}
            Some((prev, prev_text)) if *prev == role => {
                prev_text.push_str("\n\n");
                prev_text.push_str(&text);
            }
            _ => out.push((role, text)),
        }
    }
    out
}

fn text_message(role: ConversationRole, text: String) -> Result<Message, GenerationError> {
    Message::builder()
        .role(role)
        .content(ContentBlock::Text(text))
        .build()
        .map_err(|e| GenerationError::Backend(format!("bedrock message could not be built: {e}")))
}

/// The longest back-off before retry `retry` (0-based): `base * 2^retry`.
fn backoff_ceiling(base: Duration, retry: u32) -> Duration {
    base.saturating_mul(1u32 << retry.min(MAX_BACKOFF_DOUBLINGS))
}

/// The daemon's two stop reasons; Bedrock's others end the answer as a turn would.
fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        _ => StopReason::EndTurn,
    }
}

/// A failed call or stream, sorted by what to do about it.
enum Failure {
    /// Throttled or briefly unavailable: worth another attempt if nothing was sent yet.
    Retryable(String),
    Fatal(GenerationError),
}

fn describe(e: &(impl ProvideErrorMetadata + std::fmt::Display)) -> String {
    let code = e.code().unwrap_or("UnknownError");
    match e.message() {
        Some(m) => format!("{code}: {m}"),
        None => format!("{code}: {e}"),
    }
}

/// A connection that failed or closed early (hyper's "connection closed before message
/// completed" is an `other` error of kind `TransientError`, not an I/O one).
fn is_transient<E, R>(err: &SdkError<E, R>) -> bool {
    match err {
        SdkError::DispatchFailure(d) => {
            d.is_io() || d.is_timeout() || matches!(d.as_other(), Some(ErrorKind::TransientError))
        }
        _ => false,
    }
}

fn is_credentials_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Sorts a failure of the call itself (before any event).
fn classify_call(model: &str, err: &SdkError<ConverseStreamError, HttpResponse>) -> Failure {
    match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let e = ctx.err();
            let text = format!("{} (HTTP {status})", describe(e));
            match e {
                ConverseStreamError::ThrottlingException(_)
                | ConverseStreamError::ServiceUnavailableException(_)
                | ConverseStreamError::ModelNotReadyException(_)
                | ConverseStreamError::InternalServerException(_) => Failure::Retryable(text),
                ConverseStreamError::ValidationException(_)
                | ConverseStreamError::AccessDeniedException(_)
                | ConverseStreamError::ResourceNotFoundException(_) => {
                    Failure::Fatal(GenerationError::FailedPrecondition(format!(
                        "bedrock rejected the call to model {model}: {text}"
                    )))
                }
                ConverseStreamError::ModelErrorException(_)
                | ConverseStreamError::ModelTimeoutException(_)
                | ConverseStreamError::ModelStreamErrorException(_) => Failure::Fatal(
                    GenerationError::Backend(format!("bedrock model {model} failed: {text}")),
                ),
                _ if status == 429 || status >= 500 => Failure::Retryable(text),
                _ if (400..500).contains(&status) && status != 408 => {
                    Failure::Fatal(GenerationError::FailedPrecondition(format!(
                        "bedrock rejected the call to model {model}: {text}"
                    )))
                }
                _ => Failure::Fatal(GenerationError::Backend(format!(
                    "bedrock model {model} failed: {text}"
                ))),
            }
        }
        SdkError::DispatchFailure(_) if is_transient(err) => {
            Failure::Retryable(format!("connection failed: {}", DisplayErrorContext(err)))
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)
            if is_credentials_error(err) =>
        {
            Failure::Fatal(GenerationError::FailedPrecondition(format!(
                "bedrock call to model {model} has no usable AWS credentials: {}",
                DisplayErrorContext(err)
            )))
        }
        SdkError::ConstructionFailure(_) => {
            Failure::Fatal(GenerationError::FailedPrecondition(format!(
                "bedrock call to model {model} could not be built: {}",
                DisplayErrorContext(err)
            )))
        }
        SdkError::TimeoutError(_) => Failure::Fatal(GenerationError::Backend(format!(
            "bedrock model {model} did not answer within the caller's deadline"
        ))),
        _ => Failure::Fatal(GenerationError::Backend(format!(
            "bedrock call to model {model} failed: {}",
            DisplayErrorContext(err)
        ))),
    }
}

/// Sorts a failure while reading the event stream.
fn classify_stream<R: std::fmt::Debug>(
    model: &str,
    err: &SdkError<ConverseStreamOutputError, R>,
) -> Failure {
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let text = describe(e);
            match e {
                ConverseStreamOutputError::ThrottlingException(_)
                | ConverseStreamOutputError::ServiceUnavailableException(_)
                | ConverseStreamOutputError::InternalServerException(_)
                | ConverseStreamOutputError::ModelStreamErrorException(_) => {
                    Failure::Retryable(text)
                }
                ConverseStreamOutputError::ValidationException(_) => {
                    Failure::Fatal(GenerationError::FailedPrecondition(format!(
                        "bedrock rejected the stream of model {model}: {text}"
                    )))
                }
                _ => Failure::Fatal(GenerationError::Backend(format!(
                    "bedrock stream of model {model} failed: {text}"
                ))),
            }
        }
        SdkError::DispatchFailure(_) if is_transient(err) => {
            Failure::Retryable(format!("stream broke off: {}", DisplayErrorContext(err)))
        }
        _ => Failure::Fatal(GenerationError::Backend(format!(
            "bedrock stream of model {model} failed: {}",
            DisplayErrorContext(err)
        ))),
    }
}

/// One stream: its calls (retries, fallback) and what it has handed out so far.
struct Run {
    shared: Arc<Shared>,
    system: String,
    messages: Vec<Message>,
    max_tokens: i32,
    deadline: Option<Instant>,
    /// The tier's model, then the other tier's when falling back is allowed.
    models: Vec<String>,
    model_index: usize,
    /// Retries of the current model so far.
    retries: u32,
    /// Every retryable failure, for the final error.
    failures: Vec<String>,
    events: Option<Events>,
    queue: VecDeque<ModelEvent>,
    answer: StreamedAnswer,
    usage: Option<(Option<u32>, Option<u32>)>,
    stop: Option<String>,
    finished: bool,
}

impl Run {
    fn model(&self) -> &str {
        &self.models[self.model_index]
    }

    /// The next event, `None` after the last one (or after an error).
    async fn next(&mut self) -> Option<Result<ModelEvent, GenerationError>> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some(Ok(ev));
            }
            if self.finished {
                return None;
            }
            let Some(events) = self.events.as_mut() else {
                match self.open().await {
                    Ok(events) => self.events = Some(events),
                    Err(e) => return Some(Err(self.fail(e))),
                }
                continue;
            };
            match events.recv().await {
                Ok(Some(event)) => self.handle(event),
                Ok(None) if self.stop.is_some() => self.finish(),
                Ok(None) => {
                    let e = GenerationError::Backend(format!(
                        "bedrock stream of model {} ended after {} deltas without messageStop",
                        self.model(),
                        self.answer.deltas()
                    ));
                    return Some(Err(self.fail(e)));
                }
                Err(err) => {
                    // Drop the broken stream before anything else (a retry opens a new one).
                    self.events = None;
                    let model = self.model().to_string();
                    let failure = classify_stream(&model, &err);
                    let e = match failure {
                        Failure::Retryable(why) if self.answer.deltas() == 0 => {
                            self.stop = None;
                            self.usage = None;
                            match self.back_off(&model, why).await {
                                Ok(()) => continue,
                                Err(e) => e,
                            }
                        }
                        Failure::Retryable(why) => GenerationError::Backend(format!(
                            "bedrock stream of model {model} failed after {} deltas, not \
                             retried since part of the answer was sent: {why}",
                            self.answer.deltas()
                        )),
                        Failure::Fatal(e) => e,
                    };
                    return Some(Err(self.fail(e)));
                }
            }
        }
    }

    fn fail(&mut self, e: GenerationError) -> GenerationError {
        self.finished = true;
        self.events = None;
        e
    }

    /// Calls ConverseStream until a response starts, retrying and falling back as the
    /// module docs describe.
    async fn open(&mut self) -> Result<Events, GenerationError> {
        loop {
            let model = self.model().to_string();
            match self.call(&model).await {
                Ok(events) => return Ok(events),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retryable(why)) => self.back_off(&model, why).await?,
            }
        }
    }

    async fn call(&self, model: &str) -> Result<Events, Failure> {
        let mut timeouts = TimeoutConfig::builder().connect_timeout(self.shared.connect_timeout);
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure::Fatal(GenerationError::Backend(format!(
                    "the caller's deadline passed before bedrock model {model} was called"
                ))));
            }
            timeouts = timeouts.operation_timeout(left);
        }
        let mut op = self
            .shared
            .client
            .converse_stream()
            .model_id(model)
            .set_messages(Some(self.messages.clone()))
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(self.max_tokens)
                    .build(),
            );
        // Bedrock rejects a blank system block.
        if !self.system.trim().is_empty() {
            op = op.system(SystemContentBlock::Text(self.system.clone()));
        }
        op.customize()
            .config_override(
                aws_sdk_bedrockruntime::config::Builder::default().timeout_config(timeouts.build()),
            )
            .send()
            .await
            .map(|out| out.stream)
            .map_err(|e| classify_call(model, &e))
    }

    /// After a retryable failure of `model`: waits and retries it, moves to the other tier,
    /// or gives up with every failure in the error.
    async fn back_off(&mut self, model: &str, why: String) -> Result<(), GenerationError> {
        tracing::debug!(%model, error = %why, retries = self.retries, "bedrock call failed, may retry");
        self.failures.push(format!("{model}: {why}"));
        if self.model_index == 0 && self.retries < self.shared.max_retries {
            let ceiling = backoff_ceiling(self.shared.retry_base, self.retries);
            let fits = self
                .deadline
                .is_none_or(|deadline| Instant::now() + ceiling < deadline);
            if fits {
                let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
                let wait = Duration::from_millis(rand::rng().random_range(0..=ceiling_ms));
                metrics::counter!("bedrock_retries_total", "model" => model.to_string())
                    .increment(1);
                tokio::time::sleep(wait).await;
                self.retries += 1;
                return Ok(());
            }
        }
        let deadline_passed = self.deadline.is_some_and(|d| Instant::now() >= d);
        if self.model_index + 1 < self.models.len() && !deadline_passed {
            self.model_index += 1;
            self.retries = 0;
            let to = self.model().to_string();
            metrics::counter!("bedrock_fallbacks_total", "from" => model.to_string(), "to" => to.clone())
                .increment(1);
            tracing::info!(from = %model, %to, "bedrock model stays throttled, trying the other tier's model");
            return Ok(());
        }
        Err(GenerationError::Backend(format!(
            "bedrock unavailable after {} attempts: {}",
            self.failures.len(),
            self.failures.join("; ")
        )))
    }

    fn handle(&mut self, event: ConverseStreamOutput) {
        match event {
            ConverseStreamOutput::ContentBlockDelta(d) => {
                if let Some(ContentBlockDelta::Text(text)) = d.delta {
                    self.answer.push(text, &mut self.queue);
                }
            }
            ConverseStreamOutput::MessageStop(m) => {
                let reason = m.stop_reason.as_str().to_string();
                if matches!(reason.as_str(), "content_filtered" | "guardrail_intervened") {
                    tracing::warn!(model = %self.model(), reason, "bedrock cut the answer short");
                }
                self.stop = Some(reason);
            }
            ConverseStreamOutput::Metadata(m) => {
                if let Some(u) = m.usage {
                    self.usage = Some((
                        u32::try_from(u.input_tokens).ok(),
                        u32::try_from(u.output_tokens).ok(),
                    ));
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self) {
        self.finished = true;
        self.events = None;
        let (input, output) = self.usage.unwrap_or_default();
        self.queue.push_back(self.answer.done(
            input,
            output,
            stop_reason(self.stop.as_deref().unwrap_or("end_turn")),
            Some(self.model().to_string()),
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn turn(role: &str, text: &str) -> pb::Turn {
        pb::Turn {
            role: role.into(),
            text: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn history_becomes_alternating_messages_ending_with_the_question() {
        // Newest first, as memory returns it.
        let history = vec![
            turn("assistant", "Try Frieren."),
            turn("user", "Something calm?"),
            turn("user", "I like fantasy."),
            turn("system", "ignored"),
            turn("assistant", "Welcome!"),
        ];
        let got = conversation(&history, "Q".into());
        assert_eq!(
            got,
            vec![
                (
                    ConversationRole::User,
                    "I like fantasy.\n\nSomething calm?".to_string()
                ),
                (ConversationRole::Assistant, "Try Frieren.".to_string()),
                (ConversationRole::User, "Q".to_string()),
            ]
        );
        // The last history turn is the user's: the question joins it.
        let got = conversation(&[turn("user", "hello"), turn("", "x")], "Q".into());
        assert_eq!(
            got,
            vec![(ConversationRole::User, "hello\n\nQ".to_string())]
        );
        assert_eq!(
            conversation(&[], "Q".into()),
            vec![(ConversationRole::User, "Q".to_string())]
        );
    }

    #[test]
    fn question_carries_the_context() {
        assert_eq!(question("", "Q?"), "Q?");
        assert_eq!(
            question("Products:\n- x\n", "Q?"),
            "Products:\n- x\n\nQuestion: Q?"
        );
    }

    #[test]
    fn a_japanese_answer_is_asked_for_and_given_japanese_text() {
        let version =
            crate::PromptVersion::parse("v1", "Answer in English unless asked otherwise.\n")
                .unwrap();
        let mut req = pb::GenerateRequest {
            query: "ONE PIECEは在庫ありますか？".into(),
            locale: "ja".into(),
            products: vec![pb::ProductHit {
                product: Some(pb::Product {
                    id: "p1".into(),
                    title: "One Piece, Vol. 1".into(),
                    title_ja: "ONE PIECE 1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            documents: vec![pb::DocumentHit {
                document: Some(pb::Document {
                    id: "faq-stock-restock".into(),
                    title: "Restocks".into(),
                    body: "Restocked within 1-2 weeks.".into(),
                    title_ja: "再入荷".into(),
                    body_ja: "1〜2週間で再入荷します。".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            history: vec![turn("user", "こんにちは")],
            ..Default::default()
        };
        let prompt = RenderedPrompt::new("default", &version, &req, pb::Intent::ProductSearch);
        // The gateway's choice is the system prompt's last word, after the prompt's own rule.
        assert!(
            prompt.system.ends_with(
                "unless asked otherwise.\n\nAnswer in Japanese, in polite です/ます form."
            ),
            "{}",
            prompt.system
        );
        let last = last_message(&req, &prompt);
        assert!(last.contains("One Piece, Vol. 1 (ONE PIECE 1)"), "{last}");
        assert!(
            last.contains("- [faq-stock-restock] 再入荷: 1〜2週間で再入荷します。"),
            "{last}"
        );
        assert!(
            !last.contains("Restocked") && !last.contains("こんにちは"),
            "{last}"
        );
        // Without a locale an English question gets the English text and no instruction.
        req.locale.clear();
        req.query = "Is One Piece in stock?".into();
        let prompt = RenderedPrompt::new("default", &version, &req, pb::Intent::ProductSearch);
        assert_eq!(prompt.system, "Answer in English unless asked otherwise.");
        let last = last_message(&req, &prompt);
        assert!(
            last.contains("Restocks: Restocked within 1-2 weeks."),
            "{last}"
        );
        assert!(!last.contains("ONE PIECE 1"), "{last}");
    }

    #[test]
    fn backoff_doubles_and_saturates() {
        let base = Duration::from_millis(40);
        assert_eq!(backoff_ceiling(base, 0), Duration::from_millis(40));
        assert_eq!(backoff_ceiling(base, 3), Duration::from_millis(320));
        assert_eq!(backoff_ceiling(base, 100), backoff_ceiling(base, 16));
        assert_eq!(
            backoff_ceiling(Duration::MAX, 5),
            Duration::MAX,
            "saturates instead of overflowing"
        );
    }

    #[test]
    fn stop_reasons_map_to_the_daemons() {
        assert_eq!(stop_reason("end_turn"), StopReason::EndTurn);
        assert_eq!(stop_reason("stop_sequence"), StopReason::EndTurn);
        assert_eq!(stop_reason("max_tokens"), StopReason::MaxTokens);
        assert_eq!(
            stop_reason("model_context_window_exceeded"),
            StopReason::MaxTokens
        );
    }
}
