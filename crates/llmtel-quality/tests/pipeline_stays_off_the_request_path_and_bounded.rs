//! The pipeline's guarantees: evaluators never run on the request thread, slow evaluators
//! time out, sampling holds, signals come from real spans, the quality score leaves missing
//! signals out, and 1,000,000 calls keep the monitor under a fixed bound.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{CallSpec, Clock, Rng, call};
use llmtel_quality::{
    CallRef, CallSignals, DdSketch, EvalFuture, EvalInput, Evaluation, Evaluator, Feedback,
    Footprint, Monitor, MonitorConfig, Quality, QualityInputs, QualityWeights, TrendDirection,
    TrendTracker,
};
use tracing_subscriber::prelude::*;

/// Records the thread it runs on, then blocks until the test releases it.
#[derive(Debug)]
struct Blocking {
    thread: Mutex<Option<String>>,
    started: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Evaluator for Blocking {
    fn name(&self) -> &str {
        "blocking"
    }
    fn evaluate<'a>(&'a self, _: &'a EvalInput) -> EvalFuture<'a> {
        *self.thread.lock().unwrap() = std::thread::current().name().map(str::to_owned);
        if let Some(s) = self.started.lock().unwrap().take() {
            let _ = s.send(());
        }
        if let Some(r) = self.release.lock().unwrap().take() {
            let _ = r.recv_timeout(Duration::from_secs(10));
        }
        Box::pin(std::future::ready(Some(Evaluation::new(
            "blocking", 1.0, "ok", "",
        ))))
    }
}

#[test]
fn evaluators_never_run_on_the_request_thread() {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let e = Arc::new(Blocking {
        thread: Mutex::new(None),
        started: Mutex::new(Some(started_tx)),
        release: Mutex::new(Some(release_rx)),
    });
    let quality = Quality::builder().with_evaluator(e.clone()).build();
    // `evaluate` returns while the evaluator is blocked: it cannot be running on this thread.
    assert!(quality.evaluate(EvalInput::new("answer")));
    started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(quality.stats().evals_run, 0);
    release_tx.send(()).unwrap();
    assert!(quality.flush(Duration::from_secs(10)));
    assert_eq!(quality.stats().evals_run, 1);
    let thread = e.thread.lock().unwrap().clone();
    assert_eq!(thread.as_deref(), Some("llmtel-quality-eval"));
    assert_ne!(thread, std::thread::current().name().map(str::to_owned));
}

#[derive(Debug)]
struct Sleepy;
impl Evaluator for Sleepy {
    fn name(&self) -> &str {
        "sleepy"
    }
    fn evaluate<'a>(&'a self, _: &'a EvalInput) -> EvalFuture<'a> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Some(Evaluation::new("sleepy", 1.0, "ok", ""))
        })
    }
}

#[test]
fn a_slow_evaluator_times_out_and_the_others_still_run() {
    let quality = Quality::builder()
        .with_evaluator_sampled(Arc::new(Sleepy), 1.0, Duration::from_millis(50))
        .with_builtin_evaluators()
        .build();
    quality.evaluate(EvalInput::new("Paris.").with_question("Capital of France?"));
    assert!(quality.flush(Duration::from_secs(10)));
    let s = quality.stats();
    assert_eq!(s.evals_timed_out, 1);
    // refusal, fluency, pii and relevance apply; groundedness and json do not.
    assert_eq!(s.evals_run, 4, "{s:?}");
    assert_eq!(s.evals_not_applicable, 2);
}

#[test]
fn sampling_rate_selects_that_share_of_calls() {
    let quality = Quality::builder()
        .with_evaluator_sampled(
            Arc::new(llmtel_quality::SyncAdapter(llmtel_quality::Refusal)),
            0.3,
            Duration::from_secs(1),
        )
        .with_eval_queue_capacity(4096)
        .build();
    for i in 0..2000 {
        quality.evaluate(EvalInput::new("ok").with_response_id(format!("r-{i}")));
    }
    assert!(quality.flush(Duration::from_secs(20)));
    let s = quality.stats();
    assert_eq!(s.evals_run + s.evals_sampled_out, 2000);
    assert!((500..=700).contains(&s.evals_run), "{s:?}");
}

#[test]
fn signals_come_from_real_spans_through_the_layer() {
    let quality = Quality::builder().build();
    let sub = tracing_subscriber::registry()
        .with(llmtel::layer())
        .with(quality.layer());
    tracing::subscriber::with_default(sub, || {
        let _req = tracing::info_span!("request", "llmtel.feature" = "summarise").entered();
        for finish in ["stop", "length", "content_filter", "stop"] {
            let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
            llmtel::record_response(&span, "id", "gpt-4o", &[finish]);
            llmtel::record_usage(
                &span,
                &llmtel::Usage {
                    input_tokens: 10,
                    output_tokens: 5,
                    ..Default::default()
                },
            );
        }
        let failed = llmtel::llm_span!("chat", "openai", "gpt-4o");
        failed.record("error.type", "rate_limited");
    });
    assert!(quality.flush(Duration::from_secs(10)));
    let snap = quality.snapshot();
    let s = snap
        .series
        .iter()
        .find(|s| s.feature == "summarise")
        .unwrap();
    assert_eq!(s.model, "gpt-4o");
    assert_eq!(s.total.requests, 5);
    assert_eq!(s.total.errors, 1);
    assert_eq!(s.total.truncation_rate, Some(0.25));
    assert_eq!(s.total.content_filter_rate, Some(0.25));
    assert_eq!(s.total.avg_output_tokens, Some(5.0));
    assert!(s.total.avg_cost_usd.unwrap() > 0.0);
    assert_eq!(s.total.latency_s.unwrap().count, 4);
    let json = serde_json::to_value(&snap).unwrap();
    for k in [
        "requests",
        "error_rate",
        "latency_s",
        "avg_output_tokens",
        "avg_rating",
        "evaluators",
        "quality_score",
    ] {
        assert!(json["overall"]["total"].get(k).is_some(), "{k} missing");
    }
}

#[test]
fn the_quality_score_leaves_missing_signals_out() {
    let w = QualityWeights::default();
    let ok = QualityInputs {
        success: Some(true),
        complete: Some(true),
        latency_s: Some(1.0),
        ..Default::default()
    };
    assert_eq!(w.score(&ok), Some(1.0));
    // No rating and no evaluation: still 1, not dragged down by zeros.
    let mut with_eval = ok.clone();
    with_eval.set_evaluation("relevance", 0.0);
    // success 2 + complete 1 + latency 1 = 4 of 5 weight.
    assert!((w.score(&with_eval).unwrap() - 0.8).abs() < 1e-9);
    let failed = QualityInputs {
        success: Some(false),
        complete: Some(true),
        latency_s: Some(0.1),
        ..Default::default()
    };
    assert_eq!(
        w.score(&failed),
        Some(0.0),
        "a failed call's latency is left out"
    );
    assert_eq!(w.score(&QualityInputs::default()), None);
    let only_rating = QualityInputs {
        rating: Some(0.6),
        ..Default::default()
    };
    assert_eq!(w.score(&only_rating), Some(0.6));
    // Configurable: latency over target, weights changed.
    let w2 = QualityWeights::default()
        .with_latency_target(2.0)
        .with_weight("success", 0.0);
    let slow = QualityInputs {
        success: Some(true),
        latency_s: Some(4.0),
        ..Default::default()
    };
    assert_eq!(w2.score(&slow), Some(0.5));
}

#[test]
fn one_million_calls_keep_the_monitor_under_a_fixed_bound() {
    let cfg = MonitorConfig {
        max_series: 64,
        max_calls_indexed: 10_000,
        history: 30,
        ..Default::default()
    };
    let bound = Footprint::bound(&cfg);
    let mut m = Monitor::new(cfg);
    let mut rng = Rng::new(7);
    let mut clock = Clock::start();
    let models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-pro"];
    let mut at_half = Footprint::default();
    for i in 0u64..1_000_000 {
        // 200 features × 4 models: more series than the limit.
        let feature: &'static str =
            Box::leak(format!("f{}", rng.next_u64() % 200).into_boxed_str());
        let spec = CallSpec {
            model: models[(i % 4) as usize],
            feature,
            response_id: format!("r{i}"),
            started_at: clock.now(),
            latency_s: rng.lognormal(1.0, 1.5),
            error: rng.chance(0.02).then_some("timeout"),
            finish: "stop",
            output_tokens: 100,
            cost_usd: Some(0.001),
        };
        m.record_call(&CallSignals::from_call(&call(&spec)));
        if i % 10 == 0 {
            m.record_evaluation(
                &EvalInput::new("x").with_response_id(format!("r{i}")),
                &Evaluation::new(format!("eval{}", i % 40), 0.9, "ok", ""),
            );
            m.record_feedback(
                &Feedback::thumbs(CallRef::ResponseId(format!("r{i}")), true).at(clock.now()),
            );
        }
        clock.advance(Duration::from_millis(50));
        if i == 500_000 {
            at_half = m.footprint();
        }
        // Leaked feature names are few (200 distinct strings interned by the leak); the
        // monitor keeps its own copies.
    }
    let f = m.footprint();
    println!("footprint after 1M calls: {f:?}\nbound: {bound:?}");
    assert!(f.within(&bound), "{f:?} exceeds {bound:?}");
    // The index holds exactly the last 10,000 calls: the oldest of them is found, the one
    // before it is not.
    let quality = |i: u64| m.call_quality(&CallRef::ResponseId(format!("r{i}")));
    assert!(quality(999_999).is_some());
    assert!(quality(990_000).is_some());
    assert_eq!(quality(989_999), None);
    assert_eq!(quality(0), None);
    assert_eq!(m.stats().evicted_calls, 990_000);
    assert_eq!(f.indexed_calls, 10_000);
    assert_eq!(f.series, at_half.series, "no growth past the series limit");
    assert!(f.sketch_buckets <= at_half.sketch_buckets + 2 * f.series);
    assert_eq!(m.stats().calls, 1_000_000);
    assert!(m.stats().overflow_calls > 0);
}

#[test]
fn the_sketch_is_accurate_and_bounded() {
    let mut rng = Rng::new(3);
    let mut s = DdSketch::new(0.01, 512);
    let mut exact: Vec<f64> = (0..100_000).map(|_| rng.lognormal(0.8, 0.6)).collect();
    for v in &exact {
        s.add(*v);
    }
    exact.sort_by(f64::total_cmp);
    for q in [0.5, 0.95, 0.99] {
        let want = exact[(q * (exact.len() - 1) as f64) as usize];
        let got = s.quantile(q).unwrap();
        assert!((got - want).abs() / want <= 0.02, "q{q}: {got} vs {want}");
    }
    // A range far wider than 512 buckets: bounded, high quantiles still accurate.
    let mut wide = DdSketch::new(0.01, 512);
    for i in 0..200_000u64 {
        wide.add(1e-6 * 1.0001f64.powi(i as i32));
    }
    assert!(wide.buckets() <= 512);
    let top = 1e-6 * 1.0001f64.powi(199_999);
    assert!((wide.quantile(1.0).unwrap() - top).abs() / top <= 0.011);
}

#[test]
fn the_trend_finds_a_change_point_and_stays_flat_on_noise() {
    let mut rng = Rng::new(11);
    let mut t = TrendTracker::default();
    let mut changes = 0;
    for _ in 0..20_000 {
        changes += usize::from(t.add(0.8 + 0.1 * rng.normal()).is_some());
    }
    assert_eq!(changes, 0, "stationary noise");
    assert_eq!(t.trend().unwrap().direction, TrendDirection::Flat);
    let mut found = None;
    for i in 0..2_000 {
        if let Some(cp) = t.add(0.65 + 0.1 * rng.normal()) {
            found = Some((i, cp));
            break;
        }
    }
    let (after, cp) = found.expect("a drop of 1.5 sd is found");
    assert!(after < 100, "found after {after} values");
    assert_eq!(cp.direction, TrendDirection::Falling);
    assert!(cp.after < cp.before);
}
