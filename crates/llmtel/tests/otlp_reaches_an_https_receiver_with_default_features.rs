//! OTLP to an https receiver works with llmtel's default features, over HTTP/protobuf and
//! gRPC: a real local TLS server (a CA and a server certificate made in the test) fronts
//! in-test OTLP receivers, which decode what arrives with `opentelemetry-proto`. The CA is
//! trusted through `Builder::with_ca_file`, `OTEL_EXPORTER_OTLP_CERTIFICATE` or
//! `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`. A receiver whose certificate is not trusted gets
//! nothing, and the failed export is counted (no panic); a CA file that cannot be used is a
//! clear error at init.
//!
//! The environment-variable cases run in a child process of this test binary (the variables
//! are process-wide; the workspace forbids `unsafe`, so no `set_var`).
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;
#[path = "../../llmtel-alert/tests/support/tls.rs"]
mod tls;

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use llmtel_semconv::gen_ai;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use tls::{TestCa, TlsFront};
use tracing_subscriber::prelude::*;

type Received = mpsc::Receiver<(String, Vec<u8>)>;

/// A plain OTLP/HTTP receiver on a free loopback port: (path, body) of every POST.
fn http_receiver() -> (String, Received) {
    let (url, requests) = support::otlp_http::receiver();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for r in requests {
            let _ = tx.send((r.path, r.body));
        }
    });
    (url.trim_start_matches("http://").to_owned(), rx)
}

mod grpc {
    use super::*;
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
        MetricsService, MetricsServiceServer,
    };
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };

    #[derive(Clone)]
    struct Receiver(mpsc::Sender<(String, Vec<u8>)>);

    #[tonic::async_trait]
    impl TraceService for Receiver {
        async fn export(
            &self,
            req: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let _ = self
                .0
                .send(("/v1/traces".into(), req.into_inner().encode_to_vec()));
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    #[tonic::async_trait]
    impl MetricsService for Receiver {
        async fn export(
            &self,
            req: tonic::Request<ExportMetricsServiceRequest>,
        ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
            let _ = self
                .0
                .send(("/v1/metrics".into(), req.into_inner().encode_to_vec()));
            Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
        }
    }

    /// A plain OTLP/gRPC receiver (tonic) on its own thread and runtime.
    pub(super) fn receiver() -> (String, Received) {
        let (tx, rx) = mpsc::channel();
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let incoming =
                    tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
                        .unwrap();
                addr_tx.send(incoming.local_addr().unwrap()).unwrap();
                let r = Receiver(tx);
                tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(r.clone()))
                    .add_service(MetricsServiceServer::new(r))
                    .serve_with_incoming(incoming)
                    .await
                    .unwrap();
            });
        });
        (addr_rx.recv().unwrap().to_string(), rx)
    }
}

/// One priced LLM call through `builder` (endpoint, protocol and CA set by the caller), then
/// the guard dropped (which flushes).
fn one_call(builder: llmtel::Builder) {
    let (layer, guard) = builder
        .with_service_name("tls-test")
        .with_console(false)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    assert!(guard.is_exporting());
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
}

/// Waits for a `/v1/traces` export and asserts it carries the call's span.
fn assert_span_arrived(rx: &Received, paths_wanted: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut paths = Vec::new();
    let mut span_seen = false;
    while Instant::now() < deadline
        && !(span_seen && paths_wanted.iter().all(|w| paths.iter().any(|p| p == w)))
    {
        let Ok((path, body)) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if path == "/v1/traces" {
            let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            span_seen |= req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .any(|span| {
                    span.attributes.iter().any(|kv| {
                        kv.key == gen_ai::REQUEST_MODEL
                            && matches!(
                                kv.value.as_ref().and_then(|v| v.value.as_ref()),
                                Some(any_value::Value::StringValue(m)) if m == "gpt-4o-mini"
                            )
                    })
                });
        }
        paths.push(path);
    }
    assert!(
        span_seen,
        "the LLM span did not arrive over TLS; got {paths:?}"
    );
    for w in paths_wanted {
        assert!(paths.iter().any(|p| p == w), "no {w} export; got {paths:?}");
    }
    let h = llmtel::health();
    assert!(h.spans_exported >= 1 && h.spans_export_failed == 0, "{h:?}");
}

#[test]
fn http_protobuf_spans_and_metrics_reach_an_https_receiver_trusting_with_ca_file() {
    let ca = TestCa::new("otlp-http");
    let (backend, rx) = http_receiver();
    let front = TlsFront::start(&ca, &backend);
    one_call(
        llmtel::builder()
            .with_endpoint(front.url(""))
            .with_protocol(llmtel::Protocol::HttpProtobuf)
            .with_ca_file(&ca.file),
    );
    assert_span_arrived(&rx, &["/v1/traces", "/v1/metrics"]);
    assert!(front.handshakes.load(Ordering::SeqCst) >= 1);
}

#[test]
fn grpc_spans_and_metrics_reach_an_https_receiver_trusting_with_ca_file() {
    let ca = TestCa::new("otlp-grpc");
    let (backend, rx) = grpc::receiver();
    let front = TlsFront::start(&ca, &backend);
    one_call(
        llmtel::builder()
            .with_endpoint(front.url(""))
            .with_protocol(llmtel::Protocol::Grpc)
            .with_ca_file(&ca.file),
    );
    assert_span_arrived(&rx, &["/v1/traces", "/v1/metrics"]);
    assert!(front.handshakes.load(Ordering::SeqCst) >= 1);
}

#[test]
fn a_grpc_endpoint_without_a_scheme_is_reached_over_tls_trusting_the_ca_file() {
    // `host:4317` with no scheme is secure (the OTLP exporter specification): TLS with the
    // platform's roots and the CA file, not a TLS client that trusts nothing.
    let ca = TestCa::new("otlp-grpc-no-scheme");
    let (backend, rx) = grpc::receiver();
    let front = TlsFront::start(&ca, &backend);
    let url = front.url("");
    let no_scheme = url.trim_start_matches("https://");
    assert_ne!(no_scheme, url);
    one_call(
        llmtel::builder()
            .with_endpoint(no_scheme)
            .with_protocol(llmtel::Protocol::Grpc)
            .with_ca_file(&ca.file)
            .with_metrics(false),
    );
    assert_span_arrived(&rx, &["/v1/traces"]);
    assert!(front.handshakes.load(Ordering::SeqCst) >= 1);
}

#[test]
fn an_untrusted_receiver_gets_nothing_and_the_failed_export_is_counted() {
    for protocol in [llmtel::Protocol::HttpProtobuf, llmtel::Protocol::Grpc] {
        let before = llmtel::health();
        let ca = TestCa::new("untrusted");
        let (backend, rx) = match protocol {
            llmtel::Protocol::HttpProtobuf => http_receiver(),
            llmtel::Protocol::Grpc => grpc::receiver(),
        };
        let front = TlsFront::start(&ca, &backend);
        one_call(
            llmtel::builder()
                .with_endpoint(front.url(""))
                .with_protocol(protocol)
                .with_metrics(false),
        );
        let after = llmtel::health();
        assert!(
            after.spans_export_failed > before.spans_export_failed
                && after.export_errors > before.export_errors,
            "{protocol:?}: the failed export is not counted: {before:?} -> {after:?}"
        );
        assert_eq!(after.spans_exported, before.spans_exported, "{protocol:?}");
        assert!(front.wait_failed_handshakes(1) >= 1, "{protocol:?}");
        assert!(
            rx.try_recv().is_err(),
            "{protocol:?}: something got through"
        );
    }
}

#[test]
fn a_ca_file_that_cannot_be_used_is_a_clear_error_at_init() {
    let missing = std::env::temp_dir().join("llmtel-no-such-otlp-ca.pem");
    let err = llmtel::builder()
        .with_endpoint("https://127.0.0.1:1")
        .with_ca_file(&missing)
        .build::<tracing_subscriber::Registry>()
        .err()
        .expect("a missing CA file is an error");
    let text = err.to_string();
    assert!(matches!(err, llmtel::InitError::Certificate(_)), "{err:?}");
    assert!(
        text.contains("CA certificate file") && text.contains("PEM"),
        "{text}"
    );

    let bad = std::env::temp_dir().join(format!("llmtel-bad-otlp-ca-{}.pem", std::process::id()));
    std::fs::write(&bad, "not a certificate").unwrap();
    let err = llmtel::builder()
        .with_endpoint("https://127.0.0.1:1")
        .with_protocol(llmtel::Protocol::Grpc)
        .with_ca_file(&bad)
        .build::<tracing_subscriber::Registry>()
        .err()
        .expect("a file without certificates is an error");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}

// --- the standard variables, in a child process ---

const CHILD: &str = "LLMTEL_TLS_TEST_CHILD";

fn run_child(test: &str, env: &[(&str, String)]) {
    let out = support::child::run(
        test,
        CHILD,
        &[
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_INSECURE",
            "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
            "OTEL_EXPORTER_OTLP_METRICS_INSECURE",
            "OTEL_METRICS_EXPORTER",
        ],
        env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {test} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn grpc_trusts_the_ca_of_otel_exporter_otlp_certificate() {
    let ca = TestCa::new("env-grpc");
    let (backend, rx) = grpc::receiver();
    let front = TlsFront::start(&ca, &backend);
    run_child(
        "child_exports_with_the_environment",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", front.url("")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                ca.file.display().to_string(),
            ),
        ],
    );
    assert_span_arrived_from_child(&rx, &["/v1/traces", "/v1/metrics"]);
}

#[test]
fn http_trusts_the_ca_of_otel_exporter_otlp_traces_certificate() {
    let ca = TestCa::new("env-http");
    let (backend, rx) = http_receiver();
    let front = TlsFront::start(&ca, &backend);
    run_child(
        "child_exports_with_the_environment",
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                front.url("/v1/traces"),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                ca.file.display().to_string(),
            ),
        ],
    );
    assert_span_arrived_from_child(&rx, &["/v1/traces"]);
}

/// `..._METRICS_INSECURE=true` says nothing about the traces: their schemeless gRPC
/// endpoint is reached over TLS. llmtel read any signal's variable and turned TLS off for the
/// traces too, while their exporter, reading its own, made the endpoint `https://` with no TLS
/// settings: every handshake failed.
#[test]
fn a_schemeless_grpc_endpoint_is_reached_over_tls_when_only_the_metrics_are_insecure() {
    let ca = TestCa::new("env-grpc-metrics-insecure");
    let (backend, rx) = grpc::receiver();
    let front = TlsFront::start(&ca, &backend);
    let url = front.url("");
    let no_scheme = url.trim_start_matches("https://");
    assert_ne!(no_scheme, url);
    run_child(
        "child_exports_with_the_environment",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", no_scheme.to_owned()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
            ("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "true".to_owned()),
            ("OTEL_METRICS_EXPORTER", "none".to_owned()),
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                ca.file.display().to_string(),
            ),
        ],
    );
    assert_span_arrived_from_child(&rx, &["/v1/traces"]);
    assert!(front.handshakes.load(Ordering::SeqCst) >= 1);
}

/// As [`assert_span_arrived`], for exports made by a child process (this process's health
/// counters saw nothing).
fn assert_span_arrived_from_child(rx: &Received, paths_wanted: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got: Vec<(String, Vec<u8>)> = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(x) => got.push(x),
            Err(_) if !got.is_empty() => break,
            Err(_) => {}
        }
    }
    let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    for w in paths_wanted {
        assert!(paths.contains(w), "no {w} export; got {paths:?}");
    }
    let span_seen = got
        .iter()
        .filter(|(p, _)| p == "/v1/traces")
        .any(|(_, body)| {
            ExportTraceServiceRequest::decode(body.as_slice())
                .unwrap()
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .any(|s| {
                    s.attributes
                        .iter()
                        .any(|kv| kv.key == gen_ai::REQUEST_MODEL)
                })
        });
    assert!(
        span_seen,
        "the LLM span did not arrive over TLS; got {paths:?}"
    );
}

/// Run by the tests above in a child process, with the OTLP variables set.
#[test]
#[ignore = "child process of the *_trusts_the_ca_of_* tests"]
fn child_exports_with_the_environment() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    one_call(llmtel::builder());
    let h = llmtel::health();
    assert!(h.spans_exported >= 1 && h.spans_export_failed == 0, "{h:?}");
}
