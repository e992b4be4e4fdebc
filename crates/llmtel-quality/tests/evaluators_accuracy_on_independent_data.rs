//! Each built-in evaluator on the independent labelled set (`tests/data/independent/`,
//! written and labelled blind to the heuristics; see the README there): accuracy and the
//! precision and recall of the `bad` class are printed as a table, with every misclassified
//! example, and the accuracy is held to a per-evaluator floor (the measured accuracy when
//! the set was added, rounded down to 5 %), so a change that makes an evaluator worse on
//! data it was not tuned on fails here.

use llmtel_quality::{
    EvalInput, Fluency, Groundedness, JsonValidity, LexicalRelevance, PiiLeak, Refusal,
    SyncEvaluator,
};
use serde::Deserialize;
use serde_json::Value;

/// One labelled example, as stored in `tests/data/independent/<set>.jsonl`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Example {
    id: String,
    label: Label,
    #[serde(default)]
    question: Option<String>,
    answer: String,
    #[serde(default)]
    context: Vec<String>,
    #[serde(default)]
    schema: Option<Value>,
    note: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Label {
    Good,
    Bad,
}

impl Example {
    fn to_input(&self) -> EvalInput {
        let mut input = EvalInput::new(self.answer.as_str());
        if let Some(q) = &self.question {
            input = input.with_question(q.as_str());
        }
        for doc in &self.context {
            input = input.with_context(doc.as_str());
        }
        if let Some(schema) = &self.schema {
            input = input.with_schema(schema.clone());
        }
        input
    }
}

/// An evaluator under test: its data set, the label it gives a good answer, the labels it
/// gives a bad one (any other label fails the test), and the accuracy floor.
struct Case {
    set: &'static str,
    evaluator: Box<dyn SyncEvaluator>,
    good: &'static str,
    bad: &'static [&'static str],
    floor: f64,
}

/// The confusion matrix of one evaluator, `bad` being the positive class.
#[derive(Default)]
struct Outcome {
    set: &'static str,
    good: usize,
    bad: usize,
    true_bad: usize,
    false_bad: usize,
    missed_bad: usize,
    true_good: usize,
    misses: Vec<String>,
}

impl Outcome {
    fn n(&self) -> usize {
        self.good + self.bad
    }
    fn accuracy(&self) -> f64 {
        ratio(self.true_bad + self.true_good, self.n())
    }
    fn precision_bad(&self) -> f64 {
        ratio(self.true_bad, self.true_bad + self.false_bad)
    }
    fn recall_bad(&self) -> f64 {
        ratio(self.true_bad, self.true_bad + self.missed_bad)
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn load(set: &str) -> Vec<Example> {
    let path = format!(
        "{}/tests/data/independent/{set}.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{path} line {}: {e}", i + 1))
        })
        .collect()
}

fn measure(case: &Case) -> Outcome {
    let mut out = Outcome {
        set: case.set,
        ..Outcome::default()
    };
    for ex in load(case.set) {
        assert!(!ex.note.is_empty(), "{}: every label needs a reason", ex.id);
        let got = case
            .evaluator
            .score(&ex.to_input())
            .unwrap_or_else(|| panic!("{}: the evaluator did not apply", ex.id));
        assert!(
            (0.0..=1.0).contains(&got.score),
            "{}: score {}",
            ex.id,
            got.score
        );
        let said = if got.label == case.good {
            Label::Good
        } else if case.bad.contains(&got.label.as_str()) {
            Label::Bad
        } else {
            panic!("{}: undocumented label {:?}", ex.id, got.label)
        };
        match (ex.label, said) {
            (Label::Good, Label::Good) => out.true_good += 1,
            (Label::Bad, Label::Bad) => out.true_bad += 1,
            (Label::Good, Label::Bad) => out.false_bad += 1,
            (Label::Bad, Label::Good) => out.missed_bad += 1,
        }
        match ex.label {
            Label::Good => out.good += 1,
            Label::Bad => out.bad += 1,
        }
        if said != ex.label {
            out.misses.push(format!(
                "{}: labelled {:?}, got {} ({:.2}: {}) [{}]",
                ex.id, ex.label, got.label, got.score, got.explanation, ex.note
            ));
        }
    }
    out
}

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
    let outcomes: Vec<Outcome> = cases.iter().map(measure).collect();

    println!("| evaluator | n | good / bad | accuracy | precision (bad) | recall (bad) |");
    println!("|---|---|---|---|---|---|");
    for o in &outcomes {
        println!(
            "| {} | {} | {} / {} | {:.1} % | {:.1} % | {:.1} % |",
            o.set,
            o.n(),
            o.good,
            o.bad,
            100.0 * o.accuracy(),
            100.0 * o.precision_bad(),
            100.0 * o.recall_bad()
        );
    }
    for miss in outcomes.iter().flat_map(|o| &o.misses) {
        println!("miss: {miss}");
    }

    for (case, o) in cases.iter().zip(&outcomes) {
        assert!(
            o.n() >= 25 && o.good >= 12 && o.bad >= 12,
            "{}: the set must keep at least 25 examples, 12 of each class",
            o.set
        );
        assert!(
            o.accuracy() >= case.floor,
            "{}: accuracy {:.3} fell under its floor {:.2} on the independent set",
            o.set,
            o.accuracy(),
            case.floor
        );
    }
}
