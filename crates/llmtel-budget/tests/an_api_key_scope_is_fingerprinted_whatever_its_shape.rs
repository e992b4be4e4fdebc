//! The value of an API-key scope (`Scope::ApiKey`, `llmtel.api_key_id`) was fingerprinted
//! only when llmtel's redaction took it for a secret: a 32-hex Azure OpenAI key, or any key
//! without a known prefix, was shown as it is in status rows, refusals, alerts and the
//! Prometheus `scope` label. It is now fingerprinted whatever its shape, on every one of
//! these paths.
#![cfg(feature = "prometheus")]

use std::sync::Arc;
use std::time::Duration;

use llmtel::Usd;
use llmtel_budget::{Budgets, CallContext, Estimate, Mode, Period, Rule, Scope};
use llmtel_metrics::PrometheusSink;

/// An Azure OpenAI key: 32 hex digits, no prefix redaction knows.
const AZURE_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn usd(s: &str) -> Usd {
    Usd::parse_decimal(s).expect("usd")
}

fn api_key(k: &str) -> CallContext {
    CallContext::new().with_attribute("llmtel.api_key_id", k)
}

fn assert_fingerprinted(what: &str, text: &str) {
    assert!(!text.contains(AZURE_KEY), "{what} shows the key: {text}");
    assert!(
        text.contains("llmtel.api_key_id=[REDACTED:"),
        "{what} has no fingerprint: {text}"
    );
}

#[test]
fn an_api_key_scope_is_fingerprinted_whatever_its_shape() {
    assert!(
        matches!(llmtel::redact(AZURE_KEY), std::borrow::Cow::Borrowed(_)),
        "the key must be one redaction does not recognise, for this test to mean anything"
    );
    let sink = llmtel_alert::MemorySink::new();
    let alerts = llmtel_alert::AlertDispatcher::builder()
        .with_sink(Arc::new(sink.clone()))
        .build();
    let b = Budgets::builder()
        .with_alerts(alerts.clone())
        .with_rule(
            Rule::new("per-key", Scope::ApiKey, Period::Lifetime)
                .with_limit_usd(usd("1"))
                .with_thresholds(&[50]),
        )
        .build();
    b.record(&api_key(AZURE_KEY), usd("0.95"), 0);

    // Status rows, rendered both ways.
    let rows = b.status().expect("status");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_fingerprinted("status", &rows[0].scope);
    assert_fingerprinted("status table", &llmtel_budget::render_table(&rows));
    assert_fingerprinted("status json", &llmtel_budget::render_json(&rows));
    assert!(!format!("{rows:?}").contains(AZURE_KEY));
    // The same key, the same fingerprint.
    let again = b.status_for(&api_key(AZURE_KEY)).expect("status").remove(0);
    assert_eq!(again.scope, rows[0].scope);

    // The context's `Debug` (an app logging what it reserves for).
    assert!(!format!("{:?}", api_key(AZURE_KEY)).contains(AZURE_KEY));

    // A refusal.
    let refused = b
        .reserve(&api_key(AZURE_KEY), Estimate::new(usd("0.1"), 0))
        .expect_err("over the limit");
    assert_fingerprinted("refusal", &refused.to_string());
    assert!(!format!("{refused:?}").contains(AZURE_KEY));

    // The threshold alert.
    assert!(alerts.flush(Duration::from_secs(5)));
    let got = sink.alerts();
    let alert = got
        .iter()
        .find(|a| a.name == "LlmBudgetThreshold")
        .expect("a threshold alert");
    assert_fingerprinted("alert", &format!("{alert:?}"));
    assert_eq!(alert.labels.get("scope"), Some(&rows[0].scope));

    // The Prometheus gauges' `scope` label.
    let prom = PrometheusSink::default();
    b.register_metrics(&prom);
    let text = prom.encode_openmetrics();
    assert_fingerprinted("gauges", &text);
    assert!(
        text.lines()
            .any(|l| l.starts_with("llm_budget_spent_usd{") && l.contains(&rows[0].scope)),
        "{text}"
    );
}

#[test]
fn a_shared_api_key_budget_names_no_key_and_needs_no_fingerprint() {
    let b = Budgets::builder()
        .with_rule(
            Rule::new("all-keys", Scope::ApiKey, Period::Lifetime)
                .with_mode(Mode::Shared)
                .with_limit_usd(usd("1")),
        )
        .build();
    b.record(&api_key(AZURE_KEY), usd("0.1"), 0);
    let rows = b.status().expect("status");
    assert_eq!(rows[0].scope, "llmtel.api_key_id=*");
}

#[test]
fn an_api_key_rules_values_show_in_debug_only_as_fingerprints() {
    let rule = Rule::new("one-key", Scope::ApiKey, Period::Lifetime)
        .with_values(&[AZURE_KEY])
        .with_limit_usd(usd("1"));
    let shown = format!("{rule:?}");
    assert!(!shown.contains(AZURE_KEY), "{shown}");
    assert!(shown.contains("[REDACTED:"), "{shown}");
    // Other scopes' values are shown as they are.
    let team =
        Rule::new("team", Scope::parse("llmtel.team"), Period::Lifetime).with_values(&["search"]);
    assert!(format!("{team:?}").contains("search"));
}
