//! A scope value that holds a secret (an API key used as `llmtel.api_key_id`) is redacted
//! wherever the budgets show it; two keys both read `llmtel.api_key_id=[REDACTED]`, so
//! `Budgets::status` had two rows of one scope and the Prometheus gauges two series of one
//! label set (Prometheus drops the duplicate samples). Each now shows a fingerprint, stable
//! while the process runs, never the key.
#![cfg(feature = "prometheus")]

use std::collections::HashSet;

use llmtel::Usd;
use llmtel_budget::{Budgets, CallContext, Estimate, Period, Rule, Scope};
use llmtel_metrics::PrometheusSink;

fn usd(s: &str) -> Usd {
    Usd::parse_decimal(s).expect("usd")
}

fn key(c: char) -> String {
    format!("sk-proj-{}", c.to_string().repeat(32))
}

fn api_key(k: &str) -> CallContext {
    CallContext::new().with_attribute("llmtel.api_key_id", k)
}

#[test]
fn two_api_keys_are_two_rows_and_two_series_and_neither_shows_the_key() {
    let b = Budgets::builder()
        .with_rule(Rule::new("per-key", Scope::ApiKey, Period::Lifetime).with_limit_usd(usd("1")))
        .build();
    let (k1, k2) = (key('a'), key('b'));
    b.record(&api_key(&k1), usd("0.1"), 0);
    b.record(&api_key(&k2), usd("0.95"), 0);

    let rows = b.status().expect("status");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let scopes: HashSet<&str> = rows.iter().map(|r| r.scope.as_str()).collect();
    assert_eq!(scopes.len(), 2, "two keys, two scopes: {rows:?}");
    for s in &scopes {
        assert!(s.starts_with("llmtel.api_key_id=[REDACTED:"), "{s}");
        assert!(!s.contains("sk-proj"), "{s}");
    }
    // Stable: the same key shows the same scope in every view.
    let s1 = b.status_for(&api_key(&k1)).expect("status").remove(0);
    let s2 = b.status_for(&api_key(&k2)).expect("status").remove(0);
    assert_eq!((s1.spent, s2.spent), (usd("0.1"), usd("0.95")));
    assert_ne!(s1.scope, s2.scope);
    assert!(scopes.contains(s1.scope.as_str()) && scopes.contains(s2.scope.as_str()));
    let refused = b
        .reserve(&api_key(&k2), Estimate::new(usd("0.1"), 0))
        .expect_err("over the limit");
    assert_eq!(refused.exceeded().expect("exceeded").scope, s2.scope);
    assert!(!refused.to_string().contains("sk-proj"));

    // One series per key in every gauge family, no duplicate label set.
    let sink = PrometheusSink::default();
    b.register_metrics(&sink);
    let text = sink.encode_openmetrics();
    assert!(!text.contains("sk-proj"), "{text}");
    for family in [
        "llm_budget_utilization_ratio",
        "llm_budget_spent_usd",
        "llm_budget_limit_usd",
    ] {
        let series: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix(family)?.strip_prefix('{'))
            .filter_map(|l| l.split_once('}').map(|(labels, _)| labels))
            .collect();
        let distinct: HashSet<&&str> = series.iter().collect();
        assert_eq!(series.len(), 2, "{family}: {text}");
        assert_eq!(
            distinct.len(),
            2,
            "{family}: duplicate label sets in {text}"
        );
    }
    assert!(
        text.lines().any(|l| l.starts_with("llm_budget_spent_usd{")
            && l.contains(&s2.scope)
            && l.ends_with(" 0.95")),
        "{text}"
    );
}

#[test]
fn a_value_with_no_secret_shows_as_it_is() {
    // (An API-key scope's value never does: see
    // `an_api_key_scope_is_fingerprinted_whatever_its_shape`.)
    let b = Budgets::builder()
        .with_rule(
            Rule::new("per-team", Scope::parse("llmtel.team"), Period::Lifetime)
                .with_limit_usd(usd("1")),
        )
        .build();
    b.record(
        &CallContext::new().with_attribute("llmtel.team", "team-search"),
        usd("0.1"),
        0,
    );
    let rows = b.status().expect("status");
    assert_eq!(rows[0].scope, "llmtel.team=team-search");
}

#[test]
fn threshold_alerts_of_two_api_keys_name_two_scopes() {
    use std::sync::Arc;
    use std::time::Duration;
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
    let (k1, k2) = (key('a'), key('b'));
    b.record(&api_key(&k1), usd("0.6"), 0);
    b.record(&api_key(&k2), usd("0.6"), 0);
    assert!(alerts.flush(Duration::from_secs(5)));
    let got = sink.alerts();
    let scopes: HashSet<String> = got
        .iter()
        .filter(|a| a.name == "LlmBudgetThreshold")
        .filter_map(|a| a.labels.get("scope").cloned())
        .collect();
    assert_eq!(scopes.len(), 2, "{got:?}");
    for s in &scopes {
        assert!(s.starts_with("llmtel.api_key_id=[REDACTED:"), "{s}");
    }
    let status: HashSet<String> = b
        .status()
        .expect("status")
        .into_iter()
        .map(|r| r.scope)
        .collect();
    assert_eq!(
        scopes, status,
        "the alerts name the scopes the status shows"
    );
}
