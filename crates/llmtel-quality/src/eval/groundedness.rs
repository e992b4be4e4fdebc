//! Groundedness (factuality against the context the app passes).

use std::collections::HashSet;

use super::text::{content_stems, cut, is_number, sentences, set_contains};
use super::{EvalInput, Evaluation, SyncEvaluator};

/// Groundedness: the share of the answer's factual sentences supported by the context.
///
/// A sentence with at least 3 content words is a claim (shorter ones, "Sure!", are left
/// out). A claim is supported when at least `support` (default 0.7) of its content words
/// appear in the context (light stemming, prefix match) **and** every number in it appears in
/// the context exactly (a wrong price or date is the commonest unsupported claim). Score =
/// supported claims / claims; label `grounded` at or above the threshold (default 0.75), else
/// `ungrounded`. Not applicable without context or without claims.
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
        let mut claims = 0usize;
        let mut unsupported: Vec<&str> = Vec::new();
        for sent in sentences(&input.answer) {
            let stems = content_stems(sent);
            if stems.len() < 3 {
                continue;
            }
            claims += 1;
            let found = stems.iter().filter(|w| set_contains(&ctx, w)).count();
            let numbers_ok = stems
                .iter()
                .filter(|w| is_number(w))
                .all(|n| ctx.contains(n));
            if !(numbers_ok && found as f64 / stems.len() as f64 >= self.support) {
                unsupported.push(sent);
            }
        }
        if claims == 0 {
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
        if let Some(first) = unsupported.first() {
            explanation.push_str(&format!("; unsupported: \"{}\"", cut(first, 120)));
        }
        Some(Evaluation::new("groundedness", score, label, explanation))
    }
}
