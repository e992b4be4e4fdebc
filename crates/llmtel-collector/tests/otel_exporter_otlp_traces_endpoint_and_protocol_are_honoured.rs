//! The signal-specific variables of the OTLP exporter specification choose the downstream
//! as they do for any OTLP exporter: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` over
//! `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` over
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, the traces endpoint used as is (no `/v1/traces` added).
//! A real collector forwards a span to a real gRPC or HTTP receiver chosen that way.
//!
//! The variables are process-wide and the workspace forbids `unsafe` (no `set_var`), so each
//! collector runs in a child process of this test binary, started with them set.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use llmtel_collector::{Collector, Config};

const CHILD: &str = "LLMTEL_COLLECTOR_ENV_TEST_CHILD";

/// Runs the child collector with `env` (the other OTLP exporter variables unset); it
/// forwards one span named "from the environment" and passes once the downstream took it.
async fn run_child(env: Vec<(&'static str, String)>) {
    let out = tokio::task::spawn_blocking(move || {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args([
            "--exact",
            "child_forwards_one_span",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ]);
        c.env(CHILD, "1");
        for k in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        ] {
            c.env_remove(k);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the environment tests"]
async fn child_forwards_one_span() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let any = "127.0.0.1:0".parse().unwrap();
    // No endpoint or protocol configured: the environment's.
    let config = Config::new()
        .with_grpc_listen(any)
        .with_http_listen(any)
        .with_metrics_listen(any)
        .with_retry_for(Duration::from_secs(2));
    let collector = Collector::start(config).await.unwrap();
    post_protobuf(
        &collector,
        request(
            "svc",
            50,
            vec![("from the environment".into(), chat_call("gpt-4o", None))],
        ),
    )
    .await;
    wait_until("the downstream answered", || {
        let s = collector.stats();
        s.forwarded + s.dropped() > 0
    })
    .await;
    let stats = collector.stats();
    assert_eq!(stats.forwarded, 1, "{stats:?}");
}

/// A port nothing listens on.
fn dead() -> String {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traces_endpoint_and_protocol_win_over_the_general_ones() {
    let (receiver, grpc, _rx) = Receiver::start().await;
    run_child(vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", dead()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://{grpc}"),
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc".into()),
    ])
    .await;
    let (_, span) = receiver.wait_for("from the environment").await;
    assert!(attr(&span, "gen_ai.usage.cost").is_some(), "priced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traces_protocol_applies_to_the_general_endpoint() {
    let (receiver, grpc, _rx) = Receiver::start().await;
    run_child(vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{grpc}")),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc".into()),
    ])
    .await;
    receiver.wait_for("from the environment").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_traces_endpoint_is_used_as_is() {
    use axum::routing::post;
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message as _;
    // Only this path answers: `/v1/traces` added to it would be refused (404).
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/ingest/otlp/traces",
        post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        sink.lock()
                            .unwrap()
                            .extend(ss.spans.into_iter().map(|s| s.name));
                    }
                }
                ExportTraceServiceResponse::default().encode_to_vec()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    run_child(vec![
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://{addr}/ingest/otlp/traces"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
    ])
    .await;
    assert_eq!(*got.lock().unwrap(), ["from the environment"]);
}
