//! Fluency: repetition, truncation, non-text garbage, broken encoding.

use std::collections::HashSet;

use super::text::{sentences, words};
use super::{EvalInput, Evaluation, SyncEvaluator};

/// Fluency: starts at 1 and subtracts a penalty for each problem found.
///
/// | problem | test | penalty |
/// |---|---|---|
/// | broken encoding | U+FFFD, or mojibake (`Ã©`, `â€™`, `Â `) | 0.5 |
/// | garbage | control / private-use characters, or > 15 % of non-space characters neither letters, digits nor common punctuation, or a 60+ character token that is not a URL | 0.6 |
/// | repetition | > 25 % of word 4-grams repeated, or one sentence of 4+ words repeated 3 times | 0.5 |
/// | truncation | ends mid-sentence (no final punctuation, not a list item, heading or code), an unclosed code fence or bracket | 0.4 |
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

fn broken_encoding(s: &str) -> bool {
    s.contains('\u{FFFD}') || MOJIBAKE.iter().any(|m| s.contains(m))
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
        if broken_encoding(s) {
            score -= 0.5;
            problems.push("broken encoding".into());
        }
        if let Some(g) = garbage(s) {
            score -= 0.6;
            problems.push(format!("garbage: {g}"));
        }
        if let Some(r) = repetition(s) {
            score -= 0.5;
            problems.push(format!("repetition: {r}"));
        }
        if let Some(t) = truncation(s) {
            score -= 0.4;
            problems.push(format!("truncated: {t}"));
        }
        let score = score.max(0.0);
        let label = if score >= self.threshold {
            "fluent"
        } else {
            "disfluent"
        };
        let explanation = if problems.is_empty() {
            "no repetition, truncation, garbage or encoding problem found".to_owned()
        } else {
            problems.join("; ")
        };
        Some(Evaluation::new("fluency", score, label, explanation))
    }
}
