//! Issue #15: the collector accounts budgets from span attributes. Priced spans from two
//! services (two resources, any language) for the same user land in one budget with the
//! library's rules and store; a span scoped by a custom attribute counts under its rule; a
//! downstream that refuses everything does not stop spend from being counted; a span read the
//! way the stage prices it (only the older `gen_ai.system`, counts sent as doubles) is
//! charged to its provider's rule with its tokens; a budgets file that cannot be used is a
//! clear error.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use jiff::tz::TimeZone;
use llmtel_budget::{Budgets, CallContext, Period, Rule, Scope};
use llmtel_collector::Collector;
use llmtel_pricing::{Catalog, Usage};

fn cost(input: u64, output: u64) -> llmtel::Usd {
    let today = jiff::Timestamp::now().to_zoned(TimeZone::UTC).date();
    Catalog::builtin()
        .price("gpt-4o", Some("openai"), &Usage::new(input, output), today)
        .unwrap()
        .breakdown
        .total
}

fn call(
    user: &str,
    team: &str,
    input: i64,
    output: i64,
) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.provider.name", "openai"),
        s("gen_ai.request.model", "gpt-4o"),
        s("user.id", user),
        s("llmtel.team", team),
        i("gen_ai.usage.input_tokens", input),
        i("gen_ai.usage.output_tokens", output),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_of_two_services_lands_in_one_budget_even_when_the_downstream_refuses() {
    // A downstream that is not there: every forward fails (and is retried briefly).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let budgets = Budgets::builder()
        .with_rule(
            Rule::new("per-user-daily", Scope::User, Period::Day(TimeZone::UTC))
                .with_limit_usd(llmtel::Usd::parse_decimal("10").unwrap()),
        )
        .with_rule(
            Rule::new(
                "per-team-daily",
                Scope::parse("llmtel.team"),
                Period::Day(TimeZone::UTC),
            )
            .with_limit_usd(llmtel::Usd::parse_decimal("10").unwrap()),
        )
        .build();
    let collector = Collector::start(
        config(dead)
            .with_retry_for(Duration::from_millis(200))
            .with_budgets(budgets.clone()),
    )
    .await
    .unwrap();

    post_protobuf(
        &collector,
        request(
            "python-api",
            1,
            vec![("chat a".into(), call("u-1", "search", 1_000, 200))],
        ),
    )
    .await;
    post_protobuf(
        &collector,
        request(
            "ts-web",
            2,
            vec![("chat b".into(), call("u-1", "search", 3_000, 100))],
        ),
    )
    .await;
    post_protobuf(
        &collector,
        request(
            "ts-web",
            3,
            vec![("not an llm call".into(), vec![s("http.route", "/x")])],
        ),
    )
    .await;

    wait_until("3 spans leave the queue", || {
        collector.stats().queue_depth == 0 && collector.stats().dropped_export_failed == 3
    })
    .await;
    assert!(budgets.flush(Duration::from_secs(10)));
    let want = cost(1_000, 200).saturating_add(cost(3_000, 100));
    let user = &budgets
        .status_for(&CallContext::new().with_user("u-1"))
        .unwrap()[0];
    assert_eq!(user.spent, want, "both services' calls, once each");
    assert_eq!(user.spent_tokens, 4_300);
    let team = budgets
        .status_for(&CallContext::new().with_attribute("llmtel.team", "search"))
        .unwrap();
    let team = team.iter().find(|r| r.rule == "per-team-daily").unwrap();
    assert_eq!(
        team.spent, want,
        "the custom attribute's rule counts them too"
    );
    let stats = collector.stats();
    assert_eq!(stats.budgeted, 2, "{stats:?}");
    assert!(
        metrics(collector.metrics_addr())
            .await
            .contains("llmtel_collector_spans_budgeted_total 2\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_naming_only_gen_ai_system_with_double_counts_is_charged_to_its_provider() {
    let (_receiver, downstream, _task) = Receiver::start().await;
    let budgets = Budgets::builder()
        .with_rule(
            Rule::new("openai-daily", Scope::Provider, Period::Day(TimeZone::UTC))
                .with_limit_tokens(1_000_000),
        )
        .build();
    let collector = Collector::start(config(downstream).with_budgets(budgets.clone()))
        .await
        .unwrap();
    // What OpenLLMetry / OpenLIT send: the provider only as `gen_ai.system`, and (from a
    // JavaScript SDK) the counts as doubles.
    let attributes = vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.system", "openai"),
        s("gen_ai.request.model", "gpt-4o"),
        kv(
            "gen_ai.usage.input_tokens",
            opentelemetry_proto::tonic::common::v1::any_value::Value::DoubleValue(1_000.0),
        ),
        kv(
            "gen_ai.usage.output_tokens",
            opentelemetry_proto::tonic::common::v1::any_value::Value::DoubleValue(200.0),
        ),
    ];
    post_protobuf(
        &collector,
        request("node-api", 1, vec![("chat".into(), attributes)]),
    )
    .await;
    wait_until("the span is forwarded", || collector.stats().forwarded == 1).await;
    assert!(budgets.flush(Duration::from_secs(10)));
    let status = budgets
        .status_for(&CallContext::new().with_provider("openai"))
        .unwrap();
    let rule = status.iter().find(|r| r.rule == "openai-daily").unwrap();
    assert_eq!(
        rule.spent,
        cost(1_000, 200),
        "charged to the provider's rule"
    );
    assert_eq!(rule.spent_tokens, 1_200, "with the tokens the stage priced");
    assert_eq!(collector.stats().budgeted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_the_app_reported_is_charged_exactly_however_it_was_sent() {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let (_receiver, downstream, _task) = Receiver::start().await;
    let budgets = Budgets::builder()
        .with_rule(
            Rule::new("per-user-daily", Scope::User, Period::Day(TimeZone::UTC))
                .with_limit_usd(llmtel::Usd::parse_decimal("100").unwrap()),
        )
        .build();
    let collector = Collector::start(config(downstream).with_budgets(budgets.clone()))
        .await
        .unwrap();
    // The cost an app (any language) computed: as a string, as an integer, and as
    // `llmtel.cost.reported` without `gen_ai.usage.cost`.
    let reported = |user: &str, cost: (&str, Value), source: bool| {
        let mut a = call(user, "search", 1_000, 200);
        a.push(kv(cost.0, cost.1));
        if source {
            a.push(s("llmtel.cost.source", "app"));
        }
        a
    };
    let spans = vec![
        (
            "string cost".to_owned(),
            reported(
                "u-string",
                ("gen_ai.usage.cost", Value::StringValue("0.0042".into())),
                true,
            ),
        ),
        (
            "integer cost".to_owned(),
            reported("u-int", ("gen_ai.usage.cost", Value::IntValue(2)), true),
        ),
        (
            "reported cost".to_owned(),
            reported(
                "u-reported",
                ("llmtel.cost.reported", Value::DoubleValue(0.01)),
                false,
            ),
        ),
    ];
    post_protobuf(&collector, request("go-api", 7, spans)).await;
    wait_until("the spans are forwarded", || {
        collector.stats().forwarded == 3
    })
    .await;
    assert!(budgets.flush(Duration::from_secs(10)));
    for (user, want) in [
        ("u-string", "0.0042"),
        ("u-int", "2"),
        ("u-reported", "0.01"),
    ] {
        let status = budgets
            .status_for(&CallContext::new().with_user(user))
            .unwrap();
        assert_eq!(
            status[0].spent,
            llmtel::Usd::parse_decimal(want).unwrap(),
            "{user}: charged the cost the app reported, exactly"
        );
        assert_eq!(status[0].spent_tokens, 1_200, "{user}");
    }
    let stats = collector.stats();
    assert_eq!(stats.budgeted, 3, "{stats:?}");
    assert_eq!((stats.priced, stats.unpriced), (3, 0), "{stats:?}");
}

#[test]
fn a_budgets_file_that_cannot_be_used_is_a_clear_error() {
    let err =
        llmtel_collector::Config::from_toml("budgets = \"/no/such/budgets.toml\"\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/no/such/budgets.toml"), "{msg}");
    assert!(msg.contains("budgets"), "{msg}");
}

/// A per-model rule is on the model the request names (`gen_ai.request.model`), as
/// llmtel-budget scopes it for the library's layer and pre-flight: an Azure OpenAI
/// deployment named in the request and answered as the dated snapshot it runs, priced by
/// that snapshot, is charged to the deployment's meter, not to the model it was priced as.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_answered_by_a_dated_model_is_charged_under_the_request_models_rule() {
    let (_receiver, downstream, _task) = Receiver::start().await;
    let budgets = Budgets::builder()
        .with_rule(
            Rule::new("prod-chat-daily", Scope::Model, Period::Day(TimeZone::UTC))
                .with_values(&["prod-chat"])
                .with_limit_usd(llmtel::Usd::parse_decimal("10").unwrap()),
        )
        .build();
    let collector = Collector::start(config(downstream).with_budgets(budgets.clone()))
        .await
        .unwrap();
    let attributes = vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.provider.name", "openai"),
        s("gen_ai.request.model", "prod-chat"),
        s("gen_ai.response.model", "gpt-4o-2024-08-06"),
        s("user.id", "u-1"),
        i("gen_ai.usage.input_tokens", 1_000),
        i("gen_ai.usage.output_tokens", 200),
    ];
    post_protobuf(
        &collector,
        request("python-api", 1, vec![("chat".into(), attributes)]),
    )
    .await;
    wait_until("the span is forwarded", || collector.stats().forwarded == 1).await;
    assert!(budgets.flush(Duration::from_secs(10)));
    let stats = collector.stats();
    assert_eq!((stats.priced, stats.budgeted), (1, 1), "{stats:?}");
    let rows = budgets
        .status_for(&CallContext::new().with_model("prod-chat"))
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0].spent,
        cost(1_000, 200),
        "charged to the meter of the model the request named, at the snapshot's price: {rows:?}"
    );
    assert_eq!(rows[0].spent_tokens, 1_200, "{rows:?}");
    assert_eq!(rows[0].scope, "gen_ai.request.model=prod-chat", "{rows:?}");
    // No meter for the model it was priced as.
    let all = budgets.status().unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
}
