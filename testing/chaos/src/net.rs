//! Real network faults on the path between the gateway and one daemon: the rehearsal runs in
//! its own network (and mount) namespace, where `lo` belongs to it alone; nftables drops
//! packets to and from the daemon's port (5 % of them, or all), and the proxy every daemon is
//! reached through adds jitter. The host's network is never touched; the namespace and
//! everything in it end with the run.

use std::process::{Command, ExitStatus, Stdio};

/// Set in the re-executed run, inside the private namespace.
// Not `MANGAASSIST_…`: those are configuration, and an unknown one stops start-up.
const INSIDE: &str = "CHAOS_PRIVATE_NAMESPACE";

/// Network faults need root (namespaces and `tc`); without it they are skipped, with why.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Whether this process is the re-executed run inside its private namespace.
pub fn inside_private_namespace() -> bool {
    std::env::var_os(INSIDE).is_some()
}

/// As root, runs this same command again inside fresh network and mount namespaces
/// (`unshare --net --mount`) and returns its exit status; `None` when this process should
/// do the run itself (already inside, not root, or `unshare` is missing: then the network
/// and disk faults are skipped and say so).
pub fn reexec_in_private_namespace() -> Option<std::io::Result<ExitStatus>> {
    if inside_private_namespace() || !is_root() || !has("unshare") || !has("nft") {
        return None;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return Some(Err(e)),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    Some(
        Command::new("unshare")
            .args(["--net", "--mount", "--"])
            .arg(exe)
            .args(args)
            .env(INSIDE, "1")
            .status(),
    )
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One of the network faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetFault {
    /// 5 % of packets dropped (nftables, in the kernel).
    Loss,
    /// 50 ms ± 20 ms added to every segment (the rehearsal's proxy).
    Jitter,
    /// Every packet dropped (nftables): the daemon is unreachable, connections hang.
    Partition,
}

impl NetFault {
    pub fn label(self) -> &'static str {
        match self {
            NetFault::Loss => "5% packet loss",
            NetFault::Jitter => "50±20 ms jitter",
            NetFault::Partition => "partition",
        }
    }
}

/// The faults of the path between the gateway and each daemon. Loss and partitions are real
/// packet drops by the kernel: an nftables `output` chain of the namespace drops a random 5 %
/// of, or every, packet to and from a daemon's port (this kernel has no `sch_netem`, which
/// rules out `tc netem`). Jitter is added by the [`Proxy`] every daemon is reached through.
pub struct Network {
    /// Why packet faults cannot run here; `None` = they can.
    pub unavailable: Option<String>,
    dropping: bool,
}

impl Network {
    pub fn setup() -> Self {
        let unavailable = if !inside_private_namespace() {
            Some(if is_root() {
                "needs `unshare` and `nft` (apt-get install util-linux nftables)".to_string()
            } else {
                "needs root for a private network namespace and nftables".to_string()
            })
        } else {
            run(&["nft", "add", "table", "inet", "chaos"])
                .and_then(|()| {
                    run(&[
                        "nft",
                        "add",
                        "chain",
                        "inet",
                        "chaos",
                        "out",
                        "{ type filter hook output priority 0; }",
                    ])
                })
                .err()
        };
        Self {
            unavailable,
            dropping: false,
        }
    }

    /// Brings `lo` up in a fresh namespace.
    pub fn loopback_up() -> Result<(), String> {
        if inside_private_namespace() {
            run(&["ip", "link", "set", "lo", "up"])
        } else {
            Ok(())
        }
    }

    /// Drops packets to and from `port`: a random 5 % (`Loss`) or all (`Partition`).
    pub fn drop_packets(&mut self, port: u16, fault: NetFault) -> Result<(), String> {
        if let Some(why) = &self.unavailable {
            return Err(why.clone());
        }
        self.heal()?;
        let p = port.to_string();
        for dir in ["dport", "sport"] {
            let mut rule = vec!["nft", "add", "rule", "inet", "chaos", "out", "tcp", dir, &p];
            if fault == NetFault::Loss {
                rule.extend(["numgen", "random", "mod", "100", "<", "5"]);
            }
            rule.push("drop");
            run(&rule)?;
        }
        self.dropping = true;
        Ok(())
    }

    pub fn heal(&mut self) -> Result<(), String> {
        if self.dropping {
            run(&["nft", "flush", "chain", "inet", "chaos", "out"])?;
            self.dropping = false;
        }
        Ok(())
    }
}

/// A TCP proxy in front of one daemon: the gateway (and every other caller) reaches the
/// daemon through it. It passes bytes straight through until [`Proxy::set_jitter`], then
/// holds every segment 30–70 ms (50 ± 20 ms) before passing it on, in order, in both
/// directions.
#[derive(Clone)]
pub struct Proxy {
    jitter: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub port: u16,
}

impl Proxy {
    /// Listens on `127.0.0.1:listen` and forwards to `127.0.0.1:target`; the accept loop
    /// lives as long as the runtime.
    pub async fn start(listen: u16, target: u16) -> std::io::Result<Self> {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", listen)).await?;
        let jitter = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let j = jitter.clone();
        #[allow(
            clippy::disallowed_methods,
            reason = "the rehearsal's network: it lives as long as the run and holds no state to drain"
        )]
        tokio::spawn(async move {
            while let Ok((down, _)) = l.accept().await {
                let j = j.clone();
                #[allow(
                    clippy::disallowed_methods,
                    reason = "one proxied connection; ends when either side closes"
                )]
                tokio::spawn(async move {
                    let Ok(up) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let _ = down.set_nodelay(true);
                    let _ = up.set_nodelay(true);
                    let (dr, dw) = down.into_split();
                    let (ur, uw) = up.into_split();
                    tokio::join!(pump(dr, uw, j.clone()), pump(ur, dw, j));
                });
            }
        });
        Ok(Self {
            jitter,
            port: listen,
        })
    }

    pub fn set_jitter(&self, on: bool) {
        self.jitter.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Copies one direction; with jitter on, each read is released 30–70 ms later, never before
/// the one read ahead of it (TCP delivers in order, whatever the packets did).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    jitter: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use rand::Rng as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(1024);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut last = tokio::time::Instant::now();
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let now = tokio::time::Instant::now();
            let at = if jitter.load(std::sync::atomic::Ordering::Relaxed) {
                let d = std::time::Duration::from_millis(rand::rng().random_range(30..=70));
                (now + d).max(last)
            } else {
                now.max(last)
            };
            last = at;
            if tx.send((at, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// A small tmpfs for the memory daemon's file, so "the disk is full" is a real ENOSPC.
pub fn mount_small_tmpfs(dir: &std::path::Path, mib: u32) -> Result<(), String> {
    if !inside_private_namespace() {
        return Err("needs root for a private mount namespace".into());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let size = format!("size={mib}m");
    run(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        &size,
        "tmpfs",
        &dir.display().to_string(),
    ])
}

/// Fills the filesystem of `dir` with a filler file until the kernel says ENOSPC.
pub fn fill_disk(filler: &std::path::Path) -> Result<u64, String> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(filler).map_err(|e| format!("{}: {e}", filler.display()))?;
    let block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => return Err(format!("{}: {e}", filler.display())),
        }
    }
    // Whatever the page cache still held must hit the (full) filesystem now.
    let _ = f.sync_all();
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::Proxy;

    /// An echo server on a free port.
    async fn echo() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        #[allow(clippy::disallowed_methods, reason = "test echo server")]
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                #[allow(clippy::disallowed_methods, reason = "test echo connection")]
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn the_proxy_passes_bytes_in_order_and_jitter_delays_each_direction() {
        let target = echo().await;
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let proxy = Proxy::start(port, target).await.unwrap();
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        // Many small writes come back whole and in order, jitter or not.
        for jitter in [false, true] {
            proxy.set_jitter(jitter);
            let t = Instant::now();
            let mut sent = Vec::new();
            for i in 0..50u8 {
                c.write_all(&[i; 3]).await.unwrap();
                sent.extend([i; 3]);
            }
            let mut back = vec![0u8; sent.len()];
            c.read_exact(&mut back).await.unwrap();
            assert_eq!(back, sent);
            if jitter {
                // At least 30 ms each way.
                assert!(
                    t.elapsed() >= Duration::from_millis(60),
                    "{:?}",
                    t.elapsed()
                );
            }
        }
    }
}
