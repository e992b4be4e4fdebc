//! Thresholds stated per (model, feature) apply to that series only; a series that settles
//! inside a threshold's margin resolves within a bounded number of blocks and a value
//! hovering around the threshold does not flap; out-of-range or misspelt thresholds are
//! errors that say what to write instead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmtel_alert::{Alert, AlertState};
use llmtel_quality::{
    CallSignals, DetectorConfig, DetectorKind, Monitor, MonitorConfig, Thresholds, ThresholdsConfig,
};

fn call(feature: &str, at: SystemTime, failed: bool) -> CallSignals {
    CallSignals {
        model: Some("gpt-4o-mini".into()),
        feature: Some(feature.into()),
        response_id: None,
        trace_id: None,
        span_id: None,
        ended_at: at,
        latency: Duration::from_millis(900),
        error_type: failed.then(|| "timeout".into()),
        truncated: false,
        content_filtered: false,
        output_tokens: None,
        tokens_per_second: None,
        time_to_first_chunk: None,
        cost_usd: None,
    }
}

/// One minute of 100 calls per feature, `errors_in_100` of each failing (evenly spread).
fn minute(m: &mut Monitor, t: &mut SystemTime, features: &[(&str, u32)]) -> Vec<Alert> {
    for i in 0..100u32 {
        for (f, e) in features {
            // Bresenham spread: exactly `e` failures in 100 calls.
            let failed = (i + 1) * e / 100 != i * e / 100;
            m.record_call(&call(f, *t, failed));
        }
        *t += Duration::from_millis(600);
    }
    m.advance(*t);
    m.take_alerts()
}

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[test]
fn a_stricter_threshold_for_one_feature_fires_for_that_feature_only() {
    let cfg = MonitorConfig::default().with_series_thresholds(
        None,
        Some("checkout"),
        Thresholds::default().with_error_rate_above(0.05),
    );
    cfg.validate().expect("valid thresholds");
    let mut m = Monitor::new(cfg);
    let mut t = start();
    let mut alerts = Vec::new();
    for _ in 0..10 {
        alerts.extend(minute(&mut m, &mut t, &[("checkout", 8), ("search", 8)]));
    }
    let fired: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| (a.labels["feature"].as_str(), a.name.as_str()))
        .collect();
    assert_eq!(fired, [("checkout", "LlmErrorRateSpike")]);
    assert_eq!(alerts[0].annotations["rule"], "stated");
    assert_eq!(alerts[0].annotations["threshold"], "0.05");
}

#[test]
fn settling_inside_the_margin_resolves_and_hovering_does_not_flap() {
    // Only the stated rule: the learned one would (rightly) call 19 % a breach of a 2 % baseline.
    let learned_off = DetectorConfig {
        abs_min: 1.0,
        ..DetectorConfig::default_for(&DetectorKind::ErrorRate)
    };
    let mut m =
        Monitor::new(MonitorConfig::default().with_detector(DetectorKind::ErrorRate, learned_off));
    let mut t = start();
    let mut log = Vec::new();
    let run = |m: &mut Monitor,
               t: &mut SystemTime,
               e: u32,
               minutes: u32,
               log: &mut Vec<(u32, AlertState)>| {
        for _ in 0..minutes {
            for a in minute(m, t, &[("support", e)]) {
                if a.labels["feature"] == "support" {
                    let min = (t.duration_since(start()).unwrap_or_default().as_secs() / 60) as u32;
                    log.push((min, a.state));
                }
            }
        }
    };
    run(&mut m, &mut t, 2, 10, &mut log);
    run(&mut m, &mut t, 30, 5, &mut log);
    assert_eq!(log, [(12, AlertState::Firing)]);
    // 19 %: below the 20 % threshold, inside its 10 % margin: not "recovered", but it does
    // not breach either, so the alert resolves after 3 blocks instead of sticking.
    run(&mut m, &mut t, 19, 10, &mut log);
    assert_eq!(log, [(12, AlertState::Firing), (18, AlertState::Resolved)]);
    // 21 % and 19 % in turn: one breach is taken back by the next block; no flapping.
    for _ in 0..10 {
        run(&mut m, &mut t, 21, 1, &mut log);
        run(&mut m, &mut t, 19, 1, &mut log);
    }
    assert_eq!(log.len(), 2, "{log:?}");
}

#[test]
fn out_of_range_and_misspelt_thresholds_say_what_to_write() {
    let e = ThresholdsConfig::from_json(r#"{ "default": { "error_rate_above": 20 } }"#)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "quality threshold `default.error_rate_above` is 20; expected a number between 0 and 1 (0.2 means 20 %), or none to turn it off"
    );
    let e = ThresholdsConfig::from_json(r#"{ "default": { "error_rate": 0.2 } }"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `error_rate`"), "{e}");
    assert!(e.contains("error_rate_above"), "{e}");
    let e = MonitorConfig::default()
        .with_series_thresholds(
            Some("gpt-4o"),
            None,
            Thresholds::default().with_latency_p95_factor(0.5),
        )
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("quality threshold `series[0].latency_p95_factor` is 0.5; expected a multiple of the baseline above 1"), "{e}");
    // A series entry's unstated fields are the product defaults; `null` turns one off.
    let cfg = ThresholdsConfig::from_json(
        r#"{ "series": [ { "feature": "batch", "thresholds": { "rating_below": null } } ] }"#,
    )
    .expect("valid config");
    let batch = cfg.for_series("gpt-4o", "batch");
    assert_eq!(batch.rating_below, None);
    assert_eq!(batch.error_rate_above, Some(0.2));
    assert_eq!(cfg.for_series("gpt-4o", "chat"), &Thresholds::default());
}
