//! The cost computed from usage and the catalog is on the span the exporter sends.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use llmtel::Usage;

#[test]
fn cached_input_is_priced_at_the_cache_rate_and_the_rest_at_the_input_rate() {
    let p = run(|| {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_response(&span, "chatcmpl-1", "gpt-4o-2024-08-06", &["stop"]);
        llmtel::record_usage(
            &span,
            &Usage {
                input_tokens: 10_000,
                cache_read_tokens: 4_000,
                output_tokens: 2_000,
                ..Default::default()
            },
        );
    });
    let s = p.span("chat gpt-4o");
    // gpt-4o: $2.50 / M input, $1.25 / M cached input, $10.00 / M output.
    // uncached 6,000 x 2.50/M = 0.015; cached 4,000 x 1.25/M = 0.005; output 2,000 x 10/M = 0.02
    assert_usd(f64_attr(&s, "llmtel.cost.input"), 0.015);
    assert_usd(f64_attr(&s, "llmtel.cost.cache_read"), 0.005);
    assert_usd(f64_attr(&s, "llmtel.cost.output"), 0.02);
    assert_usd(f64_attr(&s, "llmtel.cost.cache_write"), 0.0);
    assert_usd(f64_attr(&s, "llmtel.cost.reasoning"), 0.0);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.04);
    assert_eq!(count(&s, "gen_ai.usage.cost"), 1);
    assert_eq!(str_attr(&s, "llmtel.cost.currency"), "USD");
    assert_eq!(str_attr(&s, "llmtel.cost.source"), "catalog");
    assert_eq!(
        attr(&s, "llmtel.cost.estimated"),
        Some(&opentelemetry::Value::Bool(false))
    );
    // The dated snapshot the provider answered with is priced as its family.
    assert_eq!(str_attr(&s, "llmtel.pricing.model"), "gpt-4o");
    assert_eq!(str_attr(&s, "llmtel.pricing.provider"), "openai");
    let date = str_attr(&s, "llmtel.pricing.date");
    assert!(
        date.parse::<jiff::civil::Date>().is_ok(),
        "price date {date:?}"
    );
    assert_eq!(string_array(&s, "gen_ai.response.finish_reasons"), ["stop"]);
    assert_eq!(str_attr(&s, "gen_ai.response.model"), "gpt-4o-2024-08-06");
    assert_eq!(s.span_kind, opentelemetry::trace::SpanKind::Client);
}

#[test]
fn cache_writes_and_the_long_context_tier_are_priced_at_their_own_rates() {
    let p = run(|| {
        let span = llmtel::llm_span!("chat", "anthropic", "claude-sonnet-4-20250514");
        llmtel::record_usage(
            &span,
            &Usage {
                input_tokens: 250_000,
                cache_read_tokens: 100_000,
                cache_write_tokens: 50_000,
                output_tokens: 1_000,
                ..Default::default()
            },
        );
    });
    let s = p.span("chat claude-sonnet-4-20250514");
    // Claude Sonnet 4 above 200k input tokens, whole request at the tier rate:
    // input $6/M, cache read $0.60/M, 5-minute cache write $7.50/M, output $22.50/M.
    // uncached 100,000 x 6 = 0.60; read 100,000 x 0.60 = 0.06; write 50,000 x 7.50 = 0.375;
    // output 1,000 x 22.50 = 0.0225; total 1.0575
    assert_usd(f64_attr(&s, "llmtel.cost.input"), 0.60);
    assert_usd(f64_attr(&s, "llmtel.cost.cache_read"), 0.06);
    assert_usd(f64_attr(&s, "llmtel.cost.cache_write"), 0.375);
    assert_usd(f64_attr(&s, "llmtel.cost.output"), 0.0225);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 1.0575);
    assert_eq!(
        i64_attr(&s, "llmtel.pricing.tier_above_input_tokens"),
        200_000
    );
    assert_eq!(str_attr(&s, "llmtel.pricing.model"), "claude-sonnet-4");
}

#[test]
fn reasoning_tokens_are_part_of_output_and_priced_once() {
    let p = run(|| {
        let span = llmtel::llm_span!("chat", "openai", "o4-mini");
        llmtel::record_usage(
            &span,
            &Usage {
                input_tokens: 1_000,
                output_tokens: 5_000,
                reasoning_tokens: 4_000,
                ..Default::default()
            },
        );
    });
    let s = p.span("chat o4-mini");
    // o4-mini: $1.10/M input, $4.40/M output (reasoning billed as output).
    // input 1,000 x 1.10 = 0.0011; visible output 1,000 x 4.40 = 0.0044; reasoning 4,000 x 4.40 = 0.0176
    assert_usd(f64_attr(&s, "llmtel.cost.input"), 0.0011);
    assert_usd(f64_attr(&s, "llmtel.cost.output"), 0.0044);
    assert_usd(f64_attr(&s, "llmtel.cost.reasoning"), 0.0176);
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.0231);
}

#[test]
fn a_cost_reported_by_the_provider_wins_over_the_catalog() {
    let p = run(|| {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_usage(
            &span,
            &Usage {
                input_tokens: 1_000_000,
                output_tokens: 0,
                ..Default::default()
            },
        );
        llmtel::record_cost(&span, 0.5, llmtel::ReportedBy::Provider);
    });
    let s = p.span("chat gpt-4o");
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), 0.5);
    assert_eq!(count(&s, "gen_ai.usage.cost"), 1);
    assert_eq!(str_attr(&s, "llmtel.cost.source"), "provider");
    // The catalog's own figure stays visible to spot drift: 1M x $2.50.
    assert_usd(f64_attr(&s, "llmtel.cost.computed"), 2.5);
    assert!(
        attr(&s, "llmtel.cost.input").is_none(),
        "no breakdown for a reported total"
    );
}

#[test]
fn openinference_aliases_are_written_when_asked_for() {
    let p = run_exporting(
        llmtel::LlmLayer::new(),
        |e| e.with_openinference(true),
        || {
            let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
            llmtel::record_usage(
                &span,
                &Usage {
                    input_tokens: 2_000,
                    output_tokens: 1_000,
                    ..Default::default()
                },
            );
        },
    );
    let s = p.span("chat gpt-4o-mini");
    // gpt-4o-mini: $0.15/M in, $0.60/M out: 2,000 x 0.15 = 0.0003; 1,000 x 0.60 = 0.0006
    assert_eq!(str_attr(&s, "openinference.span.kind"), "LLM");
    assert_eq!(str_attr(&s, "llm.model_name"), "gpt-4o-mini");
    assert_eq!(i64_attr(&s, "llm.token_count.prompt"), 2_000);
    assert_eq!(i64_attr(&s, "llm.token_count.completion"), 1_000);
    assert_eq!(i64_attr(&s, "llm.token_count.total"), 3_000);
    assert_usd(f64_attr(&s, "llm.cost.total"), 0.0009);
    assert_usd(f64_attr(&s, "llm.cost.prompt"), 0.0003);
    assert_usd(f64_attr(&s, "llm.cost.completion"), 0.0006);
}

#[test]
fn spans_without_gen_ai_fields_are_left_alone() {
    let p = run(|| {
        let _s = tracing::info_span!("db.query", "db.system" = "postgresql").entered();
    });
    let s = p.span("db.query");
    assert!(
        s.attributes
            .iter()
            .all(|kv| !kv.key.as_str().starts_with("llmtel."))
    );
    assert!(attr(&s, "gen_ai.usage.cost").is_none());
}
