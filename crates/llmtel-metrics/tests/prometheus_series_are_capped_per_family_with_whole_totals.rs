//! Label combinations are capped, not only each label's values: 2,500 distinct user x session
//! pairs (each label well within its own cap) leave every Prometheus family within
//! `MAX_SERIES_PER_FAMILY`; the calls past `MAX_LABEL_SETS` label sets are recorded in the
//! overflow set (every label `__overflow__`) and counted, so the totals over all series stay
//! exact.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Calls, run};
use llmtel::{Usage, Usd};
use llmtel_metrics::prometheus::{MAX_LABEL_SETS, MAX_SERIES_PER_FAMILY};
use llmtel_metrics::{Dimension, PrometheusSink};

/// One call of gpt-4o-mini for `user` in `session`.
fn call(user: &str, session: &str, input: u64, output: u64) {
    let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
    span.record("user.id", user);
    span.record("gen_ai.conversation.id", session);
    let _e = span.enter();
    llmtel::record_response(&span, "resp-1", "gpt-4o-mini", &["stop"]);
    llmtel::record_usage(
        &span,
        &Usage {
            input_tokens: input,
            output_tokens: output,
            ..Default::default()
        },
    );
}

/// The sample lines of `family` (`name{labels} value`), as (labels, value).
fn samples<'a>(body: &'a str, family: &str) -> Vec<(&'a str, f64)> {
    body.lines()
        .filter_map(|l| l.strip_prefix(family)?.strip_prefix('{'))
        .map(|l| {
            let (labels, value) = l.rsplit_once("} ").unwrap();
            (labels, value.parse().unwrap())
        })
        .collect()
}

#[test]
fn distinct_user_session_pairs_past_the_cap_share_the_overflow_series() {
    const SIDE: usize = 50; // 2,500 pairs: 50 users, 50 sessions, each under the guard's 100
    let prom = PrometheusSink::builder()
        .with_dimension(Dimension::User)
        .with_dimension(Dimension::Session)
        .build();
    let calls = Arc::new(Calls::default());
    run(vec![Arc::new(prom.clone()), calls.clone()], || {
        for i in 0..SIDE * SIDE {
            let (u, s) = (i / SIDE, i % SIDE);
            call(
                &format!("user-{u}"),
                &format!("session-{s}"),
                1_000 + i as u64 * 7,
                10 + i as u64 % 13,
            );
        }
        // A pair kept before the cap still records into its own series.
        call("user-0", "session-0", 5, 5);
    });
    let calls = calls.0.lock().unwrap();
    assert_eq!(calls.len(), SIDE * SIDE + 1);
    let folded = SIDE * SIDE - MAX_LABEL_SETS;

    let body = prom.encode_text();
    let requests = samples(&body, "llm_requests_total");
    let tokens = samples(&body, "llm_tokens_total");
    let cost = samples(&body, "llm_cost_usd_total");
    let latency = samples(&body, "llm_latency_seconds_count");
    for (name, family) in [
        ("requests", &requests),
        ("tokens", &tokens),
        ("cost", &cost),
        ("latency", &latency),
    ] {
        assert!(
            family.len() <= MAX_SERIES_PER_FAMILY,
            "{name}: {} series",
            family.len()
        );
    }
    // The kept sets and the overflow set, no more.
    assert_eq!(requests.len(), MAX_LABEL_SETS + 1);
    assert_eq!(tokens.len(), 2 * (MAX_LABEL_SETS + 1));
    assert_eq!(cost.len(), MAX_LABEL_SETS + 1);

    let overflow = r#"model="__overflow__",user="__overflow__",session="__overflow__""#;
    let value = |family: &[(&str, f64)], labels: &str| {
        family
            .iter()
            .find(|(l, _)| *l == labels)
            .unwrap_or_else(|| panic!("no series {{{labels}}}"))
            .1
    };
    assert_eq!(
        value(&requests, &format!("{overflow},status=\"ok\"")),
        folded as f64
    );
    assert_eq!(
        value(
            &requests,
            r#"model="gpt-4o-mini",user="user-0",session="session-0",status="ok""#
        ),
        2.0
    );
    let counted = samples(&body, "llmtel_metrics_label_overflow_total");
    assert_eq!(value(&counted, r#"label="series""#), folded as f64);

    // Totals over all series are the totals of the calls, exactly.
    let sum = |family: &[(&str, f64)], filter: &str| -> f64 {
        family
            .iter()
            .filter(|(l, _)| l.contains(filter))
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(sum(&requests, ""), calls.len() as f64);
    let input: u64 = calls.iter().map(|c| c.usage.input_tokens).sum();
    let output: u64 = calls.iter().map(|c| c.usage.output_tokens).sum();
    assert_eq!(sum(&tokens, r#"type="input""#), input as f64);
    assert_eq!(sum(&tokens, r#"type="output""#), output as f64);
    assert_eq!(sum(&latency, ""), calls.len() as f64);
    // The folded calls' cost is their exact pico-dollar sum, in the overflow series.
    let folded_picos: u128 = calls[MAX_LABEL_SETS..SIDE * SIDE]
        .iter()
        .map(|c| c.cost_usd().unwrap().picos())
        .sum();
    assert_eq!(
        value(&cost, overflow),
        Usd::from_picos(folded_picos).as_f64()
    );
}
