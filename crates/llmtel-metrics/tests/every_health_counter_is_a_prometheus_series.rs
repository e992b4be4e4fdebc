//! Every one of llmtel's health counters ([`llmtel::health()`]) is exported by the
//! Prometheus sink, read at scrape time: `custom_dimensions_dropped` (custom `llmtel.*`
//! dimensions the export stage could not keep), `values_truncated`,
//! `estimates_approximated`, `late_attributes_merged`, `late_attributes_dropped` and
//! `background_dropped` were counted but never reached a scrape.
#![allow(clippy::unwrap_used)]

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

use llmtel_metrics::PrometheusSink;

/// The value of the sample `series` (no labels) in `body`.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l[series.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Runs one LLM span with a custom dimension whose name is too long to keep through
/// llmtel's export stage: counted in `custom_dimensions_dropped`.
fn export_a_span_with_a_custom_dimension_too_long_to_keep() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("test");
    let mut span = tracer
        .span_builder("chat gpt-4o-mini")
        .with_attributes([
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", "openai"),
            KeyValue::new("gen_ai.request.model", "gpt-4o-mini"),
            KeyValue::new(
                format!("llmtel.{}", "x".repeat(llmtel::MAX_VALUE_BYTES)),
                "v",
            ),
        ])
        .start(&tracer);
    span.end();
    provider.force_flush().unwrap();
    let stage = llmtel::GenAiExporter::new(InMemorySpanExporter::default());
    for mut span in exporter.get_finished_spans().unwrap() {
        stage.process_call(&mut span, &llmtel::ContentCapture::disabled());
    }
}

#[test]
fn every_health_counter_is_a_prometheus_series_with_its_value() {
    export_a_span_with_a_custom_dimension_too_long_to_keep();
    let h = llmtel::health();
    assert!(h.custom_dimensions_dropped >= 1, "{h:?}");
    let body = PrometheusSink::default().encode_text();
    // (Nothing else runs in this process: the counters do not move during the scrape.)
    assert_eq!(llmtel::health(), h);
    for (series, value) in [
        ("llmtel_llm_calls_total", h.llm_calls),
        ("llmtel_priced_calls_total", h.priced_calls),
        ("llmtel_unknown_model_calls_total", h.unknown_model_calls),
        ("llmtel_malformed_usage_total", h.malformed_usage),
        ("llmtel_spans_queued_total", h.spans_queued),
        ("llmtel_spans_dropped_total", h.spans_dropped),
        ("llmtel_spans_exported_total", h.spans_exported),
        ("llmtel_spans_export_failed_total", h.spans_export_failed),
        ("llmtel_export_errors_total", h.export_errors),
        ("llmtel_summaries_evicted_total", h.summaries_evicted),
        ("llmtel_values_truncated_total", h.values_truncated),
        (
            "llmtel_estimates_approximated_total",
            h.estimates_approximated,
        ),
        (
            "llmtel_late_attributes_merged_total",
            h.late_attributes_merged,
        ),
        (
            "llmtel_late_attributes_dropped_total",
            h.late_attributes_dropped,
        ),
        ("llmtel_background_dropped_total", h.background_dropped),
        ("llmtel_sink_panics_total", h.sink_panics),
        (
            "llmtel_custom_dimensions_dropped_total",
            h.custom_dimensions_dropped,
        ),
        ("llmtel_kept_over_budget_total", h.kept_over_budget),
    ] {
        #[allow(clippy::cast_precision_loss)] // small counts
        let want = value as f64;
        assert_eq!(sample(&body, series), Some(want), "{series}:\n{body}");
    }
    // And every counter `Health` lists, whatever is added to it later.
    for (name, _, value) in h.counters() {
        let series = format!("llmtel_{name}_total");
        #[allow(clippy::cast_precision_loss)] // small counts
        let want = value as f64;
        assert_eq!(sample(&body, &series), Some(want), "{series}:\n{body}");
    }
}
