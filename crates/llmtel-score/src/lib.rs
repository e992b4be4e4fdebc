//! The quality score of an LLM call, and the quantile sketch llmtel summarises latency with.
//!
//! Shared by llmtel-quality's live monitor and llmtel-report's reports from the call log, so
//! that both compute the same number from the same signals:
//!
//! - [`QualityWeights::score`]: a weighted composite of what is known about a call
//!   ([`QualityInputs`]: success, completeness, latency against a target, the user's rating,
//!   evaluator scores), each in `0..=1`; a missing signal is left out, not counted as zero.
//! - [`TRUNCATION_REASONS`] and [`CONTENT_FILTER_REASONS`]: the finish reasons that make an
//!   answer incomplete.
//! - [`DdSketch`]: a bounded quantile sketch (relative accuracy, a cap on buckets) for
//!   latency percentiles over windows of any size.
//!
//! ```
//! use llmtel_score::{DdSketch, QualityInputs, QualityWeights};
//!
//! let score = QualityWeights::default().score(&QualityInputs {
//!     success: Some(true),
//!     complete: Some(true),
//!     latency_s: Some(10.0), // twice the 5 s target: the latency signal is 0.5
//!     ..Default::default()
//! });
//! assert_eq!(score, Some((2.0 + 1.0 + 0.5) / 4.0));
//!
//! let mut latency = DdSketch::new(0.01, 512);
//! for ms in 1..=100 { latency.add(ms as f64); }
//! assert!((latency.quantile(0.99).unwrap() - 99.0).abs() <= 1.0);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod score;
mod sketch;

pub use score::{MAX_EVALUATIONS_PER_CALL, QualityInputs, QualityWeights};
pub use sketch::{DdSketch, Quantiles};

/// Finish reasons that mean the answer was cut by the token limit.
pub const TRUNCATION_REASONS: &[&str] = &["length", "max_tokens", "max_output_tokens"];
/// Finish reasons that mean a content filter stopped the answer.
pub const CONTENT_FILTER_REASONS: &[&str] = &["content_filter", "safety", "refusal"];
