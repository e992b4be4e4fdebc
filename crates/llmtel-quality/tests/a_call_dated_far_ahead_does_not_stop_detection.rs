//! The monitor's clock is its events' times. One call dated far ahead (a sender's clock an
//! hour fast, a bogus timestamp through the collector) used to move it there: every later
//! call was older, filed in that open window, and no window closed (no detection, no alert)
//! until real time caught up, for good with a timestamp centuries ahead. Such an event is now
//! held (`MonitorStats::clock_skew_events`), and a first event that set the clock far past
//! the wall clock is undone by the next one dated near the wall clock.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use llmtel_quality::{CallSignals, MAX_CLOCK_JUMP, Monitor, MonitorConfig};

fn call(at: SystemTime, error: bool) -> CallSignals {
    common::signals("gpt-4o-mini", at, error)
}

/// Thirty minutes of calls from `start`, every one failing, 100 a minute.
fn failing_half_hour(monitor: &mut Monitor, start: SystemTime) {
    for minute in 0..30u64 {
        for i in 0..100u64 {
            let at = start + Duration::from_secs(minute * 60 + i % 60);
            monitor.record_call(&call(at, true));
        }
    }
}

#[test]
fn one_call_a_year_ahead_is_held_and_the_error_rate_alert_still_fires() {
    let mut monitor = Monitor::new(MonitorConfig::default());
    // Real time: the monitor runs on the wall clock's minutes.
    let start = SystemTime::now() - Duration::from_secs(3600);
    monitor.record_call(&call(start, false));
    monitor.record_call(&call(start + Duration::from_secs(365 * 86_400), false));
    failing_half_hour(&mut monitor, start);
    let stats = monitor.stats();
    assert_eq!(stats.clock_skew_events, 1, "{stats:?}");
    assert!(stats.windows_closed > 0, "{stats:?}");
    assert!(
        !monitor.active_alerts().is_empty(),
        "a 100 % error rate is seen: {stats:?}"
    );
}

#[test]
fn a_first_call_centuries_ahead_is_undone_by_calls_on_the_wall_clock() {
    let mut monitor = Monitor::new(MonitorConfig::default());
    let bogus = SystemTime::UNIX_EPOCH + Duration::from_secs(18_000_000_000); // year 2540
    monitor.record_call(&call(bogus, false));
    failing_half_hour(&mut monitor, SystemTime::now() - Duration::from_secs(3600));
    let stats = monitor.stats();
    assert_eq!(stats.clock_skew_events, 1, "{stats:?}");
    assert!(stats.windows_closed > 0, "{stats:?}");
    assert!(!monitor.active_alerts().is_empty(), "{stats:?}");
}

#[test]
fn a_clock_that_really_moved_ahead_is_followed_after_one_held_event() {
    // A replay or a simulated clock: every event is ahead, so the second one moves the time.
    let mut monitor = Monitor::new(MonitorConfig::default());
    let start = SystemTime::now();
    monitor.record_call(&call(start, false));
    let later = start + MAX_CLOCK_JUMP * 5;
    failing_half_hour(&mut monitor, later);
    let stats = monitor.stats();
    assert_eq!(stats.clock_skew_events, 1, "{stats:?}");
    assert!(stats.windows_closed >= 29, "{stats:?}");
    assert!(!monitor.active_alerts().is_empty(), "{stats:?}");
}

#[test]
fn ratings_after_a_bogus_first_time_reach_the_rating_detector() {
    // Winding the clock back left the far window's ratings entry first in its queue, which
    // is drained oldest first: no later rating was judged until real time got there.
    use llmtel_quality::{CallRef, Feedback};
    let mut monitor = Monitor::new(MonitorConfig::default());
    let bogus = SystemTime::UNIX_EPOCH + Duration::from_secs(18_000_000_000);
    monitor.record_call(&call(bogus, false));
    let start = SystemTime::now() - Duration::from_secs(3 * 3600);
    for minute in 0..60u64 {
        for i in 0..20u64 {
            let at = start + Duration::from_secs(minute * 60 + i);
            let mut c = call(at, false);
            c.response_id = Some(format!("r-{minute}-{i}"));
            monitor.record_call(&c);
            let fb = Feedback::thumbs(CallRef::ResponseId(format!("r-{minute}-{i}")), i % 2 == 0)
                .at(at + Duration::from_secs(1));
            monitor.record_feedback(&fb);
        }
    }
    let snap = monitor.snapshot();
    let judged: u64 = std::iter::once(&snap.overall)
        .chain(&snap.series)
        .flat_map(|s| &s.detectors)
        .filter(|(k, _)| k.contains("rating"))
        .map(|(_, d)| d.judged)
        .sum();
    assert!(judged > 0, "{:?}", snap.series);
}
