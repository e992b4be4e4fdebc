//! An unknown model's error suggests the nearest names, but not for a name longer than
//! `SUGGEST_MAX_BYTES`: an edit distance to every catalog name costs time in proportion to
//! the name's length, paid on every call a client makes with it.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use jiff::civil::date;
use llmtel_pricing::{Catalog, PricingError, SUGGEST_MAX_BYTES, Usage};

fn suggestions(model: &str) -> Vec<String> {
    match Catalog::builtin().price(model, None, &Usage::new(1, 1), date(2026, 1, 1)) {
        Err(PricingError::UnknownModel { suggestions, .. }) => suggestions,
        other => panic!("{model}: {other:?}"),
    }
}

#[test]
fn a_normal_name_gets_suggestions() {
    assert!(suggestions("gpt-4-o").iter().any(|s| s == "gpt-4o"));
    // Up to the bound, a name is still compared.
    let at_bound = format!("gpt-4o-{}", "x".repeat(SUGGEST_MAX_BYTES - 7));
    assert_eq!(at_bound.len(), SUGGEST_MAX_BYTES);
    assert_eq!(suggestions(&at_bound).len(), 3);
}

#[test]
fn an_overlong_name_gets_none() {
    assert_eq!(SUGGEST_MAX_BYTES, 128);
    for len in [SUGGEST_MAX_BYTES + 1, 300, 4096] {
        let name = format!("gpt-4o-{}", "x".repeat(len - 7));
        assert_eq!(suggestions(&name), Vec::<String>::new(), "{len}");
        assert!(Catalog::builtin().suggest(&name, 3).is_empty(), "{len}");
    }
}
