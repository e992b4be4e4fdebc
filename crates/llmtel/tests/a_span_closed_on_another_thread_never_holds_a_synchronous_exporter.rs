//! With a simple (synchronous) span processor, llmtel's exporter stage runs inside the
//! OpenTelemetry layer's close, on the thread closing the span. It must never wait there for
//! the span's other layers to finish closing: they run on that very thread, after it. It knew
//! only the thread that registered the span (the one that first entered it): a span entered on
//! one thread and closed on another made the closing thread wait the whole 100 ms, holding the
//! SDK's exporter lock, and counted a late attribute lost that had reached the span.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
#[path = "support/late_setter.rs"]
mod late;
use common::*;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::prelude::*;

use late::LateSetter;

/// A gpt-4o call in a request span (`user.id = u-1`), entered on this thread and closed on
/// another, under `dispatch`; the exported call.
fn entered_here_closed_there(
    dispatch: &tracing::Dispatch,
    exporter: &InMemorySpanExporter,
) -> SpanData {
    tracing::dispatcher::with_default(dispatch, || {
        let request = tracing::info_span!("request", "user.id" = "u-1");
        let span = request.in_scope(|| llmtel::llm_span!("chat", "openai", "gpt-4o"));
        {
            let _entered = span.enter();
            llmtel::record_usage(&span, &llmtel::Usage::new(1_000, 100));
        }
        // Moved to another thread (a task's future dropped elsewhere) and closed there.
        std::thread::spawn(move || drop(span)).join().unwrap();
        drop(request);
    });
    let spans = exporter.get_finished_spans().unwrap();
    spans.into_iter().find(|s| s.name == "chat gpt-4o").unwrap()
}

fn simple_pipeline() -> (InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(llmtel::GenAiExporter::new(exporter.clone()))
        .build();
    (exporter, provider)
}

#[test]
fn closed_on_another_thread_its_attributes_arrive_and_nothing_is_counted_lost() {
    let (exporter, provider) = simple_pipeline();
    // llmtel's layer and the late setter close the span before the OpenTelemetry layer ends
    // (and exports) it: all they add is on the live span.
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(llmtel::layer())
            .with(LateSetter::new())
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t"))),
    );
    let before = llmtel::health().late_attributes_dropped;
    let chat = entered_here_closed_there(&dispatch, &exporter);
    assert_eq!(str_attr(&chat, "user.id"), "u-1");
    assert_eq!(str_attr(&chat, late::KEY), late::VALUE);
    assert!(attr(&chat, "gen_ai.usage.cost").is_some());
    assert_eq!(
        llmtel::health().late_attributes_dropped,
        before,
        "nothing was lost: none is counted"
    );
}

#[test]
fn ended_first_by_opentelemetry_on_another_thread_each_late_set_is_counted_lost() {
    let (exporter, provider) = simple_pipeline();
    // The OpenTelemetry layer ends, and the simple processor exports, the span before
    // llmtel's layers close it: what they add then cannot reach it, and each set is counted
    // at once (not when its entry is pushed out of the table, 65,536 spans later).
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
            .with(llmtel::layer())
            .with(LateSetter::new()),
    );
    let before = llmtel::health().late_attributes_dropped;
    let chat = entered_here_closed_there(&dispatch, &exporter);
    assert!(attr(&chat, "gen_ai.usage.cost").is_some());
    assert_eq!(
        llmtel::health().late_attributes_dropped - before,
        2,
        "the inherited user.id and the late setter's attribute"
    );
}
