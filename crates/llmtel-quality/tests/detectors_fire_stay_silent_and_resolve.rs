//! Each detector, driven by synthetic traffic (seeded RNG, simulated clock) through the real
//! pipeline (`QualitySink` → bounded queue → monitor thread → `AlertDispatcher` → sink):
//! silent over 10,000 calls of steady noisy traffic, fires once on the injected degradation,
//! resolves once when traffic recovers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{CallSpec, Clock, Rng, call};
use llmtel::CallSink;
use llmtel_alert::{Alert, AlertDispatcher, AlertState, MemorySink};
use llmtel_quality::{CallRef, EvalInput, Feedback, LexicalRelevance, Quality, SyncAdapter};

/// Traffic parameters of one phase.
#[derive(Clone, Copy, Debug)]
struct Traffic {
    error_p: f64,
    latency_median_s: f64,
    truncation_p: f64,
    cost_usd: f64,
    rating: f64,
    irrelevant_p: f64,
}

const STEADY: Traffic = Traffic {
    error_p: 0.02,
    latency_median_s: 1.2,
    truncation_p: 0.03,
    cost_usd: 0.004,
    rating: 0.8,
    irrelevant_p: 0.1,
};

struct Run {
    quality: Quality,
    sink: MemorySink,
    alerts: AlertDispatcher,
    rng: Rng,
    clock: Clock,
    n: u64,
}

impl Run {
    fn new(seed: u64) -> Self {
        let sink = MemorySink::new();
        let alerts = AlertDispatcher::builder()
            .with_sink(Arc::new(sink.clone()))
            .build();
        let quality = Quality::builder()
            .with_evaluator(Arc::new(SyncAdapter(LexicalRelevance::default())))
            .with_alerts(alerts.clone())
            .with_events(false)
            .with_queue_capacity(4096)
            .with_eval_queue_capacity(4096)
            .build();
        Run {
            quality,
            sink,
            alerts,
            rng: Rng::new(seed),
            clock: Clock::start(),
            n: 0,
        }
    }

    /// `calls` calls, one every 0.5 s (120 per 60 s window).
    fn drive(&mut self, t: Traffic, calls: u64) -> Vec<Alert> {
        let before = self.sink.alerts().len();
        let sink = self.quality.sink();
        for _ in 0..calls {
            self.n += 1;
            let r = &mut self.rng;
            let id = format!("resp-{}", self.n);
            let error = r.chance(t.error_p).then_some("timeout");
            let spec = CallSpec {
                model: "gpt-4o-mini",
                feature: "support",
                response_id: id.clone(),
                started_at: self.clock.now(),
                latency_s: r.lognormal(t.latency_median_s, 0.35),
                error,
                finish: if r.chance(t.truncation_p) {
                    "length"
                } else {
                    "stop"
                },
                output_tokens: (200.0 * r.lognormal(1.0, 0.3)) as u64,
                cost_usd: Some(t.cost_usd * r.lognormal(1.0, 0.3)),
            };
            sink.on_call(&call(&spec));
            if error.is_none() {
                // A third of the users rate; ratings around the phase's mean.
                if r.chance(0.33) {
                    let v = (t.rating + 0.2 * r.normal()).clamp(0.0, 1.0);
                    let fb = Feedback::rating(CallRef::ResponseId(id.clone()), v, 0.0, 1.0)
                        .expect("in scale")
                        .at(self.clock.now() + Duration::from_secs(2));
                    self.quality.feedback(fb);
                }
                let answer = if r.chance(t.irrelevant_p) {
                    "Our offices are in Lisbon and Toronto; the team works remotely."
                } else {
                    "To cancel your subscription, open Account settings and choose Cancel subscription."
                };
                self.quality.evaluate(
                    EvalInput::new(answer)
                        .with_question("How do I cancel my subscription?")
                        .with_response_id(id),
                );
            }
            self.clock.advance(Duration::from_millis(500));
            if self.n % 60 == 0 {
                assert!(self.quality.flush(Duration::from_secs(30)));
            }
        }
        assert!(self.quality.flush(Duration::from_secs(30)));
        assert!(self.alerts.flush(Duration::from_secs(10)));
        let s = self.quality.stats();
        assert_eq!(
            s.calls_dropped + s.evals_dropped + s.feedback_dropped,
            0,
            "{s:?}"
        );
        self.sink.alerts()[before..].to_vec()
    }
}

fn names(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| {
            format!(
                "{} {} {:?}",
                a.name,
                a.labels.get("detector").map_or("", |s| s),
                a.state
            )
        })
        .collect()
}

/// Steady, then degraded, then recovered: returns the alerts of each phase.
fn scenario(seed: u64, degraded: Traffic) -> [Vec<Alert>; 3] {
    let mut run = Run::new(seed);
    let steady = run.drive(STEADY, 10_000);
    let bad = run.drive(degraded, 2_400);
    let good = run.drive(STEADY, 4_000);
    let snap = run.quality.snapshot();
    assert!(
        snap.active_alerts.is_empty(),
        "still firing: {:?}",
        snap.active_alerts
    );
    [steady, bad, good]
}

/// The degradation fires exactly `name` (once, deduplicated, for the series), which then
/// resolves once; nothing fires on the 10,000 steady calls.
fn check(name: &str, detector: &str, degraded: Traffic) {
    let [steady, bad, good] = scenario(0x5EED ^ name.len() as u64, degraded);
    assert!(
        steady.is_empty(),
        "steady traffic alerted: {:?}",
        names(&steady)
    );
    let mine = |a: &&Alert| {
        a.name == name
            && a.labels.get("detector").map(String::as_str) == Some(detector)
            && a.labels.get("model").map(String::as_str) == Some("gpt-4o-mini")
    };
    let fired: Vec<&Alert> = bad.iter().filter(mine).collect();
    assert_eq!(fired.len(), 1, "degraded phase: {:?}", names(&bad));
    assert_eq!(fired[0].state, AlertState::Firing);
    assert_eq!(fired[0].labels["feature"], "support");
    let resolved: Vec<&Alert> = good.iter().filter(mine).collect();
    assert_eq!(resolved.len(), 1, "recovery phase: {:?}", names(&good));
    assert_eq!(resolved[0].state, AlertState::Resolved);
    assert!(resolved[0].ends_at.is_some());
    // The overall series may fire and resolve too, nothing else.
    for a in bad.iter().chain(&good) {
        assert_eq!(
            a.name,
            name,
            "unexpected alert {:?}",
            names(std::slice::from_ref(a))
        );
    }
}

#[test]
fn error_rate_spike() {
    check(
        "LlmErrorRateSpike",
        "error_rate",
        Traffic {
            error_p: 0.2,
            ..STEADY
        },
    );
}

#[test]
fn latency_p95_spike() {
    check(
        "LlmLatencyP95Spike",
        "latency_p95",
        Traffic {
            latency_median_s: 3.0,
            ..STEADY
        },
    );
}

#[test]
fn rating_drop() {
    check(
        "LlmRatingDrop",
        "rating",
        Traffic {
            rating: 0.45,
            ..STEADY
        },
    );
}

#[test]
fn evaluator_score_drop() {
    check(
        "LlmEvaluatorScoreDrop",
        "evaluator:relevance",
        Traffic {
            irrelevant_p: 0.6,
            ..STEADY
        },
    );
}

#[test]
fn truncation_rate_rise() {
    check(
        "LlmTruncationRateRise",
        "truncation_rate",
        Traffic {
            truncation_p: 0.25,
            ..STEADY
        },
    );
}

#[test]
fn cost_per_call_spike() {
    check(
        "LlmCostPerCallSpike",
        "cost_per_call",
        Traffic {
            cost_usd: 0.012,
            ..STEADY
        },
    );
}
