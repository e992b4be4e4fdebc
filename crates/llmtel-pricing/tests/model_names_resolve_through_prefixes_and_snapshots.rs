//! Model names as applications report them resolve to catalog entries, in the documented
//! order: exact, alias, case, provider prefix, snapshot suffix, Bedrock id.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use jiff::civil::date;
use llmtel_pricing::{Catalog, MatchKind, PricingError, Usage};

#[test]
fn builtin_names_resolve_with_the_expected_kind() {
    use MatchKind::*;
    let cases: &[(&str, &str, MatchKind)] = &[
        ("gpt-4o", "gpt-4o", Exact),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13", Exact), // listed snapshot wins
        ("claude-sonnet-4-0", "claude-sonnet-4", Alias),
        ("claude-sonnet-4.5", "claude-sonnet-4-5", Alias),
        ("GPT-4o", "gpt-4o", Case),
        ("Claude-Sonnet-4-0", "claude-sonnet-4", Case),
        ("openai/gpt-4o", "gpt-4o", ProviderPrefix),
        (
            "anthropic/claude-opus-4-1",
            "claude-opus-4-1",
            ProviderPrefix,
        ),
        (
            "gemini/gemini-2.5-flash",
            "gemini-2.5-flash",
            ProviderPrefix,
        ),
        ("models/gemini-2.5-pro", "gemini-2.5-pro", ProviderPrefix),
        // Vertex AI's own entry (generated from LiteLLM) wins over the Gemini API's.
        (
            "vertex_ai/gemini-2.0-flash",
            "vertex_ai/gemini-2.0-flash",
            Exact,
        ),
        ("gpt-4o-2024-08-06", "gpt-4o", Snapshot),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", Snapshot),
        ("openai/gpt-4.1-2025-04-14", "gpt-4.1", Snapshot),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet", Snapshot),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet", Snapshot),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5", Snapshot),
        ("gemini-1.5-pro-001", "gemini-1.5-pro", Snapshot),
        ("gemini-2.5-pro-preview-05-06", "gemini-2.5-pro", Snapshot),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo", Snapshot),
        (
            "claude-3-5-sonnet-v2@20241022",
            "claude-3-5-sonnet",
            Snapshot,
        ),
        (
            "vertex_ai/claude-opus-4-1@20250805",
            "claude-opus-4-1",
            Snapshot,
        ),
        ("gpt-4-1106-preview", "gpt-4-turbo", Alias), // priced as gpt-4-turbo, not gpt-4
        // Bedrock ids listed by LiteLLM are Bedrock's own entries.
        (
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            Exact,
        ),
        (
            "anthropic.claude-3-haiku-20240307-v1:0",
            "claude-3-haiku",
            BedrockId,
        ),
        (
            "bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0",
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            ProviderPrefix,
        ),
        // Not listed: region and version removed, then the Anthropic family.
        (
            "apac.anthropic.claude-3-haiku-20240307-v1:0",
            "claude-3-haiku",
            BedrockId,
        ),
    ];
    let c = Catalog::builtin();
    for &(name, key, kind) in cases {
        let r = c
            .resolve(name, None)
            .unwrap_or_else(|| panic!("`{name}` did not resolve"));
        assert_eq!((r.key.as_str(), r.kind), (key, kind), "resolving `{name}`");
        // A second lookup (served by the cache) agrees.
        assert_eq!(c.resolve(name, None), Some(r));
    }
}

#[test]
fn names_that_only_look_similar_do_not_resolve() {
    let c = Catalog::builtin();
    for name in [
        "llama-3-70b",
        "gpt-4o-realtime-preview-2024-12-17", // realtime is priced differently
        "claude",
        "",
        "openai/",
        "mistral.mistral-huge-2402-v1:0",
    ] {
        assert_eq!(c.resolve(name, None), None, "`{name}` resolved");
    }
}

#[test]
fn the_provider_hint_breaks_ties_only() {
    let src = r#"
[[model]]
id = "acme-large-a"
provider = "acme"
aliases = ["large"]
[[model.price]]
effective = "2025-01-01"
input = 1
output = 1

[[model]]
id = "zeta-large"
provider = "zeta"
aliases = ["LARGE"]
[[model.price]]
effective = "2025-01-01"
input = 2
output = 2
"#;
    let c = Catalog::from_toml_str(src, "ties.toml").expect("parses");
    // "Large" matches both case-insensitively: the hint picks, else the smallest id.
    assert_eq!(
        c.resolve("Large", Some("zeta")).map(|r| r.key),
        Some("zeta-large".into())
    );
    assert_eq!(
        c.resolve("Large", Some("acme")).map(|r| r.key),
        Some("acme-large-a".into())
    );
    assert_eq!(
        c.resolve("Large", None).map(|r| r.key),
        Some("acme-large-a".into())
    );
    // An exact alias beats the hint.
    let r = c.resolve("large", Some("zeta")).expect("resolves");
    assert_eq!((r.key.as_str(), r.kind), ("acme-large-a", MatchKind::Alias));
}

#[test]
fn unknown_models_come_with_suggestions() {
    let err = Catalog::builtin()
        .price("gpt-4-o", None, &Usage::new(1, 1), date(2025, 1, 1))
        .expect_err("unknown");
    let PricingError::UnknownModel { model, suggestions } = &err else {
        panic!("expected UnknownModel, got {err:?}");
    };
    assert_eq!(model, "gpt-4-o");
    assert!(suggestions.iter().any(|s| s == "gpt-4o"), "{suggestions:?}");
    assert!(err.to_string().contains("gpt-4o"), "{err}");
    assert_eq!(
        Catalog::builtin().suggest("claude-sonet-4-5", 1),
        vec!["claude-sonnet-4-5"]
    );
    assert!(Catalog::builtin().suggest("x", 0).is_empty());
}

#[test]
fn merged_user_entries_replace_builtin_ones_and_take_their_aliases() {
    let user = Catalog::from_toml_str(
        r#"
[[model]]
id = "gpt-4o"
provider = "openai"
[[model.price]]
effective = "2020-01-01"
input = 1
output = 1

[[model]]
id = "my-sonnet"
provider = "anthropic"
aliases = ["claude-sonnet-4-0"]
[[model.price]]
effective = "2020-01-01"
input = 9
output = 9
"#,
        "user.toml",
    )
    .expect("parses");
    let builtin = Catalog::builtin();
    let merged = builtin.merged_with(&user);
    assert_eq!(merged.len(), builtin.len() + 1);
    let call = merged
        .price("gpt-4o", None, &Usage::new(1_000_000, 0), date(2025, 1, 1))
        .expect("priced");
    assert_eq!(call.breakdown.total.to_string(), "$1.000000");
    assert_eq!(
        merged.resolve("claude-sonnet-4-0", None).map(|r| r.key),
        Some("my-sonnet".to_string())
    );
    // The builtin catalog itself is unchanged.
    assert_eq!(
        builtin.resolve("claude-sonnet-4-0", None).map(|r| r.key),
        Some("claude-sonnet-4".to_string())
    );
}
