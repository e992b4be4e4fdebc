//! Issue #12: the monitor holds at most `MAX_PENDING_ALERTS` alerts until they are taken;
//! every alert past that is counted in `MonitorStats::alerts_dropped`, never lost silently.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use llmtel_quality::{CallSignals, MAX_PENDING_ALERTS, Monitor, MonitorConfig};

#[test]
fn alerts_past_the_pending_bound_are_counted() {
    let cfg = MonitorConfig {
        max_series: 4_000,
        ..MonitorConfig::default()
    };
    let mut monitor = Monitor::new(cfg);
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let features = MAX_PENDING_ALERTS + 300;
    // Every feature fails every call for ten minutes: each one's error-rate alert fires.
    let mut now = start;
    for minute in 0..10u64 {
        for call in 0..40u64 {
            now = start + Duration::from_secs(minute * 60 + call);
            for f in 0..features {
                monitor.record_call(&CallSignals {
                    model: Some("gpt-4o-mini".into()),
                    feature: Some(format!("feature-{f}")),
                    response_id: None,
                    trace_id: None,
                    span_id: None,
                    ended_at: now,
                    latency: Duration::from_millis(800),
                    error_type: Some("timeout".into()),
                    truncated: false,
                    content_filtered: false,
                    output_tokens: None,
                    tokens_per_second: None,
                    time_to_first_chunk: None,
                    cost_usd: None,
                });
            }
        }
    }
    monitor.advance(now + Duration::from_secs(600));
    let stats = monitor.stats();
    assert!(
        stats.alerts > MAX_PENDING_ALERTS as u64,
        "the scenario raises more alerts than the bound: {stats:?}"
    );
    let taken = monitor.take_alerts();
    assert_eq!(taken.len(), MAX_PENDING_ALERTS);
    assert_eq!(
        stats.alerts_dropped,
        stats.alerts - MAX_PENDING_ALERTS as u64,
        "{stats:?}"
    );
}
