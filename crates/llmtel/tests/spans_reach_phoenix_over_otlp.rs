//! End to end against real peers: llmtel exports over OTLP gRPC and HTTP/protobuf to Arize
//! Phoenix, directly and through rotel as the collector stage; the spans are read back from
//! Phoenix's REST API (and rotel's log for what Phoenix does not keep: resource attributes,
//! span kind, wire types). Needs `scripts/peers.sh start` (scripts/test.sh does it); fails,
//! never skips, when the peers are not there.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::time::Duration;

use llmtel::{Protocol, Usage};
use opentelemetry::KeyValue;
use serde_json::Value;
use support::phoenix::*;
use tracing_subscriber::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(40);

/// Exports one simulated request through llmtel's own `builder()` stack, then drops the
/// guard: a clean shutdown must deliver every span.
fn export_request(endpoint: &str, protocol: Protocol, project: &str) {
    let (layer, guard) = llmtel::builder()
        .with_service_name("llmtel-peer-test")
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .with_resource_attribute(KeyValue::new(
            "openinference.project.name",
            project.to_owned(),
        ))
        .with_resource_attribute(KeyValue::new("deployment.environment.name", "ci"))
        .with_console(false)
        .build::<tracing_subscriber::Registry>()
        .expect("llmtel builds");
    assert!(guard.is_exporting());
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("support_request", "user.id" = "alice");
        let _r = root.enter();
        let agent = llmtel::gen_ai_span!(
            "invoke_agent",
            "support-bot",
            "gen_ai.agent.name" = "support-bot"
        );
        let _a = agent.enter();
        {
            let _t = llmtel::gen_ai_span!(
                "execute_tool",
                "lookup_order",
                "gen_ai.tool.name" = "lookup_order"
            )
            .entered();
        }
        {
            let call = llmtel::llm_span!("chat", "openai", "gpt-4o");
            llmtel::record_response(&call, "chatcmpl-peer", "gpt-4o-2024-08-06", &["stop"]);
            llmtel::record_usage(
                &call,
                &Usage {
                    input_tokens: 10_000,
                    cache_read_tokens: 4_000,
                    output_tokens: 2_000,
                    ..Default::default()
                },
            );
        }
        {
            let failed = llmtel::llm_span!("chat", "anthropic", "claude-sonnet-4");
            llmtel::record_error_status(&failed, "rate_limit", "429 Too Many Requests");
        }
    });
    drop(guard); // flush + shutdown: nothing may be lost
}

fn by_name<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| span_name(s) == name)
        .unwrap_or_else(|| {
            panic!(
                "no span {name:?} in {:?}",
                spans.iter().map(span_name).collect::<Vec<_>>()
            )
        })
}

fn assert_close(actual: Option<f64>, expected: f64, what: &str) {
    let a = actual.unwrap_or_else(|| panic!("{what} missing"));
    assert!(
        (a - expected).abs() < 1e-9,
        "{what}: expected {expected}, got {a}"
    );
}

fn check_phoenix(peers: &Peers, project: &str) {
    let spans = wait_for_spans(&peers.phoenix_url, project, any_span, 5, TIMEOUT);
    assert_eq!(spans.len(), 5, "exactly the five spans of the request");
    let root = by_name(&spans, "support_request");
    let agent = by_name(&spans, "invoke_agent support-bot");
    let tool = by_name(&spans, "execute_tool lookup_order");
    let chat = by_name(&spans, "chat gpt-4o");
    let failed = by_name(&spans, "chat claude-sonnet-4");

    // One trace, parent/child links as nested in the code.
    for s in &spans {
        assert_eq!(trace_id(s), trace_id(root), "{}", span_name(s));
    }
    assert_eq!(parent_id(root), None);
    assert_eq!(parent_id(agent), Some(span_id(root)));
    for s in [tool, chat, failed] {
        assert_eq!(parent_id(s), Some(span_id(agent)), "{}", span_name(s));
    }

    // GenAI attributes, token counts as integers (a string "10000" would not match).
    assert_eq!(attr_str(chat, "gen_ai.operation.name"), Some("chat"));
    assert_eq!(attr_str(chat, "gen_ai.provider.name"), Some("openai"));
    assert_eq!(attr_str(chat, "gen_ai.request.model"), Some("gpt-4o"));
    assert_eq!(
        attr_str(chat, "gen_ai.response.model"),
        Some("gpt-4o-2024-08-06")
    );
    assert_eq!(
        attr_kind(chat, "gen_ai.usage.input_tokens").map(|k| k.0),
        Some("int")
    );
    assert_eq!(attr_i64(chat, "gen_ai.usage.input_tokens"), Some(10_000));
    assert_eq!(attr_i64(chat, "gen_ai.usage.output_tokens"), Some(2_000));
    assert_eq!(
        attr_i64(chat, "gen_ai.usage.cache_read.input_tokens"),
        Some(4_000)
    );
    assert_eq!(
        attr(chat, "gen_ai.response.finish_reasons"),
        Some(&serde_json::json!(["stop"]))
    );

    // Cost: gpt-4o 6,000 x $2.50/M + 4,000 x $1.25/M + 2,000 x $10/M = 0.015 + 0.005 + 0.02
    assert_close(
        attr_f64(chat, "gen_ai.usage.cost"),
        0.04,
        "gen_ai.usage.cost",
    );
    assert_close(
        attr_f64(chat, "llmtel.cost.input"),
        0.015,
        "llmtel.cost.input",
    );
    assert_close(
        attr_f64(chat, "llmtel.cost.cache_read"),
        0.005,
        "llmtel.cost.cache_read",
    );
    assert_close(
        attr_f64(chat, "llmtel.cost.output"),
        0.02,
        "llmtel.cost.output",
    );
    assert_eq!(attr_str(chat, "llmtel.cost.source"), Some("catalog"));
    assert_eq!(attr_str(chat, "llmtel.cost.currency"), Some("USD"));
    assert_eq!(attr_str(chat, "llmtel.pricing.model"), Some("gpt-4o"));
    assert!(attr_str(chat, "llmtel.pricing.date").is_some());
    assert_eq!(status_code(chat), "UNSET");

    // The failed call: error status with its message, error.type, no cost.
    assert_eq!(status_code(failed), "ERROR");
    assert!(
        status_message(failed).contains("429"),
        "{}",
        status_message(failed)
    );
    assert_eq!(attr_str(failed, "error.type"), Some("rate_limit"));
    assert!(attr(failed, "gen_ai.usage.cost").is_none());

    // Non-LLM spans carry no cost.
    for s in [root, agent, tool] {
        assert!(attr(s, "gen_ai.usage.cost").is_none(), "{}", span_name(s));
    }
    // tracing-opentelemetry's code-location and thread attributes are off by default.
    assert!(attr(chat, "code.file.path").is_none() && attr(chat, "thread.id").is_none());
}

fn resource_str<'a>(span: &'a RotelSpan, key: &str) -> Option<&'a str> {
    match span.resource.get(key).and_then(|v| rotel_value(v)) {
        Some(("string", v)) => Some(v),
        _ => None,
    }
}

fn check_rotel(project: &str) {
    let spans = wait_for_rotel_spans(
        &rotel_log_path(),
        |s| resource_str(s, "openinference.project.name") == Some(project),
        5,
        TIMEOUT,
    );
    let chat = spans
        .iter()
        .find(|s| s.name == "chat gpt-4o")
        .expect("chat span through rotel");
    assert_eq!(resource_str(chat, "service.name"), Some("llmtel-peer-test"));
    assert_eq!(
        resource_str(chat, "deployment.environment.name"),
        Some("ci")
    );
    assert_eq!(chat.kind, "SPAN_KIND_CLIENT");
    assert_eq!(
        chat.attributes
            .get("gen_ai.usage.input_tokens")
            .and_then(|v| rotel_value(v)),
        Some(("int", "10000")),
        "integer on the wire"
    );
    assert_eq!(
        chat.attributes
            .get("gen_ai.usage.cost")
            .and_then(|v| rotel_value(v))
            .map(|v| v.0),
        Some("double")
    );
}

#[test]
fn otlp_grpc_direct_to_phoenix() {
    let peers = Peers::from_env();
    let project = unique_project("grpc-direct");
    export_request(&peers.phoenix_otlp_grpc, Protocol::Grpc, &project);
    check_phoenix(&peers, &project);
}

#[test]
fn otlp_http_protobuf_direct_to_phoenix() {
    let peers = Peers::from_env();
    let project = unique_project("http-direct");
    export_request(
        &peers.phoenix_traces_url(),
        Protocol::HttpProtobuf,
        &project,
    );
    check_phoenix(&peers, &project);
}

#[test]
fn otlp_grpc_through_rotel_to_phoenix() {
    let peers = Peers::from_env();
    let project = unique_project("grpc-rotel");
    export_request(&peers.rotel_otlp_grpc, Protocol::Grpc, &project);
    check_rotel(&project);
    check_phoenix(&peers, &project);
}

#[test]
fn otlp_http_protobuf_through_rotel_to_phoenix() {
    let peers = Peers::from_env();
    let project = unique_project("http-rotel");
    // A base URL: llmtel appends /v1/traces like the OTEL_EXPORTER_OTLP_ENDPOINT rule.
    export_request(&peers.rotel_otlp_http, Protocol::HttpProtobuf, &project);
    check_rotel(&project);
    check_phoenix(&peers, &project);
}

#[test]
fn a_collector_that_is_down_loses_nothing_in_the_app_and_counts_the_failure() {
    // Nothing listens on this loopback port: the app must go on, the failure be counted.
    let before = llmtel::health();
    let started = std::time::Instant::now();
    export_request("http://127.0.0.1:9", Protocol::HttpProtobuf, "nowhere");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "shutdown bounded: {:?}",
        started.elapsed()
    );
    let after = llmtel::health();
    assert!(after.export_errors > before.export_errors, "{after:?}");
    assert!(
        after.spans_export_failed >= before.spans_export_failed + 5,
        "{after:?}"
    );
}

#[test]
fn the_phoenix_preset_sets_the_project_and_openinference_cost() {
    let peers = Peers::from_env();
    let project = unique_project("phoenix-preset");
    let (layer, guard) = llmtel::builder()
        .with_preset(llmtel::Preset::Phoenix {
            endpoint: peers.phoenix_url.clone(),
            project: project.clone(),
        })
        .with_console(false)
        .build::<tracing_subscriber::Registry>()
        .expect("llmtel builds");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let call = llmtel::llm_span!("chat", "anthropic", "claude-sonnet-4");
        llmtel::record_usage(
            &call,
            &Usage {
                input_tokens: 2_000,
                cache_read_tokens: 1_000,
                output_tokens: 100,
                ..Default::default()
            },
        );
    });
    drop(guard);
    let spans = wait_for_spans(&peers.phoenix_url, &project, any_span, 1, TIMEOUT);
    let chat = by_name(&spans, "chat claude-sonnet-4");
    // claude-sonnet-4: 1,000 x $3/M + 1,000 x $0.30/M + 100 x $15/M = 0.003 + 0.0003 + 0.0015
    assert_close(attr_f64(chat, "llm.cost.total"), 0.0048, "llm.cost.total");
    assert_close(attr_f64(chat, "llm.cost.prompt"), 0.0033, "llm.cost.prompt");
    assert_close(
        attr_f64(chat, "llm.cost.completion"),
        0.0015,
        "llm.cost.completion",
    );
    assert_eq!(
        attr_i64(chat, "llm.token_count.prompt_details.cache_read"),
        Some(1_000)
    );
    // Phoenix moves `openinference.span.kind` into its own span kind field.
    assert_eq!(chat.get("span_kind").and_then(Value::as_str), Some("LLM"));
}
