//! [`Usage`], per-token [`Rates`] and the exact cost arithmetic.

use crate::{PricingError, Usd};

/// `usage_note` when `cache_read + cache_write > input_tokens`: the provider reported
/// input tokens exclusive of cache (Anthropic's raw shape), so all of `input_tokens` was
/// priced at the input rate and the cache tokens on top at their rates.
pub const USAGE_NOTE_INPUT_EXCLUSIVE_OF_CACHE: &str = "input_tokens_exclusive_of_cache";
/// `usage_note` when `reasoning_tokens > output_tokens`: output was read as exclusive of
/// reasoning, so all of `output_tokens` was priced at the output rate and the reasoning
/// tokens on top at the reasoning rate.
pub const USAGE_NOTE_OUTPUT_EXCLUSIVE_OF_REASONING: &str = "output_tokens_exclusive_of_reasoning";
/// `usage_note` when both of the above apply.
pub const USAGE_NOTE_BOTH_EXCLUSIVE: &str =
    "input_tokens_exclusive_of_cache,output_tokens_exclusive_of_reasoning";

/// Token usage of one call, in OpenTelemetry GenAI semantics.
///
/// `input_tokens` is `gen_ai.usage.input_tokens` and is **inclusive** of the cache read
/// and cache write tokens; `output_tokens` is inclusive of reasoning tokens. Usage where
/// a part exceeds its whole is still priced, read as exclusive (see [`Rates::cost`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input (prompt) tokens; inclusive of cache_read and cache_write tokens.
    pub input_tokens: u64,
    /// Output (completion) tokens; inclusive of reasoning tokens.
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache
    /// (`gen_ai.usage.cache_read.input_tokens`).
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache
    /// (`gen_ai.usage.cache_creation.input_tokens`).
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning (`gen_ai.usage.reasoning.output_tokens`).
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Usage with only input and output tokens.
    pub const fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
        }
    }

    /// True when the parts fit in their wholes: `cache_read + cache_write <= input` and
    /// `reasoning <= output`.
    pub fn is_consistent(&self) -> bool {
        u128::from(self.cache_read_tokens) + u128::from(self.cache_write_tokens)
            <= u128::from(self.input_tokens)
            && self.reasoning_tokens <= self.output_tokens
    }

    /// All prompt tokens of the call, cache included: `input_tokens` when consistent,
    /// `input + cache_read + cache_write` when input was reported exclusive of cache.
    /// This is the count compared with long-context tier thresholds (saturating).
    pub fn prompt_tokens(&self) -> u64 {
        let cache = self
            .cache_read_tokens
            .saturating_add(self.cache_write_tokens);
        if u128::from(self.cache_read_tokens) + u128::from(self.cache_write_tokens)
            <= u128::from(self.input_tokens)
        {
            self.input_tokens
        } else {
            self.input_tokens.saturating_add(cache)
        }
    }
}

/// The counts of a call beyond its text-token classes: per-modality tokens (each **part
/// of** [`Usage::input_tokens`] or [`Usage::output_tokens`], as OpenAI reports them) and
/// per-request tool uses. All zero by default; priced by
/// [`Catalog::price_call`](crate::Catalog::price_call) through
/// [`Call::with_details`](crate::Call::with_details).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageDetails {
    /// Audio input tokens, **part of** `input_tokens` (OpenAI
    /// `prompt_tokens_details.audio_tokens`, Gemini `promptTokensDetails` modality
    /// `AUDIO`); priced at the audio input rate. 0 = none.
    pub audio_input_tokens: u64,
    /// Cached audio input tokens, part of both `audio_input_tokens` and
    /// `cache_read_tokens` (OpenAI realtime `cached_tokens_details.audio_tokens`).
    pub cache_read_audio_tokens: u64,
    /// Image input tokens, part of `input_tokens` (OpenAI `image_tokens`, Gemini
    /// modality `IMAGE`).
    pub image_input_tokens: u64,
    /// Video input tokens, part of `input_tokens` (Gemini modality `VIDEO`).
    pub video_input_tokens: u64,
    /// Of `cache_write_tokens`, those written to the 1-hour cache (Anthropic
    /// `usage.cache_creation.ephemeral_1h_input_tokens`): priced at the price's
    /// `cache_write_1h` rate (2x input for Claude), the rest at `cache_write` (the 5-minute
    /// write, 1.25x). 0 = none (every write at `cache_write`).
    pub cache_write_1h_tokens: u64,
    /// Audio output tokens, **part of** `output_tokens` (OpenAI
    /// `completion_tokens_details.audio_tokens`, Gemini `candidatesTokensDetails` `AUDIO`).
    pub audio_output_tokens: u64,
    /// Image output tokens, **part of** `output_tokens` (image generation: OpenAI
    /// `output_tokens_details.image_tokens`); priced at the image output rate.
    pub image_output_tokens: u64,
    /// Web search queries billed per query (Anthropic
    /// `usage.server_tool_use.web_search_requests`, OpenAI `web_search_call` items).
    pub web_search_queries: u64,
    /// Code interpreter sessions (containers) started by the call.
    pub code_interpreter_sessions: u64,
    /// File search tool calls.
    pub file_search_calls: u64,
    /// Images generated (image generation models; OpenAI `data` items).
    pub images: u64,
    /// Input characters (text to speech: the length of `input`).
    pub input_characters: u64,
    /// Input audio, milliseconds (transcription: the audio's duration).
    pub input_audio_ms: u64,
    /// Output audio, milliseconds (speech: the generated audio's duration).
    pub output_audio_ms: u64,
}

impl UsageDetails {
    /// Audio tokens read from the cache, as pricing reads them: at most the audio input and
    /// the call's cache reads.
    pub fn cached_audio_tokens(&self, usage: &Usage) -> u64 {
        self.cache_read_audio_tokens
            .min(self.audio_input_tokens)
            .min(usage.cache_read_tokens)
    }

    /// Audio, image and video input tokens (a part of `input_tokens`).
    pub fn modal_input_tokens(&self) -> u128 {
        u128::from(self.audio_input_tokens)
            + u128::from(self.image_input_tokens)
            + u128::from(self.video_input_tokens)
    }

    /// Audio and image output tokens (a part of `output_tokens`).
    pub fn modal_output_tokens(&self) -> u128 {
        u128::from(self.audio_output_tokens) + u128::from(self.image_output_tokens)
    }
}

/// Cost of one call, split by token class and request charge. `total` is the exact sum
/// of the others. Parts a call did not use are zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CostBreakdown {
    /// Uncached input tokens at the input rate.
    pub input: Usd,
    /// Non-reasoning output tokens at the output rate.
    pub output: Usd,
    /// Cache-read tokens at the cache-read rate.
    pub cache_read: Usd,
    /// Cache-write tokens at the cache-write rate.
    pub cache_write: Usd,
    /// Reasoning tokens at the reasoning rate.
    pub reasoning: Usd,
    /// Uncached audio input tokens at the audio input rate.
    pub audio_input: Usd,
    /// Cached audio input tokens at the cached-audio rate.
    pub cached_audio: Usd,
    /// Image input tokens at the image input rate.
    pub image_input: Usd,
    /// Video input tokens at the video input rate.
    pub video_input: Usd,
    /// Audio output tokens at the audio output rate.
    pub audio_output: Usd,
    /// Image output tokens at the image output rate.
    pub image_output: Usd,
    /// Web search queries at the per-query price.
    pub web_search: Usd,
    /// Code interpreter sessions at the per-session price.
    pub code_interpreter: Usd,
    /// File search calls at the per-call price.
    pub file_search: Usd,
    /// Generated images at the per-image price.
    pub images: Usd,
    /// Input characters at the per-character price.
    pub characters: Usd,
    /// Input and output audio seconds at the per-second prices (milliseconds, rounded
    /// to the pico-dollar, halves to even).
    pub audio_seconds: Usd,
    /// Sum of the above.
    pub total: Usd,
}

/// Per-token rates in pico-dollars per token (`1` = $0.000001 per million tokens).
///
/// A rate of $2.50 per million tokens is `2_500_000` pico-dollars per token. Optional
/// rates default as the providers bill: cache read and cache write at the input rate,
/// reasoning at the output rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    /// Uncached input.
    pub input: u64,
    /// Output.
    pub output: u64,
    /// Cache read (cache hit); `None` = the input rate.
    pub cache_read: Option<u64>,
    /// Cache write (5-minute cache for Anthropic); `None` = the input rate.
    pub cache_write: Option<u64>,
    /// Reasoning output; `None` = the output rate.
    pub reasoning: Option<u64>,
}

impl Rates {
    /// Rates from USD-per-million-token decimal strings for input and output, e.g.
    /// `Rates::per_million("2.50", "10")`. `None` when a string is not a decimal with at
    /// most 6 fractional digits or does not fit.
    pub fn per_million(input: &str, output: &str) -> Option<Rates> {
        Some(Rates {
            input: rate_per_million(input)?,
            output: rate_per_million(output)?,
            ..Rates::default()
        })
    }

    /// Prices `usage` at these rates; returns the breakdown and, when the usage was not
    /// self-consistent, a note saying how it was read.
    ///
    /// - `input` = (input − cache_read − cache_write) × input rate
    /// - `cache_read`, `cache_write` = their tokens × their rates
    /// - `reasoning` = reasoning × reasoning rate, `output` = (output − reasoning) × output rate
    ///
    /// If `cache_read + cache_write > input_tokens`, input is read as exclusive of cache:
    /// all `input_tokens` at the input rate, note [`USAGE_NOTE_INPUT_EXCLUSIVE_OF_CACHE`].
    /// Likewise `reasoning > output` gives [`USAGE_NOTE_OUTPUT_EXCLUSIVE_OF_REASONING`]
    /// (both: [`USAGE_NOTE_BOTH_EXCLUSIVE`]).
    ///
    /// # Errors
    /// [`PricingError::Overflow`] if the total does not fit in `u128` pico-dollars.
    pub fn cost(
        &self,
        usage: &Usage,
    ) -> Result<(CostBreakdown, Option<&'static str>), PricingError> {
        let overflow = || PricingError::Overflow(*usage);
        let input = u128::from(usage.input_tokens);
        let output = u128::from(usage.output_tokens);
        let cache_read = u128::from(usage.cache_read_tokens);
        let cache_write = u128::from(usage.cache_write_tokens);
        let reasoning = u128::from(usage.reasoning_tokens);

        let cache = cache_read.checked_add(cache_write).ok_or_else(overflow)?;
        let (uncached, input_exclusive) = match input.checked_sub(cache) {
            Some(rest) => (rest, false),
            None => (input, true),
        };
        let (plain_output, output_exclusive) = match output.checked_sub(reasoning) {
            Some(rest) => (rest, false),
            None => (output, true),
        };

        let at = |tokens: u128, rate: u64| {
            tokens
                .checked_mul(u128::from(rate))
                .map(Usd::from_picos)
                .ok_or_else(overflow)
        };
        let input_cost = at(uncached, self.input)?;
        let cache_read_cost = at(cache_read, self.cache_read.unwrap_or(self.input))?;
        let cache_write_cost = at(cache_write, self.cache_write.unwrap_or(self.input))?;
        let output_cost = at(plain_output, self.output)?;
        let reasoning_cost = at(reasoning, self.reasoning.unwrap_or(self.output))?;
        let total = [
            cache_read_cost,
            cache_write_cost,
            output_cost,
            reasoning_cost,
        ]
        .into_iter()
        .try_fold(input_cost, Usd::checked_add)
        .ok_or_else(overflow)?;

        let note = match (input_exclusive, output_exclusive) {
            (false, false) => None,
            (true, false) => Some(USAGE_NOTE_INPUT_EXCLUSIVE_OF_CACHE),
            (false, true) => Some(USAGE_NOTE_OUTPUT_EXCLUSIVE_OF_REASONING),
            (true, true) => Some(USAGE_NOTE_BOTH_EXCLUSIVE),
        };
        Ok((
            CostBreakdown {
                input: input_cost,
                output: output_cost,
                cache_read: cache_read_cost,
                cache_write: cache_write_cost,
                reasoning: reasoning_cost,
                total,
                ..CostBreakdown::default()
            },
            note,
        ))
    }
}

/// Converts a USD-per-million-tokens decimal string to pico-dollars per token.
///
/// $1 per million tokens = 1e12 / 1e6 = 1,000,000 pico-dollars per token, so the string
/// may have at most 6 fractional digits. `None` otherwise, or if it does not fit in `u64`.
///
/// ```
/// assert_eq!(llmtel_pricing::rate_per_million("2.50"), Some(2_500_000));
/// assert_eq!(llmtel_pricing::rate_per_million("0.000001"), Some(1));
/// assert_eq!(llmtel_pricing::rate_per_million("0.0000001"), None);
/// ```
pub fn rate_per_million(usd_per_million: &str) -> Option<u64> {
    crate::usd::parse_fixed(usd_per_million.trim(), 6, crate::usd::Rounding::Exact)
        .and_then(|v| u64::try_from(v).ok())
}

/// Converts a USD-per-token `f64` (LiteLLM's unit, e.g. `2.5e-06`) to pico-dollars per
/// token.
///
/// The value is read through its shortest round-tripping decimal form (what Python's
/// `repr` and Rust's `{}` print, so the JSON text `2.5e-06` is read as `0.0000025`), then
/// rounded to the pico-dollar, halves to even. `2.5e-06` is exactly `2_500_000`; a
/// price finer than a pico-dollar per token (`1.41953125e-07`) is rounded
/// (`141_953`). `None` for negative, NaN, infinite or too-large values.
///
/// ```
/// assert_eq!(llmtel_pricing::rate_per_token_f64(2.5e-06), Some(2_500_000));
/// assert_eq!(llmtel_pricing::rate_per_token_f64(1.25e-07), Some(125_000));
/// assert_eq!(llmtel_pricing::rate_per_token_f64(2.5e-12), Some(2));
/// assert_eq!(llmtel_pricing::rate_per_token_f64(3.5e-12), Some(4));
/// assert_eq!(llmtel_pricing::rate_per_token_f64(-1e-6), None);
/// ```
pub fn rate_per_token_f64(usd_per_token: f64) -> Option<u64> {
    if !usd_per_token.is_finite() || usd_per_token < 0.0 {
        return None;
    }
    let text = format!("{}", usd_per_token.abs());
    crate::usd::parse_fixed(&text, 12, crate::usd::Rounding::HalfEven)
        .and_then(|v| u64::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_tokens_adds_cache_only_when_exclusive() {
        let mut u = Usage::new(100, 0);
        u.cache_read_tokens = 60;
        assert_eq!(u.prompt_tokens(), 100);
        u.cache_write_tokens = 60;
        assert_eq!(u.prompt_tokens(), 220);
    }
}
