//! The cache daemon through its service trait (fast, with a manual clock) and through the
//! real gRPC client.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{sync::Arc, time::Duration};

use mangaassist_cache::{CacheDaemon, Clock, InMemoryStore, ManualClock};
use mangaassist_client::CacheClient;
use mangaassist_config::{CacheSettings, Config};
use mangaassist_embedding::{HashedNgrams, MiniLm, QueryEmbedder};
use mangaassist_proto::v1::{self as pb, cache_service_server::CacheService};
use mangaassist_server::ServeOptions;
use tonic::{Code, Request};

const STORE: &str = "manga_jp";

fn hashed() -> QueryEmbedder {
    QueryEmbedder::new(Arc::new(HashedNgrams::default()), 1_000)
}

fn daemon_with(
    settings: CacheSettings,
    embedder: QueryEmbedder,
) -> (CacheDaemon, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = Arc::new(InMemoryStore::new(settings.max_entries));
    (
        CacheDaemon::with_parts(&settings, embedder, store, clock.clone()),
        clock,
    )
}

fn daemon() -> (CacheDaemon, Arc<ManualClock>) {
    daemon_with(CacheSettings::default(), hashed())
}

fn put_req(text: &str, scope: pb::CacheScope, products: &[&str]) -> pb::PutRequest {
    pb::PutRequest {
        text: text.into(),
        store_id: STORE.into(),
        scope: scope as i32,
        answer: Some(pb::CachedAnswer {
            text: format!("answer to {text}"),
            intent: pb::Intent::Faq as i32,
            product_ids: products.iter().map(|p| p.to_string()).collect(),
            source: "live".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn lookup_req(text: &str) -> pb::LookupRequest {
    pb::LookupRequest {
        text: text.into(),
        store_id: STORE.into(),
        ..Default::default()
    }
}

async fn put(d: &CacheDaemon, req: pb::PutRequest) -> String {
    d.put(Request::new(req)).await.unwrap().into_inner().key
}

async fn lookup(d: &CacheDaemon, req: pb::LookupRequest) -> pb::LookupResponse {
    d.lookup(Request::new(req)).await.unwrap().into_inner()
}

async fn hit_text(d: &CacheDaemon, req: pb::LookupRequest) -> Option<String> {
    let r = lookup(d, req).await;
    r.hit.then(|| r.answer.unwrap().text)
}

async fn stats(d: &CacheDaemon) -> pb::StatsResponse {
    d.stats(Request::new(pb::StatsRequest {}))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn exact_hit_after_put_ignores_case_spacing_and_trailing_punctuation() {
    let (d, clock) = daemon();
    assert!(
        !lookup(&d, lookup_req("What is the return policy?"))
            .await
            .hit
    );
    put(
        &d,
        put_req("What is the return policy?", pb::CacheScope::Store, &[]),
    )
    .await;
    let r = lookup(&d, lookup_req("  what is THE return   policy ")).await;
    assert!(r.hit);
    assert_eq!(r.kind, pb::HitKind::Exact as i32);
    assert_eq!(r.scope, pb::CacheScope::Store as i32);
    assert_eq!(r.similarity, 1.0);
    let a = r.answer.unwrap();
    assert_eq!(a.text, "answer to What is the return policy?");
    assert_eq!(a.query, "What is the return policy?");
    assert_eq!(a.created_ms, clock.now_ms());
    assert_eq!(a.expires_ms - a.created_ms, 3_600_000, "default TTL");
    // Another store sees nothing.
    let mut other = lookup_req("what is the return policy");
    other.store_id = "comics_us".into();
    assert!(!lookup(&d, other).await.hit);
    let s = stats(&d).await;
    assert_eq!((s.entries, s.hits_exact, s.misses), (1, 1, 2));
}

#[tokio::test]
async fn entries_expire_after_their_ttl_without_sleeping() {
    let (d, clock) = daemon();
    let mut req = put_req("shipping times", pb::CacheScope::Store, &[]);
    req.ttl_seconds = 10;
    put(&d, req).await;
    clock.advance(Duration::from_millis(9_999));
    assert!(lookup(&d, lookup_req("shipping times")).await.hit);
    clock.advance(Duration::from_millis(1));
    let r = lookup(&d, lookup_req("shipping times")).await;
    assert!(
        !r.hit,
        "expired entries are never returned, exact or semantic"
    );

    // ttl 0: recommendations live 4 h, session-scoped follow-ups 5 min.
    let mut rec = put_req("recommend shonen manga", pb::CacheScope::Store, &[]);
    rec.answer.as_mut().unwrap().intent = pb::Intent::Recommendation as i32;
    put(&d, rec).await;
    let mut follow = put_req("is volume 2 in stock", pb::CacheScope::Session, &[]);
    (follow.user_id, follow.session_id) = ("alice".into(), "s1".into());
    put(&d, follow).await;
    let mut follow_lookup = lookup_req("is volume 2 in stock");
    (follow_lookup.user_id, follow_lookup.session_id) = ("alice".into(), "s1".into());
    clock.advance(Duration::from_secs(299));
    assert!(lookup(&d, follow_lookup.clone()).await.hit);
    clock.advance(Duration::from_secs(1));
    assert!(!lookup(&d, follow_lookup).await.hit);
    clock.advance(Duration::from_secs(4 * 3_600 - 301));
    assert!(lookup(&d, lookup_req("recommend shonen manga")).await.hit);
    clock.advance(Duration::from_secs(1));
    assert!(!lookup(&d, lookup_req("recommend shonen manga")).await.hit);

    // The sweep removes what lazy expiry has not touched yet.
    let mut faq = put_req("gift wrapping", pb::CacheScope::Store, &[]);
    faq.ttl_seconds = 1;
    put(&d, faq).await;
    clock.advance(Duration::from_secs(2));
    d.purge_expired().await;
    assert_eq!(stats(&d).await.entries, 0);
}

#[tokio::test]
async fn user_scope_is_invisible_to_other_users() {
    let (d, _) = daemon();
    let mut req = put_req("where is my order", pb::CacheScope::User, &[]);
    req.user_id = "alice".into();
    put(&d, req).await;
    let as_user = |u: &str| {
        let mut l = lookup_req("where is my order");
        l.user_id = u.into();
        l
    };
    let r = lookup(&d, as_user("alice")).await;
    assert!(r.hit);
    assert_eq!(r.scope, pb::CacheScope::User as i32);
    assert!(!lookup(&d, as_user("bob")).await.hit);
    assert!(!lookup(&d, lookup_req("where is my order")).await.hit);
    // Semantic matching does not cross users either.
    let mut near = as_user("bob");
    near.text = "where is my order now".into();
    near.semantic_threshold = 0.01;
    assert!(!lookup(&d, near).await.hit);
}

#[tokio::test]
async fn session_scope_wins_over_user_and_store_and_stays_in_its_session() {
    let (d, _) = daemon();
    put(
        &d,
        put_req("is volume 2 in stock", pb::CacheScope::Store, &[]),
    )
    .await;
    let mut u = put_req("is volume 2 in stock", pb::CacheScope::User, &[]);
    u.user_id = "alice".into();
    u.answer.as_mut().unwrap().text = "user answer".into();
    put(&d, u).await;
    let mut s = put_req("is volume 2 in stock", pb::CacheScope::Session, &[]);
    (s.user_id, s.session_id) = ("alice".into(), "s1".into());
    s.answer.as_mut().unwrap().text = "session answer".into();
    put(&d, s).await;
    let req = |session: &str, user: &str| {
        let mut l = lookup_req("Is volume 2 in stock?");
        l.session_id = session.into();
        l.user_id = user.into();
        l
    };
    let r = lookup(&d, req("s1", "alice")).await;
    assert_eq!(r.scope, pb::CacheScope::Session as i32);
    assert_eq!(r.answer.unwrap().text, "session answer");
    assert_eq!(
        hit_text(&d, req("s2", "alice")).await.unwrap(),
        "user answer"
    );
    assert_eq!(
        hit_text(&d, req("s2", "bob")).await.unwrap(),
        "answer to is volume 2 in stock"
    );
    // Another user who sends alice's session id sees none of its answers, nor does a
    // lookup without a user.
    assert_eq!(
        hit_text(&d, req("s1", "bob")).await.unwrap(),
        "answer to is volume 2 in stock"
    );
    assert_eq!(
        hit_text(&d, req("s1", "")).await.unwrap(),
        "answer to is volume 2 in stock"
    );
}

#[tokio::test]
async fn semantic_hit_uses_the_callers_embedding_and_threshold() {
    let (d, _) = daemon();
    let emb = |v: Vec<f32>| pb::Embedding {
        values: v,
        model: "hashed-ngrams-384".into(),
    };
    let mut a = vec![0.0f32; 384];
    a[0] = 1.0;
    let mut b = vec![0.0f32; 384];
    b[0] = 0.96;
    b[1] = 0.28; // cosine 0.96 with `a`
    let mut req = put_req("alpha question", pb::CacheScope::Store, &[]);
    req.embedding = Some(emb(a));
    put(&d, req).await;
    let mut l = lookup_req("an unrelated wording");
    l.embedding = Some(emb(b.clone()));
    let r = lookup(&d, l.clone()).await;
    assert!(r.hit, "0.96 ≥ default 0.95");
    assert_eq!(r.kind, pb::HitKind::Semantic as i32);
    assert!((r.similarity - 0.96).abs() < 1e-3, "{}", r.similarity);
    l.semantic_threshold = 0.97;
    assert!(!lookup(&d, l.clone()).await.hit);
    // A vector from another model is ignored and the text is embedded instead.
    l.semantic_threshold = 0.0;
    l.embedding = Some(pb::Embedding {
        values: b,
        model: "some-other-model".into(),
    });
    assert!(!lookup(&d, l).await.hit);
    assert_eq!(stats(&d).await.hits_semantic, 1);
}

#[tokio::test]
async fn invalidate_products_removes_exactly_the_entries_that_mention_them() {
    let (d, _) = daemon();
    put(
        &d,
        put_req("one piece volume 1", pb::CacheScope::Store, &["P1"]),
    )
    .await;
    put(
        &d,
        put_req(
            "compare one piece and naruto",
            pb::CacheScope::Store,
            &["P1", "P2"],
        ),
    )
    .await;
    put(
        &d,
        put_req("naruto volume 3", pb::CacheScope::Store, &["P3"]),
    )
    .await;
    let mut other_store = put_req("one piece volume 1", pb::CacheScope::Store, &["P1"]);
    other_store.store_id = "comics_us".into();
    put(&d, other_store).await;

    let inv = |store: &str, ids: &[&str]| pb::InvalidateProductsRequest {
        store_id: store.into(),
        product_ids: ids.iter().map(|s| s.to_string()).collect(),
    };
    let r = d
        .invalidate_products(Request::new(inv(STORE, &["P1", "P9"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.removed, 2);
    assert!(
        hit_text(&d, lookup_req("one piece volume 1"))
            .await
            .is_none()
    );
    assert!(
        hit_text(&d, lookup_req("compare one piece and naruto"))
            .await
            .is_none()
    );
    assert!(hit_text(&d, lookup_req("naruto volume 3")).await.is_some());
    let mut us = lookup_req("one piece volume 1");
    us.store_id = "comics_us".into();
    assert!(
        hit_text(&d, us.clone()).await.is_some(),
        "other store untouched"
    );
    // Empty store = every store.
    let r = d
        .invalidate_products(Request::new(inv("", &["P1"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.removed, 1);
    assert!(hit_text(&d, us).await.is_none());
    assert_eq!(stats(&d).await.entries, 1);
}

#[tokio::test]
async fn oldest_entries_are_evicted_at_max_entries() {
    let settings = CacheSettings {
        max_entries: 3,
        ..Default::default()
    };
    let (d, _) = daemon_with(settings, hashed());
    for i in 0..5 {
        put(
            &d,
            put_req(&format!("question {i}"), pb::CacheScope::Store, &[]),
        )
        .await;
    }
    let s = stats(&d).await;
    assert_eq!((s.entries, s.evictions), (3, 2));
    for i in 0..2 {
        assert!(!lookup(&d, lookup_req(&format!("question {i}"))).await.hit);
    }
    for i in 2..5 {
        assert!(lookup(&d, lookup_req(&format!("question {i}"))).await.hit);
    }
    // Re-putting an existing key replaces it, it does not evict.
    put(&d, put_req("question 4", pb::CacheScope::Store, &[])).await;
    assert_eq!(stats(&d).await.evictions, 2);
}

#[tokio::test]
async fn invalid_requests_are_rejected() {
    let (d, _) = daemon();
    let mut bad_puts = Vec::new();
    let mut r = put_req("", pb::CacheScope::Store, &[]);
    r.text = "   ".into();
    bad_puts.push(r);
    let mut r = put_req("q", pb::CacheScope::Store, &[]);
    r.store_id.clear();
    bad_puts.push(r);
    let mut r = put_req("q", pb::CacheScope::Store, &[]);
    r.answer = None;
    bad_puts.push(r);
    bad_puts.push(put_req("q", pb::CacheScope::Unspecified, &[]));
    let mut r = put_req("q", pb::CacheScope::Store, &[]);
    r.scope = 42;
    bad_puts.push(r);
    bad_puts.push(put_req("q", pb::CacheScope::User, &[]));
    bad_puts.push(put_req("q", pb::CacheScope::Session, &[]));
    // A session answer without its user would be readable by anyone with the session id.
    let mut r = put_req("q", pb::CacheScope::Session, &[]);
    r.session_id = "s1".into();
    bad_puts.push(r);
    let mut r = put_req("q", pb::CacheScope::Store, &[]);
    r.answer.as_mut().unwrap().text = "x".repeat(64 * 1024 + 1);
    bad_puts.push(r);
    for req in bad_puts {
        let e = d.put(Request::new(req.clone())).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{req:?}: {e}");
    }
    let mut bad_lookups = vec![lookup_req(""), lookup_req("?!")];
    let mut l = lookup_req("q");
    l.store_id.clear();
    bad_lookups.push(l);
    let mut l = lookup_req("q");
    l.semantic_threshold = 1.5;
    bad_lookups.push(l);
    for req in bad_lookups {
        let e = d.lookup(Request::new(req.clone())).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{req:?}: {e}");
    }
    let e = d
        .invalidate_products(Request::new(pb::InvalidateProductsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(stats(&d).await.entries, 0);
}

/// Seed 000's question pairs with the real model: a rewording hits, another intent does not.
#[tokio::test]
async fn semantic_cache_with_the_sentence_model() {
    let dir = Config::default()
        .data
        .resolved_cache_dir()
        .join("models/all-MiniLM-L6-v2");
    let model = MiniLm::load(&dir).expect("all-MiniLM-L6-v2 (run scripts/fetch-model.sh)");
    let (d, _) = daemon_with(
        CacheSettings::default(),
        QueryEmbedder::new(Arc::new(model), 100),
    );
    put(&d, put_req("where is my order", pb::CacheScope::Store, &[])).await;
    let mut l = lookup_req("where's my order?");
    l.semantic_threshold = 0.9;
    let r = lookup(&d, l).await;
    assert!(r.hit, "similarity {}", r.similarity);
    assert_eq!(r.kind, pb::HitKind::Semantic as i32);
    assert!(
        r.similarity >= 0.9 && r.similarity < 1.0,
        "{}",
        r.similarity
    );
    let mut l = lookup_req("recommend horror manga");
    l.semantic_threshold = 0.9;
    assert!(!lookup(&d, l).await.hit);
}

#[tokio::test]
async fn grpc_round_trip_through_the_client() {
    let cfg = Config::default();
    let d = CacheDaemon::new(&cfg, hashed()).await.unwrap();
    let listener = mangaassist_server::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ServeOptions::for_tests();
    let shutdown = opts.shutdown.clone();
    let server = tokio::spawn(d.serve(listener, opts));

    let client = CacheClient::connect(&format!("http://{addr}")).unwrap();
    let deadline = Duration::from_secs(5);
    let key = client
        .put(
            put_req("best isekai manga", pb::CacheScope::Store, &["B1"]),
            deadline,
        )
        .await
        .unwrap()
        .key;
    assert!(key.contains("best isekai manga"), "{key}");
    let r = client
        .lookup(lookup_req("Best isekai manga?"), deadline)
        .await
        .unwrap();
    assert!(r.hit);
    assert_eq!(r.kind, pb::HitKind::Exact as i32);
    let r = client
        .invalidate_products(
            pb::InvalidateProductsRequest {
                store_id: STORE.into(),
                product_ids: vec!["B1".into()],
            },
            deadline,
        )
        .await
        .unwrap();
    assert_eq!(r.removed, 1);
    assert!(
        !client
            .lookup(lookup_req("best isekai manga"), deadline)
            .await
            .unwrap()
            .hit
    );
    let e = client
        .put(put_req("q", pb::CacheScope::Unspecified, &[]), deadline)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let s = client.stats(deadline).await.unwrap();
    assert_eq!((s.entries, s.hits_exact, s.misses), (0, 1, 1));

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
