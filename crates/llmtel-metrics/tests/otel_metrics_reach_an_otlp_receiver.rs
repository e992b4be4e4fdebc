//! The OpenTelemetry metrics leave over OTLP/HTTP with the GenAI semconv v1.41.1 names, units,
//! attributes and bucket boundaries, and exact sums. The receiver is a real OTLP/HTTP endpoint
//! in the test, decoding the protobuf body with `opentelemetry-proto`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use common::{Calls, call, run, streamed_call};
use llmtel::Usd;
use llmtel_metrics::{OtelMetricsSink, OtlpMetricsConfig, otlp_meter_provider};
use llmtel_semconv::metrics as semconv;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};
use prost::Message;

/// An OTLP/HTTP receiver on a free loopback port: every POST /v1/metrics body, decoded.
fn receiver() -> (String, mpsc::Receiver<ExportMetricsServiceRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let (head_end, len) = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (0, 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                    assert!(head.starts_with("post /v1/metrics "), "{head}");
                    assert!(head.contains("content-type: application/x-protobuf"));
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap();
                    break (i + 4, len);
                }
            };
            while buf.len() < head_end + len {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let req = ExportMetricsServiceRequest::decode(&buf[head_end..head_end + len]).unwrap();
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = tx.send(req);
        }
    });
    (url, rx)
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(ref s)),
            }) => Some(s.as_str()),
            _ => None,
        })
}

/// Threads of this process named `llmtel-metrics` (Linux: /proc/self/task/*/comm).
fn metrics_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "llmtel-metrics")
        .count()
}

#[test]
fn genai_metrics_reach_the_receiver_with_semconv_names_units_attributes_and_buckets() {
    let (url, rx) = receiver();
    let provider = otlp_meter_provider(OtlpMetricsConfig {
        endpoint: Some(url),
        interval: Some(Duration::from_secs(3600)),
        service_name: Some("metrics-test".into()),
        ..Default::default()
    })
    .unwrap();
    let sink = OtelMetricsSink::builder().build(&provider.meter("llmtel"));
    let calls = Arc::new(Calls::default());
    run(vec![Arc::new(sink), calls.clone()], || {
        for i in 0..50u64 {
            call("gpt-4o-mini", 1_000 + i * 7, 100 + i % 13, "u", None);
        }
        call("gpt-4o-mini", 0, 0, "u", Some("rate_limit"));
        streamed_call("gpt-4o-mini", 500, 101, 0.01);
    });
    provider.force_flush().unwrap();
    let req = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an OTLP export");
    assert_eq!(
        metrics_threads(),
        1,
        "the exports run on llmtel's metrics thread"
    );
    provider.shutdown().unwrap();
    assert_eq!(metrics_threads(), 0, "the thread stops with the provider");

    let calls = calls.0.lock().unwrap();
    let ok: Vec<_> = calls.iter().filter(|c| !c.is_error()).collect();
    let input: u64 = ok.iter().map(|c| c.usage.input_tokens).sum();
    let output: u64 = ok.iter().map(|c| c.usage.output_tokens).sum();
    let picos: u128 = ok.iter().map(|c| c.cost_usd().unwrap().picos()).sum();

    let rm = &req.resource_metrics[0];
    assert_eq!(rm.schema_url, llmtel_semconv::SCHEMA_URL);
    let res = rm.resource.as_ref().unwrap();
    assert_eq!(attr(&res.attributes, "service.name"), Some("metrics-test"));
    let metrics: Vec<&Metric> = rm.scope_metrics.iter().flat_map(|s| &s.metrics).collect();
    let get = |name: &str| -> &Metric {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} not exported"))
    };
    let hist = |m: &Metric| match &m.data {
        Some(metric::Data::Histogram(h)) => h.data_points.clone(),
        other => panic!("{} is not a histogram: {other:?}", m.name),
    };

    // gen_ai.client.token.usage
    let tokens = get(semconv::CLIENT_TOKEN_USAGE);
    assert_eq!(tokens.unit, "{token}");
    let pts = hist(tokens);
    for p in &pts {
        assert_eq!(p.explicit_bounds, semconv::TOKEN_USAGE_BUCKETS.to_vec());
        assert_eq!(attr(&p.attributes, "gen_ai.operation.name"), Some("chat"));
        assert_eq!(attr(&p.attributes, "gen_ai.provider.name"), Some("openai"));
        assert_eq!(
            attr(&p.attributes, "gen_ai.request.model"),
            Some("gpt-4o-mini")
        );
        assert_eq!(
            attr(&p.attributes, "gen_ai.response.model"),
            Some("gpt-4o-mini")
        );
        assert_eq!(attr(&p.attributes, "error.type"), None);
    }
    let of_type = |t: &str| {
        pts.iter()
            .find(|p| attr(&p.attributes, "gen_ai.token.type") == Some(t))
            .unwrap()
    };
    assert_eq!(of_type("input").sum, Some(input as f64));
    assert_eq!(of_type("input").count, 51);
    assert_eq!(of_type("output").sum, Some(output as f64));

    // gen_ai.client.operation.duration: every call, the failed one with error.type.
    let dur = get(semconv::CLIENT_OPERATION_DURATION);
    assert_eq!(dur.unit, "s");
    let pts = hist(dur);
    assert_eq!(pts.iter().map(|p| p.count).sum::<u64>(), 52);
    for p in &pts {
        assert_eq!(p.explicit_bounds, semconv::DURATION_BUCKETS.to_vec());
    }
    let failed = pts
        .iter()
        .find(|p| attr(&p.attributes, "error.type") == Some("rate_limit"))
        .expect("the failed call is recorded with error.type");
    assert_eq!(failed.count, 1);

    // Streaming metrics: only the streamed call.
    let ttfc = get(semconv::CLIENT_TIME_TO_FIRST_CHUNK);
    assert_eq!(ttfc.unit, "s");
    let pts = hist(ttfc);
    assert_eq!(pts.len(), 1);
    assert_eq!(pts[0].count, 1);
    assert_eq!(pts[0].sum, Some(0.01));
    assert_eq!(pts[0].explicit_bounds, semconv::DURATION_BUCKETS.to_vec());
    let tpoc = get(semconv::CLIENT_TIME_PER_OUTPUT_CHUNK);
    assert_eq!(tpoc.unit, "s");
    let pts = hist(tpoc);
    assert_eq!(pts[0].count, 1);
    assert_eq!(pts[0].explicit_bounds, semconv::DURATION_BUCKETS.to_vec());

    // llmtel.client.cost: a monotonic cumulative sum, the exact pico-dollar total.
    let cost = get("llmtel.client.cost");
    assert_eq!(cost.unit, "USD");
    let Some(metric::Data::Sum(sum)) = &cost.data else {
        panic!("cost is not a sum")
    };
    assert!(sum.is_monotonic);
    let total: f64 = sum
        .data_points
        .iter()
        .map(|p| match p.value {
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(
                v,
            )) => v,
            _ => panic!("cost is a double"),
        })
        .sum();
    assert_eq!(
        sum.data_points.len(),
        1,
        "one attribute set (no failed call is priced)"
    );
    assert_eq!(total, Usd::from_picos(picos).as_f64());

    // llmtel.client.requests by status.
    let req_m = get("llmtel.client.requests");
    assert_eq!(req_m.unit, "{request}");
    let Some(metric::Data::Sum(sum)) = &req_m.data else {
        panic!("requests is not a sum")
    };
    let by = |status: &str| -> i64 {
        sum.data_points
            .iter()
            .filter(|p| attr(&p.attributes, "llmtel.request.status") == Some(status))
            .map(|p| match p.value {
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(
                    v,
                )) => v,
                _ => panic!("requests is an integer"),
            })
            .sum()
    };
    assert_eq!(by("ok"), 51);
    assert_eq!(by("error"), 1);
}

#[test]
fn an_embeddings_call_reports_input_tokens_and_no_output_tokens() {
    let (url, rx) = receiver();
    let provider = otlp_meter_provider(OtlpMetricsConfig {
        endpoint: Some(url),
        interval: Some(Duration::from_secs(3600)),
        ..Default::default()
    })
    .unwrap();
    let sink = OtelMetricsSink::builder().build(&provider.meter("llmtel"));
    run(vec![Arc::new(sink)], || {
        let span = llmtel::llm_span!("embeddings", "openai", "text-embedding-3-small");
        let _e = span.enter();
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 200,
                ..Default::default()
            },
        );
    });
    provider.force_flush().unwrap();
    let req = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an OTLP export");
    provider.shutdown().unwrap();
    let tokens = req.resource_metrics[0]
        .scope_metrics
        .iter()
        .flat_map(|s| &s.metrics)
        .find(|m| m.name == semconv::CLIENT_TOKEN_USAGE)
        .expect("token usage exported");
    let Some(metric::Data::Histogram(h)) = &tokens.data else {
        panic!("{tokens:?}")
    };
    let types: Vec<_> = h
        .data_points
        .iter()
        .map(|p| (attr(&p.attributes, "gen_ai.token.type"), p.count, p.sum))
        .collect();
    assert_eq!(types, vec![(Some("input"), 1, Some(200.0))]);
}

#[test]
fn token_usage_of_a_failed_call_carries_no_error_type_and_a_missing_provider_is_unknown() {
    // `gen_ai.client.token.usage` has no `error.type` in the conventions (a failed call that
    // reported usage counted its tokens in series of their own), and `gen_ai.provider.name`
    // is required (a span that did not say it had none).
    let (url, rx) = receiver();
    let provider = otlp_meter_provider(OtlpMetricsConfig {
        endpoint: Some(url),
        interval: Some(Duration::from_secs(3600)),
        ..Default::default()
    })
    .unwrap();
    let sink = OtelMetricsSink::builder().build(&provider.meter("llmtel"));
    run(vec![Arc::new(sink)], || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
        let _e = span.enter();
        llmtel::record_usage(&span, &llmtel::Usage::new(300, 7));
        llmtel::record_error(&span, "timeout", "cut after its usage");
        drop(_e);
        drop(span);
        let _anon = tracing::info_span!(
            "chat",
            "gen_ai.operation.name" = "chat",
            "gen_ai.request.model" = "gpt-4o-mini",
            "gen_ai.usage.input_tokens" = 10_i64,
            "gen_ai.usage.output_tokens" = 1_i64,
        );
    });
    provider.force_flush().unwrap();
    let req = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an OTLP export");
    provider.shutdown().unwrap();
    let metric = |name: &str| {
        req.resource_metrics[0]
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} not exported"))
            .clone()
    };
    let Some(metric::Data::Histogram(h)) = metric(semconv::CLIENT_TOKEN_USAGE).data else {
        panic!("token usage is a histogram")
    };
    for p in &h.data_points {
        assert_eq!(
            attr(&p.attributes, "error.type"),
            None,
            "{:?}",
            p.attributes
        );
    }
    let input_from = |provider: &str| {
        h.data_points
            .iter()
            .filter(|p| {
                attr(&p.attributes, "gen_ai.token.type") == Some("input")
                    && attr(&p.attributes, "gen_ai.provider.name") == Some(provider)
            })
            .map(|p| p.sum.unwrap_or(0.0))
            .sum::<f64>()
    };
    assert_eq!(input_from("openai"), 300.0);
    assert_eq!(input_from("unknown"), 10.0);
    // The failed call's duration keeps its error.type.
    let Some(metric::Data::Histogram(d)) = metric(semconv::CLIENT_OPERATION_DURATION).data else {
        panic!("duration is a histogram")
    };
    assert!(
        d.data_points
            .iter()
            .any(|p| attr(&p.attributes, "error.type") == Some("timeout"))
    );
}
