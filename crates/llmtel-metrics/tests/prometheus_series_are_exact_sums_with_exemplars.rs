//! The Prometheus series hold exact token counts and the exact pico-dollar cost sum, link
//! observations to trace ids with exemplars, and keep label cardinality bounded.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Calls, call, run};
use llmtel::Usd;
use llmtel_metrics::{CardinalityGuard, Dimension, PrometheusSink};

/// The value of the sample line starting with `series ` (exemplar stripped).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l[series.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn token_and_cost_totals_are_exact_and_failures_are_counted() {
    let prom = PrometheusSink::default();
    let calls = Arc::new(Calls::default());
    run(vec![Arc::new(prom.clone()), calls.clone()], || {
        // 1,000 calls with amounts that do not add up exactly in binary floating point.
        for i in 0..1000u64 {
            call("gpt-4o-mini", 1_000 + i * 7, 100 + i % 13, "u", None);
        }
        call("gpt-4o-mini", 0, 0, "u", Some("timeout"));
        call("claude-sonnet-4", 2_000, 500, "u", None);
    });
    let calls = calls.0.lock().unwrap();
    let mini: Vec<_> = calls
        .iter()
        .filter(|c| c.model() == Some("gpt-4o-mini") && !c.is_error())
        .collect();
    assert_eq!(mini.len(), 1000);
    let input: u64 = mini.iter().map(|c| c.usage.input_tokens).sum();
    let output: u64 = mini.iter().map(|c| c.usage.output_tokens).sum();
    let picos: u128 = mini.iter().map(|c| c.cost_usd().unwrap().picos()).sum();
    let naive: f64 = mini.iter().map(|c| c.cost_usd().unwrap().as_f64()).sum();

    let body = prom.encode_openmetrics();
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    assert_eq!(
        sample(
            &body,
            r#"llm_tokens_total{model="gpt-4o-mini",type="input"}"#
        ),
        Some(input as f64)
    );
    assert_eq!(
        sample(
            &body,
            r#"llm_tokens_total{model="gpt-4o-mini",type="output"}"#
        ),
        Some(output as f64)
    );
    let exported = sample(&body, r#"llm_cost_usd_total{model="gpt-4o-mini"}"#).unwrap();
    assert_eq!(
        exported,
        Usd::from_picos(picos).as_f64(),
        "the cost is the exact pico-dollar sum, converted once (a naive f64 sum gives {naive})"
    );
    assert_eq!(
        sample(
            &body,
            r#"llm_requests_total{model="gpt-4o-mini",status="ok"}"#
        ),
        Some(1000.0)
    );
    assert_eq!(
        sample(
            &body,
            r#"llm_requests_total{model="gpt-4o-mini",status="error"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, r#"llm_latency_seconds_count{model="gpt-4o-mini"}"#),
        Some(1001.0)
    );
    assert_eq!(
        sample(
            &body,
            r#"llm_latency_seconds_count{model="claude-sonnet-4"}"#
        ),
        Some(1.0)
    );
    // The spec'd buckets.
    for le in ["0.1", "0.5", "1.0", "2.0", "5.0", "10.0", "30.0", "+Inf"] {
        assert!(
            body.contains(&format!(
                r#"llm_latency_seconds_bucket{{le="{le}",model="gpt-4o-mini"}}"#
            )) || body.contains(&format!(
                r#"llm_latency_seconds_bucket{{model="gpt-4o-mini",le="{le}"}}"#
            )),
            "bucket {le} missing:\n{body}"
        );
    }
    // No user label unless asked for.
    assert!(!body.contains("user="), "{body}");
    // llmtel's own health counters, read at scrape time.
    assert!(sample(&body, "llmtel_llm_calls_total").unwrap() >= 1002.0);
    assert!(sample(&body, "llmtel_spans_dropped_total").is_some());
    assert!(sample(&body, "llmtel_spans_export_failed_total").is_some());
    assert!(sample(&body, "llmtel_unknown_model_calls_total").is_some());
}

#[test]
fn latency_and_cost_carry_the_trace_id_as_exemplar() {
    let prom = PrometheusSink::default();
    let calls = Arc::new(Calls::default());
    run(vec![Arc::new(prom.clone()), calls.clone()], || {
        call("gpt-4o", 1_000, 200, "u", None);
    });
    let trace = calls.0.lock().unwrap()[0]
        .trace_id
        .expect("trace id from the OpenTelemetry layer");
    let tid = format!("{trace:032x}");
    let body = prom.encode_openmetrics();
    let cost_line = body
        .lines()
        .find(|l| l.starts_with(r#"llm_cost_usd_total{model="gpt-4o"}"#))
        .unwrap();
    // gpt-4o: $2.50/M in, $10/M out: 1,000 x 2.5e-6 + 200 x 1e-5 = 0.0045
    assert!(
        cost_line.contains(&format!(r#"# {{trace_id="{tid}"}} 0.0045"#)),
        "{cost_line}"
    );
    let with_exemplar = body
        .lines()
        .filter(|l| l.starts_with("llm_latency_seconds_bucket") && l.contains(&tid))
        .count();
    assert_eq!(
        with_exemplar, 1,
        "one bucket holds the observation:\n{body}"
    );
    // The classic text format (for scrapers that do not ask for OpenMetrics) has no exemplars.
    let (text, ctype) = prom.encode_for(Some("text/plain"));
    assert!(ctype.starts_with("text/plain"));
    assert!(!text.contains("trace_id"));
    assert!(text.contains(r#"llm_tokens_total{model="gpt-4o",type="input"} 1000"#));
}

#[test]
fn user_label_only_when_asked_and_capped_with_an_overflow_value() {
    let guard = Arc::new(CardinalityGuard::new(100).with_cap("user", 3));
    let prom = PrometheusSink::builder()
        .with_dimension(Dimension::User)
        .with_guard(guard.clone())
        .build();
    run(vec![Arc::new(prom.clone())], || {
        for u in ["alice", "bob", "carol", "dave", "erin", "alice"] {
            call("gpt-4o-mini", 100, 10, u, None);
        }
    });
    let body = prom.encode_openmetrics();
    for u in ["alice", "bob", "carol"] {
        assert!(body.contains(&format!(r#"user="{u}""#)), "{body}");
    }
    assert!(!body.contains(r#"user="dave""#) && !body.contains(r#"user="erin""#));
    assert_eq!(
        sample(
            &body,
            r#"llm_requests_total{model="gpt-4o-mini",user="__overflow__",status="ok"}"#
        ),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            r#"llm_requests_total{model="gpt-4o-mini",user="alice",status="ok"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &body,
            r#"llmtel_metrics_label_overflow_total{label="user"}"#
        ),
        Some(2.0)
    );
    assert_eq!(guard.distinct("user"), 3);
    // The histogram never gets the user label.
    assert!(
        !body
            .lines()
            .any(|l| l.starts_with("llm_latency") && l.contains("user="))
    );
}

#[test]
fn other_issues_register_their_series_on_the_same_endpoint() {
    use prometheus_client::metrics::gauge::Gauge;
    let prom = PrometheusSink::default();
    let g: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
    prom.register(
        "llm_budget_utilization_ratio",
        "Share of the budget spent",
        g.clone(),
    );
    g.set(0.25);
    let body = prom.encode_openmetrics();
    assert_eq!(sample(&body, "llm_budget_utilization_ratio"), Some(0.25));
}

#[test]
fn built_in_listener_serves_openmetrics_to_prometheus_and_text_to_others() {
    let prom = PrometheusSink::default();
    run(vec![Arc::new(prom.clone())], || {
        call("gpt-4o-mini", 10, 5, "u", None)
    });
    let server = prom.serve("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metrics", server.local_addr());
    let client = reqwest::blocking::Client::new();
    let r = client
        .get(&url)
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(r.text().unwrap().contains("# EOF"));
    let r = client.get(&url).send().unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let r = client
        .get(format!("http://{}/nope", server.local_addr()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    // A HEAD (a health check) is answered without a body, and the kept connection serves
    // the next request: a body after it was read as the start of the next response.
    for _ in 0..2 {
        let r = client.head(&url).send().unwrap();
        assert_eq!(r.status(), 200);
        let r = client.get(&url).send().unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().unwrap().contains("llm"));
    }
    let addr = server.local_addr();
    let series = |body: &str| {
        body.lines()
            .filter(|l| {
                l.starts_with("llmtel_metrics_listener_connections_total{")
                    && l.contains(&format!("listener=\"{addr}\""))
                    && l.contains("outcome=\"accepted\"")
            })
            .count()
    };
    assert_eq!(series(&prom.encode_openmetrics()), 1);
    drop(server);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the listener stops when dropped"
    );
    // Its series leaves with it; serving on its address again gives one series, not two
    // (a duplicate sample Prometheus drops).
    assert_eq!(series(&prom.encode_openmetrics()), 0);
    let again = prom.serve(&addr.to_string()).unwrap();
    assert_eq!(series(&prom.encode_openmetrics()), 1);
    drop(again);
}
