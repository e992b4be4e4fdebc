//! User feedback: a rating (number and/or label, comment) attached to a past call.

use std::time::SystemTime;

use opentelemetry::trace::{SpanId, TraceId};

/// Which call a piece of feedback or an evaluation is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallRef {
    /// By `gen_ai.response.id`.
    ResponseId(String),
    /// By trace id: the **last** LLM call of that trace the monitor still knows.
    TraceId(TraceId),
    /// By span context: exactly that span.
    Span(TraceId, SpanId),
}

/// Why feedback could not be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FeedbackError {
    /// The scale is empty or not finite, or the value is outside it.
    #[error("rating {value} is not within {min}..={max}")]
    OutOfScale {
        /// The value given.
        value: f64,
        /// Scale minimum.
        min: f64,
        /// Scale maximum.
        max: f64,
    },
}

/// A user's feedback on one call.
///
/// The rating is kept normalised to `0..=1` (`(value − min) / (max − min)`); a label alone
/// (`"helpful"`) is fine too. Sent with [`crate::Quality::feedback`] minutes after the call:
/// it reaches the monitor (rating averages and the rating-drop detector) and is emitted as a
/// `gen_ai.evaluation.result` named `user_feedback`, parented to the call's span.
///
/// ```
/// use llmtel_quality::{CallRef, Feedback};
/// let fb = Feedback::rating(CallRef::ResponseId("chatcmpl-1".into()), 4.0, 1.0, 5.0)?
///     .with_comment("good, but slow");
/// assert_eq!(fb.score, Some(0.75));
/// let thumbs = Feedback::thumbs(CallRef::ResponseId("chatcmpl-2".into()), false);
/// assert_eq!((thumbs.score, thumbs.label.as_deref()), (Some(0.0), Some("thumbs_down")));
/// # Ok::<(), llmtel_quality::FeedbackError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Feedback {
    /// The call it is about.
    pub target: CallRef,
    /// The rating, normalised to `0..=1`.
    pub score: Option<f64>,
    /// A low-cardinality label (`thumbs_up`, `helpful`, `wrong`).
    pub label: Option<String>,
    /// The user's comment (emitted as the explanation).
    pub comment: Option<String>,
    /// When the feedback was given (default: now). The monitor files the rating in the
    /// window of this time.
    pub at: SystemTime,
}

impl Feedback {
    /// A rating `value` on the scale `min..=max`.
    ///
    /// # Errors
    /// [`FeedbackError::OutOfScale`] when the scale is empty or the value is outside it.
    pub fn rating(target: CallRef, value: f64, min: f64, max: f64) -> Result<Self, FeedbackError> {
        let ok = value.is_finite() && min.is_finite() && max.is_finite() && min < max;
        if !ok || value < min || value > max {
            return Err(FeedbackError::OutOfScale { value, min, max });
        }
        Ok(Feedback {
            target,
            score: Some((value - min) / (max - min)),
            label: None,
            comment: None,
            at: SystemTime::now(),
        })
    }

    /// Thumbs up (1, `thumbs_up`) or down (0, `thumbs_down`).
    pub fn thumbs(target: CallRef, up: bool) -> Self {
        Feedback {
            target,
            score: Some(if up { 1.0 } else { 0.0 }),
            label: Some(if up { "thumbs_up" } else { "thumbs_down" }.to_owned()),
            comment: None,
            at: SystemTime::now(),
        }
    }

    /// A label with no number.
    pub fn label(target: CallRef, label: impl Into<String>) -> Self {
        Feedback {
            target,
            score: None,
            label: Some(label.into()),
            comment: None,
            at: SystemTime::now(),
        }
    }

    /// Sets the label.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// Sets when it was given.
    pub fn at(mut self, at: SystemTime) -> Self {
        self.at = at;
        self
    }
}
