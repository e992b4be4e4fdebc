//! The sink queues calls without waking the monitor thread for each one: the monitor drains
//! them on its own (every 100 ms, when the queue is half full, or when a parked monitor is
//! woken by the next call), a flush sees every call queued before it, calls beyond a full
//! queue are dropped and counted, and what the monitor records is exactly the call's signals
//! (the sink packs their strings into one buffer on the request thread).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{CallSpec, Clock, call};
use llmtel::CallSink;
use llmtel_quality::{CallRef, CallSignals, Feedback, Monitor, MonitorConfig, Quality};

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

#[test]
fn the_monitor_records_exactly_the_signals_of_each_call() {
    let long_id = format!("chatcmpl-{}", "x".repeat(300)); // too long to pack: the other path
    let mut calls = Vec::new();
    for (i, (model, feature, error, finish)) in [
        ("gpt-4o-mini", "support-bot", None, "stop"),
        (
            "claude-sonnet-4-5",
            "search",
            Some("rate_limit_exceeded"),
            "stop",
        ),
        ("gemini-2.5-pro", "", None, "length"),
        ("gpt-4o-mini", "support-bot", None, "content_filter"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = spec(i);
        (s.model, s.feature, s.error, s.finish) = (model, feature, error, finish);
        s.latency_s = 0.5 + i as f64;
        let mut c = call(&s);
        if feature.is_empty() {
            c.dimensions.feature = None;
        }
        calls.push(c);
    }
    let mut c = call(&spec(9));
    c.response_id = Some(long_id.clone());
    calls.push(c);

    let quality = Quality::builder().build();
    let sink = quality.sink();
    let mut direct = Monitor::new(MonitorConfig::default());
    for c in &calls {
        sink.on_call(c);
        direct.record_call(&CallSignals::from_call(c));
    }
    // Feedback finds each call by its response id, packed or not.
    for id in ["chatcmpl-0", long_id.as_str()] {
        let fb = Feedback::thumbs(CallRef::ResponseId(id.to_owned()), true);
        assert!(quality.feedback(fb.clone()));
        direct.record_feedback(&fb);
    }
    assert!(quality.flush(Duration::from_secs(10)));
    assert_eq!(quality.snapshot(), direct.snapshot());
    let stats = quality.with_monitor(|m| m.stats());
    assert_eq!(
        (stats.calls, stats.feedback, stats.unmatched),
        (5, 2, 0),
        "{stats:?}"
    );
}
