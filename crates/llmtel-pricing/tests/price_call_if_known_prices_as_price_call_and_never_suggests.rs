//! `Catalog::price_call_if_known` is `price_call` for names a client chooses: the same price
//! for every name the catalog resolves, and `None` (no suggestions computed) for the others.

use llmtel_pricing::{Call, Catalog, PricingError, Usage};

#[test]
fn every_builtin_model_is_priced_as_price_call_prices_it() {
    let catalog = Catalog::builtin();
    let usage = Usage {
        input_tokens: 12_345,
        output_tokens: 678,
        cache_read_tokens: 1_000,
        ..Usage::default()
    };
    let call = Call::at("2026-11-25T12:00:00Z".parse().unwrap());
    let mut checked = 0;
    for entry in catalog.entries() {
        let id = entry.id.as_str();
        let provider = Some(entry.provider.as_str());
        let expected = catalog.price_call(id, provider, &usage, &call);
        let got = catalog
            .price_call_if_known(id, provider, &usage, &call)
            .unwrap_or_else(|| panic!("{id} is in the catalog but was called unknown"));
        match (expected, got) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.breakdown, b.breakdown, "{id}");
                assert_eq!((a.model, a.matched), (b.model, b.matched), "{id}");
                checked += 1;
            }
            // No price in force on the date: the same error kind either way.
            (Err(PricingError::UnknownModel { .. }), Err(PricingError::UnknownModel { .. })) => {}
            (a, b) => panic!("{id}: price_call {a:?}, price_call_if_known {b:?}"),
        }
    }
    assert!(checked > 1_000, "only {checked} models priced");
}

#[test]
fn an_unknown_name_is_none_where_price_call_suggests_names() {
    let catalog = Catalog::builtin();
    let usage = Usage {
        input_tokens: 10,
        ..Usage::default()
    };
    let call = Call::at("2026-11-25T12:00:00Z".parse().unwrap());
    assert!(
        catalog
            .price_call_if_known("gpt-4-o", Some("openai"), &usage, &call)
            .is_none()
    );
    match catalog.price_call("gpt-4-o", Some("openai"), &usage, &call) {
        Err(PricingError::UnknownModel { suggestions, .. }) => {
            assert!(!suggestions.is_empty(), "price_call still suggests names")
        }
        other => panic!("expected an unknown model, got {other:?}"),
    }
    // A name that resolves (a snapshot of a known model) is priced.
    let snapshot = catalog.price_call_if_known("gpt-4o-2099-01-01", Some("openai"), &usage, &call);
    assert!(matches!(snapshot, Some(Ok(_))), "{snapshot:?}");
}
