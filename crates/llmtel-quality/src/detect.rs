//! Detectors on window values, and trend analysis (EWMA plus Page-Hinkley change points).

use std::time::{Duration, SystemTime};

use llmtel_alert::Severity;
use serde::Serialize;

use crate::thresholds::{Crossed, Limits};

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
/// **Blocks.** A detector judges blocks of calls, not clock windows: the values of closed
/// windows accumulate until the block holds at least `min_samples` values (calls, successful
/// calls, ratings, priced calls or evaluations, by kind), then the block is judged as one
/// and a new one starts. At high traffic a block is one window (detection within a couple of
/// windows); at low traffic it spans as many windows as it takes (at 20 calls a minute, 3
/// windows of calls or 4 of ratings), so no window is thrown away for being small. A block
/// that waits longer than [`crate::MonitorConfig::insufficient_after`] for its values marks
/// the detector as having insufficient data (snapshot and gauge).
///
/// **Rules.** A block **breaches** when either
/// - it is past a threshold the user stated ([`crate::Thresholds`]: error rate above 20 %,
///   p95 at 2× its baseline, rating below 0.6 by default), or
/// - it moved the bad way from the learned baseline by more than
///   `max(abs_min, rel_min·|baseline|, k·dev)`, where the baseline is an EWMA of healthy
///   blocks and `dev` an EWMA of their absolute deviation (judged after `warmup_windows`
///   healthy blocks).
///
/// Breaching blocks add one to a counter, other blocks take one off; the detector fires when
/// the counter reaches `fire_after`. While firing, it resolves after `resolve_after`
/// consecutive blocks back within half the learned threshold and past every stated
/// threshold by its margin (hysteresis), or after `resolve_after + 1` consecutive blocks that
/// do not breach (so a series that settles just inside a threshold does not keep an alert
/// forever). The baseline learns only from blocks well within its threshold, so a lasting
/// degradation does not become the new normal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectorConfig {
    /// Which way is bad.
    pub direction: Direction,
    /// Fewest values a block needs to be judged (see above).
    pub min_samples: u64,
    /// Smallest absolute move that can breach.
    pub abs_min: f64,
    /// Smallest move relative to the baseline that can breach.
    pub rel_min: f64,
    /// Moves within `k` mean absolute deviations of the baseline never breach.
    pub k: f64,
    /// Healthy blocks needed before the learned rule judges.
    pub warmup_windows: u32,
    /// Breaching blocks (net of healthy ones) before firing.
    pub fire_after: u32,
    /// Consecutive recovered blocks before resolving.
    pub resolve_after: u32,
    /// Severity of its alerts.
    #[serde(skip)]
    pub severity: Severity,
    /// Whether the detector runs.
    pub enabled: bool,
}

impl DetectorConfig {
    /// The default settings for a kind of detector.
    ///
    /// | kind | `min_samples` | learned rule breaches at |
    /// |---|---|---|
    /// | error rate | 50 calls | +max(5 points, 100 %, 4 dev) |
    /// | p95 latency | 50 successful calls | +max(75 %, 4 dev) |
    /// | cost per call | 50 priced calls | +max(50 %, 4 dev) |
    /// | truncation rate | 50 successful calls | +max(5 points, 100 %, 4 dev) |
    /// | rating | 20 ratings | −max(0.1, 4 dev) |
    /// | evaluator score | 20 evaluations | −max(0.1, 4 dev) |
    ///
    /// All: warm-up 5 blocks, fire after 2 breaching blocks, resolve after 2 recovered ones.
    /// The p95 of a block of 50 calls varies by about 15 % from block to block, so the
    /// learned latency rule fires from 1.75× the baseline: a doubling (the stated 2× rule)
    /// is then caught at low traffic too, and 1.5× is not.
    pub fn default_for(kind: &DetectorKind) -> Self {
        let base = DetectorConfig {
            direction: Direction::Up,
            min_samples: 50,
            abs_min: 0.0,
            rel_min: 0.5,
            k: 4.0,
            warmup_windows: 5,
            fire_after: 2,
            resolve_after: 2,
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
            DetectorKind::LatencyP95 => DetectorConfig {
                rel_min: 0.75,
                ..base
            },
            DetectorKind::CostPerCall => base,
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

/// What a detector decided on a block.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Transition {
    Fire {
        value: f64,
        baseline: Option<f64>,
        threshold: f64,
        /// `stated` (a user threshold) or `learned` (the baseline rule).
        rule: &'static str,
    },
    Resolve {
        value: f64,
        baseline: Option<f64>,
    },
    /// Resolved because no value came for the monitor's `resolve_idle_after` (its series
    /// stopped: a model switched off, a feature removed), as Prometheus resolves an alert
    /// whose series went away.
    NoData {
        /// When the last value came.
        since: SystemTime,
    },
}

/// The state of one detector for one (model, feature): a few numbers, whatever the traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DetectorState {
    /// Baseline (EWMA of healthy block values), once there is one.
    pub baseline: Option<f64>,
    /// EWMA of the absolute deviation of healthy blocks from the baseline.
    pub dev: f64,
    /// Healthy blocks learnt.
    pub learnt: u32,
    /// Breach counter: +1 a breaching block, −1 another (not below 0).
    pub breaches: u32,
    /// Consecutive recovered blocks while firing.
    pub recovered: u32,
    /// Consecutive blocks that did not breach while firing.
    pub calm: u32,
    /// Whether the detector is firing.
    pub firing: bool,
    /// When it started firing.
    #[serde(skip)]
    pub firing_since: Option<SystemTime>,
    /// When it last resolved (for the cooldown).
    #[serde(skip)]
    pub resolved_at: Option<SystemTime>,
    /// The last judged block's value.
    pub last_value: Option<f64>,
    /// Blocks judged.
    pub judged: u64,
    /// Values in the block being filled.
    pub samples: u64,
    /// Values a block needs to be judged (`min_samples`).
    pub needed: u64,
    /// Since when the detector has lacked the values to judge within
    /// [`crate::MonitorConfig::insufficient_after`], Unix seconds; `None` when it judges in
    /// time.
    pub insufficient_since_unix_s: Option<f64>,
    /// When its last value came (the start of the window it came from).
    #[serde(skip)]
    pub last_value_at: Option<SystemTime>,
}

const BASELINE_ALPHA: f64 = 0.1;

impl DetectorState {
    /// Stops firing when no value has come since `idle_after` before `at`.
    pub(crate) fn resolve_when_idle(
        &mut self,
        at: SystemTime,
        idle_after: std::time::Duration,
    ) -> Option<Transition> {
        let since = self.last_value_at?;
        if !self.firing || at.duration_since(since).unwrap_or_default() <= idle_after {
            return None;
        }
        self.stop_firing(at);
        Some(Transition::NoData { since })
    }

    /// The detector stops firing at `at` (its cooldown starts).
    fn stop_firing(&mut self, at: SystemTime) {
        self.firing = false;
        self.recovered = 0;
        self.calm = 0;
        self.breaches = 0;
        self.firing_since = None;
        self.resolved_at = Some(at);
    }

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

    /// Judges one block's value against the learned baseline and the stated `limits`;
    /// returns a firing or resolving transition.
    pub(crate) fn step(
        &mut self,
        cfg: &DetectorConfig,
        limits: &Limits,
        v: f64,
        at: SystemTime,
        cooldown: Duration,
    ) -> Option<Transition> {
        if !v.is_finite() {
            return None;
        }
        self.last_value = Some(v);
        self.judged += 1;
        let warm = self.baseline.filter(|_| self.learnt >= cfg.warmup_windows);
        let (learned_breach, learned_clear) = match warm {
            Some(b) => {
                let threshold = cfg.abs_min.max(cfg.rel_min * b.abs()).max(cfg.k * self.dev);
                let moved = match cfg.direction {
                    Direction::Up => v - b,
                    Direction::Down => b - v,
                };
                let t = match cfg.direction {
                    Direction::Up => b + threshold,
                    Direction::Down => b - threshold,
                };
                ((moved > threshold).then_some(t), moved <= threshold / 2.0)
            }
            None => (None, true),
        };
        let (crossed, stated_clear) = limits.check(v, warm);
        let breach = match (crossed, learned_breach) {
            (Some(Crossed::Above(x) | Crossed::Below(x) | Crossed::Factor(_, x)), _) => {
                Some((x, "stated"))
            }
            (None, Some(t)) => Some((t, "learned")),
            (None, None) => None,
        };
        let clear = learned_clear && stated_clear;
        if self.firing {
            if breach.is_some() {
                self.recovered = 0;
                self.calm = 0;
                return None;
            }
            self.calm += 1;
            self.recovered = if clear { self.recovered + 1 } else { 0 };
            let resolve_after = cfg.resolve_after.max(1);
            if self.recovered >= resolve_after || self.calm > resolve_after {
                self.stop_firing(at);
                return Some(Transition::Resolve {
                    value: v,
                    baseline: warm,
                });
            }
            return None;
        }
        if let Some((threshold, rule)) = breach {
            self.breaches += 1;
            // Resolved after `at` (a time set far ahead, since brought back): not cooling, or
            // it would cool until real time got there.
            let cooling = self
                .resolved_at
                .is_some_and(|r| at.duration_since(r).is_ok_and(|d| d < cooldown));
            if self.breaches >= cfg.fire_after && !cooling {
                self.firing = true;
                self.recovered = 0;
                self.calm = 0;
                self.firing_since = Some(at);
                return Some(Transition::Fire {
                    value: v,
                    baseline: warm,
                    threshold,
                    rule,
                });
            }
        } else {
            self.breaches = self.breaches.saturating_sub(1);
            // A block in a stated threshold's margin still teaches the baseline, except the
            // margin of a factor rule (which is relative to the baseline itself).
            if learned_clear && limits.factor_clear(v, warm) {
                self.learn(v);
            }
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
