//! A meter of a rolling period sums several buckets; spend is added to the current one
//! only. When an older bucket is damaged (a key of another type, a sum that is not an
//! integer), Redis refuses the commit: it must refuse it before its first write, or the
//! spend it wrote before failing is written again by whoever retries the refused commit
//! (the caller of `commit`, the writer's one-by-one retry), and counted twice.
//! Real Redis (scripts/redis.sh).

mod support;

use std::time::Duration;

use llmtel_budget::RedisStore;
use llmtel_budget::store::{Amount, BudgetStore, Commit, Meter};

#[test]
fn a_redis_commit_refused_for_a_damaged_older_bucket_writes_nothing() {
    // The older bucket: a string (`None`), or a hash whose `u` is not an integer.
    for bad_u in [None, Some("12.5")] {
        refused_for(bad_u);
    }
}

fn refused_for(bad_u: Option<&str>) {
    let prefix = support::unique_prefix("damaged-older-bucket");
    let url = support::redis_url();
    let st = RedisStore::open(&url)
        .expect("redis url")
        .with_prefix(&prefix)
        .with_timeout(Duration::from_secs(2));
    let now = 1_748_736_000_000;
    let meter = Meter {
        id: "rolling\u{1f}*".into(),
        buckets: vec![
            "rolling\u{1f}*\u{1f}0".into(),
            "rolling\u{1f}*\u{1f}1".into(),
        ],
        ttl_ms: 3_600_000,
        limit_usd: None,
        limit_tokens: None,
    };
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client.get_connection().expect("connection");
    let older = format!("{prefix}b:{}", meter.buckets[0]);
    let current = format!("{prefix}b:{}", meter.buckets[1]);
    let mut set = match bad_u {
        None => redis::cmd("SET"),
        Some(_) => redis::cmd("HSET"),
    };
    set.arg(&older);
    match bad_u {
        None => set.arg("not a hash"),
        Some(u) => set.arg("u").arg(u),
    };
    set.query::<()>(&mut conn)
        .expect("the damaged older bucket");
    let case = format!("the older bucket's u {bad_u:?}");
    let amt = Amount { usd: 5, tokens: 1 };
    let charges = [(&meter, amt)];
    let current_u = |conn: &mut redis::Connection| -> Option<i64> {
        redis::cmd("HGET")
            .arg(&current)
            .arg("u")
            .query(conn)
            .expect("HGET")
    };
    // A commit without an operation id (`BudgetStore::commit`), refused, then retried.
    for attempt in 1..=2 {
        let e = st
            .commit(None, &charges, now)
            .expect_err("a damaged bucket is refused");
        assert!(e.rejected, "{case}: {e}");
        assert_eq!(
            current_u(&mut conn),
            None,
            "{case}: refused commit #{attempt} wrote nothing to the current bucket"
        );
    }
    // The writer's batch, then its one-by-one retry: the op is neither written nor marked
    // applied (its spend is not counted while reported refused).
    let op = Commit {
        release: None,
        charges: &charges,
        op_id: Some("op-1"),
    };
    st.commit_batch(&[op], now).expect_err("refused");
    st.commit_batch(&[op], now).expect_err("refused again");
    assert_eq!(
        current_u(&mut conn),
        None,
        "{case}: the batch wrote nothing"
    );
    let marked: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}o:op-1"))
        .query(&mut conn)
        .expect("EXISTS");
    assert!(!marked, "{case}: a refused op is not marked applied");
    // Once the older bucket is mended, the commit is written, once.
    redis::cmd("DEL")
        .arg(&older)
        .query::<()>(&mut conn)
        .expect("DEL");
    st.commit_batch(&[op], now).expect("written");
    st.commit_batch(&[op], now).expect("a replay");
    assert_eq!(current_u(&mut conn), Some(5), "{case}: counted once");
}
