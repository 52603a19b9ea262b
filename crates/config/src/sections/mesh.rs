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
    /// When this daemon runs in the caller's process (`mangaassist up`), call it there —
    /// same deadline, span, metrics and faults, no socket — instead of through its gRPC port,
    /// which keeps serving outside callers either way. `false` = always gRPC.
    #[serde(default = "in_process_default")]
    pub in_process: bool,
}

fn in_process_default() -> bool {
    true
}

impl DaemonAddr {
    fn local(port: u16) -> Self {
        Self {
            listen: format!("127.0.0.1:{port}"),
            endpoint: format!("http://127.0.0.1:{port}"),
            in_process: true,
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
            shutdown_grace_seconds: 10,
            max_rpc_seconds: 60,
            service_secret: String::new(),
            service_secret_file: PathBuf::new(),
        }
    }
}

impl MeshSettings {
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
