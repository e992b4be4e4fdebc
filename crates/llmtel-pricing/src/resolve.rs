//! Model-name resolution ([`Catalog::resolve`]) and suggestions ([`Catalog::suggest`]).

use std::fmt;
use std::sync::{Arc, RwLock};

use crate::Catalog;

/// How a model name was matched to a catalog entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchKind {
    /// The name is a catalog id.
    Exact,
    /// The name matches an id or alias ignoring ASCII/Unicode case.
    Case,
    /// A provider or path prefix was removed (`openai/gpt-4o`, `models/gemini-2.5-pro`).
    ProviderPrefix,
    /// A dated or versioned snapshot suffix was removed (`gpt-4o-2024-08-06`,
    /// `claude-3-5-sonnet-20241022`, `-latest`, `-001`, `-preview-05-06`, `@20241022`).
    Snapshot,
    /// An AWS Bedrock model id was reduced to the model name
    /// (`us.anthropic.claude-3-5-sonnet-20241022-v2:0`).
    BedrockId,
    /// The name is an alias of a catalog entry.
    Alias,
    /// A deployment name (e.g. an Azure OpenAI deployment) mapped to its model by the
    /// user's configuration (`[deployments]` in a price file,
    /// [`Catalog::add_deployment`]).
    Deployment,
}

impl MatchKind {
    /// Snake-case name for attributes and JSON: `exact`, `case`, `provider_prefix`,
    /// `snapshot`, `bedrock_id`, `alias`, `deployment`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Exact => "exact",
            MatchKind::Case => "case",
            MatchKind::ProviderPrefix => "provider_prefix",
            MatchKind::Snapshot => "snapshot",
            MatchKind::BedrockId => "bedrock_id",
            MatchKind::Alias => "alias",
            MatchKind::Deployment => "deployment",
        }
    }
}

impl fmt::Display for MatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A model name resolved to a catalog entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The catalog id of the entry.
    pub key: String,
    /// How the name matched.
    pub kind: MatchKind,
}

/// One step of [`Catalog::explain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveStep {
    /// The rule: `deployment`, `exact / alias / case`, `provider_prefix`, `snapshot`,
    /// `bedrock_id`, ...
    pub step: &'static str,
    /// The name (or mapping) tried.
    pub tried: String,
    /// The catalog id it matched, if any.
    pub matched: Option<String>,
}

/// The LiteLLM key prefixes under which a provider's models are listed, by
/// `gen_ai.provider.name`.
pub(crate) fn litellm_prefixes(provider: &str) -> &'static [&'static str] {
    match provider {
        "openai" => &["openai/"],
        "anthropic" => &["anthropic/"],
        "gcp.gemini" => &["gemini/"],
        "gcp.vertex_ai" => &["vertex_ai/"],
        "aws.bedrock" => &["bedrock/", "bedrock/converse/"],
        "azure.ai.openai" | "azure" => &["azure/"],
        "azure.ai.inference" => &["azure_ai/"],
        "mistral_ai" => &["mistral/"],
        "cohere" => &["cohere/", "cohere_chat/"],
        "deepseek" => &["deepseek/"],
        "x_ai" => &["xai/"],
        "groq" => &["groq/"],
        "together" | "together_ai" => &["together_ai/"],
        "fireworks" | "fireworks_ai" => {
            &["fireworks_ai/accounts/fireworks/models/", "fireworks_ai/"]
        }
        "perplexity" => &["perplexity/"],
        _ => &[],
    }
}

/// Most deployments followed one after another (`a = "b"`, `b = "c"`, ...) when resolving
/// a name; past it the name reached is resolved as a model name.
pub const MAX_DEPLOYMENT_HOPS: usize = 8;

/// Most names kept by the resolution cache; when full it is emptied and refilled.
pub const RESOLVE_CACHE_CAPACITY: usize = 4096;

/// The longest model name (bytes, trimmed) [`Catalog::resolve`] takes through every step;
/// a longer one is matched only as a deployment, id or alias (steps 1–4, in time linear in
/// its length), and a name or provider hint longer than this is never cached. The other
/// steps try each prefix-stripped form with each snapshot suffix removed: time cubic in
/// the length of a name, which a client may choose. No catalog name comes near it.
pub const MAX_RESOLVE_NAME_BYTES: usize = 512;

/// Cache of resolved names (hits and misses), keyed by provider hint and name.
#[derive(Default)]
pub(crate) struct ResolveCache(RwLock<CacheMap>);

/// Name → result (hits and misses), for one provider hint. Hashed with foldhash (seeded per
/// process): this is looked up for every priced call, and the map is bounded.
type ByName = foldhash::HashMap<Box<str>, Option<Arc<Resolved>>>;

/// Provider hint (`""` for none) → name → result. Two levels, so a lookup borrows the
/// caller's strings instead of building a key (this runs for every priced call).
#[derive(Default)]
pub(crate) struct CacheMap {
    by_provider: foldhash::HashMap<Box<str>, ByName>,
    len: usize,
}

impl Clone for ResolveCache {
    /// A clone starts with an empty cache.
    fn clone(&self) -> Self {
        ResolveCache::default()
    }
}

impl fmt::Debug for ResolveCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.0.read().map(|m| m.len).unwrap_or(0);
        f.debug_struct("ResolveCache").field("len", &len).finish()
    }
}

impl ResolveCache {
    fn get(&self, model: &str, provider: Option<&str>) -> Option<Option<Arc<Resolved>>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is
        // still a valid map, so keep using it.
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.by_provider
            .get(provider.unwrap_or(""))?
            .get(model)
            .cloned()
    }

    /// The number of names cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.read().map_or(0, |m| m.len)
    }

    fn put(&self, model: &str, provider: Option<&str>, value: Option<Arc<Resolved>>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        if map.len >= RESOLVE_CACHE_CAPACITY {
            *map = CacheMap::default();
        }
        let names = map
            .by_provider
            .entry(provider.unwrap_or("").into())
            .or_default();
        if names.insert(model.into(), value).is_none() {
            map.len += 1;
        }
    }
}

/// AWS Bedrock cross-region inference profile prefixes.
const BEDROCK_REGIONS: &[&str] = &["us", "eu", "apac", "us-gov", "global", "jp", "au", "ca"];
/// AWS Bedrock model vendors.
const BEDROCK_VENDORS: &[&str] = &[
    "anthropic",
    "meta",
    "amazon",
    "cohere",
    "mistral",
    "ai21",
    "deepseek",
    "openai",
    "qwen",
    "writer",
    "google",
    "stability",
    "moonshot",
    "minimax",
];
/// Words removed as snapshot suffixes.
const SNAPSHOT_WORDS: &[&str] = &["latest", "preview", "exp", "experimental", "default"];

impl Catalog {
    /// Resolves a model name to a catalog entry, or `None`.
    ///
    /// Tried in this order, the first that matches wins:
    /// 1. **deployment**: the name, or the name without its provider prefix
    ///    (`azure/my-gpt4o-prod`), is a deployment mapped by the user's configuration
    ///    (`[deployments]` in a price file, [`Catalog::add_deployment`]); its model is then
    ///    resolved by these steps again ([`MatchKind::Deployment`]): a chain of deployments
    ///    is followed (up to [`MAX_DEPLOYMENT_HOPS`]), and a name whose mapping the chain
    ///    already followed is resolved by steps 2–8 (`gpt-4o = "azure/gpt-4o"` prices
    ///    `gpt-4o` as `azure/gpt-4o`; two deployments naming each other resolve to nothing);
    /// 2. **exact** id ([`MatchKind::Exact`]);
    /// 3. **alias** ([`MatchKind::Alias`]);
    /// 4. id or alias **ignoring case** ([`MatchKind::Case`]);
    ///
    ///    Steps 2–4 are one lookup; when a provider hint is given and the entry found
    ///    belongs to another provider, the provider's own entry under its LiteLLM prefix
    ///    wins (`gpt-4o` with hint `azure.ai.openai` → `azure/gpt-4o`,
    ///    [`MatchKind::ProviderPrefix`]).
    /// 5. **provider prefix**: with a provider hint, the name under that provider's prefix
    ///    (`together` → `together_ai/<name>`, `fireworks` →
    ///    `fireworks_ai/accounts/fireworks/models/<name>`, ...); then leading `/` segments
    ///    removed one at a time (`openai/gpt-4o`, `bedrock/…`, `vertex_ai/…`, `gemini/…`,
    ///    `azure/…`, `groq/…`, `together_ai/…`, `fireworks_ai/accounts/fireworks/models/…`,
    ///    `models/gemini-…`, full Vertex resource names), each by steps 2–4
    ///    ([`MatchKind::ProviderPrefix`]);
    /// 6. **snapshot suffix** removed from the name and from each prefix-stripped form,
    ///    one `-` segment at a time, while it is a date part or version number (2, 3, 4 or
    ///    8 digits: `-2024-08-06`, `-20241022`, `-001`, `-0125`), a word among `latest`,
    ///    `preview`, `exp`, `experimental`, `default`, or `vN`; anything after `@` is
    ///    removed first (`claude-3-5-sonnet-v2@20241022`). Steps 2–4 are tried after each
    ///    removal, so a listed snapshot (e.g. `gpt-4o-2024-05-13`, priced differently)
    ///    always wins ([`MatchKind::Snapshot`]);
    /// 7. **Bedrock id**: a trailing `:N` and `-vN` removed, then a region prefix (`us.`,
    ///    `eu.`, `apac.`, `global.`, …) and the vendor (`anthropic.`, `meta.`, …), then
    ///    steps 2–4 and 6 ([`MatchKind::BedrockId`]);
    /// 8. **id suffix**: the last `/` segment, ignoring case, equals the last segment of a
    ///    prefixed catalog id (`Llama-3.3-70B-Instruct-Turbo` →
    ///    `together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo`; the hinted provider's
    ///    entry first, else the smallest id) ([`MatchKind::ProviderPrefix`]).
    ///
    /// `provider` (a `gen_ai.provider.name` value) otherwise only breaks ties, when one
    /// name matches several entries at the same step (an alias or a case-folded name
    /// shared by two providers' entries); without it the smallest id wins.
    ///
    /// Results (hits and misses) are cached per (provider, name), up to
    /// [`RESOLVE_CACHE_CAPACITY`] names. A name longer than [`MAX_RESOLVE_NAME_BYTES`] is
    /// matched by steps 1–4 only, and neither it nor a provider hint that long is cached.
    ///
    /// ```
    /// use llmtel_pricing::{Catalog, MatchKind};
    ///
    /// let r = Catalog::builtin().resolve("openai/gpt-4o-2024-08-06", None).unwrap();
    /// assert_eq!((r.key.as_str(), r.kind), ("gpt-4o", MatchKind::Snapshot));
    /// ```
    pub fn resolve(&self, model: &str, provider: Option<&str>) -> Option<Resolved> {
        self.resolve_shared(model, provider).map(|r| (*r).clone())
    }

    /// Whether `model` resolves to a catalog entry ([`Catalog::resolve`] without copying
    /// the result).
    pub fn knows(&self, model: &str, provider: Option<&str>) -> bool {
        self.resolve_shared(model, provider).is_some()
    }

    /// [`Catalog::resolve`], sharing the cached result.
    pub(crate) fn resolve_shared(
        &self,
        model: &str,
        provider: Option<&str>,
    ) -> Option<Arc<Resolved>> {
        // The cache keeps names of a bounded length: 4,096 names of a megabyte are 4 GB.
        let cacheable = model.len() <= MAX_RESOLVE_NAME_BYTES
            && provider.is_none_or(|p| p.len() <= MAX_RESOLVE_NAME_BYTES);
        if cacheable {
            if let Some(hit) = self.cache.get(model, provider) {
                return hit;
            }
        }
        let found = self.resolve_uncached(model.trim(), provider).map(Arc::new);
        if cacheable {
            self.cache.put(model, provider, found.clone());
        }
        found
    }

    /// Every step [`Catalog::resolve`] takes for `model`, in order, with what it tried
    /// and whether it matched; the last step that matched is the result. Not cached.
    ///
    /// ```
    /// use llmtel_pricing::Catalog;
    /// let steps = Catalog::builtin().explain("openai/gpt-4o-2024-08-06", None);
    /// assert!(steps.iter().any(|s| s.matched.as_deref() == Some("gpt-4o")));
    /// ```
    pub fn explain(&self, model: &str, provider: Option<&str>) -> Vec<ResolveStep> {
        let mut steps = Vec::new();
        self.resolve_steps(
            model.trim(),
            provider,
            &mut Vec::new(),
            &mut Some(&mut steps),
        );
        steps
    }

    fn resolve_uncached(&self, model: &str, provider: Option<&str>) -> Option<Resolved> {
        self.resolve_steps(model, provider, &mut Vec::new(), &mut None)
    }

    /// The model the deployment `name` serves, resolved as [`Catalog::resolve`] resolves a
    /// call reporting `name` through that mapping (following chains of deployments), or
    /// `None` when `name` is no deployment or its mapping leads to no model (an unknown
    /// model, or deployments that only map back to each other). `llmtel prices check`
    /// judges a price file's `[deployments]` with it.
    ///
    /// ```
    /// use llmtel_pricing::{Catalog, MatchKind};
    /// let mut c = Catalog::builtin().clone();
    /// c.add_deployment("prod", "staging");
    /// c.add_deployment("staging", "gpt-4o");
    /// c.add_deployment("ping", "pong");
    /// c.add_deployment("pong", "ping");
    /// let r = c.resolve_deployment("prod", None).unwrap();
    /// assert_eq!((r.key.as_str(), r.kind), ("gpt-4o", MatchKind::Deployment));
    /// assert!(c.resolve_deployment("ping", None).is_none());
    /// ```
    pub fn resolve_deployment(&self, name: &str, provider: Option<&str>) -> Option<Resolved> {
        let (name, target) = self.deployments.get_key_value(name.trim())?;
        let mut chain = vec![name.as_str()];
        self.resolve_steps(target, provider, &mut chain, &mut None)
            .map(|r| Resolved {
                key: r.key,
                kind: MatchKind::Deployment,
            })
    }

    /// `chain`: the deployments followed to reach `model` (step 1 skips them, and applies
    /// no more once [`MAX_DEPLOYMENT_HOPS`] are followed). A deployment's target is resolved
    /// through the mapping again (chains: `a = "b"`, `b = "gpt-4o"`), but a name whose
    /// mapping was already followed is resolved as a model name: `gpt-4o = "azure/gpt-4o"`
    /// resolves to `azure/gpt-4o`, and `a = "b"`, `b = "a"` to nothing (without the chain
    /// they recursed until the stack overflowed).
    fn resolve_steps<'a>(
        &'a self,
        model: &str,
        provider: Option<&str>,
        chain: &mut Vec<&'a str>,
        log: &mut Option<&mut Vec<ResolveStep>>,
    ) -> Option<Resolved> {
        if model.is_empty() {
            return None;
        }
        let mut note = |step: &'static str, tried: &str, found: Option<&str>| {
            if let Some(log) = log.as_mut() {
                log.push(ResolveStep {
                    step,
                    tried: tried.to_string(),
                    matched: found.map(str::to_string),
                });
            }
        };
        // 1. deployments (the name, then the name without its prefix)
        if !self.deployments.is_empty() && chain.len() < MAX_DEPLOYMENT_HOPS {
            let base = model.rsplit('/').next().unwrap_or(model);
            let names = if base == model {
                &[model][..]
            } else {
                &[model, base]
            };
            for &name in names {
                let Some((name, target)) = self.deployments.get_key_value(name) else {
                    continue;
                };
                if chain.contains(&name.as_str()) {
                    continue;
                }
                chain.push(name);
                let found = self.resolve_steps(target, provider, chain, &mut None);
                chain.pop();
                let tried = format!("deployment {name} -> {target}");
                note("deployment", &tried, found.as_ref().map(|r| r.key.as_str()));
                if let Some(r) = found {
                    return Some(Resolved {
                        key: r.key,
                        kind: MatchKind::Deployment,
                    });
                }
            }
        }
        // 2-4. exact, alias, case
        let direct = self.direct(model, provider);
        let hinted_elsewhere = match (&direct, provider) {
            (Some((key, _)), Some(p)) => self
                .entries
                .get(key)
                .is_some_and(|e| !e.provider.eq_ignore_ascii_case(p)),
            _ => false,
        };
        if hinted_elsewhere {
            if let Some(key) = self.under_provider_prefix(model, provider) {
                note("provider_prefix", model, Some(&key));
                return Some(Resolved {
                    key,
                    kind: MatchKind::ProviderPrefix,
                });
            }
        }
        note(
            "exact / alias / case",
            model,
            direct.as_ref().map(|(k, _)| k.as_str()),
        );
        if let Some((key, kind)) = direct {
            return Some(Resolved { key, kind });
        }
        if model.len() > MAX_RESOLVE_NAME_BYTES {
            // Steps 5-8 try each prefix-stripped form with each snapshot suffix removed:
            // time cubic in the length of the name (MAX_RESOLVE_NAME_BYTES).
            return None;
        }
        let done = |key: String, kind: MatchKind| Some(Resolved { key, kind });
        // 5. provider prefixes
        if let Some(key) = self.under_provider_prefix(model, provider) {
            note("provider_prefix (hinted provider)", model, Some(&key));
            return done(key, MatchKind::ProviderPrefix);
        }
        let stripped: Vec<&str> = model
            .match_indices('/')
            .map(|(i, _)| &model[i + 1..])
            .filter(|s| !s.is_empty())
            .collect();
        for name in &stripped {
            let found = self.direct(name, provider).map(|(k, _)| k);
            note("provider_prefix", name, found.as_deref());
            if let Some(key) = found {
                return done(key, MatchKind::ProviderPrefix);
            }
        }
        let base = stripped.last().copied().unwrap_or(model);
        // 6. snapshot suffixes, on the full name then each stripped form
        for name in std::iter::once(model).chain(stripped.iter().copied()) {
            let found = self.without_snapshot(name, provider);
            note("snapshot", name, found.as_deref());
            if let Some(key) = found {
                return done(key, MatchKind::Snapshot);
            }
        }
        // 7. Bedrock ids
        if let Some(name) = bedrock_model_name(base) {
            let found = self
                .direct(name, provider)
                .map(|(k, _)| k)
                .or_else(|| self.without_snapshot(name, provider));
            note("bedrock_id", name, found.as_deref());
            if let Some(key) = found {
                return done(key, MatchKind::BedrockId);
            }
        }
        // 8. last segment of a prefixed catalog id
        if let Some(ids) = self.basenames.get(&base.to_lowercase()) {
            let found = self.pick(ids, provider);
            note(
                "provider_prefix (catalog id ending in /name)",
                base,
                found.as_deref(),
            );
            if let Some(key) = found {
                return done(key, MatchKind::ProviderPrefix);
            }
        }
        None
    }

    /// `<prefix><name>` for the LiteLLM prefixes of the hinted provider, by steps 2–4,
    /// keeping only entries of that provider.
    fn under_provider_prefix(&self, name: &str, provider: Option<&str>) -> Option<String> {
        let provider = provider?;
        litellm_prefixes(provider).iter().find_map(|prefix| {
            let qualified = format!("{prefix}{name}");
            let (key, _) = self.direct(&qualified, Some(provider))?;
            self.entries
                .get(&key)
                .is_some_and(|e| e.provider.eq_ignore_ascii_case(provider))
                .then_some(key)
        })
    }

    /// Steps 1–3: exact id, alias, case-insensitive id or alias.
    fn direct(&self, name: &str, provider: Option<&str>) -> Option<(String, MatchKind)> {
        if self.entries.contains_key(name) {
            return Some((name.to_string(), MatchKind::Exact));
        }
        if let Some(ids) = self.aliases.get(name) {
            if let Some(id) = self.pick(ids, provider) {
                return Some((id, MatchKind::Alias));
            }
        }
        if let Some(ids) = self.folded.get(&name.to_lowercase()) {
            if let Some(id) = self.pick(ids, provider) {
                return Some((id, MatchKind::Case));
            }
        }
        None
    }

    /// The id among `ids` whose provider equals the hint, else the first (smallest).
    fn pick(&self, ids: &[String], provider: Option<&str>) -> Option<String> {
        let hinted = provider.and_then(|p| {
            ids.iter().find(|id| {
                self.entries
                    .get(id.as_str())
                    .is_some_and(|e| e.provider.eq_ignore_ascii_case(p))
            })
        });
        hinted.or_else(|| ids.first()).cloned()
    }

    /// Step 5: strip snapshot suffixes one at a time, trying steps 1–3 after each.
    fn without_snapshot(&self, name: &str, provider: Option<&str>) -> Option<String> {
        let mut current = name;
        if let Some((head, _)) = current.split_once('@') {
            current = head;
            if let Some((key, _)) = self.direct(current, provider) {
                return Some(key);
            }
        }
        while let Some((head, last)) = current.rsplit_once('-') {
            if head.is_empty() || !is_snapshot_segment(last) {
                return None;
            }
            current = head;
            if let Some((key, _)) = self.direct(current, provider) {
                return Some(key);
            }
        }
        None
    }

    /// The catalog ids nearest to `model` by edit distance (case-insensitive, provider
    /// prefix ignored), closest first, ties by id; at most `n`. None for a name longer
    /// than [`SUGGEST_MAX_BYTES`] (no model name is that long, and the edit distances to
    /// every catalog name would cost time in proportion to its length).
    ///
    /// ```
    /// use llmtel_pricing::Catalog;
    ///
    /// let near = Catalog::builtin().suggest("gpt-4-o", 3);
    /// assert!(near.iter().any(|id| id == "gpt-4o"));
    /// ```
    pub fn suggest(&self, model: &str, n: usize) -> Vec<String> {
        if n == 0 {
            return Vec::new();
        }
        if model.trim().len() > SUGGEST_MAX_BYTES {
            return Vec::new();
        }
        let lower = model.trim().to_lowercase();
        let base = lower.rsplit('/').next().unwrap_or(&lower);
        let mut scored: Vec<(usize, &str)> = self
            .entries
            .values()
            .map(|e| {
                let d = std::iter::once(e.id.as_str())
                    .chain(e.aliases.iter().map(String::as_str))
                    .map(|name| {
                        let name = name.to_lowercase();
                        levenshtein(base, &name).min(levenshtein(&lower, &name))
                    })
                    .min()
                    .unwrap_or(usize::MAX);
                (d, e.id.as_str())
            })
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(n)
            .map(|(_, id)| id.to_string())
            .collect()
    }
}

/// The longest model name (bytes, trimmed) [`Catalog::suggest`] looks for near names of.
pub const SUGGEST_MAX_BYTES: usize = 128;

fn is_snapshot_segment(seg: &str) -> bool {
    let all_digits = !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit());
    (all_digits && matches!(seg.len(), 2 | 3 | 4 | 8))
        || SNAPSHOT_WORDS.contains(&seg)
        || seg
            .strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `us.anthropic.claude-3-5-sonnet-20241022-v2:0` -> `claude-3-5-sonnet-20241022`;
/// `None` when the name has no Bedrock vendor prefix.
fn bedrock_model_name(name: &str) -> Option<&str> {
    let mut rest = name;
    if let Some((region, tail)) = rest.split_once('.') {
        if BEDROCK_REGIONS.contains(&region) {
            rest = tail;
        }
    }
    let (vendor, tail) = rest.split_once('.')?;
    if !BEDROCK_VENDORS.contains(&vendor) {
        return None;
    }
    let mut model = tail;
    if let Some((head, n)) = model.rsplit_once(':') {
        if n.bytes().all(|b| b.is_ascii_digit()) {
            model = head;
        }
    }
    if let Some((head, v)) = model.rsplit_once("-v") {
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            model = head;
        }
    }
    (!model.is_empty()).then_some(model)
}

/// Edit distance (insertions, deletions, substitutions) over chars.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bedrock_names_lose_region_vendor_and_version() {
        assert_eq!(
            bedrock_model_name("us.anthropic.claude-3-5-sonnet-20241022-v2:0"),
            Some("claude-3-5-sonnet-20241022")
        );
        assert_eq!(
            bedrock_model_name("anthropic.claude-3-haiku-20240307-v1:0"),
            Some("claude-3-haiku-20240307")
        );
        assert_eq!(bedrock_model_name("gpt-4.1"), None);
        assert_eq!(bedrock_model_name("gemini-2.5-pro"), None);
    }

    #[test]
    fn snapshot_segments() {
        for s in [
            "2024", "08", "001", "0125", "20241022", "latest", "preview", "exp", "v2",
        ] {
            assert!(is_snapshot_segment(s), "{s}");
        }
        for s in ["4", "4o", "mini", "turbo", "12345", "v", "pro"] {
            assert!(!is_snapshot_segment(s), "{s}");
        }
    }

    fn catalog_with(ids: &[&str]) -> Catalog {
        let models: String = ids
            .iter()
            .map(|id| {
                format!(
                    "[[model]]\nid = \"{id}\"\nprovider = \"openai\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 1\noutput = 2\n"
                )
            })
            .collect();
        Catalog::from_toml_str(&models, "test.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn overlong_names_and_provider_hints_are_not_cached() {
        let long_id = format!("m{}", "x".repeat(MAX_RESOLVE_NAME_BYTES));
        let c = catalog_with(&["gpt-4o", &long_id]);
        // An overlong id still resolves exactly; an overlong name resolves to nothing; an
        // overlong hint still resolves the name. None of them is kept.
        let exact = c.resolve(&long_id, None).map(|r| (r.key, r.kind));
        assert_eq!(exact, Some((long_id.clone(), MatchKind::Exact)));
        assert_eq!(c.resolve(&format!("openai/{long_id}-2024"), None), None);
        let hint = "p".repeat(MAX_RESOLVE_NAME_BYTES + 1);
        assert_eq!(
            c.resolve("gpt-4o", Some(&hint)).map(|r| r.key).as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(c.cache.len(), 0);
        // Names up to the bound are cached (hits and misses).
        assert!(c.resolve("openai/gpt-4o-2024-08-06", None).is_some());
        assert!(
            c.resolve(&"y".repeat(MAX_RESOLVE_NAME_BYTES), None)
                .is_none()
        );
        assert_eq!(c.cache.len(), 2);
    }

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("gpt-4o", "gpt-4o"), 0);
    }
}
