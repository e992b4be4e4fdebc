//! A detector that cannot gather the values it needs within `insufficient_after` says so: a
//! line in the snapshot ("insufficient data since …") and `llm_quality_insufficient_data` = 1
//! on the Prometheus endpoint; a series with enough traffic says nothing of the kind.

mod common;

use std::time::{Duration, SystemTime};

use common::Clock;
use llmtel_quality::{CallSignals, Monitor, MonitorConfig};

fn call(at: SystemTime, feature: &str) -> CallSignals {
    CallSignals {
        model: Some("gpt-4o-mini".into()),
        feature: Some(feature.into()),
        response_id: None,
        trace_id: None,
        span_id: None,
        ended_at: at,
        latency: Duration::from_millis(900),
        error_type: None,
        truncated: false,
        content_filtered: false,
        output_tokens: Some(100),
        tokens_per_second: None,
        time_to_first_chunk: None,
        cost_usd: Some(0.002),
    }
}

/// `per_minute` calls a minute, evenly spaced, for `minutes`; then time moves to the end.
fn drive(
    send: &mut dyn FnMut(CallSignals),
    clock: &mut Clock,
    feature: &str,
    per_minute: u32,
    minutes: u32,
) {
    let gap = Duration::from_secs(60) / per_minute;
    for _ in 0..per_minute * minutes {
        send(call(clock.now(), feature));
        clock.advance(gap);
    }
}

#[test]
fn two_calls_a_minute_show_insufficient_data_since_the_block_started() {
    let mut m = Monitor::new(MonitorConfig::default());
    let mut clock = Clock::start();
    let t0 = clock.now();
    drive(&mut |c| m.record_call(&c), &mut clock, "rare", 2, 20);
    m.advance(clock.now());
    let snap = m.snapshot();
    let s = &snap.series[0];
    let e = &s.insufficient_data["error_rate"];
    assert_eq!(
        e.since_unix_s,
        t0.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    );
    assert_eq!((e.samples, e.needed), (40, 50));
    assert_eq!(
        e.message,
        "insufficient data since 2027-01-15T08:00:00Z: 40 of the 50 calls needed to judge error_rate"
    );
    assert!(s.insufficient_data.contains_key("latency_p95"));
    assert!(s.insufficient_data.contains_key("cost_per_call"));
    assert_eq!(s.detectors["error_rate"].judged, 0);

    // Five minutes later the block has its 50 calls and is judged; it took 25 minutes, so the
    // series still cannot be judged within 15 and keeps saying so, from the same time.
    drive(&mut |c| m.record_call(&c), &mut clock, "rare", 2, 5);
    m.advance(clock.now() + Duration::from_secs(1));
    let snap = m.snapshot();
    let s = &snap.series[0];
    assert_eq!(s.detectors["error_rate"].judged, 1);
    assert_eq!(
        s.insufficient_data["error_rate"].since_unix_s,
        e.since_unix_s
    );
}

#[test]
fn twenty_calls_a_minute_are_judged_in_time() {
    let mut m = Monitor::new(MonitorConfig::default());
    let mut clock = Clock::start();
    drive(&mut |c| m.record_call(&c), &mut clock, "busy", 20, 30);
    m.advance(clock.now());
    let snap = m.snapshot();
    let s = &snap.series[0];
    assert!(s.insufficient_data.is_empty(), "{:?}", s.insufficient_data);
    assert!(s.detectors["error_rate"].judged >= 9, "{:?}", s.detectors);
}

#[cfg(feature = "prometheus")]
#[test]
fn the_gauge_is_one_for_the_rare_series_and_zero_for_the_busy_one() {
    let quality = llmtel_quality::Quality::builder()
        .with_events(false)
        .build();
    let sink = quality.sink();
    // Both series' calls, in time order.
    let mut calls = Vec::new();
    for (feature, per_minute) in [("rare", 2), ("busy", 20)] {
        let mut clock = Clock::start();
        drive(&mut |c| calls.push(c), &mut clock, feature, per_minute, 20);
    }
    calls.sort_by_key(|c| c.ended_at);
    let end = Clock::start().now() + Duration::from_secs(20 * 60);
    calls.push(call(end, "busy"));
    for c in calls {
        sink.send(c);
    }
    assert!(quality.flush(Duration::from_secs(10)));
    let prom = llmtel_metrics::PrometheusSink::default();
    quality.register_metrics(&prom);
    let text = prom.encode_openmetrics();
    for (feature, v) in [("rare", 1), ("busy", 0)] {
        let line = format!(
            r#"llm_quality_insufficient_data{{model="gpt-4o-mini",feature="{feature}",detector="error_rate"}} {v}"#
        );
        assert!(text.contains(&line), "no `{line}` in:\n{text}");
    }
}
