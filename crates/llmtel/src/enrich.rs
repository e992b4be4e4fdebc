//! Pricing a call from what its span recorded, and the attributes llmtel adds.
//!
//! The same code prices a call in two places: in [`crate::GenAiExporter`], on the export
//! thread, from the span's exported attributes (this is what puts the cost on the span, off
//! the request path), and in [`crate::LlmLayer`], in process, for the sinks that need the
//! cost while the request runs (summaries, console, budgets).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use tracing::dispatcher::{Dispatch, WeakDispatch};

use llmtel_pricing::{Call, Catalog, PricingError, SearchContextSize, Usage, Usd};
use llmtel_semconv::{gen_ai, llmtel as lt, openinference as oi};
use opentelemetry::KeyValue;

use crate::call::{Cost, CostSource};
use crate::fields::{Count, SpanFields, provider_from_system};
use crate::health::{COUNTERS, inc};

/// The outcome of pricing one call.
#[derive(Debug, Default)]
pub(crate) struct Priced {
    pub(crate) usage: Usage,
    pub(crate) cost: Option<Cost>,
    pub(crate) unknown_model: bool,
    pub(crate) usage_error: Option<String>,
}

/// Prices calls with a catalog; warns once per unknown model per process.
#[derive(Clone, Debug)]
pub(crate) struct Pricer {
    catalog: Arc<Catalog>,
    count: bool,
}

fn warned_models() -> &'static Mutex<HashSet<String>> {
    static WARNED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    WARNED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// The application's dispatcher, for what llmtel's export threads tell it: they run under a
/// subscriber that records nothing (their own HTTP and gRPC calls must not become spans of
/// the pipeline that exports them), so a warning raised there (an unknown model, priced on
/// the export stage) went nowhere, and, its model marked as warned, was never given again.
/// Set by the builder's layer when it is registered with the application's subscriber, or
/// taken from the default dispatcher when an [`crate::ExportQueue`] is spawned under one.
#[derive(Clone, Debug, Default)]
pub(crate) struct WarnTo(Arc<Mutex<Option<WeakDispatch>>>);

thread_local! {
    /// This thread's [`WarnTo`] (llmtel's export threads).
    static WARN_TO: std::cell::RefCell<Option<WarnTo>> = const { std::cell::RefCell::new(None) };
}

impl WarnTo {
    /// Warnings go to `dispatch` (replacing one taken from a default dispatcher earlier).
    pub(crate) fn set(&self, dispatch: WeakDispatch) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(dispatch);
    }

    /// Warnings go to this thread's default dispatcher now, if it records anything.
    pub(crate) fn from_default() -> Self {
        let to = WarnTo::default();
        if let Some(d) = listening_default() {
            to.set(d.downgrade());
        }
        to
    }

    /// Makes this the current thread's (an export thread, as it starts).
    pub(crate) fn install(&self) {
        WARN_TO.with(|w| *w.borrow_mut() = Some(self.clone()));
    }

    fn dispatch(&self) -> Option<Dispatch> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(WeakDispatch::upgrade)
    }
}

/// This thread's default dispatcher, unless it records nothing (none set, or an export
/// thread's `NoSubscriber`).
fn listening_default() -> Option<Dispatch> {
    tracing::dispatcher::get_default(|d| {
        (!d.is::<tracing::subscriber::NoSubscriber>()).then(|| d.clone())
    })
}

/// Where a warning raised on this thread reaches the application: its default dispatcher, or,
/// on an export thread, the application's ([`WarnTo`]); `None` when nobody would read it.
fn warnings_dispatch() -> Option<Dispatch> {
    listening_default().or_else(|| WARN_TO.with(|w| w.borrow().as_ref().and_then(WarnTo::dispatch)))
}

/// The most tokens one call can plausibly report: 10^10, a thousand times the largest
/// context window. A count past it (a provider or instrumentation bug, a hostile proxy) is
/// a usage error, not a price: an 18-quintillion-token call would otherwise cost trillions
/// of dollars and exhaust every budget it is charged to.
pub const MAX_TOKENS_PER_CALL: u64 = 10_000_000_000;

impl Pricer {
    pub(crate) fn new(catalog: Arc<Catalog>, count: bool) -> Self {
        Pricer { catalog, count }
    }

    pub(crate) fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub(crate) fn with_catalog(mut self, catalog: Arc<Catalog>) -> Self {
        self.catalog = catalog;
        self
    }

    pub(crate) fn counting(mut self, count: bool) -> Self {
        self.count = count;
        self
    }

    /// Prices the call `f` describes, started at `started_at` (the price in force that day).
    pub(crate) fn price(&self, f: &SpanFields, started_at: SystemTime) -> Priced {
        let mut out = Priced::default();
        let malformed = [
            (gen_ai::USAGE_INPUT_TOKENS, &f.input),
            (gen_ai::USAGE_OUTPUT_TOKENS, &f.output),
            (gen_ai::USAGE_CACHE_READ_INPUT_TOKENS, &f.cache_read),
            (gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS, &f.cache_write),
            (gen_ai::USAGE_REASONING_OUTPUT_TOKENS, &f.reasoning),
        ]
        .into_iter()
        .find_map(|(name, c)| match c {
            Count::Malformed(v) => Some(format!(
                "{name} = {v:?} is not a token count (a non-negative integer); the call is not \
                 priced. Record usage with llmtel::record_usage"
            )),
            Count::Value(v) if *v > MAX_TOKENS_PER_CALL => Some(format!(
                "{name} = {v} is more tokens than any model reads or writes in one call \
                 (llmtel's limit is {MAX_TOKENS_PER_CALL}); the call is not priced. Check the \
                 response or the code that recorded it"
            )),
            _ => None,
        });
        // A count past the limit is left out (0) like a malformed one: budgets, metrics and
        // summaries never add a bogus 18-quintillion-token call.
        let get = |c: &Count| match c.get() {
            v if v > MAX_TOKENS_PER_CALL => 0,
            v => v,
        };
        out.usage = Usage {
            input_tokens: get(&f.input),
            output_tokens: get(&f.output),
            cache_read_tokens: get(&f.cache_read),
            cache_write_tokens: get(&f.cache_write),
            reasoning_tokens: get(&f.reasoning),
        };
        let provider = f
            .provider
            .as_deref()
            .or(f.system.as_deref().map(provider_from_system));

        let mut catalog_cost = None;
        if malformed.is_none() && f.has_usage() {
            // Priced by the call's start instant (off-peak windows), the service tier the
            // response reports, and its modality, tool and per-unit counts.
            let mut call = Call::at(
                jiff::Timestamp::try_from(started_at).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            )
            .with_details(f.details);
            if let Some(tier) = f.service_tier.as_deref() {
                call = call.with_service_tier(tier);
            }
            if let Some(size) = f
                .search_context_size
                .as_deref()
                .and_then(SearchContextSize::parse)
            {
                call = call.with_search_context_size(size);
            }
            let mut first_unknown = None;
            let models = [f.response_model.as_deref(), f.request_model.as_deref()];
            for model in models.into_iter().flatten() {
                // `Catalog::price_call` computes name suggestions (an edit distance per
                // catalog name) for an unknown model: on every call, for a name the client
                // may choose. Suggest only in the warning.
                let Some(priced) = self
                    .catalog
                    .price_call_if_known(model, provider, &out.usage, &call)
                else {
                    first_unknown.get_or_insert(model);
                    continue;
                };
                match priced {
                    Ok(p) => {
                        // A price of nothing the call used (a non-streamed gpt-4o-mini-tts
                        // answer gives only the characters sent, which that model has no
                        // price for): its cost is unknown, not $0.
                        if let Some(why) = NothingPriced::of(&out.usage, &p) {
                            out.usage_error = Some(why.note(model));
                        } else {
                            catalog_cost = Some(p);
                        }
                        break;
                    }
                    Err(PricingError::UnknownModel { .. }) => {
                        first_unknown.get_or_insert(model);
                    }
                    Err(e @ PricingError::Overflow(_)) => {
                        out.usage_error = Some(e.to_string());
                        break;
                    }
                }
            }
            if catalog_cost.is_none() && out.usage_error.is_none() {
                if let Some(model) = first_unknown {
                    out.unknown_model = true;
                    self.warn_unknown(model);
                }
            }
        }
        if malformed.is_some() {
            out.usage_error = malformed;
        }

        let estimated = f.estimated.unwrap_or(false);
        let reported = f
            .reported_cost
            .filter(|v| v.is_finite() && *v >= 0.0)
            .and_then(Usd::from_f64);
        out.cost = match (reported, catalog_cost) {
            // Priced upstream by llmtel (an in-process exporter, a collector before this
            // one): its catalog's price stands, source and provenance as it wrote them; this
            // catalog's price goes next to it where the two differ (any sender can say
            // "catalog").
            (Some(total), computed)
                if f.cost_source.as_deref() == Some(CostSource::Catalog.as_str()) =>
            {
                Some(Cost {
                    total,
                    breakdown: None,
                    source: CostSource::Catalog,
                    estimated,
                    computed_total: computed.map(|p| p.breakdown.total),
                    pricing: None,
                })
            }
            (Some(total), computed) => Some(Cost {
                total,
                breakdown: None,
                source: match f.cost_source.as_deref() {
                    Some("provider") => CostSource::Provider,
                    _ => CostSource::App,
                },
                estimated,
                computed_total: computed.as_ref().map(|p| p.breakdown.total),
                pricing: computed,
            }),
            (None, Some(p)) => Some(Cost {
                total: p.breakdown.total,
                breakdown: Some(p.breakdown),
                source: CostSource::Catalog,
                estimated,
                pricing: Some(p),
                computed_total: None,
            }),
            (None, None) => None,
        };
        if self.count {
            if out.cost.is_some() {
                inc(&COUNTERS.priced_calls);
            }
            if out.unknown_model {
                inc(&COUNTERS.unknown_model_calls);
            }
            if out.usage_error.is_some() {
                inc(&COUNTERS.malformed_usage);
            }
        }
        out
    }

    #[cold]
    fn warn_unknown(&self, model: &str) {
        // Nobody to tell on this thread (an export thread before the application's subscriber
        // was registered, or after it was dropped): the model is not marked as warned, so a
        // later call of it warns where someone reads it.
        let Some(dispatch) = warnings_dispatch() else {
            return;
        };
        // The name can come from a request: capped before it is kept, redacted before it is
        // logged.
        let model = crate::bound::cap_value(model);
        let mut seen = warned_models().lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: past 1,000 distinct unknown names, stop remembering (and warning).
        if seen.len() < 1000 && seen.insert(model.clone().into_owned()) {
            drop(seen);
            // Suggestions cost an edit distance per catalog name: only for names a catalog
            // name could be near (a long, client-chosen name would hold the thread).
            let nearest = if model.len() <= MAX_SUGGEST_BYTES {
                self.catalog.suggest(&model, 3).join(", ")
            } else {
                "none (the name is too long to be a typo of one)".to_owned()
            };
            let model = crate::redact::redact(&model);
            tracing::dispatcher::with_default(&dispatch, || {
                tracing::warn!(
                    target: "llmtel",
                    model = %model,
                    nearest = %nearest,
                    "llmtel: no price for model `{model}`; its calls get no cost \
                     (llmtel.cost.unknown_model = true). Nearest known: {nearest}. Add it \
                     with a price file or Catalog::insert."
                );
            });
        }
    }
}

/// The longest unknown model name for which the warning suggests catalog names.
const MAX_SUGGEST_BYTES: usize = 64;

/// The attributes written on an LLM-call span.
///
/// - Cost known: `gen_ai.usage.cost` (unless the app or provider recorded it itself),
///   `llmtel.cost.source`, `llmtel.cost.currency`, `llmtel.cost.estimated`, the breakdown
///   `llmtel.cost.*` when the catalog computed it, and the provenance `llmtel.pricing.*`.
/// - Unknown model: `llmtel.cost.unknown_model = true` and no cost attribute.
/// - Malformed usage: `llmtel.usage.note` says what was wrong.
/// - With `openinference`: the OpenInference aliases Phoenix reads.
pub(crate) fn attributes(f: &SpanFields, p: &Priced, openinference: bool) -> Vec<KeyValue> {
    let mut kv = Vec::with_capacity(if openinference { 32 } else { 16 });
    if let Some(cost) = &p.cost {
        if cost.source == CostSource::Catalog {
            kv.push(KeyValue::new(gen_ai::USAGE_COST, cost.total.as_f64()));
            if let Some(computed) = cost.computed_total.filter(|c| *c != cost.total) {
                kv.push(KeyValue::new("llmtel.cost.computed", computed.as_f64()));
            }
        } else if let Some(computed) = cost.computed_total {
            kv.push(KeyValue::new("llmtel.cost.computed", computed.as_f64()));
        }
        kv.push(KeyValue::new(lt::COST_SOURCE, cost.source.as_str()));
        kv.push(KeyValue::new(lt::COST_CURRENCY, "USD"));
        kv.push(KeyValue::new(lt::COST_ESTIMATED, cost.estimated));
        if let Some(b) = &cost.breakdown {
            kv.push(KeyValue::new(lt::COST_INPUT, b.input.as_f64()));
            kv.push(KeyValue::new(lt::COST_OUTPUT, b.output.as_f64()));
            kv.push(KeyValue::new(lt::COST_CACHE_READ, b.cache_read.as_f64()));
            kv.push(KeyValue::new(lt::COST_CACHE_WRITE, b.cache_write.as_f64()));
            kv.push(KeyValue::new(lt::COST_REASONING, b.reasoning.as_f64()));
            // The price dimensions a call used: only the parts that cost something.
            for (name, part) in [
                (lt::COST_AUDIO_INPUT, b.audio_input),
                (lt::COST_CACHED_AUDIO, b.cached_audio),
                (lt::COST_IMAGE_INPUT, b.image_input),
                (lt::COST_VIDEO_INPUT, b.video_input),
                (lt::COST_AUDIO_OUTPUT, b.audio_output),
                (lt::COST_IMAGE_OUTPUT, b.image_output),
                (lt::COST_WEB_SEARCH, b.web_search),
                (lt::COST_CODE_INTERPRETER, b.code_interpreter),
                (lt::COST_FILE_SEARCH, b.file_search),
                (lt::COST_IMAGES, b.images),
                (lt::COST_CHARACTERS, b.characters),
                (lt::COST_AUDIO_SECONDS, b.audio_seconds),
            ] {
                if part != Usd::ZERO {
                    kv.push(KeyValue::new(name, part.as_f64()));
                }
            }
        }
        if let Some(info) = &cost.pricing {
            kv.push(KeyValue::new(lt::PRICING_MODEL, info.model.clone()));
            kv.push(KeyValue::new(lt::PRICING_PROVIDER, info.provider.clone()));
            kv.push(KeyValue::new(lt::PRICING_DATE, iso_date(info.price_date)));
            kv.push(KeyValue::new(lt::PRICING_MATCH, info.matched.as_str()));
            if let Some(t) = info.tier_above_input_tokens {
                kv.push(KeyValue::new(lt::PRICING_TIER, clamp_i64(t)));
            }
            if let Some(note) = info.usage_note {
                kv.push(KeyValue::new(lt::USAGE_NOTE, note));
            }
            if let Some(tier) = &info.service_tier {
                kv.push(KeyValue::new(lt::PRICING_SERVICE_TIER, tier.clone()));
            }
            if info.off_peak {
                kv.push(KeyValue::new(lt::PRICING_OFF_PEAK, true));
            }
            if !info.notes.is_empty() {
                kv.push(KeyValue::new(lt::COST_NOTES, info.notes.join("; ")));
            }
        }
    }
    if p.unknown_model {
        kv.push(KeyValue::new(lt::COST_UNKNOWN_MODEL, true));
    }
    if let Some(err) = &p.usage_error {
        kv.push(KeyValue::new(lt::USAGE_NOTE, err.clone()));
    }
    if openinference {
        openinference_aliases(f, p, &mut kv);
    }
    kv
}

/// Why a catalog price priced nothing the call used, so that its zero total is not a cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NothingPriced {
    /// A model priced per unit that the call reported none of
    /// ([`llmtel_pricing::NOTE_UNIT_COUNTS_MISSING`]).
    NoUnits,
    /// No token counted, and every unit the call reported without a price
    /// ([`llmtel_pricing::NOTE_UNIT_PRICE_UNKNOWN`]).
    UnpricedUnits,
}

impl NothingPriced {
    /// The reason, if the price `p` of a call with `usage` priced nothing it used.
    fn of(usage: &Usage, p: &llmtel_pricing::PricedCall) -> Option<Self> {
        if p.breakdown.total != Usd::ZERO {
            return None;
        }
        if p.notes.contains(&llmtel_pricing::NOTE_UNIT_COUNTS_MISSING) {
            return Some(NothingPriced::NoUnits);
        }
        (*usage == Usage::default() && p.notes.contains(&llmtel_pricing::NOTE_UNIT_PRICE_UNKNOWN))
            .then_some(NothingPriced::UnpricedUnits)
    }

    /// The call's usage note: the model, why, and what to record.
    fn note(self, model: &str) -> String {
        let (why, fix) = match self {
            NothingPriced::NoUnits => (
                "is priced per unit (characters, audio time, images) and the call reported none",
                "Record the units it bills (llmtel.usage.input_characters, \
                 llmtel.usage.input_audio_ms, llmtel.usage.images), or give its tokens a price \
                 in a price file",
            ),
            NothingPriced::UnpricedUnits => (
                "has no catalog price for the units the call reported, and the call reported \
                 no tokens",
                "Record its token usage (gen_ai.usage.*; for OpenAI speech, request \
                 `stream_format: \"sse\"`, whose last event reports the tokens), or give the \
                 unit a price in a price file",
            ),
        };
        format!("{model} {why}: the call is not priced (its cost is unknown, not $0). {fix}")
    }
}

/// `YYYY-MM-DD`, as `Date`'s `Display` writes it, without the formatting machinery (this
/// runs once per priced span).
fn iso_date(d: jiff::civil::Date) -> String {
    let (Ok(year), Ok(month), Ok(day)) = (
        u16::try_from(d.year()),
        u16::try_from(d.month()),
        u16::try_from(d.day()),
    ) else {
        return d.to_string();
    };
    if year > 9999 {
        return d.to_string();
    }
    let mut s = String::with_capacity(10);
    for (n, width) in [(year, 4), (month, 2), (day, 2)] {
        if width == 2 {
            s.push('-');
        }
        for p in (0..width).rev() {
            s.push(char::from(b'0' + ((n / 10u16.pow(p)) % 10) as u8));
        }
    }
    s
}

fn openinference_aliases(f: &SpanFields, p: &Priced, kv: &mut Vec<KeyValue>) {
    let kind = if f.operation.as_deref() == Some(llmtel_semconv::operation::EMBEDDINGS) {
        "EMBEDDING"
    } else {
        "LLM"
    };
    kv.push(KeyValue::new(oi::SPAN_KIND, kind));
    if let Some(m) = f.response_model.as_ref().or(f.request_model.as_ref()) {
        kv.push(KeyValue::new(oi::LLM_MODEL_NAME, m.clone()));
    }
    if let Some(provider) = f
        .provider
        .as_deref()
        .or(f.system.as_deref().map(provider_from_system))
    {
        kv.push(KeyValue::new(oi::LLM_PROVIDER, provider.to_owned()));
    }
    if f.has_usage() {
        let u = &p.usage;
        kv.push(KeyValue::new(
            oi::TOKEN_COUNT_PROMPT,
            clamp_i64(u.input_tokens),
        ));
        kv.push(KeyValue::new(
            oi::TOKEN_COUNT_COMPLETION,
            clamp_i64(u.output_tokens),
        ));
        kv.push(KeyValue::new(
            oi::TOKEN_COUNT_TOTAL,
            clamp_i64(u.input_tokens.saturating_add(u.output_tokens)),
        ));
        for (key, n) in [
            (oi::TOKEN_COUNT_PROMPT_CACHE_READ, u.cache_read_tokens),
            (oi::TOKEN_COUNT_PROMPT_CACHE_WRITE, u.cache_write_tokens),
            (oi::TOKEN_COUNT_COMPLETION_REASONING, u.reasoning_tokens),
        ] {
            if n > 0 {
                kv.push(KeyValue::new(key, clamp_i64(n)));
            }
        }
    }
    if let Some(cost) = &p.cost {
        kv.push(KeyValue::new(oi::COST_TOTAL, cost.total.as_f64()));
        if let Some(b) = &cost.breakdown {
            let prompt = b
                .input
                .saturating_add(b.cache_read)
                .saturating_add(b.cache_write);
            let completion = b.output.saturating_add(b.reasoning);
            kv.push(KeyValue::new(oi::COST_PROMPT, prompt.as_f64()));
            kv.push(KeyValue::new(oi::COST_COMPLETION, completion.as_f64()));
            kv.push(KeyValue::new(oi::COST_PROMPT_INPUT, b.input.as_f64()));
            kv.push(KeyValue::new(
                oi::COST_PROMPT_CACHE_READ,
                b.cache_read.as_f64(),
            ));
            kv.push(KeyValue::new(
                oi::COST_PROMPT_CACHE_WRITE,
                b.cache_write.as_f64(),
            ));
            kv.push(KeyValue::new(oi::COST_COMPLETION_OUTPUT, b.output.as_f64()));
            kv.push(KeyValue::new(
                oi::COST_COMPLETION_REASONING,
                b.reasoning.as_f64(),
            ));
        }
    }
}

pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_written_as_their_display_writes_them() {
        for d in [
            jiff::civil::date(2026, 12, 3),
            jiff::civil::date(2024, 1, 31),
            jiff::civil::date(999, 9, 9),
            jiff::civil::date(9999, 12, 31),
            jiff::civil::date(-5, 1, 1),
        ] {
            assert_eq!(super::iso_date(d), d.to_string());
        }
    }
}
