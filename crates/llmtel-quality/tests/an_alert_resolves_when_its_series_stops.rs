//! An alert resolved only when a block of its detector's values was judged healthy: after the
//! fire the block was gone, so once its (model, feature) got no more calls (the usual fix:
//! switch the model, turn the feature off) it fired for good, re-sent to Alertmanager every
//! minute. It now resolves, "for lack of data", once no value has come for the monitor's
//! `resolve_idle_after`, as Prometheus resolves an alert whose series went away; a series
//! still getting (failing) calls keeps firing. Through the pipeline it resolves when all
//! traffic stops too: the monitor's time runs on while no call comes (it stood still, so no
//! window closed, and the alert fired for good).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use llmtel_alert::AlertState;
use llmtel_quality::{CallSignals, Monitor, MonitorConfig, Quality};

fn call(model: &str, at: SystemTime, error: bool) -> CallSignals {
    common::signals(model, at, error)
}

/// `minutes` of 100 calls a minute of `model` from `start`.
fn traffic(m: &mut Monitor, model: &str, start: SystemTime, minutes: u64, error: bool) {
    for minute in 0..minutes {
        for i in 0..100 {
            m.record_call(&call(
                model,
                start + Duration::from_secs(minute * 60 + i % 60),
                error,
            ));
        }
    }
}

fn firing_for(m: &Monitor, model: &str) -> usize {
    m.active_alerts()
        .iter()
        .filter(|a| a.labels.get("model").map(String::as_str) == Some(model))
        .count()
}

#[test]
fn a_firing_alert_resolves_once_its_series_gets_no_more_calls() {
    let mut m = Monitor::new(MonitorConfig::default());
    let t0 = SystemTime::now() - Duration::from_secs(4 * 3600);
    traffic(&mut m, "m1", t0, 5, true);
    assert!(firing_for(&m, "m1") > 0, "{:?}", m.stats());
    let _ = m.take_alerts();
    // The fix: the feature moves to m2; m1 gets nothing for two hours.
    traffic(&mut m, "m2", t0 + Duration::from_secs(5 * 60), 120, false);
    assert_eq!(firing_for(&m, "m1"), 0, "{:?}", m.active_alerts());
    let resolved: Vec<_> = m
        .take_alerts()
        .into_iter()
        .filter(|a| a.state == AlertState::Resolved && a.labels["model"] == "m1")
        .collect();
    assert!(!resolved.is_empty());
    assert!(
        resolved[0].annotations["summary"].contains("lack of data"),
        "{:?}",
        resolved[0]
    );
}

#[test]
fn a_series_still_failing_keeps_firing() {
    // Three times the idle limit of failing traffic after the fire: its values keep coming.
    let mut m =
        Monitor::new(MonitorConfig::default().with_resolve_idle_after(Duration::from_secs(600)));
    let t0 = SystemTime::now() - Duration::from_secs(4 * 3600);
    traffic(&mut m, "m1", t0, 35, true);
    assert!(firing_for(&m, "m1") > 0, "{:?}", m.active_alerts());
}

#[test]
fn through_the_pipeline_an_alert_resolves_when_all_traffic_stops() {
    // One-second windows; no value for 15 s resolves (longer than the 10 s after which the
    // monitor's thread sleeps, waking only to let its time run on).
    let idle = Duration::from_secs(15);
    let cfg = MonitorConfig {
        window: Duration::from_secs(1),
        ..MonitorConfig::default()
    }
    .with_resolve_idle_after(idle);
    let q = Quality::builder()
        .with_monitor(cfg)
        .with_queue_capacity(4096)
        .build();
    let sink = q.sink();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t0 = UNIX_EPOCH + Duration::from_secs(now - 30);
    // Ten windows of 100 failing calls, the last ending about 20 s ago.
    for w in 0..10u64 {
        for i in 0..100u64 {
            assert!(sink.send(call(
                "m1",
                t0 + Duration::from_millis(w * 1000 + i * 5),
                true
            )));
        }
    }
    assert!(q.flush(Duration::from_secs(10)));
    assert!(
        q.with_monitor(|m| firing_for(m, "m1")) > 0,
        "{:?}",
        q.stats()
    );
    let stopped = Instant::now();
    while q.with_monitor(|m| firing_for(m, "m1")) > 0 {
        assert!(
            stopped.elapsed() < Duration::from_secs(60),
            "no call for a minute and the alert still fires: {:?}",
            q.with_monitor(Monitor::active_alerts)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Resolved for lack of data, not before the limit (the monitor's time runs on from the
    // last call's, not the wall clock's: the calls were 20 s old when they came).
    assert!(
        stopped.elapsed() >= idle - Duration::from_secs(3),
        "resolved after {:?}",
        stopped.elapsed()
    );
    assert!(q.shutdown());
}
