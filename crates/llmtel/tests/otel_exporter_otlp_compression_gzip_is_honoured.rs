//! `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` (what many backends' setup guides tell users to
//! set) compresses llmtel's OTLP exports over HTTP/protobuf and gRPC, with the default
//! features: in-test receivers see a gzip body (`Content-Encoding: gzip`, `grpc-encoding:
//! gzip`), decompress and decode it, and find the priced LLM span.
//!
//! The variable is process-wide and the workspace forbids `unsafe` (no `set_var`), so each
//! export runs in a child process of this test binary.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tracing_subscriber::prelude::*;

/// What a receiver got: the encoding it was told, and the request decoded.
type Got = (String, ExportTraceServiceRequest);

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A plain OTLP/HTTP receiver: (content-encoding, decoded request) of each `/v1/traces`.
fn http_receiver() -> (String, mpsc::Receiver<Got>) {
    let (url, requests) = support::otlp_http::receiver();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for r in requests.iter().filter(|r| r.path == "/v1/traces") {
            let encoding = r.header("content-encoding").unwrap_or_default().to_owned();
            let raw = if encoding == "gzip" {
                gunzip(&r.body)
            } else {
                r.body.clone()
            };
            if let Ok(req) = ExportTraceServiceRequest::decode(raw.as_slice()) {
                let _ = tx.send((encoding, req));
            }
        }
    });
    (url.trim_start_matches("http://").to_owned(), rx)
}

mod grpc {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use tonic::codec::CompressionEncoding;

    #[derive(Clone)]
    struct Receiver(mpsc::Sender<Got>);

    #[tonic::async_trait]
    impl TraceService for Receiver {
        async fn export(
            &self,
            req: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let encoding = req
                .metadata()
                .get("grpc-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let _ = self.0.send((encoding, req.into_inner()));
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    /// A plain OTLP/gRPC receiver that accepts gzip, on its own thread and runtime.
    pub(super) fn receiver() -> (String, mpsc::Receiver<Got>) {
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
                tonic::transport::Server::builder()
                    .add_service(
                        TraceServiceServer::new(Receiver(tx))
                            .accept_compressed(CompressionEncoding::Gzip),
                    )
                    .serve_with_incoming(incoming)
                    .await
                    .unwrap();
            });
        });
        (format!("http://{}", addr_rx.recv().unwrap()), rx)
    }
}

const CHILD: &str = "LLMTEL_COMPRESSION_TEST_CHILD";

fn run_child(env: &[(&str, String)]) {
    let out = support::child::run(
        "child_exports_one_call",
        CHILD,
        &[
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        ],
        env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "child process of the compression tests"]
fn child_exports_one_call() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let (layer, guard) = llmtel::builder()
        .with_service_name("gzip-test")
        .with_console(false)
        .with_metrics(false)
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
    let h = llmtel::health();
    assert!(h.spans_exported >= 1 && h.spans_export_failed == 0, "{h:?}");
}

/// The priced span arrived, and with which encoding.
fn priced_span_arrived(rx: &mpsc::Receiver<Got>) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let Ok((encoding, req)) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let priced = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .any(|s| s.attributes.iter().any(|kv| kv.key == "gen_ai.usage.cost"));
        if priced {
            return encoding;
        }
    }
    panic!("no priced span arrived");
}

#[test]
fn http_protobuf_exports_are_gzip_with_otel_exporter_otlp_compression() {
    let (addr, rx) = http_receiver();
    run_child(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
    ]);
    assert_eq!(priced_span_arrived(&rx), "gzip");
}

#[test]
fn grpc_exports_are_gzip_with_otel_exporter_otlp_traces_compression() {
    let (url, rx) = grpc::receiver();
    run_child(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip".to_owned()),
    ]);
    assert_eq!(priced_span_arrived(&rx), "gzip");
}

#[test]
fn without_the_variable_exports_are_not_compressed() {
    let (addr, rx) = http_receiver();
    run_child(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
    ]);
    assert_eq!(priced_span_arrived(&rx), "");
}
