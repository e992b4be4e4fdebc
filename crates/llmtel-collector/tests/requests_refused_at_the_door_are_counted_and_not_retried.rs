//! Requests refused as they arrive are counted by reason (`Stats::refused_*`,
//! `llmtel_collector_requests_refused_total{reason}`): a body over the listener's limit (its
//! 413 was counted only inside the listener), a gzip body inflating past `max_request_bytes`,
//! a body that is not OTLP, an encoding the collector does not take. A gRPC message over the
//! limit was refused by tonic with `OUT_OF_RANGE`, which OTLP senders retry: they sent the
//! same oversized batch for minutes. It is now `INVALID_ARGUMENT` (not retried), plain or
//! gzip-compressed alike, as over HTTP.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;

use common::*;
use llmtel_collector::Collector;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message as _;

const LIMIT: usize = 1024 * 1024;

/// A request of one span carrying `bytes` of an attribute (compresses to almost nothing).
fn big(bytes: usize) -> ExportTraceServiceRequest {
    request(
        "svc",
        1,
        vec![("big".into(), vec![s("app.blob", &"x".repeat(bytes))])],
    )
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(body).unwrap();
    enc.finish().unwrap()
}

async fn post(
    collector: &Collector,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::StatusCode {
    let mut r = reqwest::Client::new().post(format!("http://{}/v1/traces", collector.http_addr()));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(body).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_requests_are_counted_by_reason_and_never_out_of_range() {
    let (receiver, downstream, _task) = Receiver::start().await;
    let collector = Collector::start(config(downstream).with_max_request_bytes(LIMIT).unwrap())
        .await
        .unwrap();
    let proto = [("content-type", "application/x-protobuf")];
    let gzipped = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "gzip"),
    ];
    let five_mib = big(5 * 1024 * 1024).encode_to_vec();

    // HTTP: 5 MiB, over the 1 MiB limit, refused by the listener as its length is read (the
    // connection closed under a sender still sending may lose the 413 it was answered).
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", collector.http_addr()))
        .header("content-type", "application/x-protobuf")
        .body(five_mib.clone())
        .send()
        .await;
    assert!(r.as_ref().map_or(true, |r| r.status() == 413), "{r:?}");
    // HTTP: gzip, small on the wire, inflating past the limit.
    assert_eq!(post(&collector, &gzipped, gzip(&five_mib)).await, 413);
    assert_eq!(collector.stats().refused_too_large, 2);
    // Not OTLP, not gzip, not a content type or encoding the collector takes.
    assert_eq!(
        post(&collector, &proto, b"\xff\xff not protobuf".to_vec()).await,
        400
    );
    assert_eq!(post(&collector, &gzipped, b"not gzip".to_vec()).await, 400);
    let br = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "br"),
    ];
    assert_eq!(post(&collector, &br, Vec::new()).await, 415);
    assert_eq!(
        post(&collector, &[("content-type", "text/plain")], Vec::new()).await,
        415
    );

    // gRPC: a 5 MiB message, plain and gzip-compressed: INVALID_ARGUMENT, which OTLP senders
    // do not retry (OUT_OF_RANGE they do).
    let url = format!("http://{}", collector.grpc_addr());
    for compressed in [false, true] {
        let mut grpc = TraceServiceClient::connect(url.clone()).await.unwrap();
        if compressed {
            grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
        }
        let err = grpc.export(big(5 * 1024 * 1024)).await.unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::InvalidArgument,
            "gzip {compressed}: {err:?}"
        );
        assert!(err.message().contains("max_request_bytes"), "{err:?}");
    }

    let stats = collector.stats();
    assert_eq!(
        (
            stats.refused_too_large,
            stats.refused_bad_request,
            stats.refused_encoding
        ),
        (4, 1, 3),
        "{stats:?}"
    );
    assert_eq!((stats.received, receiver.count()), (0, 0));
    let m = metrics(collector.metrics_addr()).await;
    for line in [
        "llmtel_collector_requests_refused_total{reason=\"too_large\"} 4\n",
        "llmtel_collector_requests_refused_total{reason=\"bad_request\"} 1\n",
        "llmtel_collector_requests_refused_total{reason=\"encoding\"} 3\n",
    ] {
        assert!(m.contains(line), "{line} in {m}");
    }

    // A request under the limit still goes through, over both transports.
    post_protobuf(&collector, big(1000)).await;
    let mut grpc = TraceServiceClient::connect(url).await.unwrap();
    grpc.export(big(1000)).await.unwrap();
    wait_until("both are forwarded", || collector.stats().forwarded == 2).await;
}
