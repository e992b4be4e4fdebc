//! Lexical relevance of the answer to the question.

use super::text::{content_stems, set_contains, stem_set};
use super::{EvalInput, Evaluation, SyncEvaluator};

/// Lexical relevance: the share of the question's content words (stop words dropped, light
/// stemming, prefix match of 5+ characters) that the answer uses.
///
/// Score = matched / question content words; label `relevant` at or above the threshold
/// (default 0.5), else `irrelevant`. Not applicable without a question. It misses answers that
/// are relevant in other words (synonyms): that is what the embeddings evaluator (not built
/// yet) is for.
///
/// ```
/// use llmtel_quality::{EvalInput, LexicalRelevance, SyncEvaluator};
/// let r = LexicalRelevance::default().score(
///     &EvalInput::new("You can reset your password from the login page.")
///         .with_question("How do I reset my password?"),
/// ).unwrap();
/// assert_eq!(r.label, "relevant");
/// ```
#[derive(Clone, Debug)]
pub struct LexicalRelevance {
    threshold: f64,
}

impl Default for LexicalRelevance {
    fn default() -> Self {
        LexicalRelevance { threshold: 0.5 }
    }
}

impl LexicalRelevance {
    /// Sets the score at or above which the answer is labelled `relevant`.
    pub fn with_threshold(mut self, t: f64) -> Self {
        self.threshold = t;
        self
    }
}

impl SyncEvaluator for LexicalRelevance {
    fn name(&self) -> &str {
        "relevance"
    }

    fn score(&self, input: &EvalInput) -> Option<Evaluation> {
        let q = input.question.as_deref()?;
        let mut terms = content_stems(q);
        terms.sort();
        terms.dedup();
        if terms.is_empty() {
            return None;
        }
        let answer = stem_set(&input.answer);
        let missing: Vec<&str> = terms
            .iter()
            .filter(|t| !set_contains(&answer, t))
            .map(String::as_str)
            .collect();
        let matched = terms.len() - missing.len();
        let score = matched as f64 / terms.len() as f64;
        let label = if score >= self.threshold {
            "relevant"
        } else {
            "irrelevant"
        };
        let mut explanation = format!(
            "{matched} of {} question terms appear in the answer",
            terms.len()
        );
        if !missing.is_empty() {
            explanation.push_str(&format!(
                " (missing: {})",
                missing
                    .iter()
                    .take(8)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Some(Evaluation::new("relevance", score, label, explanation))
    }
}
