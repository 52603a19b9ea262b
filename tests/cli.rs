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
