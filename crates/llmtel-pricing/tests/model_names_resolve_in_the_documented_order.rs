//! One test per resolution rule (on a small catalog, so each rule is isolated), the
//! Azure deployment mapping, `explain`, and ten real-world names from provider docs
//! against the built-in catalog.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use llmtel_pricing::{Catalog, MatchKind};

const FIXTURE: &str = r#"
[deployments]
my-gpt4o-prod = "gpt-4o"
eu-chat = "openai/gpt-4o-mini-2024-07-18"

[[model]]
id = "gpt-4o"
provider = "openai"
aliases = ["gpt-4o-latest-alias"]
[[model.price]]
effective = "2024-10-02"
input = 2.5
output = 10

[[model]]
id = "gpt-4o-mini"
provider = "openai"
[[model.price]]
effective = "2024-07-18"
input = 0.15
output = 0.6

[[model]]
id = "azure/gpt-4o"
provider = "azure.ai.openai"
[[model.price]]
effective = "2024-10-02"
input = 2.75
output = 11

[[model]]
id = "claude-3-5-sonnet"
provider = "anthropic"
[[model.price]]
effective = "2024-06-20"
input = 3
output = 15

[[model]]
id = "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo"
provider = "together"
[[model.price]]
effective = "2024-12-06"
input = 0.88
output = 0.88

[[model]]
id = "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct"
provider = "fireworks"
[[model.price]]
effective = "2024-07-23"
input = 0.2
output = 0.2
"#;

fn fixture() -> Catalog {
    Catalog::from_toml_str(FIXTURE, "fixture.toml").unwrap()
}

fn resolved(c: &Catalog, name: &str, provider: Option<&str>) -> (String, MatchKind) {
    let r = c
        .resolve(name, provider)
        .unwrap_or_else(|| panic!("`{name}` did not resolve"));
    (r.key, r.kind)
}

fn is(key: &str, kind: MatchKind) -> (String, MatchKind) {
    (key.to_string(), kind)
}

#[test]
fn rule_1_deployment_names_map_to_their_model() {
    let c = fixture();
    assert_eq!(
        resolved(&c, "my-gpt4o-prod", None),
        is("gpt-4o", MatchKind::Deployment)
    );
    // With the Azure hint the model is priced at Azure's own entry.
    assert_eq!(
        resolved(&c, "my-gpt4o-prod", Some("azure.ai.openai")),
        is("azure/gpt-4o", MatchKind::Deployment)
    );
    assert_eq!(
        resolved(&c, "azure/my-gpt4o-prod", None),
        is("gpt-4o", MatchKind::Deployment)
    );
    // The mapped model is itself resolved (prefix, snapshot).
    assert_eq!(
        resolved(&c, "eu-chat", None),
        is("gpt-4o-mini", MatchKind::Deployment)
    );
    // In code, and surviving a merge over the built-in catalog.
    let mut b = Catalog::builtin().merged_with(&c);
    assert_eq!(
        resolved(&b, "my-gpt4o-prod", None),
        is("gpt-4o", MatchKind::Deployment)
    );
    b.add_deployment("prod-sonnet", "claude-sonnet-4-5");
    assert_eq!(
        resolved(&b, "prod-sonnet", None),
        is("claude-sonnet-4-5", MatchKind::Deployment)
    );
    // Unmapped: not known.
    assert_eq!(c.resolve("my-gpt4o-staging", None), None);
}

#[test]
fn a_deployment_whose_target_maps_back_to_it_resolves_once_and_does_not_loop() {
    // A model name pointed at a provider's entry of itself, and a pair pointing at each
    // other: the target is the model served, resolved without the mapping (these overflowed
    // the stack, aborting the process at the first call).
    let mut c = Catalog::builtin().clone();
    c.add_deployment("gpt-4o", "azure/gpt-4o");
    c.add_deployment("a-dep", "b-dep");
    c.add_deployment("b-dep", "a-dep");
    assert_eq!(
        resolved(&c, "gpt-4o", None),
        is("azure/gpt-4o", MatchKind::Deployment)
    );
    assert_eq!(c.resolve("a-dep", None), None);
    assert!(!c.explain("b-dep", None).is_empty());
}

#[test]
fn a_chain_of_deployments_resolves_to_the_model_at_its_end() {
    // `a` names `b`, which names a model: `a` is priced as that model (it was unknown when
    // a deployment's target was resolved without the mapping). A chain ending in a cycle
    // resolves to nothing; a name the chain already followed is a model name.
    let mut c = fixture();
    c.add_deployment("a", "b");
    c.add_deployment("b", "gpt-4o");
    c.add_deployment("canary", "azure/a");
    c.add_deployment("x", "y");
    c.add_deployment("y", "z");
    c.add_deployment("z", "x");
    assert_eq!(resolved(&c, "a", None), is("gpt-4o", MatchKind::Deployment));
    assert_eq!(
        resolved(&c, "canary", None),
        is("gpt-4o", MatchKind::Deployment)
    );
    assert_eq!(
        resolved(&c, "a", Some("azure.ai.openai")),
        is("azure/gpt-4o", MatchKind::Deployment)
    );
    assert_eq!(c.resolve("x", None), None);
    // What `llmtel prices check` judges a deployment by.
    let r = c.resolve_deployment("a", None).unwrap();
    assert_eq!((r.key, r.kind), is("gpt-4o", MatchKind::Deployment));
    assert!(c.resolve_deployment("y", None).is_none());
    assert!(c.resolve_deployment("gpt-4o", None).is_none());
    // A chain longer than the hops followed ends where the hops run out.
    let mut long = fixture();
    for i in 0..llmtel_pricing::MAX_DEPLOYMENT_HOPS {
        long.add_deployment(&format!("d{i}"), &format!("d{}", i + 1));
    }
    long.add_deployment(
        &format!("d{}", llmtel_pricing::MAX_DEPLOYMENT_HOPS),
        "gpt-4o",
    );
    assert_eq!(long.resolve("d0", None), None);
    assert_eq!(
        resolved(&long, "d1", None),
        is("gpt-4o", MatchKind::Deployment)
    );
}

#[test]
fn rule_2_exact_id() {
    assert_eq!(
        resolved(&fixture(), "gpt-4o", None),
        is("gpt-4o", MatchKind::Exact)
    );
}

#[test]
fn rule_3_alias() {
    assert_eq!(
        resolved(&fixture(), "gpt-4o-latest-alias", None),
        is("gpt-4o", MatchKind::Alias)
    );
}

#[test]
fn rule_4_case() {
    assert_eq!(
        resolved(&fixture(), "GPT-4o", None),
        is("gpt-4o", MatchKind::Case)
    );
}

#[test]
fn rule_4b_the_provider_hint_picks_the_providers_own_entry() {
    let c = fixture();
    assert_eq!(
        resolved(&c, "gpt-4o", Some("azure.ai.openai")),
        is("azure/gpt-4o", MatchKind::ProviderPrefix)
    );
    assert_eq!(
        resolved(&c, "gpt-4o", Some("openai")),
        is("gpt-4o", MatchKind::Exact)
    );
}

#[test]
fn rule_5_provider_prefixes() {
    let c = fixture();
    for name in ["openai/gpt-4o", "azure/gpt-4o"] {
        let want = if name.starts_with("azure") {
            is("azure/gpt-4o", MatchKind::Exact)
        } else {
            is("gpt-4o", MatchKind::ProviderPrefix)
        };
        assert_eq!(resolved(&c, name, None), want, "{name}");
    }
    assert_eq!(
        resolved(&c, "anthropic/claude-3-5-sonnet", None),
        is("claude-3-5-sonnet", MatchKind::ProviderPrefix)
    );
    // The hinted provider's LiteLLM prefix is added.
    assert_eq!(
        resolved(
            &c,
            "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            Some("together")
        ),
        is(
            "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
            MatchKind::ProviderPrefix
        )
    );
    assert_eq!(
        resolved(&c, "llama-v3p1-8b-instruct", Some("fireworks")),
        is(
            "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct",
            MatchKind::ProviderPrefix
        )
    );
    // Leading segments are removed one at a time.
    assert_eq!(
        resolved(
            &c,
            "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct",
            None
        ),
        is(
            "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct",
            MatchKind::Exact
        )
    );
    assert_eq!(
        resolved(
            &c,
            "projects/p/locations/us-central1/publishers/openai/models/gpt-4o",
            None
        ),
        is("gpt-4o", MatchKind::ProviderPrefix)
    );
}

#[test]
fn rule_6_dated_snapshots_resolve_to_their_family() {
    let c = fixture();
    assert_eq!(
        resolved(&c, "gpt-4o-2024-08-06", None),
        is("gpt-4o", MatchKind::Snapshot)
    );
    assert_eq!(
        resolved(&c, "claude-3-5-sonnet-20241022", None),
        is("claude-3-5-sonnet", MatchKind::Snapshot)
    );
    // A prefixed snapshot keeps its provider's entry.
    assert_eq!(
        resolved(&c, "azure/gpt-4o-2024-11-20", None),
        is("azure/gpt-4o", MatchKind::Snapshot)
    );
}

#[test]
fn rule_7_bedrock_ids_with_region_and_version() {
    assert_eq!(
        resolved(
            &fixture(),
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            None
        ),
        is("claude-3-5-sonnet", MatchKind::BedrockId)
    );
}

#[test]
fn rule_8_the_last_segment_of_a_prefixed_id() {
    assert_eq!(
        resolved(&fixture(), "Llama-3.3-70B-Instruct-Turbo", None),
        is(
            "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
            MatchKind::ProviderPrefix
        )
    );
}

#[test]
fn explain_lists_the_steps_tried() {
    let c = fixture();
    let steps = c.explain("openai/gpt-4o-2024-08-06", None);
    let rendered: Vec<(&str, &str, Option<&str>)> = steps
        .iter()
        .map(|s| (s.step, s.tried.as_str(), s.matched.as_deref()))
        .collect();
    assert_eq!(
        rendered,
        vec![
            ("exact / alias / case", "openai/gpt-4o-2024-08-06", None),
            ("provider_prefix", "gpt-4o-2024-08-06", None),
            ("snapshot", "openai/gpt-4o-2024-08-06", None),
            ("snapshot", "gpt-4o-2024-08-06", Some("gpt-4o")),
        ]
    );
}

/// Ten names as the providers' docs spell them, against the built-in catalog.
#[test]
fn ten_real_world_names_from_provider_docs() {
    use MatchKind::*;
    let c = Catalog::builtin();
    let cases: &[(&str, Option<&str>, &str, MatchKind)] = &[
        // OpenAI model page: the dated snapshot of gpt-4o.
        ("gpt-4o-2024-08-06", None, "gpt-4o", Snapshot),
        // Anthropic models overview: the API id of Claude Sonnet 4.5.
        (
            "claude-sonnet-4-5-20250929",
            None,
            "claude-sonnet-4-5",
            Snapshot,
        ),
        // Amazon Bedrock: the cross-region inference profile id.
        (
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            None,
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            Exact,
        ),
        // Amazon Bedrock: Nova Pro.
        ("amazon.nova-pro-v1:0", None, "amazon.nova-pro-v1:0", Exact),
        // Vertex AI: Claude with the @version suffix.
        (
            "claude-3-5-sonnet-v2@20241022",
            None,
            "claude-3-5-sonnet",
            Snapshot,
        ),
        // Gemini API: the REST resource name.
        (
            "models/gemini-2.5-pro",
            None,
            "gemini-2.5-pro",
            ProviderPrefix,
        ),
        // Together AI: the model string of its docs.
        (
            "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            Some("together"),
            "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
            ProviderPrefix,
        ),
        // Fireworks AI: the full model path.
        (
            "accounts/fireworks/models/llama-v3p1-8b-instruct",
            Some("fireworks"),
            "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct",
            ProviderPrefix,
        ),
        // DeepSeek API.
        ("deepseek-chat", Some("deepseek"), "deepseek-chat", Exact),
        // Cohere: Command R+ of August 2024.
        (
            "command-r-plus-08-2024",
            None,
            "command-r-plus-08-2024",
            Exact,
        ),
        // Mistral: the -latest alias, with the provider hint.
        (
            "mistral-large-latest",
            Some("mistral_ai"),
            "mistral/mistral-large-latest",
            ProviderPrefix,
        ),
    ];
    for &(name, provider, key, kind) in cases {
        assert_eq!(
            resolved(c, name, provider),
            is(key, kind),
            "resolving `{name}` ({provider:?})"
        );
    }
}
