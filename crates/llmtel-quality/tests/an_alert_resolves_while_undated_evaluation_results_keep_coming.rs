//! Evaluation results without a time of their own (`Quality::evaluate` leaves
//! `EvalInput::at` unset) are filed at the monitor's time and do not move it. Yet every one
//! that reached the monitor's thread counted as activity, and while items kept coming the
//! monitor's time did not run on: a backlog of results (a slow judge catching up) after
//! traffic stopped kept every window open and every firing alert unresolved. Only items with
//! a time (calls, feedback, dated results) now hold the run-on.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use llmtel_quality::{EvalInput, Evaluation, Monitor, MonitorConfig, Quality};

fn firing_for(m: &Monitor, model: &str) -> usize {
    m.active_alerts()
        .iter()
        .filter(|a| a.labels.get("model").map(String::as_str) == Some(model))
        .count()
}

#[test]
fn a_firing_alert_resolves_while_undated_results_keep_reaching_the_monitor() {
    // One-second windows; no value for 15 s resolves.
    let idle = Duration::from_secs(15);
    let cfg = MonitorConfig {
        window: Duration::from_secs(1),
        ..MonitorConfig::default()
    }
    .with_resolve_idle_after(idle);
    let q = Quality::builder()
        .with_monitor(cfg)
        .with_queue_capacity(4096)
        .with_events(false)
        .build();
    let sink = q.sink();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t0 = UNIX_EPOCH + Duration::from_secs(now - 30);
    for w in 0..10u64 {
        for i in 0..100u64 {
            let at = t0 + Duration::from_millis(w * 1000 + i * 5);
            assert!(sink.send(common::signals("m1", at, true)));
        }
    }
    assert!(q.flush(Duration::from_secs(10)));
    assert!(
        q.with_monitor(|m| firing_for(m, "m1")) > 0,
        "{:?}",
        q.stats()
    );
    // No more calls; results without a time keep coming, ten a second.
    let stopped = Instant::now();
    let mut sent = 0u64;
    while q.with_monitor(|m| firing_for(m, "m1")) > 0 {
        assert!(
            stopped.elapsed() < Duration::from_secs(60),
            "no call for a minute and the alert still fires ({sent} results since): {:?}",
            q.with_monitor(Monitor::active_alerts)
        );
        let on = EvalInput::new("an answer");
        assert!(q.record_evaluation(on, Evaluation::new("relevance", 0.9, "relevant", "")));
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(q.flush(Duration::from_secs(10)));
    let snap = q.snapshot();
    assert_eq!(snap.stats.evaluations, sent, "{:?}", snap.stats);
    assert!(q.shutdown());
}

#[test]
fn undated_results_do_not_move_the_time_the_monitor_runs_on_from() {
    // The pipeline lets the monitor's time run on from its last event by the time without
    // one; an undated result filed at the run-on time counted as an event there, so the next
    // run-on started from it and the time ran ahead of the clock.
    let mut m = Monitor::new(MonitorConfig::default());
    let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    m.record_call(&common::signals("m1", t, false));
    m.advance_idle(Duration::from_secs(5));
    m.record_evaluation(
        &EvalInput::new("an answer"),
        &Evaluation::new("relevance", 0.9, "relevant", ""),
    );
    m.advance_idle(Duration::from_secs(6));
    let now = m.snapshot().now_unix_s;
    assert_eq!(now, 1_800_000_006.0);
    assert_eq!(m.stats().evaluations, 1);
}
