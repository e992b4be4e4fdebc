//! OTLP/HTTP export of the OpenTelemetry metrics (feature `otlp`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

use crate::MetricsError;

/// Where and how often [`otlp_meter_provider`] exports. Settings made here win over the
/// environment.
#[derive(Clone, Debug, Default)]
pub struct OtlpMetricsConfig {
    /// Full URL of the metrics endpoint, or a base URL (`/v1/metrics` is appended). Else
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (as is), else `OTEL_EXPORTER_OTLP_ENDPOINT` +
    /// `/v1/metrics`, else `http://127.0.0.1:4318/v1/metrics`.
    pub endpoint: Option<String>,
    /// Headers of every export (merged over `OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
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

impl OtlpMetricsConfig {
    /// Trusts the CA certificates of this PEM file for an https endpoint.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
}

/// The CA certificates to trust, from the config or the environment.
fn ca_certs(config: &OtlpMetricsConfig) -> Result<Vec<reqwest::Certificate>, MetricsError> {
    let source = match &config.ca_file {
        Some(p) => Some((p.clone(), "ca_file")),
        None => [
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
        ]
        .into_iter()
        .find_map(|v| env(v).map(|p| (PathBuf::from(p), v))),
    };
    let Some((path, from)) = source else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(&path).map_err(|e| {
        MetricsError::Otlp(format!(
            "cannot read the CA certificate file {} ({from}): {e}; give a readable PEM file",
            path.display()
        ))
    })?;
    reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            MetricsError::Otlp(format!(
                "the CA certificate file {} ({from}) holds no PEM certificate",
                path.display()
            ))
        })
}

fn env(key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The metrics URL from an explicit endpoint or the environment.
fn metrics_url(explicit: Option<&str>) -> String {
    let with_path = |base: &str| {
        let base = base.trim_end_matches('/');
        if base.ends_with("/v1/metrics") {
            base.to_owned()
        } else {
            format!("{base}/v1/metrics")
        }
    };
    if let Some(e) = explicit {
        return with_path(e);
    }
    if let Some(e) = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
        return e;
    }
    with_path(&env("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|| "http://127.0.0.1:4318".into()))
}

/// A `MeterProvider` exporting over OTLP/HTTP (protobuf) from a periodic reader of its own
/// thread, with the GenAI schema URL on its resource. Feed it to
/// [`OtelMetricsSink::from_provider`](crate::OtelMetricsSink::from_provider) and call
/// `shutdown()` on it (or drop the last clone) at exit to flush.
///
/// An `https://` endpoint works out of the box (rustls with the platform's certificate
/// verifier); [`OtlpMetricsConfig::ca_file`] or `OTEL_EXPORTER_OTLP_CERTIFICATE` trusts a
/// private CA as well.
///
/// gRPC is not offered here (tonic needs the app's tokio runtime for the periodic reader);
/// apps on gRPC build their own provider and pass its meter to the sink.
///
/// ```no_run
/// use std::sync::Arc;
/// let provider = llmtel_metrics::otlp_meter_provider(Default::default())?;
/// let sink = llmtel_metrics::OtelMetricsSink::from_provider(&provider);
/// let _guard = llmtel::builder().with_sink(Arc::new(sink)).install()?;
/// // ... at exit:
/// provider.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`MetricsError::Protocol`] when `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` /
/// `OTEL_EXPORTER_OTLP_PROTOCOL` asks for gRPC; [`MetricsError::Otlp`] when the exporter cannot
/// be built.
pub fn otlp_meter_provider(config: OtlpMetricsConfig) -> Result<SdkMeterProvider, MetricsError> {
    if let Some(p) =
        env("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL").or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
    {
        if !matches!(p.as_str(), "http/protobuf" | "http") && config.endpoint.is_none() {
            return Err(MetricsError::Protocol(p));
        }
    }
    let certs = ca_certs(&config)?;
    let url = metrics_url(config.endpoint.as_deref());
    let mut headers: HashMap<String, String> = env("OTEL_EXPORTER_OTLP_HEADERS")
        .map(|h| {
            h.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    headers.extend(config.headers);
    // A blocking client (rustls, the platform's verifier plus the CA), built off any async
    // runtime (reqwest forbids building or dropping its inner runtime inside one); the
    // periodic reader runs on its own thread.
    let client = std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .tls_certs_merge(certs)
            .build()
    })
    .join()
    .map_err(|_| MetricsError::Otlp("cannot build the HTTP client".into()))?
    .map_err(|e| MetricsError::Otlp(format!("cannot build the HTTP client: {e}")))?;
    let mut b = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(client)
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(10));
    if !headers.is_empty() {
        b = b.with_headers(headers);
    }
    let exporter = b.build().map_err(|e| MetricsError::Otlp(e.to_string()))?;
    let interval = config.interval.unwrap_or_else(|| {
        env("OTEL_METRIC_EXPORT_INTERVAL")
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::from_secs(60), Duration::from_millis)
    });
    let reader = PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build();
    let mut resource = Resource::builder();
    if let Some(name) = config.service_name {
        resource = resource.with_service_name(name);
    }
    let resource = resource
        .with_attributes(config.resource)
        .with_schema_url(Vec::<KeyValue>::new(), llmtel_semconv::SCHEMA_URL)
        .build();
    Ok(SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build())
}
