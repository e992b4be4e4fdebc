//! The collector promises that spend is recorded whether or not the downstream takes the
//! spans. The stage (pricing, sinks, quality, budgets) ran only when a forwarder picked a
//! request up: with the downstream down, the four forwarders each retried one request for
//! `retry_for` and every request behind them waited unpriced and unbudgeted, and a shutdown
//! dropped them without recording their spend. The stage now runs as requests arrive, apart
//! from the forwarders' retries; a shutdown gives the budget and quality flushes their own
//! share of its time and reports one that does not finish.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use jiff::tz::TimeZone;
use llmtel_budget::store::{Commit, Meter, MeterTotals, ReserveOutcome};
use llmtel_budget::{BudgetStore, Budgets, CallContext, Period, Rule, Scope, StoreError};
use llmtel_collector::Collector;

fn per_user() -> Rule {
    Rule::new("per-user-daily", Scope::User, Period::Day(TimeZone::UTC))
        .with_limit_usd(llmtel::Usd::parse_decimal("100").unwrap())
}

fn call(seed: u8) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    let mut attributes = chat_call("gpt-4o", None);
    attributes.push(s("user.id", "u-1"));
    request("svc", seed, vec![(format!("chat {seed}"), attributes)])
}

/// A loopback port nothing listens on.
fn dead() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_span_is_budgeted_while_the_downstream_is_down_and_at_shutdown() {
    let budgets = Budgets::builder().with_rule(per_user()).build();
    let config = config(dead())
        .with_retry_for(Duration::from_secs(600))
        .with_timeout(Duration::from_secs(2))
        .unwrap()
        .with_budgets(budgets.clone());
    let collector = Collector::start(config).await.unwrap();
    // Twice as many requests as the collector has forwarders, all held by the downstream.
    for seed in 1..=8 {
        post_protobuf(&collector, call(seed)).await;
    }
    wait_until("all 8 spans are budgeted", || {
        collector.stats().budgeted == 8
    })
    .await;
    assert!(budgets.flush(Duration::from_secs(10)));
    let spent = budgets
        .status_for(&CallContext::new().with_user("u-1"))
        .unwrap()[0]
        .spent_tokens;
    assert_eq!(spent, 8 * 1_500, "8 calls of 1,500 tokens");

    let stats = collector.shutdown(Duration::from_millis(500)).await;
    assert_eq!(
        (stats.budgeted, stats.queue_depth, stats.forwarded),
        (8, 8, 0),
        "{stats:?}"
    );
    assert_eq!(stats.flushes_failed, 0, "{stats:?}");
}

/// A budget store that is never reachable: spend waits in the budgets' buffer.
#[derive(Debug)]
struct Down;

fn down() -> StoreError {
    StoreError {
        store: "redis",
        message: "connection refused (test)".into(),
        rejected: false,
    }
}

impl BudgetStore for Down {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn reserve(
        &self,
        _: &str,
        _: &[(&Meter, llmtel_budget::store::Amount)],
        _: i64,
        _: i64,
    ) -> Result<ReserveOutcome, StoreError> {
        Err(down())
    }

    fn commit(
        &self,
        _: Option<(&str, &[&Meter])>,
        _: &[(&Meter, llmtel_budget::store::Amount)],
        _: i64,
    ) -> Result<Vec<llmtel_budget::store::Amount>, StoreError> {
        Err(down())
    }

    fn commit_batch(
        &self,
        _: &[Commit<'_>],
        _: i64,
    ) -> Result<Vec<Vec<llmtel_budget::store::Amount>>, StoreError> {
        Err(down())
    }

    fn totals(&self, _: &[&Meter], _: i64) -> Result<Vec<MeterTotals>, StoreError> {
        Err(down())
    }

    fn fire_once(&self, _: &str, _: i64, _: i64) -> Result<bool, StoreError> {
        Err(down())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_flush_a_shutdown_cannot_finish_is_counted() {
    let (receiver, downstream, _task) = Receiver::start().await;
    let budgets = Budgets::builder()
        .with_rule(per_user())
        .with_store(Arc::new(Down))
        .build();
    let collector = Collector::start(config(downstream).with_budgets(budgets))
        .await
        .unwrap();
    post_protobuf(&collector, call(1)).await;
    receiver.wait_for("chat 1").await;
    let stats = collector.shutdown(Duration::from_millis(400)).await;
    assert_eq!(stats.budgeted, 1, "{stats:?}");
    assert_eq!(stats.flushes_failed, 1, "{stats:?}");
    // And it is a series of the collector's metrics, as its other counters are.
    let m = stats.to_prometheus();
    assert!(
        m.contains("llmtel_collector_flushes_failed_total 1\n"),
        "{m}"
    );
}

/// Set in the child process of the test below, which runs the shutdown itself.
const CHILD: &str = "LLMTEL_TEST_SHUTDOWN_WITH_STDERR_CLOSED";

#[test]
fn a_failed_flush_is_said_without_a_panic_when_stderr_is_a_closed_pipe() {
    let name = "a_failed_flush_is_said_without_a_panic_when_stderr_is_a_closed_pipe";
    if std::env::var_os(CHILD).is_some() {
        // The child: its stderr is a pipe nobody reads (`llmtel collector 2>&1 | head` once
        // `head` is done). The shutdown says the failed flush there; `eprintln!` panicked.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let stats = rt.block_on(async {
            let (receiver, downstream, _task) = Receiver::start().await;
            let budgets = Budgets::builder()
                .with_rule(per_user())
                .with_store(Arc::new(Down))
                .build();
            let collector = Collector::start(config(downstream).with_budgets(budgets))
                .await
                .unwrap();
            post_protobuf(&collector, call(1)).await;
            receiver.wait_for("chat 1").await;
            collector.shutdown(Duration::from_millis(400)).await
        });
        assert_eq!(stats.flushes_failed, 1, "{stats:?}");
        return;
    }
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(writer)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {stdout}", out.status);
    assert!(
        stdout.contains("1 passed"),
        "the child ran the test: {stdout}"
    );
}
