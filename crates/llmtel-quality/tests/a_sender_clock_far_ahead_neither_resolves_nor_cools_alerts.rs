//! A service whose clock is hours fast sends two spans in a row: the second moves the
//! monitor's time there (two in a row look like a clock that really moved), and the next call
//! on the wall clock brings it back. Bringing it back closed the far window, judging every
//! series at the far time: each firing detector had had no value for hours there and resolved
//! "for lack of data" (`ends_at` in the future), then stayed cooling, and its last value stayed
//! dated in the future, until real time got there. The far window now joins the window of the
//! call that brings the time back, unjudged, and what was dated past it is dated back.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use llmtel_alert::AlertState;
use llmtel_quality::{Monitor, MonitorConfig};

/// `minutes` of 100 calls a minute of `model` from `start`.
fn traffic(m: &mut Monitor, model: &str, start: SystemTime, minutes: u64, error: bool) {
    for minute in 0..minutes {
        for i in 0..100 {
            let at = start + Duration::from_secs(minute * 60 + i % 60);
            m.record_call(&common::signals(model, at, error));
        }
    }
}

fn firing_for(m: &Monitor, model: &str) -> usize {
    m.active_alerts()
        .iter()
        .filter(|a| a.labels.get("model").map(String::as_str) == Some(model))
        .count()
}

/// Two calls of the service `fast` dated `ahead` past the wall clock, in a row.
fn two_fast_calls(m: &mut Monitor, ahead: Duration, error: bool) {
    let model = "fast";
    let far = SystemTime::now() + ahead;
    m.record_call(&common::signals(model, far, error));
    m.record_call(&common::signals(model, far + Duration::from_secs(1), error));
}

#[test]
fn two_calls_from_a_clock_two_hours_fast_do_not_resolve_a_firing_alert() {
    let mut m = Monitor::new(MonitorConfig::default());
    let start = SystemTime::now() - Duration::from_secs(2 * 3600);
    traffic(&mut m, "m1", start, 30, true);
    assert!(firing_for(&m, "m1") > 0, "{:?}", m.stats());
    let _ = m.take_alerts();
    two_fast_calls(&mut m, Duration::from_secs(2 * 3600), false);
    // The calls go on failing, on the wall clock.
    traffic(&mut m, "m1", start + Duration::from_secs(30 * 60), 20, true);
    let stats = m.stats();
    assert_eq!(stats.clock_skew_events, 2, "{stats:?}");
    let resolved: Vec<_> = m
        .take_alerts()
        .into_iter()
        .filter(|a| a.state == AlertState::Resolved)
        .collect();
    assert!(
        resolved.is_empty(),
        "a series still failing was resolved: {resolved:?}"
    );
    assert!(firing_for(&m, "m1") > 0, "{:?}", m.active_alerts());
    // The monitor's time is back on the calls' clock.
    let now = m.snapshot().now_unix_s;
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(now < wall, "monitor at {now}, wall clock at {wall}");
}

#[test]
fn a_detector_resolved_at_a_far_time_fires_again_and_resolves_again_on_the_real_clock() {
    // Traffic stops just after two fast calls: the monitor's time runs on from the far time
    // (as the pipeline does while no call comes) and the firing detector resolves there.
    let mut m = Monitor::new(MonitorConfig::default());
    let start = SystemTime::now() - Duration::from_secs(3 * 3600);
    traffic(&mut m, "m1", start, 30, true);
    assert!(firing_for(&m, "m1") > 0, "{:?}", m.stats());
    two_fast_calls(&mut m, Duration::from_secs(2 * 3600), false);
    m.advance_idle(Duration::from_secs(180));
    assert_eq!(firing_for(&m, "m1"), 0, "{:?}", m.active_alerts());
    let _ = m.take_alerts();
    // Back on the wall clock, failing: once the cooldown (10 min) has passed on the calls'
    // clock it fires again; it stayed cooling until real time passed the far time.
    traffic(&mut m, "m1", start + Duration::from_secs(30 * 60), 30, true);
    assert!(
        firing_for(&m, "m1") > 0,
        "still cooling: {:?}",
        m.snapshot()
            .series
            .iter()
            .find(|s| s.model == "m1")
            .map(|s| &s.detectors)
    );
    // Then m1 stops (m2 takes its calls): it resolves for lack of data after an hour, where
    // its last value stayed dated at the far time.
    let _ = m.take_alerts();
    traffic(
        &mut m,
        "m2",
        start + Duration::from_secs(60 * 60),
        90,
        false,
    );
    assert_eq!(firing_for(&m, "m1"), 0, "{:?}", m.active_alerts());
    let resolved: Vec<_> = m
        .take_alerts()
        .into_iter()
        .filter(|a| a.state == AlertState::Resolved && a.labels["model"] == "m1")
        .collect();
    assert!(!resolved.is_empty());
    let wall = jiff::Timestamp::now();
    for a in &resolved {
        assert!(a.ends_at.unwrap() < wall, "ends in the future: {a:?}");
    }
}

#[test]
fn a_firing_series_whose_last_values_were_dated_far_ahead_resolves_once_it_stops() {
    // The fast service itself fails and fires; its two fast calls are judged at the far time
    // (traffic stops just after them), dating its last value there.
    let mut m = Monitor::new(MonitorConfig::default());
    let start = SystemTime::now() - Duration::from_secs(3 * 3600);
    traffic(&mut m, "fast", start, 30, true);
    assert!(firing_for(&m, "fast") > 0, "{:?}", m.stats());
    two_fast_calls(&mut m, Duration::from_secs(2 * 3600), true);
    m.advance_idle(Duration::from_secs(180));
    assert!(firing_for(&m, "fast") > 0, "{:?}", m.active_alerts());
    let _ = m.take_alerts();
    // It is switched off; m2 takes the calls, on the wall clock. Its last value stayed dated
    // at the far time: no value for an hour never came before real time got there.
    traffic(
        &mut m,
        "m2",
        start + Duration::from_secs(30 * 60),
        90,
        false,
    );
    assert_eq!(firing_for(&m, "fast"), 0, "{:?}", m.active_alerts());
    let resolved: Vec<_> = m
        .take_alerts()
        .into_iter()
        .filter(|a| a.state == AlertState::Resolved && a.labels["model"] == "fast")
        .collect();
    assert!(!resolved.is_empty());
    assert!(
        resolved[0].annotations["summary"].contains("lack of data"),
        "{:?}",
        resolved[0]
    );
}
