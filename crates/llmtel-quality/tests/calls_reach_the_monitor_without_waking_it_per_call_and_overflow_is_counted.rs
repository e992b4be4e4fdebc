//! The sink queues calls without waking the monitor thread for each one: the monitor drains
//! them on its own (every 100 ms, when the queue is half full, or when a parked monitor is
//! woken by the next call), a flush sees every call queued before it, and calls beyond a
//! full queue are dropped and counted.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{CallSpec, Clock, call};
use llmtel::CallSink;
use llmtel_quality::Quality;

fn spec(i: usize) -> CallSpec {
    CallSpec {
        model: "gpt-4o-mini",
        feature: "support-bot",
        response_id: format!("chatcmpl-{i}"),
        started_at: Clock::start().now(),
        latency_s: 0.8,
        error: None,
        finish: "stop",
        output_tokens: 120,
        cost_usd: Some(0.0004),
    }
}

/// Polls the monitor until it has recorded `n` calls, for up to `timeout`.
fn wait_for_calls(q: &Quality, n: u64, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = q.with_monitor(|m| m.stats().calls);
        if seen >= n || Instant::now() >= deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_call_reaches_the_monitor_without_a_flush() {
    let quality = Quality::builder().build();
    quality.sink().on_call(&call(&spec(1)));
    assert_eq!(quality.stats().calls_queued, 1);
    assert_eq!(wait_for_calls(&quality, 1, Duration::from_secs(5)), 1);
}

#[test]
fn a_flush_sees_every_call_queued_before_it() {
    let quality = Quality::builder().build();
    let sink = quality.sink();
    // Fewer than half the queue: nothing asks the monitor to drain but the flush.
    for i in 0..100 {
        sink.on_call(&call(&spec(i)));
    }
    assert!(quality.flush(Duration::from_secs(10)));
    assert_eq!(quality.with_monitor(|m| m.stats().calls), 100);
    let snap = quality.snapshot();
    assert_eq!(snap.overall.total.requests, 100, "{snap:?}");
}

#[test]
fn calls_beyond_a_full_queue_are_dropped_and_counted() {
    let quality = Quality::builder().with_queue_capacity(8).build();
    let sink = quality.sink();
    let c = call(&spec(7));
    let total = 100_000;
    for _ in 0..total {
        sink.on_call(&c);
    }
    assert!(quality.flush(Duration::from_secs(10)));
    let s = quality.stats();
    assert_eq!(s.calls_queued + s.calls_dropped, total, "{s:?}");
    assert!(s.calls_dropped > 0, "{s:?}");
    // Every queued call was recorded: none is lost between the queue and the monitor.
    assert_eq!(quality.with_monitor(|m| m.stats().calls), s.calls_queued);
    // The queue drains again after overflowing.
    sink.on_call(&c);
    assert!(quality.flush(Duration::from_secs(10)));
    assert_eq!(quality.stats().calls_queued, s.calls_queued + 1);
}

#[test]
fn a_monitor_parked_after_idling_wakes_for_the_next_call() {
    let quality = Quality::builder().build();
    // The monitor parks after 10 s without calls (100 empty drains, 100 ms apart).
    std::thread::sleep(Duration::from_secs(12));
    quality.sink().on_call(&call(&spec(1)));
    assert_eq!(wait_for_calls(&quality, 1, Duration::from_secs(5)), 1);
    quality.sink().on_call(&call(&spec(2)));
    assert_eq!(wait_for_calls(&quality, 2, Duration::from_secs(5)), 2);
}
