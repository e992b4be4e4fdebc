//! Issue #14: DeepSeek prices half off in published UTC windows. A span is priced by its
//! start *instant*, not its date: the same call at 08:00 UTC on a Wednesday (on-peak) and at
//! 12:00 UTC the same day (off-peak) costs the standard and the off-peak price, on the
//! exported span. The spans are made with the OpenTelemetry API and an explicit start time,
//! as a span received from another service carries its own.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

fn priced_at(instant: &str) -> SpanData {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(llmtel::GenAiExporter::new(exporter.clone()))
        .build();
    let tracer = provider.tracer("test");
    let start: SystemTime = instant.parse::<jiff::Timestamp>().unwrap().into();
    let mut span = tracer
        .span_builder("chat deepseek-flash")
        .with_start_time(start)
        .with_attributes(vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", "deepseek"),
            KeyValue::new("gen_ai.request.model", "deepseek-flash"),
            KeyValue::new("gen_ai.usage.input_tokens", 1_000_000_i64),
            KeyValue::new("gen_ai.usage.output_tokens", 100_000_i64),
        ])
        .start(&tracer);
    span.end_with_timestamp(start + Duration::from_secs(2));
    provider.force_flush().unwrap();
    exporter.get_finished_spans().unwrap().remove(0)
}

fn f(span: &SpanData, key: &str) -> Option<f64> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .and_then(|kv| match &kv.value {
            Value::F64(v) => Some(*v),
            _ => None,
        })
}

fn flag(span: &SpanData, key: &str) -> bool {
    span.attributes
        .iter()
        .any(|kv| kv.key.as_str() == key && kv.value == Value::Bool(true))
}

#[test]
fn the_same_day_costs_the_standard_price_on_peak_and_half_off_peak() {
    // deepseek-flash: $0.30/M in, $1.20/M out; off-peak $0.15 / $0.60 (weekdays from 10:00 UTC).
    let on = priced_at("2026-12-02T08:00:00Z");
    let off = priced_at("2026-12-02T12:00:00Z");
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
    assert!(close(f(&on, "gen_ai.usage.cost"), 0.30 + 0.12), "{on:?}");
    assert!(!flag(&on, "llmtel.pricing.off_peak"));
    assert!(close(f(&off, "gen_ai.usage.cost"), 0.15 + 0.06), "{off:?}");
    assert!(flag(&off, "llmtel.pricing.off_peak"));
}
