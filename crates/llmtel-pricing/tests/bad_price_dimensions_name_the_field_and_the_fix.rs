//! Price dimensions in a TOML price file: a malformed one is rejected whole with an error
//! naming the entry, the field and what to write; a good one prices calls.

use llmtel_pricing::{Call, Catalog, Usage, UsageDetails};

fn file(dims: &str) -> String {
    format!(
        "[[model]]\nid = \"m\"\nprovider = \"deepseek\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 1.0\noutput = 2.0\n{dims}\n"
    )
}

#[test]
fn malformed_off_peak_hours_name_the_field_and_the_format() {
    let e = Catalog::from_toml_str(
        &file("[model.price.off_peak]\ninput = 0.5\noutput = 1.0\nwindows = [{ weekdays = [1], hours_utc = [\"25:00-26:00\"] }]"),
        "prices.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("prices.toml"), "{e}");
    assert!(
        e.contains("`m`") && e.contains("price.off_peak.windows"),
        "{e}"
    );
    assert!(
        e.contains("25:00-26:00") && e.contains("HH:MM-HH:MM"),
        "{e}"
    );
}

#[test]
fn weekdays_outside_1_to_7_are_rejected() {
    let e = Catalog::from_toml_str(
        &file("[model.price.off_peak]\ninput = 0.5\noutput = 1.0\nwindows = [{ weekdays = [0], hours_utc = [\"00:00-01:00\"] }]"),
        "prices.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("ISO weekdays 1..=7"), "{e}");
}

#[test]
fn a_standard_tier_name_cannot_carry_its_own_rates() {
    let e = Catalog::from_toml_str(
        &file("[model.price.service_tier.default]\ninput = 0.5"),
        "p.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("price.service_tier.default") && e.contains("priority"),
        "{e}"
    );
}

#[test]
fn unknown_dimension_fields_and_negative_request_prices_are_errors() {
    let e = Catalog::from_toml_str(&file("[model.price.modality]\naudio_in = 3.0"), "p.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("audio_in"), "{e}");
    let e = Catalog::from_toml_str(
        &file("[model.price.per_request]\ncode_interpreter_session = -0.03"),
        "p.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("price.per_request.code_interpreter_session") && e.contains("USD per request"),
        "{e}"
    );
}

#[test]
fn a_good_file_prices_every_dimension() {
    let c = Catalog::from_toml_str(
        &file(
            "[model.price.service_tier.priority]\ninput = 2.0\noutput = 4.0\n\
             [model.price.modality]\naudio_input = 10.0\n\
             [model.price.off_peak]\ninput = 0.5\noutput = 1.0\nwindows = [{ weekdays = [6, 7], hours_utc = [\"00:00-00:00\"] }]\n\
             [model.price.per_request]\ncode_interpreter_session = 0.03",
        ),
        "prices.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let usage = Usage::new(1_000_000, 1_000_000);
    let details = UsageDetails {
        audio_input_tokens: 100_000,
        code_interpreter_sessions: 1,
        ..UsageDetails::default()
    };
    let weekday = Call::at("2026-11-24T12:00:00Z".parse().unwrap()).with_details(details);
    let p = c.price_call("m", None, &usage, &weekday).unwrap();
    // 900k × $1 + 100k × $10 + 1M × $2 + $0.03
    assert_eq!(p.breakdown.total.to_string(), "$3.930000");
    let p = c
        .price_call("m", None, &usage, &weekday.with_service_tier("priority"))
        .unwrap();
    // 900k × $2 + 100k × $20 (no priority audio rate: the standard one keeps its ratio to
    // the input rate, $10 × 2/1) + 1M × $4 + $0.03
    assert_eq!(p.breakdown.total.to_string(), "$7.830000");
    let sunday = Call::at("2026-11-29T23:59:59Z".parse().unwrap()).with_details(details);
    let p = c.price_call("m", None, &usage, &sunday).unwrap();
    // 900k × $0.50 + 100k × $10 + 1M × $1 + $0.03
    assert!(p.off_peak);
    assert_eq!(p.breakdown.total.to_string(), "$2.480000");
}

#[test]
fn a_window_crossing_midnight_says_to_split_it() {
    let e = Catalog::from_toml_str(
        &file("[model.price.off_peak]\ninput = 0.5\noutput = 1.0\nwindows = [{ weekdays = [1], hours_utc = [\"16:30-00:30\"] }]"),
        "prices.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`m`")
            && e.contains("price.off_peak.windows")
            && e.contains("cross midnight")
            && e.contains("\"16:30-00:00\" and \"00:00-00:30\""),
        "{e}"
    );
    let e = Catalog::from_litellm_json(
        &litellm_off_peak(r#"{"hours_utc": "16:30-00:30"}"#),
        "p.json",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`m`")
            && e.contains("off_peak_pricing.windows[0].hours_utc")
            && e.contains("\"16:30-00:00\" and \"00:00-00:30\""),
        "{e}"
    );
}

#[test]
fn an_off_peak_window_with_no_hours_is_rejected() {
    let e = Catalog::from_toml_str(
        &file("[model.price.off_peak]\ninput = 0.5\noutput = 1.0\nwindows = [{ weekdays = [1], hours_utc = [] }]"),
        "prices.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("price.off_peak.windows") && e.contains("hours_utc is empty"),
        "{e}"
    );
    let e = Catalog::from_toml_str(
        &file("[model.price.off_peak]\ninput = 0.5\noutput = 1.0\nwindows = []"),
        "prices.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("price.off_peak.windows") && e.contains("no window"),
        "{e}"
    );
}

fn litellm_off_peak(window: &str) -> String {
    format!(
        r#"{{"m": {{"litellm_provider": "deepseek", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
  "off_peak_pricing": {{"input_cost_per_token": 5e-07, "output_cost_per_token": 1e-06, "windows": [{window}]}}}}}}"#
    )
}

#[test]
fn litellm_off_peak_windows_that_never_match_are_errors() {
    // Each loaded before, and its discount never applied.
    for (window, field, fix) in [
        (
            r#"{"hours_utc": ["16:30-24:00"], "weekdays": "1-5"}"#,
            "off_peak_pricing.windows[0].weekdays",
            "[1, 2, 3, 4, 5]",
        ),
        (
            r#"{"hours_utc": ["16:30-24:00"], "weekdays": []}"#,
            "off_peak_pricing.windows[0].weekdays",
            "[1, 2, 3, 4, 5]",
        ),
        (
            r#"{"hours_utc": ["16:30-24:00"], "weekdays": null}"#,
            "off_peak_pricing.windows[0].weekdays",
            "[1, 2, 3, 4, 5]",
        ),
        (
            r#"{"hours_utc": [16.5], "weekdays": [1]}"#,
            "off_peak_pricing.windows[0].hours_utc",
            "HH:MM-HH:MM",
        ),
        (
            r#"{"hours_utc": [], "weekdays": [1]}"#,
            "off_peak_pricing.windows[0].hours_utc",
            "HH:MM-HH:MM",
        ),
        (
            r#"{"hours_utc": null, "weekdays": [1]}"#,
            "off_peak_pricing.windows[0].hours_utc",
            "HH:MM-HH:MM",
        ),
        ("", "off_peak_pricing.windows", "hours_utc"),
    ] {
        let e = Catalog::from_litellm_json(&litellm_off_peak(window), "p.json")
            .map(|_| ())
            .expect_err(window)
            .to_string();
        assert!(
            e.contains("p.json") && e.contains("`m`") && e.contains(field) && e.contains(fix),
            "{window}: {e}"
        );
    }
    // Weekdays left out: every day.
    let c = Catalog::from_litellm_json(
        &litellm_off_peak(r#"{"hours_utc": "10:00-00:00"}"#),
        "p.json",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sunday = Call::at("2026-11-29T12:00:00Z".parse().unwrap());
    let p = c
        .price_call("m", None, &Usage::new(1_000_000, 0), &sunday)
        .unwrap();
    assert!(p.off_peak);
    assert_eq!(p.breakdown.total.to_string(), "$0.500000");
}

#[test]
fn an_off_peak_window_is_judged_alike_in_toml_and_litellm_json() {
    // The same window in both formats: the same field, problem and fix (one check serves
    // both; they differed).
    for (weekdays, hours, field) in [
        ("[0]", r#"["00:00-01:00"]"#, "windows[0].weekdays"),
        ("[]", r#"["00:00-01:00"]"#, "windows[0].weekdays"),
        ("[1]", "[]", "windows[0].hours_utc"),
        ("[1]", r#"["16:30-00:30"]"#, "windows[0].hours_utc"),
        ("[1]", r#"["25:00-26:00"]"#, "windows[0].hours_utc"),
    ] {
        let toml = Catalog::from_toml_str(
            &file(&format!(
                "[model.price.off_peak]\ninput = 0.5\noutput = 1.0\nwindows = [{{ weekdays = {weekdays}, hours_utc = {hours} }}]"
            )),
            "p.toml",
        )
        .map(|_| ())
        .expect_err(hours)
        .to_string();
        let json = Catalog::from_litellm_json(
            &litellm_off_peak(&format!(
                r#"{{"weekdays": {weekdays}, "hours_utc": {hours}}}"#
            )),
            "p.json",
        )
        .map(|_| ())
        .expect_err(hours)
        .to_string();
        // `<origin>[:line]: model `m`, field `<field>`: <problem>` and the fix, the same.
        let after_field = |e: &str| {
            e.split_once(&format!("{field}`"))
                .unwrap_or_else(|| panic!("{field} not in {e}"))
                .1
                .to_string()
        };
        assert_eq!(after_field(&toml), after_field(&json));
    }
}
