//! `Budgets::sink()` on llmtel's export stage records each exported call's spend once, from
//! the price the stage computes for the span, and writes `llmtel.budget.rule`,
//! `llmtel.budget.utilization` (and `llmtel.budget.unpriced`) on the exported span: no
//! budget layer, no pricing on the request thread. Added to `llmtel::layer()` instead, it
//! records the calls as their spans close.

mod support;

use std::sync::Arc;
use std::time::Duration;

use llmtel_budget::{Budgets, CallContext};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use support::{exporting_with_budget_sink, per_user_daily, record_1000_in_100_out, usd};
use tracing_subscriber::prelude::*;

fn budgets() -> Budgets {
    per_user_daily("0.01")
}

/// Two gpt-4o calls of 1,000 input and 100 output tokens ($0.0035 each) by user `u-1`, one
/// call to a model with no price, and a span that is not a call.
fn calls() {
    for model in ["gpt-4o", "gpt-4o", "no-such-model-xyz"] {
        let span = llmtel::llm_span!("chat", "openai", model, user.id = "u-1");
        record_1000_in_100_out(&span);
    }
    drop(tracing::info_span!("db", user.id = "u-1"));
}

fn assert_spent(budgets: &Budgets) {
    assert!(budgets.flush(Duration::from_secs(10)));
    let ctx = CallContext::new().with_user("u-1");
    let s = &budgets.status_for(&ctx).expect("status")[0];
    // The unpriced call is charged $0 by the default policy, counted and flagged.
    assert_eq!(s.spent, usd("0.007"), "each priced call once");
    assert_eq!(s.spent_tokens, 3_300);
    assert_eq!(budgets.stats().recorded, 3);
}

#[test]
fn on_the_export_stage_each_call_is_recorded_once_and_its_span_marked() {
    let budgets = budgets();
    let (dispatch, exporter, _provider) = exporting_with_budget_sink(&budgets);
    tracing::dispatcher::with_default(&dispatch, calls);
    assert_spent(&budgets);

    let spans = exporter.get_finished_spans().expect("spans");
    let attr = |s: &opentelemetry_sdk::trace::SpanData, k: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.clone())
    };
    let chats: Vec<_> = spans
        .iter()
        .filter(|s| s.name.starts_with("chat"))
        .collect();
    assert_eq!(chats.len(), 3);
    let utilization: Vec<f64> = chats
        .iter()
        .map(|s| match attr(s, "llmtel.budget.utilization") {
            Some(opentelemetry::Value::F64(u)) => u,
            other => panic!("utilization on {}: {other:?}", s.name),
        })
        .collect();
    assert_eq!(utilization.len(), 3);
    assert!((utilization[0] - 0.35).abs() < 1e-9, "{utilization:?}");
    assert!((utilization[1] - 0.7).abs() < 1e-9, "{utilization:?}");
    for s in &chats {
        assert_eq!(
            attr(s, "llmtel.budget.rule"),
            Some(opentelemetry::Value::from("per-user-daily"))
        );
    }
    assert_eq!(
        attr(chats[2], "llmtel.budget.unpriced"),
        Some(opentelemetry::Value::Bool(true))
    );
    assert_eq!(attr(chats[0], "llmtel.budget.unpriced"), None);
    let db = spans.iter().find(|s| s.name == "db").expect("db span");
    assert_eq!(attr(db, "llmtel.budget.rule"), None, "not a call");
}

#[test]
fn as_a_sink_of_the_layer_each_call_is_recorded_as_its_span_closes() {
    let budgets = budgets();
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::LlmLayer::new().with_sink(Arc::new(budgets.sink())));
    tracing::subscriber::with_default(subscriber, calls);
    assert_spent(&budgets);
}

#[test]
fn with_the_budget_layer_installed_too_each_call_is_still_recorded_once() {
    let budgets = budgets();
    let exporter = InMemorySpanExporter::default();
    let stage = llmtel::GenAiExporter::new(exporter.clone()).with_sink(Arc::new(budgets.sink()));
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(stage)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::layer())
        .with(budgets.layer())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, calls);
    // The layer recorded every call; the sink stood aside.
    assert_spent(&budgets);
    let spans = exporter.get_finished_spans().expect("spans");
    let marked = spans
        .iter()
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "llmtel.budget.rule")
        })
        .count();
    assert_eq!(marked, 3, "each call's span marked once, by the layer");
}
