//! A crafted prompt never panics the tokenizer nor holds the request path: very long texts
//! and very long runs without whitespace fall back to the characters-per-token estimate,
//! counted in `health()`.
#![allow(clippy::unwrap_used)]

use llmtel::estimate::{EstimateMethod, count_tokens};

#[test]
fn a_ten_megabyte_prompt_is_approximated_and_counted() {
    let before = llmtel::health().estimates_approximated;
    let prompt = "hello world ".repeat(10 * 1024 * 1024 / 12);
    let n = count_tokens("gpt-4o", &prompt);
    assert_eq!(n.method, EstimateMethod::CharsDiv4);
    assert_eq!(n.tokens, (prompt.chars().count() as u64).div_ceil(4));
    #[cfg(feature = "tokenizer")]
    assert!(llmtel::health().estimates_approximated > before);
    let _ = before;
}

#[test]
fn a_one_megabyte_single_token_run_is_approximated_and_counted() {
    let before = llmtel::health().estimates_approximated;
    for run in ["a".repeat(1024 * 1024), "é1".repeat(512 * 1024)] {
        // Inside an otherwise short prompt too.
        let text = format!("Summarise: {run} thanks");
        let n = count_tokens("gpt-4o-mini", &text);
        assert_eq!(n.method, EstimateMethod::CharsDiv4);
        assert_eq!(n.tokens, (text.chars().count() as u64).div_ceil(4));
    }
    #[cfg(feature = "tokenizer")]
    assert!(llmtel::health().estimates_approximated >= before + 2);
    let _ = before;
}

#[cfg(feature = "tokenizer")]
#[test]
fn ordinary_prompts_still_use_the_real_tokenizer() {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(1_000);
    assert!(text.len() < llmtel::estimate::MAX_TOKENIZER_BYTES);
    let n = count_tokens("gpt-4o", &text);
    assert_eq!(n.method.as_str(), "tiktoken:o200k_base");
    // A run just under the limit is tokenized as well.
    let n = count_tokens("gpt-4o", &"b".repeat(llmtel::estimate::MAX_TOKENIZER_RUN));
    assert_eq!(n.method.as_str(), "tiktoken:o200k_base");
}
