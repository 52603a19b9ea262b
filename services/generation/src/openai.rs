//! A [`ModelBackend`] for any OpenAI-compatible chat-completions server (vLLM, Ollama,
//! llama.cpp server, LiteLLM, OpenAI itself), streamed with server-sent events.
//!
//! One request per stream: `POST {base_url}/chat/completions` with the rendered system prompt
//! and the context (products, documents, orders, history) as the system message and the
//! customer's query as the user message, `stream: true` and `stream_options.include_usage` so
//! the server reports its own token counts in the last chunk.
//!
//! - **Confidence**: a generic server does not say how sure it is, so the backend sends an
//!   `Assessment` with confidence 1.0 before the first token. The fast-tier quality gate
//!   therefore never escalates an answer from this backend.
//! - **Products**: `product_ids` are the request's catalog products whose title appears in
//!   the answer (case-insensitive).
//! - **Errors**: 408, 429 and 5xx answers, transport failures and a stream that ends before
//!   the server said it had finished are [`GenerationError::Backend`] (gRPC `UNAVAILABLE`,
//!   which the gateway's breaker counts and may retry elsewhere); other HTTP errors (a bad
//!   key, an unknown model) are configuration problems and map to `FAILED_PRECONDITION`.
//!   Both carry the HTTP status and the server's own error message.
//! - **Cancellation**: the HTTP request lives inside the returned stream, so dropping the
//!   stream (the reader left, the deadline passed) closes the connection and the server stops
//!   generating.

use std::{collections::VecDeque, time::Duration};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use mangaassist_config::OpenAiSettings;
use mangaassist_proto::v1 as pb;
use serde::Deserialize;

use crate::{
    GenerationError, ModelBackend, ModelEvent, ModelStream, RenderedPrompt, StopReason,
    backend::StreamedAnswer,
};

/// Confidence reported for every answer: the server gives none (see the module docs).
pub const OPENAI_CONFIDENCE: f32 = 1.0;

/// Most of an error body kept for the error message.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// An SSE line longer than this means the peer is not speaking SSE.
const MAX_SSE_LINE: usize = 4 * 1024 * 1024;

/// Streams answers from an OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiBackend {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
    fast_model: String,
    smart_model: String,
}

impl OpenAiBackend {
    /// Builds the backend with an explicit API key (`None`: no `Authorization` header, as a
    /// local Ollama or vLLM server needs). The HTTP client (connection pool) is built once.
    pub fn new(
        settings: &OpenAiSettings,
        api_key: Option<String>,
    ) -> Result<Self, GenerationError> {
        let base = settings.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(GenerationError::Config(format!(
                "generation.openai.base_url `{}` is not an http:// or https:// URL",
                settings.base_url
            )));
        }
        let client = reqwest::Client::builder()
            // Deltas are small writes; Nagle would hold them back.
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms.max(1)))
            .build()
            .map_err(|e| GenerationError::Config(format!("generation.openai: HTTP client: {e}")))?;
        Ok(Self {
            client,
            url: format!("{base}/chat/completions"),
            api_key: api_key.filter(|k| !k.is_empty()),
            fast_model: settings.fast_model.clone(),
            smart_model: settings.smart_model.clone(),
        })
    }

    /// Builds the backend with the key read from the environment variable the settings name
    /// (no key when it is unset or empty).
    pub fn from_settings(settings: &OpenAiSettings) -> Result<Self, GenerationError> {
        let key = if settings.api_key_env.is_empty() {
            None
        } else {
            std::env::var(&settings.api_key_env).ok()
        };
        Self::new(settings, key)
    }

    /// The endpoint requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn model(&self, tier: pb::ModelTier) -> &str {
        match tier {
            pb::ModelTier::Smart => &self.smart_model,
            _ => &self.fast_model,
        }
    }
}

impl ModelBackend for OpenAiBackend {
    fn model_name(&self, tier: pb::ModelTier) -> String {
        self.model(tier).to_string()
    }

    fn stream(
        &self,
        prompt: RenderedPrompt,
        req: &pb::GenerateRequest,
        tier: pb::ModelTier,
        max_tokens: u32,
    ) -> ModelStream {
        let body = request_body(self.model(tier), &prompt, max_tokens);
        let mut builder = self.client.post(&self.url).json(&body);
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key);
        }
        let state = State {
            phase: Phase::Start(Box::new(builder), self.url.clone()),
            parser: SseParser::default(),
            queue: VecDeque::new(),
            answer: StreamedAnswer::new(
                req,
                &prompt,
                OPENAI_CONFIDENCE,
                "an OpenAI-compatible server does not report confidence",
            ),
            usage: None,
            finish: None,
        };
        futures::stream::unfold(state, |mut st| async move {
            let item = st.next().await?;
            Some((item, st))
        })
        .boxed()
    }
}

/// The chat-completions request: the system prompt (which ends with the answer language when
/// the gateway chose one) and the context as the system message, the question as the user's.
fn request_body(model: &str, prompt: &RenderedPrompt, max_tokens: u32) -> serde_json::Value {
    let system = if prompt.context.is_empty() {
        prompt.system.clone()
    } else {
        format!("{}\n\n{}", prompt.system, prompt.context)
    };
    serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": prompt.query},
        ],
        "stream": true,
        "max_tokens": max_tokens,
        "stream_options": {"include_usage": true},
    })
}

enum Phase {
    Start(Box<reqwest::RequestBuilder>, String),
    Body(BoxStream<'static, reqwest::Result<Bytes>>),
    Finished,
}

struct State {
    phase: Phase,
    parser: SseParser,
    queue: VecDeque<ModelEvent>,
    answer: StreamedAnswer,
    usage: Option<Usage>,
    finish: Option<String>,
}

impl State {
    /// The next event, `None` after the last one (or after an error).
    async fn next(&mut self) -> Option<Result<ModelEvent, GenerationError>> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some(Ok(ev));
            }
            match std::mem::replace(&mut self.phase, Phase::Finished) {
                Phase::Finished => return None,
                Phase::Start(builder, url) => match send(*builder, &url).await {
                    Ok(body) => self.phase = Phase::Body(body),
                    Err(e) => return Some(Err(e)),
                },
                Phase::Body(mut body) => match body.next().await {
                    Some(Ok(chunk)) => {
                        let events = match self.parser.push(&chunk) {
                            Ok(events) => events,
                            Err(e) => return Some(Err(e)),
                        };
                        match self.handle(events) {
                            Ok(true) => self.finish_stream(),
                            Ok(false) => self.phase = Phase::Body(body),
                            Err(e) => return Some(Err(e)),
                        }
                    }
                    Some(Err(e)) => {
                        return Some(Err(GenerationError::Backend(format!(
                            "openai stream broke off after {} deltas: {e}",
                            self.answer.deltas()
                        ))));
                    }
                    None => {
                        let events = self.parser.finish();
                        match self.handle(events) {
                            Ok(true) => self.finish_stream(),
                            // Some servers (older llama.cpp) end without `[DONE]` once they
                            // have sent the finish reason.
                            Ok(false) if self.finish.is_some() => self.finish_stream(),
                            Ok(false) => {
                                return Some(Err(GenerationError::Backend(format!(
                                    "openai stream ended after {} deltas without a finish \
                                     reason or [DONE]",
                                    self.answer.deltas()
                                ))));
                            }
                            Err(e) => return Some(Err(e)),
                        }
                    }
                },
            }
        }
    }

    /// Applies parsed SSE events; `true` once `[DONE]` arrived.
    fn handle(&mut self, events: Vec<String>) -> Result<bool, GenerationError> {
        for data in events {
            let data = data.trim();
            if data == "[DONE]" {
                return Ok(true);
            }
            let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
                GenerationError::Backend(format!(
                    "openai stream sent an event that is not a chat-completion chunk ({e}): {}",
                    truncate(data, 200)
                ))
            })?;
            if let Some(err) = chunk.error {
                return Err(GenerationError::Backend(format!(
                    "openai stream reported an error: {}",
                    err.message()
                )));
            }
            if let Some(u) = chunk.usage {
                self.usage = Some(u);
            }
            if let Some(choice) = chunk.choices.into_iter().next() {
                if let Some(text) = choice.delta.and_then(|d| d.content) {
                    self.answer.push(text, &mut self.queue);
                }
                if let Some(reason) = choice.finish_reason {
                    self.finish = Some(reason);
                }
            }
        }
        Ok(false)
    }

    fn finish_stream(&mut self) {
        self.phase = Phase::Finished;
        let usage = self.usage.unwrap_or_default();
        let stop_reason = match self.finish.as_deref() {
            Some("length") => StopReason::MaxTokens,
            _ => StopReason::EndTurn,
        };
        self.queue.push_back(self.answer.done(
            usage.prompt_tokens,
            usage.completion_tokens,
            stop_reason,
            None,
        ));
    }
}

/// Sends the request; an HTTP error status becomes an error with the server's message.
async fn send(
    builder: reqwest::RequestBuilder,
    url: &str,
) -> Result<BoxStream<'static, reqwest::Result<Bytes>>, GenerationError> {
    let resp = builder
        .send()
        .await
        .map_err(|e| GenerationError::Backend(format!("openai request to {url} failed: {e:#}")))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp.bytes_stream().boxed());
    }
    let body = read_capped(resp).await;
    let message = error_message(&body);
    let text = format!("openai server {url} answered HTTP {status}: {message}");
    let code = status.as_u16();
    Err(if code == 408 || code == 429 || status.is_server_error() {
        GenerationError::Backend(text)
    } else {
        GenerationError::FailedPrecondition(text)
    })
}

async fn read_capped(resp: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(Ok(chunk)) = s.next().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            body.truncate(MAX_ERROR_BODY);
            break;
        }
    }
    body
}

/// The server's own words: `{"error": {"message": ..}}` (OpenAI, vLLM),
/// `{"error": "..."}` (Ollama), `{"message": ..}`, or the body as text.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: Option<ErrorField>,
        message: Option<String>,
        detail: Option<serde_json::Value>,
    }
    if let Ok(b) = serde_json::from_slice::<Body>(body) {
        if let Some(e) = b.error {
            return e.message();
        }
        if let Some(m) = b.message {
            return m;
        }
        if let Some(d) = b.detail {
            return d.as_str().map_or_else(|| d.to_string(), str::to_string);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        truncate(text, 500).to_string()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorField {
    Object {
        message: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
    },
    Text(String),
    Other(serde_json::Value),
}

impl ErrorField {
    fn message(self) -> String {
        match self {
            ErrorField::Object {
                message: Some(m), ..
            } => m,
            ErrorField::Object {
                message: None,
                kind: Some(k),
            } => k,
            ErrorField::Object { .. } => "(no message)".into(),
            ErrorField::Text(t) => t,
            ErrorField::Other(v) => v.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    error: Option<ErrorField>,
}

#[derive(Deserialize)]
struct Choice {
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct Usage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

/// Incremental server-sent-events parser: feed it bytes split anywhere, get back the `data`
/// of each complete event (several `data:` lines joined with `\n`). Lines end with LF, CRLF
/// or CR; comments (`:`) and other fields (`event`, `id`, `retry`) are skipped.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: Option<String>,
}

impl SseParser {
    /// Adds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, GenerationError> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < self.buf.len() {
            let b = self.buf[i];
            if b != b'\n' && b != b'\r' {
                i += 1;
                continue;
            }
            let end = i;
            if b == b'\r' {
                match self.buf.get(i + 1) {
                    // A CR at the end of the bytes so far may be the first half of a CRLF.
                    None => break,
                    Some(b'\n') => i += 2,
                    Some(_) => i += 1,
                }
            } else {
                i += 1;
            }
            let line = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            self.line(&line, &mut events);
            start = i;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_SSE_LINE {
            return Err(GenerationError::Backend(format!(
                "openai stream sent a line longer than {MAX_SSE_LINE} bytes"
            )));
        }
        Ok(events)
    }

    /// The stream ended: a last line without its terminator still counts, but an event
    /// without its closing blank line is dropped (as the SSE spec says).
    pub fn finish(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let line = String::from_utf8_lossy(&rest);
            let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
            self.line(&line, &mut events);
        }
        self.data = None;
        events
    }

    fn line(&mut self, line: &str, events: &mut Vec<String>) {
        if line.is_empty() {
            if let Some(d) = self.data.take() {
                events.push(d);
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const STREAM: &str = ": keep-alive\r\n\
        data: {\"a\":1}\r\n\r\n\
        event: message\n\
        id: 7\n\
        data: line one\n\
        data: line two\n\
        \n\
        data:nospace\r\r\
        data: caf\u{e9} \u{1f600}\n\n\
        data: [DONE]\n\n";

    fn japanese_request(locale: &str) -> pb::GenerateRequest {
        pb::GenerateRequest {
            query: "返品できますか？".into(),
            store_id: "manga_jp".into(),
            locale: locale.into(),
            documents: vec![pb::DocumentHit {
                document: Some(pb::Document {
                    id: "policy-returns-jp".into(),
                    title: "Return policy".into(),
                    body: "Returns within 14 days.".into(),
                    title_ja: "返品について".into(),
                    body_ja: "お届けから14日以内なら返品できます。".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_japanese_answer_is_asked_for_and_given_japanese_text() {
        let version = crate::PromptVersion::parse("v1", "You help {store_id} customers.").unwrap();
        let req = japanese_request("ja");
        let prompt = RenderedPrompt::new("default", &version, &req, pb::Intent::ReturnRefund);
        let body = request_body("m", &prompt, 100);
        let system = body["messages"][0]["content"].as_str().unwrap();
        let context = system
            .strip_prefix(
                "You help manga_jp customers.\n\nAnswer in Japanese, in polite です/ます form.\n\n",
            )
            .unwrap_or_else(|| panic!("{system}"));
        assert!(context.contains("返品について: お届けから14日以内なら返品できます。"));
        assert!(!context.contains("Returns within 14 days."), "{context}");
        assert_eq!(body["messages"][1]["content"], "返品できますか？");
        // The gateway said English: English text, and the model is told so.
        let req = japanese_request("en");
        let prompt = RenderedPrompt::new("default", &version, &req, pb::Intent::ReturnRefund);
        let system = request_body("m", &prompt, 100)["messages"][0]["content"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            system.contains("customers.\n\nAnswer in English.\n\n"),
            "{system}"
        );
        assert!(
            system.contains("Return policy: Returns within 14 days."),
            "{system}"
        );
    }

    fn expected() -> Vec<String> {
        vec![
            "{\"a\":1}".into(),
            "line one\nline two".into(),
            "nospace".into(),
            "caf\u{e9} \u{1f600}".into(),
            "[DONE]".into(),
        ]
    }

    #[test]
    fn parses_a_whole_stream() {
        let mut p = SseParser::default();
        let mut got = p.push(STREAM.as_bytes()).unwrap();
        got.extend(p.finish());
        assert_eq!(got, expected());
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let bytes = STREAM.as_bytes();
        for cut in 0..=bytes.len() {
            let mut p = SseParser::default();
            let mut got = p.push(&bytes[..cut]).unwrap();
            got.extend(p.push(&bytes[cut..]).unwrap());
            got.extend(p.finish());
            assert_eq!(got, expected(), "split at {cut}");
        }
    }

    #[test]
    fn byte_by_byte_gives_the_same_events() {
        let mut p = SseParser::default();
        let mut got = Vec::new();
        for b in STREAM.as_bytes() {
            got.extend(p.push(std::slice::from_ref(b)).unwrap());
        }
        got.extend(p.finish());
        assert_eq!(got, expected());
    }

    #[test]
    fn an_unterminated_event_is_dropped_at_the_end() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: {\"x\":").unwrap().is_empty());
        assert!(p.finish().is_empty());
        let mut p = SseParser::default();
        assert!(p.push(b"data: done\n").unwrap().is_empty());
        assert!(p.finish().is_empty());
    }

    #[test]
    fn an_endless_line_is_an_error() {
        let mut p = SseParser::default();
        let big = vec![b'x'; MAX_SSE_LINE + 1];
        assert!(p.push(&big).is_err());
    }

    #[test]
    fn error_messages_come_from_the_body() {
        assert_eq!(
            error_message(
                br#"{"error":{"message":"model 'x' not found","type":"invalid_request_error"}}"#
            ),
            "model 'x' not found"
        );
        assert_eq!(
            error_message(br#"{"error":"no such model"}"#),
            "no such model"
        );
        assert_eq!(error_message(br#"{"detail":"bad"}"#), "bad");
        assert_eq!(error_message(b"upstream timeout"), "upstream timeout");
        assert_eq!(error_message(b""), "(empty body)");
    }

    #[test]
    fn bad_base_url_is_a_config_error() {
        let s = OpenAiSettings {
            base_url: "localhost:11434/v1".into(),
            ..OpenAiSettings::default()
        };
        assert!(matches!(
            OpenAiBackend::new(&s, None),
            Err(GenerationError::Config(_))
        ));
        let s = OpenAiSettings {
            base_url: "http://h:1/v1/".into(),
            ..OpenAiSettings::default()
        };
        assert_eq!(
            OpenAiBackend::new(&s, None).unwrap().url(),
            "http://h:1/v1/chat/completions"
        );
    }
}
