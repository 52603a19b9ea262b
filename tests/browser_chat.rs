//! The chat page works in a real browser: headless Chromium (Debian package) driven by
//! playwright-core (tests/browser, installed by scripts/test.sh) against an in-process mesh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestMesh;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_page_streams_an_answer_in_chromium() {
    let m = TestMesh::start(&[]).await;
    let url = format!(
        "{}#token={}",
        m.mesh().gateway_url().unwrap(),
        m.token("u-demo")
    );
    let dir = common::repo().join("tests/browser");
    let shot = std::env::temp_dir().join("mangaassist-chat-page.png");
    let shot_arg = shot.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(dir.join("chat_page.mjs"))
            .arg(&url)
            .arg(&shot_arg)
            .current_dir(&dir)
            .output()
            .expect("node on PATH")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "browser test failed (scripts/test.sh installs chromium and playwright-core):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("json result");
    assert!(result["meta"].as_str().unwrap().contains("recommendation"));
    assert!(shot.exists());
    m.stop().await;
}
