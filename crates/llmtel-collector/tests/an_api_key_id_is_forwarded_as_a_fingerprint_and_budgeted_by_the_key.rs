//! A received span's `llmtel.api_key_id` (the key itself, in many apps) was forwarded as
//! it came unless redaction took it for a secret: a 32-hex Azure key went downstream in
//! clear. It is forwarded as a fingerprint, and the collector's budgets still charge the
//! key the apps' reservations name (the call keeps the app's value), not the fingerprint.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use llmtel_budget::{Budgets, CallContext, Period, Rule, Scope};
use llmtel_collector::Collector;
use opentelemetry_proto::tonic::common::v1::any_value;

/// An Azure OpenAI key: 32 hex digits, no prefix redaction knows.
const AZURE_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_id_is_forwarded_as_a_fingerprint_and_budgeted_by_the_key() {
    let budgets = Budgets::builder()
        .with_rule(
            Rule::new("per-key", Scope::ApiKey, Period::Lifetime)
                .with_limit_usd(llmtel::Usd::parse_decimal("100").unwrap()),
        )
        .build();
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream).with_budgets(budgets.clone()))
        .await
        .unwrap();
    let mut attributes = chat_call("gpt-4o", None);
    attributes.push(s("llmtel.api_key_id", AZURE_KEY));
    post_protobuf(
        &collector,
        request("svc", 7, vec![("keyed".into(), attributes)]),
    )
    .await;
    let (_, span) = receiver.wait_for("keyed").await;
    let all = format!("{span:?}");
    assert!(!all.contains(AZURE_KEY), "the key was forwarded: {all}");
    match attr(&span, "llmtel.api_key_id") {
        Some(any_value::Value::StringValue(v)) => assert!(v.starts_with("[REDACTED:"), "{v}"),
        other => panic!("the attribute is kept, fingerprinted: {other:?}"),
    }

    wait_until("the span is budgeted", || collector.stats().budgeted == 1).await;
    assert!(budgets.flush(Duration::from_secs(10)));
    let rows = budgets
        .status_for(&CallContext::new().with_attribute("llmtel.api_key_id", AZURE_KEY))
        .unwrap();
    assert_eq!(rows[0].spent_tokens, 1_500, "charged to the key: {rows:?}");
}
