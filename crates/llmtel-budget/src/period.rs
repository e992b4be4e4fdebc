//! Period arithmetic: which buckets a rule reads at a given time and when it resets.

use jiff::{Timestamp, ToSpan, civil::Date, tz::TimeZone};

use crate::rule::Period;

/// Number of buckets of a rolling window.
pub(crate) const ROLLING_BUCKETS: i64 = 60;
/// How long a calendar bucket is kept after its period ended.
const GRACE_MS: i64 = 86_400_000;

/// The buckets of one rule at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    /// Bucket start times (unix seconds) to sum; the last one is the current bucket.
    pub(crate) buckets: Vec<i64>,
    /// Period start (first bucket), unix seconds; identifies the period for thresholds.
    pub(crate) period_start: i64,
    /// When the period resets (or, rolling, when the oldest bucket leaves the window).
    pub(crate) resets_at: Option<Timestamp>,
    /// How long the current bucket is kept from any write in its period, ms (0: forever):
    /// at least until the period ends, plus a grace.
    pub(crate) ttl_ms: i64,
}

fn zoned_start(d: Date, tz: &TimeZone) -> Option<Timestamp> {
    // Start of the civil day in the zone (a DST gap at midnight moves it forward).
    d.to_zoned(tz.clone()).ok().map(|z| z.timestamp())
}

fn calendar(start: Date, end: Date, tz: &TimeZone) -> Option<Window> {
    let s = zoned_start(start, tz)?;
    let e = zoned_start(end, tz)?;
    Some(Window {
        buckets: vec![s.as_second()],
        period_start: s.as_second(),
        resets_at: Some(e),
        // The whole period plus the grace from any instant in it: the same for every call of
        // the period, so a meter can be cached for the period.
        ttl_ms: (e.as_millisecond() - s.as_millisecond()).max(0) + GRACE_MS,
    })
}

/// The window of `period` at `now`. `None` only for dates out of jiff's range.
pub(crate) fn window(period: &Period, now: Timestamp) -> Option<Window> {
    match period {
        Period::Day(tz) => {
            let d = now.to_zoned(tz.clone()).date();
            calendar(d, d.checked_add(1.day()).ok()?, tz)
        }
        Period::Week(tz) => {
            let d = now.to_zoned(tz.clone()).date();
            let monday = d
                .checked_sub((d.weekday().to_monday_zero_offset() as i64).days())
                .ok()?;
            calendar(monday, monday.checked_add(7.days()).ok()?, tz)
        }
        Period::Month(tz) => {
            let d = now.to_zoned(tz.clone()).date();
            let first = d.first_of_month();
            calendar(first, first.checked_add(1.month()).ok()?, tz)
        }
        Period::RollingHours(h) => {
            let width = (i64::from(*h) * 3600 / ROLLING_BUCKETS).max(1);
            let now_s = now.as_second();
            let cur = now_s.div_euclid(width) * width;
            let first = cur - (ROLLING_BUCKETS - 1) * width;
            Some(Window {
                buckets: (0..ROLLING_BUCKETS).map(|i| first + i * width).collect(),
                period_start: first,
                resets_at: Timestamp::from_second(cur + width).ok(),
                ttl_ms: (ROLLING_BUCKETS + 1) * width * 1000,
            })
        }
        Period::Lifetime => Some(Window {
            buckets: vec![0],
            period_start: 0,
            resets_at: None,
            ttl_ms: 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn berlin_day_across_spring_forward_is_23_hours() {
        let tz = TimeZone::get("Europe/Berlin").expect("tz");
        let w = window(&Period::Day(tz), ts("2025-03-30T12:00:00Z")).expect("w");
        assert_eq!(w.period_start, ts("2025-03-29T23:00:00Z").as_second());
        assert_eq!(w.resets_at, Some(ts("2025-03-30T22:00:00Z")));
    }

    #[test]
    fn week_starts_monday_in_zone() {
        let tz = TimeZone::get("America/New_York").expect("tz");
        // Sunday 2025-11-02 (DST ends that day) 20:00 local = Monday 01:00 UTC.
        let w = window(&Period::Week(tz), ts("2025-11-03T01:00:00Z")).expect("w");
        assert_eq!(w.period_start, ts("2025-10-27T04:00:00Z").as_second());
        assert_eq!(w.resets_at, Some(ts("2025-11-03T05:00:00Z")));
    }

    #[test]
    fn month_in_zone() {
        let tz = TimeZone::get("Europe/Berlin").expect("tz");
        let w = window(&Period::Month(tz), ts("2025-03-31T21:59:59Z")).expect("w");
        assert_eq!(w.period_start, ts("2025-02-28T23:00:00Z").as_second());
        assert_eq!(w.resets_at, Some(ts("2025-03-31T22:00:00Z")));
    }
}
