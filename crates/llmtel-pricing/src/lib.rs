//! LLM price catalog and exact cost arithmetic for llmtel.
//!
//! Given a model name as an application or SDK reports it (`gpt-4o-2024-08-06`,
//! `anthropic/claude-sonnet-4-5`, `us.anthropic.claude-3-5-sonnet-20241022-v2:0`), the
//! token usage of one call in OpenTelemetry GenAI semantics, and the call's date, this
//! crate finds the catalog entry, the price in force that day and the long-context tier
//! that applies, and returns the cost split by token class, in exact pico-dollars.
//!
//! ```
//! use jiff::civil::date;
//! use llmtel_pricing::{Catalog, MatchKind, Usage};
//!
//! let usage = Usage {
//!     input_tokens: 10_000, // inclusive of the 8,000 cache-read tokens
//!     output_tokens: 1_000,
//!     cache_read_tokens: 8_000,
//!     ..Usage::default()
//! };
//! let call = Catalog::builtin()
//!     .price("gpt-4o-2024-08-06", Some("openai"), &usage, date(2025, 3, 1))
//!     .unwrap();
//! assert_eq!(call.model, "gpt-4o");
//! assert_eq!(call.matched, MatchKind::Snapshot);
//! // 2,000 uncached × $2.50/M + 8,000 cached × $1.25/M + 1,000 out × $10/M
//! // = $0.005 + $0.01 + $0.01
//! assert_eq!(call.breakdown.total.to_string(), "$0.025000");
//! ```
//!
//! # Cost rules
//! - `input_tokens` is **inclusive** of cache-read and cache-write tokens, and
//!   `output_tokens` of reasoning tokens (the OpenTelemetry GenAI convention). Uncached
//!   input is priced at the input rate, cache reads at the cache-read rate (default: the
//!   input rate), cache writes at the cache-write rate (default: the input rate),
//!   reasoning at the reasoning rate (default: the output rate), the rest of the output
//!   at the output rate. See [`Rates::cost`].
//! - When `cache_read + cache_write > input_tokens`, the provider reported input
//!   exclusive of cache (Anthropic's raw shape): all input tokens are priced at the input
//!   rate plus the cache tokens at their rates, and
//!   [`PricedCall::usage_note`] says so. Likewise for reasoning > output.
//! - Long-context tiers price the **whole** request at the highest tier whose
//!   `above_input_tokens` the prompt exceeds (prompt = input tokens, cache included).
//! - All arithmetic is integer (`u128` pico-dollars, checked); an overflow is
//!   [`PricingError::Overflow`], never a panic. `total` is the exact sum of the parts.
//! - Price history: the latest price whose `effective` date is on or before the call's
//!   date; a call dated before every known price uses the earliest price.
//!
//! # Price dimensions
//! [`Catalog::price_call`] prices a call with everything it reported, through a [`Call`]:
//! its start **instant** (off-peak windows, e.g. DeepSeek's), the service tier the response
//! reported (`priority`, `flex`, `batch`; a tier the model does not offer is priced at the
//! standard rates and noted, [`NOTE_SERVICE_TIER_NOT_OFFERED`]) and [`UsageDetails`]:
//! audio / image / video input tokens and audio output tokens (parts of the input and
//! output totals, priced at their own rates, the text remainder at the text rates),
//! cached audio, web search queries (by [`SearchContextSize`]), code interpreter sessions
//! and file search calls. The [`CostBreakdown`] names each part and `total` is their exact
//! sum. Rates live in [`Price::dims`] ([`Dimensions`]).
//!
//! ```
//! use llmtel_pricing::{Call, Catalog, Usage, UsageDetails};
//!
//! // gpt-audio: text $2.50/M in, $10/M out; audio $32/M in, $64/M out.
//! let usage = Usage::new(2_000, 1_000);
//! let details = UsageDetails { audio_input_tokens: 1_500, audio_output_tokens: 800, ..Default::default() };
//! let call = Call::at("2026-11-24T08:00:00Z".parse().unwrap()).with_details(details);
//! let p = Catalog::builtin().price_call("gpt-audio", Some("openai"), &usage, &call).unwrap();
//! assert_eq!(p.breakdown.audio_input.to_string(), "$0.048000");
//! assert_eq!(p.breakdown.total.to_string(), "$0.102450");
//! ```
//!
//! # Fresh prices without a release
//! [`PriceSources::from_env`] reads `LLMTEL_PRICES` (a price file) and `LLMTEL_PRICES_URL`
//! (an https URL, fetched at start-up with a timeout; feature `fetch`), and
//! [`PriceSources::load`] layers them over the built-in catalog. A source that fails is
//! left out and counted ([`price_source_failures`]); the built-in prices stay in use. An
//! alias of a source that is another model's id is left out and counted
//! ([`price_source_warnings`]); the rest of the source applies.
//!
//! # Model names
//! See [`Catalog::resolve`] for the order in which names are matched: deployment
//! mapping, exact id, alias, case-insensitive, provider prefix, snapshot suffix stripped,
//! Bedrock id. [`Catalog::explain`] lists the steps tried for one name.
//!
//! # LiteLLM's price file
//! [`Catalog::from_litellm_json`] (and [`Catalog::load`] for a `.json` file) reads
//! LiteLLM's `model_prices_and_context_window.json` as is: per-token input, output,
//! cache read and creation (incl. the 1-hour rate), reasoning, `_above_Nk_tokens` tiers
//! and `tiered_pricing`. Per-token floats are converted exactly to pico-dollars per token
//! through their shortest decimal form, rounded half to even at the pico-dollar.
//!
//! # Price file format
//! The built-in catalog (`data/catalog.toml`) and user price files share one TOML format.
//! Unknown fields are errors. Prices are **USD per million tokens**, as a number
//! (`2.50`) or a decimal string (`"0.075"`), at most 6 decimals, never negative.
//!
//! ```toml
//! [[model]]
//! id = "gpt-4o"                 # catalog key (required, unique)
//! provider = "openai"           # gen_ai.provider.name: openai, anthropic, gcp.gemini, ...
//! kind = "chat"                 # chat (default) | embedding | moderation | completion |
//!                               # image_generation | audio_speech | audio_transcription
//! aliases = ["gpt-4o-latest"]   # other exact names (optional)
//! context_window = 128000       # optional
//! max_output_tokens = 16384     # optional
//!
//! [[model.price]]               # one or more; each in force from `effective` on
//! effective = "2024-10-02"      # "YYYY-MM-DD" (a TOML date works too)
//! input = 2.50                  # required
//! output = 10.00                # required except for embedding / moderation
//! cache_read = 1.25             # optional, default = input
//! cache_write = 3.75            # optional, default = input (Anthropic: 5-minute write)
//! cache_write_1h = 6.00         # optional: Anthropic 1-hour write (default = cache_write)
//! reasoning = 3.50              # optional, default = output
//! batch_input = 1.25            # optional: service_tier "batch" (see below)
//! batch_output = 5.00           # optional: service_tier "batch"
//! batch_cache_read = 0.625      # optional: batch cache reads (default: discounted alike)
//! source = "https://openai.com/api/pricing"   # optional
//!
//! [[model.price.tier]]          # optional long-context tiers
//! above_input_tokens = 200000   # applies when the prompt has more input tokens than this
//! input = 5.0                   # required
//! output = 15.0                 # required
//! # cache_read, cache_write: optional, default = the base price's
//! # reasoning: optional, default = the base reasoning rate x tier output / base output
//!
//! [model.price.service_tier.priority]   # optional: rates of a service tier
//! input = 4.25
//! output = 17.0
//! image_output = 216.0          # also cache_read, cache_write, audio_input, cache_read_audio
//! [model.price.modality]        # optional: audio_input, audio_output, image_input, image_output, ...
//! audio_input = 32.0
//! [model.price.off_peak]        # optional: discounted UTC windows
//! input = 0.66
//! output = 1.98
//! windows = [{ weekdays = [6, 7], hours_utc = ["00:00-00:00"] }]
//! [model.price.per_request]     # optional: USD per request
//! web_search = { low = 0.025, medium = 0.0275, high = 0.03 }
//! ```
//!
//! See `data/README.md` for every field of the dimensions.
//!
//! A user price file may also map deployment names (e.g. Azure OpenAI deployments) to
//! the model they serve ([`MatchKind::Deployment`]):
//!
//! ```toml
//! [deployments]
//! my-gpt4o-prod = "gpt-4o"
//! ```
//!
//! Errors ([`CatalogError`]) name the file, line, entry id and field, and say what to
//! do; a file with an error is rejected whole.
//!
//! The built-in catalog is generated by `scripts/gen_catalog.py` from LiteLLM's price
//! table (with `data/curated.toml`, hand-curated entries with price history, merged
//! over it); see `data/README.md`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod catalog;
mod dims;
mod error;
mod litellm;
mod resolve;
mod sources;
mod usage;
mod usd;

pub use catalog::{
    Catalog, MAX_ALIASES_PER_MODEL, MAX_PRICE_FILE_BYTES, MAX_TIERS_PER_PRICE, ModelEntry,
    ModelKind, Price, Tier,
};
pub use dims::{
    Call, Dimensions, MAX_OFF_PEAK_HOURS_PER_WINDOW, MAX_OFF_PEAK_WINDOWS, ModalityRates,
    NOTE_MODALITY_TOKENS_EXCLUSIVE, NOTE_OFF_PEAK_TIME_ZONE_UNKNOWN, NOTE_REQUEST_CHARGE_UNKNOWN,
    NOTE_SERVICE_TIER_NOT_OFFERED, NOTE_UNIT_COUNTS_MISSING, NOTE_UNIT_PRICE_UNKNOWN, OffPeak,
    OffPeakWindow, RequestCharges, STANDARD_SERVICE_TIERS, SearchContextSize, ServiceTierRates,
    UnitPrices, WebSearchPrice, Weekdays,
};
pub use error::{CatalogError, PricingError};
pub use litellm::{LITELLM_EFFECTIVE, LiteLlmImport, SkipReason, provider_from_litellm};
pub use resolve::{
    MAX_DEPLOYMENT_HOPS, MAX_RESOLVE_NAME_BYTES, MatchKind, RESOLVE_CACHE_CAPACITY, ResolveStep,
    Resolved, SUGGEST_MAX_BYTES,
};
pub use sources::{
    DEFAULT_FETCH_TIMEOUT, ENV_PRICES, ENV_PRICES_URL, ENV_PRICES_URL_CA_FILE,
    ENV_PRICES_URL_TIMEOUT_MS, LayeredCatalog, MAX_FETCH_BYTES, PriceSources,
    price_source_failures, price_source_warnings, redact_url,
};
pub use usage::{
    CostBreakdown, Rates, USAGE_NOTE_BOTH_EXCLUSIVE, USAGE_NOTE_INPUT_EXCLUSIVE_OF_CACHE,
    USAGE_NOTE_OUTPUT_EXCLUSIVE_OF_REASONING, Usage, UsageDetails, rate_per_million,
    rate_per_token_f64,
};
pub use usd::Usd;

/// A priced call.
#[derive(Clone, Debug, PartialEq)]
pub struct PricedCall {
    /// The cost, split by token class.
    pub breakdown: CostBreakdown,
    /// Catalog key that matched.
    pub model: String,
    /// Provider of the matched entry (`gen_ai.provider.name` value).
    pub provider: String,
    /// How the model name matched.
    pub matched: MatchKind,
    /// Date from which the applied price is in force.
    pub price_date: jiff::civil::Date,
    /// Input-token threshold of the long-context tier applied, if any.
    pub tier_above_input_tokens: Option<u64>,
    /// Set when usage was not self-consistent and how it was read (e.g. cache > input):
    /// one of [`USAGE_NOTE_INPUT_EXCLUSIVE_OF_CACHE`],
    /// [`USAGE_NOTE_OUTPUT_EXCLUSIVE_OF_REASONING`], [`USAGE_NOTE_BOTH_EXCLUSIVE`].
    pub usage_note: Option<&'static str>,
    /// The service tier whose rates priced the call (`priority`, `flex`, `batch`), or
    /// `None` for the standard rates (also when the reported tier is not offered: see
    /// [`NOTE_SERVICE_TIER_NOT_OFFERED`] in `notes`).
    pub service_tier: Option<String>,
    /// True when the call started in an off-peak window and was priced at its rates.
    pub off_peak: bool,
    /// How the call was priced where it could not be priced as reported: any of
    /// [`NOTE_SERVICE_TIER_NOT_OFFERED`], [`NOTE_MODALITY_TOKENS_EXCLUSIVE`],
    /// [`NOTE_REQUEST_CHARGE_UNKNOWN`], [`NOTE_UNIT_PRICE_UNKNOWN`],
    /// [`NOTE_UNIT_COUNTS_MISSING`], [`NOTE_OFF_PEAK_TIME_ZONE_UNKNOWN`]. Empty when
    /// priced as reported. The exporter puts them on the span (`llmtel.cost.notes`).
    pub notes: Vec<&'static str>,
}

impl Catalog {
    /// Prices one call.
    ///
    /// `provider` is a hint (`gen_ai.provider.name`), may be `None`; it only breaks ties
    /// in name resolution. `at` = the call's start date, selecting the price in force.
    ///
    /// # Errors
    /// [`PricingError::UnknownModel`] (with the nearest known ids) when the name does not
    /// resolve; [`PricingError::Overflow`] when the cost does not fit.
    ///
    /// A date alone applies no off-peak window and no service tier: use
    /// [`Catalog::price_call`] with the call's start instant for those.
    pub fn price(
        &self,
        model: &str,
        provider: Option<&str>,
        usage: &Usage,
        at: jiff::civil::Date,
    ) -> Result<PricedCall, PricingError> {
        let resolved = self.resolve_shared(model, provider);
        self.price_inner(
            model,
            resolved.as_deref(),
            true,
            usage,
            at,
            None,
            None,
            None,
            &UsageDetails::default(),
        )
    }

    /// Prices one call with everything it reported: its start instant (price in force on
    /// its UTC date, off-peak windows), the service tier the response reported, the
    /// modality token counts and request counts ([`Call::details`]).
    ///
    /// - **Service tier**: the tier's rates when the price lists it (a rate it does not
    ///   list is the standard one); `batch` uses the batch rates; `default`, `auto`,
    ///   `standard` are the standard rates; any other tier is priced at the standard
    ///   rates with [`NOTE_SERVICE_TIER_NOT_OFFERED`] in [`PricedCall::notes`].
    /// - **Off-peak**: a call starting in a window of the price's off-peak pricing (and on
    ///   the standard tier, under any long-context threshold) is priced at the off-peak
    ///   rates; [`PricedCall::off_peak`] says so.
    /// - **Modalities**: audio, image and video input tokens are part of `input_tokens`,
    ///   audio output part of `output_tokens`; each is priced at its rate (default: the
    ///   text rate) and the text remainder at the text rates. Cached audio is part of both
    ///   `audio_input_tokens` and `cache_read_tokens`.
    /// - **Requests**: web search queries (by search context size, default medium), code
    ///   interpreter sessions and file search calls at their per-request prices.
    ///
    /// ```
    /// use llmtel_pricing::{Call, Catalog, Usage};
    /// let usage = Usage { input_tokens: 1_000, output_tokens: 1_000, ..Usage::default() };
    /// let call = Call::at("2026-11-25T12:00:00Z".parse().unwrap()).with_service_tier("flex");
    /// let priced = Catalog::builtin().price_call("gpt-5", Some("openai"), &usage, &call).unwrap();
    /// assert_eq!(priced.service_tier.as_deref(), Some("flex"));
    /// ```
    ///
    /// # Errors
    /// As [`Catalog::price`].
    pub fn price_call(
        &self,
        model: &str,
        provider: Option<&str>,
        usage: &Usage,
        call: &Call<'_>,
    ) -> Result<PricedCall, PricingError> {
        let resolved = self.resolve_shared(model, provider);
        self.price_call_resolved(model, resolved.as_deref(), usage, call, true)
    }

    /// [`Catalog::price_call`] for a name a client may choose, priced on every call: `None`
    /// when `model` does not resolve ([`Catalog::knows`]), without computing the name
    /// suggestions an unknown model's error carries there (an edit distance per catalog
    /// name), and resolving the name once. `Some(Err(UnknownModel))` (with no suggestions)
    /// when the model resolves but has no price on the call's date.
    ///
    /// ```
    /// use llmtel_pricing::{Call, Catalog, Usage};
    /// let usage = Usage { input_tokens: 1_000, ..Usage::default() };
    /// let call = Call::at("2026-11-25T12:00:00Z".parse().unwrap());
    /// let catalog = Catalog::builtin();
    /// assert!(catalog.price_call_if_known("no-such-model", None, &usage, &call).is_none());
    /// let priced = catalog.price_call_if_known("gpt-4o", Some("openai"), &usage, &call);
    /// assert!(priced.unwrap().unwrap().breakdown.total > llmtel_pricing::Usd::ZERO);
    /// ```
    pub fn price_call_if_known(
        &self,
        model: &str,
        provider: Option<&str>,
        usage: &Usage,
        call: &Call<'_>,
    ) -> Option<Result<PricedCall, PricingError>> {
        let resolved = self.resolve_shared(model, provider)?;
        Some(self.price_call_resolved(model, Some(&resolved), usage, call, false))
    }

    /// [`Catalog::price_call`] with the name resolved already (`None`: unknown), as
    /// `price_inner` takes it.
    fn price_call_resolved(
        &self,
        model: &str,
        resolved: Option<&resolve::Resolved>,
        usage: &Usage,
        call: &Call<'_>,
        suggest: bool,
    ) -> Result<PricedCall, PricingError> {
        let date = call.at.to_zoned(jiff::tz::TimeZone::UTC).date();
        self.price_inner(
            model,
            resolved,
            suggest,
            usage,
            date,
            (!call.date_only).then_some(call.at),
            call.service_tier,
            call.search_context_size,
            &call.details,
        )
    }

    /// Prices `model`, resolved to `resolved` (`None`: unknown); `suggest` says whether an
    /// unknown model's error lists the nearest names.
    #[allow(clippy::too_many_arguments)]
    fn price_inner(
        &self,
        model: &str,
        resolved: Option<&resolve::Resolved>,
        suggest: bool,
        usage: &Usage,
        at: jiff::civil::Date,
        instant: Option<jiff::Timestamp>,
        service_tier: Option<&str>,
        search: Option<SearchContextSize>,
        details: &UsageDetails,
    ) -> Result<PricedCall, PricingError> {
        let unknown = || PricingError::UnknownModel {
            model: model.to_string(),
            suggestions: if suggest {
                self.suggest(model, 3)
            } else {
                Vec::new()
            },
        };
        let resolved = resolved.ok_or_else(unknown)?;
        let entry = self.entries.get(&resolved.key).ok_or_else(unknown)?;
        let price = entry.price_at(at).ok_or_else(unknown)?;
        let mut chosen = price.choose(usage, service_tier, instant);
        let (breakdown, usage_note) = price.cost_with(usage, details, &mut chosen, search)?;
        Ok(PricedCall {
            breakdown,
            model: entry.id.clone(),
            provider: entry.provider.clone(),
            matched: resolved.kind,
            price_date: price.effective,
            tier_above_input_tokens: chosen.tier_above,
            usage_note,
            service_tier: chosen.service_tier,
            off_peak: chosen.off_peak,
            notes: chosen.notes,
        })
    }
}
