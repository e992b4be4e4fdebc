//! The monitor with its default settings, driven with simulated time and seeded randomness at
//! a small service's traffic (20 calls a minute, a third of the successful calls rated) and at
//! 2,000 calls a minute: each degradation the product promises to catch (errors 2 % → 30 %,
//! p95 latency × 2.5, average rating 0.85 → 0.45, cost per call × 4) fires its alert within
//! 15 minutes of the change and resolves within 20 minutes of the recovery; two hours of
//! noisy baseline fire nothing; the stated thresholds (error rate above 20 %, latency 2× the
//! baseline, rating below 0.6) fire just past them and stay silent well inside them.
//!
//! Noise: calls arrive as a Poisson process; latency is log-normal (σ = 0.4) with a ±15 %
//! swing over 90 minutes; cost per call is log-normal (σ = 0.6); error probability swings
//! ±0.5 points; ratings are the phase's mean plus N(0, 0.2), clamped to 0..1, and arrive
//! 0–60 s after the call (so some land in the next window).

mod common;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime};

use common::{Clock, Rng};
use llmtel_alert::{Alert, AlertState};
use llmtel_quality::{
    CallRef, CallSignals, Feedback, Monitor, MonitorConfig, Thresholds, ThresholdsConfig,
};
use opentelemetry::trace::TraceId;

/// One phase's traffic.
#[derive(Clone, Copy, Debug)]
struct Traffic {
    error_p: f64,
    latency_median_s: f64,
    cost_usd: f64,
    rating: f64,
}

const BASELINE: Traffic = Traffic {
    error_p: 0.02,
    latency_median_s: 1.2,
    cost_usd: 0.004,
    rating: 0.85,
};

const SEEDS: [u64; 3] = [0x5EED_0001, 0xC0FF_EE02, 0xBADD_CAFE];

/// More seeds where runs are cheap (at 20 calls a minute, where noise matters most).
fn seeds(per_minute: f64) -> Vec<u64> {
    if per_minute < 100.0 {
        SEEDS.into_iter().chain(1..=9).collect()
    } else {
        SEEDS.to_vec()
    }
}

/// A monitor fed with synthetic traffic; alerts are collected with the simulated time they
/// were raised at.
struct Drive {
    monitor: Monitor,
    rng: Rng,
    clock: Clock,
    per_minute: f64,
    n: u128,
    /// Ratings not yet arrived: (arrival, call, rating).
    pending: BinaryHeap<Reverse<(SystemTime, u128, u64)>>,
    alerts: Vec<(SystemTime, Alert)>,
    start: SystemTime,
    /// Amplitude of the slow latency swing (0.15: ±15 % over 90 minutes).
    swing: f64,
}

impl Drive {
    fn new(seed: u64, per_minute: f64, cfg: MonitorConfig) -> Self {
        let clock = Clock::start();
        Drive {
            monitor: Monitor::new(cfg),
            rng: Rng::new(seed),
            clock,
            per_minute,
            n: 0,
            pending: BinaryHeap::new(),
            alerts: Vec::new(),
            start: clock.now(),
            swing: 0.15,
        }
    }

    /// Minutes since the start.
    fn minute(&self) -> f64 {
        self.clock
            .now()
            .duration_since(self.start)
            .unwrap_or_default()
            .as_secs_f64()
            / 60.0
    }

    fn deliver_ratings(&mut self, until: SystemTime) {
        while let Some(Reverse((at, call, bits))) = self.pending.peek().copied() {
            if at > until {
                break;
            }
            self.pending.pop();
            let fb = Feedback::rating(
                CallRef::TraceId(TraceId::from(call)),
                f64::from_bits(bits),
                0.0,
                1.0,
            )
            .expect("in scale")
            .at(at);
            let (_, matched) = self.monitor.record_feedback(&fb);
            assert!(matched, "the rated call is in the index");
        }
    }

    fn collect(&mut self) {
        let now = self.clock.now();
        for a in self.monitor.take_alerts() {
            self.alerts.push((now, a));
        }
    }

    /// `minutes` of traffic `t`.
    fn run(&mut self, t: Traffic, minutes: f64) {
        let end = self.clock.now() + Duration::from_secs_f64(minutes * 60.0);
        let mean_gap = 60.0 / self.per_minute;
        loop {
            let gap = -mean_gap * (1.0 - self.rng.f64()).ln();
            self.clock.advance(Duration::from_secs_f64(gap));
            let now = self.clock.now();
            if now >= end {
                break;
            }
            self.deliver_ratings(now);
            let swing = (self.minute() * std::f64::consts::TAU / 90.0).sin();
            let r = &mut self.rng;
            self.n += 1;
            let failed = r.chance(t.error_p + 0.005 * swing);
            let latency = r.lognormal(t.latency_median_s * (1.0 + self.swing * swing), 0.4);
            let cost = r.lognormal(t.cost_usd, 0.6);
            self.monitor.record_call(&CallSignals {
                model: Some("gpt-4o-mini".into()),
                feature: Some("support".into()),
                response_id: None,
                trace_id: Some(TraceId::from(self.n)),
                span_id: None,
                ended_at: now,
                latency: Duration::from_secs_f64(latency),
                error_type: failed.then(|| "timeout".to_owned()),
                truncated: false,
                content_filtered: false,
                output_tokens: Some(200),
                tokens_per_second: None,
                time_to_first_chunk: None,
                cost_usd: Some(cost),
            });
            if !failed && r.chance(0.3) {
                let v = (t.rating + 0.2 * r.normal()).clamp(0.0, 1.0);
                let at = now + Duration::from_secs_f64(60.0 * r.f64());
                self.pending.push(Reverse((at, self.n, v.to_bits())));
            }
            self.collect();
        }
        self.clock = Clock(end);
        self.deliver_ratings(end);
        self.monitor.advance(end);
        self.collect();
    }

    /// The alerts of the (model, feature) series (the overall series mirrors them).
    fn series_alerts(&self) -> Vec<(f64, &Alert)> {
        self.alerts
            .iter()
            .filter(|(_, a)| a.labels.get("model").map(String::as_str) == Some("gpt-4o-mini"))
            .map(|(t, a)| {
                let m = t
                    .duration_since(self.start)
                    .unwrap_or_default()
                    .as_secs_f64()
                    / 60.0;
                (m, a)
            })
            .collect()
    }
}

fn describe(alerts: &[(SystemTime, Alert)], start: SystemTime) -> Vec<String> {
    alerts
        .iter()
        .map(|(t, a)| {
            format!(
                "{:.1} min {} {} {:?} {}",
                t.duration_since(start).unwrap_or_default().as_secs_f64() / 60.0,
                a.name,
                a.labels.get("model").map_or("", |s| s),
                a.state,
                a.annotations.get("summary").map_or("", |s| s)
            )
        })
        .collect()
}

const BAD: f64 = 20.0;
const GOOD: f64 = 25.0;

/// From a fresh default monitor: baseline (an hour at 20 calls a minute, half an hour at
/// 2,000), 20 minutes of `bad`, 25 of baseline. `alert` fires once within 15 minutes of the
/// change, resolves once within 20 minutes of the recovery, and nothing else fires.
fn caught_and_resolved(per_minute: f64, alert: &str, bad: Traffic) {
    const WARM_LOW: f64 = 60.0;
    const WARM_HIGH: f64 = 30.0;
    let warm = if per_minute < 100.0 {
        WARM_LOW
    } else {
        WARM_HIGH
    };
    for seed in seeds(per_minute) {
        let mut d = Drive::new(seed, per_minute, MonitorConfig::default());
        d.run(BASELINE, warm);
        d.run(bad, BAD);
        d.run(BASELINE, GOOD);
        let all = describe(&d.alerts, d.start);
        let mine = d.series_alerts();
        if std::env::var_os("DEBUG_QUALITY").is_some() {
            let snap = d.monitor.snapshot();
            eprintln!("{:#?}", snap.series[0].detectors);
            for h in &snap.series[0].history {
                eprintln!("{:?}", h.latency_s.map(|q| q.p95));
            }
        }
        assert_eq!(mine.len(), 2, "seed {seed:#x}: {all:#?}");
        let (fired_at, fired) = mine[0];
        let (resolved_at, resolved) = mine[1];
        assert_eq!(fired.name, alert, "seed {seed:#x}: {all:#?}");
        assert_eq!(fired.state, AlertState::Firing, "seed {seed:#x}: {all:#?}");
        assert!(
            fired_at > warm && fired_at <= warm + 15.0,
            "seed {seed:#x}: fired {:.1} min after the change: {all:#?}",
            fired_at - warm
        );
        assert_eq!(resolved.name, alert, "seed {seed:#x}: {all:#?}");
        assert_eq!(
            resolved.state,
            AlertState::Resolved,
            "seed {seed:#x}: {all:#?}"
        );
        let recovery = warm + BAD;
        assert!(
            resolved_at > recovery && resolved_at <= recovery + 20.0,
            "seed {seed:#x}: resolved {:.1} min after the recovery: {all:#?}",
            resolved_at - recovery
        );
        eprintln!(
            "{per_minute}/min {alert} seed {seed:#x}: fired {:.1} min after the change, resolved {:.1} min after the recovery",
            fired_at - warm,
            resolved_at - recovery
        );
        for (_, a) in &d.alerts {
            assert_eq!(a.name, alert, "seed {seed:#x}: unexpected alert: {all:#?}");
        }
        assert!(
            d.monitor.active_alerts().is_empty(),
            "seed {seed:#x}: {all:#?}"
        );
    }
}

/// Two hours of noisy baseline from a fresh default monitor: no alert at all, and every
/// detector judges (no insufficient data).
fn baseline_is_silent(per_minute: f64) {
    for seed in seeds(per_minute) {
        let mut d = Drive::new(seed, per_minute, MonitorConfig::default());
        d.run(BASELINE, 120.0);
        assert!(
            d.alerts.is_empty(),
            "seed {seed:#x}: {:#?}",
            describe(&d.alerts, d.start)
        );
        let snap = d.monitor.snapshot();
        let s = &snap.series[0];
        assert!(s.insufficient_data.is_empty(), "{:?}", s.insufficient_data);
        for kind in ["error_rate", "latency_p95", "rating", "cost_per_call"] {
            assert!(
                s.detectors[kind].judged > 0,
                "{kind} never judged: {:?}",
                s.detectors
            );
        }
    }
}

const ERRORS: Traffic = Traffic {
    error_p: 0.30,
    ..BASELINE
};
const SLOW: Traffic = Traffic {
    latency_median_s: BASELINE.latency_median_s * 2.5,
    ..BASELINE
};
const UNHAPPY: Traffic = Traffic {
    rating: 0.45,
    ..BASELINE
};
const EXPENSIVE: Traffic = Traffic {
    cost_usd: BASELINE.cost_usd * 4.0,
    ..BASELINE
};

#[test]
fn errors_2_to_30_percent_at_20_calls_a_minute_fire_and_resolve() {
    caught_and_resolved(20.0, "LlmErrorRateSpike", ERRORS);
}

#[test]
fn latency_times_2_5_at_20_calls_a_minute_fires_and_resolves() {
    caught_and_resolved(20.0, "LlmLatencyP95Spike", SLOW);
}

#[test]
fn rating_085_to_045_at_20_calls_a_minute_fires_and_resolves() {
    caught_and_resolved(20.0, "LlmRatingDrop", UNHAPPY);
}

#[test]
fn cost_per_call_times_4_at_20_calls_a_minute_fires_and_resolves() {
    caught_and_resolved(20.0, "LlmCostPerCallSpike", EXPENSIVE);
}

#[test]
fn two_hours_of_baseline_at_20_calls_a_minute_fire_nothing() {
    baseline_is_silent(20.0);
}

#[test]
fn errors_2_to_30_percent_at_2000_calls_a_minute_fire_and_resolve() {
    caught_and_resolved(2000.0, "LlmErrorRateSpike", ERRORS);
}

#[test]
fn latency_times_2_5_at_2000_calls_a_minute_fires_and_resolves() {
    caught_and_resolved(2000.0, "LlmLatencyP95Spike", SLOW);
}

#[test]
fn rating_085_to_045_at_2000_calls_a_minute_fires_and_resolves() {
    caught_and_resolved(2000.0, "LlmRatingDrop", UNHAPPY);
}

#[test]
fn cost_per_call_times_4_at_2000_calls_a_minute_fires_and_resolves() {
    caught_and_resolved(2000.0, "LlmCostPerCallSpike", EXPENSIVE);
}

#[test]
fn two_hours_of_baseline_at_2000_calls_a_minute_fire_nothing() {
    baseline_is_silent(2000.0);
}

/// The product's thresholds, stated as configuration.
fn stated() -> MonitorConfig {
    let cfg = ThresholdsConfig::from_json(
        r#"{ "default": { "error_rate_above": 0.2, "latency_p95_factor": 2.0, "rating_below": 0.6 } }"#,
    )
    .expect("valid thresholds");
    assert_eq!(cfg.default, Thresholds::default());
    MonitorConfig::default().with_thresholds_config(cfg)
}

/// 20 minutes of `first` then 20 of `then` at 2,000 calls a minute, without the slow latency
/// swing (so that × 2.0 is twice the baseline): the names of the alerts fired, per seed.
fn fired(first: Traffic, then: Traffic) -> Vec<Vec<String>> {
    SEEDS
        .iter()
        .map(|&seed| {
            let mut d = Drive::new(seed, 2000.0, stated());
            d.swing = 0.0;
            d.run(first, 20.0);
            d.run(then, 20.0);
            d.alerts
                .iter()
                .filter(|(_, a)| a.state == AlertState::Firing)
                .map(|(_, a)| a.name.clone())
                .collect()
        })
        .collect()
}

#[test]
fn stated_error_rate_threshold_fires_at_21_percent_not_at_15() {
    let e = |p| Traffic {
        error_p: p,
        ..BASELINE
    };
    for names in fired(e(0.21), e(0.21)) {
        assert!(names.contains(&"LlmErrorRateSpike".to_owned()), "{names:?}");
        assert!(names.iter().all(|n| n == "LlmErrorRateSpike"), "{names:?}");
    }
    for names in fired(e(0.15), e(0.15)) {
        assert!(names.is_empty(), "{names:?}");
    }
}

#[test]
fn stated_latency_factor_fires_at_twice_the_baseline_not_at_1_5() {
    let l = |k: f64| Traffic {
        latency_median_s: BASELINE.latency_median_s * k,
        ..BASELINE
    };
    for names in fired(BASELINE, l(2.0)) {
        assert!(
            names.contains(&"LlmLatencyP95Spike".to_owned()),
            "{names:?}"
        );
        assert!(names.iter().all(|n| n == "LlmLatencyP95Spike"), "{names:?}");
    }
    for names in fired(BASELINE, l(1.5)) {
        assert!(names.is_empty(), "{names:?}");
    }
}

#[test]
fn stated_rating_threshold_fires_at_058_not_at_07() {
    let r = |v| Traffic {
        rating: v,
        ..BASELINE
    };
    for names in fired(r(0.58), r(0.58)) {
        assert!(names.contains(&"LlmRatingDrop".to_owned()), "{names:?}");
        assert!(names.iter().all(|n| n == "LlmRatingDrop"), "{names:?}");
    }
    for names in fired(r(0.7), r(0.7)) {
        assert!(names.is_empty(), "{names:?}");
    }
}

/// The issue's user, end to end: a default `Quality` pipeline with alerts collected from the
/// real dispatcher, 20 calls a minute, a third of them rated; errors 2 % → 30 % and ratings
/// 0.85 → 0.45 at the same time, for 20 minutes. Both alerts reach the sink within 15
/// minutes of the change and resolve within 20 minutes of the recovery.
#[test]
fn through_the_pipeline_the_dispatcher_gets_both_alerts_at_20_calls_a_minute() {
    use std::sync::Arc;

    use llmtel_alert::{AlertDispatcher, MemorySink};
    use llmtel_quality::Quality;

    let sink = MemorySink::new();
    let alerts = AlertDispatcher::builder()
        .with_sink(Arc::new(sink.clone()))
        .build();
    let quality = Quality::builder()
        .with_alerts(alerts.clone())
        .with_events(false)
        .build();
    let calls = quality.sink();
    let mut rng = Rng::new(SEEDS[0]);
    let mut clock = Clock::start();
    let start = clock.now();
    let mut n: u128 = 0;
    let mut pending: Vec<(SystemTime, u128, f64)> = Vec::new();
    // Minute of each alert (firing and resolved), by alert name.
    let mut seen: Vec<(u32, String, AlertState)> = Vec::new();
    let bad = Traffic {
        error_p: 0.30,
        rating: 0.45,
        ..BASELINE
    };
    for minute in 0..105u32 {
        let t = if (60..80).contains(&minute) {
            bad
        } else {
            BASELINE
        };
        for _ in 0..20 {
            clock.advance(Duration::from_secs(3));
            n += 1;
            let failed = rng.chance(t.error_p);
            calls.send(CallSignals {
                model: Some("gpt-4o-mini".into()),
                feature: Some("support".into()),
                response_id: None,
                trace_id: Some(TraceId::from(n)),
                span_id: None,
                ended_at: clock.now(),
                latency: Duration::from_secs_f64(rng.lognormal(t.latency_median_s, 0.4)),
                error_type: failed.then(|| "timeout".to_owned()),
                truncated: false,
                content_filtered: false,
                output_tokens: Some(200),
                tokens_per_second: None,
                time_to_first_chunk: None,
                cost_usd: Some(rng.lognormal(t.cost_usd, 0.6)),
            });
            if !failed && rng.chance(0.3) {
                let v = (t.rating + 0.2 * rng.normal()).clamp(0.0, 1.0);
                let at = clock.now() + Duration::from_secs_f64(60.0 * rng.f64());
                pending.push((at, n, v));
            }
        }
        assert!(quality.flush(Duration::from_secs(10)));
        let now = clock.now();
        for (at, id, v) in pending.iter().filter(|p| p.0 <= now) {
            let fb = Feedback::rating(CallRef::TraceId(TraceId::from(*id)), *v, 0.0, 1.0)
                .expect("in scale")
                .at(*at);
            assert!(quality.feedback(fb));
        }
        pending.retain(|p| p.0 > now);
        assert!(quality.flush(Duration::from_secs(10)));
        assert!(alerts.flush(Duration::from_secs(10)));
        for a in sink.alerts().iter().skip(seen.len()) {
            seen.push((minute, a.name.clone(), a.state));
        }
    }
    let stats = quality.stats();
    assert_eq!(stats.calls_dropped + stats.feedback_dropped, 0, "{stats:?}");
    assert_eq!(quality.with_monitor(|m| m.stats().unmatched), 0);
    let elapsed = clock.now().duration_since(start).unwrap_or_default();
    assert_eq!(elapsed, Duration::from_secs(105 * 60));
    for name in ["LlmErrorRateSpike", "LlmRatingDrop"] {
        // The (model, feature) series and the overall one: each fires and resolves once.
        let mine: Vec<&(u32, String, AlertState)> =
            seen.iter().filter(|(_, n, _)| n == name).collect();
        assert_eq!(mine.len(), 4, "{seen:?}");
        for (m, _, state) in mine {
            match state {
                AlertState::Firing => {
                    assert!((61..=75).contains(m), "{name} fired at {m}: {seen:?}")
                }
                AlertState::Resolved => {
                    assert!((81..=100).contains(m), "{name} resolved at {m}: {seen:?}")
                }
            }
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
}
