//! `[telemetry]`: logs and trace export.

use serde::{Deserialize, Serialize};

use super::{choice, optional_http_url};
use crate::ConfigError;

choice! {
    /// `telemetry.log_format`.
    pub enum LogFormat {
        /// For people.
        #[default]
        Text = "text",
        /// For log pipelines.
        Json = "json",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `text` for people, `json` for log pipelines.
    pub log_format: LogFormat,
    /// `tracing` filter directive, e.g. `info,mangaassist_gateway=debug`.
    pub log_level: String,
    /// OTLP/HTTP collector base URL (e.g. `http://jaeger:4318`) to export spans to. Empty =
    /// the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// variables; when neither is set, spans are not exported.
    pub otlp_endpoint: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            // Over-budget stages are span events on every trace; one log line each would drown
            // the rest (they are counted in `budget_violations_total`).
            log_level: "info,budget=warn".into(),
            otlp_endpoint: String::new(),
        }
    }
}

impl TelemetrySettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        optional_http_url("telemetry.otlp_endpoint", &self.otlp_endpoint)
    }
}
