//! An evaluation's name, model and feature come from outside (a span's
//! `gen_ai.evaluation.name` through the collector, a caller's `EvalInput`): the monitor keeps
//! them per window, series, detector and call and turns them into labels, so they are capped
//! as every caller-controlled value (`llmtel::MAX_VALUE_BYTES`): sixteen 4 MiB names were
//! gigabytes of copies.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use llmtel_eval::{EvalInput, Evaluation};
use llmtel_quality::{Monitor, MonitorConfig};

#[test]
fn a_megabyte_evaluation_name_model_and_feature_are_kept_capped() {
    let mut monitor = Monitor::new(MonitorConfig::default());
    let huge = "x".repeat(1 << 20);
    let mut input = EvalInput::new("an answer");
    input.model = Some(huge.clone());
    input.feature = Some(huge.clone());
    input.at = Some(SystemTime::now());
    let record = monitor.record_evaluation(&input, &Evaluation::new(huge.clone(), 0.5, "", ""));
    assert!(
        record.name.len() <= llmtel::MAX_VALUE_BYTES,
        "{}",
        record.name.len()
    );
    monitor.advance(SystemTime::now() + Duration::from_secs(3600));
    let snap = monitor.snapshot();
    let names: Vec<usize> = snap
        .overall
        .total
        .evaluators
        .keys()
        .map(String::len)
        .collect();
    assert_eq!(names.len(), 1);
    assert!(names[0] <= llmtel::MAX_VALUE_BYTES, "{names:?}");
    assert!(
        snap.series
            .iter()
            .all(|s| s.model.len() <= llmtel::MAX_VALUE_BYTES
                && s.feature.len() <= llmtel::MAX_VALUE_BYTES)
    );
    assert!(!snap.series.is_empty());
}

#[test]
fn scores_from_outside_the_unit_range_are_held_to_it() {
    // `Evaluation`'s and `Feedback`'s fields are public: a user's evaluator returning 5 on a
    // 1-5 scale pushed the evaluator's average past 1 (and the call's quality score with it).
    let mut monitor = Monitor::new(MonitorConfig::default());
    let mut input = EvalInput::new("an answer");
    input.model = Some("m".into());
    input.at = Some(SystemTime::now());
    let mut ev = Evaluation::new("stars", 0.5, "", "");
    ev.score = 5.0;
    assert_eq!(monitor.record_evaluation(&input, &ev).score, Some(1.0));
    ev.score = -3.0;
    assert_eq!(monitor.record_evaluation(&input, &ev).score, Some(0.0));
    let mut fb =
        llmtel_quality::Feedback::thumbs(llmtel_quality::CallRef::ResponseId("r-1".into()), true);
    fb.score = Some(7.0);
    assert_eq!(monitor.record_feedback(&fb).0.score, Some(1.0));
    monitor.advance(SystemTime::now() + Duration::from_secs(3600));
    let total = monitor.snapshot().overall.total;
    let stars = total.evaluators["stars"].avg;
    assert!((stars - 0.5).abs() < 1e-9, "{stars}");
}
