//! Bootstrap shared by every daemon: one tonic server per daemon carrying its gRPC services,
//! `grpc.health.v1`, server reflection v1 and v1alpha, plain-HTTP `/metrics` and `/healthz`
//! on the same port, fault injection, a span per RPC, and graceful shutdown; and the
//! in-process door ([`InProcess`]) through which a caller in the same process reaches a
//! daemon's handlers under the same per-RPC layers.

mod fault;
mod http_routes;
mod in_process;
mod rpc_span;
mod service_auth;
mod shutdown;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use mangaassist_config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{server::NamedService, service::Routes, transport::server::TcpIncoming};
use tower::Service;

pub use fault::{FaultLayer, FaultSwitch, parse_fault_file};
pub use in_process::InProcess;
pub use rpc_span::RpcSpanLayer;
pub use service_auth::{ServiceAuth, ServiceAuthLayer};
pub use shutdown::shutdown_signal;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("reflection setup failed: {0}")]
    Reflection(String),
    #[error("{daemon} server failed: {source}")]
    Serve {
        daemon: &'static str,
        source: tonic::transport::Error,
    },
    #[error("listener has no local address: {0}")]
    Addr(std::io::Error),
    #[error("mesh service secret: {0}")]
    ServiceSecret(#[from] mangaassist_auth::AuthError),
}

/// How a daemon runs: faults to inject, when to stop, how long to drain.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub faults: FaultSwitch,
    pub shutdown: CancellationToken,
    /// Time given to in-flight RPCs after shutdown is requested.
    pub grace: Duration,
    /// Cap on any RPC deadline.
    pub max_rpc: Duration,
    /// The mesh service secret; `None` = RPCs need no service token.
    pub service_secret: Option<Arc<[u8]>>,
}

impl ServeOptions {
    /// Options from `config`, reading (or creating) `mesh.service_secret_file` when that is
    /// where the service secret lives.
    pub fn from_config(config: &Config, shutdown: CancellationToken) -> Result<Self, ServerError> {
        let service_secret = mangaassist_auth::resolve_service_secret(
            &config.mesh.service_secret,
            &config.mesh.service_secret_file,
        )?;
        Ok(Self {
            faults: FaultSwitch::new(config.faults.clone()),
            shutdown,
            grace: Duration::from_secs(config.mesh.shutdown_grace_seconds),
            max_rpc: Duration::from_secs(config.mesh.max_rpc_seconds.max(1)),
            service_secret: service_secret.map(Into::into),
        })
    }

    /// No faults, a fresh token, short grace: for tests.
    pub fn for_tests() -> Self {
        Self {
            faults: FaultSwitch::default(),
            shutdown: CancellationToken::new(),
            grace: Duration::from_secs(2),
            max_rpc: Duration::from_secs(60),
            service_secret: None,
        }
    }

    /// These options, requiring service tokens signed with `secret`.
    pub fn with_service_secret(mut self, secret: &[u8]) -> Self {
        self.service_secret = Some(secret.into());
        self
    }
}

/// Binds a listener, naming the address in the error.
pub async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// One daemon's gRPC services, ready to serve.
pub struct Daemon {
    name: &'static str,
    routes: Routes,
    service_names: Vec<&'static str>,
    admin_methods: &'static [&'static str],
    draining: Arc<AtomicBool>,
}

impl Daemon {
    /// `name` is the daemon name used by fault rules and metric labels (`retrieval`).
    pub fn new(name: &'static str) -> Self {
        let draining = Arc::new(AtomicBool::new(false));
        let routes = Routes::from(http_routes::router(name, draining.clone()));
        Self {
            name,
            routes,
            service_names: Vec::new(),
            admin_methods: &[],
            draining,
        }
    }

    /// RPC method names (`PutPrompt`) that need an admin-scoped service token when the mesh
    /// authenticates its calls.
    pub fn admin_methods(mut self, methods: &'static [&'static str]) -> Self {
        self.admin_methods = methods;
        self
    }

    pub fn add_service<S>(mut self, svc: S) -> Self
    where
        S: Service<http::Request<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME);
        self.routes = self.routes.add_service(svc);
        self
    }

    /// Serves until `opts.shutdown` is cancelled, then reports NOT_SERVING, stops accepting,
    /// and lets in-flight RPCs finish for up to `opts.grace`.
    pub async fn serve(self, listener: TcpListener, opts: ServeOptions) -> Result<(), ServerError> {
        mangaassist_telemetry::install_metrics();
        let local = listener.local_addr().map_err(ServerError::Addr)?;
        let (reporter, health) = tonic_health::server::health_reporter();
        for name in &self.service_names {
            reporter
                .set_service_status(*name, tonic_health::ServingStatus::Serving)
                .await;
        }
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        // Advertise only this daemon's services (the descriptor set holds every daemon's),
        // plus health and both reflection versions.
        let reflection = || {
            let mut b = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(mangaassist_proto::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                )
                .with_service_name("grpc.health.v1.Health")
                .with_service_name("grpc.reflection.v1.ServerReflection")
                .with_service_name("grpc.reflection.v1alpha.ServerReflection");
            for name in &self.service_names {
                b = b.with_service_name(*name);
            }
            b
        };
        let reflection_v1 = reflection()
            .build_v1()
            .map_err(|e| ServerError::Reflection(e.to_string()))?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| ServerError::Reflection(e.to_string()))?;
        let routes = self
            .routes
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .prepare();

        let name = self.name;
        let draining = self.draining.clone();
        let shutdown = opts.shutdown.clone();
        let stop_accepting = async move {
            shutdown.cancelled().await;
            draining.store(true, Ordering::SeqCst);
            for svc in &self.service_names {
                reporter
                    .set_service_status(*svc, tonic_health::ServingStatus::NotServing)
                    .await;
            }
            reporter
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            tracing::info!(daemon = name, "draining");
        };
        let verifier = match &opts.service_secret {
            Some(secret) => Some(mangaassist_auth::ServiceVerifier::new(secret, name)?),
            None => {
                tracing::warn!(
                    daemon = name,
                    "mesh.service_secret is not set: any caller that reaches this port may call \
                     every RPC; keep it on loopback or a private network"
                );
                None
            }
        };
        let auth = ServiceAuthLayer::new(name, verifier, self.admin_methods);
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tonic::transport::Server::builder()
            .accept_http1(true)
            .timeout(opts.max_rpc)
            // Span outermost so injected faults show up inside the RPC's span and latency;
            // authentication before faults, so a refused caller never sees an injected one.
            .layer(RpcSpanLayer::new(name))
            .layer(auth)
            .layer(FaultLayer::new(name, opts.faults.clone()))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, stop_accepting);
        tracing::info!(daemon = name, addr = %local, "serving");
        let grace = opts.grace;
        let shutdown = opts.shutdown.clone();
        tokio::select! {
            r = server => r.map_err(|source| ServerError::Serve { daemon: name, source })?,
            () = async move { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(daemon = name, grace_ms = grace.as_millis() as u64, "grace period over, closing remaining connections");
            }
        }
        tracing::info!(daemon = name, "stopped");
        Ok(())
    }
}

/// Binds `addr` and returns the listener with its actual address (useful with port 0).
pub async fn bind_with_addr(addr: &str) -> Result<(TcpListener, SocketAddr), ServerError> {
    let l = bind(addr).await?;
    let a = l.local_addr().map_err(ServerError::Addr)?;
    Ok((l, a))
}
