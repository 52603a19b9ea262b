//! The stand-in processes as a user runs them: ready line with the bound address, the
//! endpoints answering, bad arguments refused, SIGTERM stops them cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

const BIN: &str = env!("CARGO_BIN_EXE_mangaassist-standins");

/// Starts the stand-in and returns it with the URL from its ready line.
fn start(args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no ready line: {line:?}"))
        .to_string();
    (child, out, url)
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    child.wait().unwrap()
}

#[tokio::test]
async fn opensearch_stand_in_serves_the_rest_api_and_stops_on_sigterm() {
    let (mut child, _out, url) = start(&["opensearch", "--listen", "127.0.0.1:0"]);
    let http = reqwest::Client::new();
    let root: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert!(root["version"]["number"].is_string(), "{root}");
    let missing = http.head(format!("{url}/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(terminate(&mut child).success());
}

#[tokio::test]
async fn bedrock_stand_in_streams_event_frames_and_rejects_bad_bodies() {
    let (mut child, mut out, url) = start(&["bedrock", "--listen", "127.0.0.1:0", "--tokens", "5"]);
    let http = reqwest::Client::new();
    let bad = http
        .post(format!("{url}/model/m/converse-stream"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["x-amzn-ErrorType"], "ValidationException");
    let ok = http
        .post(format!("{url}/model/m/converse-stream"))
        .body(r#"{"messages":[{"role":"user","content":[{"text":"hello there"}]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let body = ok.bytes().await.unwrap();
    // messageStart, 5 deltas, contentBlockStop, messageStop, metadata: each frame starts with
    // its total length (big-endian u32), so walking the lengths must land on the end.
    let mut frames = 0;
    let mut at = 0;
    while at < body.len() {
        let len = u32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
        assert!(len >= 16 && at + len <= body.len());
        at += len;
        frames += 1;
    }
    assert_eq!(frames, 9);
    assert!(terminate(&mut child).success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(rest.contains("answered 1 ConverseStream calls"), "{rest}");
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let out = Command::new(BIN)
        .args(["bedrock", "--listen", "127.0.0.1:0", "--tokens", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tokens must be at least 1"));
    let out = Command::new(BIN)
        .args(["opensearch", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
}
