//! The budget gauges on llmtel-metrics' Prometheus endpoint: a real HTTP scrape of the
//! built-in listener (OpenMetrics) finds `llm_budget_utilization_ratio{budget,scope}` (the
//! series the Grafana dashboard reads) and the spent / reserved / limit gauges with the exact
//! values of the spend recorded, for per-value and shared rules, in the SQLite store (the
//! gauges read the store at scrape time, so a second `Budgets` on the same file sees them).
#![cfg(feature = "prometheus")]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use llmtel_budget::{BudgetStore, Budgets, CallContext, Estimate, Mode, Period, Rule, Scope};
use llmtel_metrics::PrometheusSink;
use support::{TestClock, store, usd};

fn rules() -> Vec<Rule> {
    vec![
        Rule::new("per-user-daily", Scope::User, Period::Day(TimeZone::UTC))
            .with_limit_usd(usd("2")),
        Rule::new("all-users", Scope::User, Period::Lifetime)
            .with_mode(Mode::Shared)
            .with_limit_usd(usd("10"))
            .with_limit_tokens(1_000),
    ]
}

fn scrape(sink: &PrometheusSink) -> String {
    let server = sink.serve("127.0.0.1:0").unwrap();
    let body = reqwest::blocking::Client::new()
        .get(format!("http://{}/metrics", server.local_addr()))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .unwrap()
        .text()
        .unwrap();
    drop(server);
    body
}

fn has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing line {line:?} in:\n{text}"
    );
}

#[test]
fn gauges_show_spend_limits_and_utilization() {
    let st: Arc<dyn BudgetStore> = store("sqlite", "gauges");
    let clock = TestClock::at("2025-06-01T10:00:00Z");
    let b = Budgets::builder()
        .with_store(st.clone())
        .with_clock(clock.clock())
        .with_rules(rules())
        .build();
    let alice = CallContext::new().with_user("alice");
    let bob = CallContext::new().with_user("bob");
    b.record(&alice, usd("0.5"), 100);
    b.record(&bob, usd("1.5"), 300);
    // A reservation still held: in reserved, not in spent or utilization.
    let held = b.reserve(&alice, Estimate::new(usd("0.25"), 0)).unwrap();
    assert!(b.flush(Duration::from_secs(10)));

    let sink = PrometheusSink::default();
    b.register_metrics(&sink);
    let text = scrape(&sink);
    has(&text, "# TYPE llm_budget_utilization_ratio gauge");
    has(
        &text,
        r#"llm_budget_utilization_ratio{budget="per-user-daily",scope="user.id=alice"} 0.25"#,
    );
    has(
        &text,
        r#"llm_budget_utilization_ratio{budget="per-user-daily",scope="user.id=bob"} 0.75"#,
    );
    // Shared rule: $2 of $10 = 0.2, 400 of 1,000 tokens = 0.4; the higher one.
    has(
        &text,
        r#"llm_budget_utilization_ratio{budget="all-users",scope="user.id=*"} 0.4"#,
    );
    has(
        &text,
        r#"llm_budget_spent_usd{budget="per-user-daily",scope="user.id=alice"} 0.5"#,
    );
    has(
        &text,
        r#"llm_budget_spent_usd{budget="all-users",scope="user.id=*"} 2.0"#,
    );
    has(
        &text,
        r#"llm_budget_reserved_usd{budget="per-user-daily",scope="user.id=alice"} 0.25"#,
    );
    has(
        &text,
        r#"llm_budget_reserved_usd{budget="per-user-daily",scope="user.id=bob"} 0.0"#,
    );
    has(
        &text,
        r#"llm_budget_limit_usd{budget="per-user-daily",scope="user.id=bob"} 2.0"#,
    );
    has(
        &text,
        r#"llm_budget_spent_tokens{budget="all-users",scope="user.id=*"} 400"#,
    );
    has(
        &text,
        r#"llm_budget_limit_tokens{budget="all-users",scope="user.id=*"} 1000"#,
    );
    assert!(
        !text.contains(r#"llm_budget_limit_tokens{budget="per-user-daily""#),
        "no token limit on that rule"
    );
    has(&text, r#"llm_budget_store_up{store="sqlite"} 1"#);
    has(&text, "llm_budget_series_dropped 0");
    held.release();

    // Another process on the same store: the gauges come from the store, not from memory.
    let other = Budgets::builder()
        .with_store(st)
        .with_clock(clock.clock())
        .with_rules(rules())
        .build();
    let sink2 = PrometheusSink::default();
    other.register_metrics(&sink2);
    let text = scrape(&sink2);
    has(
        &text,
        r#"llm_budget_utilization_ratio{budget="per-user-daily",scope="user.id=bob"} 0.75"#,
    );
    has(
        &text,
        r#"llm_budget_reserved_usd{budget="per-user-daily",scope="user.id=alice"} 0.0"#,
    );

    // The next day the daily budgets start over (the lifetime one does not).
    clock.set("2025-06-02T00:00:00Z");
    let text = sink2.encode_openmetrics();
    has(
        &text,
        r#"llm_budget_utilization_ratio{budget="all-users",scope="user.id=*"} 0.4"#,
    );
    assert!(
        !text.contains(
            r#"llm_budget_utilization_ratio{budget="per-user-daily",scope="user.id=bob"} 0.75"#
        ),
        "{text}"
    );
}

#[test]
fn two_rules_of_one_name_have_a_series_cap_each() {
    // Two `daily` rules on values that never meet are two rules: each may show up to
    // MAX_SERIES_PER_RULE values, not both together.
    let per_rule = llmtel_budget::MAX_SERIES_PER_RULE * 3 / 5;
    let values =
        |prefix: &str| -> Vec<String> { (0..per_rule).map(|i| format!("{prefix}-{i}")).collect() };
    let (a, b) = (values("a"), values("b"));
    let daily = |vs: &[String]| {
        let vs: Vec<&str> = vs.iter().map(String::as_str).collect();
        Rule::new("daily", Scope::User, Period::Lifetime)
            .with_values(&vs)
            .with_limit_usd(usd("10"))
    };
    let budgets = Budgets::builder()
        .with_rules(vec![daily(&a), daily(&b)])
        .build();
    for v in a.iter().chain(&b) {
        budgets.record(&CallContext::new().with_user(v.as_str()), usd("1"), 10);
    }
    assert!(budgets.flush(Duration::from_secs(10)));
    let sink = PrometheusSink::default();
    budgets.register_metrics(&sink);
    let text = sink.encode_openmetrics();
    let series = text
        .lines()
        .filter(|l| l.starts_with(r#"llm_budget_spent_usd{budget="daily","#))
        .count();
    has(&text, "llm_budget_series_dropped 0");
    assert_eq!(series, 2 * per_rule);
}
