//! Token estimates for calls whose response carries no usage (a stream without its usage
//! chunk, a provider that omits it), so that such calls are never priced at zero.
//!
//! - OpenAI models are counted with their real tokenizer (tiktoken: `o200k_base` for the
//!   GPT-4o, GPT-4.1, GPT-5 and o-series families, `cl100k_base` for GPT-4, GPT-3.5 and the
//!   embedding models), with the `tokenizer` feature (on by default).
//! - Other models (Anthropic, Gemini, Llama, ...) use tokenizers that are not public or not
//!   bundled: the estimate is **one token per 4 characters, rounded up** — OpenAI's rule of
//!   thumb for English text; expect it to be off by 10–30 % for other models and languages.
//!
//! The tokenizer is bounded: a text longer than [`MAX_TOKENIZER_BYTES`], or with a run of
//! more than [`MAX_TOKENIZER_RUN`] characters without whitespace (where tiktoken's regex
//! backtracks for a long time), is counted with the approximation instead, and so is a text
//! on which the tokenizer panics; each such count is added to
//! [`crate::Health::estimates_approximated`]. Counting never panics and takes time linear
//! in the text.
//!
//! The span says which: `llmtel.cost.estimated = true` and `llmtel.cost.estimate_method`
//! (`tiktoken:o200k_base`, `tiktoken:cl100k_base` or `approx:chars_div_4`).
//!
//! ```
//! let n = llmtel::estimate::count_tokens("gpt-4o", "Hello, world!");
//! assert_eq!(n.tokens, 4);
//! # #[cfg(feature = "tokenizer")] // without it, every model is approximated
//! assert_eq!(n.method.as_str(), "tiktoken:o200k_base");
//! let n = llmtel::estimate::count_tokens("claude-sonnet-4", "Hello, world!");
//! assert_eq!((n.tokens, n.method.as_str()), (4, "approx:chars_div_4")); // ceil(13 / 4)
//! ```

use llmtel_pricing::Usage;
use llmtel_semconv::llmtel as lt;
use tracing::Span;

/// How a token count was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EstimateMethod {
    /// The model's real tokenizer, by its tiktoken name.
    Tiktoken(&'static str),
    /// One token per 4 characters, rounded up.
    CharsDiv4,
}

impl EstimateMethod {
    /// The value written to `llmtel.cost.estimate_method`.
    pub fn as_str(self) -> &'static str {
        match self {
            EstimateMethod::Tiktoken("o200k_base") => "tiktoken:o200k_base",
            EstimateMethod::Tiktoken("cl100k_base") => "tiktoken:cl100k_base",
            EstimateMethod::Tiktoken(_) => "tiktoken",
            EstimateMethod::CharsDiv4 => "approx:chars_div_4",
        }
    }
}

/// A token count and how it was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenCount {
    /// Tokens.
    pub tokens: u64,
    /// How they were counted.
    pub method: EstimateMethod,
}

/// The longest text (in bytes) given to a real tokenizer; longer texts are approximated.
pub const MAX_TOKENIZER_BYTES: usize = 64 * 1024;

/// The longest run of characters without whitespace given to a real tokenizer; a text with
/// a longer run is approximated.
pub const MAX_TOKENIZER_RUN: usize = 1_000;

/// Counts the tokens of `text` as `model` would (see the module docs for the method).
///
/// ```
/// let before = llmtel::health().estimates_approximated;
/// let n = llmtel::estimate::count_tokens("gpt-4o", &"x".repeat(5_000)); // one long run
/// assert_eq!((n.tokens, n.method.as_str()), (1_250, "approx:chars_div_4"));
/// # #[cfg(feature = "tokenizer")]
/// assert!(llmtel::health().estimates_approximated > before);
/// ```
pub fn count_tokens(model: &str, text: &str) -> TokenCount {
    #[cfg(not(feature = "tokenizer"))]
    let _ = model; // the approximation is the same for every model
    #[cfg(feature = "tokenizer")]
    if let Some((name, bpe)) = tokenizer_for(model) {
        if text.len() <= MAX_TOKENIZER_BYTES && !has_long_run(text, MAX_TOKENIZER_RUN) {
            let counted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                bpe.encode_with_special_tokens(text).len()
            }));
            if let Ok(n) = counted {
                return TokenCount {
                    tokens: n as u64,
                    method: EstimateMethod::Tiktoken(name),
                };
            }
        }
        crate::health::inc(&crate::health::COUNTERS.estimates_approximated);
    }
    approximate(text)
}

/// One token per 4 characters, rounded up.
fn approximate(text: &str) -> TokenCount {
    TokenCount {
        tokens: (text.chars().count() as u64).div_ceil(4),
        method: EstimateMethod::CharsDiv4,
    }
}

/// Whether `text` has more than `max` consecutive non-whitespace characters.
#[cfg_attr(not(feature = "tokenizer"), allow(dead_code))]
fn has_long_run(text: &str, max: usize) -> bool {
    let mut run = 0usize;
    for c in text.chars() {
        if c.is_whitespace() {
            run = 0;
        } else {
            run += 1;
            if run > max {
                return true;
            }
        }
    }
    false
}

#[cfg(feature = "tokenizer")]
fn tokenizer_for(model: &str) -> Option<(&'static str, &'static tiktoken_rs::CoreBPE)> {
    use tiktoken_rs::tokenizer::Tokenizer;
    // Provider prefixes (`openai/gpt-4o`, `azure/gpt-4o`) do not change the tokenizer.
    let base = model.rsplit('/').next().unwrap_or(model);
    match tiktoken_rs::tokenizer::get_tokenizer(base)? {
        Tokenizer::O200kBase | Tokenizer::O200kHarmony => {
            Some(("o200k_base", tiktoken_rs::o200k_base_singleton()))
        }
        Tokenizer::Cl100kBase => Some(("cl100k_base", tiktoken_rs::cl100k_base_singleton())),
        _ => None,
    }
}

/// Estimated usage of a call from its prompt and completion text; the method is the
/// rougher of the two counts' (a completion approximated for its length next to a tokenized
/// prompt makes the estimate an approximation).
///
/// ```
/// # #[cfg(feature = "tokenizer")] {
/// let (usage, method) = llmtel::estimate::estimate_usage("gpt-4o", "Hi", &"x".repeat(5_000));
/// assert_eq!(usage.output_tokens, 1_250);
/// assert_eq!(method.as_str(), "approx:chars_div_4");
/// # }
/// ```
pub fn estimate_usage(model: &str, prompt: &str, completion: &str) -> (Usage, EstimateMethod) {
    let input = count_tokens(model, prompt);
    let output = count_tokens(model, completion);
    let usage = Usage {
        input_tokens: input.tokens,
        output_tokens: output.tokens,
        ..Default::default()
    };
    let method = if input.method == output.method {
        input.method
    } else {
        EstimateMethod::CharsDiv4
    };
    (usage, method)
}

/// Records an estimated usage on an LLM span opened with [`crate::llm_span!`]: the token
/// counts, `llmtel.cost.estimated = true` and `llmtel.cost.estimate_method`. The call is then
/// priced from these counts and marked as estimated. Returns the usage recorded.
///
/// Use it when the response carried no usage; never when it did (the provider's count wins).
pub fn record_estimated_usage(span: &Span, model: &str, prompt: &str, completion: &str) -> Usage {
    let (usage, method) = estimate_usage(model, prompt, completion);
    crate::record_usage(span, &usage);
    span.record(lt::COST_ESTIMATED, true);
    span.record(lt::COST_ESTIMATE_METHOD, method.as_str());
    usage
}
