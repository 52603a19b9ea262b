//! The mesh under rehearsal: every daemon, two gateway slots and Redis, each its own process
//! on its own loopback port, started, killed and restarted the way an orchestrator would.
//! Faults that live inside a daemon (hang, error, slow) go through each daemon's
//! `mesh.fault_file`, so the daemon that fails is the real process the gateway calls.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use mangaassist_bench::spike::procs::{self, Proc};

use crate::ChaosError;

pub use mangaassist_config::DAEMONS;

/// Where everything listens and what every process is told.
pub struct Layout {
    pub exe: PathBuf,
    pub logs: PathBuf,
    pub state: PathBuf,
    pub daemon_ports: BTreeMap<&'static str, u16>,
    /// (public, internal) of each gateway slot.
    pub gateway_ports: [(u16, u16); 2],
    pub redis_port: u16,
    pub redis_bin: String,
    /// Environment every mesh process gets.
    pub env: Vec<(String, String)>,
    /// The memory daemon's redb file.
    pub memory_file: PathBuf,
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn env(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

pub struct Mesh {
    pub layout: Layout,
    daemons: BTreeMap<&'static str, Proc>,
    gateways: [Option<Proc>; 2],
    redis: Option<Proc>,
    starts: BTreeMap<String, u32>,
    pub ready_timeout: Duration,
}

impl Mesh {
    pub fn new(layout: Layout, ready_timeout: Duration) -> Self {
        Self {
            layout,
            daemons: BTreeMap::new(),
            gateways: [None, None],
            redis: None,
            starts: BTreeMap::new(),
            ready_timeout,
        }
    }

    fn log(&mut self, name: &str) -> PathBuf {
        let n = self.starts.entry(name.to_string()).or_default();
        *n += 1;
        self.layout.logs.join(format!("{name}-{n}.log"))
    }

    pub fn fault_file(&self, daemon: &str) -> PathBuf {
        self.layout.state.join(daemon).join("faults")
    }

    /// Puts `action` (`hang`, `error:1.0`, `latency:300ms`) in force on `daemon`'s RPCs; an
    /// empty action heals it. The daemon re-reads the file within 200 ms.
    pub fn set_fault(&self, daemon: &str, action: &str) -> Result<(), ChaosError> {
        let text = if action.is_empty() {
            String::new()
        } else {
            format!("{daemon}={action}\n")
        };
        let path = self.fault_file(daemon);
        std::fs::write(&path, text).map_err(|e| ChaosError::Io(path.clone(), e))
    }

    pub async fn start_redis(&mut self) -> Result<(), ChaosError> {
        let port = self.layout.redis_port.to_string();
        let dir = self.layout.state.join("redis");
        std::fs::create_dir_all(&dir).map_err(|e| ChaosError::Io(dir.clone(), e))?;
        let log = self.log("redis");
        let dir_s = dir.display().to_string();
        let (p, _) = Proc::spawn(
            "redis",
            Path::new(&self.layout.redis_bin),
            &[
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &dir_s,
            ],
            &[],
            log,
            false,
        )
        .map_err(|e| {
            ChaosError::Start(format!(
                "{e} (the rehearsal runs the Redis backends: install redis-server, e.g. apt-get install redis-server, or set REDIS_SERVER)"
            ))
        })?;
        let p = self.redis.insert(p);
        let deadline = Instant::now() + self.ready_timeout;
        while !redis_ping(self.layout.redis_port).await {
            if let Some(status) = p.exited() {
                return Err(ChaosError::Start(p.died(status).to_string()));
            }
            if Instant::now() > deadline {
                return Err(ChaosError::Start("redis-server never answered PING".into()));
            }
            // The interval between two readiness polls.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    pub async fn kill_redis(&mut self) {
        if let Some(mut p) = self.redis.take() {
            p.stop("KILL", Duration::from_secs(5)).await;
        }
    }

    fn daemon_env(&self, daemon: &str) -> Vec<(String, String)> {
        let mut e = self.layout.env.clone();
        e.push(env(
            "MANGAASSIST_DATA__STATE_DIR",
            self.layout.state.join(daemon).display(),
        ));
        e.push(env(
            "MANGAASSIST_MESH__FAULT_FILE",
            self.fault_file(daemon).display(),
        ));
        e.push(env(
            "MANGAASSIST_MEMORY__PATH",
            self.layout.memory_file.display(),
        ));
        // A daemon process never serves a gateway; its ports only need to be free.
        e.push(env("MANGAASSIST_GATEWAY__LISTEN", "127.0.0.1:0"));
        e.push(env("MANGAASSIST_GATEWAY__INTERNAL_LISTEN", "127.0.0.1:0"));
        e
    }

    /// Starts `daemon` and waits until it answers `/healthz`.
    pub async fn start_daemon(&mut self, daemon: &'static str) -> Result<(), ChaosError> {
        self.spawn_daemon(daemon)?;
        self.wait_daemon(daemon, self.ready_timeout).await
    }

    pub fn spawn_daemon(&mut self, daemon: &'static str) -> Result<(), ChaosError> {
        let dir = self.layout.state.join(daemon);
        std::fs::create_dir_all(&dir).map_err(|e| ChaosError::Io(dir.clone(), e))?;
        let env = self.daemon_env(daemon);
        let log = self.log(daemon);
        let (p, _) = Proc::spawn(
            daemon,
            &self.layout.exe,
            &["serve", daemon],
            &env,
            log,
            false,
        )
        .map_err(|e| ChaosError::Start(e.to_string()))?;
        self.daemons.insert(daemon, p);
        Ok(())
    }

    /// Waits until `daemon` answers `/healthz`; an exit is an error with its log's tail.
    pub async fn wait_daemon(
        &mut self,
        daemon: &'static str,
        timeout: Duration,
    ) -> Result<(), ChaosError> {
        let a = addr(self.layout.daemon_ports[daemon]);
        let p = self
            .daemons
            .get_mut(daemon)
            .ok_or_else(|| ChaosError::Start(format!("{daemon} is not running")))?;
        procs::wait_healthy(p, &[a], timeout)
            .await
            .map_err(|e| ChaosError::Start(e.to_string()))
    }

    /// Whether `daemon`'s process has exited.
    pub fn daemon_exited(&mut self, daemon: &str) -> bool {
        self.daemons
            .get_mut(daemon)
            .is_none_or(|p| p.exited().is_some())
    }

    /// SIGKILL: no drain, no goodbye, as an OOM kill or a lost node.
    pub async fn kill_daemon(&mut self, daemon: &str) {
        if let Some(mut p) = self.daemons.remove(daemon) {
            p.stop("KILL", Duration::from_secs(5)).await;
        }
    }

    pub fn gateway_urls(&self) -> Vec<String> {
        self.layout
            .gateway_ports
            .iter()
            .map(|(p, _)| format!("ws://{}/ws", addr(*p)))
            .collect()
    }

    pub async fn start_gateway(&mut self, slot: usize) -> Result<(), ChaosError> {
        let (public, internal) = self.layout.gateway_ports[slot];
        let mut vars = self.layout.env.clone();
        vars.push(env(
            "MANGAASSIST_DATA__STATE_DIR",
            self.layout.state.join(format!("gateway-{slot}")).display(),
        ));
        vars.push(env("MANGAASSIST_GATEWAY__LISTEN", addr(public)));
        vars.push(env("MANGAASSIST_GATEWAY__INTERNAL_LISTEN", addr(internal)));
        let name = format!("gateway-{slot}");
        let log = self.log(&name);
        let (p, _) = Proc::spawn(
            &name,
            &self.layout.exe,
            &["serve", "gateway"],
            &vars,
            log,
            false,
        )
        .map_err(|e| ChaosError::Start(e.to_string()))?;
        let p = self.gateways[slot].insert(p);
        procs::wait_healthy(p, &[addr(public)], self.ready_timeout)
            .await
            .map_err(|e| ChaosError::Start(e.to_string()))
    }

    /// SIGTERM, then waits for the drain (answers in flight finish, clients get 1012).
    pub async fn stop_gateway(&mut self, slot: usize, grace: Duration) -> Option<String> {
        match self.gateways[slot].take() {
            Some(mut p) => p.stop("TERM", grace).await,
            None => None,
        }
    }

    /// The circuit states the gateway in `slot` reports (`GET /breakers`), by dependency.
    pub async fn breakers(&self, slot: usize) -> Result<Vec<(String, String)>, String> {
        let (_, internal) = self.layout.gateway_ports[slot];
        let body = http_get(addr(internal), "/breakers").await?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("/breakers is not JSON: {e}"))?;
        let list = v
            .as_array()
            .cloned()
            .or_else(|| v.get("breakers").and_then(|b| b.as_array()).cloned())
            .ok_or_else(|| format!("/breakers has no list: {body}"))?;
        Ok(list
            .iter()
            .map(|b| {
                (
                    b.get("dependency")
                        .and_then(|d| d.as_str())
                        .unwrap_or("?")
                        .to_string(),
                    b.get("state")
                        .and_then(|d| d.as_str())
                        .unwrap_or("?")
                        .to_string(),
                )
            })
            .collect())
    }

    /// Stops everything: gateways first (they drain), then the daemons, then Redis.
    pub async fn stop(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        for slot in 0..2 {
            if let Some(n) = self.stop_gateway(slot, Duration::from_secs(20)).await {
                notes.push(n);
            }
        }
        let names: Vec<&'static str> = self.daemons.keys().copied().collect();
        for d in names {
            if let Some(mut p) = self.daemons.remove(d)
                && let Some(n) = p.stop("TERM", Duration::from_secs(20)).await
            {
                notes.push(n);
            }
        }
        self.kill_redis().await;
        notes
    }

    /// (name, pid) of every mesh process now (Redis included).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.daemons
            .values()
            .chain(self.gateways.iter().flatten())
            .chain(self.redis.iter())
            .map(|p| (p.name.clone(), p.pid))
            .collect()
    }
}

/// `GET path` over HTTP/1.1 with `Connection: close`; the body of a 200.
pub async fn http_get(a: SocketAddr, path: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(a)
            .await
            .map_err(|e| format!("cannot reach {a}: {e}"))?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| "no HTTP header end".to_string())?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!(
                "GET {path}: {}",
                head.lines().next().unwrap_or_default()
            ));
        }
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return Ok(dechunk(body));
        }
        Ok(body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(3), fetch)
        .await
        .map_err(|_| format!("GET {path} on {a} timed out"))?
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

async fn redis_ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(addr(port)).await.ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"+PONG"))
    };
    tokio::time::timeout(Duration::from_secs(1), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::dechunk;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
