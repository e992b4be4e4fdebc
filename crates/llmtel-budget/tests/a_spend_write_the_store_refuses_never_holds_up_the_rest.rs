//! A spend write the store refuses (it answers with an error that a retry would meet again,
//! e.g. a script error after a bad upgrade) is dropped, counted and alerted, and the writes
//! around it still reach the store: before, the writer retried the refused batch forever and
//! every later settle waited behind it until the buffer overflowed.
//!
//! The store is the real SQLite store, wrapped to refuse any commit carrying one marked
//! amount (fault injection: SQLite itself refuses nothing we write).

mod support;

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use llmtel_alert::MemorySink;
use llmtel_budget::store::{Amount, BudgetStore, Commit, Meter, MeterTotals, ReserveOutcome};
use llmtel_budget::{Budgets, CallContext, Period, Rule, Scope, StoreError};
use support::usd;

/// Refuses any commit that charges exactly this many pico-dollars ($0.000013).
const POISON_PICOS: i64 = 13_000_000;

#[derive(Debug)]
struct Refusing(Arc<dyn BudgetStore>);

fn poisoned(charges: &[(&Meter, Amount)]) -> bool {
    charges.iter().any(|(_, a)| a.usd == POISON_PICOS)
}

fn refused() -> StoreError {
    StoreError::rejected("sqlite", "injected: the store refuses this write")
}

impl BudgetStore for Refusing {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn reserve(
        &self,
        id: &str,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<ReserveOutcome, StoreError> {
        self.0.reserve(id, charges, now_ms, expires_ms)
    }
    fn commit(
        &self,
        release: Option<(&str, &[&Meter])>,
        charges: &[(&Meter, Amount)],
        now_ms: i64,
    ) -> Result<Vec<Amount>, StoreError> {
        if poisoned(charges) {
            return Err(refused());
        }
        self.0.commit(release, charges, now_ms)
    }
    fn commit_batch(
        &self,
        ops: &[Commit<'_>],
        now_ms: i64,
    ) -> Result<Vec<Vec<Amount>>, StoreError> {
        // All or nothing, like the real stores' batches.
        if ops.iter().any(|c| poisoned(c.charges)) {
            return Err(refused());
        }
        self.0.commit_batch(ops, now_ms)
    }
    fn totals(&self, meters: &[&Meter], now_ms: i64) -> Result<Vec<MeterTotals>, StoreError> {
        self.0.totals(meters, now_ms)
    }
    fn fire_once(&self, key: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.0.fire_once(key, ttl_ms, now_ms)
    }
}

#[test]
fn a_refused_write_is_dropped_counted_and_alerted_and_the_others_are_written() {
    let alerts = MemorySink::new();
    let budgets = Budgets::builder()
        .with_store(Arc::new(Refusing(support::store("sqlite", "refused"))))
        .with_alerts(
            llmtel_alert::AlertDispatcher::builder()
                .with_sink(Arc::new(alerts.clone()))
                .build(),
        )
        .with_rule(Rule::new(
            "per-user-daily",
            Scope::User,
            Period::Day(TimeZone::UTC),
        ))
        .build();
    let ctx = CallContext::new().with_user("u-1");
    budgets.record(&ctx, usd("0.001"), 10);
    budgets.record(&ctx, usd("0.000013"), 1); // refused by the store
    for _ in 0..50 {
        budgets.record(&ctx, usd("0.002"), 20);
    }
    assert!(
        budgets.flush(Duration::from_secs(10)),
        "nothing stays buffered"
    );

    let stats = budgets.stats();
    assert_eq!(stats.rejected, 1);
    assert_eq!(stats.buffered, 0);
    assert_eq!(stats.dropped, 0);
    let s = &budgets.status_for(&ctx).expect("status")[0];
    assert_eq!(s.spent, usd("0.101"), "every write but the refused one");
    assert_eq!(s.spent_tokens, 1_010);

    // Later spend is not held up either.
    budgets.record(&ctx, usd("0.004"), 40);
    assert!(budgets.flush(Duration::from_secs(10)));
    let s = &budgets.status_for(&ctx).expect("status")[0];
    assert_eq!(s.spent, usd("0.105"));

    assert!(budgets_alerted(&alerts, "LlmBudgetWriteRejected"));
}

fn budgets_alerted(sink: &MemorySink, name: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if sink.alerts().iter().any(|a| a.name == name) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Redis refuses one op of a batch part-way through the script (here a bucket key that is
/// not a hash, or a hash whose sum is not an integer): the batch's earlier ops must not be
/// marked applied, or the one-by-one retry skips them as replays and counts them written
/// while nothing was; nor written, or the retry writes them again. Also for a meter whose
/// total is already above 2^52 pico-dollars (about $4,504), which the script adds to with
/// `HINCRBY` instead of in Lua. Real Redis (scripts/redis.sh).
#[test]
fn a_redis_batch_refused_part_way_marks_none_of_its_ops_applied() {
    // (the good meter's total before, the bad bucket: a string, or a hash with this `u`)
    for (before, bad_u) in [
        (0, None),
        (5_000_000_000_000_000, None), // $5,000
        (5_000_000_000_000_000, Some("1e300")),
        (0, Some("12.5")),
    ] {
        refused_part_way(before, bad_u);
    }
}

fn refused_part_way(before: i64, bad_u: Option<&str>) {
    use llmtel_budget::RedisStore;
    let prefix = support::unique_prefix("part-way");
    let url = support::redis_url();
    let st = RedisStore::open(&url)
        .expect("redis url")
        .with_prefix(&prefix)
        .with_timeout(Duration::from_secs(2));
    let now = 1_748_736_000_000;
    let meter = |id: &str| Meter {
        id: id.into(),
        buckets: vec![format!("{id}\u{1f}0")],
        ttl_ms: 3_600_000,
        limit_usd: None,
        limit_tokens: None,
    };
    let (good, bad) = (meter("good\u{1f}*"), meter("bad\u{1f}*"));
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client.get_connection().expect("connection");
    if before != 0 {
        redis::cmd("HSET")
            .arg(format!("{prefix}b:{}", good.buckets[0]))
            .arg("u")
            .arg(before)
            .arg("t")
            .arg(0)
            .query::<()>(&mut conn)
            .expect("HSET");
    }
    // Someone else's string, or a damaged sum, under the bad meter's bucket key.
    let bad_key = format!("{prefix}b:{}", bad.buckets[0]);
    let mut set = match bad_u {
        None => redis::cmd("SET"),
        Some(_) => redis::cmd("HSET"),
    };
    set.arg(&bad_key);
    match bad_u {
        None => set.arg("not a hash"),
        Some(u) => set.arg("u").arg(u),
    };
    set.query::<()>(&mut conn).expect("the bad key");
    let amt = Amount { usd: 5, tokens: 1 };
    let after = Amount {
        usd: before + amt.usd,
        tokens: amt.tokens,
    };
    let case = format!("a total of {before} before, the bad key's u {bad_u:?}");
    let (c_good, c_bad) = ([(&good, amt)], [(&bad, amt)]);
    let op = |charges, id| Commit {
        release: None,
        charges,
        op_id: Some(id),
    };
    let e = st
        .commit_batch(&[op(&c_good[..], "op-good"), op(&c_bad[..], "op-bad")], now)
        .expect_err("the bad op is refused");
    assert!(e.rejected, "{case}: {e}");
    let t = st.totals(&[&good], now).expect("totals");
    assert_eq!(
        t[0].spent.usd, before,
        "{case}: the refused batch wrote nothing"
    );
    // What the writer does next: each op alone. The good one is written, once.
    st.commit_batch(&[op(&c_good[..], "op-good")], now)
        .expect("the good op alone");
    let t = st.totals(&[&good], now).expect("totals");
    assert_eq!(
        t[0].spent, after,
        "{case}: written once, not skipped as applied"
    );
    st.commit_batch(&[op(&c_good[..], "op-good")], now)
        .expect("a replay");
    let t = st.totals(&[&good], now).expect("totals");
    assert_eq!(t[0].spent, after, "{case}: a replay still counts once");
}
