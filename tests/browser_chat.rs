//! The chat page in a real browser: headless Chromium (Debian package) driven by
//! playwright-core (tests/browser, installed by scripts/test.sh) against an in-process mesh.
//! Each test runs one scenario of tests/browser/chat_page.mjs; without node, Chromium or
//! playwright-core they fail, never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use common::{TestMesh, WsClient, pace_model, proxy::Proxy};
use mangaassist_client::InventoryClient;
use mangaassist_proto::v1 as pb;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::Command,
};
use tokio_tungstenite::tungstenite::Message;

/// Where screenshots go: beside the build, so CI can keep them.
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo().join("target"));
    target.join("test-artifacts")
}

/// The page's address on `base` (`http://host:port/`), signed in as `user`.
fn page_url(m: &TestMesh, base: &str, user: &str) -> String {
    format!("{base}#token={}", m.token(user))
}

/// Runs `scenario` of chat_page.mjs on `url` and returns its `RESULT`. Each `REQUEST` line
/// it prints is handed to `on_request`, whose answer goes back on its stdin.
async fn run_scenario(
    scenario: &str,
    url: &str,
    args: Value,
    mut on_request: impl AsyncFnMut(&Value) -> String,
) -> Value {
    let dir = common::repo().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run scripts/test.sh (or `npm ci --prefix tests/browser`)"
    );
    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).unwrap();
    let mut child = Command::new("node")
        .arg(dir.join("chat_page.mjs"))
        .arg(scenario)
        .arg(url)
        .arg(&artifacts)
        .arg(args.to_string())
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}); scripts/test.sh installs chromium and playwright-core")
        });
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let read_stderr = async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    };
    let talk = async {
        let mut out = Vec::new();
        let mut result = None;
        while let Some(line) = stdout.next_line().await.unwrap() {
            if let Some(req) = line.strip_prefix("REQUEST ") {
                let req: Value = serde_json::from_str(req).unwrap();
                let reply = on_request(&req).await;
                stdin
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .unwrap();
                stdin.flush().await.unwrap();
            } else if let Some(r) = line.strip_prefix("RESULT ") {
                result = Some(serde_json::from_str::<Value>(r).unwrap());
            }
            out.push(line);
        }
        (out, result)
    };
    let limit = Duration::from_secs(240);
    let ((out, result), err) =
        tokio::time::timeout(limit, async { tokio::join!(talk, read_stderr) })
            .await
            .unwrap_or_else(|_| panic!("scenario {scenario} still running after {limit:?}"));
    let status = child.wait().await.unwrap();
    // Shown with the test's output (on failure, or with --nocapture).
    eprintln!("--- {scenario}\n{}\n{err}", out.join("\n"));
    assert!(
        status.success(),
        "browser scenario {scenario} failed ({status}); scripts/test.sh installs chromium and playwright-core\n--- stdout\n{}\n--- stderr\n{err}",
        out.join("\n")
    );
    result.unwrap_or_else(|| panic!("scenario {scenario} printed no RESULT:\n{}", out.join("\n")))
}

/// For scenarios that need nothing of the test while they run.
async fn no_requests(req: &Value) -> String {
    panic!("unexpected request {req}")
}

/// The whole text of an answer as the gateway buffered it, read on a socket of its own
/// (`resume` from the start), to hold the page's text against.
async fn full_answer(m: &TestMesh, user: &str, session: &str, message_id: &str) -> String {
    let mut ws = WsClient::connect(&m.ws_url_as(user)).await;
    ws.resume(session, message_id, Some(-1)).await;
    let mut text = String::new();
    let mut next = 0;
    loop {
        let Some(Message::Text(t)) = ws.next_raw().await else {
            panic!("socket ended before the answer did");
        };
        let f: Value = serde_json::from_str(t.as_str()).unwrap();
        if f["message_id"] != message_id {
            continue;
        }
        match f["type"].as_str() {
            Some("chunk") => {
                assert_eq!(f["index"], next, "resume replayed chunks out of order");
                next += 1;
                text.push_str(f["text"].as_str().unwrap());
            }
            Some("done") => return text,
            Some("error") => panic!("resume of {message_id} failed: {f}"),
            _ => {}
        }
    }
}

fn inventory(m: &TestMesh) -> InventoryClient {
    let mesh = &m.mesh().config.mesh;
    InventoryClient::connect_with(
        &mesh.retrieval.endpoint,
        mangaassist_client::service_tokens(mesh, "test").unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_show_prices_and_stock_for_a_recommendation() {
    let m = TestMesh::start(&[]).await;
    let url = page_url(&m, &m.mesh().gateway_url().unwrap(), "u-demo");
    let r = run_scenario("cards", &url, json!({}), no_requests).await;
    let ids = r["product_ids"].as_array().unwrap();
    assert!(!ids.is_empty(), "{r:#}");
    assert_eq!(r["answer"]["intent"], "recommendation", "{r:#}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_frame_updates_the_cards_shown() {
    let m = TestMesh::start(&[]).await;
    let url = page_url(&m, &m.mesh().gateway_url().unwrap(), "u-demo");
    let inv = inventory(&m);
    let r = run_scenario("stock", &url, json!({}), async |req: &Value| {
        assert_eq!(req["request"], "sell_out", "{req}");
        inv.set_stock(
            pb::SetStockRequest {
                store_id: req["store_id"].as_str().unwrap().into(),
                changes: vec![pb::StockChange {
                    product_id: req["product_id"].as_str().unwrap().into(),
                    quantity: 0,
                    price_yen: None,
                }],
                source: "test".into(),
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        "ok".into()
    })
    .await;
    assert!(!r["stockFrames"].as_array().unwrap().is_empty(), "{r:#}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn japanese_store_and_question_get_a_japanese_page() {
    let m = TestMesh::start(&[]).await;
    let url = page_url(&m, &m.mesh().gateway_url().unwrap(), "u-demo");
    let r = run_scenario("japanese", &url, json!({}), no_requests).await;
    assert_eq!(r["strings"]["htmlLang"], "ja", "{r:#}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_drop_mid_answer_reconnects_and_resumes() {
    // Slow and steady, so the cut lands while chunks are still arriving.
    let m = TestMesh::start_with(&[], |c| pace_model(c, 100, 25.0)).await;
    let proxy = Proxy::start(m.gateway_addr()).await;
    let url = page_url(&m, &proxy.http_url(), "u-demo");
    let r = run_scenario("network_drop", &url, json!({}), async |req: &Value| {
        assert_eq!(req["request"], "cut", "{req}");
        // Drop everything and turn the page away until it has tried at least once: the
        // answer goes on into the resume buffer meanwhile.
        let refused = proxy.refused();
        proxy.set_refusing(true);
        proxy.cut_all();
        let deadline = Instant::now() + Duration::from_secs(20);
        while proxy.refused() == refused {
            assert!(
                Instant::now() < deadline,
                "the page never tried to reconnect"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        proxy.set_refusing(false);
        "ok".into()
    })
    .await;
    let id = r["message_id"].as_str().unwrap();
    let full = full_answer(&m, "u-demo", r["session"].as_str().unwrap(), id).await;
    assert_eq!(
        r["text"].as_str().unwrap(),
        full,
        "the page's answer after the cut differs from the gateway's (cut at {:?})",
        r["before_cut"]
    );
    assert!(
        r["before_cut"].as_str().unwrap().len() < full.len(),
        "{r:#}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_down_for_good_stops_after_five_attempts_and_offers_reconnect() {
    let m = TestMesh::start(&[]).await;
    let proxy = Proxy::start(m.gateway_addr()).await;
    let url = page_url(&m, &proxy.http_url(), "u-demo");
    let mut refused_before = 0;
    let r = run_scenario("gives_up", &url, json!({}), async |req: &Value| {
        match req["request"].as_str().unwrap() {
            "down" => {
                refused_before = proxy.refused();
                proxy.set_refusing(true);
                proxy.cut_all();
                "ok".into()
            }
            // Each attempt is one connection: the ticket request that fails.
            "attempts" => (proxy.refused() - refused_before).to_string(),
            "up" => {
                proxy.set_refusing(false);
                "ok".into()
            }
            other => panic!("unexpected request {other}"),
        }
    })
    .await;
    assert_eq!(r["attempts"], 5, "{r:#}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_mid_answer_completes_it_and_shows_history() {
    let m = TestMesh::start_with(&[], |c| pace_model(c, 100, 40.0)).await;
    let url = page_url(&m, &m.mesh().gateway_url().unwrap(), "u-demo");
    let r = run_scenario("reload", &url, json!({}), no_requests).await;
    let session = r["session"].as_str().unwrap();
    let second = &r["second"];
    let full = full_answer(
        &m,
        "u-demo",
        session,
        second["message_id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(second["text"].as_str().unwrap(), full, "{r:#}");
    assert_eq!(
        r["first"]["text_after"].as_str().unwrap().trim(),
        r["first"]["text_before"].as_str().unwrap().trim(),
        "history shows a different first answer: {r:#}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrow_360px_viewport_has_no_horizontal_scroll() {
    let m = TestMesh::start(&[]).await;
    let url = page_url(&m, &m.mesh().gateway_url().unwrap(), "u-demo");
    let shot = artifacts_dir().join("chat-360px.png");
    let _ = std::fs::remove_file(&shot);
    let r = run_scenario("narrow", &url, json!({ "shot": shot }), no_requests).await;
    assert!(shot.exists(), "no screenshot at {}", shot.display());
    eprintln!("360 px screenshot: {}", shot.display());
    assert!(r["layout"]["scrollWidth"].as_u64().unwrap() <= 360, "{r:#}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_alone_asks_and_reconnects() {
    // A short idle timeout, so the reconnect button shows soon after the answer.
    let m = TestMesh::start_with(&[], |c| c.gateway.stream.idle_timeout_seconds = 3).await;
    let url = page_url(&m, &m.mesh().gateway_url().unwrap(), "u-demo");
    let r = run_scenario("keyboard", &url, json!({}), no_requests).await;
    assert_eq!(r["log"]["role"], "log", "{r:#}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_counts_down_then_send_works_again() {
    // 10 a minute: the 11th message waits at most 6 s for the next one.
    let m = TestMesh::start_with(&[], |c| c.gateway.limits.user_messages_per_minute = 10).await;
    let url = page_url(&m, &m.mesh().gateway_url().unwrap(), "u-demo");
    let r = run_scenario(
        "rate_limit",
        &url,
        json!({ "max_messages": 15 }),
        no_requests,
    )
    .await;
    assert!(r["countdown"]["seconds"].as_u64().unwrap() >= 1, "{r:#}");
    m.stop().await;
}
