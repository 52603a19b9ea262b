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

    /// Re-reads `path` every `every` until `stop` and puts `base` plus the file's faults in
    /// force whenever the file changes (a missing or empty file = `base` only). A file that
    /// does not parse is logged with the line at fault and changes nothing, so a typo during
    /// a rehearsal never heals or breaks a daemon by accident.
    pub fn follow_file(
        &self,
        base: Vec<FaultSpec>,
        path: std::path::PathBuf,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let switch = self.clone();
        #[allow(
            clippy::disallowed_methods,
            reason = "reads one small file per tick and holds nothing shutdown must drain; it ends with `stop`"
        )]
        tokio::spawn(async move {
            let mut last: Option<String> = None;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let text = match tokio::fs::read_to_string(&path).await {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "cannot read mesh.fault_file");
                        continue;
                    }
                };
                if last.as_deref() == Some(text.as_str()) {
                    continue;
                }
                match parse_fault_file(&text) {
                    Ok(extra) => {
                        let mut faults = base.clone();
                        faults.extend(extra);
                        switch.set(faults);
                    }
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "mesh.fault_file ignored");
                    }
                }
                last = Some(text);
            }
        })
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

/// The faults of a fault file: one spec per line (`retrieval=hang`), blank lines and `#`
/// comments skipped; the first bad line is named in the error.
pub fn parse_fault_file(text: &str) -> Result<Vec<FaultSpec>, String> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i, l.split('#').next().unwrap_or_default().trim()))
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| l.parse().map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
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
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::{FaultSwitch, mangaassist_method, parse_fault_file};
    use mangaassist_config::FaultKind;

    #[test]
    fn fault_files_parse_with_comments_and_name_the_bad_line() {
        let f = parse_fault_file("# rehearsal\n\nretrieval=hang\nintent=error:1 # all\n").unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].kind, FaultKind::Error(1.0));
        assert!(parse_fault_file("").unwrap().is_empty());
        let e = parse_fault_file("retrieval=hang\nretrieval=explode\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
    }

    #[tokio::test]
    async fn a_followed_file_breaks_and_heals() {
        let dir = std::env::temp_dir().join(format!("fault-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("faults");
        let switch = FaultSwitch::default();
        let stop = tokio_util::sync::CancellationToken::new();
        let base: Vec<mangaassist_config::FaultSpec> = vec!["cache=latency:1ms".parse().unwrap()];
        let task = switch.follow_file(base, path.clone(), Duration::from_millis(5), stop.clone());
        async fn until(switch: &FaultSwitch, want: usize) {
            while switch.get().len() != want {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        until(&switch, 1).await;
        std::fs::write(&path, "retrieval=hang\n").unwrap();
        until(&switch, 2).await;
        assert_eq!(
            switch.for_rpc("retrieval", "Retrieve"),
            Some(FaultKind::Hang)
        );
        std::fs::write(&path, "").unwrap();
        until(&switch, 1).await;
        assert_eq!(switch.for_rpc("retrieval", "Retrieve"), None);
        stop.cancel();
        task.await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
