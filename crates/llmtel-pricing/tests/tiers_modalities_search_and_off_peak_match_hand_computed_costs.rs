//! Hand-computed costs, with the built-in catalog, of calls that use the price dimensions
//! of issue #14: OpenAI audio with `service_tier: "flex"`, OpenAI flex and priority,
//! Anthropic with web search, Gemini with audio tokens, DeepSeek off-peak and on-peak.

use llmtel_pricing::{
    Call, Catalog, NOTE_MODALITY_TOKENS_EXCLUSIVE, NOTE_REQUEST_CHARGE_UNKNOWN,
    NOTE_SERVICE_TIER_NOT_OFFERED, PricedCall, SearchContextSize, Usage, UsageDetails,
};

fn call(model: &str, provider: &str, usage: &Usage, call: &Call<'_>) -> PricedCall {
    Catalog::builtin()
        .price_call(model, Some(provider), usage, call)
        .unwrap_or_else(|e| panic!("{model}: {e}"))
}

fn at(s: &str) -> Call<'static> {
    Call::at(s.parse().expect("RFC 3339 instant"))
}

/// A weekday, on-peak for DeepSeek (Tuesday 08:00 UTC).
const TUESDAY_0800: &str = "2026-11-24T08:00:00Z";

#[test]
fn openai_audio_with_flex_prices_audio_and_falls_back_to_standard_with_a_note() {
    // gpt-audio: text $2.50/M in, $10/M out; audio $32/M in, $64/M out; no flex tier.
    let usage = Usage::new(2_000, 1_000);
    let details = UsageDetails {
        audio_input_tokens: 1_500,
        audio_output_tokens: 800,
        ..UsageDetails::default()
    };
    let p = call(
        "gpt-audio",
        "openai",
        &usage,
        &at(TUESDAY_0800)
            .with_details(details)
            .with_service_tier("flex"),
    );
    let b = &p.breakdown;
    assert_eq!(b.input.to_string(), "$0.001250"); //   500 text × $2.50/M
    assert_eq!(b.audio_input.to_string(), "$0.048000"); // 1,500 × $32/M
    assert_eq!(b.output.to_string(), "$0.002000"); //   200 text × $10/M
    assert_eq!(b.audio_output.to_string(), "$0.051200"); // 800 × $64/M
    assert_eq!(b.total.to_string(), "$0.102450");
    assert_eq!(p.service_tier, None);
    assert_eq!(p.notes, vec![NOTE_SERVICE_TIER_NOT_OFFERED]);
}

#[test]
fn openai_flex_and_priority_use_the_tier_rates() {
    // gpt-5: standard $1.25 / $0.125 cached / $10; flex $0.625 / $0.0625 / $5;
    // priority $2.50 / $0.25 / $20 per million tokens.
    let usage = Usage {
        cache_read_tokens: 40_000,
        ..Usage::new(100_000, 10_000)
    };
    let flex = call(
        "gpt-5",
        "openai",
        &usage,
        &at(TUESDAY_0800).with_service_tier("flex"),
    );
    // 60,000 × 0.625 + 40,000 × 0.0625 + 10,000 × 5 (µ$) = 0.0375 + 0.0025 + 0.05
    assert_eq!(flex.breakdown.total.to_string(), "$0.090000");
    assert_eq!(flex.service_tier.as_deref(), Some("flex"));
    assert!(flex.notes.is_empty());
    let prio = call(
        "gpt-5",
        "openai",
        &usage,
        &at(TUESDAY_0800).with_service_tier("priority"),
    );
    // 60,000 × 2.5 + 40,000 × 0.25 + 10,000 × 20 = 0.15 + 0.01 + 0.2
    assert_eq!(prio.breakdown.total.to_string(), "$0.360000");
    let standard = call(
        "gpt-5",
        "openai",
        &usage,
        &at(TUESDAY_0800).with_service_tier("default"),
    );
    // 0.075 + 0.005 + 0.1
    assert_eq!(standard.breakdown.total.to_string(), "$0.180000");
    assert_eq!(standard.service_tier, None);
    assert!(standard.notes.is_empty());
}

#[test]
fn anthropic_web_search_is_charged_per_query() {
    // claude-sonnet-4-5: $3/M in, $15/M out, web search $10 per 1,000 queries.
    let usage = Usage::new(10_000, 1_000);
    let details = UsageDetails {
        web_search_queries: 2,
        ..UsageDetails::default()
    };
    let p = call(
        "claude-sonnet-4-5",
        "anthropic",
        &usage,
        &at(TUESDAY_0800).with_details(details),
    );
    assert_eq!(p.breakdown.input.to_string(), "$0.030000");
    assert_eq!(p.breakdown.output.to_string(), "$0.015000");
    assert_eq!(p.breakdown.web_search.to_string(), "$0.020000");
    assert_eq!(p.breakdown.total.to_string(), "$0.065000");
    // Anthropic has no priority tier in the catalog: standard rates, noted.
    let prio = call(
        "claude-sonnet-4-5",
        "anthropic",
        &usage,
        &at(TUESDAY_0800)
            .with_details(details)
            .with_service_tier("priority"),
    );
    assert_eq!(prio.breakdown.total, p.breakdown.total);
    assert_eq!(prio.notes, vec![NOTE_SERVICE_TIER_NOT_OFFERED]);
}

#[test]
fn every_anthropic_model_with_the_web_search_tool_charges_a_cent_a_search() {
    // Anthropic: $10 per 1,000 searches on every model that offers the tool, whatever the
    // curated entry (LiteLLM's file lists the charge for the newer models only).
    let details = UsageDetails {
        web_search_queries: 3,
        ..UsageDetails::default()
    };
    for model in [
        "claude-3-5-haiku",
        "claude-3-5-sonnet",
        "claude-3-7-sonnet",
        "claude-sonnet-4",
        "claude-opus-4",
        "claude-opus-4-1",
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
        "claude-opus-4-5",
    ] {
        let p = call(
            model,
            "anthropic",
            &Usage::new(1_000, 100),
            &at(TUESDAY_0800).with_details(details),
        );
        assert_eq!(p.breakdown.web_search.to_string(), "$0.030000", "{model}");
        assert!(p.notes.is_empty(), "{model}: {:?}", p.notes);
    }
}

#[test]
fn web_search_context_size_selects_the_per_query_price() {
    let toml = r#"
[[model]]
id = "searcher"
provider = "openai"
[[model.price]]
effective = "2025-01-01"
input = 1.0
output = 2.0
[model.price.per_request]
web_search = { low = 0.005, medium = "0.008", high = 0.012 }
"#;
    let c = Catalog::from_toml_str(toml, "prices.toml").unwrap_or_else(|e| panic!("{e}"));
    let usage = Usage::new(1_000_000, 0);
    let details = UsageDetails {
        web_search_queries: 4,
        ..UsageDetails::default()
    };
    let price = |size: Option<SearchContextSize>| {
        let mut call = at(TUESDAY_0800).with_details(details);
        call.search_context_size = size;
        let p = c.price_call("searcher", None, &usage, &call).unwrap();
        (
            p.breakdown.web_search.to_string(),
            p.breakdown.total.to_string(),
        )
    };
    assert_eq!(
        price(Some(SearchContextSize::Low)),
        ("$0.020000".into(), "$1.020000".into())
    );
    assert_eq!(price(None), ("$0.032000".into(), "$1.032000".into()));
    assert_eq!(
        price(Some(SearchContextSize::High)),
        ("$0.048000".into(), "$1.048000".into())
    );
}

#[test]
fn a_request_charge_missing_from_the_catalog_is_noted_not_invented() {
    let usage = Usage::new(1_000, 100);
    let details = UsageDetails {
        code_interpreter_sessions: 1,
        ..UsageDetails::default()
    };
    let p = call(
        "gpt-5",
        "openai",
        &usage,
        &at(TUESDAY_0800).with_details(details),
    );
    assert_eq!(p.breakdown.code_interpreter.picos(), 0);
    assert_eq!(p.notes, vec![NOTE_REQUEST_CHARGE_UNKNOWN]);
}

#[test]
fn gemini_audio_tokens_are_priced_at_the_audio_rate() {
    // gemini-2.5-flash: text $0.30/M in, audio $1.00/M in, $2.50/M out;
    // priority: text $0.54/M, audio $1.80/M, out $4.50/M.
    let usage = Usage::new(10_000, 500);
    let details = UsageDetails {
        audio_input_tokens: 6_000,
        ..UsageDetails::default()
    };
    let p = call(
        "gemini-2.5-flash",
        "gcp.gemini",
        &usage,
        &at(TUESDAY_0800).with_details(details),
    );
    assert_eq!(p.breakdown.input.to_string(), "$0.001200"); // 4,000 × 0.30
    assert_eq!(p.breakdown.audio_input.to_string(), "$0.006000"); // 6,000 × 1.00
    assert_eq!(p.breakdown.output.to_string(), "$0.001250"); // 500 × 2.50
    assert_eq!(p.breakdown.total.to_string(), "$0.008450");
    let prio = call(
        "gemini-2.5-flash",
        "gcp.gemini",
        &usage,
        &at(TUESDAY_0800)
            .with_details(details)
            .with_service_tier("priority"),
    );
    // 4,000 × 0.54 + 6,000 × 1.80 + 500 × 4.50 = 0.00216 + 0.0108 + 0.00225
    assert_eq!(prio.breakdown.total.to_string(), "$0.015210");
}

#[test]
fn gemini_cached_video_and_images_are_priced_once_at_the_cache_rate() {
    // gemini-2.5-flash: $0.30/M in (text, image, video), $0.03/M cached, $2.50/M out. A
    // 100,000-token prompt, 99,000 of it a cached video: Gemini counts the video in
    // `promptTokensDetails` and in `cachedContentTokenCount` both.
    let usage = Usage {
        cache_read_tokens: 99_000,
        ..Usage::new(100_000, 500)
    };
    let details = UsageDetails {
        video_input_tokens: 99_000,
        ..UsageDetails::default()
    };
    let p = call(
        "gemini-2.5-flash",
        "gcp.gemini",
        &usage,
        &at(TUESDAY_0800).with_details(details),
    );
    let b = &p.breakdown;
    assert_eq!(b.cache_read.to_string(), "$0.002970"); // 99,000 × 0.03
    // The 1,000 tokens not cached (text first in the cache, so video): 1,000 × 0.30
    assert_eq!(
        b.input.saturating_add(b.video_input).to_string(),
        "$0.000300"
    );
    assert_eq!(b.output.to_string(), "$0.001250"); // 500 × 2.50
    assert_eq!(b.total.to_string(), "$0.004520"); // was $0.034220: the video twice
    assert_eq!(p.notes, Vec::<&str>::new());

    // Text 2,000 + video 3,000 + images 5,000, 9,000 cached: the text, the video and
    // 4,000 image tokens at the cache rate, 1,000 image tokens at the input rate.
    let usage = Usage {
        cache_read_tokens: 9_000,
        ..Usage::new(10_000, 0)
    };
    let details = UsageDetails {
        video_input_tokens: 3_000,
        image_input_tokens: 5_000,
        ..UsageDetails::default()
    };
    let p = call(
        "gemini-2.5-flash",
        "gcp.gemini",
        &usage,
        &at(TUESDAY_0800).with_details(details),
    );
    let b = &p.breakdown;
    assert_eq!(b.video_input.to_string(), "$0.000000");
    assert_eq!(b.image_input.to_string(), "$0.000300"); // 1,000 × 0.30
    assert_eq!(b.total.to_string(), "$0.000570"); // + 9,000 × 0.03
    assert_eq!(p.notes, Vec::<&str>::new());

    // A cache within the text part leaves the media priced in full.
    let usage = Usage {
        cache_read_tokens: 1_000,
        ..Usage::new(10_000, 0)
    };
    let p = call(
        "gemini-2.5-flash",
        "gcp.gemini",
        &usage,
        &at(TUESDAY_0800).with_details(details),
    );
    // 1,000 text × 0.30 + 1,000 × 0.03 + 8,000 media × 0.30
    assert_eq!(p.breakdown.total.to_string(), "$0.002730");
}

#[test]
fn batch_discounts_the_long_context_tier_and_the_cache_too() {
    // gpt-5.4: $2.50 / $0.25 cached / $15 per million; above 272K $5 / $0.50 / $22.50;
    // batch $1.25 / $7.50, half of each rate that applies.
    let batch = |model: &str, provider: &str, usage: &Usage| {
        let p = call(
            model,
            provider,
            usage,
            &at(TUESDAY_0800).with_service_tier("batch"),
        );
        assert_eq!(p.service_tier.as_deref(), Some("batch"), "{model}");
        assert_eq!(p.notes, Vec::<&str>::new(), "{model}");
        p.breakdown.total.to_string()
    };
    let long = Usage {
        cache_read_tokens: 100_000,
        ..Usage::new(300_000, 10_000)
    };
    // 200,000 × $2.50 + 100,000 × $0.25 + 10,000 × $11.25 (was $0.375: the base batch
    // rates, the standard cache rate)
    assert_eq!(batch("gpt-5.4", "openai", &long), "$0.637500");
    let short = Usage {
        cache_read_tokens: 40_000,
        ..Usage::new(100_000, 10_000)
    };
    // 60,000 × $1.25 + 40,000 × $0.125 + 10,000 × $7.50
    assert_eq!(batch("gpt-5.4", "openai", &short), "$0.155000");
    // claude-sonnet-4-5 Message Batches: $1.50 / $7.50 (was priced at the standard rates,
    // noted "tier not offered")
    assert_eq!(
        batch(
            "claude-sonnet-4-5",
            "anthropic",
            &Usage::new(100_000, 10_000)
        ),
        "$0.225000"
    );
}

#[test]
fn modality_counts_over_the_total_are_priced_on_top_and_noted() {
    let usage = Usage::new(1_000, 0);
    let details = UsageDetails {
        audio_input_tokens: 6_000,
        ..UsageDetails::default()
    };
    let p = call(
        "gemini-2.5-flash",
        "gcp.gemini",
        &usage,
        &at(TUESDAY_0800).with_details(details),
    );
    // 1,000 text × 0.30 + 6,000 audio × 1.00
    assert_eq!(p.breakdown.total.to_string(), "$0.006300");
    assert_eq!(p.notes, vec![NOTE_MODALITY_TOKENS_EXCLUSIVE]);
}

#[test]
fn deepseek_is_half_price_in_its_off_peak_window() {
    // deepseek-v4-pro: $1.32/M in, $0.044/M cached, $3.96/M out; off-peak (weekdays
    // 00:00-01:00, 04:00-06:00, 10:00-24:00 UTC; weekends all day): $0.66, $0.022, $1.98.
    let usage = Usage {
        cache_read_tokens: 400_000,
        ..Usage::new(1_000_000, 100_000)
    };
    let on = call("deepseek-v4-pro", "deepseek", &usage, &at(TUESDAY_0800));
    // 600,000 × 1.32 + 400,000 × 0.044 + 100,000 × 3.96 = 0.792 + 0.0176 + 0.396
    assert_eq!(on.breakdown.total.to_string(), "$1.205600");
    assert!(!on.off_peak);
    let off = call(
        "deepseek-v4-pro",
        "deepseek",
        &usage,
        &at("2026-11-24T10:00:00Z"),
    );
    // 600,000 × 0.66 + 400,000 × 0.022 + 100,000 × 1.98 = 0.396 + 0.0088 + 0.198
    assert_eq!(off.breakdown.total.to_string(), "$0.602800");
    assert!(off.off_peak);
    // One second before the window opens: on-peak.
    let before = call(
        "deepseek-v4-pro",
        "deepseek",
        &usage,
        &at("2026-11-24T09:59:59Z"),
    );
    assert_eq!(before.breakdown.total, on.breakdown.total);
    // A date alone never applies a window.
    let dated = Catalog::builtin()
        .price(
            "deepseek-v4-pro",
            Some("deepseek"),
            &usage,
            jiff::civil::date(2026, 11, 28),
        )
        .unwrap();
    assert_eq!(dated.breakdown.total, on.breakdown.total);
    // Cache writes (free for DeepSeek) stay free off-peak.
    let writes = Usage {
        cache_write_tokens: 100_000,
        ..Usage::new(200_000, 0)
    };
    let off = call(
        "deepseek-v4-pro",
        "deepseek",
        &writes,
        &at("2026-11-28T03:00:00Z"),
    );
    assert!(off.off_peak);
    assert_eq!(off.breakdown.cache_write.picos(), 0);
    assert_eq!(off.breakdown.total.to_string(), "$0.066000"); // 100,000 × $0.66/M
}

#[test]
fn images_characters_and_audio_seconds_are_priced_per_unit() {
    let none = Usage::new(0, 0);
    let with = |details: UsageDetails| at(TUESDAY_0800).with_details(details);
    // LiteLLM keys per-image prices by quality and size: $0.167 per high 1024x1024 image.
    let img = call(
        "high/1024-x-1024/gpt-image-1",
        "openai",
        &none,
        &with(UsageDetails {
            images: 2,
            ..UsageDetails::default()
        }),
    );
    assert_eq!(img.breakdown.images.to_string(), "$0.334000");
    assert_eq!(img.breakdown.total.to_string(), "$0.334000");
    // tts-1: $15 per million characters.
    let tts = call(
        "tts-1",
        "openai",
        &none,
        &with(UsageDetails {
            input_characters: 1_000,
            ..UsageDetails::default()
        }),
    );
    assert_eq!(tts.breakdown.characters.to_string(), "$0.015000");
    // whisper-1: $0.006 per minute = $0.0001 per second; 90.5 s.
    let stt = call(
        "whisper-1",
        "openai",
        &none,
        &with(UsageDetails {
            input_audio_ms: 90_500,
            ..UsageDetails::default()
        }),
    );
    assert_eq!(stt.breakdown.audio_seconds.to_string(), "$0.009050");
    assert!(stt.notes.is_empty());
    // gpt-image-1 by tokens: text in $5/M, image in $10/M, image out $40/M.
    let usage = Usage::new(1_000, 4_000);
    let tok = call(
        "gpt-image-1",
        "openai",
        &usage,
        &with(UsageDetails {
            image_input_tokens: 600,
            ..UsageDetails::default()
        }),
    );
    // 400 × 5 + 600 × 10 + 4,000 × 40 (µ$) = 0.002 + 0.006 + 0.16
    assert_eq!(tok.breakdown.total.to_string(), "$0.168000");
    // The images it reports are billed through those tokens: counted, not charged again.
    let imaged = call(
        "gpt-image-1",
        "openai",
        &usage,
        &with(UsageDetails {
            image_input_tokens: 600,
            image_output_tokens: 4_000,
            images: 2,
            ..UsageDetails::default()
        }),
    );
    assert_eq!(imaged.breakdown.total.to_string(), "$0.168000");
    assert_eq!(imaged.breakdown.images.picos(), 0);
    assert!(imaged.notes.is_empty(), "{:?}", imaged.notes);
    // gpt-image-1.5 bills image output tokens ($32/M) apart from text output ($10/M):
    // 1,000 text in × $5 + 4,000 out, of which 3,900 image tokens and 100 text tokens.
    let split = call(
        "gpt-image-1.5",
        "openai",
        &usage,
        &with(UsageDetails {
            image_output_tokens: 3_900,
            ..UsageDetails::default()
        }),
    );
    assert_eq!(split.breakdown.image_output.to_string(), "$0.124800");
    assert_eq!(split.breakdown.output.to_string(), "$0.001000");
    // 0.005 + 0.001 + 0.1248
    assert_eq!(split.breakdown.total.to_string(), "$0.130800");
    // gpt-4o-transcribe reports tokens: the audio seconds are not charged as well.
    let transcribe = call(
        "gpt-4o-transcribe",
        "openai",
        &Usage::new(14, 45),
        &with(UsageDetails {
            audio_input_tokens: 14,
            input_audio_ms: 9_000,
            ..UsageDetails::default()
        }),
    );
    assert_eq!(transcribe.breakdown.audio_seconds.picos(), 0);
    // 14 audio tokens × $2.50/M + 45 × $10/M = 0.000035 + 0.00045
    assert_eq!(transcribe.breakdown.total.to_string(), "$0.000485");
    // A per-unit count the entry has no price for: nothing charged, noted.
    let chat = call(
        "gpt-5",
        "openai",
        &none,
        &with(UsageDetails {
            images: 1,
            ..UsageDetails::default()
        }),
    );
    assert_eq!(chat.breakdown.total.picos(), 0);
    assert_eq!(chat.notes, vec![llmtel_pricing::NOTE_UNIT_PRICE_UNKNOWN]);
    // A per-unit model priced without its unit count: zero, and said to be no price.
    let bare = call("whisper-1", "openai", &none, &at(TUESDAY_0800));
    assert_eq!(bare.breakdown.total.picos(), 0);
    assert_eq!(bare.notes, vec![llmtel_pricing::NOTE_UNIT_COUNTS_MISSING]);
}

#[test]
fn service_tiers_bill_thinking_tokens_at_the_tier_output_rate() {
    // vertex_ai/gemini-2.5-flash lists reasoning = output = $2.50/M; priority output
    // $4.50/M, flex $1.25/M. One million output tokens, all of them thinking.
    let usage = Usage {
        reasoning_tokens: 1_000_000,
        ..Usage::new(0, 1_000_000)
    };
    let total = |tier: &'static str| {
        let p = call(
            "vertex_ai/gemini-2.5-flash",
            "gcp.vertex_ai",
            &usage,
            &at(TUESDAY_0800).with_service_tier(tier),
        );
        assert_eq!(p.breakdown.total, p.breakdown.reasoning, "{tier}");
        p.breakdown.total.to_string()
    };
    assert_eq!(total("default"), "$2.500000");
    assert_eq!(total("priority"), "$4.500000"); // was $2.50
    assert_eq!(total("flex"), "$1.250000"); // was $2.50
}

#[test]
fn gemini_cached_audio_without_its_split_is_priced_once_at_the_cached_audio_rate() {
    // gemini-2.5-flash: text $0.30/M, cached $0.03/M; audio $1.00/M, cached audio $0.10/M.
    // 10,000 prompt tokens, 9,000 of them audio; 8,000 cached, no cached-audio split: the
    // 1,000 text tokens are the cached text, the other 7,000 cached tokens cached audio.
    let usage = Usage {
        cache_read_tokens: 8_000,
        ..Usage::new(10_000, 0)
    };
    let details = UsageDetails {
        audio_input_tokens: 9_000,
        ..UsageDetails::default()
    };
    let p = call(
        "gemini-2.5-flash",
        "gcp.gemini",
        &usage,
        &at(TUESDAY_0800).with_details(details),
    );
    let b = &p.breakdown;
    assert_eq!(b.input.to_string(), "$0.000000");
    assert_eq!(b.cache_read.to_string(), "$0.000030"); // 1,000 × 0.03
    assert_eq!(b.cached_audio.to_string(), "$0.000700"); // 7,000 × 0.10
    assert_eq!(b.audio_input.to_string(), "$0.002000"); // 2,000 × 1.00
    assert_eq!(b.total.to_string(), "$0.002730"); // was $0.00954, the audio twice
    assert_eq!(p.usage_note, None);
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}
