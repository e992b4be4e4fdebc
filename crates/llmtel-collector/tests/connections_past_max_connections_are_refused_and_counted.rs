//! The OTLP/gRPC listener had no limits (tonic's defaults: any number of connections and
//! streams, no request timeout, no keepalive) while the OTLP/HTTP one is capped. Both now
//! serve at most `max_connections` connections at once: one more is refused (gRPC: closed at
//! once; HTTP: 503) and counted in `refused_connections`, and a place freed is taken again.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use llmtel_collector::Collector;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

type Client = TraceServiceClient<tonic::transport::Channel>;

/// A gRPC client on its own connection that exported one span (the connection is open).
async fn exporting(url: &str, seed: u8) -> Result<Client, tonic::Status> {
    let mut c = TraceServiceClient::connect(url.to_owned())
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    c.export(request("svc", seed, vec![(format!("span {seed}"), vec![])]))
        .await?;
    Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_connection_past_the_cap_is_refused_counted_and_its_place_taken_once_freed() {
    let (receiver, downstream, _task) = Receiver::start().await;
    let collector = Collector::start(config(downstream).with_max_connections(2).unwrap())
        .await
        .unwrap();
    let url = format!("http://{}", collector.grpc_addr());
    let first = exporting(&url, 1).await.unwrap();
    let _second = exporting(&url, 2).await.unwrap();

    // Closed at once: the client sees its connection fail (a transport error, which OTLP
    // exporters retry).
    assert!(exporting(&url, 3).await.is_err());
    assert!(collector.stats().refused_connections >= 1);
    let m = metrics(collector.metrics_addr()).await;
    assert!(
        !m.contains("llmtel_collector_connections_refused_total 0\n"),
        "{m}"
    );

    // A connection closed frees its place.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(15);
    while exporting(&url, 4).await.is_err() {
        assert!(Instant::now() < deadline, "the freed place was never taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver.wait_for("span 4").await;
    assert_eq!(
        receiver
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| s.name == "span 3")
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_connection_past_the_cap_is_answered_503_and_counted() {
    let (_receiver, downstream, _task) = Receiver::start().await;
    let collector = Collector::start(config(downstream).with_max_connections(1).unwrap())
        .await
        .unwrap();
    // One client keeps its connection open (kept alive after its request).
    let kept = reqwest::Client::new();
    let url = format!("http://{}/v1/traces", collector.http_addr());
    let ok = kept
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // The listener answers 503 as soon as it accepts the connection, which a client may
    // see before it has sent its request (then as an error).
    let other = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(Vec::new())
        .send()
        .await;
    assert!(
        other.as_ref().map_or(true, |r| r.status() == 503),
        "{other:?}"
    );
    assert_eq!(collector.stats().refused_connections, 1);
    let m = metrics(collector.metrics_addr()).await;
    assert!(
        m.contains("llmtel_collector_connections_refused_total 1\n"),
        "{m}"
    );
    drop(kept);
}

#[test]
fn a_max_connections_of_zero_is_a_clear_error() {
    let e = llmtel_collector::Config::from_toml("max_connections = 0")
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_connections must be at least 1"), "{e}");
    assert!(llmtel_collector::Config::from_toml("max_connections = 8").is_ok());
}
