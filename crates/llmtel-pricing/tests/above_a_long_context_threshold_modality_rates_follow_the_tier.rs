//! Above a long-context threshold the whole request is priced at the tier, modality tokens
//! included: a listed input-side modality rate (audio, image, video, cached audio) keeps its
//! ratio to the input rate, an output-side one (audio, image output) to the output rate.
//! Before, they stayed at the base price, so reporting the image tokens of a long prompt
//! lowered its cost: `xai/grok-4.20`, 300k prompt tokens of which 100k image, cost $0.625
//! with the split and $0.75 without.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use llmtel_pricing::{Call, Catalog, Usage, UsageDetails};

fn at() -> Call<'static> {
    Call::at("2026-11-24T12:00:00Z".parse().unwrap())
}

#[test]
fn grok_4_20_image_tokens_above_200k_cost_the_tier_rate() {
    // input $1.25/M, above 200k $2.50/M; image input listed at $1.25/M (= input).
    let c = Catalog::builtin();
    let usage = Usage::new(300_000, 0);
    let plain = c.price_call("xai/grok-4.20", None, &usage, &at()).unwrap();
    assert_eq!(plain.breakdown.total.to_string(), "$0.750000");
    let details = UsageDetails {
        image_input_tokens: 100_000,
        ..UsageDetails::default()
    };
    let split = c
        .price_call("xai/grok-4.20", None, &usage, &at().with_details(details))
        .unwrap();
    assert_eq!(split.tier_above_input_tokens, Some(200_000));
    assert_eq!(split.breakdown.image_input.to_string(), "$0.250000");
    assert_eq!(split.breakdown.total.to_string(), "$0.750000"); // was $0.625
}

#[test]
fn in_the_builtin_catalog_reporting_the_modality_split_above_a_tier_never_lowers_the_cost() {
    // Every entry with a long-context tier and a listed input-side modality rate at or above
    // its input rate: a prompt over the highest threshold, half of it in that modality,
    // costs at least as much as the same prompt reported as text.
    let c = Catalog::builtin();
    let mut checked = 0;
    for e in c.entries() {
        let Some(p) = e.prices.last() else { continue };
        let Some(top) = p.tiers.last() else { continue };
        let m = p.dims.modality;
        let prompt = top.above_input_tokens + 1_000;
        let usage = Usage::new(prompt, 0);
        let plain = c
            .price_call(&e.id, Some(&e.provider), &usage, &at())
            .unwrap()
            .breakdown
            .total;
        for (rate, details) in [
            (
                m.audio_input,
                UsageDetails {
                    audio_input_tokens: prompt / 2,
                    ..UsageDetails::default()
                },
            ),
            (
                m.image_input,
                UsageDetails {
                    image_input_tokens: prompt / 2,
                    ..UsageDetails::default()
                },
            ),
            (
                m.video_input,
                UsageDetails {
                    video_input_tokens: prompt / 2,
                    ..UsageDetails::default()
                },
            ),
        ] {
            let Some(rate) = rate.filter(|r| *r >= p.rates.input) else {
                continue;
            };
            let split = c
                .price_call(
                    &e.id,
                    Some(&e.provider),
                    &usage,
                    &at().with_details(details),
                )
                .unwrap()
                .breakdown
                .total;
            assert!(
                split >= plain,
                "{}: modality rate {rate} >= input {}, yet {split} < {plain}",
                e.id,
                p.rates.input
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} entries checked");
}

#[test]
fn output_side_modality_rates_follow_the_tier_output_rate() {
    let c = Catalog::from_toml_str(
        r#"
[[model]]
id = "m"
provider = "gcp.gemini"
[[model.price]]
effective = "2025-01-01"
input = 1.0
output = 10.0
[model.price.modality]
audio_input = 3.0
audio_output = 20.0
[[model.price.tier]]
above_input_tokens = 200000
input = 2.0
output = 15.0
"#,
        "prices.toml",
    )
    .unwrap();
    let usage = Usage::new(300_000, 1_000_000);
    let details = UsageDetails {
        audio_input_tokens: 100_000,
        audio_output_tokens: 1_000_000,
        ..UsageDetails::default()
    };
    let p = c
        .price_call("m", None, &usage, &at().with_details(details))
        .unwrap();
    assert_eq!(p.breakdown.audio_input.to_string(), "$0.600000"); // 100k x $3/M x 2/1
    assert_eq!(p.breakdown.audio_output.to_string(), "$30.000000"); // 1M x $20/M x 15/10
}
