//! Catalog entries, the TOML price-file format, loading and merging.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use jiff::civil::Date;
use serde::Deserialize;
use toml::Spanned;

use crate::dims::{
    Dimensions, MAX_OFF_PEAK_HOURS_PER_WINDOW, MAX_OFF_PEAK_WINDOWS, ModalityRates, OffPeak,
    OffPeakWindow, RequestCharges, STANDARD_SERVICE_TIERS, ServiceTierRates, UnitPrices,
    WebSearchPrice, Weekdays,
};
use crate::resolve::ResolveCache;
use crate::usage::rate_per_million;
use crate::{CatalogError, Rates, Usd};

/// The built-in price file, embedded at compile time.
pub(crate) const BUILTIN_TOML: &str = include_str!("../data/catalog.toml");
/// Origin name of the built-in price file in errors.
pub(crate) const BUILTIN_ORIGIN: &str = "llmtel-pricing/data/catalog.toml (builtin)";

/// Largest price file [`Catalog::load`] reads (as [`MAX_FETCH_BYTES`](crate::MAX_FETCH_BYTES)
/// for a URL; LiteLLM's whole table is about 3.5 MB): a larger file, or a device that never
/// ends (`/dev/zero`), is an error, read no further than this.
pub const MAX_PRICE_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Most aliases one model entry of a price file may declare (more is an error): a model
/// has a few other names, and each is checked against every other.
pub const MAX_ALIASES_PER_MODEL: usize = 64;

/// Most long-context tiers one price (or one service tier of it) may list, in a TOML file
/// or LiteLLM's JSON (more is an error): every priced call looks through them.
pub const MAX_TIERS_PER_PRICE: usize = 32;

/// `path`'s bytes, read no further than `limit` (one byte more tells a longer file):
/// `ErrorKind::FileTooLarge` past it.
pub(crate) fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let too_large = || {
        std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("file too large (limit {limit} bytes)"),
        )
    };
    let file = std::fs::File::open(path)?;
    if file.metadata().is_ok_and(|m| m.len() > limit) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// What a model does; priced the same way, reported as `llmtel.pricing.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// Chat / messages / generate_content models.
    Chat,
    /// Embedding models (input tokens only).
    Embedding,
    /// Moderation models.
    Moderation,
    /// Legacy text-completion models.
    Completion,
    /// Image generation (priced per image and/or per token).
    ImageGeneration,
    /// Text to speech (priced per input character, per output second and/or per token).
    Speech,
    /// Speech to text (priced per input second and/or per token).
    Transcription,
}

impl ModelKind {
    /// The name used in price files: `chat`, `embedding`, `moderation`, `completion`,
    /// `image_generation`, `audio_speech`, `audio_transcription`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Chat => "chat",
            ModelKind::Embedding => "embedding",
            ModelKind::Moderation => "moderation",
            ModelKind::Completion => "completion",
            ModelKind::ImageGeneration => "image_generation",
            ModelKind::Speech => "audio_speech",
            ModelKind::Transcription => "audio_transcription",
        }
    }

    fn parse(s: &str) -> Option<ModelKind> {
        Some(match s {
            "chat" => ModelKind::Chat,
            "embedding" => ModelKind::Embedding,
            "moderation" => ModelKind::Moderation,
            "completion" => ModelKind::Completion,
            "image_generation" => ModelKind::ImageGeneration,
            "audio_speech" => ModelKind::Speech,
            "audio_transcription" => ModelKind::Transcription,
            _ => return None,
        })
    }
}

/// A long-context tier: when a request's prompt exceeds `above_input_tokens`, the whole
/// request (input, cache and output tokens) is priced at these rates. Rates left `None`
/// inherit the base price's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    /// The tier applies when the prompt has strictly more input tokens than this.
    pub above_input_tokens: u64,
    /// Input rate, pico-dollars per token.
    pub input: u64,
    /// Output rate, pico-dollars per token.
    pub output: u64,
    /// Cache-read rate; `None` inherits the base price's.
    pub cache_read: Option<u64>,
    /// Cache-write rate; `None` inherits the base price's.
    pub cache_write: Option<u64>,
    /// Reasoning rate; `None` inherits the base price's.
    pub reasoning: Option<u64>,
}

/// One price of a model, in force from `effective` until the next price's date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Price {
    /// First day this price applies.
    pub effective: Date,
    /// Base rates (prompts up to the first tier threshold).
    pub rates: Rates,
    /// Anthropic 1-hour cache write rate, pico-dollars per token: the rate of the
    /// [`UsageDetails::cache_write_1h_tokens`](crate::UsageDetails::cache_write_1h_tokens) a
    /// call reports (scaled with the input rate under a long-context tier); `None` prices
    /// them at `rates.cache_write`.
    pub cache_write_1h: Option<u64>,
    /// Batch API input rate, pico-dollars per token: a call reporting `service_tier`
    /// `batch` is priced at it, and its cache and long-context rates scaled alike.
    pub batch_input: Option<u64>,
    /// Batch API output rate, pico-dollars per token (reasoning and long-context output
    /// scaled alike).
    pub batch_output: Option<u64>,
    /// Batch API cache-read rate, pico-dollars per token (LiteLLM
    /// `cache_read_input_token_cost_batches`; a long-context tier's scaled alike); `None`:
    /// the cache-read rate discounted as `batch_input` discounts the input rate. Applies
    /// only with `batch_input` or `batch_output` (they make the batch tier).
    pub batch_cache_read: Option<u64>,
    /// Batch API cache-write rate (`cache_creation_input_token_cost_batches`), as
    /// `batch_cache_read`.
    pub batch_cache_write: Option<u64>,
    /// Where the price was published.
    pub source: Option<String>,
    /// Long-context tiers, ascending by threshold.
    pub tiers: Vec<Tier>,
    /// Service tiers, modality rates, off-peak windows, per-request charges.
    pub dims: Dimensions,
}

impl Price {
    /// The rates for a request with `prompt_tokens` prompt tokens (cache included), and
    /// the threshold of the tier applied: the highest tier whose threshold is exceeded.
    /// A tier without its own reasoning rate, of a price with one, bills reasoning at that
    /// rate scaled by the tier's output rate over the base one.
    pub fn rates_for(&self, prompt_tokens: u64) -> (Rates, Option<u64>) {
        match self
            .tiers
            .iter()
            .rev()
            .find(|t| prompt_tokens > t.above_input_tokens)
        {
            None => (self.rates, None),
            Some(t) => (
                Rates {
                    input: t.input,
                    output: t.output,
                    cache_read: t.cache_read.or(self.rates.cache_read),
                    cache_write: t.cache_write.or(self.rates.cache_write),
                    // No tier reasoning rate: the base one keeps its ratio to the output
                    // rate (thinking tokens are output; LiteLLM lists no tier reasoning).
                    reasoning: t.reasoning.or_else(|| {
                        self.rates.reasoning.map(|r| {
                            crate::dims::scaled(r, t.output, self.rates.output).unwrap_or(r)
                        })
                    }),
                },
                Some(t.above_input_tokens),
            ),
        }
    }
}

/// A model in the catalog with its price history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelEntry {
    /// Catalog key, e.g. `gpt-4o`.
    pub id: String,
    /// `gen_ai.provider.name` value: `openai`, `anthropic`, `gcp.gemini`, ...
    pub provider: String,
    /// What the model does.
    pub kind: ModelKind,
    /// Other names that resolve to this entry exactly.
    pub aliases: Vec<String>,
    /// Context window in tokens, if known.
    pub context_window: Option<u64>,
    /// Maximum output tokens, if known.
    pub max_output_tokens: Option<u64>,
    /// Prices ascending by `effective`; never empty in a loaded catalog.
    pub prices: Vec<Price>,
}

impl ModelEntry {
    /// The price in force on `at`: the latest price with `effective <= at`. When `at` is
    /// before every price, the earliest price (a call dated before the first known
    /// price is priced at the first known price rather than not at all). `None` only if
    /// the entry has no price.
    pub fn price_at(&self, at: Date) -> Option<&Price> {
        self.prices
            .iter()
            .rev()
            .find(|p| p.effective <= at)
            .or_else(|| self.prices.first())
    }
}

/// The price catalog: model entries, their aliases and price history, and a small cache
/// of resolved model names.
///
/// Build it from the built-in file ([`Catalog::builtin`]), a TOML price file
/// ([`Catalog::load`], [`Catalog::from_toml_str`]), or by [`Catalog::insert`]; layer a
/// user file over the built-in one with [`Catalog::merged_with`].
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub(crate) entries: BTreeMap<String, ModelEntry>,
    /// alias -> ids having it (sorted).
    pub(crate) aliases: HashMap<String, Vec<String>>,
    /// lowercased id or alias -> ids (sorted, deduplicated).
    pub(crate) folded: HashMap<String, Vec<String>>,
    /// lowercased last `/` segment of ids containing `/` -> ids (sorted).
    pub(crate) basenames: HashMap<String, Vec<String>>,
    /// deployment name (user configuration) -> model name it serves.
    pub(crate) deployments: BTreeMap<String, String>,
    pub(crate) cache: ResolveCache,
}

impl Catalog {
    /// The built-in catalog (`data/catalog.toml`, embedded), parsed once on first use.
    ///
    /// # Panics
    /// Never in practice: the embedded file is fixed at compile time and the test
    /// `builtin_catalog_parses_and_has_current_models` proves it parses.
    pub fn builtin() -> &'static Catalog {
        static BUILTIN: OnceLock<Catalog> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            #[allow(clippy::expect_used)]
            Catalog::from_toml_str(BUILTIN_TOML, BUILTIN_ORIGIN)
                .expect("the embedded data/catalog.toml parses (tested)")
        })
    }

    /// Parses a price file in the documented TOML format (see the crate docs).
    /// `origin` names the source in errors (a path, `builtin`, ...).
    ///
    /// # Errors
    /// [`CatalogError::Invalid`] naming the origin, line, entry and field of the first
    /// problem found. Nothing is returned half-loaded.
    pub fn from_toml_str(src: &str, origin: &str) -> Result<Catalog, CatalogError> {
        let ctx = Ctx { src, origin };
        let raw: RawFile = toml::from_str(src).map_err(|e| ctx.toml_error(&e))?;
        let mut entries = BTreeMap::new();
        let mut alias_owner: HashMap<String, String> = HashMap::new();
        for model in raw.model {
            let entry = ctx.convert_model(model)?;
            if let Some(prev) = entries.get(&entry.id) {
                let prev: &ModelEntry = prev;
                return Err(ctx.invalid(
                    None,
                    Some(&entry.id),
                    Some("id"),
                    format!("duplicate model id `{}`", prev.id),
                    "each [[model]] needs a unique id; merge the two entries (several prices go in several [[model.price]] tables)",
                ));
            }
            for alias in &entry.aliases {
                if let Some(owner) = alias_owner.get(alias) {
                    return Err(ctx.invalid(
                        None,
                        Some(&entry.id),
                        Some("aliases"),
                        format!("alias `{alias}` is already an alias of `{owner}`"),
                        "an alias may name only one model in a file; remove one of them",
                    ));
                }
                alias_owner.insert(alias.clone(), entry.id.clone());
            }
            entries.insert(entry.id.clone(), entry);
        }
        for (alias, owner) in &alias_owner {
            if entries.contains_key(alias) {
                return Err(ctx.invalid(
                    None,
                    Some(owner),
                    Some("aliases"),
                    format!("alias `{alias}` is also the id of another model"),
                    "remove the alias or the other entry",
                ));
            }
        }
        let mut catalog = Catalog::from_entries(entries);
        for (name, target) in raw.deployments {
            let t = target.get_ref().trim();
            if name.trim().is_empty() || t.is_empty() {
                return Err(ctx.invalid(
                    Some(target.span()),
                    None,
                    Some(&format!("deployments.{name}")),
                    "empty deployment name or model".into(),
                    "map each deployment name to the model it serves: my-gpt4o-prod = \"gpt-4o\"",
                ));
            }
            catalog
                .deployments
                .insert(name.trim().to_string(), t.to_string());
        }
        Ok(catalog)
    }

    /// Reads and parses a price file: LiteLLM's JSON ([`Catalog::from_litellm_json`])
    /// when the path ends in `.json` or the text starts with `{`, else llmtel's TOML
    /// ([`Catalog::from_toml_str`]).
    ///
    /// # Errors
    /// [`CatalogError::Io`] if the file cannot be read, is larger than
    /// [`MAX_PRICE_FILE_BYTES`] (read no further) or is not UTF-8, else as
    /// [`Catalog::from_toml_str`] / [`Catalog::from_litellm_json`] with the path as
    /// origin. Nothing is returned half-loaded.
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let io = |source| CatalogError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes = read_at_most(path, MAX_PRICE_FILE_BYTES).map_err(io)?;
        let src = String::from_utf8(bytes).map_err(|_| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            ))
        })?;
        let origin = path.display().to_string();
        if Catalog::looks_like_json(path, &src) {
            Catalog::from_litellm_json(&src, &origin)
        } else {
            Catalog::from_toml_str(&src, &origin)
        }
    }

    /// True when `path` ends in `.json` (any case) or `src` starts with `{` (after
    /// whitespace and a BOM): how [`Catalog::load`] picks the format.
    pub fn looks_like_json(path: &Path, src: &str) -> bool {
        path.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
            || src
                .trim_start_matches('\u{feff}')
                .trim_start()
                .starts_with('{')
    }

    /// The built-in catalog with a user price file merged over it, or the error: the
    /// built-in catalog is never replaced by a half-loaded file.
    ///
    /// # Errors
    /// As [`Catalog::load`] and [`Catalog::try_merged_with`].
    pub fn builtin_with(path: &Path) -> Result<Catalog, CatalogError> {
        let user = Catalog::load(path)?;
        Catalog::builtin().try_merged_with(&user, &path.display().to_string())
    }

    /// Maps a deployment name (e.g. an Azure OpenAI deployment) to the model it serves;
    /// calls reporting the deployment name are priced as that model
    /// ([`MatchKind::Deployment`](crate::MatchKind::Deployment)). Replaces an earlier
    /// mapping of the same name. Price files do the same with a `[deployments]` table.
    ///
    /// ```
    /// use llmtel_pricing::{Catalog, MatchKind};
    /// let mut c = Catalog::builtin().clone();
    /// c.add_deployment("my-gpt4o-prod", "gpt-4o");
    /// let r = c.resolve("my-gpt4o-prod", None).unwrap();
    /// assert_eq!((r.key.as_str(), r.kind), ("gpt-4o", MatchKind::Deployment));
    /// // With the Azure hint, Azure's own entry for the model prices it.
    /// let r = c.resolve("my-gpt4o-prod", Some("azure.ai.openai")).unwrap();
    /// assert_eq!((r.key.as_str(), r.kind), ("azure/gpt-4o", MatchKind::Deployment));
    /// ```
    pub fn add_deployment(&mut self, deployment: &str, model: &str) {
        self.deployments
            .insert(deployment.trim().to_string(), model.trim().to_string());
        self.cache = ResolveCache::default();
    }

    /// Deployment names and the model each serves, by name.
    pub fn deployments(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.deployments
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// This catalog plus the overrides: entries of `other` replace entries with the same
    /// id or add new ones, and take over any alias they declare; an entry replaced keeps
    /// the aliases of the entry it replaces that no entry of `other` claims (a LiteLLM file
    /// has no aliases: `claude-sonnet-4.5` still names `claude-sonnet-4-5`). Its deployment
    /// mappings are added (replacing those of the same name).
    ///
    /// An alias of `other` that is the id of an entry of this catalog never applies (an
    /// exact id always wins); [`Catalog::try_merged_with`] rejects it instead.
    pub fn merged_with(&self, other: &Catalog) -> Catalog {
        let mut entries = self.entries.clone();
        let claimed: std::collections::HashSet<&str> = other
            .entries
            .values()
            .flat_map(|e| {
                std::iter::once(e.id.as_str()).chain(e.aliases.iter().map(String::as_str))
            })
            .collect();
        for entry in entries.values_mut() {
            entry.aliases.retain(|a| !claimed.contains(a.as_str()));
        }
        for (id, entry) in &other.entries {
            let mut entry = entry.clone();
            if let Some(replaced) = entries.get(id) {
                // Already without the aliases `other` claims.
                for alias in &replaced.aliases {
                    if !entry.aliases.contains(alias) {
                        entry.aliases.push(alias.clone());
                    }
                }
            }
            entries.insert(id.clone(), entry);
        }
        let mut merged = Catalog::from_entries(entries);
        merged.deployments = self.deployments.clone();
        merged.deployments.extend(
            other
                .deployments
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        merged
    }

    /// [`Catalog::merged_with`], or an error when an entry of `other` declares an alias
    /// that is the id of another model (of this catalog or of `other`): an exact id always
    /// wins, so the alias would silently never apply. `origin` names `other` in the error
    /// (its file or URL).
    ///
    /// ```
    /// use llmtel_pricing::Catalog;
    /// let user = Catalog::from_toml_str(r#"
    /// [[model]]
    /// id = "my-4o"
    /// provider = "openai"
    /// aliases = ["gpt-4o"]
    /// [[model.price]]
    /// effective = "2025-01-01"
    /// input = 1
    /// output = 1
    /// "#, "user.toml").unwrap();
    /// let e = Catalog::builtin().try_merged_with(&user, "user.toml").unwrap_err();
    /// assert!(e.to_string().contains("`aliases`"));
    /// ```
    ///
    /// # Errors
    /// [`CatalogError::Invalid`] naming `origin`, the entry, the field `aliases` and the
    /// alias.
    pub fn try_merged_with(&self, other: &Catalog, origin: &str) -> Result<Catalog, CatalogError> {
        match self.aliases_naming_a_model(other).first() {
            Some((id, alias)) => Err(alias_names_a_model(origin, id, alias, "")),
            None => Ok(self.merged_with(other)),
        }
    }

    /// [`Catalog::merged_with`] without the aliases [`Catalog::try_merged_with`] rejects
    /// (the exact id wins, as it always did), and a warning for each, naming `origin`: how
    /// [`PriceSources::load`](crate::PriceSources::load) layers a file, so that one alias
    /// does not leave out every price of the file.
    pub(crate) fn merged_without_aliases_naming_a_model(
        &self,
        other: &Catalog,
        origin: &str,
    ) -> (Catalog, Vec<CatalogError>) {
        let colliding = self.aliases_naming_a_model(other);
        if colliding.is_empty() {
            return (self.merged_with(other), Vec::new());
        }
        let mut kept = other.clone();
        let mut warnings = Vec::new();
        for (id, alias) in &colliding {
            if let Some(entry) = kept.entries.get_mut(*id) {
                entry.aliases.retain(|a| a != alias);
            }
            warnings.push(alias_names_a_model(
                origin,
                id,
                alias,
                " (left out; the rest of the file applies)",
            ));
        }
        (self.merged_with(&kept), warnings)
    }

    /// `(entry id, alias)` for each alias of an entry of `other` that is the id of another
    /// model, of this catalog or of `other`.
    fn aliases_naming_a_model<'a>(&self, other: &'a Catalog) -> Vec<(&'a str, &'a str)> {
        other
            .entries
            .values()
            .flat_map(|e| e.aliases.iter().map(move |a| (e.id.as_str(), a.as_str())))
            .filter(|(id, alias)| {
                alias != id
                    && (self.entries.contains_key(*alias) || other.entries.contains_key(*alias))
            })
            .collect()
    }

    /// Adds or replaces an entry (by id); returns the entry it replaced.
    ///
    /// # Errors
    /// [`CatalogError::Invalid`] if the entry has an empty id or provider, no price, or
    /// two prices with the same effective date.
    pub fn insert(&mut self, mut entry: ModelEntry) -> Result<Option<ModelEntry>, CatalogError> {
        let invalid = |field: &str, problem: String, fix: &'static str| CatalogError::Invalid {
            origin: "Catalog::insert".to_string(),
            line: None,
            entry: Some(entry.id.clone()),
            field: Some(field.to_string()),
            problem,
            fix,
        };
        if entry.id.trim().is_empty() {
            return Err(invalid(
                "id",
                "empty model id".into(),
                "give the entry an id",
            ));
        }
        if entry.provider.trim().is_empty() {
            return Err(invalid(
                "provider",
                "empty provider".into(),
                "set it to the gen_ai.provider.name value, e.g. `openai`",
            ));
        }
        if entry.prices.is_empty() {
            return Err(invalid(
                "prices",
                "no price".into(),
                "add at least one Price",
            ));
        }
        entry.prices.sort_by_key(|p| p.effective);
        if let Some(w) = entry
            .prices
            .windows(2)
            .find(|w| w[0].effective == w[1].effective)
        {
            return Err(invalid(
                "prices.effective",
                format!("two prices effective {}", w[0].effective),
                "give each price its own date",
            ));
        }
        for price in &mut entry.prices {
            price.tiers.sort_by_key(|t| t.above_input_tokens);
        }
        let mut entries = std::mem::take(&mut self.entries);
        let old = entries.insert(entry.id.clone(), entry);
        let deployments = std::mem::take(&mut self.deployments);
        *self = Catalog::from_entries(entries);
        self.deployments = deployments;
        Ok(old)
    }

    /// Number of model entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the catalog has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry with this exact id.
    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.entries.get(id)
    }

    /// All entries, ordered by id.
    pub fn entries(&self) -> impl Iterator<Item = &ModelEntry> + '_ {
        self.entries.values()
    }

    pub(crate) fn from_entries(entries: BTreeMap<String, ModelEntry>) -> Catalog {
        let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
        let mut folded: HashMap<String, Vec<String>> = HashMap::new();
        // BTreeMap order: ids are pushed sorted.
        for entry in entries.values() {
            folded
                .entry(entry.id.to_lowercase())
                .or_default()
                .push(entry.id.clone());
            for alias in &entry.aliases {
                aliases
                    .entry(alias.clone())
                    .or_default()
                    .push(entry.id.clone());
                // Ids are pushed in order: this entry's id, if there, is the last.
                let ids = folded.entry(alias.to_lowercase()).or_default();
                if ids.last() != Some(&entry.id) {
                    ids.push(entry.id.clone());
                }
            }
        }
        let mut basenames: HashMap<String, Vec<String>> = HashMap::new();
        for id in entries.keys() {
            if let Some((_, base)) = id.rsplit_once('/') {
                if !base.is_empty() {
                    basenames
                        .entry(base.to_lowercase())
                        .or_default()
                        .push(id.clone());
                }
            }
        }
        Catalog {
            entries,
            aliases,
            folded,
            basenames,
            deployments: BTreeMap::new(),
            cache: ResolveCache::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// TOML format

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    model: Vec<Spanned<RawModel>>,
    #[serde(default)]
    deployments: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: Spanned<String>,
    provider: Spanned<String>,
    kind: Option<Spanned<String>>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    context_window: Option<u64>,
    max_output_tokens: Option<u64>,
    #[serde(default)]
    price: Vec<Spanned<RawPrice>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    effective: Spanned<toml::Value>,
    input: Spanned<toml::Value>,
    output: Option<Spanned<toml::Value>>,
    cache_read: Option<Spanned<toml::Value>>,
    cache_write: Option<Spanned<toml::Value>>,
    cache_write_1h: Option<Spanned<toml::Value>>,
    reasoning: Option<Spanned<toml::Value>>,
    batch_input: Option<Spanned<toml::Value>>,
    batch_output: Option<Spanned<toml::Value>>,
    batch_cache_read: Option<Spanned<toml::Value>>,
    batch_cache_write: Option<Spanned<toml::Value>>,
    source: Option<String>,
    #[serde(default)]
    tier: Vec<Spanned<RawTier>>,
    #[serde(default)]
    service_tier: BTreeMap<String, RawServiceTier>,
    modality: Option<RawModality>,
    batch_modality: Option<RawModality>,
    off_peak: Option<RawOffPeak>,
    per_request: Option<RawPerRequest>,
    per_unit: Option<RawPerUnit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerUnit {
    #[serde(default)]
    image: RateValue,
    #[serde(default)]
    input_character: RateValue,
    #[serde(default)]
    input_second: RateValue,
    #[serde(default)]
    output_second: RateValue,
}

type RateValue = Option<Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceTier {
    #[serde(default)]
    input: RateValue,
    #[serde(default)]
    output: RateValue,
    #[serde(default)]
    cache_read: RateValue,
    #[serde(default)]
    cache_write: RateValue,
    #[serde(default)]
    audio_input: RateValue,
    #[serde(default)]
    cache_read_audio: RateValue,
    #[serde(default)]
    image_output: RateValue,
    #[serde(default)]
    tier: Vec<Spanned<RawTier>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModality {
    #[serde(default)]
    audio_input: RateValue,
    #[serde(default)]
    audio_output: RateValue,
    #[serde(default)]
    image_input: RateValue,
    #[serde(default)]
    video_input: RateValue,
    #[serde(default)]
    cache_read_audio: RateValue,
    #[serde(default)]
    cache_read_image: RateValue,
    #[serde(default)]
    cache_write_audio: RateValue,
    #[serde(default)]
    image_output: RateValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOffPeak {
    input: Spanned<toml::Value>,
    output: Spanned<toml::Value>,
    #[serde(default)]
    cache_read: RateValue,
    windows: Vec<Spanned<RawWindow>>,
    weekday_timezone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    weekdays: Vec<u8>,
    hours_utc: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerRequest {
    web_search: Option<RawWebSearch>,
    #[serde(default)]
    code_interpreter_session: RateValue,
    #[serde(default)]
    file_search_call: RateValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebSearch {
    low: Spanned<toml::Value>,
    medium: Spanned<toml::Value>,
    high: Spanned<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    above_input_tokens: Spanned<u64>,
    input: Spanned<toml::Value>,
    output: Spanned<toml::Value>,
    cache_read: Option<Spanned<toml::Value>>,
    cache_write: Option<Spanned<toml::Value>>,
    reasoning: Option<Spanned<toml::Value>>,
}

/// One `id = "..."` line, parsed alone to name the entry of an error.
#[derive(Deserialize)]
struct LooseId {
    id: String,
}

macro_rules! format_hint {
    () => {
        "see the price file format in llmtel-pricing's data/README.md"
    };
}

struct Ctx<'a> {
    src: &'a str,
    origin: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> u32 {
        let end = offset.min(self.src.len());
        let newlines = self.src.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        u32::try_from(newlines).map_or(u32::MAX, |n| n.saturating_add(1))
    }

    fn invalid(
        &self,
        span: Option<Range<usize>>,
        entry: Option<&str>,
        field: Option<&str>,
        problem: String,
        fix: &'static str,
    ) -> CatalogError {
        let line = span.map(|s| self.line_of(s.start));
        CatalogError::invalid(self.origin, line, entry, field, problem, fix)
    }

    /// Turns a TOML (syntax or schema) error into a [`CatalogError`], naming the entry
    /// whose `[[model]]` table contains the error and the key on the error's line.
    fn toml_error(&self, e: &toml::de::Error) -> CatalogError {
        let span = e.span();
        let message = e.message().trim().to_string();
        let entry = span.as_ref().and_then(|span| self.entry_at(span.start));
        let field = field_in_message(&message).or_else(|| {
            let span = span.as_ref()?;
            self.key_on_line(span.start)
        });
        let fix = if message.contains("unknown field") {
            concat!("remove or rename the field; ", format_hint!())
        } else if message.contains("missing field") {
            concat!("add the field; ", format_hint!())
        } else {
            concat!("fix the value or syntax; ", format_hint!())
        };
        CatalogError::Invalid {
            origin: self.origin.to_string(),
            line: span.map(|s| self.line_of(s.start)),
            entry,
            field,
            problem: message,
            fix,
        }
    }

    /// The `id` of the `[[model]]` table containing `offset`, found by scanning the text
    /// (the file did not deserialize, so spans of typed values are not available).
    fn entry_at(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.src.len());
        let start = self.src[..offset].rfind("[[model]]")?;
        let body = &self.src[start + "[[model]]".len()..];
        let body = &body[..body.find("\n[[model]]").unwrap_or(body.len())];
        body.lines().find_map(|line| {
            let value = line
                .trim()
                .strip_prefix("id")?
                .trim_start()
                .strip_prefix('=')?;
            match toml::from_str::<LooseId>(&format!("id = {}", value.trim())) {
                Ok(LooseId { id }) => Some(id),
                Err(_) => None,
            }
        })
    }

    /// The key of a `key = value` line containing `offset`, if any.
    fn key_on_line(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.src.len());
        let start = self.src[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line = self.src[start..].lines().next()?;
        let (key, _) = line.split_once('=')?;
        let key = key.trim().trim_matches('"');
        (!key.is_empty() && !key.starts_with('[') && !key.starts_with('#')).then(|| key.to_string())
    }

    fn convert_model(&self, model: Spanned<RawModel>) -> Result<ModelEntry, CatalogError> {
        let model_span = model.span();
        let raw = model.into_inner();
        let id = raw.id.get_ref().trim().to_string();
        if id.is_empty() || id.chars().any(char::is_whitespace) {
            return Err(self.invalid(
                Some(raw.id.span()),
                None,
                Some("id"),
                format!("invalid model id {:?}", raw.id.get_ref()),
                "use the model name as the provider spells it, without spaces",
            ));
        }
        let entry = Some(id.as_str());
        let provider = raw.provider.get_ref().trim().to_string();
        if provider.is_empty() {
            return Err(self.invalid(
                Some(raw.provider.span()),
                entry,
                Some("provider"),
                "empty provider".into(),
                "set it to the gen_ai.provider.name value: openai, anthropic, gcp.gemini, aws.bedrock, ...",
            ));
        }
        let kind = match &raw.kind {
            None => ModelKind::Chat,
            Some(k) => ModelKind::parse(k.get_ref()).ok_or_else(|| {
                self.invalid(
                    Some(k.span()),
                    entry,
                    Some("kind"),
                    format!("unknown kind `{}`", k.get_ref()),
                    "use one of: chat, embedding, moderation, completion, image_generation, audio_speech, audio_transcription",
                )
            })?,
        };
        if let Some(past) = raw.aliases.get(MAX_ALIASES_PER_MODEL) {
            return Err(self.invalid(
                Some(past.span()),
                entry,
                Some("aliases"),
                format!(
                    "{} aliases, more than the {MAX_ALIASES_PER_MODEL} an entry may declare",
                    raw.aliases.len()
                ),
                "list only the names calls report for this model; map deployment names in [deployments] instead",
            ));
        }
        let mut aliases = Vec::with_capacity(raw.aliases.len());
        let mut seen = std::collections::HashSet::with_capacity(raw.aliases.len());
        for alias in &raw.aliases {
            let a = alias.get_ref().trim();
            if a.is_empty() || a == id || !seen.insert(a) {
                return Err(self.invalid(
                    Some(alias.span()),
                    entry,
                    Some("aliases"),
                    format!("empty, repeated or self alias {:?}", alias.get_ref()),
                    "list each other name once",
                ));
            }
            aliases.push(a.to_string());
        }
        if raw.price.is_empty() {
            return Err(self.invalid(
                Some(model_span),
                entry,
                Some("price"),
                "no price".into(),
                "add a [[model.price]] table with `effective`, `input` and `output` (USD per million tokens)",
            ));
        }
        let mut prices = Vec::with_capacity(raw.price.len());
        for price in raw.price {
            prices.push(self.convert_price(&id, kind, price)?);
        }
        prices.sort_by_key(|(p, _): &(Price, Range<usize>)| p.effective);
        if let Some(w) = prices
            .windows(2)
            .find(|w| w[0].0.effective == w[1].0.effective)
        {
            return Err(self.invalid(
                Some(w[1].1.clone()),
                entry,
                Some("price.effective"),
                format!("two prices effective {}", w[0].0.effective),
                "give each [[model.price]] its own `effective` date",
            ));
        }
        Ok(ModelEntry {
            id: id.clone(),
            provider,
            kind,
            aliases,
            context_window: raw.context_window,
            max_output_tokens: raw.max_output_tokens,
            prices: prices.into_iter().map(|(p, _)| p).collect(),
        })
    }

    fn convert_price(
        &self,
        id: &str,
        kind: ModelKind,
        price: Spanned<RawPrice>,
    ) -> Result<(Price, Range<usize>), CatalogError> {
        let span = price.span();
        let raw = price.into_inner();
        let effective = self.date(id, &raw.effective)?;
        let input = self.rate(id, "price.input", &raw.input)?;
        let output = match &raw.output {
            Some(v) => self.rate(id, "price.output", v)?,
            None if !matches!(kind, ModelKind::Chat | ModelKind::Completion) => 0,
            None => {
                return Err(self.invalid(
                    Some(span),
                    Some(id),
                    Some("price.output"),
                    "missing output price".into(),
                    "add `output = <USD per million tokens>` (only chat and completion models need it)",
                ));
            }
        };
        let opt =
            |field: &str, v: &Option<Spanned<toml::Value>>| -> Result<Option<u64>, CatalogError> {
                v.as_ref().map(|v| self.rate(id, field, v)).transpose()
            };
        let rates = Rates {
            input,
            output,
            cache_read: opt("price.cache_read", &raw.cache_read)?,
            cache_write: opt("price.cache_write", &raw.cache_write)?,
            reasoning: opt("price.reasoning", &raw.reasoning)?,
        };
        let tiers = self.tiers(id, "price.tier", &raw.tier)?;
        let dims = self.convert_dims(id, &raw)?;
        Ok((
            Price {
                effective,
                rates,
                cache_write_1h: opt("price.cache_write_1h", &raw.cache_write_1h)?,
                batch_input: opt("price.batch_input", &raw.batch_input)?,
                batch_output: opt("price.batch_output", &raw.batch_output)?,
                batch_cache_read: opt("price.batch_cache_read", &raw.batch_cache_read)?,
                batch_cache_write: opt("price.batch_cache_write", &raw.batch_cache_write)?,
                source: raw.source,
                tiers,
                dims,
            },
            span,
        ))
    }

    fn tiers(
        &self,
        id: &str,
        prefix: &str,
        raw: &[Spanned<RawTier>],
    ) -> Result<Vec<Tier>, CatalogError> {
        let opt = |field: &str, v: &RateValue| -> Result<Option<u64>, CatalogError> {
            v.as_ref()
                .map(|v| self.rate(id, &format!("{prefix}.{field}"), v))
                .transpose()
        };
        if let Some(past) = raw.get(MAX_TIERS_PER_PRICE) {
            return Err(self.invalid(
                Some(past.span()),
                Some(id),
                Some(prefix),
                too_many_tiers(raw.len()),
                TOO_MANY_TIERS_FIX,
            ));
        }
        let mut tiers = Vec::with_capacity(raw.len());
        let mut thresholds = std::collections::HashSet::with_capacity(raw.len());
        for tier in raw {
            let t = tier.get_ref();
            let above = *t.above_input_tokens.get_ref();
            if !thresholds.insert(above) {
                return Err(self.invalid(
                    Some(t.above_input_tokens.span()),
                    Some(id),
                    Some(&format!("{prefix}.above_input_tokens")),
                    format!("two tiers above {above} input tokens"),
                    "give each tier its own threshold",
                ));
            }
            tiers.push(Tier {
                above_input_tokens: above,
                input: self.rate(id, &format!("{prefix}.input"), &t.input)?,
                output: self.rate(id, &format!("{prefix}.output"), &t.output)?,
                cache_read: opt("cache_read", &t.cache_read)?,
                cache_write: opt("cache_write", &t.cache_write)?,
                reasoning: opt("reasoning", &t.reasoning)?,
            });
        }
        tiers.sort_by_key(|t| t.above_input_tokens);
        Ok(tiers)
    }

    fn convert_dims(&self, id: &str, raw: &RawPrice) -> Result<Dimensions, CatalogError> {
        let opt = |field: String, v: &RateValue| -> Result<Option<u64>, CatalogError> {
            v.as_ref().map(|v| self.rate(id, &field, v)).transpose()
        };
        let mut dims = Dimensions::default();
        for (name, st) in &raw.service_tier {
            let f = |x: &str| format!("price.service_tier.{name}.{x}");
            let key = name.trim().to_ascii_lowercase();
            if key.is_empty() || STANDARD_SERVICE_TIERS.contains(&key.as_str()) {
                return Err(self.invalid(
                    None,
                    Some(id),
                    Some(&format!("price.service_tier.{name}")),
                    format!("service tier `{name}` is not a tier name llmtel can price separately"),
                    "name the tier as the provider reports it (`priority`, `flex`); the standard rates are the price's own `input`, `output`, ...",
                ));
            }
            dims.service_tiers.insert(
                key,
                ServiceTierRates {
                    input: opt(f("input"), &st.input)?,
                    output: opt(f("output"), &st.output)?,
                    cache_read: opt(f("cache_read"), &st.cache_read)?,
                    cache_write: opt(f("cache_write"), &st.cache_write)?,
                    audio_input: opt(f("audio_input"), &st.audio_input)?,
                    cache_read_audio: opt(f("cache_read_audio"), &st.cache_read_audio)?,
                    image_output: opt(f("image_output"), &st.image_output)?,
                    tiers: self.tiers(id, &f("tier"), &st.tier)?,
                },
            );
        }
        let modality = |table: &str, m: &RawModality| -> Result<ModalityRates, CatalogError> {
            let f = |x: &str| format!("price.{table}.{x}");
            Ok(ModalityRates {
                audio_input: opt(f("audio_input"), &m.audio_input)?,
                audio_output: opt(f("audio_output"), &m.audio_output)?,
                image_input: opt(f("image_input"), &m.image_input)?,
                video_input: opt(f("video_input"), &m.video_input)?,
                cache_read_audio: opt(f("cache_read_audio"), &m.cache_read_audio)?,
                cache_read_image: opt(f("cache_read_image"), &m.cache_read_image)?,
                cache_write_audio: opt(f("cache_write_audio"), &m.cache_write_audio)?,
                image_output: opt(f("image_output"), &m.image_output)?,
            })
        };
        if let Some(m) = &raw.modality {
            dims.modality = modality("modality", m)?;
        }
        if let Some(m) = &raw.batch_modality {
            dims.batch_modality = modality("batch_modality", m)?;
        }
        if let Some(op) = &raw.off_peak {
            if op.windows.len() > MAX_OFF_PEAK_WINDOWS {
                return Err(self.invalid(
                    op.windows.get(MAX_OFF_PEAK_WINDOWS).map(Spanned::span),
                    Some(id),
                    Some("price.off_peak.windows"),
                    too_many_windows(op.windows.len()),
                    TOO_MANY_WINDOWS_FIX,
                ));
            }
            let mut windows = Vec::new();
            for (i, w) in op.windows.iter().enumerate() {
                let span = w.span();
                let w = w.get_ref();
                let hours: Vec<&str> = w.hours_utc.iter().map(String::as_str).collect();
                let found = weekday_set(w.weekdays.iter().map(|d| (Some(u64::from(*d)), d)))
                    .and_then(|days| off_peak_window(days, &hours))
                    .map_err(|(part, problem)| {
                        self.invalid(
                            Some(span.clone()),
                            Some(id),
                            Some(&format!("price.off_peak.windows[{i}].{}", part.key())),
                            problem,
                            part.fix(),
                        )
                    })?;
                windows.extend(found);
            }
            if windows.is_empty() {
                return Err(self.invalid(
                    None,
                    Some(id),
                    Some("price.off_peak.windows"),
                    NO_OFF_PEAK_WINDOW.into(),
                    "list the windows as [{ weekdays = [1, 2, 3, 4, 5], hours_utc = [\"16:30-24:00\"] }], or remove [model.price.off_peak]",
                ));
            }
            if let Some(zone) = &op.weekday_timezone {
                weekday_time_zone(zone.get_ref()).map_err(|problem| {
                    self.invalid(
                        Some(zone.span()),
                        Some(id),
                        Some("price.off_peak.weekday_timezone"),
                        problem,
                        WEEKDAY_TIMEZONE_FIX,
                    )
                })?;
            }
            dims.off_peak = Some(OffPeak {
                input: self.rate(id, "price.off_peak.input", &op.input)?,
                output: self.rate(id, "price.off_peak.output", &op.output)?,
                cache_read: opt("price.off_peak.cache_read".into(), &op.cache_read)?,
                windows,
                weekday_timezone: op.weekday_timezone.as_ref().map(|z| z.get_ref().clone()),
            });
        }
        if let Some(r) = &raw.per_request {
            let usd = |field: &str, v: &Spanned<toml::Value>| self.usd(id, field, v);
            let opt_usd =
                |field: &str, v: &RateValue| v.as_ref().map(|v| usd(field, v)).transpose();
            dims.requests = RequestCharges {
                web_search: match &r.web_search {
                    None => None,
                    Some(w) => Some(WebSearchPrice {
                        low: usd("price.per_request.web_search.low", &w.low)?,
                        medium: usd("price.per_request.web_search.medium", &w.medium)?,
                        high: usd("price.per_request.web_search.high", &w.high)?,
                    }),
                },
                code_interpreter_session: opt_usd(
                    "price.per_request.code_interpreter_session",
                    &r.code_interpreter_session,
                )?,
                file_search_call: opt_usd(
                    "price.per_request.file_search_call",
                    &r.file_search_call,
                )?,
            };
        }
        if let Some(u) = &raw.per_unit {
            let opt_usd =
                |field: &str, v: &RateValue| v.as_ref().map(|v| self.usd(id, field, v)).transpose();
            dims.units = UnitPrices {
                image: opt_usd("price.per_unit.image", &u.image)?,
                input_character: opt_usd("price.per_unit.input_character", &u.input_character)?,
                input_second: opt_usd("price.per_unit.input_second", &u.input_second)?,
                output_second: opt_usd("price.per_unit.output_second", &u.output_second)?,
            };
        }
        Ok(dims)
    }

    /// A USD-per-request value (number or string, at most 12 decimals).
    fn usd(&self, id: &str, field: &str, v: &Spanned<toml::Value>) -> Result<Usd, CatalogError> {
        let fail = |problem: String| {
            self.invalid(
                Some(v.span()),
                Some(id),
                Some(field),
                problem,
                "per-request and per-unit charges are USD per request, image, character or second: a number or decimal string >= 0 with at most 12 decimals, e.g. 0.01 or \"0.025\"",
            )
        };
        let text = match v.get_ref() {
            toml::Value::Integer(i) if *i >= 0 => i.to_string(),
            toml::Value::Float(f) if f.is_finite() && *f >= 0.0 => format!("{f}"),
            toml::Value::String(s) if !s.trim().starts_with('-') => s.trim().to_string(),
            other => {
                return Err(fail(format!(
                    "expected a number >= 0, found {}",
                    other.type_str()
                )));
            }
        };
        Usd::parse_decimal(&text).ok_or_else(|| fail(format!("invalid amount {text:?}")))
    }

    fn date(&self, id: &str, v: &Spanned<toml::Value>) -> Result<Date, CatalogError> {
        let text = match v.get_ref() {
            toml::Value::String(s) => s.trim().to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            other => format!("a {}", other.type_str()),
        };
        text.parse::<Date>().map_err(|_| {
            self.invalid(
                Some(v.span()),
                Some(id),
                Some("price.effective"),
                format!("invalid date {text:?}"),
                "write the first day the price applies as \"YYYY-MM-DD\"",
            )
        })
    }

    /// A USD-per-million-tokens value (number or string) as pico-dollars per token.
    fn rate(&self, id: &str, field: &str, v: &Spanned<toml::Value>) -> Result<u64, CatalogError> {
        let fail = |problem: String| {
            self.invalid(
                Some(v.span()),
                Some(id),
                Some(field),
                problem,
                "prices are USD per million tokens: a number or decimal string >= 0 with at most 6 decimals, e.g. 2.50 or \"0.075\"",
            )
        };
        let text = match v.get_ref() {
            toml::Value::Integer(i) if *i < 0 => return Err(fail(format!("negative price {i}"))),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) if f.is_nan() => return Err(fail("price is NaN".into())),
            toml::Value::Float(f) if f.is_infinite() => {
                return Err(fail("price is infinite".into()));
            }
            toml::Value::Float(f) if *f < 0.0 || (*f == 0.0 && f.is_sign_negative()) => {
                return Err(fail(format!("negative price {f}")));
            }
            // Rust's `{}` is the shortest decimal that round-trips, never an exponent.
            toml::Value::Float(f) => format!("{f}"),
            toml::Value::String(s) => {
                let s = s.trim();
                if s.starts_with('-') {
                    return Err(fail(format!("negative price {s:?}")));
                }
                s.to_string()
            }
            other => {
                return Err(fail(format!(
                    "expected a number or a string, found {}",
                    other.type_str()
                )));
            }
        };
        if let Some((_, frac)) = text.split_once('.') {
            if frac.trim_end_matches('0').len() > 6 && frac.bytes().all(|b| b.is_ascii_digit()) {
                // A per-token price (LiteLLM's unit, 2.5e-06) written where USD per
                // million tokens is expected: say so.
                let hint = if text.starts_with("0.0000") {
                    " (this looks like USD per token: multiply by 1,000,000)"
                } else {
                    ""
                };
                return Err(fail(format!(
                    "price {text} has more precision than 0.000001 USD per million tokens{hint}"
                )));
            }
        }
        rate_per_million(&text).ok_or_else(|| fail(format!("invalid price {text:?}")))
    }
}

/// The error (or, with `outcome`, the warning) for an alias of `origin`'s entry `id` that
/// is another model's id.
fn alias_names_a_model(origin: &str, id: &str, alias: &str, outcome: &str) -> CatalogError {
    CatalogError::invalid(
        origin,
        None,
        Some(id),
        Some("aliases"),
        format!(
            "alias `{alias}` is the id of another model, which always wins over an alias: the alias would never apply{outcome}"
        ),
        "remove the alias; to reprice that model, give the entry its id instead",
    )
}

/// The problem of a price with more than [`MAX_TIERS_PER_PRICE`] long-context tiers.
pub(crate) fn too_many_tiers(n: usize) -> String {
    format!("{n} long-context tiers, more than the {MAX_TIERS_PER_PRICE} a price may list")
}

/// What to do about too many long-context tiers (TOML and JSON alike).
pub(crate) const TOO_MANY_TIERS_FIX: &str =
    "list only the thresholds at which the provider's rates change";

/// The part of an off-peak window a problem is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WindowPart {
    Weekdays,
    Hours,
}

impl WindowPart {
    /// The key, the same in TOML and LiteLLM JSON.
    pub(crate) fn key(self) -> &'static str {
        match self {
            WindowPart::Weekdays => "weekdays",
            WindowPart::Hours => "hours_utc",
        }
    }

    /// What to write (lists are written alike in TOML and JSON).
    pub(crate) fn fix(self) -> &'static str {
        match self {
            WindowPart::Weekdays => {
                "write weekdays as a list of ISO weekdays, 1 (Monday) to 7 (Sunday), e.g. [1, 2, 3, 4, 5] (LiteLLM JSON: or leave the key out for every day)"
            }
            WindowPart::Hours => {
                "write hours_utc as a list of \"HH:MM-HH:MM\" UTC ranges, e.g. [\"00:00-01:00\", \"16:30-24:00\"] (LiteLLM JSON: or one such string); a window crossing midnight is two windows split at 00:00"
            }
        }
    }
}

/// `Ok` when the off-peak weekdays can be counted in `zone` (as
/// [`OffPeak::contains`](crate::OffPeak::contains) counts them), else the problem: a zone
/// llmtel does not know would leave every call at the standard rates.
pub(crate) fn weekday_time_zone(zone: &str) -> Result<(), String> {
    if crate::dims::known_time_zone(zone) {
        Ok(())
    } else {
        Err(format!(
            "time zone {zone:?} is unknown to this build: the off-peak rates would never apply"
        ))
    }
}

/// What to do about an unknown `weekday_timezone` (TOML and JSON alike).
pub(crate) const WEEKDAY_TIMEZONE_FIX: &str = "name the zone the weekdays are counted in as UTC, Asia/Shanghai, Asia/Hong_Kong, Asia/Singapore, Asia/Tokyo or Asia/Seoul (any IANA name when jiff's time-zone database is built in: feature tzdb-bundle-always or tzdb-zoneinfo), or leave it out to count weekdays in UTC";

/// The problem of an off-peak price without a window.
pub(crate) const NO_OFF_PEAK_WINDOW: &str = "no window: the off-peak rates would never apply";

/// The problem of an off-peak price with more than [`MAX_OFF_PEAK_WINDOWS`] windows.
pub(crate) fn too_many_windows(n: usize) -> String {
    format!("{n} windows, more than the {MAX_OFF_PEAK_WINDOWS} an off-peak price may list")
}

/// What to do about too many off-peak windows (TOML and JSON alike).
pub(crate) const TOO_MANY_WINDOWS_FIX: &str = "give each set of weekdays one window listing all its hour ranges (e.g. weekdays [1, 2, 3, 4, 5] with hours_utc [\"00:00-01:00\", \"16:30-24:00\"])";

/// The weekdays of an off-peak window of a TOML or LiteLLM price, as a set (a day listed
/// twice is in it once): each as read (`None` when not a whole number) and as shown in a
/// message; not empty, each `1..=7`.
pub(crate) fn weekday_set<D: std::fmt::Display>(
    weekdays: impl IntoIterator<Item = (Option<u64>, D)>,
) -> Result<Weekdays, (WindowPart, String)> {
    let mut set = Weekdays::NONE;
    for (day, shown) in weekdays {
        set = day
            .and_then(|d| u8::try_from(d).ok())
            .and_then(|d| set.with(d))
            .ok_or_else(|| {
                (
                    WindowPart::Weekdays,
                    format!(
                        "weekday {shown} is not one of the ISO weekdays 1..=7 (1 Monday, 7 Sunday)"
                    ),
                )
            })?;
    }
    if set.is_empty() {
        return Err((
            WindowPart::Weekdays,
            "weekdays is empty: the window would never apply".into(),
        ));
    }
    Ok(set)
}

/// One off-peak window of a TOML or LiteLLM price on `weekdays`, checked, as one window
/// per hours range: `hours` are not empty, at most [`MAX_OFF_PEAK_HOURS_PER_WINDOW`], and
/// each a `HH:MM-HH:MM` UTC range within a day ([`parse_hours`]).
pub(crate) fn off_peak_window(
    weekdays: Weekdays,
    hours: &[&str],
) -> Result<Vec<OffPeakWindow>, (WindowPart, String)> {
    if hours.is_empty() {
        return Err((
            WindowPart::Hours,
            "hours_utc is empty: the window would never apply".into(),
        ));
    }
    if hours.len() > MAX_OFF_PEAK_HOURS_PER_WINDOW {
        return Err((
            WindowPart::Hours,
            format!(
                "hours_utc lists {} ranges, more than the {MAX_OFF_PEAK_HOURS_PER_WINDOW} a window may list: merge adjacent ranges (\"00:00-01:00\" and \"01:00-02:00\" are \"00:00-02:00\")",
                hours.len()
            ),
        ));
    }
    hours
        .iter()
        .map(|h| {
            let (start_minute, end_minute) =
                parse_hours(h).map_err(|problem| (WindowPart::Hours, problem))?;
            Ok(OffPeakWindow {
                weekdays,
                start_minute,
                end_minute,
            })
        })
        .collect()
}

/// `"HH:MM-HH:MM"` (UTC) as minutes `[start, end)`; an end of `00:00` or `24:00` is
/// midnight at the end of the day. `Err(problem)` when malformed, empty or crossing
/// midnight (the problem then says how to split it).
pub(crate) fn parse_hours(s: &str) -> Result<(u16, u16), String> {
    let invalid = || format!("invalid hours {s:?}");
    let (a, b) = s.trim().split_once('-').ok_or_else(invalid)?;
    let minutes = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && (h < 24 || m == 0)).then_some(h * 60 + m)
    };
    let start = minutes(a).ok_or_else(invalid)?;
    let end = match minutes(b).ok_or_else(invalid)? {
        0 => 1440,
        e => e,
    };
    if start >= 1440 {
        return Err(invalid());
    }
    if end < start {
        let (a, b) = (a.trim(), b.trim());
        return Err(format!(
            "hours {s:?} cross midnight: split the window at 00:00 into \"{a}-00:00\" and \"00:00-{b}\" (the second with the weekdays after)"
        ));
    }
    if end == start {
        return Err(format!("hours {s:?} are an empty window"));
    }
    Ok((start, end))
}

/// The field named in a serde message like "unknown field `foo`, expected ...".
fn field_in_message(message: &str) -> Option<String> {
    let rest = message
        .split_once("unknown field `")
        .or_else(|| message.split_once("missing field `"))?
        .1;
    let (field, _) = rest.split_once('`')?;
    Some(field.to_string())
}
