//! The remote evaluators on labelled examples (`tests/data/judge.jsonl`,
//! `tests/data/embedding_relevance.jsonl`, written for this repository, good and bad),
//! against the local OpenAI-compatible stand-in: the accuracy is computed, printed as a
//! table and held to a floor.
//!
//! What it measures (see the crate README): for the judge, that our prompt carries the
//! question and the answer (the stand-in finds the recorded judge reply by both), and that
//! the request, the parsing of replies in every shape judges give (JSON, fenced JSON, prose
//! around JSON, bare numbers, `Score: n`, `n/5`) and the threshold turn the recorded verdicts
//! into the human labels; the two examples where the recorded judge disagrees with the label
//! stay misses. For embeddings, that one request, the cosine and the threshold separate
//! relevant from irrelevant answers on the stand-in's hashed bag-of-words vectors: not the
//! quality of any real model.
#![cfg(all(feature = "judge", feature = "embeddings"))]
#![allow(clippy::unwrap_used)]

mod openai_standin;

use llmtel_quality::eval::{EmbeddingRelevance, LlmJudge};
use llmtel_quality::{EvalInput, Evaluator};
use openai_standin::{Behaviour, Fixture, StandIn};
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/{name}.jsonl", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: {e}: {l}")))
        .collect()
}

fn s<'a>(ex: &'a Value, key: &str) -> &'a str {
    ex[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {ex}"))
}

/// Runs `e` over `data` on a runtime like the evaluation thread's; returns (correct, misses).
fn run(e: &dyn Evaluator, data: &[Value]) -> (usize, Vec<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut correct = 0;
    let mut misses = Vec::new();
    for ex in data {
        let input = EvalInput::new(s(ex, "answer")).with_question(s(ex, "question"));
        let got = rt
            .block_on(e.try_evaluate(&input))
            .unwrap_or_else(|err| panic!("{}: {err}", e.name()))
            .expect("applies to every example");
        assert!((0.0..=1.0).contains(&got.score));
        if got.label == s(ex, "label") {
            correct += 1;
        } else {
            misses.push(format!(
                "{}: expected {}, got {} ({:.3}: {}) for {:?}",
                e.name(),
                s(ex, "label"),
                got.label,
                got.score,
                got.explanation,
                s(ex, "answer")
            ));
        }
    }
    (correct, misses)
}

fn report(name: &str, data: &[Value], positive: &str, correct: usize, misses: &[String]) {
    let n = data.len();
    let pos = data.iter().filter(|ex| s(ex, "label") == positive).count();
    println!("| evaluator | examples | good / bad | correct | accuracy |");
    println!("|---|---|---|---|---|");
    println!(
        "| {name} | {n} | {pos} / {} | {correct} | {:.1} % |",
        n - pos,
        100.0 * correct as f64 / n as f64
    );
    for m in misses {
        println!("miss: {m}");
    }
    assert!(
        pos >= 20 && n - pos >= 20,
        "{name}: 20 of each class needed"
    );
    let acc = correct as f64 / n as f64;
    assert!(
        acc >= 0.85,
        "{name}: accuracy {acc:.3} under the 0.85 floor"
    );
}

#[test]
fn llm_judge_meets_its_accuracy_floor() {
    let data = load("judge");
    let fixtures = data
        .iter()
        .map(|ex| Fixture {
            question: s(ex, "question").into(),
            answer: s(ex, "answer").into(),
            reply: s(ex, "judge_reply").into(),
        })
        .collect();
    let server = StandIn::start(Behaviour::Replay(fixtures));
    let judge = LlmJudge::builder(&server.base, "gpt-4o-mini")
        .with_api_key("sk-test-judge")
        .with_json_response_format(true)
        .build()
        .unwrap();
    let (correct, misses) = run(&judge, &data);

    // Every example went out as one well-formed request.
    let reqs = server.requests();
    assert_eq!(reqs.len(), data.len());
    for r in &reqs {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.authorization.as_deref(), Some("Bearer sk-test-judge"));
        assert_eq!(r.body["model"], "gpt-4o-mini");
        assert_eq!(r.body["response_format"]["type"], "json_object");
        assert_eq!(r.body["temperature"], 0.0);
        assert_eq!(r.body["messages"][0]["role"], "system");
        assert_eq!(r.body["messages"][1]["role"], "user");
    }
    report("judge", &data, "pass", correct, &misses);
    // The two recorded verdicts that disagree with their labels, and only they, are missed.
    assert_eq!(misses.len(), 2, "{misses:#?}");
}

#[test]
fn embedding_relevance_meets_its_accuracy_floor() {
    let data = load("embedding_relevance");
    let server = StandIn::start(Behaviour::Replay(Vec::new()));
    let relevance =
        EmbeddingRelevance::builder(format!("{}/v1", server.base), "text-embedding-3-small")
            .build()
            .unwrap();
    let (correct, misses) = run(&relevance, &data);

    let reqs = server.requests();
    assert_eq!(reqs.len(), data.len(), "one request per example");
    for (r, ex) in reqs.iter().zip(&data) {
        assert_eq!(r.path, "/v1/embeddings");
        assert_eq!(r.authorization, None);
        assert_eq!(
            r.body["input"],
            serde_json::json!([s(ex, "question"), s(ex, "answer")])
        );
    }
    report("embedding_relevance", &data, "relevant", correct, &misses);
}
