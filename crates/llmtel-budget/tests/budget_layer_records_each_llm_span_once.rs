//! `BudgetLayer` after `llmtel::layer()` and before the OpenTelemetry layer: every closed
//! LLM span is recorded once (also when a reservation was bound to it), and the exported
//! span carries `llmtel.budget.rule` and `llmtel.budget.utilization`.

mod support;

use std::time::Duration;

use jiff::tz::TimeZone;
use llmtel_budget::{Budgets, CallContext, Estimate, Period, Rule, Scope};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use support::usd;
use tracing_subscriber::prelude::*;

fn attr(s: &opentelemetry_sdk::trace::SpanData, k: &str) -> Option<opentelemetry::Value> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == k)
        .map(|kv| kv.value.clone())
}

fn run(kind: &str) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let budgets = Budgets::builder()
        .with_store(support::store(kind, "layer"))
        .with_rule(
            Rule::new("per-user-daily", Scope::User, Period::Day(TimeZone::UTC))
                .with_limit_usd(usd("0.01")),
        )
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::layer())
        .with(budgets.layer())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let ctx = CallContext::new().with_user("u-1");
    tracing::subscriber::with_default(subscriber, || {
        // A reserved call: the reservation is bound to the request span.
        let request = tracing::info_span!("request", user.id = "u-1");
        let r = budgets
            .reserve(&ctx, Estimate::new(usd("0.005"), 0))
            .expect("within budget");
        r.bind(&request);
        request.in_scope(|| {
            let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
            // gpt-4o: 1,000 in x $2.50/M + 100 out x $10/M = $0.0035
            llmtel::record_usage(
                &span,
                &llmtel::Usage {
                    input_tokens: 1_000,
                    output_tokens: 100,
                    ..Default::default()
                },
            );
        });
        drop(request);
        // An unreserved call is counted too.
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o", user.id = "u-1");
        llmtel::record_usage(
            &span,
            &llmtel::Usage {
                input_tokens: 1_000,
                output_tokens: 100,
                ..Default::default()
            },
        );
        drop(span);
        // A span without gen_ai fields is not.
        drop(tracing::info_span!("db", user.id = "u-1"));
    });
    assert!(budgets.flush(Duration::from_secs(10)));
    let s = &budgets.status_for(&ctx).expect("status")[0];
    assert_eq!(s.spent, usd("0.007"), "{kind}: two calls, each once");
    assert_eq!(s.reserved, usd("0"), "{kind}: settled by the layer");
    assert_eq!(s.spent_tokens, 2_200);
    assert_eq!(budgets.stats().recorded, 2);
    let spans = exporter.get_finished_spans().expect("spans");
    let llm: Vec<_> = spans
        .iter()
        .filter(|s| s.name.starts_with("chat"))
        .collect();
    assert_eq!(llm.len(), 2);
    for s in &llm {
        assert_eq!(
            attr(s, "llmtel.budget.rule")
                .map(|v| v.to_string())
                .as_deref(),
            Some("per-user-daily"),
            "{kind}: {:?}",
            s.attributes
        );
    }
    if kind == "memory" {
        // In process, the utilization after each call is exact: 35 % then 70 %.
        let u: Vec<f64> = llm
            .iter()
            .map(|s| match attr(s, "llmtel.budget.utilization") {
                Some(opentelemetry::Value::F64(f)) => f,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(
            (u[0] - 0.35).abs() < 1e-9 && (u[1] - 0.70).abs() < 1e-9,
            "{u:?}"
        );
    }
}

#[test]
fn memory_store() {
    run("memory");
}

#[test]
fn sqlite_store() {
    run("sqlite");
}
