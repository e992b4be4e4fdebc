//! The queue's byte bound (`queue_bytes`) counts what a request holds: decoded until the
//! stage has run it, its encoded bodies after. A staged request used to keep the room of its
//! decoded structures while only its encoded bodies were held (a request of many small
//! attributes holds several times its wire size decoded): with the downstream down, the
//! queue refused senders while holding a fraction of its bound. And a request accepted at
//! the door (under `max_request_bytes`) whose decoded structures alone took more than the
//! queue was refused as too large, for good, though OTLP senders do not retry it: now it
//! waits for an empty queue and has it to itself, and a `queue_bytes` below
//! `max_request_bytes` is a configuration error saying what to set.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use llmtel_collector::{Collector, Config};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// A request of one span with `n` attributes of a few bytes each (some 100 bytes each once
/// decoded), and its size on the wire.
fn tiny_attributes(seed: u8, n: usize) -> (ExportTraceServiceRequest, usize) {
    let attributes = (0..n).map(|k| i(&format!("{}", k % 10), 1)).collect();
    let req = request("svc", seed, vec![(format!("tiny {seed}"), attributes)]);
    let wire = prost::Message::encoded_len(&req);
    (req, wire)
}

/// A loopback port nothing listens on (bound, then released).
async fn closed_port() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

fn collector_config(downstream: std::net::SocketAddr, queue_bytes: usize) -> Config {
    config(downstream)
        .with_queue_bytes(queue_bytes)
        .unwrap()
        .with_max_request_bytes(64 * 1024)
        .unwrap()
        .with_retry_for(Duration::from_secs(120))
        .with_timeout(Duration::from_secs(2))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_request_gives_back_the_room_its_decoded_structures_took() {
    let downstream = closed_port().await;
    let collector = Collector::start(collector_config(downstream, 256 * 1024))
        .await
        .unwrap();
    let (a, wire) = tiny_attributes(1, 2_000);
    assert!(wire < 32 * 1024, "{wire}");
    assert_eq!(send_protobuf(&collector, &a).await.status(), 200);
    // Staged (and retried against the closed port): only its encoded body is held.
    wait_until("the staged request holds its encoded size", || {
        let held = collector.stats().queue_bytes as usize;
        held > 0 && held < 2 * wire
    })
    .await;
    // So a second one fits, where two decoded ones would not.
    let (b, _) = tiny_attributes(2, 2_000);
    let r = send_protobuf(&collector, &b).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // The downstream comes back: both are delivered and their room freed.
    let receiver = Receiver::default();
    let _task = receiver.serve(tokio::net::TcpListener::bind(downstream).await.unwrap());
    receiver.wait_for("tiny 1").await;
    receiver.wait_for("tiny 2").await;
    wait_until("the queue is empty", || {
        let s = collector.stats();
        s.queue_depth == 0 && s.queue_bytes == 0
    })
    .await;
    assert_eq!(collector.stats().dropped(), 0, "{:?}", collector.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_bigger_decoded_than_the_queue_is_queued_not_refused_for_good() {
    let downstream = closed_port().await;
    let collector = Collector::start(collector_config(downstream, 64 * 1024))
        .await
        .unwrap();
    // ~20 KB on the wire, under max_request_bytes; far more than 64 KiB decoded.
    let (a, wire) = tiny_attributes(1, 2_000);
    assert!(wire < 32 * 1024, "{wire}");
    let r = send_protobuf(&collector, &a).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let receiver = Receiver::default();
    let _task = receiver.serve(tokio::net::TcpListener::bind(downstream).await.unwrap());
    let (_, span) = receiver.wait_for("tiny 1").await;
    assert_eq!(span.attributes.len(), 2_000);
    wait_until("the queue is empty", || {
        let s = collector.stats();
        s.queue_depth == 0 && s.queue_bytes == 0
    })
    .await;
    let stats = collector.stats();
    assert_eq!((stats.forwarded, stats.dropped()), (1, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_smaller_than_the_largest_accepted_request_is_a_clear_error() {
    // In the file, whatever the order of the keys.
    for toml in [
        "queue_bytes = 65536\n",
        "max_request_bytes = 1048576\nqueue_bytes = 524288\n",
    ] {
        let msg = Config::from_toml(toml).unwrap_err().to_string();
        assert!(
            msg.contains("queue_bytes") && msg.contains("max_request_bytes"),
            "{msg}"
        );
        assert!(msg.contains("set queue_bytes to at least"), "{msg}");
    }
    // Given in code: refused as the collector starts.
    let (_receiver, downstream, _task) = Receiver::start().await;
    let err = Collector::start(config(downstream).with_queue_bytes(64 * 1024).unwrap())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("set queue_bytes to at least 4194304"), "{err}");
}
