//! Text helpers shared by the lexical evaluators: words, stems, sentences.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "him",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yes",
    "please",
    "tell",
    "know",
    "want",
    "need",
    "get",
    "let",
    "much",
    "many",
    "there's",
    "it's",
    "i'm",
    "don't",
    "doesn't",
    "can't",
    "you're",
    "via",
    "use",
    "using",
    "used",
    "make",
    "way",
    "give",
    "explain",
    "describe",
    "like",
    "thing",
    "you'll",
    "we'll",
    "i'll",
    "they'll",
    "it'll",
    "you've",
    "we've",
    "i've",
    "isn't",
    "aren't",
    "won't",
    "wasn't",
    "that's",
    "here's",
    "let's",
    "what's",
    "enough",
    "mean",
    "means",
    "meaning",
    "happen",
    "happens",
    "exactly",
    "actually",
    "really",
    "still",
    "even",
    "already",
    "something",
    "anything",
    "everything",
    "got",
    "gets",
    "going",
    "go",
    "goes",
    "went",
    "every",
];

/// English function words (articles, pronouns, prepositions, conjunctions, auxiliaries):
/// a third to a half of the words of ordinary English prose.
const FUNCTION_WORDS: &[&str] = &[
    "a", "about", "after", "all", "am", "an", "and", "any", "are", "as", "at", "be", "been",
    "before", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has",
    "have", "he", "her", "his", "i", "if", "in", "into", "is", "it", "its", "me", "my", "no",
    "not", "of", "on", "or", "our", "she", "should", "so", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "those", "to", "up", "was", "we", "were", "what",
    "when", "which", "who", "will", "with", "would", "you", "your", "it's", "i'm", "don't",
    "can't", "you'll", "we'll", "you're", "we're", "that's", "there's",
];

/// Whether `w` (lower case) is an English function word.
pub(crate) fn is_function_word(w: &str) -> bool {
    FUNCTION_WORDS.contains(&w)
}

/// Lower-cased words (letters, digits, inner apostrophes and dots in numbers): how the
/// lexical evaluators (and llmtel-quality's exact-match and token-F1 scores) split text.
///
/// ```
/// assert_eq!(llmtel_eval::words("The Eiffel tower's 330 m!"), ["the", "eiffel", "tower's", "330", "m"]);
/// ```
pub fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let keep = c.is_alphanumeric()
            || (c == '\''
                && !cur.is_empty()
                && chars.get(i + 1).is_some_and(|n| n.is_alphabetic()))
            || ((c == '.' || c == ',')
                && cur.chars().last().is_some_and(|p| p.is_ascii_digit())
                && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit()));
        if keep {
            cur.extend(c.to_lowercase());
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    for w in &mut out {
        drop_thousands_separators(w);
    }
    out
}

/// `10,000` -> `10000`: a number whose comma-separated groups after the first have exactly 3
/// digits is written without its separators, so that both spellings match.
fn drop_thousands_separators(w: &mut String) {
    if !w.contains(',') {
        return;
    }
    let int = w.split('.').next().unwrap_or("");
    let groups: Vec<&str> = int.split(',').collect();
    let grouped = (1..=3).contains(&groups[0].len())
        && groups.iter().all(|g| g.bytes().all(|c| c.is_ascii_digit()))
        && groups[1..].iter().all(|g| g.len() == 3);
    if grouped {
        w.retain(|c| c != ',');
    }
}

pub(crate) fn is_stopword(w: &str) -> bool {
    STOPWORDS.contains(&w)
}

/// A light suffix-stripping stem (not Porter): enough to match `refunds`/`refunded`/`refund`
/// and `change`/`changes`/`changed` (a final `e` is dropped from stems of 5+ letters).
pub(crate) fn stem(w: &str) -> String {
    let mut s = strip_suffix(w);
    if s.len() >= 5 && s.ends_with('e') && !is_number(&s) {
        s.pop();
    }
    s
}

fn strip_suffix(w: &str) -> String {
    let w = w.trim_end_matches("'s");
    if w.chars().any(|c| c.is_ascii_digit()) || w.chars().count() <= 3 {
        return w.to_owned();
    }
    for suf in [
        "ations", "ation", "ments", "ment", "ness", "ingly", "ing", "edly", "ies", "ied", "ers",
        "er", "ed", "es", "ly", "s",
    ] {
        if let Some(base) = w.strip_suffix(suf) {
            if base.chars().count() >= 3 {
                return undouble(base, suf);
            }
        }
    }
    w.to_owned()
}

/// `shipp(ed)` -> `ship`, `plugg(ed)` -> `plug`: a doubled final consonant before `-ed`,
/// `-ing` or `-er` is undone (not `ll`, `ss`, `zz`, `ff`: `call`, `pass`).
fn undouble(base: &str, suffix: &str) -> String {
    let b = base.as_bytes();
    let n = b.len();
    let doubled = matches!(suffix, "ed" | "ing" | "er" | "ers" | "edly" | "ingly")
        && n >= 4
        && b[n - 1] == b[n - 2]
        && b[n - 1].is_ascii_lowercase()
        && !b"aeiouylsfz".contains(&b[n - 1]);
    if doubled {
        base[..n - 1].to_owned()
    } else {
        base.to_owned()
    }
}

/// Content-word stems of `s`: stop words dropped, stemmed.
pub(crate) fn content_stems(s: &str) -> Vec<String> {
    words(s)
        .into_iter()
        .filter(|w| {
            !is_stopword(w) && (w.chars().count() > 1 || w.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|w| stem(&w))
        .filter(|w| !is_stopword(w))
        .collect()
}

/// Groups of words that name the same thing in support, commerce and software answers (a
/// small related-term table: synonyms, and the everyday word for the technical one). Two
/// words of one group count as a match for relevance and groundedness.
const RELATED: &[&[&str]] = &[
    &["annual", "annually", "yearly", "year"],
    &["monthly", "month"],
    &["weekly", "week"],
    &["daily", "day"],
    &["refund", "reimburse", "reimbursement", "repay", "repayment"],
    &[
        "price",
        "cost",
        "fee",
        "charge",
        "pay",
        "payment",
        "bill",
        "billing",
        "cheap",
        "cheaper",
        "expensive",
        "discount",
        "save",
        "saving",
        "afford",
        "checkout",
    ],
    &["buy", "bought", "purchase", "purchased"],
    &["plan", "subscription", "tier", "membership"],
    &[
        "cancel",
        "cancellation",
        "terminate",
        "termination",
        "unsubscribe",
    ],
    &["package", "parcel", "box", "shipment", "delivery"],
    &[
        "ship",
        "shipping",
        "shipped",
        "deliver",
        "delivery",
        "dispatch",
        "dispatched",
        "courier",
    ],
    &[
        "arrive",
        "arrival",
        "deliver",
        "delivered",
        "delivery",
        "reach",
    ],
    &[
        "damage",
        "damaged",
        "broken",
        "defective",
        "faulty",
        "cracked",
    ],
    &["parking", "park", "garage", "carpark"],
    &["hotel", "room", "stay", "night", "reception"],
    &["vacation", "holiday", "leave", "pto"],
    &["employee", "staff", "worker", "personnel", "hire"],
    &["export", "download", "backup", "extract"],
    &["import", "upload"],
    &["delete", "remove", "close", "erase", "deactivate"],
    &["data", "information", "info", "records", "files"],
    &["account", "profile"],
    &["change", "edit", "update", "modify", "amend", "adjust"],
    &["undo", "revert", "reset", "rollback"],
    &["database", "db", "datastore", "store", "storage"],
    &["keep", "store", "preserve", "retain"],
    &[
        "support",
        "supported",
        "compatible",
        "integrate",
        "integration",
        "plugin",
        "plug",
    ],
    &["error", "exception", "failure", "fail", "bug", "crash"],
    &["login", "signin", "logon"],
    &["password", "passcode", "passphrase", "credentials"],
    &["email", "e-mail", "mail", "inbox"],
    &[
        "http", "request", "response", "server", "header", "endpoint",
    ],
    &[
        "limit", "quota", "cap", "capped", "throttle", "exceed", "exceeded",
    ],
    &["receive", "get", "obtain"],
    &["enable", "activate"],
    &["disable", "deactivate"],
    &["start", "begin", "launch"],
    &["stop", "end", "halt"],
    &["contact", "reach", "call", "phone", "write"],
    &["help", "assist", "assistance", "support"],
    &[
        "fast",
        "quick",
        "quickly",
        "speed",
        "performance",
        "latency",
        "slow",
    ],
    &["dict", "dictionary", "hashmap", "hash", "map"],
    &["list", "array", "vector", "vec"],
    &["function", "method", "fn"],
    &["install", "installation", "setup"],
    &[
        "configure",
        "configuration",
        "config",
        "setting",
        "settings",
    ],
    &["abroad", "overseas", "international", "country"],
    &["issue", "issued", "generate", "generated"],
    &["address", "url", "page", "link", "website", "site"],
    &["warranty", "guarantee"],
    &["battery", "charge", "charging"],
];

/// The stem of each word of [`RELATED`], with the indices of its groups; built once.
fn related_index() -> &'static HashMap<String, Vec<u16>> {
    static INDEX: OnceLock<HashMap<String, Vec<u16>>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut map: HashMap<String, Vec<u16>> = HashMap::new();
        for (g, group) in RELATED.iter().enumerate() {
            for phrase in *group {
                let Some(key) = content_stems(phrase).pop() else {
                    continue;
                };
                let ids = map.entry(key).or_default();
                let g = u16::try_from(g).unwrap_or(u16::MAX);
                if !ids.contains(&g) {
                    ids.push(g);
                }
            }
        }
        map
    })
}

/// The related-term groups of a stem (empty for most words).
pub(crate) fn related_groups(stem: &str) -> &'static [u16] {
    related_index().get(stem).map_or(&[], Vec::as_slice)
}

/// The related-term groups of every stem of `stems`.
pub(crate) fn group_set<'a>(stems: impl IntoIterator<Item = &'a String>) -> HashSet<u16> {
    stems
        .into_iter()
        .flat_map(|s| related_groups(s).iter().copied())
        .collect()
}

/// How a term is found among stems: the same word (or stem / 5-character prefix), the
/// tail of a compound (`live` in `outlive`, `vector` in `pgvector`), or a related term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Same,
    Compound,
    Related,
}

/// Whether `term` is found among `set` (whose related-term groups are `groups`).
pub(crate) fn find_term(set: &HashSet<String>, groups: &HashSet<u16>, term: &str) -> Option<Found> {
    if set_contains(set, term) {
        return Some(Found::Same);
    }
    if is_number(term) {
        return None;
    }
    // `live` is the tail of `outliv(es)`: compare without a final `e`.
    let core = term.strip_suffix('e').unwrap_or(term);
    let n = core.len();
    if term.len() >= 4 && set.iter().any(|s| s.len() >= n + 2 && s.ends_with(core)) {
        return Some(Found::Compound);
    }
    related_groups(term)
        .iter()
        .any(|g| groups.contains(g))
        .then_some(Found::Related)
}

/// The set of content-word stems of `s`.
pub(crate) fn stem_set(s: &str) -> HashSet<String> {
    content_stems(s).into_iter().collect()
}

/// Whether a stem is a number (it must then match exactly).
pub(crate) fn is_number(w: &str) -> bool {
    w.chars().any(|c| c.is_ascii_digit())
}

/// Whether two stems match: equal, or one a prefix of the other of at least 5 characters
/// (`configur` / `configuration`).
pub(crate) fn stems_match(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if is_number(a) || is_number(b) {
        return false;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.len() >= 5 && long.starts_with(short)
}

/// Whether `w` matches any stem of `set`.
pub(crate) fn set_contains(set: &HashSet<String>, w: &str) -> bool {
    set.contains(w) || (!is_number(w) && w.len() >= 5 && set.iter().any(|s| stems_match(s, w)))
}

/// Sentences of `s`: split after `.`, `!`, `?` followed by white space, and at line breaks;
/// list markers and empty pieces dropped.
pub(crate) fn sentences(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let end_here = b == b'\n'
            || ((b == b'.' || b == b'!' || b == b'?')
                && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace())
                && !(b == b'.' && ends_with_abbrev(&s[start..i])));
        if end_here {
            push_sentence(&mut out, &s[start..=i]);
            start = i + 1;
        }
        i += 1;
    }
    if start < s.len() {
        push_sentence(&mut out, &s[start..]);
    }
    out
}

fn ends_with_abbrev(s: &str) -> bool {
    let last = s.rsplit(|c: char| c.is_whitespace()).next().unwrap_or("");
    matches!(
        last.to_ascii_lowercase().as_str(),
        "e.g" | "i.e" | "etc" | "vs" | "mr" | "mrs" | "dr" | "no" | "approx" | "inc"
    ) || (last.len() == 1 && last.chars().all(|c| c.is_ascii_uppercase()))
}

fn push_sentence<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let t = s
        .trim()
        .trim_start_matches(['-', '*', '•', '#', '>'])
        .trim();
    let t = strip_list_number(t);
    if t.chars().any(|c| c.is_alphanumeric()) {
        out.push(t);
    }
}

fn strip_list_number(t: &str) -> &str {
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && digits < 3 {
        let rest = &t[digits..];
        if let Some(r) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return r.trim();
        }
    }
    t
}

/// Cuts `s` to at most `max` characters (on a char boundary): how long an evaluator's input
/// may be.
///
/// ```
/// assert_eq!(llmtel_eval::cut("héllo", 2), "hé");
/// ```
pub fn cut(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
