//! The batch discount applies to every rate a call is priced at: Anthropic's 1-hour cache
//! writes, audio, image and video tokens (a listed batch modality rate as listed); a
//! service tier keeps the 1-hour write at its ratio to the input rate.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use llmtel_pricing::{Call, Catalog, CostBreakdown, Usage, UsageDetails};

fn at() -> Call<'static> {
    Call::at("2026-11-24T08:00:00Z".parse().unwrap())
}

fn priced(c: &Catalog, model: &str, usage: &Usage, call: &Call<'_>) -> CostBreakdown {
    let p = c
        .price_call(model, None, usage, call)
        .unwrap_or_else(|e| panic!("{model}: {e}"));
    assert!(p.notes.is_empty(), "{model}: {:?}", p.notes);
    p.breakdown
}

#[test]
fn batch_one_hour_cache_writes_are_half_the_one_hour_rate() {
    // claude-sonnet-4-5: $3 in, $6 1-hour write, $15 out; Message Batches half of each.
    let usage = Usage {
        cache_write_tokens: 100_000,
        ..Usage::new(101_000, 500)
    };
    let hour = |n: u64| {
        at().with_service_tier("batch").with_details(UsageDetails {
            cache_write_1h_tokens: n,
            ..UsageDetails::default()
        })
    };
    let c = Catalog::builtin();
    // 1,000 × $1.50 + 100,000 × $3 + 500 × $7.50 (was $0.19275: the writes at $1.875)
    let b = priced(c, "claude-sonnet-4-5", &usage, &hour(100_000));
    assert_eq!(b.cache_write.to_string(), "$0.300000");
    assert_eq!(b.total.to_string(), "$0.305250");
    // 60,000 1-hour writes at $3 and 40,000 5-minute ones at $1.875
    let b = priced(c, "claude-sonnet-4-5", &usage, &hour(60_000));
    assert_eq!(b.cache_write.to_string(), "$0.255000");
    assert_eq!(b.total.to_string(), "$0.260250");
}

#[test]
fn a_service_tier_keeps_the_one_hour_write_at_its_ratio_to_the_input_rate() {
    let c = Catalog::from_toml_str(
        r#"
[[model]]
id = "claude-tiered"
provider = "anthropic"
[[model.price]]
effective = "2025-01-01"
input = 3.0
output = 15.0
cache_write = 3.75
cache_write_1h = 6.0
[model.price.service_tier.priority]
input = 6.0
output = 30.0
cache_write = 7.5
"#,
        "p.toml",
    )
    .unwrap();
    let usage = Usage {
        cache_write_tokens: 100_000,
        ..Usage::new(101_000, 500)
    };
    let call = at()
        .with_service_tier("priority")
        .with_details(UsageDetails {
            cache_write_1h_tokens: 100_000,
            ..UsageDetails::default()
        });
    // 1,000 × $6 + 100,000 × $12 (2x the tier's input, was the 5-minute $7.50) + 500 × $30
    let b = priced(&c, "claude-tiered", &usage, &call);
    assert_eq!(b.cache_write.to_string(), "$1.200000");
    assert_eq!(b.total.to_string(), "$1.221000");
}

#[test]
fn batch_discounts_audio_image_and_video_tokens() {
    let c = Catalog::builtin();
    let batch = |details: UsageDetails| at().with_service_tier("batch").with_details(details);
    // vertex_ai/gemini-2.5-flash: audio $1.00/M, batch $0.50/M (input $0.30, batch $0.15).
    let audio = UsageDetails {
        audio_input_tokens: 1_000_000,
        ..UsageDetails::default()
    };
    let b = priced(
        c,
        "vertex_ai/gemini-2.5-flash",
        &Usage::new(1_000_000, 0),
        &batch(audio),
    );
    assert_eq!(b.audio_input.to_string(), "$0.500000"); // was $1.00
    assert_eq!(b.total.to_string(), "$0.500000");
    // Cached audio: $0.10/M, batch $0.05/M; 400,000 cached, 600,000 not.
    let cached = UsageDetails {
        cache_read_audio_tokens: 400_000,
        ..audio
    };
    let usage = Usage {
        cache_read_tokens: 400_000,
        ..Usage::new(1_000_000, 0)
    };
    let b = priced(c, "vertex_ai/gemini-2.5-flash", &usage, &batch(cached));
    assert_eq!(b.cached_audio.to_string(), "$0.020000"); // was $0.04
    assert_eq!(b.total.to_string(), "$0.320000"); // + 600,000 × $0.50
    // claude-sonnet-4-5 lists no modality rate: image, video and audio tokens at the batch
    // input rate, $1.50/M (was $3).
    let media = UsageDetails {
        image_input_tokens: 60_000,
        video_input_tokens: 10_000,
        audio_input_tokens: 30_000,
        ..UsageDetails::default()
    };
    let b = priced(
        c,
        "claude-sonnet-4-5",
        &Usage::new(100_000, 0),
        &batch(media),
    );
    assert_eq!(b.image_input.to_string(), "$0.090000");
    assert_eq!(b.video_input.to_string(), "$0.015000");
    assert_eq!(b.audio_input.to_string(), "$0.045000");
    assert_eq!(b.total.to_string(), "$0.150000");
}

#[test]
fn listed_batch_modality_rates_are_used_as_listed() {
    // LiteLLM lists gemini-2.5-flash-lite's batch audio at $0.05/M, not the $0.15/M the
    // text discount would give; gpt-image-2's output tokens are image tokens, $30/M, batch
    // $15/M.
    let json = r#"{
        "lite": {"litellm_provider": "gemini", "mode": "chat",
            "input_cost_per_token": 1e-07, "output_cost_per_token": 4e-07,
            "input_cost_per_token_batches": 5e-08, "output_cost_per_token_batches": 2e-07,
            "input_cost_per_audio_token": 3e-07, "input_cost_per_audio_token_batches": 5e-08},
        "img": {"litellm_provider": "openai", "mode": "image_generation",
            "input_cost_per_token": 5e-06, "input_cost_per_token_batches": 2.5e-06,
            "input_cost_per_image_token": 8e-06, "input_cost_per_image_token_batches": 4e-06,
            "output_cost_per_image_token": 3e-05, "output_cost_per_image_token_batches": 1.5e-05}
    }"#;
    let c = Catalog::from_litellm_json(json, "p.json").unwrap();
    let audio = UsageDetails {
        audio_input_tokens: 1_000_000,
        ..UsageDetails::default()
    };
    let call = at().with_service_tier("batch").with_details(audio);
    let b = priced(&c, "lite", &Usage::new(1_000_000, 0), &call);
    assert_eq!(b.audio_input.to_string(), "$0.050000");
    let image = UsageDetails {
        image_input_tokens: 1_000_000,
        image_output_tokens: 1_000_000,
        ..UsageDetails::default()
    };
    let call = at().with_service_tier("batch").with_details(image);
    let b = priced(&c, "img", &Usage::new(1_000_000, 1_000_000), &call);
    assert_eq!(b.image_input.to_string(), "$4.000000");
    assert_eq!(b.image_output.to_string(), "$15.000000");
    assert_eq!(b.total.to_string(), "$19.000000");
    // Output tokens not split out are image tokens too: $15/M in batch.
    let call = at().with_service_tier("batch");
    let b = priced(&c, "img", &Usage::new(0, 1_000_000), &call);
    assert_eq!(b.total.to_string(), "$15.000000");

    // The same in a TOML price file.
    let c = Catalog::from_toml_str(
        r#"
[[model]]
id = "lite"
provider = "gcp.gemini"
[[model.price]]
effective = "2025-01-01"
input = 0.1
output = 0.4
batch_input = 0.05
batch_output = 0.2
[model.price.modality]
audio_input = 0.3
[model.price.batch_modality]
audio_input = 0.05
"#,
        "p.toml",
    )
    .unwrap();
    let call = at().with_service_tier("batch").with_details(audio);
    let b = priced(&c, "lite", &Usage::new(1_000_000, 0), &call);
    assert_eq!(b.audio_input.to_string(), "$0.050000");
}

#[test]
fn batch_modality_rates_without_a_batch_text_rate_offer_no_batch_tier() {
    // Only a batch audio rate: the text has no batch rate, so no batch tier is offered.
    // The call is priced at the standard rates throughout and says so (it was reported as
    // `batch`, text at the standard rate and audio at the batch one, with no note).
    let c = Catalog::from_toml_str(
        r#"
[[model]]
id = "half"
provider = "gcp.gemini"
[[model.price]]
effective = "2025-01-01"
input = 0.1
output = 0.4
[model.price.modality]
audio_input = 0.3
[model.price.batch_modality]
audio_input = 0.05
"#,
        "p.toml",
    )
    .unwrap();
    let audio = UsageDetails {
        audio_input_tokens: 1_000_000,
        ..UsageDetails::default()
    };
    let call = at().with_service_tier("batch").with_details(audio);
    let p = c
        .price_call("half", None, &Usage::new(2_000_000, 1_000_000), &call)
        .unwrap();
    assert_eq!(p.service_tier, None);
    assert_eq!(p.notes, vec![llmtel_pricing::NOTE_SERVICE_TIER_NOT_OFFERED]);
    // 1,000,000 text × $0.10 + 1,000,000 audio × $0.30 + 1,000,000 × $0.40
    assert_eq!(p.breakdown.input.to_string(), "$0.100000");
    assert_eq!(p.breakdown.audio_input.to_string(), "$0.300000");
    assert_eq!(p.breakdown.total.to_string(), "$0.800000");
}
