//! For EVERY chat model of the shipped LiteLLM file, `llmtel cost --prices <that file>`
//! agrees with the file's per-token prices: input, output, cache read, cache write and
//! reasoning, below and across every long-context tier boundary.
//!
//! The expected cost is computed here from the JSON numbers, independently of
//! llmtel-pricing: each price read as the decimal text of the JSON number (Python's and
//! Rust's shortest repr), rounded half to even at the pico-dollar (the documented
//! conversion), times the tokens, in integers; and cross-checked against plain f64
//! arithmetic on the unrounded prices within the rounding bound (0.5 pico per token)
//! plus 1e-12 relative. One `llmtel cost --batch` process prices all calls.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../llmtel-pricing/tests/data/litellm_model_prices.json"
);

/// A price as (exact pico-dollars rounded half-even, f64 USD).
#[derive(Clone, Copy, Debug)]
struct P {
    picos: u128,
    usd: f64,
}

/// Decimal text of a non-negative f64 → pico-dollars, half to even.
fn picos_of(x: f64) -> u128 {
    let text = format!("{x}");
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut digits: Vec<u8> = frac.bytes().map(|b| b - b'0').collect();
    digits.resize(digits.len().max(13), 0);
    let mut v: u128 = int.parse().unwrap();
    for d in &digits[..12] {
        v = v * 10 + u128::from(*d);
    }
    let rest = &digits[12..];
    let half = rest[0] == 5 && rest[1..].iter().all(|d| *d == 0);
    if rest[0] > 5 || (rest[0] == 5 && !half) || (half && v % 2 == 1) {
        v += 1;
    }
    v
}

fn p(v: &Value) -> Option<P> {
    let usd = v.as_f64()?;
    Some(P {
        picos: picos_of(usd),
        usd,
    })
}

/// LiteLLM's rates for a prompt of `prompt` tokens, as its cost calculator picks them.
#[derive(Clone, Copy, Debug)]
struct Rates {
    input: P,
    output: P,
    cache_read: P,
    cache_write: P,
    reasoning: P,
}

fn field(m: &Map<String, Value>, k: &str) -> Option<P> {
    m.get(k).and_then(p)
}

/// Thresholds of the `_above_` keys for input/output/cache read/cache creation.
fn above_thresholds(m: &Map<String, Value>) -> BTreeMap<u64, Map<String, Value>> {
    let mut out: BTreeMap<u64, Map<String, Value>> = BTreeMap::new();
    for (k, v) in m {
        if v.is_null() {
            continue;
        }
        for prefix in [
            "input_cost_per_token",
            "output_cost_per_token",
            "cache_read_input_token_cost",
            "cache_creation_input_token_cost",
        ] {
            let Some(rest) = k.strip_prefix(&format!("{prefix}_above_")) else {
                continue;
            };
            let Some(n) = rest.strip_suffix("_tokens") else {
                continue;
            };
            let (d, scale) = n.strip_suffix('k').map_or((n, 1), |d| (d, 1000));
            if let Ok(n) = d.parse::<u64>() {
                out.entry(n * scale)
                    .or_default()
                    .insert(prefix.into(), v.clone());
            }
        }
    }
    out
}

fn tiered(m: &Map<String, Value>) -> Vec<(u64, Map<String, Value>)> {
    let mut t: Vec<(u64, Map<String, Value>)> = m
        .get("tiered_pricing")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    let t = t.as_object()?;
                    t.get("input_cost_per_token")?;
                    let start = t.get("range")?.as_array()?.first()?.as_f64()? as u64;
                    Some((start, t.clone()))
                })
                .collect()
        })
        .unwrap_or_default();
    t.sort_by_key(|(s, _)| *s);
    t
}

fn rates_for(m: &Map<String, Value>, prompt: u64) -> Rates {
    let zero = P { picos: 0, usd: 0.0 };
    let tiers = tiered(m);
    if !tiers.is_empty() {
        // start < prompt <= end; above all: the last; we only test prompt > 0.
        let t = tiers
            .iter()
            .rev()
            .find(|(s, _)| prompt > *s)
            .map_or(&tiers[0].1, |(_, t)| t);
        let input = field(t, "input_cost_per_token").unwrap();
        let output = field(t, "output_cost_per_token")
            .or_else(|| field(m, "output_cost_per_token"))
            .unwrap_or(zero);
        return Rates {
            input,
            output,
            cache_read: field(t, "cache_read_input_token_cost").unwrap_or(input),
            cache_write: field(t, "cache_creation_input_token_cost").unwrap_or(input),
            reasoning: field(t, "output_cost_per_reasoning_token").unwrap_or(output),
        };
    }
    let mut input = field(m, "input_cost_per_token").unwrap();
    let mut output = field(m, "output_cost_per_token").unwrap_or(zero);
    let mut cache_read = field(m, "cache_read_input_token_cost");
    let mut cache_write = field(m, "cache_creation_input_token_cost");
    for (threshold, keys) in above_thresholds(m) {
        if prompt > threshold {
            input = field(&keys, "input_cost_per_token").unwrap_or(input);
            output = field(&keys, "output_cost_per_token").unwrap_or(output);
            cache_read = field(&keys, "cache_read_input_token_cost").or(cache_read);
            cache_write = field(&keys, "cache_creation_input_token_cost").or(cache_write);
        }
    }
    Rates {
        input,
        output,
        cache_read: cache_read.unwrap_or(input),
        cache_write: cache_write.unwrap_or(input),
        reasoning: field(m, "output_cost_per_reasoning_token").unwrap_or(output),
    }
}

#[derive(Clone, Copy, Debug)]
struct Call {
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    reasoning: u64,
}

/// Expected (exact picos by class [input, cache_read, cache_write, output, reasoning],
/// f64 total, max rounding error in USD).
fn expected(r: &Rates, c: &Call) -> ([u128; 5], f64, f64) {
    let uncached = c.input - c.cache_read - c.cache_write;
    let plain = c.output - c.reasoning;
    let parts = [
        (uncached, r.input),
        (c.cache_read, r.cache_read),
        (c.cache_write, r.cache_write),
        (plain, r.output),
        (c.reasoning, r.reasoning),
    ];
    let exact = parts.map(|(t, p)| u128::from(t) * p.picos);
    let float: f64 = parts.iter().map(|(t, p)| *t as f64 * p.usd).sum();
    let tokens = (c.input + c.output) as f64;
    (exact, float, tokens * 0.5e-12)
}

fn picos(decimal: &str) -> u128 {
    let (int, frac) = decimal.split_once('.').unwrap();
    let frac = format!("{frac:0<12}");
    int.parse::<u128>().unwrap() * 1_000_000_000_000 + frac[..12].parse::<u128>().unwrap()
}

#[test]
fn every_chat_model_costs_what_the_file_says() {
    let text = std::fs::read_to_string(FILE).unwrap();
    let root: Map<String, Value> = serde_json::from_str(&text).unwrap();
    let mut lines = String::new();
    let mut cases: Vec<(String, Call, Rates)> = Vec::new();
    let mut chat_models = 0;
    let mut not_token_priced = 0;
    let mut boundaries = 0;
    for (key, v) in &root {
        let m = v.as_object().unwrap();
        if m.get("mode").and_then(Value::as_str) != Some("chat") {
            continue;
        }
        let token_priced =
            m.get("input_cost_per_token").is_some_and(|x| !x.is_null()) || !tiered(m).is_empty();
        if !token_priced {
            not_token_priced += 1;
            continue;
        }
        chat_models += 1;
        // Below every threshold: all five token classes.
        let mut thresholds: Vec<u64> = above_thresholds(m).into_keys().collect();
        thresholds.extend(tiered(m).iter().map(|(s, _)| *s).filter(|s| *s > 0));
        thresholds.sort_unstable();
        thresholds.dedup();
        let small = thresholds.first().map_or(10_000, |t| (*t).min(10_000));
        let mut calls = vec![Call {
            input: small,
            cache_read: small * 3 / 10,
            cache_write: small / 10,
            output: 1_234,
            reasoning: 234,
        }];
        // At each threshold (lower tier) and one token above it (the tier).
        for t in thresholds {
            boundaries += 1;
            for input in [t, t + 1] {
                calls.push(Call {
                    input,
                    cache_read: t / 2,
                    cache_write: t / 8,
                    output: 2_000,
                    reasoning: 500,
                });
            }
        }
        for c in calls {
            lines.push_str(
                &json!({
                    "model": key,
                    "input_tokens": c.input,
                    "cache_read_tokens": c.cache_read,
                    "cache_write_tokens": c.cache_write,
                    "output_tokens": c.output,
                    "reasoning_tokens": c.reasoning,
                    "at": "2026-11-20",
                })
                .to_string(),
            );
            lines.push('\n');
            cases.push((key.clone(), c, rates_for(m, c.input)));
        }
    }
    println!(
        "{chat_models} token-priced chat models ({not_token_priced} chat entries priced otherwise), {} calls, {boundaries} tier boundaries",
        cases.len()
    );
    assert!(chat_models > 3000, "{chat_models}");
    assert!(boundaries > 300, "{boundaries}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(["cost", "--batch", "--prices", FILE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(lines.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), cases.len());

    let mut failures = Vec::new();
    for ((model, call, rates), got) in cases.iter().zip(&results) {
        if let Some(e) = got.get("error") {
            failures.push(format!("{model}: {e}"));
            continue;
        }
        assert_eq!(got["matched"], model.as_str());
        assert_eq!(got["match"], "exact");
        let (exact, float, bound) = expected(rates, call);
        let b = &got["breakdown_exact"];
        let got_parts = ["input", "cache_read", "cache_write", "output", "reasoning"]
            .map(|k| picos(b[k].as_str().unwrap()));
        let got_total = picos(got["cost_usd_exact"].as_str().unwrap());
        let want_total: u128 = exact.iter().sum();
        let got_f = got_total as f64 / 1e12;
        if got_parts != exact
            || got_total != want_total
            || (got_f - float).abs() > bound + 1e-12 * float
        {
            failures.push(format!(
                "{model} {call:?}: got {got_parts:?} = {got_total}, want {exact:?} = {want_total} (f64 {float})"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} calls disagree, e.g.:\n{}",
        failures.len(),
        cases.len(),
        failures[..failures.len().min(10)].join("\n")
    );
}
