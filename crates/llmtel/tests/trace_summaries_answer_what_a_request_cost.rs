//! Per-trace summaries: spans, calls, tokens, cost and errors, in bounded memory.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
mod support;
use common::*;

use llmtel::Usage;
use tracing_subscriber::prelude::*;

fn request(user: &str, fail: bool) {
    let root = tracing::info_span!("handle", "user.id" = user);
    let _g = root.enter();
    {
        let _r = llmtel::gen_ai_span!("retrieval", "kb").entered();
    }
    for _ in 0..2 {
        let c = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_usage(
            &c,
            &Usage {
                input_tokens: 1_000,
                cache_read_tokens: 500,
                output_tokens: 100,
                ..Default::default()
            },
        );
    }
    if fail {
        let c = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_error(&c, "timeout", "no answer in 30s");
    }
}

#[test]
fn a_trace_summary_adds_up_its_calls() {
    let p = run(|| request("alice", true));
    let s = p.summaries.recent(1).pop().expect("a summary");
    assert_eq!(s.root, "handle");
    assert_eq!(s.spans, 5);
    assert_eq!(s.llm_calls, 3);
    assert_eq!(s.errors, 1);
    assert_eq!(s.input_tokens, 2_000);
    assert_eq!(s.cache_read_tokens, 1_000);
    assert_eq!(s.output_tokens, 200);
    // per call: 500 x 2.50/M + 500 x 1.25/M + 100 x 10/M = 0.00125 + 0.000625 + 0.001 = 0.002875
    assert_usd(s.cost.as_f64(), 2.0 * 0.002875);
    assert!(s.complete);
    let trace_id = p.spans()[0].span_context.trace_id();
    assert_eq!(s.trace_id, Some(trace_id.to_string()));
    assert_eq!(p.summaries.get(trace_id).as_ref(), Some(&s));
    assert!(s.to_string().contains("$0.005750"), "{s}");
}

#[test]
fn summaries_are_bounded_and_evictions_counted() {
    let before = llmtel::health().summaries_evicted;
    let p = run(|| {
        for i in 0..40 {
            request(&format!("u{i}"), false);
        }
    });
    assert_eq!(p.summaries.len(), 16);
    assert!(llmtel::health().summaries_evicted >= before + 24);
    // The oldest kept is the 25th request; the first ones are gone.
    let oldest = p.summaries.recent(16).remove(0);
    let first_trace = p.spans()[0].span_context.trace_id();
    assert!(p.summaries.get(first_trace).is_none());
    assert_eq!(oldest.llm_calls, 2);
}

#[test]
fn traces_without_an_llm_call_are_not_kept_and_push_out_none_that_made_one() {
    let p = run(|| {
        request("alice", false);
        // Far more requests than the store keeps (16), none calling a model.
        for i in 0..40 {
            let _root = tracing::info_span!("health_check", n = i).entered();
            let _child = tracing::info_span!("db").entered();
        }
        let _tool = llmtel::gen_ai_span!("execute_tool", "lookup").entered();
    });
    assert_eq!(p.summaries.len(), 1);
    let kept = p.summaries.recent(16);
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].root.as_str(), kept[0].llm_calls), ("handle", 2));
    let first_trace = p.spans()[0].span_context.trace_id();
    assert_eq!(p.summaries.get(first_trace).as_ref(), Some(&kept[0]));
    let health_check = p
        .spans()
        .into_iter()
        .find(|s| s.name == "health_check")
        .unwrap();
    assert!(
        p.summaries
            .get(health_check.span_context.trace_id())
            .is_none()
    );
}

/// `calls` gpt-4o calls in a `handle` trace, reading the trace's summary so far after
/// `read_after` of them; then a lone LLM span (its own trace). Returns the mid-trace read.
fn traces(calls: u64, read_after: u64) -> llmtel::TraceSummary {
    let mut so_far = None;
    {
        let _root = tracing::info_span!("handle", "user.id" = "u-1").entered();
        for i in 1..=calls {
            let c = llmtel::llm_span!("chat", "openai", "gpt-4o");
            llmtel::record_usage(
                &c,
                &Usage {
                    input_tokens: 1_000 + i,
                    output_tokens: 100,
                    ..Default::default()
                },
            );
            drop(c);
            if i == read_after {
                so_far = llmtel::current_trace_summary();
            }
        }
    }
    let lone = llmtel::llm_span!("chat", "anthropic", "claude-sonnet-4");
    llmtel::record_usage(
        &lone,
        &Usage {
            input_tokens: 2_000,
            output_tokens: 300,
            ..Default::default()
        },
    );
    so_far.expect("a summary while the trace runs")
}

/// The summaries `builder()` keeps for [`traces`], exporting over OTLP/HTTP to a receiver
/// of the test's (the export stage prices each call; the summaries price theirs when read)
/// or not exporting (the layer prices each call as its span closes).
fn summaries(exporting: bool) -> (Vec<llmtel::TraceSummary>, llmtel::TraceSummary) {
    let (url, _requests) = support::otlp_http::receiver();
    let builder = llmtel::builder()
        .with_console(false)
        .with_metrics(false)
        .with_endpoint(url)
        .with_protocol(llmtel::Protocol::HttpProtobuf)
        .with_export_disabled(!exporting);
    let (layer, guard) = builder.build::<tracing_subscriber::Registry>().unwrap();
    let so_far =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            traces(11, 6)
        });
    let kept = guard.summaries().recent(10);
    drop(guard);
    (kept, so_far)
}

#[test]
fn summaries_read_while_exporting_add_up_as_when_priced_at_close() {
    let (exported, so_far) = summaries(true);
    let (local, local_so_far) = summaries(false);
    assert_eq!(exported.len(), 2, "{exported:?}");

    // More calls than a trace keeps unpriced: every one is in the totals, exactly.
    let handle = &exported[0];
    assert_eq!(handle.root, "handle");
    assert_eq!(handle.llm_calls, 11);
    assert_eq!(handle.input_tokens, 11_000 + 66);
    assert_eq!(handle.output_tokens, 1_100);
    // gpt-4o: $2.50 / $10 per million tokens.
    assert_usd(
        handle.cost.as_f64(),
        (11_066.0 * 2.5 + 1_100.0 * 10.0) / 1e6,
    );
    assert_eq!(handle.unpriced_calls, 0);
    assert!(
        handle.trace_id.is_some(),
        "the trace id of the exported spans"
    );

    // Read while the trace runs, after 6 calls.
    assert_eq!(so_far.llm_calls, 6);
    assert!(!so_far.complete);
    assert_usd(so_far.cost.as_f64(), (6_021.0 * 2.5 + 600.0 * 10.0) / 1e6);

    // A lone LLM span is its own trace, named after its call.
    let lone = &exported[1];
    assert_eq!(lone.root, "chat claude-sonnet-4");
    assert_eq!(lone.llm_calls, 1);
    assert_usd(lone.cost.as_f64(), (2_000.0 * 3.0 + 300.0 * 15.0) / 1e6);

    // The same as the summaries of a stack that prices each call as it closes.
    let strip = |s: &llmtel::TraceSummary| llmtel::TraceSummary {
        trace_id: None,
        wall_time: std::time::Duration::ZERO,
        ..s.clone()
    };
    assert_eq!(local.len(), 2);
    for (e, l) in exported.iter().zip(&local) {
        assert_eq!(strip(e), strip(l));
    }
    assert_eq!(strip(&so_far), strip(&local_so_far));
}

/// A root span's summary is made only once a second span joins its trace: the trace is still
/// timed from the root's start, counts every span, and a root read alone is a trace of one.
#[test]
fn a_trace_is_timed_from_its_root_even_when_its_first_child_opens_later() {
    let before = std::time::Duration::from_millis(60);
    let mut alone = None;
    let p = run(|| {
        // A span without gen_ai fields, alone in its trace: nothing kept.
        drop(tracing::info_span!("health_check"));
        let root = tracing::info_span!("handle");
        let _g = root.enter();
        alone = llmtel::current_trace_summary();
        std::thread::sleep(before);
        let c = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_usage(
            &c,
            &Usage {
                input_tokens: 1_000,
                output_tokens: 100,
                ..Default::default()
            },
        );
    });
    let alone = alone.expect("the root's summary while it runs alone");
    assert_eq!(
        (
            alone.root.as_str(),
            alone.spans,
            alone.llm_calls,
            alone.complete
        ),
        ("handle", 1, 0, false)
    );
    assert_eq!(p.summaries.len(), 1, "{:?}", p.summaries.recent(5));
    let s = p.summaries.recent(1).pop().expect("a summary");
    assert_eq!((s.root.as_str(), s.spans, s.llm_calls), ("handle", 2, 1));
    assert!(s.complete);
    assert!(
        s.wall_time >= before,
        "timed from the root's start: {:?}",
        s.wall_time
    );
}

#[test]
fn evicting_a_trace_s_older_summary_keeps_its_newer_one_found() {
    // Two requests of one distributed trace (an upstream caller's): both local roots carry
    // its trace id. Evicting the older summary removed the id's entry, though it pointed at
    // the newer one: `get` found nothing while it was kept.
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let upstream = TraceId::from(0x5b8e_fff7_9803_8103_d269_b633_813f_c60c_u128);
    let remote = |n: u64| {
        opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            upstream,
            SpanId::from(n),
            TraceFlags::SAMPLED,
            true,
            Default::default(),
        ))
    };
    let p = run(|| {
        for n in 1..=2 {
            let root = tracing::info_span!("handle");
            root.set_parent(remote(n)).unwrap();
            let _g = root.enter();
            let c = llmtel::llm_span!("chat", "openai", "gpt-4o");
            llmtel::record_usage(
                &c,
                &Usage {
                    input_tokens: n * 100,
                    output_tokens: 10,
                    ..Default::default()
                },
            );
        }
        // 15 more traces: the ring of 16 drops the first request's summary.
        for i in 0..15 {
            request(&format!("u{i}"), false);
        }
    });
    assert_eq!(p.summaries.len(), 16);
    let kept = p
        .summaries
        .get(upstream)
        .expect("the second request's summary");
    assert_eq!(kept.input_tokens, 200);
}

/// A layer of the user's that reads each call in its own close, as the budget, quality and
/// call-log layers do, stacked before llmtel's.
struct ReadsCalls(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl<S> tracing_subscriber::Layer<S> for ReadsCalls
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            if llmtel::close_call(&span) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }
}

#[test]
fn a_layer_stacked_before_llmtel_that_reads_the_call_leaves_the_summaries_whole() {
    // That layer finished each call first, and llmtel's close took the span for one it had
    // not captured: its trace summary missed the call (a lone call's trace was not kept).
    for exporting in [false, true] {
        let (url, _requests) = support::otlp_http::receiver();
        let (layer, guard) = llmtel::builder()
            .with_console(false)
            .with_metrics(false)
            .with_endpoint(url)
            .with_protocol(llmtel::Protocol::HttpProtobuf)
            .with_export_disabled(!exporting)
            .build::<tracing_subscriber::layer::Layered<ReadsCalls, tracing_subscriber::Registry>>()
            .unwrap();
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stack = tracing_subscriber::registry()
            .with(ReadsCalls(read.clone()))
            .with(layer);
        tracing::subscriber::with_default(stack, || {
            request("alice", true);
            let lone = llmtel::llm_span!("chat", "openai", "gpt-4o");
            llmtel::record_usage(&lone, &Usage::new(1_000, 100));
        });
        assert_eq!(read.load(std::sync::atomic::Ordering::SeqCst), 4);
        let kept = guard.summaries().recent(10);
        let handle = kept.iter().find(|s| s.root == "handle");
        let handle = handle.unwrap_or_else(|| panic!("exporting {exporting}: {kept:?}"));
        assert_eq!((handle.llm_calls, handle.errors), (3, 1), "{handle:?}");
        assert_eq!(handle.input_tokens, 2_000);
        let lone = kept.iter().find(|s| s.root == "chat gpt-4o");
        let lone = lone.unwrap_or_else(|| panic!("exporting {exporting}: {kept:?}"));
        assert_eq!((lone.llm_calls, lone.input_tokens), (1, 1_000), "{lone:?}");
        drop(guard);
    }
}

#[test]
fn a_second_summary_store_in_the_stack_keeps_the_same_totals_and_counts_nothing_twice() {
    // builder()'s summaries and a store of the user's (`TraceSummaries::layer()`), before or
    // after it: each keeps every trace, counted once (they shared each span's slot: the
    // totals doubled and one store stayed empty).
    for user_store_first in [false, true] {
        let mine = llmtel::TraceSummaries::new(10);
        let (guard, (so_far, spans)) = if user_store_first {
            let (layer, guard) = summaries_only();
            let stack = tracing_subscriber::registry()
                .with(mine.layer())
                .with(layer);
            let read = tracing::subscriber::with_default(stack, requests_read_while_open);
            (guard, read)
        } else {
            let (layer, guard) = summaries_only();
            let stack = tracing_subscriber::registry()
                .with(layer)
                .with(mine.layer());
            let read = tracing::subscriber::with_default(stack, requests_read_while_open);
            (guard, read)
        };
        assert_eq!(so_far, 2, "read while open ({user_store_first})");
        assert_eq!(spans, 4, "spans so far ({user_store_first})");
        for (store, name) in [(guard.summaries(), "builder's"), (&mine, "user's")] {
            let kept = store.recent(10);
            let handle = kept
                .iter()
                .filter(|s| s.root == "handle")
                .collect::<Vec<_>>();
            assert_eq!(handle.len(), 1, "{name} ({user_store_first}): {kept:?}");
            let s = handle[0];
            assert_eq!((s.spans, s.llm_calls, s.errors), (5, 3, 1), "{name}: {s:?}");
            assert_eq!(s.input_tokens, 2_000, "{name}: {s:?}");
            let lone = kept.iter().filter(|s| s.root == "chat gpt-4o").count();
            assert_eq!(lone, 1, "{name} ({user_store_first}): {kept:?}");
        }
        drop(guard);
    }
}

/// [`request`], then a lone call; returns the calls and spans of the request's trace read
/// while its root was open, after its first two calls.
fn requests_read_while_open() -> (u64, u64) {
    let read = {
        let root = tracing::info_span!("handle", "user.id" = "bob");
        let _g = root.enter();
        {
            let _r = llmtel::gen_ai_span!("retrieval", "kb").entered();
        }
        for _ in 0..2 {
            let c = llmtel::llm_span!("chat", "openai", "gpt-4o");
            llmtel::record_usage(&c, &Usage::new(1_000, 100));
        }
        let so_far = llmtel::current_trace_summary().unwrap();
        let c = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_error(&c, "timeout", "no answer in 30s");
        (so_far.llm_calls, so_far.spans)
    };
    let lone = llmtel::llm_span!("chat", "openai", "gpt-4o");
    llmtel::record_usage(&lone, &Usage::new(1_000, 100));
    read
}

/// `builder()` keeping trace summaries, exporting nothing, for a stack of `S`.
fn summaries_only<S>() -> (
    Box<dyn tracing_subscriber::Layer<S> + Send + Sync>,
    llmtel::Guard,
)
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    llmtel::builder()
        .with_console(false)
        .with_metrics(false)
        .with_export_disabled(true)
        .build::<S>()
        .unwrap()
}

#[test]
fn the_builders_store_stacked_again_counts_nothing_twice() {
    let (layer, guard) = summaries_only();
    let again = guard.summaries().layer();
    let stack = tracing_subscriber::registry().with(layer).with(again);
    let (so_far, spans) = tracing::subscriber::with_default(stack, requests_read_while_open);
    assert_eq!((so_far, spans), (2, 4));
    let kept = guard.summaries().recent(10);
    let handle = kept
        .iter()
        .filter(|s| s.root == "handle")
        .collect::<Vec<_>>();
    assert_eq!(handle.len(), 1, "{kept:?}");
    assert_eq!((handle[0].spans, handle[0].llm_calls), (5, 3), "{kept:?}");
    assert_eq!(
        kept.iter().filter(|s| s.root == "chat gpt-4o").count(),
        1,
        "{kept:?}"
    );
}
