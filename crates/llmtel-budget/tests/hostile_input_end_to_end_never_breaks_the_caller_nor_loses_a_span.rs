//! Issue #13, hostile input end to end: the full stack a user runs (`llmtel::builder()`
//! exporting over OTLP gRPC to a real Arize Phoenix, the reqwest middleware with a budget's
//! pre-flight, the `BudgetLayer`, content capture on) meets what a broken provider, proxy or
//! config can send:
//!
//! - a price file that is not a price file (invalid UTF-8, a 1e400 rate, a negative one);
//! - budget files with impossible rules;
//! - a JSON body cut in the middle; a stream cut in the middle; a stream with an event of
//!   invalid UTF-8; a body of invalid UTF-8;
//! - an absurd token count (`u64::MAX` prompt tokens);
//! - a 10 MB prompt, and a 10 MB body that is not JSON;
//! - an HTML error page.
//!
//! What must hold: the caller gets exactly the provider's bytes (or the transport's error),
//! fast; every call is exactly one span in Phoenix, with the problem said on it; nothing is
//! dropped or failed in export; the budget's spend is exactly the sum of the exported costs
//! (the absurd call adds nothing); the bad files are clear errors and the built-in prices
//! stay. Needs `scripts/peers.sh start` (scripts/test.sh does it); fails, never skips.
#![cfg(feature = "reqwest")]
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

#[allow(dead_code, unreachable_pub)]
#[path = "../../llmtel/tests/support/phoenix.rs"]
mod phoenix;
// llmtel-reqwest's replay server stands in for the provider (one copy of it for both crates).
#[path = "../../llmtel-reqwest/tests/common/mod.rs"]
mod replay;

use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use llmtel_budget::{BudgetPreflight, Budgets, CallContext, Config, Period, Rule, Scope};
use opentelemetry::KeyValue;
use phoenix::*;
use replay::{Replay, Reply, Step};
use serde_json::Value;
use tracing::Instrument as _;
use tracing_subscriber::prelude::*;

/// gpt-4o: 1,200 prompt tokens (1,024 cached), 300 completion tokens: $0.004720.
const RESPONSE: &str = r#"{"id":"chatcmpl-ok","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Refunds within 30 days."},"finish_reason":"stop"}],"usage":{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":1024}}}"#;

const ABSURD: &str = r#"{"id":"chatcmpl-absurd","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":5,"total_tokens":4}}"#;

fn request(stream: bool, prompt: &str) -> String {
    serde_json::json!({
        "model": "gpt-4o",
        "stream": stream,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": prompt}],
    })
    .to_string()
}

fn bytes_reply(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
    Reply {
        status,
        content_type,
        steps: vec![Step::Bytes(body)],
        chunked: false,
    }
}

fn chunk(delta: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{delta}\"}},\"finish_reason\":null}}]}}\n\n"
    )
}

const USAGE_CHUNK: &str = "data: {\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":300,\"total_tokens\":1500,\"prompt_tokens_details\":{\"cached_tokens\":1024}}}\n\n";

/// One hostile call: its name (the request span's `llmtel.feature`), the reply the provider
/// stand-in sends, the request, and whether the caller's read must fail (a cut stream).
struct Case {
    name: &'static str,
    reply: Reply,
    request: String,
    read_fails: bool,
}

fn cases() -> Vec<Case> {
    let truncated = &RESPONSE[..RESPONSE.len() / 2];
    let mut invalid_utf8 = RESPONSE.as_bytes().to_vec();
    let at = RESPONSE.find("Refunds").unwrap();
    invalid_utf8.splice(at..at + 3, [0xff, 0xfe, 0xc3]);
    let garbage: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let huge_prompt = "Please summarise this log line. ".repeat(10 * 1024 * 1024 / 32);
    let mut bad_event = chunk("ok").into_bytes();
    let at = bad_event.len() - 40;
    bad_event.splice(at..at + 2, [0xff, 0xc0]);
    vec![
        Case {
            name: "truncated-json",
            reply: Reply::json(200, truncated),
            request: request(false, "What is the refund window?"),
            read_fails: false,
        },
        Case {
            name: "cut-stream",
            reply: Reply {
                status: 200,
                content_type: "text/event-stream",
                steps: vec![
                    Step::Bytes(chunk("Refunds").into_bytes()),
                    Step::Bytes(chunk(" within").into_bytes()),
                    Step::Cut,
                ],
                chunked: true,
            },
            request: request(true, "What is the refund window?"),
            read_fails: true,
        },
        Case {
            name: "invalid-utf8-event",
            reply: Reply {
                status: 200,
                content_type: "text/event-stream",
                steps: vec![
                    Step::Bytes(chunk("Refunds").into_bytes()),
                    Step::Bytes(bad_event),
                    Step::Bytes(USAGE_CHUNK.as_bytes().to_vec()),
                    Step::Bytes(b"data: [DONE]\n\n".to_vec()),
                ],
                chunked: true,
            },
            request: request(true, "What is the refund window?"),
            read_fails: false,
        },
        Case {
            name: "invalid-utf8-body",
            reply: bytes_reply(200, "application/json", invalid_utf8),
            request: request(false, "What is the refund window?"),
            read_fails: false,
        },
        Case {
            name: "absurd-tokens",
            reply: Reply::json(200, ABSURD),
            request: request(false, "What is the refund window?"),
            read_fails: false,
        },
        Case {
            name: "ten-mb-prompt",
            reply: Reply::json(200, RESPONSE),
            request: request(false, &huge_prompt),
            read_fails: false,
        },
        Case {
            name: "ten-mb-garbage",
            reply: bytes_reply(200, "application/json", garbage),
            request: request(false, "What is the refund window?"),
            read_fails: false,
        },
        Case {
            name: "html-500",
            reply: bytes_reply(
                500,
                "text/html",
                b"<html><body><h1>502 Bad Gateway</h1><p>upstream \xff exploded</p></body></html>"
                    .to_vec(),
            ),
            request: request(false, "What is the refund window?"),
            read_fails: false,
        },
    ]
}

#[test]
fn hostile_payloads_and_files_never_break_the_caller_nor_lose_a_span() {
    let peers = Peers::from_env();
    let project = unique_project("hostile-input");
    let dir = tempfile::tempdir().unwrap();

    // A price file that is not one: the built-in prices stay, the failure is counted.
    let prices = dir.path().join("prices.toml");
    std::fs::write(
        &prices,
        b"[[model]]\nid = \"gpt-4o\"\nprovider = \"openai\"\n[[model.price]]\neffective = \"2024-01-01\"\ninput = 1e400\noutput = -3\n# \xff\xfe\n",
    )
    .unwrap();
    // Impossible budget files: each a clear error naming what to fix.
    for (src, says) in [
        (
            "[[rule]]\nname = \"r\"\nscope = \"user\"\nperiod = \"day\"\nlimit_usd = \"-5\"\n",
            "limit_usd",
        ),
        (
            "[[rule]]\nname = \"r\"\nscope = \"user\"\nperiod = \"rolling\"\nhours = 0\n",
            "hours",
        ),
        (
            "[[rule]]\nname = \"r\"\nscope = \"user\"\nperiod = \"fortnight\"\n",
            "period",
        ),
        (
            "[[rule]]\nname = \"r\"\nscope = \"user\"\nperiod = \"day\"\nthresholds = [0, 4000000000]\n",
            "threshold",
        ),
        (
            "[[rule]]\nname = \"r\"\nscope = \"user\"\nperiod = \"day\"\nlimit_usd = 1e400\n",
            "limit_usd",
        ),
    ] {
        let e = Config::from_toml_str(src).expect_err(src).to_string();
        assert!(e.contains(says), "{src:?} gave {e:?}");
    }

    let failures_before = llmtel_pricing::price_source_failures();
    let health_before = llmtel::health();
    let (layer, guard) = llmtel::builder()
        .with_service_name("llmtel-hostile-input")
        .with_endpoint(&peers.phoenix_otlp_grpc)
        .with_protocol(llmtel::Protocol::Grpc)
        .with_resource_attribute(KeyValue::new("openinference.project.name", project.clone()))
        .with_console(false)
        .with_price_sources(llmtel_pricing::PriceSources::from_lookup(|_| None).with_file(&prices))
        .with_content_capture(llmtel::ContentCapture::enabled().with_max_chars(4096))
        .build::<tracing_subscriber::Registry>()
        .expect("llmtel builds whatever the price file holds");
    assert_eq!(
        llmtel_pricing::price_source_failures(),
        failures_before + 1,
        "the bad price file is counted"
    );
    let e = llmtel_pricing::Catalog::load(&prices).expect_err("not a price file");
    assert!(e.to_string().contains("UTF-8"), "{e}");
    let budgets = Budgets::builder()
        .with_rule(
            Rule::new("per-user-daily", Scope::User, Period::Day(TimeZone::UTC))
                .with_limit_usd(llmtel::Usd::parse_decimal("100").unwrap()),
        )
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(layer)
        .with(budgets.layer());
    let dispatch = tracing::Dispatch::new(subscriber);
    let _default = tracing::dispatcher::set_default(&dispatch);

    let cases = cases();
    let n = cases.len();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The same calls without llmtel first, against a server of their own: the baseline
        // each call's time is compared with (printed; the bound below is on the total).
        let plain_server = Replay::start(cases.iter().map(|c| c.reply.clone()).collect()).await;
        let plain = reqwest::Client::new();
        let mut baseline = Vec::new();
        for case in &cases {
            let started = Instant::now();
            let resp = plain
                .post(plain_server.url("/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(case.request.clone())
                .send()
                .await
                .expect("sent");
            let _ = resp.bytes().await;
            baseline.push(started.elapsed());
        }
        let replies = cases.iter().map(|c| c.reply.clone()).collect();
        let server = Replay::start(replies).await;
        let base = server.url("/v1");
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(
                llmtel_reqwest::LlmMiddleware::new()
                    .with_openai_compatible(&base, "openai")
                    .unwrap()
                    .with_preflight(BudgetPreflight::new(budgets.clone())),
            )
            .build();
        for (case, plain_took) in cases.iter().zip(&baseline) {
            let span = tracing::info_span!(
                "request",
                "user.id" = "mallory",
                "llmtel.feature" = case.name
            );
            let started = Instant::now();
            let result = async {
                let resp = client
                    .post(format!("{base}/chat/completions"))
                    .header("content-type", "application/json")
                    .header("authorization", "Bearer sk-test-SECRET-0123456789abcdef")
                    .body(case.request.clone())
                    .send()
                    .await
                    .expect("sent");
                let status = resp.status().as_u16();
                (status, resp.bytes().await)
            }
            .instrument(span)
            .await;
            let took = started.elapsed();
            println!(
                "{:>20}: {took:?} with llmtel, {plain_took:?} without",
                case.name
            );
            assert!(took < Duration::from_secs(5), "{}: {took:?}", case.name);
            let (status, body) = result;
            assert_eq!(status, case.reply.status, "{}", case.name);
            if case.read_fails {
                assert!(
                    body.is_err(),
                    "{}: a cut stream is the caller's error",
                    case.name
                );
            } else {
                let body = body.unwrap_or_else(|e| panic!("{}: {e}", case.name));
                assert!(
                    body.as_ref() == case.reply.bytes().as_slice(),
                    "{}: the caller gets the provider's bytes",
                    case.name
                );
            }
        }
        assert_eq!(
            server.requests().len(),
            n,
            "every call was sent, none refused"
        );
    });
    assert!(llmtel::finish_pending_spans(Duration::from_secs(20)));
    assert!(budgets.flush(Duration::from_secs(10)));
    let spent = budgets
        .status_for(&CallContext::new().with_user("mallory"))
        .unwrap()[0]
        .spent;
    drop(_default);
    drop(guard); // flush + shutdown: nothing may be lost
    let after = llmtel::health();
    assert_eq!(
        after.spans_dropped, health_before.spans_dropped,
        "no span dropped"
    );
    assert_eq!(
        after.spans_export_failed, health_before.spans_export_failed,
        "no export failed"
    );

    // Each call: its request span and the LLM span under it, nothing else.
    let all = wait_for_spans(
        &peers.phoenix_url,
        &project,
        any_span,
        2 * n,
        Duration::from_secs(60),
    );
    assert_eq!(
        all.len(),
        2 * n,
        "one request span and one LLM span per call, no more"
    );
    let spans: Vec<&Value> = all.iter().filter(|s| is_llm(s)).collect();
    assert_eq!(spans.len(), n, "one LLM span per call");
    let by = |name: &str| -> &Value {
        let request = all
            .iter()
            .find(|s| !is_llm(s) && attr_str(s, "llmtel.feature") == Some(name))
            .unwrap_or_else(|| panic!("no request span for {name}"));
        spans
            .iter()
            .copied()
            .find(|s| parent_id(s) == Some(span_id(request)))
            .unwrap_or_else(|| panic!("no LLM span under the {name} request"))
    };

    // A body cut in the middle: the problem is said, the usage estimated and priced.
    let s = by("truncated-json");
    assert!(attr_str(s, "llmtel.parse_error").is_some(), "{s}");
    assert_eq!(
        attr(s, "llmtel.cost.estimated"),
        Some(&Value::Bool(true)),
        "{s}"
    );
    // A stream cut in the middle: an interrupted call with what it had.
    let s = by("cut-stream");
    assert_eq!(attr_str(s, "error.type"), Some("interrupted"), "{s}");
    assert_eq!(status_code(s), "ERROR");
    // An event of invalid UTF-8: that event is noted, the rest of the stream still read.
    let s = by("invalid-utf8-event");
    assert!(attr_str(s, "llmtel.parse_error").is_some(), "{s}");
    assert_eq!(attr_i64(s, "gen_ai.usage.input_tokens"), Some(1200), "{s}");
    assert!((attr_f64(s, "gen_ai.usage.cost").unwrap() - 0.00472).abs() < 1e-12);
    let s = by("invalid-utf8-body");
    assert!(attr_str(s, "llmtel.parse_error").is_some(), "{s}");
    // u64::MAX prompt tokens: exported as the largest integer, never priced.
    let s = by("absurd-tokens");
    assert_eq!(
        attr_i64(s, "gen_ai.usage.input_tokens"),
        Some(i64::MAX),
        "{s}"
    );
    assert!(attr(s, "gen_ai.usage.cost").is_none(), "{s}");
    assert!(
        attr_str(s, "llmtel.usage.note").is_some_and(|n| n.contains("10000000000")),
        "{s}"
    );
    // The 10 MB prompt: priced from the reported usage at the built-in price, its content
    // capped by the capture policy.
    let s = by("ten-mb-prompt");
    assert!((attr_f64(s, "gen_ai.usage.cost").unwrap() - 0.00472).abs() < 1e-12);
    let input = attr_str(s, "gen_ai.input.messages").unwrap_or_default();
    assert!(
        !input.is_empty() && input.len() < 64 * 1024,
        "captured prompt of {} bytes",
        input.len()
    );
    let s = by("ten-mb-garbage");
    assert!(attr_str(s, "llmtel.parse_error").is_some(), "{s}");
    let s = by("html-500");
    assert_eq!(status_code(s), "ERROR", "{s}");
    assert!(attr_str(s, "error.type").is_some(), "{s}");

    // The budget has exactly what was exported: the absurd call added nothing.
    let exported: f64 = spans
        .iter()
        .filter_map(|s| attr_f64(s, "gen_ai.usage.cost"))
        .sum();
    assert!(
        (spent.as_f64() - exported).abs() < 1e-9,
        "budget spent {spent}, exported costs sum to {exported}"
    );
    assert!(spent.as_f64() < 1.0, "{spent}");
}

fn is_llm(span: &Value) -> bool {
    attr_str(span, "gen_ai.operation.name").is_some()
}
