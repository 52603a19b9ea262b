//! The SLO monitor in a running gateway (injected latency makes the burn-rate alerts fire)
//! and the per-message recording that feeds `mangaassist report weekly`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestMesh;
use mangaassist_config::FaultSpec;
use serde_json::Value;

async fn slo(m: &TestMesh) -> Value {
    let url = format!("{}slo", m.mesh().internal_url().unwrap());
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

fn firing(status: &Value) -> Vec<String> {
    status["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["firing"] == true)
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burn_rate_alerts_fire_when_first_tokens_miss_the_slo() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.slo.target_ms = 1_000;
        // Every answer must come from the (slowed) model: no cached or predicted answers.
        c.gateway.cacheable_intents = vec![];
        c.gateway.predict_follow_ups = false;
    })
    .await;
    let mut c = m.client().await;
    for i in 0..4 {
        c.ask(&format!("What is your shipping policy? {i}"), "s-slo")
            .await
            .done();
    }
    let healthy = slo(&m).await;
    assert!(firing(&healthy).is_empty(), "{healthy}");
    assert!(healthy["highest_firing"].is_null());
    assert_eq!(healthy["windows"][0]["bad"], 0, "{healthy}");

    let spec: FaultSpec = "generation.Generate=latency:1200ms".parse().unwrap();
    m.mesh().faults.set(vec![spec]);
    for i in 0..4 {
        let a = c
            .ask(&format!("What is your return policy? {i}"), "s-slo")
            .await;
        assert!(a.done().first_token_ms >= 1_000);
    }
    let burning = slo(&m).await;
    // Half the messages missed a 0.1 % budget: a 500x burn fires every level.
    assert_eq!(
        firing(&burning),
        ["page", "ticket", "dashboard"],
        "{burning}"
    );
    assert_eq!(burning["highest_firing"], "page");
    assert!(burning["error_budget_remaining"].as_f64().unwrap() < 0.0);
    let metrics = reqwest::get(format!("{}metrics", m.mesh().internal_url().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "slo_burn_rate{window=\"1h\"}",
        "slo_error_budget_remaining",
        "slo_alert_firing{alert=\"page\"} 1",
        "budget_violations_total",
        "first_token_latency_ms",
        "circuit_state{dependency=\"retrieval\"} 0",
    ] {
        assert!(metrics.contains(needle), "no `{needle}` in /metrics");
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_message_is_recorded_and_reported_weekly() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("records/gateway.jsonl");
    let path = record.clone();
    let m = TestMesh::start_with(&[], move |c| {
        c.gateway.record_path = path;
    })
    .await;
    let mut c = m.client().await;
    let n = 12;
    for i in 0..n {
        c.ask(&format!("Recommend a mystery manga, take {i}"), "s-rec")
            .await
            .done();
    }
    // Stopping flushes the recorder: nothing is lost on shutdown.
    m.stop().await;
    let text = std::fs::read_to_string(&record).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n, "{text}");
    for l in &lines {
        assert!(l["ttft_ms"].as_f64().unwrap() > 0.0);
        assert!(!l["stages"].as_array().unwrap().is_empty());
    }
    let out = dir.path().join("weekly");
    mangaassist_bench::weekly(mangaassist_bench::WeeklyArgs {
        input: vec![record],
        out: out.clone(),
    })
    .await
    .unwrap();
    let md = std::fs::read_to_string(out.join("weekly.md")).unwrap();
    for needle in ["retrieval", "intent", "p95"] {
        assert!(md.contains(needle), "weekly.md lacks {needle}:\n{md}");
    }
}
