//! Each built-in evaluator on its labelled examples (`tests/data/<evaluator>.jsonl`, written
//! for this repository, good and bad): the accuracy is computed, printed as a table and held
//! to a floor of 95 % (raised from 85 % when the heuristics were revised for issue #5 and all
//! six reached 100 % here; the slack is one miss in 24).

use llmtel_quality::{
    EvalInput, Fluency, Groundedness, JsonValidity, LexicalRelevance, PiiLeak, Refusal,
    SyncEvaluator,
};
use serde_json::Value;

struct Row {
    name: &'static str,
    n: usize,
    correct: usize,
    positives: usize,
    misses: Vec<String>,
}

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/{name}.jsonl", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: {e}: {l}")))
        .collect()
}

fn input(ex: &Value) -> EvalInput {
    let mut i = EvalInput::new(ex["answer"].as_str().unwrap_or_default());
    if let Some(q) = ex["question"].as_str() {
        i = i.with_question(q);
    }
    if let Some(c) = ex["context"].as_array() {
        for d in c {
            i = i.with_context(d.as_str().unwrap_or_default());
        }
    }
    if !ex["schema"].is_null() {
        i = i.with_schema(ex["schema"].clone());
    }
    i
}

/// Runs `e` over the data; `map` turns the evaluator's label into the data's label space.
fn run(name: &'static str, e: &dyn SyncEvaluator, positive: &str, map: fn(&str) -> &str) -> Row {
    let data = load(name);
    let mut row = Row {
        name,
        n: data.len(),
        correct: 0,
        positives: 0,
        misses: Vec::new(),
    };
    for ex in &data {
        let want = ex["label"].as_str().expect("label");
        row.positives += usize::from(want == positive);
        let got = e
            .score(&input(ex))
            .expect("evaluator applies to every example");
        assert!(
            (0.0..=1.0).contains(&got.score),
            "{name}: score {}",
            got.score
        );
        if map(&got.label) == want {
            row.correct += 1;
        } else {
            row.misses.push(format!(
                "{name}: expected {want}, got {} ({:.2}: {}) for {:?}",
                got.label,
                got.score,
                got.explanation,
                ex["answer"].as_str().unwrap_or_default()
            ));
        }
    }
    row
}

#[test]
fn every_evaluator_meets_its_accuracy_floor() {
    let rows = vec![
        run("relevance", &LexicalRelevance::default(), "relevant", |l| l),
        run("fluency", &Fluency::default(), "fluent", |l| l),
        run("groundedness", &Groundedness::default(), "grounded", |l| l),
        run("refusal", &Refusal, "refusal", |l| l),
        run("json_validity", &JsonValidity::default(), "valid", |l| {
            if l == "valid" { "valid" } else { "invalid" }
        }),
        run("pii", &PiiLeak, "pii", |l| l),
    ];
    println!("| evaluator | examples | good / bad | correct | accuracy |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} / {} | {} | {:.1} % |",
            r.name,
            r.n,
            r.positives,
            r.n - r.positives,
            r.correct,
            100.0 * r.correct as f64 / r.n as f64
        );
    }
    for r in &rows {
        for m in &r.misses {
            println!("miss: {m}");
        }
    }
    for r in &rows {
        assert!(r.n >= 20, "{}: only {} examples", r.name, r.n);
        assert!(
            r.positives >= 8 && r.n - r.positives >= 8,
            "{}: both classes need examples",
            r.name
        );
        let acc = r.correct as f64 / r.n as f64;
        assert!(
            acc >= 0.95,
            "{}: accuracy {acc:.3} under the 0.95 floor",
            r.name
        );
    }
}
