//! Agent, retrieval, tool and LLM spans nest under one trace; dimensions set on an outer
//! span reach the LLM calls inside it.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod common;
use common::*;

use llmtel::Usage;

#[test]
fn nested_steps_share_the_trace_and_parent_links() {
    let (layer, calls) = collecting_layer();
    let p = run_with(layer, true, || {
        let request = tracing::info_span!(
            "POST /chat",
            "user.id" = "alice",
            "llmtel.feature" = "support"
        );
        let _r = request.enter();
        let agent = llmtel::gen_ai_span!(
            "invoke_agent",
            "support-bot",
            "gen_ai.agent.name" = "support-bot"
        );
        let _a = agent.enter();
        {
            let _ret =
                llmtel::gen_ai_span!("retrieval", "kb", "gen_ai.data_source.id" = "kb").entered();
        }
        {
            let _tool = llmtel::gen_ai_span!(
                "execute_tool",
                "lookup_order",
                "gen_ai.tool.name" = "lookup_order"
            )
            .entered();
        }
        let call = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
        llmtel::record_usage(
            &call,
            &Usage {
                input_tokens: 100,
                output_tokens: 10,
                ..Default::default()
            },
        );
    });
    let spans = p.spans();
    let by = |n: &str| {
        spans
            .iter()
            .find(|s| s.name == n)
            .unwrap_or_else(|| panic!("{n}"))
            .clone()
    };
    let root = by("POST /chat");
    let agent = by("invoke_agent support-bot");
    let retrieval = by("retrieval kb");
    let tool = by("execute_tool lookup_order");
    let llm = by("chat gpt-4o-mini");
    let trace = root.span_context.trace_id();
    for s in [&agent, &retrieval, &tool, &llm] {
        assert_eq!(s.span_context.trace_id(), trace, "{}", s.name);
    }
    assert_eq!(agent.parent_span_id, root.span_context.span_id());
    for s in [&retrieval, &tool, &llm] {
        assert_eq!(s.parent_span_id, agent.span_context.span_id(), "{}", s.name);
    }
    // Only the model call is priced.
    assert!(attr(&llm, "gen_ai.usage.cost").is_some());
    for s in [&agent, &retrieval, &tool] {
        assert!(attr(s, "gen_ai.usage.cost").is_none(), "{}", s.name);
    }
    let calls = calls.0.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].dimensions.user.as_deref(), Some("alice"));
    assert_eq!(calls[0].dimensions.feature.as_deref(), Some("support"));
    assert_eq!(calls[0].trace_id, Some(trace));
}

#[test]
fn the_span_own_dimension_wins_over_the_ancestor() {
    let (layer, calls) = collecting_layer();
    run_with(layer, true, || {
        let _r =
            tracing::info_span!("job", "user.id" = "batch", "llmtel.tenant" = "acme").entered();
        let call = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
        call.record("user.id", "bob");
    });
    let calls = calls.0.lock().unwrap();
    assert_eq!(calls[0].dimensions.user.as_deref(), Some("bob"));
    assert_eq!(calls[0].dimensions.tenant.as_deref(), Some("acme"));
}

#[test]
fn dimensions_an_outer_span_records_after_it_opens_reach_the_calls_inside_it() {
    // A request span declaring only dimensions, every one recorded after it opened: a
    // string, a Display value and a custom `llmtel.*` name.
    let (layer, calls) = collecting_layer();
    let p = run_with(layer, true, || {
        let request = tracing::info_span!(
            "POST /chat",
            "user.id" = tracing::field::Empty,
            "session.id" = tracing::field::Empty,
            "llmtel.api_key_id" = tracing::field::Empty,
        );
        let _r = request.enter();
        request.record("user.id", "carol");
        request.record("session.id", tracing::field::display("s-42"));
        request.record("llmtel.api_key_id", "key-7");
        assert_eq!(llmtel::current_dimensions().user.as_deref(), Some("carol"));
        let call = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
        llmtel::record_usage(
            &call,
            &Usage {
                input_tokens: 10,
                output_tokens: 1,
                ..Default::default()
            },
        );
    });
    let calls = calls.0.lock().unwrap();
    assert_eq!(calls.len(), 1);
    let dims = &calls[0].dimensions;
    assert_eq!(dims.user.as_deref(), Some("carol"));
    assert_eq!(dims.session.as_deref(), Some("s-42"));
    assert_eq!(
        dims.custom
            .iter()
            .find(|(k, _)| *k == "llmtel.api_key_id")
            .map(|(_, v)| &**v),
        Some("key-7")
    );
    // The exported call span carries them too (the API key id as its fingerprint, never
    // the key).
    let spans = p.spans();
    let llm = spans.iter().find(|s| s.name == "chat gpt-4o-mini").unwrap();
    let key_id = llmtel::redact::fingerprint("key-7");
    for (key, value) in [
        ("user.id", "carol"),
        ("session.id", "s-42"),
        ("llmtel.api_key_id", key_id.as_str()),
    ] {
        assert_eq!(
            attr(llm, key).map(|v| v.as_str().into_owned()).as_deref(),
            Some(value),
            "{key}"
        );
    }
}
