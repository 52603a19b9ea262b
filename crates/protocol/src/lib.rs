//! The chat protocol of the gateway's WebSocket (docs/protocol.md), typed once for everyone
//! who speaks it: the gateway, the terminal chat client, the benchmark and its fake gateway,
//! and the tests. One JSON object per text frame; clients send [`ClientFrame`]s tagged by
//! `action`, the gateway sends [`ServerFrame`]s tagged by `type`.
//!
//! The browser page and external clients depend on the exact JSON, so field names, tags and
//! which optional fields are left out are part of the contract (the tests below pin them to
//! the documented examples). Client frames come from untrusted peers: [`parse_client_frame`]
//! is strict (unknown fields, blank texts, out-of-range indexes are refused with an
//! [`ErrorCode`] the gateway sends back). Gateway frames are read leniently by clients
//! ([`parse_server_frame`]): unknown fields are ignored and an unknown `type` is reported
//! apart, so an older client keeps working against a newer gateway.

use serde::{Deserialize, Serialize};

pub mod openai;

/// The `action`s a client may send.
pub const ACTIONS: [&str; 5] = ["query", "ping", "resume", "cancel", "history"];

/// The `type`s the gateway sends.
pub const FRAME_TYPES: [&str; 9] = [
    "status",
    "chunk",
    "products",
    "done",
    "error",
    "pong",
    "heartbeat",
    "stock",
    "history",
];

/// Most turns one `history` request returns.
pub const MAX_HISTORY_TURNS: u32 = 200;
/// Turns a `history` request without `limit` returns.
pub const DEFAULT_HISTORY_TURNS: u32 = 50;

/// What a client may send.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Query {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        store_id: Option<String>,
        /// Echoed back in every frame of the answer; generated when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
    },
    /// A struct variant, not a unit one: serde ignores extra fields of a unit variant, and a
    /// client frame with fields nobody reads is refused like any other.
    Ping {},
    /// Replays the chunks of `message_id` after `last_chunk_idx` (absent or -1 = from the
    /// start), then follows the answer live if it is still streaming.
    Resume {
        session_id: String,
        message_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_chunk_idx: Option<i64>,
    },
    /// Stops an answer in flight (the client no longer wants it).
    Cancel { message_id: String },
    /// The conversation so far (a page that reloads shows it again); oldest first.
    History {
        /// The connection's session when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
        /// Newest turns to return: 1 to [`MAX_HISTORY_TURNS`], [`DEFAULT_HISTORY_TURNS`] when
        /// absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
}

impl ClientFrame {
    /// A query with only its text; the gateway fills in the connection's session and store.
    pub fn query(text: impl Into<String>) -> Self {
        ClientFrame::Query {
            text: text.into(),
            session_id: None,
            store_id: None,
            message_id: None,
        }
    }

    pub fn to_json(&self) -> String {
        // Strings and integers only: encoding cannot fail, but a client must not panic.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"action":"ping"}"#.to_string())
    }
}

/// What the gateway sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Progress: sent before any backend call, then as each phase of the answer starts.
    Status {
        message_id: String,
        session_id: String,
        text: String,
        /// Which phase just started (absent from gateways before phases existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<Phase>,
        /// The intent, once the classifier (or its keyword fallback) has decided it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        intent: Option<String>,
        /// The language the answer is written in (`en`, `ja`).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        lang: String,
    },
    Chunk {
        message_id: String,
        index: u32,
        text: String,
    },
    /// The catalog products the answer names, as cards: sent after the last chunk and
    /// right before `done` (and replayed with it by `resume`).
    Products {
        message_id: String,
        session_id: String,
        store_id: String,
        /// The language the cards are written in (`en`, `ja`).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        lang: String,
        products: Vec<ProductCard>,
    },
    Done(Box<Done>),
    Error {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        message_id: Option<String>,
        code: ErrorCode,
        message: String,
        /// Rate limits: when to try again.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_after_ms: Option<u64>,
    },
    Pong,
    /// Sent every few seconds while answers are in flight, so proxies with idle timeouts
    /// keep the connection open (seed 000 scenario 3).
    Heartbeat {
        in_flight: u32,
    },
    /// A product shown on this connection changed stock or price (connection level: it
    /// belongs to no one answer).
    Stock(StockUpdate),
    /// The answer to a `history` action: the session's turns, oldest first.
    History {
        session_id: String,
        turns: Vec<HistoryTurn>,
    },
}

/// The phases of an answer, in order; each `status` frame says which one started.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The message arrived: classifying it and reading the customer's context.
    Understanding,
    /// The intent needs the catalog or the store's policies: waiting for retrieval.
    Searching,
    /// The model was asked; its first words follow.
    Writing,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Understanding => "understanding",
            Phase::Searching => "searching",
            Phase::Writing => "writing",
        }
    }
}

/// How much of a product is left, as a shop shows it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StockLevel {
    /// Five or more.
    InStock,
    /// One to four left.
    LowStock,
    SoldOut,
}

impl StockLevel {
    /// Below this many, stock is low (the model's answers use the same line).
    pub const LOW_BELOW: u32 = 5;

    pub fn of(quantity: u32) -> Self {
        match quantity {
            0 => StockLevel::SoldOut,
            q if q < Self::LOW_BELOW => StockLevel::LowStock,
            _ => StockLevel::InStock,
        }
    }
}

/// One product as a card: what a customer needs to decide, in the storefront's language.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProductCard {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub series: String,
    #[serde(default)]
    pub volume: u32,
    #[serde(default)]
    pub author: String,
    /// In the currency's smallest unit (yen have no subunit).
    pub price: u32,
    /// ISO 4217.
    pub currency: String,
    /// The price as the storefront writes it (`495円`, `1,680 yen`).
    pub price_text: String,
    pub stock: StockLevel,
    pub quantity: u32,
}

/// A shown product's new stock or price.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StockUpdate {
    pub store_id: String,
    pub product_id: String,
    pub stock: StockLevel,
    pub quantity: u32,
    pub price: u32,
    pub price_text: String,
}

/// One turn of a conversation, as a page shows it again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryTurn {
    /// `user` or `assistant`.
    pub role: String,
    pub text: String,
    /// The answer this turn belongs to (a question and its answer share it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message_id: String,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The answer's intent (assistant turns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
}

/// The last frame of a successful answer: what it was and what it cost.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Done {
    pub message_id: String,
    pub session_id: String,
    /// Milliseconds from receiving the query to sending the first chunk.
    pub first_token_ms: u64,
    /// Milliseconds from receiving the query to sending this frame.
    pub total_ms: u64,
    /// Output tokens of the answer.
    pub tokens: u32,
    /// Number of chunk frames sent.
    pub chunks: u32,
    pub intent: String,
    pub model: String,
    pub cache_hit: bool,
    /// Which path served the answer: `live` (generated now), `cache` (a cached live answer)
    /// or `precomputed` (written ahead by the precompute daemon). Cached and pre-computed
    /// answers were checked against the live stock first.
    #[serde(default)]
    pub served_from: String,
    /// Products a cached answer named that sold out since; their lines were left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stock_removed: Vec<String>,
    /// `full`, `no_rag`, `no_intent`, `minimal` or `canned` (seed 003 ladder).
    pub degradation: String,
    pub trace_id: String,
    /// Catalog products the answer mentions.
    pub product_ids: Vec<String>,
    /// `fast` or `smart` (empty for cached and canned answers).
    #[serde(default)]
    pub tier: String,
    /// Why that tier: `matrix`, `fallback`, `adaptive`, `escalated`.
    #[serde(default)]
    pub route: String,
    /// Every stage of this message: start and duration from receipt, budget, outcome.
    #[serde(default)]
    pub stages: Vec<StageTiming>,
}

impl Done {
    /// The timing of `stage`, if the message went through it.
    pub fn stage(&self, stage: &str) -> Option<&StageTiming> {
        self.stages.iter().find(|s| s.stage == stage)
    }
}

/// One stage of one message, as reported in `done.stages` and the waterfall log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageTiming {
    pub stage: String,
    /// From the gateway receiving the message.
    pub start_ms: f64,
    pub duration_ms: f64,
    /// The stage's p95 budget; `null` when it has none.
    pub budget_ms: Option<u64>,
    /// `ok`, `error`, `deadline`, `circuit_open`, `skipped`, `cancelled`.
    pub outcome: String,
}

/// Error codes of `error` frames.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON.
    BadJson,
    /// Valid JSON but not a known action or missing/invalid fields.
    BadRequest,
    UnknownAction,
    /// Binary (or other non-text) frame.
    UnsupportedFrame,
    /// Larger than `gateway.max_frame_bytes`.
    FrameTooLarge,
    /// Too many messages in flight on this connection.
    Busy,
    /// The answer could not be produced (after all degradation steps).
    Internal,
    /// The model stream broke after some chunks were sent.
    StreamInterrupted,
    /// Too many messages: see `retry_after_ms`.
    RateLimited,
    /// Resume of a stream that does not exist (or expired).
    NotFound,
    /// Resume of another user's stream, or a query in another user's session.
    Forbidden,
    /// The answer was cancelled by the client.
    Cancelled,
    /// A `message_id` already used for another answer.
    DuplicateMessage,
    /// A question longer than [`MAX_TEXT_CHARS`].
    TextTooLong,
    /// A `store_id` this gateway does not serve (`gateway.stores`).
    UnknownStore,
    /// A backend the request needs (the conversation store for `history`) is not answering.
    Unavailable,
}

impl ErrorCode {
    /// The code as it appears on the wire (`bad_json`, `rate_limited`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownAction => "unknown_action",
            ErrorCode::UnsupportedFrame => "unsupported_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::Busy => "busy",
            ErrorCode::Internal => "internal",
            ErrorCode::StreamInterrupted => "stream_interrupted",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::DuplicateMessage => "duplicate_message",
            ErrorCode::TextTooLong => "text_too_long",
            ErrorCode::UnknownStore => "unknown_store",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ServerFrame {
    pub fn error(message_id: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            message_id,
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail; fall back to a fixed error frame anyway.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"cannot encode frame"}"#.to_string()
        })
    }

    /// The answer this frame belongs to (`None` for pong, heartbeat and connection errors).
    pub fn message_id(&self) -> Option<&str> {
        match self {
            ServerFrame::Status { message_id, .. }
            | ServerFrame::Chunk { message_id, .. }
            | ServerFrame::Products { message_id, .. } => Some(message_id),
            ServerFrame::Done(d) => Some(&d.message_id),
            ServerFrame::Error { message_id, .. } => message_id.as_deref(),
            ServerFrame::Pong
            | ServerFrame::Heartbeat { .. }
            | ServerFrame::Stock(_)
            | ServerFrame::History { .. } => None,
        }
    }

    /// The `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::Status { .. } => "status",
            ServerFrame::Chunk { .. } => "chunk",
            ServerFrame::Products { .. } => "products",
            ServerFrame::Stock(_) => "stock",
            ServerFrame::History { .. } => "history",
            ServerFrame::Done(_) => "done",
            ServerFrame::Error { .. } => "error",
            ServerFrame::Pong => "pong",
            ServerFrame::Heartbeat { .. } => "heartbeat",
        }
    }

    /// Whether this frame ends its answer (`done` or an `error`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, ServerFrame::Done(_) | ServerFrame::Error { .. })
    }
}

/// A client frame the gateway refuses: the code and message of the `error` frame it answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
}

impl FrameError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Longest question, in characters: a customer's message, not a document (and every daemon
/// downstream embeds, classifies and prompts with it).
pub const MAX_TEXT_CHARS: usize = 4_000;
/// Longest id (session, message, store), in characters.
pub const MAX_ID_CHARS: usize = 128;

/// A question's text: not blank, at most [`MAX_TEXT_CHARS`].
pub fn check_text(text: &str) -> Result<(), FrameError> {
    if text.trim().is_empty() {
        return Err(FrameError::new(ErrorCode::BadRequest, "`text` is empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(FrameError::new(
            ErrorCode::TextTooLong,
            format!("`text` has {chars} characters; at most {MAX_TEXT_CHARS} are accepted"),
        ));
    }
    Ok(())
}

/// An id a client chose (`field` names it): 1 to [`MAX_ID_CHARS`] printable characters.
pub fn check_id(field: &str, id: &str) -> Result<(), FrameError> {
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS || id.chars().any(char::is_control) {
        return Err(FrameError::new(
            ErrorCode::BadRequest,
            format!("`{field}` must be 1-{MAX_ID_CHARS} printable characters"),
        ));
    }
    Ok(())
}

/// The session and store a client named: absent or blank means "the default" (the
/// connection's, or the gateway's), anything else must pass [`check_id`].
pub fn check_scope_ids(session_id: Option<&str>, store_id: Option<&str>) -> Result<(), FrameError> {
    for (field, id) in [("session_id", session_id), ("store_id", store_id)] {
        if let Some(id) = id.filter(|id| !id.trim().is_empty()) {
            check_id(field, id)?;
        }
    }
    Ok(())
}

/// Parses a client frame, telling malformed JSON apart from unknown actions.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| FrameError::new(ErrorCode::BadJson, format!("malformed JSON: {e}")))?;
    let action = value
        .get("action")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            FrameError::new(
                ErrorCode::BadRequest,
                "missing string field `action` (query, ping, resume, cancel, history)",
            )
        })?
        .to_string();
    if !ACTIONS.contains(&action.as_str()) {
        return Err(FrameError::new(
            ErrorCode::UnknownAction,
            format!("unknown action `{action}` (query, ping, resume, cancel, history)"),
        ));
    }
    let frame: ClientFrame = serde_json::from_value(value).map_err(|e| {
        FrameError::new(ErrorCode::BadRequest, format!("bad `{action}` frame: {e}"))
    })?;
    match &frame {
        ClientFrame::Query {
            text,
            session_id,
            store_id,
            message_id,
        } => {
            check_text(text)?;
            check_scope_ids(session_id.as_deref(), store_id.as_deref())?;
            // A message id that is sent must be a real one (it keys the answer's buffer).
            if let Some(id) = message_id {
                check_id("message_id", id)?;
            }
        }
        ClientFrame::Resume {
            session_id,
            message_id,
            last_chunk_idx,
        } => {
            if session_id.trim().is_empty() || message_id.trim().is_empty() {
                return Err(FrameError::new(
                    ErrorCode::BadRequest,
                    "`session_id` and `message_id` must not be empty",
                ));
            }
            check_id("session_id", session_id)?;
            check_id("message_id", message_id)?;
            if let Some(i) = last_chunk_idx
                && (*i < -1 || *i > i64::from(u32::MAX))
            {
                return Err(FrameError::new(
                    ErrorCode::BadRequest,
                    format!("`last_chunk_idx` {i} is out of range (-1 or a chunk index)"),
                ));
            }
        }
        ClientFrame::Cancel { message_id } => {
            if message_id.trim().is_empty() {
                return Err(FrameError::new(
                    ErrorCode::BadRequest,
                    "`message_id` is empty",
                ));
            }
            check_id("message_id", message_id)?;
        }
        ClientFrame::History { session_id, limit } => {
            check_scope_ids(session_id.as_deref(), None)?;
            if let Some(n) = limit
                && !(1..=MAX_HISTORY_TURNS).contains(n)
            {
                return Err(FrameError::new(
                    ErrorCode::BadRequest,
                    format!("`limit` {n} is out of range (1-{MAX_HISTORY_TURNS})"),
                ));
            }
        }
        ClientFrame::Ping {} => {}
    }
    Ok(frame)
}

/// A gateway frame a client cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ServerFrameError {
    #[error("gateway frame is not JSON: {0}")]
    BadJson(serde_json::Error),
    /// A frame type this client does not know (a newer gateway); clients skip it.
    #[error("unknown gateway frame type `{0}`")]
    UnknownType(String),
    #[error("bad `{kind}` frame from the gateway: {error}")]
    Invalid {
        kind: String,
        error: serde_json::Error,
    },
}

/// Parses a gateway frame. Unknown fields are ignored; an unknown or missing `type` is
/// [`ServerFrameError::UnknownType`], so clients can skip frames they do not know.
pub fn parse_server_frame(text: &str) -> Result<ServerFrame, ServerFrameError> {
    let error = match serde_json::from_str::<ServerFrame>(text) {
        Ok(frame) => return Ok(frame),
        Err(e) => e,
    };
    // Only on failure: find out whether the frame is known but broken, or not known at all.
    #[derive(Deserialize)]
    struct Tag {
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
    }
    match serde_json::from_str::<Tag>(text) {
        Err(_) => Err(ServerFrameError::BadJson(error)),
        Ok(Tag {
            kind: Some(serde_json::Value::String(kind)),
        }) if FRAME_TYPES.contains(&kind.as_str()) => {
            Err(ServerFrameError::Invalid { kind, error })
        }
        Ok(Tag { kind }) => Err(ServerFrameError::UnknownType(match kind {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        })),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::{Value, json};

    fn code(text: &str) -> ErrorCode {
        parse_client_frame(text).unwrap_err().code
    }

    #[test]
    fn parses_and_classifies_errors() {
        assert_eq!(
            parse_client_frame(r#"{"action":"ping"}"#).unwrap(),
            ClientFrame::Ping {}
        );
        assert!(matches!(
            parse_client_frame(r#"{"action":"query","text":"hi","session_id":"s"}"#).unwrap(),
            ClientFrame::Query { .. }
        ));
        assert_eq!(code("{nope"), ErrorCode::BadJson);
        assert_eq!(code(r#"{"action":"dance"}"#), ErrorCode::UnknownAction);
        assert_eq!(code(r#"{"action":"query"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"action":"query","text":"  "}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"action":"query","text":"x","extra":1}"#),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn resume_and_cancel_frames() {
        assert_eq!(
            parse_client_frame(
                r#"{"action":"resume","session_id":"s","message_id":"m","last_chunk_idx":4}"#
            )
            .unwrap(),
            ClientFrame::Resume {
                session_id: "s".into(),
                message_id: "m".into(),
                last_chunk_idx: Some(4)
            }
        );
        assert_eq!(
            code(r#"{"action":"resume","session_id":"s","message_id":"m","last_chunk_idx":-7}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"action":"resume","session_id":"","message_id":"m"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            parse_client_frame(r#"{"action":"cancel","message_id":"m"}"#).unwrap(),
            ClientFrame::Cancel {
                message_id: "m".into()
            }
        );
    }

    #[test]
    fn bad_client_frames_are_refused_with_a_clear_message() {
        for (frame, want, says) in [
            ("", ErrorCode::BadJson, "malformed JSON"),
            (
                "[1,2]",
                ErrorCode::BadRequest,
                "missing string field `action`",
            ),
            (r#"{"action":7}"#, ErrorCode::BadRequest, "`action`"),
            (r#"{"text":"hi"}"#, ErrorCode::BadRequest, "`action`"),
            (
                r#"{"action":"Query","text":"hi"}"#,
                ErrorCode::UnknownAction,
                "`Query`",
            ),
            (
                r#"{"action":"query","text":5}"#,
                ErrorCode::BadRequest,
                "bad `query` frame",
            ),
            (
                r#"{"action":"query","text":"x","session":"s"}"#,
                ErrorCode::BadRequest,
                "unknown field `session`",
            ),
            (
                r#"{"action":"query","text":"x","message_id":""}"#,
                ErrorCode::BadRequest,
                "1-128 printable",
            ),
            (
                r#"{"action":"query","text":"x","message_id":"a\u0007b"}"#,
                ErrorCode::BadRequest,
                "1-128 printable",
            ),
            (
                &format!(
                    r#"{{"action":"query","text":"x","message_id":"{}"}}"#,
                    "m".repeat(129)
                ),
                ErrorCode::BadRequest,
                "1-128 printable",
            ),
            (
                &format!(
                    r#"{{"action":"query","text":"{}"}}"#,
                    "あ".repeat(MAX_TEXT_CHARS + 1)
                ),
                ErrorCode::TextTooLong,
                "4001 characters",
            ),
            (
                &format!(
                    r#"{{"action":"query","text":"x","session_id":"{}"}}"#,
                    "s".repeat(129)
                ),
                ErrorCode::BadRequest,
                "`session_id` must be 1-128",
            ),
            (
                r#"{"action":"query","text":"x","store_id":"a\u0007b"}"#,
                ErrorCode::BadRequest,
                "`store_id` must be 1-128",
            ),
            (
                &format!(
                    r#"{{"action":"resume","session_id":"s","message_id":"{}"}}"#,
                    "m".repeat(129)
                ),
                ErrorCode::BadRequest,
                "`message_id` must be 1-128",
            ),
            (
                &format!(
                    r#"{{"action":"cancel","message_id":"{}"}}"#,
                    "m".repeat(129)
                ),
                ErrorCode::BadRequest,
                "`message_id` must be 1-128",
            ),
            (
                r#"{"action":"resume","session_id":"s","message_id":" "}"#,
                ErrorCode::BadRequest,
                "must not be empty",
            ),
            (
                r#"{"action":"resume","session_id":"s","message_id":"m","last_chunk_idx":4294967296}"#,
                ErrorCode::BadRequest,
                "out of range",
            ),
            (
                r#"{"action":"resume","session_id":"s","message_id":"m","last_chunk_idx":1.5}"#,
                ErrorCode::BadRequest,
                "bad `resume` frame",
            ),
            (
                r#"{"action":"resume","message_id":"m"}"#,
                ErrorCode::BadRequest,
                "missing field `session_id`",
            ),
            (
                r#"{"action":"cancel","message_id":""}"#,
                ErrorCode::BadRequest,
                "`message_id` is empty",
            ),
            (
                r#"{"action":"cancel"}"#,
                ErrorCode::BadRequest,
                "missing field `message_id`",
            ),
            (
                r#"{"action":"history","limit":0}"#,
                ErrorCode::BadRequest,
                "`limit` 0 is out of range",
            ),
            (
                r#"{"action":"history","limit":201}"#,
                ErrorCode::BadRequest,
                "out of range (1-200)",
            ),
            (
                r#"{"action":"history","limit":-1}"#,
                ErrorCode::BadRequest,
                "bad `history` frame",
            ),
            (
                r#"{"action":"history","session_id":"a\u0007b"}"#,
                ErrorCode::BadRequest,
                "`session_id` must be 1-128",
            ),
            (
                r#"{"action":"history","user_id":"someone-else"}"#,
                ErrorCode::BadRequest,
                "unknown field `user_id`",
            ),
        ] {
            let err = parse_client_frame(frame)
                .err()
                .unwrap_or_else(|| panic!("{frame} was accepted"));
            assert_eq!(err.code, want, "{frame}: {err}");
            assert!(err.message.contains(says), "{frame}: {err}");
        }
        // `ping` carries no fields, so any field is an unknown one.
        let err = parse_client_frame(r#"{"action":"ping","x":1}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert!(err.message.contains("unknown field `x`"), "{err}");
        assert_eq!(
            parse_client_frame(r#"{"action":"ping"}"#).unwrap(),
            ClientFrame::Ping {}
        );
        assert_eq!(ClientFrame::Ping {}.to_json(), r#"{"action":"ping"}"#);
        let id = "m".repeat(128);
        assert!(
            parse_client_frame(&format!(
                r#"{{"action":"query","text":"x","message_id":"{id}"}}"#
            ))
            .is_ok()
        );
        assert!(
            parse_client_frame(
                r#"{"action":"resume","session_id":"s","message_id":"m","last_chunk_idx":-1}"#
            )
            .is_ok()
        );
        assert!(
            parse_client_frame(
                r#"{"action":"resume","session_id":"s","message_id":"m","last_chunk_idx":4294967295}"#
            )
            .is_ok()
        );
    }

    /// Every client frame of docs/protocol.md parses and encodes back to the same JSON.
    #[test]
    fn documented_client_frames_round_trip() {
        for doc in [
            r#"{"action":"query","text":"Suggest manga like One Piece","session_id":"s1","store_id":"manga_jp","message_id":"optional-id"}"#,
            r#"{"action":"resume","session_id":"s1","message_id":"m1","last_chunk_idx":7}"#,
            r#"{"action":"cancel","message_id":"m1"}"#,
            r#"{"action":"ping"}"#,
            r#"{"action":"query","text":"Where is my order?","session_id":"s1"}"#,
            r#"{"action":"history","session_id":"s1","limit":50}"#,
            r#"{"action":"history"}"#,
        ] {
            let frame = parse_client_frame(doc).unwrap();
            assert_eq!(
                serde_json::from_str::<Value>(&frame.to_json()).unwrap(),
                serde_json::from_str::<Value>(doc).unwrap(),
                "{doc}"
            );
        }
        // Absent optional fields stay absent.
        assert_eq!(
            ClientFrame::query("hi").to_json(),
            r#"{"action":"query","text":"hi"}"#
        );
    }

    fn round_trip(frame: &ServerFrame, wire: Value) {
        assert_eq!(
            serde_json::from_str::<Value>(&frame.to_json()).unwrap(),
            wire,
            "{frame:?}"
        );
        assert_eq!(&parse_server_frame(&wire.to_string()).unwrap(), frame);
    }

    /// Every gateway frame of docs/protocol.md, both ways.
    #[test]
    fn documented_server_frames_round_trip() {
        round_trip(
            &ServerFrame::Status {
                message_id: "m1".into(),
                session_id: "s1".into(),
                text: "Looking up your orders…".into(),
                phase: Some(Phase::Understanding),
                intent: None,
                lang: "en".into(),
            },
            json!({"type":"status","message_id":"m1","session_id":"s1","text":"Looking up your orders…","phase":"understanding","lang":"en"}),
        );
        round_trip(
            &ServerFrame::Status {
                message_id: "m1".into(),
                session_id: "s1".into(),
                text: "カタログを検索しています…".into(),
                phase: Some(Phase::Searching),
                intent: Some("recommendation".into()),
                lang: "ja".into(),
            },
            json!({"type":"status","message_id":"m1","session_id":"s1","text":"カタログを検索しています…","phase":"searching","intent":"recommendation","lang":"ja"}),
        );
        round_trip(
            &ServerFrame::Products {
                message_id: "m1".into(),
                session_id: "s1".into(),
                store_id: "manga_jp".into(),
                lang: "ja".into(),
                products: vec![ProductCard {
                    id: "B05KL9F8YY".into(),
                    title: "ONE PIECE 1".into(),
                    series: "ONE PIECE".into(),
                    volume: 1,
                    author: "Eiichiro Oda".into(),
                    price: 495,
                    currency: "JPY".into(),
                    price_text: "495円".into(),
                    stock: StockLevel::LowStock,
                    quantity: 1,
                }],
            },
            json!({"type":"products","message_id":"m1","session_id":"s1","store_id":"manga_jp","lang":"ja","products":[
                {"id":"B05KL9F8YY","title":"ONE PIECE 1","series":"ONE PIECE","volume":1,"author":"Eiichiro Oda",
                 "price":495,"currency":"JPY","price_text":"495円","stock":"low_stock","quantity":1}]}),
        );
        round_trip(
            &ServerFrame::Stock(StockUpdate {
                store_id: "manga_jp".into(),
                product_id: "B05KL9F8YY".into(),
                stock: StockLevel::SoldOut,
                quantity: 0,
                price: 495,
                price_text: "495円".into(),
            }),
            json!({"type":"stock","store_id":"manga_jp","product_id":"B05KL9F8YY","stock":"sold_out","quantity":0,"price":495,"price_text":"495円"}),
        );
        round_trip(
            &ServerFrame::History {
                session_id: "s1".into(),
                turns: vec![
                    HistoryTurn {
                        role: "user".into(),
                        text: "Where is my order?".into(),
                        message_id: "m1".into(),
                        ts_ms: 1_764_000_000_000,
                        intent: None,
                    },
                    HistoryTurn {
                        role: "assistant".into(),
                        text: "Your order shipped.".into(),
                        message_id: "m1".into(),
                        ts_ms: 1_764_000_000_900,
                        intent: Some("order_status".into()),
                    },
                ],
            },
            json!({"type":"history","session_id":"s1","turns":[
                {"role":"user","text":"Where is my order?","message_id":"m1","ts_ms":1_764_000_000_000_i64},
                {"role":"assistant","text":"Your order shipped.","message_id":"m1","ts_ms":1_764_000_000_900_i64,"intent":"order_status"}]}),
        );
        // A gateway from before phases: its status frames still parse.
        assert!(matches!(
            parse_server_frame(r#"{"type":"status","message_id":"m","session_id":"s","text":"…"}"#)
                .unwrap(),
            ServerFrame::Status { phase: None, .. }
        ));
        round_trip(
            &ServerFrame::Chunk {
                message_id: "m1".into(),
                index: 0,
                text: "Your ".into(),
            },
            json!({"type":"chunk","message_id":"m1","index":0,"text":"Your "}),
        );
        round_trip(
            &ServerFrame::Heartbeat { in_flight: 2 },
            json!({"type":"heartbeat","in_flight":2}),
        );
        round_trip(&ServerFrame::Pong, json!({"type":"pong"}));
        round_trip(
            &ServerFrame::error(
                Some("m1".into()),
                ErrorCode::Cancelled,
                "the answer was cancelled",
            ),
            json!({"type":"error","message_id":"m1","code":"cancelled","message":"the answer was cancelled"}),
        );
        // Connection-level errors carry no message id; rate limits say when to retry.
        round_trip(
            &ServerFrame::Error {
                message_id: None,
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                retry_after_ms: Some(1500),
            },
            json!({"type":"error","code":"rate_limited","message":"slow down","retry_after_ms":1500}),
        );
        let done = json!({
            "type":"done","message_id":"m1","first_token_ms":12,"total_ms":31,"tokens":48,
            "chunks":18,"intent":"order_status","model":"sim-fast (simulated Claude Haiku class)",
            "cache_hit":false,"served_from":"live","degradation":"full","tier":"fast","route":"matrix",
            "stages":[
                {"stage":"embed","start_ms":0.1,"duration_ms":11.8,"budget_ms":50,"outcome":"ok"},
                {"stage":"streaming","start_ms":12.0,"duration_ms":19.0,"budget_ms":null,"outcome":"ok"}
            ],
            "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","product_ids":[],"session_id":"s1"
        });
        let frame = parse_server_frame(&done.to_string()).unwrap();
        let ServerFrame::Done(d) = &frame else {
            panic!("{frame:?}")
        };
        assert_eq!(d.stage("embed").unwrap().budget_ms, Some(50));
        assert_eq!(d.stage("streaming").unwrap().budget_ms, None);
        assert_eq!(d.chunks, 18);
        round_trip(&frame, done);
    }

    #[test]
    fn every_frame_type_and_error_code_is_named_on_the_wire() {
        use ErrorCode::*;
        for c in [
            BadJson,
            BadRequest,
            UnknownAction,
            UnsupportedFrame,
            FrameTooLarge,
            Busy,
            Internal,
            StreamInterrupted,
            RateLimited,
            NotFound,
            Forbidden,
            Cancelled,
            DuplicateMessage,
            TextTooLong,
            UnknownStore,
            Unavailable,
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        for f in [
            ServerFrame::Pong,
            ServerFrame::Heartbeat { in_flight: 1 },
            ServerFrame::error(None, Busy, "x"),
        ] {
            let wire: Value = serde_json::from_str(&f.to_json()).unwrap();
            assert_eq!(wire["type"], f.kind());
            assert!(FRAME_TYPES.contains(&f.kind()));
        }
    }

    #[test]
    fn clients_read_gateway_frames_leniently_but_not_blindly() {
        // Fields a newer gateway adds are ignored; older `done` frames without tier/route/stages
        // still read.
        let f = parse_server_frame(
            r#"{"type":"chunk","message_id":"m","index":1,"text":"a","new":true}"#,
        )
        .unwrap();
        assert_eq!(f.message_id(), Some("m"));
        let d = parse_server_frame(
            r#"{"type":"done","message_id":"m","session_id":"s","first_token_ms":1,"total_ms":2,"tokens":3,"chunks":1,"intent":"faq","model":"x","cache_hit":true,"degradation":"full","trace_id":"t","product_ids":["p"]}"#,
        )
        .unwrap();
        assert!(d.is_terminal());
        assert!(matches!(
            parse_server_frame(r#"{"type":"typing","message_id":"m"}"#),
            Err(ServerFrameError::UnknownType(t)) if t == "typing"
        ));
        assert!(matches!(
            parse_server_frame(r#"{"message_id":"m"}"#),
            Err(ServerFrameError::UnknownType(_))
        ));
        assert!(matches!(
            parse_server_frame(r#"{"type":"chunk","message_id":"m","index":-1,"text":"a"}"#),
            Err(ServerFrameError::Invalid { kind, .. }) if kind == "chunk"
        ));
        assert!(matches!(
            parse_server_frame(r#"{"type":"error","code":"no_such_code","message":"x"}"#),
            Err(ServerFrameError::Invalid { .. })
        ));
        assert!(matches!(
            parse_server_frame("not json"),
            Err(ServerFrameError::BadJson(_))
        ));
    }
}
