//! What the metrics sinks cost the request thread per LLM call, as a ratio to a no-op sink
//! in the same run (the sink is called from `LlmLayer::on_close` on the app's thread).
//!
//! `cargo bench -p llmtel-metrics --bench sink_overhead -- --measurement-time 3 --warm-up-time 1`

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use llmtel::{CallSink, Cost, CostSource, Dimensions, LlmCall, Usage, Usd};
use llmtel_metrics::{Dimension, OtelMetricsSink, PrometheusSink};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{SpanId, TraceId};

#[derive(Debug)]
struct NoopSink;
impl CallSink for NoopSink {
    fn on_call(&self, call: &LlmCall) {
        black_box(call);
    }
}

fn sample_call(i: u64) -> LlmCall {
    LlmCall {
        name: "chat gpt-4o-mini".into(),
        operation: "chat".into(),
        provider: Some("openai".into()),
        request_model: Some("gpt-4o-mini".into()),
        response_model: Some("gpt-4o-mini-2024-07-18".into()),
        response_id: Some("chatcmpl-1".into()),
        finish_reasons: vec!["stop".into()],
        usage: Usage {
            input_tokens: 1200 + i % 7,
            output_tokens: 300,
            ..Default::default()
        },
        has_usage: true,
        cost: Some(Cost {
            total: Usd::from_picos(360_000_000 + u128::from(i % 7)),
            breakdown: None,
            source: CostSource::Catalog,
            estimated: false,
            pricing: None,
            computed_total: None,
        }),
        unknown_model: false,
        usage_error: None,
        error_type: None,
        streamed: false,
        max_tokens: None,
        time_to_first_chunk: None,
        dimensions: Dimensions {
            user: Some(format!("user-{}", i % 50).into()),
            feature: Some("chat".into()),
            ..Default::default()
        },
        started_at: SystemTime::now(),
        duration: Duration::from_millis(850),
        trace_id: Some(TraceId::from_bytes([7; 16])),
        span_id: Some(SpanId::from_bytes([3; 8])),
    }
}

fn bench(c: &mut Criterion) {
    let calls: Vec<LlmCall> = (0..64).map(sample_call).collect();
    let mut g = c.benchmark_group("sink_on_call");
    let run = |g: &mut criterion::BenchmarkGroup<'_, _>, name: &str, sink: Arc<dyn CallSink>| {
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % calls.len();
                sink.on_call(black_box(&calls[i]));
            })
        });
    };
    run(&mut g, "noop (baseline)", Arc::new(NoopSink));
    run(&mut g, "prometheus", Arc::new(PrometheusSink::default()));
    run(
        &mut g,
        "prometheus_user_feature_labels",
        Arc::new(
            PrometheusSink::builder()
                .with_dimension(Dimension::User)
                .with_dimension(Dimension::Feature)
                .build(),
        ),
    );
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(
            opentelemetry_sdk::metrics::PeriodicReader::builder(
                opentelemetry_sdk::metrics::InMemoryMetricExporter::default(),
            )
            .with_interval(Duration::from_secs(3600))
            .build(),
        )
        .build();
    run(
        &mut g,
        "otel_semconv",
        Arc::new(OtelMetricsSink::builder().build(&provider.meter("bench"))),
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
