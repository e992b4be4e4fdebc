//! A service tier (`priority`, `flex`) prices image output tokens, and every other modality,
//! at the tier's rate: the rate the tier lists (LiteLLM
//! `output_cost_per_image_token_priority`, TOML `service_tier.<name>.image_output`), else the
//! standard modality rate scaled by the tier's text rate over the standard one (as thinking
//! tokens are). Before, image output kept the standard rate under any tier:
//! `vertex_ai/gemini-3-pro-image` at `priority` billed 10,000 image tokens $1.20, not $2.16.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use llmtel_pricing::{Call, Catalog, Usage, UsageDetails};

const SHIPPED: &str = include_str!("data/litellm_model_prices.json");

fn image_tokens(c: &Catalog, model: &str, tier: Option<&str>) -> String {
    let usage = Usage::new(0, 10_000);
    let details = UsageDetails {
        image_output_tokens: 10_000,
        ..UsageDetails::default()
    };
    let mut call = Call::at("2026-11-24T12:00:00Z".parse().unwrap()).with_details(details);
    if let Some(t) = tier {
        call = call.with_service_tier(t);
    }
    let p = c.price_call(model, None, &usage, &call).unwrap();
    assert_eq!(p.service_tier.as_deref(), tier, "{model} {tier:?}");
    assert!(p.notes.is_empty(), "{model} {tier:?}: {:?}", p.notes);
    assert_eq!(p.breakdown.image_output, p.breakdown.total);
    p.breakdown.total.to_string()
}

#[test]
fn gemini_3_pro_image_bills_image_tokens_at_the_priority_rate_litellm_lists() {
    // Standard image output $120/M; priority lists $216/M (output_cost_per_image_token_priority
    // 2.16e-4); flex lists none: $120/M x flex output $6/M / standard output $12/M = $60/M.
    let litellm = Catalog::from_litellm_json(SHIPPED, "litellm.json").unwrap();
    for (c, model) in [
        (Catalog::builtin(), "vertex_ai/gemini-3-pro-image"),
        (&litellm, "vertex_ai/gemini-3-pro-image"),
        (&litellm, "gemini-3-pro-image"),
    ] {
        assert_eq!(image_tokens(c, model, None), "$1.200000", "{model}");
        assert_eq!(
            image_tokens(c, model, Some("priority")),
            "$2.160000",
            "{model}"
        );
        assert_eq!(image_tokens(c, model, Some("flex")), "$0.600000", "{model}");
    }
}

#[test]
fn a_price_file_lists_a_service_tier_image_output_rate_and_other_modalities_scale() {
    let c = Catalog::from_toml_str(
        r#"
[[model]]
id = "img"
provider = "openai"
[[model.price]]
effective = "2025-01-01"
input = 1.0
output = 10.0
[model.price.modality]
image_output = 100.0
audio_output = 40.0
video_input = 3.0
[model.price.service_tier.priority]
input = 2.0
output = 15.0
image_output = 180.0
[model.price.service_tier.flex]
input = 0.5
output = 5.0
"#,
        "prices.toml",
    )
    .unwrap();
    assert_eq!(image_tokens(&c, "img", Some("priority")), "$1.800000"); // listed $180/M
    assert_eq!(image_tokens(&c, "img", Some("flex")), "$0.500000"); // $100/M x 5/10
    let usage = Usage::new(1_000_000, 1_000_000);
    let details = UsageDetails {
        video_input_tokens: 1_000_000,
        audio_output_tokens: 1_000_000,
        ..UsageDetails::default()
    };
    let call = Call::at("2026-11-24T12:00:00Z".parse().unwrap()).with_details(details);
    let p = c
        .price_call("img", None, &usage, &call.with_service_tier("priority"))
        .unwrap();
    assert_eq!(p.breakdown.video_input.to_string(), "$6.000000"); // $3/M x 2/1
    assert_eq!(p.breakdown.audio_output.to_string(), "$60.000000"); // $40/M x 15/10
    let p = c.price_call("img", None, &usage, &call).unwrap();
    assert_eq!(p.breakdown.video_input.to_string(), "$3.000000");
    assert_eq!(p.breakdown.audio_output.to_string(), "$40.000000");
}
