//! A plain HTTP server for the simulated backends (OpenSearch, Bedrock) that tests, benchmarks
//! and `mangaassist-standins` run in-process.

use std::net::SocketAddr;

use axum::{Router, serve::ListenerExt as _};
use tokio::{sync::oneshot, task::JoinHandle};

/// Serves a router on a bound address until [`LocalHttpServer::stop`] (graceful: in-flight
/// responses finish) or drop (aborted at once, so a test's server never outlives it).
pub struct LocalHttpServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LocalHttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalHttpServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl LocalHttpServer {
    /// Binds `addr` (`127.0.0.1:0` for a free port) and serves `app` on a spawned task.
    pub async fn start(addr: SocketAddr, app: Router) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // Responses and stream frames are small writes: without TCP_NODELAY, Nagle's
            // algorithm holds them until the client's delayed ACK (~40 ms), which no real
            // endpoint does.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits for in-flight responses to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LocalHttpServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
