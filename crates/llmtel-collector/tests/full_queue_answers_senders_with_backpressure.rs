//! With the downstream down, the collector's bounded queue fills; then senders are told to
//! back off (HTTP 429 with Retry-After and a `google.rpc.Status` body; gRPC UNAVAILABLE,
//! which every OTLP client retries, with a RetryInfo), every refused span is counted
//! exactly (as refused for now, not dropped: the senders still have them), and what was
//! queued is delivered once the downstream is back.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use llmtel_collector::Collector;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

async fn post(collector: &Collector, seed: u8) -> reqwest::Response {
    let req = request("svc", seed, vec![(format!("span {seed}"), vec![])]);
    send_protobuf(collector, &req).await
}

/// A loopback port nothing listens on (bound, then released).
async fn closed_port() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_get_429_and_unavailable_and_queued_spans_arrive_later() {
    let downstream = closed_port().await;
    let config = config(downstream)
        .with_queue_size(3)
        .unwrap()
        .with_retry_for(Duration::from_secs(120))
        .with_timeout(Duration::from_secs(2))
        .unwrap();
    let collector = Collector::start(config).await.unwrap();

    for seed in 1..=3 {
        assert_eq!(post(&collector, seed).await.status(), 200);
    }
    // The queue is full: HTTP senders are told to retry later...
    let r = post(&collector, 4).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let body = r.bytes().await.unwrap();
    let message = b"the forwarding queue is full; retry later";
    assert!(
        body.windows(message.len()).any(|w| w == message),
        "a google.rpc.Status with the message: {body:?}"
    );
    // ...and so are gRPC senders.
    let mut grpc = TraceServiceClient::connect(format!("http://{}", collector.grpc_addr()))
        .await
        .unwrap();
    let two = request(
        "svc",
        5,
        vec![("span 5a".into(), vec![]), ("span 5b".into(), vec![])],
    );
    let err = grpc.export(two.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    let retry_info = b"type.googleapis.com/google.rpc.RetryInfo";
    assert!(
        err.details()
            .windows(retry_info.len())
            .any(|w| w == retry_info),
        "a RetryInfo in the details: {:?}",
        err.details()
    );

    let stats = collector.stats();
    assert_eq!(stats.received, 3);
    assert_eq!(
        (stats.refused_retryable, stats.refused_retryable_spans),
        (2, 3),
        "1 span over HTTP + 2 over gRPC, told to retry"
    );
    assert_eq!(stats.dropped_queue_full, 0, "the senders still have them");
    assert_eq!(stats.dropped_export_failed, 0, "still retrying");
    assert_eq!(stats.queue_depth, 3);
    let m = metrics(collector.metrics_addr()).await;
    assert!(
        m.contains("llmtel_collector_spans_refused_retryable_total 3\n")
            && m.contains("llmtel_collector_requests_refused_retryable_total 2\n")
            && m.contains("llmtel_collector_spans_dropped_total{reason=\"queue_full\"} 0\n"),
        "{m}"
    );
    assert!(m.contains("llmtel_collector_queue_depth 3\n"), "{m}");

    // The downstream comes back: everything within the queue bound is delivered.
    let receiver = Receiver::default();
    let _task = receiver.serve(tokio::net::TcpListener::bind(downstream).await.unwrap());
    for seed in 1..=3 {
        receiver.wait_for(&format!("span {seed}")).await;
    }
    wait_until("the queue is empty", || collector.stats().queue_depth == 0).await;
    let stats = collector.stats();
    assert_eq!(stats.forwarded, 3);
    assert_eq!(stats.dropped(), 0);
    assert_eq!(receiver.count(), 3);
    // The refused requests are taken when their senders retry: the gRPC one first (it
    // needs more than half the queue, which is kept for it until it is in), then the rest.
    grpc.export(two).await.unwrap();
    assert_eq!(post(&collector, 6).await.status(), 200);
    receiver.wait_for("span 5b").await;
    receiver.wait_for("span 6").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_the_downstream_never_takes_are_dropped_and_counted_after_the_retry_time() {
    let downstream = closed_port().await;
    let config = config(downstream)
        .with_retry_for(Duration::from_millis(300))
        .with_timeout(Duration::from_secs(2))
        .unwrap();
    let collector = Collector::start(config).await.unwrap();
    let req = request("svc", 1, vec![("a".into(), vec![]), ("b".into(), vec![])]);
    assert_eq!(
        reqwest::Client::new()
            .post(format!("http://{}/v1/traces", collector.http_addr()))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&req).unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    wait_until("2 spans are dropped as export_failed", || {
        collector.stats().dropped_export_failed == 2
    })
    .await;
    let s = collector.stats();
    assert_eq!((s.queue_depth, s.forwarded, s.dropped()), (0, 0, 2));
    let m = metrics(collector.metrics_addr()).await;
    assert!(
        m.contains("llmtel_collector_spans_dropped_total{reason=\"export_failed\"} 2\n"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_of_more_spans_than_the_queue_holds_has_it_to_itself_not_a_413() {
    // A request of more spans than `queue_size` was refused 413 / INVALID_ARGUMENT, which
    // OTLP senders do not retry: its spans were lost. It waits for an empty queue and then
    // holds all of it.
    let downstream = closed_port().await;
    let config = config(downstream)
        .with_queue_size(2)
        .unwrap()
        .with_retry_for(Duration::from_secs(120))
        .with_timeout(Duration::from_secs(2))
        .unwrap();
    let collector = Collector::start(config).await.unwrap();
    let big = |seed: u8| {
        request(
            "svc",
            seed,
            (0..3)
                .map(|n| (format!("big {seed}.{n}"), vec![]))
                .collect(),
        )
    };
    assert_eq!(send_protobuf(&collector, &big(1)).await.status(), 200);
    let stats = collector.stats();
    assert_eq!(
        (stats.received, stats.queue_depth, stats.dropped_queue_full),
        (3, 2, 0),
        "the request holds the whole queue"
    );
    // The queue is full: anything else is told to retry later, counted (not as dropped).
    assert_eq!(post(&collector, 2).await.status(), 429);
    assert_eq!(send_protobuf(&collector, &big(3)).await.status(), 429);
    let stats = collector.stats();
    assert_eq!(
        (stats.refused_retryable_spans, stats.dropped_queue_full),
        (4, 0)
    );

    // The downstream comes back: all three spans are delivered and the room given back.
    let receiver = Receiver::default();
    let _task = receiver.serve(tokio::net::TcpListener::bind(downstream).await.unwrap());
    for n in 0..3 {
        receiver.wait_for(&format!("big 1.{n}")).await;
    }
    wait_until("the queue is empty", || collector.stats().queue_depth == 0).await;
    // The retried ones are taken once the queue is empty.
    assert_eq!(send_protobuf(&collector, &big(3)).await.status(), 200);
    for n in 0..3 {
        receiver.wait_for(&format!("big 3.{n}")).await;
    }
    wait_until("the queue is empty again", || {
        collector.stats().queue_depth == 0
    })
    .await;
    let stats = collector.stats();
    assert_eq!((stats.received, stats.forwarded), (6, 6), "{stats:?}");
    assert_eq!(receiver.count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_spans_fill_the_queue_by_bytes_before_its_span_count() {
    // Spans carrying ~20 KB each (an attribute the stage forwards as it came, so that a
    // staged request holds as much as it did decoded); the queue holds 8,192 spans but only
    // 64 KiB of requests: three fit, the fourth is told to retry later; all of it counted.
    // (A request bigger than the whole queue is refused at the door: the queue holds one of
    // `max_request_bytes` at least.)
    let downstream = closed_port().await;
    let config = config(downstream)
        .with_queue_bytes(64 * 1024)
        .unwrap()
        .with_max_request_bytes(64 * 1024)
        .unwrap()
        .with_retry_for(Duration::from_secs(120))
        .with_timeout(Duration::from_secs(2))
        .unwrap();
    let collector = Collector::start(config).await.unwrap();
    let big = |seed: u8, kb: usize| {
        request(
            "svc",
            seed,
            vec![(
                format!("big {seed}"),
                vec![s("app.payload", &"x".repeat(kb * 1000))],
            )],
        )
    };
    for seed in 1..=3 {
        assert_eq!(
            send_protobuf(&collector, &big(seed, 20)).await.status(),
            200
        );
    }
    // Settled once the three are staged (each then holds its encoded body only).
    let mut held = collector.stats().queue_bytes;
    let mut last = std::time::Instant::now();
    wait_until("the queue's bytes settle", || {
        let now = collector.stats().queue_bytes;
        if now != held {
            (held, last) = (now, std::time::Instant::now());
        }
        last.elapsed() > Duration::from_millis(300)
    })
    .await;
    assert!((60_000..64 * 1024).contains(&(held as usize)), "{held}");
    assert_eq!(send_protobuf(&collector, &big(4, 20)).await.status(), 429);
    let stats = collector.stats();
    assert_eq!(
        (
            stats.received,
            stats.refused_retryable_spans,
            stats.dropped_queue_full
        ),
        (3, 1, 0)
    );
    assert_eq!(stats.queue_bytes_capacity, 64 * 1024);
    let m = metrics(collector.metrics_addr()).await;
    assert!(
        m.contains(&format!("llmtel_collector_queue_bytes {held}\n")),
        "{m}"
    );

    // The downstream comes back: what was held is delivered and its bytes freed.
    let receiver = Receiver::default();
    let _task = receiver.serve(tokio::net::TcpListener::bind(downstream).await.unwrap());
    for seed in 1..=3 {
        receiver.wait_for(&format!("big {seed}")).await;
    }
    wait_until("the queue is empty", || {
        let s = collector.stats();
        s.queue_depth == 0 && s.queue_bytes == 0
    })
    .await;
    assert_eq!(send_protobuf(&collector, &big(6, 20)).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_collector_tells_senders_on_open_connections_to_retry() {
    // A shutdown stops accepting connections; an OTLP exporter keeps its HTTP/2 connection
    // and goes on sending. Those requests were answered "accepted" for spans the stopping
    // forwarders would never send.
    let downstream = closed_port().await;
    let config = config(downstream)
        .with_retry_for(Duration::from_secs(120))
        .with_timeout(Duration::from_secs(2))
        .unwrap();
    let collector = Collector::start(config).await.unwrap();
    let mut grpc = TraceServiceClient::connect(format!("http://{}", collector.grpc_addr()))
        .await
        .unwrap();
    grpc.export(request("svc", 1, vec![("span 1".into(), vec![])]))
        .await
        .unwrap();
    let stopping = tokio::spawn(collector.shutdown(Duration::from_secs(2)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = grpc
        .export(request("svc", 2, vec![("span 2".into(), vec![])]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    let stats = stopping.await.unwrap();
    assert_eq!((stats.received, stats.queue_depth), (1, 1), "{stats:?}");
}
