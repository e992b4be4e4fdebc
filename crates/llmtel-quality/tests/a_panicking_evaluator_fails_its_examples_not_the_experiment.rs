//! An evaluator that panicked on one example (a user's, a bug in a heuristic on odd input)
//! unwound through `Experiment::run` and took the whole run with it: no summary, every other
//! example's scores lost. The panic is now that evaluator's error on that example
//! (`evaluation_errors`, its summary's `failed`), as an app's panic is the example's error.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use llmtel_eval::{EvalFuture, EvalInput, Evaluation, Evaluator};
use llmtel_quality::{Dataset, ExpectedOutput, Experiment, ReferenceEvaluator};

const DATASET: &str = r#"{"id": "q1", "input": "Capital of France?", "expected": "Paris"}
{"id": "q2", "input": "Capital of Italy?", "expected": "Rome"}
{"id": "q3", "input": "Capital of Spain?", "expected": "Madrid"}"#;

/// Panics on the answer `Rome` while building its future.
#[derive(Debug)]
struct PanicsBuilding;

impl Evaluator for PanicsBuilding {
    fn name(&self) -> &str {
        "panics_building"
    }
    fn evaluate<'a>(&'a self, input: &'a EvalInput) -> EvalFuture<'a> {
        assert_ne!(input.answer, "Rome", "cannot judge Rome");
        Box::pin(std::future::ready(Some(Evaluation::new(
            "panics_building",
            1.0,
            "ok",
            "",
        ))))
    }
}

/// Panics on the answer `Madrid` while its future is polled.
#[derive(Debug)]
struct PanicsPolled;

impl Evaluator for PanicsPolled {
    fn name(&self) -> &str {
        "panics_polled"
    }
    fn evaluate<'a>(&'a self, input: &'a EvalInput) -> EvalFuture<'a> {
        Box::pin(async move {
            assert_ne!(input.answer, "Madrid", "cannot judge Madrid");
            Some(Evaluation::new("panics_polled", 1.0, "ok", ""))
        })
    }
}

/// Panics on every answer.
#[derive(Debug)]
struct PanicsAgainstReference;

impl ReferenceEvaluator for PanicsAgainstReference {
    fn name(&self) -> &str {
        "panics_against_reference"
    }
    fn score(&self, _: &str, _: &str) -> Evaluation {
        panic!("no reference scores today")
    }
}

#[test]
fn each_panic_is_its_evaluators_error_on_that_example() {
    let dataset = Dataset::from_reader(DATASET.as_bytes()).unwrap();
    let experiment = Experiment::new("panics")
        .with_evaluator(Arc::new(PanicsBuilding))
        .with_evaluator(Arc::new(PanicsPolled))
        .with_reference_evaluator(Arc::new(ExpectedOutput::exact()))
        .with_reference_evaluator(Arc::new(PanicsAgainstReference))
        .with_emit_evaluations(false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let summary = rt.block_on(experiment.run(&dataset, |example| async move {
        let answer = match example.id.as_str() {
            "q1" => "Paris",
            "q2" => "Rome",
            _ => "Madrid",
        };
        Ok::<_, std::convert::Infallible>(answer.to_owned())
    }));
    assert_eq!(summary.examples, 3);
    assert_eq!(summary.errors, 0);
    let row = |id: &str| summary.rows.iter().find(|r| r.id == id).unwrap();
    assert!(
        row("q2").evaluation_errors["panics_building"].contains("cannot judge Rome"),
        "{:?}",
        row("q2").evaluation_errors
    );
    assert!(
        row("q3").evaluation_errors["panics_polled"].contains("cannot judge Madrid"),
        "{:?}",
        row("q3").evaluation_errors
    );
    for id in ["q1", "q2", "q3"] {
        assert!(row(id).evaluation_errors["panics_against_reference"].contains("panicked"));
        assert_eq!(row(id).scores["exact_match"].score, 1.0, "{:?}", row(id));
    }
    let building = &summary.evaluators["panics_building"];
    assert_eq!((building.scored, building.failed), (2, 1));
    let polled = &summary.evaluators["panics_polled"];
    assert_eq!((polled.scored, polled.failed), (2, 1));
    assert_eq!(summary.evaluators["panics_against_reference"].failed, 3);
}
