//! A request the collector accepts can outgrow what the downstream takes: the stage adds
//! cost and other attributes to every LLM span (~600 bytes), and the collector may be set to
//! accept more than its downstream. Such a request is forwarded as several, each under
//! `[forward] max_request_bytes`, spans in order; without the split a gRPC downstream with
//! the usual 4 MiB limit (tonic's default, here; the OpenTelemetry Collector's and
//! Phoenix's too) refuses the whole request and every span in it is lost (counted).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use llmtel_collector::Collector;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

const CALLS: usize = 1_500;

/// One request of `CALLS` chat calls, each with a 4,000-byte attribute of the app's: ~6 MiB,
/// past the downstream's 4 MiB.
fn big_request() -> ExportTraceServiceRequest {
    let spans = (0..CALLS)
        .map(|n| {
            let mut attributes = chat_call("gpt-4o", None);
            attributes.push(s("app.note", &format!("{n:08}").repeat(500)));
            (format!("chat {n}"), attributes)
        })
        .collect();
    request("big-batch", 7, spans)
}

async fn collector(downstream: std::net::SocketAddr, forward_max: Option<usize>) -> Collector {
    let mut config = config(downstream)
        .with_max_request_bytes(16 * 1024 * 1024)
        .unwrap()
        .with_retry_for(Duration::from_secs(2));
    if let Some(max) = forward_max {
        config = config.with_forward_max_request_bytes(max).unwrap();
    }
    Collector::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_bigger_than_the_downstream_takes_arrives_whole_in_parts() {
    let (receiver, addr, _task) = Receiver::start().await;
    let collector = collector(addr, None).await;
    let req = big_request();
    assert!(prost::Message::encoded_len(&req) > 4 * 1024 * 1024);
    post_protobuf(&collector, req).await;

    // (The receiver holds a part's spans before its answer reaches the collector.)
    wait_until("every span reached the downstream and was counted", || {
        receiver.count() == CALLS && collector.stats().forwarded == CALLS as u64
    })
    .await;
    let stats = collector.stats();
    assert_eq!(stats.forwarded, CALLS as u64);
    assert_eq!(stats.priced, CALLS as u64);
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert_eq!(stats.requests_split, 1);
    let requests = receiver.encodings.lock().unwrap().len();
    assert!(requests >= 2, "one request of ~6 MiB went as {requests}");
    assert!(
        metrics(collector.metrics_addr())
            .await
            .contains("llmtel_collector_requests_split_total 1\n")
    );

    // In order, each under its resource, priced, its own attributes intact.
    let spans = receiver.spans.lock().unwrap().clone();
    for (n, (resource, span)) in spans.iter().enumerate() {
        assert_eq!(span.name, format!("chat {n}"));
        assert_eq!(resource, &vec![s("service.name", "big-batch")]);
        assert!(f64_attr(span, "gen_ai.usage.cost") > 0.0);
        assert_eq!(
            attr(span, "app.note"),
            Some(
                &opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                    format!("{n:08}").repeat(500)
                )
            )
        );
    }
    drop(collector);
}

/// The same request with the forward limit above the downstream's: refused whole, every
/// span in it counted as lost (what happened before requests were split).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_downstream_limit_the_whole_request_is_refused_and_counted() {
    let (receiver, addr, _task) = Receiver::start().await;
    let collector = collector(addr, Some(64 * 1024 * 1024)).await;
    post_protobuf(&collector, big_request()).await;

    wait_until("the request was given up", || {
        collector.stats().dropped_export_failed == CALLS as u64
    })
    .await;
    let stats = collector.stats();
    assert_eq!((stats.forwarded, stats.requests_split), (0, 0));
    assert_eq!(receiver.count(), 0);
    drop(collector);
}
