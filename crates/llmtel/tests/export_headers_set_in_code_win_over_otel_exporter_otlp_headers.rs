//! A header set in code (`Builder::with_header`, a preset's credentials) wins over one of the
//! same name, any case, in `OTEL_EXPORTER_OTLP_HEADERS`, over OTLP/HTTP and gRPC: the
//! variable meant for another backend never replaces it (nor reaches the code's host in its
//! place); the variable's other headers are still sent. opentelemetry-otlp merges the
//! variable over the headers it is given, so llmtel puts the code's on each request last.
//!
//! Also from the environment: `OTEL_SERVICE_NAME` wins over a `service.name` in
//! `OTEL_RESOURCE_ATTRIBUTES`, as the specification says.
//!
//! The variable is process-wide and the workspace forbids `unsafe` (no `set_var`), so each
//! export runs in a child process of this test binary.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::sync::mpsc;
use std::time::Duration;

use tracing_subscriber::prelude::*;

/// The values of `authorization` and `x-env` on an export request.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    authorization: Vec<String>,
    x_env: Vec<String>,
    service: String,
}

/// The `service.name` of the request's first resource.
fn service_of(
    req: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    req.resource_spans
        .iter()
        .filter_map(|r| r.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn http_receiver() -> (String, mpsc::Receiver<Seen>) {
    let (url, requests) = support::otlp_http::receiver();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for r in requests.iter().filter(|r| r.path == "/v1/traces") {
            let all = |name: &str| {
                r.head
                    .lines()
                    .filter_map(|l| l.strip_prefix(name))
                    .filter_map(|rest| rest.strip_prefix(':'))
                    .map(|v| v.trim().to_owned())
                    .collect::<Vec<_>>()
            };
            use prost::Message as _;
            let req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(r.body.as_slice())
                .unwrap_or_default();
            let _ = tx.send(Seen {
                authorization: all("authorization"),
                x_env: all("x-env"),
                service: service_of(&req),
            });
        }
    });
    (url, rx)
}

mod grpc {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };

    #[derive(Clone)]
    struct Receiver(mpsc::Sender<Seen>);

    #[tonic::async_trait]
    impl TraceService for Receiver {
        async fn export(
            &self,
            req: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let all = |name: &str| {
                req.metadata()
                    .get_all(name)
                    .iter()
                    .map(|v| v.to_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
            };
            let _ = self.0.send(Seen {
                authorization: all("authorization"),
                x_env: all("x-env"),
                service: service_of(req.get_ref()),
            });
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    /// A plain OTLP/gRPC receiver on its own thread and runtime.
    pub(super) fn receiver() -> (String, mpsc::Receiver<Seen>) {
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
                    .add_service(TraceServiceServer::new(Receiver(tx)))
                    .serve_with_incoming(incoming)
                    .await
                    .unwrap();
            });
        });
        (format!("http://{}", addr_rx.recv().unwrap()), rx)
    }
}

const CHILD: &str = "LLMTEL_HEADERS_TEST_CHILD";

fn run_child(endpoint: &str, protocol: &str) {
    let out = support::child::run(
        "child_exports_one_call_with_a_code_header",
        CHILD,
        &[
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            // Meant for another backend: its Authorization must not replace the code's.
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Bearer%20from-env,x-env=kept",
            ),
            ("OTEL_SERVICE_NAME", "checkout"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=legacy,deployment.environment=prod",
            ),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "child process of the header tests"]
fn child_exports_one_call_with_a_code_header() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let (layer, guard) = llmtel::builder()
        .with_header("authorization", "Bearer from-code")
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

fn first(rx: &mpsc::Receiver<Seen>) -> Seen {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("an export request")
}

#[test]
fn over_http_the_code_authorization_is_sent_once_and_the_variables_other_headers_too() {
    let (url, rx) = http_receiver();
    run_child(&url, "http/protobuf");
    assert_eq!(
        first(&rx),
        Seen {
            // (The test receiver lowercases what it read.)
            authorization: vec!["bearer from-code".into()],
            x_env: vec!["kept".into()],
            service: "checkout".into(),
        }
    );
}

#[test]
fn over_grpc_the_code_authorization_is_sent_once_and_the_variables_other_headers_too() {
    let (url, rx) = grpc::receiver();
    run_child(&url, "grpc");
    assert_eq!(
        first(&rx),
        Seen {
            authorization: vec!["Bearer from-code".into()],
            x_env: vec!["kept".into()],
            service: "checkout".into(),
        }
    );
}
