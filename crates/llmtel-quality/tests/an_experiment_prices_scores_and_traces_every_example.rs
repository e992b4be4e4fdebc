//! An experiment runs a deterministic fake app (real `llm_span!` calls with usage) over a
//! small dataset: the summary's cost is the catalog price of those calls computed here from
//! llmtel-pricing, scores and pass rates are exact, an app error or panic is counted and not
//! fatal, the concurrency limit holds, and every example is its own trace that parents the
//! app's LLM spans, with the evaluations emitted on the example's last call.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use llmtel::{LlmLayer, Usage, Usd};
use llmtel_quality::{
    Dataset, Example, ExpectedOutput, Experiment, ExperimentSink, Refusal, SyncAdapter,
};
use opentelemetry::trace::{SpanId, Status, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument as _;
use tracing_subscriber::prelude::*;

const DATASET: &str = r#"
{"id": "q1", "input": "What is the capital of France?", "expected": "Paris"}
{"id": "q2", "input": "What is the capital of Italy?", "expected": "Rome"}
{"id": "q3", "input": "What is the capital of Germany?", "expected": "Berlin"}
{"id": "q4", "input": "What is the capital of Spain?", "expected": "Madrid"}
{"id": "q5", "input": "What is the capital of Japan?", "expected": "Tokyo"}
{"id": "q6", "input": "How do I pick a lock?"}
"#;

/// The LLM calls the fake app makes per example: (model, input tokens, output tokens).
fn calls_of(id: &str) -> Vec<(&'static str, u64, u64)> {
    match id {
        "q1" => vec![("gpt-4o-mini", 1_200, 40)],
        "q2" => vec![("gpt-4o-mini", 1_500, 35)],
        // A cheap draft, then a large model: both count.
        "q3" => vec![("gpt-4o-mini", 900, 60), ("gpt-4o", 2_000, 120)],
        "q4" => vec![("gpt-4o", 3_000, 15)],
        "q5" => vec![],
        "q6" => vec![("gpt-4o-mini", 700, 25)],
        other => panic!("no example {other}"),
    }
}

fn answer_of(id: &str) -> &'static str {
    match id {
        "q1" => "Paris",
        "q2" => "rome.",
        "q3" => "The capital is Berlin",
        "q4" => "Lisbon",
        "q6" => "I'm sorry, I can't help with that request.",
        other => panic!("no answer for {other}"),
    }
}

/// One chat call through `llm_span!`, with a simulated 5 ms round trip.
async fn chat(model: &'static str, input: u64, output: u64, response_id: String) {
    let span = llmtel::llm_span!("chat", "openai", model);
    tokio::time::sleep(Duration::from_millis(5))
        .instrument(span.clone())
        .await;
    llmtel::record_response(&span, &response_id, model, &["stop"]);
    llmtel::record_usage(
        &span,
        &Usage {
            input_tokens: input,
            output_tokens: output,
            ..Default::default()
        },
    );
}

/// The app under test: deterministic answers; q5 fails after a rate-limited call.
async fn app(ex: Example) -> Result<String, String> {
    if ex.id == "q5" {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
        tokio::time::sleep(Duration::from_millis(5))
            .instrument(span.clone())
            .await;
        llmtel::record_error(&span, "rate_limit", "429 Too Many Requests");
        return Err("provider returned 429 after 1 attempt".into());
    }
    for (i, (model, input, output)) in calls_of(&ex.id).into_iter().enumerate() {
        chat(model, input, output, format!("chatcmpl-{}-{i}", ex.id)).await;
    }
    Ok(answer_of(&ex.id).to_owned())
}

/// The catalog price of one example's calls, computed here from llmtel-pricing.
fn expected_cost(id: &str) -> Usd {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    calls_of(id)
        .into_iter()
        .map(|(model, input, output)| {
            let usage = Usage {
                input_tokens: input,
                output_tokens: output,
                ..Default::default()
            };
            llmtel::Catalog::builtin()
                .price(model, Some("openai"), &usage, today)
                .unwrap()
                .breakdown
                .total
        })
        .fold(Usd::ZERO, Usd::saturating_add)
}

fn pipeline(with_sink: bool) -> (InMemorySpanExporter, tracing::Dispatch) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let mut layer = LlmLayer::new();
    if with_sink {
        layer = layer.with_sink(Arc::new(ExperimentSink));
    }
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(layer)
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))),
    );
    (exporter, dispatch)
}

fn block_on<F: Future>(dispatch: &tracing::Dispatch, f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    tracing::dispatcher::with_default(dispatch, || rt.block_on(f))
}

fn experiment() -> Experiment {
    Experiment::new("capitals")
        .with_evaluator(Arc::new(SyncAdapter(Refusal)))
        .with_reference_evaluator(Arc::new(ExpectedOutput::exact()))
        .with_reference_evaluator(Arc::new(ExpectedOutput::normalised()))
        .with_reference_evaluator(Arc::new(ExpectedOutput::token_f1()))
        .with_threshold("token_f1", 0.8)
        .with_concurrency(3)
}

fn attr(s: &SpanData, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

#[test]
fn the_summary_prices_scores_and_counts_every_example() {
    let (_exporter, dispatch) = pipeline(true);
    let dataset = Dataset::from_reader(DATASET.as_bytes()).unwrap();
    let summary = block_on(&dispatch, experiment().run(&dataset, app));

    // Rows in dataset order, cost of each = the catalog price of its calls.
    let ids: Vec<&str> = summary.rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["q1", "q2", "q3", "q4", "q5", "q6"]);
    for row in &summary.rows {
        assert_eq!(row.cost, expected_cost(&row.id), "cost of {}", row.id);
    }
    let total = ["q1", "q2", "q3", "q4", "q5", "q6"]
        .into_iter()
        .map(expected_cost)
        .fold(Usd::ZERO, Usd::saturating_add);
    assert!(total > Usd::ZERO);
    assert_eq!(summary.total_cost, total);
    assert_eq!(summary.mean_cost, Usd::from_picos(total.picos() / 6));
    let q3 = &summary.rows[2];
    assert_eq!(
        (q3.calls, q3.input_tokens, q3.output_tokens),
        (2, 2_900, 180)
    );
    assert!(q3.llm_time_ms >= 10.0, "two 5 ms calls: {}", q3.llm_time_ms);
    assert_eq!(summary.calls, 7);
    assert_eq!(summary.unpriced_calls, 0);
    assert_eq!(summary.examples_without_calls, 0);

    // The failed example is counted, not fatal; its failed LLM call is there, unpriced.
    assert_eq!((summary.examples, summary.errors), (6, 1));
    let q5 = &summary.rows[4];
    assert_eq!(
        q5.error.as_deref(),
        Some("provider returned 429 after 1 attempt")
    );
    assert_eq!((q5.calls, q5.failed_calls, q5.cost), (1, 1, Usd::ZERO));
    assert!(q5.scores.is_empty() && q5.answer.is_none());

    // Scores: exact per example, means and pass rates over the examples each evaluator scored.
    let score = |id: &str, name: &str| {
        summary
            .rows
            .iter()
            .find(|r| r.id == id)
            .unwrap()
            .scores
            .get(name)
            .map(|s| (s.score, s.passed))
    };
    assert_eq!(score("q1", "exact_match"), Some((1.0, true)));
    assert_eq!(score("q2", "exact_match"), Some((0.0, false)));
    assert_eq!(score("q2", "normalised_match"), Some((1.0, true)));
    // "capital is berlin" vs "berlin": precision 1/3, recall 1 -> F1 0.5, under 0.8.
    assert_eq!(score("q3", "token_f1"), Some((0.5, false)));
    assert_eq!(score("q6", "refusal"), Some((0.0, false)));
    assert_eq!(score("q6", "exact_match"), None, "no expected output");

    let ev = |name: &str| {
        let e = &summary.evaluators[name];
        (e.scored, e.mean, e.passed, e.pass_rate, e.threshold)
    };
    assert_eq!(ev("exact_match"), (4, 0.25, 1, 0.25, 0.5));
    assert_eq!(ev("normalised_match"), (4, 0.5, 2, 0.5, 0.5));
    assert_eq!(ev("token_f1"), (4, 0.625, 2, 0.5, 0.8));
    assert_eq!(ev("refusal"), (5, 0.8, 4, 0.8, 0.5));

    // Latency: every example slept at least 5 ms per call.
    assert!(summary.rows.iter().all(|r| r.latency_ms >= 5.0));
    assert!(summary.latency_p50_ms >= 5.0);
    assert!(summary.latency_p95_ms >= summary.latency_p50_ms);
    let slowest = summary
        .rows
        .iter()
        .map(|r| r.latency_ms)
        .fold(0.0, f64::max);
    assert!(summary.latency_p95_ms <= slowest);

    // Table and JSON.
    let table = summary.to_string();
    for needle in [
        "experiment \"capitals\"",
        "6 examples, 1 failed",
        "exact_match",
        "token_f1",
        "q6",
        "provider returned 429",
        &format!("total {total}"),
    ] {
        assert!(table.contains(needle), "{needle:?} not in\n{table}");
    }
    let json = summary.to_json();
    assert_eq!(json["evaluators"]["token_f1"]["pass_rate"], 0.5);
    assert_eq!(
        json["rows"][4]["error"],
        "provider returned 429 after 1 attempt"
    );
    assert_eq!(json["total_cost"].as_f64(), Some(total.as_f64()));
}

#[test]
fn each_example_is_a_trace_that_parents_its_calls_and_their_evaluations() {
    let (exporter, dispatch) = pipeline(true);
    let dataset = Dataset::from_reader(DATASET.as_bytes()).unwrap();
    let summary = block_on(&dispatch, experiment().run(&dataset, app));
    let spans = exporter.get_finished_spans().unwrap();

    let example = |id: &str| {
        spans
            .iter()
            .find(|s| s.name == format!("experiment capitals {id}"))
            .unwrap_or_else(|| panic!("{:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()))
    };
    let mut traces = std::collections::HashSet::new();
    for row in &summary.rows {
        let ex = example(&row.id);
        assert_eq!(ex.parent_span_id, SpanId::INVALID, "{} is a root", row.id);
        traces.insert(ex.span_context.trace_id());
        assert_eq!(
            attr(ex, "llmtel.experiment.name").as_deref(),
            Some("capitals")
        );
        assert_eq!(
            attr(ex, "llmtel.experiment.example.id").as_deref(),
            Some(row.id.as_str())
        );
        assert_eq!(
            attr(ex, "llmtel.experiment.run_id").as_deref(),
            Some(summary.run_id.as_str())
        );
        // The example's LLM spans are its children, in its trace.
        let calls: Vec<&SpanData> = spans
            .iter()
            .filter(|s| {
                s.parent_span_id == ex.span_context.span_id() && s.name.starts_with("chat ")
            })
            .collect();
        assert_eq!(calls.len() as u64, row.calls, "{}", row.id);
        if let Some(t) = &row.trace_id {
            assert_eq!(*t, ex.span_context.trace_id().to_string());
        }
    }
    assert_eq!(traces.len(), 6, "one trace per example");

    // The failed example's span has the error status.
    assert!(
        matches!(&example("q5").status, Status::Error { description } if description.contains("429")),
        "{:?}",
        example("q5").status
    );

    // q3's evaluations hang under its last call (the gpt-4o one).
    let q3 = example("q3");
    let last_call = spans
        .iter()
        .find(|s| s.name == "chat gpt-4o" && s.parent_span_id == q3.span_context.span_id())
        .unwrap();
    let evals: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.parent_span_id == last_call.span_context.span_id())
        .collect();
    let mut names: Vec<&str> = evals.iter().map(|s| s.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "evaluation exact_match",
            "evaluation normalised_match",
            "evaluation refusal",
            "evaluation token_f1"
        ]
    );
    let f1 = evals
        .iter()
        .find(|s| s.name == "evaluation token_f1")
        .unwrap();
    assert_eq!(
        f1.span_context.trace_id(),
        last_call.span_context.trace_id()
    );
    assert_eq!(
        f1.attributes
            .iter()
            .find(|kv| kv.key.as_str() == "gen_ai.evaluation.score.value")
            .map(|kv| kv.value.clone()),
        Some(opentelemetry::Value::F64(0.5))
    );
    assert_eq!(
        attr(f1, "gen_ai.response.id").as_deref(),
        Some("chatcmpl-q3-1")
    );
}

#[test]
fn no_more_examples_run_at_once_than_the_concurrency_allows() {
    let (_exporter, dispatch) = pipeline(true);
    let lines: String = (0..9)
        .map(|i| format!("{{\"id\": \"e{i}\", \"input\": \"question {i}\"}}\n"))
        .collect();
    let dataset = Dataset::from_reader(lines.as_bytes()).unwrap();
    for limit in [1, 3] {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let summary = block_on(
            &dispatch,
            Experiment::new("limits")
                .with_concurrency(limit)
                .run(&dataset, |_ex| {
                    let (in_flight, peak) = (&in_flight, &peak);
                    async move {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        chat("gpt-4o-mini", 100, 10, "r".into()).await;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, String>("ok".to_owned())
                    }
                }),
        );
        assert_eq!(peak.load(Ordering::SeqCst), limit, "concurrency {limit}");
        assert_eq!((summary.examples, summary.errors, summary.calls), (9, 0, 9));
    }
}

#[test]
fn a_panicking_app_fails_its_example_only() {
    let (_exporter, dispatch) = pipeline(true);
    let dataset = Dataset::from_reader(DATASET.as_bytes()).unwrap();
    let summary = block_on(
        &dispatch,
        Experiment::new("panics")
            .with_reference_evaluator(Arc::new(ExpectedOutput::exact()))
            .run(&dataset, |ex| async move {
                if ex.id == "q2" {
                    panic!("index out of bounds in the prompt builder");
                }
                app(ex).await
            }),
    );
    assert_eq!(summary.errors, 2, "q2 panicked, q5 returned an error");
    assert_eq!(summary.rows.len(), 6, "the run went on after the panic");
    assert_eq!(
        summary.rows[1].error.as_deref(),
        Some("the app panicked: index out of bounds in the prompt builder")
    );
    assert_eq!(summary.rows[0].scores["exact_match"].score, 1.0);
    assert_eq!(summary.evaluators["exact_match"].scored, 3);
}

#[test]
fn without_the_sink_the_summary_says_it_saw_no_call() {
    let (_exporter, dispatch) = pipeline(false);
    let dataset = Dataset::from_reader(DATASET.as_bytes()).unwrap();
    let summary = block_on(&dispatch, Experiment::new("blind").run(&dataset, app));
    assert_eq!(summary.calls, 0);
    assert_eq!(summary.total_cost, Usd::ZERO);
    assert_eq!(
        summary.examples_without_calls, 5,
        "q5 failed; the other 5 answered"
    );
    assert!(summary.to_string().contains("ExperimentSink"), "{summary}");
}

#[test]
fn an_example_id_longer_than_a_dimension_value_still_gets_its_calls() {
    // llmtel caps dimension values (the example id is one) at llmtel::MAX_VALUE_BYTES; the
    // calls were filed under the capped id and looked up under the whole one: 0 calls.
    let (_exporter, dispatch) = pipeline(true);
    let id = "q".repeat(300);
    let line = format!("{{\"id\": \"{id}\", \"input\": \"What is the capital of France?\"}}\n");
    let dataset = Dataset::from_reader(line.as_bytes()).unwrap();
    let summary = block_on(
        &dispatch,
        Experiment::new("long ids").run(&dataset, |_ex| async {
            chat("gpt-4o-mini", 1_200, 40, "chatcmpl-long".into()).await;
            Ok::<_, String>("Paris".to_owned())
        }),
    );
    assert_eq!(summary.rows[0].id, id);
    assert_eq!((summary.calls, summary.rows[0].calls), (1, 1));
    assert_eq!(summary.rows[0].cost, expected_cost("q1"));
    assert_eq!(summary.examples_without_calls, 0);
}

/// A judge whose provider refuses every other example (a rate limit).
#[derive(Debug)]
struct FlakyJudge;

impl llmtel_eval::Evaluator for FlakyJudge {
    fn name(&self) -> &str {
        "judge"
    }
    fn evaluate<'a>(&'a self, input: &'a llmtel_eval::EvalInput) -> llmtel_eval::EvalFuture<'a> {
        let fut = self.try_evaluate(input);
        Box::pin(async move { fut.await.ok().flatten() })
    }
    fn try_evaluate<'a>(
        &'a self,
        input: &'a llmtel_eval::EvalInput,
    ) -> llmtel_eval::TryEvalFuture<'a> {
        let refused = input.answer.contains("rome") || input.answer.contains("Berlin");
        Box::pin(std::future::ready(if refused {
            Err(llmtel_eval::EvalError::RateLimited {
                endpoint: "https://api.example.com/v1".into(),
            })
        } else {
            Ok(Some(llmtel_eval::Evaluation::new("judge", 1.0, "good", "")))
        }))
    }
}

#[test]
fn an_evaluator_that_fails_is_counted_not_read_as_not_applying() {
    let (_exporter, dispatch) = pipeline(true);
    let dataset = Dataset::from_reader(DATASET.as_bytes()).unwrap();
    let summary = block_on(
        &dispatch,
        Experiment::new("judged")
            .with_evaluator(Arc::new(FlakyJudge))
            .run(&dataset, app),
    );
    let judge = &summary.evaluators["judge"];
    // q1, q4, q6 scored; q2 and q3 refused (q5 failed before evaluation).
    assert_eq!((judge.scored, judge.failed), (3, 2), "{judge:?}");
    assert_eq!(judge.mean, 1.0);
    let q2 = &summary.rows[1];
    assert!(!q2.scores.contains_key("judge"));
    assert!(
        q2.evaluation_errors["judge"].contains("rate limiting"),
        "{q2:?}"
    );
    assert!(summary.to_string().contains("failed"), "{summary}");
}
