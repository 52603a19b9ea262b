//! The gateway of `mangaassist up` calls the daemons of its process in process: no request
//! reaches their gRPC ports, yet injected faults, deadlines, breakers and the daemons' RPC
//! metrics behave as over gRPC. Only in-process calls in this binary (the metrics registry is
//! the process's), except where a test makes its one gRPC call on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Calls, TestMesh};
use mangaassist::mesh::Role;

async fn daemon_metrics(m: &TestMesh, role: Role) -> String {
    reqwest::get(format!("http://{}/metrics", m.mesh().addrs[&role]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the series whose line starts with `series`, 0 when absent.
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

fn grpc_calls(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("rpc_server_requests_total{") && l.contains(r#"transport="grpc""#)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_without_a_call_on_any_daemon_port() {
    let m = TestMesh::start_calling(Calls::InProcess, &[]).await;
    let mut c = m.client().await;
    let a = c
        .ask("Do you have Attack on Titan volume 3 in stock?", "s-local")
        .await;
    let done = a.done();
    assert_eq!(done.degradation, "full", "{done:?}");
    assert!(!a.text().is_empty());

    let metrics = daemon_metrics(&m, Role::Intent).await;
    // Every stage of the answer reached its daemon, which counted it as usual…
    for (daemon, method) in [
        ("intent", "Classify"),
        ("retrieval", "Retrieve"),
        ("memory", "GetHistory"),
        ("cache", "Lookup"),
        ("generation", "Generate"),
    ] {
        let series = format!(
            r#"rpc_server_requests_total{{daemon="{daemon}",method="{method}",grpc_status="0",transport="in_process"}}"#
        );
        assert!(value(&metrics, &series) >= 1.0, "no {series} in\n{metrics}");
    }
    // …and not one of them came through a gRPC port.
    assert_eq!(grpc_calls(&metrics), Vec::<&str>::new());

    // The ports still serve outside callers, and that shows as `transport="grpc"`.
    let intent = mangaassist_client::IntentClient::connect(&format!(
        "http://{}",
        m.mesh().addrs[&Role::Intent]
    ))
    .unwrap();
    intent
        .classify(
            mangaassist_proto::v1::ClassifyRequest {
                text: "hello".into(),
                ..Default::default()
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let metrics = daemon_metrics(&m, Role::Intent).await;
    assert_eq!(
        value(
            &metrics,
            r#"rpc_server_requests_total{daemon="intent",method="Classify",grpc_status="0",transport="grpc"}"#
        ),
        1.0,
        "{metrics}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_daemon_in_process_misses_its_deadline_and_opens_its_breaker() {
    let m = TestMesh::start_with(&[], |c| {
        common::set_calls(c, Calls::InProcess);
        c.gateway.breakers.failure_threshold = 2;
        c.gateway.breakers.open_ms = 60_000;
        c.gateway.deadlines.retrieval_ms = 200;
    })
    .await;
    let retrieval_ms = m.mesh().config.gateway.deadlines.retrieval_ms;
    m.mesh().faults.set(vec!["retrieval=hang".parse().unwrap()]);
    let mut c = m.client().await;
    for i in 0..2 {
        let a = c
            .ask(&format!("Recommend a dark fantasy manga {i}"), "s-hang")
            .await;
        let done = a.done();
        assert_eq!(done.degradation, "no_rag", "{done:?}");
        let stage = done.stage("retrieval").unwrap();
        assert_eq!(stage.outcome, "deadline", "{done:?}");
        // The hang ended at the deadline (generous ε for 2 shared cores), not later.
        assert!(
            stage.duration_ms < (retrieval_ms + 1_000) as f64,
            "{done:?}"
        );
    }
    let a = c.ask("Recommend a horror manga", "s-hang").await;
    assert_eq!(
        a.done().stage("retrieval").unwrap().outcome,
        "circuit_open",
        "{:?}",
        a.done()
    );
    // The fault was played by the daemon's own fault layer, in process.
    let metrics = daemon_metrics(&m, Role::Retrieval).await;
    assert!(
        value(
            &metrics,
            r#"injected_faults_total{daemon="retrieval",kind="hang"}"#
        ) >= 2.0,
        "{metrics}"
    );
    assert!(
        grpc_calls(&metrics)
            .iter()
            .all(|l| !l.contains(r#"daemon="retrieval""#)),
        "{metrics}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_fault_in_process_degrades_like_over_grpc() {
    let m = TestMesh::start_calling(Calls::InProcess, &["generation=error:1.0"]).await;
    let mut c = m.client().await;
    let a = c.ask("Where is my order?", "s-err").await;
    let done = a.done();
    assert_eq!(done.degradation, "canned", "{done:?}");
    let metrics = daemon_metrics(&m, Role::Generation).await;
    assert!(
        value(
            &metrics,
            r#"rpc_server_requests_total{daemon="generation",method="Generate",grpc_status="14",transport="in_process"}"#
        ) >= 1.0,
        "{metrics}"
    );
    m.stop().await;
}

/// `serve gateway intent`: a gateway with one daemon beside it calls that one in process and
/// the others (absent here) over gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_beside_one_daemon_calls_that_one_in_process() {
    common::init_telemetry();
    let state = tempfile::tempdir().unwrap();
    let mut config = common::test_config(state.path(), &[]);
    // The absent daemons' endpoints: a port nobody listens on, so their calls fail at once.
    let closed = {
        let (l, addr) = mangaassist_server::bind_with_addr("127.0.0.1:0")
            .await
            .unwrap();
        drop(l);
        format!("http://{addr}")
    };
    for (_, d) in config.mesh.daemons_mut() {
        d.endpoint = closed.clone();
    }
    let mesh = mangaassist::mesh::start(config, &[Role::Gateway, Role::Intent])
        .await
        .unwrap();
    let ticket = mangaassist_gateway::issue_ticket(&mesh.config, "u-demo").unwrap();
    let mut c =
        common::WsClient::connect(&format!("{}?token={ticket}", mesh.ws_url().unwrap())).await;
    let a = c.ask("Where is my order?", "s-beside").await;
    let done = a.done();
    assert_eq!(done.intent, "order_status", "{done:?}");
    assert_eq!(done.stage("intent").unwrap().outcome, "ok", "{done:?}");
    // Generation is absent: the canned answer, as with a dead generation daemon.
    assert_eq!(done.degradation, "canned", "{done:?}");
    let metrics = reqwest::get(format!("http://{}/metrics", mesh.addrs[&Role::Intent]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        value(
            &metrics,
            r#"rpc_server_requests_total{daemon="intent",method="Classify",grpc_status="0",transport="in_process"}"#
        ) >= 1.0,
        "{metrics}"
    );
    tokio::time::timeout(Duration::from_secs(20), mesh.stop())
        .await
        .expect("stops")
        .unwrap();
}
