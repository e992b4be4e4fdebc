//! Done-when test of issue #14: for every chat entry of the shipped LiteLLM file that has a
//! price dimension (priority, flex, audio in/out, cached audio, image input, web search,
//! off-peak windows), a call using that dimension is priced exactly as the file says. The
//! expected value is computed here from the JSON, independently of the loader: its own
//! float-to-pico-dollar conversion, its own reading of the off-peak windows.

use jiff::Timestamp;
use llmtel_pricing::{Call, Catalog, Usage, UsageDetails};
use serde_json::{Map, Value};

const SHIPPED: &str = include_str!("data/litellm_model_prices.json");

/// USD (per token or per request) as exact pico-dollars: the JSON number's shortest
/// decimal form (`{:e}`: digits and exponent), scaled by 10^12, rounded half to even.
fn picos(v: &Value) -> u128 {
    let f = v.as_f64().expect("a number");
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp = exp.parse::<i32>().expect("exponent") + 12;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: u128 = format!("{int}{frac}").parse().expect("digits");
    let shift = exp - i32::try_from(frac.len()).expect("short");
    if shift >= 0 {
        digits * 10u128.pow(shift.unsigned_abs())
    } else {
        let d = 10u128.pow(shift.unsigned_abs());
        let (q, r) = (digits / d, digits % d);
        match (2 * r).cmp(&d) {
            std::cmp::Ordering::Less => q,
            std::cmp::Ordering::Greater => q + 1,
            std::cmp::Ordering::Equal => q + (q % 2),
        }
    }
}

fn chat_entries() -> Vec<(String, Map<String, Value>)> {
    let root: Map<String, Value> = serde_json::from_str(SHIPPED).expect("shipped file parses");
    root.into_iter()
        .filter(|(k, _)| k != "sample_spec")
        .filter_map(|(k, v)| Some((k, v.as_object()?.clone())))
        .filter(|(_, v)| {
            matches!(
                v.get("mode").and_then(Value::as_str),
                None | Some("chat" | "responses")
            ) && v.get("input_cost_per_token").is_some_and(Value::is_number)
                && v.get("tiered_pricing").is_none()
        })
        .collect()
}

fn catalog() -> Catalog {
    Catalog::from_litellm_json(SHIPPED, "litellm_model_prices.json").expect("loads")
}

fn rate(v: &Map<String, Value>, field: &str) -> Option<u128> {
    v.get(field).filter(|x| x.is_number()).map(picos)
}

/// Tuesday 2026-11-24 08:00 UTC (on-peak in DeepSeek's windows) and Saturday
/// 2026-11-28 12:00 UTC (off-peak); same weekday in UTC and UTC+8.
const ON_PEAK: &str = "2026-11-24T08:00:00Z";
const OFF_PEAK: &str = "2026-11-28T12:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().expect("instant")
}

/// Checks one priced call against `expected` pico-dollars; returns a failure line.
fn check(
    c: &Catalog,
    key: &str,
    what: &str,
    usage: &Usage,
    call: &Call<'_>,
    expected: u128,
    failures: &mut Vec<String>,
) {
    match c.price_call(key, None, usage, call) {
        Ok(p) if p.breakdown.total.picos() == expected => {}
        Ok(p) => failures.push(format!(
            "{key} {what}: got {} pico-dollars, the file says {expected} ({:?})",
            p.breakdown.total.picos(),
            p.breakdown
        )),
        Err(e) => failures.push(format!("{key} {what}: {e}")),
    }
}

#[test]
fn every_chat_entry_with_a_dimension_is_priced_as_the_file_says() {
    let c = catalog();
    let mut failures = Vec::new();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let now = Call::at(at(ON_PEAK));
    for (key, v) in chat_entries() {
        let input = rate(&v, "input_cost_per_token").unwrap_or(0);
        let output = rate(&v, "output_cost_per_token").unwrap_or(0);
        let cache_read = rate(&v, "cache_read_input_token_cost").unwrap_or(input);

        for tier in ["priority", "flex"] {
            let ti = rate(&v, &format!("input_cost_per_token_{tier}"));
            let to = rate(&v, &format!("output_cost_per_token_{tier}"));
            if ti.is_none() && to.is_none() {
                continue;
            }
            *counts.entry(tier).or_default() += 1;
            let (ti, to) = (ti.unwrap_or(input), to.unwrap_or(output));
            let usage = Usage::new(1_000, 100);
            let call = now.with_service_tier(tier);
            check(
                &c,
                &key,
                tier,
                &usage,
                &call,
                1_000 * ti + 100 * to,
                &mut failures,
            );
            if let Some(tcr) = rate(&v, &format!("cache_read_input_token_cost_{tier}")) {
                let usage = Usage {
                    cache_read_tokens: 600,
                    ..Usage::new(1_000, 100)
                };
                let expected = 400 * ti + 600 * tcr + 100 * to;
                check(
                    &c,
                    &key,
                    &format!("{tier} cached"),
                    &usage,
                    &call,
                    expected,
                    &mut failures,
                );
            }
        }
        if let Some(ai) = rate(&v, "input_cost_per_audio_token") {
            *counts.entry("audio_input").or_default() += 1;
            let usage = Usage::new(1_000, 100);
            let details = UsageDetails {
                audio_input_tokens: 400,
                ..UsageDetails::default()
            };
            let expected = 600 * input + 400 * ai + 100 * output;
            check(
                &c,
                &key,
                "audio in",
                &usage,
                &now.with_details(details),
                expected,
                &mut failures,
            );
            if let Some(car) = rate(&v, "cache_read_input_audio_token_cost") {
                *counts.entry("cached_audio").or_default() += 1;
                let usage = Usage {
                    cache_read_tokens: 500,
                    ..Usage::new(1_000, 100)
                };
                let details = UsageDetails {
                    audio_input_tokens: 400,
                    cache_read_audio_tokens: 200,
                    ..UsageDetails::default()
                };
                // text: 600 tokens of which 300 cached; audio: 400 of which 200 cached.
                let expected = 300 * input + 300 * cache_read + 200 * ai + 200 * car + 100 * output;
                check(
                    &c,
                    &key,
                    "cached audio",
                    &usage,
                    &now.with_details(details),
                    expected,
                    &mut failures,
                );
            }
        }
        if let Some(ao) = rate(&v, "output_cost_per_audio_token") {
            *counts.entry("audio_output").or_default() += 1;
            let usage = Usage::new(100, 1_000);
            let details = UsageDetails {
                audio_output_tokens: 300,
                ..UsageDetails::default()
            };
            let expected = 100 * input + 700 * output + 300 * ao;
            check(
                &c,
                &key,
                "audio out",
                &usage,
                &now.with_details(details),
                expected,
                &mut failures,
            );
        }
        if let Some(ii) = rate(&v, "input_cost_per_image_token") {
            *counts.entry("image_input").or_default() += 1;
            let usage = Usage::new(1_000, 100);
            let details = UsageDetails {
                image_input_tokens: 300,
                ..UsageDetails::default()
            };
            let expected = 700 * input + 300 * ii + 100 * output;
            check(
                &c,
                &key,
                "image in",
                &usage,
                &now.with_details(details),
                expected,
                &mut failures,
            );
        }
        if let Some(ws) = v
            .get("search_context_cost_per_query")
            .and_then(Value::as_object)
        {
            let Some(medium) = ws
                .get("search_context_size_medium")
                .filter(|x| x.is_number())
            else {
                continue;
            };
            *counts.entry("web_search").or_default() += 1;
            let usage = Usage::new(1_000, 100);
            let details = UsageDetails {
                web_search_queries: 3,
                ..UsageDetails::default()
            };
            let expected = 1_000 * input + 100 * output + 3 * picos(medium);
            check(
                &c,
                &key,
                "web search",
                &usage,
                &now.with_details(details),
                expected,
                &mut failures,
            );
        }
        if let Some(op) = v.get("off_peak_pricing").and_then(Value::as_object) {
            *counts.entry("off_peak").or_default() += 1;
            let oi = rate(op, "input_cost_per_token").expect("off-peak input");
            let oo = rate(op, "output_cost_per_token").expect("off-peak output");
            let ocr = rate(op, "cache_read_input_token_cost").unwrap_or(oi);
            let usage = Usage {
                cache_read_tokens: 600,
                ..Usage::new(1_000, 100)
            };
            for (instant, off) in [(OFF_PEAK, true), (ON_PEAK, false)] {
                assert_eq!(in_windows(op, at(instant)), off, "{key}: test instants");
                let expected = if off {
                    400 * oi + 600 * ocr + 100 * oo
                } else {
                    400 * input + 600 * cache_read + 100 * output
                };
                let what = if off { "off-peak" } else { "on-peak" };
                check(
                    &c,
                    &key,
                    what,
                    &usage,
                    &Call::at(at(instant)),
                    expected,
                    &mut failures,
                );
            }
        }
    }
    // Image, speech and transcription entries priced per unit.
    let root: Map<String, Value> = serde_json::from_str(SHIPPED).expect("parses");
    for (key, v) in &root {
        let Some(v) = v.as_object() else { continue };
        let mode = v.get("mode").and_then(Value::as_str).unwrap_or("");
        if !matches!(
            mode,
            "image_generation" | "audio_speech" | "audio_transcription"
        ) {
            continue;
        }
        let usd = |f: &str| rate(v, f);
        if let (Some(io), Some(input), Some(_)) = (
            usd("output_cost_per_image_token"),
            usd("input_cost_per_token"),
            v.get("tiered_pricing").is_none().then_some(()),
        ) {
            // 100 text input tokens; 1,000 output tokens of which 900 are image tokens
            // (the text output rate defaults to the image rate when the file has none).
            *counts.entry("image_output").or_default() += 1;
            let text_out = usd("output_cost_per_token").unwrap_or(io);
            let details = UsageDetails {
                image_output_tokens: 900,
                images: 1,
                ..UsageDetails::default()
            };
            check(
                &c,
                key,
                "image out",
                &Usage::new(100, 1_000),
                &now.with_details(details),
                100 * input + 100 * text_out + 900 * io,
                &mut failures,
            );
        }
        let image = if mode == "image_generation" {
            usd("output_cost_per_image").or(usd("input_cost_per_image"))
        } else {
            None
        };
        let units = [
            ("image", image, 3u64, 1u128),
            ("character", usd("input_cost_per_character"), 1_234, 1),
            ("input second", usd("input_cost_per_second"), 61_500, 1000),
            ("output second", usd("output_cost_per_second"), 2_250, 1000),
        ];
        for (what, price, n, per) in units {
            let Some(price) = price else { continue };
            *counts.entry("per_unit").or_default() += 1;
            let mut d = UsageDetails::default();
            match what {
                "image" => d.images = n,
                "character" => d.input_characters = n,
                "input second" => d.input_audio_ms = n,
                _ => d.output_audio_ms = n,
            }
            let x = price * u128::from(n);
            let (q, r) = (x / per, x % per);
            let expected = match (2 * r).cmp(&per) {
                std::cmp::Ordering::Less => q,
                std::cmp::Ordering::Greater => q + 1,
                std::cmp::Ordering::Equal => q + (q % 2),
            };
            let call = now.with_details(d);
            check(
                &c,
                key,
                what,
                &Usage::new(0, 0),
                &call,
                expected,
                &mut failures,
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for dim in [
        "priority",
        "flex",
        "audio_input",
        "audio_output",
        "cached_audio",
        "image_input",
        "image_output",
        "web_search",
        "off_peak",
        "per_unit",
    ] {
        assert!(
            counts.get(dim).copied().unwrap_or(0) > 0,
            "no entry with {dim}: {counts:?}"
        );
    }
}

/// The test's own reading of `off_peak_pricing.windows` (weekdays counted in UTC: the
/// instants used fall on the same weekday in every zone the file names).
fn in_windows(op: &Map<String, Value>, t: Timestamp) -> bool {
    let z = t.to_zoned(jiff::tz::TimeZone::UTC);
    let minute = i32::from(z.hour()) * 60 + i32::from(z.minute());
    let day = i64::from(z.weekday().to_monday_one_offset());
    op["windows"].as_array().expect("windows").iter().any(|w| {
        let days: Vec<i64> = w["weekdays"]
            .as_array()
            .expect("weekdays")
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        let hours: Vec<&str> = match &w["hours_utc"] {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        days.contains(&day)
            && hours.iter().any(|h| {
                let (a, b) = h.split_once('-').expect("range");
                let m = |s: &str| {
                    let (h, m) = s.split_once(':').expect("HH:MM");
                    h.parse::<i32>().expect("hour") * 60 + m.parse::<i32>().expect("minute")
                };
                let (a, mut b) = (m(a), m(b));
                if b == 0 {
                    b = 1440;
                }
                a <= minute && minute < b
            })
    })
}
