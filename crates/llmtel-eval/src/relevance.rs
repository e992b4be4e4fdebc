//! Lexical relevance of the answer to the question.

use super::text::{Found, content_stems, find_term, group_set, stem_set, words};
use super::{EvalInput, Evaluation, SyncEvaluator};

/// Question words that carry little of what is asked ("how long", "the best way", "new"):
/// they count half.
const LOW_INFORMATION: &[&str] = &[
    "time",
    "long",
    "new",
    "last",
    "first",
    "best",
    "good",
    "right",
    "problem",
    "work",
    "take",
    "find",
    "start",
    "difference",
    "possible",
    "easy",
    "quick",
    "kind",
    "type",
];

/// Auxiliaries that open a yes/no question ("Do you ship to Norway?").
const YES_NO_OPENERS: &[&str] = &[
    "do", "does", "did", "is", "are", "was", "were", "can", "could", "will", "would", "should",
    "has", "have", "may", "am",
];

/// Words that open a direct answer to a yes/no question.
const DIRECT_ANSWERS: &[&str] = &[
    "yes",
    "yeah",
    "yep",
    "no",
    "nope",
    "sure",
    "certainly",
    "absolutely",
    "correct",
    "definitely",
    "unfortunately",
    "not",
];

/// Lexical relevance: how much of what the question asks about the answer talks about.
///
/// Scoring: the question's content words (stop words dropped, light stemming) are the terms.
/// A term is found in the answer as the same word (same stem, or a shared prefix of 5+
/// letters: `configure` / `configuration`), as the tail of a compound (`live` in `outlives`,
/// `vector` in `pgvector`), or as a related term from a small built-in table of support,
/// commerce and software words (`yearly` / `annual`, `box` / `package`, `download` /
/// `export`, `staff` / `employees`). Each term weighs 1, except low-information question
/// words (`time`, `long`, `new`, `best`, ...), which weigh 0.5. A yes/no question ("Do you
/// ship to Norway?") answered directly ("Yes, ...", "We do.", "No, ...") earns one more
/// found term of weight 1, since such answers refer back to the question instead of repeating
/// it. When a question of several terms shares a single one with the answer, that term counts
/// half: repeating the topic ("Our subscription gives you ..." to "How do I cancel my
/// subscription?") is not answering. Score = found weight / total weight; label `relevant` at
/// or above the threshold (default 0.5), else `irrelevant`. Not applicable without a
/// question.
///
/// It reads words, not meaning: paraphrases outside the table and answers that need world
/// knowledge ("Too Many Requests" for "429") are missed; that is what the embeddings
/// evaluator and the judge are for.
///
/// ```
/// use llmtel_eval::{EvalInput, LexicalRelevance, SyncEvaluator};
/// let r = LexicalRelevance::default().score(
///     &EvalInput::new("You can reset your password from the login page.")
///         .with_question("How do I reset my password?"),
/// ).unwrap();
/// assert_eq!(r.label, "relevant");
/// let r = LexicalRelevance::default().score(
///     &EvalInput::new("Yearly subscriptions are reimbursed in full within 30 days.")
///         .with_question("Can I get a refund for an annual plan?"),
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

/// Whether `answer` opens with a direct answer to `question`, a yes/no question: "Yes",
/// "No", ... or a pronoun and the question's auxiliary ("We do.", "It does not").
fn direct_answer(question: &str, answer: &str) -> bool {
    let q = words(question);
    let Some(aux) = q.first().filter(|w| YES_NO_OPENERS.contains(&w.as_str())) else {
        return false;
    };
    let a = words(answer);
    let Some(first) = a.first() else {
        return false;
    };
    if DIRECT_ANSWERS.contains(&first.as_str()) {
        return true;
    }
    let pronoun = matches!(
        first.as_str(),
        "we" | "i" | "you" | "it" | "they" | "he" | "she" | "that" | "there"
    );
    let verb = a.get(1).map(String::as_str).unwrap_or("");
    pronoun && (verb == aux || verb.strip_suffix("n't") == Some(aux.as_str()))
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
        let groups = group_set(&answer);
        let mut total = 0.0;
        let mut found = 0.0;
        let mut related = 0usize;
        let mut missing: Vec<&str> = Vec::new();
        for t in &terms {
            let weight = if LOW_INFORMATION.contains(&t.as_str()) {
                0.5
            } else {
                1.0
            };
            total += weight;
            match find_term(&answer, &groups, t) {
                Some(how) => {
                    found += weight;
                    related += usize::from(how == Found::Related);
                }
                None => missing.push(t),
            }
        }
        // One shared term of several is the topic repeated, not the question answered.
        let single = terms.len() >= 2 && terms.len() - missing.len() == 1;
        if single {
            found *= 0.5;
        }
        let direct = direct_answer(q, &input.answer);
        if direct {
            found += 1.0;
            total += 1.0;
        }
        let score = found / total;
        let label = if score >= self.threshold {
            "relevant"
        } else {
            "irrelevant"
        };
        let mut explanation = format!(
            "{} of {} question terms found in the answer",
            terms.len() - missing.len(),
            terms.len()
        );
        if related > 0 {
            explanation.push_str(&format!(" ({related} as related terms)"));
        }
        if direct {
            explanation.push_str("; a direct answer to a yes/no question");
        }
        if !missing.is_empty() {
            explanation.push_str(&format!(
                "; missing: {}",
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
