//! `[mesh]`: where each daemon listens and where its peers reach it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ensure, http_url, socket_addr, within};
use crate::ConfigError;

/// Where a daemon listens and where its peers reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonAddr {
    pub listen: String,
    pub endpoint: String,
}

impl DaemonAddr {
    fn local(port: u16) -> Self {
        Self {
            listen: format!("127.0.0.1:{port}"),
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshSettings {
    pub intent: DaemonAddr,
    pub retrieval: DaemonAddr,
    pub memory: DaemonAddr,
    pub cache: DaemonAddr,
    pub generation: DaemonAddr,
    pub precompute: DaemonAddr,
    /// Daemons called in process when they run in the caller's process (`mangaassist up`):
    /// same deadline, span, metrics and faults, but no HTTP/2, encoding or socket. A daemon
    /// left out is called through its gRPC port even then; every daemon keeps serving gRPC
    /// for outside callers either way. `[]` = always gRPC.
    pub in_process: Vec<String>,
    /// How often a caller re-resolves a daemon endpoint that names a host (a headless
    /// Kubernetes Service: one address per ready pod) to balance its calls over every
    /// replica; 0 = resolve once and keep one connection. IP endpoints always keep one.
    pub resolve_interval_ms: u64,
    /// Seconds to let in-flight RPCs finish after SIGTERM before exiting (at most an hour).
    pub shutdown_grace_seconds: u64,
    /// Upper bound on any RPC's deadline, whatever the caller asked for (1 s to a day).
    pub max_rpc_seconds: u64,
    /// HMAC secret (≥ 32 bytes) of the service tokens every daemon RPC except health must
    /// carry; empty = daemons accept unauthenticated calls (only sensible on loopback). Prefer
    /// `MANGAASSIST_MESH__SERVICE_SECRET`. Must differ from the gateway's user-token secret.
    pub service_secret: String,
    /// Read (or, when missing, created with a random secret) if `service_secret` is empty;
    /// empty = no file.
    pub service_secret_file: PathBuf,
    /// A file of fault specs (one per line, `#` comments) the daemons of this process re-read
    /// while they run, so a rehearsal (`mangaassist chaos run`) can break and heal a daemon in
    /// another process without restarting it. Empty (the default) = no file is read: whoever
    /// can write it can make the daemon fail, so point it only at a file only operators can
    /// write.
    pub fault_file: PathBuf,
}

impl Default for MeshSettings {
    fn default() -> Self {
        Self {
            intent: DaemonAddr::local(50061),
            retrieval: DaemonAddr::local(50062),
            memory: DaemonAddr::local(50063),
            cache: DaemonAddr::local(50064),
            generation: DaemonAddr::local(50065),
            precompute: DaemonAddr::local(50066),
            in_process: DAEMONS.iter().map(|d| d.to_string()).collect(),
            resolve_interval_ms: 2_000,
            shutdown_grace_seconds: 10,
            max_rpc_seconds: 60,
            service_secret: String::new(),
            service_secret_file: PathBuf::new(),
            fault_file: PathBuf::new(),
        }
    }
}

/// The daemons of the mesh, by name.
pub const DAEMONS: [&str; 6] = [
    "intent",
    "retrieval",
    "memory",
    "cache",
    "generation",
    "precompute",
];

impl MeshSettings {
    /// Whether `daemon`, when it runs in the caller's process, is called in process.
    pub fn calls_in_process(&self, daemon: &str) -> bool {
        self.in_process.iter().any(|d| d == daemon)
    }

    pub fn daemons(&self) -> [(&'static str, &DaemonAddr); 6] {
        [
            ("intent", &self.intent),
            ("retrieval", &self.retrieval),
            ("memory", &self.memory),
            ("cache", &self.cache),
            ("generation", &self.generation),
            ("precompute", &self.precompute),
        ]
    }

    pub fn daemons_mut(&mut self) -> [(&'static str, &mut DaemonAddr); 6] {
        [
            ("intent", &mut self.intent),
            ("retrieval", &mut self.retrieval),
            ("memory", &mut self.memory),
            ("cache", &mut self.cache),
            ("generation", &mut self.generation),
            ("precompute", &mut self.precompute),
        ]
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, addr) in self.daemons() {
            socket_addr(&format!("mesh.{name}.listen"), &addr.listen)?;
            http_url(&format!("mesh.{name}.endpoint"), &addr.endpoint)?;
        }
        for d in &self.in_process {
            ensure(
                DAEMONS.contains(&d.as_str()),
                "mesh.in_process",
                format!("unknown daemon `{d}` (one of {})", DAEMONS.join(", ")),
            )?;
        }
        ensure(
            self.resolve_interval_ms == 0 || (100..=3_600_000).contains(&self.resolve_interval_ms),
            "mesh.resolve_interval_ms",
            format!(
                "{} is outside 100..=3600000 (or 0 = no re-resolution)",
                self.resolve_interval_ms
            ),
        )?;
        within(
            "mesh.shutdown_grace_seconds",
            self.shutdown_grace_seconds,
            0..=3_600,
        )?;
        within("mesh.max_rpc_seconds", self.max_rpc_seconds, 1..=86_400)?;
        ensure(
            self.service_secret.is_empty() || self.service_secret.len() >= 32,
            "mesh.service_secret",
            format!(
                "{} bytes is too short for HS256; use at least 32",
                self.service_secret.len()
            ),
        )
    }
}
