//! Spans no stage can take (a trace id that is not 16 bytes, an all-zero span id, a parent
//! id of the wrong length) are left out as the request arrives, counted in
//! `dropped_invalid`, and the sender is told in OTLP's partial success (`rejected_spans`
//! and a message saying what is wrong), over OTLP/HTTP (protobuf and JSON) and gRPC; the
//! valid spans of the same request are forwarded.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use llmtel_collector::Collector;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

/// A request of four spans named `{tag} ...`: one valid, three with invalid ids.
fn mixed(
    tag: &str,
    seed: u8,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    let mut req = request(
        "svc",
        seed,
        ["valid", "short trace", "zero span", "long parent"]
            .iter()
            .map(|n| (format!("{tag} {n}"), vec![]))
            .collect(),
    );
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    spans[1].trace_id.truncate(15);
    spans[2].span_id = vec![0; 8];
    spans[3].parent_span_id = vec![1; 9];
    req
}

fn assert_partial(r: &ExportTraceServiceResponse) {
    let p = r.partial_success.as_ref().expect("a partial success");
    assert_eq!(p.rejected_spans, 3, "{p:?}");
    assert!(
        p.error_message.contains("invalid trace or span id"),
        "{p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spans_are_counted_and_told_to_the_sender_over_every_transport() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();

    // OTLP/HTTP protobuf.
    let r = send_protobuf(&collector, &mixed("proto", 1)).await;
    assert_eq!(r.status(), 200);
    assert_partial(&ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap());

    // OTLP/HTTP JSON.
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", collector.http_addr()))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&mixed("json", 2)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let p = &json["partialSuccess"];
    assert_eq!(
        p["rejectedSpans"]
            .as_i64()
            .or_else(|| p["rejectedSpans"].as_str()?.parse().ok()),
        Some(3),
        "{body}"
    );
    assert!(
        p["errorMessage"]
            .as_str()
            .unwrap()
            .contains("invalid trace or span id"),
        "{body}"
    );

    // gRPC.
    let mut grpc = TraceServiceClient::connect(format!("http://{}", collector.grpc_addr()))
        .await
        .unwrap();
    assert_partial(&grpc.export(mixed("grpc", 3)).await.unwrap().into_inner());

    // A request of valid spans only gets no partial success.
    let ok = send_protobuf(
        &collector,
        &request("svc", 4, vec![("all good".into(), vec![])]),
    )
    .await;
    let ok = ExportTraceServiceResponse::decode(ok.bytes().await.unwrap()).unwrap();
    assert!(ok.partial_success.is_none(), "{ok:?}");

    for tag in ["proto", "json", "grpc"] {
        receiver.wait_for(&format!("{tag} valid")).await;
    }
    receiver.wait_for("all good").await;
    wait_until("every valid span forwarded", || {
        collector.stats().forwarded == 4
    })
    .await;
    let stats = collector.stats();
    assert_eq!(stats.dropped_invalid, 9, "{stats:?}");
    assert_eq!(stats.received, 4, "{stats:?}");
    assert_eq!(receiver.count(), 4);
    let m = metrics(collector.metrics_addr()).await;
    assert!(
        m.contains("llmtel_collector_spans_dropped_total{reason=\"invalid\"} 9\n"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spans_of_a_request_told_to_retry_are_counted_once_when_it_is_accepted() {
    // The downstream is down and the queue holds one span: a request is told to retry
    // (429) until there is room; its invalid spans were counted again on every refusal.
    // The downstream's port is held until the collector has bound its own: freed earlier,
    // the collector's listener (port 0) could be given it, and refused to forward to itself.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let downstream = l.local_addr().unwrap();
    let config = config(downstream)
        .with_queue_size(1)
        .unwrap()
        .with_retry_for(std::time::Duration::from_secs(120))
        .with_timeout(std::time::Duration::from_secs(2))
        .unwrap();
    let collector = Collector::start(config).await.unwrap();
    drop(l);
    post_protobuf(
        &collector,
        request("svc", 1, vec![("first".into(), vec![])]),
    )
    .await;
    for _ in 0..3 {
        let r = send_protobuf(&collector, &mixed("retried", 2)).await;
        assert_eq!(r.status(), 429);
    }
    assert_eq!(collector.stats().dropped_invalid, 0, "nothing final yet");

    // The downstream comes back; the sender retries until the request is accepted.
    let receiver = Receiver::default();
    let _task = receiver.serve(tokio::net::TcpListener::bind(downstream).await.unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = send_protobuf(&collector, &mixed("retried", 2)).await;
        if r.status() == 200 {
            assert_partial(&ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap());
            break;
        }
        assert_eq!(r.status(), 429);
        assert!(std::time::Instant::now() < deadline, "never accepted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    receiver.wait_for("retried valid").await;
    let stats = collector.stats();
    assert_eq!(stats.dropped_invalid, 3, "{stats:?}");
    assert_eq!(stats.received, 2, "{stats:?}");
}
