//! The SQLite store keeps, per meter, the sum of the reservations held (so a reserve reads
//! one row, not every call in flight). Those sums are derived: reopening the file rebuilds
//! them from the reservation rows, so a file whose sums are missing or wrong (written by an
//! earlier version, or edited by hand) admits exactly as much as its reservations allow.

#![cfg(feature = "sqlite")]

use std::sync::Arc;

use llmtel_budget::SqliteStore;
use llmtel_budget::store::{Amount, BudgetStore, Meter, ReserveOutcome};

fn meter() -> Meter {
    Meter {
        id: "dollar\u{1f}*".into(),
        buckets: vec!["dollar\u{1f}*\u{1f}0".into()],
        ttl_ms: 0,
        limit_usd: Some(1_000_000_000_000), // $1
        limit_tokens: None,
    }
}

fn usd(picos: i64) -> Amount {
    Amount {
        usd: picos,
        tokens: 0,
    }
}

const NOW: i64 = 1_748_736_000_000;

#[test]
fn wrong_or_missing_sums_are_rebuilt_from_the_reservations_when_the_file_is_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("budget.db");
    let m = meter();
    {
        let store = SqliteStore::open(&path).expect("open");
        for id in ["a", "b"] {
            let r = store.reserve(id, &[(&m, usd(400_000_000_000))], NOW, NOW + 60_000);
            assert_eq!(r, Ok(ReserveOutcome::Admitted));
        }
        // $0.80 held: $0.30 more would pass $1.
        let r = store.reserve("c", &[(&m, usd(300_000_000_000))], NOW, NOW + 60_000);
        assert_eq!(r, Ok(ReserveOutcome::Denied(0)));
    }
    // Another writer zeroes the sum row.
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let n = raw
        .execute(
            "UPDATE llmtel_budget_reservation SET usd = 0 WHERE id = ''",
            [],
        )
        .expect("zero the sums");
    assert_eq!(n, 1, "one sum row for the one meter");
    drop(raw);

    let store: Arc<dyn BudgetStore> = Arc::new(SqliteStore::open(&path).expect("reopen"));
    let r = store.reserve("c", &[(&m, usd(300_000_000_000))], NOW, NOW + 60_000);
    assert_eq!(
        r,
        Ok(ReserveOutcome::Denied(0)),
        "the $0.80 held still counts"
    );
    let t = store.totals(&[&m], NOW).expect("totals")[0];
    assert_eq!(t.reserved, usd(800_000_000_000));

    // Released one by one, the rebuilt sum goes back to zero and admits $1 again.
    for id in ["a", "b"] {
        store.commit(Some((id, &[&m])), &[], NOW).expect("release");
    }
    let r = store.reserve("d", &[(&m, usd(1_000_000_000_000))], NOW, NOW + 60_000);
    assert_eq!(r, Ok(ReserveOutcome::Admitted));
    let r = store.reserve("e", &[(&m, usd(1))], NOW, NOW + 60_000);
    assert_eq!(r, Ok(ReserveOutcome::Denied(0)), "exactly $1 held");
}

/// A meter with no limit (the sums below pass any).
fn open_meter(id: &str) -> Meter {
    Meter {
        id: format!("{id}\u{1f}*"),
        buckets: vec![format!("{id}\u{1f}*\u{1f}0")],
        ttl_ms: 0,
        limit_usd: None,
        limit_tokens: None,
    }
}

/// An earlier version turned a total past i64 into a REAL. A charge of $0 (tokens only)
/// on that meter is taken and writes the total back as an integer: it was refused (the
/// REAL read back as an integer) and dropped.
#[test]
fn a_real_total_left_by_an_earlier_version_takes_a_zero_dollar_charge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("budget.db");
    let m = open_meter("old");
    let store = SqliteStore::open(&path).expect("open");
    store.commit(None, &[(&m, usd(5))], NOW).expect("a charge");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute("UPDATE llmtel_budget_bucket SET usd = 1.0e19", [])
        .expect("a REAL total");
    let kind: String = raw
        .query_row("SELECT typeof(usd) FROM llmtel_budget_bucket", [], |r| {
            r.get(0)
        })
        .expect("typeof");
    assert_eq!(kind, "real");

    let zero = Amount { usd: 0, tokens: 3 };
    let out = store
        .commit(None, &[(&m, zero)], NOW)
        .expect("a $0 charge is taken");
    let full = Amount {
        usd: i64::MAX,
        tokens: 3,
    };
    assert_eq!(out, vec![full]);
    assert_eq!(store.totals(&[&m], NOW).expect("totals")[0].spent, full);
    let kind: String = raw
        .query_row("SELECT typeof(usd) FROM llmtel_budget_bucket", [], |r| {
            r.get(0)
        })
        .expect("typeof");
    assert_eq!(kind, "integer", "written back as an integer");
}

/// The reservations of one meter summing past i64: their sum row and the status report
/// saturate at i64::MAX, and the file still opens (its sums rebuilt): SQLite's `SUM`
/// refused the overflow (status and open failed) and the trigger made the sum row a REAL.
#[test]
fn reservation_sums_past_i64_saturate_and_the_file_still_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("budget.db");
    let m = open_meter("held");
    let half = usd(i64::MAX / 2);
    {
        let store = SqliteStore::open(&path).expect("open");
        for id in ["a", "b", "c"] {
            let r = store.reserve(id, &[(&m, half)], NOW, NOW + 60_000);
            assert_eq!(r, Ok(ReserveOutcome::Admitted), "{id}");
        }
        let t = store.totals(&[&m], NOW).expect("totals")[0];
        assert_eq!(t.reserved, usd(i64::MAX));
    }
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let kind: String = raw
        .query_row(
            "SELECT typeof(usd) FROM llmtel_budget_reservation WHERE id = ''",
            [],
            |r| r.get(0),
        )
        .expect("the sum row");
    assert_eq!(kind, "integer", "the sum row saturates");
    drop(raw);

    let store = SqliteStore::open(&path).expect("reopen");
    let t = store.totals(&[&m], NOW).expect("totals")[0];
    assert_eq!(t.reserved, usd(i64::MAX));
    // The meter goes on: a reserve reads the rebuilt sum row, a release takes one off.
    let r = store.reserve("d", &[(&m, usd(1))], NOW, NOW + 60_000);
    assert_eq!(r, Ok(ReserveOutcome::Admitted));
    store.commit(Some(("d", &[&m])), &[], NOW).expect("release");
    let t = store.totals(&[&m], NOW).expect("totals")[0];
    assert_eq!(t.reserved, usd(i64::MAX));
}

/// A file written by an earlier version has its triggers, which added without saturating:
/// opening it replaces them (once), so its sums saturate too.
#[test]
fn an_earlier_versions_triggers_are_replaced_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("budget.db");
    drop(SqliteStore::open(&path).expect("open"));
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute_batch(
        "DROP TRIGGER llmtel_budget_held_add;
         CREATE TRIGGER llmtel_budget_held_add AFTER INSERT ON llmtel_budget_reservation
         WHEN NEW.id <> '' BEGIN
           INSERT INTO llmtel_budget_reservation (meter, id, usd, tokens, expires_ms)
           VALUES (NEW.meter, '', NEW.usd, NEW.tokens, NEW.expires_ms)
           ON CONFLICT (meter, id) DO UPDATE SET usd = usd + excluded.usd,
             tokens = tokens + excluded.tokens, expires_ms = MIN(expires_ms, excluded.expires_ms);
         END;",
    )
    .expect("the earlier trigger");
    drop(raw);

    let store = SqliteStore::open(&path).expect("reopen");
    let m = open_meter("migrated");
    for id in ["a", "b", "c"] {
        let r = store.reserve(id, &[(&m, usd(i64::MAX / 2))], NOW, NOW + 60_000);
        assert_eq!(r, Ok(ReserveOutcome::Admitted), "{id}");
    }
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let (kind, sum): (String, i64) = raw
        .query_row(
            "SELECT typeof(usd), CAST(usd AS INTEGER) FROM llmtel_budget_reservation
             WHERE id = ''",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the sum row");
    assert_eq!((kind.as_str(), sum), ("integer", i64::MAX));
    let n: i64 = raw
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'",
            [],
            |r| r.get(0),
        )
        .expect("triggers");
    assert_eq!(n, 2);
}
