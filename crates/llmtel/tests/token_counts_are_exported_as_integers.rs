//! Token counts leave the process as OTLP integers whoever recorded them, and spans made by
//! other libraries (rig, genai, hand-written) are recognised and priced.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use opentelemetry::Value;
use tracing::field::Empty;

/// A span shaped like the ones `rig` and `genai` open: `gen_ai.system` (deprecated), `u64`
/// usage, the newer cache-write spelling.
fn third_party_call() {
    let span = tracing::info_span!(
        "chat",
        "otel.name" = "chat gpt-4o-mini",
        "gen_ai.operation.name" = "chat",
        "gen_ai.system" = "openai",
        "gen_ai.request.model" = "gpt-4o-mini",
        "gen_ai.usage.input_tokens" = Empty,
        "gen_ai.usage.output_tokens" = Empty,
        "gen_ai.usage.cache_write.input_tokens" = Empty,
    );
    span.record("gen_ai.usage.input_tokens", 1234_u64);
    span.record("gen_ai.usage.output_tokens", 100_u64);
    span.record("gen_ai.usage.cache_write.input_tokens", 0_u64);
}

#[test]
fn tracing_opentelemetry_alone_exports_u64_counts_as_strings() {
    // Pins the upstream behaviour llmtel corrects: if this starts failing, tracing-opentelemetry
    // exports u64 as integers itself and the normalisation can go.
    let p = run_with(llmtel::LlmLayer::new(), false, third_party_call);
    let s = p.span("chat gpt-4o-mini");
    assert_eq!(
        attr(&s, "gen_ai.usage.input_tokens"),
        Some(&Value::String("1234".into()))
    );
}

#[test]
fn llmtel_exports_u64_counts_as_integers() {
    let p = run(third_party_call);
    let s = p.span("chat gpt-4o-mini");
    assert_eq!(
        attr(&s, "gen_ai.usage.input_tokens"),
        Some(&Value::I64(1234))
    );
    assert_eq!(
        attr(&s, "gen_ai.usage.output_tokens"),
        Some(&Value::I64(100))
    );
    assert_eq!(
        attr(&s, "gen_ai.usage.cache_write.input_tokens"),
        Some(&Value::I64(0))
    );
}

#[test]
fn the_macro_records_integers_without_normalisation() {
    let p = run_with(llmtel::LlmLayer::new(), false, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 7,
                output_tokens: 9,
                ..Default::default()
            },
        );
    });
    let s = p.span("chat gpt-4o");
    assert_eq!(attr(&s, "gen_ai.usage.input_tokens"), Some(&Value::I64(7)));
    assert_eq!(attr(&s, "gen_ai.usage.output_tokens"), Some(&Value::I64(9)));
}

#[test]
fn a_third_party_span_is_priced_from_its_deprecated_system_attribute() {
    let (layer, calls) = collecting_layer();
    let p = run_with(layer, true, third_party_call);
    let s = p.span("chat gpt-4o-mini");
    // gpt-4o-mini: 1,234 x $0.15/M + 100 x $0.60/M = 0.0001851 + 0.00006 = 0.0002451
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.0002451);
    let calls = calls.0.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].provider.as_deref(), Some("openai"));
    assert_eq!(calls[0].usage.input_tokens, 1234);
}

#[test]
fn both_cache_write_spellings_are_read() {
    for key in [
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_write.input_tokens",
    ] {
        let (layer, calls) = collecting_layer();
        run_with(layer, true, || {
            let span = tracing::info_span!(
                "anthropic.messages",
                "gen_ai.operation.name" = "chat",
                "gen_ai.provider.name" = "anthropic",
                "gen_ai.request.model" = "claude-3-5-haiku-20241022",
                "gen_ai.usage.input_tokens" = 3000_i64,
                "gen_ai.usage.output_tokens" = 10_i64,
                "gen_ai.usage.cache_creation.input_tokens" = Empty,
                "gen_ai.usage.cache_write.input_tokens" = Empty,
            );
            span.record(key, 2000_i64);
        });
        let calls = calls.0.lock().unwrap();
        assert_eq!(calls[0].usage.cache_write_tokens, 2000, "{key}");
        // claude-3-5-haiku: $0.80/M in, $1.00/M 5-minute cache write, $4/M out:
        // 1,000 x 0.80 + 2,000 x 1.00 + 10 x 4 = 0.0008 + 0.002 + 0.00004 = 0.00284
        let total = calls[0].cost.as_ref().expect("priced").total.as_f64();
        assert_usd(total, 0.00284);
    }
}

#[test]
fn malformed_usage_is_exported_as_given_and_not_priced() {
    let before = llmtel::health().malformed_usage;
    let (layer, calls) = collecting_layer();
    let p = run_with(layer, true, || {
        let _span = tracing::info_span!(
            "chat",
            "gen_ai.operation.name" = "chat",
            "gen_ai.request.model" = "gpt-4o",
            "gen_ai.usage.input_tokens" = "lots",
            "gen_ai.usage.output_tokens" = 5_i64,
        );
    });
    let s = p.span("chat");
    assert_eq!(
        attr(&s, "gen_ai.usage.input_tokens"),
        Some(&Value::String("lots".into()))
    );
    assert!(attr(&s, "gen_ai.usage.cost").is_none());
    let note = str_attr(&s, "llmtel.usage.note");
    assert!(
        note.contains("gen_ai.usage.input_tokens") && note.contains("lots"),
        "{note}"
    );
    assert!(calls.0.lock().unwrap()[0].usage_error.is_some());
    assert!(llmtel::health().malformed_usage > before);
}

#[test]
fn an_implausible_token_count_is_a_usage_error_not_a_trillion_dollar_call() {
    let before = llmtel::health().malformed_usage;
    let (layer, calls) = collecting_layer();
    let p = run_with(layer, true, || {
        let _span = tracing::info_span!(
            "chat",
            "gen_ai.operation.name" = "chat",
            "gen_ai.request.model" = "gpt-4o",
            "gen_ai.usage.input_tokens" = u64::MAX,
            "gen_ai.usage.output_tokens" = 5_i64,
        );
    });
    let s = p.span("chat");
    // Exported as given (clamped to the largest OTLP integer), never priced.
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens"), i64::MAX);
    assert!(attr(&s, "gen_ai.usage.cost").is_none(), "{s:?}");
    let note = str_attr(&s, "llmtel.usage.note");
    assert!(
        note.contains("gen_ai.usage.input_tokens") && note.contains("10000000000"),
        "{note}"
    );
    // The sinks (budgets, metrics) see neither a cost nor the bogus count.
    let calls = calls.0.lock().unwrap();
    assert!(calls[0].usage_error.is_some());
    assert!(calls[0].cost.is_none());
    assert_eq!(calls[0].usage.input_tokens, 0);
    assert_eq!(calls[0].usage.output_tokens, 5);
    assert!(llmtel::health().malformed_usage > before);
    // The limit itself is a count like any other.
    let (layer, calls) = collecting_layer();
    run_with(layer, true, || {
        let _span = tracing::info_span!(
            "chat",
            "gen_ai.operation.name" = "chat",
            "gen_ai.request.model" = "gpt-4o",
            "gen_ai.usage.input_tokens" = llmtel::MAX_TOKENS_PER_CALL,
            "gen_ai.usage.output_tokens" = 0_i64,
        );
    });
    assert!(calls.0.lock().unwrap()[0].cost.is_some());
}
