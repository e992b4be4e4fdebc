//! Runs LLM spans through llmtel's layer (with an OpenTelemetry layer for trace ids) into sinks.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use llmtel::{CallSink, LlmCall, Usage};
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;

/// Keeps every call, the reference the metrics are checked against.
#[derive(Debug, Default)]
pub struct Calls(pub Mutex<Vec<LlmCall>>);

impl CallSink for Calls {
    fn on_call(&self, call: &LlmCall) {
        self.0.lock().unwrap().push(call.clone());
    }
}

/// Runs `f` with llmtel's layer feeding `sinks` and a tracing-opentelemetry layer (no
/// exporter) giving each call its trace id.
pub fn run(sinks: Vec<Arc<dyn CallSink>>, f: impl FnOnce()) {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let mut layer = llmtel::LlmLayer::new();
    for s in sinks {
        layer = layer.with_sink(s);
    }
    let subscriber = tracing_subscriber::registry()
        .with(layer)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, f);
}

/// One call of `model` with this usage, for `user`, failed with `error` if given.
pub fn call(model: &str, input: u64, output: u64, user: &str, error: Option<&str>) {
    let span = llmtel::llm_span!("chat", "openai", model);
    span.record("user.id", user);
    let _e = span.enter();
    if let Some(e) = error {
        llmtel::record_error(&span, e, "simulated failure");
        return;
    }
    llmtel::record_response(&span, "resp-1", model, &["stop"]);
    llmtel::record_usage(
        &span,
        &Usage {
            input_tokens: input,
            output_tokens: output,
            ..Default::default()
        },
    );
}

/// A streamed call with its time to first chunk.
pub fn streamed_call(model: &str, input: u64, output: u64, ttfc: f64) {
    let span = llmtel::llm_span!("chat", "openai", model);
    span.record("gen_ai.request.stream", true);
    let _e = span.enter();
    // Open for at least 20 ms, first chunk after 10 ms.
    std::thread::sleep(std::time::Duration::from_millis(20));
    span.record("gen_ai.response.time_to_first_chunk", ttfc);
    llmtel::record_response(&span, "resp-2", model, &["stop"]);
    llmtel::record_usage(
        &span,
        &Usage {
            input_tokens: input,
            output_tokens: output,
            ..Default::default()
        },
    );
}
