//! Price dimensions beyond text tokens: service tiers, per-modality token rates,
//! off-peak windows and per-request charges, and how a call is priced with them.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::catalog::{Price, Tier};
use crate::{CostBreakdown, PricingError, Rates, Usage, UsageDetails, Usd};

/// Note (in [`PricedCall::notes`](crate::PricedCall::notes)) when the call reported a
/// service tier the model's price does not list: the call was priced at the standard
/// rates.
pub const NOTE_SERVICE_TIER_NOT_OFFERED: &str = "service_tier_not_offered_priced_at_standard";
/// Note when audio, image and video input tokens together exceed `input_tokens` (or
/// audio output exceeds `output_tokens`): the modality tokens were read as exclusive of
/// the text counts and priced on top of them.
pub const NOTE_MODALITY_TOKENS_EXCLUSIVE: &str = "modality_tokens_exclusive_of_text";
/// Note when the call used web search, code interpreter or file search but the price
/// lists no charge for it: nothing was charged for those requests.
pub const NOTE_REQUEST_CHARGE_UNKNOWN: &str = "request_charge_not_in_catalog";
/// Note when the call reported images, characters or audio seconds but the price lists
/// no per-unit price for them: nothing was charged for those units. (A token-priced model
/// that reported tokens bills its units through them: no note, no unit charge.)
pub const NOTE_UNIT_PRICE_UNKNOWN: &str = "unit_price_not_in_catalog";
/// Note when a model priced only per unit (images, characters, seconds: its token rates
/// are zero) was priced without any unit count: the zero cost is not a real price; the
/// caller should report [`UsageDetails`] counts.
pub const NOTE_UNIT_COUNTS_MISSING: &str = "unit_counts_missing";
/// Note when the off-peak windows of the price name a weekday time zone llmtel does not
/// know: the call was priced at the standard (on-peak) rates.
pub const NOTE_OFF_PEAK_TIME_ZONE_UNKNOWN: &str = "off_peak_time_zone_unknown";

/// Service-tier names that mean "the standard rates" (OpenAI `default` / `auto`,
/// Anthropic `standard`), never noted as a fallback.
pub const STANDARD_SERVICE_TIERS: [&str; 4] = ["default", "auto", "standard", "standard_only"];

/// Rates of one service tier (OpenAI `priority` / `flex`, Anthropic `priority`, ...), in
/// pico-dollars per token. A text rate left `None` is the standard rate; a modality rate
/// left `None` (and every modality the tier cannot list: audio output, image and video
/// input) is the standard modality rate scaled by the tier's input rate over the standard
/// one (output side: by the output rates), as reasoning is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTierRates {
    /// Input rate.
    pub input: Option<u64>,
    /// Output rate.
    pub output: Option<u64>,
    /// Cache-read rate.
    pub cache_read: Option<u64>,
    /// Cache-write rate.
    pub cache_write: Option<u64>,
    /// Audio input rate.
    pub audio_input: Option<u64>,
    /// Cached audio input rate.
    pub cache_read_audio: Option<u64>,
    /// Image output rate (LiteLLM `output_cost_per_image_token_priority`).
    pub image_output: Option<u64>,
    /// Long-context tiers of this service tier (ascending); when empty, a prompt over a
    /// standard long-context threshold is priced at the standard long-context tier.
    pub tiers: Vec<Tier>,
}

/// Per-modality token rates, pico-dollars per token. `None` = the text rate (input or
/// output; cached audio: the audio input rate).
///
/// A listed rate keeps its ratio to the text rate of its side (input: audio, image, video,
/// cached audio; output: audio, image) under a long-context tier, a service tier and the
/// batch discount, unless that tier lists a rate of its own: reporting the modality split
/// of a call never moves its cost off the tier the text is priced at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModalityRates {
    /// Audio input tokens.
    pub audio_input: Option<u64>,
    /// Audio output tokens.
    pub audio_output: Option<u64>,
    /// Image input tokens.
    pub image_input: Option<u64>,
    /// Video input tokens.
    pub video_input: Option<u64>,
    /// Cached (cache-read) audio input tokens.
    pub cache_read_audio: Option<u64>,
    /// Cached (cache-read) image input tokens (informational: usage does not split
    /// cached image tokens).
    pub cache_read_image: Option<u64>,
    /// Audio cache-write tokens (informational).
    pub cache_write_audio: Option<u64>,
    /// Image output tokens (image generation: gpt-image-1.5 bills them apart from its
    /// text output tokens).
    pub image_output: Option<u64>,
}

impl ModalityRates {
    /// True when no rate is set.
    pub fn is_empty(&self) -> bool {
        *self == ModalityRates::default()
    }
}

/// Most `hours_utc` ranges one off-peak window may list (a price file with more is an
/// error naming the window): each range becomes an [`OffPeakWindow`], checked for every
/// priced call. A day has at most 24 one-hour ranges; adjacent ranges can be merged.
pub const MAX_OFF_PEAK_HOURS_PER_WINDOW: usize = 48;

/// Most windows an off-peak price may list (a price file with more is an error).
pub const MAX_OFF_PEAK_WINDOWS: usize = 64;

/// A set of ISO weekdays, 1 = Monday … 7 = Sunday, one bit each: the days of an
/// [`OffPeakWindow`], however often a price file lists a day.
///
/// Shown (`{:?}`) as the list of its days, `[1, 2, 3, 4, 5]`.
///
/// ```
/// use llmtel_pricing::Weekdays;
/// let days = [1, 5, 5, 1].into_iter().try_fold(Weekdays::NONE, Weekdays::with).unwrap();
/// assert_eq!(format!("{days:?}"), "[1, 5]");
/// assert!(days.contains(5) && !days.contains(6));
/// assert_eq!(Weekdays::NONE.with(8), None);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Weekdays(u8);

impl Weekdays {
    /// No day.
    pub const NONE: Weekdays = Weekdays(0);
    /// Every day, Monday to Sunday.
    pub const ALL: Weekdays = Weekdays(0x7f);

    /// The set with `day` (ISO, 1 = Monday … 7 = Sunday) added; `None` when `day` is not
    /// in `1..=7`.
    pub const fn with(self, day: u8) -> Option<Weekdays> {
        if day >= 1 && day <= 7 {
            Some(Weekdays(self.0 | 1 << (day - 1)))
        } else {
            None
        }
    }

    /// Whether `day` (ISO, 1 = Monday … 7 = Sunday) is in the set.
    pub const fn contains(self, day: u8) -> bool {
        day >= 1 && day <= 7 && self.0 & (1 << (day - 1)) != 0
    }

    /// Whether the set has no day.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The number of days in the set (0 to 7).
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The days, ascending.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (1..=7).filter(move |d| self.contains(*d))
    }
}

impl std::fmt::Debug for Weekdays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A weekly UTC window: on `weekdays` (ISO: 1 = Monday … 7 = Sunday), from `start_minute`
/// (inclusive) to `end_minute` (exclusive) minutes after 00:00 UTC; `end_minute` 1440 =
/// midnight at the end of the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffPeakWindow {
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    pub weekdays: Weekdays,
    /// Start, minutes after 00:00 UTC (inclusive).
    pub start_minute: u16,
    /// End, minutes after 00:00 UTC (exclusive), up to 1440.
    pub end_minute: u16,
}

/// Discounted rates in published UTC windows (DeepSeek; LiteLLM `off_peak_pricing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffPeak {
    /// Input rate in the windows, pico-dollars per token.
    pub input: u64,
    /// Output rate in the windows.
    pub output: u64,
    /// Cache-read rate in the windows; `None` = the off-peak input rate.
    pub cache_read: Option<u64>,
    /// The windows (hours always UTC).
    pub windows: Vec<OffPeakWindow>,
    /// Time zone in which `weekdays` are counted (LiteLLM `weekday_timezone`); `None` = UTC.
    pub weekday_timezone: Option<String>,
}

impl OffPeak {
    /// Whether `at` falls in a window; `Err(())` when the weekday time zone is unknown.
    #[allow(clippy::result_unit_err)]
    pub fn contains(&self, at: Timestamp) -> Result<bool, ()> {
        let utc = at.to_zoned(jiff::tz::TimeZone::UTC);
        let minute =
            u16::from(utc.hour().unsigned_abs()) * 60 + u16::from(utc.minute().unsigned_abs());
        let weekday_at = match self.weekday_timezone.as_deref() {
            None => utc.clone(),
            Some(name) => at.to_zoned(time_zone(name).ok_or(())?),
        };
        let weekday = weekday_at.weekday().to_monday_one_offset().unsigned_abs();
        Ok(self.windows.iter().any(|w| {
            w.weekdays.contains(weekday) && w.start_minute <= minute && minute < w.end_minute
        }))
    }
}

/// Whether off-peak weekdays can be counted in the zone `name` ([`OffPeak::contains`]):
/// checked when a price file is loaded.
pub(crate) fn known_time_zone(name: &str) -> bool {
    time_zone(name).is_some()
}

/// A time zone by name: UTC and fixed-offset zones llmtel knows without a time-zone
/// database (Asia/Shanghai = UTC+8, no daylight saving since 1991), else jiff's database
/// (when the build has one).
fn time_zone(name: &str) -> Option<jiff::tz::TimeZone> {
    match name {
        "UTC" | "Etc/UTC" | "Z" => Some(jiff::tz::TimeZone::UTC),
        "Asia/Shanghai" | "Asia/Chongqing" | "PRC" | "Asia/Hong_Kong" | "Asia/Singapore" => {
            Some(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
        }
        "Asia/Tokyo" | "Asia/Seoul" => Some(jiff::tz::TimeZone::fixed(jiff::tz::offset(9))),
        other => jiff::tz::TimeZone::get(other).ok(),
    }
}

/// Web search price per query by search context size (OpenAI `search_context_size`;
/// other providers list one price for all sizes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebSearchPrice {
    /// Per query with a low search context.
    pub low: Usd,
    /// Per query with a medium search context (the default).
    pub medium: Usd,
    /// Per query with a high search context.
    pub high: Usd,
}

/// The search context size of a web search (OpenAI `web_search_options.search_context_size`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SearchContextSize {
    /// `low`.
    Low,
    /// `medium` (OpenAI's default).
    #[default]
    Medium,
    /// `high`.
    High,
}

impl SearchContextSize {
    /// Parses `low`, `medium`, `high` (any case).
    pub fn parse(s: &str) -> Option<SearchContextSize> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "low" => SearchContextSize::Low,
            "medium" => SearchContextSize::Medium,
            "high" => SearchContextSize::High,
            _ => return None,
        })
    }
}

/// Per-request charges, in exact dollars per request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCharges {
    /// Web search, per query.
    pub web_search: Option<WebSearchPrice>,
    /// Code interpreter, per session (container).
    pub code_interpreter_session: Option<Usd>,
    /// File search, per call (LiteLLM lists it per 1,000 calls).
    pub file_search_call: Option<Usd>,
}

impl RequestCharges {
    /// True when no charge is set.
    pub fn is_empty(&self) -> bool {
        *self == RequestCharges::default()
    }
}

/// Per-unit prices of image, speech and transcription models, exact USD per unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnitPrices {
    /// Per generated image (LiteLLM keys such entries by quality and size:
    /// `high/1024-x-1024/gpt-image-1`).
    pub image: Option<Usd>,
    /// Per input character (text to speech).
    pub input_character: Option<Usd>,
    /// Per second of input audio (transcription).
    pub input_second: Option<Usd>,
    /// Per second of output audio (speech).
    pub output_second: Option<Usd>,
}

impl UnitPrices {
    /// True when no price is set.
    pub fn is_empty(&self) -> bool {
        *self == UnitPrices::default()
    }
}

/// The price dimensions of one [`Price`] beyond its text-token rates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dimensions {
    /// Service tiers by name (`priority`, `flex`, ...).
    pub service_tiers: BTreeMap<String, ServiceTierRates>,
    /// Per-modality token rates.
    pub modality: ModalityRates,
    /// Per-modality token rates of the batch API (LiteLLM `input_cost_per_audio_token_batches`,
    /// `output_cost_per_image_token_batches`, ...). A rate left `None` is the standard
    /// modality rate scaled by the batch discount (`batch_input` / `batch_output` over the
    /// base rate), or the batch text rate when the modality has no rate of its own. Used
    /// only with a batch text rate (`batch_input` or `batch_output`): without one the
    /// price offers no batch tier and a batch call is priced at the standard rates.
    pub batch_modality: ModalityRates,
    /// Off-peak windows and their rates.
    pub off_peak: Option<OffPeak>,
    /// Per-request charges.
    pub requests: RequestCharges,
    /// Per-unit prices (images, characters, seconds).
    pub units: UnitPrices,
}

/// What the call said beyond its token counts: its start instant, the service tier the
/// response reported, the web-search context size.
///
/// ```
/// use llmtel_pricing::{Call, SearchContextSize};
/// let call = Call::at("2026-03-03T02:30:00Z".parse().unwrap())
///     .with_service_tier("flex")
///     .with_search_context_size(SearchContextSize::High);
/// assert_eq!(call.service_tier, Some("flex"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call<'a> {
    /// The call's start instant: selects the price in force (by its UTC date) and
    /// off-peak windows.
    pub at: Timestamp,
    /// The service tier the response reported (OpenAI `service_tier`, Anthropic
    /// `usage.service_tier`), if any.
    pub service_tier: Option<&'a str>,
    /// Web-search context size; `None` = medium.
    pub search_context_size: Option<SearchContextSize>,
    /// True when only the call's date is known ([`Call::on_date`]): `at` is that day's
    /// 00:00 UTC and selects the price, and no off-peak window applies.
    pub date_only: bool,
    /// Modality token counts and tool uses of the call.
    pub details: UsageDetails,
}

impl<'a> Call<'a> {
    /// A call started at `at`, standard tier, medium search context.
    pub fn at(at: Timestamp) -> Self {
        Call {
            at,
            service_tier: None,
            search_context_size: None,
            date_only: false,
            details: UsageDetails::default(),
        }
    }

    /// A call of which only the (UTC) date is known: priced with the price in force that
    /// day, never at off-peak rates.
    pub fn on_date(date: jiff::civil::Date) -> Self {
        let at = date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map_or(Timestamp::UNIX_EPOCH, |z| z.timestamp());
        Call {
            date_only: true,
            ..Call::at(at)
        }
    }

    /// With the service tier the response reported.
    pub fn with_service_tier(mut self, tier: &'a str) -> Self {
        self.service_tier = Some(tier);
        self
    }

    /// With the call's modality token counts and tool uses.
    pub fn with_details(mut self, details: UsageDetails) -> Self {
        self.details = details;
        self
    }

    /// With the web-search context size.
    pub fn with_search_context_size(mut self, size: SearchContextSize) -> Self {
        self.search_context_size = Some(size);
        self
    }
}

/// The rates chosen for one call, and what was decided.
pub(crate) struct Chosen {
    pub rates: Rates,
    /// The 1-hour cache write rate; `None` = `rates.cache_write`.
    pub cache_write_1h: Option<u64>,
    pub tier_above: Option<u64>,
    pub audio_input: u64,
    pub cache_read_audio: u64,
    /// The modality rates in force (scaled as the text rates are); `None` = the chosen
    /// text rate.
    pub modality: ModalityRates,
    pub service_tier: Option<String>,
    pub off_peak: bool,
    pub notes: Vec<&'static str>,
}

impl Price {
    /// Picks the rates for a call: service tier (else standard, noted), long-context
    /// tier, off-peak window (`instant` only; a bare date never applies one).
    pub(crate) fn choose(
        &self,
        usage: &Usage,
        service_tier: Option<&str>,
        instant: Option<Timestamp>,
    ) -> Chosen {
        let mut notes = Vec::new();
        let prompt = usage.prompt_tokens();
        let tier_name = service_tier
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty() && !STANDARD_SERVICE_TIERS.contains(&t.as_str()));
        let st = tier_name
            .as_deref()
            .and_then(|t| self.dims.service_tiers.get(t));
        // Batch is offered when a batch text rate is listed: with `batch_modality` rates
        // alone the text (most of any call) has no batch rate, and the call is priced at
        // the standard rates, modalities included, and noted as such.
        let batch = tier_name.as_deref() == Some("batch")
            && st.is_none()
            && (self.batch_input.is_some() || self.batch_output.is_some());
        if tier_name.is_some() && st.is_none() && !batch {
            notes.push(NOTE_SERVICE_TIER_NOT_OFFERED);
        }
        let m = &self.dims.modality;
        let (mut rates, tier_above) = match st {
            Some(st) if !st.tiers.is_empty() => {
                let mut s = self.clone();
                s.tiers.clone_from(&st.tiers);
                s.rates_for(prompt)
            }
            _ => self.rates_for(prompt),
        };
        let mut applied = None;
        // Modality rates the applied service tier or batch lists, and the text rates (input,
        // output) they go with.
        let mut tier_listed = (
            ModalityRates::default(),
            self.rates.input,
            self.rates.output,
        );
        if let Some(st) = st {
            if tier_above.is_none() {
                rates.input = st.input.unwrap_or(rates.input);
                // An explicit reasoning rate (LiteLLM's Gemini entries) keeps its ratio to the
                // output rate: the tier's output rate when reasoning = output.
                let standard_output = rates.output;
                rates.reasoning = rates.reasoning.map(|r| {
                    st.output
                        .and_then(|o| scaled(r, o, standard_output))
                        .unwrap_or(r)
                });
                rates.output = st.output.unwrap_or(rates.output);
                rates.cache_read = st.cache_read.or(rates.cache_read);
                rates.cache_write = st.cache_write.or(rates.cache_write);
                applied.clone_from(&tier_name);
            } else if st.tiers.is_empty() {
                // The tier lists no long-context rates: the standard long-context tier.
                notes.push(NOTE_SERVICE_TIER_NOT_OFFERED);
            } else {
                applied.clone_from(&tier_name);
            }
            if applied.is_some() {
                tier_listed = (
                    ModalityRates {
                        audio_input: st.audio_input,
                        cache_read_audio: st.cache_read_audio,
                        image_output: st.image_output,
                        ..ModalityRates::default()
                    },
                    st.input.unwrap_or(self.rates.input),
                    st.output.unwrap_or(self.rates.output),
                );
            }
        } else if batch {
            // The batch discount on whatever rates apply (a long-context tier's too), cache
            // reads and writes included: each rate scaled by the listed batch rate over the
            // base one (exactly the batch rate without a tier). A listed batch cache rate
            // (Gemini lists batch cache reads at the standard price, not half) gives its own
            // discount; else the cache is discounted as the input is (OpenAI mostly lists it
            // so; Anthropic's multipliers stack).
            applied.clone_from(&tier_name);
            let scale = |rate: u64, batch: Option<u64>, base: u64| {
                batch.and_then(|b| scaled(rate, b, base)).unwrap_or(rate)
            };
            let (bi, bo) = (self.batch_input, self.batch_output);
            let (base_in, base_out) = (self.rates.input, self.rates.output);
            let cache = |rate: Option<u64>, listed: Option<u64>, base: Option<u64>| {
                let rate = rate.unwrap_or(rates.input);
                match listed {
                    Some(b) => scaled(rate, b, base.unwrap_or(base_in)).unwrap_or(b),
                    None => scale(rate, bi, base_in),
                }
            };
            rates.cache_read = Some(cache(
                rates.cache_read,
                self.batch_cache_read,
                self.rates.cache_read,
            ));
            rates.cache_write = Some(cache(
                rates.cache_write,
                self.batch_cache_write,
                self.rates.cache_write,
            ));
            rates.reasoning = Some(scale(rates.reasoning.unwrap_or(rates.output), bo, base_out));
            rates.input = scale(rates.input, bi, base_in);
            rates.output = scale(rates.output, bo, base_out);
            // Modality rates: the listed batch rate, else the standard one discounted alike
            // (below), else (no rate of its own) the batch text rate.
            tier_listed = (
                self.dims.batch_modality,
                bi.unwrap_or(base_in),
                bo.unwrap_or(base_out),
            );
        }
        // Each modality rate keeps its ratio to the text rate of its side, whatever applies
        // (a long-context tier, a service tier, the batch discount): the rate the applied
        // tier lists against that tier's text rate, else the standard one against the
        // standard text rate. A modality whose rate equals the text rate stays equal to it,
        // so reporting the split of a call never changes its cost.
        let (listed, listed_in, listed_out) = tier_listed;
        let side = |tier: Option<u64>, standard: Option<u64>, now: u64, of_tier: u64, of: u64| {
            match tier {
                Some(r) => Some(scaled(r, now, of_tier).unwrap_or(r)),
                None => standard.map(|r| scaled(r, now, of).unwrap_or(r)),
            }
        };
        let (base_in, base_out) = (self.rates.input, self.rates.output);
        let input_side = |tier, standard| side(tier, standard, rates.input, listed_in, base_in);
        let output_side = |tier, standard| side(tier, standard, rates.output, listed_out, base_out);
        let modality = ModalityRates {
            audio_input: input_side(listed.audio_input, m.audio_input),
            image_input: input_side(listed.image_input, m.image_input),
            video_input: input_side(listed.video_input, m.video_input),
            cache_read_audio: input_side(listed.cache_read_audio, m.cache_read_audio),
            cache_read_image: input_side(listed.cache_read_image, m.cache_read_image),
            cache_write_audio: input_side(listed.cache_write_audio, m.cache_write_audio),
            audio_output: output_side(listed.audio_output, m.audio_output),
            image_output: output_side(listed.image_output, m.image_output),
        };
        let mut audio_input = modality.audio_input.unwrap_or(rates.input);
        let cache_read_audio = modality.cache_read_audio;
        let mut off_peak = false;
        if let (Some(op), Some(at), None, None) =
            (&self.dims.off_peak, instant, &applied, tier_above)
        {
            match op.contains(at) {
                Ok(true) => {
                    off_peak = true;
                    rates.input = op.input;
                    rates.output = op.output;
                    rates.cache_read = Some(op.cache_read.unwrap_or(op.input));
                    // No off-peak cache-write rate is published: the standard one when
                    // listed (DeepSeek: free), never above the off-peak input rate.
                    rates.cache_write =
                        Some(rates.cache_write.map_or(op.input, |w| w.min(op.input)));
                    rates.reasoning = None;
                    audio_input = m.audio_input.unwrap_or(op.input);
                }
                Ok(false) => {}
                Err(()) => notes.push(NOTE_OFF_PEAK_TIME_ZONE_UNKNOWN),
            }
        }
        // Under a long-context tier, the batch discount or a service tier the 1-hour write
        // keeps its ratio to the input rate (Claude: 2x input, $12 above 200K for Sonnet 4.5,
        // $3 in Message Batches); no off-peak window publishes one.
        let cache_write_1h = self.cache_write_1h.and_then(|w| {
            if off_peak {
                None
            } else if tier_above.is_none() && applied.is_none() {
                Some(w)
            } else {
                scaled(w, rates.input, self.rates.input)
            }
        });
        Chosen {
            rates,
            cache_write_1h,
            tier_above,
            audio_input,
            cache_read_audio: cache_read_audio.unwrap_or(audio_input),
            modality,
            service_tier: applied,
            off_peak,
            notes,
        }
    }

    /// Prices `usage` with the chosen rates: text through [`Rates::cost`], then the
    /// modality and per-request parts.
    pub(crate) fn cost_with(
        &self,
        usage: &Usage,
        details: &UsageDetails,
        chosen: &mut Chosen,
        search: Option<SearchContextSize>,
    ) -> Result<(CostBreakdown, Option<&'static str>), PricingError> {
        let overflow = || PricingError::Overflow(*usage);
        let m = chosen.modality;
        let mut cached_audio = details.cached_audio_tokens(usage);
        let modal_in = details.modal_input_tokens();
        let mut text = *usage;
        let mut exclusive = false;
        match u128::from(usage.input_tokens).checked_sub(modal_in) {
            Some(rest) => text.input_tokens = u64::try_from(rest).map_err(|_| overflow())?,
            None => exclusive = true,
        }
        text.cache_read_tokens = usage.cache_read_tokens - cached_audio;
        // A cache bigger than the text part of an inclusive prompt holds image or video
        // tokens (Gemini counts cached media in its per-modality prompt counts and in
        // `cachedContentTokenCount`): those are priced at the cache rate, not again at their
        // modality's. Text is taken as cached first, then video, then image (Gemini prices
        // the three alike), then audio beyond the cached audio the call reported (at the
        // cached audio rate).
        let (mut video_in, mut image_in) = (details.video_input_tokens, details.image_input_tokens);
        let cache = u128::from(usage.cache_read_tokens) + u128::from(usage.cache_write_tokens);
        if !exclusive && u128::from(usage.input_tokens) >= cache {
            let text_cache =
                u128::from(text.cache_read_tokens) + u128::from(text.cache_write_tokens);
            let mut excess =
                u64::try_from(text_cache.saturating_sub(u128::from(text.input_tokens)))
                    .map_err(|_| overflow())?;
            for part in [&mut video_in, &mut image_in] {
                let cached = excess.min(*part);
                *part -= cached;
                excess -= cached;
                text.input_tokens = text.input_tokens.checked_add(cached).ok_or_else(overflow)?;
            }
            let cached = excess
                .min(details.audio_input_tokens - cached_audio)
                .min(text.cache_read_tokens);
            cached_audio += cached;
            text.cache_read_tokens -= cached;
        }
        let modal_out = details.modal_output_tokens();
        match u128::from(usage.output_tokens).checked_sub(modal_out) {
            Some(rest) => text.output_tokens = u64::try_from(rest).map_err(|_| overflow())?,
            None => exclusive = true,
        }
        if exclusive {
            chosen.notes.push(NOTE_MODALITY_TOKENS_EXCLUSIVE);
        }
        let (mut b, note) = chosen.rates.cost(&text)?;
        let at = |tokens: u64, rate: u64| {
            u128::from(tokens)
                .checked_mul(u128::from(rate))
                .map(Usd::from_picos)
                .ok_or_else(overflow)
        };
        // Anthropic's 1-hour cache writes, at their own rate.
        let hour = details.cache_write_1h_tokens.min(text.cache_write_tokens);
        if hour > 0 {
            let five = chosen.rates.cache_write.unwrap_or(chosen.rates.input);
            let write = at(text.cache_write_tokens - hour, five)?
                .checked_add(at(hour, chosen.cache_write_1h.unwrap_or(five))?)
                .ok_or_else(overflow)?;
            b.total = Usd::from_picos(b.total.picos() - b.cache_write.picos())
                .checked_add(write)
                .ok_or_else(overflow)?;
            b.cache_write = write;
        }
        b.audio_input = at(
            details.audio_input_tokens - cached_audio,
            chosen.audio_input,
        )?;
        b.cached_audio = at(cached_audio, chosen.cache_read_audio)?;
        let input_rate = chosen.rates.input;
        b.image_input = at(image_in, m.image_input.unwrap_or(input_rate))?;
        b.video_input = at(video_in, m.video_input.unwrap_or(input_rate))?;
        b.audio_output = at(
            details.audio_output_tokens,
            m.audio_output.unwrap_or(chosen.rates.output),
        )?;
        b.image_output = at(
            details.image_output_tokens,
            m.image_output.unwrap_or(chosen.rates.output),
        )?;
        let r = &self.dims.requests;
        let per = |n: u64, price: Option<Usd>, notes: &mut Vec<&'static str>| {
            if n == 0 {
                return Ok(Usd::ZERO);
            }
            match price {
                None => {
                    if !notes.contains(&NOTE_REQUEST_CHARGE_UNKNOWN) {
                        notes.push(NOTE_REQUEST_CHARGE_UNKNOWN);
                    }
                    Ok(Usd::ZERO)
                }
                Some(p) => p
                    .picos()
                    .checked_mul(u128::from(n))
                    .map(Usd::from_picos)
                    .ok_or_else(overflow),
            }
        };
        let search_price = r.web_search.map(|w| match search.unwrap_or_default() {
            SearchContextSize::Low => w.low,
            SearchContextSize::Medium => w.medium,
            SearchContextSize::High => w.high,
        });
        b.web_search = per(details.web_search_queries, search_price, &mut chosen.notes)?;
        b.code_interpreter = per(
            details.code_interpreter_sessions,
            r.code_interpreter_session,
            &mut chosen.notes,
        )?;
        b.file_search = per(
            details.file_search_calls,
            r.file_search_call,
            &mut chosen.notes,
        )?;
        let u = &self.dims.units;
        // A token-priced model that reported tokens (gpt-image-1's images, gpt-4o-transcribe's
        // audio seconds) bills its units through them, as the provider does: the units are
        // recorded, not charged a second time.
        let in_tokens = (usage.input_tokens > 0 || usage.output_tokens > 0)
            && (self.rates.input > 0 || self.rates.output > 0);
        let unit = |n: u64, price: Option<Usd>, per: u128, notes: &mut Vec<&'static str>| {
            if n == 0 || in_tokens {
                return Ok(Usd::ZERO);
            }
            let Some(p) = price else {
                if !notes.contains(&NOTE_UNIT_PRICE_UNKNOWN) {
                    notes.push(NOTE_UNIT_PRICE_UNKNOWN);
                }
                return Ok(Usd::ZERO);
            };
            let x = p.picos().checked_mul(u128::from(n)).ok_or_else(overflow)?;
            Ok(Usd::from_picos(div_half_even(x, per)))
        };
        let unit_only = !u.is_empty() && self.rates.input == 0 && self.rates.output == 0;
        if unit_only
            && details.images == 0
            && details.input_characters == 0
            && details.input_audio_ms == 0
            && details.output_audio_ms == 0
        {
            chosen.notes.push(NOTE_UNIT_COUNTS_MISSING);
        }
        b.images = unit(details.images, u.image, 1, &mut chosen.notes)?;
        b.characters = unit(
            details.input_characters,
            u.input_character,
            1,
            &mut chosen.notes,
        )?;
        b.audio_seconds = unit(
            details.input_audio_ms,
            u.input_second,
            1000,
            &mut chosen.notes,
        )?
        .checked_add(unit(
            details.output_audio_ms,
            u.output_second,
            1000,
            &mut chosen.notes,
        )?)
        .ok_or_else(overflow)?;
        b.total = [
            b.images,
            b.characters,
            b.audio_seconds,
            b.audio_input,
            b.cached_audio,
            b.image_input,
            b.video_input,
            b.audio_output,
            b.image_output,
            b.web_search,
            b.code_interpreter,
            b.file_search,
        ]
        .into_iter()
        .try_fold(b.total, Usd::checked_add)
        .ok_or_else(overflow)?;
        Ok((b, note))
    }
}

/// `rate` scaled by `by / of` (a discount or a tier's ratio to the base rate), rounded down;
/// `None` when `of` is 0 or the result does not fit.
pub(crate) fn scaled(rate: u64, by: u64, of: u64) -> Option<u64> {
    if of == 0 {
        return None;
    }
    u64::try_from(u128::from(rate) * u128::from(by) / u128::from(of)).ok()
}

/// `x / d` rounded to the nearest integer, halves to even (`d > 0`).
fn div_half_even(x: u128, d: u128) -> u128 {
    let (q, r) = (x / d, x % d);
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q % 2),
    }
}
