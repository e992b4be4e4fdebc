//! Each call a sink sees carries the name of its exported span (`otel.name`), whoever opened
//! the span: `llm_span!` (whose name llmtel derives instead of capturing it) or a hand-written
//! span with a name of its own, given as a string or formatted (`%`).
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use llmtel::Usage;

#[test]
fn sinks_see_the_name_the_exported_span_carries() {
    let usage = Usage {
        input_tokens: 100,
        output_tokens: 10,
        ..Default::default()
    };
    let long_model = format!("gpt-4o-{}", "x".repeat(400));
    let (layer, calls) = collecting_layer();
    let p = run_with(layer, true, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_usage(&span, &usage);
        drop(span);
        let span = llmtel::llm_span!("embeddings", "a-provider-of-its-own", &long_model);
        llmtel::record_usage(&span, &usage);
        drop(span);
        let span = tracing::info_span!(
            "llm",
            "otel.name" = "summarise ticket",
            "gen_ai.operation.name" = "chat",
            "gen_ai.request.model" = "gpt-4o-mini",
            "gen_ai.usage.input_tokens" = 100,
            "gen_ai.usage.output_tokens" = 10,
        );
        drop(span);
        let step = "classify";
        let span = tracing::info_span!(
            "llm",
            "otel.name" = %format_args!("{step} intent"),
            "gen_ai.operation.name" = "text_completion",
            "gen_ai.provider.name" = "openai",
            "gen_ai.request.model" = "gpt-4o-mini",
            "gen_ai.usage.input_tokens" = 100,
            "gen_ai.usage.output_tokens" = 10,
        );
        drop(span);
    });
    let exported: Vec<String> = p.spans().into_iter().map(|s| s.name.into_owned()).collect();
    let calls = calls.0.lock().unwrap();
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, exported, "every call is named as its exported span");
    assert_eq!(names[0], "chat gpt-4o");
    assert!(
        names[1].starts_with("embeddings gpt-4o-xxx"),
        "{}",
        names[1]
    );
    assert!(names[1].len() <= "embeddings ".len() + llmtel::MAX_VALUE_BYTES);
    assert_eq!(names[2], "summarise ticket");
    assert_eq!(names[3], "classify intent");
    // Operations and providers, well-known or not, reach the call as recorded.
    let ops: Vec<(&str, Option<&str>)> = calls
        .iter()
        .map(|c| (c.operation.as_str(), c.provider.as_deref()))
        .collect();
    assert_eq!(
        ops,
        [
            ("chat", Some("openai")),
            ("embeddings", Some("a-provider-of-its-own")),
            ("chat", None),
            ("text_completion", Some("openai")),
        ]
    );
}
