//! End to end with real peers: the Python OpenTelemetry SDK (`opentelemetry-sdk` and
//! `opentelemetry-exporter-otlp-proto-http`, in the venv `scripts/peers.sh` makes) exports
//! GenAI spans in two dialects to `llmtel collector`, which forwards them to Arize Phoenix;
//! read back from Phoenix's REST API, each carries `gen_ai.usage.cost` equal to
//! `llmtel_pricing`'s price for its usage and integer token counts. Needs
//! `scripts/peers.sh start` (scripts/test.sh does it); fails, never skips, without the peers.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

#[allow(dead_code, unreachable_pub)]
#[path = "../../llmtel/tests/support/phoenix.rs"]
mod phoenix;

use std::time::Duration;

use llmtel_collector::{Collector, Config, Protocol};
use llmtel_pricing::{Catalog, Usage};
use phoenix::*;

const SENDER: &str = r#"
import sys
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

url, project = sys.argv[1], sys.argv[2]
provider = TracerProvider(resource=Resource.create({
    "service.name": "python-genai-app",
    "openinference.project.name": project,
}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url)))
tracer = provider.get_tracer("python-genai-test")
# The GenAI conventions before 1.27, as older instrumentations still write them.
with tracer.start_as_current_span("chat deprecated", attributes={
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.prompt_tokens": 1200,
    "gen_ai.usage.completion_tokens": 300,
}):
    pass
# OpenInference, with cached prompt tokens.
with tracer.start_as_current_span("chat openinference", attributes={
    "openinference.span.kind": "LLM",
    "llm.model_name": "gpt-4o",
    "llm.provider": "openai",
    "llm.token_count.prompt": 1200,
    "llm.token_count.completion": 300,
    "llm.token_count.prompt_details.cache_read": 1000,
}):
    pass
provider.shutdown()
"#;

fn python() -> String {
    match std::env::var("LLMTEL_PEERS_VENV") {
        Ok(v) if !v.is_empty() => format!("{v}/bin/python"),
        _ => format!(
            "{}/.cache/llmtel/venv/bin/python",
            std::env::var("HOME").unwrap()
        ),
    }
}

fn price(usage: &Usage) -> f64 {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    Catalog::builtin()
        .price("gpt-4o", Some("openai"), usage, today)
        .unwrap()
        .breakdown
        .total
        .as_f64()
}

#[test]
fn python_sdk_spans_are_priced_by_the_collector_and_land_in_phoenix() {
    let peers = Peers::from_env();
    let project = unique_project("collector-python");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = Config::new()
        .with_grpc_listen(any)
        .with_http_listen(any)
        .with_metrics_listen(any)
        .with_forward_endpoint(peers.phoenix_otlp_http.clone())
        .unwrap()
        .with_forward_protocol(Protocol::HttpProtobuf);
    let collector = rt.block_on(Collector::start(config)).unwrap();

    let out = std::process::Command::new(python())
        .args(["-c", SENDER])
        .arg(format!("http://{}/v1/traces", collector.http_addr()))
        .arg(&project)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the venv's python ({e}): {HOW_TO_START}, then `pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http` into it")
        });
    assert!(
        out.status.success(),
        "the Python sender failed (is opentelemetry-exporter-otlp-proto-http installed in the venv?): {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let spans = wait_for_spans(
        &peers.phoenix_url,
        &project,
        any_span,
        2,
        Duration::from_secs(40),
    );
    let expected = [
        ("chat deprecated", price(&Usage::new(1200, 300))),
        (
            "chat openinference",
            price(&Usage {
                input_tokens: 1200,
                output_tokens: 300,
                cache_read_tokens: 1000,
                ..Usage::default()
            }),
        ),
    ];
    for (name, want) in expected {
        let span = spans
            .iter()
            .find(|s| span_name(s) == name)
            .unwrap_or_else(|| panic!("no span {name:?} in Phoenix: {spans:?}"));
        let cost = attr_f64(span, "gen_ai.usage.cost")
            .unwrap_or_else(|| panic!("{name}: no gen_ai.usage.cost in Phoenix: {span}"));
        assert!((cost - want).abs() < 1e-9, "{name}: {cost} != {want}");
        assert_eq!(
            attr_i64(span, "gen_ai.usage.input_tokens"),
            Some(1200),
            "{name}"
        );
        assert_eq!(
            attr_i64(span, "gen_ai.usage.output_tokens"),
            Some(300),
            "{name}"
        );
    }
    let stats = collector.stats();
    assert_eq!((stats.received, stats.priced, stats.dropped()), (2, 2, 0));
}
