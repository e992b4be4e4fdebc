//! The quality gauges on llmtel-metrics' Prometheus endpoint: known calls, evaluator results
//! and ratings go through a `Quality` pipeline, and a real HTTP scrape of the built-in
//! listener (OpenMetrics) finds `llm_quality_score{evaluation,model,feature}` (the series the
//! Grafana dashboard reads with `avg by (evaluation)`), the error rate, latency quantiles,
//! average rating, request and drop counters with the exact values those inputs give.
//!
//! Every score is chosen so that each intermediate composite score is a short binary fraction:
//! the monitor's running sums are then exact and the expected values are exact too.
#![cfg(feature = "prometheus")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmtel_metrics::PrometheusSink;
use llmtel_quality::{
    CallRef, CallSignals, EvalInput, Evaluation, Feedback, MonitorConfig, Quality, SyncAdapter,
    SyncEvaluator,
};

/// Scores the answer `"<helpfulness> <tone>"` with the numbers it holds.
#[derive(Debug)]
struct Scripted {
    name: &'static str,
    field: usize,
}

impl SyncEvaluator for Scripted {
    fn name(&self) -> &str {
        self.name
    }
    fn score(&self, input: &EvalInput) -> Option<Evaluation> {
        let v: f64 = input.answer.split(' ').nth(self.field)?.parse().ok()?;
        Some(Evaluation::new(self.name, v, "scripted", ""))
    }
}

/// A minute-aligned instant: every event of the test falls in the same monitor window.
fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_020 + s)
}

fn call(model: &str, feature: &str, id: &str, latency_ms: u64, ok: bool) -> CallSignals {
    CallSignals {
        model: Some(model.into()),
        feature: Some(feature.into()),
        response_id: Some(id.into()),
        trace_id: None,
        span_id: None,
        ended_at: at(1),
        latency: Duration::from_millis(latency_ms),
        error_type: (!ok).then(|| "timeout".to_owned()),
        truncated: false,
        content_filtered: false,
        output_tokens: None,
        tokens_per_second: None,
        time_to_first_chunk: None,
        cost_usd: None,
    }
}

fn scrape(sink: &PrometheusSink) -> String {
    let server = sink.serve("127.0.0.1:0").unwrap();
    let body = reqwest::blocking::Client::new()
        .get(format!("http://{}/metrics", server.local_addr()))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .unwrap()
        .text()
        .unwrap();
    drop(server);
    body
}

fn has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing line {line:?} in:\n{text}"
    );
}

/// The value of the sample whose name and labels are `series`.
fn value(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.strip_prefix(series).is_some_and(|r| r.starts_with(' ')))
        .unwrap_or_else(|| panic!("missing series {series:?} in:\n{text}"));
    line[series.len() + 1..].parse().unwrap()
}

const A: &str = r#"model="gpt-4o-mini",feature="chat""#;
const B: &str = r#"model="claude-haiku",feature="search""#;
const OTHER: &str = r#"model="(other)",feature="(other)""#;

#[test]
fn gauges_show_scores_errors_latency_ratings_and_drops() {
    let quality = Quality::builder()
        .with_monitor(MonitorConfig {
            max_series: 2,
            ..Default::default()
        })
        .with_evaluator(Arc::new(SyncAdapter(Scripted {
            name: "helpfulness",
            field: 0,
        })))
        .with_evaluator(Arc::new(SyncAdapter(Scripted {
            name: "tone",
            field: 1,
        })))
        .with_events(false)
        .build();
    let sink = PrometheusSink::builder().with_health(false).build();
    quality.register_metrics(&sink);
    let flush = || assert!(quality.flush(Duration::from_secs(10)));

    // Series A: three successful calls and a failed one.
    let s = quality.sink();
    assert!(s.send(call("gpt-4o-mini", "chat", "a1", 200, true)));
    assert!(s.send(call("gpt-4o-mini", "chat", "a2", 400, true)));
    assert!(s.send(call("gpt-4o-mini", "chat", "a3", 900, false)));
    assert!(s.send(call("gpt-4o-mini", "chat", "a4", 2_000, true)));
    // Series B: 20 successful calls, 0.1 s to 2.0 s.
    for i in 1..=20u64 {
        assert!(s.send(call(
            "claude-haiku",
            "search",
            &format!("b{i}"),
            100 * i,
            true
        )));
    }
    // Past the series limit (2): filed under (other).
    assert!(s.send(call("gpt-5", "agent", "c1", 300, true)));
    flush();

    // Evaluations of a1 and a2 (helpfulness, tone).
    for (id, answer) in [("a1", "1 0.25"), ("a2", "0.375 0.125")] {
        assert!(quality.evaluate(EvalInput::new(answer).with_response_id(id).with_time(at(5))));
    }
    flush();
    // Ratings: a1 thumbs up (1), a2 4 of 1..5 (0.75), a3 thumbs down (0), a4 2 of 1..5 (0.25).
    let r = |id: &str| CallRef::ResponseId(id.into());
    for fb in [
        Feedback::thumbs(r("a1"), true),
        Feedback::rating(r("a2"), 4.0, 1.0, 5.0).unwrap(),
        Feedback::thumbs(r("a3"), false),
        Feedback::rating(r("a4"), 2.0, 1.0, 5.0).unwrap(),
    ] {
        assert!(quality.feedback(fb.at(at(6))));
    }
    flush();

    let text = scrape(&sink);
    has(&text, "# TYPE llm_quality_score gauge");
    // Composite scores per call (weights: success 2, complete 1, latency 1, rating 2, each
    // evaluator 1): a1 (2+1+1+2+1+0.25)/8 = 0.90625, a2 (2+1+1+1.5+0.375+0.125)/8 = 0.75,
    // a3 (0+0)/4 = 0, a4 (2+1+1+0.5)/6 = 0.75; average 2.40625/4.
    has(
        &text,
        &format!(r#"llm_quality_score{{evaluation="quality_score",{A}}} 0.6015625"#),
    );
    has(
        &text,
        &format!(r#"llm_quality_score{{evaluation="helpfulness",{A}}} 0.6875"#),
    );
    has(
        &text,
        &format!(r#"llm_quality_score{{evaluation="tone",{A}}} 0.1875"#),
    );
    has(
        &text,
        &format!(r#"llm_quality_score{{evaluation="quality_score",{B}}} 1.0"#),
    );
    has(
        &text,
        &format!(r#"llm_quality_score{{evaluation="quality_score",{OTHER}}} 1.0"#),
    );
    assert!(
        !text.contains(&format!(r#"llm_quality_score{{evaluation="tone",{B}}}"#)),
        "no evaluation of B"
    );
    // The dashboard's `avg by (evaluation)` needs the label on every sample.
    for l in text.lines().filter(|l| l.starts_with("llm_quality_score{")) {
        assert!(l.starts_with("llm_quality_score{evaluation=\""), "{l}");
    }

    has(&text, "# TYPE llm_quality_error_rate gauge");
    has(&text, &format!("llm_quality_error_rate{{{A}}} 0.25"));
    has(&text, &format!("llm_quality_error_rate{{{B}}} 0.0"));

    has(&text, "# TYPE llm_quality_rating_avg gauge");
    has(&text, &format!("llm_quality_rating_avg{{{A}}} 0.5"));
    assert!(
        !text.contains(&format!("llm_quality_rating_avg{{{B}}}")),
        "B has no rating"
    );

    has(&text, "# TYPE llm_quality_requests counter");
    has(&text, &format!("llm_quality_requests_total{{{A}}} 4"));
    has(&text, &format!("llm_quality_requests_total{{{B}}} 20"));
    has(&text, &format!("llm_quality_requests_total{{{OTHER}}} 1"));
    has(&text, "llm_quality_series_overflow_total 1");
    for kind in ["call", "evaluation", "feedback"] {
        has(
            &text,
            &format!(r#"llm_quality_dropped_total{{kind="{kind}"}} 0"#),
        );
    }

    // Latency quantiles of successful calls: the snapshot's values, within the sketch's 1 %
    // of the true quantiles (rank floor(q·(n−1))): A 0.2/0.4/2.0 s → 0.4 s for all three;
    // B 0.1..2.0 s → 1.0, 1.9, 1.9 s.
    has(&text, "# TYPE llm_quality_latency_seconds gauge");
    has(&text, "# UNIT llm_quality_latency_seconds seconds");
    let snap = quality.snapshot();
    for (labels, model, want) in [
        (A, "gpt-4o-mini", [0.4; 3]),
        (B, "claude-haiku", [1.0, 1.9, 1.9]),
    ] {
        let q = snap
            .series
            .iter()
            .find(|s| s.model == model)
            .unwrap()
            .total
            .latency_s
            .unwrap();
        for ((quantile, got), want) in [("0.5", q.p50), ("0.95", q.p95), ("0.99", q.p99)]
            .into_iter()
            .zip(want)
        {
            let v = value(
                &text,
                &format!(r#"llm_quality_latency_seconds{{{labels},quantile="{quantile}"}}"#),
            );
            assert_eq!(v, got, "{labels} {quantile}");
            assert!(
                (v - want).abs() <= want * 0.01,
                "{labels} {quantile}: {v} vs {want}"
            );
        }
    }
    // Failed calls have no latency sample; A's p50 comes from its 3 successful calls only.
    let a = snap
        .series
        .iter()
        .find(|s| s.model == "gpt-4o-mini")
        .unwrap();
    assert_eq!(a.total.latency_s.unwrap().count, 3);

    // After shutdown, inputs are dropped and counted.
    assert!(quality.shutdown());
    assert!(!s.send(call("gpt-4o-mini", "chat", "late", 100, true)));
    assert!(!quality.feedback(Feedback::thumbs(r("a1"), false)));
    let text = sink.encode_openmetrics();
    has(&text, r#"llm_quality_dropped_total{kind="call"} 1"#);
    has(&text, r#"llm_quality_dropped_total{kind="feedback"} 1"#);
    has(&text, r#"llm_quality_dropped_total{kind="evaluation"} 0"#);
    has(&text, &format!("llm_quality_requests_total{{{A}}} 4"));

    // The sink holds the pipeline weakly: once it is gone, so are its series.
    drop(s);
    drop(quality);
    let text = sink.encode_openmetrics();
    assert!(!text.contains("llm_quality_"), "{text}");
}
