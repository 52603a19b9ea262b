//! A daemon's small state files (the prompt registry's active versions, precompute's demand
//! and release schedule) are replaced whole: written to a hidden temporary file beside the
//! target, synced, then renamed over it, so a crash or a full disk leaves the old file or the
//! new one and a reader never sees half of either. [`read`] tells a first start (no file)
//! from a file that cannot be read.

use std::{
    io::Write as _,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `contents` (creating its folder). The temporary file is unique per
/// call, so two writers at once never write into the same one; the later rename wins.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("path has no parent folder"))?;
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Hidden, so a loader running meanwhile skips it.
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    // Make the rename itself durable; not every platform lets a folder be opened, so this is
    // best effort.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The file's text, or `None` when there is none yet (a first start); any other failure is an
/// error for the caller to name.
pub fn read(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/active");
        write_atomic(&p, "v1\n").unwrap();
        write_atomic(&p, "v2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "v2\n");
        let names: Vec<String> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["active".to_string()]);
        assert_eq!(read(&p).unwrap().as_deref(), Some("v2\n"));
        assert_eq!(read(&dir.path().join("none")).unwrap(), None);
    }
}
