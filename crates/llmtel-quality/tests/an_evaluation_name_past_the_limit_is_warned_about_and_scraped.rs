//! A series tracks at most `MonitorConfig::max_evaluators` evaluation names (16). Results of
//! a further name (an evaluator renamed `judge-v2` while `judge-v1` still holds its place)
//! were counted only in `MonitorStats::evaluations_over_limit`, which nothing showed: no
//! log line, no Prometheus series. The first is now warned about, naming the evaluation and
//! what to do (into the pipeline's own dispatcher when it has one), and the count is scraped
//! as `llm_quality_evaluations_over_limit_total`.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmtel_metrics::PrometheusSink;
use llmtel_quality::{EvalInput, Evaluation, Monitor, MonitorConfig, Quality};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// The warnings' messages, with their `evaluation` field.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<(String, String)>>>);

#[derive(Default)]
struct Fields {
    message: String,
    evaluation: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "evaluation" {
            self.evaluation = value.to_owned();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "evaluation" => self.evaluation = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() != tracing::Level::WARN {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        self.0.lock().unwrap().push((f.evaluation, f.message));
    }
}

fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn input() -> EvalInput {
    EvalInput::new("an answer")
        .with_series("gpt-4o-mini", "faq")
        .with_time(at())
}

fn config() -> MonitorConfig {
    MonitorConfig::default().with_max_evaluators(1)
}

/// The one warning, naming `judge-v2` and saying how to make room.
fn assert_warned_once(warnings: &Warnings) {
    let w = warnings.0.lock().unwrap();
    assert_eq!(w.len(), 1, "warned once: {w:?}");
    let (evaluation, message) = &w[0];
    assert_eq!(evaluation, "judge-v2");
    for part in [
        "\"judge-v2\"",
        "model \"gpt-4o-mini\", feature \"faq\"",
        "MonitorConfig::with_max_evaluators",
        "reuse evaluator names",
        "evaluations_over_limit",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
}

#[test]
fn the_monitor_warns_once_naming_the_first_evaluation_left_out() {
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    let mut m = Monitor::new(config());
    tracing::subscriber::with_default(subscriber, || {
        for name in ["judge-v1", "judge-v2", "judge-v2", "judge-v3"] {
            m.record_evaluation(&input(), &Evaluation::new(name, 0.9, "good", ""));
        }
    });
    // Three results left out of the series and of all calls.
    assert_eq!(m.stats().evaluations_over_limit, 6, "{:?}", m.stats());
    assert_warned_once(&warnings);
}

#[test]
fn a_pipeline_warns_into_its_dispatcher_and_scrapes_the_count() {
    let warnings = Warnings::default();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(warnings.clone()));
    let q = Quality::builder()
        .with_monitor(config())
        .with_events(false)
        .with_dispatch(dispatch.clone())
        .build();
    let sink = PrometheusSink::default();
    q.register_metrics(&sink);
    for name in ["judge-v1", "judge-v2"] {
        assert!(q.record_evaluation(input(), Evaluation::new(name, 0.9, "good", "")));
    }
    assert!(q.flush(Duration::from_secs(10)));
    assert_eq!(q.snapshot().stats.evaluations_over_limit, 2);
    assert_warned_once(&warnings);
    let text = sink.encode_openmetrics();
    assert!(
        text.lines()
            .any(|l| l == "llm_quality_evaluations_over_limit_total 2"),
        "{text}"
    );
    assert!(q.shutdown());
}

#[test]
fn a_name_from_a_sender_is_quoted_and_redacted_in_the_warning() {
    // Evaluation names reach the monitor from remote spans (the collector): one holding a
    // newline forged a log line, one holding a key put it in the log.
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    let mut m = Monitor::new(config());
    let hostile = "judge\nERROR forged line password=hunter2hunter2";
    tracing::subscriber::with_default(subscriber, || {
        for name in ["judge-v1", hostile] {
            m.record_evaluation(&input(), &Evaluation::new(name, 0.9, "good", ""));
        }
    });
    let w = warnings.0.lock().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    let (evaluation, message) = &w[0];
    for text in [evaluation, message] {
        assert!(!text.contains("hunter2"), "{text}");
    }
    assert!(!message.contains('\n'), "{message}");
    assert!(
        message.contains(r#""judge\nERROR forged line"#),
        "{message}"
    );
}
