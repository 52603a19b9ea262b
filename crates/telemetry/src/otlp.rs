//! OTLP/HTTP span export, one service per daemon.
//!
//! A process exports under one resource, but `mangaassist up` hosts every daemon: spans carry
//! the `daemon` attribute (set by the RPC span layer), and each daemon's spans go through its
//! own exporter whose resource says `service.name = mangaassist-<daemon>`. A daemon deployed
//! alone (`mangaassist serve X`) therefore looks the same in Jaeger as one inside `up`.

use std::{collections::HashMap, sync::Arc};

use mangaassist_config::TelemetrySettings;
use opentelemetry::Value;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SpanData, SpanExporter},
};
use parking_lot::Mutex;

use crate::TelemetryError;

const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Where spans go: an explicit URL from the config, or whatever the standard variables say
/// (resolved by the exporter itself, so per-signal and general variables keep their meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `telemetry.otlp_endpoint` + `/v1/traces`.
    Config(String),
    /// From `OTEL_EXPORTER_OTLP_*`; the value is for log lines.
    Env(String),
}

impl Endpoint {
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Config(url) => url.clone(),
            Endpoint::Env(var) => var.clone(),
        }
    }
}

/// The export target, or `None` when nothing asks for export.
pub fn endpoint(
    settings: &TelemetrySettings,
    env: impl IntoIterator<Item = (String, String)>,
) -> Option<Endpoint> {
    if !settings.otlp_endpoint.is_empty() {
        let base = settings.otlp_endpoint.trim_end_matches('/');
        return Some(Endpoint::Config(format!("{base}/v1/traces")));
    }
    let env: HashMap<String, String> = env.into_iter().collect();
    [TRACES_ENDPOINT, ENDPOINT].into_iter().find_map(|var| {
        env.get(var)
            .filter(|v| !v.trim().is_empty())
            .map(|v| Endpoint::Env(format!("{var}={v}")))
    })
}

/// Routes each span to the exporter of its daemon (created on first use).
#[derive(Debug)]
pub struct RoutingExporter {
    endpoint: Endpoint,
    process_service: String,
    exporters: Mutex<HashMap<String, Arc<opentelemetry_otlp::SpanExporter>>>,
}

impl RoutingExporter {
    /// Builds the process's own exporter now so a bad endpoint or protocol fails at start.
    pub fn new(endpoint: Endpoint, service: &str) -> Result<Self, TelemetryError> {
        let process_service = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| service.to_string());
        let first = build(&endpoint, &process_service)?;
        let mut exporters = HashMap::new();
        exporters.insert(process_service.clone(), Arc::new(first));
        Ok(Self {
            endpoint,
            process_service,
            exporters: Mutex::new(exporters),
        })
    }

    fn service_of(&self, span: &SpanData) -> String {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == "daemon")
            .and_then(|kv| match &kv.value {
                Value::String(s) => Some(format!("mangaassist-{}", s.as_str())),
                _ => None,
            })
            .unwrap_or_else(|| self.process_service.clone())
    }

    fn exporter(
        &self,
        service: &str,
    ) -> Result<Arc<opentelemetry_otlp::SpanExporter>, OTelSdkError> {
        let mut map = self.exporters.lock();
        if let Some(e) = map.get(service) {
            return Ok(e.clone());
        }
        let e = Arc::new(
            build(&self.endpoint, service)
                .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?,
        );
        map.insert(service.to_string(), e.clone());
        Ok(e)
    }

    fn all(&self) -> Vec<Arc<opentelemetry_otlp::SpanExporter>> {
        self.exporters.lock().values().cloned().collect()
    }
}

fn build(
    endpoint: &Endpoint,
    service: &str,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Endpoint::Config(url) = endpoint {
        builder = builder.with_endpoint(url.clone());
    }
    let mut exporter = builder
        .build()
        .map_err(|e| TelemetryError::Otlp(format!("{e} (only OTLP/HTTP protobuf is built in; point the endpoint at the collector's port 4318)")))?;
    // `Resource::builder` also reads OTEL_RESOURCE_ATTRIBUTES.
    exporter.set_resource(
        &Resource::builder()
            .with_service_name(service.to_string())
            .build(),
    );
    Ok(exporter)
}

impl SpanExporter for RoutingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut groups: HashMap<String, Vec<SpanData>> = HashMap::new();
        for span in batch {
            groups.entry(self.service_of(&span)).or_default().push(span);
        }
        let mut result = Ok(());
        for (service, spans) in groups {
            let outcome = match self.exporter(&service) {
                Ok(e) => e.export(spans).await,
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                result = Err(e);
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        let mut result = Ok(());
        for e in self.all() {
            if let Err(err) = e.shutdown_with_timeout(timeout) {
                result = Err(err);
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        for e in self.all() {
            e.force_flush()?;
        }
        Ok(())
    }

    /// Each daemon's exporter has its own resource (see the module docs).
    fn set_resource(&mut self, _resource: &Resource) {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn config_wins_then_signal_variable_then_general_variable() {
        let mut s = TelemetrySettings::default();
        assert_eq!(endpoint(&s, env(&[])), None);
        assert_eq!(endpoint(&s, env(&[(ENDPOINT, "  ")])), None);
        assert_eq!(
            endpoint(
                &s,
                env(&[
                    (ENDPOINT, "http://c:4318"),
                    (TRACES_ENDPOINT, "http://t/v1/traces")
                ])
            ),
            Some(Endpoint::Env(format!(
                "{TRACES_ENDPOINT}=http://t/v1/traces"
            )))
        );
        assert_eq!(
            endpoint(&s, env(&[(ENDPOINT, "http://c:4318")])),
            Some(Endpoint::Env(format!("{ENDPOINT}=http://c:4318")))
        );
        s.otlp_endpoint = "http://jaeger:4318/".into();
        assert_eq!(
            endpoint(&s, env(&[(ENDPOINT, "http://c:4318")])),
            Some(Endpoint::Config("http://jaeger:4318/v1/traces".into()))
        );
    }
}
