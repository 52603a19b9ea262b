//! The body of the gateway's OpenAI-compatible `POST /v1/chat/completions`, parsed apart from
//! the HTTP handler so the same strict parser can be fuzzed and tested without a gateway.
//! Like a client frame, the body comes from an untrusted caller: every refusal is an error
//! value, never a panic.

use serde::Deserialize;
use serde_json::Value;

use crate::{FrameError, check_text};

/// What the endpoint reads of a chat completion request; other OpenAI fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub store_id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    /// A string, or OpenAI's array of content parts (only `text` parts are read).
    #[serde(default)]
    pub content: Value,
}

impl ChatMessage {
    /// The message's text: the string, or the `text` parts joined with newlines.
    pub fn text(&self) -> String {
        match &self.content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
}

/// Why a request body is refused; the gateway answers 400 with this text (a too-long text
/// keeps its own code, `text_too_long`, through [`ChatRequestError::Text`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatRequestError {
    #[error("request body is not valid JSON: {0}")]
    Syntax(String),
    #[error("invalid chat completion request: {0}")]
    Invalid(String),
    #[error("`messages` has no message with role `user`")]
    NoUserMessage,
    #[error("the last `user` message has empty `content`")]
    EmptyText,
    #[error("{0}")]
    Text(FrameError),
}

/// A request the endpoint can answer: the body, and the question (the last `user` message).
#[derive(Debug, Clone)]
pub struct ChatQuery {
    pub request: ChatRequest,
    pub text: String,
}

/// Parses a request body (its size is checked by the caller, which knows the limit).
pub fn parse_chat_request(body: &[u8]) -> Result<ChatQuery, ChatRequestError> {
    let request: ChatRequest = serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ChatRequestError::Syntax(e.to_string())
        } else {
            ChatRequestError::Invalid(e.to_string())
        }
    })?;
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .ok_or(ChatRequestError::NoUserMessage)?;
    let text = last_user.text();
    if text.trim().is_empty() {
        return Err(ChatRequestError::EmptyText);
    }
    check_text(&text).map_err(ChatRequestError::Text)?;
    Ok(ChatQuery { request, text })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn content_parts_are_joined() {
        let m: ChatMessage = serde_json::from_value(serde_json::json!({
            "role": "user",
            "content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}],
        }))
        .unwrap();
        assert_eq!(m.text(), "a\nb");
    }

    #[test]
    fn the_question_is_the_last_user_message() {
        let q = parse_chat_request(
            br#"{"messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},
                {"role":"user","content":"second"},{"role":"system","content":"y"}],"stream":true}"#,
        )
        .unwrap();
        assert_eq!(q.text, "second");
        assert!(q.request.stream);
    }

    #[test]
    fn refusals_say_why() {
        let cases: [(&[u8], ChatRequestError); 4] = [
            (b"{", ChatRequestError::Syntax(String::new())),
            (
                b"{\"messages\":3}",
                ChatRequestError::Invalid(String::new()),
            ),
            (
                b"{\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
                ChatRequestError::NoUserMessage,
            ),
            (
                b"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
                ChatRequestError::EmptyText,
            ),
        ];
        for (body, want) in cases {
            let got = parse_chat_request(body).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "{got}"
            );
        }
        let long = format!(
            r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#,
            "a".repeat(crate::MAX_TEXT_CHARS + 1)
        );
        match parse_chat_request(long.as_bytes()) {
            Err(ChatRequestError::Text(e)) => assert_eq!(e.code, ErrorCode::TextTooLong),
            other => panic!("{other:?}"),
        }
    }
}
