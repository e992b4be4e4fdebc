//! The quality score: a configurable weighted composite of a call's signals.

use std::collections::BTreeMap;

use serde::Serialize;

/// What is known about one call's quality so far. Every field is optional: a signal that is
/// missing is **left out** of the score, not counted as zero.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QualityInputs {
    /// Whether the call succeeded (`None`: unknown).
    pub success: Option<bool>,
    /// Whether the answer was complete: not cut by `length`, not stopped by a content filter.
    /// Left out for failed calls.
    pub complete: Option<bool>,
    /// Latency, seconds. Left out for failed calls.
    pub latency_s: Option<f64>,
    /// The user's rating, normalised to `0..=1`.
    pub rating: Option<f64>,
    /// Evaluator scores, by evaluation name (at most [`MAX_EVALUATIONS_PER_CALL`]).
    pub evaluations: Vec<(String, f64)>,
}

/// How many evaluator scores a call keeps (memory bound of the monitor's call index).
pub const MAX_EVALUATIONS_PER_CALL: usize = 16;

impl QualityInputs {
    /// Sets (or replaces) an evaluator score; ignored past [`MAX_EVALUATIONS_PER_CALL`].
    pub fn set_evaluation(&mut self, name: &str, score: f64) {
        if let Some(e) = self.evaluations.iter_mut().find(|(n, _)| n == name) {
            e.1 = score;
        } else if self.evaluations.len() < MAX_EVALUATIONS_PER_CALL {
            self.evaluations.push((name.to_owned(), score));
        }
    }
}

/// The weights of the quality score and the latency target.
///
/// `score = Σ wᵢ·sᵢ / Σ wᵢ` over the signals **present** for the call, each `sᵢ` in `0..=1`:
///
/// | signal | `sᵢ` | default weight |
/// |---|---|---|
/// | `success` | 1 if the call succeeded, else 0 | 2 |
/// | `complete` | 1 unless truncated by `length` or stopped by a content filter | 1 |
/// | `latency` | `min(1, target / latency)` (target default 5 s) | 1 |
/// | `rating` | the user's rating, normalised | 2 |
/// | `relevance`, `fluency`, `json_validity`, `pii` | the evaluator's score | 1 |
/// | `groundedness` | the evaluator's score | 2 |
/// | `refusal` | the evaluator's score (0 for a refusal) | 0.5 |
/// | any other evaluator | its score | [`QualityWeights::with_default_weight`], 1 |
///
/// A weight of 0 leaves a signal out. No signal at all gives no score (`None`).
///
/// ```
/// use llmtel_score::{QualityInputs, QualityWeights};
/// let w = QualityWeights::default();
/// let ok = QualityInputs { success: Some(true), complete: Some(true), latency_s: Some(1.0), ..Default::default() };
/// assert_eq!(w.score(&ok), Some(1.0));
/// // An unknown rating is left out, not counted as 0:
/// let mut rated = ok.clone();
/// rated.rating = Some(0.0);
/// assert!((w.score(&rated).unwrap() - 4.0 / 6.0).abs() < 1e-9); // (2+1+1+0) / (2+1+1+2)
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QualityWeights {
    weights: BTreeMap<String, f64>,
    default_weight: f64,
    latency_target_s: f64,
}

impl Default for QualityWeights {
    fn default() -> Self {
        let weights = [
            ("success", 2.0),
            ("complete", 1.0),
            ("latency", 1.0),
            ("rating", 2.0),
            ("relevance", 1.0),
            ("fluency", 1.0),
            ("groundedness", 2.0),
            ("refusal", 0.5),
            ("json_validity", 1.0),
            ("pii", 1.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        QualityWeights {
            weights,
            default_weight: 1.0,
            latency_target_s: 5.0,
        }
    }
}

impl QualityWeights {
    /// Sets the weight of a signal (`success`, `complete`, `latency`, `rating`, or an
    /// evaluation name). Negative or non-finite weights become 0.
    pub fn with_weight(mut self, signal: impl Into<String>, weight: f64) -> Self {
        let w = if weight.is_finite() {
            weight.max(0.0)
        } else {
            0.0
        };
        self.weights.insert(signal.into(), w);
        self
    }

    /// Sets the weight of evaluations not named with [`QualityWeights::with_weight`].
    pub fn with_default_weight(mut self, weight: f64) -> Self {
        self.default_weight = if weight.is_finite() {
            weight.max(0.0)
        } else {
            0.0
        };
        self
    }

    /// Sets the latency at or under which the latency signal is 1 (default 5 s).
    pub fn with_latency_target(mut self, seconds: f64) -> Self {
        if seconds.is_finite() && seconds > 0.0 {
            self.latency_target_s = seconds;
        }
        self
    }

    /// The weight of a signal.
    pub fn weight(&self, signal: &str) -> f64 {
        self.weights
            .get(signal)
            .copied()
            .unwrap_or(self.default_weight)
    }

    /// The composite score in `0..=1`, or `None` when no weighted signal is present.
    pub fn score(&self, q: &QualityInputs) -> Option<f64> {
        let mut num = 0.0;
        let mut den = 0.0;
        let mut add = |name: &str, v: f64| {
            let w = self.weight(name);
            if w > 0.0 && v.is_finite() {
                num += w * v.clamp(0.0, 1.0);
                den += w;
            }
        };
        if let Some(s) = q.success {
            add("success", if s { 1.0 } else { 0.0 });
        }
        if q.success != Some(false) {
            if let Some(c) = q.complete {
                add("complete", if c { 1.0 } else { 0.0 });
            }
            if let Some(l) = q.latency_s {
                let v = if l <= self.latency_target_s {
                    1.0
                } else {
                    self.latency_target_s / l
                };
                add("latency", v);
            }
        }
        if let Some(r) = q.rating {
            add("rating", r);
        }
        for (name, s) in &q.evaluations {
            add(name, *s);
        }
        (den > 0.0).then(|| num / den)
    }
}
