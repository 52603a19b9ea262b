//! The OpenAI-compatible endpoint: `POST /v1/chat/completions` (SSE and one-shot) and
//! `GET /v1/models` run the same pipeline as `/ws`, with the same auth and rate limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestMesh;
use serde_json::{Value, json};

fn url(m: &TestMesh, path: &str) -> String {
    format!("{}{path}", m.mesh().gateway_url().unwrap())
}

fn ask(text: &str, stream: bool) -> Value {
    json!({
        "model": "gpt-test",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": text},
        ],
    })
}

/// The `data:` payloads of an SSE body, in order (comments and blank lines skipped).
fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completions_stream_and_collect_like_ws() {
    let m = TestMesh::start(&[]).await;
    let http = reqwest::Client::new();
    let token = m.token("u-demo");

    let models: Value = http
        .get(url(&m, "v1/models"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "mangaassist", "{models}");

    let r = http
        .post(url(&m, "v1/chat/completions"))
        .bearer_auth(&token)
        .header("x-session-id", "s-openai")
        .json(&ask("What is your return policy?", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let body = r.text().await.unwrap();
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.len() >= 3, "{body}");
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"), "{id}");
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(c["id"], id);
        assert_eq!(c["model"], "gpt-test");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!text.trim().is_empty(), "{body}");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop", "{last}");
    assert!(
        last["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{last}"
    );
    assert_eq!(last["usage"]["prompt_tokens"], 0);
    let ext = &last["mangaassist"];
    assert!(!ext["intent"].as_str().unwrap().is_empty(), "{last}");
    assert_eq!(ext["message_id"], id);
    assert_eq!(ext["session_id"], "s-openai");
    assert!(!ext["model"].as_str().unwrap().is_empty());
    for c in &chunks[..chunks.len() - 1] {
        assert!(c["choices"][0]["finish_reason"].is_null(), "{c}");
    }

    let r = http
        .post(url(&m, "v1/chat/completions"))
        .bearer_auth(&token)
        .json(&ask("Do you ship to Canada?", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["object"], "chat.completion", "{done}");
    assert_eq!(done["choices"][0]["message"]["role"], "assistant");
    assert!(
        !done["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .trim()
            .is_empty(),
        "{done}"
    );
    assert_eq!(done["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        done["usage"]["completion_tokens"],
        done["mangaassist"]["tokens"]
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completions_refuse_bad_requests() {
    let m = TestMesh::start(&[]).await;
    let http = reqwest::Client::new();
    let endpoint = url(&m, "v1/chat/completions");
    let token = m.token("u-demo");

    let r = http
        .post(&endpoint)
        .json(&ask("hello", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "authentication_error", "{e}");

    let r = http
        .post(&endpoint)
        .bearer_auth("not-a-jwt")
        .json(&ask("hello", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let cases: [(Vec<u8>, &str); 4] = [
        (b"{not json".to_vec(), "not valid JSON"),
        (
            json!({"model": "x", "messages": [{"role": "system", "content": "hi"}]})
                .to_string()
                .into_bytes(),
            "role `user`",
        ),
        (
            json!({"messages": [{"role": "user", "content": "  "}]})
                .to_string()
                .into_bytes(),
            "empty",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x".repeat(200_000)}]})
                .to_string()
                .into_bytes(),
            "exceeds",
        ),
    ];
    for (body, expected) in cases {
        let r = http
            .post(&endpoint)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "expected 400 for `{expected}`");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(expected), "{msg} should mention {expected}");
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completions_apply_the_per_user_rate_limit() {
    let m = TestMesh::start_with(&[], |c| c.gateway.limits.user_messages_per_minute = 1).await;
    let http = reqwest::Client::new();
    let endpoint = url(&m, "v1/chat/completions");
    let token = m.token("u-limited");

    let first = http
        .post(&endpoint)
        .bearer_auth(&token)
        .json(&ask("What is your return policy?", false))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let r = http
        .post(&endpoint)
        .bearer_auth(&token)
        .json(&ask("And shipping?", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "rate_limit_error", "{e}");
    assert_eq!(e["error"]["code"], "rate_limited", "{e}");

    // Another user is not affected.
    let other = http
        .post(&endpoint)
        .bearer_auth(m.token("u-other"))
        .json(&ask("What is your return policy?", false))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    m.stop().await;
}
