//! llmtel quickstart: a **simulated** support-bot workload, traced and priced by llmtel.
//!
//! Nothing here calls a real model: latencies and token usage are fixed numbers written
//! below, so the example runs in seconds with no API key and no collector. It shows what
//! llmtel records for a real service: nested agent, retrieval, tool and generation spans,
//! three models, three users, one failed call, a console line per call, and per-trace
//! summaries with tokens and cost.
//!
//! ```text
//! cargo run --example quickstart
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run --example quickstart  # also export
//! ```
//!
//! Exporting, it still prints everything it prints without (the console lines too). With the
//! collector down, it exits within a few seconds: a flush gives up after 3 s, not 10.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::Duration;

use llmtel::{LlmCall, QueueConfig, Usage, Usd};

/// Totals by model and by user, fed by every completed LLM call.
#[derive(Debug, Default)]
struct Totals {
    by_model: Mutex<BTreeMap<String, Row>>,
    by_user: Mutex<BTreeMap<String, Row>>,
}

#[derive(Debug, Default, Clone)]
struct Row {
    calls: u64,
    failed: u64,
    input: u64,
    output: u64,
    cost: Usd,
}

impl Row {
    fn add(&mut self, call: &LlmCall) {
        self.calls += 1;
        self.failed += u64::from(call.is_error());
        self.input += call.usage.input_tokens;
        self.output += call.usage.output_tokens;
        self.cost = self
            .cost
            .saturating_add(call.cost_usd().unwrap_or(Usd::ZERO));
    }
}

impl llmtel::CallSink for Totals {
    fn on_call(&self, call: &LlmCall) {
        let model = call.model().unwrap_or("?").to_owned();
        let user = call.dimensions.user.as_deref().unwrap_or("-").to_owned();
        lock(&self.by_model).entry(model).or_default().add(call);
        lock(&self.by_user).entry(user).or_default().add(call);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One simulated model call: fixed latency, fixed usage, or a fixed failure.
struct Simulated {
    provider: &'static str,
    model: &'static str,
    latency_ms: u64,
    usage: Usage,
    fail: Option<(&'static str, &'static str)>,
}

fn call_model(sim: &Simulated) {
    let span = llmtel::llm_span!("chat", sim.provider, sim.model);
    let _entered = span.enter();
    span.record("gen_ai.request.max_tokens", 1024);
    span.record("gen_ai.request.temperature", 0.2);
    sleep(Duration::from_millis(sim.latency_ms)); // stands in for the network round trip
    match sim.fail {
        Some((kind, message)) => llmtel::record_error(&span, kind, message),
        None => {
            llmtel::record_response(&span, "sim-response", sim.model, &["stop"]);
            llmtel::record_usage(&span, &sim.usage);
        }
    }
}

fn usage(input: u64, cached: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        cache_read_tokens: cached,
        output_tokens: output,
        ..Default::default()
    }
}

/// One support request: classify with a small model, retrieve, maybe call a tool, answer
/// with a large model, summarise the ticket with a third.
fn support_request(user: &str, question: &str, needs_order_lookup: bool, rate_limited: bool) {
    let request = tracing::info_span!(
        "support_request",
        "user.id" = user,
        "llmtel.feature" = "support",
        "question.length" = question.len() as i64
    );
    let _r = request.enter();
    let agent = llmtel::gen_ai_span!(
        "invoke_agent",
        "support-bot",
        "gen_ai.agent.name" = "support-bot"
    );
    let _a = agent.enter();

    call_model(&Simulated {
        provider: "openai",
        model: "gpt-4o-mini",
        latency_ms: 15,
        usage: usage(420, 0, 12),
        fail: None,
    });
    {
        let _ret = llmtel::gen_ai_span!(
            "retrieval",
            "help-center",
            "gen_ai.data_source.id" = "help-center"
        )
        .entered();
        sleep(Duration::from_millis(8));
    }
    if needs_order_lookup {
        let _tool = llmtel::gen_ai_span!(
            "execute_tool",
            "lookup_order",
            "gen_ai.tool.name" = "lookup_order"
        )
        .entered();
        sleep(Duration::from_millis(5));
    }
    if rate_limited {
        // The provider answers 429 once; the bot retries.
        call_model(&Simulated {
            provider: "anthropic",
            model: "claude-sonnet-4",
            latency_ms: 30,
            usage: Usage::default(),
            fail: Some(("rate_limit", "429 Too Many Requests (simulated)")),
        });
    }
    call_model(&Simulated {
        provider: "anthropic",
        model: "claude-sonnet-4",
        latency_ms: 60,
        usage: usage(6_200, 4_096, 480),
        fail: None,
    });
    call_model(&Simulated {
        provider: "gcp.gemini",
        model: "gemini-2.5-flash",
        latency_ms: 20,
        usage: usage(1_100, 0, 90),
        fail: None,
    });
}

fn main() {
    let totals = Arc::new(Totals::default());
    // The OTEL_BSP_* variables, checked as llmtel's own default would check them.
    let queue = match QueueConfig::try_from_env() {
        Ok(q) => q,
        Err(e) => {
            eprintln!("quickstart: {e}");
            std::process::exit(1);
        }
    };
    let guard = match llmtel::builder()
        .with_service_name("support-bot-quickstart")
        .with_sink(totals.clone())
        // The console lines also when exporting (llmtel's default is: only when not).
        .with_console(true)
        // A flush, and the export's shutdown at exit, wait at most 3 s (the default is 10
        // each): with the collector down, the quickstart exits in seconds, not ~20 s.
        .with_queue(QueueConfig {
            flush_timeout: Duration::from_secs(3),
            ..queue
        })
        .install()
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("quickstart: llmtel could not start: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "llmtel quickstart: a SIMULATED support bot (fixed latencies and usage; no API key, no network)."
    );
    if guard.is_exporting() {
        println!("Exporting spans over OTLP as well (OTEL_EXPORTER_OTLP_ENDPOINT is set).");
    } else {
        println!("Set OTEL_EXPORTER_OTLP_ENDPOINT to export the spans to a collector.");
    }
    println!();

    let requests = [
        ("alice", "Where is my order #1234?", true, false),
        ("bob", "How do I reset my password?", false, true),
        ("carol", "Can I change my delivery address?", true, false),
        ("alice", "The parcel arrived damaged.", true, false),
        ("bob", "Cancel my subscription please.", false, false),
    ];
    for (i, (user, question, lookup, rate_limited)) in requests.into_iter().enumerate() {
        support_request(user, question, lookup, rate_limited);
        if let Some(s) = guard.summaries().recent(1).pop() {
            println!("trace {} ({user}): {s}", i + 1);
        }
    }

    // Exporting, the sinks run on the export stage, each call priced once as its span is
    // exported: flush so every call of the workload has reached the totals before printing.
    if let Err(e) = guard.flush() {
        eprintln!("quickstart: flushing the export: {e}");
    }
    println!();
    print_table("model", &lock(&totals.by_model));
    println!();
    print_table("user", &lock(&totals.by_user));
    let total = lock(&totals.by_model)
        .values()
        .fold(Usd::ZERO, |acc, r| acc.saturating_add(r.cost));
    println!("\nTotal cost of the simulated workload: {total}");
    let h = llmtel::health();
    if h.unknown_model_calls > 0 || h.spans_dropped > 0 {
        println!("llmtel health: {h:?}");
    }
    drop(guard); // flushes and shuts down export: no span is lost
}

fn print_table(key: &str, rows: &BTreeMap<String, Row>) {
    println!(
        "{:<18} {:>5} {:>6} {:>9} {:>7} {:>12}",
        format!("by {key}"),
        "calls",
        "failed",
        "tokens in",
        "out",
        "cost"
    );
    for (k, r) in rows {
        println!(
            "{:<18} {:>5} {:>6} {:>9} {:>7} {:>12}",
            k,
            r.calls,
            r.failed,
            r.input,
            r.output,
            r.cost.to_string()
        );
    }
}
