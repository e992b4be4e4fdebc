//! Refusal detection.

use super::text::cut;
use super::{EvalInput, Evaluation, SyncEvaluator};

/// Phrases that open a refusal (matched case-insensitively, curly apostrophes folded).
pub const REFUSAL_PHRASES: &[&str] = &[
    "i can't help with",
    "i cannot help with",
    "i can't assist",
    "i cannot assist",
    "i can't provide",
    "i cannot provide",
    "i can't share",
    "i cannot share",
    "i can't do that",
    "i won't be able to",
    "i will not be able to",
    "i'm not able to",
    "i am not able to",
    "i'm unable to",
    "i am unable to",
    "i must decline",
    "i have to decline",
    "i won't help",
    "i will not help",
    "i won't provide",
    "as an ai language model, i can",
    "as an ai, i can't",
    "as an ai, i cannot",
    "against my guidelines",
    "not something i can help with",
    "i'm not allowed to",
    "i am not allowed to",
    "i'm not permitted to",
    "i can't comply",
    "i cannot comply",
];

/// Refusal detection: a refusal phrase in the first 300 characters of the answer.
///
/// Score 0 and label `refusal` when found, else score 1 and label `answered`. A refusal is
/// sometimes the right answer: the monitor watches its *rate* per (model, feature).
#[derive(Clone, Debug, Default)]
pub struct Refusal;

/// Whether `answer` opens with a refusal, and the phrase found.
pub(crate) fn refusal_phrase(answer: &str) -> Option<&'static str> {
    let head = cut(answer, 300).to_lowercase().replace(['’', '‘'], "'");
    REFUSAL_PHRASES.iter().copied().find(|p| head.contains(p))
}

impl SyncEvaluator for Refusal {
    fn name(&self) -> &str {
        "refusal"
    }

    fn score(&self, input: &EvalInput) -> Option<Evaluation> {
        Some(match refusal_phrase(&input.answer) {
            Some(p) => Evaluation::new("refusal", 0.0, "refusal", format!("opens with \"{p}\"")),
            None => Evaluation::new("refusal", 1.0, "answered", "no refusal phrase"),
        })
    }
}
