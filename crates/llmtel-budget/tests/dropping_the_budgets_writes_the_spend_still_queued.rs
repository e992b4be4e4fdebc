//! The last `Budgets` handle dropped without a `flush` (a service that just returns from
//! `main`) still writes every settled call to a durable store: nothing queued for the
//! background writer is lost.

use std::sync::Arc;

use llmtel_budget::{BudgetStore, Budgets, CallContext, Period, Rule, Scope, SqliteStore};

fn budgets(path: &std::path::Path) -> Budgets {
    let store: Arc<dyn BudgetStore> = Arc::new(SqliteStore::open(path).expect("open"));
    Budgets::builder()
        .with_store(store)
        .with_rule(Rule::new("all", Scope::Global, Period::Lifetime))
        .build()
}

#[test]
fn spend_queued_for_the_writer_reaches_sqlite_when_the_last_handle_drops() {
    let dir = std::env::temp_dir().join(format!("llmtel-drop-flush-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("budget.db");
    let _ = std::fs::remove_file(&path);

    let b = budgets(&path);
    let layer_handle = b.clone();
    const CALLS: u64 = 5_000;
    for _ in 0..CALLS {
        b.record(&CallContext::new(), llmtel::Usd::from_picos(1_000), 1);
    }
    drop(b);
    // A clone still alive (the budget layer's, say): nothing is cut short yet.
    layer_handle.record(&CallContext::new(), llmtel::Usd::from_picos(1_000), 1);
    drop(layer_handle);

    let reopened = budgets(&path);
    let s = &reopened.status_for(&CallContext::new()).expect("status")[0];
    assert_eq!(
        s.spent_tokens,
        CALLS + 1,
        "every settled call is in the store after the last handle dropped (found {})",
        s.spent
    );
    assert_eq!(s.spent.picos(), u128::from(CALLS + 1) * 1_000);
    drop(reopened);
    let _ = std::fs::remove_dir_all(&dir);
}
