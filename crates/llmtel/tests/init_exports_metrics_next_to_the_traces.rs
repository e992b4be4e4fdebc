//! `llmtel::builder()` with an endpoint exports the OpenTelemetry GenAI metrics over OTLP next
//! to the traces: same endpoint (`/v1/metrics` next to `/v1/traces`), same resource, flushed
//! when the guard drops, failed calls included. The receiver is a real OTLP/HTTP endpoint in
//! the test, decoding the protobuf body with `opentelemetry-proto`. It works from a plain
//! `fn main` and from inside a tokio runtime (`#[tokio::main]`).
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use llmtel_semconv::metrics as semconv;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};
use prost::Message;
use tracing_subscriber::prelude::*;

/// An OTLP/HTTP receiver on a free loopback port: (path, body) of every POST.
fn receiver() -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
    let (url, requests) = support::otlp_http::receiver();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for r in requests {
            assert!(r.head.starts_with("post "), "{}", r.head);
            assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
            let _ = tx.send((r.path, r.body));
        }
    });
    (url, rx)
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(ref s)),
            }) => Some(s.as_str()),
            _ => None,
        })
}

/// Two LLM calls through `builder()` (one failed), the guard dropped, then what arrived.
fn two_calls_then_drop() -> (Vec<String>, ExportMetricsServiceRequest) {
    let (url, rx) = receiver();
    two_calls_then_drop_at(llmtel::Protocol::HttpProtobuf, url, rx)
}

/// Two LLM calls (one answered, one failed) through `build()` exporting to `url`, then the
/// guard dropped; returns the export paths received (`/v1/traces`, `/v1/metrics`) and the
/// last metrics export.
fn two_calls_then_drop_at(
    protocol: llmtel::Protocol,
    url: String,
    rx: mpsc::Receiver<(String, Vec<u8>)>,
) -> (Vec<String>, ExportMetricsServiceRequest) {
    let (layer, guard) = llmtel::builder()
        .with_endpoint(url)
        .with_protocol(protocol)
        .with_service_name("init-metrics-test")
        .with_console(false)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    assert!(guard.is_exporting());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _root = tracing::info_span!("request").entered();
        {
            let call = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
            llmtel::record_usage(
                &call,
                &llmtel::Usage {
                    input_tokens: 1_200,
                    output_tokens: 345,
                    ..Default::default()
                },
            );
        }
        {
            let call = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
            llmtel::record_error(&call, "rate_limit", "429 Too Many Requests");
        }
    });
    drop(guard); // flushes the traces, then the metrics

    let mut paths = Vec::new();
    let mut metrics = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !(metrics.is_some() && paths.iter().any(|p| p == "/v1/traces"))
    {
        let Ok((path, body)) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if path == "/v1/metrics" {
            // Cumulative temporality: the last export holds the totals.
            metrics = Some(ExportMetricsServiceRequest::decode(body.as_slice()).unwrap());
        }
        paths.push(path);
    }
    (
        paths.clone(),
        metrics.unwrap_or_else(|| panic!("no /v1/metrics export; received {paths:?}")),
    )
}

fn assert_metrics(paths: &[String], req: &ExportMetricsServiceRequest) {
    assert!(
        paths.iter().any(|p| p == "/v1/traces"),
        "the traces went to the same endpoint: {paths:?}"
    );
    let rm = &req.resource_metrics[0];
    assert_eq!(rm.schema_url, llmtel_semconv::SCHEMA_URL);
    let res = rm.resource.as_ref().unwrap();
    assert_eq!(
        attr(&res.attributes, "service.name"),
        Some("init-metrics-test")
    );
    let metrics: Vec<&Metric> = rm.scope_metrics.iter().flat_map(|s| &s.metrics).collect();
    let get = |name: &str| -> &Metric {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} not exported"))
    };
    let hist = |m: &Metric| match &m.data {
        Some(metric::Data::Histogram(h)) => h.data_points.clone(),
        other => panic!("{} is not a histogram: {other:?}", m.name),
    };

    let tokens = hist(get(semconv::CLIENT_TOKEN_USAGE));
    let of_type = |t: &str| {
        tokens
            .iter()
            .find(|p| attr(&p.attributes, "gen_ai.token.type") == Some(t))
            .unwrap_or_else(|| panic!("no {t} tokens"))
    };
    assert_eq!(of_type("input").sum, Some(1_200.0));
    assert_eq!(of_type("input").count, 1);
    assert_eq!(of_type("output").sum, Some(345.0));
    assert_eq!(
        attr(&of_type("input").attributes, "gen_ai.request.model"),
        Some("gpt-4o-mini")
    );

    let dur = hist(get(semconv::CLIENT_OPERATION_DURATION));
    assert_eq!(dur.iter().map(|p| p.count).sum::<u64>(), 2);
    let failed = dur
        .iter()
        .find(|p| attr(&p.attributes, "error.type") == Some("rate_limit"))
        .expect("the failed call is recorded with error.type");
    assert_eq!(failed.count, 1);
}

#[test]
fn init_exports_metrics_next_to_the_traces_from_a_plain_main() {
    let (paths, req) = two_calls_then_drop();
    assert_metrics(&paths, &req);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_exports_metrics_next_to_the_traces_inside_a_tokio_runtime() {
    let (paths, req) = two_calls_then_drop();
    assert_metrics(&paths, &req);
}

#[tokio::test(flavor = "current_thread")]
async fn init_exports_metrics_next_to_the_traces_inside_a_current_thread_runtime() {
    let (paths, req) = two_calls_then_drop();
    assert_metrics(&paths, &req);
}

#[test]
fn with_metrics_false_sends_only_the_traces() {
    let (url, rx) = receiver();
    let (layer, guard) = llmtel::builder()
        .with_endpoint(url)
        .with_protocol(llmtel::Protocol::HttpProtobuf)
        .with_console(false)
        .with_metrics(false)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _call = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
    });
    drop(guard);
    let mut paths = Vec::new();
    while let Ok((path, _)) = rx.recv_timeout(Duration::from_millis(500)) {
        paths.push(path);
    }
    assert!(paths.iter().any(|p| p == "/v1/traces"), "{paths:?}");
    assert!(!paths.iter().any(|p| p == "/v1/metrics"), "{paths:?}");
}

mod grpc {
    //! The same over OTLP/gRPC: an in-test tonic server with the OTLP metrics and trace
    //! services.
    use super::*;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
        MetricsService, MetricsServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };

    #[derive(Clone)]
    struct Receiver(mpsc::Sender<(String, Vec<u8>)>);

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

    /// A gRPC OTLP receiver on its own thread and runtime.
    fn grpc_receiver() -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
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
                    .add_service(MetricsServiceServer::new(r.clone()))
                    .add_service(TraceServiceServer::new(r))
                    .serve_with_incoming(incoming)
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        (format!("http://{addr}"), rx)
    }

    fn two_calls_over_grpc_then_drop() -> (Vec<String>, ExportMetricsServiceRequest) {
        let (url, rx) = grpc_receiver();
        two_calls_then_drop_at(llmtel::Protocol::Grpc, url, rx)
    }

    #[test]
    fn over_grpc_from_a_plain_main() {
        let (paths, req) = two_calls_over_grpc_then_drop();
        assert_metrics(&paths, &req);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_grpc_inside_a_tokio_runtime() {
        let (paths, req) = two_calls_over_grpc_then_drop();
        assert_metrics(&paths, &req);
    }
}
