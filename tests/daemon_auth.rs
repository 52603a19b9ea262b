//! Issue 14, item 3: with a mesh service secret the daemons serve the mesh and no one else.
//! Every attack goes straight at a daemon's gRPC port, as someone who reached the pod would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::TestMesh;
use mangaassist_auth::ServiceTokens;
use mangaassist_proto::v1 as pb;
use tonic::{Code, Request, transport::Channel};

const SECRET: &str = "test-mesh-service-secret-0123456789abcdef";

async fn mesh() -> TestMesh {
    TestMesh::start_with(&[], |c| c.mesh.service_secret = SECRET.into()).await
}

fn with_bearer<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    req.set_timeout(Duration::from_secs(5));
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req
}

async fn channel(endpoint: &str) -> Channel {
    Channel::from_shared(endpoint.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn orders_of_aiko() -> pb::GetOrdersRequest {
    pb::GetOrdersRequest {
        user_id: "u-aiko".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_refuse_calls_without_a_token_for_them_and_the_mesh_still_answers() {
    let m = mesh().await;
    let cfg = m.mesh().config.mesh.clone();
    // The gateway and precompute hold tokens: a customer still gets a model answer.
    let mut c = m.client().await;
    let a = c.ask("Recommend me a dark fantasy manga", "s-auth").await;
    assert!(!a.text().is_empty());
    assert_eq!(a.done().degradation, "full", "{:?}", a.done());

    let mut memory =
        pb::memory_service_client::MemoryServiceClient::new(channel(&cfg.memory.endpoint).await);
    let now = SystemTime::now();
    let gateway = ServiceTokens::new(SECRET.as_bytes(), "gateway").unwrap();
    // No token, a token for another daemon, a token signed with another secret, and a
    // customer's own gateway token: all UNAUTHENTICATED, before any order is read.
    let for_cache = gateway.mint("cache", now).unwrap();
    let forged = ServiceTokens::new(b"not-the-mesh-secret-but-32-bytes-long", "gateway")
        .unwrap()
        .mint("memory", now)
        .unwrap();
    let customer = m.token("u-kenji");
    for token in [None, Some(&for_cache), Some(&forged), Some(&customer)] {
        let err = memory
            .get_orders(with_bearer(orders_of_aiko(), token.map(String::as_str)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{token:?}: {err:?}");
    }
    // The right token works, and health needs none (orchestrators probe without one).
    let ok = gateway.mint("memory", now).unwrap();
    memory
        .get_orders(with_bearer(orders_of_aiko(), Some(&ok)))
        .await
        .unwrap();
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(channel(&cfg.memory.endpoint).await);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serving.status, 1, "SERVING");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_changes_need_an_admin_token_and_generation_is_bounded() {
    let m = mesh().await;
    let endpoint = m.mesh().config.mesh.generation.endpoint.clone();
    let mut generation =
        pb::generation_service_client::GenerationServiceClient::new(channel(&endpoint).await);
    let now = SystemTime::now();
    let gateway = ServiceTokens::new(SECRET.as_bytes(), "gateway")
        .unwrap()
        .mint("generation", now)
        .unwrap();
    let admin = ServiceTokens::new(SECRET.as_bytes(), "cli")
        .unwrap()
        .admin()
        .mint("generation", now)
        .unwrap();
    let rollback = || pb::RollbackPromptRequest {
        store_id: "manga_jp".into(),
        intent: pb::Intent::Greeting as i32,
    };
    // A gateway's token may generate but not replace what every customer is told.
    let err = generation
        .rollback_prompt(with_bearer(rollback(), Some(&gateway)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // An admin token reaches the RPC itself (nothing to roll back to here).
    let err = generation
        .rollback_prompt(with_bearer(rollback(), Some(&admin)))
        .await
        .unwrap_err();
    assert_ne!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_ne!(err.code(), Code::Unauthenticated, "{err:?}");

    let ask = |max_tokens| pb::GenerateRequest {
        query: "hello".into(),
        intent: pb::Intent::Greeting as i32,
        store_id: "manga_us".into(),
        max_tokens,
        ..Default::default()
    };
    // No deadline: refused, a stream without one could hold a model forever.
    let mut req = Request::new(ask(0));
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {gateway}").parse().unwrap(),
    );
    let err = generation.generate(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("deadline"), "{err:?}");
    // An answer longer than the daemon allows: refused with the cap named.
    let err = generation
        .generate(with_bearer(ask(1_000_000), Some(&gateway)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("max_request_tokens"), "{err:?}");
    // Within bounds it streams.
    let mut stream = generation
        .generate(with_bearer(ask(50), Some(&gateway)))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_announced_with_an_admin_token_and_demand_with_a_gateways() {
    let m = mesh().await;
    let endpoint = m.mesh().config.mesh.precompute.endpoint.clone();
    let mut precompute =
        pb::precompute_service_client::PrecomputeServiceClient::new(channel(&endpoint).await);
    let now = SystemTime::now();
    let gateway = ServiceTokens::new(SECRET.as_bytes(), "gateway")
        .unwrap()
        .mint("precompute", now)
        .unwrap();
    let admin = ServiceTokens::new(SECRET.as_bytes(), "cli")
        .unwrap()
        .admin()
        .mint("precompute", now)
        .unwrap();
    // A product no store sells: the call stops at the daemon's own check once let in.
    let release = || pb::ScheduleReleaseRequest {
        store_id: "manga_jp".into(),
        product_id: "B-NOT-SOLD".into(),
        release_at_ms: 1,
    };
    let err = precompute
        .schedule_release(with_bearer(release(), Some(&gateway)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = precompute
        .schedule_release(with_bearer(release(), Some(&admin)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let demand = pb::RecordDemandRequest {
        counts: vec![pb::DemandCount {
            store_id: "manga_jp".into(),
            product_id: "B-NOT-SOLD".into(),
            count: 1,
        }],
    };
    let r = precompute
        .record_demand(with_bearer(demand.clone(), Some(&gateway)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.unknown, 1);
    let err = precompute
        .record_demand(with_bearer(demand, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}
