//! Issue #12, "Done when" (layer order): every order a user could stack llmtel's layer, their
//! own OpenTelemetry layer, budgets, quality, the call log and trace summaries in — all 720 —
//! exports the same attributes on the LLM call's span (the cost from the exporter stage and
//! `llmtel.budget.*` from budgets), and every sink sees the call exactly once: the budget's
//! spend, the quality monitor's count, the call log's line and the trace summary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use jiff::tz::TimeZone;
use llmtel_budget::{Budgets, CallContext, Period, Rule, Scope};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::Layer;
use tracing_subscriber::Registry;
use tracing_subscriber::prelude::*;

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

const NAMES: [&str; 6] = [
    "llmtel",
    "otel",
    "budgets",
    "quality",
    "calllog",
    "summaries",
];

fn usd(s: &str) -> llmtel::Usd {
    llmtel::Usd::parse_decimal(s).unwrap()
}

fn attr(s: &SpanData, k: &str) -> Option<opentelemetry::Value> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == k)
        .map(|kv| kv.value.clone())
}

/// What one stacking order produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    exported: Vec<(String, String)>,
    budget_spent: llmtel::Usd,
    recorded: u64,
    quality_requests: u64,
    log_calls: usize,
    summary_calls: usize,
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

fn run(order: &[usize], dir: &std::path::Path) -> Outcome {
    let exporter = InMemorySpanExporter::default();
    // llmtel's exporter stage on a batch processor, as `llmtel::builder()` sets it up.
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(llmtel::GenAiExporter::new(exporter.clone()))
        .build();
    let budgets = Budgets::builder()
        .with_rule(
            Rule::new("per-user-daily", Scope::User, Period::Day(TimeZone::UTC))
                .with_limit_usd(usd("0.01")),
        )
        .build();
    let quality = llmtel_quality::Quality::builder().build();
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log_path = dir.join(format!("calls-{n}.jsonl"));
    let log = llmtel_report::CallLog::builder(&log_path).build().unwrap();
    let summaries = llmtel::TraceSummaries::new(16);

    let mut layers: Vec<BoxedLayer> = Vec::new();
    for &i in order {
        layers.push(match NAMES[i] {
            "llmtel" => Box::new(llmtel::layer()),
            "otel" => Box::new(tracing_opentelemetry::layer().with_tracer(provider.tracer("app"))),
            "budgets" => Box::new(budgets.layer()),
            "quality" => Box::new(quality.layer()),
            "calllog" => Box::new(log.layer()),
            "summaries" => Box::new(summaries.layer()),
            other => unreachable!("{other}"),
        });
    }
    let subscriber = tracing_subscriber::registry().with(layers);
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!("request", user.id = "u-1");
        request.in_scope(|| {
            let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
            // Entered while the call runs, as the middleware and `Instrument` do.
            let _entered = span.enter();
            // gpt-4o: 1,000 in x $2.50/M + 100 out x $10/M = $0.0035
            llmtel::record_usage(
                &span,
                &llmtel::Usage {
                    input_tokens: 1_000,
                    output_tokens: 100,
                    ..Default::default()
                },
            );
        });
    });
    provider.force_flush().unwrap();
    assert!(budgets.flush(Duration::from_secs(10)));
    assert!(quality.flush(Duration::from_secs(10)));
    assert!(log.flush(Duration::from_secs(10)));

    let spans = exporter.get_finished_spans().unwrap();
    let chat = spans
        .iter()
        .find(|s| s.name == "chat gpt-4o")
        .unwrap_or_else(|| panic!("{}: no chat span in {spans:?}", order_name(order)));
    let mut exported: Vec<(String, String)> = [
        "gen_ai.usage.cost",
        "llmtel.cost.input",
        "llmtel.cost.output",
        "llmtel.budget.rule",
        "llmtel.budget.utilization",
    ]
    .iter()
    .map(|k| {
        (
            (*k).to_owned(),
            attr(chat, k).map(|v| v.to_string()).unwrap_or_default(),
        )
    })
    .collect();
    exported.sort();
    let ctx = CallContext::new().with_user("u-1");
    let status = &budgets.status_for(&ctx).unwrap()[0];
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    Outcome {
        exported,
        budget_spent: status.spent,
        recorded: budgets.stats().recorded,
        quality_requests: quality.snapshot().overall.total.requests,
        log_calls: log_text.lines().filter(|l| l.contains("gpt-4o")).count(),
        summary_calls: summaries
            .recent(16)
            .iter()
            .map(|s| s.llm_calls)
            .sum::<u64>() as usize,
    }
}

fn order_name(order: &[usize]) -> String {
    order
        .iter()
        .map(|&i| NAMES[i])
        .collect::<Vec<_>>()
        .join("-")
}

#[test]
fn every_layer_order_exports_the_same_attributes_and_feeds_every_sink_once() {
    let dir = tempfile::tempdir().unwrap();
    let before = llmtel::health();
    // The order the README shows: llmtel's layer first, the OpenTelemetry layer last.
    let canonical = [0, 2, 3, 4, 5, 1];
    let expected = run(&canonical, dir.path());
    let exported = |k: &str| {
        expected
            .exported
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(exported("gen_ai.usage.cost"), "0.0035", "{expected:?}");
    assert_eq!(exported("llmtel.budget.rule"), "per-user-daily");
    let utilization: f64 = exported("llmtel.budget.utilization").parse().unwrap();
    assert!((utilization - 0.35).abs() < 1e-9, "{utilization}");
    assert_eq!(expected.budget_spent, usd("0.0035"));
    assert_eq!(
        (
            expected.recorded,
            expected.quality_requests,
            expected.log_calls,
            expected.summary_calls
        ),
        (1, 1, 1, 1),
        "each sink saw the call once: {expected:?}"
    );
    let mut wrong = Vec::new();
    let orders = permutations(NAMES.len());
    assert_eq!(orders.len(), 720);
    for order in &orders {
        let got = run(order, dir.path());
        if got != expected {
            wrong.push(format!("{}: {got:?}", order_name(order)));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} orders differ from {expected:?}:\n{}",
        wrong.len(),
        orders.len(),
        wrong.join("\n")
    );
    let after = llmtel::health();
    assert_eq!(
        after.late_attributes_dropped, before.late_attributes_dropped,
        "no late attribute was lost"
    );
    // Budgets ran after the OpenTelemetry layer had ended the span in half of the orders:
    // those spans got their `llmtel.budget.*` from the exporter stage.
    let late_orders = orders
        .iter()
        .filter(|o| {
            let at = |name| o.iter().position(|&i| NAMES[i] == name).unwrap();
            at("otel") < at("budgets")
        })
        .count();
    assert_eq!(late_orders, 360);
    assert_eq!(
        after.late_attributes_merged - before.late_attributes_merged,
        late_orders as u64
    );
}
