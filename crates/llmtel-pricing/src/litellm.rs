//! Loading LiteLLM's `model_prices_and_context_window.json` as is.
//!
//! LiteLLM (MIT licensed) publishes per-token prices for thousands of models in one JSON
//! object keyed by model name. [`Catalog::from_litellm_json`] reads it without any
//! preprocessing; see [`Catalog::import_litellm_json`] for the fields honoured.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde_json::{Map, Value};

use crate::catalog::{
    MAX_TIERS_PER_PRICE, ModelEntry, ModelKind, NO_OFF_PEAK_WINDOW, Price, TOO_MANY_TIERS_FIX,
    TOO_MANY_WINDOWS_FIX, Tier, WEEKDAY_TIMEZONE_FIX, WindowPart, off_peak_window, too_many_tiers,
    too_many_windows, weekday_set, weekday_time_zone,
};
use crate::dims::{
    Dimensions, MAX_OFF_PEAK_WINDOWS, ModalityRates, OffPeak, ServiceTierRates, UnitPrices,
    WebSearchPrice, Weekdays,
};
use crate::usage::rate_per_token_f64;
use crate::{Catalog, CatalogError, Rates, Usd};

/// The `effective` date given to prices read from LiteLLM's file, which carries no dates:
/// 1970-01-01, so the price applies to calls of any date.
pub const LITELLM_EFFECTIVE: Date = jiff::civil::date(1970, 1, 1);

/// Why an entry of LiteLLM's file was not loaded (never an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The `sample_spec` entry documenting the format.
    SampleSpec,
    /// A `mode` llmtel does not price (video generation, rerank, search, ...).
    OtherMode,
    /// No per-token input price (`input_cost_per_token` or a `tiered_pricing` table with
    /// one) and no per-unit price llmtel reads: priced per pixel, query or request.
    NotTokenPriced,
}

impl SkipReason {
    /// `sample_spec`, `other_mode`, `not_token_priced`.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::SampleSpec => "sample_spec",
            SkipReason::OtherMode => "other_mode",
            SkipReason::NotTokenPriced => "not_token_priced",
        }
    }
}

/// The result of [`Catalog::import_litellm_json`]: the catalog and the entries skipped.
#[derive(Debug, Clone)]
pub struct LiteLlmImport {
    /// The token-priced entries.
    pub catalog: Catalog,
    /// Entries not loaded, with the reason, in key order.
    pub skipped: Vec<(String, SkipReason)>,
}

/// The `gen_ai.provider.name` value for a LiteLLM `litellm_provider`.
///
/// Well-known OpenTelemetry values where one exists (`openai`, `anthropic`, `gcp.gemini`,
/// `gcp.vertex_ai`, `aws.bedrock`, `azure.ai.openai`, `azure.ai.inference`, `mistral_ai`,
/// `cohere`, `deepseek`, `x_ai`, `groq`, `perplexity`, `ibm.watsonx.ai`), `together` and
/// `fireworks` for Together AI and Fireworks AI, else LiteLLM's name.
///
/// ```
/// use llmtel_pricing::provider_from_litellm;
/// assert_eq!(provider_from_litellm("vertex_ai-anthropic_models"), "gcp.vertex_ai");
/// assert_eq!(provider_from_litellm("bedrock_converse"), "aws.bedrock");
/// assert_eq!(provider_from_litellm("nebius"), "nebius");
/// ```
pub fn provider_from_litellm(litellm_provider: &str) -> &str {
    let p = litellm_provider;
    match p {
        "openai" | "text-completion-openai" | "chatgpt" => "openai",
        "anthropic" => "anthropic",
        "gemini" => "gcp.gemini",
        "bedrock" | "bedrock_converse" | "bedrock_mantle" | "amazon_nova" => "aws.bedrock",
        "azure" | "azure_text" => "azure.ai.openai",
        "azure_ai" => "azure.ai.inference",
        "mistral" | "codestral" | "text-completion-codestral" => "mistral_ai",
        "cohere" | "cohere_chat" => "cohere",
        "deepseek" => "deepseek",
        "xai" => "x_ai",
        "groq" => "groq",
        "perplexity" => "perplexity",
        "watsonx" => "ibm.watsonx.ai",
        "together_ai" => "together",
        "fireworks_ai" | "fireworks_ai-embedding-models" => "fireworks",
        _ if p == "vertex_ai" || p.starts_with("vertex_ai-") => "gcp.vertex_ai",
        _ => p,
    }
}

/// Token-price field prefixes that carry `_above_<N>[k]_tokens` long-context tiers.
const TIERED_FIELDS: [&str; 4] = [
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
];

impl Catalog {
    /// Parses LiteLLM's `model_prices_and_context_window.json` as is (the `litellm` wheel
    /// carries it as `model_prices_and_context_window_backup.json`); entries that are
    /// not token-priced are skipped. See [`Catalog::import_litellm_json`].
    ///
    /// ```
    /// use llmtel_pricing::{Catalog, Usage};
    ///
    /// let json = r#"{"my-model": {"litellm_provider": "openai", "mode": "chat",
    ///     "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05}}"#;
    /// let c = Catalog::from_litellm_json(json, "prices.json").unwrap();
    /// let call = c.price("my-model", None, &Usage::new(1_000_000, 1_000_000),
    ///     jiff::civil::date(2025, 1, 1)).unwrap();
    /// assert_eq!(call.breakdown.total.to_string(), "$12.500000");
    /// ```
    ///
    /// # Errors
    /// As [`Catalog::import_litellm_json`].
    pub fn from_litellm_json(src: &str, origin: &str) -> Result<Catalog, CatalogError> {
        Catalog::import_litellm_json(src, origin).map(|i| i.catalog)
    }

    /// Parses LiteLLM's price JSON and says which entries were skipped.
    ///
    /// Each key becomes a catalog id as is (`gpt-4o`, `azure/gpt-4o`,
    /// `us.anthropic.claude-3-5-sonnet-20241022-v2:0`); `litellm_provider` becomes the
    /// provider ([`provider_from_litellm`]); `mode` the kind (`chat` and `responses` →
    /// chat, `completion`, `embedding`, `moderation`, `image_generation`, `audio_speech`,
    /// `audio_transcription`; an entry without `mode` is chat). Loaded: every entry of
    /// those modes with `input_cost_per_token` or a `tiered_pricing` table of per-token
    /// rates, and image/speech/transcription entries with a per-unit price (see
    /// [`UnitPrices`](crate::UnitPrices)). Skipped, never an error: `sample_spec`, other
    /// modes (video, rerank, search, ...), entries priced otherwise (per pixel, per query).
    /// Also read: service tiers, modality rates, `off_peak_pricing` and per-request
    /// charges ([`Dimensions`](crate::Dimensions)).
    ///
    /// Fields honoured, as LiteLLM's own cost calculator applies them:
    /// - `input_cost_per_token`, `output_cost_per_token` (absent output = 0),
    ///   `cache_read_input_token_cost`, `cache_creation_input_token_cost` (absent = the
    ///   input rate), `output_cost_per_reasoning_token` (absent = the output rate),
    ///   `cache_creation_input_token_cost_above_1hr` (→ `cache_write_1h`),
    ///   `input_cost_per_token_batches` / `output_cost_per_token_batches` (→ batch),
    ///   `cache_read_input_token_cost_batches` / `cache_creation_input_token_cost_batches`
    ///   (→ `batch_cache_read` / `batch_cache_write`), the
    ///   modality rates' `_batches` variants (`input_cost_per_audio_token_batches`,
    ///   `output_cost_per_image_token_batches`, ... → `batch_modality`).
    /// - `<field>_above_<N>k_tokens` / `<field>_above_<N>_tokens` for input, output, cache
    ///   read and cache creation: a tier above N×1000 (or N) prompt tokens that prices the
    ///   whole request; a rate a tier does not list carries over from the tier below,
    ///   and an `output_cost_per_reasoning_token` keeps its ratio to the output rate (so do
    ///   a service tier's own `_above_<N>k_tokens_<tier>` tiers).
    /// - `tiered_pricing: [{"range": [start, end], "input_cost_per_token": ..,
    ///   "output_cost_per_token": .., "cache_read_input_token_cost": ..,
    ///   "cache_creation_input_token_cost": .., "output_cost_per_reasoning_token": ..}]`:
    ///   the lowest range is the base price, each other range a tier above its `start`
    ///   (LiteLLM: `start < prompt <= end`, whole request at that tier). Rates a tier
    ///   omits: cache rates = the tier's input rate, output = the model's
    ///   `output_cost_per_token`, reasoning = the tier's output rate.
    /// - `max_input_tokens` (else `max_tokens`) → `context_window`, `max_output_tokens`.
    ///
    /// A leading UTF-8 byte order mark is skipped. Prices are USD per token as JSON numbers
    /// (`2.5e-06`); each is read through its
    /// shortest decimal form and rounded to the pico-dollar, halves to even
    /// ([`rate_per_token_f64`](crate::rate_per_token_f64)). Every price is in force from
    /// [`LITELLM_EFFECTIVE`] (the file has no dates).
    ///
    /// # Errors
    /// [`CatalogError::Invalid`] naming the origin, line, entry and field when the text
    /// is not a JSON object of objects, a price field honoured above is not a number
    /// or is negative, `tiered_pricing` is not a list of tiers (a tier priced per token
    /// without a whole-number start of `range`, or starting where another does:
    /// `tiered_pricing[1].range`), or `off_peak_pricing` is malformed (its
    /// `weekday_timezone` a zone this build cannot count weekdays in). Nothing is returned
    /// half-loaded.
    pub fn import_litellm_json(src: &str, origin: &str) -> Result<LiteLlmImport, CatalogError> {
        // A UTF-8 byte order mark (editors on Windows write one), as `looks_like_json`
        // skips it: JSON has none.
        let src = src.strip_prefix('\u{feff}').unwrap_or(src);
        let ctx = JsonCtx { src, origin };
        let root: Map<String, Value> = serde_json::from_str(src).map_err(|e| {
            ctx.invalid(
                u32::try_from(e.line()).ok().filter(|l| *l > 0),
                None,
                None,
                format!("not a LiteLLM price file: {e}"),
                "a LiteLLM price file is one JSON object mapping model names to objects with `input_cost_per_token`, `output_cost_per_token`, ...",
            )
        })?;
        let mut entries = BTreeMap::new();
        let mut skipped = Vec::new();
        for (key, value) in &root {
            match ctx.entry(key, value)? {
                Ok(entry) => {
                    entries.insert(entry.id.clone(), entry);
                }
                Err(reason) => skipped.push((key.clone(), reason)),
            }
        }
        Ok(LiteLlmImport {
            catalog: Catalog::from_entries(entries),
            skipped,
        })
    }
}

struct JsonCtx<'a> {
    src: &'a str,
    origin: &'a str,
}

impl JsonCtx<'_> {
    fn invalid(
        &self,
        line: Option<u32>,
        entry: Option<&str>,
        field: Option<&str>,
        problem: String,
        fix: &'static str,
    ) -> CatalogError {
        CatalogError::invalid(self.origin, line, entry, field, problem, fix)
    }

    /// 1-based line of `"key":` in the source, then of `"field":` after it (best effort:
    /// the JSON parser keeps no positions).
    fn line_of(&self, key: &str, field: Option<&str>) -> Option<u32> {
        let quoted = serde_json::to_string(key).ok()?;
        let mut at = find_key(self.src, &quoted, 0)?;
        if let Some(field) = field {
            let quoted = serde_json::to_string(field).ok()?;
            at = find_key(self.src, &quoted, at).unwrap_or(at);
        }
        let n = self.src.as_bytes()[..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        u32::try_from(n + 1).ok()
    }

    /// One entry: `Ok(Ok(entry))`, `Ok(Err(skip reason))`, or a hard error.
    fn entry(
        &self,
        key: &str,
        value: &Value,
    ) -> Result<Result<ModelEntry, SkipReason>, CatalogError> {
        if key == "sample_spec" {
            return Ok(Err(SkipReason::SampleSpec));
        }
        let Some(obj) = value.as_object() else {
            return Err(self.invalid(
                self.line_of(key, None),
                Some(key),
                None,
                format!("expected an object, found {}", type_name(value)),
                "each model maps to an object of prices and limits",
            ));
        };
        let kind = match obj.get("mode").and_then(Value::as_str) {
            None | Some("chat" | "responses") => ModelKind::Chat,
            Some("completion") => ModelKind::Completion,
            Some("embedding") => ModelKind::Embedding,
            Some("moderation") => ModelKind::Moderation,
            Some("image_generation") => ModelKind::ImageGeneration,
            Some("audio_speech") => ModelKind::Speech,
            Some("audio_transcription") => ModelKind::Transcription,
            Some(_) => return Ok(Err(SkipReason::OtherMode)),
        };
        if key.trim().is_empty() || key.chars().any(char::is_whitespace) {
            return Err(self.invalid(
                self.line_of(key, None),
                Some(key),
                None,
                format!("invalid model name {key:?}"),
                "use the model name as the provider spells it, without spaces",
            ));
        }
        let rate = |field: &str| self.rate(key, obj, field);
        let tiered = self.tiered_pricing(key, obj)?;
        let input = rate("input_cost_per_token")?;
        let units = self.units(key, obj, kind)?;
        if tiered.is_none() && input.is_none() && units.is_empty() {
            return Ok(Err(SkipReason::NotTokenPriced));
        }
        let mut model_output = rate("output_cost_per_token")?;
        if kind == ModelKind::ImageGeneration && model_output.is_none() {
            // gpt-image-1: the output tokens are image tokens.
            model_output = rate("output_cost_per_image_token")?;
        }
        let (rates, tiers) = match tiered {
            Some(t) => t,
            None => {
                let rates = Rates {
                    input: input.unwrap_or(0),
                    output: model_output.unwrap_or(0),
                    cache_read: rate("cache_read_input_token_cost")?,
                    cache_write: rate("cache_creation_input_token_cost")?,
                    reasoning: rate("output_cost_per_reasoning_token")?,
                };
                let tiers = self.above_tiers(key, obj, &rates)?;
                (rates, tiers)
            }
        };
        let provider = obj
            .get("litellm_provider")
            .and_then(Value::as_str)
            .map_or("litellm", provider_from_litellm)
            .to_string();
        let limit = |field: &str| obj.get(field).and_then(as_token_count);
        Ok(Ok(ModelEntry {
            id: key.to_string(),
            provider,
            kind,
            aliases: Vec::new(),
            context_window: limit("max_input_tokens").or_else(|| limit("max_tokens")),
            max_output_tokens: limit("max_output_tokens"),
            prices: vec![Price {
                effective: LITELLM_EFFECTIVE,
                rates,
                cache_write_1h: rate("cache_creation_input_token_cost_above_1hr")?,
                batch_input: rate("input_cost_per_token_batches")?,
                batch_output: match rate("output_cost_per_token_batches")? {
                    // gpt-image-2: the output tokens are image tokens, their batch rate too.
                    None if kind == ModelKind::ImageGeneration => {
                        rate("output_cost_per_image_token_batches")?
                    }
                    other => other,
                },
                batch_cache_read: rate("cache_read_input_token_cost_batches")?,
                batch_cache_write: rate("cache_creation_input_token_cost_batches")?,
                source: Some(format!(
                    "LiteLLM model_prices_and_context_window.json ({})",
                    self.origin
                )),
                tiers,
                dims: Dimensions {
                    units,
                    ..self.dims(key, obj, &rates)?
                },
            }],
        }))
    }

    /// A per-token price field: absent or `null` = `None`; else a number >= 0.
    fn rate(
        &self,
        key: &str,
        obj: &Map<String, Value>,
        field: &str,
    ) -> Result<Option<u64>, CatalogError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => self.rate_value(key, field, v).map(Some),
        }
    }

    fn rate_value(&self, key: &str, field: &str, v: &Value) -> Result<u64, CatalogError> {
        let fail = |problem: String| {
            self.invalid(
                self.line_of(key, Some(field.rsplit('.').next().unwrap_or(field))),
                Some(key),
                Some(field),
                problem,
                "LiteLLM prices are USD per token as a JSON number >= 0, e.g. 2.5e-06 for $2.50 per million tokens",
            )
        };
        let Some(f) = v.as_f64() else {
            return Err(fail(format!("expected a number, found {}", type_name(v))));
        };
        if f < 0.0 {
            return Err(fail(format!("negative price {f}")));
        }
        if f >= 1.0 {
            return Err(fail(format!(
                "price {f} USD per token is not plausible (a wrong unit: per million tokens?)"
            )));
        }
        rate_per_token_f64(f).ok_or_else(|| fail(format!("invalid price {f}")))
    }

    /// Tiers from `<field>_above_<N>[k]_tokens` keys; rates carry over from the tier below.
    fn above_tiers(
        &self,
        key: &str,
        obj: &Map<String, Value>,
        base: &Rates,
    ) -> Result<Vec<Tier>, CatalogError> {
        self.above_tiers_of(key, obj, base, "")
    }

    /// As [`JsonCtx::above_tiers`], for the fields ending in `suffix` (`_priority`).
    fn above_tiers_of(
        &self,
        key: &str,
        obj: &Map<String, Value>,
        base: &Rates,
        suffix: &str,
    ) -> Result<Vec<Tier>, CatalogError> {
        let mut by_threshold: BTreeMap<u64, [Option<u64>; 4]> = BTreeMap::new();
        for (field, v) in obj {
            let Some(field_base) = field.strip_suffix(suffix) else {
                continue;
            };
            let Some((prefix, rest)) = field_base.rsplit_once("_above_") else {
                continue;
            };
            let Some(slot) = TIERED_FIELDS.iter().position(|p| *p == prefix) else {
                continue;
            };
            let Some(threshold) = parse_threshold(rest) else {
                continue;
            };
            if v.is_null() {
                continue;
            }
            let r = self.rate_value(key, field, v)?;
            by_threshold.entry(threshold).or_default()[slot] = Some(r);
            if by_threshold.len() > MAX_TIERS_PER_PRICE {
                return Err(self.invalid(
                    self.line_of(key, Some(field)),
                    Some(key),
                    Some(field),
                    too_many_tiers(by_threshold.len()),
                    TOO_MANY_TIERS_FIX,
                ));
            }
        }
        let mut tiers = Vec::with_capacity(by_threshold.len());
        let (mut input, mut output) = (base.input, base.output);
        let (mut cache_read, mut cache_write) = (base.cache_read, base.cache_write);
        for (above, [i, o, cr, cw]) in by_threshold {
            input = i.unwrap_or(input);
            output = o.unwrap_or(output);
            cache_read = cr.or(cache_read);
            cache_write = cw.or(cache_write);
            tiers.push(Tier {
                above_input_tokens: above,
                input,
                output,
                cache_read,
                cache_write,
                reasoning: None,
            });
        }
        Ok(tiers)
    }

    /// Base rates and tiers from a `tiered_pricing` table of per-token rates, if any.
    fn tiered_pricing(
        &self,
        key: &str,
        obj: &Map<String, Value>,
    ) -> Result<Option<(Rates, Vec<Tier>)>, CatalogError> {
        // As every price field: a malformed table is an error (the file is rejected whole),
        // never a tier silently left out.
        const FIX: &str = "tiered_pricing is a list of {\"range\": [start, end], \"input_cost_per_token\": .., \"output_cost_per_token\": ..}, start and end in prompt tokens (whole numbers >= 0)";
        let wrong = |field: &str, problem: String| {
            self.invalid(
                self.line_of(key, Some("tiered_pricing")),
                Some(key),
                Some(field),
                problem,
                FIX,
            )
        };
        let table = match obj.get("tiered_pricing") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(table)) => table,
            Some(other) => {
                return Err(wrong(
                    "tiered_pricing",
                    format!("expected a list of tiers, found {}", type_name(other)),
                ));
            }
        };
        let model_output = self.rate(key, obj, "output_cost_per_token")?.unwrap_or(0);
        let mut ranged: Vec<(u64, usize, Rates)> = Vec::new();
        for (i, tier) in table.iter().enumerate() {
            let Some(t) = tier.as_object() else {
                return Err(wrong(
                    &format!("tiered_pricing[{i}]"),
                    format!("expected an object, found {}", type_name(tier)),
                ));
            };
            let field = |name: &str| format!("tiered_pricing[{i}].{name}");
            let get = |name: &str| -> Result<Option<u64>, CatalogError> {
                match t.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => self.rate_value(key, &field(name), v).map(Some),
                }
            };
            let Some(input) = get("input_cost_per_token")? else {
                continue; // not priced per token: e.g. per-query search tiers
            };
            let start = match t.get("range") {
                Some(Value::Array(r)) => r.first().and_then(as_token_count),
                _ => None,
            }
            .ok_or_else(|| {
                let found = t
                    .get("range")
                    .map_or_else(|| "no range".to_string(), |r| format!("range {r}"));
                wrong(
                    &field("range"),
                    format!("{found}: a tier's range is [start, end] with start a whole number of prompt tokens"),
                )
            })?;
            let output = get("output_cost_per_token")?.unwrap_or(model_output);
            ranged.push((
                start,
                i,
                Rates {
                    input,
                    output,
                    cache_read: Some(get("cache_read_input_token_cost")?.unwrap_or(input)),
                    cache_write: Some(get("cache_creation_input_token_cost")?.unwrap_or(input)),
                    reasoning: get("output_cost_per_reasoning_token")?,
                },
            ));
        }
        ranged.sort_by_key(|(start, i, _)| (*start, *i));
        if let Some(w) = ranged.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(wrong(
                &format!("tiered_pricing[{}].range", w[1].1),
                format!(
                    "two tiers start at {} prompt tokens (tiered_pricing[{}] too): one would be left out",
                    w[1].0, w[0].1
                ),
            ));
        }
        // The lowest range is the base price.
        if ranged.len() > MAX_TIERS_PER_PRICE + 1 {
            return Err(self.invalid(
                self.line_of(key, Some("tiered_pricing")),
                Some(key),
                Some("tiered_pricing"),
                too_many_tiers(ranged.len() - 1),
                TOO_MANY_TIERS_FIX,
            ));
        }
        let mut iter = ranged.into_iter();
        let Some((_, _, base)) = iter.next() else {
            return Ok(None);
        };
        let tiers = iter
            .map(|(start, _, r)| Tier {
                above_input_tokens: start,
                input: r.input,
                output: r.output,
                cache_read: r.cache_read,
                cache_write: r.cache_write,
                reasoning: Some(r.reasoning.unwrap_or(r.output)),
            })
            .collect();
        Ok(Some((base, tiers)))
    }
}

/// LiteLLM service-tier field suffixes.
const SERVICE_TIERS: [&str; 2] = ["priority", "flex"];

impl JsonCtx<'_> {
    /// Service tiers, modality rates, off-peak pricing and per-request charges.
    fn dims(
        &self,
        key: &str,
        obj: &Map<String, Value>,
        base: &Rates,
    ) -> Result<Dimensions, CatalogError> {
        let rate = |field: &str| self.rate(key, obj, field);
        // The standard modality rates, or (`_batches`) the batch API's.
        let modality = |suffix: &str| -> Result<ModalityRates, CatalogError> {
            let rate = |field: &str| rate(&format!("{field}{suffix}"));
            Ok(ModalityRates {
                audio_input: rate("input_cost_per_audio_token")?,
                audio_output: rate("output_cost_per_audio_token")?,
                image_input: rate("input_cost_per_image_token")?,
                video_input: rate("input_cost_per_video_token")?,
                cache_read_audio: rate("cache_read_input_audio_token_cost")?,
                cache_read_image: rate("cache_read_input_image_token_cost")?,
                cache_write_audio: rate("cache_creation_input_audio_token_cost")?,
                image_output: rate("output_cost_per_image_token")?,
            })
        };
        let mut dims = Dimensions {
            modality: modality("")?,
            batch_modality: modality("_batches")?,
            ..Dimensions::default()
        };
        for tier in SERVICE_TIERS {
            let f = |name: &str| rate(&format!("{name}_{tier}"));
            let st = ServiceTierRates {
                input: f("input_cost_per_token")?,
                output: f("output_cost_per_token")?,
                cache_read: f("cache_read_input_token_cost")?,
                cache_write: f("cache_creation_input_token_cost")?,
                audio_input: f("input_cost_per_audio_token")?,
                cache_read_audio: f("cache_read_input_audio_token_cost")?,
                image_output: f("output_cost_per_image_token")?,
                tiers: Vec::new(),
            };
            if st == ServiceTierRates::default() {
                continue;
            }
            let tier_base = Rates {
                input: st.input.unwrap_or(base.input),
                output: st.output.unwrap_or(base.output),
                cache_read: st.cache_read.or(base.cache_read),
                cache_write: st.cache_write.or(base.cache_write),
                reasoning: base.reasoning,
            };
            let tiers = self.above_tiers_of(key, obj, &tier_base, &format!("_{tier}"))?;
            dims.service_tiers
                .insert(tier.to_string(), ServiceTierRates { tiers, ..st });
        }
        if let Some(op) = obj.get("off_peak_pricing").filter(|v| !v.is_null()) {
            dims.off_peak = Some(self.off_peak(key, op)?);
        }
        let usd = |field: &str, v: &Value| {
            self.usd_of(
                key,
                field,
                v,
                "LiteLLM per-request prices are USD as a JSON number >= 0, e.g. 0.01",
            )
        };
        if let Some(w) = obj
            .get("search_context_cost_per_query")
            .and_then(Value::as_object)
        {
            let size = |s: &str| -> Result<Option<Usd>, CatalogError> {
                let field = format!("search_context_cost_per_query.search_context_size_{s}");
                match w.get(&format!("search_context_size_{s}")) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => usd(&field, v).map(Some),
                }
            };
            let (low, medium, high) = (size("low")?, size("medium")?, size("high")?);
            if let Some(any) = medium.or(low).or(high) {
                dims.requests.web_search = Some(WebSearchPrice {
                    low: low.unwrap_or(any),
                    medium: medium.unwrap_or(any),
                    high: high.unwrap_or(any),
                });
            }
        }
        if let Some(v) = obj
            .get("code_interpreter_cost_per_session")
            .filter(|v| !v.is_null())
        {
            dims.requests.code_interpreter_session =
                Some(usd("code_interpreter_cost_per_session", v)?);
        }
        if let Some(v) = obj
            .get("file_search_cost_per_1k_calls")
            .filter(|v| !v.is_null())
        {
            let per_1k = usd("file_search_cost_per_1k_calls", v)?;
            dims.requests.file_search_call = Some(Usd::from_picos(per_1k.picos() / 1000));
        }
        Ok(dims)
    }
    /// A USD amount at `field` of entry `key` (a dotted `field` names the line of its last
    /// part), or an error that says where and `fix`.
    fn usd_of(
        &self,
        key: &str,
        field: &str,
        v: &Value,
        fix: &'static str,
    ) -> Result<Usd, CatalogError> {
        let fail = |problem: String| {
            let leaf = field.rsplit('.').next().unwrap_or(field);
            self.invalid(
                self.line_of(key, Some(leaf)),
                Some(key),
                Some(field),
                problem,
                fix,
            )
        };
        let f = v
            .as_f64()
            .ok_or_else(|| fail(format!("expected a number, found {}", type_name(v))))?;
        Usd::from_f64(f).ok_or_else(|| fail(format!("invalid amount {f}")))
    }

    /// Per-unit prices of image, speech and transcription entries: `output_cost_per_image`
    /// (else `input_cost_per_image`, LiteLLM's name for the per-image price of
    /// `quality/size/model` keys), `input_cost_per_character`, `input_cost_per_second`,
    /// `output_cost_per_second`. Chat entries have none (their `input_cost_per_image` is an
    /// input price, not modelled).
    fn units(
        &self,
        key: &str,
        obj: &Map<String, Value>,
        kind: ModelKind,
    ) -> Result<UnitPrices, CatalogError> {
        if !matches!(
            kind,
            ModelKind::ImageGeneration | ModelKind::Speech | ModelKind::Transcription
        ) {
            return Ok(UnitPrices::default());
        }
        let usd = |field: &str| -> Result<Option<Usd>, CatalogError> {
            let Some(v) = obj.get(field).filter(|v| !v.is_null()) else {
                return Ok(None);
            };
            self.usd_of(
                key,
                field,
                v,
                "LiteLLM per-unit prices are USD as a JSON number >= 0, e.g. 0.04",
            )
            .map(Some)
        };
        let image = if kind == ModelKind::ImageGeneration {
            usd("output_cost_per_image")?.or(usd("input_cost_per_image")?)
        } else {
            None
        };
        Ok(UnitPrices {
            image,
            input_character: usd("input_cost_per_character")?,
            input_second: usd("input_cost_per_second")?,
            output_second: usd("output_cost_per_second")?,
        })
    }

    /// LiteLLM's `off_peak_pricing`: `{input_cost_per_token, output_cost_per_token,
    /// cache_read_input_token_cost, windows: [{hours_utc: "HH:MM-HH:MM" | [...],
    /// weekdays: [1..7]}], weekday_timezone?}`.
    fn off_peak(&self, key: &str, v: &Value) -> Result<OffPeak, CatalogError> {
        let fail = |problem: String| {
            self.invalid(
                self.line_of(key, Some("off_peak_pricing")),
                Some(key),
                Some("off_peak_pricing"),
                problem,
                "off_peak_pricing is {\"input_cost_per_token\": .., \"output_cost_per_token\": .., \"windows\": [{\"hours_utc\": [\"HH:MM-HH:MM\"], \"weekdays\": [1, 2, 3, 4, 5]}]}",
            )
        };
        let obj = v
            .as_object()
            .ok_or_else(|| fail(format!("expected an object, found {}", type_name(v))))?;
        let rate = |field: &str| {
            self.rate(key, obj, field).map_err(|e| match e {
                CatalogError::Invalid { problem, .. } => fail(format!("{field}: {problem}")),
                other => other,
            })
        };
        let input =
            rate("input_cost_per_token")?.ok_or_else(|| fail("no input_cost_per_token".into()))?;
        let output = rate("output_cost_per_token")?
            .ok_or_else(|| fail("no output_cost_per_token".into()))?;
        let windows_field = "off_peak_pricing.windows";
        let bad = |field: &str, problem: String, fix: &'static str| {
            self.invalid(
                self.line_of(key, Some("off_peak_pricing")),
                Some(key),
                Some(field),
                problem,
                fix,
            )
        };
        const WINDOWS_FIX: &str = "list the windows as \"windows\": [{\"hours_utc\": [\"16:30-24:00\"], \"weekdays\": [1, 2, 3, 4, 5]}], or remove off_peak_pricing";
        let list = obj
            .get("windows")
            .and_then(Value::as_array)
            .ok_or_else(|| fail("no windows array".into()))?;
        if list.is_empty() {
            return Err(bad(windows_field, NO_OFF_PEAK_WINDOW.into(), WINDOWS_FIX));
        }
        if list.len() > MAX_OFF_PEAK_WINDOWS {
            return Err(bad(
                windows_field,
                too_many_windows(list.len()),
                TOO_MANY_WINDOWS_FIX,
            ));
        }
        let mut windows = Vec::new();
        for (i, w) in list.iter().enumerate() {
            let field = |part: WindowPart| format!("{windows_field}[{i}].{}", part.key());
            let wrong = |part: WindowPart, problem: String| bad(&field(part), problem, part.fix());
            let Some(w) = w.as_object() else {
                return Err(bad(
                    &format!("{windows_field}[{i}]"),
                    format!("expected an object, found {}", type_name(w)),
                    WINDOWS_FIX,
                ));
            };
            // The JSON shapes; what they hold is checked as in TOML.
            let days = match w.get("weekdays") {
                None => Weekdays::ALL,
                Some(Value::Array(days)) => weekday_set(days.iter().map(|d| (d.as_u64(), d)))
                    .map_err(|(part, problem)| wrong(part, problem))?,
                Some(other) => {
                    return Err(wrong(
                        WindowPart::Weekdays,
                        format!("expected a list of weekdays, found {other}"),
                    ));
                }
            };
            let hours: Vec<&str> = match w.get("hours_utc") {
                Some(Value::String(h)) => vec![h.as_str()],
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|h| {
                        h.as_str().ok_or_else(|| {
                            wrong(
                                WindowPart::Hours,
                                format!("expected a \"HH:MM-HH:MM\" string, found {h}"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                None => {
                    return Err(wrong(WindowPart::Hours, "a window has no hours_utc".into()));
                }
                Some(other) => {
                    return Err(wrong(
                        WindowPart::Hours,
                        format!("expected a list of \"HH:MM-HH:MM\" strings, found {other}"),
                    ));
                }
            };
            let found =
                off_peak_window(days, &hours).map_err(|(part, problem)| wrong(part, problem))?;
            windows.extend(found);
        }
        let weekday_timezone = match obj.get("weekday_timezone") {
            None | Some(Value::Null) => None,
            Some(Value::String(zone)) => Some(zone.clone()),
            Some(other) => {
                return Err(bad(
                    "off_peak_pricing.weekday_timezone",
                    format!("expected a time zone name, found {}", type_name(other)),
                    WEEKDAY_TIMEZONE_FIX,
                ));
            }
        };
        if let Some(zone) = weekday_timezone.as_deref() {
            weekday_time_zone(zone).map_err(|problem| {
                bad(
                    "off_peak_pricing.weekday_timezone",
                    problem,
                    WEEKDAY_TIMEZONE_FIX,
                )
            })?;
        }
        Ok(OffPeak {
            input,
            output,
            cache_read: rate("cache_read_input_token_cost")?,
            windows,
            weekday_timezone,
        })
    }
}

/// `200k` → 200,000; `128` → 128. `None` unless the rest is `<digits>[k]_tokens`.
fn parse_threshold(rest: &str) -> Option<u64> {
    let n = rest.strip_suffix("_tokens")?;
    let (digits, scale) = match n.strip_suffix('k') {
        Some(d) => (d, 1000),
        None => (n, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// A JSON integer or integral float >= 0 as a token count.
fn as_token_count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        let f = v.as_f64()?;
        (f >= 0.0 && f.fract() == 0.0 && f < 1.8e19).then_some(f as u64)
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Byte offset of `quoted` used as a key (followed by `:`) at or after `from`.
fn find_key(src: &str, quoted: &str, from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(i) = src.get(at..)?.find(quoted) {
        let pos = at + i;
        let after = &src[pos + quoted.len()..];
        if after.trim_start().starts_with(':') {
            return Some(pos);
        }
        at = pos + quoted.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(parse_threshold("200k_tokens"), Some(200_000));
        assert_eq!(parse_threshold("128_tokens"), Some(128));
        assert_eq!(parse_threshold("1hr"), None);
        assert_eq!(parse_threshold("200k_tokens_batches"), None);
        assert_eq!(parse_threshold("k_tokens"), None);
    }
}
