//! A TCP proxy a test puts between a client and the gateway to play the network: it can cut
//! every connection that is open and refuse new ones for as long as the test wants.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use parking_lot::Mutex;
use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    /// Ends the accept loop when the proxy is dropped.
    stop: CancellationToken,
}

struct State {
    upstream: SocketAddr,
    refusing: AtomicBool,
    accepted: AtomicUsize,
    refused: AtomicUsize,
    /// Cancelled by `cut_all`, then replaced: connections accepted later get a fresh one.
    cut: Mutex<CancellationToken>,
    open: TaskTracker,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            upstream,
            refusing: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            cut: Mutex::new(CancellationToken::new()),
            open: TaskTracker::new(),
        });
        let stop = CancellationToken::new();
        state
            .open
            .spawn(accept_loop(listener, state.clone(), stop.clone()));
        Self { addr, state, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`, the page's address through the proxy.
    pub fn http_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Drops every connection open now, both ways, without a goodbye: what a client sees
    /// when its Wi-Fi goes.
    pub fn cut_all(&self) {
        let old = std::mem::take(&mut *self.state.cut.lock());
        old.cancel();
    }

    /// While on, new connections are accepted and closed at once (the client sees a reset or
    /// an empty reply, as when nothing is reachable).
    pub fn set_refusing(&self, refusing: bool) {
        self.state.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Connections forwarded so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Connections turned away so far.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut_all();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.cancelled() => return,
        };
        let Ok((client, _)) = accepted else {
            continue;
        };
        if state.refusing.load(Ordering::SeqCst) {
            state.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        state.accepted.fetch_add(1, Ordering::SeqCst);
        let cut = state.cut.lock().clone();
        let upstream = state.upstream;
        state.open.spawn(forward(client, upstream, cut));
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, cut: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        () = cut.cancelled() => {}
    }
}
