//! What the call log costs the request thread per LLM call, against a no-op sink, in one run.
//!
//! ```sh
//! cargo bench -p llmtel-report --bench call_log -- --measurement-time 3 --warm-up-time 1
//! ```
//!
//! Calls are paced (each timed alone, then ~20 µs untimed) as a service's calls arrive, so
//! the writer thread keeps up and sits idle between them: what the request thread pays then
//! is `CallSink::on_call` itself (building the record, queueing it), not a backlog.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use llmtel::{CallSink, LlmCall, LlmLayer, Usage};
use tracing_subscriber::prelude::*;

#[derive(Debug, Default)]
struct Keep(Mutex<Option<LlmCall>>);
impl CallSink for Keep {
    fn on_call(&self, call: &LlmCall) {
        *self.0.lock().unwrap() = Some(call.clone());
    }
}

#[derive(Debug)]
struct Noop;
impl CallSink for Noop {
    fn on_call(&self, call: &LlmCall) {
        black_box(call);
    }
}

/// A realistic call: user and feature from the request span, usage, response id.
fn sample_call() -> LlmCall {
    let keep = Arc::new(Keep::default());
    let sub = tracing_subscriber::registry().with(LlmLayer::new().with_sink(keep.clone()));
    tracing::subscriber::with_default(sub, || {
        let request = tracing::info_span!("request", "user.id" = "u-42", "llmtel.feature" = "faq");
        let _g = request.enter();
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
        llmtel::record_response(&span, "chatcmpl-123", "gpt-4o-mini-2024-07-18", &["stop"]);
        llmtel::record_usage(
            &span,
            &Usage {
                input_tokens: 1200,
                cache_read_tokens: 1024,
                output_tokens: 300,
                ..Default::default()
            },
        );
    });
    keep.0.lock().unwrap().take().unwrap()
}

fn paced(n: u64, f: impl Fn()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        f();
        total += t.elapsed();
        let pause = Instant::now();
        while pause.elapsed() < Duration::from_micros(20) {
            std::hint::spin_loop();
        }
    }
    total
}

fn benches(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("llmtel-call-log-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = llmtel_report::CallLog::builder(dir.join("calls.jsonl"))
        .build()
        .unwrap();
    let call = sample_call();
    let mut g = c.benchmark_group("paced_on_call");
    g.bench_function("noop_sink", |b| {
        b.iter_custom(|n| paced(n, || Noop.on_call(black_box(&call))))
    });
    g.bench_function("call_log", |b| {
        b.iter_custom(|n| paced(n, || log.on_call(black_box(&call))))
    });
    g.finish();
    assert!(log.flush(Duration::from_secs(30)));
    let stats = log.stats();
    eprintln!("call log after the runs: {stats:?}");
    assert_eq!(stats.dropped_queue_full, 0, "paced calls must not overflow");
    log.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(call_log, benches);
criterion_main!(call_log);
