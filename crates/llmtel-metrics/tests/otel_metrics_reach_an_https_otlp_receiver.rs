//! `otlp_meter_provider` exports to an `https://` receiver: a real local TLS server (a CA made
//! in the test) fronts an in-test OTLP/HTTP receiver that decodes the export with
//! `opentelemetry-proto`. The CA is trusted through `OtlpMetricsConfig::with_ca_file`; without
//! it the export fails (an error, no panic) and nothing arrives.
#![cfg(feature = "otlp")]
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
#[path = "../../llmtel/tests/support/otlp_http.rs"]
mod otlp_http;
#[path = "../../llmtel-alert/tests/support/tls.rs"]
mod tls;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use llmtel_metrics::{OtelMetricsSink, OtlpMetricsConfig, otlp_meter_provider};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use tls::{TestCa, TlsFront};

/// A plain OTLP/HTTP receiver: the decoded metrics exports.
fn receiver() -> (String, mpsc::Receiver<ExportMetricsServiceRequest>) {
    let (url, requests) = otlp_http::receiver();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for r in requests {
            if let Ok(req) = ExportMetricsServiceRequest::decode(r.body.as_slice()) {
                let _ = tx.send(req);
            }
        }
    });
    (url.trim_start_matches("http://").to_owned(), rx)
}

fn export_one_call(config: OtlpMetricsConfig) -> bool {
    let provider = otlp_meter_provider(OtlpMetricsConfig {
        interval: Some(Duration::from_secs(3600)),
        service_name: Some("metrics-tls-test".into()),
        ..config
    })
    .unwrap();
    let sink = OtelMetricsSink::builder().build(&provider.meter("llmtel"));
    common::run(vec![Arc::new(sink)], || {
        common::call("gpt-4o-mini", 1_000, 100, "u", None);
    });
    let ok = provider.force_flush().is_ok();
    let _ = provider.shutdown();
    ok
}

#[test]
fn metrics_reach_an_https_receiver_trusting_a_custom_ca() {
    let ca = TestCa::new("metrics");
    let (backend, rx) = receiver();
    let front = TlsFront::start(&ca, &backend);
    assert!(export_one_call(
        OtlpMetricsConfig {
            endpoint: Some(front.url("")),
            ..Default::default()
        }
        .with_ca_file(&ca.file)
    ));
    let req = rx.recv_timeout(Duration::from_secs(10)).expect("an export");
    let names: Vec<&str> = req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.as_str())
        .collect();
    assert!(
        names.contains(&llmtel_semconv::metrics::CLIENT_TOKEN_USAGE),
        "{names:?}"
    );
}

#[test]
fn an_untrusted_receiver_fails_the_export_and_gets_nothing() {
    let ca = TestCa::new("metrics-untrusted");
    let (backend, rx) = receiver();
    let front = TlsFront::start(&ca, &backend);
    let ok = export_one_call(OtlpMetricsConfig {
        endpoint: Some(front.url("")),
        ..Default::default()
    });
    assert!(!ok, "the export to an untrusted server should fail");
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
    assert!(front.wait_failed_handshakes(1) >= 1);
}

#[test]
fn a_ca_file_without_certificates_is_a_clear_error() {
    let bad =
        std::env::temp_dir().join(format!("llmtel-metrics-bad-ca-{}.pem", std::process::id()));
    std::fs::write(&bad, "nope").unwrap();
    let err =
        otlp_meter_provider(OtlpMetricsConfig::default().with_ca_file(&bad)).expect_err("an error");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}
