//! `llmtel::builder()` with no endpoint: no exporter, no network, but every LLM call is still
//! priced, summarised and handed to the sinks (the quickstart's path).
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;

use tracing_subscriber::prelude::*;

#[test]
fn no_endpoint_means_no_export_and_calls_still_priced_and_summarised() {
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ] {
        assert!(
            std::env::var(var).is_err(),
            "test precondition: {var} must not be set"
        );
    }
    let calls = std::sync::Arc::new(common::Calls::default());
    let (layer, guard) = llmtel::builder()
        .with_console(false)
        .with_sink(calls.clone())
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    assert!(!guard.is_exporting());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _root = tracing::info_span!("request", "user.id" = "dana").entered();
        let call = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
        llmtel::record_usage(
            &call,
            &llmtel::Usage {
                input_tokens: 1_000,
                output_tokens: 1_000,
                ..Default::default()
            },
        );
    });
    let calls = calls.0.lock().unwrap();
    assert_eq!(calls.len(), 1);
    // gpt-4o-mini: 1,000 x $0.15/M + 1,000 x $0.60/M = 0.00075
    common::assert_usd(calls[0].cost_usd().unwrap().as_f64(), 0.00075);
    let summary = guard.summaries().recent(1).pop().unwrap();
    assert_eq!(summary.root, "request");
    assert_eq!(summary.llm_calls, 1);
    assert_eq!(calls[0].dimensions.user.as_deref(), Some("dana"));
    assert!(guard.flush().is_ok());
}

#[test]
fn a_bad_trace_filter_is_a_clear_error() {
    let err = llmtel::builder()
        .with_endpoint("http://127.0.0.1:4318")
        .with_protocol(llmtel::Protocol::HttpProtobuf)
        .with_trace_filter("not a valid [filter")
        .build::<tracing_subscriber::Registry>()
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("invalid trace filter"), "{err}");
}
