//! The pipeline cuts an evaluator's input to `with_max_input_chars` (16,000 characters) to
//! bound its work. A long JSON answer cut there is never valid JSON, and a long answer cut
//! mid-sentence reads as truncated: they were scored 0 and "disfluent", feeding the quality
//! score and the evaluator-drop alert. Evaluators that judge a text's end now skip what the cut
//! removed (`EvalInput::answer_cut`), and groundedness does not call a claim unsupported when
//! the context was cut (`EvalInput::context_cut`).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use llmtel_eval::{EvalInput, Evaluator};
use llmtel_quality::{Fluency, Groundedness, JsonValidity, Quality, SyncAdapter};

#[test]
fn a_long_json_answer_is_not_scored_invalid_for_the_cut() {
    let quality = Quality::builder()
        .with_evaluator(Arc::new(SyncAdapter(JsonValidity::default().always())))
        .with_events(false)
        .build();
    // ~20,600 characters of valid JSON, then a short one.
    let long = serde_json::to_string(&vec!["x".repeat(100); 200]).unwrap();
    assert!(long.len() > 16_000);
    assert!(quality.evaluate(EvalInput::new(long)));
    assert!(quality.evaluate(EvalInput::new("{\"ok\": true}")));
    assert!(quality.flush(Duration::from_secs(10)));
    let snap = quality.snapshot();
    let json = &snap.overall.total.evaluators["json_validity"];
    assert_eq!(json.count, 1, "{json:?}");
    assert_eq!(json.avg, 1.0, "{json:?}");
}

#[test]
fn fluency_and_groundedness_leave_out_what_a_cut_removed() {
    let sentence =
        "The parcel left the depot on Monday morning, and the courier will bring it to the";
    let mut cut = EvalInput::new(sentence);
    let fluency = SyncAdapter(Fluency::default());
    let block_on = |e: &dyn Evaluator, i: &EvalInput| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(e.evaluate(i))
    };
    let uncut = block_on(&fluency, &cut).unwrap();
    assert!(uncut.explanation.contains("truncated"), "{uncut:?}");
    cut.answer_cut = true;
    let judged = block_on(&fluency, &cut).unwrap();
    assert!(!judged.explanation.contains("truncated"), "{judged:?}");

    let grounded = SyncAdapter(Groundedness::default());
    let mut input = EvalInput::new("Your order 1234 ships from the Leeds depot on Monday.")
        .with_context("Orders ship within two days of payment.");
    let unsupported = block_on(&grounded, &input).unwrap();
    assert!(unsupported.score < 1.0, "{unsupported:?}");
    input.context_cut = true;
    assert_eq!(block_on(&grounded, &input), None);
}
