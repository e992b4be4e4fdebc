//! A rule's name keys its meters in the store (`name\x1fvalue`): two rules of one name
//! shared their meters, so every call was charged twice and the limit refused at half of
//! it. The builder checked nothing (only the rules file did): `try_build` refuses such
//! rules, and `build`, which cannot fail, renames a duplicate (`daily#2`), counted and
//! warned.

use llmtel::Usd;
use llmtel_budget::{Budgets, CallContext, Config, ConfigError, Estimate, Period, Rule, Scope};

fn usd(s: &str) -> Usd {
    Usd::parse_decimal(s).expect("usd")
}

fn daily() -> Rule {
    Rule::new("daily", Scope::User, Period::Lifetime).with_limit_usd(usd("1"))
}

fn refused_field(rules: Vec<Rule>) -> String {
    match Budgets::builder().with_rules(rules).try_build() {
        Err(ConfigError::Rule { field, .. }) => field,
        Err(e) => panic!("expected a rule error, got {e}"),
        Ok(_) => panic!("expected a refusal"),
    }
}

#[test]
fn two_rules_of_one_name_each_charge_their_own_meter() {
    let b = Budgets::builder()
        .with_rule(daily())
        .with_rule(daily())
        .build();
    assert_eq!(b.rules()[0].name.as_ref(), "daily");
    assert_eq!(b.rules()[1].name.as_ref(), "daily#2");
    assert_eq!(b.stats().rules_adjusted, 1);
    let ctx = CallContext::new().with_user("u-1");
    b.record(&ctx, usd("0.4"), 0);
    let rows = b.status().expect("status");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(r.spent, usd("0.4"), "charged once: {r:?}");
    }
    // $0.40 + $0.50 is within $1 on each rule.
    b.reserve(&ctx, Estimate::new(usd("0.5"), 0))
        .expect("within budget");
}

#[test]
fn a_renamed_duplicate_never_takes_another_rules_name() {
    let b = Budgets::builder()
        .with_rule(daily())
        .with_rule(daily())
        .with_rule(Rule::new("daily#2", Scope::Tenant, Period::Lifetime))
        .build();
    let names: Vec<&str> = b.rules().iter().map(|r| r.name.as_ref()).collect();
    assert_eq!(names, ["daily", "daily#3", "daily#2"]);
    assert_eq!(b.stats().rules_adjusted, 1);
}

#[test]
fn try_build_refuses_what_build_would_have_to_change() {
    assert_eq!(refused_field(vec![daily(), daily()]), "name");
    assert_eq!(
        refused_field(vec![Rule::new("", Scope::User, Period::Lifetime)]),
        "name"
    );
    assert_eq!(
        refused_field(vec![Rule::new("a\u{1f}b", Scope::User, Period::Lifetime)]),
        "name"
    );
    assert_eq!(
        refused_field(vec![daily().with_thresholds(&[0, 50])]),
        "thresholds"
    );
    assert_eq!(
        refused_field(vec![daily().with_thresholds(&[80, 1001])]),
        "thresholds"
    );
    let ok = Budgets::builder()
        .with_rule(daily().with_thresholds(&[1, 1000]))
        .try_build()
        .expect("valid");
    assert_eq!(ok.stats().rules_adjusted, 0);
}

#[test]
fn build_makes_every_rule_usable_and_counts_each_change() {
    let b = Budgets::builder()
        .with_rule(Rule::new("", Scope::User, Period::Lifetime))
        .with_rule(Rule::new("a\u{1f}b", Scope::User, Period::Lifetime))
        .with_rule(daily().with_thresholds(&[0, 50, 2000]))
        .build();
    let names: Vec<&str> = b.rules().iter().map(|r| r.name.as_ref()).collect();
    assert_eq!(names, ["rule", "a_b", "daily"]);
    assert_eq!(b.rules()[2].thresholds, [50]);
    assert_eq!(b.stats().rules_adjusted, 3);
}

#[test]
fn the_rules_file_refuses_the_same() {
    let rule = |name: &str| {
        format!(
            "[[rule]]\nname = \"{name}\"\nscope = \"user\"\nperiod = \"lifetime\"\nlimit_usd = \"1\"\n"
        )
    };
    let dup = Config::from_toml_str(&format!("{}{}", rule("daily"), rule("daily")));
    assert!(
        matches!(dup, Err(ConfigError::Rule { ref rule, ref field, .. }) if rule == "daily" && field == "name"),
        "{dup:?}"
    );
    let empty = Config::from_toml_str(&rule(""));
    assert!(
        matches!(empty, Err(ConfigError::Rule { ref field, .. }) if field == "name"),
        "{empty:?}"
    );
    let sep = Config::from_toml_str(&rule("a\\u001fb"));
    assert!(
        matches!(sep, Err(ConfigError::Rule { ref field, .. }) if field == "name"),
        "{sep:?}"
    );
}
