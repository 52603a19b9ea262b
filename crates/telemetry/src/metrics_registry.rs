use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once; later calls are no-ops. Every daemon
/// in the process shares it (under `up` their metrics carry a `daemon` label).
pub fn install_metrics() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[
                0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0,
                10000.0,
            ])
            .ok()?;
        builder.install_recorder().ok()
    });
}

/// The Prometheus text exposition of every metric recorded so far.
pub fn render_metrics() -> String {
    install_metrics();
    match HANDLE.get() {
        Some(Some(h)) => h.render(),
        _ => "# metrics recorder unavailable (another recorder was installed first)\n".into(),
    }
}
