//! The gateway's own HTTP accept loop. `axum::serve` sets no timer on hyper, so a client can
//! take forever to send its headers or sit on a keep-alive connection (slowloris), it caps no
//! connections, and a socket write can wait forever on a client that stopped reading. Here
//! every connection holds one of `gateway.limits.max_connections` permits, must send each
//! request header within `gateway.limits.header_read_timeout_ms` (which also bounds idle
//! keep-alive), every write, WebSocket and SSE alike, fails after
//! `gateway.stream.write_timeout_ms` without progress, and the kernel holds at most
//! `gateway.stream.send_buffer_bytes` for a client that does not read.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Sleep,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListenerLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub write_timeout: Duration,
    /// SO_SNDBUF of each accepted socket; 0 = the kernel's autotuning.
    pub send_buffer_bytes: usize,
}

/// Accepts until `shutdown`, then lets each connection finish its response in flight
/// (WebSockets have left hyper by then and drain on their own). Connection tasks go on
/// `connections` so the caller can wait for them.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ListenerLimits,
    shutdown: CancellationToken,
    connections: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let tcp = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: the listener itself is fine,
                    // back off a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("http_connections_refused_total", "reason" => "max_connections")
                .increment(1);
            drop(tcp);
            continue;
        };
        // Small frames must leave at once (Nagle + delayed ACK costs ~40 ms).
        let _ = tcp.set_nodelay(true);
        if limits.send_buffer_bytes > 0 {
            let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(limits.send_buffer_bytes);
        }
        let io = TokioIo::new(GuardedIo::new(tcp, limits.write_timeout, permit));
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(io, service).with_upgrades();
            futures::pin_mut!(conn);
            let r = tokio::select! {
                r = conn.as_mut() => r,
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                if e.is_timeout() {
                    metrics::counter!("http_connections_closed_total", "reason" => "header_timeout")
                        .increment(1);
                }
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// A TCP stream that holds its connection permit and fails a write that made no progress for
/// `write_timeout`, so a client that stops reading cannot keep a writer waiting forever.
pub(crate) struct GuardedIo<T> {
    tcp: T,
    write_timeout: Duration,
    /// Armed while a write is pending; cleared by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

impl<T> GuardedIo<T> {
    fn new(tcp: T, write_timeout: Duration, permit: OwnedSemaphorePermit) -> Self {
        Self {
            tcp,
            write_timeout,
            stalled: None,
            _permit: permit,
        }
    }

    /// Called when the socket said `Pending`: arms the stall timer on first use and fails
    /// once it runs out.
    fn stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.write_timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                metrics::counter!("http_connections_closed_total", "reason" => "write_timeout")
                    .increment(1);
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client took no data for the write timeout",
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn guard<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => self.stall(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.guard(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.guard(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.tcp).poll_flush(cx);
        this.guard(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.tcp).poll_shutdown(cx);
        this.guard(cx, r)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn permit() -> OwnedSemaphorePermit {
        Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap()
    }

    /// A peer that stops reading fails the write once the timeout passes without progress;
    /// one that reads, however slowly, never does. Virtual time: nothing here waits.
    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_takes_fails_after_the_timeout() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut io = GuardedIo::new(ours, Duration::from_secs(5), permit());
        io.write_all(&[1; 64]).await.unwrap();
        let e = io.write_all(&[2; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        let (ours, mut slow) = tokio::io::duplex(64);
        let mut io = GuardedIo::new(ours, Duration::from_secs(5), permit());
        let reader = async move {
            let mut buf = [0; 16];
            let mut got = 0;
            while got < 1024 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                got += slow.read(&mut buf).await.unwrap();
            }
        };
        let (written, ()) = tokio::join!(io.write_all(&[3; 1024]), reader);
        written.unwrap();
        // The first peer stayed connected throughout: it just never read.
        assert_eq!(theirs.read(&mut [0; 64]).await.unwrap(), 64);
    }
}
