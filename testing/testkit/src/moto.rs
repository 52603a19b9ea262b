//! A moto server (`moto_server`, PyPI `moto[server]`) for this test binary: started on first
//! use on a free port, polled over HTTP until it answers, stopped when the binary exits.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

pub struct Moto {
    pub url: String,
    pub log: PathBuf,
    server: Mutex<Child>,
    /// A `sh` that kills the server when this pipe closes, which happens however the test
    /// process ends: a `static` is never dropped, so `Drop` alone would leak the server.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Ok(server) = self.server.get_mut() {
            let _ = server.kill();
            let _ = server.wait();
        }
        if let Ok(Some((mut watchdog, stdin))) = self.watchdog.get_mut().map(Option::take) {
            drop(stdin);
            let _ = watchdog.wait();
        }
    }
}

/// The binary's moto server; panics (failing the test) when it cannot start.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(Moto::start)
}

impl Moto {
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("moto-{}-{port}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).unwrap();
        let server = match Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot run moto_server ({e}); it must be on PATH: scripts/test.sh installs it \
                 (pip install 'moto[server]')"
            ),
        };
        let mut watchdog = Command::new("sh")
            .args([
                "-c",
                "read _ ; kill \"$0\" 2>/dev/null",
                &server.id().to_string(),
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = watchdog.stdin.take().unwrap();
        let moto = Moto {
            url: format!("http://127.0.0.1:{port}"),
            log,
            server: Mutex::new(server),
            watchdog: Mutex::new(Some((watchdog, stdin))),
        };
        moto.wait_ready(port);
        moto
    }

    fn wait_ready(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.server.lock().unwrap().try_wait().unwrap() {
                panic!(
                    "moto_server exited with {status} before answering; log: {}",
                    self.log.display()
                );
            }
            if http_ok(port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {port} within 60 s; log: {}",
                self.log.display()
            );
            // Polling interval, not a readiness guess: the loop ends on the first answer.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn http_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP/1.1 proxy in front of `upstream` (`127.0.0.1:port`) that forwards one request at
/// a time. moto evaluates condition expressions without a lock, so two concurrent
/// conditional writes can both pass there; DynamoDB applies each item write atomically.
/// Racing clients behind this proxy see DynamoDB's guarantee. Returns the proxy's URL.
pub async fn serializing_proxy(upstream: &str) -> String {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
        sync::Mutex,
    };

    /// One message (head + Content-Length body) from `s`; `None` at end of stream.
    async fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        assert!(
            !head.contains("transfer-encoding: chunked"),
            "the test proxy only handles Content-Length bodies"
        );
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 8192];
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let rest = buf.split_off(head_end + len);
        Some(std::mem::replace(buf, rest))
    }

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.to_string();
    let lock = std::sync::Arc::new(Mutex::new(()));
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let lock = lock.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(request) = read_message(&mut client, &mut buf).await {
                    let response = {
                        // Held for a whole exchange; a fresh upstream connection each time
                        // because moto answers `Connection: close`.
                        let _one_at_a_time = lock.lock().await;
                        let mut conn = TcpStream::connect(&upstream).await.unwrap();
                        conn.write_all(&request).await.unwrap();
                        read_message(&mut conn, &mut Vec::new()).await
                    };
                    let Some(response) = response else { return };
                    if client.write_all(&response).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}
