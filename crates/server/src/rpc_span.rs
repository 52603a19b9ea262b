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
        let span = tracing::info_span!(
            "rpc",
            otel.name = %req.uri().path().trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = %method,
            daemon,
            grpc.status = tracing::field::Empty,
        );
        mangaassist_telemetry::set_remote_parent(&span, req.headers());
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
                tracing::Span::current().record("grpc.status", status.as_str());
                let ms = started.elapsed().as_secs_f64() * 1e3;
                metrics::histogram!("rpc_server_latency_ms", "daemon" => daemon, "method" => method.clone()).record(ms);
                metrics::counter!("rpc_server_requests_total", "daemon" => daemon, "method" => method, "grpc_status" => status).increment(1);
                result
            }
            .instrument(span),
        )
    }
}
