//! An endpoint the OTLP exporters cannot use fails `build()` with an error that says which
//! exporter (spans or metrics) and what to check, without the credentials the endpoint holds:
//! the metrics exporter's error quoted the endpoint as it was given, password included, and
//! called itself the span exporter.
#![cfg(all(feature = "metrics", feature = "otlp-grpc", feature = "otlp-http"))]
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

/// A URL that does not parse (the space), with a password in it.
const BAD_ENDPOINT: &str = "https://u:hunter2@exa mple.com";

fn build_error(protocol: llmtel::Protocol, metrics: bool) -> String {
    let err = llmtel::builder()
        .with_endpoint(BAD_ENDPOINT)
        .with_protocol(protocol)
        .with_console(false)
        .with_metrics(metrics)
        .build::<tracing_subscriber::Registry>()
        .map(|_| ())
        .unwrap_err();
    // What an app prints: Display, and Debug for `?` in main.
    format!("{err} / {err:?}")
}

#[test]
fn the_metrics_exporter_error_hides_the_password_and_names_the_metrics_exporter() {
    for protocol in [llmtel::Protocol::HttpProtobuf, llmtel::Protocol::Grpc] {
        let err = build_error(protocol, true);
        assert!(!err.contains("hunter2"), "{protocol:?}: {err}");
        assert!(err.contains("metrics exporter"), "{protocol:?}: {err}");
        assert!(!err.contains("span exporter"), "{protocol:?}: {err}");
    }
}

#[test]
fn the_span_exporter_error_hides_the_password_too() {
    for protocol in [llmtel::Protocol::HttpProtobuf, llmtel::Protocol::Grpc] {
        let err = build_error(protocol, false);
        assert!(!err.contains("hunter2"), "{protocol:?}: {err}");
        assert!(err.contains("span exporter"), "{protocol:?}: {err}");
    }
}

#[test]
fn otlp_meter_provider_hides_the_password() {
    for protocol in [llmtel::Protocol::HttpProtobuf, llmtel::Protocol::Grpc] {
        let err = llmtel::metrics::otlp_meter_provider(llmtel::metrics::OtlpMetricsConfig {
            endpoint: Some(BAD_ENDPOINT.into()),
            protocol: Some(protocol),
            ..Default::default()
        })
        .map(|_| ())
        .unwrap_err();
        let err = format!("{err} / {err:?}");
        assert!(!err.contains("hunter2"), "{protocol:?}: {err}");
        assert!(err.contains("metrics exporter"), "{protocol:?}: {err}");
    }
}
