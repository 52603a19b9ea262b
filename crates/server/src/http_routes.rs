//! Plain-HTTP endpoints multiplexed on the gRPC port (HTTP/1.1 is accepted beside h2c).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Router, http::StatusCode, routing::get};

pub fn router(daemon: &'static str, draining: Arc<AtomicBool>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    mangaassist_telemetry::render_metrics(),
                )
            }),
        )
        .route(
            "/healthz",
            get(move || async move {
                if draining.load(Ordering::SeqCst) {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("{daemon} draining\n"),
                    )
                } else {
                    (StatusCode::OK, format!("{daemon} ok\n"))
                }
            }),
        )
}
