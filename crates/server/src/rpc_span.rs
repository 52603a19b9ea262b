//! A span per MangaAssist RPC, parented on the caller's W3C trace context, plus request and
//! latency metrics labelled by daemon and method.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::fault::mangaassist_method;

#[derive(Clone, Copy)]
pub struct RpcSpanLayer {
    daemon: &'static str,
}

impl RpcSpanLayer {
    pub fn new(daemon: &'static str) -> Self {
        Self { daemon }
    }
}

impl<S> Layer<S> for RpcSpanLayer {
    type Service = RpcSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcSpan {
            inner,
            daemon: self.daemon,
        }
    }
}

#[derive(Clone)]
pub struct RpcSpan<S> {
    inner: S,
    daemon: &'static str,
}

impl<S, B, ResB> Service<http::Request<B>> for RpcSpan<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(method) = mangaassist_method(req.uri().path()).map(str::to_string) else {
            return Box::pin(inner.call(req));
        };
        let daemon = self.daemon;
        let span = rpc_span(daemon, req.uri().path(), &method, req.headers());
        let started = Instant::now();
        Box::pin(
            async move {
                let result = inner.call(req).await;
                let status = match &result {
                    Ok(resp) => resp
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0")
                        .to_string(),
                    Err(_) => "transport".to_string(),
                };
                record(daemon, method, status, started, Transport::Grpc);
                result
            }
            .instrument(span),
        )
    }
}

/// How an RPC reached the daemon: the `transport` label of `rpc_server_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Grpc,
    InProcess,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::InProcess => "in_process",
        }
    }
}

/// The span of one RPC of `daemon` at `path` (`/mangaassist.v1.RetrievalService/Retrieve`),
/// parented on the W3C trace context in `headers`.
pub(crate) fn rpc_span(
    daemon: &'static str,
    path: &str,
    method: &str,
    headers: &http::HeaderMap,
) -> tracing::Span {
    let span = tracing::info_span!(
        "rpc",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = %method,
        daemon,
        grpc.status = tracing::field::Empty,
    );
    mangaassist_telemetry::set_remote_parent(&span, headers);
    span
}

/// Records the outcome of an RPC on the current span and in the latency and request metrics.
pub(crate) fn record(
    daemon: &'static str,
    method: String,
    status: String,
    started: Instant,
    transport: Transport,
) {
    tracing::Span::current().record("grpc.status", status.as_str());
    let ms = started.elapsed().as_secs_f64() * 1e3;
    metrics::histogram!("rpc_server_latency_ms", "daemon" => daemon, "method" => method.clone())
        .record(ms);
    metrics::counter!("rpc_server_requests_total", "daemon" => daemon, "method" => method, "grpc_status" => status, "transport" => transport.label()).increment(1);
}
