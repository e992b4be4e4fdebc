//! OTLP export of the GenAI metrics for apps that build their own pipeline: the same meter
//! provider [`crate::init`] exports with.

use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::init::{InitError, Protocol, genai_resource, spawn_metrics};

/// Where and how [`otlp_meter_provider`] exports. Settings made here win over the
/// environment. `Debug` shows no header value and a redacted endpoint.
#[derive(Clone, Default)]
pub struct OtlpMetricsConfig {
    /// Transport (else `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`, else
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`).
    pub protocol: Option<Protocol>,
    /// The metrics endpoint. Over HTTP, a base URL gets `/v1/metrics` (a trailing
    /// `/v1/traces` is replaced). Else `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (as is), else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `/v1/metrics` over HTTP), else the local default
    /// (`http://localhost:4318/v1/metrics`, gRPC `http://localhost:4317`).
    pub endpoint: Option<String>,
    /// Headers (gRPC metadata) of every export, sent with those of
    /// `OTEL_EXPORTER_OTLP_METRICS_HEADERS` / `OTEL_EXPORTER_OTLP_HEADERS` (a name set in both,
    /// any case: this value, put on each request last).
    pub headers: Vec<(String, String)>,
    /// How long one export request may take (else `OTEL_EXPORTER_OTLP_METRICS_TIMEOUT`, else
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, in milliseconds, else 10 s).
    pub timeout: Option<Duration>,
    /// Export interval (else `OTEL_METRIC_EXPORT_INTERVAL` in ms, else 60 s).
    pub interval: Option<Duration>,
    /// `service.name` (else `OTEL_SERVICE_NAME`).
    pub service_name: Option<String>,
    /// More resource attributes (merged over `OTEL_RESOURCE_ATTRIBUTES`).
    pub resource: Vec<KeyValue>,
    /// A PEM file of CA certificates trusted for an `https://` endpoint on top of the
    /// platform's roots (else `OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE`, else
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for OtlpMetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpMetricsConfig")
            .field("protocol", &self.protocol)
            .field(
                "endpoint",
                &self.endpoint.as_deref().map(crate::redact::redact),
            )
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| (k, "<redacted>"))
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl OtlpMetricsConfig {
    /// Trusts the CA certificates of this PEM file for an https endpoint.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
}

/// A `MeterProvider` exporting over OTLP (gRPC or HTTP/protobuf) with the GenAI schema URL on
/// its resource: the pipeline [`crate::init`] exports llmtel's metrics with, for apps that
/// compose their own. Feed it to
/// [`OtelMetricsSink::from_provider`](crate::metrics::OtelMetricsSink::from_provider) and call
/// `shutdown()` on it at exit to export what is left.
///
/// Its exports run on a small thread of llmtel's with a single-threaded tokio runtime, so it
/// works in apps with or without tokio, inside `#[tokio::main]` too; the thread stops when the
/// provider shuts down. An `https://` endpoint works out of the box (rustls and the
/// platform's roots); [`OtlpMetricsConfig::ca_file`] or `OTEL_EXPORTER_OTLP_CERTIFICATE`
/// trusts a private CA as well.
///
/// ```no_run
/// use std::sync::Arc;
/// let provider = llmtel::metrics::otlp_meter_provider(Default::default())?;
/// let sink = llmtel::metrics::OtelMetricsSink::from_provider(&provider);
/// let _guard = llmtel::builder().with_sink(Arc::new(sink)).install()?;
/// // ... at exit:
/// provider.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`InitError`] when the CA file cannot be read or
/// holds no certificate, the exporter cannot be built (its transport's feature is off, a bad
/// endpoint), or the thread cannot start.
pub fn otlp_meter_provider(config: OtlpMetricsConfig) -> Result<SdkMeterProvider, InitError> {
    let protocol = match config.protocol {
        Some(p) => p,
        None => Protocol::from_env("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"),
    };
    let headers = crate::headers::CodeHeaders::new(config.headers)?;
    let timeout = crate::headers::export_timeout(
        config.timeout,
        &[
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ],
    );
    let resource = genai_resource(config.service_name, config.resource);
    let export = spawn_metrics(
        protocol,
        config.endpoint,
        headers,
        resource,
        config.ca_file.as_deref(),
        config.interval,
        timeout,
    )?;
    // The runtime now lives with the exporter, inside the provider, and stops at its shutdown.
    Ok(export.provider)
}
