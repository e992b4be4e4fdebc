//! A call whose response carried no usage is still priced, from token counts of its text,
//! and the exported span says the cost is estimated and how.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use llmtel::estimate::{EstimateMethod, count_tokens};
use opentelemetry::Value;

#[test]
fn openai_models_are_counted_with_their_real_tokenizer() {
    // o200k_base: "Hello" "," " world" "!" ; cl100k_base splits it the same way.
    assert_eq!(count_tokens("gpt-4o", "Hello, world!").tokens, 4);
    assert_eq!(
        count_tokens("gpt-4o", "Hello, world!").method,
        EstimateMethod::Tiktoken("o200k_base")
    );
    assert_eq!(
        count_tokens("openai/gpt-4.1-mini", "Hello, world!")
            .method
            .as_str(),
        "tiktoken:o200k_base"
    );
    assert_eq!(
        count_tokens("gpt-4", "Hello, world!").method.as_str(),
        "tiktoken:cl100k_base"
    );
    assert_eq!(count_tokens("gpt-4o", "").tokens, 0);
    // A long text: more tokens than words / 2 and fewer than characters.
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(50);
    let n = count_tokens("gpt-4o", &text).tokens;
    assert!((450..=600).contains(&n), "{n}");
}

#[test]
fn other_models_use_four_characters_per_token_rounded_up() {
    let n = count_tokens("claude-sonnet-4", "abcdefghi"); // 9 chars -> 3
    assert_eq!((n.tokens, n.method.as_str()), (3, "approx:chars_div_4"));
    // Characters, not bytes: 8 two-byte characters are 2 tokens.
    assert_eq!(count_tokens("gemini-2.5-flash", "éééééééé").tokens, 2);
}

#[test]
fn an_estimated_call_is_priced_and_marked_on_the_exported_span() {
    let prompt = "Summarise our refund policy in one sentence.";
    let answer = "Refunds are issued within 14 days of purchase for unused items.";
    let (p_tokens, a_tokens) = (
        count_tokens("gpt-4o", prompt).tokens,
        count_tokens("gpt-4o", answer).tokens,
    );
    let (layer, calls) = collecting_layer();
    let p = run_with(layer, true, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::estimate::record_estimated_usage(&span, "gpt-4o", prompt, answer);
    });
    let s = p.span("chat gpt-4o");
    assert_eq!(i64_attr(&s, "gen_ai.usage.input_tokens") as u64, p_tokens);
    assert_eq!(i64_attr(&s, "gen_ai.usage.output_tokens") as u64, a_tokens);
    assert_eq!(attr(&s, "llmtel.cost.estimated"), Some(&Value::Bool(true)));
    assert_eq!(
        str_attr(&s, "llmtel.cost.estimate_method"),
        "tiktoken:o200k_base"
    );
    // gpt-4o: $2.50/M input, $10/M output
    let expected = p_tokens as f64 * 2.5e-6 + a_tokens as f64 * 10e-6;
    assert_usd(f64_attr(&s, "gen_ai.usage.cost"), expected);
    let call = &calls.0.lock().unwrap()[0];
    assert!(call.cost.as_ref().unwrap().estimated);
}
