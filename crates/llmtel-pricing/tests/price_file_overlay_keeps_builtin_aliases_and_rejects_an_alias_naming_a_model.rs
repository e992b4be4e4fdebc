//! A price file layered over the built-in catalog: an entry it replaces keeps the built-in
//! aliases the file does not claim (LiteLLM's file has none), and an alias that is another
//! model's id (which would never apply: an exact id wins) is an error naming the field
//! (`try_merged_with`, `builtin_with`), or at run time (`PriceSources::load`) left out of a
//! file that otherwise applies, with a warning.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::path::PathBuf;

use jiff::civil::date;
use llmtel_pricing::{
    Catalog, MatchKind, PriceSources, Usage, price_source_failures, price_source_warnings,
};

fn litellm_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/litellm_model_prices.json")
}

fn cost(c: &Catalog, model: &str) -> String {
    c.price(
        model,
        None,
        &Usage::new(1_000_000, 1_000_000),
        date(2026, 1, 1),
    )
    .unwrap_or_else(|e| panic!("{model}: {e}"))
    .breakdown
    .total
    .to_string()
}

#[test]
fn litellm_json_over_the_builtin_catalog_keeps_the_builtin_aliases() {
    let layered = PriceSources::default().with_file(litellm_file()).load();
    assert!(layered.failures.is_empty(), "{:?}", layered.failures);
    let c = &layered.catalog;
    let r = c.resolve("claude-sonnet-4.5", None).unwrap();
    assert_eq!(
        (r.key.as_str(), r.kind),
        ("claude-sonnet-4-5", MatchKind::Alias)
    );
    let r = c.resolve("gpt-4-0125-preview", None).unwrap();
    assert_eq!((r.key.as_str(), r.kind), ("gpt-4-turbo", MatchKind::Alias));
    // gpt-4-turbo's $10 / $30 per million (was gpt-4's $30 / $60: $90).
    assert_eq!(cost(c, "gpt-4-0125-preview"), "$40.000000");
    // The same through Catalog::builtin_with and merged_with.
    let c = Catalog::builtin_with(&litellm_file()).unwrap();
    assert_eq!(cost(&c, "gpt-4-0125-preview"), "$40.000000");
    let user = Catalog::load(&litellm_file()).unwrap();
    let c = Catalog::builtin().merged_with(&user);
    assert_eq!(
        c.resolve("claude-sonnet-4.5", None).map(|r| r.key),
        Some("claude-sonnet-4-5".to_string())
    );
}

#[test]
fn a_replacing_entry_keeps_unclaimed_aliases_and_its_own() {
    let user = Catalog::from_toml_str(
        r#"
[[model]]
id = "gpt-4-turbo"
provider = "openai"
aliases = ["my-turbo"]
[[model.price]]
effective = "2020-01-01"
input = 1
output = 1

[[model]]
id = "gpt-4-1106-preview"
provider = "openai"
[[model.price]]
effective = "2020-01-01"
input = 2
output = 2
"#,
        "user.toml",
    )
    .unwrap();
    let c = Catalog::builtin()
        .try_merged_with(&user, "user.toml")
        .unwrap();
    assert_eq!(cost(&c, "my-turbo"), "$2.000000");
    assert_eq!(cost(&c, "gpt-4-0125-preview"), "$2.000000");
    // Claimed by the file (as an id): its own entry.
    assert_eq!(cost(&c, "gpt-4-1106-preview"), "$4.000000");
    let aliases = &c.get("gpt-4-turbo").unwrap().aliases;
    assert!(
        !aliases.iter().any(|a| a == "gpt-4-1106-preview"),
        "{aliases:?}"
    );
}

#[test]
fn an_alias_naming_another_model_is_rejected_with_the_field_and_the_fix() {
    let src = r#"
[[model]]
id = "my-4o"
provider = "openai"
aliases = ["gpt-4o"]
[[model.price]]
effective = "2020-01-01"
input = 1
output = 1
"#;
    let path = std::env::temp_dir().join(format!("llmtel-alias-id-{}.toml", std::process::id()));
    std::fs::write(&path, src).unwrap();
    let origin = path.display().to_string();
    let check = |e: String| {
        assert!(
            e.contains(&origin)
                && e.contains("`my-4o`")
                && e.contains("`aliases`")
                && e.contains("`gpt-4o`")
                && e.contains("remove the alias"),
            "{e}"
        );
    };
    check(
        Catalog::builtin_with(&path)
            .map(|_| ())
            .unwrap_err()
            .to_string(),
    );
    let user = Catalog::load(&path).unwrap();
    check(
        Catalog::builtin()
            .try_merged_with(&user, &origin)
            .map(|_| ())
            .unwrap_err()
            .to_string(),
    );
    // LLMTEL_PRICES: the file applies without the alias (the exact id wins, as it always
    // did), with a warning counted; the whole file was left out, losing `my-4o`.
    let warnings_before = price_source_warnings();
    let failures_before = price_source_failures();
    let layered = PriceSources::default().with_file(&path).load();
    assert!(layered.failures.is_empty(), "{:?}", layered.failures);
    assert_eq!(layered.layers, vec![origin.clone()]);
    assert_eq!(layered.warnings.len(), 1);
    check(layered.warnings[0].to_string());
    assert!(
        layered.warnings[0].to_string().contains("left out"),
        "{}",
        layered.warnings[0]
    );
    assert!(price_source_warnings() > warnings_before);
    assert_eq!(price_source_failures(), failures_before);
    assert_eq!(cost(&layered.catalog, "gpt-4o"), "$12.500000");
    assert_eq!(cost(&layered.catalog, "my-4o"), "$2.000000");
    assert!(layered.catalog.get("my-4o").unwrap().aliases.is_empty());
}
