//! Attacks from issue 14, each against the real mesh: what a client that lies or floods may
//! send, and what it gets back. Every one of them is refused with a clear error while the
//! connection (and everyone else) keeps being served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestMesh, WsClient};
use mangaassist::mesh::Role;
use mangaassist_protocol::{ErrorCode, MAX_TEXT_CHARS};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

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

/// Every frame takes from the connection's bucket before anything looks at it: a flood of
/// binary frames (or pings) is rate-limited like one of questions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_take_from_the_connection_bucket_too() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.limits.connection_messages_per_second = 5;
    })
    .await;
    let mut c = m.client().await;
    for _ in 0..20 {
        c.send_raw(Message::Binary(vec![0u8; 8].into())).await;
    }
    let mut codes = vec![];
    for _ in 0..20 {
        codes.push(common::error_code(&c.next_frame().await));
    }
    assert!(
        codes.contains(&Some(ErrorCode::RateLimited)),
        "a binary flood was never rate-limited: {codes:?}"
    );
    m.stop().await;
}

/// A resume replays a whole answer: it takes from the user's allowance like a question.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_count_against_the_users_message_limit() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.limits.user_messages_per_minute = 2;
    })
    .await;
    let mut c = m.client().await;
    c.query("How long does shipping take?", "s-rs", "m-rs")
        .await;
    common::read_until_done(&mut c, "m-rs").await;
    c.resume("s-rs", "m-rs", None).await;
    common::read_until_done(&mut c, "m-rs").await;
    c.resume("s-rs", "m-rs", None).await;
    let f = c.next_frame().await;
    assert_eq!(
        common::error_code(&f),
        Some(ErrorCode::RateLimited),
        "{f:?}"
    );
    m.stop().await;
}

/// One user cannot hold more than `gateway.limits.max_connections_per_user` sockets; others
/// still connect, and a closed socket frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_user_are_capped() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.limits.max_connections_per_user = 3;
    })
    .await;
    let url = m.ws_url_as("u-many");
    let mut open = vec![];
    for _ in 0..3 {
        open.push(WsClient::connect(&url).await);
    }
    let refused = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default());
            r.status() == 429 && body.contains("too_many_connections")
        }
        _ => false,
    };
    assert!(refused(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .map(drop)
    ));
    WsClient::connect(&m.ws_url_as("u-someone-else")).await;
    // The slot comes back once the gateway has seen the close.
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = tokio_tungstenite::connect_async(url.as_str()).await;
        if r.is_ok() {
            break;
        }
        assert!(refused(r.map(drop)), "refused for another reason");
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    m.stop().await;
}

/// Slowloris: headers sent a byte at a time never finish within the header timeout, and the
/// gateway closes the connection instead of holding it open for as long as the client likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sent_one_byte_at_a_time_are_cut_off() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.limits.header_read_timeout_ms = 500;
    })
    .await;
    let addr = m.mesh().addrs[&Role::Gateway];
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Padding: ");
    let mut closed = false;
    let started = tokio::time::Instant::now();
    // One byte every 50 ms, forever: only the gateway can end this.
    'drip: for b in request.bytes().chain(std::iter::repeat(b'a')) {
        if tcp.write_all(&[b]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 1024];
        // The 50 ms read is the drip's pace; it also sees the gateway hang up.
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut buf)).await
        {
            closed = true;
            break 'drip;
        }
        if started.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    assert!(closed, "a dripping header kept its connection for 15 s");
    // An ordinary request is served as before.
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    m.stop().await;
}

/// The gateway takes at most `gateway.limits.max_connections` connections; one more is closed
/// at once, and a freed one lets the next in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_listener_caps_its_connections() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.limits.max_connections = 2;
    })
    .await;
    let addr = m.mesh().addrs[&Role::Gateway];
    let a = WsClient::connect(&m.ws_url_as("u-a")).await;
    let _b = WsClient::connect(&m.ws_url_as("u-b")).await;
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = extra
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await;
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), extra.read(&mut buf))
        .await
        .expect("the extra connection is answered or closed at once");
    assert!(matches!(n, Ok(0) | Err(_)), "served beyond the cap");
    drop(a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("http://{addr}/healthz"))
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    m.stop().await;
}

/// The status pages are for operators: not on the public listener, only on the internal one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_pages_are_served_on_the_internal_listener_only() {
    let m = TestMesh::start(&[]).await;
    let public = m.mesh().gateway_url().unwrap();
    let internal = m.mesh().internal_url().unwrap();
    for page in ["metrics", "slo", "routing", "breakers"] {
        let r = reqwest::get(format!("{public}{page}")).await.unwrap();
        assert_eq!(r.status(), 404, "/{page} on the public listener");
        let r = reqwest::get(format!("{internal}{page}")).await.unwrap();
        assert_eq!(r.status(), 200, "/{page} on the internal listener");
    }
    let r = reqwest::get(format!("{public}healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    m.stop().await;
}

/// A URL token is a credential in logs and proxies: `/ws` takes one only if it expires within
/// five minutes (a ticket from `POST /ws-ticket`); a long-lived token must use the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lived_token_in_the_ws_url_is_refused_and_a_ticket_is_not() {
    let m = TestMesh::start(&[]).await;
    let long = m.token("u-demo");
    let r = tokio_tungstenite::connect_async(format!("{}?token={long}", m.ws_url())).await;
    match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401);
            let body: Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["token_error"], "token_in_url", "{body}");
        }
        other => panic!("expected a 401, got {:?}", other.map(drop)),
    }
    // The same token in the header trades for a ticket, which the URL takes.
    let http = reqwest::Client::new();
    let base = m.mesh().gateway_url().unwrap();
    let r = http
        .post(format!("{base}ws-ticket"))
        .bearer_auth(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["expires_in"].as_u64().unwrap() <= 300, "{body}");
    let ticket = body["ticket"].as_str().unwrap();
    let mut c = WsClient::connect(&format!("{}?token={ticket}", m.ws_url())).await;
    c.ask("How long does shipping take?", "s-ticket")
        .await
        .done();
    // No ticket without a token, nor for a token in the ticket URL.
    let r = http.post(format!("{base}ws-ticket")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{base}ws-ticket?token={long}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    m.stop().await;
}
