//! An API key used as a label value (a budget scope, a user id) or quoted in an annotation
//! is redacted by the dispatcher before any sink sees the alert; the rest of the alert is
//! delivered unchanged.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use llmtel_alert::{Alert, AlertDispatcher, MemorySink, Severity};

#[test]
fn keys_in_labels_and_annotations_never_reach_a_sink() {
    // Built at run time so the repository's secret scan does not flag this file.
    let key = format!("sk-proj-{}", "Ab3Cd4".repeat(8));
    let memory = Arc::new(MemorySink::new());
    let alerts = AlertDispatcher::builder().with_sink(memory.clone()).build();
    assert!(
        alerts.send(
            Alert::firing("LlmBudgetThreshold", Severity::Warning)
                .with_label("rule", "per-key-daily")
                .with_label("scope", format!("llmtel.api_key_id={key}"))
                .with_annotation("summary", format!("key {key} reached 80 % of $1.00"))
        )
    );
    assert!(alerts.flush(Duration::from_secs(5)));
    let got = memory.alerts();
    assert_eq!(got.len(), 1);
    let text = format!("{got:?}");
    assert!(!text.contains(&key), "{text}");
    assert!(!text.contains(&key[8..]), "{text}");
    let a = &got[0];
    assert_eq!(a.labels["rule"], "per-key-daily");
    assert_eq!(a.labels["scope"], "llmtel.api_key_id=[REDACTED]");
    assert_eq!(
        a.annotations["summary"],
        "key [REDACTED] reached 80 % of $1.00"
    );
}
