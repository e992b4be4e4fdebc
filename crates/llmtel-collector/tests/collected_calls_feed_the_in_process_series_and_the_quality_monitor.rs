//! Issue #15: every LLM span the collector prices is handed, as an `LlmCall`, to the sinks
//! the in-process stack has: the Prometheus series of llmtel-metrics (`llm_requests_total`,
//! `llm_cost_usd_total`, ...) and, with `[quality] enabled = true`, llmtel-quality's monitor
//! (`llm_quality_*`), all on the collector's own `/metrics` next to its health counters.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use llmtel_collector::{Collector, Config};
use llmtel_pricing::{Catalog, Usage};

/// The sum of every sample of `name` (all label sets) in a Prometheus text body.
fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priced_calls_reach_the_llm_series_and_the_quality_monitor_on_metrics() {
    let (downstream, addr, _server) = Receiver::start().await;
    let config = Config::from_toml(&format!(
        "grpc_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\n[quality]\nenabled = true\n\n[forward]\nendpoint = \"http://{addr}\"\nprotocol = \"grpc\"\n"
    ))
    .unwrap();
    let collector = Collector::start(config).await.unwrap();
    // Three calls, one failed, from two services in other languages.
    post_protobuf(
        &collector,
        request(
            "checkout",
            1,
            vec![
                ("chat gpt-4o".into(), chat_call("gpt-4o", None)),
                (
                    "chat gpt-4o".into(),
                    chat_call("gpt-4o", Some("rate_limit")),
                ),
            ],
        ),
    )
    .await;
    post_protobuf(
        &collector,
        request(
            "search",
            2,
            vec![("chat gpt-4o".into(), chat_call("gpt-4o", None))],
        ),
    )
    .await;
    wait_until("3 spans priced and forwarded", || {
        collector.stats().priced == 3 && downstream.count() == 3
    })
    .await;

    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let each = Catalog::builtin()
        .price("gpt-4o", Some("openai"), &Usage::new(1_000, 500), today)
        .unwrap()
        .breakdown
        .total
        .as_f64();
    // The monitor drains its queue every 100 ms: wait until it has the three calls.
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = metrics(collector.metrics_addr()).await;
        if sum(&text, "llm_quality_requests_total") >= 3.0 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The collector's own health, and the in-process stack's series of the same calls.
    assert!(
        text.contains("llmtel_collector_spans_priced_total 3\n"),
        "{text}"
    );
    assert_eq!(sum(&text, "llm_requests_total"), 3.0, "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("llm_requests_total{")
            && l.contains("error")
            && l.ends_with(" 1")),
        "the failed call is counted by its status: {text}"
    );
    let cost = sum(&text, "llm_cost_usd_total");
    assert!(
        (cost - 3.0 * each).abs() < 1e-9,
        "{cost} != 3 x {each}: {text}"
    );
    // The quality monitor saw every call, the failed one as an error.
    assert_eq!(sum(&text, "llm_quality_requests_total"), 3.0, "{text}");
    let error_rate = text
        .lines()
        .find(|l| l.starts_with("llm_quality_error_rate{") && l.contains("support"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no llm_quality_error_rate for the feature: {text}"));
    assert!(
        (error_rate - 1.0 / 3.0).abs() < 1e-9,
        "{error_rate}: {text}"
    );
}
