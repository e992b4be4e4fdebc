//! A per-model rule is on the model the request names (`gen_ai.request.model`), for
//! reservations and recorded calls alike. The provider answers with a dated snapshot
//! (`gpt-4o-2024-08-06`); spend recorded without a reservation (a second call in a request
//! whose reservation is already settled, a service without a pre-flight, the collector)
//! must land on the `gpt-4o` meter the pre-flight checks, or that limit never refuses.

use llmtel::Usd;
use llmtel_budget::{Budgets, CallContext, Estimate, Period, ReserveError, Rule, Scope};
use tracing_subscriber::prelude::*;

fn usd(s: &str) -> Usd {
    Usd::parse_decimal(s).expect("usd")
}

#[test]
fn spend_recorded_without_a_reservation_counts_against_the_request_models_limit() {
    let budgets = Budgets::builder()
        .with_rule(
            Rule::new("gpt-4o-lifetime", Scope::Model, Period::Lifetime)
                .with_values(&["gpt-4o"])
                .with_limit_usd(usd("2")),
        )
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::layer())
        .with(budgets.layer());
    tracing::subscriber::with_default(subscriber, || {
        // No reservation: recorded by the layer when the span closes.
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        llmtel::record_response(&span, "chatcmpl-1", "gpt-4o-2024-08-06", &["stop"]);
        // gpt-4o-2024-08-06: 800,000 in x $2.50/M = $2.00
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 800_000,
                output_tokens: 0,
                ..Default::default()
            },
        );
    });
    assert_eq!(budgets.stats().recorded, 1);
    let requested = CallContext::new().with_model("gpt-4o");
    let rows = budgets.status_for(&requested).expect("status");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].spent, usd("2"), "the gpt-4o meter: {rows:?}");
    assert_eq!(rows[0].scope, "gen_ai.request.model=gpt-4o");
    // The limit is spent: the next pre-flight on gpt-4o is refused.
    match budgets.reserve(&requested, Estimate::new(usd("0.01"), 0)) {
        Err(ReserveError::Exceeded(e)) => assert_eq!(e.spent, usd("2"), "{e:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The whole status lists the one gpt-4o row, no separate dated meter.
    let all = budgets.status().expect("status");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].spent, usd("2"), "{all:?}");
}

#[test]
fn a_recorded_call_with_no_request_model_is_matched_by_its_response_model() {
    let budgets = Budgets::builder()
        .with_rule(Rule::new("per-model", Scope::Model, Period::Lifetime).with_limit_usd(usd("10")))
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::layer())
        .with(budgets.layer());
    tracing::subscriber::with_default(subscriber, || {
        let span = llmtel::llm_span!("chat", "openai", "");
        llmtel::record_response(&span, "chatcmpl-1", "gpt-4o-2024-08-06", &["stop"]);
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 400_000,
                output_tokens: 0,
                ..Default::default()
            },
        );
    });
    let dated = CallContext::new().with_model("gpt-4o-2024-08-06");
    let rows = budgets.status_for(&dated).expect("status");
    assert_eq!(rows[0].spent, usd("1"), "{rows:?}");
}
