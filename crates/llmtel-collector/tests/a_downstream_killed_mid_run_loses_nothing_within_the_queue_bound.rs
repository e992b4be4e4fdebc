//! Issue #15: the downstream receiver dies in the middle of a steady stream and comes back.
//! Senders are never held: while the queue has room their spans are accepted, then they are
//! told to back off (429 with Retry-After); every span accepted reaches the receiver once it
//! is back, and every span refused is counted, exactly, on `/metrics` (as refused for now,
//! not dropped: the senders still have them).
//!
//! The receiver is a real OTLP/gRPC server on a runtime of its own; killing it shuts that
//! runtime down at once (no graceful drain): its listener and every open connection close
//! mid-request, as when its process dies. It files a span before it answers, so a request
//! cut off between the two is retried and arrives twice: spans are counted by name.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use llmtel_collector::Collector;

/// A receiver's own runtime; killed when dropped.
struct Downstream(Option<tokio::runtime::Runtime>);

impl Drop for Downstream {
    fn drop(&mut self) {
        // At once, without waiting for its tasks (allowed inside the test's runtime).
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Serves `receiver` on `addr` from a runtime of its own (drop it to kill it).
fn start_downstream(receiver: &Receiver, addr: SocketAddr) -> Downstream {
    let receiver = receiver.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            // The port was just in use: its closed connections may linger in TIME_WAIT.
            socket.set_reuseaddr(true).unwrap();
            socket.bind(addr).unwrap();
            receiver.serve(socket.listen(128).unwrap());
        });
        Downstream(Some(rt))
    })
    .join()
    .unwrap()
}

/// What the sender saw.
#[derive(Default)]
struct Sent {
    accepted: BTreeSet<String>,
    refused: u64,
    slowest: Duration,
}

/// Sends `requests` requests of 10 spans each, named `{tag}-{request}-{span}`, 5 ms apart.
async fn send(collector: &Collector, tag: &str, requests: usize, sent: &mut Sent) {
    for r in 0..requests {
        let names: Vec<String> = (0..10).map(|s| format!("{tag}-{r}-{s}")).collect();
        let req = request(
            "svc",
            (r % 250) as u8 + 1,
            names.iter().map(|n| (n.clone(), vec![])).collect(),
        );
        let started = Instant::now();
        let answer = send_protobuf(collector, &req).await;
        sent.slowest = sent.slowest.max(started.elapsed());
        match answer.status().as_u16() {
            200 => sent.accepted.extend(names),
            429 => {
                assert_eq!(answer.headers()["retry-after"], "1");
                sent.refused += 10;
            }
            other => panic!(
                "unexpected answer {other}: {}",
                answer.text().await.unwrap()
            ),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_downstream_mid_run_backpressures_senders_and_loses_nothing_queued() {
    let receiver = Receiver::default();
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let downstream = start_downstream(&receiver, addr);
    let config = config(addr)
        .with_queue_size(200)
        .unwrap()
        .with_retry_for(Duration::from_secs(60))
        .with_timeout(Duration::from_secs(1))
        .unwrap();
    let collector = Collector::start(config).await.unwrap();
    let mut sent = Sent::default();

    // Up: everything goes through.
    send(&collector, "before", 30, &mut sent).await;
    wait_until("the first 300 spans are forwarded", || {
        collector.stats().forwarded == 300
    })
    .await;

    // Killed mid-stream: the queue fills (200 spans), then senders are told to back off.
    drop(downstream);
    send(&collector, "during", 60, &mut sent).await;
    let stats = collector.stats();
    assert!(sent.refused > 0, "the queue never filled: {stats:?}");
    assert_eq!(stats.queue_depth, 200, "{stats:?}");
    assert_eq!(stats.refused_retryable_spans, sent.refused, "{stats:?}");
    assert_eq!(
        stats.dropped_queue_full, 0,
        "told to retry, not lost: {stats:?}"
    );
    assert_eq!(stats.dropped_export_failed, 0, "still retrying: {stats:?}");

    // Back: what was queued goes out, and the stream flows again.
    let _downstream = start_downstream(&receiver, addr);
    wait_until("the queue drains after the restart", || {
        collector.stats().queue_depth == 0
    })
    .await;
    send(&collector, "after", 20, &mut sent).await;
    let accepted = sent.accepted.len() as u64;
    wait_until("every accepted span is forwarded", || {
        collector.stats().forwarded == accepted
    })
    .await;

    // Nothing accepted is lost, nothing refused goes uncounted.
    let received: BTreeSet<String> = receiver
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| s.name.clone())
        .collect();
    assert_eq!(
        received, sent.accepted,
        "the receiver holds every accepted span"
    );
    let stats = collector.stats();
    assert_eq!(
        (
            stats.received,
            stats.forwarded,
            stats.refused_retryable_spans,
            stats.dropped()
        ),
        (accepted, accepted, sent.refused, 0),
        "{stats:?}"
    );
    assert_eq!(
        accepted + sent.refused,
        1_100,
        "every span sent was answered"
    );
    let m = metrics(collector.metrics_addr()).await;
    assert!(
        m.contains(&format!(
            "llmtel_collector_spans_refused_retryable_total {}\n",
            sent.refused
        )),
        "{m}"
    );
    // Backpressure, not blocking: every request was answered at once, even while the
    // downstream was dead (a generous bound on a loaded 2-core machine).
    assert!(
        sent.slowest < Duration::from_secs(2),
        "a sender waited {:?}",
        sent.slowest
    );
}
