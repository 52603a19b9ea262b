//! Fault injection as a tower layer, so every daemon rehearses the seed runbooks the same way.
//! Only MangaAssist RPCs are affected; health, reflection and /metrics keep answering.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use mangaassist_config::{FaultKind, FaultSpec};
use tower::{Layer, Service};

/// The faults in force, changeable while daemons run (`RunningMesh::faults`), so a test or
/// a rehearsal can break a dependency and then heal it without a restart.
#[derive(Clone, Default)]
pub struct FaultSwitch(Arc<parking_lot::RwLock<Arc<[FaultSpec]>>>);

impl std::fmt::Debug for FaultSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.get().iter()).finish()
    }
}

impl FaultSwitch {
    pub fn new(faults: Vec<FaultSpec>) -> Self {
        Self(Arc::new(parking_lot::RwLock::new(faults.into())))
    }

    /// Replaces every fault (an empty list heals everything).
    pub fn set(&self, faults: Vec<FaultSpec>) {
        *self.0.write() = faults.into();
        tracing::warn!(faults = ?self.get(), "injected faults changed");
    }

    pub fn get(&self) -> Arc<[FaultSpec]> {
        self.0.read().clone()
    }

    /// The fault in force for `daemon`'s `method` (`Retrieve`), if any.
    pub(crate) fn for_rpc(&self, daemon: &str, method: &str) -> Option<FaultKind> {
        self.0
            .read()
            .iter()
            .find(|f| f.matches(daemon, method))
            .map(|f| f.kind)
    }
}

#[derive(Clone)]
pub struct FaultLayer {
    daemon: &'static str,
    faults: FaultSwitch,
}

impl FaultLayer {
    pub fn new(daemon: &'static str, faults: FaultSwitch) -> Self {
        Self { daemon, faults }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = Fault<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Fault {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Fault<S> {
    inner: S,
    layer: FaultLayer,
}

/// `/mangaassist.v1.RetrievalService/Retrieve` → `Retrieve`.
pub(crate) fn mangaassist_method(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/mangaassist.v1.")?;
    rest.split_once('/').map(|(_, m)| m)
}

impl<S, B> Service<http::Request<B>> for Fault<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
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
        let fault = mangaassist_method(req.uri().path())
            .and_then(|m| self.layer.faults.for_rpc(self.layer.daemon, m));
        // Take the service that was driven to readiness, leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let daemon = self.layer.daemon;
        Box::pin(async move {
            if let Some(status) = inject(daemon, fault).await {
                return Ok(status.into_http());
            }
            inner.call(req).await
        })
    }
}

/// Plays `fault` (counted in `injected_faults_total`): a latency fault sleeps, a hang never
/// returns, an error fault that fires returns the status to answer with. Shared by the gRPC
/// layer and the in-process path so both rehearse the same failures.
pub(crate) async fn inject(
    daemon: &'static str,
    fault: Option<FaultKind>,
) -> Option<tonic::Status> {
    match fault {
        None => {}
        Some(FaultKind::Latency(d)) => {
            metrics::counter!("injected_faults_total", "daemon" => daemon, "kind" => "latency")
                .increment(1);
            tokio::time::sleep(d).await;
        }
        Some(FaultKind::Error(rate)) if rand::random::<f64>() < rate => {
            metrics::counter!("injected_faults_total", "daemon" => daemon, "kind" => "error")
                .increment(1);
            return Some(tonic::Status::unavailable(format!(
                "injected fault: {daemon} error"
            )));
        }
        Some(FaultKind::Error(_)) => {}
        Some(FaultKind::Hang) => {
            metrics::counter!("injected_faults_total", "daemon" => daemon, "kind" => "hang")
                .increment(1);
            std::future::pending::<()>().await;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::mangaassist_method;

    #[test]
    fn method_is_taken_from_mangaassist_paths_only() {
        assert_eq!(
            mangaassist_method("/mangaassist.v1.RetrievalService/Retrieve"),
            Some("Retrieve")
        );
        assert_eq!(mangaassist_method("/grpc.health.v1.Health/Check"), None);
        assert_eq!(mangaassist_method("/metrics"), None);
    }
}
