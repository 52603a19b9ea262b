//! Client-side balancing over every address a daemon's hostname resolves to. On Kubernetes a
//! daemon's Service is headless, so its name resolves to one A record per ready pod; a
//! resolver task looks the name up every `mesh.resolve_interval_ms` and adds and removes
//! endpoints of a tonic balanced channel (power of two choices over pending requests), so
//! calls spread over every ready replica and follow scale-ups, roll-outs and pods leaving.
//!
//! An IP endpoint (the local mesh's `http://127.0.0.1:50061`) keeps one plain channel: there is
//! nothing to discover.

use std::{
    collections::BTreeSet,
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use futures::future::BoxFuture;
use tonic::transport::{Channel, Endpoint, Uri, channel::Change};

use crate::ClientError;

/// Where the addresses of a daemon come from.
pub trait Resolve: Send + 'static {
    /// The addresses the daemon has now. An error or an empty answer leaves the balancer's
    /// set as it was: a DNS hiccup must not empty it.
    fn resolve(&mut self) -> BoxFuture<'_, io::Result<Vec<SocketAddr>>>;
}

/// DNS through the system resolver (`tokio::net::lookup_host`).
pub struct Dns {
    host: String,
    port: u16,
}

impl Dns {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }
}

impl Resolve for Dns {
    fn resolve(&mut self) -> BoxFuture<'_, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((self.host.as_str(), self.port))
                .await?
                .collect())
        })
    }
}

/// Addresses from a list its owner updates (a static replica list, a service registry's
/// watcher, a test), with a way to wait until the current list has reached the balancer.
#[derive(Clone)]
pub struct Listed {
    addrs: std::sync::Arc<std::sync::Mutex<Vec<SocketAddr>>>,
    asked: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl Listed {
    pub fn new(addrs: Vec<SocketAddr>) -> Self {
        Self {
            addrs: std::sync::Arc::new(std::sync::Mutex::new(addrs)),
            asked: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// Changes the list; the balancer follows at its next resolution.
    pub fn update(&self, change: impl FnOnce(&mut Vec<SocketAddr>)) {
        change(&mut self.addrs.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Waits until the list as it is now has reached the balancer: the resolver task sends
    /// an answer's changes before it asks again, so two more answers mean the current one
    /// was applied. False if that did not happen `within`.
    pub async fn applied(&self, within: Duration) -> bool {
        let mut rx = self.asked.subscribe();
        let start = *rx.borrow_and_update();
        matches!(
            tokio::time::timeout(within, rx.wait_for(|n| *n >= start + 2)).await,
            Ok(Ok(_))
        )
    }
}

impl Resolve for Listed {
    fn resolve(&mut self) -> BoxFuture<'_, io::Result<Vec<SocketAddr>>> {
        let addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.asked.send_modify(|n| *n += 1);
        Box::pin(async move { Ok(addrs) })
    }
}

/// Whether `addr` accepts a TCP connection within the connect timeout.
async fn accepts(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Endpoint settings every mesh connection shares.
pub(crate) fn tune(ep: Endpoint) -> Endpoint {
    ep.tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_while_idle(true)
}

fn bad(daemon: &'static str, endpoint: &str, message: impl ToString) -> ClientError {
    ClientError::Endpoint {
        daemon,
        endpoint: endpoint.to_string(),
        message: message.to_string(),
    }
}

/// A channel to `endpoint`: balanced over what its hostname resolves to, re-resolved every
/// `resolve_interval`, when it names a host and the interval is not zero; otherwise one lazily
/// connected channel.
pub fn mesh_channel(
    daemon: &'static str,
    endpoint: &str,
    resolve_interval: Duration,
) -> Result<Channel, ClientError> {
    let uri: Uri = endpoint.parse().map_err(|e| bad(daemon, endpoint, e))?;
    let host = uri
        .host()
        .ok_or_else(|| bad(daemon, endpoint, "no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    // `localhost` names this machine, not replicas: it often resolves to ::1 and 127.0.0.1 of
    // which the daemon listens on one, and the plain connector tries both in turn.
    if resolve_interval.is_zero()
        || host.parse::<IpAddr>().is_ok()
        || host.eq_ignore_ascii_case("localhost")
    {
        return crate::channel(daemon, endpoint);
    }
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    let resolver = Dns::new(host, port);
    balanced_channel(daemon, endpoint, resolver, resolve_interval)
}

/// A channel balanced over the addresses `resolver` gives, asked every `interval`. Requests
/// keep `endpoint`'s scheme and authority (`:authority` names the Service, not a pod).
pub fn balanced_channel(
    daemon: &'static str,
    endpoint: &str,
    mut resolver: impl Resolve,
    interval: Duration,
) -> Result<Channel, ClientError> {
    let origin: Uri = endpoint.parse().map_err(|e| bad(daemon, endpoint, e))?;
    let scheme = origin.scheme_str().unwrap_or("http").to_string();
    // Room for one full resolution's worth of changes without blocking the resolver.
    let (channel, tx) = Channel::balance_channel::<SocketAddr>(64);
    let endpoint = endpoint.to_string();
    let task = async move {
        let mut current: BTreeSet<SocketAddr> = BTreeSet::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Every clone of the channel is gone: nobody needs the addresses any more.
                () = tx.closed() => break,
                _ = tick.tick() => {}
            }
            let mut found: BTreeSet<SocketAddr> = match resolver.resolve().await {
                Ok(addrs) if !addrs.is_empty() => addrs.into_iter().collect(),
                Ok(_) => {
                    tracing::warn!(
                        daemon,
                        endpoint,
                        "resolved to no address; keeping the last set"
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!(daemon, endpoint, error = %e, "cannot resolve; keeping the last set");
                    continue;
                }
            };
            // A balanced endpoint connects lazily and stays in the set even when it cannot
            // connect, failing the calls sent to it; so an address joins only once it accepts
            // a connection (it is tried again at the next resolution).
            let new: Vec<SocketAddr> = found.difference(&current).copied().collect();
            let probes = futures::future::join_all(new.iter().map(|a| accepts(*a))).await;
            for (addr, ok) in new.iter().zip(probes) {
                if !ok {
                    tracing::debug!(daemon, %addr, "address does not accept connections yet");
                    found.remove(addr);
                }
            }
            let mut changes = Vec::new();
            for gone in current.difference(&found) {
                changes.push(Change::Remove(*gone));
            }
            for new in found.difference(&current) {
                let ep = format!("{scheme}://{new}")
                    .parse::<Uri>()
                    .map(|uri| tune(Endpoint::from(uri)).origin(origin.clone()));
                match ep {
                    Ok(ep) => changes.push(Change::Insert(*new, ep)),
                    Err(e) => {
                        tracing::warn!(daemon, addr = %new, error = %e, "bad replica address")
                    }
                }
            }
            if !changes.is_empty() {
                tracing::info!(
                    daemon,
                    endpoint,
                    replicas = found.len(),
                    added = found.difference(&current).count(),
                    removed = current.difference(&found).count(),
                    "replica set changed"
                );
                metrics::gauge!("mesh_replicas", "daemon" => daemon).set(found.len() as f64);
            }
            for change in changes {
                if tx.send(change).await.is_err() {
                    return;
                }
            }
            current = found;
        }
    };
    #[allow(
        clippy::disallowed_methods,
        reason = "ends when the last clone of its channel is dropped (tx.closed)"
    )]
    tokio::spawn(task);
    Ok(channel)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::mesh_channel;

    #[tokio::test]
    async fn ip_endpoints_and_a_zero_interval_keep_one_channel() {
        // Neither resolves anything: both are plain lazy channels, so building them cannot
        // fail or block even though nothing listens there.
        mesh_channel("intent", "http://127.0.0.1:1", Duration::from_secs(5)).unwrap();
        mesh_channel("intent", "http://[::1]:1", Duration::from_secs(5)).unwrap();
        mesh_channel("intent", "http://intent:50061", Duration::ZERO).unwrap();
        mesh_channel("intent", "http://intent:50061", Duration::from_secs(5)).unwrap();
        assert!(mesh_channel("intent", "not a uri", Duration::from_secs(5)).is_err());
    }
}
