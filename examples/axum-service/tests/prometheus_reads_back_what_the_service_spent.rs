//! A real Prometheus (scripts/prometheus.sh) scrapes the running axum-service's metrics
//! endpoint; its query API returns the exact token totals and the cost the service answered,
//! its exemplar API the calls' trace ids; and every PromQL expression of the ops dashboard and
//! alert rules is accepted by that Prometheus.
//!
//! Needs `scripts/prometheus.sh install && scripts/prometheus.sh start` (the test FAILS
//! otherwise).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (Prometheus URL, targets dir) from the environment or the env file the script writes.
fn prometheus() -> (String, PathBuf) {
    let from_env = || {
        Some((
            std::env::var("LLMTEL_PROMETHEUS_URL").ok()?,
            std::env::var("LLMTEL_PROMETHEUS_TARGETS_DIR").ok()?,
        ))
    };
    let from_file = || {
        let dir = std::env::var("LLMTEL_PEERS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo().join(".peers"));
        let text = std::fs::read_to_string(dir.join("prometheus.env")).ok()?;
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {k}=")))
                .map(str::to_owned)
        };
        Some((
            get("LLMTEL_PROMETHEUS_URL")?,
            get("LLMTEL_PROMETHEUS_TARGETS_DIR")?,
        ))
    };
    let (url, dir) = from_env().or_else(from_file).unwrap_or_else(|| {
        panic!(
            "Prometheus is not running: run `scripts/prometheus.sh install && scripts/prometheus.sh start` (it writes .peers/prometheus.env)"
        )
    });
    let ready = reqwest::blocking::get(format!("{url}/-/ready"));
    assert!(
        ready.is_ok_and(|r| r.status().is_success()),
        "Prometheus at {url} does not answer /-/ready: run `scripts/prometheus.sh start`"
    );
    (url, PathBuf::from(dir))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The service as a child process; killed (by its PID) on drop.
struct Service(Child);
impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A file_sd target file; removed on drop.
struct Target(PathBuf);
impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn query(base: &str, q: &str) -> Value {
    let r: Value = reqwest::blocking::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .unwrap()
        .json()
        .unwrap();
    r
}

/// The single value of an instant query, if it has one.
fn scalar(base: &str, q: &str) -> Option<f64> {
    let r = query(base, q);
    assert_eq!(r["status"], "success", "{q}: {r}");
    r["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

/// Polls until `q` returns `want` (Prometheus applies new targets on a 5 s tick).
fn wait_for(base: &str, q: &str, want: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = scalar(base, q);
        if got == Some(want) || Instant::now() > deadline {
            return got.unwrap_or_else(|| panic!("no sample for {q} after 30 s"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_reads_back_the_exact_tokens_cost_and_exemplars_of_the_service() {
    let (prom, targets_dir) = prometheus();
    let (port, metrics_port) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_axum-service"));
    cmd.env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("LLMTEL_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("SIM_LATENCY_MS", "5")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let _service = Service(cmd.spawn().expect("start axum-service"));
    let app = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{app}/healthz")).send().is_err() {
        assert!(Instant::now() < deadline, "axum-service did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The workload: 30 answered calls from 3 users, 2 failed ones.
    let (mut input, mut output, mut picos) = (0u64, 0u64, 0u128);
    let mut traces = HashSet::new();
    for i in 0..30 {
        let prompt = format!("question number {i}: {}", "why? ".repeat(i));
        let r = http
            .post(format!("{app}/chat"))
            .json(&json!({"user": format!("user-{}", i % 3), "prompt": prompt}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().unwrap();
        assert_eq!(body["simulated"], true);
        input += body["input_tokens"].as_u64().unwrap();
        output += body["output_tokens"].as_u64().unwrap();
        let p = body["cost_picousd"].as_u64().unwrap();
        assert!(p > 0, "every answered call is priced: {body}");
        assert!((body["cost_usd"].as_f64().unwrap() - p as f64 / 1e12).abs() < 1e-15);
        picos += u128::from(p);
        traces.insert(body["trace_id"].as_str().unwrap().to_owned());
    }
    for _ in 0..2 {
        let r = http
            .post(format!("{app}/chat"))
            .json(&json!({"user": "user-0", "prompt": "please simulate-error"}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 502);
        let body: Value = r.json().unwrap();
        traces.insert(body["trace_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        http.post(format!("{app}/chat"))
            .json(&json!({"user": "", "prompt": "x"}))
            .send()
            .unwrap()
            .status(),
        400
    );

    // Point the real Prometheus at this service, under a label of this run.
    let run = format!(
        "run{}x{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let file = targets_dir.join(format!("{run}.json"));
    let tmp = targets_dir.join(format!(".{run}.tmp"));
    std::fs::write(
        &tmp,
        json!([{"targets": [format!("127.0.0.1:{metrics_port}")], "labels": {"test_run": run}}])
            .to_string(),
    )
    .unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let _target = Target(file);

    let sel = format!(r#"test_run="{run}""#);
    let got_in = wait_for(
        &prom,
        &format!(r#"sum(llm_tokens_total{{{sel},type="input"}})"#),
        input as f64,
    );
    assert_eq!(got_in, input as f64, "exact input tokens");
    let got_out = scalar(
        &prom,
        &format!(r#"sum(llm_tokens_total{{{sel},type="output"}})"#),
    );
    assert_eq!(got_out, Some(output as f64), "exact output tokens");
    let want_cost = picos as f64 / 1e12;
    let got_cost = scalar(&prom, &format!("sum(llm_cost_usd_total{{{sel}}})")).unwrap();
    assert!(
        (got_cost - want_cost).abs() <= want_cost * 1e-12,
        "cost: Prometheus {got_cost}, service {want_cost}"
    );
    assert_eq!(
        scalar(
            &prom,
            &format!(r#"sum(llm_requests_total{{{sel},status="ok"}})"#)
        ),
        Some(30.0)
    );
    assert_eq!(
        scalar(
            &prom,
            &format!(r#"sum(llm_requests_total{{{sel},status="error"}})"#)
        ),
        Some(2.0)
    );
    assert_eq!(
        scalar(
            &prom,
            &format!(r#"count(count by (user) (llm_cost_usd_total{{{sel}}}))"#)
        ),
        Some(3.0),
        "spend by user (the service asks for the user label)"
    );
    assert_eq!(
        scalar(
            &prom,
            &format!(r#"sum(llm_latency_seconds_count{{{sel}}})"#)
        ),
        Some(32.0)
    );
    assert!(scalar(&prom, &format!("llmtel_llm_calls_total{{{sel}}}")).unwrap() >= 32.0);

    // Exemplars: latency and cost observations link to the calls' trace ids.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for metric in ["llm_latency_seconds_bucket", "llm_cost_usd_total"] {
        let r: Value = http
            .get(format!("{prom}/api/v1/query_exemplars"))
            .query(&[
                ("query", format!("{metric}{{{sel}}}")),
                ("start", (now - 600).to_string()),
                ("end", (now + 60).to_string()),
            ])
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(r["status"], "success", "{r}");
        let ids: Vec<&str> = r["data"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["exemplars"].as_array().unwrap())
            .map(|e| e["labels"]["trace_id"].as_str().unwrap())
            .collect();
        assert!(!ids.is_empty(), "no exemplar for {metric}: {r}");
        for id in ids {
            assert!(
                traces.contains(id),
                "{metric} exemplar {id} is not one of the calls"
            );
        }
    }

    // Every PromQL expression of the dashboard and the alert rules runs on this Prometheus.
    let exprs = ops_expressions();
    assert!(exprs.len() >= 10, "found only {} expressions", exprs.len());
    for (origin, e) in exprs {
        let r = query(&prom, &e);
        assert_eq!(r["status"], "success", "{origin}: `{e}` rejected: {r}");
    }
}

/// PromQL of the Grafana dashboards (Grafana variables replaced) and of the alert rules.
fn ops_expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dash_dir = repo().join("ops/grafana/dashboards");
    for entry in std::fs::read_dir(&dash_dir).expect("ops/grafana/dashboards") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut found = Vec::new();
            walk(&v, &mut found);
            for e in found {
                out.push((path.display().to_string(), grafana_to_promql(&e)));
            }
        }
    }
    let rules_dir = repo().join("ops/prometheus/rules");
    for entry in std::fs::read_dir(&rules_dir).expect("ops/prometheus/rules") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                if let Some(e) = line.trim_start().strip_prefix("expr:") {
                    let e = e.trim();
                    assert!(
                        !e.starts_with('|') && !e.starts_with('>'),
                        "{}: keep expr on one line",
                        path.display()
                    );
                    out.push((path.display().to_string(), e.to_owned()));
                }
            }
        }
    }
    out
}

fn walk(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "expr" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_owned());
                    }
                } else {
                    walk(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
        _ => {}
    }
}

/// Grafana's interval variables to a duration, template variables to a match-all regex.
fn grafana_to_promql(e: &str) -> String {
    let mut s = e
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    while let Some(i) = s.find('$') {
        let end = s[i + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(s.len(), |j| i + 1 + j);
        s.replace_range(i..end, ".*");
    }
    s
}
