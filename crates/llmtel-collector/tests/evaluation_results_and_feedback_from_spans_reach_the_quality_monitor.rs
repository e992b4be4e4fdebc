//! Issue #15: the collector monitors quality from spans: not only each call's errors and
//! latency but what other services' evaluators and users said about their calls. Both shapes
//! in use reach the monitor: a `gen_ai.evaluation.result` event on the evaluated span (the
//! semantic conventions' event, as a Python service adds it), and the result spans a Rust
//! service's llmtel-quality emits (`emit_evaluation`, as a child of the evaluated call), for
//! an evaluator's score and a user's feedback alike.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use llmtel_collector::{Collector, Config};
use llmtel_quality::{CallRef, EvaluationRecord, Quality, emit_evaluation};
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;

/// What a Rust service running llmtel-quality exports for `records`: its real emitter,
/// through tracing-opentelemetry and the SDK, converted to OTLP as its exporter does.
fn emitted_by_a_rust_service(records: &[EvaluationRecord]) -> ExportTraceServiceRequest {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("checkout")));
    tracing::subscriber::with_default(subscriber, || records.iter().for_each(emit_evaluation));
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), records.len(), "one result span per record");
    ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(
            spans,
            &ResourceAttributesWithSchema::default(),
        ),
    }
}

/// The value of the first sample of `name` whose labels contain every one of `labels`.
fn gauge(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .find(|l| labels.iter().all(|w| l.contains(w)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluator_scores_and_user_ratings_from_other_services_reach_the_monitor() {
    let (downstream, addr, _server) = Receiver::start().await;
    let quality = Quality::builder().with_events(false).build();
    let config = Config::from_toml(&format!(
        "grpc_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\n[forward]\nendpoint = \"http://{addr}\"\nprotocol = \"grpc\"\n"
    ))
    .unwrap()
    .with_quality(quality.clone());
    let collector = Collector::start(config).await.unwrap();

    // A Python service: two calls; the second carries the semantic conventions' event.
    let mut calls = request(
        "support-py",
        7,
        vec![
            ("chat gpt-4o".into(), chat_call("gpt-4o", None)),
            ("chat gpt-4o-mini".into(), chat_call("gpt-4o-mini", None)),
        ],
    );
    let spans = &mut calls.resource_spans[0].scope_spans[0].spans;
    let (trace, first) = (spans[0].trace_id.clone(), spans[0].span_id.clone());
    let second = SpanId::from_bytes(spans[1].span_id.clone().try_into().unwrap());
    let at = spans[1].end_time_unix_nano;
    spans[1].events.push(Event {
        time_unix_nano: at,
        name: "gen_ai.evaluation.result".into(),
        attributes: vec![
            s("gen_ai.evaluation.name", "relevance"),
            kv(
                "gen_ai.evaluation.score.value",
                any_value::Value::DoubleValue(0.75),
            ),
            s("gen_ai.evaluation.score.label", "relevant"),
        ],
        dropped_attributes_count: 0,
    });
    post_protobuf(&collector, calls).await;
    wait_until("both calls priced", || collector.stats().priced == 2).await;

    // Later, a Rust service's evaluator and a user judge the first call.
    let trace = TraceId::from_bytes(trace.try_into().unwrap());
    let first = SpanId::from_bytes(first.try_into().unwrap());
    let on_first = |name: &str, score: f64, label: &str| EvaluationRecord {
        name: name.into(),
        score: Some(score),
        label: Some(label.into()),
        explanation: None,
        response_id: None,
        trace_id: Some(trace),
        span_id: Some(first),
        error_type: None,
    };
    post_protobuf(
        &collector,
        emitted_by_a_rust_service(&[
            on_first("relevance", 0.25, "irrelevant"),
            on_first("user_feedback", 0.0, "thumbs_down"),
        ]),
    )
    .await;
    wait_until("the three results read", || {
        collector.stats().evaluations == 3 && downstream.count() == 4
    })
    .await;
    assert!(quality.flush(Duration::from_secs(10)));

    // Each result is filed against the call it is about, found by its span.
    let snap = quality.snapshot();
    assert_eq!(
        (
            snap.stats.calls,
            snap.stats.evaluations,
            snap.stats.feedback,
            snap.stats.unmatched
        ),
        (2, 2, 1, 0),
        "{:?}",
        snap.stats
    );
    let score = |s: SpanId| quality.with_monitor(|m| m.call_quality(&CallRef::Span(trace, s)));
    let (first_score, second_score) = (score(first), score(second));
    assert!(
        first_score.unwrap() < second_score.unwrap(),
        "an irrelevant answer rated thumbs down scores below a relevant one: \
         {first_score:?} vs {second_score:?}"
    );
    // And the monitor's series on the collector's /metrics say the same.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = metrics(collector.metrics_addr()).await;
        if gauge(&text, "llm_quality_rating_avg", &["gpt-4o\""]).is_some()
            || Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let relevance = |model: &str| {
        gauge(
            &text,
            "llm_quality_score",
            &[
                "evaluation=\"relevance\"",
                &format!("model=\"{model}\""),
                "support",
            ],
        )
    };
    assert_eq!(relevance("gpt-4o"), Some(0.25), "{text}");
    assert_eq!(relevance("gpt-4o-mini"), Some(0.75), "{text}");
    assert_eq!(
        gauge(
            &text,
            "llm_quality_rating_avg",
            &["model=\"gpt-4o\"", "support"]
        ),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.contains("llmtel_collector_evaluations_total 3\n"),
        "{text}"
    );
    assert_eq!(quality.stats().results_dropped, 0);
}
