//! Per-trace summaries: spans, calls, tokens, cost and errors, in bounded memory.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use llmtel::Usage;

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
