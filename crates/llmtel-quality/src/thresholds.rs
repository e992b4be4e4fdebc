//! Thresholds a user states per (model, feature), judged alongside the learned baselines.
//!
//! The defaults are the product's promise: an alert when the error rate exceeds 20 %, when the
//! p95 latency reaches 2× its learned baseline, and when the average user rating falls below
//! 0.6. Set them in code with the `with_*` builders or load them from a config file
//! ([`ThresholdsConfig`], serde):
//!
//! ```
//! use llmtel_quality::{MonitorConfig, Thresholds, ThresholdsConfig};
//! // In code: 10 % errors for the checkout feature, a fixed 4 s p95 on top of the 2× rule.
//! let cfg = MonitorConfig::default().with_series_thresholds(
//!     Some("gpt-4o-mini"),
//!     Some("checkout"),
//!     Thresholds::default()
//!         .with_error_rate_above(0.10)
//!         .with_latency_p95_above_s(4.0),
//! );
//! assert!(cfg.validate().is_ok());
//! // From JSON (TOML through `toml::from_str` works the same):
//! let t = ThresholdsConfig::from_json(r#"{
//!     "default": { "rating_below": 0.7 },
//!     "series": [ { "feature": "search", "thresholds": { "cost_per_call_factor": 3.0 } } ]
//! }"#).unwrap();
//! assert_eq!(t.default.rating_below, Some(0.7));
//! assert_eq!(t.default.error_rate_above, Some(0.2)); // not stated: the product default
//! ```

use serde::{Deserialize, Serialize};

use crate::detect::DetectorKind;

/// Thresholds of one series. `None` turns a rule off; the learned-baseline detectors run
/// whatever these say.
///
/// A judged block of calls (see [`crate::DetectorConfig::min_samples`]) **breaches** a stated
/// threshold when its value is past it; it is **back** when it is past it the other way by a
/// margin (hysteresis): 10 % of the threshold for `*_above` / `*_below`, half the distance to
/// the baseline for `*_factor` rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Alert when the share of failed calls is above this (`0..1`; default `0.2`, i.e. 20 %).
    pub error_rate_above: Option<f64>,
    /// Alert when the p95 latency is at least this multiple of its learned baseline (`> 1`;
    /// default `2.0`). Judged once the baseline is learnt.
    pub latency_p95_factor: Option<f64>,
    /// Alert when the p95 latency is above this many seconds (default none).
    pub latency_p95_above_s: Option<f64>,
    /// Alert when the average user rating (`0..=1`) is below this (default `0.6`).
    pub rating_below: Option<f64>,
    /// Alert when an evaluator's average score (`0..=1`) is below this (default none).
    pub score_below: Option<f64>,
    /// Alert when the average cost per priced call is at least this multiple of its learned
    /// baseline (`> 1`; default none: the learned detector alerts from 1.5×).
    pub cost_per_call_factor: Option<f64>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            error_rate_above: Some(0.2),
            latency_p95_factor: Some(2.0),
            latency_p95_above_s: None,
            rating_below: Some(0.6),
            score_below: None,
            cost_per_call_factor: None,
        }
    }
}

/// A stated threshold is outside the range it can take.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("quality threshold `{field}` is {value}; {expected}")]
pub struct ThresholdError {
    /// The field (`error_rate_above`, `series[2].rating_below`, ...), or `json` for a parse
    /// error.
    pub field: String,
    /// The value given (NaN for a parse error).
    pub value: f64,
    /// What it should be.
    pub expected: String,
}

impl Thresholds {
    /// No stated threshold at all: only the learned-baseline detectors run.
    pub fn none() -> Self {
        Thresholds {
            error_rate_above: None,
            latency_p95_factor: None,
            latency_p95_above_s: None,
            rating_below: None,
            score_below: None,
            cost_per_call_factor: None,
        }
    }

    /// Sets [`Thresholds::error_rate_above`] (`None` turns it off).
    pub fn with_error_rate_above(mut self, share: impl Into<Option<f64>>) -> Self {
        self.error_rate_above = share.into();
        self
    }

    /// Sets [`Thresholds::latency_p95_factor`] (`None` turns it off).
    pub fn with_latency_p95_factor(mut self, factor: impl Into<Option<f64>>) -> Self {
        self.latency_p95_factor = factor.into();
        self
    }

    /// Sets [`Thresholds::latency_p95_above_s`] (`None` turns it off).
    pub fn with_latency_p95_above_s(mut self, seconds: impl Into<Option<f64>>) -> Self {
        self.latency_p95_above_s = seconds.into();
        self
    }

    /// Sets [`Thresholds::rating_below`] (`None` turns it off).
    pub fn with_rating_below(mut self, rating: impl Into<Option<f64>>) -> Self {
        self.rating_below = rating.into();
        self
    }

    /// Sets [`Thresholds::score_below`] (`None` turns it off).
    pub fn with_score_below(mut self, score: impl Into<Option<f64>>) -> Self {
        self.score_below = score.into();
        self
    }

    /// Sets [`Thresholds::cost_per_call_factor`] (`None` turns it off).
    pub fn with_cost_per_call_factor(mut self, factor: impl Into<Option<f64>>) -> Self {
        self.cost_per_call_factor = factor.into();
        self
    }

    /// Checks every threshold's range.
    ///
    /// # Errors
    /// The first threshold out of range, saying what it should be.
    pub fn validate(&self) -> Result<(), ThresholdError> {
        self.validate_as("")
    }

    fn validate_as(&self, prefix: &str) -> Result<(), ThresholdError> {
        let err = |field: &str, value: f64, expected: &str| ThresholdError {
            field: format!("{prefix}{field}"),
            value,
            expected: expected.to_owned(),
        };
        let share = |field: &str, v: Option<f64>| match v {
            Some(x) if !(x.is_finite() && (0.0..=1.0).contains(&x)) => Err(err(
                field,
                x,
                "expected a number between 0 and 1 (0.2 means 20 %), or none to turn it off",
            )),
            _ => Ok(()),
        };
        let factor = |field: &str, v: Option<f64>| match v {
            Some(x) if !(x.is_finite() && x > 1.0) => Err(err(
                field,
                x,
                "expected a multiple of the baseline above 1 (2.0 means twice the baseline), or none to turn it off",
            )),
            _ => Ok(()),
        };
        share("error_rate_above", self.error_rate_above)?;
        share("rating_below", self.rating_below)?;
        share("score_below", self.score_below)?;
        factor("latency_p95_factor", self.latency_p95_factor)?;
        factor("cost_per_call_factor", self.cost_per_call_factor)?;
        match self.latency_p95_above_s {
            Some(x) if !(x.is_finite() && x > 0.0) => Err(err(
                "latency_p95_above_s",
                x,
                "expected a positive number of seconds, or none to turn it off",
            )),
            _ => Ok(()),
        }
    }

    /// The stated limits that apply to a detector kind.
    pub(crate) fn limits(&self, kind: &DetectorKind) -> Limits {
        match kind {
            DetectorKind::ErrorRate => Limits {
                above: self.error_rate_above,
                ..Limits::default()
            },
            DetectorKind::LatencyP95 => Limits {
                above: self.latency_p95_above_s,
                factor: self.latency_p95_factor,
                ..Limits::default()
            },
            DetectorKind::Rating => Limits {
                below: self.rating_below,
                ..Limits::default()
            },
            DetectorKind::EvaluatorScore(_) => Limits {
                below: self.score_below,
                ..Limits::default()
            },
            DetectorKind::CostPerCall => Limits {
                factor: self.cost_per_call_factor,
                ..Limits::default()
            },
            DetectorKind::TruncationRate => Limits::default(),
        }
    }
}

/// The stated limits of one detector.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Limits {
    pub(crate) above: Option<f64>,
    pub(crate) below: Option<f64>,
    pub(crate) factor: Option<f64>,
}

/// A stated limit a value crossed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Crossed {
    Above(f64),
    Below(f64),
    Factor(f64, f64),
}

impl Limits {
    /// The limit `v` crosses (given the learnt baseline, if any), and whether `v` is back past
    /// every limit by the hysteresis margin.
    pub(crate) fn check(&self, v: f64, baseline: Option<f64>) -> (Option<Crossed>, bool) {
        let mut crossed = None;
        let mut clear = true;
        if let Some(x) = self.above.filter(|x| x.is_finite()) {
            if v > x {
                crossed = Some(Crossed::Above(x));
            }
            clear &= v <= 0.9 * x;
        }
        if let Some(y) = self.below.filter(|y| y.is_finite()) {
            if v < y {
                crossed = crossed.or(Some(Crossed::Below(y)));
            }
            clear &= v >= 1.1 * y;
        }
        if let (Some(k), Some(b)) = (self.factor.filter(|k| k.is_finite()), baseline) {
            if b > 0.0 {
                if v >= k * b {
                    crossed = crossed.or(Some(Crossed::Factor(k, k * b)));
                }
                clear &= v <= (1.0 + (k - 1.0) / 2.0) * b;
            }
        }
        (crossed, clear)
    }
}

impl Limits {
    /// Whether `v` is within the margin of the factor rule (true without one).
    pub(crate) fn factor_clear(&self, v: f64, baseline: Option<f64>) -> bool {
        match (self.factor.filter(|k| k.is_finite()), baseline) {
            (Some(k), Some(b)) if b > 0.0 => v <= (1.0 + (k - 1.0) / 2.0) * b,
            _ => true,
        }
    }
}

/// The thresholds of every series, as a config file states them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThresholdsConfig {
    /// The thresholds of every series without an entry of its own (default: the product
    /// defaults, [`Thresholds::default`]).
    pub default: Thresholds,
    /// Per (model, feature) thresholds. The first entry that matches a series is used; an
    /// entry without `model` (or `feature`) matches every model (feature). Fields an entry
    /// does not state take the product defaults, not `default`'s.
    pub series: Vec<SeriesThresholds>,
}

/// The thresholds of the series that match a model and / or a feature.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeriesThresholds {
    /// The model (any when `None`).
    pub model: Option<String>,
    /// The feature (any when `None`).
    pub feature: Option<String>,
    /// Their thresholds.
    pub thresholds: Thresholds,
}

impl ThresholdsConfig {
    /// Parses and validates a JSON config.
    ///
    /// # Errors
    /// A [`ThresholdError`] naming the field out of range, or (field `json`) what is wrong
    /// with the JSON.
    pub fn from_json(json: &str) -> Result<Self, ThresholdError> {
        let cfg: ThresholdsConfig = serde_json::from_str(json).map_err(|e| ThresholdError {
            field: "json".into(),
            value: f64::NAN,
            expected: format!(
                "the thresholds config is not valid: {e} (fields: default, series[].model, series[].feature, series[].thresholds)"
            ),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every threshold's range.
    ///
    /// # Errors
    /// The first threshold out of range, named with its place (`series[1].rating_below`).
    pub fn validate(&self) -> Result<(), ThresholdError> {
        self.default.validate_as("default.")?;
        for (i, s) in self.series.iter().enumerate() {
            s.thresholds.validate_as(&format!("series[{i}]."))?;
        }
        Ok(())
    }

    /// The thresholds of a (model, feature) series.
    pub fn for_series(&self, model: &str, feature: &str) -> &Thresholds {
        self.series
            .iter()
            .find(|s| {
                s.model.as_deref().is_none_or(|m| m == model)
                    && s.feature.as_deref().is_none_or(|f| f == feature)
            })
            .map_or(&self.default, |s| &s.thresholds)
    }
}
