//! A full batch of LLM spans with content capture on is bigger than a gRPC receiver takes in
//! one message (4 MiB by default: the OpenTelemetry Collector's, Phoenix's, tonic's). The
//! export queue splits it into requests under `QueueConfig::max_export_batch_bytes`, so every
//! span reaches the collector. Against Phoenix over OTLP gRPC; needs `scripts/peers.sh
//! start` (scripts/test.sh does it) and fails, never skips, without it.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::time::Duration;

use llmtel::{ContentCapture, Protocol, QueueConfig, Usage};
use opentelemetry::KeyValue;
use support::phoenix::*;
use tracing_subscriber::prelude::*;

/// One batch's worth of calls (the default `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
const CALLS: usize = 1024;

/// A prompt or answer of about `chars` characters of ordinary prose (nothing a redactor
/// takes for a secret), different for each call.
fn prose(call: usize, chars: usize) -> String {
    let words = [
        "the", "order", "arrived", "late", "and", "customer", "asks", "for", "a", "refund",
        "please", "check", "shipping", "status", "of", "parcel", "number", "today",
    ];
    let mut s = format!("call {call}:");
    let mut i = call;
    while s.len() < chars {
        s.push(' ');
        s.push_str(words[i % words.len()]);
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    s
}

fn messages(role: &str, text: &str) -> String {
    serde_json::json!([{ "role": role, "parts": [{ "type": "text", "content": text }] }])
        .to_string()
}

/// Emits `CALLS` LLM calls with ~4,000 characters of prompt and of answer each (~8 MiB for
/// the batch once encoded) through `builder()`, exporting to `endpoint` over gRPC, and shuts
/// the pipeline down.
fn emit(endpoint: &str, project: &str, queue: QueueConfig) -> llmtel::Health {
    let before = llmtel::health();
    let (layer, guard) = llmtel::builder()
        .with_service_name("llmtel-big-batch-test")
        .with_endpoint(endpoint)
        .with_protocol(Protocol::Grpc)
        .with_resource_attribute(KeyValue::new(
            "openinference.project.name",
            project.to_owned(),
        ))
        .with_content_capture(ContentCapture::enabled())
        .with_queue(queue)
        .with_console(false)
        .build::<tracing_subscriber::Registry>()
        .expect("llmtel builds");
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..CALLS {
            let call = llmtel::llm_span!(
                "chat",
                "openai",
                "gpt-4o-mini",
                "gen_ai.input.messages" = tracing::field::Empty,
                "gen_ai.output.messages" = tracing::field::Empty
            );
            llmtel::record_input_messages(&call, &messages("user", &prose(i, 4000)));
            llmtel::record_output_messages(&call, &messages("assistant", &prose(i + 1, 4000)));
            llmtel::record_usage(
                &call,
                &Usage {
                    input_tokens: 900,
                    output_tokens: 900,
                    ..Default::default()
                },
            );
        }
    });
    drop(guard); // flush and shut down: every span goes out or is counted
    let after = llmtel::health();
    llmtel::Health {
        spans_exported: after.spans_exported - before.spans_exported,
        spans_export_failed: after.spans_export_failed - before.spans_export_failed,
        spans_dropped: after.spans_dropped - before.spans_dropped,
        ..after
    }
}

#[test]
fn a_full_batch_of_long_prompts_reaches_phoenix_over_grpc() {
    let peers = Peers::from_env();
    let project = unique_project("big-batch");
    let health = emit(
        &peers.phoenix_otlp_grpc,
        &project,
        QueueConfig {
            // One batch of every call: the case the split exists for.
            max_queue_size: 4 * CALLS,
            max_export_batch_size: CALLS,
            ..QueueConfig::default()
        },
    );
    assert_eq!(
        (health.spans_export_failed, health.spans_dropped),
        (0, 0),
        "nothing may be refused or dropped: {health:?}"
    );
    assert_eq!(health.spans_exported, CALLS as u64, "{health:?}");
    let spans = wait_for_spans(
        &peers.phoenix_url,
        &project,
        any_span,
        CALLS,
        Duration::from_secs(60),
    );
    assert_eq!(spans.len(), CALLS, "every call reaches Phoenix once");
    // The content went with them, capped by the policy, not dropped to make room.
    let with_prompt = spans
        .iter()
        .filter(|s| attr_str(s, "gen_ai.input.messages").is_some_and(|m| m.contains("customer")))
        .count();
    assert_eq!(with_prompt, CALLS, "every call keeps its prompt");
}
