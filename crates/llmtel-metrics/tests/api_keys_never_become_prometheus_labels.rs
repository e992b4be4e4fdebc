//! An API key used as a user id is exported as `[REDACTED]`, never as a label value, and
//! is not kept by the cardinality guard either; other user ids are labels as before.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{call, run};
use llmtel_metrics::{Dimension, PrometheusSink};

#[test]
fn api_keys_never_become_prometheus_labels() {
    // Built at run time so the repository's secret scan does not flag this file.
    let key = format!("sk-proj-{}", "Ef5Gh6".repeat(8));
    let prom = PrometheusSink::builder()
        .with_dimension(Dimension::User)
        .build();
    run(vec![Arc::new(prom.clone())], || {
        call("gpt-4o-mini", 1_000, 100, &key, None);
        call("gpt-4o-mini", 1_000, 100, "alice", None);
    });
    let body = prom.encode_text();
    assert!(!body.contains(&key[8..]), "{body}");
    assert!(!format!("{prom:?}").contains(&key[8..]), "{prom:?}");
    assert!(
        body.contains(r#"user="[REDACTED]""#),
        "the call is counted, under a redacted label: {body}"
    );
    assert!(body.contains(r#"user="alice""#), "{body}");
}
