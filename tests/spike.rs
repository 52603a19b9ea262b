//! `mangaassist bench spike` end to end, small: the real binary starts the mesh as separate
//! processes (one daemons process, two gateways on their own ports), worker processes hold
//! the sessions and send two short steps; the results file must have every row, no errors and
//! no lost chunks, and every child must be gone afterwards. Also: a Ctrl-C mid-run stops
//! everything and still writes what was measured; impossible sizes fail before anything starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

fn bin(state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mangaassist"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env_remove("MANGAASSIST_CONFIG");
    // The coordinator's own signing secret lives here, not in the checkout.
    c.env("MANGAASSIST_DATA__STATE_DIR", state);
    c
}

fn results(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

/// Every process the spike started has exited (and was reaped: no zombie keeps its pid).
fn assert_children_gone(r: &Value) {
    let procs = r["processes"].as_array().unwrap();
    assert!(!procs.is_empty());
    for p in procs {
        let pid = p["pid"].as_u64().unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains("mangaassist"),
            "{} (pid {pid}) still runs",
            p["role"]
        );
    }
}

#[test]
fn small_spike_reports_every_step_without_lost_chunks() {
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let run = bin(state.path())
        .args([
            "bench",
            "spike",
            "--quick",
            "--gateways",
            "2",
            "--hold",
            "1s",
        ])
        .args([
            "--steps",
            "20,40",
            "--step-duration",
            "2s",
            "--workers",
            "2",
        ])
        // Only errors may stop this run: a debug build on a busy machine can be slow.
        .args(["--stop-p99-ms", "60000", "--allow-degraded"])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("| step 2 |"), "{stdout}");

    let r = results(out.path());
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["open"]["opened"], 200, "{}", r["open"]);
    let roles: Vec<&str> = r["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["daemons", "gateway", "gateway", "worker", "worker"]);
    let rows = r["rows"].as_array().unwrap();
    let phases: Vec<(&str, f64)> = rows
        .iter()
        .map(|row| {
            (
                row["phase"].as_str().unwrap(),
                row["offered_rate"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(phases, [("hold", 0.0), ("step", 20.0), ("step", 40.0)]);
    assert_eq!(rows[0]["sessions_open"], 200);
    assert_eq!(rows[0]["pinged"], 200);
    for row in rows {
        assert_eq!(row["errors"], 0, "{row}");
        assert_eq!(row["lost_chunks"], 0, "{row}");
        assert_eq!(row["duplicate_chunks"], 0, "{row}");
        assert!(row["degraded"].is_u64(), "{row}");
        assert!(row["mesh_rss_mib"].as_f64().unwrap() > 10.0, "{row}");
        assert!(row["loadgen_rss_mib"].as_f64().unwrap() > 1.0, "{row}");
        assert!(row["failed"].is_null(), "{row}");
    }
    for row in &rows[1..] {
        assert_eq!(row["sessions_open"], 200, "{row}");
        assert_eq!(row["sent"], row["answered"], "{row}");
        assert!(row["answered"].as_u64().unwrap() > 0, "{row}");
        let (p50, p99) = (
            row["ttft_p50_ms"].as_f64().unwrap(),
            row["ttft_p99_ms"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p50 <= p99, "{row}");
        assert!(row["mesh_cpu_s"].as_f64().unwrap() > 0.0, "{row}");
    }
    assert_eq!(r["highest_passing_rate"], 40.0);
    assert_eq!(r["shutdown_notes"].as_array().unwrap().len(), 0, "{r}");
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(
        summary.contains("| step 1 |") && summary.contains("Stopped:"),
        "{summary}"
    );
    assert!(out.path().join("gateway-1.log").exists());
    assert_children_gone(&r);
}

#[test]
fn ctrl_c_stops_every_process_and_keeps_the_results() {
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut child = bin(state.path())
        .args([
            "bench",
            "spike",
            "--quick",
            "--sessions",
            "20",
            "--hold",
            "60s",
        ])
        .arg("--out")
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The coordinator says when the hold starts: every process is up then.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("spike ended before holding: {seen:?}"))
            .unwrap();
        let holding = line.contains("spike: holding");
        seen.push(line);
        if holding {
            break;
        }
    }
    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(30),
        "took {:?}",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(2), "{rest:?}");
    let r = results(out.path());
    assert!(
        r["stop_reason"].as_str().unwrap().contains("interrupted"),
        "{}",
        r["stop_reason"]
    );
    assert_eq!(r["open"]["opened"], 20);
    assert_eq!(r["shutdown_notes"].as_array().unwrap().len(), 0, "{r}");
    assert_children_gone(&r);
}

#[test]
fn sizes_beyond_the_limits_fail_before_anything_starts() {
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // One worker holding as many sockets as the limit allows files: no room for the rest.
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let limit = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap();
    let run = bin(state.path())
        .args(["bench", "spike", "--sessions", limit, "--workers", "1"])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("open-files limit") && stderr.contains("--workers"),
        "{stderr}"
    );
    assert!(!out.path().join("results.json").exists());

    let run = bin(state.path())
        .args(["bench", "spike", "--quick", "--base-port", "65530"])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("65535"), "{stderr}");
}
