//! A rule whose values can never match a call was accepted and then silently never
//! applied: a value longer than 256 bytes (every call value is capped at that length
//! before it is matched) and a global rule given values (its value is always `*`).
//! `try_build` and the rules file refuse them with an error naming the rule and what to
//! do; `build` makes them usable (and counts it).

use llmtel::Usd;
use llmtel_budget::{Budgets, CallContext, Config, ConfigError, Estimate, Period, Rule, Scope};

fn usd(s: &str) -> Usd {
    Usd::parse_decimal(s).expect("usd")
}

fn long_value() -> String {
    format!("tenant-{}", "x".repeat(300))
}

fn values_error(e: &ConfigError, rule: &str, says: &str) {
    match e {
        ConfigError::Rule {
            rule: r,
            field,
            message,
        } => {
            assert_eq!(r, rule, "{e}");
            assert_eq!(field, "values", "{e}");
            assert!(message.contains(says), "{e}");
        }
        other => panic!("expected a rule error, got {other:?}"),
    }
    assert!(e.to_string().contains(rule), "{e}");
}

#[test]
fn try_build_refuses_a_value_longer_than_a_call_value_can_be() {
    let long = long_value();
    let e = Budgets::builder()
        .with_rule(
            Rule::new("big-tenant", Scope::Tenant, Period::Lifetime)
                .with_values(&["acme", &long])
                .with_limit_usd(usd("1")),
        )
        .try_build()
        .expect_err("a value that never matches is refused");
    values_error(
        &e,
        "big-tenant",
        "write the capped form, `llmtel::cap_value(value)`",
    );
    assert!(e.to_string().contains("value #2"), "{e}");
    // Not the value itself (it may be a key): its position and length.
    assert!(!e.to_string().contains(&long), "{e}");
    // 256 bytes is still a value a call can have.
    Budgets::builder()
        .with_rule(
            Rule::new("big-tenant", Scope::Tenant, Period::Lifetime)
                .with_values(&[&"y".repeat(256)]),
        )
        .try_build()
        .expect("256 bytes is accepted");
}

#[test]
fn try_build_refuses_a_global_rule_given_values() {
    let e = Budgets::builder()
        .with_rule(
            Rule::new("all", Scope::Global, Period::Lifetime)
                .with_values(&["acme"])
                .with_limit_usd(usd("1")),
        )
        .try_build()
        .expect_err("a global rule with values never applies");
    values_error(
        &e,
        "all",
        "remove `values`, or give the rule a per-value scope",
    );
}

#[test]
fn the_rules_file_refuses_rules_that_could_never_apply() {
    let long = long_value();
    let e = Config::from_toml_str(&format!(
        "[[rule]]\nname = \"big-tenant\"\nscope = \"tenant\"\nperiod = \"day\"\nvalues = [\"{long}\"]\nlimit_usd = \"1\"\n"
    ))
    .expect_err("a value that never matches is refused");
    values_error(
        &e,
        "big-tenant",
        "write the capped form, `llmtel::cap_value(value)`",
    );
    let e = Config::from_toml_str(
        "[[rule]]\nname = \"all\"\nscope = \"global\"\nperiod = \"day\"\nvalues = [\"acme\"]\nlimit_usd = \"1\"\n",
    )
    .expect_err("a global rule with values never applies");
    values_error(
        &e,
        "all",
        "remove `values`, or give the rule a per-value scope",
    );
}

#[test]
fn build_makes_such_rules_apply_and_counts_them() {
    let long = long_value();
    let b = Budgets::builder()
        .with_rule(
            Rule::new("big-tenant", Scope::Tenant, Period::Lifetime)
                .with_values(&[&long])
                .with_limit_usd(usd("1")),
        )
        .with_rule(
            Rule::new("all", Scope::Global, Period::Lifetime)
                .with_values(&["acme"])
                .with_limit_usd(usd("5")),
        )
        .build();
    assert_eq!(b.stats().rules_adjusted, 2);
    // The long value matches the (capped) call value it names.
    let ctx = CallContext::new().with_tenant(long.clone());
    let e = b
        .reserve(&ctx, Estimate::new(usd("2"), 0))
        .expect_err("the tenant's $1 limit applies");
    assert_eq!(e.exceeded().expect("exceeded").rule, "big-tenant");
    // The global rule applies to every call.
    let e = b
        .reserve(&CallContext::new(), Estimate::new(usd("6"), 0))
        .expect_err("the global $5 limit applies");
    assert_eq!(e.exceeded().expect("exceeded").rule, "all");
}
