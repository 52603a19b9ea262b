//! OpenAI-compatible endpoints, so any OpenAI client or benchmark tool can talk to the mesh:
//! `POST /v1/chat/completions` (streaming as SSE `chat.completion.chunk` events, or one
//! `chat.completion` object) runs the same orchestrated pipeline as a `/ws` query, and
//! `GET /v1/models` lists the single model `mangaassist`. Protocol: docs/protocol.md.

use std::{
    convert::Infallible,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json,
    body::Bytes,
    extract::{Query as UrlQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt, stream};
use mangaassist_protocol::openai::{ChatQuery, ChatRequestError, parse_chat_request};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    ConnectParams, Gateway,
    admission::AuthRefusal,
    pipeline::Query,
    protocol::{Done, ErrorCode},
    stream::{AnswerEvent, AnswerOutput},
};

/// The one model id `/v1/models` lists and the default echoed when a request names none.
pub const MODEL_ID: &str = "mangaassist";

/// An OpenAI-style error response: `{"error":{"message","type","code"}}`.
fn error(status: StatusCode, kind: &str, code: &str, message: impl Into<String>) -> Response {
    metrics::counter!("openai_refused_total", "code" => code.to_string()).increment(1);
    (status, Json(error_body(kind, code, &message.into()))).into_response()
}

fn error_body(kind: &str, code: &str, message: &str) -> Value {
    json!({ "error": { "message": message, "type": kind, "code": code } })
}

fn bad_request(message: impl Into<String>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_request",
        message,
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The user a request acts as, authenticated exactly like `/ws`: a Bearer header or
/// `?token=`. Without required auth: the `user` field, else `x-user-id`, else the default user.
/// With auth the OpenAI `user` field is only a client-side label and is ignored.
fn authenticate(
    gw: &Gateway,
    headers: &HeaderMap,
    token_param: Option<&str>,
    user_field: Option<&str>,
) -> Result<String, Box<Response>> {
    // A URL ends up in access logs, proxies and browser history: an API key travels in the
    // Authorization header only.
    if token_param.is_some() {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "token_in_url",
            "`?token=` is not accepted on /v1/*: send the token as `Authorization: Bearer <JWT>`",
        )));
    }
    match gw.verified_user(headers, None) {
        Ok(Some(sub)) => Ok(sub),
        Ok(None) => Ok(user_field
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .or_else(|| header(headers, "x-user-id"))
            .map(str::to_string)
            .unwrap_or_else(|| gw.shared.orchestrator.settings.default_user.clone())),
        Err(AuthRefusal::Missing) => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "missing_api_key",
            "missing token: pass `Authorization: Bearer <JWT>` (the API key; `mangaassist token --user U` issues one)",
        ))),
        Err(AuthRefusal::Invalid(e)) => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            format!("invalid token: {e}"),
        ))),
        // Only a URL token can be refused for its lifetime, and none is read here.
        Err(AuthRefusal::LongLivedInUrl) => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "token_in_url",
            "send the token as `Authorization: Bearer <JWT>`",
        ))),
    }
}

fn draining(gw: &Gateway) -> Option<Response> {
    gw.shutdown.is_cancelled().then(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "draining",
            "gateway is shutting down; retry on another instance",
        )
    })
}

/// `GET /v1/models`.
pub(crate) async fn models(
    UrlQuery(params): UrlQuery<ConnectParams>,
    headers: HeaderMap,
    State(gw): State<Gateway>,
) -> Response {
    if let Err(r) = authenticate(&gw, &headers, params.token.as_deref(), None) {
        return *r;
    }
    Json(json!({
        "object": "list",
        "data": [{ "id": MODEL_ID, "object": "model", "created": 0, "owned_by": "mangaassist" }],
    }))
    .into_response()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Fields every chunk and completion of one request share.
#[derive(Clone)]
struct Meta {
    id: String,
    created: u64,
    model: String,
}

impl Meta {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }],
        })
    }
}

fn usage(done: &Done) -> Value {
    json!({
        "prompt_tokens": 0,
        "completion_tokens": done.tokens,
        "total_tokens": done.tokens,
    })
}

/// The OpenAI error of a failed answer, and the HTTP status it maps to.
fn answer_error(code: ErrorCode, message: &str) -> (StatusCode, Value) {
    use ErrorCode as C;
    let (status, kind) = match code {
        C::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
        C::Forbidden => (StatusCode::FORBIDDEN, "permission_error"),
        C::BadRequest
        | C::BadJson
        | C::FrameTooLarge
        | C::DuplicateMessage
        | C::TextTooLong
        | C::UnknownStore => (StatusCode::BAD_REQUEST, "invalid_request_error"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    };
    (status, error_body(kind, code.as_str(), message))
}

fn data(v: &Value) -> Event {
    Event::default().data(v.to_string())
}

/// SSE events of one answer: the role delta, one content delta per chunk frame, then the final
/// chunk (or an error event) and `[DONE]`.
fn sse_events(
    meta: Meta,
    rx: mpsc::Receiver<AnswerEvent>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let first = data(&meta.chunk(json!({ "role": "assistant", "content": "" }), None));
    let rest = stream::unfold(Some(rx), move |rx| {
        let meta = meta.clone();
        async move {
            let mut rx = rx?;
            let events = loop {
                let Some(event) = rx.recv().await else {
                    let err = error_body(
                        "server_error",
                        "stream_interrupted",
                        "the answer ended without a final frame",
                    );
                    break vec![data(&err), Event::default().data("[DONE]")];
                };
                match event {
                    AnswerEvent::Status(_) | AnswerEvent::Products { .. } => continue,
                    AnswerEvent::Chunk { text, .. } => {
                        let e = data(&meta.chunk(json!({ "content": text }), None));
                        return Some((vec![e], Some(rx)));
                    }
                    AnswerEvent::Done(done) => {
                        let mut last = meta.chunk(json!({}), Some("stop"));
                        last["usage"] = usage(&done);
                        last["mangaassist"] = serde_json::to_value(&*done).unwrap_or(Value::Null);
                        break vec![data(&last), Event::default().data("[DONE]")];
                    }
                    AnswerEvent::Failed { code, message } => {
                        let (_, body) = answer_error(code, &message);
                        break vec![data(&body), Event::default().data("[DONE]")];
                    }
                }
            };
            Some((events, None))
        }
    });
    stream::once(async move { first })
        .chain(rest.flat_map(stream::iter))
        .map(Ok)
}

/// `stream: false`: waits for the whole answer and returns one `chat.completion`.
async fn collect(meta: Meta, mut rx: mpsc::Receiver<AnswerEvent>) -> Response {
    let mut text = String::new();
    while let Some(event) = rx.recv().await {
        match event {
            AnswerEvent::Status(_) | AnswerEvent::Products { .. } => {}
            AnswerEvent::Chunk { text: t, .. } => text.push_str(&t),
            AnswerEvent::Done(done) => {
                return Json(json!({
                    "id": meta.id,
                    "object": "chat.completion",
                    "created": meta.created,
                    "model": meta.model,
                    "choices": [{
                        "index": 0,
                        "message": { "role": "assistant", "content": text },
                        "finish_reason": "stop",
                    }],
                    "usage": usage(&done),
                    "mangaassist": serde_json::to_value(&*done).unwrap_or(Value::Null),
                }))
                .into_response();
            }
            AnswerEvent::Failed { code, message } => {
                let (status, body) = answer_error(code, &message);
                return (status, Json(body)).into_response();
            }
        }
    }
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "stream_interrupted",
        "the answer ended without a final frame",
    )
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    UrlQuery(params): UrlQuery<ConnectParams>,
    headers: HeaderMap,
    State(gw): State<Gateway>,
    body: Bytes,
) -> Response {
    let received = Instant::now();
    if let Some(r) = draining(&gw) {
        return r;
    }
    let settings = gw.shared.orchestrator.settings.clone();
    // Authenticate before parsing the body: an anonymous caller gets 401, never a 400 about it.
    if gw.auth.is_some()
        && let Err(r) = authenticate(&gw, &headers, params.token.as_deref(), None)
    {
        return *r;
    }
    if body.len() > settings.max_frame_bytes {
        return bad_request(format!(
            "request body of {} bytes exceeds the {}-byte limit (gateway.max_frame_bytes)",
            body.len(),
            settings.max_frame_bytes
        ));
    }
    let ChatQuery { request: req, text } = match parse_chat_request(&body) {
        Ok(q) => q,
        Err(ChatRequestError::Text(e)) => {
            let (status, body) = answer_error(e.code, &e.message);
            return (status, Json(body)).into_response();
        }
        Err(e) => return bad_request(e.to_string()),
    };

    let user = match authenticate(&gw, &headers, params.token.as_deref(), req.user.as_deref()) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    if let Err(retry) = gw.shared.admit(&user).await {
        let secs = retry.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limited",
            format!(
                "message limit per user reached; retry in {} ms",
                retry.as_millis()
            ),
        );
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    let pick = |h: &str, field: Option<String>| {
        header(&headers, h)
            .map(str::to_string)
            .or(field.filter(|s| !s.trim().is_empty()))
    };
    let session_id = pick("x-session-id", req.session_id);
    let store_id = pick("x-store-id", req.store_id);
    if let Err(e) =
        mangaassist_protocol::check_scope_ids(session_id.as_deref(), store_id.as_deref())
    {
        return bad_request(e.message);
    }
    let message_id = format!("chatcmpl-{}", uuid::Uuid::new_v4());
    let query = Query {
        message_id: message_id.clone(),
        session_id: session_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        user_id: user,
        store_id: store_id.unwrap_or_else(|| settings.default_store.clone()),
        text,
        received,
        reference: Default::default(),
    };
    let (tx, rx) = mpsc::channel::<AnswerEvent>(256);
    let answer = match gw.shared.open_answer(query, AnswerOutput::Events(tx)).await {
        Ok(a) => a,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal",
                format!("cannot open the answer stream: {e}"),
            );
        }
    };
    metrics::counter!("openai_requests_total", "stream" => req.stream.to_string()).increment(1);
    // Never cancelled: like a dropped `/ws`, a client that leaves only detaches the sink and
    // the answer finishes into the resume buffer.
    answer.spawn(&gw.shared, CancellationToken::new(), || {});
    let meta = Meta {
        id: message_id,
        created: unix_now(),
        model: req
            .model
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| MODEL_ID.to_string()),
    };
    if !req.stream {
        return collect(meta, rx).await;
    }
    let every = Duration::from_secs(settings.stream.heartbeat_seconds.max(1));
    Sse::new(sse_events(meta, rx))
        .keep_alive(KeepAlive::new().interval(every).text("keep-alive"))
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn error_frames_map_to_openai_errors() {
        let (status, body) = answer_error(ErrorCode::RateLimited, "slow down");
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["error"]["code"], "rate_limited");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["error"]["message"], "slow down");
    }
}
