//! Fluency: repetition, truncation, non-text garbage, broken encoding, word salad.

use std::collections::HashSet;

use super::text::{is_function_word, sentences, words};
use super::{EvalInput, Evaluation, SyncEvaluator};

/// Fluency: starts at 1 and subtracts a penalty for each problem found.
///
/// | problem | test | penalty |
/// |---|---|---|
/// | broken encoding | U+FFFD, mojibake (`Ã©`, `â€™`, `Â `), or escaped HTML outside code (two or more of `&lt;`, `&gt;`, `&amp;`, `&nbsp;`, `&quot;`, `&#39;`) | 0.5 |
/// | garbage | control / private-use characters, or > 15 % of non-space characters neither letters, digits nor common punctuation, or a 60+ character token that is not a URL | 0.6 |
/// | repetition | > 25 % of word 4-grams repeated, or one sentence of 4+ words repeated 3 times | 0.5 |
/// | truncation | ends mid-sentence (no final punctuation, not a list item, heading or code), an unclosed code fence or bracket | 0.4 |
/// | not grammatical | word salad: 12+ words of English prose of which under 15 % are function words (`the`, `of`, `is`, ...); or two or more word pairs English never has: an article before a lower-case function word (`the not`), a sentence ending on an article or conjunction (`... by and.`), a pronoun that disagrees with its verb (`it are`, `me can`), a modal before `of` or `is` (`would of`) | 0.4 |
///
/// A single line of at most 12 words ending on a content word ("No problem, your refund is on
/// its way") is a chat-style sentence, not a truncation; a longer one, or one ending on a
/// function word ("... the events you want to"), is truncated. The grammar checks read prose
/// only (code, quoted text, tables and list items are left out) and only English words, so
/// other languages pass them.
///
/// Label `fluent` when the score is at least 0.7, else `disfluent`; the explanation names the
/// problems.
#[derive(Clone, Debug)]
pub struct Fluency {
    threshold: f64,
}

impl Default for Fluency {
    fn default() -> Self {
        Fluency { threshold: 0.7 }
    }
}

const MOJIBAKE: &[&str] = &[
    "Ã©", "Ã¨", "Ã¶", "Ã¼", "Ã¤", "Ã±", "Ã§", "â€™", "â€œ", "â€", "Â ", "Ã ",
];

const HTML_ENTITIES: &[&str] = &[
    "&lt;", "&gt;", "&amp;", "&nbsp;", "&quot;", "&#39;", "&#x27;",
];

fn broken_encoding(s: &str) -> Option<&'static str> {
    if s.contains('\u{FFFD}') {
        return Some("replacement characters");
    }
    if MOJIBAKE.iter().any(|m| s.contains(m)) {
        return Some("mojibake");
    }
    let entities: usize = outside_code(s)
        .map(|part| {
            HTML_ENTITIES
                .iter()
                .map(|e| part.matches(e).count())
                .sum::<usize>()
        })
        .sum();
    (entities >= 2).then_some("escaped HTML")
}

/// The pieces of `s` outside inline code and code fences.
fn outside_code(s: &str) -> impl Iterator<Item = &str> {
    s.split('`').step_by(2)
}

/// Words of English prose: the tokens of `s` outside code, quotes, tables and list items,
/// each with whether it ends a sentence; `None` for a token that is not a plain word.
fn prose_tokens(s: &str) -> Vec<Option<(String, bool)>> {
    let mut out = Vec::new();
    for part in outside_code(s) {
        for line in part.lines() {
            let l = line.trim_start();
            if l.starts_with(['|', '-', '*', '•', '#', '>']) {
                continue;
            }
            for tok in l.split_whitespace() {
                let end = tok.ends_with(['.', '!', '?']);
                let w = tok.trim_end_matches(['.', ',', ';', ':', '!', '?']);
                let plain = !w.is_empty() && w.chars().all(|c| c.is_alphabetic() || c == '\'');
                out.push(plain.then(|| (w.to_owned(), end)));
            }
            out.push(None);
        }
    }
    out
}

/// Pairs of words that English grammar never puts side by side.
fn slip(a: &str, a_ends: bool, b: Option<&str>) -> bool {
    let la = a.to_lowercase();
    let article = a == "a" || matches!(la.as_str(), "the" | "an");
    if a_ends {
        return article || matches!(la.as_str(), "and" | "or" | "my" | "your" | "their" | "our");
    }
    let Some(b) = b else { return false };
    let lb = b.to_lowercase();
    let (la, lb) = (la.as_str(), lb.as_str());
    (article
        && b == lb
        && matches!(
            lb,
            "the"
                | "a"
                | "an"
                | "of"
                | "and"
                | "or"
                | "not"
                | "by"
                | "is"
                | "are"
                | "was"
                | "were"
                | "to"
                | "it"
                | "he"
                | "she"
                | "they"
                | "we"
                | "i"
                | "in"
                | "on"
                | "at"
                | "with"
                | "for"
                | "from"
                | "will"
                | "would"
                | "should"
                | "has"
                | "have"
        ))
        || matches!(
            (la, lb),
            ("i", "is" | "are")
                | ("you" | "we" | "they", "is" | "am")
                | ("he" | "she" | "it", "are" | "am")
                | (
                    "me",
                    "can" | "will" | "is" | "am" | "are" | "have" | "do" | "would" | "could"
                )
                | (
                    "could" | "would" | "should" | "might" | "must",
                    "of" | "is" | "are" | "was" | "were" | "am"
                )
        )
}

/// Function words of other common languages (French, Spanish, German, Italian, Portuguese,
/// Dutch): text with as many of these as English ones is not checked for word salad.
const OTHER_FUNCTION_WORDS: &[&str] = &[
    "le", "la", "les", "de", "des", "du", "et", "est", "un", "une", "vous", "nous", "sur", "el",
    "los", "las", "que", "y", "del", "por", "con", "para", "der", "die", "das", "und", "ist",
    "nicht", "mit", "den", "ein", "eine", "il", "di", "che", "per", "non", "o", "da", "em", "os",
    "het", "een", "van", "niet",
];

fn ungrammatical(s: &str) -> Option<String> {
    let toks = prose_tokens(s);
    let plain: Vec<String> = toks
        .iter()
        .flatten()
        .map(|(w, _)| w.to_lowercase())
        .collect();
    let english = plain.iter().filter(|w| is_function_word(w)).count();
    let other = plain
        .iter()
        .filter(|w| OTHER_FUNCTION_WORDS.contains(&w.as_str()))
        .count();
    if plain.len() >= 12 && english > other && (english as f64) < 0.15 * plain.len() as f64 {
        return Some(format!(
            "word salad ({english} function words in {})",
            plain.len()
        ));
    }
    let slips = toks
        .windows(2)
        .filter(|p| match &p[0] {
            Some((a, ends)) => slip(a, *ends, p[1].as_ref().map(|(b, _)| b.as_str())),
            None => false,
        })
        .count();
    (slips >= 2).then(|| format!("{slips} word pairs English grammar does not allow"))
}

fn garbage(s: &str) -> Option<&'static str> {
    let mut odd = 0usize;
    let mut total = 0usize;
    for c in s.chars() {
        if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
            return Some("control characters");
        }
        if ('\u{E000}'..='\u{F8FF}').contains(&c) {
            return Some("private-use characters");
        }
        if c.is_whitespace() {
            continue;
        }
        total += 1;
        if !(c.is_alphanumeric() || ".,;:!?'\"()[]{}-–—_/%$€£+=*&#@<>|`~^…’‘“”°".contains(c))
        {
            odd += 1;
        }
    }
    if total > 0 && odd as f64 / total as f64 > 0.15 {
        return Some("many symbols that are not text");
    }
    let long_token = s.split_whitespace().any(|t| {
        t.chars().count() >= 60 && !t.starts_with("http") && !t.contains("://") && !t.contains('/')
    });
    long_token.then_some("a long run of characters without spaces")
}

fn repetition(s: &str) -> Option<String> {
    let w = words(s);
    if w.len() >= 12 {
        let grams: Vec<String> = w.windows(4).map(|g| g.join(" ")).collect();
        let unique: HashSet<&String> = grams.iter().collect();
        let repeated = 1.0 - unique.len() as f64 / grams.len() as f64;
        if repeated > 0.25 {
            return Some(format!(
                "{:.0} % of 4-word phrases repeated",
                repeated * 100.0
            ));
        }
    }
    let mut seen: std::collections::HashMap<String, u32> = Default::default();
    for sent in sentences(s) {
        let sw = words(sent);
        if sw.len() >= 4 {
            let n = seen.entry(sw.join(" ")).or_default();
            *n += 1;
            if *n >= 3 {
                return Some("a sentence repeated 3 times".to_owned());
            }
        }
    }
    None
}

fn truncation(s: &str) -> Option<&'static str> {
    let t = s.trim_end();
    if t.is_empty() {
        return Some("empty answer");
    }
    if t.matches("```").count() % 2 == 1 {
        return Some("an unclosed code fence");
    }
    let opens = t.matches(['(', '[', '{']).count();
    let closes = t.matches([')', ']', '}']).count();
    if opens > closes {
        return Some("an unclosed bracket");
    }
    let last_line = t.lines().last().unwrap_or("").trim();
    let list_or_heading = last_line.starts_with(['-', '*', '•', '#', '|', '>'])
        || last_line.split_once(['.', ')']).is_some_and(|(n, _)| {
            !n.is_empty() && n.len() <= 2 && n.chars().all(|c| c.is_ascii_digit())
        });
    if list_or_heading || t.ends_with("```") {
        return None;
    }
    let last = t.chars().last().unwrap_or('.');
    if ".!?)]}\"'`*:;…’”".contains(last)
        || last.is_ascii_digit() && t.split_whitespace().count() <= 3
    {
        return None;
    }
    // Emoji and other symbols close a chatty sentence too.
    if !last.is_alphanumeric() && !matches!(last, ',' | '-' | '(' | '/' | '&') {
        return None;
    }
    // So does the last content word of a short chat line ("your refund is on its way").
    let w = words(t);
    let chat = !t.contains('\n')
        && w.len() <= 12
        && w.last()
            .is_some_and(|l| l.chars().all(char::is_alphabetic) && !is_function_word(l));
    if chat {
        return None;
    }
    Some("ends mid-sentence")
}

impl SyncEvaluator for Fluency {
    fn name(&self) -> &str {
        "fluency"
    }

    fn score(&self, input: &EvalInput) -> Option<Evaluation> {
        let s = input.answer.as_str();
        let mut score: f64 = 1.0;
        let mut problems: Vec<String> = Vec::new();
        if let Some(e) = broken_encoding(s) {
            score -= 0.5;
            problems.push(format!("broken encoding: {e}"));
        }
        if let Some(g) = garbage(s) {
            score -= 0.6;
            problems.push(format!("garbage: {g}"));
        }
        if let Some(r) = repetition(s) {
            score -= 0.5;
            problems.push(format!("repetition: {r}"));
        }
        // An answer cut to the input limit ends mid-sentence because of the cut.
        if let Some(t) = truncation(s).filter(|_| !input.answer_cut) {
            score -= 0.4;
            problems.push(format!("truncated: {t}"));
        }
        if let Some(g) = ungrammatical(s) {
            score -= 0.4;
            problems.push(format!("not grammatical: {g}"));
        }
        let score = score.max(0.0);
        let label = if score >= self.threshold {
            "fluent"
        } else {
            "disfluent"
        };
        let explanation = if problems.is_empty() {
            "no repetition, truncation, garbage, encoding or grammar problem found".to_owned()
        } else {
            problems.join("; ")
        };
        Some(Evaluation::new("fluency", score, label, explanation))
    }
}
