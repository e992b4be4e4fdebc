//! A downstream that leads back to the collector would have it forward every span to itself,
//! pricing and budgeting it again on each pass, without end (the README's own example,
//! `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 llmtel collector`, did). A downstream
//! that is plainly its own listener stops the start with what to change; a loop it cannot see
//! at start (through a proxy, a name) is caught by the `x-llmtel-collector` header every
//! forward carries: the request coming back is refused (HTTP 508, gRPC FAILED_PRECONDITION,
//! neither retried) and counted. Collectors chained on purpose still forward.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::*;
use llmtel_collector::{Collector, CollectorError, ConfigError, Protocol};

/// A free loopback port (bound, then released).
async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_on_its_own_listener_stops_the_start_saying_what_to_change() {
    for (protocol, listener) in [
        (Protocol::HttpProtobuf, "OTLP/HTTP"),
        (Protocol::Grpc, "OTLP/gRPC"),
    ] {
        let port = free_port().await;
        let own: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut config = config("127.0.0.1:1".parse().unwrap())
            .with_forward_endpoint(format!("http://localhost:{port}"))
            .unwrap()
            .with_forward_protocol(protocol);
        config = match protocol {
            Protocol::Grpc => config.with_grpc_listen(own),
            Protocol::HttpProtobuf => config.with_http_listen(own),
        };
        let err = Collector::start(config).await.unwrap_err();
        assert!(
            matches!(
                err,
                CollectorError::Config(ConfigError::ForwardsToItself { .. })
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(listener)
                && message.contains(&own.to_string())
                && message.contains("point the forward endpoint"),
            "{message}"
        );
    }
}

/// A TCP proxy on a free loopback port passing every connection to what `target` receives
/// once it is known: a way back to the collector its start cannot see.
async fn proxy() -> (SocketAddr, tokio::sync::oneshot::Sender<SocketAddr>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<SocketAddr>();
    tokio::spawn(async move {
        let target = rx.await.unwrap();
        loop {
            let (mut inbound, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    (addr, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_coming_back_is_refused_once_and_counted_over_http_and_grpc() {
    for protocol in [Protocol::HttpProtobuf, Protocol::Grpc] {
        let (back, target) = proxy().await;
        let collector = Collector::start(config(back).with_forward_protocol(protocol))
            .await
            .unwrap();
        target
            .send(match protocol {
                Protocol::Grpc => collector.grpc_addr(),
                Protocol::HttpProtobuf => collector.http_addr(),
            })
            .unwrap();
        post_protobuf(&collector, request("svc", 1, vec![("a".into(), vec![])])).await;
        wait_until("the span coming back is refused and dropped", || {
            collector.stats().dropped_rejected == 1
        })
        .await;
        let stats = collector.stats();
        assert_eq!(
            (stats.received, stats.refused_loop, stats.forwarded),
            (1, 1, 0),
            "{protocol:?}: {stats:?}"
        );
        let why = collector.last_error().unwrap();
        assert!(why.contains("forwarding loop"), "{why}");
        let m = metrics(collector.metrics_addr()).await;
        assert!(
            m.contains("llmtel_collector_requests_refused_total{reason=\"loop\"} 1\n"),
            "{m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectors_chained_on_purpose_still_forward() {
    let (receiver, downstream, _task) = Receiver::start().await;
    let second = Collector::start(config(downstream)).await.unwrap();
    let first = Collector::start(config(second.grpc_addr())).await.unwrap();
    post_protobuf(&first, request("svc", 1, vec![("chained".into(), vec![])])).await;
    receiver.wait_for("chained").await;
    assert_eq!(second.stats().refused_loop, 0);
    assert_eq!(first.stats().refused_loop, 0);
}
