//! Values a request controls (user and session ids, tenant, feature, custom `llmtel.*`
//! dimensions, model names, response ids) are kept capped at `MAX_VALUE_BYTES` in every
//! `LlmCall`, whatever their length, and each cap is counted in `health()`.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use tracing_subscriber::prelude::*;

#[derive(Debug, Default)]
struct Keep(Mutex<Vec<llmtel::LlmCall>>);

impl llmtel::CallSink for Keep {
    fn on_call(&self, call: &llmtel::LlmCall) {
        self.0.lock().unwrap().push(call.clone());
    }
}

#[test]
fn megabyte_ids_and_model_names_are_capped_and_counted() {
    let huge = |c: char| c.to_string().repeat(1024 * 1024);
    let (user, session, tenant, feature, custom, model, id) = (
        huge('u'),
        huge('s'),
        huge('t'),
        huge('f'),
        huge('c'),
        huge('m'),
        huge('i'),
    );
    let keep = Arc::new(Keep::default());
    let before = llmtel::health().values_truncated;
    let subscriber = tracing_subscriber::registry().with(llmtel::layer().with_sink(keep.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!(
            "request",
            "user.id" = user.as_str(),
            "session.id" = session.as_str(),
            "llmtel.tenant" = tenant.as_str(),
            "llmtel.feature" = feature.as_str(),
            "llmtel.api_key_id" = custom.as_str(),
        );
        let _r = request.enter();
        let call = llmtel::llm_span!("chat", "openai", &model);
        llmtel::record_response(&call, &id, &model, &["stop"]);
        llmtel::record_usage(
            &call,
            &llmtel::Usage {
                input_tokens: 5,
                output_tokens: 1,
                ..Default::default()
            },
        );
    });
    let calls = keep.0.lock().unwrap();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    let d = &c.dimensions;
    let max = llmtel::MAX_VALUE_BYTES;
    for (what, v) in [
        ("user", d.user.as_deref()),
        ("session", d.session.as_deref()),
        ("tenant", d.tenant.as_deref()),
        ("feature", d.feature.as_deref()),
        ("custom", d.get("llmtel.api_key_id")),
        ("request model", c.request_model.as_deref()),
        ("response model", c.response_model.as_deref()),
        ("response id", c.response_id.as_deref()),
    ] {
        let v = v.unwrap_or_else(|| panic!("{what} kept"));
        assert!(v.len() <= max, "{what}: {} bytes", v.len());
        assert!(v.ends_with(']'), "{what} carries the cap marker: {v}");
    }
    assert!(
        c.name.len() <= max + 16,
        "span name: {} bytes",
        c.name.len()
    );
    assert!(llmtel::health().values_truncated >= before + 8);
}
