//! Real calls through `LlmLayer` and the call log's layer, evaluated and rated through a
//! real `Quality` pipeline: the report's cost by model, user and feature are the exact sums
//! of the catalog's prices, and its worst calls are the monitor's lowest quality scores.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use llmtel::{Usage, Usd};
use llmtel_quality::{CallRef, EvalInput, Feedback, Quality};
use llmtel_report::{CallLog, NONE, Period, Record, Report};
use support::{price, sum, temp_log, today};
use tracing_subscriber::prelude::*;

/// A group of calls: its key and which calls are in it.
type Group<'a> = (&'a str, &'a dyn Fn(&Call) -> bool);

struct Call {
    id: &'static str,
    model: &'static str,
    provider: &'static str,
    user: Option<&'static str>,
    feature: &'static str,
    usage: Usage,
    error: Option<&'static str>,
    answer: &'static str,
}

fn usage(input: u64, output: u64, cached: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: cached,
        ..Default::default()
    }
}

fn calls() -> Vec<Call> {
    vec![
        Call {
            id: "chatcmpl-1",
            model: "gpt-4o",
            provider: "openai",
            user: Some("alice"),
            feature: "search",
            usage: usage(1200, 300, 1024),
            error: None,
            answer: "You can reset your password from the login page with the reset link.",
        },
        Call {
            id: "chatcmpl-2",
            model: "gpt-4o",
            provider: "openai",
            user: Some("bob"),
            feature: "search",
            usage: usage(3000, 500, 0),
            error: None,
            answer: "The weather in Paris is mild in spring.",
        },
        Call {
            id: "chatcmpl-3",
            model: "gpt-4o-mini",
            provider: "openai",
            user: Some("alice"),
            feature: "chat",
            usage: usage(20_000, 1500, 0),
            error: None,
            answer: "Refunds are processed within five business days of the request.",
        },
        Call {
            id: "chatcmpl-4",
            model: "gpt-4o-mini",
            provider: "openai",
            user: Some("carol"),
            feature: "chat",
            usage: usage(0, 0, 0),
            error: Some("rate_limit"),
            answer: "",
        },
        Call {
            id: "msg_5",
            model: "claude-sonnet-4",
            provider: "anthropic",
            user: None,
            feature: "summarize",
            usage: usage(40_000, 2_000, 0),
            error: None,
            answer: "I'm sorry, but I can't help with that request.",
        },
    ]
}

const QUESTIONS: &[(&str, &str)] = &[
    ("chatcmpl-1", "How do I reset my password?"),
    ("chatcmpl-2", "How do I reset my password?"),
    ("chatcmpl-3", "How long do refunds take?"),
    ("msg_5", "Summarize the quarterly revenue report."),
];

#[test]
fn cost_by_model_user_and_feature_are_exact_sums_and_worst_calls_match_the_monitor() {
    let path = temp_log("sums");
    let log = CallLog::builder(&path).build().unwrap();
    let quality = Quality::builder().with_builtin_evaluators().build();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(llmtel::LlmLayer::new().with_sink(Arc::new(quality.sink())))
            .with(log.layer()),
    );
    // The evaluation spans of the pipeline reach the log's layer through this dispatch.
    quality.emit_into(&dispatch);
    let calls = calls();
    tracing::dispatcher::with_default(&dispatch, || {
        for c in &calls {
            // Dimensions on the request span reach the LLM call inside it.
            let request = tracing::info_span!("request", "user.id" = tracing::field::Empty);
            if let Some(u) = c.user {
                request.record("user.id", u);
            }
            let _r = request.enter();
            let span = llmtel::llm_span!(
                "chat",
                c.provider,
                c.model,
                "gen_ai.input.messages" = tracing::field::Empty,
                "gen_ai.output.messages" = tracing::field::Empty
            );
            span.record("llmtel.feature", c.feature);
            // Capture is off (the default): these record nothing.
            llmtel::record_input_messages(&span, r#"[{"role":"user","content":"hello"}]"#);
            llmtel::record_output_messages(&span, c.answer);
            llmtel::record_response(&span, c.id, c.model, &["stop"]);
            match c.error {
                Some(e) => llmtel::record_error(&span, e, "429 Too Many Requests"),
                None => llmtel::record_usage(&span, &c.usage),
            }
        }
    });
    for (id, q) in QUESTIONS {
        let answer = calls.iter().find(|c| c.id == *id).unwrap().answer;
        assert!(
            quality.evaluate(
                EvalInput::new(answer)
                    .with_question(*q)
                    .with_response_id(*id)
            )
        );
    }
    assert!(quality.feedback(Feedback::thumbs(
        CallRef::ResponseId("chatcmpl-2".into()),
        false
    )));
    assert!(quality.feedback(Feedback::thumbs(
        CallRef::ResponseId("chatcmpl-1".into()),
        true
    )));
    assert!(quality.flush(Duration::from_secs(20)));
    assert!(log.flush(Duration::from_secs(10)));
    let stats = log.stats();
    assert_eq!(stats.dropped(), 0, "{stats:?}");

    let report = Report::from_log(&path, &Period::all()).unwrap();

    // Exact prices, computed here from the catalog.
    let d = today();
    let cost: BTreeMap<&str, Usd> = calls
        .iter()
        .filter(|c| c.error.is_none())
        .map(|c| (c.id, price(c.model, c.provider, &c.usage, d)))
        .collect();
    let total_of = |pred: &dyn Fn(&Call) -> bool| {
        sum(calls
            .iter()
            .filter(|c| pred(c))
            .filter_map(|c| cost.get(c.id)))
    };
    let t = &report.totals;
    assert_eq!(t.requests, 5);
    assert_eq!(t.errors, 1);
    assert_eq!(t.unpriced, 1);
    assert_eq!(t.cost, sum(cost.values()));
    assert_eq!(t.error_rate, Some(0.2));
    assert_eq!(
        t.input_tokens,
        calls.iter().map(|c| c.usage.input_tokens).sum::<u64>()
    );

    let rows = |v: &[llmtel_report::CostRow]| -> BTreeMap<String, (u64, u64, Usd)> {
        v.iter()
            .map(|r| (r.key.clone(), (r.requests, r.errors, r.cost)))
            .collect()
    };
    let expect = |keys: &[Group<'_>]| -> BTreeMap<String, (u64, u64, Usd)> {
        keys.iter()
            .map(|(k, pred)| {
                let n = calls.iter().filter(|c| pred(c)).count() as u64;
                let e = calls
                    .iter()
                    .filter(|c| pred(c) && c.error.is_some())
                    .count() as u64;
                ((*k).to_owned(), (n, e, total_of(*pred)))
            })
            .collect()
    };
    assert_eq!(
        rows(&report.by_model),
        expect(&[
            ("gpt-4o", &|c: &Call| c.model == "gpt-4o"),
            ("gpt-4o-mini", &|c: &Call| c.model == "gpt-4o-mini"),
            ("claude-sonnet-4", &|c: &Call| c.model == "claude-sonnet-4"),
        ])
    );
    assert_eq!(
        rows(&report.by_user),
        expect(&[
            ("alice", &|c: &Call| c.user == Some("alice")),
            ("bob", &|c: &Call| c.user == Some("bob")),
            ("carol", &|c: &Call| c.user == Some("carol")),
            (NONE, &|c: &Call| c.user.is_none()),
        ])
    );
    assert_eq!(
        rows(&report.by_feature),
        expect(&[
            ("search", &|c: &Call| c.feature == "search"),
            ("chat", &|c: &Call| c.feature == "chat"),
            ("summarize", &|c: &Call| c.feature == "summarize"),
        ])
    );
    // Most expensive first.
    assert!(report.by_model.windows(2).all(|w| w[0].cost >= w[1].cost));

    // Worst calls: every scored call, lowest score first, each the monitor's own score.
    assert_eq!(report.worst_calls.len(), 5);
    let scores: Vec<f64> = report.worst_calls.iter().map(|w| w.quality_score).collect();
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "{scores:?}");
    for w in &report.worst_calls {
        let id = w.call.response_id.clone().unwrap();
        let monitor = quality
            .with_monitor(|m| m.call_quality(&CallRef::ResponseId(id.clone())))
            .unwrap();
        assert!(
            (w.quality_score - monitor).abs() < 1e-12,
            "{id}: report {} vs monitor {monitor}",
            w.quality_score
        );
    }
    // The failed call scores lowest; the thumbs-down weighs on chatcmpl-2.
    assert_eq!(
        report.worst_calls[0].call.response_id.as_deref(),
        Some("chatcmpl-4")
    );
    let two = report
        .worst_calls
        .iter()
        .find(|w| w.call.response_id.as_deref() == Some("chatcmpl-2"))
        .unwrap();
    assert_eq!(two.evaluations.get("user_feedback"), Some(&0.0));
    assert!(two.evaluations.contains_key("relevance"));
    assert_eq!(report.totals.ratings, 2);
    assert_eq!(report.totals.avg_rating, Some(0.5));
    assert_eq!(report.evaluators["user_feedback"].count, 2);
    assert_eq!(report.evaluators["relevance"].count, 4);

    // Nothing was captured: no content in the log or the report.
    assert!(
        report
            .worst_calls
            .iter()
            .all(|w| w.call.input_messages.is_none() && w.call.output_messages.is_none())
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("_messages"), "{text}");
    assert!(!text.contains("reset link"), "{text}");
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<Record>(l).is_ok())
    );

    // The JSON reads back (exact for every cost; floats as serde_json parses them), costs
    // as exact strings.
    let json = report.to_json();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (
            &back.totals.cost,
            &back.by_model,
            &back.by_user,
            &back.by_feature
        ),
        (
            &report.totals.cost,
            &report.by_model,
            &report.by_user,
            &report.by_feature
        )
    );
    assert_eq!(back.log, report.log);
    assert_eq!(back.worst_calls.len(), report.worst_calls.len());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["totals"]["cost"].as_str().unwrap(),
        sum(cost.values()).to_string().trim_start_matches('$')
    );

    // Markdown shows the same figures.
    let md = report.to_markdown();
    for r in &report.by_user {
        assert!(
            md.contains(&format!(
                "| {} | {} | {} | {} |",
                r.key, r.requests, r.errors, r.cost
            )),
            "{md}"
        );
    }
}
