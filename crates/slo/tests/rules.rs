//! The committed Prometheus rules match the generator, and promtool accepts and unit-tests them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use mangaassist_slo::{SloConfig, prometheus_rules};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus")
}

const RULES: &str = "mangaassist-slo.rules.yaml";
const RULES_TEST: &str = "mangaassist-slo.rules.test.yaml";

#[test]
fn committed_rules_file_is_current() {
    let path = deploy_dir().join(RULES);
    let generated = prometheus_rules(&SloConfig::default());
    if std::env::var("MANGAASSIST_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        committed == generated,
        "{} is out of date with prometheus_rules(); regenerate it with \
         `MANGAASSIST_BLESS=1 cargo test -p mangaassist-slo --test rules`",
        path.display()
    );
}

/// Runs promtool with `args`; None when skipping is requested. Fails when promtool is missing.
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    if std::env::var("MANGAASSIST_SKIP_PROMTOOL").as_deref() == Ok("1") {
        eprintln!("MANGAASSIST_SKIP_PROMTOOL=1: not running promtool {args:?}");
        return None;
    }
    match Command::new("promtool")
        .args(args)
        .current_dir(deploy_dir())
        .output()
    {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed: run `apt-get install prometheus` (it ships promtool), \
             or set MANGAASSIST_SKIP_PROMTOOL=1 to skip this check"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

fn assert_success(out: std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules() {
    if let Some(out) = promtool(&["check", "rules", RULES]) {
        assert_success(out, "promtool check rules");
    }
}

/// The unit-test file feeds counter series into the rules and checks the page alert fires on a
/// fast burn, clears once the short window cools down, and stays quiet on a healthy service.
#[test]
fn promtool_rule_unit_tests_pass() {
    if let Some(out) = promtool(&["test", "rules", RULES_TEST]) {
        assert_success(out, "promtool test rules");
    }
}
