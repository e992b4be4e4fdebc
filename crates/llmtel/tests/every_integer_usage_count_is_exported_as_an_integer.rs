//! Issue #14: every integer-valued `gen_ai.usage.*` attribute is exported as an integer,
//! whoever recorded it. rig records its own `gen_ai.usage.reasoning_tokens` (and other
//! instrumentations their own counts) as `u64`, which tracing-opentelemetry exports as a
//! string.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use opentelemetry::Value;

#[test]
fn usage_counts_under_names_llmtel_does_not_know_are_integers() {
    let p = run(|| {
        let _s = tracing::info_span!(
            "chat",
            "gen_ai.operation.name" = "chat",
            "gen_ai.provider.name" = "openai",
            "gen_ai.request.model" = "gpt-4o",
            "gen_ai.usage.input_tokens" = 1_000u64,
            "gen_ai.usage.output_tokens" = 200u64,
            "gen_ai.usage.reasoning_tokens" = 64u64,
            "gen_ai.usage.audio_tokens" = 12u64,
            "gen_ai.usage.note" = "not a count",
        );
    });
    let s = p.span("chat");
    for (key, want) in [
        ("gen_ai.usage.input_tokens", 1_000),
        ("gen_ai.usage.output_tokens", 200),
        ("gen_ai.usage.reasoning_tokens", 64),
        ("gen_ai.usage.audio_tokens", 12),
    ] {
        assert_eq!(attr(&s, key), Some(&Value::I64(want)), "{key}");
    }
    // Text stays text.
    assert_eq!(str_attr(&s, "gen_ai.usage.note"), "not a count");
    // And the call is priced from its counts as before.
    assert!(attr(&s, "gen_ai.usage.cost").is_some());
}
