//! Spans in each GenAI dialect, sent to a real collector over OTLP/HTTP protobuf, OTLP/HTTP
//! JSON and OTLP/gRPC, reach a real downstream OTLP receiver priced exactly as
//! `llmtel_pricing` prices the same usage, with integer token counts.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use llmtel_collector::Collector;
use llmtel_pricing::{Catalog, Usage};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use prost::Message;

/// `(dialect, attributes, usage they describe)`; every one is gpt-4o from OpenAI.
fn dialects() -> Vec<(&'static str, Vec<KeyValue>, Usage)> {
    let with_cache = Usage {
        input_tokens: 1000,
        output_tokens: 200,
        cache_read_tokens: 400,
        ..Usage::default()
    };
    let plain = Usage::new(1000, 200);
    vec![
        (
            "otel-genai",
            vec![
                s("gen_ai.operation.name", "chat"),
                s("gen_ai.provider.name", "openai"),
                s("gen_ai.request.model", "gpt-4o"),
                i("gen_ai.usage.input_tokens", 1000),
                i("gen_ai.usage.output_tokens", 200),
                i("gen_ai.usage.cache_read.input_tokens", 400),
            ],
            with_cache,
        ),
        (
            "otel-genai-deprecated",
            vec![
                s("gen_ai.system", "openai"),
                s("gen_ai.request.model", "gpt-4o"),
                // recorded as strings, as some SDKs do
                s("gen_ai.usage.prompt_tokens", "1000"),
                s("gen_ai.usage.completion_tokens", "200"),
            ],
            plain,
        ),
        (
            "openinference",
            vec![
                s("openinference.span.kind", "LLM"),
                s("llm.model_name", "gpt-4o"),
                s("llm.provider", "openai"),
                i("llm.token_count.prompt", 1000),
                i("llm.token_count.completion", 200),
                i("llm.token_count.prompt_details.cache_read", 400),
            ],
            with_cache,
        ),
        (
            "openllmetry",
            vec![
                s("gen_ai.system", "openai"),
                s("gen_ai.request.model", "gpt-4o"),
                i("gen_ai.usage.input_tokens", 1000),
                i("llm.usage.total_tokens", 1200),
                i("gen_ai.usage.cache_read_input_tokens", 400),
            ],
            with_cache,
        ),
        (
            "openlit",
            vec![
                s("gen_ai.system", "openai"),
                s("gen_ai.operation.name", "chat"),
                s("gen_ai.request.model", "gpt-4o"),
                i("gen_ai.usage.input_tokens", 1000),
                i("gen_ai.usage.output_tokens", 200),
                i("gen_ai.usage.prompt_tokens_details.cache_read", 400),
                // OpenLIT's own estimate: replaced by llmtel's price
                kv("gen_ai.usage.cost", any_value::Value::DoubleValue(0.5)),
            ],
            with_cache,
        ),
    ]
}

fn expected_cost(usage: &Usage) -> f64 {
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

async fn send(transport: &str, collector: &Collector, req: ExportTraceServiceRequest) {
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/traces", collector.http_addr());
    match transport {
        "http-protobuf" => post_protobuf(collector, req).await,
        "http-json" => {
            let r = http
                .post(&url)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&req).unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
        "grpc" => {
            let mut c = TraceServiceClient::connect(format!("http://{}", collector.grpc_addr()))
                .await
                .unwrap();
            c.export(req).await.unwrap();
        }
        other => unreachable!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dialect_over_every_transport_is_forwarded_with_the_library_cost() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();

    let mut seed = 1u8;
    let mut expected = Vec::new();
    for transport in ["http-protobuf", "http-json", "grpc"] {
        for (dialect, attrs, usage) in dialects() {
            let name = format!("{dialect} over {transport}");
            send(
                transport,
                &collector,
                request("svc", seed, vec![(name.clone(), attrs)]),
            )
            .await;
            seed += 1;
            expected.push((name, usage));
        }
    }

    for (name, usage) in &expected {
        let (resource, span) = receiver.wait_for(name).await;
        let cost = f64_attr(&span, "gen_ai.usage.cost");
        let want = expected_cost(usage);
        assert!(
            (cost - want).abs() < 1e-9,
            "{name}: cost {cost}, llmtel_pricing says {want}"
        );
        assert_eq!(int_attr(&span, "gen_ai.usage.input_tokens"), 1000, "{name}");
        assert_eq!(int_attr(&span, "gen_ai.usage.output_tokens"), 200, "{name}");
        if name.starts_with("openlit ") {
            // OpenLIT's own estimate stays visible, aside
            assert_eq!(f64_attr(&span, "llmtel.cost.instrumentation"), 0.5);
        }
        if usage.cache_read_tokens > 0 {
            assert_eq!(
                int_attr(&span, "gen_ai.usage.cache_read.input_tokens"),
                400,
                "{name}"
            );
        }
        assert!(
            resource.iter().any(|kv| kv.key == "service.name"
                && kv.value.as_ref().and_then(|v| v.value.as_ref())
                    == Some(&any_value::Value::StringValue("svc".into()))),
            "{name}: the sender's resource is kept: {resource:?}"
        );
    }
    // Counted once the downstream has answered.
    wait_until("15 spans are counted as forwarded", || {
        collector.stats().forwarded == 15
    })
    .await;
    let stats = collector.stats();
    assert_eq!(stats.received, 15);
    assert_eq!(stats.priced, 15);
    assert_eq!(stats.forwarded, 15);
    assert_eq!(stats.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_that_cannot_be_priced_are_counted_and_forwarded() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();
    let req = request(
        "svc",
        9,
        vec![
            (
                "unknown model".into(),
                vec![
                    s("gen_ai.request.model", "no-such-model-zz9"),
                    i("gen_ai.usage.input_tokens", 10),
                    i("gen_ai.usage.output_tokens", 10),
                ],
            ),
            (
                "plain http span".into(),
                vec![s("http.request.method", "GET")],
            ),
        ],
    );
    send("grpc", &collector, req).await;
    let (_, span) = receiver.wait_for("unknown model").await;
    assert!(attr(&span, "gen_ai.usage.cost").is_none());
    assert!(attr(&span, "llmtel.cost.unknown_model").is_some());
    receiver.wait_for("plain http span").await;
    wait_until("2 spans are counted as forwarded", || {
        collector.stats().forwarded == 2
    })
    .await;

    let m = metrics(collector.metrics_addr()).await;
    assert!(
        m.contains("llmtel_collector_spans_received_total 2\n"),
        "{m}"
    );
    assert!(
        m.contains("llmtel_collector_spans_unknown_model_total 1\n"),
        "{m}"
    );
    assert!(
        m.contains("llmtel_collector_spans_unpriced_total 1\n"),
        "{m}"
    );
    assert!(m.contains("llmtel_collector_spans_priced_total 0\n"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_resource_keeps_its_own_attributes_when_one_request_has_several() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();
    let mut req = request("svc-a", 20, vec![("from a".into(), vec![])]);
    req.resource_spans
        .extend(request("svc-b", 21, vec![("from b".into(), vec![])]).resource_spans);
    send("http-protobuf", &collector, req).await;
    for (name, svc) in [("from a", "svc-a"), ("from b", "svc-b")] {
        let (resource, _) = receiver.wait_for(name).await;
        let got: Vec<_> = resource
            .iter()
            .filter(|kv| kv.key == "service.name")
            .filter_map(|kv| kv.value.as_ref()?.value.clone())
            .collect();
        assert_eq!(
            got,
            vec![any_value::Value::StringValue(svc.into())],
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_as_the_spec_writes_it_is_accepted() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();
    // Hex ids, 64-bit integers as strings, as OTLP/JSON senders write them.
    let body = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"py"}}]},
      "scopeSpans":[{"scope":{"name":"opentelemetry.instrumentation.openai_v2"},"spans":[{
        "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
        "name":"chat gpt-4o","kind":3,
        "startTimeUnixNano":"1764700000000000000","endTimeUnixNano":"1764700001000000000",
        "attributes":[
          {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
          {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
          {"key":"gen_ai.usage.input_tokens","value":{"intValue":"1000"}},
          {"key":"gen_ai.usage.output_tokens","value":{"intValue":"200"}}]}]}]}]}"#;
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", collector.http_addr()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (_, span) = receiver.wait_for("chat gpt-4o").await;
    let at = jiff::civil::date(2025, 12, 2);
    let want = Catalog::builtin()
        .price("gpt-4o", None, &Usage::new(1000, 200), at)
        .unwrap()
        .breakdown
        .total
        .as_f64();
    assert!((f64_attr(&span, "gen_ai.usage.cost") - want).abs() < 1e-9);
    assert_eq!(int_attr(&span, "gen_ai.usage.input_tokens"), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_a_clear_error() {
    let (_receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();
    let url = format!("http://{}/v1/traces", collector.http_addr());
    let http = reqwest::Client::new();
    let r = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("not an OTLP trace export request")
    );
    let r = http
        .post(&url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("application/x-protobuf"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_requests_over_http_and_grpc_are_accepted() {
    use std::io::Write;
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();
    let attrs = || {
        vec![
            s("gen_ai.request.model", "gpt-4o"),
            i("gen_ai.usage.input_tokens", 1000),
            i("gen_ai.usage.output_tokens", 200),
        ]
    };
    let req = request("svc", 30, vec![("gzip over http".into(), attrs())]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&req.encode_to_vec()).unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", collector.http_addr()))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let mut c = TraceServiceClient::connect(format!("http://{}", collector.grpc_addr()))
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    c.export(request("svc", 31, vec![("gzip over grpc".into(), attrs())]))
        .await
        .unwrap();

    let want = expected_cost(&Usage::new(1000, 200));
    for name in ["gzip over http", "gzip over grpc"] {
        let (_, span) = receiver.wait_for(name).await;
        assert!(
            (f64_attr(&span, "gen_ai.usage.cost") - want).abs() < 1e-9,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_is_refused_not_inflated() {
    use std::io::Write;
    let (_receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(
        config(downstream)
            .with_max_request_bytes(64 * 1024)
            .unwrap(),
    )
    .await
    .unwrap();
    // 16 MiB of zeros: a few KiB on the wire.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 16 * 1024 * 1024]).unwrap();
    let body = gz.finish().unwrap();
    assert!(body.len() < 64 * 1024);
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", collector.http_addr()))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("raise max_request_bytes"));
}

/// Keeps every call the collector hands its sinks.
#[derive(Debug, Default)]
struct Calls(std::sync::Mutex<Vec<llmtel::LlmCall>>);

impl llmtel::CallSink for Calls {
    fn on_call(&self, call: &llmtel::LlmCall) {
        self.0.lock().unwrap().push(call.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instrumentation_cost_nothing_replaces_is_forwarded_as_it_came() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();
    let openlit_cost = |v: f64| kv("gen_ai.usage.cost", any_value::Value::DoubleValue(v));
    let req = request(
        "svc",
        40,
        vec![
            (
                // OpenLIT on a fine-tuned model the catalog has no price for
                "fine-tuned".into(),
                vec![
                    s("gen_ai.system", "openai"),
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.request.model", "ft:gpt-4o:acme:x"),
                    i("gen_ai.usage.input_tokens", 1000),
                    i("gen_ai.usage.output_tokens", 200),
                    openlit_cost(0.012),
                ],
            ),
            (
                // not a model call: llmtel prices none
                "agent".into(),
                vec![
                    s("gen_ai.operation.name", "invoke_agent"),
                    s("gen_ai.agent.name", "planner"),
                    openlit_cost(0.05),
                ],
            ),
            (
                // priced by llmtel: the estimate is moved aside
                "priced".into(),
                vec![
                    s("gen_ai.system", "openai"),
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.request.model", "gpt-4o"),
                    i("gen_ai.usage.input_tokens", 1000),
                    i("gen_ai.usage.output_tokens", 200),
                    openlit_cost(0.5),
                ],
            ),
        ],
    );
    send("http-protobuf", &collector, req).await;
    let (_, span) = receiver.wait_for("fine-tuned").await;
    assert_eq!(f64_attr(&span, "gen_ai.usage.cost"), 0.012, "the only cost");
    assert!(attr(&span, "llmtel.cost.instrumentation").is_none());
    assert!(attr(&span, "llmtel.cost.unknown_model").is_some());
    let (_, span) = receiver.wait_for("agent").await;
    assert_eq!(f64_attr(&span, "gen_ai.usage.cost"), 0.05, "the only cost");
    assert!(attr(&span, "llmtel.cost.instrumentation").is_none());
    let (_, span) = receiver.wait_for("priced").await;
    assert_eq!(
        f64_attr(&span, "gen_ai.usage.cost"),
        expected_cost(&Usage::new(1000, 200))
    );
    assert_eq!(f64_attr(&span, "llmtel.cost.instrumentation"), 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openinference_providers_are_written_as_gen_ai_provider_names() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let calls = std::sync::Arc::new(Calls::default());
    let collector = Collector::start(config(downstream).with_sink(calls.clone()))
        .await
        .unwrap();
    let cases = [
        ("google", "gcp.gemini"),
        ("aws", "aws.bedrock"),
        ("mistralai", "mistral_ai"),
        ("xai", "x_ai"),
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("azure", "azure.ai.openai"),
    ];
    let spans = cases
        .iter()
        .map(|(provider, _)| {
            (
                format!("oi {provider}"),
                vec![
                    s("openinference.span.kind", "LLM"),
                    s("llm.model_name", "some-model"),
                    s("llm.provider", provider),
                    i("llm.token_count.prompt", 10),
                    i("llm.token_count.completion", 5),
                ],
            )
        })
        .collect();
    send("http-protobuf", &collector, request("svc", 41, spans)).await;
    for (provider, want) in cases {
        let (_, span) = receiver.wait_for(&format!("oi {provider}")).await;
        assert_eq!(
            attr(&span, "gen_ai.provider.name"),
            Some(&any_value::Value::StringValue(want.into())),
            "llm.provider = {provider}"
        );
    }
    wait_until("the calls reach the sink", || {
        calls.0.lock().unwrap().len() == cases.len()
    })
    .await;
    let mut got: Vec<String> = calls
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|c| c.provider.clone())
        .collect();
    got.sort();
    let mut want: Vec<String> = cases.iter().map(|(_, p)| (*p).to_owned()).collect();
    want.sort();
    assert_eq!(got, want, "the calls the sinks and budgets get");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialect_counts_are_forwarded_as_integers_and_a_broken_one_is_skipped() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();
    let req = request(
        "svc",
        42,
        vec![
            (
                // a JavaScript OpenInference instrumentation: counts as doubles
                "double counts".into(),
                vec![
                    s("llm.model_name", "gpt-4o"),
                    s("llm.provider", "openai"),
                    kv(
                        "llm.token_count.prompt",
                        any_value::Value::DoubleValue(1000.0),
                    ),
                    kv(
                        "llm.token_count.completion",
                        any_value::Value::DoubleValue(200.0),
                    ),
                ],
            ),
            (
                // a broken older key before a good OpenInference one
                "broken count".into(),
                vec![
                    s("gen_ai.system", "openai"),
                    s("gen_ai.request.model", "gpt-4o"),
                    s("gen_ai.usage.prompt_tokens", "n/a"),
                    i("llm.token_count.prompt", 1000),
                    i("gen_ai.usage.completion_tokens", 200),
                ],
            ),
        ],
    );
    send("http-protobuf", &collector, req).await;
    let want = expected_cost(&Usage::new(1000, 200));
    for name in ["double counts", "broken count"] {
        let (_, span) = receiver.wait_for(name).await;
        assert_eq!(int_attr(&span, "gen_ai.usage.input_tokens"), 1000, "{name}");
        assert_eq!(int_attr(&span, "gen_ai.usage.output_tokens"), 200, "{name}");
        assert!(
            (f64_attr(&span, "gen_ai.usage.cost") - want).abs() < 1e-9,
            "{name}: priced"
        );
    }
}
