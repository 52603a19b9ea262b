//! Traces leave the mesh over OTLP/HTTP: seven `mangaassist serve` processes (one per daemon,
//! as in a deployment) export to a local OTLP receiver, and one chat message yields spans
//! from every daemon it touched under the single trace id the `done` frame reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

mod common;

use std::{
    collections::BTreeSet,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use parking_lot::Mutex;
use prost::Message;

#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
}

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    content_types: BTreeSet<String>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn export(
    State(rx): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (
    axum::http::StatusCode,
    [(&'static str, &'static str); 1],
    Vec<u8>,
) {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            [("content-type", "text/plain")],
            b"not an ExportTraceServiceRequest".to_vec(),
        );
    };
    let mut rx = rx.lock();
    if let Some(ct) = headers.get("content-type").and_then(|v| v.to_str().ok()) {
        rx.content_types.insert(ct.to_string());
    }
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                    Some(s.clone())
                }
                _ => None,
            })
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                rx.spans.push(ReceivedSpan {
                    service: service.clone(),
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name,
                });
            }
        }
    }
    (
        axum::http::StatusCode::OK,
        [("content-type", "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_exports_spans_from_every_daemon_under_one_trace() {
    let received = Arc::new(Mutex::new(Received::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp_addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/v1/traces", post(export))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let state = tempfile::tempdir().unwrap();
    let mut config = common::test_config(state.path(), &[]);
    config.gateway.auth.required = false;
    config.gateway.predict_follow_ups = true;
    common::listen_on_any_port(&mut config);
    config.validate().unwrap();

    // Each process binds port 0 and reports its port; a process starts once the peers it
    // calls have reported theirs, with a config naming them.
    let mut processes = common::Processes(Vec::new());
    let mut ports = std::collections::BTreeMap::new();
    let stages: [&[&str]; 3] = [
        &["intent", "retrieval", "memory", "cache", "generation"],
        &["precompute"],
        &["gateway"],
    ];
    for stage in stages {
        common::set_endpoints(&mut config, &ports);
        let mut reporting = Vec::new();
        for &role in stage {
            let config_path = state.path().join(format!("{role}.toml"));
            std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_mangaassist"));
            cmd.arg("--config")
                .arg(&config_path)
                .args(["serve", role])
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp_addr}"))
                .env("OTEL_BSP_SCHEDULE_DELAY", "50")
                .env_remove("OTEL_SERVICE_NAME")
                .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .env("RUST_LOG", "warn");
            let (child, reported) = common::spawn_reporting(cmd);
            processes.0.push((format!("serve {role}"), child));
            reporting.push((role, reported));
        }
        for (role, mut reported) in reporting {
            ports.extend(reported.wait_for(&[role]).await);
        }
    }
    // Readiness: every process answers /healthz on its port (no fixed sleeps).
    processes
        .wait_healthy(ports.iter().map(|(r, p)| (r.clone(), *p)))
        .await;
    let gateway_port = ports["gateway"];

    let mut ws = common::WsClient::connect(&format!("ws://127.0.0.1:{gateway_port}/ws")).await;
    let answer = ws
        .ask("do you have any dark fantasy manga in stock?", "s-otlp")
        .await;
    let trace_id = answer.done().trace_id.clone();
    assert_eq!(trace_id.len(), 32, "{:?}", answer.done());

    // Batches leave every 50 ms; wait until the trace is complete or give up.
    let want = [
        "mangaassist-gateway",
        "mangaassist-intent",
        "mangaassist-retrieval",
        "mangaassist-memory",
        "mangaassist-cache",
        "mangaassist-generation",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans: Vec<ReceivedSpan> = received
            .lock()
            .spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
        let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        // Parents end after their children, so they may arrive in a later batch.
        let parents_in = spans
            .iter()
            .filter(|s| s.service != "mangaassist-gateway" && s.name.starts_with("mangaassist.v1."))
            .all(|s| ids.contains(s.parent_span_id.as_str()));
        if (want.iter().all(|w| services.contains(w)) && parents_in) || Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert!(
        services.len() >= 5 && want.iter().all(|w| services.contains(w)),
        "services in trace {trace_id}: {services:?}; spans: {:#?}",
        spans
            .iter()
            .map(|s| (&s.service, &s.name))
            .collect::<Vec<_>>()
    );
    // Every daemon's server span hangs off a span the gateway exported in the same trace:
    // the W3C context crossed each process boundary.
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    for s in spans
        .iter()
        .filter(|s| s.service != "mangaassist-gateway" && s.name.starts_with("mangaassist.v1."))
    {
        assert!(
            ids.contains(s.parent_span_id.as_str()),
            "{} span {} has parent {} outside the trace",
            s.service,
            s.name,
            s.parent_span_id
        );
    }
    let cts = received.lock().content_types.clone();
    assert!(cts.iter().all(|c| c == "application/x-protobuf"), "{cts:?}");
}
