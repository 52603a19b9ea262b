//! The spike's child processes: start, wait until healthy, read their memory and CPU from
//! `/proc`, and stop them with a signal (SIGKILL only when they ignore it).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, ChildStdin, ChildStdout},
};

use crate::BenchError;

/// `/proc/<pid>/stat` counts CPU time in clock ticks of `USER_HZ`, which the kernel's ABI
/// fixes at 100 on every architecture it exports `/proc` to user space with.
const USER_HZ: f64 = 100.0;

/// One child process and where its output goes.
pub struct Proc {
    pub name: String,
    pub pid: u32,
    pub log: PathBuf,
    child: Child,
    /// Workers only: closing it tells the worker to close its sessions and exit.
    pub stdin: Option<ChildStdin>,
}

impl Proc {
    /// Starts `exe args…` in its own process group (a terminal's Ctrl-C reaches only the
    /// coordinator, which then stops the children in order), stdout and stderr appended to
    /// `log`, or stdout piped when `pipe_stdout` (workers).
    pub fn spawn(
        name: &str,
        exe: &Path,
        args: &[&str],
        env: &[(String, String)],
        log: PathBuf,
        pipe_stdio: bool,
    ) -> Result<(Self, Option<ChildStdout>), BenchError> {
        let file = std::fs::File::create(&log).map_err(|source| BenchError::Write {
            path: log.clone(),
            source,
        })?;
        let err_file = file.try_clone()?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stderr(Stdio::from(err_file))
            .process_group(0)
            // Last resort only (a panic between spawn and stop): `stop` signals first.
            .kill_on_drop(true);
        if pipe_stdio {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        } else {
            cmd.stdin(Stdio::null()).stdout(Stdio::from(file));
        }
        let mut child = cmd.spawn().map_err(|e| {
            BenchError::Spike(format!("cannot start {name} ({}): {e}", exe.display()))
        })?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Spike(format!("{name} exited at once")))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        Ok((
            Self {
                name: name.to_string(),
                pid,
                log,
                child,
                stdin,
            },
            stdout,
        ))
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The error for a child that exited when it should not have, with its log's tail.
    pub fn died(&self, status: ExitStatus) -> BenchError {
        BenchError::Spike(format!(
            "{} (pid {}) exited with {status}; last lines of {}:\n{}",
            self.name,
            self.pid,
            self.log.display(),
            log_tail(&self.log, 15)
        ))
    }

    /// Asks the process to stop with `signal` (TERM or INT), waits up to `grace`, then kills
    /// it. Returns a note when it had to be killed or exited with a failure.
    pub async fn stop(&mut self, signal: &str, grace: Duration) -> Option<String> {
        if let Some(status) = self.exited() {
            return (!status.success()).then(|| format!("{} had exited with {status}", self.name));
        }
        send_signal(self.pid, signal).await;
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => None,
            Ok(Ok(status)) => Some(format!(
                "{} exited with {status} after SIG{signal}",
                self.name
            )),
            Ok(Err(e)) => Some(format!("{}: cannot wait: {e}", self.name)),
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                Some(format!(
                    "{} did not stop within {} s of SIG{signal}; killed",
                    self.name,
                    grace.as_secs()
                ))
            }
        }
    }

    /// Closes stdin (a worker's signal to finish) and waits up to `grace` before signalling.
    pub async fn finish(&mut self, grace: Duration) -> Option<String> {
        drop(self.stdin.take());
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => None,
            Ok(Ok(status)) => Some(format!("{} exited with {status}", self.name)),
            _ => self.stop("TERM", Duration::from_secs(5)).await,
        }
    }

    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid)
    }

    pub fn cpu_s(&self) -> Option<f64> {
        cpu_s(&format!("/proc/{}/stat", self.pid))
    }
}

/// Signals without `unsafe` (the workspace forbids it) and without a signal crate: the
/// standard `kill` utility, as the repository's own process tests do.
async fn send_signal(pid: u32, signal: &str) {
    let _ = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// The last `n` lines of a log file (for errors).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `VmRSS` of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&text, "VmRSS:")
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// User + system CPU seconds of a process (all its threads) from a `stat` file.
pub fn cpu_s(stat_path: &str) -> Option<f64> {
    parse_stat_cpu(&std::fs::read_to_string(stat_path).ok()?)
}

fn parse_stat_cpu(stat: &str) -> Option<f64> {
    // The command name may hold spaces and parentheses; the fields follow the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `)`: state is field 3 of stat(5), so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// True when `GET /healthz` on `addr` answers 200.
pub async fn healthy(addr: SocketAddr) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 16];
        let mut n = 0;
        while n < buf.len() {
            let read = s.read(&mut buf[n..]).await.ok()?;
            if read == 0 {
                break;
            }
            n += read;
        }
        Some(buf[..n].starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Polls `/healthz` of every address until all answer 200, failing early when `proc` exits
/// and after `timeout`.
pub async fn wait_healthy(
    proc: &mut Proc,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(), BenchError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pending: Vec<SocketAddr> = addrs.to_vec();
    loop {
        let mut still = Vec::new();
        for a in pending {
            if !healthy(a).await {
                still.push(a);
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(());
        }
        if let Some(status) = proc.exited() {
            return Err(proc.died(status));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BenchError::Spike(format!(
                "{} not healthy within {} s ({} still failing /healthz); last lines of {}:\n{}",
                proc.name,
                timeout.as_secs(),
                pending
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                proc.log.display(),
                log_tail(&proc.log, 15)
            )));
        }
        // The interval between two health polls, not a readiness guess.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `count` loopback ports: `base..base+count` when given (each checked free), else ports the
/// OS picks. Picked ports are released before the children bind them; another process
/// taking one in between makes that child fail to start, which is reported.
pub fn ports(base: Option<u16>, count: usize) -> Result<Vec<u16>, BenchError> {
    match base {
        Some(base) => {
            let last = usize::from(base) + count - 1;
            if base == 0 || last > usize::from(u16::MAX) {
                return Err(BenchError::Usage(format!(
                    "--base-port {base}: the spike needs {count} consecutive ports \
                     ({base}..={last}), beyond 65535"
                )));
            }
            let ports: Vec<u16> = (0..count)
                .filter_map(|i| u16::try_from(usize::from(base) + i).ok())
                .collect();
            for &p in &ports {
                std::net::TcpListener::bind(("127.0.0.1", p)).map_err(|e| {
                    BenchError::Usage(format!(
                        "--base-port {base}: port {p} of {base}..={last} is not free: {e}"
                    ))
                })?;
            }
            Ok(ports)
        }
        None => {
            let listeners = (0..count)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
                .collect::<Result<Vec<_>, _>>()?;
            listeners
                .iter()
                .map(|l| Ok(l.local_addr()?.port()))
                .collect()
        }
    }
}

/// Size of the kernel's ephemeral port range: client sockets to one gateway port cannot
/// exceed it.
pub fn ephemeral_ports() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(str::parse::<usize>);
    let (lo, hi) = (it.next()?.ok()?, it.next()?.ok()?);
    Some(hi.saturating_sub(lo) + 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "1234 (tokio (rt) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 200";
        assert_eq!(parse_stat_cpu(stat), Some(3.0));
        let status = "Name:\tmangaassist\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(1024));
        assert!(cpu_s("/proc/self/stat").is_some());
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }

    #[test]
    fn port_ranges_are_checked() {
        assert!(
            ports(Some(65530), 10)
                .unwrap_err()
                .to_string()
                .contains("65535")
        );
        let picked = ports(None, 4).unwrap();
        assert_eq!(picked.len(), 4);
        assert!(picked.iter().all(|&p| p > 0));
    }
}
