//! An LLM span's exported attributes do not depend on the layer order (README, ARCHITECTURE):
//! the dimensions it inherits from its request span (`user.id`, `llmtel.feature`,
//! `llmtel.tenant`) and what a layer adds at its close (budgets' `llmtel.budget.*`) reach the
//! exported span whether llmtel's layer or the OpenTelemetry layer closes it first, whether
//! the span was entered or never entered, with or without a layer of late attributes, and
//! nothing is counted lost.
//!
//! Stacked after the OpenTelemetry layer, llmtel's layer found the span ended: without a
//! budget layer (which alone asked for late attributes) the inherited dimensions were dropped
//! and counted nowhere; a span never entered had no OpenTelemetry id at all, so neither its
//! dimensions nor its budget attributes reached it, uncounted.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
#[path = "support/late_setter.rs"]
mod late;
use common::*;

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::Layer;
use tracing_subscriber::Registry;
use tracing_subscriber::prelude::*;

use late::LateSetter;

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

#[derive(Clone, Copy, Debug)]
enum Part {
    Llmtel,
    Otel,
    Late,
}

fn permutations(parts: &[Part]) -> Vec<Vec<Part>> {
    if parts.len() <= 1 {
        return vec![parts.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..parts.len() {
        let mut rest = parts.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first);
            out.push(p);
        }
    }
    out
}

/// One gpt-4o call inside a request span with three dimensions, under the layers of
/// `order` exporting through llmtel's stage behind a batch processor; the exported call.
fn run(order: &[Part], entered: bool) -> SpanData {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(llmtel::GenAiExporter::new(exporter.clone()))
        .build();
    let layers: Vec<Boxed> = order
        .iter()
        .map(|p| -> Boxed {
            match p {
                Part::Llmtel => Box::new(llmtel::layer()),
                Part::Otel => {
                    Box::new(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
                }
                Part::Late => Box::new(LateSetter::new()),
            }
        })
        .collect();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
        let request = tracing::info_span!(
            "request",
            "user.id" = "u-1",
            "llmtel.feature" = "faq",
            "llmtel.tenant" = "acme"
        );
        request.in_scope(|| {
            let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
            let _entered = entered.then(|| span.enter());
            llmtel::record_usage(&span, &llmtel::Usage::new(1_000, 100));
        });
    });
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    spans
        .into_iter()
        .find(|s| s.name == "chat gpt-4o")
        .unwrap_or_else(|| panic!("{order:?}: no chat span"))
}

/// What an order lost, if anything.
fn lost(order: &[Part], entered: bool, late: bool) -> Option<String> {
    let span = run(order, entered);
    let mut wanted = vec![
        ("user.id", "u-1"),
        ("llmtel.feature", "faq"),
        ("llmtel.tenant", "acme"),
    ];
    if late {
        wanted.push((late::KEY, late::VALUE));
    }
    let missing: Vec<_> = wanted
        .iter()
        .filter(|(k, v)| attr(&span, k).map(|x| x.as_str().into_owned()).as_deref() != Some(*v))
        .map(|(k, _)| *k)
        .collect();
    let cost = attr(&span, "gen_ai.usage.cost").is_some();
    (!missing.is_empty() || !cost).then(|| {
        format!(
            "{order:?}, {}: missing {missing:?}{}",
            if entered { "entered" } else { "never entered" },
            if cost { "" } else { " and the cost" }
        )
    })
}

fn check_every_order(parts: &[Part], late: bool) {
    let before = llmtel::health().late_attributes_dropped;
    let mut wrong = Vec::new();
    for order in permutations(parts) {
        for entered in [true, false] {
            wrong.extend(lost(&order, entered, late));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        llmtel::health().late_attributes_dropped,
        before,
        "nothing counted lost"
    );
}

#[test]
fn inherited_dimensions_reach_the_span_whichever_of_llmtel_and_opentelemetry_closes_first() {
    check_every_order(&[Part::Llmtel, Part::Otel], false);
}

#[test]
fn inherited_dimensions_and_a_layers_late_attributes_reach_the_span_in_every_order() {
    check_every_order(&[Part::Llmtel, Part::Otel, Part::Late], true);
}

/// llmtel's layer reads a span's OpenTelemetry ids when it can no longer take a parent:
/// reading them starts the OpenTelemetry span. A span given its parent right after it is
/// opened (llmtel-eval's judge calls, a remote parent) keeps it, in either order, the layers
/// registered with their dispatcher (where llmtel's layer could read the ids as the span
/// opens).
#[test]
fn a_parent_set_right_after_the_span_is_opened_is_kept_in_either_order() {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let remote = SpanContext::new(
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        SpanId::from_hex("b7ad6b7169203331").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    for otel_first in [true, false] {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(llmtel::GenAiExporter::new(exporter.clone()))
            .build();
        let dispatch = if otel_first {
            tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
                    .with(llmtel::layer()),
            )
        } else {
            tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(llmtel::layer())
                    .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t"))),
            )
        };
        tracing::dispatcher::with_default(&dispatch, || {
            let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
            span.record("llmtel.feature", "judge");
            span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote.clone()))
                .unwrap();
            llmtel::record_usage(&span, &llmtel::Usage::new(10, 1));
        });
        let spans = exporter.get_finished_spans().unwrap();
        let chat = spans.iter().find(|s| s.name == "chat gpt-4o").unwrap();
        assert_eq!(
            chat.parent_span_id,
            remote.span_id(),
            "otel first: {otel_first}"
        );
        assert_eq!(
            chat.span_context.trace_id(),
            remote.trace_id(),
            "otel first: {otel_first}"
        );
    }
}
