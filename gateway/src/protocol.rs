//! The WebSocket protocol (docs/protocol.md): one JSON object per text frame.

use serde::{Deserialize, Serialize};

/// What a client may send.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Query {
        text: String,
        #[serde(default)]
        session_id: Option<String>,
        #[serde(default)]
        store_id: Option<String>,
        /// Echoed back in every frame of the answer; generated when absent.
        #[serde(default)]
        message_id: Option<String>,
    },
    Ping,
    /// Replays the chunks of `message_id` after `last_chunk_idx` (absent or -1 = from the
    /// start), then follows the answer live if it is still streaming.
    Resume {
        session_id: String,
        message_id: String,
        #[serde(default)]
        last_chunk_idx: Option<i64>,
    },
    /// Stops an answer in flight (the client no longer wants it).
    Cancel {
        message_id: String,
    },
}

/// What the gateway sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Sent before any backend call so the user sees progress at once.
    Status {
        message_id: String,
        session_id: String,
        text: String,
    },
    Chunk {
        message_id: String,
        index: u32,
        text: String,
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
}

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
    pub stages: Vec<crate::budget::StageTiming>,
}

/// Error codes of `error` frames.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
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
}

/// Parses a client frame, telling malformed JSON apart from unknown actions.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, (ErrorCode, String)> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| (ErrorCode::BadJson, format!("malformed JSON: {e}")))?;
    let action = value
        .get("action")
        .and_then(serde_json::Value::as_str)
        .ok_or((
            ErrorCode::BadRequest,
            "missing string field `action` (query, ping, resume, cancel)".to_string(),
        ))?
        .to_string();
    if !matches!(action.as_str(), "query" | "ping" | "resume" | "cancel") {
        return Err((
            ErrorCode::UnknownAction,
            format!("unknown action `{action}` (query, ping, resume, cancel)"),
        ));
    }
    let frame: ClientFrame = serde_json::from_value(value)
        .map_err(|e| (ErrorCode::BadRequest, format!("bad `{action}` frame: {e}")))?;
    match &frame {
        ClientFrame::Query { text, .. } if text.trim().is_empty() => {
            return Err((ErrorCode::BadRequest, "`text` is empty".to_string()));
        }
        ClientFrame::Resume {
            session_id,
            message_id,
            last_chunk_idx,
        } => {
            if session_id.trim().is_empty() || message_id.trim().is_empty() {
                return Err((
                    ErrorCode::BadRequest,
                    "`session_id` and `message_id` must not be empty".to_string(),
                ));
            }
            if let Some(i) = last_chunk_idx
                && (*i < -1 || *i > i64::from(u32::MAX))
            {
                return Err((
                    ErrorCode::BadRequest,
                    format!("`last_chunk_idx` {i} is out of range (-1 or a chunk index)"),
                ));
            }
        }
        ClientFrame::Cancel { message_id } if message_id.trim().is_empty() => {
            return Err((ErrorCode::BadRequest, "`message_id` is empty".to_string()));
        }
        _ => {}
    }
    if let ClientFrame::Query {
        message_id: Some(id),
        ..
    } = &frame
        && (id.is_empty() || id.len() > 128 || id.chars().any(char::is_control))
    {
        return Err((
            ErrorCode::BadRequest,
            "`message_id` must be 1-128 printable characters".to_string(),
        ));
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_and_classifies_errors() {
        assert_eq!(
            parse_client_frame(r#"{"action":"ping"}"#).unwrap(),
            ClientFrame::Ping
        );
        assert!(matches!(
            parse_client_frame(r#"{"action":"query","text":"hi","session_id":"s"}"#).unwrap(),
            ClientFrame::Query { .. }
        ));
        assert_eq!(
            parse_client_frame("{nope").unwrap_err().0,
            ErrorCode::BadJson
        );
        assert_eq!(
            parse_client_frame(r#"{"action":"dance"}"#).unwrap_err().0,
            ErrorCode::UnknownAction
        );
        assert_eq!(
            parse_client_frame(r#"{"action":"query"}"#).unwrap_err().0,
            ErrorCode::BadRequest
        );
        assert_eq!(
            parse_client_frame(r#"{"action":"query","text":"  "}"#)
                .unwrap_err()
                .0,
            ErrorCode::BadRequest
        );
        assert_eq!(
            parse_client_frame(r#"{"action":"query","text":"x","extra":1}"#)
                .unwrap_err()
                .0,
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
            parse_client_frame(
                r#"{"action":"resume","session_id":"s","message_id":"m","last_chunk_idx":-7}"#
            )
            .unwrap_err()
            .0,
            ErrorCode::BadRequest
        );
        assert_eq!(
            parse_client_frame(r#"{"action":"resume","session_id":"","message_id":"m"}"#)
                .unwrap_err()
                .0,
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
    fn frames_serialise_with_type_tags() {
        let f = ServerFrame::Chunk {
            message_id: "m".into(),
            index: 2,
            text: "hi".into(),
        };
        assert_eq!(
            f.to_json(),
            r#"{"type":"chunk","message_id":"m","index":2,"text":"hi"}"#
        );
    }
}
