//! The period a report covers.

use jiff::{Timestamp, tz::TimeZone};
use serde::{Deserialize, Serialize};

use crate::error::ReportError;

/// A half-open period `[from, to)`; an open end takes everything on that side.
///
/// ```
/// use llmtel_report::Period;
/// // A date means midnight UTC; as the end, the end of that day.
/// let p = Period::parse(Some("2025-03-01"), Some("2025-03-31"))?;
/// assert_eq!(p.from.unwrap().to_string(), "2025-03-01T00:00:00Z");
/// assert_eq!(p.to.unwrap().to_string(), "2025-04-01T00:00:00Z");
/// let p = Period::parse(Some("2025-03-01T12:00:00+01:00"), None)?;
/// assert_eq!(p.from.unwrap().to_string(), "2025-03-01T11:00:00Z");
/// assert!(Period::parse(Some("yesterday"), None).is_err());
/// # Ok::<(), llmtel_report::ReportError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Start, inclusive.
    pub from: Option<Timestamp>,
    /// End, exclusive.
    pub to: Option<Timestamp>,
}

impl Period {
    /// Everything in the log.
    pub fn all() -> Self {
        Period::default()
    }

    /// `[from, to)`.
    ///
    /// # Errors
    /// [`ReportError::Period`] when `to` is not after `from`.
    pub fn between(from: Timestamp, to: Timestamp) -> Result<Self, ReportError> {
        Period::new(Some(from), Some(to))
    }

    fn new(from: Option<Timestamp>, to: Option<Timestamp>) -> Result<Self, ReportError> {
        if let (Some(f), Some(t)) = (from, to) {
            if t <= f {
                return Err(ReportError::Period(format!(
                    "the end {t} is not after the start {f}: give --to later than --from"
                )));
            }
        }
        Ok(Period { from, to })
    }

    /// From the command line's `--from` / `--to`: RFC 3339 timestamps
    /// (`2025-03-01T12:00:00Z`, any offset) or dates (`2025-03-01`, UTC). A date as the end
    /// includes that whole day.
    ///
    /// # Errors
    /// [`ReportError::Period`] naming the value that is neither, or an end not after the
    /// start.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, ReportError> {
        let from = from.map(|s| parse_bound(s, false)).transpose()?;
        let to = to.map(|s| parse_bound(s, true)).transpose()?;
        Period::new(from, to)
    }

    /// Whether `t` is in the period.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }
}

fn parse_bound(s: &str, end: bool) -> Result<Timestamp, ReportError> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    // A date alone: jiff reads a date out of anything that starts with one, and a time
    // without an offset must not be cut to its day.
    if let Some(d) = s
        .parse::<jiff::civil::Date>()
        .ok()
        .filter(|d| d.to_string() == s)
    {
        let d = if end {
            d.tomorrow()
                .map_err(|e| ReportError::Period(e.to_string()))?
        } else {
            d
        };
        return d
            .to_zoned(TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| ReportError::Period(e.to_string()));
    }
    if s.parse::<jiff::civil::DateTime>().is_ok() {
        return Err(ReportError::Period(format!(
            "`{s}` has no UTC offset: add Z for UTC or the offset meant (2025-03-01T12:00:00Z, \
             2025-03-01T12:00:00+01:00), or give a date alone (2025-03-01)"
        )));
    }
    Err(ReportError::Period(format!(
        "`{s}` is neither an RFC 3339 timestamp (2025-03-01T12:00:00Z) nor a date (2025-03-01)"
    )))
}
