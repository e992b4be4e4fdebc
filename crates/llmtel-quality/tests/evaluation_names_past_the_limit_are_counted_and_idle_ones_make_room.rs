//! A series tracks at most `MonitorConfig::max_evaluators` evaluation names. Results of a
//! further name were left out of its averages and detection without a trace, and a name once
//! tracked kept its place for good: after a service renamed its evaluators (`judge-v1` to
//! `judge-v2`), the new names were never averaged over the series' lifetime. They are now
//! counted (`MonitorStats::evaluations_over_limit`), and a name without a result for
//! `resolve_idle_after` makes room for a new one.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmtel_eval::{EvalInput, Evaluation};
use llmtel_quality::{Monitor, MonitorConfig};

fn config() -> MonitorConfig {
    MonitorConfig {
        max_evaluators: 2,
        ..MonitorConfig::default()
    }
    .with_resolve_idle_after(Duration::from_secs(600))
}

fn result(m: &mut Monitor, name: &str, at: SystemTime) {
    let input = EvalInput::new("an answer")
        .with_series("gpt-4o-mini", "faq")
        .with_time(at);
    m.record_evaluation(&input, &Evaluation::new(name, 0.9, "good", ""));
}

fn lifetime_names(m: &Monitor) -> Vec<String> {
    let snap = m.snapshot();
    let s = snap.series.iter().find(|s| s.feature == "faq").unwrap();
    s.total.evaluators.keys().cloned().collect()
}

#[test]
fn results_of_a_name_past_the_limit_are_counted() {
    let mut m = Monitor::new(config());
    let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for name in ["judge-v1", "relevance", "judge-v2"] {
        result(&mut m, name, t);
    }
    m.advance(t + Duration::from_secs(120));
    // judge-v2 left out of the series and of all calls.
    assert_eq!(m.stats().evaluations_over_limit, 2, "{:?}", m.stats());
    assert_eq!(lifetime_names(&m), ["judge-v1", "relevance"]);
}

#[test]
fn a_name_without_results_for_the_idle_time_makes_room_for_a_new_one() {
    let mut m = Monitor::new(config());
    let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // Ten minutes of judge-v1 and relevance; then judge-v1 is renamed judge-v2.
    for minute in 0..10u64 {
        let at = t + Duration::from_secs(minute * 60);
        result(&mut m, "judge-v1", at);
        result(&mut m, "relevance", at);
    }
    for minute in 10..40u64 {
        let at = t + Duration::from_secs(minute * 60);
        result(&mut m, "judge-v2", at);
        result(&mut m, "relevance", at);
    }
    m.advance(t + Duration::from_secs(41 * 60));
    let names = lifetime_names(&m);
    assert!(names.contains(&"judge-v2".to_owned()), "{names:?}");
    assert!(!names.contains(&"judge-v1".to_owned()), "{names:?}");
    let snap = m.snapshot();
    let s = snap.series.iter().find(|s| s.feature == "faq").unwrap();
    assert!(
        s.detectors.contains_key("evaluator:judge-v2"),
        "{:?}",
        s.detectors.keys()
    );
    assert!(!s.detectors.contains_key("evaluator:judge-v1"));
    // Until judge-v1 had gone ten minutes without a result, judge-v2 was left out, counted.
    let over = m.stats().evaluations_over_limit;
    assert!(over > 0 && over < 2 * 30, "{:?}", m.stats());
    assert!(
        m.footprint()
            .within(&llmtel_quality::Footprint::bound(m.config()))
    );
}

#[test]
fn a_name_back_in_the_window_a_new_name_arrives_in_keeps_its_place() {
    // judge-v1 is idle past the idle time, then comes back in the same window a new name
    // first appears in, after it: judge-v1 is seen in that window, so the new name does not
    // take its place (it was evicted and then left out itself, its history lost).
    let mut m = Monitor::new(config());
    let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    result(&mut m, "judge-v1", t);
    for minute in 0..20u64 {
        result(&mut m, "relevance", t + Duration::from_secs(minute * 60));
    }
    let back = t + Duration::from_secs(20 * 60 + 5);
    result(&mut m, "newcomer", back);
    result(&mut m, "judge-v1", back + Duration::from_secs(1));
    result(&mut m, "relevance", back + Duration::from_secs(2));
    m.advance(t + Duration::from_secs(23 * 60));
    assert_eq!(lifetime_names(&m), ["judge-v1", "relevance"]);
    // The newcomer is the one left out, counted.
    assert!(m.stats().evaluations_over_limit >= 2, "{:?}", m.stats());
}
