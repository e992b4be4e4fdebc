//! `llmtel cost` with the price dimensions of issue #14: service tier, audio and image
//! tokens, web search queries, and `--at` as an RFC 3339 instant (off-peak windows).

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::process::{Command, Output};

fn llmtel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(args)
        .output()
        .expect("run llmtel")
}

fn json(o: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn audio_tokens_and_an_unoffered_flex_tier_show_in_the_json_breakdown() {
    let v = json(&llmtel(&[
        "cost",
        "--model",
        "gpt-audio",
        "--input-tokens",
        "2000",
        "--output-tokens",
        "1000",
        "--audio-input-tokens",
        "1500",
        "--audio-output-tokens",
        "800",
        "--service-tier",
        "flex",
        "--at",
        "2026-11-24T08:00:00Z",
        "--json",
    ]));
    assert_eq!(v["breakdown_exact"]["audio_input"], "0.048000");
    assert_eq!(v["breakdown_exact"]["audio_output"], "0.051200");
    assert_eq!(v["breakdown_exact"]["input"], "0.001250");
    assert_eq!(v["cost_usd_exact"], "0.102450");
    assert_eq!(v["service_tier"], serde_json::Value::Null);
    assert_eq!(v["notes"][0], "service_tier_not_offered_priced_at_standard");
    assert_eq!(v["usage"]["audio_input_tokens"], 1500);
}

#[test]
fn service_tier_flag_prices_at_the_tier_rate() {
    // gpt-5 priority: $2.50 in, $20 out per million tokens.
    let v = json(&llmtel(&[
        "cost",
        "--model",
        "gpt-5",
        "--input-tokens",
        "1000000",
        "--output-tokens",
        "1000000",
        "--service-tier",
        "priority",
        "--at",
        "2026-11-24",
        "--json",
    ]));
    assert_eq!(v["cost_usd_exact"], "22.500000");
    assert_eq!(v["service_tier"], "priority");
}

#[test]
fn image_input_tokens_and_web_search_queries_are_their_own_parts() {
    let v = json(&llmtel(&[
        "cost",
        "--model",
        "claude-sonnet-4-5",
        "--input-tokens",
        "10000",
        "--output-tokens",
        "1000",
        "--web-search-queries",
        "2",
        "--image-input-tokens",
        "4000",
        "--json",
    ]));
    assert_eq!(v["breakdown_exact"]["web_search"], "0.020000");
    // No image rate listed: image tokens at the text input rate, $3/M.
    assert_eq!(v["breakdown_exact"]["image_input"], "0.012000");
    assert_eq!(v["breakdown_exact"]["input"], "0.018000");
    assert_eq!(v["cost_usd_exact"], "0.065000");
}

#[test]
fn at_takes_an_instant_and_a_date_prices_on_peak() {
    let args = |at: &'static str| {
        vec![
            "cost",
            "--model",
            "deepseek-v4-pro",
            "--input-tokens",
            "1000000",
            "--output-tokens",
            "100000",
            "--cache-read-tokens",
            "400000",
            "--at",
            at,
            "--json",
        ]
    };
    let off = json(&llmtel(&args("2026-11-24T11:00:00+01:00")));
    assert_eq!(off["cost_usd_exact"], "0.602800");
    assert_eq!(off["off_peak"], true);
    let on = json(&llmtel(&args("2026-11-24T08:00:00Z")));
    assert_eq!(on["cost_usd_exact"], "1.205600");
    let date = json(&llmtel(&args("2026-11-28")));
    assert_eq!(date["cost_usd_exact"], "1.205600");
    assert_eq!(date["off_peak"], false);
}

#[test]
fn a_bad_at_or_search_size_says_what_to_write() {
    let o = llmtel(&[
        "cost",
        "--model",
        "gpt-5",
        "--input-tokens",
        "1",
        "--output-tokens",
        "1",
        "--at",
        "noon",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("RFC 3339 instant") && e.contains("2026-03-03"),
        "{e}"
    );
    let o = llmtel(&[
        "cost",
        "--model",
        "gpt-5",
        "--input-tokens",
        "1",
        "--output-tokens",
        "1",
        "--search-context-size",
        "huge",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("low, medium or high"));
}

#[test]
fn images_characters_and_audio_seconds_are_priced_per_unit() {
    let v = json(&llmtel(&[
        "cost",
        "--model",
        "whisper-1",
        "--input-tokens",
        "0",
        "--output-tokens",
        "0",
        "--input-audio-seconds",
        "90.5",
        "--json",
    ]));
    assert_eq!(v["breakdown_exact"]["audio_seconds"], "0.009050");
    let v = json(&llmtel(&[
        "cost",
        "--model",
        "tts-1",
        "--input-tokens",
        "0",
        "--output-tokens",
        "0",
        "--input-characters",
        "1000",
        "--json",
    ]));
    assert_eq!(v["cost_usd_exact"], "0.015000");
    let v = json(&llmtel(&[
        "cost",
        "--model",
        "high/1024-x-1024/gpt-image-1",
        "--input-tokens",
        "0",
        "--output-tokens",
        "0",
        "--images",
        "2",
        "--json",
    ]));
    assert_eq!(v["breakdown_exact"]["images"], "0.334000");
    let o = llmtel(&[
        "cost",
        "--model",
        "whisper-1",
        "--input-tokens",
        "0",
        "--output-tokens",
        "0",
        "--input-audio-seconds",
        "1.2345",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at most 3 decimals"));
}

#[test]
fn image_output_tokens_are_priced_at_the_image_output_rate_in_json_and_table() {
    // gpt-image-1.5: $5/M text in, $10/M text out, $32/M image out. 1,056 of the 1,100
    // output tokens are image tokens.
    let args = [
        "cost",
        "--model",
        "gpt-image-1.5",
        "--input-tokens",
        "20",
        "--output-tokens",
        "1100",
        "--image-output-tokens",
        "1056",
        "--at",
        "2026-12-01",
    ];
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let v = json(&llmtel(&with_json));
    assert_eq!(v["breakdown_exact"]["image_output"], "0.033792");
    assert_eq!(v["breakdown_exact"]["output"], "0.000440");
    assert_eq!(v["cost_usd_exact"], "0.034332");
    assert_eq!(v["usage"]["image_output_tokens"], 1056);
    let table = llmtel(&args);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("image output"))
        .unwrap_or_else(|| panic!("no image output row:\n{text}"));
    assert!(row.contains("1056") && row.contains("$0.033792"), "{row}");
}

#[test]
fn one_hour_cache_writes_are_priced_at_their_rate() {
    // claude-sonnet-4-5: 1,000 × $3 + 40,000 × $3.75 (5 minutes) + 60,000 × $6 (1 hour)
    // + 500 × $15 per million = 0.003 + 0.15 + 0.36 + 0.0075
    let v = json(&llmtel(&[
        "cost",
        "--model",
        "claude-sonnet-4-5",
        "--input-tokens",
        "101000",
        "--cache-write-tokens",
        "100000",
        "--cache-write-1h-tokens",
        "60000",
        "--output-tokens",
        "500",
        "--at",
        "2025-11-01",
        "--json",
    ]));
    assert_eq!(v["cost_usd_exact"], "0.520500", "{v}");
    assert_eq!(v["breakdown_exact"]["cache_write"], "0.510000", "{v}");
    assert_eq!(v["usage"]["cache_write_1h_tokens"], 60000, "{v}");
}

#[test]
fn an_instant_without_an_offset_is_an_error_not_its_day() {
    // Priced as its day, no off-peak window would apply: an error saying to add the offset.
    for at in ["2026-11-24T10:00:00", "2026-11-24 10:00"] {
        let o = llmtel(&[
            "cost",
            "--model",
            "gpt-4o",
            "--input-tokens",
            "10",
            "--at",
            at,
        ]);
        assert_eq!(o.status.code(), Some(2), "{at}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("no UTC offset") && err.contains("add Z"),
            "{err}"
        );
    }
}
