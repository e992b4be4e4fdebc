//! A rating counts in the window of the call it rates (by the call's time), not in the window
//! it arrives in, as long as it arrives within `feedback_grace`; later ones are counted as
//! late and left out of detection.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmtel_quality::{
    CallRef, CallSignals, DetectorConfig, DetectorKind, Feedback, Monitor, MonitorConfig,
};
use opentelemetry::trace::TraceId;

fn call(id: u128, at: SystemTime) -> CallSignals {
    CallSignals {
        model: Some("gpt-4o-mini".into()),
        feature: Some("support".into()),
        response_id: None,
        trace_id: Some(TraceId::from(id)),
        span_id: None,
        ended_at: at,
        latency: Duration::from_millis(900),
        error_type: None,
        truncated: false,
        content_filtered: false,
        output_tokens: None,
        tokens_per_second: None,
        time_to_first_chunk: None,
        cost_usd: None,
    }
}

fn rate(m: &mut Monitor, id: u128, v: f64, at: SystemTime) {
    let fb = Feedback::rating(CallRef::TraceId(TraceId::from(id)), v, 0.0, 1.0)
        .expect("rating in 0..=1")
        .at(at);
    assert!(m.record_feedback(&fb).1);
}

#[test]
fn late_ratings_of_a_bad_minute_stay_in_that_minute() {
    let rating = DetectorConfig {
        min_samples: 10,
        ..DetectorConfig::default_for(&DetectorKind::Rating)
    };
    let mut m = Monitor::new(MonitorConfig::default().with_detector(DetectorKind::Rating, rating));
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let s = |secs: u64| t0 + Duration::from_secs(secs);
    // Minute 0: ten calls, rated 0.25 at the start of minute 1.
    for i in 0..10 {
        m.record_call(&call(i, s(5 * i as u64)));
    }
    // Minute 1: ten calls rated 0.75 right away, and the late 0.25s of minute 0 among them.
    for i in 0..10 {
        m.record_call(&call(100 + i, s(60 + 5 * i as u64)));
        rate(&mut m, 100 + i, 0.75, s(61 + 5 * i as u64));
        rate(&mut m, i, 0.25, s(62 + 5 * i as u64));
    }
    m.advance(s(120));
    let snap = m.snapshot();
    let h = &snap.series[0].history;
    assert_eq!(h.len(), 2);
    assert_eq!((h[0].ratings, h[0].avg_rating), (10, Some(0.25)));
    assert_eq!((h[1].ratings, h[1].avg_rating), (10, Some(0.75)));
    // The rating detector judges minute 0 once its grace (2 minutes) is over: 0.25, not a mix.
    assert_eq!(
        snap.series[0]
            .detectors
            .get("rating")
            .and_then(|d| d.last_value),
        None
    );
    m.advance(s(180));
    let snap = m.snapshot();
    assert_eq!(snap.series[0].detectors["rating"].last_value, Some(0.25));
    m.advance(s(240));
    let snap = m.snapshot();
    assert_eq!(snap.series[0].detectors["rating"].last_value, Some(0.75));
    assert_eq!(m.stats().late_feedback, 0);

    // A rating of minute 0 ten minutes later: too late for detection, counted as such, still
    // in the lifetime figures and minute 0's summary.
    rate(&mut m, 0, 1.0, s(600));
    assert_eq!(m.stats().late_feedback, 1);
    let snap = m.snapshot();
    assert_eq!(snap.series[0].total.ratings, 21);
    assert_eq!(snap.series[0].history[0].ratings, 11);
}
