//! Service authentication as a tower layer: with a mesh service secret, every call except
//! health (gRPC `grpc.health.v1` and HTTP `/healthz`, which orchestrators probe without
//! credentials), reflection (the public schema) and `/metrics` must carry a service token minted for this daemon, and the
//! daemon's admin RPCs must carry one scoped `admin`.
//!
//! The check runs before the request body is read and before fault injection, so a caller
//! without a token learns nothing but `UNAUTHENTICATED` and costs one HMAC.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::SystemTime,
};

use futures::future::{BoxFuture, Either};
use mangaassist_auth::ServiceVerifier;
use tower::{Layer, Service};

#[derive(Clone)]
pub struct ServiceAuthLayer {
    daemon: &'static str,
    /// `None`: the mesh has no service secret and every call passes.
    verifier: Option<Arc<ServiceVerifier>>,
    /// Method names (`PutPrompt`) that need the admin scope.
    admin_methods: &'static [&'static str],
}

impl ServiceAuthLayer {
    pub fn new(
        daemon: &'static str,
        verifier: Option<ServiceVerifier>,
        admin_methods: &'static [&'static str],
    ) -> Self {
        Self {
            daemon,
            verifier: verifier.map(Arc::new),
            admin_methods,
        }
    }

    /// `Ok` when the request may proceed, else the status to answer with.
    fn check<B>(&self, req: &http::Request<B>) -> Result<(), tonic::Status> {
        let path = req.uri().path();
        let Some(verifier) = &self.verifier else {
            return Ok(());
        };
        if is_open(path) {
            return Ok(());
        }
        let header = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let caller = verifier
            .verify(header, SystemTime::now())
            .map_err(|e| {
                metrics::counter!("service_auth_refused_total", "daemon" => self.daemon, "reason" => e.code()).increment(1);
                tonic::Status::unauthenticated(format!(
                    "{} requires a service token for `{}` ({}): {e}",
                    self.daemon,
                    self.daemon,
                    e.code()
                ))
            })?;
        let method = path.rsplit_once('/').map_or("", |(_, m)| m);
        if !caller.admin && self.admin_methods.contains(&method) {
            metrics::counter!("service_auth_refused_total", "daemon" => self.daemon, "reason" => "not_admin").increment(1);
            return Err(tonic::Status::permission_denied(format!(
                "{method} changes how {} behaves for every customer and needs a token scoped \
                 `admin` (mangaassist token --service {} --admin); {} holds none",
                self.daemon, self.daemon, caller.caller
            )));
        }
        Ok(())
    }
}

/// Paths served without a token. Reflection describes only the schema, which is public in the
/// repository's `proto/`; leaving it open lets grpcurl resolve `grpc.health.v1.Health/Check`
/// without credentials, as orchestrators and on-call probes need.
fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
        || path == "/healthz"
        || path == "/metrics"
}

impl<S> Layer<S> for ServiceAuthLayer {
    type Service = ServiceAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServiceAuth {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ServiceAuthLayer`] wraps around a daemon.
#[derive(Clone)]
pub struct ServiceAuth<S> {
    inner: S,
    layer: ServiceAuthLayer,
}

impl<S, B> Service<http::Request<B>> for ServiceAuth<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<
        BoxFuture<'static, Result<Self::Response, Self::Error>>,
        std::future::Ready<Result<Self::Response, Self::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match self.layer.check(&req) {
            Ok(()) => Either::Left(Box::pin(self.inner.call(req))),
            Err(status) => Either::Right(std::future::ready(Ok(status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_open;

    #[test]
    fn only_health_reflection_and_metrics_are_open() {
        assert!(is_open("/grpc.health.v1.Health/Check"));
        assert!(is_open("/grpc.health.v1.Health/Watch"));
        assert!(is_open("/healthz"));
        assert!(is_open("/metrics"));
        assert!(!is_open("/mangaassist.v1.MemoryService/GetOrders"));
        assert!(is_open(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(is_open(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_open("/grpc.health.v1.Healthy/Check"));
        assert!(!is_open(
            "/healthz/../mangaassist.v1.MemoryService/GetOrders"
        ));
    }
}
