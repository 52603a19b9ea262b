//! `chaos soak`: the same mesh and customers with nothing broken, for a long time. Every
//! 10 s it reads each mesh process's resident memory, open descriptors and CPU from /proc;
//! at the end it compares memory and descriptors after the warm-up with the last sample and
//! the first-token p99 of the first and last five minutes.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{ChaosError, progress, stage};

#[derive(Debug, Clone)]
pub struct SoakSettings {
    pub out: PathBuf,
    pub duration: Duration,
    pub conversations: usize,
    pub think: (Duration, Duration),
    pub exe: PathBuf,
    pub data_dir: PathBuf,
    pub redis_bin: String,
    pub command: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakSample {
    pub t_s: f64,
    pub rss_mib: f64,
    pub fds: u64,
    pub mesh_cpu_s: f64,
    pub loadgen_cpu_s: f64,
    pub answered: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub command: String,
    pub started_at: String,
    pub machine: mangaassist_bench::sample::Machine,
    pub duration_s: f64,
    pub conversations: usize,
    pub warmup_s: f64,
    pub window_s: f64,
    pub messages: usize,
    pub errors: usize,
    pub error_reasons: std::collections::BTreeMap<String, usize>,
    /// Mesh CPU (daemons, gateways, Redis) as a share of the whole machine.
    pub mesh_cpu_share: f64,
    pub loadgen_cpu_share: f64,
    pub rss_after_warmup_mib: f64,
    pub rss_end_mib: f64,
    pub rss_growth_pct: f64,
    pub fds_after_warmup: u64,
    pub fds_end: u64,
    pub ttft_p99_first_ms: Option<f64>,
    pub ttft_p99_last_ms: Option<f64>,
    pub ttft_p50_first_ms: Option<f64>,
    pub ttft_p50_last_ms: Option<f64>,
    pub samples: Vec<SoakSample>,
    pub missed: Vec<String>,
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

fn sample(mesh: &crate::mesh::Mesh, t: f64, answered: usize, failed: usize) -> SoakSample {
    use mangaassist_bench::spike::procs;
    let pids = mesh.pids();
    SoakSample {
        t_s: t,
        rss_mib: pids
            .iter()
            .filter_map(|(_, p)| procs::rss_kib(*p))
            .sum::<u64>() as f64
            / 1024.0,
        fds: pids.iter().map(|(_, p)| fds(*p)).sum(),
        mesh_cpu_s: pids
            .iter()
            .filter_map(|(_, p)| procs::cpu_s(&format!("/proc/{p}/stat")))
            .sum(),
        loadgen_cpu_s: procs::cpu_s("/proc/self/stat").unwrap_or(0.0),
        answered,
        failed,
    }
}

fn p(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    Some((sorted[i] * 10.0).round() / 10.0)
}

pub async fn soak(s: &SoakSettings) -> Result<SoakReport, ChaosError> {
    let mut st = stage(
        &s.out,
        &s.exe,
        &s.data_dir,
        &s.redis_bin,
        s.conversations,
        s.conversations * 2 + 1_024,
        s.think,
        false,
    )
    .await?;
    let total = s.duration;
    // Five minutes of warm-up and comparison windows, shorter for a short soak.
    let window = Duration::from_secs(300).min(total / 3);
    let started = Instant::now();
    let mut samples = Vec::new();
    let every = Duration::from_secs(10).min(window.max(Duration::from_secs(1)));
    progress(&format!(
        "soaking {} conversations for {} (sample every {} s)",
        s.conversations,
        humantime::format_duration(total),
        every.as_secs()
    ));
    let mut next = started;
    let stop = crate::interrupted();
    while started.elapsed() < total && !stop.is_cancelled() {
        let (answered, failed) = {
            let o = st.fleet.shared.outcomes.lock();
            let f = o.iter().filter(|x| x.degradation.is_none()).count();
            (o.len() - f, f)
        };
        let smp = sample(&st.mesh, started.elapsed().as_secs_f64(), answered, failed);
        if samples.len().is_multiple_of(6) {
            progress(&format!(
                "t={:>5.0} s answered {answered} failed {failed} mesh RSS {:.0} MiB fds {}",
                smp.t_s, smp.rss_mib, smp.fds
            ));
        }
        samples.push(smp);
        next += every;
        tokio::select! {
            () = tokio::time::sleep_until(next.into()) => {}
            () = stop.cancelled() => {}
        }
    }
    let last = sample(&st.mesh, started.elapsed().as_secs_f64(), 0, 0);
    let shared = st.fleet.shared.clone();
    st.fleet.finish().await;
    let _ = st.mesh.stop().await;
    let outcomes = shared.outcomes.lock().clone();
    let elapsed = started.elapsed();
    let warm = samples
        .iter()
        .find(|x| x.t_s >= window.as_secs_f64())
        .or(samples.first())
        .cloned();
    let end = samples.last().cloned();
    let ttft = |from: Duration, to: Duration| {
        let mut v: Vec<f64> = outcomes
            .iter()
            .filter(|o| {
                let at = o.sent_at.saturating_duration_since(started);
                at >= from && at < to
            })
            .filter_map(|o| o.first_chunk.map(|d| d.as_secs_f64() * 1e3))
            .collect();
        v.sort_by(f64::total_cmp);
        (p(&v, 0.5), p(&v, 0.99))
    };
    let (p50_first, p99_first) = ttft(Duration::ZERO, window);
    let (p50_last, p99_last) = ttft(total.saturating_sub(window), total);
    let mut error_reasons = std::collections::BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.degradation.is_none()) {
        *error_reasons
            .entry(o.failure.clone().unwrap_or_default())
            .or_insert(0usize) += 1;
    }
    let errors = error_reasons.values().sum();
    let cpus = mangaassist_bench::machine::collect().cpus.max(1) as f64;
    let first = samples.first().cloned();
    let secs = elapsed.as_secs_f64().max(1.0);
    let (mesh_share, load_share) = match &first {
        Some(f) => (
            (last.mesh_cpu_s - f.mesh_cpu_s) / secs / cpus,
            (last.loadgen_cpu_s - f.loadgen_cpu_s) / secs / cpus,
        ),
        None => (0.0, 0.0),
    };
    let (rss_warm, rss_end, fds_warm, fds_end) = match (&warm, &end) {
        (Some(w), Some(e)) => (w.rss_mib, e.rss_mib, w.fds, e.fds),
        _ => (0.0, 0.0, 0, 0),
    };
    let growth = if rss_warm > 0.0 {
        (rss_end - rss_warm) / rss_warm * 100.0
    } else {
        0.0
    };
    let mut missed = Vec::new();
    if growth >= 5.0 {
        missed.push(format!("RSS grew {growth:.1} % after the warm-up"));
    }
    if fds_end > fds_warm + 8 {
        missed.push(format!("descriptors grew {fds_warm} → {fds_end}"));
    }
    if errors > 0 {
        missed.push(format!("{errors} messages without an answer"));
    }
    if let (Some(a), Some(b)) = (p99_first, p99_last)
        && b > a * 1.5
        && b - a > 20.0
    {
        missed.push(format!("first-token p99 drifted {a:.0} → {b:.0} ms"));
    }
    let report = SoakReport {
        command: s.command.clone(),
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now() - elapsed)
            .to_string(),
        machine: mangaassist_bench::machine::collect(),
        duration_s: elapsed.as_secs_f64(),
        conversations: s.conversations,
        warmup_s: window.as_secs_f64(),
        window_s: window.as_secs_f64(),
        messages: outcomes.len(),
        errors,
        error_reasons,
        mesh_cpu_share: mesh_share,
        loadgen_cpu_share: load_share,
        rss_after_warmup_mib: rss_warm,
        rss_end_mib: rss_end,
        rss_growth_pct: (growth * 100.0).round() / 100.0,
        fds_after_warmup: fds_warm,
        fds_end,
        ttft_p99_first_ms: p99_first,
        ttft_p99_last_ms: p99_last,
        ttft_p50_first_ms: p50_first,
        ttft_p50_last_ms: p50_last,
        samples,
        missed,
    };
    report.write(&s.out)?;
    Ok(report)
}

impl SoakReport {
    pub fn passed(&self) -> bool {
        self.missed.is_empty()
    }

    pub fn write(&self, out: &Path) -> Result<(), ChaosError> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| ChaosError::Usage(format!("cannot encode the soak report: {e}")))?;
        let path = out.join("soak.json");
        std::fs::write(&path, json).map_err(|e| ChaosError::Io(path.clone(), e))?;
        let path = out.join("soak.md");
        std::fs::write(&path, self.to_markdown()).map_err(|e| ChaosError::Io(path.clone(), e))
    }

    pub fn to_markdown(&self) -> String {
        let m = &self.machine;
        let f = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.0} ms"));
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Soak\n\n`{}` — {}, {} × {} ({}), {} conversations for {:.0} min, {} messages.\n",
            self.command,
            self.started_at,
            m.cpus,
            m.cpu_model,
            m.os,
            self.conversations,
            self.duration_s / 60.0,
            self.messages
        );
        let _ = writeln!(
            md,
            "| measure | after warm-up / first {w} | end / last {w} | target |\n|---|---|---|---|\n\
             | mesh RSS (all processes) | {:.0} MiB | {:.0} MiB ({:+.1} %) | < 5 % growth |\n\
             | open descriptors | {} | {} | no growth |\n\
             | first token p50 | {} | {} | |\n\
             | first token p99 | {} | {} | stable |\n\
             | messages without an answer | | {} | 0 |\n",
            self.rss_after_warmup_mib,
            self.rss_end_mib,
            self.rss_growth_pct,
            self.fds_after_warmup,
            self.fds_end,
            f(self.ttft_p50_first_ms),
            f(self.ttft_p50_last_ms),
            f(self.ttft_p99_first_ms),
            f(self.ttft_p99_last_ms),
            self.errors,
            w = humantime::format_duration(Duration::from_secs(self.window_s.round() as u64)),
        );
        let _ = writeln!(
            md,
            "Mesh CPU: {:.0} % of the machine; the load generator (this process): {:.0} %. {}",
            self.mesh_cpu_share * 100.0,
            self.loadgen_cpu_share * 100.0,
            if self.missed.is_empty() {
                "**All targets met.**".to_string()
            } else {
                format!("**Missed:** {}", self.missed.join("; "))
            }
        );
        md
    }
}
