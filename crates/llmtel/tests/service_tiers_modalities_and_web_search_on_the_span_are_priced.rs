//! Issue #14: the price dimensions a span records — the service tier the response reports,
//! audio input and output tokens, web search queries — are priced on the exported span from
//! the catalog's rates, with each part named (`llmtel.cost.audio_input`, ...) and the total
//! exact. Expected values are computed by hand from the rates in the built-in catalog.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use opentelemetry::Value;

fn f(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> f64 {
    match attr(span, key) {
        Some(Value::F64(v)) => *v,
        other => panic!("{key}: {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn a_flex_tier_response_is_priced_at_the_flex_rates() {
    let p = run(|| {
        let _s = tracing::info_span!(
            "chat",
            "gen_ai.operation.name" = "chat",
            "gen_ai.provider.name" = "openai",
            "gen_ai.request.model" = "gpt-5",
            "gen_ai.usage.input_tokens" = 10_000u64,
            "gen_ai.usage.output_tokens" = 2_000u64,
            "openai.response.service_tier" = "flex",
        );
    });
    let s = p.span("chat");
    // gpt-5 flex: $0.625/M in, $5.00/M out (standard: $1.25 / $10.00).
    let want = 10_000.0 * 0.625e-6 + 2_000.0 * 5.0e-6;
    assert!(close(f(&s, "gen_ai.usage.cost"), want), "{s:?}");
    assert_eq!(str_attr(&s, "llmtel.pricing.service_tier"), "flex");
}

#[test]
fn audio_tokens_are_priced_at_their_own_rates_and_named() {
    let p = run(|| {
        let _s = tracing::info_span!(
            "chat",
            "gen_ai.operation.name" = "chat",
            "gen_ai.provider.name" = "openai",
            "gen_ai.request.model" = "gpt-4o-audio-preview-2025-06-03",
            "gen_ai.usage.input_tokens" = 1_000u64,
            "gen_ai.usage.output_tokens" = 500u64,
            "llmtel.usage.audio.input_tokens" = 400u64,
            "llmtel.usage.audio.output_tokens" = 300u64,
        );
    });
    let s = p.span("chat");
    // Text: 600 in x $2.50/M, 200 out x $10/M. Audio: 400 in x $40/M, 300 out x $80/M.
    let (text_in, text_out) = (600.0 * 2.5e-6, 200.0 * 10.0e-6);
    let (audio_in, audio_out) = (400.0 * 40.0e-6, 300.0 * 80.0e-6);
    assert!(close(f(&s, "llmtel.cost.audio_input"), audio_in), "{s:?}");
    assert!(close(f(&s, "llmtel.cost.audio_output"), audio_out), "{s:?}");
    assert!(close(f(&s, "llmtel.cost.input"), text_in), "{s:?}");
    assert!(close(f(&s, "llmtel.cost.output"), text_out), "{s:?}");
    assert!(close(
        f(&s, "gen_ai.usage.cost"),
        text_in + text_out + audio_in + audio_out
    ));
    // The counts are exported as integers.
    assert_eq!(
        attr(&s, "llmtel.usage.audio.input_tokens"),
        Some(&Value::I64(400))
    );
}

#[test]
fn web_search_queries_add_their_per_query_price() {
    let p = run(|| {
        let _s = tracing::info_span!(
            "chat",
            "gen_ai.operation.name" = "chat",
            "gen_ai.provider.name" = "openai",
            "gen_ai.request.model" = "gpt-5",
            "gen_ai.usage.input_tokens" = 1_000u64,
            "gen_ai.usage.output_tokens" = 100u64,
            "llmtel.usage.web_search.requests" = 2u64,
        );
    });
    let s = p.span("chat");
    // $1.25/M in, $10/M out, $0.01 a query.
    let tokens = 1_000.0 * 1.25e-6 + 100.0 * 10.0e-6;
    assert!(close(f(&s, "llmtel.cost.web_search"), 0.02), "{s:?}");
    assert!(close(f(&s, "gen_ai.usage.cost"), tokens + 0.02), "{s:?}");
    // No part that cost nothing is written.
    assert!(attr(&s, "llmtel.cost.audio_input").is_none());
}

/// A span with the given model and usage fields, closed, and its exported span.
fn priced(
    model: &'static str,
    tokens: bool,
    characters: bool,
) -> opentelemetry_sdk::trace::SpanData {
    let p = run(|| {
        let s = tracing::info_span!(
            "call",
            "gen_ai.operation.name" = "chat",
            "gen_ai.provider.name" = "openai",
            "gen_ai.request.model" = model,
            "gen_ai.usage.input_tokens" = tracing::field::Empty,
            "gen_ai.usage.output_tokens" = tracing::field::Empty,
            "llmtel.usage.input_characters" = tracing::field::Empty,
        );
        if tokens {
            s.record("gen_ai.usage.input_tokens", 1_000u64);
            s.record("gen_ai.usage.output_tokens", 100u64);
        }
        if characters {
            s.record("llmtel.usage.input_characters", 500u64);
        }
    });
    p.span("call")
}

#[test]
fn a_call_whose_usage_its_model_has_no_price_for_is_not_priced_at_zero() {
    // gpt-4o bills tokens, not characters; tts-1 bills characters, not tokens.
    for (model, tokens, characters, says) in [
        ("gpt-4o", false, true, "no catalog price for the units"),
        ("tts-1", true, false, "priced per unit"),
    ] {
        let s = priced(model, tokens, characters);
        assert!(attr(&s, "gen_ai.usage.cost").is_none(), "{model}: {s:?}");
        let note = str_attr(&s, "llmtel.usage.note");
        assert!(
            note.contains(says) && note.contains("not priced"),
            "{model}: {note}"
        );
    }
    // Priced as the provider bills: gpt-4o's tokens ($2.50/M in, $10/M out; the characters
    // recorded, not charged again) and tts-1's characters ($15/M).
    let s = priced("gpt-4o", true, true);
    assert!(
        close(
            f(&s, "gen_ai.usage.cost"),
            1_000.0 * 2.5e-6 + 100.0 * 10.0e-6
        ),
        "{s:?}"
    );
    let s = priced("tts-1", false, true);
    assert!(close(f(&s, "gen_ai.usage.cost"), 500.0 * 15.0e-6), "{s:?}");
}
