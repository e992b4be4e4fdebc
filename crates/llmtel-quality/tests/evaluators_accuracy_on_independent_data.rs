//! Each built-in evaluator on the independent labelled set (`tests/data/independent/`,
//! written and labelled blind to the heuristics; see the README there): accuracy and the
//! precision and recall of the `bad` class are printed as a table, with every misclassified
//! example, and the accuracy is held to a per-evaluator floor (the measured accuracy when
//! the set was added, rounded down to 5 %), so a change that makes an evaluator worse on
//! data it was not tuned on fails here.

mod common;

use common::labelled::{Case, measure_and_hold_floors};
use llmtel_quality::{Fluency, Groundedness, JsonValidity, LexicalRelevance, PiiLeak, Refusal};

#[test]
fn every_evaluator_holds_its_accuracy_on_the_independent_set() {
    // Floors: the accuracy measured, rounded down to 5 %: first when the set was added
    // (2026-11-27), then after the heuristics were revised against this set's misses (issue
    // #5), which makes it a development set: see its README. Raise a floor when a heuristic
    // improves; never lower one to make a change pass.
    let cases = [
        Case {
            set: "relevance",
            evaluator: Box::new(LexicalRelevance::default()),
            good: "relevant",
            bad: &["irrelevant"],
            floor: 0.90, // 54.8 % when the set was added, 93.5 % after the revision
        },
        Case {
            set: "fluency",
            evaluator: Box::new(Fluency::default()),
            good: "fluent",
            bad: &["disfluent"],
            floor: 1.00, // 87.5 % when the set was added, 100 % after the revision
        },
        Case {
            set: "groundedness",
            evaluator: Box::new(Groundedness::default()),
            good: "grounded",
            bad: &["ungrounded"],
            floor: 1.00, // 67.7 % when the set was added, 100 % after the revision
        },
        Case {
            set: "refusal",
            evaluator: Box::new(Refusal),
            good: "answered",
            bad: &["refusal"],
            floor: 1.00, // 66.7 % when the set was added, 100 % after the revision
        },
        Case {
            set: "json_validity",
            evaluator: Box::new(JsonValidity::default()),
            good: "valid",
            bad: &["schema_violation", "invalid_json"],
            floor: 1.00, // measured 100 % when the set was added
        },
        Case {
            set: "pii",
            evaluator: Box::new(PiiLeak),
            good: "clean",
            bad: &["pii"],
            floor: 1.00, // 85.7 % when the set was added, 100 % after the revision
        },
    ];
    measure_and_hold_floors("independent", &cases);
}
