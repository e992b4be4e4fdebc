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
