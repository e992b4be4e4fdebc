//! The monitor: per (model, feature) time windows, detectors, alerts, trends, snapshots.
//!
//! Synchronous and deterministic: time is the time of the events fed to it (a call's end, a
//! rating's time), never the wall clock, so it is driven by a simulated clock in tests and
//! by the real one in production. [`crate::Quality`] runs it on its worker thread.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmtel_alert::{Alert, AlertState};
use llmtel_score::{DdSketch, QualityInputs, QualityWeights, Quantiles};
use opentelemetry::trace::{SpanId, TraceId};
use serde::Serialize;

use crate::detect::{DetectorConfig, DetectorKind, DetectorState, Transition, Trend, TrendTracker};
use crate::emit::EvaluationRecord;
use crate::eval::{EvalInput, Evaluation};
use crate::feedback::{CallRef, Feedback};
use crate::signals::CallSignals;
use crate::thresholds::{ThresholdError, Thresholds, ThresholdsConfig};

/// Series key used for the model or feature when a call names none.
pub const UNKNOWN: &str = "unknown";
/// Series key of calls beyond [`MonitorConfig::max_series`].
pub const OTHER: &str = "(other)";

/// Settings of the [`Monitor`].
#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// Window length (default 60 s).
    pub window: Duration,
    /// Closed-window summaries kept per series for the dashboard (default 60).
    pub history: usize,
    /// Most (model, feature) series tracked; calls of further ones are filed under
    /// `((other), (other))` (default 256).
    pub max_series: usize,
    /// Most recent calls kept to attach feedback and evaluations to (default 50,000).
    pub max_calls_indexed: usize,
    /// Most distinct evaluation names tracked per series (default 16). Results of a further
    /// name are counted in [`MonitorStats::evaluations_over_limit`], and the first is warned
    /// about, naming the evaluation; a name without a result for
    /// [`MonitorConfig::resolve_idle_after`] gives its place to a new one.
    pub max_evaluators: usize,
    /// After an alert resolves, the same detector cannot fire again for this long
    /// (default 10 minutes).
    pub cooldown: Duration,
    /// Detector settings by kind; `EvaluatorScore("")` is the template of every evaluator.
    pub detectors: BTreeMap<DetectorKind, DetectorConfig>,
    /// Thresholds users state, per (model, feature) (default: error rate above 20 %, p95
    /// latency at 2× its baseline, average rating below 0.6, for every series).
    pub thresholds: ThresholdsConfig,
    /// How late a rating may arrive and still count in the window of the call it rates
    /// (default 2 minutes). The rating detector judges a window this much after it closes;
    /// later ratings count in the lifetime figures only ([`MonitorStats::late_feedback`]).
    pub feedback_grace: Duration,
    /// A detector whose block of values (see [`DetectorConfig`]) has waited longer than this
    /// to be judged reports insufficient data (default 15 minutes).
    pub insufficient_after: Duration,
    /// A firing alert that no value of its detector has reached for this long resolves "for
    /// lack of data" (its series stopped: a model switched off, a feature removed), as
    /// Prometheus resolves an alert whose series went away (default 1 hour: longer than the
    /// gap between a sparse series' values, so such a series does not flap).
    pub resolve_idle_after: Duration,
    /// The quality score's weights.
    pub weights: QualityWeights,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        let detectors = [
            DetectorKind::ErrorRate,
            DetectorKind::LatencyP95,
            DetectorKind::Rating,
            DetectorKind::EvaluatorScore(String::new()),
            DetectorKind::TruncationRate,
            DetectorKind::CostPerCall,
        ]
        .into_iter()
        .map(|k| {
            let c = DetectorConfig::default_for(&k);
            (k, c)
        })
        .collect();
        MonitorConfig {
            window: Duration::from_secs(60),
            history: 60,
            max_series: 256,
            max_calls_indexed: 50_000,
            max_evaluators: 16,
            cooldown: Duration::from_secs(600),
            detectors,
            thresholds: ThresholdsConfig::default(),
            feedback_grace: Duration::from_secs(120),
            insufficient_after: Duration::from_secs(900),
            resolve_idle_after: Duration::from_secs(3600),
            weights: QualityWeights::default(),
        }
    }
}

impl MonitorConfig {
    fn detector(&self, kind: &DetectorKind) -> DetectorConfig {
        if let Some(c) = self.detectors.get(kind) {
            return c.clone();
        }
        if let DetectorKind::EvaluatorScore(_) = kind {
            if let Some(c) = self
                .detectors
                .get(&DetectorKind::EvaluatorScore(String::new()))
            {
                return c.clone();
            }
        }
        DetectorConfig::default_for(kind)
    }

    /// Sets a detector's settings (`EvaluatorScore("")` for every evaluator without its own).
    pub fn with_detector(mut self, kind: DetectorKind, cfg: DetectorConfig) -> Self {
        self.detectors.insert(kind, cfg);
        self
    }

    /// Sets the thresholds of every series without thresholds of its own.
    pub fn with_thresholds(mut self, t: Thresholds) -> Self {
        self.thresholds.default = t;
        self
    }

    /// Sets the thresholds of the series of `model` and `feature` (`None`: any). Entries are
    /// matched in the order they were added; the first match wins.
    pub fn with_series_thresholds(
        mut self,
        model: Option<&str>,
        feature: Option<&str>,
        t: Thresholds,
    ) -> Self {
        self.thresholds
            .series
            .push(crate::thresholds::SeriesThresholds {
                model: model.map(str::to_owned),
                feature: feature.map(str::to_owned),
                thresholds: t,
            });
        self
    }

    /// Sets every threshold from a config ([`ThresholdsConfig::from_json`], or any serde
    /// format).
    pub fn with_thresholds_config(mut self, t: ThresholdsConfig) -> Self {
        self.thresholds = t;
        self
    }

    /// Sets [`MonitorConfig::feedback_grace`].
    pub fn with_feedback_grace(mut self, d: Duration) -> Self {
        self.feedback_grace = d;
        self
    }

    /// Sets [`MonitorConfig::insufficient_after`].
    pub fn with_insufficient_after(mut self, d: Duration) -> Self {
        self.insufficient_after = d;
        self
    }

    /// Sets [`MonitorConfig::resolve_idle_after`].
    pub fn with_resolve_idle_after(mut self, d: Duration) -> Self {
        self.resolve_idle_after = d;
        self
    }

    /// Sets [`MonitorConfig::max_evaluators`].
    pub fn with_max_evaluators(mut self, n: usize) -> Self {
        self.max_evaluators = n;
        self
    }

    /// Checks the stated thresholds' ranges (a threshold out of range would never fire).
    ///
    /// # Errors
    /// The first threshold out of range, saying what it should be.
    pub fn validate(&self) -> Result<(), ThresholdError> {
        self.thresholds.validate()
    }
}

/// Sum and count of a mean.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Mean {
    sum: f64,
    n: u64,
}

impl Mean {
    fn add(&mut self, v: f64) {
        if v.is_finite() {
            self.sum += v;
            self.n += 1;
        }
    }
    fn remove(&mut self, v: f64) {
        if v.is_finite() && self.n > 0 {
            self.sum -= v;
            self.n -= 1;
        }
    }
    fn merge(&mut self, o: &Mean) {
        self.sum += o.sum;
        self.n += o.n;
    }
    fn avg(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

/// Aggregates of one window (or of a series' lifetime): bounded, no stored samples.
#[derive(Clone, Debug)]
struct Agg {
    calls: u64,
    errors: u64,
    truncated: u64,
    filtered: u64,
    /// Latency of successful calls.
    latency: DdSketch,
    output_tokens: Mean,
    tokens_per_second: Mean,
    ttfc: Mean,
    cost: Mean,
    rating: Mean,
    quality: Mean,
    evals: Vec<(String, Mean)>,
}

impl Agg {
    fn new() -> Self {
        Agg {
            calls: 0,
            errors: 0,
            truncated: 0,
            filtered: 0,
            latency: DdSketch::default_latency(),
            output_tokens: Mean::default(),
            tokens_per_second: Mean::default(),
            ttfc: Mean::default(),
            cost: Mean::default(),
            rating: Mean::default(),
            quality: Mean::default(),
            evals: Vec::new(),
        }
    }

    fn add_call(&mut self, c: &CallSignals, quality: Option<f64>) {
        self.calls += 1;
        if c.error_type.is_some() {
            self.errors += 1;
        } else {
            self.latency.add(c.latency.as_secs_f64());
            self.truncated += u64::from(c.truncated);
            self.filtered += u64::from(c.content_filtered);
        }
        if let Some(t) = c.output_tokens {
            self.output_tokens.add(t as f64);
        }
        if let Some(t) = c.tokens_per_second {
            self.tokens_per_second.add(t);
        }
        if let Some(t) = c.time_to_first_chunk {
            self.ttfc.add(t);
        }
        if let Some(t) = c.cost_usd {
            self.cost.add(t);
        }
        if let Some(q) = quality {
            self.quality.add(q);
        }
    }

    fn eval_mut(&mut self, name: &str, max: usize) -> Option<&mut Mean> {
        if let Some(i) = self.evals.iter().position(|(n, _)| n == name) {
            return Some(&mut self.evals[i].1);
        }
        if self.evals.len() >= max {
            return None;
        }
        self.evals.push((name.to_owned(), Mean::default()));
        self.evals.last_mut().map(|e| &mut e.1)
    }

    fn merge(&mut self, o: &Agg, max_evals: usize) {
        self.calls += o.calls;
        self.errors += o.errors;
        self.truncated += o.truncated;
        self.filtered += o.filtered;
        self.latency.merge(&o.latency);
        self.output_tokens.merge(&o.output_tokens);
        self.tokens_per_second.merge(&o.tokens_per_second);
        self.ttfc.merge(&o.ttfc);
        self.cost.merge(&o.cost);
        self.rating.merge(&o.rating);
        self.quality.merge(&o.quality);
        for (n, m) in &o.evals {
            if let Some(mine) = self.eval_mut(n, max_evals) {
                mine.merge(m);
            }
        }
    }

    fn ok_calls(&self) -> u64 {
        self.calls - self.errors
    }

    fn summary(&self, start: SystemTime) -> WindowSummary {
        WindowSummary {
            start_unix_s: unix_s(start),
            requests: self.calls,
            errors: self.errors,
            error_rate: ratio(self.errors, self.calls),
            truncation_rate: ratio(self.truncated, self.ok_calls()),
            content_filter_rate: ratio(self.filtered, self.ok_calls()),
            latency_s: self.latency.quantiles(),
            avg_output_tokens: self.output_tokens.avg(),
            avg_tokens_per_second: self.tokens_per_second.avg(),
            avg_time_to_first_chunk_s: self.ttfc.avg(),
            avg_cost_usd: self.cost.avg(),
            avg_rating: self.rating.avg(),
            ratings: self.rating.n,
            evaluators: self
                .evals
                .iter()
                .filter_map(|(n, m)| {
                    Some((
                        n.clone(),
                        EvaluatorAverage {
                            avg: m.avg()?,
                            count: m.n,
                        },
                    ))
                })
                .collect(),
            quality_score: self.quality.avg(),
        }
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// A closed window's values for the detectors' blocks (ratings apart: they wait for late
/// ones).
fn window_values(a: &Agg) -> Vec<(DetectorKind, Acc)> {
    let mut v = Vec::with_capacity(5 + a.evals.len());
    if a.calls > 0 {
        v.push((
            DetectorKind::ErrorRate,
            Acc::Ratio {
                hits: a.errors,
                n: a.calls,
            },
        ));
    }
    let ok = a.ok_calls();
    if ok > 0 {
        v.push((
            DetectorKind::TruncationRate,
            Acc::Ratio {
                hits: a.truncated,
                n: ok,
            },
        ));
    }
    if a.latency.count() > 0 {
        v.push((DetectorKind::LatencyP95, Acc::Sketch(a.latency.clone())));
    }
    if a.cost.n > 0 {
        v.push((DetectorKind::CostPerCall, Acc::Mean(a.cost)));
    }
    for (n, m) in &a.evals {
        if m.n > 0 {
            v.push((DetectorKind::EvaluatorScore(n.clone()), Acc::Mean(*m)));
        }
    }
    v
}

fn unix_s(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn timestamp(t: SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// An evaluator's average score and how many results it averages.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EvaluatorAverage {
    /// Average score.
    pub avg: f64,
    /// Results averaged.
    pub count: u64,
}

/// The figures of one window, or of a series' lifetime.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowSummary {
    /// Start of the window (of the first window, for a lifetime), Unix seconds.
    pub start_unix_s: f64,
    /// LLM calls.
    pub requests: u64,
    /// Failed calls.
    pub errors: u64,
    /// `errors / requests`.
    pub error_rate: Option<f64>,
    /// Share of successful calls cut by the token limit.
    pub truncation_rate: Option<f64>,
    /// Share of successful calls stopped by a content filter.
    pub content_filter_rate: Option<f64>,
    /// Latency of successful calls, seconds: avg, p50, p95, p99 (from the sketch, 1 %).
    pub latency_s: Option<Quantiles>,
    /// Average output tokens per call.
    pub avg_output_tokens: Option<f64>,
    /// Average output tokens per second.
    pub avg_tokens_per_second: Option<f64>,
    /// Average time to first chunk of streamed calls, seconds.
    pub avg_time_to_first_chunk_s: Option<f64>,
    /// Average cost per priced call, USD.
    pub avg_cost_usd: Option<f64>,
    /// Average user rating (`0..=1`).
    pub avg_rating: Option<f64>,
    /// Ratings received.
    pub ratings: u64,
    /// Per-evaluator averages.
    pub evaluators: BTreeMap<String, EvaluatorAverage>,
    /// Average quality score of the calls.
    pub quality_score: Option<f64>,
}

/// The dashboard figures of one (model, feature) series, or of all calls.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeriesSnapshot {
    /// Model (`*` for the overall snapshot).
    pub model: String,
    /// Feature (`*` for the overall snapshot).
    pub feature: String,
    /// Since the monitor started, including the open window.
    pub total: WindowSummary,
    /// The last closed window.
    pub last_window: Option<WindowSummary>,
    /// Closed windows kept, oldest first.
    pub history: Vec<WindowSummary>,
    /// Trend of the per-window quality score.
    pub quality_trend: Option<Trend>,
    /// Trend of the per-window p95 latency.
    pub latency_trend: Option<Trend>,
    /// Detector states, by detector label.
    pub detectors: BTreeMap<String, DetectorState>,
    /// Detectors that cannot judge for lack of values, by detector label: empty when every
    /// detector judges within [`MonitorConfig::insufficient_after`].
    pub insufficient_data: BTreeMap<String, InsufficientData>,
}

/// A detector that has not had the values it needs to judge.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InsufficientData {
    /// Since when (the start of the block it is filling), Unix seconds.
    pub since_unix_s: f64,
    /// Values it has.
    pub samples: u64,
    /// Values it needs ([`DetectorConfig::min_samples`]).
    pub needed: u64,
    /// One line for people: `insufficient data since 2026-12-03T03:00:00Z: 12 of the 50 calls
    /// needed to judge error_rate`.
    pub message: String,
}

/// Counters of the monitor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MonitorStats {
    /// Calls recorded.
    pub calls: u64,
    /// Evaluation results recorded.
    pub evaluations: u64,
    /// Feedback recorded.
    pub feedback: u64,
    /// Feedback or evaluations whose call was not (or no longer) in the index.
    pub unmatched: u64,
    /// Calls filed under `(other)` because of [`MonitorConfig::max_series`].
    pub overflow_calls: u64,
    /// Calls evicted from the index (the oldest first).
    pub evicted_calls: u64,
    /// Windows closed (all series).
    pub windows_closed: u64,
    /// Alerts raised (firing and resolved).
    pub alerts: u64,
    /// Ratings that arrived later than [`MonitorConfig::feedback_grace`] after their call's
    /// window closed: counted in the lifetime figures, left out of detection.
    pub late_feedback: u64,
    /// Firing alerts raised while [`MAX_PENDING_ALERTS`] were already waiting to be taken
    /// ([`Monitor::take_alerts`]): dropped, and counted here (the alert is still among the
    /// [`Monitor::active_alerts`]). Resolved alerts are never dropped: past the bound the
    /// last resolution of each alert waits to be taken (dropped, its alert would fire
    /// downstream for good).
    pub alerts_dropped: u64,
    /// Events dated more than [`MAX_CLOCK_JUMP`] past both the monitor's time and the wall
    /// clock (a sender's clock far ahead, a bogus timestamp), where the event before was not:
    /// recorded in the open window without moving the monitor's time. One such event used to
    /// stop every window from closing (no detection, no alert) until real time caught up.
    /// Also counts events that brought back a monitor time set that far ahead by the first
    /// event.
    pub clock_skew_events: u64,
    /// Evaluation results left out of a series' figures and detection because it tracked
    /// [`MonitorConfig::max_evaluators`] other evaluation names: in the open window, or, when
    /// the window closed, for the series' lifetime and its detectors (none of them had gone
    /// without a result for [`MonitorConfig::resolve_idle_after`] to make room). Counted once
    /// for each series a result was left out of (all calls count as a series).
    pub evaluations_over_limit: u64,
}

/// Everything the dashboard needs, as one serde value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    /// Monitor time (the latest event time), Unix seconds.
    pub now_unix_s: f64,
    /// Window length, seconds.
    pub window_s: f64,
    /// All calls.
    pub overall: SeriesSnapshot,
    /// Per (model, feature), sorted.
    pub series: Vec<SeriesSnapshot>,
    /// Alerts firing now.
    pub active_alerts: Vec<Alert>,
    /// Counters.
    pub stats: MonitorStats,
}

/// How much the monitor holds: the measure of its memory bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Footprint {
    /// Series tracked (overall included).
    pub series: usize,
    /// Closed-window summaries kept.
    pub history_windows: usize,
    /// Quantile-sketch buckets in use.
    pub sketch_buckets: usize,
    /// Calls in the index.
    pub indexed_calls: usize,
    /// Index keys (response ids, trace ids, span ids).
    pub index_keys: usize,
    /// Detector states.
    pub detectors: usize,
    /// Evaluator averages kept (windows, lifetimes, history and calls), and the names each
    /// series tracks.
    pub evaluator_slots: usize,
    /// Alerts firing, and resolved ones waiting to be taken past [`MAX_PENDING_ALERTS`] (an
    /// alert is one or the other).
    pub active_alerts: usize,
}

impl Footprint {
    /// The most the monitor can hold with `cfg`, whatever the traffic.
    pub fn bound(cfg: &MonitorConfig) -> Footprint {
        let series = cfg.max_series + 2; // + overall + (other)
        let sketch_max = DdSketch::DEFAULT_LATENCY_MAX_BUCKETS;
        let kinds = 5 + cfg.max_evaluators;
        Footprint {
            series,
            history_windows: series * cfg.history,
            // The open window's, the lifetime's and the latency detector's block.
            sketch_buckets: series * 3 * sketch_max,
            indexed_calls: cfg.max_calls_indexed,
            index_keys: 3 * cfg.max_calls_indexed,
            detectors: series * kinds,
            evaluator_slots: series * (3 + cfg.history) * cfg.max_evaluators
                + cfg.max_calls_indexed * llmtel_score::MAX_EVALUATIONS_PER_CALL,
            active_alerts: series * kinds,
        }
    }

    /// Whether every field is within `bound`'s.
    pub fn within(&self, bound: &Footprint) -> bool {
        self.series <= bound.series
            && self.history_windows <= bound.history_windows
            && self.sketch_buckets <= bound.sketch_buckets
            && self.indexed_calls <= bound.indexed_calls
            && self.index_keys <= bound.index_keys
            && self.detectors <= bound.detectors
            && self.evaluator_slots <= bound.evaluator_slots
            && self.active_alerts <= bound.active_alerts
    }
}

#[derive(Debug)]
struct Series {
    model: String,
    feature: String,
    cur: Agg,
    total: Agg,
    first_window: Option<u64>,
    history: VecDeque<WindowSummary>,
    detectors: BTreeMap<DetectorKind, DetectorState>,
    quality_trend: TrendTracker,
    latency_trend: TrendTracker,
    /// Per detector, the block of values being filled.
    blocks: BTreeMap<DetectorKind, Block>,
    /// Ratings of the recently closed windows (oldest first), waiting for late ones.
    ratings: VecDeque<(u64, Mean)>,
    /// The evaluation names of the lifetime figures and detectors (at most
    /// [`MonitorConfig::max_evaluators`]), with the start of the last window that had them:
    /// a name without a result for [`MonitorConfig::resolve_idle_after`] makes room for a
    /// new one.
    evaluators: Vec<(String, SystemTime)>,
    thresholds: Thresholds,
}

impl Series {
    fn new(model: String, feature: String, thresholds: Thresholds) -> Self {
        Series {
            blocks: BTreeMap::new(),
            ratings: VecDeque::new(),
            evaluators: Vec::new(),
            thresholds,
            model,
            feature,
            cur: Agg::new(),
            total: Agg::new(),
            first_window: None,
            history: VecDeque::new(),
            detectors: BTreeMap::new(),
            quality_trend: TrendTracker::new(0.5, 8.0, 10),
            latency_trend: TrendTracker::new(0.5, 8.0, 10),
        }
    }
}

/// The values a detector accumulates until it has enough to judge.
#[derive(Clone, Debug)]
enum Acc {
    /// `hits` of `n` (error rate, truncation rate).
    Ratio { hits: u64, n: u64 },
    /// A mean (cost, rating, evaluator score).
    Mean(Mean),
    /// A latency sketch (p95).
    Sketch(DdSketch),
}

impl Acc {
    fn n(&self) -> u64 {
        match self {
            Acc::Ratio { n, .. } => *n,
            Acc::Mean(m) => m.n,
            Acc::Sketch(s) => s.count(),
        }
    }

    fn value(&self) -> Option<f64> {
        match self {
            Acc::Ratio { hits, n } => ratio(*hits, *n),
            Acc::Mean(m) => m.avg(),
            Acc::Sketch(s) => s.quantile(0.95),
        }
    }

    fn merge(&mut self, o: &Acc) {
        match (self, o) {
            (Acc::Ratio { hits, n }, Acc::Ratio { hits: h, n: m }) => {
                *hits += h;
                *n += m;
            }
            (Acc::Mean(a), Acc::Mean(b)) => a.merge(b),
            (Acc::Sketch(a), Acc::Sketch(b)) => a.merge(b),
            _ => {}
        }
    }
}

/// A detector's block: values of consecutive windows, judged together once there are
/// `min_samples` of them.
#[derive(Clone, Debug)]
struct Block {
    acc: Acc,
    /// Start of the first window in the block.
    since: SystemTime,
}

impl Block {
    fn buckets(&self) -> usize {
        match &self.acc {
            Acc::Sketch(s) => s.buckets(),
            _ => 0,
        }
    }
}

/// What a detector counts, for people.
fn unit(kind: &DetectorKind) -> &'static str {
    match kind {
        DetectorKind::ErrorRate => "calls",
        DetectorKind::LatencyP95 | DetectorKind::TruncationRate => "successful calls",
        DetectorKind::Rating => "ratings",
        DetectorKind::EvaluatorScore(_) => "evaluations",
        DetectorKind::CostPerCall => "priced calls",
    }
}

#[derive(Debug)]
struct CallEntry {
    series: usize,
    window: u64,
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    response_id: Option<String>,
    inputs: QualityInputs,
    quality: Option<f64>,
}

/// The monitor: synchronous and deterministic, on the time of the events fed to it.
///
/// # What it needs to judge a series
/// Every detector judges **blocks** of values (see [`DetectorConfig`]): closed windows
/// accumulate until a block holds `min_samples` values (50 calls for error rate, latency and
/// cost; 20 ratings or evaluations), then the block is judged. Nothing is discarded for being
/// small, so detection works from a few calls a minute to thousands a second without tuning;
/// what changes with traffic is how long a block takes to fill:
///
/// | traffic | error-rate block | rating block (30 % rated) | alert after a change (measured / estimated) |
/// |---|---|---|---|
/// | 2,000 calls / min | 1 min | 1 min | 2 min; ratings 4 min (2 min grace); resolved as fast |
/// | 20 calls / min | 3 min | about 4 min | 3–7 min, ratings 7–12 min; resolved within 15 min (12 seeds) |
/// | 5 calls / min | 10 min | about 14 min | about 20–30 min, ratings 30–45 min (estimate) |
///
/// A block that waits longer than [`MonitorConfig::insufficient_after`] (15 min) marks its
/// detector as lacking data: [`SeriesSnapshot::insufficient_data`] and the
/// `llm_quality_insufficient_data` gauge. The learned-baseline rules start after 5 healthy
/// blocks; the stated thresholds ([`crate::Thresholds`]) judge from the first block (except
/// the `*_factor` ones, which need the baseline).
///
/// Ratings are filed under the window of the call they rate (by the call's time) if they
/// arrive within [`MonitorConfig::feedback_grace`] of its close; the rating detector judges a
/// window that much after it closes.
#[derive(Debug)]
pub struct Monitor {
    cfg: MonitorConfig,
    window_s: u64,
    now: SystemTime,
    /// Whether the last event was held past [`MAX_CLOCK_JUMP`]: a second one in a row moves
    /// the monitor's time (its clock did move: a replay, a simulated clock, a long pause).
    ahead: bool,
    /// The monitor's time at the last event (what [`Monitor::advance_idle`] runs on from).
    last_event: Option<SystemTime>,
    cur_window: Option<u64>,
    series: Vec<Series>,
    by_key: HashMap<(String, String), usize>,
    /// The series of the last call (most calls are of the same few series): found without
    /// allocating a key.
    last_series: usize,
    /// The calls indexed for late evaluations and feedback, oldest first: call `id` is at
    /// `id - first_call` (ids are given in order and the oldest goes first).
    calls: VecDeque<CallEntry>,
    first_call: u64,
    /// (Seeded foldhash: the ids and response ids can come from remote callers through the
    /// collector; std's SipHash cost more than the rest of a call's recording.)
    by_response: foldhash::HashMap<String, u64>,
    by_trace: foldhash::HashMap<TraceId, u64>,
    by_span: foldhash::HashMap<SpanId, u64>,
    active: BTreeMap<AlertKey, Alert>,
    pending: Vec<Alert>,
    /// Resolved alerts raised while [`MAX_PENDING_ALERTS`] were waiting, the last of each
    /// alert: taken after `pending`. Their alerts are no longer in `active`, so the two hold
    /// at most one entry per alert together.
    resolved_over: BTreeMap<AlertKey, Alert>,
    stats: MonitorStats,
    /// An evaluation left out over [`MonitorConfig::max_evaluators`] was warned about (once).
    warned_over_limit: bool,
}

/// An alert's identity: its name and labels.
type AlertKey = (String, Vec<(String, String)>);

const OVERALL: usize = 0;
/// Alerts the monitor holds until they are taken ([`Monitor::take_alerts`]); more firing
/// ones are dropped and counted in [`MonitorStats::alerts_dropped`], more resolved ones are
/// kept, the last of each alert.
pub const MAX_PENDING_ALERTS: usize = 1024;

/// How far one event may move the monitor's time past both its time and the wall clock; an
/// event further ahead moves it only when the event before it was that far ahead too
/// ([`MonitorStats::clock_skew_events`]).
pub const MAX_CLOCK_JUMP: Duration = Duration::from_secs(3600);

impl Monitor {
    /// A monitor with these settings.
    pub fn new(cfg: MonitorConfig) -> Self {
        let window_s = cfg.window.as_secs().max(1);
        Monitor {
            window_s,
            now: UNIX_EPOCH,
            ahead: false,
            last_event: None,
            cur_window: None,
            series: vec![Series::new(
                "*".into(),
                "*".into(),
                cfg.thresholds.default.clone(),
            )],
            by_key: HashMap::new(),
            last_series: OVERALL,
            calls: VecDeque::new(),
            first_call: 0,
            by_response: foldhash::HashMap::default(),
            by_trace: foldhash::HashMap::default(),
            by_span: foldhash::HashMap::default(),
            active: BTreeMap::new(),
            pending: Vec::new(),
            resolved_over: BTreeMap::new(),
            stats: MonitorStats::default(),
            warned_over_limit: false,
            cfg,
        }
    }

    /// The settings.
    pub fn config(&self) -> &MonitorConfig {
        &self.cfg
    }

    fn window_of(&self, t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / self.window_s
    }

    fn window_start(&self, w: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(w * self.window_s)
    }

    /// Moves the monitor's time to `t` (if later), closing every window that ended. Called by
    /// every `record_*`; call it directly to close windows when no traffic comes.
    pub fn advance(&mut self, t: SystemTime) {
        if t > self.now {
            self.now = t;
        }
        self.close_ended();
    }

    /// Lets the monitor's time run on while no event comes: moves it to the time of the last
    /// event plus `idle` (how long the caller has seen no event), closing the windows that
    /// ended meanwhile. Without it, a window closes only when an event of a later window
    /// arrives: when traffic stops, the last window is never judged and a firing alert never
    /// resolves for lack of data. Runs on from the events' clock, not the wall clock, so
    /// events replayed from the past keep their windows. The quality pipeline calls it
    /// from its thread; does nothing before the first event.
    pub fn advance_idle(&mut self, idle: Duration) {
        if let Some(t) = self.last_event.and_then(|t| t.checked_add(idle)) {
            self.advance(t);
        }
    }

    /// [`advance`](Self::advance) for an event's own time, guarded against a sender's clock:
    /// an event dated more than [`MAX_CLOCK_JUMP`] past both the monitor's time and the wall
    /// clock moves it only when the event before it was that far ahead too; and when the
    /// monitor's time is that far past the wall clock (a bogus first event set it) an event
    /// dated no further ahead of the wall clock than that brings it back.
    fn advance_to_event(&mut self, t: SystemTime) {
        let wall = SystemTime::now();
        let past = |at: SystemTime, reference: SystemTime| {
            reference
                .checked_add(MAX_CLOCK_JUMP)
                .is_none_or(|limit| at > limit)
        };
        if t > self.now && self.cur_window.is_some() && past(t, self.now.max(wall)) {
            if !std::mem::replace(&mut self.ahead, true) {
                // Held: the event joins the open window; the monitor's time stays.
                self.stats.clock_skew_events += 1;
                self.last_event = Some(self.now);
                return;
            }
        } else if t < self.now && past(self.now, wall) && !past(t, wall) {
            // The monitor's time is far ahead of the wall clock and this event is not: take
            // the event's time.
            self.stats.clock_skew_events += 1;
            self.wind_back(t);
        }
        self.ahead = false;
        self.advance(t);
        self.last_event = Some(self.now);
    }

    /// Brings the monitor's time back to `t` from a time far ahead. The open window (the far
    /// one) is not closed: judged, it was judged at the far time, where every firing detector
    /// had had no value for hours and resolved "for lack of data" (`ends_at` in the future),
    /// then stayed cooling until real time got there. Its figures join the window of `t`, and
    /// every time dated past `t` (a detector's last value, resolution and fire, a block's
    /// start, a window index) is brought back to it.
    fn wind_back(&mut self, t: SystemTime) {
        let w = self.window_of(t);
        let start = self.window_start(w);
        self.now = t;
        self.cur_window = Some(w);
        // The calls of the far window (the last ones indexed) are now of `w`: their late
        // ratings find `w`'s entry.
        for e in self.calls.iter_mut().rev() {
            if e.window <= w {
                break;
            }
            e.window = w;
        }
        let clamp = |v: &mut Option<SystemTime>, to: SystemTime| {
            if let Some(x) = v {
                *x = (*x).min(to);
            }
        };
        for series in &mut self.series {
            // Ratings waiting under a far window's index would wait until real time got
            // there (their queue is drained oldest first): they wait from the new window.
            for r in &mut series.ratings {
                r.0 = r.0.min(w);
            }
            if let Some(f) = &mut series.first_window {
                *f = (*f).min(w);
            }
            for b in series.blocks.values_mut() {
                b.since = b.since.min(start);
            }
            for st in series.detectors.values_mut() {
                clamp(&mut st.last_value_at, start);
                clamp(&mut st.resolved_at, t);
                clamp(&mut st.firing_since, t);
                if let Some(s) = &mut st.insufficient_since_unix_s {
                    *s = s.min(unix_s(start));
                }
            }
        }
    }

    /// Closes the open window if the monitor's time has left it.
    fn close_ended(&mut self) {
        let w = self.window_of(self.now);
        match self.cur_window {
            None => self.cur_window = Some(w),
            Some(cur) if w > cur => {
                self.close_windows(cur);
                self.cur_window = Some(w);
            }
            _ => {}
        }
    }

    fn series_index(&mut self, model: Option<&str>, feature: Option<&str>) -> usize {
        // Keys and labels: capped as every value a caller controls.
        let model = llmtel::cap_value(model.unwrap_or(UNKNOWN));
        let feature = llmtel::cap_value(feature.unwrap_or(UNKNOWN));
        let (model, feature) = (model.as_ref(), feature.as_ref());
        let last = &self.series[self.last_series];
        if self.last_series != OVERALL && last.model == model && last.feature == feature {
            return self.last_series;
        }
        if let Some(&i) = self.by_key.get(&(model.to_owned(), feature.to_owned())) {
            self.last_series = i;
            return i;
        }
        if self.by_key.len() >= self.cfg.max_series {
            self.stats.overflow_calls += 1;
            let key = (OTHER.to_owned(), OTHER.to_owned());
            if let Some(&i) = self.by_key.get(&key) {
                return i;
            }
            let t = self.cfg.thresholds.for_series(OTHER, OTHER).clone();
            self.series
                .push(Series::new(key.0.clone(), key.1.clone(), t));
            let i = self.series.len() - 1;
            self.by_key.insert(key, i);
            return i;
        }
        let t = self.cfg.thresholds.for_series(model, feature).clone();
        self.series
            .push(Series::new(model.to_owned(), feature.to_owned(), t));
        let i = self.series.len() - 1;
        self.by_key
            .insert((model.to_owned(), feature.to_owned()), i);
        i
    }

    /// Records one call's signals.
    pub fn record_call(&mut self, c: &CallSignals) {
        self.advance_to_event(c.ended_at);
        self.stats.calls += 1;
        let s = self.series_index(c.model.as_deref(), c.feature.as_deref());
        let inputs = QualityInputs {
            success: Some(c.error_type.is_none()),
            complete: Some(!(c.truncated || c.content_filtered)),
            latency_s: Some(c.latency.as_secs_f64()),
            ..Default::default()
        };
        let quality = self.cfg.weights.score(&inputs);
        for idx in [OVERALL, s] {
            let series = &mut self.series[idx];
            series.cur.add_call(c, quality);
            series
                .first_window
                .get_or_insert(self.cur_window.unwrap_or(0));
        }
        self.index_call(CallEntry {
            series: s,
            window: self.cur_window.unwrap_or(0),
            trace_id: c.trace_id,
            span_id: c.span_id,
            response_id: c.response_id.clone(),
            inputs,
            quality,
        });
    }

    fn index_call(&mut self, e: CallEntry) {
        if self.cfg.max_calls_indexed == 0 {
            return;
        }
        while self.calls.len() >= self.cfg.max_calls_indexed {
            let Some(o) = self.calls.pop_front() else {
                break;
            };
            let old = self.first_call;
            self.first_call += 1;
            self.stats.evicted_calls += 1;
            if let Some(r) = &o.response_id {
                if self.by_response.get(r) == Some(&old) {
                    self.by_response.remove(r);
                }
            }
            if let Some(t) = o.trace_id {
                if self.by_trace.get(&t) == Some(&old) {
                    self.by_trace.remove(&t);
                }
            }
            if let Some(sp) = o.span_id {
                if self.by_span.get(&sp) == Some(&old) {
                    self.by_span.remove(&sp);
                }
            }
        }
        let id = self.first_call + self.calls.len() as u64;
        if let Some(r) = &e.response_id {
            self.by_response.insert(r.clone(), id);
        }
        if let Some(t) = e.trace_id {
            self.by_trace.insert(t, id);
        }
        if let Some(sp) = e.span_id {
            self.by_span.insert(sp, id);
        }
        self.calls.push_back(e);
    }

    /// Where the indexed call `id` is in `calls` (it may have been evicted since).
    fn position(&self, id: u64) -> Option<usize> {
        usize::try_from(id.checked_sub(self.first_call)?).ok()
    }

    /// The indexed call `id`, unless it was evicted.
    fn call(&self, id: u64) -> Option<&CallEntry> {
        self.calls.get(self.position(id)?)
    }

    fn lookup(&self, r: &CallRef) -> Option<u64> {
        match r {
            CallRef::ResponseId(id) => self.by_response.get(id).copied(),
            CallRef::TraceId(t) => self.by_trace.get(t).copied(),
            CallRef::Span(_, s) => self.by_span.get(s).copied(),
        }
    }

    /// Updates a known call's quality inputs and re-scores it; while the call's window is
    /// still open, its window average follows.
    fn rescore(&mut self, id: u64, f: impl FnOnce(&mut QualityInputs)) {
        let Some(e) = self.position(id).and_then(|i| self.calls.get_mut(i)) else {
            return;
        };
        f(&mut e.inputs);
        let new = self.cfg.weights.score(&e.inputs);
        let old = std::mem::replace(&mut e.quality, new);
        if Some(e.window) == self.cur_window {
            for idx in [OVERALL, e.series] {
                let q = &mut self.series[idx].cur.quality;
                if let Some(o) = old {
                    q.remove(o);
                }
                if let Some(n) = new {
                    q.add(n);
                }
            }
        }
    }

    fn record_ref(
        &self,
        id: Option<u64>,
        fallback: &CallRef,
    ) -> (Option<TraceId>, Option<SpanId>, Option<String>) {
        if let Some(e) = id.and_then(|i| self.call(i)) {
            return (e.trace_id, e.span_id, e.response_id.clone());
        }
        match fallback {
            CallRef::ResponseId(r) => (None, None, Some(r.clone())),
            CallRef::TraceId(t) => (Some(*t), None, None),
            CallRef::Span(t, s) => (Some(*t), Some(*s), None),
        }
    }

    /// Records a user's feedback: its rating goes into the current window of the call's
    /// series (and of all calls) and re-scores the call. Returns the evaluation record to emit
    /// (parented to the call's span when known) and whether the call was found.
    pub fn record_feedback(&mut self, fb: &Feedback) -> (EvaluationRecord, bool) {
        self.advance_to_event(fb.at);
        self.stats.feedback += 1;
        let id = self.lookup(&fb.target);
        let call = id.and_then(|i| self.call(i)).map(|e| (e.series, e.window));
        if let Some(score) = fb.score.map(unit_score) {
            match call {
                Some((s, w)) if Some(w) != self.cur_window => self.late_rating(s, w, score),
                _ => {
                    // The call's window is open (or the call is unknown: filed by arrival).
                    let series = call.map(|c| c.0);
                    for idx in std::iter::once(OVERALL).chain(series) {
                        self.series[idx].cur.rating.add(score);
                    }
                }
            }
            if let Some(i) = id {
                self.rescore(i, |q| q.rating = Some(score));
            }
        }
        if id.is_none() {
            self.stats.unmatched += 1;
        }
        let (trace_id, span_id, response_id) = self.record_ref(id, &fb.target);
        (
            EvaluationRecord {
                name: "user_feedback".into(),
                score: fb.score.map(unit_score),
                label: fb.label.clone(),
                explanation: fb.comment.clone(),
                response_id,
                trace_id,
                span_id,
                error_type: None,
            },
            id.is_some(),
        )
    }

    /// A rating of a call whose window has closed: counted in that window (its detector
    /// block, its history summary) while the window is within the grace period.
    fn late_rating(&mut self, s: usize, w: u64, score: f64) {
        if !score.is_finite() {
            return;
        }
        let start = unix_s(self.window_start(w));
        let mut late = false;
        for idx in [OVERALL, s] {
            let series = &mut self.series[idx];
            series.total.rating.add(score);
            match series.ratings.iter_mut().find(|(rw, _)| *rw == w) {
                Some((_, m)) => m.add(score),
                None => late = true,
            }
            if let Some(h) = series
                .history
                .iter_mut()
                .rev()
                .find(|h| h.start_unix_s == start)
            {
                let mut m = Mean {
                    sum: h.avg_rating.unwrap_or(0.0) * h.ratings as f64,
                    n: h.ratings,
                };
                m.add(score);
                h.ratings = m.n;
                h.avg_rating = m.avg();
            }
        }
        if late {
            self.stats.late_feedback += 1;
        }
    }

    /// Records an evaluator's result on `input`'s call (found by span, response id or trace
    /// id; else filed under the input's model and feature). Returns the record to emit.
    ///
    /// A result without a time ([`EvalInput::at`] `None`) is filed at the monitor's time,
    /// which it does not move: nor does it move the time [`Monitor::advance_idle`] runs on
    /// from.
    pub fn record_evaluation(&mut self, input: &EvalInput, ev: &Evaluation) -> EvaluationRecord {
        match input.at {
            Some(t) => self.advance_to_event(t),
            None => self.advance(self.now),
        }
        self.stats.evaluations += 1;
        let target = match (input.trace_id, input.span_id, &input.response_id) {
            (Some(t), Some(s), _) => Some(CallRef::Span(t, s)),
            (_, _, Some(r)) => Some(CallRef::ResponseId(r.clone())),
            (Some(t), None, None) => Some(CallRef::TraceId(t)),
            _ => None,
        };
        let id = target.as_ref().and_then(|t| self.lookup(t));
        let series = match id.and_then(|i| self.call(i)) {
            Some(e) => Some(e.series),
            None => {
                self.stats.unmatched += 1;
                (input.model.is_some() || input.feature.is_some())
                    .then(|| self.series_index(input.model.as_deref(), input.feature.as_deref()))
            }
        };
        let max = self.cfg.max_evaluators;
        // The name is kept per window, series, detector and call, and becomes a label: capped
        // as every value a sender controls (an evaluation name from a span in the collector).
        let name = llmtel::cap_value(&ev.name);
        // Scores are in [0, 1]: `Evaluation`'s fields are public, so an evaluator of the
        // user's can return anything (5 on a 1-5 scale pushed averages past 1).
        let score = unit_score(ev.score);
        // The call's series first: the warning of the first result left out names it.
        for idx in series.into_iter().chain(std::iter::once(OVERALL)) {
            match self.series[idx].cur.eval_mut(&name, max) {
                Some(m) => m.add(score),
                None => self.over_limit(idx, &name, 1),
            }
        }
        if let Some(i) = id {
            self.rescore(i, |q| q.set_evaluation(&name, score));
        }
        let (trace_id, span_id, response_id) = match &target {
            Some(t) => self.record_ref(id, t),
            None => (None, None, None),
        };
        EvaluationRecord {
            name: name.into_owned(),
            score: Some(score),
            label: Some(ev.label.clone()),
            explanation: Some(ev.explanation.clone()),
            response_id,
            trace_id,
            span_id,
            error_type: None,
        }
    }

    /// Windows a rating may arrive late by (rounded up).
    fn grace_windows(&self) -> u64 {
        self.cfg.feedback_grace.as_secs().div_ceil(self.window_s)
    }

    fn close_windows(&mut self, w: u64) {
        let start = self.window_start(w);
        let end = self.window_start(w + 1);
        let grace = self.grace_windows();
        for idx in 0..self.series.len() {
            let s = &self.series[idx];
            let has_window = s.cur.calls > 0 || s.cur.rating.n > 0 || !s.cur.evals.is_empty();
            if !has_window && s.ratings.is_empty() && s.blocks.is_empty() {
                self.resolve_idle(idx, end);
                continue;
            }
            let mut values: Vec<(DetectorKind, Acc, SystemTime)> = Vec::new();
            if has_window {
                self.stats.windows_closed += 1;
                let agg = std::mem::replace(&mut self.series[idx].cur, Agg::new());
                // Ratings and evaluations arrive without calls in their window: keep the
                // window's call figures with them.
                let summary = agg.summary(start);
                let mut left_out = Vec::new();
                // Names tracked already first: each is marked seen in this window before a
                // new name looks for an idle one to replace.
                let (known, new): (Vec<_>, Vec<_>) = agg.evals.iter().partition(|(name, _)| {
                    self.series[idx].evaluators.iter().any(|(n, _)| n == name)
                });
                for (name, m) in known.into_iter().chain(new) {
                    if !self.track_evaluator(idx, name, start, end) {
                        self.over_limit(idx, name, m.n);
                        left_out.push(name.as_str());
                    }
                }
                values = window_values(&agg)
                    .into_iter()
                    .filter(|(k, _)| {
                        !matches!(k, DetectorKind::EvaluatorScore(n) if left_out.contains(&n.as_str()))
                    })
                    .map(|(k, a)| (k, a, start))
                    .collect();
                let series = &mut self.series[idx];
                // The window's ratings wait `grace` windows for late ones.
                series.ratings.push_back((w, agg.rating));
                if let Some(q) = summary.quality_score {
                    series.quality_trend.add(q);
                }
                if let Some(l) = &summary.latency_s {
                    series.latency_trend.add(l.p95);
                }
                if series.history.len() >= self.cfg.history.max(1) {
                    series.history.pop_front();
                }
                series.history.push_back(summary);
                let max = self.cfg.max_evaluators;
                series.total.merge(&agg, max);
            }
            while let Some(&(rw, m)) = self.series[idx].ratings.front() {
                if rw + grace > w {
                    break;
                }
                self.series[idx].ratings.pop_front();
                if m.n > 0 {
                    values.push((DetectorKind::Rating, Acc::Mean(m), self.window_start(rw)));
                }
            }
            self.judge_blocks(idx, values, end);
            self.resolve_idle(idx, end);
        }
    }

    /// Counts `n` results of evaluation `name` left out of series `idx` over
    /// [`MonitorConfig::max_evaluators`]; the first is warned about (once for the monitor),
    /// naming the evaluation and what to do: left out silently, a renamed evaluator
    /// (`judge-v1` to `judge-v2`) looked like one that had stopped.
    fn over_limit(&mut self, idx: usize, name: &str, n: u64) {
        self.stats.evaluations_over_limit += n;
        if std::mem::replace(&mut self.warned_over_limit, true) {
            return;
        }
        // The name, model and feature can come from a remote sender (the collector's
        // spans): redacted as every value logged, and quoted (control characters escaped).
        let s = &self.series[idx];
        let (name, model, feature) = (
            llmtel::redact(name),
            llmtel::redact(&s.model),
            llmtel::redact(&s.feature),
        );
        let of = if idx == OVERALL {
            "all calls".to_owned()
        } else {
            format!("model {model:?}, feature {feature:?}")
        };
        tracing::warn!(
            target: crate::emit::TARGET,
            evaluation = %name,
            model = %model,
            feature = %feature,
            "llmtel-quality: results of evaluation {name:?} are left out of the quality figures \
             and detection of {of}: {} other evaluation names are tracked already \
             (MonitorConfig::max_evaluators). Raise the limit \
             (MonitorConfig::with_max_evaluators) or reuse evaluator names; a name without a \
             result for resolve_idle_after ({} s) gives its place to a new one. Counted in \
             MonitorStats::evaluations_over_limit (llm_quality_evaluations_over_limit_total); \
             warned about once.",
            self.cfg.max_evaluators,
            self.cfg.resolve_idle_after.as_secs(),
        );
    }

    /// Tracks evaluation `name` in series `idx`'s lifetime figures and detectors, seen in the
    /// window starting at `seen`; when [`MonitorConfig::max_evaluators`] names are tracked,
    /// in place of one without a result for [`MonitorConfig::resolve_idle_after`] before
    /// `end` whose detector is not firing. Returns whether it is tracked.
    fn track_evaluator(
        &mut self,
        idx: usize,
        name: &str,
        seen: SystemTime,
        end: SystemTime,
    ) -> bool {
        let idle_after = self.cfg.resolve_idle_after;
        let max = self.cfg.max_evaluators;
        let series = &mut self.series[idx];
        if let Some(e) = series.evaluators.iter_mut().find(|(n, _)| n == name) {
            e.1 = e.1.max(seen);
            return true;
        }
        if series.evaluators.len() >= max {
            let idle = series
                .evaluators
                .iter()
                .enumerate()
                .filter(|(_, (n, at))| {
                    end.duration_since(*at).is_ok_and(|d| d > idle_after)
                        && !series
                            .detectors
                            .get(&DetectorKind::EvaluatorScore(n.clone()))
                            .is_some_and(|st| st.firing)
                })
                .min_by_key(|(_, (_, at))| *at)
                .map(|(i, _)| i);
            let Some(i) = idle else {
                return false;
            };
            let (old, _) = series.evaluators.remove(i);
            series.total.evals.retain(|(n, _)| *n != old);
            let kind = DetectorKind::EvaluatorScore(old);
            series.detectors.remove(&kind);
            series.blocks.remove(&kind);
        }
        series.evaluators.push((name.to_owned(), seen));
        if !series.total.evals.iter().any(|(n, _)| n == name) {
            series.total.evals.push((name.to_owned(), Mean::default()));
        }
        true
    }

    /// Resolves the firing detectors of series `idx` that no value has reached for
    /// [`MonitorConfig::resolve_idle_after`]: with no traffic, no block would ever be judged
    /// and the alert would fire (and be re-sent) for good.
    fn resolve_idle(&mut self, idx: usize, end: SystemTime) {
        let idle_after = self.cfg.resolve_idle_after;
        let resolved: Vec<(DetectorKind, Transition)> = self.series[idx]
            .detectors
            .iter_mut()
            .filter_map(|(k, st)| Some((k.clone(), st.resolve_when_idle(end, idle_after)?)))
            .collect();
        for (kind, tr) in resolved {
            let cfg = self.cfg.detector(&kind);
            self.raise(idx, &kind, &cfg, tr, None, end);
        }
    }

    /// Adds a window's values to the detectors' blocks and judges every block that has
    /// enough.
    fn judge_blocks(
        &mut self,
        idx: usize,
        values: Vec<(DetectorKind, Acc, SystemTime)>,
        end: SystemTime,
    ) {
        let max_kinds = 5 + self.cfg.max_evaluators;
        for (kind, acc, start) in values {
            let series = &mut self.series[idx];
            if !series.blocks.contains_key(&kind) && series.blocks.len() >= max_kinds {
                continue;
            }
            if !self.cfg.detector(&kind).enabled {
                continue;
            }
            if let Some(st) = series.detectors.get_mut(&kind) {
                st.last_value_at = Some(start);
            }
            match series.blocks.get_mut(&kind) {
                Some(b) => b.acc.merge(&acc),
                None => {
                    series.blocks.insert(kind, Block { acc, since: start });
                }
            }
        }
        let kinds: Vec<DetectorKind> = self.series[idx].blocks.keys().cloned().collect();
        for kind in kinds {
            let cfg = self.cfg.detector(&kind);
            let series = &mut self.series[idx];
            if !series.detectors.contains_key(&kind) && series.detectors.len() >= max_kinds {
                series.blocks.remove(&kind);
                continue;
            }
            let limits = series.thresholds.limits(&kind);
            let Some(block) = series.blocks.get(&kind) else {
                continue;
            };
            let (n, since) = (block.acc.n(), block.since);
            let waited = end.duration_since(since).unwrap_or_default();
            let st = series.detectors.entry(kind.clone()).or_default();
            st.needed = cfg.min_samples.max(1);
            st.last_value_at = st.last_value_at.max(Some(since));
            let insufficient = waited > self.cfg.insufficient_after;
            if n < cfg.min_samples.max(1) {
                st.samples = n;
                if insufficient && st.insufficient_since_unix_s.is_none() {
                    st.insufficient_since_unix_s = Some(unix_s(since));
                }
                continue;
            }
            let value = block.acc.value();
            series.blocks.remove(&kind);
            st.samples = 0;
            if !insufficient {
                st.insufficient_since_unix_s = None;
            } else if st.insufficient_since_unix_s.is_none() {
                st.insufficient_since_unix_s = Some(unix_s(since));
            }
            let Some(v) = value else {
                continue;
            };
            if let Some(tr) = st.step(&cfg, &limits, v, end, self.cfg.cooldown) {
                let since = st.firing_since;
                self.raise(idx, &kind, &cfg, tr, since, end);
            }
        }
    }

    fn raise(
        &mut self,
        idx: usize,
        kind: &DetectorKind,
        cfg: &DetectorConfig,
        tr: Transition,
        since: Option<SystemTime>,
        at: SystemTime,
    ) {
        let s = &self.series[idx];
        let mut alert = Alert::firing(kind.alert_name(), cfg.severity)
            .with_label("model", s.model.clone())
            .with_label("feature", s.feature.clone())
            .with_label("detector", kind.label());
        if let DetectorKind::EvaluatorScore(n) = kind {
            alert = alert.with_label("evaluation", n.clone());
        }
        let key: AlertKey = (
            alert.name.clone(),
            alert
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>(),
        );
        // A fire follows any resolution of the same alert still waiting.
        self.resolved_over.remove(&key);
        let alert = match tr {
            Transition::Fire {
                value,
                baseline,
                threshold,
                rule,
            } => {
                let base = baseline.map_or_else(
                    || "no baseline learnt yet".to_owned(),
                    |b| format!("baseline {b:.4}"),
                );
                let mut a = alert
                    .with_starts_at(timestamp(since.unwrap_or(at)))
                    .with_annotation(
                        "summary",
                        format!(
                            "{} of {} / {} is {value:.4}, past the {rule} threshold {threshold:.4} ({base})",
                            kind.label(),
                            s.model,
                            s.feature
                        ),
                    )
                    .with_annotation("value", format!("{value}"))
                    .with_annotation("threshold", format!("{threshold}"))
                    .with_annotation("rule", rule);
                if let Some(b) = baseline {
                    a = a.with_annotation("baseline", format!("{b}"));
                }
                self.active.insert(key.clone(), a.clone());
                a
            }
            Transition::Resolve { value, baseline } => {
                let mut a = self.active.remove(&key).unwrap_or(alert);
                a.state = AlertState::Resolved;
                a.ends_at = Some(timestamp(at));
                let base = baseline.map_or_else(String::new, |b| format!(" (baseline {b:.4})"));
                a.annotations.insert(
                    "summary".into(),
                    format!(
                        "{} of {} / {} back to {value:.4}{base}",
                        kind.label(),
                        s.model,
                        s.feature
                    ),
                );
                a
            }
            Transition::NoData { since } => {
                let mut a = self.active.remove(&key).unwrap_or(alert);
                a.state = AlertState::Resolved;
                a.ends_at = Some(timestamp(at));
                a.annotations.insert(
                    "summary".into(),
                    format!(
                        "{} of {} / {}: no data since {}; resolved for lack of data",
                        kind.label(),
                        s.model,
                        s.feature,
                        timestamp(since)
                    ),
                );
                a
            }
        };
        self.stats.alerts += 1;
        if self.pending.len() < MAX_PENDING_ALERTS {
            self.pending.push(alert);
        } else if alert.state == AlertState::Resolved {
            // Its alert was sent firing: dropped, it would fire downstream for good.
            self.resolved_over.insert(key, alert);
        } else {
            self.stats.alerts_dropped += 1;
        }
    }

    /// Takes the alerts raised since the last call (firing and resolved, in order; past
    /// [`MAX_PENDING_ALERTS`], the last resolution of each alert).
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        let mut taken = std::mem::take(&mut self.pending);
        taken.extend(std::mem::take(&mut self.resolved_over).into_values());
        taken
    }

    /// Alerts firing now.
    pub fn active_alerts(&self) -> Vec<Alert> {
        self.active.values().cloned().collect()
    }

    /// The counters.
    pub fn stats(&self) -> MonitorStats {
        self.stats.clone()
    }

    /// The quality score of a call still in the index, by response id, trace or span.
    pub fn call_quality(&self, r: &CallRef) -> Option<f64> {
        self.call(self.lookup(r)?)?.quality
    }

    /// How much the monitor holds now.
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint {
            series: self.series.len(),
            indexed_calls: self.calls.len(),
            index_keys: self.by_response.len() + self.by_trace.len() + self.by_span.len(),
            active_alerts: self.active.len() + self.resolved_over.len(),
            ..Default::default()
        };
        for s in &self.series {
            f.history_windows += s.history.len();
            f.sketch_buckets += s.cur.latency.buckets()
                + s.total.latency.buckets()
                + s.blocks.values().map(Block::buckets).sum::<usize>();
            f.detectors += s.detectors.len();
            f.evaluator_slots += s.cur.evals.len()
                + s.total.evals.len()
                + s.evaluators.len()
                + s.history.iter().map(|h| h.evaluators.len()).sum::<usize>();
        }
        f.evaluator_slots += self
            .calls
            .iter()
            .map(|c| c.inputs.evaluations.len())
            .sum::<usize>();
        f
    }

    fn series_snapshot(&self, s: &Series) -> SeriesSnapshot {
        let mut total = s.total.clone();
        total.merge(&s.cur, self.cfg.max_evaluators);
        let start = self.window_start(s.first_window.unwrap_or(0));
        SeriesSnapshot {
            model: s.model.clone(),
            feature: s.feature.clone(),
            total: total.summary(start),
            last_window: s.history.back().cloned(),
            history: s.history.iter().cloned().collect(),
            quality_trend: s.quality_trend.trend(),
            latency_trend: s.latency_trend.trend(),
            detectors: s
                .detectors
                .iter()
                .map(|(k, v)| (k.label(), v.clone()))
                .collect(),
            insufficient_data: s
                .detectors
                .iter()
                .filter_map(|(k, v)| {
                    let since = v.insufficient_since_unix_s?;
                    let at = jiff::Timestamp::from_microsecond((since * 1e6) as i64)
                        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                    Some((
                        k.label(),
                        InsufficientData {
                            since_unix_s: since,
                            samples: v.samples,
                            needed: v.needed,
                            message: format!(
                                "insufficient data since {at}: {} of the {} {} needed to judge {}",
                                v.samples,
                                v.needed,
                                unit(k),
                                k.label()
                            ),
                        },
                    ))
                })
                .collect(),
        }
    }

    /// The dashboard data: overall and per (model, feature).
    pub fn snapshot(&self) -> Snapshot {
        let mut series: Vec<SeriesSnapshot> = self.series[1..]
            .iter()
            .map(|s| self.series_snapshot(s))
            .collect();
        series.sort_by(|a, b| (&a.model, &a.feature).cmp(&(&b.model, &b.feature)));
        Snapshot {
            now_unix_s: unix_s(self.now),
            window_s: self.window_s as f64,
            overall: self.series_snapshot(&self.series[OVERALL]),
            series,
            active_alerts: self.active_alerts(),
            stats: self.stats(),
        }
    }
}

/// A score held to [0, 1] (NaN stays NaN: the accumulators skip it).
fn unit_score(score: f64) -> f64 {
    if score.is_nan() {
        score
    } else {
        score.clamp(0.0, 1.0)
    }
}
