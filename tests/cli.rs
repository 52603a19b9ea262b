//! Black-box tests of the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mangaassist"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env_remove("MANGAASSIST_CONFIG");
    c
}

#[test]
fn config_print_shows_documented_defaults() {
    let out = bin().args(["config", "print"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[gateway]"), "{text}");
    assert!(text.contains("semantic_threshold = 0.95"), "{text}");
}

#[test]
fn config_print_redacts_every_credential() {
    let out = bin()
        .args(["config", "print"])
        .env(
            "MANGAASSIST_GATEWAY__AUTH__SECRET",
            "jwt-secret-value-0123456789abcdef",
        )
        .env(
            "MANGAASSIST_REDIS__URL",
            "redis://:redis-pw@127.0.0.1:6379/0",
        )
        .env(
            "MANGAASSIST_RETRIEVAL__OPENSEARCH__URL",
            "https://admin:search-pw@127.0.0.1:9200",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for secret in ["jwt-secret-value", "redis-pw", "search-pw"] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    assert!(
        text.contains("url = \"redis://<redacted>@127.0.0.1:6379/0\""),
        "{text}"
    );
}

#[test]
fn bad_config_is_rejected_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[retrieval]\ntop_k = \"lots\"\n").unwrap();
    let out = bin()
        .args(["--config", p.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retrieval.top_k"), "{err}");

    let out = bin()
        .args(["config", "check"])
        .env("MANGAASSIST_GATEWAY__NOPE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn bad_fault_flag_is_rejected() {
    let out = bin()
        .args(["up", "--fault", "retrieval=explode"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hang, latency"));
}

#[test]
fn chat_reports_an_unreachable_gateway() {
    let out = bin()
        .args([
            "chat",
            "--url",
            "ws://127.0.0.1:9/ws",
            "--timeout",
            "2s",
            "hi",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

#[test]
fn token_is_issued_from_a_secret_file_created_once() {
    let state = tempfile::tempdir().unwrap();
    let run = || {
        bin()
            .args(["token", "--user", "u-cli"])
            .env("MANGAASSIST_DATA__STATE_DIR", state.path())
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{first:?}");
    let token = String::from_utf8(first.stdout).unwrap();
    assert_eq!(token.trim().split('.').count(), 3, "{token}");
    let secret = std::fs::read(state.path().join("jwt.secret")).unwrap();
    assert!(secret.len() >= 32);
    // The same secret signs later tokens, so `up` and `token` agree across runs.
    let second = run();
    assert!(second.status.success());
    assert_eq!(
        std::fs::read(state.path().join("jwt.secret")).unwrap(),
        secret
    );
    // The secret is the file's trimmed content.
    let key = mangaassist_auth::JwtKey::new(String::from_utf8(secret).unwrap().trim().as_bytes())
        .unwrap();
    let claims = key
        .verify(
            token.trim(),
            std::time::SystemTime::now(),
            std::time::Duration::ZERO,
        )
        .unwrap();
    assert_eq!(claims.sub, "u-cli");
}

#[test]
fn short_secrets_are_refused_naming_the_field() {
    let out = bin()
        .args(["config", "check"])
        .env("MANGAASSIST_GATEWAY__AUTH__SECRET", "too-short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gateway.auth.secret"), "{err}");
}
