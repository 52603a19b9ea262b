//! Attacks from issue 14, each against the real mesh: what a client that lies or floods may
//! send, and what it gets back. Every one of them is refused with a clear error while the
//! connection (and everyone else) keeps being served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestMesh, WsClient};
use mangaassist_protocol::{ErrorCode, MAX_TEXT_CHARS};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_questions_and_ids_are_refused_and_the_socket_keeps_serving() {
    let m = TestMesh::start(&[]).await;
    let mut c = m.client().await;
    // A question the size of a document: never embedded, classified or prompted.
    c.send_json(json!({"action": "query", "text": "a".repeat(MAX_TEXT_CHARS + 1)}))
        .await;
    let f = c.next_frame().await;
    assert_eq!(
        common::error_code(&f),
        Some(ErrorCode::TextTooLong),
        "{f:?}"
    );
    for frame in [
        json!({"action": "query", "text": "hi", "session_id": "s".repeat(129)}),
        json!({"action": "query", "text": "hi", "store_id": "x\u{7}y"}),
        json!({"action": "resume", "session_id": "s", "message_id": "m".repeat(129)}),
        json!({"action": "cancel", "message_id": "m".repeat(129)}),
    ] {
        c.send_json(frame.clone()).await;
        let f = c.next_frame().await;
        assert_eq!(
            common::error_code(&f),
            Some(ErrorCode::BadRequest),
            "{frame}: {f:?}"
        );
    }
    // A ping with fields nobody reads is an unknown field like any other.
    c.send_json(json!({"action": "ping", "x": 1})).await;
    let f = c.next_frame().await;
    assert_eq!(common::error_code(&f), Some(ErrorCode::BadRequest), "{f:?}");
    // The same socket still answers a real question.
    let a = c.ask("How long does shipping take?", "s-abuse").await;
    assert!(!a.text().is_empty());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_an_oversized_session_id_is_refused() {
    let m = TestMesh::start(&[]).await;
    let url = format!("{}&session_id={}", m.ws_url_as("u-demo"), "s".repeat(129));
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 400),
        other => panic!("expected HTTP 400, got {other:?}"),
    }
    // Others connect as usual.
    WsClient::connect(&m.ws_url_as("u-demo")).await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_endpoint_has_the_same_caps() {
    let m = TestMesh::start(&[]).await;
    let http = reqwest::Client::new();
    let url = format!("{}v1/chat/completions", m.mesh().gateway_url().unwrap());
    let ask = |text: String| json!({"messages": [{"role": "user", "content": text}]});
    let r = http
        .post(&url)
        .bearer_auth(m.token("u-demo"))
        .json(&ask("a".repeat(MAX_TEXT_CHARS + 1)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "text_too_long", "{body}");
    let r = http
        .post(&url)
        .bearer_auth(m.token("u-demo"))
        .header("x-session-id", "s".repeat(129))
        .json(&ask("hello".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_endpoint_takes_no_token_in_the_url() {
    let m = TestMesh::start(&[]).await;
    let http = reqwest::Client::new();
    let base = m.mesh().gateway_url().unwrap();
    let token = m.token("u-demo");
    let r = http
        .post(format!("{base}v1/chat/completions?token={token}"))
        .json(&json!({"messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token_in_url", "{body}");
    let r = http
        .get(format!("{base}v1/models?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The header works.
    let r = http
        .get(format!("{base}v1/models"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    m.stop().await;
}
