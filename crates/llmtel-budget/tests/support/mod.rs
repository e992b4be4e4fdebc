//! Shared test support: stores, a movable clock, peers.
#![allow(dead_code, unreachable_pub)]

// The HTTP test listener and peer-env helpers are llmtel-alert's (one copy for both crates).
#[path = "../../../llmtel-alert/tests/support/mod.rs"]
pub mod http;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::Timestamp;
use llmtel_budget::{BudgetStore, Clock, MemoryStore, RedisStore, SqliteStore};

pub use http::peer_env;

/// A clock tests move by hand.
#[derive(Clone, Debug)]
pub struct TestClock(pub Arc<AtomicI64>);

impl TestClock {
    pub fn at(t: &str) -> Self {
        let ts: Timestamp = t.parse().expect("timestamp");
        TestClock(Arc::new(AtomicI64::new(ts.as_millisecond())))
    }
    pub fn set(&self, t: &str) {
        let ts: Timestamp = t.parse().expect("timestamp");
        self.0.store(ts.as_millisecond(), Ordering::SeqCst);
    }
    pub fn advance_secs(&self, s: i64) {
        self.0.fetch_add(s * 1000, Ordering::SeqCst);
    }
    pub fn clock(&self) -> Clock {
        let c = self.0.clone();
        Arc::new(move || Timestamp::from_millisecond(c.load(Ordering::SeqCst)).expect("ts"))
    }
}

pub fn redis_url() -> String {
    peer_env("LLMTEL_REDIS_URL", "scripts/redis.sh")
}

/// The TLS port of scripts/redis.sh (`rediss://`, with a password).
pub fn rediss_url() -> String {
    peer_env("LLMTEL_REDISS_URL", "scripts/redis.sh")
}

/// The PEM file of the self-signed CA that signed that port's certificate.
pub fn redis_ca() -> String {
    peer_env("LLMTEL_REDIS_CA", "scripts/redis.sh")
}

/// `{pid}-{test}-{nanos}`: unique to this test run.
fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_nanos();
    format!("{}-{test}-{nanos}", std::process::id())
}

/// A key prefix unique to this test run.
pub fn unique_prefix(test: &str) -> String {
    format!("llmtel:test:{}:", unique(test))
}

/// A fresh store of each kind; Redis under a key prefix unique to the test. `rediss` is
/// the same Redis over TLS, trusting scripts/redis.sh's CA.
pub fn store(kind: &str, test: &str) -> Arc<dyn BudgetStore> {
    match kind {
        "memory" => Arc::new(MemoryStore::new()),
        "sqlite" => {
            let dir = std::env::temp_dir().join(format!("llmtel-budget-{}", unique(test)));
            std::fs::create_dir_all(&dir).expect("dir");
            Arc::new(SqliteStore::open(dir.join("budget.db")).expect("sqlite"))
        }
        "redis" => Arc::new(
            RedisStore::open(&redis_url())
                .expect("redis url")
                .with_prefix(&unique_prefix(test))
                .with_timeout(std::time::Duration::from_secs(2))
                .with_reserve_timeout(std::time::Duration::from_secs(2)),
        ),
        #[cfg(feature = "redis-tls")]
        "rediss" => Arc::new(
            RedisStore::open(&rediss_url())
                .expect("rediss url")
                .with_ca_file(redis_ca())
                .expect("CA file")
                .with_prefix(&unique_prefix(test))
                .with_timeout(std::time::Duration::from_secs(2))
                .with_reserve_timeout(std::time::Duration::from_secs(2)),
        ),
        _ => unreachable!(),
    }
}

pub fn usd(s: &str) -> llmtel::Usd {
    llmtel::Usd::parse_decimal(s).expect("usd")
}

/// Budgets with one rule: `limit` USD per user per UTC day.
pub fn per_user_daily(limit: &str) -> llmtel_budget::Budgets {
    use llmtel_budget::{Period, Rule, Scope};
    llmtel_budget::Budgets::builder()
        .with_rule(
            Rule::new(
                "per-user-daily",
                Scope::User,
                Period::Day(jiff::tz::TimeZone::UTC),
            )
            .with_limit_usd(usd(limit)),
        )
        .build()
}

/// A subscriber whose OpenTelemetry layer exports through llmtel's export stage, with
/// `budgets` as its sink, into the returned in-memory exporter (keep the provider alive).
pub fn exporting_with_budget_sink(
    budgets: &llmtel_budget::Budgets,
) -> (
    tracing::Dispatch,
    opentelemetry_sdk::trace::InMemorySpanExporter,
    opentelemetry_sdk::trace::SdkTracerProvider,
) {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::prelude::*;
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let stage = llmtel::GenAiExporter::new(exporter.clone()).with_sink(Arc::new(budgets.sink()));
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(stage)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    (tracing::Dispatch::new(subscriber), exporter, provider)
}

/// Records 1,000 input and 100 output tokens on `span` (gpt-4o: $0.0035).
pub fn record_1000_in_100_out(span: &tracing::Span) {
    llmtel::record_usage(
        span,
        &llmtel::Usage {
            input_tokens: 1_000,
            output_tokens: 100,
            ..Default::default()
        },
    );
}

/// A TCP proxy in front of a real server, to simulate network faults.
pub mod proxy;
#[allow(unused_imports)]
pub use proxy::{addr_of, via};
