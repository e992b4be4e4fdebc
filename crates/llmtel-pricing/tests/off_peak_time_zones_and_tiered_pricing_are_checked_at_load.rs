//! Price fields that would load but never take effect are errors naming the field, as every
//! other malformed price is (the file is rejected whole, the error says what to write): an
//! off-peak `weekday_timezone` this build cannot count weekdays in (every call then fell back
//! to the standard rates), a LiteLLM `weekday_timezone` that is not a string (dropped), and a
//! LiteLLM `tiered_pricing` that is not a list, or a tier that is not an object, has no
//! whole-number start of range, or starts where another does (each silently left out, so a
//! tier was lost).
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use llmtel_pricing::{Call, Catalog, Usage};

fn toml_off_peak(zone: &str) -> String {
    format!(
        "[[model]]\nid = \"m\"\nprovider = \"deepseek\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 1.0\noutput = 2.0\n[model.price.off_peak]\ninput = 0.5\noutput = 1.0\nwindows = [{{ weekdays = [1], hours_utc = [\"16:00-17:00\"] }}]\nweekday_timezone = {zone}\n"
    )
}

fn json_off_peak(zone: &str) -> String {
    format!(
        r#"{{"m": {{"litellm_provider": "deepseek", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "off_peak_pricing": {{"input_cost_per_token": 5e-07, "output_cost_per_token": 1e-06, "windows": [{{"weekdays": [1], "hours_utc": ["16:00-17:00"]}}], "weekday_timezone": {zone}}}}}}}"#
    )
}

fn json_tiered(tiered: &str) -> String {
    format!(
        r#"{{"m": {{"litellm_provider": "openai", "mode": "chat", "output_cost_per_token": 2e-06, "tiered_pricing": {tiered}}}}}"#
    )
}

#[test]
fn an_unknown_weekday_timezone_is_an_error_naming_the_field() {
    let e = Catalog::from_toml_str(&toml_off_peak("\"Mars/Olympus\""), "prices.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`price.off_peak.weekday_timezone`")
            && e.contains("Mars/Olympus")
            && e.contains("Asia/Shanghai")
            && e.contains("leave it out"),
        "{e}"
    );
    let e = Catalog::from_litellm_json(&json_off_peak("\"Mars/Olympus\""), "prices.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`off_peak_pricing.weekday_timezone`") && e.contains("Mars/Olympus"),
        "{e}"
    );
    let e = Catalog::from_litellm_json(&json_off_peak("8"), "prices.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`off_peak_pricing.weekday_timezone`") && e.contains("found a number"),
        "{e}"
    );
}

#[test]
fn a_known_weekday_timezone_loads_and_counts_the_weekdays_there() {
    // Sunday 16:30 UTC is Monday 00:30 in Shanghai: the Monday window (16:00-17:00 UTC).
    let sunday = Call::at("2026-11-29T16:30:00Z".parse().unwrap());
    for c in [
        Catalog::from_toml_str(&toml_off_peak("\"Asia/Shanghai\""), "prices.toml").unwrap(),
        Catalog::from_litellm_json(&json_off_peak("\"Asia/Shanghai\""), "prices.json").unwrap(),
        Catalog::from_litellm_json(&json_off_peak("null"), "prices.json").unwrap(),
    ] {
        let zone = c.get("m").unwrap().prices[0]
            .dims
            .off_peak
            .as_ref()
            .unwrap()
            .weekday_timezone
            .clone();
        let p = c
            .price_call("m", None, &Usage::new(1_000_000, 0), &sunday)
            .unwrap();
        assert_eq!(p.off_peak, zone.is_some(), "{zone:?}");
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }
}

#[test]
fn malformed_tiered_pricing_is_an_error_naming_the_tier() {
    let base = r#"{"range": [0, 200000], "input_cost_per_token": 1e-06}"#;
    for (tiered, field, problem) in [
        (
            format!(r#"[{base}, {{"range": ["a", 2], "input_cost_per_token": 2e-06}}]"#),
            "`tiered_pricing[1].range`",
            "range [\"a\",2]",
        ),
        (
            format!(r#"[{base}, {{"range": 200000, "input_cost_per_token": 2e-06}}]"#),
            "`tiered_pricing[1].range`",
            "range 200000",
        ),
        (
            format!(r#"[{base}, {{"range": [200000.5, 1e6], "input_cost_per_token": 2e-06}}]"#),
            "`tiered_pricing[1].range`",
            "whole number",
        ),
        (
            format!(r#"[{base}, {{"input_cost_per_token": 2e-06}}]"#),
            "`tiered_pricing[1].range`",
            "no range",
        ),
        (
            format!(r#"[{base}, 5]"#),
            "`tiered_pricing[1]`",
            "expected an object, found a number",
        ),
        (
            format!(r#"[{base}, {{"range": [0, 1e6], "input_cost_per_token": 2e-06}}]"#),
            "`tiered_pricing[1].range`",
            "two tiers start at 0",
        ),
        (
            format!(r#"[{base}, {{"range": [200000, 1e6], "input_cost_per_token": "2e-06"}}]"#),
            "`tiered_pricing[1].input_cost_per_token`",
            "expected a number",
        ),
        (
            base.to_string(),
            "`tiered_pricing`",
            "expected a list of tiers, found an object",
        ),
    ] {
        let e = Catalog::from_litellm_json(&json_tiered(&tiered), "prices.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model `m`") && e.contains(field) && e.contains(problem),
            "{tiered}: {e}"
        );
    }
    // A tier not priced per token (a per-query search tier) is not ours to read: left out.
    let c = Catalog::from_litellm_json(
        &json_tiered(&format!(
            r#"[{base}, {{"max_results_range": [0, 25], "input_cost_per_query": 0.005}}, {{"range": [200000, 1e6], "input_cost_per_token": 2e-06}}]"#
        )),
        "prices.json",
    )
    .unwrap();
    let price = &c.get("m").unwrap().prices[0];
    assert_eq!(price.rates.input, 1_000_000);
    assert_eq!(price.tiers.len(), 1);
    assert_eq!(price.tiers[0].above_input_tokens, 200_000);
}
