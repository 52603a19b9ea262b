//! `bench prompt` against a real generation daemon (simulated model, realistic latency with
//! short first-token times) and a real retrieval daemon (hashed embedder), both in-process on
//! 127.0.0.1:0, with a private copy of data/prompts so the repository is not touched.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use clap::Parser;
use mangaassist_bench::{BenchCommand, BenchContext, prompt::candidate_version};
use mangaassist_client::GenerationClient;
use mangaassist_config::Config;
use mangaassist_embedding::{HashedNgrams, QueryEmbedder};
use mangaassist_generation::GenerationDaemon;
use mangaassist_proto::v1 as pb;
use mangaassist_retrieval::RetrievalDaemon;
use mangaassist_server::{ServeOptions, bind_with_addr};
use serde_json::Value;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

struct Mesh {
    generation: String,
    retrieval: String,
    opts: ServeOptions,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// `short`: the realistic profile with first-token times of 20/40 ms and 400 tokens/s;
/// otherwise the configured defaults (250/700 ms, 120/60 tokens/s).
async fn start_mesh(short: bool) -> Mesh {
    let prompts = tempfile::tempdir().unwrap();
    copy_dir(&data_dir().join("prompts"), prompts.path());
    let cache = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.data.dir = data_dir();
    c.data.cache_dir = cache.path().to_path_buf();
    c.generation.prompts_dir = prompts.path().to_path_buf();
    c.generation.latency_profile = mangaassist_config::LatencyProfile::Realistic;
    // Realistic shape (prefill per input token, pacing per output token, jitter), but short
    // enough that a run of 60 calls takes seconds.
    if short {
        for (tier, first) in [(&mut c.generation.fast, 20), (&mut c.generation.smart, 40)] {
            tier.first_token_ms = first;
            tier.tokens_per_second = 400.0;
            tier.jitter = 0.1;
        }
    }
    let opts = ServeOptions::for_tests();

    let generation = GenerationDaemon::new(&c).await.unwrap();
    let (listener, gen_addr) = bind_with_addr("127.0.0.1:0").await.unwrap();
    tokio::spawn(generation.serve(listener, opts.clone()));

    let embedder = QueryEmbedder::new(Arc::new(HashedNgrams::default()), 100);
    let retrieval = RetrievalDaemon::new(&c, embedder).await.unwrap();
    let (listener, ret_addr) = bind_with_addr("127.0.0.1:0").await.unwrap();
    tokio::spawn(retrieval.serve(listener, opts.clone()));

    Mesh {
        generation: format!("http://{gen_addr}"),
        retrieval: format!("http://{ret_addr}"),
        opts,
        _dirs: (prompts, cache),
    }
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

fn ctx(mesh: Option<&Mesh>) -> BenchContext {
    BenchContext {
        default_url: String::new(),
        token_key: None,
        data_dir: data_dir(),
        overhead: false,
        generation_endpoint: mesh.map_or_else(String::new, |m| m.generation.clone()),
        retrieval_endpoint: mesh.map_or_else(String::new, |m| m.retrieval.clone()),
        precompute_endpoint: String::new(),
        service_tokens: None,
        serve_exe: None,
        config_file: None,
    }
}

/// Runs `bench prompt` with `args` plus `--out out -q`; returns the exit code.
async fn bench_prompt(mesh: Option<&Mesh>, args: &[&str], out: &Path) -> i32 {
    let mut argv = vec!["x", "prompt", "-q", "--out", out.to_str().unwrap()];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    mangaassist_bench::execute(cli.command, ctx(mesh))
        .await
        .unwrap()
}

fn report(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("prompt_gate.json")).unwrap();
    assert!(out.join("prompt_gate.md").exists());
    serde_json::from_str(&text).unwrap()
}

fn mean(r: &Value, arm: &str, metric: &str) -> f64 {
    r[format!("{arm}_stats")][metric]["mean"]
        .as_f64()
        .unwrap_or_else(|| panic!("{arm} {metric} in {}", r[format!("{arm}_stats")]))
}

fn active_v2() -> String {
    std::fs::read_to_string(data_dir().join("prompts/manga_jp/recommendation/v2.txt")).unwrap()
}

/// Scenario 5's prompt: the active one plus multi-criteria scoring prose, asking for detail.
fn verbose_prompt() -> String {
    let rule = "- Score every candidate on art style, story complexity and target demographic, \
                explain the score in a sentence, and compare it with the customer's history.\n";
    format!(
        "#! style: detailed\n#! max_tokens: 600\n{}\nMulti-criteria scoring:\n{}",
        active_v2(),
        rule.repeat(12)
    )
}

async fn recommendation_prompts(mesh: &Mesh) -> Vec<pb::PromptInfo> {
    GenerationClient::connect(&mesh.generation)
        .unwrap()
        .list_prompts(Duration::from_secs(5))
        .await
        .unwrap()
        .prompts
        .into_iter()
        .filter(|p| p.store_id == "manga_jp" && p.intent == pb::Intent::Recommendation as i32)
        .collect()
}

/// Both arms of every query had the same context, and the arm order is balanced.
fn check_pairs(r: &Value, expect_products: bool) {
    let samples = r["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2 * r["messages"].as_u64().unwrap() as usize);
    let mut candidate_first = 0;
    for pair in samples.chunks(2) {
        assert_eq!(pair[0]["query"], pair[1]["query"]);
        assert_ne!(pair[0]["arm"], pair[1]["arm"]);
        assert_eq!(pair[0]["context_products"], pair[1]["context_products"]);
        assert_eq!(pair[0]["context_documents"], pair[1]["context_documents"]);
        assert!(pair[0]["error"].is_null(), "{}", pair[0]);
        assert!(pair[1]["error"].is_null(), "{}", pair[1]);
        let products = pair[0]["context_products"].as_u64().unwrap();
        assert_eq!(products > 0, expect_products, "{}", pair[0]);
        if pair[0]["arm"] == "candidate" {
            candidate_first += 1;
        }
        for s in pair {
            let pinned = if s["arm"] == "candidate" {
                r["candidate"]["version"].clone()
            } else {
                r["baseline"]["version"].clone()
            };
            assert_eq!(s["prompt_version"], pinned);
        }
    }
    assert_eq!(candidate_first, samples.len() / 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_gate_passes_the_same_prompt_and_fails_a_verbose_one_without_activating_it() {
    let mesh = start_mesh(true).await;
    let tmp = tempfile::tempdir().unwrap();
    let same = tmp.path().join("same.txt");
    std::fs::write(&same, active_v2()).unwrap();
    let verbose = tmp.path().join("verbose.txt");
    std::fs::write(&verbose, verbose_prompt()).unwrap();
    let common = ["--intent", "recommendation"];

    // 1. The active prompt under another name: same tokens, same answers, no verdict against.
    let out = tmp.path().join("same");
    let mut args = common.to_vec();
    args.extend(["--messages", "30", "--candidate", same.to_str().unwrap()]);
    let code = bench_prompt(Some(&mesh), &args, &out).await;
    let r = report(&out);
    assert_eq!(
        code,
        0,
        "{}",
        std::fs::read_to_string(out.join("prompt_gate.md")).unwrap()
    );
    assert_eq!(r["verdict"], "pass");
    assert_eq!(r["tier"], "smart");
    assert_eq!(r["baseline"]["version"], "v2");
    assert_eq!(r["baseline"]["store_id"], "manga_jp");
    let same_version = candidate_version(&active_v2());
    assert_eq!(r["candidate"]["version"], same_version.as_str());
    assert_eq!(r["candidate"]["active"], false);
    assert_eq!(
        mean(&r, "baseline", "prompt_tokens"),
        mean(&r, "candidate", "prompt_tokens")
    );
    assert_eq!(
        mean(&r, "baseline", "output_tokens"),
        mean(&r, "candidate", "output_tokens")
    );
    assert_eq!(r["baseline_stats"]["n"], 25);
    assert_eq!(r["ttft"]["status"], "compared");
    assert_eq!(r["ttft"]["comparison"]["baseline"]["n"], 25);
    check_pairs(&r, true);

    // 2. Scenario 5: +300 prompt tokens and detailed answers. Slower, so the gate fails.
    let out = tmp.path().join("verbose");
    let mut args = common.to_vec();
    args.extend(["--messages", "30", "--candidate", verbose.to_str().unwrap()]);
    let code = bench_prompt(Some(&mesh), &args, &out).await;
    let md = std::fs::read_to_string(out.join("prompt_gate.md")).unwrap();
    let r = report(&out);
    assert_eq!(code, 1, "{md}");
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["exit_code"], 1);
    let verbose_version = candidate_version(&verbose_prompt());
    assert_eq!(r["candidate"]["version"], verbose_version.as_str());
    assert_eq!(r["candidate"]["style"], "detailed");
    assert_eq!(r["candidate"]["max_tokens"], 600);
    let (bp, cp) = (
        mean(&r, "baseline", "prompt_tokens"),
        mean(&r, "candidate", "prompt_tokens"),
    );
    assert!(cp > bp + 250.0, "prompt tokens {bp} → {cp}");
    let (bo, co) = (
        mean(&r, "baseline", "output_tokens"),
        mean(&r, "candidate", "output_tokens"),
    );
    assert!(co >= bo * 1.25, "output tokens {bo} → {co}");
    assert_eq!(r["e2e"]["comparison"]["gate_failed"], true, "{md}");
    assert_eq!(r["e2e"]["comparison"]["regression"], true);
    assert!(r["e2e"]["comparison"]["p95_change"].as_f64().unwrap() > 0.15);
    // The server's first-token time pays for the longer prompt.
    assert!(
        mean(&r, "candidate", "server_ttft_ms") > mean(&r, "baseline", "server_ttft_ms"),
        "{md}"
    );
    check_pairs(&r, true);
    assert!(md.contains("**Gate: FAIL**"), "{md}");
    assert!(
        md.contains(&format!(
            "mangaassist prompt activate --store manga_jp --intent recommendation --version {verbose_version}"
        )),
        "{md}"
    );
    assert!(md.contains("mangaassist prompt rollback --store manga_jp --intent recommendation"));

    // 3. Both candidates are registered, neither is active: live traffic still gets v2.
    let listed = recommendation_prompts(&mesh).await;
    let find = |v: &str| listed.iter().find(|p| p.version == v);
    for v in [&same_version, &verbose_version] {
        let p = find(v).unwrap_or_else(|| panic!("{v} not registered: {listed:?}"));
        assert!(!p.active, "{v} became active");
    }
    assert!(find("v2").unwrap().active);
    assert_eq!(listed.iter().filter(|p| p.active).count(), 1);

    // 4. The same file again (PutPrompt is idempotent), without retrieval: empty context.
    let out = tmp.path().join("no-rag");
    let mut args = common.to_vec();
    args.extend([
        "--candidate",
        verbose.to_str().unwrap(),
        "--retrieval",
        "none",
        "--messages",
        "25",
        "--tier",
        "fast",
    ]);
    let code = bench_prompt(Some(&mesh), &args, &out).await;
    let r = report(&out);
    assert!(code == 0 || code == 1, "{code}");
    assert_eq!(r["candidate"]["version"], verbose_version.as_str());
    assert!(r["retrieval"].is_null());
    assert_eq!(r["tier"], "fast");
    check_pairs(&r, false);
    assert!(mean(&r, "candidate", "prompt_tokens") > mean(&r, "baseline", "prompt_tokens") + 250.0);
    assert_eq!(recommendation_prompts(&mesh).await.len(), listed.len());

    mesh.opts.shutdown.cancel();
}

#[tokio::test]
async fn bad_input_exits_2_and_registers_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cand = tmp.path().join("c.txt");
    std::fs::write(&cand, "Be brief.").unwrap();
    let c = cand.to_str().unwrap();
    // Nothing listens on port 9 of localhost.
    let nowhere = ["--generation", "http://127.0.0.1:9", "--retrieval", "none"];
    for args in [
        vec!["--intent", "smalltalk", "--candidate", c],
        vec!["--intent", "faq", "--candidate", "/nonexistent/prompt.txt"],
        vec!["--intent", "faq", "--candidate", c, "--messages", "10"],
        vec!["--intent", "faq", "--candidate", c, "--gate=-1"],
        vec!["--intent", "faq", "--candidate", c],
    ] {
        let mut all = args.clone();
        all.extend(nowhere);
        assert_eq!(bench_prompt(None, &all, &out).await, 2, "{args:?}");
    }
    // No generation endpoint at all.
    assert_eq!(
        bench_prompt(None, &["--intent", "faq", "--candidate", c], &out).await,
        2
    );
    assert!(!out.exists());
}

/// The example in docs/benchmarks.md: scenario 5's prompt against the default realistic
/// profile, with the command's defaults (60 queries per arm). About two minutes.
/// `cargo test -p mangaassist-bench --test prompt_gate -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: default model latencies"]
async fn scenario_5_with_default_latencies() {
    let mesh = start_mesh(false).await;
    let tmp = tempfile::tempdir().unwrap();
    let verbose = tmp.path().join("rec_v3_multicriteria.txt");
    std::fs::write(&verbose, verbose_prompt()).unwrap();
    let out = tmp.path().join("out");
    let args = [
        "--intent",
        "recommendation",
        "--candidate",
        verbose.to_str().unwrap(),
    ];
    assert_eq!(bench_prompt(Some(&mesh), &args, &out).await, 1);
    mesh.opts.shutdown.cancel();
}
