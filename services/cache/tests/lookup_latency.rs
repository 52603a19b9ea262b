//! Lookup latency with 10k entries in one store partition: exact hits and semantic hits,
//! in process (service trait) and over loopback gRPC. Prints p50/p99; run with
//! `cargo test --release -p mangaassist-cache --test lookup_latency -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use mangaassist_cache::{CacheDaemon, InMemoryStore, SystemClock};
use mangaassist_client::CacheClient;
use mangaassist_config::CacheSettings;
use mangaassist_embedding::{HashedNgrams, QueryEmbedder, normalize};
use mangaassist_proto::v1::{self as pb, cache_service_server::CacheService};
use mangaassist_server::ServeOptions;
use tonic::Request;

const ENTRIES: usize = 10_000;
const DIM: usize = 384;
const MODEL: &str = "hashed-ngrams-384";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    fn unit(&mut self) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIM).map(|_| self.next()).collect();
        normalize(&mut v);
        v
    }
}

fn emb(values: Vec<f32>) -> Option<pb::Embedding> {
    Some(pb::Embedding {
        values,
        model: MODEL.into(),
    })
}

/// p50 and p99 in milliseconds.
fn pct(v: Vec<Duration>) -> (f64, f64) {
    let ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let at = |q: f64| mangaassist_stats::percentile(&ms, q).unwrap_or(f64::NAN);
    (at(0.50), at(0.99))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_latency_exact_and_semantic_over_10k_entries() {
    let settings = CacheSettings::default();
    let store = Arc::new(InMemoryStore::new(settings.max_entries));
    let d = CacheDaemon::with_parts(
        &settings,
        QueryEmbedder::new(Arc::new(HashedNgrams::default()), 100),
        store,
        Arc::new(SystemClock),
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut vectors = Vec::with_capacity(ENTRIES);
    for i in 0..ENTRIES {
        let v = rng.unit();
        vectors.push(v.clone());
        d.put(Request::new(pb::PutRequest {
            text: format!("question number {i}"),
            store_id: "manga_jp".into(),
            scope: pb::CacheScope::Store as i32,
            embedding: emb(v),
            answer: Some(pb::CachedAnswer {
                text: format!("answer {i}"),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .unwrap();
    }
    let exact = |i: usize| pb::LookupRequest {
        text: format!("Question number {i}?"),
        store_id: "manga_jp".into(),
        user_id: "u-demo".into(),
        session_id: "s-1".into(),
        ..Default::default()
    };
    // A small perturbation of entry i's vector (cosine ≈ 0.99) under a new wording.
    let mut semantic = |i: usize| {
        let mut v: Vec<f32> = vectors[i].iter().map(|x| x + rng.next() * 0.01).collect();
        normalize(&mut v);
        pb::LookupRequest {
            text: format!("reworded question {i}"),
            store_id: "manga_jp".into(),
            user_id: "u-demo".into(),
            session_id: "s-1".into(),
            embedding: emb(v),
            ..Default::default()
        }
    };
    let sem_reqs: Vec<(usize, pb::LookupRequest)> = (0..300)
        .map(|k| (k * 33 % ENTRIES, semantic(k * 33 % ENTRIES)))
        .collect();

    let mut t_exact = Vec::new();
    for k in 0..2_000 {
        let i = k * 7 % ENTRIES;
        let req = exact(i);
        let t = Instant::now();
        let r = d.lookup(Request::new(req)).await.unwrap().into_inner();
        t_exact.push(t.elapsed());
        assert!(r.hit && r.kind == pb::HitKind::Exact as i32);
        assert_eq!(r.answer.unwrap().text, format!("answer {i}"));
    }
    let mut t_sem = Vec::new();
    for (i, req) in &sem_reqs {
        let t = Instant::now();
        let r = d
            .lookup(Request::new(req.clone()))
            .await
            .unwrap()
            .into_inner();
        t_sem.push(t.elapsed());
        assert!(r.hit && r.kind == pb::HitKind::Semantic as i32, "{r:?}");
        assert_eq!(r.answer.unwrap().text, format!("answer {i}"));
    }

    let listener = mangaassist_server::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ServeOptions::for_tests();
    let shutdown = opts.shutdown.clone();
    let server = tokio::spawn(d.clone().serve(listener, opts));
    let client = CacheClient::connect(&format!("http://{addr}")).unwrap();
    let deadline = Duration::from_secs(5);
    client.lookup(exact(0), deadline).await.unwrap(); // connect
    let mut g_exact = Vec::new();
    for k in 0..1_000 {
        let t = Instant::now();
        let r = client
            .lookup(exact(k * 7 % ENTRIES), deadline)
            .await
            .unwrap();
        g_exact.push(t.elapsed());
        assert!(r.hit);
    }
    let mut g_sem = Vec::new();
    for (_, req) in &sem_reqs {
        let t = Instant::now();
        let r = client.lookup(req.clone(), deadline).await.unwrap();
        g_sem.push(t.elapsed());
        assert!(r.hit && r.kind == pb::HitKind::Semantic as i32);
    }
    shutdown.cancel();
    server.await.unwrap().unwrap();

    for (name, samples) in [
        ("in-process exact hit", t_exact),
        ("in-process semantic hit (10k scan)", t_sem),
        ("grpc exact hit", g_exact),
        ("grpc semantic hit (10k scan)", g_sem),
    ] {
        let n = samples.len();
        let (p50, p99) = pct(samples);
        println!("cache lookup {name}: n={n} p50={p50:.3} ms p99={p99:.3} ms");
    }
}
