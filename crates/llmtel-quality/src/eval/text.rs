//! Text helpers shared by the lexical evaluators: words, stems, sentences.

use std::collections::HashSet;

const STOPWORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as",
    "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by",
    "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from",
    "further", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how",
    "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "no",
    "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out",
    "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their",
    "theirs", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too",
    "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while",
    "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yes", "please", "tell",
    "know", "want", "need", "get", "let", "much", "many", "there's", "it's", "i'm", "don't",
    "doesn't", "can't", "you're", "via", "use", "using", "used", "make", "way", "give", "explain",
    "describe", "like", "thing",
];

/// English function words (articles, pronouns, prepositions, conjunctions, auxiliaries):
/// a third to a half of the words of ordinary English prose.
const FUNCTION_WORDS: &[&str] = &[
    "a", "about", "after", "all", "am", "an", "and", "any", "are", "as", "at", "be", "been",
    "before", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has",
    "have", "he", "her", "his", "i", "if", "in", "into", "is", "it", "its", "me", "my", "no",
    "not", "of", "on", "or", "our", "she", "should", "so", "than", "that", "the", "their",
    "them", "then", "there", "these", "they", "this", "those", "to", "up", "was", "we", "were",
    "what", "when", "which", "who", "will", "with", "would", "you", "your", "it's", "i'm",
    "don't", "can't", "you'll", "we'll", "you're", "we're", "that's", "there's",
];

/// Whether `w` (lower case) is an English function word.
pub(crate) fn is_function_word(w: &str) -> bool {
    FUNCTION_WORDS.contains(&w)
}

/// Lower-cased words (letters, digits, inner apostrophes and dots in numbers).
pub(crate) fn words(s: &str) -> Vec<String> {
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
    out
}

pub(crate) fn is_stopword(w: &str) -> bool {
    STOPWORDS.contains(&w)
}

/// A light suffix-stripping stem (not Porter): enough to match `refunds`/`refunded`/`refund`.
pub(crate) fn stem(w: &str) -> String {
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
                return base.to_owned();
            }
        }
    }
    w.to_owned()
}

/// Content-word stems of `s`: stop words dropped, stemmed.
pub(crate) fn content_stems(s: &str) -> Vec<String> {
    words(s)
        .into_iter()
        .filter(|w| {
            !is_stopword(w) && (w.chars().count() > 1 || w.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|w| stem(&w))
        .collect()
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

/// Cuts `s` to at most `max` characters (on a char boundary).
pub(crate) fn cut(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
