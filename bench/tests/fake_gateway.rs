//! The benchmark client against the in-process fake gateway: closed and open loop, errors,
//! timeouts, outputs, the compare gate, the weekly report and the ceiling.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::HashMap, path::Path, time::Duration};

use mangaassist_protocol::ErrorCode;

use mangaassist_bench::{
    BenchCommand, BenchContext, BenchError, CompareArgs, LoadMode, QueryMix, Results, RunConfig,
    Sample, Stage, TokenSource, VerdictArgs,
    ceiling::{self, CeilingOptions},
    compare_results,
    fake::{FakeConfig, FakeGateway},
    run,
    svg::check_well_formed,
    weekly, write_outputs,
};

const INTENTS: [&str; 3] = ["greeting", "faq", "order_status"];

fn pairs() -> Vec<(String, String)> {
    INTENTS
        .iter()
        .flat_map(|i| (0..20).map(move |n| (i.to_string(), format!("{i} question number {n}"))))
        .collect()
}

fn mix() -> QueryMix {
    QueryMix::from_pairs(pairs(), &[], 20, 3).unwrap()
}

async fn fake(delays: &[(&str, u64)]) -> FakeGateway {
    let cfg = FakeConfig {
        delays: delays
            .iter()
            .map(|(i, ms)| (i.to_string(), Duration::from_millis(*ms)))
            .collect(),
        ..FakeConfig::default()
    }
    .with_labels(pairs());
    FakeGateway::start(cfg).await.unwrap()
}

fn assert_answered(s: &Sample) {
    assert!(s.is_ok(), "{s:?}");
    let ttft = s.ttft_ms.unwrap();
    let e2e = s.e2e_ms.unwrap();
    assert!(ttft > 0.0 && ttft <= e2e, "{s:?}");
    assert!(s.status_ms.unwrap() <= ttft);
    assert_eq!(s.chunks_received, Some(4));
    assert_eq!(s.chunks, Some(4));
    assert_eq!(s.index_faults, 0);
    assert_eq!(s.chunk_gaps_ms.len(), 3);
    assert_eq!(s.intent, s.expected_intent);
    assert_eq!(s.model.as_deref(), Some("fake"));
    assert_eq!(s.degradation.as_deref(), Some("full"));
    assert_eq!(s.cache_hit, Some(false));
    assert!(s.server_first_token_ms.is_some() && s.server_total_ms.is_some());
    assert_eq!(
        s.stages
            .iter()
            .map(|s| s.stage.as_str())
            .collect::<Vec<_>>(),
        ["intent", "cache", "generation", "streaming"]
    );
    assert_eq!(s.stages[0].budget_ms, Some(35.0));
    assert_eq!(s.stages[3].budget_ms, None);
    assert!(s.ts_ms > 1_600_000_000_000);
}

#[tokio::test]
async fn closed_loop_records_every_message() {
    let gw = fake(&[]).await;
    let cfg = RunConfig::closed(gw.url(), 3, 60);
    let r = run(&cfg, &mix()).await.unwrap();
    assert_eq!(r.samples.len(), 60);
    assert_eq!(gw.queries(), 60);
    assert_eq!(r.counters.sent, 60);
    assert_eq!(r.counters.answered, 60);
    assert_eq!(r.counters.errors, 0);
    for s in &r.samples {
        assert_answered(s);
        assert!(s.vu.unwrap() < 3);
        assert!(s.late_ms.is_none());
    }
    // 20 per intent, the first 5 of each flagged as warm-up.
    for intent in INTENTS {
        let of: Vec<&Sample> = r.samples.iter().filter(|s| s.group() == intent).collect();
        assert_eq!(of.len(), 20, "{intent}");
        assert_eq!(of.iter().filter(|s| s.warmup).count(), 5, "{intent}");
    }
    let mut ids: Vec<&str> = r
        .samples
        .iter()
        .map(|s| s.message_id.as_deref().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    assert_eq!(r.run.mode, "closed");
    assert_eq!(r.run.intents, ["faq", "greeting", "order_status"]);
    assert!(r.machine.cpus > 0);
}

#[tokio::test]
async fn sessions_rotate_after_the_given_number_of_turns() {
    let gw = fake(&[]).await;
    // Without the option every query uses its connection's session (no field sent).
    let r = run(&RunConfig::closed(gw.url(), 1, 6), &mix())
        .await
        .unwrap();
    assert_eq!(r.counters.answered, 6);
    assert_eq!(
        gw.sessions().into_iter().collect::<Vec<_>>(),
        [(String::new(), 6)]
    );

    let gw = fake(&[]).await;
    let mut cfg = RunConfig::closed(gw.url(), 1, 7);
    cfg.turns_per_session = 3;
    let r = run(&cfg, &mix()).await.unwrap();
    assert_eq!(r.counters.answered, 7);
    assert_eq!(r.run.turns_per_session, 3);
    let sessions = gw.sessions();
    let mut sizes: Vec<u64> = sessions.values().copied().collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [1, 3, 3], "{sessions:?}");
    assert!(
        sessions.keys().all(|k| k.contains("-vu0-s")),
        "{sessions:?}"
    );

    // Two users: sessions are per user, so no session is shared between them.
    let gw = fake(&[]).await;
    let mut cfg = RunConfig::closed(gw.url(), 2, 40);
    cfg.turns_per_session = 5;
    run(&cfg, &mix()).await.unwrap();
    let sessions = gw.sessions();
    assert_eq!(sessions.values().sum::<u64>(), 40);
    assert!(sessions.len() >= 8, "{sessions:?}");
    assert!(sessions.values().all(|&n| n <= 10), "{sessions:?}");
}

#[tokio::test]
async fn open_loop_sends_on_schedule_over_all_connections() {
    let gw = fake(&[("faq", 5)]).await;
    let mut cfg = RunConfig::closed(gw.url(), 2, 40);
    cfg.mode = LoadMode::Open {
        rate: 200.0,
        max_in_flight: 8,
    };
    cfg.unique = true;
    let started = std::time::Instant::now();
    let r = run(&cfg, &mix()).await.unwrap();
    assert_eq!(r.samples.len(), 40);
    assert_eq!(r.counters.dropped, 0);
    assert!(r.samples.iter().all(|s| s.late_ms.is_some()));
    for s in &r.samples {
        assert_answered(s);
        // --unique: every text differs from the labelled one but still classifies.
        assert!(s.text.as_deref().unwrap().contains(" (ref "));
    }
    let vus: std::collections::BTreeSet<u32> = r.samples.iter().filter_map(|s| s.vu).collect();
    assert_eq!(vus.len(), 2);
    // 40 Poisson arrivals at 200/s take about 0.2 s; far less than a closed loop would need
    // to be this slow, far more than zero.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(r.wall_s > 0.05, "{}", r.wall_s);
    assert_eq!(r.run.mode, "open");
    assert_eq!(r.run.rate, Some(200.0));
}

#[tokio::test]
async fn open_loop_drops_arrivals_when_everything_is_in_flight() {
    let gw = fake(&[("greeting", 300), ("faq", 300), ("order_status", 300)]).await;
    let mut cfg = RunConfig::closed(gw.url(), 1, 0);
    cfg.messages = None;
    cfg.duration = Some(Duration::from_millis(250));
    cfg.mode = LoadMode::Open {
        rate: 400.0,
        max_in_flight: 2,
    };
    let r = run(&cfg, &mix()).await.unwrap();
    // At most 2 in flight for the whole 250 ms window, every answer takes 300 ms.
    assert_eq!(r.samples.len(), 2, "{:?}", r.counters);
    assert!(r.counters.dropped > 20, "{:?}", r.counters);
}

#[tokio::test]
async fn errors_and_timeouts_are_recorded_not_hidden() {
    let cfg = FakeConfig {
        delays: HashMap::from([("order_status".to_string(), Duration::from_secs(5))]),
        errors: HashMap::from([("faq".to_string(), ErrorCode::RateLimited)]),
        ..FakeConfig::default()
    }
    .with_labels(pairs());
    let gw = FakeGateway::start(cfg).await.unwrap();
    let mut run_cfg = RunConfig::closed(gw.url(), 3, 9);
    run_cfg.timeout = Duration::from_millis(300);
    run_cfg.warmup_per_intent = 0;
    let started = std::time::Instant::now();
    let r = run(&run_cfg, &mix()).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "a timeout must not hang the run"
    );
    assert_eq!(r.samples.len(), 9);
    for s in &r.samples {
        match s.group() {
            "faq" => {
                assert_eq!(s.error.as_deref(), Some("rate_limited"));
                assert!(
                    s.error_message
                        .as_deref()
                        .unwrap()
                        .contains("retry after 1000 ms")
                );
            }
            "order_status" => {
                assert_eq!(s.error.as_deref(), Some("timeout"));
                assert!(s.status_ms.is_some() && s.ttft_ms.is_none());
            }
            _ => assert_answered(s),
        }
    }
    assert_eq!(r.counters.errors, 6);
    let md = mangaassist_bench::render_summary(&r, false);
    assert!(md.contains("| `rate_limited` | 3 |"), "{md}");
    assert!(md.contains("| `timeout` | 3 |"), "{md}");
    assert!(md.contains("USER_MESSAGES_PER_MINUTE=0"));
}

#[tokio::test]
async fn a_rejected_token_is_a_clear_connect_error() {
    let cfg = FakeConfig {
        require_token: Some("good".into()),
        ..FakeConfig::default()
    };
    let gw = FakeGateway::start(cfg).await.unwrap();
    let mut run_cfg = RunConfig::closed(gw.url(), 2, 4);
    run_cfg.token = TokenSource::Fixed("bad".into());
    let err = run(&run_cfg, &mix()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BenchError::Connect { .. }), "{text}");
    assert!(text.contains("401") && text.contains("2 of 2"), "{text}");
    assert!(
        !text.contains("token=bad"),
        "the token must not leak: {text}"
    );
    run_cfg.token = TokenSource::Fixed("good".into());
    assert_eq!(run(&run_cfg, &mix()).await.unwrap().samples.len(), 4);
}

#[tokio::test]
async fn outputs_round_trip_and_plots_are_well_formed() {
    let gw = fake(&[]).await;
    let r = run(&RunConfig::closed(gw.url(), 2, 45), &mix())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let written = write_outputs(&r, dir.path(), true).unwrap();
    assert_eq!(written.len(), 6);
    let back = Results::load(&dir.path().join("results.json")).unwrap();
    assert_eq!(back, r);
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        summary.contains("| greeting | 150 / 250 / 400 |"),
        "{summary}"
    );
    assert!(summary.contains("Mesh overhead per stage"));
    assert!(summary.contains("| generation |"));
    for (file, labels) in [
        (
            "ttft_cdf.svg",
            &[
                "greeting",
                "faq",
                "order_status",
                "TTFT (ms, log scale)",
                "p95",
            ][..],
        ),
        ("e2e_cdf.svg", &["greeting", "e2e (ms, log scale)"][..]),
        ("ttft_hist.svg", &["TTFT (ms)", "messages"][..]),
        (
            "waterfall.svg",
            &["median message", "p99 message", "generation", "first token"][..],
        ),
    ] {
        let svg = std::fs::read_to_string(dir.path().join(file)).unwrap();
        check_well_formed(&svg).unwrap_or_else(|e| panic!("{file}: {e}"));
        for l in labels {
            assert!(svg.contains(l), "{file} lacks {l}");
        }
    }
}

fn write_results(r: &Results, dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name).join("results.json");
    r.save(&p).unwrap();
    p
}

async fn compare_exit(base: &Path, cur: &Path) -> i32 {
    let ctx = BenchContext {
        default_url: String::new(),
        token_key: None,
        data_dir: "data".into(),
        overhead: false,
        generation_endpoint: String::new(),
        retrieval_endpoint: String::new(),
        precompute_endpoint: String::new(),
        service_tokens: None,
        serve_exe: None,
        config_file: None,
    };
    let args = CompareArgs {
        baseline: base.to_path_buf(),
        current: cur.to_path_buf(),
        verdict: VerdictArgs {
            gate: 0.15,
            alpha: 0.05,
            effect_floor: 0.147,
            min_samples: 20,
            resamples: 500,
        },
        out: None,
    };
    mangaassist_bench::execute(BenchCommand::Compare(args), ctx)
        .await
        .unwrap()
}

#[tokio::test]
async fn compare_gate_fails_on_a_slow_intent_and_passes_identical_runs() {
    let dir = tempfile::tempdir().unwrap();
    let delays = [("greeting", 20), ("faq", 20), ("order_status", 20)];
    let base_gw = fake(&delays).await;
    let mut cfg = RunConfig::closed(base_gw.url(), 6, 90);
    cfg.label = "base".into();
    let base = run(&cfg, &mix()).await.unwrap();
    drop(base_gw);
    let slow_gw = fake(&[("greeting", 20), ("faq", 80), ("order_status", 20)]).await;
    cfg.url = slow_gw.url();
    cfg.label = "slow".into();
    let slow = run(&cfg, &mix()).await.unwrap();

    let report = compare_results(&base, &slow, &Default::default()).unwrap();
    assert!(report.gate_failed);
    assert_eq!(report.exit_code(), 1);
    let md = report.to_markdown();
    let faq = md
        .lines()
        .find(|l| l.starts_with("| faq | ttft |"))
        .unwrap();
    assert!(
        faq.contains("GATE FAILED") && faq.contains("SEV-1"),
        "{faq}"
    );
    let greeting = md
        .lines()
        .find(|l| l.starts_with("| greeting | ttft |"))
        .unwrap();
    assert!(!greeting.contains("GATE FAILED"), "{greeting}");
    assert!(md.contains("**Gate: FAIL** (faq ttft, faq e2e)"), "{md}");

    let same = compare_results(&base, &base, &Default::default()).unwrap();
    assert!(!same.gate_failed);
    assert!(same.to_markdown().contains("**Gate: PASS**"));

    let b = write_results(&base, dir.path(), "base");
    let s = write_results(&slow, dir.path(), "slow");
    assert_eq!(compare_exit(&b, &s).await, 1);
    assert_eq!(compare_exit(&b, &b).await, 0);
    assert_eq!(compare_exit(&b, &dir.path().join("missing.json")).await, 2);
}

#[tokio::test]
async fn compare_reports_missing_intents_and_small_samples() {
    let gw = fake(&[]).await;
    let base = run(&RunConfig::closed(gw.url(), 2, 75), &mix())
        .await
        .unwrap();
    let only_greeting = QueryMix::from_pairs(pairs(), &["greeting".into()], 20, 3).unwrap();
    let cur = run(&RunConfig::closed(gw.url(), 2, 15), &only_greeting)
        .await
        .unwrap();
    let report = compare_results(&base, &cur, &Default::default()).unwrap();
    assert!(!report.gate_failed);
    let md = report.to_markdown();
    assert!(
        md.lines()
            .any(|l| l.starts_with("| faq | ttft |") && l.contains("only in baseline")),
        "{md}"
    );
    // 15 sent - 5 warm-up = 10 < 20.
    assert!(
        md.contains("| greeting | ttft | 20 / 10 |") && md.contains("insufficient samples"),
        "{md}"
    );
}

#[test]
fn weekly_report_over_seven_days() {
    let dir = tempfile::tempdir().unwrap();
    let day0 = 1_735_689_600_000u64; // 2025-01-01T00:00:00Z
    let mut lines = String::new();
    for day in 0..7u64 {
        for i in 0..30u64 {
            // Latency grows every day; the retrieval stage breaks its budget from day 4 on.
            let ttft = 100.0 + day as f64 * 50.0 + i as f64;
            let retrieval = if day >= 4 { 250.0 } else { 150.0 };
            let s = serde_json::json!({
                "ts_ms": day0 + day * 86_400_000 + i * 60_000,
                "intent": INTENTS[(i % 3) as usize],
                "ttft_ms": ttft,
                "e2e_ms": ttft * 3.0,
                "chunks": 10, "tokens": 40, "model": "sim", "cache_hit": false,
                "degradation": "full", "error": if i == 0 { serde_json::Value::from("internal") } else { serde_json::Value::Null },
                "stages": [
                    {"stage": "intent", "start_ms": 0, "duration_ms": 20, "budget_ms": 35, "outcome": "ok"},
                    {"stage": "retrieval", "start_ms": 20, "duration_ms": retrieval, "budget_ms": 200, "outcome": "ok"}
                ]
            });
            lines.push_str(&s.to_string());
            lines.push('\n');
        }
    }
    let input = dir.path().join("in/gateway-2025-01.jsonl");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    std::fs::write(&input, lines).unwrap();
    let samples = mangaassist_bench::sample::load_jsonl(&input).unwrap();
    assert_eq!(samples.len(), 210);
    assert_eq!(samples[0].error.as_deref(), Some("internal"));
    assert_eq!(
        samples[0].stages[1],
        Stage {
            stage: "retrieval".into(),
            start_ms: 20.0,
            duration_ms: 150.0,
            budget_ms: Some(200.0),
            outcome: Some("ok".into()),
        }
    );

    let out = dir.path().join("out");
    let written = weekly::write_weekly(&[dir.path().join("in")], &out).unwrap();
    assert_eq!(written.len(), 3);
    let md = std::fs::read_to_string(out.join("weekly.md")).unwrap();
    for d in 1..=7 {
        assert!(
            md.contains(&format!("| 2025-01-0{d} | 30 | 1 (3.3 %) |")),
            "day {d}: {md}"
        );
    }
    // 3 of 7 days over budget.
    assert!(
        md.contains("| retrieval | 210 | 150 | 250 | 200 | **no** | 42.9 % |"),
        "{md}"
    );
    assert!(
        md.contains("| intent | 210 | 20.0 | 20.0 | 35.0 | yes | 0.0 % |"),
        "{md}"
    );
    let day_row = md
        .lines()
        .find(|l| l.starts_with("| retrieval | 0.0 %"))
        .unwrap();
    assert!(
        day_row.ends_with("| 100.0 % | 100.0 % | 100.0 % |"),
        "{day_row}"
    );
    for f in ["weekly_ttft.svg", "weekly_e2e.svg"] {
        let svg = std::fs::read_to_string(out.join(f)).unwrap();
        check_well_formed(&svg).unwrap();
        assert!(svg.contains("2025-01-01") && svg.contains("2025-01-07") && svg.contains("p99"));
    }
    assert!(weekly::write_weekly(&[dir.path().join("nothing")], &out).is_err());
}

#[tokio::test]
async fn ceiling_measures_throughput_and_connections() {
    let report = ceiling::measure(&CeilingOptions {
        url: None,
        vus: vec![1, 4],
        duration: Duration::from_millis(300),
        connections: 50,
        chunks: 4,
    })
    .await
    .unwrap();
    assert_eq!(report.throughput.len(), 2);
    for p in &report.throughput {
        assert!(p.answered > 0 && p.errors == 0, "{p:?}");
        assert!(p.per_second > 10.0, "{p:?}");
    }
    assert_eq!(report.connections.attempted, 50);
    assert_eq!(report.connections.held, 50);
    assert_eq!(report.connections.answered_ping, 50);
    assert!(report.in_process_server);
    let md = report.to_markdown();
    assert!(
        md.contains("Max sustained") && md.contains("Idle connections held: **50**"),
        "{md}"
    );
}
