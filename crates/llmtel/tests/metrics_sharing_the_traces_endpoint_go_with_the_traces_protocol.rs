//! The metrics go to the traces' endpoint when they have none of their own
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` shared, or the traces' own variable alone), and one
//! endpoint speaks one protocol: with only `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc` set,
//! the metrics were sent over OTLP/HTTP to the gRPC port (`POST :4317/v1/metrics`), every
//! export failing. They now go with the traces' protocol; `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`
//! (or `OTEL_EXPORTER_OTLP_PROTOCOL`) set still wins.
//!
//! The variables are process-wide and the workspace forbids `unsafe` (no `set_var`), so each
//! case runs in a child process of this test binary.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

#[path = "support/grpc_metrics.rs"]
mod grpc_metrics;
mod support;

use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;

const CHILD: &str = "LLMTEL_ENV_TEST_CHILD";

/// Every variable these tests set, removed from the child's environment first.
const VARS: [&str; 10] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_SDK_DISABLED",
];

/// Runs the child with `env`; asserts it built llmtel.
fn run_child(env: &[(&str, &str)]) {
    let out = support::child::run("child_makes_one_llm_call", CHILD, &VARS, env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("RESULT ok"),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds llmtel from the environment, makes one LLM call and drops the guard (which
/// exports the metrics).
#[test]
#[ignore = "child process of the tests of this file"]
fn child_makes_one_llm_call() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let built = llmtel::builder()
        .with_console(false)
        .build::<tracing_subscriber::Registry>();
    let (layer, guard) = match built {
        Ok(built) => built,
        Err(e) => {
            println!("RESULT error: {e}");
            return;
        }
    };
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let call = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
        llmtel::record_usage(
            &call,
            &llmtel::Usage {
                input_tokens: 100,
                output_tokens: 20,
                ..Default::default()
            },
        );
    });
    drop(guard);
    println!("RESULT ok");
}

#[test]
fn metrics_sharing_the_endpoint_go_with_a_traces_only_grpc_protocol() {
    // The receiver takes metrics only (the traces' exports are refused, which the child
    // survives): the metrics go where the traces do, over the traces' protocol.
    let (grpc_url, metrics_rx) = grpc_metrics::receiver();
    run_child(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &grpc_url),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
    ]);
    assert!(
        metrics_rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "no metrics export reached the gRPC receiver at the shared endpoint"
    );
}

/// The paths the HTTP receiver was sent, until a metrics export (at most 10 s).
fn paths_until_metrics(rx: &std::sync::mpsc::Receiver<support::otlp_http::Request>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut paths = Vec::new();
    while Instant::now() < deadline && !paths.iter().any(|p| p == "/v1/metrics") {
        if let Ok(r) = rx.recv_timeout(Duration::from_millis(100)) {
            paths.push(r.path);
        }
    }
    paths
}

/// With no traces exported (`OTEL_TRACES_EXPORTER=none`) nothing else uses the endpoint:
/// the metrics keep the specification's default, OTLP/HTTP.
#[test]
fn with_no_traces_exported_the_metrics_keep_the_default_protocol() {
    let (url, rx) = support::otlp_http::receiver();
    run_child(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ]);
    assert_eq!(paths_until_metrics(&rx), ["/v1/metrics"]);
}

#[test]
fn the_metrics_own_protocol_still_wins() {
    let (url, rx) = support::otlp_http::receiver();
    run_child(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ]);
    assert_eq!(paths_until_metrics(&rx), ["/v1/metrics"]);
}
