//! Issue #15, end to end with other projects' instrumentations, installed from PyPI by
//! `scripts/peers.sh install` into the senders' venv: OpenTelemetry's
//! `opentelemetry-instrumentation-openai-v2`, OpenLLMetry's `opentelemetry-instrumentation-openai`
//! and OpenLIT instrument the `openai` Python client of an app (`support/openai_app.py`) that
//! calls a local stand-in of the OpenAI API (usage with 1,024 of 1,200 prompt tokens cached).
//! The app exports over OTLP/HTTP to `llmtel collector`, which prices, budgets and forwards to
//! a real Arize Phoenix. Read back from Phoenix, each call's span carries `gen_ai.usage.cost`
//! equal to llmtel's price (the one `llmtel cost` prints) for the usage that instrumentation
//! records, integer token counts, and OpenLIT's own estimate moved aside; the collector's
//! budget holds the sum of those costs and its Prometheus counters count every call. Needs
//! `scripts/peers.sh install` and `start` (scripts/test.sh does both); fails, never skips.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

#[allow(dead_code, unreachable_pub)]
#[path = "../../llmtel/tests/support/phoenix.rs"]
mod phoenix;

use std::time::Duration;

use llmtel_budget::{Budgets, CallContext, Period, Rule, Scope};
use llmtel_collector::{Collector, Config, Protocol};
use llmtel_pricing::{Catalog, Usage};
use phoenix::*;

const CALLS: usize = 2;

fn senders_python() -> String {
    match std::env::var("LLMTEL_SENDERS_PYTHON") {
        Ok(p) if !p.trim().is_empty() => p,
        _ => format!(
            "{}/.cache/llmtel/venv-senders/bin/python",
            std::env::var("HOME").unwrap()
        ),
    }
}

/// llmtel's price for `usage` on the model the stand-in answers with, today.
fn price(usage: &Usage) -> f64 {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    Catalog::builtin()
        .price("gpt-4o-2024-08-06", Some("openai"), usage, today)
        .unwrap()
        .breakdown
        .total
        .as_f64()
}

/// Runs the app under one instrumentation, exporting to `url`.
fn run_app(instrumentation: &str, url: &str, project: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/openai_app.py");
    let out = std::process::Command::new(senders_python())
        .args([script, instrumentation, url, project, &CALLS.to_string()])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("OTEL_LOGS_EXPORTER", "none")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the senders' python {} ({e}): run `scripts/peers.sh install` \
                 (it makes the venv with the instrumentations)",
                senders_python()
            )
        });
    assert!(
        out.status.success(),
        "the {instrumentation} app failed (are the instrumentations installed? \
         `scripts/peers.sh install`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[test]
fn spans_of_three_python_instrumentations_are_priced_budgeted_and_counted() {
    let peers = Peers::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let budgets = Budgets::builder()
        .with_rule(
            Rule::new("openai-lifetime", Scope::Provider, Period::Lifetime)
                .with_limit_usd(llmtel::Usd::parse_decimal("1000").unwrap()),
        )
        .build();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = Config::new()
        .with_grpc_listen(any)
        .with_http_listen(any)
        .with_metrics_listen(any)
        .with_forward_endpoint(peers.phoenix_otlp_http.clone())
        .unwrap()
        .with_forward_protocol(Protocol::HttpProtobuf)
        .with_budgets(budgets.clone());
    let collector = rt.block_on(Collector::start(config)).unwrap();
    let url = format!("http://{}/v1/traces", collector.http_addr());

    // What each instrumentation records of the same response: openai-v2 only input and
    // output tokens; OpenLLMetry and OpenLIT the cached tokens as well.
    let plain = Usage::new(1200, 300);
    let cached = Usage {
        cache_read_tokens: 1024,
        ..Usage::new(1200, 300)
    };
    let cases = [
        ("openai-v2", plain),
        ("openllmetry", cached),
        ("openlit", cached),
    ];
    let mut total = 0.0;
    for (instrumentation, usage) in cases {
        let project = unique_project(&format!("collector-{instrumentation}"));
        run_app(instrumentation, &url, &project);
        let spans = wait_for_spans(
            &peers.phoenix_url,
            &project,
            |s| attr_str(s, "gen_ai.operation.name") == Some("chat"),
            CALLS,
            Duration::from_secs(60),
        );
        assert_eq!(spans.len(), CALLS, "{instrumentation}: one span per call");
        let want = price(&usage);
        for span in &spans {
            let cost = attr_f64(span, "gen_ai.usage.cost").unwrap_or_else(|| {
                panic!("{instrumentation}: no gen_ai.usage.cost in Phoenix: {span}")
            });
            assert!(
                (cost - want).abs() < 1e-12,
                "{instrumentation}: cost {cost}, llmtel cost says {want}: {span}"
            );
            assert_eq!(
                attr_i64(span, "gen_ai.usage.input_tokens"),
                Some(1200),
                "{instrumentation}: an integer input count: {span}"
            );
            assert_eq!(
                attr_i64(span, "gen_ai.usage.output_tokens"),
                Some(300),
                "{instrumentation}: {span}"
            );
            if usage.cache_read_tokens > 0 {
                assert_eq!(
                    attr_i64(span, "gen_ai.usage.cache_read.input_tokens"),
                    Some(1024),
                    "{instrumentation}: {span}"
                );
            }
            if instrumentation == "openlit" {
                // OpenLIT's own estimate (0: it has no price for the stand-in's model
                // snapshot) is kept aside, not taken for the cost.
                assert!(
                    attr(span, "llmtel.cost.instrumentation").is_some(),
                    "openlit: its estimate moved aside: {span}"
                );
            }
            assert!(
                !span.to_string().contains("sk-test-NOT-A-REAL-KEY"),
                "{instrumentation}: the API key reached the span: {span}"
            );
        }
        total += want * CALLS as f64;
    }

    // The budget holds every call's cost, once.
    assert!(budgets.flush(Duration::from_secs(10)));
    let spent = budgets
        .status_for(&CallContext::new().with_provider("openai"))
        .unwrap()[0]
        .spent
        .as_f64();
    assert!(
        (spent - total).abs() < 1e-9,
        "budget spent {spent}, the calls cost {total}"
    );

    // The collector's Prometheus counters count every call.
    let calls = (cases.len() * CALLS) as f64;
    let text = reqwest::blocking::get(format!("http://{}/metrics", collector.metrics_addr()))
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(metric(&text, "llmtel_collector_spans_priced_total"), calls);
    assert_eq!(
        metric(&text, "llmtel_collector_spans_budgeted_total"),
        calls
    );
    assert!(metric(&text, "llmtel_collector_spans_received_total") >= calls);
    assert_eq!(
        metric(&text, "llmtel_collector_spans_unknown_model_total"),
        0.0
    );
    // And the in-process stack's series of the same calls.
    let sum = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(sum("llm_requests_total"), calls, "{text}");
    assert!(
        (sum("llm_cost_usd_total") - total).abs() < 1e-9,
        "llm_cost_usd_total {} != {total}",
        sum("llm_cost_usd_total")
    );
    let stats = collector.stats();
    assert_eq!(stats.dropped(), 0, "{stats:?}");
}
