//! Offline evaluation with llmtel-quality: a **simulated** support bot run over a JSONL
//! dataset, each example traced and priced by llmtel, the answers scored by evaluators and
//! against the expected answers, and an experiment summary printed as a table.
//!
//! No API key and no collector needed: the "model" is a deterministic stand-in that answers
//! with the context sentence sharing the most words with the question (so it gets some
//! answers wrong, as a real model would), with token usage counted by the model's real
//! tokenizer and a latency that grows with the answer. Each answer still goes through
//! `llm_span!`, so cost and latency in the table come from llmtel's spans.
//!
//! ```text
//! cargo run --example evaluate-dataset                         # the bundled dataset.jsonl
//! cargo run --example evaluate-dataset -- my-dataset.jsonl     # your own
//! cargo run --example evaluate-dataset -- --json               # the summary as JSON
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run --example evaluate-dataset  # also export
//! ```
//!
//! Dataset lines: `{"id"?, "input", "expected"?, "context"?: [..], "metadata"?: {..}}`. This
//! bot reads two metadata keys: `"difficulty": "hard"` routes the question to `gpt-4o`
//! (else `gpt-4o-mini`), and `"simulate": "rate_limit" | "timeout"` makes the simulated
//! provider fail once (then the bot retries) or for good.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use llmtel::Usage;
use llmtel_quality::{
    Dataset, Example, ExpectedOutput, Experiment, ExperimentSink, Groundedness, LexicalRelevance,
    Refusal, SyncAdapter,
};
use tracing::Instrument as _;

const SYSTEM_PROMPT: &str = "You are the support assistant of Acme Cloud. Answer the customer's \
question in one sentence, using only the documentation below. If the documentation does not \
say, say that you cannot help and offer to open a ticket.";

const NO_DOCS: &str = "I'm sorry, I can't help with that: our documentation does not cover it. \
Shall I open a ticket?";

const STOPWORDS: &[&str] = &[
    "the", "and", "for", "you", "your", "can", "how", "what", "when", "where", "which", "who",
    "does", "are", "with", "from", "into", "that", "this", "there", "have", "has", "all", "its",
    "our", "not", "but",
];

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 2 && !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// The simulated model: the context sentence that shares the most words with the question
/// (the first one on a tie), or a refusal when there is no context.
fn simulated_answer(question: &str, context: &[String]) -> String {
    let q = words(question);
    let mut best: Option<(usize, &str)> = None;
    for doc in context {
        for sentence in doc.split_inclusive(". ").map(str::trim) {
            let overlap = words(sentence).iter().filter(|w| q.contains(w)).count();
            if best.is_none_or(|(n, _)| overlap > n) {
                best = Some((overlap, sentence));
            }
        }
    }
    best.map_or_else(|| NO_DOCS.to_owned(), |(_, s)| s.to_owned())
}

/// One chat completion through `llm_span!`: usage as the provider would report it (counted
/// with the model's tokenizer), a latency that grows with the answer, or a failure.
async fn chat(model: &str, prompt: &str, failure: Option<(&str, &str)>) -> Result<String, String> {
    let span = llmtel::llm_span!("chat", "openai", model);
    span.record("gen_ai.request.max_tokens", 256);
    span.record("gen_ai.request.temperature", 0.0);
    let (answer, latency) = match failure {
        Some(_) => (String::new(), Duration::from_millis(30)),
        None => {
            let (question, context) = prompt_parts(prompt);
            let answer = simulated_answer(question, &context);
            let ms = 40 + 2 * answer.len() as u64 / 3;
            (answer, Duration::from_millis(ms))
        }
    };
    tokio::time::sleep(latency).instrument(span.clone()).await;
    if let Some((kind, message)) = failure {
        llmtel::record_error(&span, kind, message);
        return Err(format!("{model}: {message}"));
    }
    let usage = Usage {
        input_tokens: llmtel::estimate::count_tokens(model, prompt).tokens,
        output_tokens: llmtel::estimate::count_tokens(model, &answer).tokens,
        ..Default::default()
    };
    llmtel::record_response(&span, "chatcmpl-simulated", model, &["stop"]);
    llmtel::record_usage(&span, &usage);
    Ok(answer)
}

fn prompt(ex: &Example) -> String {
    let mut p = format!("{SYSTEM_PROMPT}\n\n# Documentation\n");
    for doc in &ex.context {
        p.push_str(doc);
        p.push('\n');
    }
    p.push_str("\n# Question\n");
    p.push_str(&ex.input);
    p
}

/// The question and the documentation back out of a prompt (the simulated model's view).
fn prompt_parts(prompt: &str) -> (&str, Vec<String>) {
    let (head, question) = prompt.split_once("\n# Question\n").unwrap_or(("", prompt));
    let docs = head
        .split_once("# Documentation\n")
        .map(|(_, d)| {
            d.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    (question, docs)
}

/// The app under evaluation: route by difficulty, retry once on a rate limit.
async fn support_bot(ex: Example) -> Result<String, String> {
    let hard = ex.metadata.get("difficulty").and_then(|v| v.as_str()) == Some("hard");
    let model = if hard { "gpt-4o" } else { "gpt-4o-mini" };
    let prompt = prompt(&ex);
    match ex.metadata.get("simulate").and_then(|v| v.as_str()) {
        Some("timeout") => {
            chat(
                model,
                &prompt,
                Some(("timeout", "no response within 30 s (simulated)")),
            )
            .await
        }
        Some("rate_limit") => {
            let first = chat(
                model,
                &prompt,
                Some(("rate_limit", "429 Too Many Requests (simulated)")),
            )
            .await;
            match first {
                Ok(answer) => Ok(answer),
                Err(_) => chat(model, &prompt, None).await,
            }
        }
        _ => chat(model, &prompt, None).await,
    }
}

fn main() -> ExitCode {
    let mut json = false;
    let mut path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/dataset.jsonl"));
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json = true,
            "-h" | "--help" => {
                println!("usage: evaluate-dataset [--json] [DATASET.jsonl]");
                return ExitCode::SUCCESS;
            }
            other => path = PathBuf::from(other),
        }
    }
    let dataset = match Dataset::from_jsonl(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("evaluate-dataset: {e}");
            return ExitCode::FAILURE;
        }
    };
    let guard = match llmtel::builder()
        .with_service_name("evaluate-dataset")
        .with_console(false)
        .with_sink(Arc::new(ExperimentSink))
        .install()
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("evaluate-dataset: llmtel could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("evaluate-dataset: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };

    let experiment = Experiment::new("acme-support-faq")
        .with_evaluator(Arc::new(SyncAdapter(LexicalRelevance::default())))
        .with_evaluator(Arc::new(SyncAdapter(Groundedness::default())))
        .with_evaluator(Arc::new(SyncAdapter(Refusal)))
        .with_reference_evaluator(Arc::new(ExpectedOutput::exact()))
        .with_reference_evaluator(Arc::new(ExpectedOutput::normalised()))
        .with_reference_evaluator(Arc::new(ExpectedOutput::token_f1()))
        .with_threshold("token_f1", 0.8)
        .with_concurrency(4);
    if !json {
        println!(
            "Evaluating a SIMULATED support bot (deterministic answers and usage; no API key, no network) on {} examples from {}.",
            dataset.len(),
            path.display()
        );
        if guard.is_exporting() {
            println!("Exporting each example's trace over OTLP as well.");
        }
        println!();
    }
    // Load the tokenizer the simulated provider counts with once, outside the measured
    // latencies (the first count builds its tables).
    let _ = llmtel::estimate::count_tokens("gpt-4o", SYSTEM_PROMPT);
    let summary = runtime.block_on(experiment.run(&dataset, support_bot));
    if json {
        match serde_json::to_string_pretty(&summary.to_json()) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("evaluate-dataset: {e}"),
        }
    } else {
        println!("{summary}");
    }
    drop(guard); // flushes and shuts down export: no span is lost
    ExitCode::SUCCESS
}
