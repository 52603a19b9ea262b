//! The OpenAI-compatible backend against a local SSE server, end to end over gRPC: request
//! shape, token order, usage, HTTP errors, a broken stream and cancellation.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use bytes::Bytes;
use futures::StreamExt;
use mangaassist_client::GenerationClient;
use mangaassist_config::Config;
use mangaassist_generation::{GenerationDaemon, OpenAiBackend};
use mangaassist_proto::v1 as pb;
use mangaassist_server::{ServeOptions, bind_with_addr};
use tokio::sync::{mpsc, oneshot};

/// What the fake server answers with.
enum Mode {
    /// 200 with these body pieces, each sent as its own chunk.
    Stream(Vec<Bytes>),
    /// These pieces, then the connection breaks.
    Cut(Vec<Bytes>),
    /// These pieces, then nothing, until the client goes; the sender fires when the body
    /// is dropped.
    Hang(Vec<Bytes>, oneshot::Sender<()>),
    /// An HTTP error with this JSON body.
    Status(u16, String),
}

#[derive(Clone)]
struct Fake {
    mode: Arc<Mutex<Option<Mode>>>,
    seen: mpsc::UnboundedSender<(HeaderMap, serde_json::Value)>,
}

struct FireOnDrop(Option<oneshot::Sender<()>>);

impl Drop for FireOnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

async fn completions(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let _ = fake.seen.send((headers, body));
    let mode = fake
        .mode
        .lock()
        .unwrap()
        .take()
        .expect("one request per test");
    let sse = |body: Body| {
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(body)
            .unwrap()
    };
    match mode {
        Mode::Stream(pieces) => sse(Body::from_stream(futures::stream::iter(
            pieces.into_iter().map(Ok::<_, std::io::Error>),
        ))),
        Mode::Cut(pieces) => sse(Body::from_stream(
            futures::stream::iter(pieces.into_iter().map(Ok)).chain(futures::stream::once(async {
                Err(std::io::Error::other("server died"))
            })),
        )),
        Mode::Hang(pieces, fired) => {
            let guard = FireOnDrop(Some(fired));
            let body = futures::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>))
                .chain(futures::stream::pending())
                .map(move |piece| {
                    let _keep = &guard;
                    piece
                });
            sse(Body::from_stream(body))
        }
        Mode::Status(code, body) => (
            StatusCode::from_u16(code).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
    }
}

struct Harness {
    client: GenerationClient,
    seen: mpsc::UnboundedReceiver<(HeaderMap, serde_json::Value)>,
}

fn config(base_url: &str) -> Config {
    let mut c = Config::default();
    c.generation.prompts_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/prompts");
    c.generation.backend = mangaassist_config::GenerationBackend::OpenAi;
    c.generation.openai.base_url = base_url.into();
    c.generation.openai.fast_model = "tiny-fast".into();
    c.generation.openai.smart_model = "big-smart".into();
    c.generation.openai.api_key_env = "MANGAASSIST_TEST_UNSET_OPENAI_KEY_4F2A".into();
    c
}

/// Starts the fake server and a generation daemon in front of it. `key`: `Some` builds the
/// backend with that key directly; `None` goes through the config path (no key in the env).
async fn start(mode: Mode, key: Option<&str>) -> Harness {
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let fake = Fake {
        mode: Arc::new(Mutex::new(Some(mode))),
        seen: seen_tx,
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let c = config(&format!("http://{http}/v1/"));
    let daemon = match key {
        Some(k) => {
            let backend = OpenAiBackend::new(&c.generation.openai, Some(k.into())).unwrap();
            GenerationDaemon::with_backend(&c, Arc::new(backend))
                .await
                .unwrap()
        }
        None => GenerationDaemon::new(&c).await.unwrap(),
    };
    let (listener, addr) = bind_with_addr("127.0.0.1:0").await.unwrap();
    tokio::spawn(daemon.serve(listener, ServeOptions::for_tests()));
    let client = GenerationClient::connect(&format!("http://{addr}")).unwrap();
    Harness { client, seen }
}

fn chunk(content: &str) -> String {
    let c = serde_json::json!({
        "id": "c1", "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}],
    });
    format!("data: {c}\n\n")
}

fn sse_body(tokens: &[&str], finish: &str, usage: Option<(u32, u32)>) -> String {
    let mut s = String::from(": ping\r\n\r\n");
    s.push_str(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\r\n\r\n",
    );
    for t in tokens {
        s.push_str(&chunk(t));
    }
    s.push_str(&format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"{finish}\"}}]}}\n\n"
    ));
    if let Some((p, c)) = usage {
        s.push_str(&format!(
            "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":{p},\"completion_tokens\":{c},\"total_tokens\":{}}}}}\n\n",
            p + c
        ));
    }
    s.push_str("data: [DONE]\n\n");
    s
}

/// Splits at every `n` bytes, through UTF-8 characters and CRLFs alike.
fn pieces(s: &str, n: usize) -> Vec<Bytes> {
    s.as_bytes().chunks(n).map(Bytes::copy_from_slice).collect()
}

const TOKENS: &[&str] = &[
    "Try",
    " \"Frieren:",
    " Beyond Journey's End, Vol. 1\"",
    " — a café",
    " of quiet magic 🌸",
    ".",
];

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
    pb::GenerateRequest {
        query: "Recommend a fantasy manga".into(),
        intent: pb::Intent::Recommendation as i32,
        tier: tier as i32,
        store_id: "manga_jp".into(),
        session_id: "s-1".into(),
        user_id: "u-demo".into(),
        max_tokens: 64,
        products: vec![
            product("p-frieren-1", "Frieren: Beyond Journey's End, Vol. 1"),
            product("p-berserk-1", "Berserk, Vol. 1"),
        ],
        ..Default::default()
    }
}

#[derive(Debug, Default)]
struct Collected {
    assessment: Option<pb::Assessment>,
    deltas: Vec<pb::TokenDelta>,
    done: Option<pb::GenerateSummary>,
    error: Option<tonic::Status>,
}

async fn collect(client: &GenerationClient, req: pb::GenerateRequest) -> Collected {
    let mut c = Collected::default();
    let mut s = match client.generate(req, Duration::from_secs(10)).await {
        Ok(s) => s,
        Err(e) => {
            c.error = Some(e);
            return c;
        }
    };
    while let Some(ev) = s.next().await {
        match ev {
            Err(e) => {
                c.error = Some(e);
                break;
            }
            Ok(r) => match r.event.unwrap() {
                pb::generate_response::Event::Assessment(a) => {
                    assert!(c.deltas.is_empty(), "assessment after a token");
                    c.assessment = Some(a);
                }
                pb::generate_response::Event::Delta(d) => {
                    assert!(c.assessment.is_some(), "token before the assessment");
                    c.deltas.push(d);
                }
                pb::generate_response::Event::Done(d) => c.done = Some(d),
            },
        }
    }
    c
}

#[tokio::test]
async fn tokens_stream_in_order_with_usage_and_the_key() {
    let body = sse_body(TOKENS, "stop", Some((321, 17)));
    let mut h = start(Mode::Stream(pieces(&body, 7)), Some("sk-test-123")).await;
    let got = collect(&h.client, request(pb::ModelTier::Smart)).await;
    assert!(got.error.is_none(), "{:?}", got.error);

    let (headers, sent) = h.seen.recv().await.unwrap();
    assert_eq!(
        headers.get(header::AUTHORIZATION).unwrap(),
        "Bearer sk-test-123"
    );
    assert_eq!(sent["model"], "big-smart");
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["max_tokens"], 64);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    assert!(
        system.contains("Frieren: Beyond Journey's End, Vol. 1") && system.contains("Berserk"),
        "context missing from the system message: {system}"
    );
    assert_eq!(messages[1]["role"], "user");
    assert_eq!(messages[1]["content"], "Recommend a fantasy manga");

    let a = got.assessment.unwrap();
    assert_eq!(a.confidence, 1.0);
    assert!(!a.low_confidence);
    let texts: Vec<&str> = got.deltas.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts, TOKENS);
    let indexes: Vec<u32> = got.deltas.iter().map(|d| d.index).collect();
    assert_eq!(indexes, (0..TOKENS.len() as u32).collect::<Vec<_>>());
    let done = got.done.unwrap();
    assert_eq!(done.model, "big-smart");
    assert_eq!(done.input_tokens, 321);
    assert_eq!(done.output_tokens, 17);
    assert_eq!(done.stop_reason, "end_turn");
    assert_eq!(done.product_ids, vec!["p-frieren-1".to_string()]);
}

/// The gateway chose Japanese: the daemon's system prompt says so last, the context carries
/// the Japanese title, and an answer naming only that title still reports the product.
#[tokio::test]
async fn a_japanese_answer_is_asked_for_and_its_japanese_titles_count() {
    let tokens = ["『葬送のフリーレン 1』", "がおすすめです。"];
    let body = sse_body(&tokens, "stop", Some((100, 12)));
    let mut h = start(Mode::Stream(pieces(&body, 5)), None).await;
    let mut req = request(pb::ModelTier::Fast);
    req.query = "ファンタジーのおすすめは？".into();
    req.locale = "ja".into();
    if let Some(p) = req.products[0].product.as_mut() {
        p.title_ja = "葬送のフリーレン 1".into();
    }
    let got = collect(&h.client, req).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    let (_, sent) = h.seen.recv().await.unwrap();
    let system = sent["messages"][0]["content"].as_str().unwrap();
    let (prompt, context) = system.split_once("\n\nProducts:").unwrap();
    assert!(
        prompt.ends_with("\n\nAnswer in Japanese, in polite です/ます form."),
        "{prompt}"
    );
    assert!(
        context.contains("Frieren: Beyond Journey's End, Vol. 1 (葬送のフリーレン 1)"),
        "{context}"
    );
    assert_eq!(got.done.unwrap().product_ids, ["p-frieren-1"]);
}

#[tokio::test]
async fn config_path_sends_no_key_and_length_is_max_tokens() {
    // Byte by byte, and no usage chunk: the counts are the daemon's own.
    let body = sse_body(&TOKENS[..3], "length", None);
    let mut h = start(Mode::Stream(pieces(&body, 1)), None).await;
    let got = collect(&h.client, request(pb::ModelTier::Fast)).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    let (headers, sent) = h.seen.recv().await.unwrap();
    assert!(headers.get(header::AUTHORIZATION).is_none());
    assert_eq!(sent["model"], "tiny-fast");
    let done = got.done.unwrap();
    assert_eq!(done.stop_reason, "max_tokens");
    assert_eq!(done.output_tokens, 3);
    assert!(done.input_tokens > 0, "estimated input tokens: {done:?}");
    assert_eq!(got.deltas.len(), 3);
}

#[tokio::test]
async fn too_many_requests_is_unavailable() {
    let h = start(
        Mode::Status(
            429,
            r#"{"error":{"message":"rate limit reached for tiny-fast","type":"rate_limit"}}"#
                .into(),
        ),
        None,
    )
    .await;
    let got = collect(&h.client, request(pb::ModelTier::Fast)).await;
    let e = got.error.unwrap();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("429"), "{}", e.message());
    assert!(
        e.message().contains("rate limit reached for tiny-fast"),
        "{}",
        e.message()
    );
    assert!(got.deltas.is_empty());
}

#[tokio::test]
async fn server_error_message_is_reported() {
    assert_http_error(
        500,
        r#"{"error":{"message":"CUDA out of memory"}}"#,
        tonic::Code::Unavailable,
        "CUDA out of memory",
    )
    .await;
}

/// The server answers `status` with `body`: the stream must end with `code`, naming the
/// status and the server's own message.
async fn assert_http_error(status: u16, body: &str, code: tonic::Code, message: &str) {
    let h = start(Mode::Status(status, body.into()), None).await;
    let e = collect(&h.client, request(pb::ModelTier::Fast))
        .await
        .error
        .unwrap();
    assert_eq!(e.code(), code, "{e:?}");
    assert!(e.message().contains(&status.to_string()), "{}", e.message());
    assert!(e.message().contains(message), "{}", e.message());
}

#[tokio::test]
async fn unknown_model_is_a_configuration_error() {
    assert_http_error(
        404,
        r#"{"error":"model \"tiny-fast\" not found"}"#,
        tonic::Code::FailedPrecondition,
        "model \"tiny-fast\" not found",
    )
    .await;
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_an_error() {
    let body = sse_body(TOKENS, "stop", Some((10, 6)));
    // Cut inside the third token's event: two whole tokens got through.
    let at = body.find("Journey").unwrap();
    let h = start(Mode::Cut(pieces(&body[..at], 5)), None).await;
    let got = collect(&h.client, request(pb::ModelTier::Fast)).await;
    let e = got.error.expect("an error after the cut");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(got.done.is_none());
    let texts: Vec<&str> = got.deltas.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts, &TOKENS[..2]);
}

#[tokio::test]
async fn a_clean_close_before_done_is_an_error() {
    // The server closes properly, but before any finish reason or [DONE].
    let body: String = TOKENS[..2].iter().map(|t| chunk(t)).collect();
    let h = start(Mode::Stream(pieces(&body, 9)), None).await;
    let got = collect(&h.client, request(pb::ModelTier::Fast)).await;
    let e = got.error.expect("an error for the truncated stream");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("without a finish"), "{}", e.message());
    assert_eq!(got.deltas.len(), 2);
}

#[tokio::test]
async fn dropping_the_client_stops_the_upstream_request() {
    let (fired_tx, fired) = oneshot::channel();
    let body: String = TOKENS[..2].iter().map(|t| chunk(t)).collect();
    let h = start(Mode::Hang(pieces(&body, 4), fired_tx), None).await;
    let mut s = h
        .client
        .generate(request(pb::ModelTier::Fast), Duration::from_secs(30))
        .await
        .unwrap();
    // Wait for a token, so the upstream body is known to be streaming.
    loop {
        let ev = s.next().await.unwrap().unwrap();
        if let Some(pb::generate_response::Event::Delta(_)) = ev.event {
            break;
        }
    }
    drop(s);
    tokio::time::timeout(Duration::from_secs(5), fired)
        .await
        .expect("the server's response body was not dropped after the client left")
        .unwrap();
}
