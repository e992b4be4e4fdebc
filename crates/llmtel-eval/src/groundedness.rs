//! Groundedness (factuality against the context the app passes).

use std::collections::HashSet;

use super::text::{
    content_stems, cut, find_term, group_set, is_number, is_stopword, sentences, set_contains,
    stem, words,
};
use super::{EvalInput, Evaluation, SyncEvaluator};

/// Words of courtesy sentences ("Great question, happy to help with that!"): a sentence made
/// only of these is not a claim.
const COURTESY: &[&str] = &[
    "great",
    "question",
    "happy",
    "glad",
    "help",
    "thank",
    "thanks",
    "sure",
    "hope",
    "welcome",
    "sorry",
    "pleasure",
    "assist",
    "else",
    "feel",
    "free",
    "ask",
    "good",
    "day",
    "hi",
    "hello",
    "certainly",
    "absolutely",
    "course",
    "happily",
    "delighted",
    "wonderful",
    "nice",
    "further",
    "questions",
    "anytime",
    "apologies",
    "inconvenience",
    "understand",
    "frustration",
];

/// Words that negate a clause (verbal negation: "no" in "no daily cap" negates a noun, not
/// the clause).
const NEGATIONS: &[&str] = &[
    "not",
    "never",
    "cannot",
    "can't",
    "don't",
    "doesn't",
    "didn't",
    "isn't",
    "aren't",
    "wasn't",
    "weren't",
    "won't",
    "wouldn't",
    "shouldn't",
    "mustn't",
    "hasn't",
    "haven't",
];

/// Groundedness: the share of the answer's factual sentences supported by the context.
///
/// A sentence with at least 3 content words is a claim (shorter ones, "Sure!", and courtesy
/// sentences such as "Great question, happy to help with that!" are left out). A claim is
/// supported when
/// - at least `support` (default 0.7) of its content words appear in the context: the same
///   word (light stemming, prefix match), the tail of a compound, or a related term from the
///   small table shared with [`LexicalRelevance`](crate::LexicalRelevance) (`come out` is not
///   in it, but `every` / `each`, `page` / `address`, `download` / `export` are);
/// - every number in it appears in the context exactly, thousands separators ignored (`10000`
///   = `10,000`: a wrong price or date is the commonest unsupported claim);
/// - every name in it (a capitalised word inside the sentence, or a mixed-case one such as
///   `aptX`) appears in the context: one invented place or product is enough to be wrong;
/// - no clause of it flips the negation of the context clause it restates best (the clause
///   sharing the most content words, at least 2 and half of its own): "does not need to be
///   registered" against "must be registered", "we'll reissue past invoices" against "past
///   invoices cannot be reissued".
///
/// Score = supported claims / claims; label `grounded` at or above the threshold (default
/// 0.75), else `ungrounded`. Not applicable without context or without claims.
///
/// ```
/// use llmtel_eval::{EvalInput, Groundedness, SyncEvaluator};
/// let ctx = "Past invoices cannot be reissued. Invoices are issued on the 1st of each month.";
/// let g = |a: &str| {
///     Groundedness::default().score(&EvalInput::new(a).with_context(ctx)).unwrap().label
/// };
/// assert_eq!(g("Invoices come out on the 1st of every month."), "grounded");
/// assert_eq!(g("We will reissue your past invoices."), "ungrounded");
/// ```
#[derive(Clone, Debug)]
pub struct Groundedness {
    support: f64,
    threshold: f64,
}

impl Default for Groundedness {
    fn default() -> Self {
        Groundedness {
            support: 0.7,
            threshold: 0.75,
        }
    }
}

impl Groundedness {
    /// Sets the share of a sentence's words the context must contain (default 0.7).
    pub fn with_support(mut self, s: f64) -> Self {
        self.support = s;
        self
    }
}

/// A clause: its content stems and whether it is negated.
struct Clause {
    stems: HashSet<String>,
    negated: bool,
}

/// Clauses of a sentence: split at `,`, `;`, `:`, `(`, `)` and at "and", "but", "while",
/// "whereas", "so".
fn clauses(sentence: &str) -> Vec<Clause> {
    let mut out = Vec::new();
    for part in sentence.split([',', ';', ':', '(', ')']) {
        let w = words(part);
        for piece in w.split(|x| matches!(x.as_str(), "and" | "but" | "while" | "whereas" | "so")) {
            let text = piece.join(" ");
            let stems: HashSet<String> = content_stems(&text).into_iter().collect();
            if stems.is_empty() {
                continue;
            }
            out.push(Clause {
                stems,
                negated: piece.iter().any(|x| NEGATIONS.contains(&x.as_str())),
            });
        }
    }
    out
}

/// A clause of `sentence` whose negation differs from every context clause that restates it
/// best.
fn flipped_negation(sentence: &str, ctx: &[Clause]) -> bool {
    clauses(sentence).iter().any(|c| {
        let shared = |k: &Clause| c.stems.iter().filter(|s| k.stems.contains(*s)).count();
        let best = ctx.iter().map(shared).max().unwrap_or(0);
        best >= 2
            && 2 * best >= c.stems.len()
            && ctx
                .iter()
                .filter(|k| shared(k) == best)
                .all(|k| k.negated != c.negated)
    })
}

/// Names in `sentence`: words with an upper-case letter that do not open it (`Singapore`,
/// `aptX`, `UTC`), lower-cased and stemmed.
fn names(sentence: &str) -> Vec<String> {
    sentence
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|t| !t.is_empty())
        .skip(1)
        .filter(|t| {
            t.chars().count() >= 2
                && t.chars().any(char::is_uppercase)
                && t.chars().any(char::is_alphabetic)
                && !t.starts_with("I'")
                && !is_stopword(&t.to_lowercase())
        })
        .map(|t| stem(&t.to_lowercase()))
        .collect()
}

impl SyncEvaluator for Groundedness {
    fn name(&self) -> &str {
        "groundedness"
    }

    fn score(&self, input: &EvalInput) -> Option<Evaluation> {
        if input.context.is_empty() {
            return None;
        }
        let ctx: HashSet<String> = input
            .context
            .iter()
            .flat_map(|d| content_stems(d))
            .collect();
        let ctx_groups = group_set(&ctx);
        let ctx_clauses: Vec<Clause> = input
            .context
            .iter()
            .flat_map(|d| sentences(d))
            .flat_map(clauses)
            .collect();
        let mut claims = 0usize;
        let mut unsupported: Vec<(&str, &str)> = Vec::new();
        for sent in sentences(&input.answer) {
            let stems = content_stems(sent);
            if stems.len() < 3 || stems.iter().all(|w| COURTESY.contains(&w.as_str())) {
                continue;
            }
            claims += 1;
            let found = stems
                .iter()
                .filter(|w| find_term(&ctx, &ctx_groups, w).is_some())
                .count();
            let why = if stems.iter().any(|n| is_number(n) && !ctx.contains(n)) {
                Some("a number not in the context")
            } else if names(sent).iter().any(|n| !set_contains(&ctx, n)) {
                Some("a name not in the context")
            } else if (found as f64) < self.support * stems.len() as f64 {
                Some("too few of its words in the context")
            } else if flipped_negation(sent, &ctx_clauses) {
                Some("the negation of the context flipped")
            } else {
                None
            };
            if let Some(why) = why {
                unsupported.push((sent, why));
            }
        }
        if claims == 0 || (input.context_cut && !unsupported.is_empty()) {
            // With context cut, an unsupported claim may be supported past the cut: not
            // judged.
            return None;
        }
        let supported = claims - unsupported.len();
        let score = supported as f64 / claims as f64;
        let label = if score >= self.threshold {
            "grounded"
        } else {
            "ungrounded"
        };
        let mut explanation = format!("{supported} of {claims} sentences supported by the context");
        if let Some((first, why)) = unsupported.first() {
            explanation.push_str(&format!("; unsupported ({why}): \"{}\"", cut(first, 120)));
        }
        Some(Evaluation::new("groundedness", score, label, explanation))
    }
}
