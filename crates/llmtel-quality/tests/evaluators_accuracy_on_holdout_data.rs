//! Each built-in evaluator on the held-out labelled set (`tests/data/holdout/`, written and
//! labelled blind to the heuristics and to the other sets, and tuned against by nobody; see
//! the README there): accuracy and the precision and recall of the `bad` class are printed as
//! a table, with every misclassified example, and the accuracy is held to a per-evaluator
//! floor (the measured accuracy, rounded down to 5 %). The independent set measures tuning
//! progress; this one measures whether it generalises.

mod common;

use common::labelled::{builtin, measure_and_hold_floors};

#[test]
fn every_evaluator_holds_its_accuracy_on_the_holdout_set() {
    // Floors: the accuracy measured on the code of 2026-11-27, when the set was added,
    // rounded down to 5 %. Raise a floor when a heuristic improves; never lower one to make a
    // change pass, and never edit the set's labels to match the evaluators.
    let cases = [
        // Measured when the set was added (48.5, 87.5, 78.1, 64.5, 97.2, 89.7 %), then after
        // the heuristics were revised against the independent set:
        builtin("relevance", 0.50),     // 54.5 %
        builtin("fluency", 0.85),       // 87.5 %
        builtin("groundedness", 0.80),  // 81.2 %
        builtin("refusal", 0.75),       // 77.4 %
        builtin("json_validity", 0.95), // 97.2 %
        builtin("pii", 0.90),           // 94.9 %
    ];
    measure_and_hold_floors("holdout", &cases);
}
