//! The signing secret file: created once with mode 0600, reused afterwards, validated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use mangaassist_auth::{AuthError, JwtKey, load_or_create_secret};

#[test]
fn created_with_0600_in_new_directories_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/auth/jwt.secret");
    let first = load_or_create_secret(&path).unwrap();
    assert_eq!(first.len(), 64);
    assert!(first.iter().all(u8::is_ascii_hexdigit));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    let second = load_or_create_secret(&path).unwrap();
    assert_eq!(first, second);
    JwtKey::new(&first).unwrap();
    // Only the secret is left behind, no staging files.
    let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("jwt.secret")]);
}

#[test]
fn two_secrets_differ() {
    let dir = tempfile::tempdir().unwrap();
    let a = load_or_create_secret(&dir.path().join("a")).unwrap();
    let b = load_or_create_secret(&dir.path().join("b")).unwrap();
    assert_ne!(a, b);
}

#[test]
fn an_existing_file_is_trimmed_and_used_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "  correct-horse-battery-staple-0123456789\n\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        load_or_create_secret(&path).unwrap(),
        b"correct-horse-battery-staple-0123456789"
    );
}

#[test]
fn a_short_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.secret");
    std::fs::write(&path, "too short\n").unwrap();
    let err = load_or_create_secret(&path).unwrap_err();
    assert!(
        matches!(err, AuthError::SecretFileTooShort { len: 9, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("short.secret"), "{err}");
    // Not silently replaced.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "too short\n");
}

#[test]
fn an_unreadable_path_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let path = dir.path().join("is-a-dir");
    std::fs::create_dir(&path).unwrap();
    let err = load_or_create_secret(&path).unwrap_err();
    assert!(matches!(err, AuthError::Io { .. }), "{err}");
    assert!(err.to_string().contains("is-a-dir"), "{err}");
}

#[test]
fn concurrent_starters_agree_on_one_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("race/jwt.secret"));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let path = Arc::clone(&path);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                load_or_create_secret(&path).unwrap()
            })
        })
        .collect();
    let secrets: Vec<Vec<u8>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(secrets.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(secrets[0], std::fs::read(&*path).unwrap().trim_ascii());
}

fn write_secret(path: &std::path::Path, mode: u32) {
    std::fs::write(path, "correct-horse-battery-staple-0123456789\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("git is needed for this test");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

#[test]
fn a_file_others_can_read_is_refused_naming_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        let path = dir.path().join(format!("open-{mode:o}.secret"));
        write_secret(&path, mode);
        let err = load_or_create_secret(&path).unwrap_err();
        assert_eq!(err.code(), "secret_file_permissions", "{mode:o}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("open-{mode:o}.secret")), "{msg}");
        assert!(msg.contains("chmod 600"), "{msg}");
        // Refused, not rewritten behind the operator's back.
        let now = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(now, mode);
    }
    let private = dir.path().join("private.secret");
    write_secret(&private, 0o600);
    load_or_create_secret(&private).unwrap();
    write_secret(&private, 0o400);
    load_or_create_secret(&private).unwrap();
}

#[test]
fn a_file_git_tracks_is_refused_an_untracked_or_ignored_one_is_not() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    let state = repo.path().join(".mangaassist/state");
    std::fs::create_dir_all(&state).unwrap();

    let tracked = state.join("jwt.secret");
    write_secret(&tracked, 0o600);
    git(repo.path(), &["add", "-f", ".mangaassist/state/jwt.secret"]);
    let err = load_or_create_secret(&tracked).unwrap_err();
    assert_eq!(err.code(), "secret_file_tracked", "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("jwt.secret") && msg.contains("git rm --cached"),
        "{msg}"
    );

    // Untracked (a fresh clone's first start) and ignored files are fine.
    let untracked = state.join("other.secret");
    write_secret(&untracked, 0o600);
    load_or_create_secret(&untracked).unwrap();
    std::fs::write(repo.path().join(".gitignore"), "/.mangaassist/\n").unwrap();
    let created = load_or_create_secret(&state.join("new.secret")).unwrap();
    assert_eq!(created.len(), 64);
}
