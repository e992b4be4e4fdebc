//! A call and an evaluation result closed on a thread whose default dispatcher is not their
//! subscriber's (a subscriber `set_default` on one thread, spans moved to another) are
//! logged with their OpenTelemetry trace id all the same: the layers look the ids up in the
//! dispatcher they are registered with.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::time::Duration;

use llmtel_report::CallLog;
use opentelemetry::trace::TracerProvider as _;
use support::temp_log;
use tracing_subscriber::prelude::*;

#[test]
fn a_call_and_an_evaluation_closed_on_another_thread_keep_their_trace_id() {
    let path = temp_log("other-thread");
    let log = CallLog::builder(&path).build().unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::LlmLayer::new())
        .with(log.layer())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let default = tracing::subscriber::set_default(subscriber);
    let call = llmtel::llm_span!("chat", "openai", "gpt-4o");
    llmtel::record_usage(
        &call,
        &llmtel::Usage {
            input_tokens: 10,
            output_tokens: 2,
            ..Default::default()
        },
    );
    let evaluation = tracing::info_span!(
        target: "llmtel_quality",
        "gen_ai.evaluation.result",
        "gen_ai.evaluation.name" = "relevance",
        "gen_ai.evaluation.score.value" = 0.5,
    );
    std::thread::spawn(move || {
        // Closed here, where the default dispatcher is the global no-op one.
        drop(call.entered());
        drop(evaluation.entered());
    })
    .join()
    .unwrap();
    assert!(log.flush(Duration::from_secs(10)));
    drop(default);

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in &lines {
        let trace = line["trace_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no trace id: {line}"));
        assert_eq!(trace.len(), 32, "{line}");
        assert_ne!(trace, "0".repeat(32), "{line}");
    }
}
