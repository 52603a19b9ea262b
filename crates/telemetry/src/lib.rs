//! Telemetry shared by every daemon: `tracing` logs (text or JSON), OpenTelemetry spans with
//! W3C trace context carried in gRPC metadata, and the Prometheus metrics registry.

mod metrics_registry;
mod otlp;
mod propagation;

use std::sync::OnceLock;

use mangaassist_config::{LogFormat, TelemetrySettings};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing_subscriber::{
    EnvFilter, Layer, filter::LevelFilter, layer::SubscriberExt, util::SubscriberInitExt,
};

pub use metrics_registry::{install_metrics, render_metrics};
pub use propagation::{
    TraceInterceptor, current_trace_id, extract_context, inject_context, set_remote_parent,
    span_trace_id,
};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("bad log filter `{filter}`: {message}")]
    Filter { filter: String, message: String },
    #[error("a global subscriber is already installed")]
    AlreadyInstalled,
    #[error("OTLP trace export: {0}")]
    Otlp(String),
}

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber and tracer. `log_filter` overrides `settings.log_level`
/// (it is what `RUST_LOG`/`MANGAASSIST_LOG` carry). `service` names this process in exported
/// traces (`OTEL_SERVICE_NAME` wins); spans of a daemon hosted in it are exported under
/// `mangaassist-<daemon>`, so `mangaassist up` shows one service per daemon like a deployment.
/// Spans go to OTLP/HTTP when `settings.otlp_endpoint` or the standard
/// `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT` variables are set.
pub fn init(
    settings: &TelemetrySettings,
    log_filter: Option<&str>,
    service: &str,
) -> Result<(), TelemetryError> {
    match otlp::endpoint(settings, std::env::vars()) {
        Some(endpoint) => {
            let exporter = otlp::RoutingExporter::new(endpoint.clone(), service)?;
            init_inner(settings, log_filter, Exporter::<NoExport>::Batch(exporter))?;
            tracing::info!(target: "telemetry", endpoint = %endpoint.describe(), "exporting spans over OTLP/HTTP");
            Ok(())
        }
        None => init_inner(settings, log_filter, Exporter::<NoExport>::None),
    }
}

/// [`init`] with a span exporter called synchronously (tests collect spans in memory with it).
pub fn init_with<E: SpanExporter + 'static>(
    settings: &TelemetrySettings,
    log_filter: Option<&str>,
    exporter: Option<E>,
) -> Result<(), TelemetryError> {
    match exporter {
        Some(e) => init_inner(settings, log_filter, Exporter::Simple(e)),
        None => init_inner(settings, log_filter, Exporter::<E>::None),
    }
}

enum Exporter<E> {
    None,
    Simple(E),
    Batch(otlp::RoutingExporter),
}

fn init_inner<E: SpanExporter + 'static>(
    settings: &TelemetrySettings,
    log_filter: Option<&str>,
    exporter: Exporter<E>,
) -> Result<(), TelemetryError> {
    let filter_text = log_filter.unwrap_or(&settings.log_level).to_string();
    let filter = EnvFilter::try_new(&filter_text).map_err(|e| TelemetryError::Filter {
        filter: filter_text.clone(),
        message: e.to_string(),
    })?;
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let mut builder = SdkTracerProvider::builder();
    match exporter {
        Exporter::None => {}
        Exporter::Simple(e) => builder = builder.with_simple_exporter(e),
        // Export happens on the batch processor's own thread, off the request path.
        Exporter::Batch(e) => builder = builder.with_batch_exporter(e),
    }
    let provider = builder.build();
    let tracer = provider.tracer("mangaassist");
    let _ = PROVIDER.set(provider);
    // Spans feed traces whatever the log level: the log filter applies to log output only.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO);
    let registry = tracing_subscriber::registry().with(otel);
    let result = if settings.log_format == LogFormat::Json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init()
    };
    result.map_err(|_| TelemetryError::AlreadyInstalled)
}

/// Flushes spans still buffered and stops the exporter (call once, before exit).
pub fn shutdown() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
        let _ = p.shutdown();
    }
}

/// Exporter used when none is configured: spans still get ids (for `trace_id` in answers and
/// propagation) but go nowhere. OTLP export is configured by the backends work.
#[derive(Debug)]
struct NoExport;

impl SpanExporter for NoExport {
    async fn export(
        &self,
        _batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}
