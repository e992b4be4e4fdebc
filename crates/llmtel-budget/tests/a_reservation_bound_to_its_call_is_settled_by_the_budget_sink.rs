//! A reservation bound to the call's own span (what `BudgetPreflight` does) is settled by
//! `BudgetSink` on llmtel's export stage with the call's actual cost, by the span's
//! OpenTelemetry id: no budget layer, nothing priced on the request thread. Bindings nothing
//! settles are bounded: past the cap a new one is released at once and counted.

mod support;

use std::time::Duration;

use llmtel_budget::{Budgets, CallContext, Estimate};
use support::{TestClock, exporting_with_budget_sink, per_user_daily, record_1000_in_100_out, usd};

fn status(budgets: &Budgets) -> llmtel_budget::RuleStatus {
    assert!(budgets.flush(Duration::from_secs(10)));
    let ctx = CallContext::new().with_user("u-1");
    budgets.status_for(&ctx).expect("status").remove(0)
}

#[test]
fn the_sink_settles_the_reservation_bound_to_the_calls_span() {
    let budgets = per_user_daily("0.01");
    let (dispatch, exporter, _provider) = exporting_with_budget_sink(&budgets);
    let ctx = CallContext::new().with_user("u-1");
    tracing::dispatcher::with_default(&dispatch, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o", user.id = "u-1");
        let r = budgets
            .reserve(&ctx, Estimate::new(usd("0.005"), 0))
            .expect("within budget");
        r.bind(&span);
        // Held until the call is settled.
        assert_eq!(status(&budgets).reserved, usd("0.005"));
        // gpt-4o: 1,000 in x $2.50/M + 100 out x $10/M = $0.0035
        record_1000_in_100_out(&span);
        drop(span);
        // Another call bound to nothing is recorded as usual.
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o", user.id = "u-1");
        record_1000_in_100_out(&span);
    });
    let s = status(&budgets);
    assert_eq!(s.spent, usd("0.007"), "both calls, each once");
    assert_eq!(
        s.reserved,
        usd("0"),
        "the bound reservation is settled, not left to expire"
    );
    assert_eq!(budgets.stats().recorded, 2);
    assert_eq!(budgets.stats().bound_refused, 0);
    assert_eq!(exporter.get_finished_spans().expect("spans").len(), 2);
}

#[test]
fn the_spend_goes_to_the_meters_the_reservation_held() {
    // A per-model limit: the pre-flight reserves on the model the request names; OpenAI
    // answers with the dated snapshot. The spend must land on the meter the pre-flight
    // checks, or the limit never refuses anything.
    let budgets = Budgets::builder()
        .with_rule(
            llmtel_budget::Rule::new(
                "per-model-daily",
                llmtel_budget::Scope::Model,
                llmtel_budget::Period::Day(jiff::tz::TimeZone::UTC),
            )
            .with_limit_usd(usd("0.005")),
        )
        .build();
    let (dispatch, _exporter, _provider) = exporting_with_budget_sink(&budgets);
    let requested = CallContext::new().with_model("gpt-4o");
    tracing::dispatcher::with_default(&dispatch, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        budgets
            .reserve(&requested, Estimate::new(usd("0.004"), 0))
            .expect("within budget")
            .bind(&span);
        llmtel::record_response(&span, "chatcmpl-1", "gpt-4o-2024-08-06", &["stop"]);
        // gpt-4o: 1,000 in x $2.50/M + 100 out x $10/M = $0.0035
        record_1000_in_100_out(&span);
    });
    assert!(budgets.flush(Duration::from_secs(10)));
    let held = budgets.status_for(&requested).expect("status").remove(0);
    assert_eq!(held.spent, usd("0.0035"), "{held:?}");
    assert_eq!(held.reserved, usd("0"));
    let dated = CallContext::new().with_model("gpt-4o-2024-08-06");
    let other = budgets.status_for(&dated).expect("status").remove(0);
    assert_eq!(other.spent, usd("0"), "{other:?}");
    // So the next pre-flight sees the spend: $0.0035 + $0.004 > $0.005.
    assert!(
        budgets
            .reserve(&requested, Estimate::new(usd("0.004"), 0))
            .is_err()
    );
}

#[test]
fn unsettled_bindings_are_bounded_and_the_refused_ones_released_and_counted() {
    const CAP: u64 = 65_536;
    // A clock the test moves: bindings older than the reservation TTL make room.
    let clock = TestClock::at("2026-12-05T00:00:00Z");
    let budgets = Budgets::builder()
        .with_clock(clock.clock())
        .with_reservation_ttl(Duration::from_secs(600))
        .with_rule(
            llmtel_budget::Rule::new(
                "per-user-daily",
                llmtel_budget::Scope::User,
                llmtel_budget::Period::Day(jiff::tz::TimeZone::UTC),
            )
            .with_limit_usd(usd("1000000")),
        )
        .build();
    let subscriber = tracing_subscriber::registry();
    let ctx = CallContext::new().with_user("u-1");
    tracing::subscriber::with_default(subscriber, || {
        // Spans kept open: nothing settles their reservations.
        let mut open = Vec::new();
        for _ in 0..CAP + 10 {
            let span = tracing::info_span!("request");
            budgets
                .reserve(&ctx, Estimate::new(usd("0.000001"), 0))
                .expect("within budget")
                .bind(&span);
            open.push(span);
        }
        assert_eq!(budgets.stats().bound_refused, 10, "the 10 past the cap");
        // Those 10 were released: only the bound ones are still reserved.
        let s = status(&budgets);
        assert_eq!(s.reserved, usd("0.065536"), "{s:?}");
        // Past the TTL the store has expired them, and they make room for a new binding.
        clock.advance_secs(601);
        let span = tracing::info_span!("request");
        budgets
            .reserve(&ctx, Estimate::new(usd("0.000001"), 0))
            .expect("within budget")
            .bind(&span);
        assert_eq!(budgets.stats().bound_refused, 10, "bound, not refused");
        drop(open);
    });
}

#[test]
fn a_call_settled_after_its_reserved_window_still_charges_the_reserved_meter() {
    // The pre-flight reserves on `gpt-4o` a moment before midnight; the call's span closes
    // (and the export stage settles it) after midnight, answered by the dated snapshot.
    // The spend goes to `gpt-4o`'s meter in the new day, not to the snapshot's: else the
    // reservation is released and its spend lands where the pre-flight never looks.
    let clock = TestClock::at("2026-03-01T23:59:59.500Z");
    let budgets = Budgets::builder()
        .with_clock(clock.clock())
        .with_rule(
            llmtel_budget::Rule::new(
                "per-model-daily",
                llmtel_budget::Scope::Model,
                llmtel_budget::Period::Day(jiff::tz::TimeZone::UTC),
            )
            .with_limit_usd(usd("0.005")),
        )
        .build();
    let (dispatch, _exporter, _provider) = exporting_with_budget_sink(&budgets);
    let requested = CallContext::new().with_model("gpt-4o");
    tracing::dispatcher::with_default(&dispatch, || {
        let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
        budgets
            .reserve(&requested, Estimate::new(usd("0.004"), 0))
            .expect("within budget")
            .bind(&span);
        llmtel::record_response(&span, "chatcmpl-1", "gpt-4o-2024-08-06", &["stop"]);
        // gpt-4o: 1,000 in x $2.50/M + 100 out x $10/M = $0.0035
        record_1000_in_100_out(&span);
        clock.set("2026-03-02T00:00:01Z");
        drop(span);
    });
    assert!(budgets.flush(Duration::from_secs(10)));
    let held = budgets.status_for(&requested).expect("status").remove(0);
    assert_eq!(
        held.period_start,
        Some("2026-03-02T00:00:00Z".parse().expect("ts")),
        "{held:?}"
    );
    assert_eq!(
        held.spent,
        usd("0.0035"),
        "the new day's gpt-4o meter: {held:?}"
    );
    assert_eq!(held.reserved, usd("0"), "released");
    let dated = CallContext::new().with_model("gpt-4o-2024-08-06");
    let other = budgets.status_for(&dated).expect("status").remove(0);
    assert_eq!(other.spent, usd("0"), "{other:?}");
    // The limit still refuses: $0.0035 + $0.004 > $0.005.
    assert!(
        budgets
            .reserve(&requested, Estimate::new(usd("0.004"), 0))
            .is_err()
    );
}
