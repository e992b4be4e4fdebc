//! `BudgetPreflight` in llmtel-reqwest's middleware: a call that would pass a user's limit is
//! refused before any network request (the server never sees it) with `budget_exceeded` and
//! the budget's reset time; an admitted call is settled once, by the `BudgetLayer` or by
//! budgets as a sink on llmtel's export stage, with its actual cost (not the pre-flight
//! estimate); another user is not affected. In every store.
#![cfg(feature = "reqwest")]
#![allow(clippy::unwrap_used)]

mod support;
// llmtel-reqwest's replay server stands in for the provider (one copy of it for both crates).
#[path = "../../llmtel-reqwest/tests/common/mod.rs"]
mod replay;

use std::time::Duration;

use jiff::tz::TimeZone;
use llmtel_budget::{BudgetPreflight, Budgets, CallContext, Period, Rule, Scope};
use llmtel_reqwest::PreflightError;
use replay::{Replay, Reply};
use support::{TestClock, usd};
use tracing::Instrument as _;
use tracing_subscriber::prelude::*;

/// gpt-4o: 1,200 prompt tokens (1,024 cached), 300 completion tokens: $0.004720.
const RESPONSE: &str = r#"{"id":"chatcmpl-b1","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Refunds within 30 days."},"finish_reason":"stop"}],"usage":{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":1024}}}"#;

/// 175 bytes: 44 prompt tokens in the estimate.
const REQUEST: &str = r#"{"model":"gpt-4o","max_tokens":512,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"What is the refund window for an order placed online?"}]}"#;

async fn chat(
    client: &reqwest_middleware::ClientWithMiddleware,
    base: &str,
    user: &str,
) -> Result<String, reqwest_middleware::Error> {
    let request = tracing::info_span!("request", "user.id" = user);
    async {
        let resp = client
            .post(format!("{base}/chat/completions"))
            .header("content-type", "application/json")
            .body(REQUEST)
            .send()
            .await?;
        Ok(resp.text().await?)
    }
    .instrument(request)
    .await
}

/// Who records the spend and settles the reservation.
#[derive(Clone, Copy, Debug)]
enum Recorder {
    /// `BudgetLayer` in the subscriber, as the span closes.
    Layer,
    /// `BudgetSink` on llmtel's export stage, from the price computed there.
    Sink,
}

fn run(kind: &str) {
    run_with(kind, Recorder::Layer);
}

fn run_with(kind: &str, recorder: Recorder) {
    let clock = TestClock::at("2025-06-01T15:00:00Z");
    let budgets = Budgets::builder()
        .with_store(support::store(kind, "preflight"))
        .with_clock(clock.clock())
        .with_rule(
            Rule::new("per-user-daily", Scope::User, Period::Day(TimeZone::UTC))
                .with_limit_usd(usd("0.008")),
        )
        .build();
    // (The sink's export stage: a simple exporter, so a span is exported as it ends.)
    let mut provider = None;
    let dispatch = match recorder {
        Recorder::Layer => tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(llmtel::layer())
                .with(budgets.layer()),
        ),
        Recorder::Sink => {
            use opentelemetry::trace::TracerProvider as _;
            let stage = llmtel::GenAiExporter::new(
                opentelemetry_sdk::trace::InMemorySpanExporter::default(),
            )
            .with_sink(std::sync::Arc::new(budgets.sink()));
            let p = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_simple_exporter(stage)
                .build();
            let tracer = p.tracer("test");
            provider = Some(p);
            tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(llmtel::layer())
                    .with(tracing_opentelemetry::layer().with_tracer(tracer)),
            )
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _default = tracing::dispatcher::set_default(&dispatch);
    let hook = BudgetPreflight::new(budgets.clone());
    rt.block_on(async {
        // One reply for each call that is sent (u-1's first, u-2's): a third request would
        // get the replay server's 500.
        let server =
            Replay::start(vec![Reply::json(200, RESPONSE), Reply::json(200, RESPONSE)]).await;
        let base = server.url("/v1");
        let mw = llmtel_reqwest::LlmMiddleware::new()
            .with_openai_compatible(&base, "openai")
            .unwrap()
            .with_preflight(hook.clone());
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(mw)
            .build();

        // u-1's first call: worst case 44 in + 512 out at gpt-4o = $0.00523 <= $0.008.
        let body = chat(&client, &base, "u-1").await.expect("admitted");
        assert_eq!(body, RESPONSE, "the caller gets the provider's bytes");
        assert_eq!(server.requests().len(), 1);
        // The reader ends the span; the BudgetLayer (or the sink, on the export stage)
        // settles the reservation with the actual $0.004720 (not the $0.00523 estimate).
        assert!(llmtel::finish_pending_spans(Duration::from_secs(10)));
        assert!(budgets.flush(Duration::from_secs(10)));

        // u-1's second call: $0.004720 spent + $0.00523 > $0.008: refused, never sent.
        let err = chat(&client, &base, "u-1").await.expect_err("refused");
        let reqwest_middleware::Error::Middleware(e) = err else {
            panic!("expected the pre-flight refusal, got {err:?}");
        };
        let refusal = e
            .downcast_ref::<PreflightError>()
            .expect("a PreflightError");
        assert_eq!(refusal.error_type(), "budget_exceeded");
        assert!(
            refusal.message().contains("per-user-daily") && refusal.message().contains("user"),
            "{}",
            refusal.message()
        );
        let midnight: jiff::Timestamp = "2025-06-02T00:00:00Z".parse().unwrap();
        assert_eq!(
            refusal.retry_at(),
            Some(std::time::SystemTime::from(midnight)),
            "Retry-After: the next UTC midnight"
        );
        assert_eq!(server.requests().len(), 1, "no request for a refused call");

        // Another user has their own budget.
        chat(&client, &base, "u-2").await.expect("u-2 admitted");
        assert_eq!(server.requests().len(), 2);
        assert!(llmtel::finish_pending_spans(Duration::from_secs(10)));
    });
    assert!(budgets.flush(Duration::from_secs(10)));
    let s = &budgets
        .status_for(&CallContext::new().with_user("u-1"))
        .expect("status")[0];
    assert_eq!(
        s.spent,
        usd("0.00472"),
        "{kind} {recorder:?}: the actual cost, once"
    );
    assert_eq!(
        s.reserved,
        usd("0"),
        "{kind} {recorder:?}: the reservation was settled"
    );
    assert_eq!(s.spent_tokens, 1_500);
    let s = &budgets
        .status_for(&CallContext::new().with_user("u-2"))
        .expect("status")[0];
    assert_eq!(s.spent, usd("0.00472"), "{kind}");
    assert_eq!(budgets.stats().denied, 1);
    drop(provider); // kept for the whole run: its export stage carries the sink
}

#[test]
fn memory_store() {
    run("memory");
}

#[test]
fn sqlite_store() {
    run("sqlite");
}

#[test]
fn redis_store() {
    run("redis");
}

/// The same with budgets as a sink on llmtel's export stage: the reservation bound to the
/// call's span is settled there, by the span's OpenTelemetry id, with no budget layer.
#[test]
fn memory_store_with_the_budget_sink() {
    run_with("memory", Recorder::Sink);
}

/// A call to a model the catalog does not know meets the rule's `on_unpriced` policy in
/// pre-flight too: refused by default with `budget_unpriced_model` (no request sent),
/// reserved at the fallback price otherwise.
#[test]
fn preflight_applies_the_unpriced_policy_to_unknown_models() {
    use llmtel_budget::{ReserveError, Unpriced};
    use llmtel_reqwest::{PlannedCall, PreflightHook as _};
    let planned = PlannedCall {
        provider: "acme".into(),
        operation: "chat",
        model: "acme-unknown-model-77".into(),
        max_output_tokens: Some(1_000_000),
        stream: false,
        request_bytes: 4_000_000, // 1,000,000 prompt tokens in the estimate
    };
    let rule = || Rule::new("per-user", Scope::User, Period::Lifetime).with_limit_usd(usd("1"));
    let ctx = |_: &PlannedCall| CallContext::new().with_user("u-1");

    let refusing = Budgets::builder().with_rule(rule()).build();
    let hook = BudgetPreflight::new(refusing.clone()).with_context(ctx);
    let e = hook.estimate(&planned);
    assert_eq!(e.usd, llmtel::Usd::ZERO);
    assert!(e.unpriced.is_some());
    let err = hook.preflight(&planned).expect_err("refused");
    assert_eq!(err.error_type(), "budget_unpriced_model");
    assert!(
        err.message().contains("acme-unknown-model-77"),
        "{}",
        err.message()
    );
    assert_eq!(refusing.stats().unpriced_refused, 1);
    assert!(matches!(
        refusing.reserve(
            &CallContext::new().with_user("u-1").with_model("x-unknown"),
            e
        ),
        Err(ReserveError::Unpriced { .. })
    ));

    // $0.40 per million in and out: 1 M in + 1 M out = $0.80 reserved; with $0.30 spent,
    // the call would pass $1 and is refused by the limit, at the fallback price.
    let fallback = Budgets::builder()
        .with_rule(rule().with_on_unpriced(Unpriced::Fallback {
            input_per_million: usd("0.4"),
            output_per_million: usd("0.4"),
        }))
        .build();
    let hook = BudgetPreflight::new(fallback.clone()).with_context(ctx);
    hook.preflight(&planned)
        .expect("reserved at the fallback price");
    assert_eq!(fallback.stats().unpriced_admitted, 1);
    fallback.record(&CallContext::new().with_user("u-1"), usd("0.3"), 0);
    let err = hook.preflight(&planned).expect_err("$0.30 + $0.80 > $1");
    assert_eq!(err.error_type(), "budget_exceeded", "{}", err.message());
}

/// A call whose estimate alone is over the limit can never be admitted: refused with
/// `budget_exceeded` and no retry time (it was told to retry at the reset, and a client
/// honouring that retried it every day); a call refused for the spend of the period still
/// gets the reset.
#[test]
fn preflight_gives_no_retry_time_to_a_call_that_can_never_fit() {
    use llmtel_reqwest::{PlannedCall, PreflightHook as _};
    let clock = TestClock::at("2025-06-01T15:00:00Z");
    let budgets = Budgets::builder()
        .with_clock(clock.clock())
        .with_rule(
            Rule::new("per-user-daily", Scope::User, Period::Day(TimeZone::UTC))
                .with_limit_usd(usd("0.008")),
        )
        .build();
    let ctx = || CallContext::new().with_user("u-1");
    let hook = BudgetPreflight::new(budgets.clone()).with_context(move |_| ctx());
    let planned = |max_out| PlannedCall {
        provider: "openai".into(),
        operation: "chat",
        model: "gpt-4o".into(),
        max_output_tokens: Some(max_out),
        stream: false,
        request_bytes: 400,
    };
    // 100,000 output tokens at gpt-4o's $10 a million: $1, over $0.008 alone.
    let err = hook.preflight(&planned(100_000)).expect_err("never fits");
    assert_eq!(err.error_type(), "budget_exceeded");
    assert_eq!(err.retry_at(), None, "{}", err.message());
    assert!(
        err.message().contains("can never be admitted"),
        "{}",
        err.message()
    );
    // Refused for the period's spend: retried at the next UTC midnight.
    budgets.record(&CallContext::new().with_user("u-1"), usd("0.0079"), 0);
    let err = hook.preflight(&planned(100)).expect_err("spent");
    let midnight: jiff::Timestamp = "2025-06-02T00:00:00Z".parse().unwrap();
    assert_eq!(
        err.retry_at(),
        Some(std::time::SystemTime::from(midnight)),
        "{}",
        err.message()
    );
}
