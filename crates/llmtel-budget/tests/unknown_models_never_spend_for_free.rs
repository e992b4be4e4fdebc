//! A USD rule with a $1 limit and calls to a model the price catalog does not know: each
//! `on_unpriced` policy is applied on reserve (`Estimate::for_model`) and on settle (the
//! `BudgetLayer`, an LLM span with no cost): refused with an error that says what to do /
//! charged the fallback price exactly / allowed and counted. Each is counted, flagged on the
//! span and alerted once per model.

mod support;

use std::sync::Arc;
use std::time::Duration;

use llmtel_alert::{AlertDispatcher, MemorySink};
use llmtel_budget::{
    Budgets, CallContext, Config, Estimate, Period, ReserveError, Rule, Scope, Unpriced,
};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use support::usd;
use tracing_subscriber::prelude::*;

/// Not in the built-in catalog, nor near anything in it.
const MODEL: &str = "acme-finetune-zz9-private";

fn day() -> jiff::civil::Date {
    jiff::civil::date(2025, 6, 1)
}

fn rule(policy: Unpriced) -> Rule {
    Rule::new("per-user", Scope::User, Period::Lifetime)
        .with_limit_usd(usd("1"))
        .with_on_unpriced(policy)
}

fn budgets(policy: Unpriced, kind: &str, sink: &MemorySink) -> (Budgets, AlertDispatcher) {
    let alerts = AlertDispatcher::builder()
        .with_sink(Arc::new(sink.clone()))
        .build();
    let b = Budgets::builder()
        .with_store(support::store(kind, "unpriced"))
        .with_rule(rule(policy))
        .with_alerts(alerts.clone())
        .build();
    (b, alerts)
}

fn ctx() -> CallContext {
    CallContext::new().with_user("u-1").with_model(MODEL)
}

/// `input` in, `output` out of the unknown model, as the catalog prices it (not at all).
fn estimate(input: u64, output: u64) -> Estimate {
    Estimate::for_model(
        llmtel::Catalog::builtin(),
        MODEL,
        None,
        input,
        output,
        day(),
    )
    .expect("an unknown model is an estimate with no price, not an error")
}

fn unpriced_alerts(sink: &MemorySink, alerts: &AlertDispatcher) -> usize {
    assert!(alerts.flush(Duration::from_secs(5)));
    sink.alerts()
        .iter()
        .filter(|a| a.name == "LlmBudgetUnpricedModel")
        .inspect(|a| assert_eq!(a.labels.get("model").map(String::as_str), Some(MODEL)))
        .count()
}

#[test]
fn the_default_policy_refuses_an_unknown_model_under_a_usd_limit() {
    assert_eq!(
        Rule::new("r", Scope::User, Period::Lifetime).on_unpriced,
        Unpriced::Refuse
    );
    for kind in ["memory", "sqlite", "redis"] {
        let sink = MemorySink::new();
        let (b, alerts) = budgets(Unpriced::default(), kind, &sink);
        let e = estimate(1_000, 100);
        assert_eq!(e.usd, llmtel::Usd::ZERO);
        assert!(e.unpriced.is_some());
        for _ in 0..3 {
            let err = b.reserve(&ctx(), e).expect_err("refused: no price");
            match &err {
                ReserveError::Unpriced { rule, model } => {
                    assert_eq!(rule, "per-user");
                    assert_eq!(model, MODEL);
                }
                other => panic!("{kind}: expected Unpriced, got {other:?}"),
            }
            let text = err.to_string();
            assert!(text.contains(MODEL), "{text}");
            assert!(
                text.contains("Catalog::insert") && text.contains("on_unpriced"),
                "{text}"
            );
        }
        let s = b.stats();
        assert_eq!(s.unpriced_refused, 3, "{kind}: {s:?}");
        assert_eq!(s.admitted, 0, "{kind}");
        assert_eq!(
            unpriced_alerts(&sink, &alerts),
            1,
            "{kind}: one alert per model"
        );
        // A known model is unaffected.
        let known = Estimate::for_model(
            llmtel::Catalog::builtin(),
            "gpt-4o",
            None,
            1_000,
            100,
            day(),
        )
        .expect("known");
        b.reserve(&ctx().with_model("gpt-4o"), known)
            .expect("priced");
    }
}

#[test]
fn the_fallback_policy_reserves_and_settles_at_the_fallback_price_exactly() {
    for kind in ["memory", "sqlite", "redis"] {
        let sink = MemorySink::new();
        let (b, alerts) = budgets(
            Unpriced::Fallback {
                input_per_million: usd("2"),
                output_per_million: usd("10"),
            },
            kind,
            &sink,
        );
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(llmtel::layer())
            .with(b.layer())
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            // 100,000 in x $2/M + 50,000 out x $10/M = $0.70 held.
            let r = b
                .reserve(&ctx(), estimate(100_000, 50_000))
                .expect("fallback");
            b.flush(Duration::from_secs(5));
            let s = &b.status_for(&ctx()).expect("status")[0];
            assert_eq!(s.reserved, usd("0.7"), "{kind}");
            // Settled by the layer from a span with no cost: 100,000 x $2/M + 20,000 x $10/M.
            let span = llmtel::llm_span!("chat", "acme", MODEL, user.id = "u-1");
            r.bind(&span);
            llmtel::record_usage(
                &span,
                &llmtel::Usage {
                    input_tokens: 100_000,
                    output_tokens: 20_000,
                    ..Default::default()
                },
            );
            drop(span);
        });
        assert!(b.flush(Duration::from_secs(10)));
        let s = &b.status_for(&ctx()).expect("status")[0];
        assert_eq!(
            s.spent,
            usd("0.4"),
            "{kind}: charged the fallback price exactly"
        );
        assert_eq!(s.reserved, usd("0"), "{kind}");
        assert_eq!(s.spent_tokens, 120_000);
        // $0.40 spent + $0.70 > $1: the next such call is refused by the limit.
        let err = b
            .reserve(&ctx(), estimate(100_000, 50_000))
            .expect_err("over $1");
        assert!(err.exceeded().is_some(), "{kind}: {err:?}");
        let st = b.stats();
        assert_eq!(st.unpriced_admitted, 1, "{kind}: {st:?}");
        assert_eq!(st.unpriced_recorded, 1, "{kind}: {st:?}");
        assert_eq!(unpriced_alerts(&sink, &alerts), 1, "{kind}");
        let spans = exporter.get_finished_spans().expect("spans");
        let llm = spans
            .iter()
            .find(|s| s.name.contains("chat"))
            .expect("llm span");
        let flag = llm
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == llmtel::semconv::llmtel::BUDGET_UNPRICED)
            .map(|kv| kv.value.clone());
        assert_eq!(flag, Some(opentelemetry::Value::Bool(true)), "{kind}");
    }
}

#[test]
fn the_allow_policy_lets_the_call_through_and_counts_it() {
    for kind in ["memory", "sqlite", "redis"] {
        let sink = MemorySink::new();
        let (b, alerts) = budgets(Unpriced::Allow, kind, &sink);
        for _ in 0..4 {
            let r = b
                .reserve(&ctx(), estimate(1_000_000, 1_000_000))
                .expect("allowed");
            assert!(r.is_enforced());
            r.settle(llmtel::Usd::ZERO, 2_000_000);
        }
        b.record_unpriced(&ctx(), 10, 10);
        assert!(b.flush(Duration::from_secs(10)));
        let st = b.stats();
        assert_eq!(st.unpriced_admitted, 4, "{kind}: {st:?}");
        // The four settled reservations and the recorded call: each at $0, counted.
        assert_eq!(st.unpriced_recorded, 5, "{kind}: {st:?}");
        let s = &b.status_for(&ctx()).expect("status")[0];
        assert_eq!(s.spent, usd("0"), "{kind}");
        assert_eq!(unpriced_alerts(&sink, &alerts), 1, "{kind}");
    }
}

#[test]
fn the_policy_is_read_from_the_rules_file_and_bad_policies_say_what_to_write() {
    let cfg = Config::from_toml_str(
        r#"
        [[rule]]
        name = "a"
        scope = "user"
        period = "lifetime"
        limit_usd = "1"
        on_unpriced = "fallback"
        fallback_usd_per_million_input = "2.50"
        fallback_usd_per_million_output = "10"

        [[rule]]
        name = "b"
        scope = "user"
        period = "lifetime"
        limit_usd = "1"
        on_unpriced = "allow"

        [[rule]]
        name = "c"
        scope = "user"
        period = "lifetime"
        limit_usd = "1"
    "#,
    )
    .expect("config");
    assert_eq!(
        cfg.rules[0].on_unpriced,
        Unpriced::Fallback {
            input_per_million: usd("2.5"),
            output_per_million: usd("10"),
        }
    );
    assert_eq!(cfg.rules[1].on_unpriced, Unpriced::Allow);
    assert_eq!(cfg.rules[2].on_unpriced, Unpriced::Refuse);
    for (extra, expect) in [
        ("on_unpriced = \"free\"", "expected \"refuse\""),
        ("on_unpriced = \"fallback\"", "needs both"),
        ("fallback_usd_per_million_input = \"1\"", "needs both"),
        (
            "on_unpriced = \"allow\"\nfallback_usd_per_million_input = \"1\"\nfallback_usd_per_million_output = \"1\"",
            "takes no fallback price",
        ),
        (
            "on_unpriced = \"fallback\"\nfallback_usd_per_million_input = \"x\"\nfallback_usd_per_million_output = \"1\"",
            "not an amount",
        ),
    ] {
        let src = format!(
            "[[rule]]\nname = \"r\"\nscope = \"user\"\nperiod = \"lifetime\"\nlimit_usd = \"1\"\n{extra}\n"
        );
        let err = Config::from_toml_str(&src).expect_err(extra).to_string();
        assert!(err.contains(expect), "{extra}: {err}");
    }
}

#[test]
fn a_known_model_whose_call_recorded_no_usage_is_not_unpriced() {
    let sink = MemorySink::new();
    let (b, alerts) = budgets(Unpriced::default(), "memory", &sink);
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::layer())
        .with(b.layer());
    tracing::subscriber::with_default(subscriber, || {
        // A failed call to a priced model: no usage, so no cost, but a price exists.
        drop(llmtel::llm_span!(
            "chat",
            "openai",
            "gpt-4o",
            user.id = "u-1"
        ));
        // The unknown model with usage: unpriced, recorded at $0 under `refuse`.
        let span = llmtel::llm_span!("chat", "acme", MODEL, user.id = "u-1");
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 10,
                output_tokens: 10,
                ..Default::default()
            },
        );
        drop(span);
    });
    let s = b.stats();
    assert_eq!(s.recorded, 2, "{s:?}");
    assert_eq!(s.unpriced_recorded, 1, "only the unknown model: {s:?}");
    assert_eq!(unpriced_alerts(&sink, &alerts), 1);
}

#[test]
fn a_usd_rule_applying_only_through_the_reservation_charges_its_fallback_price() {
    // The tenant is given to the pre-flight only (`BudgetPreflight::with_context`): the
    // LLM span carries no tenant, so only the reservation's meter ties the call to the
    // tenant's USD rule. Its fallback price applies to the call's tokens all the same.
    let sink = MemorySink::new();
    let alerts = AlertDispatcher::builder()
        .with_sink(Arc::new(sink.clone()))
        .build();
    let b = Budgets::builder()
        .with_rule(
            Rule::new("per-tenant", Scope::Tenant, Period::Lifetime)
                .with_limit_usd(usd("1"))
                .with_on_unpriced(Unpriced::Fallback {
                    input_per_million: usd("2"),
                    output_per_million: usd("10"),
                }),
        )
        .with_alerts(alerts.clone())
        .build();
    let tenant = CallContext::new().with_tenant("acme").with_model(MODEL);
    let (dispatch, exporter, _provider) = support::exporting_with_budget_sink(&b);
    tracing::dispatcher::with_default(&dispatch, || {
        let span = llmtel::llm_span!("chat", "acme", MODEL);
        b.reserve(&tenant, estimate(100_000, 50_000))
            .expect("fallback")
            .bind(&span);
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 100_000,
                output_tokens: 20_000,
                ..Default::default()
            },
        );
    });
    assert!(b.flush(Duration::from_secs(10)));
    let s = &b.status_for(&tenant).expect("status")[0];
    // 100,000 x $2/M + 20,000 x $10/M, not $0.
    assert_eq!(s.spent, usd("0.4"), "{s:?}");
    assert_eq!(s.reserved, usd("0"), "{s:?}");
    let st = b.stats();
    assert_eq!(st.unpriced_recorded, 1, "{st:?}");
    assert_eq!(unpriced_alerts(&sink, &alerts), 1);
    let spans = exporter.get_finished_spans().expect("spans");
    let flag = spans
        .iter()
        .find(|s| s.name.contains("chat"))
        .expect("llm span")
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == llmtel::semconv::llmtel::BUDGET_UNPRICED)
        .map(|kv| kv.value.clone());
    assert_eq!(flag, Some(opentelemetry::Value::Bool(true)));
}

#[test]
fn a_reservation_settled_by_hand_is_charged_its_fallback_price() {
    for kind in ["memory", "sqlite", "redis"] {
        let sink = MemorySink::new();
        let (b, alerts) = budgets(
            Unpriced::Fallback {
                input_per_million: usd("2"),
                output_per_million: usd("10"),
            },
            kind,
            &sink,
        );
        // The cost is unknown: settled at $0 with the call's 120,000 tokens, taken as the
        // estimate's 100,000 input tokens first and the rest as output:
        // 100,000 x $2/M + 20,000 x $10/M = $0.40.
        let r = b
            .reserve(&ctx(), estimate(100_000, 50_000))
            .expect("fallback");
        r.settle(llmtel::Usd::ZERO, 120_000);
        assert!(b.flush(Duration::from_secs(10)));
        let s = &b.status_for(&ctx()).expect("status")[0];
        assert_eq!(s.spent, usd("0.4"), "{kind}: {s:?}");
        assert_eq!(s.spent_tokens, 120_000, "{kind}");
        assert_eq!(s.reserved, usd("0"), "{kind}");
        assert_eq!(b.stats().unpriced_recorded, 1, "{kind}");
        // With the exact counts: 90,000 x $2/M + 30,000 x $10/M = $0.48.
        let r = b
            .reserve(&ctx(), estimate(90_000, 30_000))
            .expect("fallback");
        r.settle_unpriced(90_000, 30_000);
        assert!(b.flush(Duration::from_secs(10)));
        let s = &b.status_for(&ctx()).expect("status")[0];
        assert_eq!(s.spent, usd("0.88"), "{kind}: {s:?}");
        assert_eq!(s.spent_tokens, 240_000, "{kind}");
        assert_eq!(b.stats().unpriced_recorded, 2, "{kind}");
        // Fewer tokens than the prompt estimate: all input. 50,000 x $2/M = $0.10.
        let r = b.reserve(&ctx(), estimate(55_000, 500)).expect("fallback");
        r.settle(llmtel::Usd::ZERO, 50_000);
        assert!(b.flush(Duration::from_secs(10)));
        assert_eq!(
            b.status_for(&ctx()).expect("status")[0].spent,
            usd("0.98"),
            "{kind}"
        );
        // Alerted once, when the first reservation was made.
        assert_eq!(unpriced_alerts(&sink, &alerts), 1, "{kind}");
    }
}

#[test]
fn a_priced_reservation_settled_at_zero_stays_at_zero() {
    // A model priced at zero in the catalog is not "unpriced": nothing is charged.
    let sink = MemorySink::new();
    let (b, _alerts) = budgets(
        Unpriced::Fallback {
            input_per_million: usd("2"),
            output_per_million: usd("10"),
        },
        "memory",
        &sink,
    );
    let r = b
        .reserve(&ctx(), Estimate::new(llmtel::Usd::ZERO, 1_000))
        .expect("zero-priced");
    r.settle(llmtel::Usd::ZERO, 1_000);
    let s = &b.status_for(&ctx()).expect("status")[0];
    assert_eq!(s.spent, usd("0"), "{s:?}");
    assert_eq!(s.spent_tokens, 1_000);
    assert_eq!(b.stats().unpriced_recorded, 0);
}
