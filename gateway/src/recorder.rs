//! Per-message recording for `mangaassist report weekly`: one JSON line per answered message
//! (latencies, stage timings against budgets), appended by a writer thread so the critical
//! path only pays for a channel send. Shutdown drains the channel before the process exits.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::mpsc::{SyncSender, TrySendError, sync_channel},
    thread::JoinHandle,
};

use parking_lot::Mutex;
use serde::Serialize;

use crate::budget::StageTiming;

/// Records queued before new ones are dropped (and counted) rather than slowing answers.
const QUEUE: usize = 65_536;

/// One line of the recording (same field names as the benchmark's samples).
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub ts_ms: u64,
    pub message_id: String,
    pub store_id: String,
    pub intent: Option<String>,
    pub ttft_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
    pub tokens: Option<u32>,
    pub model: Option<String>,
    pub cache_hit: bool,
    pub degradation: Option<String>,
    pub error: Option<String>,
    pub stages: Vec<StageTiming>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open recording file {path}: {source}")]
pub struct RecorderError {
    path: PathBuf,
    source: std::io::Error,
}

pub struct Recorder {
    tx: Mutex<Option<SyncSender<Record>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    /// Opens (appends to) `path`, creating parent directories.
    pub fn open(path: &Path) -> Result<Self, RecorderError> {
        let err = |source| RecorderError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        let (tx, rx) = sync_channel::<Record>(QUEUE);
        let shown = path.display().to_string();
        let writer = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(file);
                while let Ok(first) = rx.recv() {
                    // Write everything queued, then flush once.
                    for rec in std::iter::once(first).chain(rx.try_iter()) {
                        let line = serde_json::to_string(&rec).unwrap_or_default();
                        if writeln!(out, "{line}").is_err() {
                            metrics::counter!("recorder_write_errors_total").increment(1);
                        }
                    }
                    if let Err(e) = out.flush() {
                        tracing::warn!(file = %shown, error = %e, "recording flush failed");
                    }
                }
                let _ = out.flush();
            })
            .map_err(err)?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    pub fn write(&self, rec: Record) {
        let guard = self.tx.lock();
        let Some(tx) = guard.as_ref() else { return };
        match tx.try_send(rec) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("recorder_dropped_total").increment(1);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Stops accepting records and waits until every queued one is on disk.
    pub fn close(&self) {
        drop(self.tx.lock().take());
        if let Some(w) = self.writer.lock().take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_record_is_on_disk_after_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/rec.jsonl");
        let r = Recorder::open(&path).unwrap();
        for i in 0..1000 {
            r.write(Record {
                ts_ms: i,
                message_id: format!("m{i}"),
                store_id: "manga_jp".into(),
                intent: Some("faq".into()),
                ttft_ms: Some(1.0),
                e2e_ms: Some(2.0),
                tokens: Some(3),
                model: None,
                cache_hit: false,
                degradation: Some("full".into()),
                error: None,
                stages: vec![],
            });
        }
        r.close();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1000);
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["message_id"], "m999");
    }
}
