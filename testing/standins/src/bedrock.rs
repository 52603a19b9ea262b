//! Test and benchmark helpers for the Bedrock backend: AWS event-stream
//! frames as Bedrock's ConverseStream sends them, and [`SimulatedBedrock`], a **simulated**
//! Bedrock runtime endpoint that answers every ConverseStream call with a deterministic text.
//!
//! The simulation speaks the wire protocol the real SDK reads — `POST
//! /model/<model id>/converse-stream`, a JSON body, a `200` whose body is
//! `application/vnd.amazon.eventstream` frames carrying `:message-type`, `:event-type` and
//! `:content-type` headers (messageStart, contentBlockDelta…, contentBlockStop, messageStop,
//! metadata), and restJson errors (`x-amzn-ErrorType` + `{"message"}`) for a request it cannot
//! parse. It is not a model: the answer restates the last user message and pads it with
//! numbered words. It exists so the SDK path (signing, HTTP, event-stream decoding) can be
//! measured and run locally without an AWS account.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use crate::LocalHttpServer;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
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

/// One event-stream frame with three string headers and a JSON payload.
pub fn frame(headers: [(&str, &str); 3], payload: &serde_json::Value) -> Bytes {
    let mut message = Message::new(payload.to_string().into_bytes());
    for (name, value) in headers {
        message = message.add_header(Header::new(
            name.to_string(),
            HeaderValue::String(value.to_string().into()),
        ));
    }
    let mut buf = Vec::new();
    // Writing to a Vec fails only for headers or payloads beyond the format's limits
    // (16 MiB); the frames built here are tiny.
    if write_message_to(&message, &mut buf).is_err() {
        buf.clear();
    }
    buf.into()
}

/// An `event` frame of this `:event-type`.
pub fn event(kind: &str, payload: &serde_json::Value) -> Bytes {
    frame(
        [
            (":message-type", "event"),
            (":event-type", kind),
            (":content-type", "application/json"),
        ],
        payload,
    )
}

/// An in-stream `exception` frame (e.g. `throttlingException`), as Bedrock sends when a
/// stream fails after the 200.
pub fn exception(kind: &str, message: &str) -> Bytes {
    frame(
        [
            (":message-type", "exception"),
            (":exception-type", kind),
            (":content-type", "application/json"),
        ],
        &serde_json::json!({ "message": message }),
    )
}

/// `messageStart` for the assistant.
pub fn message_start() -> Bytes {
    event("messageStart", &serde_json::json!({"role": "assistant"}))
}

/// One text `contentBlockDelta` of block 0.
pub fn delta(text: &str) -> Bytes {
    event(
        "contentBlockDelta",
        &serde_json::json!({"contentBlockIndex": 0, "delta": {"text": text}}),
    )
}

/// The frames after the last delta: block stop, `messageStop` with this stop reason, and
/// `metadata` with the usage (input, output tokens).
pub fn answer_end(stop: &str, usage: (u32, u32)) -> Vec<Bytes> {
    vec![
        event(
            "contentBlockStop",
            &serde_json::json!({"contentBlockIndex": 0}),
        ),
        event("messageStop", &serde_json::json!({"stopReason": stop})),
        event(
            "metadata",
            &serde_json::json!({
                "usage": {"inputTokens": usage.0, "outputTokens": usage.1, "totalTokens": usage.0 + usage.1},
                "metrics": {"latencyMs": 0},
            }),
        ),
    ]
}

/// A whole answer: start, one delta per token, stop and usage.
pub fn answer(tokens: &[&str], stop: &str, usage: (u32, u32)) -> Vec<Bytes> {
    let mut frames = vec![message_start()];
    frames.extend(tokens.iter().map(|t| delta(t)));
    frames.extend(answer_end(stop, usage));
    frames
}

/// How [`SimulatedBedrock`] answers.
#[derive(Debug, Clone, Copy)]
pub struct SimulatedAnswer {
    /// Output tokens per answer (capped by the request's `inferenceConfig.maxTokens`).
    pub tokens: usize,
    /// Delay before `messageStart`.
    pub first_token_delay: Duration,
    /// Delay between deltas.
    pub token_interval: Duration,
}

impl Default for SimulatedAnswer {
    fn default() -> Self {
        Self {
            tokens: 60,
            first_token_delay: Duration::ZERO,
            token_interval: Duration::ZERO,
        }
    }
}

#[derive(Clone)]
struct Shared {
    answer: SimulatedAnswer,
    calls: Arc<AtomicUsize>,
}

/// The running simulation. Dropping it stops the server.
pub struct SimulatedBedrock {
    server: LocalHttpServer,
    calls: Arc<AtomicUsize>,
}

impl std::fmt::Debug for SimulatedBedrock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedBedrock")
            .field("addr", &self.server.addr())
            .finish()
    }
}

impl SimulatedBedrock {
    /// Serves on `addr` (`127.0.0.1:0` for a free port).
    pub async fn start(addr: SocketAddr, answer: SimulatedAnswer) -> std::io::Result<Self> {
        let calls = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/model/{model_id}/converse-stream", post(converse_stream))
            .fallback(|| async {
                error(
                    StatusCode::NOT_FOUND,
                    "UnknownOperationException",
                    "this simulation serves only ConverseStream",
                )
            })
            .with_state(Shared {
                answer,
                calls: calls.clone(),
            });
        let server = LocalHttpServer::start(addr, app).await?;
        Ok(Self { server, calls })
    }

    /// `http://<addr>`: the `generation.bedrock.endpoint_url` to use.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// ConverseStream calls answered so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Stops accepting and waits for in-flight answers to finish.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// A restJson error the way Bedrock sends one.
fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", kind.to_string()),
            ("content-type", "application/json".to_string()),
        ],
        serde_json::json!({ "message": message }).to_string(),
    )
        .into_response()
}

async fn converse_stream(
    State(shared): State<Shared>,
    Path(_model): Path<String>,
    body: Bytes,
) -> Response {
    let request: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                &format!("malformed request body: {e}"),
            );
        }
    };
    let Some(messages) = request.get("messages").and_then(|m| m.as_array()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "messages: required",
        );
    };
    shared.calls.fetch_add(1, Ordering::Relaxed);
    let texts: Vec<&str> = messages
        .iter()
        .filter_map(|m| m.get("content")?.as_array())
        .flatten()
        .filter_map(|c| c.get("text")?.as_str())
        .collect();
    let system_words: usize = request
        .get("system")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("text")?.as_str())
        .map(|t| t.split_whitespace().count())
        .sum();
    let input_tokens = system_words
        + texts
            .iter()
            .map(|t| t.split_whitespace().count())
            .sum::<usize>();
    let cap = request
        .pointer("/inferenceConfig/maxTokens")
        .and_then(serde_json::Value::as_u64)
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let tokens = answer_tokens(
        texts.last().copied().unwrap_or(""),
        shared.answer.tokens.min(cap),
    );
    let stop = if tokens.len() < shared.answer.tokens {
        "max_tokens"
    } else {
        "end_turn"
    };
    let usage = (
        u32::try_from(input_tokens).unwrap_or(u32::MAX),
        u32::try_from(tokens.len()).unwrap_or(u32::MAX),
    );
    let SimulatedAnswer {
        first_token_delay,
        token_interval,
        ..
    } = shared.answer;
    let head = futures::stream::once(async move {
        if !first_token_delay.is_zero() {
            tokio::time::sleep(first_token_delay).await;
        }
        message_start()
    });
    let deltas =
        futures::stream::iter(tokens.into_iter().enumerate()).then(move |(i, t)| async move {
            if i > 0 && !token_interval.is_zero() {
                tokio::time::sleep(token_interval).await;
            }
            delta(&t)
        });
    let tail = futures::stream::iter(answer_end(stop, usage));
    let body = head.chain(deltas).chain(tail).map(Ok::<_, std::io::Error>);
    Response::builder()
        .header(header::CONTENT_TYPE, "application/vnd.amazon.eventstream")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                "response",
            )
        })
}

/// `n` tokens: "Simulated answer to: <the question's words>" then numbered filler words.
fn answer_tokens(question: &str, n: usize) -> Vec<String> {
    let lead = ["Simulated", " answer", " to:"].map(String::from);
    let asked = question
        .split_whitespace()
        .take(24)
        .map(|w| format!(" {w}"));
    let filler = (1..).map(|i| format!(" word{i}"));
    lead.into_iter()
        .chain(asked)
        .chain(filler)
        .take(n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_have_the_requested_length_and_restate_the_question() {
        let t = answer_tokens("Is Frieren in stock?", 10);
        assert_eq!(t.len(), 10);
        assert_eq!(
            t.concat(),
            "Simulated answer to: Is Frieren in stock? word1 word2 word3"
        );
        assert_eq!(answer_tokens("x", 2).concat(), "Simulated answer");
    }
}
