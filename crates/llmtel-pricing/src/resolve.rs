//! Model-name resolution ([`Catalog::resolve`]) and suggestions ([`Catalog::suggest`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;

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
    /// The caller mapped a deployment name (e.g. an Azure OpenAI deployment) to the
    /// model; never returned by the catalog itself.
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

/// Most names kept by the resolution cache; when full it is emptied and refilled.
pub const RESOLVE_CACHE_CAPACITY: usize = 4096;

/// Cache of resolved names (hits and misses), keyed by provider hint and name.
#[derive(Default)]
pub(crate) struct ResolveCache(RwLock<HashMap<String, Option<Resolved>>>);

impl Clone for ResolveCache {
    /// A clone starts with an empty cache.
    fn clone(&self) -> Self {
        ResolveCache::default()
    }
}

impl fmt::Debug for ResolveCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.0.read().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("ResolveCache").field("len", &len).finish()
    }
}

impl ResolveCache {
    fn key(model: &str, provider: Option<&str>) -> String {
        let p = provider.unwrap_or("");
        let mut k = String::with_capacity(p.len() + 1 + model.len());
        k.push_str(p);
        k.push('\u{0}');
        k.push_str(model);
        k
    }

    fn get(&self, key: &str) -> Option<Option<Resolved>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is
        // still a valid map, so keep using it.
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned()
    }

    fn put(&self, key: String, value: Option<Resolved>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= RESOLVE_CACHE_CAPACITY {
            map.clear();
        }
        map.insert(key, value);
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
    /// 1. **exact** id ([`MatchKind::Exact`]);
    /// 2. **alias** ([`MatchKind::Alias`]);
    /// 3. id or alias **ignoring case** ([`MatchKind::Case`]);
    /// 4. **provider prefix** removed: everything up to the last `/` (`openai/gpt-4o`,
    ///    `anthropic/…`, `bedrock/…`, `vertex_ai/…`, `gemini/…`, `models/gemini-…`,
    ///    full Vertex resource names), then steps 1–3 ([`MatchKind::ProviderPrefix`]);
    /// 5. **snapshot suffix** removed, one `-` segment at a time, while it is a date part
    ///    or version number (2, 3, 4 or 8 digits: `-2024-08-06`, `-20241022`, `-001`,
    ///    `-0125`), a word among `latest`, `preview`, `exp`, `experimental`, `default`, or
    ///    `vN`; anything after `@` is removed first (`claude-3-5-sonnet-v2@20241022`).
    ///    Steps 1–3 are tried after each removal, so a listed snapshot (e.g.
    ///    `gpt-4o-2024-05-13`, priced differently) always wins ([`MatchKind::Snapshot`]);
    /// 6. **Bedrock id**: a trailing `:N` and `-vN` removed, then a region prefix (`us.`,
    ///    `eu.`, `apac.`, `global.`, …) and the vendor (`anthropic.`, `meta.`, …), then
    ///    steps 1–3 and 5 ([`MatchKind::BedrockId`]).
    ///
    /// `provider` (a `gen_ai.provider.name` value) is only used to break ties, when one
    /// name matches several entries at the same step (an alias or a case-folded name
    /// shared by two providers' entries); without it the smallest id wins.
    ///
    /// Results (hits and misses) are cached per (provider, name), up to
    /// [`RESOLVE_CACHE_CAPACITY`] names.
    ///
    /// ```
    /// use llmtel_pricing::{Catalog, MatchKind};
    ///
    /// let r = Catalog::builtin().resolve("openai/gpt-4o-2024-08-06", None).unwrap();
    /// assert_eq!((r.key.as_str(), r.kind), ("gpt-4o", MatchKind::Snapshot));
    /// ```
    pub fn resolve(&self, model: &str, provider: Option<&str>) -> Option<Resolved> {
        let key = ResolveCache::key(model, provider);
        if let Some(hit) = self.cache.get(&key) {
            return hit;
        }
        let found = self.resolve_uncached(model.trim(), provider);
        self.cache.put(key, found.clone());
        found
    }

    fn resolve_uncached(&self, model: &str, provider: Option<&str>) -> Option<Resolved> {
        let done = |key: String, kind: MatchKind| Some(Resolved { key, kind });
        if model.is_empty() {
            return None;
        }
        if let Some((key, kind)) = self.direct(model, provider) {
            return done(key, kind);
        }
        let base = match model.rfind('/') {
            Some(i) => &model[i + 1..],
            None => model,
        };
        if base.is_empty() {
            return None;
        }
        if base.len() != model.len() {
            if let Some((key, _)) = self.direct(base, provider) {
                return done(key, MatchKind::ProviderPrefix);
            }
        }
        if let Some(key) = self.without_snapshot(base, provider) {
            return done(key, MatchKind::Snapshot);
        }
        if let Some(name) = bedrock_model_name(base) {
            if let Some((key, _)) = self.direct(name, provider) {
                return done(key, MatchKind::BedrockId);
            }
            if let Some(key) = self.without_snapshot(name, provider) {
                return done(key, MatchKind::BedrockId);
            }
        }
        None
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
    /// prefix ignored), closest first, ties by id; at most `n`.
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

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("gpt-4o", "gpt-4o"), 0);
    }
}
