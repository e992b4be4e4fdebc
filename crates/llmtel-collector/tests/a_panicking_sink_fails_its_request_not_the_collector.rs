//! The stage runs code that is not the collector's: sinks given with `Config::with_sink`, the
//! budgets' store, the quality monitor. A panic there used to kill the forwarder task with
//! its job: the job's queue room never came back (the queue depth never returned to 0, a
//! shutdown waited its whole timeout) and once the four forwarders were dead every request
//! was answered "accepted" and dropped. Now the panicking request's spans are dropped and
//! counted (`stage_failed`, with the panic's message as the last error), its room comes back,
//! and the next requests are priced and forwarded.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use llmtel_collector::Collector;

/// A sink with a bug: it panics on every call of the model `boom`.
#[derive(Debug, Default)]
struct Buggy {
    calls: AtomicUsize,
}

impl llmtel::CallSink for Buggy {
    fn on_call(&self, call: &llmtel::LlmCall) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        assert!(
            call.request_model.as_deref() != Some("boom"),
            "a bug in a sink"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_panicking_on_more_requests_than_there_are_forwarders_fails_only_those() {
    let (receiver, downstream, _task) = Receiver::start().await;
    let sink = Arc::new(Buggy::default());
    let collector = Collector::start(config(downstream).with_sink(sink.clone()))
        .await
        .unwrap();
    // More panicking requests than the collector has forwarders (4).
    for seed in 1..=5 {
        let spans = vec![
            ("chat boom".into(), chat_call("boom", None)),
            ("not a call".into(), vec![]),
        ];
        post_protobuf(&collector, request("svc", seed, spans)).await;
    }
    wait_until("the 5 panicking requests are counted", || {
        collector.stats().dropped_stage_failed == 10
    })
    .await;
    post_protobuf(
        &collector,
        request(
            "svc",
            9,
            vec![("chat ok".into(), chat_call("gpt-4o", None))],
        ),
    )
    .await;
    receiver.wait_for("chat ok").await;
    wait_until("the queue is empty", || collector.stats().queue_depth == 0).await;
    let stats = collector.stats();
    assert_eq!(
        (stats.received, stats.forwarded, stats.dropped_stage_failed),
        (11, 1, 10),
        "{stats:?}"
    );
    assert_eq!(stats.dropped(), 10, "{stats:?}");
    assert_eq!(receiver.count(), 1);
    assert_eq!(sink.calls.load(Ordering::Relaxed), 6);
    let why = collector.last_error().unwrap();
    assert!(
        why.contains("panicked") && why.contains("a bug in a sink"),
        "{why}"
    );
    let m = metrics(collector.metrics_addr()).await;
    assert!(
        m.contains("llmtel_collector_spans_dropped_total{reason=\"stage_failed\"} 10\n"),
        "{m}"
    );
}
