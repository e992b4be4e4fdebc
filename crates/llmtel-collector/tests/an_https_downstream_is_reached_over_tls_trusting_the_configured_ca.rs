//! An `https://` downstream is reached over TLS, over gRPC as over HTTP/protobuf: a real TLS
//! server (rustls, a certificate of a CA made in the test) in front of a real OTLP receiver.
//! The CA given with `[forward] ca_file` is trusted; without it the handshake is refused
//! (the certificate is really checked) and nothing is delivered; a CA file that is not one
//! stops the collector at start with an error that names it.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "../../llmtel-alert/tests/support/tls.rs"]
mod tls;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use common::*;
use llmtel_collector::{Collector, Protocol};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tls::{TestCa, TlsFront};

fn llm_span() -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.request.model", "gpt-4o"),
        i("gen_ai.usage.input_tokens", 1_000),
        i("gen_ai.usage.output_tokens", 100),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_forwarding_to_https_trusts_the_configured_ca() {
    let ca = TestCa::new("collector-grpc");
    let (receiver, backend, _task) = Receiver::start().await;
    let front = TlsFront::start(&ca, &backend.to_string());
    let config = config(backend)
        .with_forward_endpoint(front.url(""))
        .unwrap()
        .with_forward_ca_file(&ca.file);
    let collector = Collector::start(config).await.unwrap();
    post_protobuf(
        &collector,
        request("svc", 5, vec![("tls-grpc".into(), llm_span())]),
    )
    .await;
    let (_, span) = receiver.wait_for("tls-grpc").await;
    assert!(
        attr(&span, "gen_ai.usage.cost").is_some(),
        "priced: {span:?}"
    );
    assert!(
        front.handshakes.load(Ordering::SeqCst) >= 1,
        "it came over TLS"
    );
    assert_eq!(front.failed_handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused_and_nothing_is_delivered() {
    let ca = TestCa::new("collector-untrusted");
    let (receiver, backend, _task) = Receiver::start().await;
    let front = TlsFront::start(&ca, &backend.to_string());
    let config = config(backend)
        .with_forward_endpoint(front.url(""))
        .unwrap()
        .with_retry_for(Duration::from_secs(1));
    let collector = Collector::start(config).await.unwrap();
    post_protobuf(
        &collector,
        request("svc", 6, vec![("untrusted".into(), llm_span())]),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while front.failed_handshakes.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the collector never tried the downstream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        front.handshakes.load(Ordering::SeqCst),
        0,
        "a certificate of an unknown CA"
    );
    assert!(
        receiver.spans.lock().unwrap().is_empty(),
        "nothing delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_forwarding_to_https_trusts_the_configured_ca() {
    let got: Arc<Mutex<Vec<Span>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        sink.lock().unwrap().extend(ss.spans);
                    }
                }
                ExportTraceServiceResponse::default().encode_to_vec()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let ca = TestCa::new("collector-http");
    let front = TlsFront::start(&ca, &backend.to_string());
    let config = config(backend)
        .with_forward_endpoint(front.url(""))
        .unwrap()
        .with_forward_protocol(Protocol::HttpProtobuf)
        .with_forward_ca_file(&ca.file);
    let collector = Collector::start(config).await.unwrap();
    post_protobuf(
        &collector,
        request("svc", 7, vec![("tls-http".into(), llm_span())]),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(span) = got.lock().unwrap().iter().find(|s| s.name == "tls-http") {
            assert!(
                attr(span, "gen_ai.usage.cost").is_some(),
                "priced: {span:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the span never arrived over https"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(front.handshakes.load(Ordering::SeqCst) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_that_is_not_a_certificate_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("ca.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    let any = "127.0.0.1:9".parse().unwrap();
    let err = Collector::start(
        config(any)
            .with_forward_endpoint("https://127.0.0.1:9")
            .unwrap()
            .with_forward_ca_file(&bogus),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("ca.pem") && err.contains("no PEM certificate"),
        "{err}"
    );
    let missing = dir.path().join("missing.pem");
    let err = Collector::start(
        config(any)
            .with_forward_endpoint("https://127.0.0.1:9")
            .unwrap()
            .with_forward_ca_file(&missing),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("missing.pem") && err.contains("give a readable PEM file"),
        "{err}"
    );
}
