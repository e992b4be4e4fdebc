//! A rule's meters are keyed `name\x1fvalue`: two rules of one name share meters only when
//! their values can meet. `build` renamed every second rule of a name (`daily#2`), so a rule
//! whose keys could never be the other's (`daily` for tenant `a`, `daily` for tenant `b`)
//! moved to new keys and the spend a durable store held under its name was left behind.
//! Only rules whose keys can collide are renamed (or refused by `try_build` and the rules
//! file); they still never charge a call twice.

use std::sync::Arc;

use llmtel::Usd;
use llmtel_budget::{
    BudgetStore, Budgets, CallContext, Config, ConfigError, Estimate, Mode, Period, Rule,
    RuleStatus, Scope, SqliteStore,
};

fn usd(s: &str) -> Usd {
    Usd::parse_decimal(s).expect("usd")
}

fn daily(scope: Scope, values: &[&str]) -> Rule {
    Rule::new("daily", scope, Period::Lifetime)
        .with_values(values)
        .with_limit_usd(usd("1"))
}

fn names(b: &Budgets) -> Vec<&str> {
    b.rules().iter().map(|r| r.name.as_ref()).collect()
}

fn sqlite(path: &std::path::Path, rules: Vec<Rule>) -> Budgets {
    let store: Arc<dyn BudgetStore> = Arc::new(SqliteStore::open(path).expect("open"));
    Budgets::builder()
        .with_store(store)
        .with_rules(rules)
        .build()
}

fn rows_of<'a>(rows: &'a [RuleStatus], scope: &str) -> Vec<&'a RuleStatus> {
    rows.iter().filter(|r| r.scope == scope).collect()
}

#[test]
fn rules_of_one_name_on_tenants_that_never_meet_keep_the_spend_stored_under_it() {
    let dir = std::env::temp_dir().join(format!("llmtel-disjoint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("budget.db");
    let _ = std::fs::remove_file(&path);
    let tenant_b = CallContext::new().with_tenant("b");

    // Before: tenant b's daily budget, $0.80 of $1 spent, in SQLite.
    let before = sqlite(&path, vec![daily(Scope::Tenant, &["b"])]);
    before.record(&tenant_b, usd("0.8"), 0);
    drop(before);

    // After: a rule of the same name for tenant a comes first; tenant b's keeps its name,
    // so its meters (`daily\x1fb`) and the $0.80 they hold.
    let after = sqlite(
        &path,
        vec![daily(Scope::Tenant, &["a"]), daily(Scope::Tenant, &["b"])],
    );
    let err = after
        .reserve(&tenant_b, Estimate::new(usd("0.5"), 0))
        .expect_err("$0.80 + $0.50 is over tenant b's $1");
    assert!(err.to_string().contains("daily"), "{err}");
    let tenant_a = CallContext::new().with_tenant("a");
    after
        .reserve(&tenant_a, Estimate::new(usd("0.5"), 0))
        .expect("tenant a has spent nothing");

    // One row for tenant b, under the rule of its value only (the other `daily` shares
    // the key prefix but never meets b).
    let rows = after.status().expect("status");
    let b_rows = rows_of(&rows, "llmtel.tenant=b");
    assert_eq!(b_rows.len(), 1, "{rows:?}");
    assert_eq!(b_rows[0].rule, "daily");
    assert_eq!(b_rows[0].spent, usd("0.8"));
    assert_eq!(rows_of(&rows, "llmtel.tenant=a").len(), 1, "{rows:?}");
    assert_eq!(names(&after), ["daily", "daily"]);
    assert_eq!(after.stats().rules_adjusted, 0);
    drop(after);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rules_of_one_name_whose_keys_never_meet_are_accepted_as_given() {
    // A shared rule's key is `*`: it never meets a per-value rule limited to other values,
    // whatever the scopes.
    let disjoint = || {
        vec![
            daily(Scope::Tenant, &["a"]),
            daily(Scope::Tenant, &["b", "c"]),
            daily(Scope::Tenant, &[]).with_mode(Mode::Shared),
            daily(Scope::User, &["u-1"]),
        ]
    };
    let b = Budgets::builder().with_rules(disjoint()).build();
    assert_eq!(names(&b), ["daily"; 4]);
    assert_eq!(b.stats().rules_adjusted, 0);
    let t = Budgets::builder()
        .with_rules(disjoint())
        .try_build()
        .expect("keys never meet");
    assert_eq!(names(&t), ["daily"; 4]);

    let toml = "[[rule]]\nname = \"daily\"\nscope = \"tenant\"\nvalues = [\"a\"]\nperiod = \"lifetime\"\nlimit_usd = \"1\"\n\
                [[rule]]\nname = \"daily\"\nscope = \"tenant\"\nvalues = [\"b\"]\nperiod = \"lifetime\"\nlimit_usd = \"1\"\n";
    let cfg = Config::from_toml_str(toml).expect("the rules file accepts them too");
    assert_eq!(cfg.rules.len(), 2);
}

#[test]
fn rules_of_one_name_whose_keys_can_meet_are_still_separated() {
    // Every value meets tenant `a`; a user and a tenant both `b` have one key; two shared
    // (or global) rules are both `*`; a third `daily` for tenant `a` meets the first.
    let cases: Vec<(Vec<Rule>, Vec<&str>)> = vec![
        (
            vec![daily(Scope::User, &[]), daily(Scope::Tenant, &["a"])],
            vec!["daily", "daily#2"],
        ),
        (
            vec![
                daily(Scope::Tenant, &["a", "b"]),
                daily(Scope::User, &["b"]),
            ],
            vec!["daily", "daily#2"],
        ),
        (
            vec![
                daily(Scope::Tenant, &[]).with_mode(Mode::Shared),
                daily(Scope::Global, &[]),
            ],
            vec!["daily", "daily#2"],
        ),
        (
            vec![
                daily(Scope::Tenant, &["a"]),
                daily(Scope::Tenant, &["b"]),
                daily(Scope::Tenant, &["a"]),
            ],
            vec!["daily", "daily", "daily#2"],
        ),
    ];
    for (rules, want) in cases {
        let given: Vec<String> = rules.iter().map(|r| format!("{r:?}")).collect();
        assert!(
            matches!(
                Budgets::builder().with_rules(rules.clone()).try_build(),
                Err(ConfigError::Rule { ref field, .. }) if field == "name"
            ),
            "{given:?}"
        );
        let b = Budgets::builder().with_rules(rules).build();
        assert_eq!(names(&b), want, "{given:?}");
        assert_eq!(b.stats().rules_adjusted, 1, "{given:?}");
    }

    // Separated, each charges the call once: tenant b and user b, $0.40 on each meter.
    let b = Budgets::builder()
        .with_rule(daily(Scope::Tenant, &["b"]))
        .with_rule(daily(Scope::User, &["b"]))
        .build();
    assert_eq!(names(&b), ["daily", "daily#2"]);
    let ctx = CallContext::new().with_tenant("b").with_user("b");
    b.record(&ctx, usd("0.4"), 0);
    let rows = b.status().expect("status");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(r.spent, usd("0.4"), "charged once: {r:?}");
    }
}
