//! A model name longer than 512 bytes (a client may send any) is matched only as a
//! deployment, id or alias, in time linear in its length: it is not taken through every
//! prefix-stripped form with every snapshot suffix removed (time cubic in its length), and
//! not cached (the cache kept 4,096 names of any length: 4 GB of megabyte names). Names up
//! to the bound resolve through every step as before.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use llmtel_pricing::{Catalog, MatchKind};

/// `openai/` repeated, then `gpt-4o`, then `-2024` snapshot segments: every step has many
/// forms to try.
fn long_name(bytes: usize) -> String {
    let mut name = "openai/".repeat(bytes / 14);
    name.push_str("gpt-4o");
    while name.len() < bytes {
        name.push_str("-2024");
    }
    name
}

#[test]
fn an_overlong_name_is_tried_once_as_a_whole() {
    let c = Catalog::builtin();
    let name = long_name(600);
    assert!(name.len() > 512);
    let steps = c.explain(&name, None);
    let tried: Vec<&str> = steps.iter().map(|s| s.step).collect();
    assert_eq!(tried, ["exact / alias / case"], "{} steps", steps.len());
    assert!(c.resolve(&name, None).is_none());
    // A megabyte name: one linear lookup, no answer.
    assert!(c.resolve(&long_name(1 << 20), Some("openai")).is_none());
}

#[test]
fn names_up_to_512_bytes_resolve_through_every_step() {
    let c = Catalog::builtin();
    let name = long_name(500);
    assert!(name.len() <= 512);
    let r = c.resolve(&name, None).unwrap();
    assert_eq!((r.key.as_str(), r.kind), ("gpt-4o", MatchKind::Snapshot));
}

#[test]
fn an_overlong_id_of_a_price_file_still_resolves_exactly() {
    let id = format!("my-{}", "model".repeat(200));
    let c = Catalog::from_toml_str(
        &format!("[[model]]\nid = \"{id}\"\nprovider = \"openai\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 1\noutput = 2\n"),
        "prices.toml",
    )
    .unwrap();
    let r = c.resolve(&id, None).unwrap();
    assert_eq!((r.key.as_str(), r.kind), (id.as_str(), MatchKind::Exact));
    let r = c.resolve(&id.to_uppercase(), None).unwrap();
    assert_eq!(r.kind, MatchKind::Case);
}
