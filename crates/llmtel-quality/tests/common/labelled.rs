//! Labelled data sets for the built-in evaluators (`tests/data/<folder>/<set>.jsonl`, format
//! in `tests/data/independent/README.md`): loading, measuring an evaluator on a set (accuracy,
//! precision and recall of the `bad` class, every miss), printing the table and holding each
//! evaluator to its floor.

use llmtel_quality::{
    EvalInput, Fluency, Groundedness, JsonValidity, LexicalRelevance, PiiLeak, Refusal,
    SyncEvaluator,
};
use serde::Deserialize;
use serde_json::Value;

/// One labelled example, as stored in `tests/data/<folder>/<set>.jsonl`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub id: String,
    pub label: Label,
    #[serde(default)]
    pub question: Option<String>,
    pub answer: String,
    #[serde(default)]
    pub context: Vec<String>,
    #[serde(default)]
    pub schema: Option<Value>,
    pub note: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Good,
    Bad,
}

impl Example {
    pub fn to_input(&self) -> EvalInput {
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
pub struct Case {
    pub set: &'static str,
    pub evaluator: Box<dyn SyncEvaluator>,
    pub good: &'static str,
    pub bad: &'static [&'static str],
    pub floor: f64,
}

/// The built-in evaluator that the set `set` (the file name without `.jsonl`) measures, with
/// its default settings, its labels and this floor.
pub fn builtin(set: &'static str, floor: f64) -> Case {
    let (evaluator, good, bad): (Box<dyn SyncEvaluator>, _, &'static [&'static str]) = match set {
        "relevance" => (
            Box::new(LexicalRelevance::default()),
            "relevant",
            &["irrelevant"],
        ),
        "fluency" => (Box::new(Fluency::default()), "fluent", &["disfluent"]),
        "groundedness" => (
            Box::new(Groundedness::default()),
            "grounded",
            &["ungrounded"],
        ),
        "refusal" => (Box::new(Refusal), "answered", &["refusal"]),
        "json_validity" => (
            Box::new(JsonValidity::default()),
            "valid",
            &["schema_violation", "invalid_json"],
        ),
        "pii" => (Box::new(PiiLeak), "clean", &["pii"]),
        other => panic!("no built-in evaluator for the set {other:?}"),
    };
    Case {
        set,
        evaluator,
        good,
        bad,
        floor,
    }
}

/// The confusion matrix of one evaluator, `bad` being the positive class.
#[derive(Default)]
pub struct Outcome {
    pub set: &'static str,
    pub good: usize,
    pub bad: usize,
    pub true_bad: usize,
    pub false_bad: usize,
    pub missed_bad: usize,
    pub true_good: usize,
    pub misses: Vec<String>,
}

impl Outcome {
    pub fn n(&self) -> usize {
        self.good + self.bad
    }
    pub fn accuracy(&self) -> f64 {
        ratio(self.true_bad + self.true_good, self.n())
    }
    pub fn precision_bad(&self) -> f64 {
        ratio(self.true_bad, self.true_bad + self.false_bad)
    }
    pub fn recall_bad(&self) -> f64 {
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

/// The examples of `tests/data/<folder>/<set>.jsonl`.
pub fn load(folder: &str, set: &str) -> Vec<Example> {
    let path = format!(
        "{}/tests/data/{folder}/{set}.jsonl",
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

/// Runs the case's evaluator on every example of `tests/data/<folder>/<case.set>.jsonl`.
pub fn measure(folder: &str, case: &Case) -> Outcome {
    let mut out = Outcome {
        set: case.set,
        ..Outcome::default()
    };
    for ex in load(folder, case.set) {
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

/// Measures every case on `tests/data/<folder>/`, prints the table and every miss, then
/// asserts that each set keeps at least 25 examples (12 of each class) and each evaluator
/// its floor.
pub fn measure_and_hold_floors(folder: &str, cases: &[Case]) {
    let outcomes: Vec<Outcome> = cases.iter().map(|case| measure(folder, case)).collect();

    println!(
        "| evaluator ({folder} set) | n | good / bad | accuracy | precision (bad) | recall (bad) |"
    );
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
            "{}: the {folder} set must keep at least 25 examples, 12 of each class",
            o.set
        );
        assert!(
            o.accuracy() >= case.floor,
            "{}: accuracy {:.3} fell under its floor {:.2} on the {folder} set",
            o.set,
            o.accuracy(),
            case.floor
        );
    }
}
