//! Detectors on window values, and trend analysis (EWMA plus Page-Hinkley change points).

use std::time::{Duration, SystemTime};

use llmtel_alert::Severity;
use serde::Serialize;

/// Which way a metric goes when quality degrades.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A rise is bad (error rate, latency, cost).
    Up,
    /// A drop is bad (ratings, evaluator scores).
    Down,
}

/// The metric a detector watches, per (model, feature) window.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Share of failed calls.
    ErrorRate,
    /// 95th percentile latency, from the window's quantile sketch.
    LatencyP95,
    /// Average user rating (normalised to `0..=1`).
    Rating,
    /// Average score of one evaluator.
    EvaluatorScore(String),
    /// Share of calls cut by the token limit.
    TruncationRate,
    /// Average cost per priced call.
    CostPerCall,
}

impl DetectorKind {
    /// The alert name: `LlmErrorRateSpike`, `LlmLatencyP95Spike`, `LlmRatingDrop`,
    /// `LlmEvaluatorScoreDrop`, `LlmTruncationRateRise`, `LlmCostPerCallSpike`.
    pub fn alert_name(&self) -> &'static str {
        match self {
            DetectorKind::ErrorRate => "LlmErrorRateSpike",
            DetectorKind::LatencyP95 => "LlmLatencyP95Spike",
            DetectorKind::Rating => "LlmRatingDrop",
            DetectorKind::EvaluatorScore(_) => "LlmEvaluatorScoreDrop",
            DetectorKind::TruncationRate => "LlmTruncationRateRise",
            DetectorKind::CostPerCall => "LlmCostPerCallSpike",
        }
    }

    /// A short name for labels and text (`error_rate`, `evaluator:relevance`, ...).
    pub fn label(&self) -> String {
        match self {
            DetectorKind::ErrorRate => "error_rate".into(),
            DetectorKind::LatencyP95 => "latency_p95".into(),
            DetectorKind::Rating => "rating".into(),
            DetectorKind::EvaluatorScore(n) => format!("evaluator:{n}"),
            DetectorKind::TruncationRate => "truncation_rate".into(),
            DetectorKind::CostPerCall => "cost_per_call".into(),
        }
    }
}

/// The settings of one detector.
///
/// A closed window with at least `min_samples` values is compared with the baseline, an EWMA
/// of the previous healthy windows' values with an EWMA of their absolute deviation (`dev`).
/// The window **breaches** when it moved the bad way by more than
/// `max(abs_min, rel_min·|baseline|, k·dev)`. The detector fires after `fire_after`
/// consecutive breaching windows and resolves after `resolve_after` consecutive windows back
/// within half that threshold (hysteresis). The baseline learns only from healthy windows, so
/// a lasting degradation does not become the new normal while it is alerting; it starts
/// judging after `warmup_windows` windows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectorConfig {
    /// Which way is bad.
    pub direction: Direction,
    /// Fewest values in a window for it to count.
    pub min_samples: u64,
    /// Smallest absolute move that can breach.
    pub abs_min: f64,
    /// Smallest move relative to the baseline that can breach.
    pub rel_min: f64,
    /// Moves within `k` mean absolute deviations of the baseline never breach.
    pub k: f64,
    /// Healthy windows needed before the detector judges.
    pub warmup_windows: u32,
    /// Consecutive breaching windows before firing.
    pub fire_after: u32,
    /// Consecutive recovered windows before resolving.
    pub resolve_after: u32,
    /// Severity of its alerts.
    #[serde(skip)]
    pub severity: Severity,
    /// Whether the detector runs.
    pub enabled: bool,
}

impl DetectorConfig {
    /// The default settings for a kind of detector.
    pub fn default_for(kind: &DetectorKind) -> Self {
        let base = DetectorConfig {
            direction: Direction::Up,
            min_samples: 50,
            abs_min: 0.0,
            rel_min: 0.5,
            k: 4.0,
            warmup_windows: 5,
            fire_after: 2,
            resolve_after: 3,
            severity: Severity::Warning,
            enabled: true,
        };
        match kind {
            DetectorKind::ErrorRate => DetectorConfig {
                abs_min: 0.05,
                rel_min: 1.0,
                severity: Severity::Critical,
                ..base
            },
            DetectorKind::TruncationRate => DetectorConfig {
                abs_min: 0.05,
                rel_min: 1.0,
                ..base
            },
            DetectorKind::LatencyP95 | DetectorKind::CostPerCall => base,
            DetectorKind::Rating | DetectorKind::EvaluatorScore(_) => DetectorConfig {
                direction: Direction::Down,
                min_samples: 20,
                abs_min: 0.1,
                rel_min: 0.0,
                ..base
            },
        }
    }
}

/// What a detector decided on a window.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Transition {
    Fire {
        value: f64,
        baseline: f64,
        threshold: f64,
    },
    Resolve {
        value: f64,
        baseline: f64,
    },
}

/// The state of one detector for one (model, feature): a few numbers, whatever the traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DetectorState {
    /// Baseline (EWMA of healthy window values), once there is one.
    pub baseline: Option<f64>,
    /// EWMA of the absolute deviation of healthy windows from the baseline.
    pub dev: f64,
    /// Healthy windows learnt.
    pub learnt: u32,
    /// Consecutive breaching windows.
    pub breaches: u32,
    /// Consecutive recovered windows while firing.
    pub recovered: u32,
    /// Whether the detector is firing.
    pub firing: bool,
    /// When it started firing.
    #[serde(skip)]
    pub firing_since: Option<SystemTime>,
    /// When it last resolved (for the cooldown).
    #[serde(skip)]
    pub resolved_at: Option<SystemTime>,
    /// The last window's value.
    pub last_value: Option<f64>,
}

const BASELINE_ALPHA: f64 = 0.1;

impl DetectorState {
    fn learn(&mut self, v: f64) {
        self.learnt = self.learnt.saturating_add(1);
        match self.baseline {
            None => {
                self.baseline = Some(v);
                self.dev = 0.0;
            }
            Some(b) => {
                // Plain average while warming up, EWMA after.
                let a = (1.0 / f64::from(self.learnt)).max(BASELINE_ALPHA);
                self.dev += a * ((v - b).abs() - self.dev);
                self.baseline = Some(b + a * (v - b));
            }
        }
    }

    /// Feeds one closed window's value; returns a firing or resolving transition.
    pub(crate) fn step(
        &mut self,
        cfg: &DetectorConfig,
        v: f64,
        at: SystemTime,
        cooldown: Duration,
    ) -> Option<Transition> {
        if !v.is_finite() {
            return None;
        }
        self.last_value = Some(v);
        let Some(b) = self.baseline.filter(|_| self.learnt >= cfg.warmup_windows) else {
            self.learn(v);
            return None;
        };
        let threshold = cfg.abs_min.max(cfg.rel_min * b.abs()).max(cfg.k * self.dev);
        let moved = match cfg.direction {
            Direction::Up => v - b,
            Direction::Down => b - v,
        };
        if self.firing {
            if moved <= threshold / 2.0 {
                self.recovered += 1;
                if self.recovered >= cfg.resolve_after {
                    self.firing = false;
                    self.recovered = 0;
                    self.breaches = 0;
                    self.firing_since = None;
                    self.resolved_at = Some(at);
                    return Some(Transition::Resolve {
                        value: v,
                        baseline: b,
                    });
                }
            } else {
                self.recovered = 0;
            }
            return None;
        }
        if moved > threshold {
            self.breaches += 1;
            let cooling = self
                .resolved_at
                .is_some_and(|r| at.duration_since(r).unwrap_or_default() < cooldown);
            if self.breaches >= cfg.fire_after && !cooling {
                self.firing = true;
                self.recovered = 0;
                self.firing_since = Some(at);
                return Some(Transition::Fire {
                    value: v,
                    baseline: b,
                    threshold,
                });
            }
        } else {
            self.breaches = 0;
            self.learn(v);
        }
        None
    }
}

/// Which way a series is moving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrendDirection {
    /// Going up.
    Rising,
    /// Going down.
    Falling,
    /// No significant move.
    Flat,
}

/// A change point found by the Page-Hinkley test.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ChangePoint {
    /// Which way the mean moved.
    pub direction: TrendDirection,
    /// The value's index in the series (0-based) at which the change was detected.
    pub at_index: u64,
    /// The reference mean before the change.
    pub before: f64,
    /// The mean of the values since the estimated start of the change (where the test's
    /// cumulative sum was last at its minimum).
    pub after: f64,
}

/// The trend of a series: EWMA level, direction and the last change point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Trend {
    /// Fast EWMA (α = 0.05): the current level.
    pub ewma: f64,
    /// Slow EWMA (α = 0.005): the longer-run level.
    pub ewma_slow: f64,
    /// Rising / falling when the fast EWMA is more than half a reference standard deviation
    /// from the slow one, else flat.
    pub direction: TrendDirection,
    /// The Page-Hinkley statistic over its threshold, the larger side: at 1 or more a change
    /// is significant (and was reported as `last_change`).
    pub significance: f64,
    /// The last change point detected.
    pub last_change: Option<ChangePoint>,
    /// Values seen.
    pub count: u64,
}

/// EWMA trend and a two-sided Page-Hinkley change-point test on a stream of values.
///
/// Values are standardised with the mean and standard deviation of a reference period (the
/// first `warmup` values, and again after each change point). The test accumulates
/// `z − δ` (upward) and `−z − δ` (downward); a cumulative sum that climbs more than `λ` above
/// its minimum is a change. Defaults `δ = 0.25`, `λ = 40`, `warmup = 100`: a shift of one
/// standard deviation is found in about 50 values; stationary noise practically never trips it.
/// Memory: a fixed dozen numbers.
///
/// ```
/// let mut t = llmtel_quality::TrendTracker::default();
/// for i in 0..2000 { t.add(if i < 1000 { 0.8 } else { 0.5 } + 0.05 * ((i * 7919 % 13) as f64 / 13.0 - 0.5)); }
/// let trend = t.trend().unwrap();
/// assert_eq!(trend.last_change.unwrap().direction, llmtel_quality::TrendDirection::Falling);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TrendTracker {
    delta: f64,
    lambda: f64,
    warmup: u64,
    fast: Option<f64>,
    slow: Option<f64>,
    count: u64,
    ref_n: u64,
    ref_mean: f64,
    ref_m2: f64,
    ref_sd: f64,
    up: f64,
    up_min: f64,
    down: f64,
    down_min: f64,
    /// Values and their sum since each side's cumulative sum was last at its minimum (the
    /// estimated start of a change that way).
    up_since: (u64, f64),
    down_since: (u64, f64),
    last_change: Option<ChangePoint>,
}

impl Default for TrendTracker {
    fn default() -> Self {
        Self::new(0.25, 40.0, 100)
    }
}

impl TrendTracker {
    /// A tracker with Page-Hinkley tolerance `delta` and threshold `lambda` (both in
    /// reference standard deviations) and a reference period of `warmup` values (at least 10).
    pub fn new(delta: f64, lambda: f64, warmup: u64) -> Self {
        TrendTracker {
            delta,
            lambda,
            warmup: warmup.max(10),
            fast: None,
            slow: None,
            count: 0,
            ref_n: 0,
            ref_mean: 0.0,
            ref_m2: 0.0,
            ref_sd: 0.0,
            up: 0.0,
            up_min: 0.0,
            down: 0.0,
            down_min: 0.0,
            up_since: (0, 0.0),
            down_since: (0, 0.0),
            last_change: None,
        }
    }

    fn reset_test(&mut self) {
        self.ref_n = 0;
        self.ref_mean = 0.0;
        self.ref_m2 = 0.0;
        self.up = 0.0;
        self.up_min = 0.0;
        self.down = 0.0;
        self.down_min = 0.0;
        self.up_since = (0, 0.0);
        self.down_since = (0, 0.0);
    }

    /// Adds a value (non-finite values are ignored); returns a change point when one is
    /// detected on this value.
    pub fn add(&mut self, x: f64) -> Option<ChangePoint> {
        if !x.is_finite() {
            return None;
        }
        self.count += 1;
        self.fast = Some(self.fast.map_or(x, |f| f + 0.05 * (x - f)));
        self.slow = Some(self.slow.map_or(x, |s| s + 0.005 * (x - s)));
        if self.ref_n < self.warmup {
            self.ref_n += 1;
            let d = x - self.ref_mean;
            self.ref_mean += d / self.ref_n as f64;
            self.ref_m2 += d * (x - self.ref_mean);
            if self.ref_n == self.warmup {
                let var = self.ref_m2 / (self.ref_n - 1) as f64;
                // A floor so that a constant reference does not make every blip a change.
                self.ref_sd = var.sqrt().max(1e-3 * self.ref_mean.abs()).max(1e-6);
            }
            return None;
        }
        let z = (x - self.ref_mean) / self.ref_sd;
        self.up += z - self.delta;
        if self.up <= self.up_min {
            self.up_min = self.up;
            self.up_since = (0, 0.0);
        } else {
            self.up_since = (self.up_since.0 + 1, self.up_since.1 + x);
        }
        self.down += -z - self.delta;
        if self.down <= self.down_min {
            self.down_min = self.down;
            self.down_since = (0, 0.0);
        } else {
            self.down_since = (self.down_since.0 + 1, self.down_since.1 + x);
        }
        let (up_stat, down_stat) = (self.up - self.up_min, self.down - self.down_min);
        if up_stat > self.lambda || down_stat > self.lambda {
            let (direction, (n, sum)) = if up_stat > down_stat {
                (TrendDirection::Rising, self.up_since)
            } else {
                (TrendDirection::Falling, self.down_since)
            };
            let cp = ChangePoint {
                direction,
                at_index: self.count - 1,
                before: self.ref_mean,
                after: if n > 0 { sum / n as f64 } else { x },
            };
            self.last_change = Some(cp);
            self.reset_test();
            return Some(cp);
        }
        None
    }

    /// The trend so far, or `None` before the first value.
    pub fn trend(&self) -> Option<Trend> {
        let (fast, slow) = (self.fast?, self.slow?);
        let sd = if self.ref_sd > 0.0 {
            self.ref_sd
        } else {
            f64::INFINITY
        };
        let direction = if fast - slow > 0.5 * sd {
            TrendDirection::Rising
        } else if slow - fast > 0.5 * sd {
            TrendDirection::Falling
        } else {
            TrendDirection::Flat
        };
        let significance = if self.ref_n >= self.warmup {
            (self.up - self.up_min).max(self.down - self.down_min) / self.lambda
        } else {
            0.0
        };
        Some(Trend {
            ewma: fast,
            ewma_slow: slow,
            direction,
            significance,
            last_change: self.last_change,
            count: self.count,
        })
    }
}
