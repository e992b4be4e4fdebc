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
