//! A request of more spans than the queue holds waits for an empty queue. Under a steady
//! stream of small requests the queue never emptied, so it was refused again and again, and
//! each refusal counted its spans as dropped (`queue_full`) though its sender still had them
//! and retried. The queue is now kept for it (new small requests told to retry meanwhile)
//! until it is admitted; a refusal senders retry is counted apart, not as a drop.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::*;
use llmtel_collector::Collector;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

/// A downstream that takes 50 ms to answer each request: every small request holds its
/// room in the queue that long, so that steady small traffic keeps the queue from emptying.
#[derive(Clone, Default)]
struct Slow(Receiver);

#[tonic::async_trait]
impl TraceService for Slow {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.0.export(request).await
    }
}

/// What the senders were answered.
#[derive(Default)]
struct Answers {
    accepted_spans: AtomicU64,
    refused: AtomicU64,
    refused_spans: AtomicU64,
}

impl Answers {
    /// Counts one answer to a request of `spans` spans; whether it was accepted.
    fn count(&self, status: u16, spans: u64) -> bool {
        match status {
            200 => {
                self.accepted_spans.fetch_add(spans, Relaxed);
                true
            }
            429 | 503 => {
                self.refused.fetch_add(1, Relaxed);
                self.refused_spans.fetch_add(spans, Relaxed);
                false
            }
            other => panic!("unexpected answer {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_request_retried_under_steady_small_traffic_is_admitted_and_nothing_counts_as_dropped()
 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let downstream = listener.local_addr().unwrap();
    let slow = Slow::default();
    let receiver = slow.0.clone();
    let _downstream = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(slow))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    let config = config(downstream)
        .with_queue_size(16)
        .unwrap()
        .with_retry_for(Duration::from_secs(120))
        .with_timeout(Duration::from_secs(5))
        .unwrap();
    let collector = Arc::new(Collector::start(config).await.unwrap());
    let answers = Arc::new(Answers::default());
    let stop = Arc::new(AtomicBool::new(false));

    // Steady small traffic: 8 senders of one span each, sending again as soon as they are
    // answered (100 ms after a refusal).
    let mut small = Vec::new();
    for sender in 0..8u64 {
        let (collector, answers, stop) = (collector.clone(), answers.clone(), stop.clone());
        small.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Relaxed) {
                let seed = (n % 250 + 1) as u8;
                let req = request("svc", seed, vec![(format!("small {sender}.{n}"), vec![])]);
                n += 1;
                let status = send_protobuf(&collector, &req).await.status().as_u16();
                if !answers.count(status, 1) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    wait_until("the small traffic flows", || {
        collector.stats().forwarded > 20
    })
    .await;

    // A request of 20 spans (more than the 16 the queue holds), retried as its sender is
    // told (Retry-After: 1).
    let big = request(
        "svc",
        251,
        (0..20).map(|n| (format!("big {n}"), vec![])).collect(),
    );
    let start = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let r = send_protobuf(&collector, &big).await;
        if answers.count(r.status().as_u16(), 20) {
            break;
        }
        assert_eq!(r.headers()["retry-after"], "1");
        // A liveness bound, generous for a loaded machine: it used to be refused forever.
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the big request was refused {tries} times in 30 s under steady small traffic: {:?}",
            collector.stats()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Small traffic goes on after it.
    let before = answers.accepted_spans.load(Relaxed);
    wait_until("small requests are accepted again", || {
        answers.accepted_spans.load(Relaxed) > before + 8
    })
    .await;
    stop.store(true, Relaxed);
    for s in small {
        s.await.unwrap();
    }
    for n in 0..20 {
        receiver.wait_for(&format!("big {n}")).await;
    }
    let accepted = answers.accepted_spans.load(Relaxed);
    wait_until("every accepted span is forwarded", || {
        collector.stats().forwarded == accepted
    })
    .await;

    // Nothing was lost, so nothing counts as dropped; every refusal is counted, apart.
    let stats = collector.stats();
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert_eq!(stats.dropped_queue_full, 0, "{stats:?}");
    assert_eq!(stats.received, accepted, "{stats:?}");
    assert_eq!(receiver.count() as u64, accepted);
    assert_eq!(
        (stats.refused_retryable, stats.refused_retryable_spans),
        (
            answers.refused.load(Relaxed),
            answers.refused_spans.load(Relaxed)
        ),
        "{stats:?}"
    );
    let m = metrics(collector.metrics_addr()).await;
    assert!(
        m.contains("llmtel_collector_spans_dropped_total{reason=\"queue_full\"} 0\n"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "llmtel_collector_spans_refused_retryable_total {}\n",
            stats.refused_retryable_spans
        )),
        "{m}"
    );
}
