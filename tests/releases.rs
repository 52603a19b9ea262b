//! A release announced with `mangaassist release schedule` is pre-warmed before it goes on
//! sale: the customers' first questions about the new volume, in English and Japanese, are
//! served from the answers precompute wrote, and they state what a live answer would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::{TestMesh, WsClient};
use mangaassist_catalog::Catalog;
use mangaassist_proto::v1 as pb;

/// Runs the real binary with `args` (and `env`) and returns what it printed; fails the test
/// unless it succeeded.
async fn cli(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cli = Command::new(env!("CARGO_BIN_EXE_mangaassist"));
    cli.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("MANGAASSIST_CONFIG")
        .args(args)
        .envs(env.iter().copied());
    // Off the runtime thread: the mesh answering the CLI runs on it.
    let out = tokio::task::spawn_blocking(move || cli.output())
        .await
        .unwrap()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    printed
}

#[tokio::test]
async fn a_scheduled_release_is_served_prewarmed() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.limits.user_messages_per_minute = 0;
        c.gateway.limits.connection_messages_per_second = 0;
    })
    .await;
    let config = &m.mesh().config;
    let catalog = Catalog::load(&config.data.dir).unwrap();
    let product = catalog
        .products
        .iter()
        .filter(|p| p.store_id == "manga_jp" && p.volume > 1 && p.title_ja.is_some())
        .max_by_key(|p| p.volume)
        .unwrap()
        .clone();
    let printed = cli(
        &[
            "release",
            "schedule",
            "--store",
            "manga_jp",
            "--product",
            &product.id,
            "--in",
            "30m",
            "--endpoint",
            &config.mesh.precompute.endpoint,
        ],
        &[],
    )
    .await;
    assert!(printed.contains(&product.title), "{printed}");

    let tokens = mangaassist_client::service_tokens(&config.mesh, "test").unwrap();
    let precompute = mangaassist_client::PrecomputeClient::connect_with(
        &config.mesh.precompute.endpoint,
        tokens,
    )
    .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let release = loop {
        let l = precompute
            .list_releases(pb::ListReleasesRequest::default(), Duration::from_secs(5))
            .await
            .unwrap();
        if let Some(r) = l.releases.iter().find(|r| r.warmed_ms > 0) {
            break r.clone();
        }
        assert!(Instant::now() < until, "never pre-warmed: {l:?}");
        // Polling the release schedule for the background run.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        release.written as usize,
        release.questions.len(),
        "{release:?}"
    );

    let mut c = WsClient::connect(&m.ws_url_as("u-demo")).await;
    let next = format!("When is {}, Vol. {} out?", product.series, product.volume);
    assert!(release.questions.contains(&next));
    let a = c.ask(&next, "s-release").await;
    assert_eq!(a.done().served_from, "precomputed", "{:?}", a.done());
    assert!(a.done().product_ids.contains(&product.id), "{:?}", a.done());
    let ja = release
        .questions
        .iter()
        .find(|q| !q.is_ascii() && q.contains("在庫"))
        .unwrap();
    let a = c.ask(ja, "s-release").await;
    assert_eq!(a.done().served_from, "precomputed", "{ja}: {:?}", a.done());
    assert!(a.done().product_ids.contains(&product.id));
}

/// A new volume can arrive in the inventory feed: a `stock import` line with `release_at`
/// sets its stock and schedules its release with precompute.
#[tokio::test]
async fn a_release_in_the_stock_feed_is_scheduled() {
    let m = TestMesh::start_with(&[], |_| {}).await;
    let config = &m.mesh().config;
    let catalog = Catalog::load(&config.data.dir).unwrap();
    let product = catalog
        .products
        .iter()
        .find(|p| p.store_id == "comics_us" && p.volume > 1)
        .unwrap()
        .clone();
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.jsonl");
    let at = std::time::SystemTime::now() + Duration::from_secs(5 * 3_600);
    let at = humantime::format_rfc3339_seconds(at).to_string();
    std::fs::write(
        &feed,
        format!(
            "{{\"store_id\":\"comics_us\",\"product_id\":\"{}\",\"quantity\":40,\"release_at\":\"{at}\"}}\n",
            product.id
        ),
    )
    .unwrap();
    let printed = cli(
        &[
            "stock",
            "import",
            feed.to_str().unwrap(),
            "--endpoint",
            &config.mesh.retrieval.endpoint,
        ],
        &[
            (
                "MANGAASSIST_MESH__PRECOMPUTE__ENDPOINT",
                &config.mesh.precompute.endpoint,
            ),
            (
                "MANGAASSIST_MESH__PRECOMPUTE__LISTEN",
                &config.mesh.precompute.listen,
            ),
        ],
    )
    .await;
    assert!(printed.contains("pre-warms at"), "{printed}");
    let tokens = mangaassist_client::service_tokens(&config.mesh, "test").unwrap();
    let precompute = mangaassist_client::PrecomputeClient::connect_with(
        &config.mesh.precompute.endpoint,
        tokens,
    )
    .unwrap();
    let l = precompute
        .list_releases(
            pb::ListReleasesRequest {
                store_id: "comics_us".into(),
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(l.releases.len(), 1, "{l:?}");
    assert_eq!(l.releases[0].product_id, product.id);
    assert_eq!(l.releases[0].warmed_ms, 0, "five hours away: not yet");
}
