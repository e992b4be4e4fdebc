//! A span of a model the catalog does not know is recorded against the budgets as
//! unpriced, and alerted once per model. The collector's alert named the request model
//! (`acme-chat`), while the catalog was asked for the response model the provider answered
//! with (`acme-chat-2026-01-15`), as the library's own budget sink names it: the model to
//! add to the price catalog was not the one the alert said.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use llmtel_alert::{AlertDispatcher, MemorySink};
use llmtel_budget::{Budgets, Period, Rule, Scope, Unpriced};
use llmtel_collector::Collector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpriced_model_alert_names_the_response_model_the_catalog_was_asked_for() {
    let (receiver, downstream, _task) = Receiver::start().await;
    let sink = MemorySink::new();
    let alerts = AlertDispatcher::builder()
        .with_sink(Arc::new(sink.clone()))
        .build();
    let budgets = Budgets::builder()
        .with_rule(
            Rule::new("per-user", Scope::User, Period::Lifetime)
                .with_limit_usd(llmtel::Usd::parse_decimal("100").unwrap())
                .with_on_unpriced(Unpriced::Allow),
        )
        .with_alerts(alerts.clone())
        .build();
    let collector = Collector::start(config(downstream).with_budgets(budgets))
        .await
        .unwrap();
    let attributes = vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.provider.name", "openai"),
        s("gen_ai.request.model", "acme-chat"),
        s("gen_ai.response.model", "acme-chat-2026-01-15"),
        s("user.id", "u-1"),
        i("gen_ai.usage.input_tokens", 1_000),
        i("gen_ai.usage.output_tokens", 500),
    ];
    post_protobuf(
        &collector,
        request("svc", 1, vec![("chat".into(), attributes)]),
    )
    .await;
    receiver.wait_for("chat").await;
    wait_until("the span is budgeted", || collector.stats().budgeted == 1).await;
    // (Counted once the downstream answered, after it filed the span.)
    wait_until("the span is counted as of an unknown model", || {
        collector.stats().unknown_model == 1
    })
    .await;
    assert!(alerts.flush(Duration::from_secs(10)));
    let models: Vec<_> = sink
        .alerts()
        .iter()
        .filter(|a| a.name == "LlmBudgetUnpricedModel")
        .map(|a| a.labels.get("model").cloned())
        .collect();
    assert_eq!(
        models,
        vec![Some("acme-chat-2026-01-15".to_owned())],
        "{:?}",
        sink.alerts()
    );
}
