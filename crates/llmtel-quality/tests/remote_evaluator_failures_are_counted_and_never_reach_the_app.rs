//! Every way a remote evaluator's endpoint can fail (down, 401, 429, 5xx, HTTP timeout,
//! malformed body, a reply with no verdict, the evaluator's own timeout) is an `EvalError`
//! with a message that names the endpoint and says what to do, never holds the API key, is
//! counted by the pipeline and recorded on the evaluator's span; the app's calls are
//! monitored as if nothing happened.
#![cfg(all(feature = "judge", feature = "embeddings"))]
#![allow(clippy::unwrap_used)]

mod openai_standin;

use std::sync::Arc;
use std::time::Duration;

use llmtel::LlmLayer;
use llmtel_quality::eval::{EmbeddingRelevance, LlmJudge};
use llmtel_quality::{EvalError, EvalInput, Evaluator, Quality};
use openai_standin::{Behaviour, StandIn, dead_base};
use opentelemetry::Value;
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::prelude::*;

const KEY: &str = "sk-never-shown-7f3a";

/// A chat completion whose content holds no verdict.
const NO_VERDICT: &str = r#"{"id":"chatcmpl-nv","object":"chat.completion","created":1741570283,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"The answer looks fine to me overall.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":310,"completion_tokens":9,"total_tokens":319}}"#;

/// An embeddings list with one vector for two inputs.
const ONE_VECTOR: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":4,"total_tokens":4}}"#;

fn input() -> EvalInput {
    EvalInput::new("Go to Settings > Security and turn on two-factor authentication.")
        .with_question("How do I enable two-factor authentication?")
}

fn judge(base: &str) -> LlmJudge {
    LlmJudge::builder(base, "gpt-4o-mini")
        .with_api_key(KEY)
        .with_http_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

fn embeddings(base: &str) -> EmbeddingRelevance {
    EmbeddingRelevance::builder(base, "text-embedding-3-small")
        .with_api_key(KEY)
        .with_http_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

/// Runs `e` once, as the evaluation thread does, and returns its error.
fn error_of(e: &dyn Evaluator) -> EvalError {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let i = input();
    rt.block_on(e.try_evaluate(&i)).unwrap_err()
}

fn check(e: &EvalError, kind: &str, says: &[&str]) {
    let msg = e.to_string();
    assert_eq!(e.error_type(), kind, "{msg}");
    for s in says {
        assert!(msg.contains(s), "{kind}: {msg:?} lacks {s:?}");
    }
    assert!(!msg.contains(KEY), "{msg}");
}

#[test]
fn each_failure_is_a_clear_error() {
    let down = dead_base();
    check(
        &error_of(&judge(&down)),
        "unreachable",
        &[
            &format!("{down}/v1/chat/completions"),
            "unreachable",
            "check the base URL",
        ],
    );
    check(
        &error_of(&embeddings(&down)),
        "unreachable",
        &["/v1/embeddings", "unreachable"],
    );
    let s = StandIn::start(Behaviour::Status(401));
    check(
        &error_of(&judge(&s.base)),
        "unauthorized",
        &["HTTP 401", "with_api_key"],
    );
    let s = StandIn::start(Behaviour::Status(429));
    check(
        &error_of(&embeddings(&s.base)),
        "rate_limit",
        &["HTTP 429", "sampling rate"],
    );
    let s = StandIn::start(Behaviour::Status(500));
    check(
        &error_of(&judge(&s.base)),
        "server_error",
        &["HTTP 500", "The server had an error"],
    );
    let s = StandIn::start(Behaviour::Status(503));
    check(
        &error_of(&embeddings(&s.base)),
        "server_error",
        &["HTTP 503"],
    );
    let s = StandIn::start(Behaviour::Raw("{\"id\": \"chatcmpl-1\", \"choices\": ["));
    check(
        &error_of(&judge(&s.base)),
        "malformed_response",
        &["not JSON", "OpenAI-compatible chat completions endpoint"],
    );
    let s = StandIn::start(Behaviour::Raw(NO_VERDICT));
    check(
        &error_of(&judge(&s.base)),
        "unparseable_verdict",
        &["36 characters", "no usable score", "\"score\""],
    );
    let s = StandIn::start(Behaviour::Raw(ONE_VECTOR));
    check(
        &error_of(&embeddings(&s.base)),
        "malformed_response",
        &["1 embeddings for 2 inputs", "embeddings endpoint"],
    );
    let s = StandIn::start(Behaviour::Slow(Duration::from_secs(3)));
    check(
        &error_of(&judge(&s.base)),
        "timeout",
        &["within 300 ms", "with_http_timeout"],
    );
}

/// The pipeline around a failing judge: the app's call, an evaluation, a flush. (The provider
/// is returned: dropping it shuts the in-memory exporter down, which empties it.)
fn pipeline(
    judge: LlmJudge,
    eval_timeout: Duration,
) -> (Quality, InMemorySpanExporter, SdkTracerProvider) {
    let quality = Quality::builder()
        .with_evaluator_sampled(Arc::new(judge), 1.0, eval_timeout)
        .build();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(llmtel::GenAiExporter::new(exporter.clone()))
        .build();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(LlmLayer::new().with_sink(Arc::new(quality.sink())))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))),
    );
    quality.emit_into(&dispatch);
    tracing::dispatcher::with_default(&dispatch, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_response(&span, "chatcmpl-app-2", "gpt-4o", &["stop"]);
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 200,
                output_tokens: 50,
                ..Default::default()
            },
        );
    });
    assert!(quality.evaluate(input().with_response_id("chatcmpl-app-2")));
    assert!(quality.flush(Duration::from_secs(20)));
    (quality, exporter, provider)
}

fn judge_span(exporter: &InMemorySpanExporter) -> opentelemetry_sdk::trace::SpanData {
    let spans = exporter.get_finished_spans().unwrap();
    let names: Vec<String> = spans.iter().map(|s| s.name.to_string()).collect();
    spans
        .into_iter()
        .find(|s| s.name == "chat gpt-4o-mini")
        .unwrap_or_else(|| panic!("the judge's call is not among {names:?}"))
}

fn error_type_of(s: &opentelemetry_sdk::trace::SpanData) -> String {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == "error.type")
        .map(|kv| kv.value.as_str().into_owned())
        .unwrap_or_default()
}

#[test]
fn failures_are_counted_and_the_app_is_unaffected() {
    for (behaviour, kind) in [
        (None, "unreachable"),
        (Some(Behaviour::Status(500)), "server_error"),
        (
            Some(Behaviour::Raw("<html>502 Bad Gateway</html>")),
            "malformed_response",
        ),
        (Some(Behaviour::Raw(NO_VERDICT)), "unparseable_verdict"),
    ] {
        let server = behaviour.map(StandIn::start);
        let base = server.as_ref().map_or_else(dead_base, |s| s.base.clone());
        let (quality, exporter, _provider) = pipeline(judge(&base), Duration::from_secs(5));

        let stats = quality.stats();
        assert_eq!(stats.evals_failed, 1, "{kind}: {stats:?}");
        assert_eq!(stats.evals_run, 0, "{kind}: {stats:?}");
        assert_eq!(stats.evaluator_calls_skipped, 1, "{kind}: {stats:?}");
        let last = quality.last_evaluator_error().unwrap();
        assert!(last.starts_with("judge: "), "{last}");
        assert!(!last.contains(KEY));
        // The app's call is monitored as usual; no score was invented.
        let snap = quality.snapshot();
        assert_eq!(snap.overall.total.requests, 1, "{kind}");
        assert!(
            !snap.overall.total.evaluators.contains_key("judge"),
            "{kind}"
        );
        // The judge's span says what failed.
        let s = judge_span(&exporter);
        assert_eq!(error_type_of(&s), kind);
        assert!(
            matches!(s.status, Status::Error { .. }),
            "{kind}: {:?}",
            s.status
        );
        assert!(
            s.attributes
                .iter()
                .all(|kv| !kv.value.as_str().contains(KEY))
        );
    }
}

#[test]
fn the_evaluator_timeout_stops_a_slow_judge_and_marks_its_call_cancelled() {
    let server = StandIn::start(Behaviour::Slow(Duration::from_secs(3)));
    let judge = LlmJudge::builder(&server.base, "gpt-4o-mini")
        .build()
        .unwrap();
    let (quality, exporter, _provider) = pipeline(judge, Duration::from_millis(200));
    let stats = quality.stats();
    assert_eq!(stats.evals_timed_out, 1, "{stats:?}");
    assert_eq!(stats.evals_failed, 0, "{stats:?}");
    assert_eq!(quality.snapshot().overall.total.requests, 1);
    let s = judge_span(&exporter);
    assert_eq!(error_type_of(&s), "cancelled");
    assert!(matches!(
        s.attributes.iter().find(|kv| kv.key.as_str() == "llmtel.evaluation").map(|kv| &kv.value),
        Some(Value::String(v)) if v.as_str() == "true"
    ));
}
