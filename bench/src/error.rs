//! The crate's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "{path}: results schema version {found} is newer than this tool understands ({supported})"
    )]
    Schema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// The labelled query data cannot drive a run (too few queries, unknown intent...).
    #[error("query data: {0}")]
    Data(String),
    /// Invalid combination of options.
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot mint a token for {user}: {reason}")]
    Token { user: String, reason: String },
    /// A daemon answered a call with an error that is not about connectivity.
    #[error("{what}: {message}")]
    Daemon { what: String, message: String },
    /// `bench spike` could not start, drive or stop its processes.
    #[error("spike: {0}")]
    Spike(String),
    #[error("statistics: {0}")]
    Stats(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl BenchError {
    /// Process exit code for a command that failed with this error: 2 ("usage or input error"),
    /// so that 1 keeps meaning "the gate failed" for `bench compare`.
    pub fn exit_code(&self) -> i32 {
        2
    }
}
