//! The Bedrock backend with the real SDK against a local ConverseStream server (AWS event
//! stream frames over HTTP): request shape, token order, usage, retries within the deadline,
//! falling back to the other tier, errors, a broken stream, cancellation, warm-up and
//! keep-alive, and the daemon over gRPC with `generation.backend = "bedrock"`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use bytes::Bytes;
use futures::StreamExt;
use mangaassist_aws::AwsTarget;
use mangaassist_client::GenerationClient;
use mangaassist_config::{BedrockSettings, Config};
use mangaassist_generation::{
    BedrockBackend, GenerationDaemon, GenerationError, ModelBackend, ModelDone, ModelEvent,
    ModelStream, PromptStyle, RenderedPrompt, StopReason,
};
use mangaassist_proto::v1 as pb;
use mangaassist_server::{ServeOptions, bind_with_addr};
use mangaassist_standins::bedrock::{answer, delta, exception, message_start};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

/// Model ids with a `:` as real ones have, so the path encoding is exercised.
const FAST: &str = "test.fast-model-v1:0";
const SMART: &str = "test.smart-model-v2:0";
const SYSTEM: &str = "You are the manga_jp store assistant.";

/// What the fake answers one call with.
enum Reply {
    /// 200 with these event-stream frames, then a clean end.
    Frames(Vec<Bytes>),
    /// These frames, then the connection breaks when the receiver fires (so the frames
    /// are known to have reached the client first).
    Cut(Vec<Bytes>, oneshot::Receiver<()>),
    /// The connection breaks before the response is complete.
    Abort,
    /// No response at all.
    Stall,
    /// These frames, then nothing until the client goes; the sender fires when the body is
    /// dropped.
    Hang(Vec<Bytes>, oneshot::Sender<()>),
    /// An HTTP error the way Bedrock sends one (restJson: `x-amzn-ErrorType` and a message).
    Error(u16, &'static str, &'static str),
}

/// Picks the reply from the model id and how many calls that model had before this one.
type Script = Arc<dyn Fn(&str, usize) -> Reply + Send + Sync>;

/// One call as the fake received it.
#[derive(Debug)]
struct Seen {
    model: String,
    body: serde_json::Value,
}

#[derive(Clone)]
struct Fake {
    script: Script,
    calls: Arc<Mutex<HashMap<String, usize>>>,
    seen: mpsc::UnboundedSender<Seen>,
}

struct FireOnDrop(Option<oneshot::Sender<()>>);

impl Drop for FireOnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

async fn converse_stream(
    State(fake): State<Fake>,
    Path(model): Path<String>,
    body: Bytes,
) -> Response {
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON request body");
    let n = {
        let mut calls = fake.calls.lock().unwrap();
        let n = calls.entry(model.clone()).or_default();
        *n += 1;
        *n - 1
    };
    let reply = (fake.script)(&model, n);
    let _ = fake.seen.send(Seen { model, body });
    let stream = |body: Body| {
        Response::builder()
            .header(header::CONTENT_TYPE, "application/vnd.amazon.eventstream")
            .body(body)
            .unwrap()
    };
    match reply {
        Reply::Frames(frames) => stream(Body::from_stream(futures::stream::iter(
            frames.into_iter().map(Ok::<_, std::io::Error>),
        ))),
        Reply::Cut(frames, cut) => stream(Body::from_stream(
            futures::stream::iter(frames.into_iter().map(Ok)).chain(futures::stream::once(async {
                let _ = cut.await;
                Err(std::io::Error::other("server died"))
            })),
        )),
        Reply::Stall => std::future::pending().await,
        Reply::Abort => stream(Body::from_stream(futures::stream::once(async {
            Err::<Bytes, _>(std::io::Error::other("server died"))
        }))),
        Reply::Hang(frames, fired) => {
            let guard = FireOnDrop(Some(fired));
            let body = futures::stream::iter(frames.into_iter().map(Ok::<_, std::io::Error>))
                .chain(futures::stream::pending())
                .map(move |frame| {
                    let _keep = &guard;
                    frame
                });
            stream(Body::from_stream(body))
        }
        Reply::Error(status, kind, message) => (
            StatusCode::from_u16(status).unwrap(),
            [
                (
                    "x-amzn-ErrorType",
                    format!("{kind}:http://internal.amazon.com/coral/"),
                ),
                ("content-type", "application/json".to_string()),
            ],
            serde_json::json!({ "message": message }).to_string(),
        )
            .into_response(),
    }
}

/// Starts the fake on a free port; returns its URL and what it sees.
async fn fake(
    script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static,
) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/model/{model_id}/converse-stream", post(converse_stream))
        .with_state(Fake {
            script: Arc::new(script),
            calls: Arc::default(),
            seen: tx,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), rx)
}

const TOKENS: &[&str] = &[
    "Try",
    " \"Frieren:",
    " Beyond Journey's End, Vol. 1\"",
    " — a café",
    " of quiet magic 🌸",
    ".",
];

fn settings(tweak: impl FnOnce(&mut BedrockSettings)) -> BedrockSettings {
    let mut s = BedrockSettings {
        fast_model_id: FAST.into(),
        smart_model_id: SMART.into(),
        warm_up: false,
        retry_base_ms: 5,
        ..BedrockSettings::default()
    };
    tweak(&mut s);
    s
}

fn target(url: &str) -> AwsTarget {
    AwsTarget {
        region: "us-east-1".into(),
        endpoint_url: url.into(),
        connect_timeout: Duration::from_secs(1),
        static_credentials: Some(("test".into(), "test".into())),
    }
}

async fn backend(url: &str, tweak: impl FnOnce(&mut BedrockSettings)) -> BedrockBackend {
    BedrockBackend::with_target(&settings(tweak), target(url))
        .await
        .unwrap()
}

fn request(tier: pb::ModelTier) -> pb::GenerateRequest {
    let product = |id: &str, title: &str| pb::ProductHit {
        product: Some(pb::Product {
            id: id.into(),
            title: title.into(),
            ..Default::default()
        }),
        score: 0.5,
        ..Default::default()
    };
    let turn = |role: &str, text: &str| pb::Turn {
        role: role.into(),
        text: text.into(),
        ..Default::default()
    };
    pb::GenerateRequest {
        query: "Recommend a fantasy manga".into(),
        intent: pb::Intent::Recommendation as i32,
        tier: tier as i32,
        store_id: "manga_jp".into(),
        max_tokens: 64,
        products: vec![
            product("p-frieren-1", "Frieren: Beyond Journey's End, Vol. 1"),
            product("p-berserk-1", "Berserk, Vol. 1"),
        ],
        // Newest first, as memory returns it.
        history: vec![
            turn("assistant", "Welcome! What do you like to read?"),
            turn("user", "Hi, I like quiet stories."),
        ],
        ..Default::default()
    }
}

fn prompt(req: &pb::GenerateRequest) -> RenderedPrompt {
    RenderedPrompt {
        prompt_store: "default".into(),
        intent: pb::Intent::Recommendation,
        version: "v1".into(),
        style: PromptStyle::Standard,
        system: SYSTEM.into(),
        context: mangaassist_generation::render_context(req),
        query: req.query.clone(),
    }
}

fn run(b: &BedrockBackend, tier: pb::ModelTier, deadline: Option<Duration>) -> ModelStream {
    let req = request(tier);
    b.stream_with_deadline(
        prompt(&req),
        &req,
        tier,
        req.max_tokens,
        deadline.map(|d| Instant::now() + d),
    )
}

#[derive(Debug, Default)]
struct Collected {
    tokens: Vec<String>,
    assessments: usize,
    done: Option<ModelDone>,
    error: Option<GenerationError>,
}

async fn collect(mut s: ModelStream) -> Collected {
    let mut c = Collected::default();
    while let Some(ev) = s.next().await {
        match ev {
            Ok(ModelEvent::Assessment { confidence, .. }) => {
                assert!(c.tokens.is_empty(), "assessment after a token");
                assert_eq!(confidence, 1.0);
                c.assessments += 1;
            }
            Ok(ModelEvent::Token(t)) => {
                assert_eq!(c.assessments, 1, "token before the assessment");
                c.tokens.push(t);
            }
            Ok(ModelEvent::Done(d)) => c.done = Some(d),
            Err(e) => {
                c.error = Some(e);
                break;
            }
        }
    }
    c
}

/// Calls seen so far (the stream has ended, so every call has been recorded).
fn drain(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Vec<Seen> {
    let mut out = Vec::new();
    while let Ok(s) = seen.try_recv() {
        out.push(s);
    }
    out
}

fn models(calls: &[Seen]) -> Vec<&str> {
    calls.iter().map(|c| c.model.as_str()).collect()
}

#[tokio::test]
async fn deltas_usage_stop_reason_and_the_request_sent() {
    let (url, mut seen) = fake(|_, _| Reply::Frames(answer(TOKENS, "end_turn", (321, 17)))).await;
    let b = backend(&url, |_| {}).await;
    assert_eq!(b.model_name(pb::ModelTier::Smart), SMART);
    let got = collect(run(&b, pb::ModelTier::Smart, Some(Duration::from_secs(10)))).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.tokens, TOKENS);
    let done = got.done.unwrap();
    assert_eq!(done.input_tokens, 321);
    assert_eq!(done.output_tokens, 17);
    assert_eq!(done.stop_reason, StopReason::EndTurn);
    assert_eq!(done.model.as_deref(), Some(SMART));
    assert_eq!(done.product_ids, vec!["p-frieren-1".to_string()]);

    let calls = drain(&mut seen);
    assert_eq!(models(&calls), [SMART]);
    let body = &calls[0].body;
    assert_eq!(body["system"][0]["text"], SYSTEM);
    assert_eq!(body["inferenceConfig"]["maxTokens"], 64);
    let messages = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"], "{body}");
    assert_eq!(
        messages[0]["content"][0]["text"],
        "Hi, I like quiet stories."
    );
    assert_eq!(
        messages[1]["content"][0]["text"],
        "Welcome! What do you like to read?"
    );
    let last = messages[2]["content"][0]["text"].as_str().unwrap();
    assert!(
        last.contains("Frieren: Beyond Journey's End, Vol. 1") && last.contains("Berserk"),
        "context missing from the question: {last}"
    );
    assert!(
        last.ends_with("Question: Recommend a fantasy manga"),
        "{last}"
    );
    assert!(
        !last.contains("quiet stories"),
        "history sent twice (as messages and in the context): {last}"
    );
}

#[tokio::test]
async fn throttles_before_the_first_token_are_retried_within_the_budget() {
    let (url, mut seen) = fake(|_, n| match n {
        // Throttled before the response, then inside the stream before any text.
        0 => Reply::Error(429, "ThrottlingException", "Too many requests, please wait"),
        1 => Reply::Frames(vec![
            message_start(),
            exception("throttlingException", "Too many tokens, please wait"),
        ]),
        _ => Reply::Frames(answer(&TOKENS[..3], "max_tokens", (100, 3))),
    })
    .await;
    let b = backend(&url, |s| s.max_retries = 2).await;
    // The back-offs (at most 5 + 10 ms) fit the 10 s deadline, or there would be no retries.
    let got = collect(run(&b, pb::ModelTier::Fast, Some(Duration::from_secs(10)))).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.tokens, &TOKENS[..3], "text sent once");
    let done = got.done.unwrap();
    assert_eq!(done.model.as_deref(), Some(FAST));
    assert_eq!(done.stop_reason, StopReason::MaxTokens);
    assert_eq!(models(&drain(&mut seen)), [FAST, FAST, FAST]);
}

#[tokio::test]
async fn a_tier_that_stays_throttled_falls_back_to_the_other_tiers_model() {
    let (url, mut seen) = fake(|model, _| {
        if model == FAST {
            Reply::Error(503, "ServiceUnavailableException", "Bedrock is busy")
        } else {
            Reply::Frames(answer(TOKENS, "end_turn", (50, 6)))
        }
    })
    .await;
    let b = backend(&url, |s| s.max_retries = 2).await;
    let got = collect(run(&b, pb::ModelTier::Fast, Some(Duration::from_secs(10)))).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.tokens, TOKENS);
    assert_eq!(got.done.unwrap().model.as_deref(), Some(SMART));
    // The tier's model with its retries, then the other tier's once.
    assert_eq!(models(&drain(&mut seen)), [FAST, FAST, FAST, SMART]);
}

#[tokio::test]
async fn no_retry_when_the_back_off_does_not_fit_the_deadline() {
    let throttled = |_: &str, _| Reply::Error(429, "ThrottlingException", "Too many requests");
    // Even the first back-off (up to 10 s) would outlast the 2 s left.
    let slow_retries = |s: &mut BedrockSettings| {
        s.retry_base_ms = 10_000;
        s.max_retries = 3;
    };

    let (url, mut seen) = fake(throttled).await;
    let b = backend(&url, |s| {
        slow_retries(s);
        s.fallback_to_other_tier = false;
    })
    .await;
    let got = collect(run(&b, pb::ModelTier::Fast, Some(Duration::from_secs(2)))).await;
    // No wait either: a back-off that was slept would end in a retry (a second FAST call
    // below) or in the deadline (another error than the upstream throttling).
    let e = got.error.expect("an error");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    // The SDK read the error type from `x-amzn-ErrorType` and the message from the body.
    assert!(
        e.to_string()
            .contains("ThrottlingException: Too many requests"),
        "{e}"
    );
    assert!(got.tokens.is_empty() && got.done.is_none());
    assert_eq!(models(&drain(&mut seen)), [FAST]);

    // With the fall-back on, the other tier is still asked once (no back-off needed).
    let (url, mut seen) = fake(throttled).await;
    let b = backend(&url, slow_retries).await;
    let got = collect(run(&b, pb::ModelTier::Smart, Some(Duration::from_secs(2)))).await;
    let e = got.error.expect("an error");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    assert!(e.to_string().contains("after 2 attempts"), "{e}");
    assert_eq!(models(&drain(&mut seen)), [SMART, FAST]);
}

#[tokio::test]
async fn a_throttle_after_the_first_token_is_an_error_not_a_retry() {
    let (url, mut seen) = fake(|_, _| {
        Reply::Frames(vec![
            message_start(),
            delta("Hello"),
            delta(" there"),
            exception("throttlingException", "Too many tokens"),
        ])
    })
    .await;
    let b = backend(&url, |s| s.max_retries = 3).await;
    let got = collect(run(&b, pb::ModelTier::Fast, Some(Duration::from_secs(10)))).await;
    assert_eq!(got.tokens, ["Hello", " there"]);
    let e = got.error.expect("an error after the throttle");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    assert!(e.to_string().contains("not retried"), "{e}");
    assert!(e.to_string().contains("Too many tokens"), "{e}");
    assert!(got.done.is_none());
    assert_eq!(models(&drain(&mut seen)), [FAST]);
}

#[tokio::test]
async fn a_stream_cut_midway_is_an_error_and_nothing_is_repeated() {
    let (cut_tx, cut) = oneshot::channel();
    let cut = Mutex::new(Some(cut));
    let (url, mut seen) = fake(move |_, _| {
        Reply::Cut(
            vec![message_start(), delta(TOKENS[0]), delta(TOKENS[1])],
            cut.lock().unwrap().take().expect("one call"),
        )
    })
    .await;
    let b = backend(&url, |s| s.max_retries = 3).await;
    let mut s = run(&b, pb::ModelTier::Fast, Some(Duration::from_secs(10)));
    let mut tokens = Vec::new();
    while tokens.len() < 2 {
        if let ModelEvent::Token(t) = s.next().await.unwrap().unwrap() {
            tokens.push(t);
        }
    }
    cut_tx.send(()).unwrap();
    let rest = collect(s).await;
    let e = rest.error.expect("an error after the cut");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    assert!(e.to_string().contains("not retried"), "{e}");
    assert_eq!(tokens, &TOKENS[..2]);
    assert!(rest.tokens.is_empty(), "text repeated: {:?}", rest.tokens);
    assert!(rest.done.is_none());
    assert_eq!(models(&drain(&mut seen)), [FAST]);
}

#[tokio::test]
async fn a_connection_broken_before_any_text_is_retried() {
    let (url, mut seen) = fake(|_, n| {
        if n == 0 {
            Reply::Abort
        } else {
            Reply::Frames(answer(TOKENS, "end_turn", (10, 6)))
        }
    })
    .await;
    let b = backend(&url, |s| s.max_retries = 1).await;
    let got = collect(run(&b, pb::ModelTier::Fast, Some(Duration::from_secs(10)))).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.tokens, TOKENS);
    assert_eq!(models(&drain(&mut seen)), [FAST, FAST]);
}

#[tokio::test]
async fn the_calls_operation_timeout_is_the_callers_deadline() {
    let (url, mut seen) = fake(|_, _| Reply::Stall).await;
    let b = backend(&url, |_| {}).await;
    // The upstream stalls for ever: only the deadline can end the call, and says so.
    let got = collect(run(
        &b,
        pb::ModelTier::Fast,
        Some(Duration::from_millis(300)),
    ))
    .await;
    let e = got.error.expect("an error");
    assert!(
        e.to_string().contains("within the caller's deadline"),
        "{e}"
    );
    assert_eq!(models(&drain(&mut seen)), [FAST]);
}

#[tokio::test]
async fn a_clean_end_without_message_stop_is_an_error() {
    let (url, _seen) = fake(|_, _| Reply::Frames(vec![message_start(), delta("Hi")])).await;
    let b = backend(&url, |_| {}).await;
    let got = collect(run(&b, pb::ModelTier::Fast, None)).await;
    let e = got.error.expect("an error");
    assert!(e.to_string().contains("without messageStop"), "{e}");
    assert_eq!(got.tokens, ["Hi"]);
}

#[tokio::test]
async fn validation_and_access_errors_are_failed_precondition_with_the_message() {
    for (status, kind, message) in [
        (
            400,
            "ValidationException",
            "The maximum tokens you requested exceeds the model limit",
        ),
        (
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        (
            404,
            "ResourceNotFoundException",
            "Could not resolve the foundation model",
        ),
    ] {
        let (url, mut seen) = fake(move |_, _| Reply::Error(status, kind, message)).await;
        let b = backend(&url, |s| s.max_retries = 3).await;
        let got = collect(run(&b, pb::ModelTier::Fast, Some(Duration::from_secs(10)))).await;
        let e = got.error.expect("an error");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
        assert!(e.to_string().contains(message), "{e}");
        assert!(e.to_string().contains(kind), "{e}");
        assert!(e.to_string().contains(FAST), "names the model: {e}");
        // Neither retried nor sent to the other tier.
        assert_eq!(models(&drain(&mut seen)), [FAST], "{kind}");
    }
}

#[tokio::test]
async fn dropping_the_stream_closes_the_upstream_body() {
    let (fired_tx, fired) = oneshot::channel();
    let fired_tx = Mutex::new(Some(fired_tx));
    let (url, _seen) = fake(move |_, _| {
        Reply::Hang(
            vec![message_start(), delta("Hello")],
            fired_tx.lock().unwrap().take().expect("one call"),
        )
    })
    .await;
    let b = backend(&url, |_| {}).await;
    let mut s = run(&b, pb::ModelTier::Fast, Some(Duration::from_secs(30)));
    // Wait for a token, so the upstream body is known to be streaming.
    loop {
        if let ModelEvent::Token(_) = s.next().await.unwrap().unwrap() {
            break;
        }
    }
    drop(s);
    tokio::time::timeout(Duration::from_secs(5), fired)
        .await
        .expect("the fake's response body was not dropped after the stream was")
        .unwrap();
}

/// The next `n` calls the fake sees, waiting at most 10 s for them.
async fn next_calls(seen: &mut mpsc::UnboundedReceiver<Seen>, n: usize) -> Vec<Seen> {
    let mut out = Vec::new();
    while out.len() < n {
        let call = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("the fake was not called in time")
            .unwrap();
        out.push(call);
    }
    out
}

fn assert_pings(calls: &[Seen]) {
    let mut m = models(calls);
    m.sort_unstable();
    assert_eq!(m, [FAST, SMART], "one call per tier");
    for c in calls {
        assert_eq!(c.body["inferenceConfig"]["maxTokens"], 1, "{}", c.body);
    }
}

#[tokio::test]
async fn warm_up_calls_each_tier_once_at_start() {
    let (url, mut seen) = fake(|_, _| Reply::Frames(answer(&["Hi"], "max_tokens", (8, 1)))).await;
    let b = backend(&url, |s| s.warm_up = true).await;
    assert_pings(&next_calls(&mut seen, 2).await);
    // Warm-up failures are not fatal: the backend still serves.
    let got = collect(run(&b, pb::ModelTier::Fast, None)).await;
    assert!(got.error.is_none(), "{:?}", got.error);
}

#[tokio::test]
async fn warm_up_failure_is_not_fatal() {
    let (url, mut seen) = fake(|_, n| {
        if n == 0 {
            Reply::Error(500, "InternalServerException", "cold")
        } else {
            Reply::Frames(answer(&["Hi"], "end_turn", (8, 1)))
        }
    })
    .await;
    let b = backend(&url, |s| s.warm_up = true).await;
    assert_pings(&next_calls(&mut seen, 2).await);
    let got = collect(run(&b, pb::ModelTier::Smart, None)).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.tokens, ["Hi"]);
}

#[tokio::test]
async fn keep_alive_calls_each_tier_on_its_interval() {
    let (url, mut seen) = fake(|_, _| Reply::Frames(answer(&["Hi"], "max_tokens", (8, 1)))).await;
    let t0 = Instant::now();
    let b = backend(&url, |s| s.keep_alive_seconds = 1).await;
    assert_pings(&next_calls(&mut seen, 2).await);
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "the first keep-alive came before its interval: {:?}",
        t0.elapsed()
    );
    drop(b);
}

/// The daemon, built from a config with `generation.backend = "bedrock"`, over gRPC.
///
/// The config path takes credentials from the AWS chain, that is the environment, which a
/// test cannot set in its own process (`set_var` is unsafe); it re-runs itself in a child
/// process with fake keys instead.
#[tokio::test]
async fn grpc_daemon_with_the_bedrock_backend_streams_and_reports_the_model_used() {
    const CHILD: &str = "MANGAASSIST_BEDROCK_GRPC_TEST_CHILD";
    const NAME: &str = "grpc_daemon_with_the_bedrock_backend_streams_and_reports_the_model_used";
    if std::env::var_os(CHILD).is_none() {
        let nowhere = std::env::temp_dir().join("mangaassist-no-aws-profile");
        let out = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", &nowhere)
            .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "child test failed:\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("1 passed"),
            "the child ran no test:\n{stdout}"
        );
        return;
    }

    // The fast tier stays throttled; the smart tier answers.
    let (url, mut seen) = fake(|model, _| {
        if model == FAST {
            Reply::Error(429, "ThrottlingException", "Too many requests")
        } else {
            Reply::Frames(answer(TOKENS, "end_turn", (321, 17)))
        }
    })
    .await;
    let mut c = Config::default();
    c.generation.prompts_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/prompts");
    c.generation.backend = mangaassist_config::GenerationBackend::Bedrock;
    c.generation.bedrock = settings(|s| {
        s.region = "us-east-1".into();
        s.endpoint_url = url.clone();
        s.max_retries = 1;
    });
    let daemon = GenerationDaemon::new(&c).await.unwrap();
    let (listener, addr) = bind_with_addr("127.0.0.1:0").await.unwrap();
    tokio::spawn(daemon.serve(listener, ServeOptions::for_tests()));
    let client = GenerationClient::connect(&format!("http://{addr}")).unwrap();

    let mut s = client
        .generate(request(pb::ModelTier::Fast), Duration::from_secs(10))
        .await
        .unwrap();
    let (mut texts, mut indexes, mut done) = (Vec::new(), Vec::new(), None);
    while let Some(ev) = s.next().await {
        match ev.unwrap().event.unwrap() {
            pb::generate_response::Event::Assessment(a) => {
                assert!(texts.is_empty(), "assessment after a token");
                assert!(!a.low_confidence);
            }
            pb::generate_response::Event::Delta(d) => {
                texts.push(d.text);
                indexes.push(d.index);
            }
            pb::generate_response::Event::Done(d) => done = Some(d),
        }
    }
    assert_eq!(texts, TOKENS);
    assert_eq!(indexes, (0..TOKENS.len() as u32).collect::<Vec<_>>());
    let done = done.expect("a summary");
    assert_eq!(
        done.model, SMART,
        "done.model names the model that answered"
    );
    assert_eq!(done.tier, pb::ModelTier::Fast as i32);
    assert_eq!(done.input_tokens, 321);
    assert_eq!(done.output_tokens, 17);
    assert_eq!(done.stop_reason, "end_turn");
    assert_eq!(done.product_ids, vec!["p-frieren-1".to_string()]);
    let calls = drain(&mut seen);
    assert_eq!(models(&calls), [FAST, FAST, SMART]);
    // The daemon resolved the store's prompt and the request's max_tokens.
    let body = &calls[2].body;
    assert_eq!(body["inferenceConfig"]["maxTokens"], 64);
    let system = body["system"][0]["text"].as_str().unwrap();
    assert!(
        !system.is_empty() && !system.contains("{store_id}"),
        "{system}"
    );
}

/// The simulated Bedrock endpoint that `mangaassist-standins` and the backend benchmark run
/// must read through the real SDK like the scripted server above: whole answers, usage, the
/// `maxTokens` cap as a stop reason, and a count of the calls answered.
#[tokio::test]
async fn the_simulated_endpoint_streams_through_the_real_sdk() {
    use mangaassist_standins::bedrock::{SimulatedAnswer, SimulatedBedrock};
    let sim = SimulatedBedrock::start(
        "127.0.0.1:0".parse().unwrap(),
        SimulatedAnswer {
            tokens: 10,
            ..SimulatedAnswer::default()
        },
    )
    .await
    .unwrap();
    let b = backend(&sim.url(), |s| s.warm_up = false).await;
    let got = collect(run(&b, pb::ModelTier::Fast, Some(Duration::from_secs(10)))).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.tokens.len(), 10);
    assert!(
        got.tokens.concat().starts_with("Simulated answer to: "),
        "{:?}",
        got.tokens
    );
    let done = got.done.unwrap();
    assert_eq!(done.stop_reason, StopReason::EndTurn);
    assert_eq!(done.output_tokens, 10);
    assert!(done.input_tokens > 0);
    assert_eq!(done.model.as_deref(), Some(FAST));
    sim.stop().await;

    // Longer than the request's maxTokens (64): cut there, reported as such.
    let sim = SimulatedBedrock::start(
        "127.0.0.1:0".parse().unwrap(),
        SimulatedAnswer {
            tokens: 500,
            ..SimulatedAnswer::default()
        },
    )
    .await
    .unwrap();
    let b = backend(&sim.url(), |s| s.warm_up = false).await;
    let got = collect(run(&b, pb::ModelTier::Smart, Some(Duration::from_secs(10)))).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.tokens.len(), 64);
    assert_eq!(got.done.unwrap().stop_reason, StopReason::MaxTokens);
    assert_eq!(sim.calls(), 1);
}
