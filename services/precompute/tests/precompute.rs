//! Precompute against the real generation daemon (zero latency, behind a proxy that records
//! every request) and in-memory fakes of retrieval and cache, all over gRPC on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use mangaassist_catalog::{Catalog, Product};
use mangaassist_client::{CacheClient, GenerationClient, PrecomputeClient, RetrievalClient};
use mangaassist_config::Config;
use mangaassist_domain::{Asked, ContextSettings, Sources, assemble};
use mangaassist_generation::GenerationDaemon;
use mangaassist_precompute::{PrecomputeDaemon, PrecomputePeers};
use mangaassist_proto::v1 as pb;
use mangaassist_server::{Daemon, ServeOptions, bind_with_addr};
use pb::generation_service_server::GenerationService;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// Keyword search (title and genre words) over the real catalog, with the real filters and
/// two policy documents; records every request.
#[derive(Clone)]
struct FakeRetrieval {
    products: Arc<Vec<Product>>,
    requests: Arc<Mutex<Vec<pb::RetrieveRequest>>>,
}

fn words(s: &str) -> HashSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect()
}

impl FakeRetrieval {
    /// The answer to `r`, without recording it.
    fn search(&self, r: pb::RetrieveRequest) -> pb::RetrieveResponse {
        let q = words(&r.query);
        let f = r.filters.unwrap_or_default();
        let mut scored: Vec<(usize, &Product)> = self
            .products
            .iter()
            .filter(|p| p.store_id == r.store_id)
            .filter(|p| !f.in_stock_only || p.stock > 0)
            .filter(|p| f.genres.is_empty() || p.genres.iter().any(|g| f.genres.contains(g)))
            .map(|p| {
                let mut w = words(&p.title);
                w.extend(p.genres.iter().flat_map(|g| words(g)));
                (w.intersection(&q).count(), p)
            })
            .filter(|(s, _)| *s > 0 || !f.genres.is_empty())
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.volume.cmp(&b.1.volume)));
        let top_k = if r.top_k == 0 { 5 } else { r.top_k as usize };
        let documents = ["Shipping", "Returns"]
            .into_iter()
            .take(r.top_k_documents as usize)
            .map(|t| pb::DocumentHit {
                document: Some(pb::Document {
                    id: t.to_lowercase(),
                    store_id: "*".into(),
                    kind: "policy".into(),
                    title: t.into(),
                    body: format!("{t} policy."),
                    ..Default::default()
                }),
                score: 1.0,
                ..Default::default()
            })
            .collect();
        pb::RetrieveResponse {
            products: scored
                .into_iter()
                .take(top_k)
                .map(|(s, p)| pb::ProductHit {
                    product: Some(p.into()),
                    score: s as f32,
                    ..Default::default()
                })
                .collect(),
            documents,
            ..Default::default()
        }
    }
}

#[tonic::async_trait]
impl pb::retrieval_service_server::RetrievalService for FakeRetrieval {
    async fn retrieve(
        &self,
        request: Request<pb::RetrieveRequest>,
    ) -> Result<Response<pb::RetrieveResponse>, Status> {
        let r = request.into_inner();
        self.requests.lock().unwrap().push(r.clone());
        Ok(Response::new(self.search(r)))
    }

    async fn get_products(
        &self,
        request: Request<pb::GetProductsRequest>,
    ) -> Result<Response<pb::GetProductsResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(pb::GetProductsResponse {
            products: self
                .products
                .iter()
                .filter(|p| r.ids.contains(&p.id))
                .map(Into::into)
                .collect(),
            missing: vec![],
        }))
    }
}

/// Records every put.
#[derive(Clone, Default)]
struct FakeCache {
    puts: Arc<Mutex<Vec<pb::PutRequest>>>,
}

impl FakeCache {
    fn puts(&self) -> Vec<pb::PutRequest> {
        self.puts.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl pb::cache_service_server::CacheService for FakeCache {
    async fn lookup(
        &self,
        _request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupResponse>, Status> {
        Ok(Response::new(pb::LookupResponse::default()))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let mut puts = self.puts.lock().unwrap();
        puts.push(request.into_inner());
        Ok(Response::new(pb::PutResponse {
            key: format!("k{}", puts.len()),
            refused_stale: false,
        }))
    }

    async fn invalidate_products(
        &self,
        _request: Request<pb::InvalidateProductsRequest>,
    ) -> Result<Response<pb::InvalidateProductsResponse>, Status> {
        Ok(Response::new(pb::InvalidateProductsResponse::default()))
    }

    async fn stats(
        &self,
        _request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        Ok(Response::new(pb::StatsResponse {
            entries: self.puts.lock().unwrap().len() as u64,
            ..Default::default()
        }))
    }
}

/// The real generation daemon behind a proxy that sends every `GenerateRequest` to the test.
#[derive(Clone)]
struct RecordingGeneration {
    inner: GenerationDaemon,
    seen: mpsc::UnboundedSender<pb::GenerateRequest>,
}

#[tonic::async_trait]
impl GenerationService for RecordingGeneration {
    type GenerateStream = <GenerationDaemon as GenerationService>::GenerateStream;

    async fn generate(
        &self,
        request: Request<pb::GenerateRequest>,
    ) -> Result<Response<Self::GenerateStream>, Status> {
        let _ = self.seen.send(request.get_ref().clone());
        self.inner.generate(request).await
    }

    async fn list_prompts(
        &self,
        request: Request<pb::ListPromptsRequest>,
    ) -> Result<Response<pb::ListPromptsResponse>, Status> {
        self.inner.list_prompts(request).await
    }

    async fn put_prompt(
        &self,
        request: Request<pb::PutPromptRequest>,
    ) -> Result<Response<pb::PromptInfo>, Status> {
        self.inner.put_prompt(request).await
    }

    async fn activate_prompt(
        &self,
        request: Request<pb::ActivatePromptRequest>,
    ) -> Result<Response<pb::PromptInfo>, Status> {
        self.inner.activate_prompt(request).await
    }

    async fn rollback_prompt(
        &self,
        request: Request<pb::RollbackPromptRequest>,
    ) -> Result<Response<pb::PromptInfo>, Status> {
        self.inner.rollback_prompt(request).await
    }
}

struct Mesh {
    cache: FakeCache,
    retrieval: FakeRetrieval,
    /// Every request precompute sent to generation, in order.
    generated: mpsc::UnboundedReceiver<pb::GenerateRequest>,
    config: Config,
    generation: GenerationDaemon,
    catalog: Catalog,
    client: PrecomputeClient,
    opts: ServeOptions,
    /// `data.state_dir` (the demand snapshot).
    _state: tempfile::TempDir,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.opts.shutdown.cancel();
    }
}

async fn mesh(tweak: impl FnOnce(&mut Config)) -> Mesh {
    let mut config = Config::default();
    config.data.dir = data_dir();
    config.generation.prompts_dir = data_dir().join("prompts");
    config.generation.latency_profile = mangaassist_config::LatencyProfile::Zero;
    config.precompute.scheduler = false;
    config.precompute.trending_titles = 2;
    let state = tempfile::tempdir().unwrap();
    config.data.state_dir = state.path().to_path_buf();
    tweak(&mut config);
    let opts = ServeOptions::for_tests();
    let catalog = Catalog::load(&data_dir()).unwrap();

    let (l, retrieval_addr) = bind_with_addr("127.0.0.1:0").await.unwrap();
    let retrieval = FakeRetrieval {
        products: Arc::new(catalog.products.clone()),
        requests: Arc::default(),
    };
    tokio::spawn(
        Daemon::new("retrieval")
            .add_service(pb::retrieval_service_server::RetrievalServiceServer::new(
                retrieval.clone(),
            ))
            .serve(l, opts.clone()),
    );
    let (l, cache_addr) = bind_with_addr("127.0.0.1:0").await.unwrap();
    let cache = FakeCache::default();
    tokio::spawn(
        Daemon::new("cache")
            .add_service(pb::cache_service_server::CacheServiceServer::new(
                cache.clone(),
            ))
            .serve(l, opts.clone()),
    );
    let (l, generation_addr) = bind_with_addr("127.0.0.1:0").await.unwrap();
    let generation = GenerationDaemon::new(&config).await.unwrap();
    let (seen, generated) = mpsc::unbounded_channel();
    let recording = RecordingGeneration {
        inner: generation.clone(),
        seen,
    };
    tokio::spawn(
        Daemon::new("generation")
            .add_service(pb::generation_service_server::GenerationServiceServer::new(
                recording,
            ))
            .serve(l, opts.clone()),
    );

    let peers = PrecomputePeers {
        retrieval: RetrievalClient::connect(&format!("http://{retrieval_addr}")).unwrap(),
        generation: GenerationClient::connect(&format!("http://{generation_addr}")).unwrap(),
        cache: CacheClient::connect(&format!("http://{cache_addr}")).unwrap(),
    };
    let daemon = PrecomputeDaemon::new(&config, peers).await.unwrap();
    let (l, addr) = bind_with_addr("127.0.0.1:0").await.unwrap();
    tokio::spawn(daemon.serve(l, opts.clone()));
    Mesh {
        cache,
        retrieval,
        generated,
        config,
        generation,
        catalog,
        client: PrecomputeClient::connect(&format!("http://{addr}")).unwrap(),
        opts,
        _state: state,
    }
}

async fn run(m: &Mesh, job: &str, store: &str) -> Vec<pb::JobProgress> {
    let s = m
        .client
        .run_job(
            pb::RunJobRequest {
                job: job.into(),
                store_id: store.into(),
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    s.map(|p| p.unwrap()).collect().await
}

#[tokio::test]
async fn trending_job_streams_progress_and_writes_store_answers() {
    let m = mesh(|_| {}).await;
    let progress = run(&m, "trending", "manga_jp").await;
    let last = progress.last().unwrap();
    assert!(last.finished, "{last:?}");
    assert_eq!(
        (last.total, last.written, last.failed),
        (6, 6, 0),
        "{progress:?}"
    );
    assert_eq!(progress.len(), 7);
    assert!(progress[..6].iter().all(|p| !p.finished && p.total == 6));
    let dones: Vec<u32> = progress[..6].iter().map(|p| p.done).collect();
    assert_eq!(dones, vec![1, 2, 3, 4, 5, 6]);

    let puts = m.cache.puts();
    assert_eq!(puts.len(), 6);
    let by_id = |id: &str| m.catalog.products.iter().find(|p| p.id == id).unwrap();
    for p in &puts {
        assert_eq!(p.scope, pb::CacheScope::Store as i32);
        assert_eq!(p.store_id, "manga_jp");
        // Until the next hourly run has replaced it (3,600 s + a tenth).
        assert_eq!(p.ttl_seconds, 3_960);
        let a = p.answer.as_ref().unwrap();
        assert_eq!(a.source, "precompute:trending");
        assert_eq!(a.query, p.text);
        assert!(a.model.contains("simulated"));
        assert!(!a.text.is_empty());
        assert!(!a.product_ids.is_empty(), "{p:?}");
        for id in &a.product_ids {
            assert_eq!(by_id(id).store_id, "manga_jp");
            assert!(a.text.contains(&by_id(id).title), "{id} not in {}", a.text);
        }
    }
    let questions: HashSet<&str> = puts.iter().map(|p| p.text.as_str()).collect();
    assert!(
        questions
            .iter()
            .any(|q| q.starts_with("Recommend something like "))
    );
    let rec = puts
        .iter()
        .find(|p| p.text.starts_with("Recommend"))
        .unwrap();
    assert_eq!(
        rec.answer.as_ref().unwrap().intent,
        pb::Intent::Recommendation as i32
    );

    let jobs = m
        .client
        .list_jobs(Duration::from_secs(5))
        .await
        .unwrap()
        .jobs;
    let t = jobs.iter().find(|j| j.name == "trending").unwrap();
    assert!(
        t.last_run_ms > 0 && t.last_written == 6 && t.last_error.is_empty(),
        "{t:?}"
    );
    assert_eq!(t.interval_seconds, 3_600);
    let g = jobs
        .iter()
        .find(|j| j.name == "genre_recommendations")
        .unwrap();
    assert_eq!(g.last_run_ms, 0);
}

/// What the gateway would send generation for the question of `sent`: its retrieval request
/// against the same retrieval, its assembly with the same `gateway` settings, `history` as
/// the session's turns (newest first).
fn live_request(
    m: &Mesh,
    sent: &pb::GenerateRequest,
    history: Vec<pb::Turn>,
) -> pb::GenerateRequest {
    let settings = ContextSettings::from(&m.config.gateway);
    let intent = pb::Intent::try_from(sent.intent).unwrap();
    let tier = pb::ModelTier::try_from(sent.tier).unwrap();
    let retrieved =
        m.retrieval
            .search(settings.retrieval_request(&sent.query, &sent.store_id, None));
    let sources = Sources {
        retrieved: Some(retrieved),
        history,
        ..Sources::default()
    };
    let asked = Asked {
        query: &sent.query,
        store_id: &sent.store_id,
        session_id: &sent.session_id,
        user_id: &sent.user_id,
        locale: mangaassist_domain::reply_language(&sent.query, mangaassist_domain::Lang::En),
    };
    assemble(intent, sources, &settings).into_request(asked, intent, tier, "full")
}

/// A pre-computed answer stands in for the live one, so generation must see the same
/// context: the same retrieval request, the same candidate count and the same assembly.
#[tokio::test]
async fn precomputed_answers_see_the_live_context() {
    let mut m = mesh(|c| c.precompute.follow_ups = 5).await;
    let settings = ContextSettings::from(&m.config.gateway);

    // Store-scoped answers: no conversation.
    let last = run(&m, "trending", "manga_jp").await.pop().unwrap();
    assert!(last.finished && last.failed == 0, "{last:?}");
    let mut trending = Vec::new();
    while let Ok(r) = m.generated.try_recv() {
        trending.push(r);
    }
    assert_eq!(trending.len() as u32, last.written, "{last:?}");
    for sent in &trending {
        assert_eq!(sent, &live_request(&m, sent, vec![]), "{}", sent.query);
    }

    // Follow-ups: the conversation is the exchange just answered.
    let pick = |series: &str| {
        m.catalog
            .products
            .iter()
            .find(|p| p.store_id == "manga_jp" && p.series == series && p.volume == 1)
            .unwrap()
            .clone()
    };
    let (a, b) = (pick("Frieren: Beyond Journey's End"), pick("Dandadan"));
    let (query, answer) = (
        "Recommend something like One Piece".to_string(),
        format!("Try {} or {}.", a.title, b.title),
    );
    let resp = m
        .client
        .predict_follow_ups(
            pb::PredictFollowUpsRequest {
                session_id: "sess-ctx".into(),
                user_id: "u-demo".into(),
                store_id: "manga_jp".into(),
                query: query.clone(),
                intent: pb::Intent::Recommendation as i32,
                answer: answer.clone(),
                product_ids: vec![a.id.clone(), b.id.clone()],
                ..Default::default()
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(resp.written, 5, "{resp:?}");
    let history = vec![
        pb::Turn {
            role: "assistant".into(),
            text: answer,
            intent: pb::Intent::Recommendation as i32,
            ..Default::default()
        },
        pb::Turn {
            role: "user".into(),
            text: query,
            intent: pb::Intent::Recommendation as i32,
            ..Default::default()
        },
    ];
    let mut follow_ups = Vec::new();
    for _ in 0..resp.written {
        // Only a hang guard: the follow-ups are generated in the background.
        let sent = tokio::time::timeout(Duration::from_secs(120), m.generated.recv())
            .await
            .expect("follow-up generation requests")
            .unwrap();
        assert_eq!(
            sent,
            live_request(&m, &sent, history.clone()),
            "{}",
            sent.query
        );
        follow_ups.push(sent);
    }

    // Every retrieval precompute made was the live path's request for its question.
    for r in m.retrieval.requests.lock().unwrap().iter() {
        assert_eq!(r, &settings.retrieval_request(&r.query, &r.store_id, None));
    }
    // Not vacuous: the recommendation follow-up's context is the live assembly's, with the
    // live candidate counts.
    let cmp = follow_ups
        .iter()
        .find(|r| r.intent == pb::Intent::Recommendation as i32)
        .unwrap();
    assert!(
        cmp.products
            .iter()
            .any(|h| h.product.as_ref().unwrap().series != a.series),
        "{}",
        cmp.query
    );
    assert_eq!(cmp.products.len(), settings.top_k_products as usize);
    assert_eq!(cmp.documents.len(), settings.top_k_documents as usize);
}

#[tokio::test]
async fn genre_job_writes_in_stock_recommendations_per_genre() {
    let m = mesh(|_| {}).await;
    let progress = run(&m, "genre_recommendations", "comics_us").await;
    let last = progress.last().unwrap();
    assert!(last.finished);
    assert_eq!(last.failed, 0);
    // Retrieved like the live question, so a genre whose context holds a sold-out volume
    // is left to the live path.
    let skipped = progress
        .iter()
        .filter(|p| {
            p.item
                .ends_with("(skipped: out-of-stock product in the context)")
        })
        .count() as u32;
    assert_eq!(last.written + skipped, last.total, "{progress:?}");
    assert!(last.written >= 10, "{last:?}");
    let puts = m.cache.puts();
    assert_eq!(puts.len() as u32, last.written);
    for p in &puts {
        let a = p.answer.as_ref().unwrap();
        assert_eq!(a.source, "precompute:genre");
        assert_eq!(p.scope, pb::CacheScope::Store as i32);
        let genre = p
            .text
            .strip_prefix("Recommend some ")
            .and_then(|g| g.strip_suffix(" manga"))
            .unwrap()
            .replace("sci-fi", "sci_fi")
            .replace(' ', "_");
        for id in &a.product_ids {
            let prod = m.catalog.products.iter().find(|x| &x.id == id).unwrap();
            assert!(prod.stock > 0, "{id} out of stock in {}", p.text);
            assert!(prod.genres.contains(&genre), "{id} not {genre}");
        }
    }
}

#[tokio::test]
async fn bad_job_requests_are_invalid_arguments() {
    let m = mesh(|_| {}).await;
    for (job, store) in [("nightly", ""), ("trending", "mars_store")] {
        let e = match m
            .client
            .run_job(
                pb::RunJobRequest {
                    job: job.into(),
                    store_id: store.into(),
                },
                Duration::from_secs(5),
            )
            .await
        {
            Err(e) => e,
            Ok(_) => panic!("accepted {job}/{store}"),
        };
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    }
    let e = m
        .client
        .predict_follow_ups(
            pb::PredictFollowUpsRequest {
                store_id: "manga_jp".into(),
                ..Default::default()
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

async fn wait_for(m: &Mesh, what: &str, ok: impl Fn(&[pb::PutRequest]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok(&m.cache.puts()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            m.cache.puts().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn follow_ups_name_the_titles_and_are_cached_per_session() {
    let m = mesh(|_| {}).await;
    let pick = |series: &str| {
        m.catalog
            .products
            .iter()
            .find(|p| p.store_id == "manga_jp" && p.series == series && p.volume == 1)
            .unwrap()
            .clone()
    };
    let (a, b) = (pick("Frieren: Beyond Journey's End"), pick("Dandadan"));
    let resp = m
        .client
        .predict_follow_ups(
            pb::PredictFollowUpsRequest {
                session_id: "sess-9".into(),
                user_id: "u-demo".into(),
                store_id: "manga_jp".into(),
                query: "Recommend something like One Piece".into(),
                intent: pb::Intent::Recommendation as i32,
                answer: format!("Try {} or {}.", a.title, b.title),
                product_ids: vec![a.id.clone(), b.id.clone()],
                ..Default::default()
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    // The standalone questions the gateway rewrites bare follow-ups into, about the first
    // product the answer named.
    assert_eq!(
        resp.questions,
        [
            format!("Is {} in stock?", a.title),
            format!("What is the price of {}?", a.title),
            format!("Recommend something like {}", a.series),
            format!("When is {}, Vol. 2 out?", a.series),
            format!("Tell me more about {}", a.title),
        ],
        "{resp:?}"
    );
    assert_eq!(resp.written, 5);

    wait_for(&m, "follow-up puts", |p| p.len() >= 5).await;
    let puts = m.cache.puts();
    assert_eq!(puts.len(), 5);
    for p in &puts {
        assert_eq!(p.scope, pb::CacheScope::Session as i32);
        assert_eq!(
            (p.session_id.as_str(), p.user_id.as_str()),
            ("sess-9", "u-demo")
        );
        assert_eq!(p.ttl_seconds, 300);
        let ans = p.answer.as_ref().unwrap();
        assert_eq!(ans.source, "precompute:followup");
        assert!(resp.questions.contains(&p.text));
        assert!(!ans.product_ids.is_empty(), "{p:?}");
    }
    let stock = puts.iter().find(|p| p.text.starts_with("Is ")).unwrap();
    assert!(
        stock.answer.as_ref().unwrap().text.contains(&a.title),
        "{stock:?}"
    );

    // After an order question: account-bound follow-ups are suggested but not pre-generated.
    let resp = m
        .client
        .predict_follow_ups(
            pb::PredictFollowUpsRequest {
                session_id: "sess-9".into(),
                store_id: "manga_jp".into(),
                query: "where is my order?".into(),
                intent: pb::Intent::OrderStatus as i32,
                ..Default::default()
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(resp.questions[0], "When will it arrive?");
    assert!(
        resp.questions
            .iter()
            .any(|q| q == "Can I change the delivery address?")
    );
    assert_eq!(resp.written, 2);
}

#[tokio::test]
async fn scheduler_runs_every_job_at_start() {
    let m = mesh(|c| {
        c.precompute.scheduler = true;
        c.precompute.run_at_start = true;
        c.precompute.trending_titles = 1;
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let jobs = loop {
        let jobs = m
            .client
            .list_jobs(Duration::from_secs(5))
            .await
            .unwrap()
            .jobs;
        // No release is scheduled: that job runs and writes nothing.
        if jobs
            .iter()
            .all(|j| j.last_run_ms > 0 && (j.last_written > 0 || j.name == "release_prewarm"))
        {
            for j in &jobs {
                assert!(j.next_run_ms > j.last_run_ms, "{j:?}");
                assert!(j.last_error.is_empty(), "{j:?}");
            }
            break jobs;
        }
        assert!(Instant::now() < deadline, "{jobs:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Every answer a run reports written is in the cache, for both stores.
    let puts = m.cache.puts();
    let src = |s: &str| {
        puts.iter()
            .filter(|p| p.answer.as_ref().unwrap().source == s)
            .count() as u32
    };
    let written = |name: &str| jobs.iter().find(|j| j.name == name).unwrap().last_written;
    assert_eq!(src("precompute:trending"), 6);
    assert_eq!(written("trending"), 6);
    assert_eq!(src("precompute:genre"), written("genre_recommendations"));
}

#[tokio::test]
async fn run_job_stops_when_the_client_goes_away() {
    let m = mesh(|c| c.generation.latency_profile = mangaassist_config::LatencyProfile::Realistic)
        .await;
    let mut s = m
        .client
        .run_job(
            pb::RunJobRequest {
                job: "trending".into(),
                store_id: "manga_jp".into(),
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let first = s.next().await.unwrap().unwrap();
    assert_eq!(first.done, 1);
    drop(s);
    // The items in flight are dropped, which cancels their generation streams...
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.generation.streams_cancelled() < 1 {
        assert!(
            Instant::now() < deadline,
            "in-flight generation kept running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and the job itself ends (it records its run only once it has stopped; the scheduler
    // is off, so nothing else runs it), after which no new item can start.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let jobs = m
            .client
            .list_jobs(Duration::from_secs(5))
            .await
            .unwrap()
            .jobs;
        let trending = jobs.iter().find(|j| j.name == "trending").unwrap();
        if trending.last_run_ms > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the job kept running: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = m.generation.streams_started();
    assert!(started < 6, "{started}");
    assert!(m.cache.puts().len() < 6);
}

#[tokio::test]
async fn a_job_never_runs_twice_at_once() {
    let m = mesh(|c| c.generation.latency_profile = mangaassist_config::LatencyProfile::Realistic)
        .await;
    let req = || pb::RunJobRequest {
        job: "trending".into(),
        store_id: "manga_jp".into(),
    };
    let mut first = m
        .client
        .run_job(req(), Duration::from_secs(60))
        .await
        .unwrap();
    // Surely running: it has reported an item.
    assert!(first.next().await.unwrap().is_ok());
    let second = m.client.run_job(req(), Duration::from_secs(60)).await;
    let e = second
        .err()
        .expect("a second run of a running job is refused");
    assert_eq!(e.code(), tonic::Code::Aborted, "{e:?}");
    assert!(e.message().contains("already running"), "{e:?}");
    // Another kind may run meanwhile.
    let other = m
        .client
        .run_job(
            pb::RunJobRequest {
                job: "genre_recommendations".into(),
                store_id: "manga_jp".into(),
            },
            Duration::from_secs(60),
        )
        .await;
    assert!(other.is_ok());
    // Once the first has finished, the job runs again.
    while let Some(p) = first.next().await {
        if p.unwrap().finished {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match m.client.run_job(req(), Duration::from_secs(60)).await {
            Ok(_) => break,
            Err(e) if e.code() == tonic::Code::Aborted => {
                // The finished run releases the job as its task ends, just after `finished`.
                assert!(Instant::now() < deadline, "{e:?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[tokio::test]
async fn trending_follows_the_demand_gateways_report() {
    let m = mesh(|_| {}).await;
    let d = Duration::from_secs(5);
    let before = m
        .client
        .trending(
            pb::TrendingRequest {
                store_id: "manga_jp".into(),
                limit: 0,
            },
            d,
        )
        .await
        .unwrap();
    assert_eq!(before.series.len(), 2);
    assert!(before.series.iter().all(|s| s.reason == "release_date"));
    // An old, in-stock series nobody would pick by release date.
    let asked = m
        .catalog
        .products
        .iter()
        .filter(|p| p.store_id == "manga_jp" && p.stock > 0)
        .find(|p| before.series.iter().all(|s| s.series != p.series))
        .unwrap()
        .clone();
    let count = |store: &str, product: &str, count: u32| pb::DemandCount {
        store_id: store.into(),
        product_id: product.into(),
        count,
    };
    let r = m
        .client
        .record_demand(
            pb::RecordDemandRequest {
                counts: vec![
                    count("manga_jp", &asked.id, 5),
                    // Sold in the other store only, and invented: counted as unknown.
                    count("comics_us", &asked.id, 5),
                    count("manga_jp", "B-NO-SUCH", 5),
                ],
            },
            d,
        )
        .await
        .unwrap();
    assert_eq!((r.recorded, r.unknown), (1, 2));
    let after = m
        .client
        .trending(
            pb::TrendingRequest {
                store_id: "manga_jp".into(),
                limit: 2,
            },
            d,
        )
        .await
        .unwrap();
    assert_eq!(after.series[0].series, asked.series, "{after:?}");
    assert_eq!(after.series[0].reason, "demand");
    assert!((after.series[0].demand - 5.0).abs() < 0.01, "{after:?}");
    assert_eq!(after.series[1].reason, "release_date");
    assert_eq!(after.half_life_seconds, 6 * 3_600);
    // The job writes its answers about the series customers asked about.
    run(&m, "trending", "manga_jp").await;
    let asked_about = format!("Tell me about {}", asked.series);
    assert!(
        m.cache.puts().iter().any(|p| p.text == asked_about),
        "{:?}",
        m.cache.puts().iter().map(|p| &p.text).collect::<Vec<_>>()
    );
    // Bad requests are refused whole, with the reason.
    let e = m
        .client
        .record_demand(
            pb::RecordDemandRequest {
                counts: vec![count("manga_jp", &asked.id, 0)],
            },
            d,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("counts[0].count"), "{e}");
    let e = m
        .client
        .trending(
            pb::TrendingRequest {
                store_id: "nowhere".into(),
                limit: 0,
            },
            d,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

/// Questions about the customer's own orders are pre-answered only with the orders the
/// gateway read for them, into their session only, for at most a minute; another user's
/// order in the request is refused.
#[tokio::test]
async fn order_follow_ups_use_the_customers_orders_in_their_session_only() {
    let m = mesh(|_| {}).await;
    let order = pb::Order {
        order_id: "JP-7731".into(),
        user_id: "u-7".into(),
        store_id: "manga_jp".into(),
        items: vec![pb::OrderItem {
            product_id: "B05KL9F8YY".into(),
            title: "One Piece, Vol. 1".into(),
            quantity: 1,
            ..Default::default()
        }],
        status: "shipped".into(),
        placed_at: "2026-11-28".into(),
        eta: "2026-12-04".into(),
        carrier: "Yamato".into(),
        tracking: "YT-123456".into(),
    };
    let req = |orders: Vec<pb::Order>, session: &str| pb::PredictFollowUpsRequest {
        session_id: session.into(),
        user_id: "u-7".into(),
        store_id: "manga_jp".into(),
        query: "Where is my order?".into(),
        intent: pb::Intent::OrderStatus as i32,
        answer: "Your order JP-7731 has shipped.".into(),
        orders,
        ..Default::default()
    };
    let d = Duration::from_secs(5);
    // Without orders only the questions a policy answers are written.
    let r = m
        .client
        .predict_follow_ups(req(vec![], "s-none"), d)
        .await
        .unwrap();
    assert_eq!(r.written, 2, "{r:?}");
    let r = m
        .client
        .predict_follow_ups(req(vec![order.clone()], "s-7"), d)
        .await
        .unwrap();
    assert_eq!(r.written, 4, "{r:?}");
    wait_for(&m, "order follow-ups", |p| {
        p.iter().filter(|p| p.session_id == "s-7").count() >= 4
    })
    .await;
    let puts = m.cache.puts();
    assert!(
        !puts
            .iter()
            .any(|p| p.session_id == "s-none" && p.text == "When will it arrive?"),
        "answered about orders nobody read"
    );
    let arrive = puts
        .iter()
        .find(|p| p.session_id == "s-7" && p.text == "When will it arrive?")
        .unwrap();
    assert_eq!(arrive.scope, pb::CacheScope::Session as i32);
    assert_eq!(arrive.user_id, "u-7");
    assert_eq!(arrive.ttl_seconds, 60, "an order moves on");
    let text = &arrive.answer.as_ref().unwrap().text;
    assert!(
        text.contains("JP-7731") || text.contains("2026-12-04"),
        "{text}"
    );
    // The policy answers do not state the order: they keep the follow-up TTL.
    let cancel = puts
        .iter()
        .find(|p| p.session_id == "s-7" && p.text == "Can I cancel my order?")
        .unwrap();
    assert_eq!(cancel.ttl_seconds, 300);

    let mut stranger = order.clone();
    stranger.user_id = "u-other".into();
    let e = m
        .client
        .predict_follow_ups(req(vec![stranger], "s-7"), d)
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("orders[0]"), "{e}");
}

/// A release announced for soon is pre-warmed at once: its questions, in English and
/// Japanese, are answered into the store's cache until two hours after it; one further off
/// waits for its time; bad announcements are refused; the schedule survives a restart.
#[tokio::test]
async fn a_scheduled_release_is_prewarmed_before_it_goes_on_sale() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_path_buf();
    let m = mesh(|c| c.data.state_dir = dir.clone()).await;
    let d = Duration::from_secs(5);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // A volume with a volume before it and Japanese names.
    let product = m
        .catalog
        .products
        .iter()
        .filter(|p| p.store_id == "manga_jp" && p.volume > 1 && p.title_ja.is_some())
        .max_by_key(|p| p.volume)
        .unwrap()
        .clone();
    let soon = now + 30 * 60 * 1000;
    let info = m
        .client
        .schedule_release(
            pb::ScheduleReleaseRequest {
                store_id: "manga_jp".into(),
                product_id: product.id.clone(),
                release_at_ms: soon,
            },
            d,
        )
        .await
        .unwrap();
    assert_eq!(info.prewarm_at_ms, soon - 3_600_000);
    assert_eq!(info.title, product.title);
    let next = format!("When is {}, Vol. {} out?", product.series, product.volume);
    assert!(info.questions.contains(&next), "{:?}", info.questions);
    assert!(
        info.questions.iter().any(|q| !q.is_ascii()),
        "no Japanese: {:?}",
        info.questions
    );
    let n = info.questions.len();
    wait_for(&m, "pre-warmed release answers", |p| {
        p.iter()
            .filter(|p| p.answer.as_ref().unwrap().source == "precompute:release")
            .count()
            >= n
    })
    .await;
    for p in m
        .cache
        .puts()
        .iter()
        .filter(|p| p.answer.as_ref().unwrap().source == "precompute:release")
    {
        assert_eq!(p.scope, pb::CacheScope::Store as i32);
        // Until two hours after the release (30 min away now).
        let ttl = i64::from(p.ttl_seconds);
        assert!((9_000 - 5..=9_000).contains(&ttl), "{ttl}");
        assert!(info.questions.contains(&p.text), "{}", p.text);
    }
    // Marked warmed once the run ends.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = m
            .client
            .list_releases(pb::ListReleasesRequest::default(), d)
            .await
            .unwrap();
        if l.releases[0].warmed_ms > 0 {
            assert_eq!(l.releases[0].written as usize, n);
            break;
        }
        assert!(Instant::now() < deadline, "{l:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Far off: scheduled, nothing written yet.
    let later = m
        .catalog
        .products
        .iter()
        .find(|p| p.store_id == "comics_us")
        .unwrap()
        .clone();
    let far = now + 5 * 3_600_000;
    let info = m
        .client
        .schedule_release(
            pb::ScheduleReleaseRequest {
                store_id: "comics_us".into(),
                product_id: later.id.clone(),
                release_at_ms: far,
            },
            d,
        )
        .await
        .unwrap();
    assert_eq!(info.warmed_ms, 0);
    let bad = |store: &str, product: &str, at: i64| pb::ScheduleReleaseRequest {
        store_id: store.into(),
        product_id: product.into(),
        release_at_ms: at,
    };
    for (req, code) in [
        (bad("manga_jp", "B-NOPE", far), tonic::Code::NotFound),
        (bad("nowhere", &later.id, far), tonic::Code::InvalidArgument),
        // Another store's product.
        (bad("manga_jp", &later.id, far), tonic::Code::NotFound),
        (
            bad("comics_us", &later.id, now - 3 * 3_600_000),
            tonic::Code::InvalidArgument,
        ),
        (
            bad("comics_us", &later.id, now + 400 * 24 * 3_600_000),
            tonic::Code::InvalidArgument,
        ),
    ] {
        let e = m.client.schedule_release(req, d).await.unwrap_err();
        assert_eq!(e.code(), code, "{e}");
    }
    drop(m);
    // A restart finds both releases, the first one warmed.
    let again = mesh(|c| c.data.state_dir = dir.clone()).await;
    let l = again
        .client
        .list_releases(pb::ListReleasesRequest::default(), d)
        .await
        .unwrap();
    let ids: Vec<(&str, bool)> = l
        .releases
        .iter()
        .map(|r| (r.product_id.as_str(), r.warmed_ms > 0))
        .collect();
    assert_eq!(
        ids,
        vec![(product.id.as_str(), true), (later.id.as_str(), false)]
    );
}
