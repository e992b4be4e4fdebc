//! A bounded quantile sketch (DDSketch, Masson et al., VLDB 2019) for positive values.

use serde::Serialize;

/// A DDSketch with a fixed relative accuracy and a fixed maximum number of buckets.
///
/// Every quantile it returns is within `relative_accuracy` (relative error) of a value of the
/// stream at that rank, as long as no bucket was collapsed. When the values span more than
/// `max_buckets` buckets, the lowest buckets are merged into one (the high quantiles that
/// latency detectors use stay exact to the accuracy; only the lowest ones lose it). Memory is
/// at most `max_buckets` counters whatever the number of values. Values `<= 0` are counted
/// in a separate zero bucket. Values that are not finite (NaN, infinities) are not added:
/// they count in [`non_finite`](Self::non_finite) only, not in [`count`](Self::count), the
/// mean or the quantiles.
///
/// ```
/// let mut s = llmtel_score::DdSketch::new(0.01, 512);
/// for i in 1..=1000 { s.add(i as f64); }
/// let p95 = s.quantile(0.95).unwrap();
/// assert!((p95 - 950.0).abs() / 950.0 <= 0.011);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct DdSketch {
    gamma_ln: f64,
    gamma: f64,
    max_buckets: usize,
    /// `bins[i]` counts the values of bucket index `offset + i`.
    bins: Vec<u64>,
    offset: i32,
    zeros: u64,
    non_finite: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

/// Quantiles and moments read from a sketch, for dashboards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Quantiles {
    /// Number of values.
    pub count: u64,
    /// Mean (exact).
    pub avg: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl DdSketch {
    /// A sketch with the given relative accuracy (clamped to `0.0001..=0.5`) and at most
    /// `max_buckets` buckets (at least 16).
    pub fn new(relative_accuracy: f64, max_buckets: usize) -> Self {
        let a = if relative_accuracy.is_finite() {
            relative_accuracy.clamp(0.0001, 0.5)
        } else {
            0.01
        };
        let gamma = (1.0 + a) / (1.0 - a);
        DdSketch {
            gamma_ln: gamma.ln(),
            gamma,
            max_buckets: max_buckets.max(16),
            bins: Vec::new(),
            offset: 0,
            zeros: 0,
            non_finite: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Buckets of [`default_latency`](Self::default_latency)'s sketch.
    pub const DEFAULT_LATENCY_MAX_BUCKETS: usize = 512;

    /// The sketch used for latencies and costs: 1 % relative accuracy, 512 buckets (a range
    /// of about 28,000:1 before the lowest buckets collapse).
    pub fn default_latency() -> Self {
        DdSketch::new(0.01, Self::DEFAULT_LATENCY_MAX_BUCKETS)
    }

    fn index(&self, x: f64) -> i32 {
        let i = (x.ln() / self.gamma_ln).ceil();
        i.clamp(i32::MIN as f64 / 2.0, i32::MAX as f64 / 2.0) as i32
    }

    /// Adds a value.
    pub fn add(&mut self, x: f64) {
        self.add_n(x, 1);
    }

    fn add_n(&mut self, x: f64, n: u64) {
        if n == 0 {
            return;
        }
        if !x.is_finite() {
            // An infinity went to the top bucket index and NaN to the zeros: either distorted
            // every quantile (and an infinity alone made `quantile` panic).
            self.non_finite += n;
            return;
        }
        self.count += n;
        self.sum += x * n as f64;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        if x <= 0.0 {
            self.zeros += n;
            return;
        }
        let k = self.index(x);
        self.add_index(k, n);
    }

    fn add_index(&mut self, k: i32, n: u64) {
        if self.bins.is_empty() {
            self.offset = k;
            self.bins.push(n);
            return;
        }
        let hi = self.offset + self.bins.len() as i32 - 1;
        if k < self.offset {
            let need = (hi - k + 1) as usize;
            if need > self.max_buckets {
                // Below the retained range: counted in the lowest (collapsed) bucket.
                self.bins[0] += n;
                return;
            }
            let grow = (self.offset - k) as usize;
            self.bins.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = k;
            self.bins[0] += n;
        } else if k > hi {
            let need = (k - self.offset + 1) as usize;
            if need > self.max_buckets {
                // Collapse the lowest buckets so that the new top fits.
                let drop = need - self.max_buckets;
                let drop = drop.min(self.bins.len());
                let collapsed: u64 = self.bins.drain(..drop).sum();
                self.offset += drop as i32;
                if self.bins.is_empty() {
                    // Every bucket was dropped: the collapsed values go to the lowest bucket
                    // kept, not to the new top (which made every quantile the maximum).
                    self.offset = k - self.max_buckets as i32 + 1;
                    self.bins.push(collapsed);
                } else {
                    self.bins[0] += collapsed;
                }
            }
            let hi = self.offset + self.bins.len() as i32 - 1;
            if k > hi {
                self.bins.resize((k - self.offset + 1) as usize, 0);
            }
            let i = (k - self.offset) as usize;
            self.bins[i] += n;
        } else {
            self.bins[(k - self.offset) as usize] += n;
        }
    }

    /// Adds every value of `other`.
    ///
    /// When `other` has another relative accuracy, its buckets' indices mean other values:
    /// each of its buckets is added at the bucket of this sketch holding its representative
    /// value, so the merged quantiles are within both accuracies added up (they used to be
    /// read with this sketch's bucket widths, far off).
    pub fn merge(&mut self, other: &DdSketch) {
        self.zeros += other.zeros;
        self.count += other.zeros;
        self.non_finite += other.non_finite;
        let same = self.gamma.to_bits() == other.gamma.to_bits();
        for (i, &c) in other.bins.iter().enumerate() {
            if c > 0 {
                self.count += c;
                let k = other.offset + i as i32;
                let k = if same {
                    k
                } else {
                    self.index(clamp_to(other.value(k), other.min, other.max))
                };
                self.add_index(k, c);
            }
        }
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (`0.0..=1.0`), or `None` for an empty sketch.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !q.is_finite() {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(self.min.min(0.0));
        }
        let mut seen = self.zeros;
        for (i, &c) in self.bins.iter().enumerate() {
            seen += c;
            if seen > rank {
                let k = self.offset + i as i32;
                return Some(clamp_to(self.value(k), self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// The value that stands for bucket `k`, `(gamma^(k-1), gamma^k]`: its relative-error
    /// midpoint.
    fn value(&self, k: i32) -> f64 {
        2.0 * self.gamma.powi(k) / (1.0 + self.gamma)
    }

    /// Number of values added (finite ones: see [`non_finite`](Self::non_finite)).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Number of values not added because they were not finite (NaN, infinities).
    pub fn non_finite(&self) -> u64 {
        self.non_finite
    }

    /// Mean of the values added (exact), or `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Number of buckets in use (at most `max_buckets`): the sketch's memory.
    pub fn buckets(&self) -> usize {
        self.bins.len()
    }

    /// Average and p50 / p95 / p99, or `None` when empty.
    pub fn quantiles(&self) -> Option<Quantiles> {
        Some(Quantiles {
            count: self.count,
            avg: self.mean()?,
            p50: self.quantile(0.5)?,
            p95: self.quantile(0.95)?,
            p99: self.quantile(0.99)?,
        })
    }
}

/// `f64::clamp` that never panics: bounds that are not ordered (an empty sketch's) or NaN
/// leave the value as it is.
fn clamp_to(v: f64, lo: f64, hi: f64) -> f64 {
    if lo <= hi { v.clamp(lo, hi) } else { v }
}

#[cfg(test)]
mod tests {
    use super::DdSketch;

    #[test]
    fn a_value_far_above_the_range_keeps_the_others_at_the_bottom() {
        // 6 s after 99 values of 0.2 ms: more than max_buckets buckets apart.
        let mut s = DdSketch::default_latency();
        for _ in 0..99 {
            s.add(0.0002);
        }
        s.add(6.0);
        let p50 = s.quantile(0.5).unwrap();
        assert!(p50 < 0.001, "p50 {p50}");
        let p100 = s.quantile(1.0).unwrap();
        assert!((p100 - 6.0).abs() / 6.0 < 0.02, "max {p100}");
        assert_eq!(s.count(), 100);
    }
}
