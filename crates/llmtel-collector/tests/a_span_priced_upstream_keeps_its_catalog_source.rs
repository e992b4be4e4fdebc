//! A span llmtel already priced upstream (an in-process llmtel exporter, or a collector
//! before this one) carries `gen_ai.usage.cost` and `llmtel.cost.source = "catalog"`: the
//! collector forwards it with that cost and that source, and its sinks get the call with
//! `CostSource::Catalog`, not as a cost the app reported.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use llmtel_collector::Collector;
use opentelemetry_proto::tonic::common::v1::any_value;

/// Keeps every call the collector hands its sinks.
#[derive(Debug, Default)]
struct Calls(Mutex<Vec<llmtel::LlmCall>>);

impl llmtel::CallSink for Calls {
    fn on_call(&self, call: &llmtel::LlmCall) {
        self.0.lock().unwrap().push(call.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_priced_upstream_keeps_its_catalog_source() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let calls = Arc::new(Calls::default());
    let collector = Collector::start(config(downstream).with_sink(calls.clone()))
        .await
        .unwrap();
    // As llmtel's exporter writes it.
    let mut attrs = chat_call("gpt-4o", None);
    attrs.extend([
        kv(
            "gen_ai.usage.cost",
            any_value::Value::DoubleValue(0.012_345),
        ),
        s("llmtel.cost.source", "catalog"),
        s("llmtel.cost.currency", "USD"),
        s("llmtel.pricing.date", "2025-01-01"),
    ]);
    post_protobuf(
        &collector,
        request("rust-api", 31, vec![("chat upstream".into(), attrs)]),
    )
    .await;
    let (_, span) = receiver.wait_for("chat upstream").await;
    assert_eq!(
        attr(&span, "llmtel.cost.source"),
        Some(&any_value::Value::StringValue("catalog".into())),
        "the source llmtel wrote upstream"
    );
    assert_eq!(f64_attr(&span, "gen_ai.usage.cost"), 0.012_345);
    assert_eq!(
        attr(&span, "llmtel.pricing.date"),
        Some(&any_value::Value::StringValue("2025-01-01".into())),
        "the provenance written upstream"
    );
    assert!(attr(&span, "llmtel.cost.instrumentation").is_none());
    // Any sender can say "catalog": this catalog's own price goes next to a different one
    // (1,000 in x $2.50/M + 500 out x $10/M).
    assert_eq!(f64_attr(&span, "llmtel.cost.computed"), 0.0075);

    let got = calls.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let cost = got[0].cost.as_ref().unwrap();
    assert_eq!(cost.source, llmtel::CostSource::Catalog);
    assert_eq!(cost.total, llmtel::Usd::parse_decimal("0.012345").unwrap());
}
