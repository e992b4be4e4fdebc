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

/// One batch's worth of calls: ~8 MiB once encoded (each carries its prompt and answer twice,
/// under the GenAI and the OpenInference names), twice what Phoenix takes in one message.
/// (Half the default `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: Phoenix ingests it within the wait
/// while the rest of the test command runs beside it.)
const CALLS: usize = 512;

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

/// `calls` LLM calls with ~4,000 characters of prompt and of answer each, numbered from
/// `first`.
fn calls(first: usize, calls: usize) {
    for i in first..first + calls {
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
}

/// What llmtel's health counters moved by while `f` ran.
#[derive(Debug, PartialEq)]
struct Moved {
    exported: u64,
    failed: u64,
    dropped: u64,
}

fn moved(f: impl FnOnce()) -> Moved {
    let before = llmtel::health();
    f();
    let after = llmtel::health();
    Moved {
        exported: after.spans_exported - before.spans_exported,
        failed: after.spans_export_failed - before.spans_export_failed,
        dropped: after.spans_dropped - before.spans_dropped,
    }
}

/// Runs `phases` through one `builder()` pipeline exporting to `endpoint` over gRPC, with
/// content capture on and batches of `CALLS` (the case the split exists for), flushing
/// after each phase and shutting down after the last; returns what each phase moved.
fn pipeline(
    endpoint: &str,
    project: &str,
    max_export_batch_bytes: usize,
    phases: Vec<Box<dyn FnOnce()>>,
) -> Vec<Moved> {
    let (layer, guard) = llmtel::builder()
        .with_service_name("llmtel-big-batch-test")
        .with_endpoint(endpoint)
        .with_protocol(Protocol::Grpc)
        .with_resource_attribute(KeyValue::new(
            "openinference.project.name",
            project.to_owned(),
        ))
        .with_content_capture(ContentCapture::enabled())
        .with_queue(QueueConfig {
            max_queue_size: 4 * CALLS,
            max_export_batch_size: CALLS,
            max_export_batch_bytes,
            // No timer tick mid-phase: a batch goes out when the thread finds one full, or
            // on a flush (it may still take the first spans of a phase on their own).
            scheduled_delay: Duration::from_secs(60),
            ..QueueConfig::default()
        })
        .with_console(false)
        .build::<tracing_subscriber::Registry>()
        .expect("llmtel builds");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let mut out: Vec<Moved> = phases
        .into_iter()
        .map(|phase| {
            moved(|| {
                tracing::dispatcher::with_default(&dispatch, phase);
                let _ = guard.flush(); // a failed export is reported here, and counted
            })
        })
        .collect();
    // What the shutdown moves belongs to the last phase.
    let shut = moved(|| drop(guard));
    let last = out.last_mut().expect("at least one phase");
    last.exported += shut.exported;
    last.failed += shut.failed;
    last.dropped += shut.dropped;
    out
}

fn phoenix_has_every_call(peers: &Peers, project: &str, n: usize) {
    let spans = wait_for_spans(
        &peers.phoenix_url,
        project,
        any_span,
        n,
        Duration::from_secs(240),
    );
    assert_eq!(spans.len(), n, "every call reaches Phoenix once");
    // The content went with them, capped by the policy, not dropped to make room.
    let with_prompt = spans
        .iter()
        .filter(|s| attr_str(s, "gen_ai.input.messages").is_some_and(|m| m.contains("customer")))
        .count();
    assert_eq!(with_prompt, n, "every call keeps its prompt");
}

#[test]
fn a_full_batch_of_long_prompts_reaches_phoenix_over_grpc() {
    let peers = Peers::from_env();
    let project = unique_project("big-batch");
    let moved = pipeline(
        &peers.phoenix_otlp_grpc,
        &project,
        llmtel::DEFAULT_MAX_EXPORT_BATCH_BYTES,
        vec![Box::new(|| calls(0, CALLS))],
    );
    let all = Moved {
        exported: CALLS as u64,
        failed: 0,
        dropped: 0,
    };
    assert_eq!(moved, vec![all], "nothing refused or dropped");
    phoenix_has_every_call(&peers, &project, CALLS);
}

/// The queue told a limit above the collector's (64 MiB; Phoenix takes 4 MiB). Once the
/// pipeline is healthy it keeps no copy of a batch, so the one refused then is lost and
/// counted, exactly; the queue keeps its later requests under half that size (and halves a
/// kept one the collector still refuses), so the next batch goes out whole. (Halving, also
/// of the first batch before any export succeeded, is checked in `hold`'s unit tests.)
#[test]
fn a_collector_with_a_lower_size_limit_loses_one_counted_request_once_healthy() {
    let peers = Peers::from_env();
    let project = unique_project("big-batch-healthy");
    let moved = pipeline(
        &peers.phoenix_otlp_grpc,
        &project,
        64 * 1024 * 1024,
        vec![
            // Small: goes out, the pipeline is healthy.
            Box::new(|| calls(0, 8)),
            // Refused whole, with no copy kept: lost, counted, its size learned.
            Box::new(|| calls(8, CALLS)),
            // Kept (in doubt after the refusal) and under half of it: every span goes out.
            Box::new(|| calls(8 + CALLS, CALLS)),
            // Healthy again, no copy kept: still under half of it, every span goes out.
            Box::new(|| calls(8 + 2 * CALLS, CALLS)),
        ],
    );
    let n = CALLS as u64;
    assert_eq!(
        moved[0],
        Moved {
            exported: 8,
            failed: 0,
            dropped: 0
        }
    );
    // The export thread takes what has ended when it wakes: the first spans of the phase
    // may go out on their own before the rest fills a refused request.
    let lost = &moved[1];
    assert!(
        lost.failed > 0 && lost.exported + lost.failed == n && lost.dropped == 0,
        "a refused request is lost and counted, every span once: {lost:?}"
    );
    for later in &moved[2..] {
        assert_eq!(
            *later,
            Moved {
                exported: n,
                failed: 0,
                dropped: 0
            },
            "under half the size refused, every span goes out"
        );
    }
    // The receiver agrees with the counters: what was counted as exported is there.
    let there = 8 + lost.exported as usize + 2 * CALLS;
    phoenix_has_every_call(&peers, &project, there);
}
