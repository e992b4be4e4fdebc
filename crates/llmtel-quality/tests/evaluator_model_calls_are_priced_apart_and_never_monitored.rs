//! The judge's and the embeddings evaluator's own model calls are exported as GenAI spans
//! with usage and an exact cost under their own `llmtel.feature`, marked
//! `llmtel.evaluation`, in the evaluated call's trace, with no content and no API key; the
//! quality monitor does not count them as app calls (through the sink or the layer).
#![cfg(all(feature = "judge", feature = "embeddings"))]
#![allow(clippy::unwrap_used)]

mod openai_standin;

use std::sync::Arc;
use std::time::Duration;

use llmtel::LlmLayer;
use llmtel_quality::eval::{EmbeddingRelevance, LlmJudge};
use llmtel_quality::{EvalInput, Quality};
use openai_standin::{Behaviour, StandIn};
use opentelemetry::Value;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::prelude::*;

const KEY: &str = "sk-test-4b1d2c9e";
const QUESTION: &str = "How do I reset my password?";
const ANSWER: &str = "Open the login page, click Forgot password and follow the emailed link.";

fn attr<'a>(s: &'a SpanData, key: &str) -> Option<&'a Value> {
    s.attributes
        .iter()
        .rev()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn int(s: &SpanData, key: &str) -> i64 {
    match attr(s, key) {
        Some(Value::I64(v)) => *v,
        other => panic!("{key}: {other:?}"),
    }
}

fn float(s: &SpanData, key: &str) -> f64 {
    match attr(s, key) {
        Some(Value::F64(v)) => *v,
        other => panic!("{key}: {other:?}"),
    }
}

fn string(s: &SpanData, key: &str) -> String {
    match attr(s, key) {
        Some(Value::String(v)) => v.as_str().to_owned(),
        other => panic!("{key}: {other:?}"),
    }
}

fn find<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no {name:?} among {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

fn scenario(through_layer: bool) {
    // The judge answers 1200 prompt tokens (1024 cached) and 300 completion tokens.
    let server = StandIn::start(Behaviour::Fixed {
        content: r#"{"score": 5, "label": "helpful", "explanation": "Gives the exact steps."}"#
            .into(),
        usage: (1200, 1024, 300, 0),
    });
    let judge = LlmJudge::builder(&server.base, "gpt-4o-mini")
        .with_api_key(KEY)
        .build()
        .unwrap();
    let relevance = EmbeddingRelevance::builder(&server.base, "text-embedding-3-small")
        .with_api_key(KEY)
        .build()
        .unwrap();
    let quality = Quality::builder()
        .with_evaluator(Arc::new(judge))
        .with_evaluator(Arc::new(relevance))
        .build();

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(llmtel::GenAiExporter::new(exporter.clone()))
        .build();
    let dispatch = if through_layer {
        tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(LlmLayer::new())
                .with(quality.layer())
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))),
        )
    } else {
        tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(LlmLayer::new().with_sink(Arc::new(quality.sink())))
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))),
        )
    };
    quality.emit_into(&dispatch);

    // One app call, then its content passed explicitly to the evaluators.
    let input = tracing::dispatcher::with_default(&dispatch, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        span.record("llmtel.feature", "support");
        llmtel::record_response(&span, "chatcmpl-app-1", "gpt-4o", &["stop"]);
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 500,
                output_tokens: 80,
                ..Default::default()
            },
        );
        EvalInput::new(ANSWER)
            .with_question(QUESTION)
            .with_response_id("chatcmpl-app-1")
            .with_span(&span)
    });
    assert!(quality.evaluate(input));
    assert!(quality.flush(Duration::from_secs(20)));

    let spans = exporter.get_finished_spans().unwrap();
    let app = find(&spans, "chat gpt-4o");
    let judge = find(&spans, "chat gpt-4o-mini");
    let emb = find(&spans, "embeddings text-embedding-3-small");

    // The judge's call: usage from the response, priced (gpt-4o-mini: $0.15/M input, $0.075/M
    // cached input, $0.60/M output): 176 x 0.15 + 1024 x 0.075 + 300 x 0.60 = $0.0002832.
    assert_eq!(int(judge, "gen_ai.usage.input_tokens"), 1200);
    assert_eq!(int(judge, "gen_ai.usage.cache_read.input_tokens"), 1024);
    assert_eq!(int(judge, "gen_ai.usage.output_tokens"), 300);
    assert!((float(judge, "gen_ai.usage.cost") - 0.000_283_2).abs() < 1e-12);
    assert_eq!(string(judge, "llmtel.feature"), "llmtel.judge");
    assert_eq!(string(judge, "llmtel.evaluation"), "true");
    assert_eq!(
        string(judge, "gen_ai.response.model"),
        "gpt-4o-mini-2024-07-18"
    );
    assert_eq!(int(judge, "gen_ai.request.max_tokens"), 400);
    // The embeddings call: both texts in one request; $0.02/M input tokens.
    let words = (QUESTION.split_whitespace().count() + ANSWER.split_whitespace().count()) as i64;
    assert_eq!(int(emb, "gen_ai.usage.input_tokens"), words);
    assert!((float(emb, "gen_ai.usage.cost") - words as f64 * 0.02e-6).abs() < 1e-15);
    assert_eq!(string(emb, "llmtel.feature"), "llmtel.embedding_relevance");
    assert_eq!(string(emb, "llmtel.evaluation"), "true");
    // Both in the evaluated call's trace, under its span.
    for s in [judge, emb] {
        assert_eq!(s.span_context.trace_id(), app.span_context.trace_id());
        assert_eq!(s.parent_span_id, app.span_context.span_id());
        assert_eq!(string(s, "server.address"), "127.0.0.1");
    }
    // No content and no key on any span.
    for s in &spans {
        for kv in &s.attributes {
            let v = kv.value.as_str();
            assert!(!v.contains(KEY), "{} on {}", kv.key, s.name);
            if s.name != "gen_ai.evaluation.result" && !s.name.starts_with("evaluation ") {
                assert!(!v.contains("Forgot password"), "{} on {}", kv.key, s.name);
            }
        }
    }
    // The key went to the endpoint, once per evaluator.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs.iter()
            .all(|r| r.authorization.as_deref() == Some(&*format!("Bearer {KEY}")))
    );

    // The monitor counts the app's call only; both results are on it.
    let stats = quality.stats();
    assert_eq!(stats.evaluator_calls_skipped, 2, "{stats:?}");
    assert_eq!(stats.evals_run, 2, "{stats:?}");
    assert_eq!(stats.evals_failed, 0, "{stats:?}");
    let snap = quality.snapshot();
    assert_eq!(snap.overall.total.requests, 1);
    assert_eq!(snap.series.len(), 1, "{:?}", snap.series);
    assert_eq!(snap.series[0].feature, "support");
    assert_eq!(snap.overall.total.evaluators["judge"].avg, 1.0);
    // The stand-in's vectors are unit length: the score is their dot product.
    let (q, a) = (
        openai_standin::embed(QUESTION),
        openai_standin::embed(ANSWER),
    );
    let cos: f64 = q.iter().zip(&a).map(|(x, y)| x * y).sum();
    assert!(cos > 0.05);
    let got = snap.overall.total.evaluators["embedding_relevance"].avg;
    assert!((got - cos).abs() < 1e-9, "{got} vs {cos}");
    let results: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == "evaluation judge" || s.name == "evaluation embedding_relevance")
        .collect();
    assert_eq!(results.len(), 2);
    assert!(
        results
            .iter()
            .all(|s| s.parent_span_id == app.span_context.span_id())
    );
}

#[test]
fn through_the_sink() {
    scenario(false);
}

#[test]
fn through_the_layer() {
    scenario(true);
}
