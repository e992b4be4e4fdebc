//! Issue #15: the collector's budgets alert as the library's do. A collector configured by
//! one TOML file (`budgets = "FILE"` with the library's rules and `[alerts] alertmanager =
//! URL`) receives priced spans for one user until the user's daily budget passes 50 % and
//! then 100 %; a real Prometheus Alertmanager (scripts/alertmanager.sh) lists both threshold
//! alerts with the rule, scope and threshold. Needs `scripts/alertmanager.sh start`
//! (scripts/test.sh does it); fails, never skips. A bad `[alerts]` URL is a clear error.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use llmtel_collector::{Collector, Config};

/// `LLMTEL_ALERTMANAGER_URL`, from the environment or the file scripts/alertmanager.sh
/// writes; panics with what to run when neither has it.
fn alertmanager_url() -> String {
    if let Ok(v) = std::env::var("LLMTEL_ALERTMANAGER_URL") {
        if !v.trim().is_empty() {
            return v.trim().to_owned();
        }
    }
    let dir = std::env::var("LLMTEL_PEERS_DIR").map_or_else(
        |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.peers"),
        std::path::PathBuf::from,
    );
    let file = dir.join("alertmanager.env");
    std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("export LLMTEL_ALERTMANAGER_URL=")
                    .map(|v| v.trim().to_owned())
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "LLMTEL_ALERTMANAGER_URL is not set and {} does not say it: this test needs a \
                 real Alertmanager; run `scripts/alertmanager.sh install && scripts/alertmanager.sh start`",
                file.display()
            )
        })
}

fn call(user: &str) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.provider.name", "openai"),
        s("gen_ai.request.model", "gpt-4o"),
        s("user.id", user),
        i("gen_ai.usage.input_tokens", 1_000),
        i("gen_ai.usage.output_tokens", 500),
    ]
}

/// The alerts Alertmanager lists for `rule`.
fn listed(am: &str, rule: &str) -> Vec<serde_json::Value> {
    let url = format!("{am}/api/v2/alerts?filter=rule%3D%22{rule}%22");
    reqwest::blocking::get(&url)
        .and_then(reqwest::blocking::Response::json::<serde_json::Value>)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn threshold_alerts_of_the_collectors_budgets_reach_alertmanager() {
    let am = alertmanager_url();
    let dir = tempfile::tempdir().unwrap();
    // A rule name of this run only: Alertmanager keeps alerts between runs.
    let rule = format!("collector-user-daily-{}", std::process::id());
    let budgets = dir.path().join("budgets.toml");
    // gpt-4o: 1,000 in x $2.50/M + 500 out x $10/M = $0.0075 a call; the limit $0.02:
    // 37.5 %, 75 % (past 50 %), 112.5 % (past 100 %).
    std::fs::write(
        &budgets,
        format!(
            "[[rule]]\nname = \"{rule}\"\nscope = \"user\"\nperiod = \"day\"\nlimit_usd = \"0.02\"\nthresholds = [50, 100]\n\n[store]\nkind = \"memory\"\n"
        ),
    )
    .unwrap();
    let toml = |downstream: std::net::SocketAddr| {
        format!(
            "grpc_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nbudgets = {budgets:?}\n\n[alerts]\nalertmanager = \"{am}\"\n\n[forward]\nendpoint = \"http://{downstream}\"\nprotocol = \"grpc\"\n"
        )
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // A downstream that takes the spans (the common test receiver).
        let (_downstream, addr, _server) = Receiver::start().await;
        let toml = toml(addr);
        let config = Config::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let collector = Collector::start(config).await.unwrap();
        for seed in 1..=3u8 {
            post_protobuf(
                &collector,
                request(
                    "billing",
                    seed,
                    vec![("chat gpt-4o".into(), call("u-alert"))],
                ),
            )
            .await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while collector.stats().budgeted < 3 {
            assert!(
                Instant::now() < deadline,
                "3 spans not budgeted in 30 s: {:?}",
                collector.stats()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let deadline = Instant::now() + Duration::from_secs(20);
    let alerts = loop {
        let alerts = listed(&am, &rule);
        if alerts.len() >= 2 || Instant::now() > deadline {
            break alerts;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut thresholds: Vec<&str> = alerts
        .iter()
        .map(|a| a["labels"]["threshold"].as_str().unwrap_or_default())
        .collect();
    thresholds.sort_unstable();
    assert_eq!(thresholds, ["100", "50"], "{alerts:#?}");
    for a in &alerts {
        assert_eq!(a["labels"]["alertname"], "LlmBudgetThreshold", "{a}");
        assert_eq!(a["labels"]["scope"], "user.id=u-alert", "{a}");
        assert!(
            a["annotations"]["summary"]
                .as_str()
                .is_some_and(|s| s.contains(&rule)),
            "{a}"
        );
    }
    let critical = alerts
        .iter()
        .find(|a| a["labels"]["threshold"] == "100")
        .unwrap();
    assert_eq!(critical["labels"]["severity"], "critical");
}

#[test]
fn a_bad_alerts_url_is_a_clear_error() {
    let e = Config::from_toml("[alerts]\nalertmanager = \"not a url\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[alerts] alertmanager") && e.contains("URL"),
        "{e}"
    );
    let e = Config::from_toml("[alerts]\npager = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("pager"), "{e}");
}
