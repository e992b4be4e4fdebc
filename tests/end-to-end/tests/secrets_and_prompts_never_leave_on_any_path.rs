//! Issue #11, "Done when": calls carrying known API keys (OpenAI `sk-proj-…`, Gemini
//! `AIzaSy…`, Anthropic `sk-ant-api03-…`, a Redis password, a Slack webhook token) and a known
//! prompt go through every path that lets text out of the process — the llmtel layer and
//! exporter stage, the reqwest middleware (a refused connection to a Gemini `?key=` URL and a
//! provider 400 quoting the prompt), budgets and their alerts, quality with every built-in
//! evaluator and user feedback, alerts to a local webhook, a Slack-shaped sink and the log
//! sink, the call log and a report in every format, the quality dashboard, `/metrics`, the
//! console sink, the process's logs and the `Debug` of every public config type. Everything
//! is captured as text and scanned:
//!
//! - with content capture off, neither a key nor the prompt word appears anywhere;
//! - with capture on (and a redaction hook), keys still never appear, and wherever content
//!   appears it went through the hook: its marker is there, the prompt word is not.
//!
//! Keys are built at run time so the repository's secret scan does not flag this file.
//! Content capture is process-wide, so the two cases take a lock (nextest runs each test in
//! its own process anyway).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::prelude::*;

/// The word of the prompt the scans look for, and the marker the hook puts in its place.
const PROMPT_WORD: &str = "flamingo";
const HOOK_MARKER: &str = "[hook]";

fn prompt() -> String {
    format!("please plan the {PROMPT_WORD} heist for my neighbour")
}

/// The secret part of each key: what must never appear (a prefix alone would not leak).
struct Keys {
    openai: String,
    gemini: String,
    anthropic: String,
    redis_password: String,
    slack_token: String,
}

impl Keys {
    fn new() -> Keys {
        let gemini = format!("AIzaSy{}", "Kq3Vx9".repeat(6).get(..33).unwrap());
        assert_eq!(gemini.len(), 39);
        Keys {
            openai: format!("sk-proj-{}", "Q7xLm2".repeat(8)),
            gemini,
            anthropic: format!("sk-ant-api03-{}", "Zt8Wp4".repeat(15)),
            redis_password: format!("pw{}", "Rd5Hs1".repeat(4)),
            slack_token: format!("tok{}", "Sl4Ck9".repeat(4)),
        }
    }

    /// Needles for the scan: each secret, and its body without the provider prefix.
    fn needles(&self) -> Vec<(&'static str, String)> {
        vec![
            ("openai key", self.openai.clone()),
            (
                "openai key body",
                self.openai["sk-proj-".len()..].to_owned(),
            ),
            ("gemini key", self.gemini.clone()),
            ("gemini key body", self.gemini["AIzaSy".len()..].to_owned()),
            ("anthropic key", self.anthropic.clone()),
            (
                "anthropic key body",
                self.anthropic["sk-ant-api03-".len()..].to_owned(),
            ),
            ("redis password", self.redis_password.clone()),
            ("slack webhook token", self.slack_token.clone()),
        ]
    }
}

/// Everything that left the process on one path, as text.
struct Captured {
    path: String,
    text: String,
}

#[derive(Default)]
struct Outputs(Vec<Captured>);

impl Outputs {
    fn add(&mut self, path: impl Into<String>, text: impl Into<String>) {
        self.0.push(Captured {
            path: path.into(),
            text: text.into(),
        });
    }

    fn get(&self, path: &str) -> &str {
        &self
            .0
            .iter()
            .find(|c| c.path == path)
            .unwrap_or_else(|| panic!("no output captured for {path}"))
            .text
    }

    /// Every leak found, as (path, what leaked, report line).
    fn leaks(&self, keys: &Keys) -> Vec<(String, &'static str, String)> {
        let mut needles = keys.needles();
        needles.push(("prompt word", PROMPT_WORD.to_owned()));
        let mut found = Vec::new();
        for c in &self.0 {
            for (what, needle) in &needles {
                if let Some(at) = c.text.find(needle.as_str()) {
                    let bytes = c.text.as_bytes();
                    let from = at.saturating_sub(160);
                    let to = (at + needle.len() + 160).min(bytes.len());
                    found.push((
                        c.path.clone(),
                        *what,
                        format!(
                            "[{}] {what} leaked: …{}…",
                            c.path,
                            String::from_utf8_lossy(&bytes[from..to])
                        ),
                    ));
                }
            }
        }
        found
    }
}

// ---------------------------------------------------------------------------------------
// Local servers (127.0.0.1 only).

/// A local HTTP/1.1 server that answers every request with one canned reply and keeps the
/// request bodies it received.
struct LocalServer {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl LocalServer {
    fn start(status: u16, content_type: &'static str, reply: String) -> LocalServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { return };
                let seen = seen.clone();
                let reply = reply.clone();
                std::thread::spawn(move || serve_one(sock, status, content_type, &reply, &seen));
            }
        });
        LocalServer { port, bodies }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn bodies(&self) -> String {
        self.bodies.lock().unwrap().join("\n")
    }
}

fn serve_one(
    sock: TcpStream,
    status: u16,
    content_type: &str,
    reply: &str,
    seen: &Mutex<Vec<String>>,
) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(sock);
    loop {
        // One request per loop (keep-alive).
        let mut len = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.lock()
            .unwrap()
            .push(String::from_utf8_lossy(&body).into_owned());
        let head = format!(
            "HTTP/1.1 {status} Status\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        let sock = reader.get_mut();
        if sock.write_all(head.as_bytes()).is_err() || sock.write_all(reply.as_bytes()).is_err() {
            return;
        }
        let _ = sock.flush();
    }
}

/// A port on 127.0.0.1 nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(url: &str) -> String {
    let resp = reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.text().unwrap()
}

// ---------------------------------------------------------------------------------------
// The process's logs: a global subscriber writing to a buffer. Threads without their own
// subscriber (alert dispatcher, quality monitor, call-log writer, budget writer) log here.

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn process_logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buf
    })
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// Every path.

fn gemini_path(key: &str) -> String {
    format!("/v1beta/models/gemini-2.5-flash:generateContent?key={key}")
}

fn gemini_body() -> String {
    format!(
        r#"{{"contents":[{{"role":"user","parts":[{{"text":"{}"}}]}}]}}"#,
        prompt()
    )
}

fn run_every_path(policy: llmtel::ContentCapture, keys: &Keys) -> Outputs {
    let logs = process_logs();
    logs.0.lock().unwrap().clear();
    llmtel::set_content_capture(policy.clone());
    let mut out = Outputs::default();
    let dir = tempfile::tempdir().unwrap();

    // Alert sinks: a local webhook, a Slack-shaped endpoint (its path is the token), the log
    // sink, the call log (an alert sink too) and memory.
    let webhook = LocalServer::start(200, "text/plain", "ok".into());
    let slack = LocalServer::start(200, "text/plain", "ok".into());
    let log_path = dir.path().join("calls.jsonl");
    let call_log = llmtel_report::CallLog::builder(&log_path).build().unwrap();
    let memory = Arc::new(llmtel_alert::MemorySink::new());
    let webhook_sink = llmtel_alert::WebhookSink::with_config(
        &webhook.url(&format!("/hook?token={}", keys.slack_token)),
        llmtel_alert::HttpConfig::default()
            .with_header("Authorization", format!("Bearer {}", keys.openai)),
    )
    .unwrap();
    let slack_sink = llmtel_alert::SlackSink::new(
        &slack.url(&format!("/services/T0000/B0000/{}", keys.slack_token)),
    )
    .unwrap();
    // A webhook nobody answers: its delivery error must not carry the URL's token.
    let dead_sink = llmtel_alert::WebhookSink::new(&format!(
        "http://127.0.0.1:{}/hook/{}",
        closed_port(),
        keys.slack_token
    ))
    .unwrap();
    let alerts = llmtel_alert::AlertDispatcher::builder()
        .with_sink(Arc::new(webhook_sink))
        .with_sink(Arc::new(slack_sink))
        .with_sink(Arc::new(dead_sink))
        .with_sink(Arc::new(llmtel_alert::LogSink::new()))
        .with_sink(Arc::new(call_log.clone()))
        .with_sink(memory.clone())
        .build();

    // Budgets: a tiny per-API-key limit, so the call crosses every threshold and alerts with
    // the key as the scope value.
    let config = llmtel_budget::Config::from_toml_str(
        r#"
        [[rule]]
        name = "per-key-daily"
        scope = "api_key"
        period = "day"
        time_zone = "UTC"
        limit_usd = "0.0001"
        thresholds = [50, 80, 100]
        "#,
    )
    .unwrap();
    let budgets = llmtel_budget::Budgets::builder()
        .with_rules(config.rules)
        .with_alerts(alerts.clone())
        .build();

    // Quality with every built-in evaluator.
    let quality = llmtel_quality::Quality::builder()
        .with_builtin_evaluators()
        .with_alerts(alerts.clone())
        .build();

    // Metrics with the user and the API key as labels.
    let prom = llmtel_metrics::PrometheusSink::builder()
        .with_dimension(llmtel_metrics::Dimension::User)
        .with_dimension(llmtel_metrics::Dimension::Custom {
            attribute: "llmtel.api_key_id",
            label: "api_key_id",
        })
        .build();

    // The OpenTelemetry GenAI metrics, with the user and the API key as attributes.
    let metric_exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
    let meter_provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(
            opentelemetry_sdk::metrics::PeriodicReader::builder(metric_exporter.clone()).build(),
        )
        .build();
    let otel_metrics = Arc::new(
        llmtel_metrics::OtelMetricsSink::builder()
            .with_dimension(llmtel_metrics::Dimension::User)
            .with_dimension(llmtel_metrics::Dimension::Custom {
                attribute: "llmtel.api_key_id",
                label: "api_key_id",
            })
            .build(&opentelemetry::metrics::MeterProvider::meter(
                &meter_provider,
                "e2e",
            )),
    );

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(
            llmtel::GenAiExporter::new(exporter.clone()).with_content_capture(policy.clone()),
        )
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(
            llmtel::LlmLayer::new()
                .with_sink(Arc::new(quality.sink()))
                .with_sink(Arc::new(call_log.clone()))
                .with_sink(Arc::new(prom.clone()))
                .with_sink(otel_metrics.clone()),
        )
        .with(budgets.layer())
        .with(call_log.layer())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("e2e")));
    let dispatch = tracing::Dispatch::new(subscriber);
    quality.emit_into(&dispatch);

    let prompt = prompt();
    let response_text = format!(
        "Sure. Use key {} and {} to {prompt}.",
        keys.openai, keys.anthropic
    );
    let provider_400 = LocalServer::start(
        400,
        "application/json",
        format!(
            r#"{{"error":{{"code":400,"message":"Invalid value at 'contents[0]' (\"{prompt}\"), key {}","status":"INVALID_ARGUMENT"}}}}"#,
            keys.gemini
        ),
    );

    tracing::dispatcher::with_default(&dispatch, || {
        // 1. The layer and exporter stage: keys in a Bearer header attribute, a `?key=` URL,
        //    the status description, events and arbitrary attributes; the prompt in content.
        let request = tracing::info_span!(
            "request",
            "http.request.header.authorization" = %format!("Bearer {}", keys.openai),
            "url.full" = %format!("https://generativelanguage.googleapis.com{}", gemini_path(&keys.gemini)),
            "app.config" = %format!(r#"{{"x-api-key":"{}"}}"#, keys.anthropic),
        );
        let _r = request.enter();
        let ctx = llmtel_budget::CallContext::new()
            .with_user(keys.openai.clone())
            .with_model("gpt-4o-mini")
            .with_provider("openai")
            .with_attribute("llmtel.api_key_id", keys.openai.clone());
        let estimate = llmtel_budget::Estimate::for_model(
            llmtel::Catalog::builtin(),
            "gpt-4o-mini",
            None,
            100,
            10,
            jiff::civil::date(2025, 6, 1),
        )
        .unwrap();
        let reservation = budgets
            .reserve(&ctx, estimate)
            .expect("first call is within budget");
        let call = llmtel::llm_span!(
            "chat",
            "openai",
            "gpt-4o-mini",
            "user.id" = %keys.openai,
            "llmtel.api_key_id" = %keys.openai,
            "app.note" = %format!("x-goog-api-key: {}", keys.gemini),
        );
        reservation.bind(&call);
        call.in_scope(|| {
            tracing::info!(
                url = %format!("https://generativelanguage.googleapis.com{}", gemini_path(&keys.gemini)),
                "retrying with Authorization: Bearer {}",
                keys.anthropic
            );
            // Content in an event: an evaluator's explanation quoting the prompt.
            tracing::warn!(
                "gen_ai.evaluation.explanation" = %format!("the answer ignored: {prompt}"),
                "evaluation"
            );
        });
        llmtel::record_input_messages(
            &call,
            &serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": prompt}]}])
                .to_string(),
        );
        llmtel::record_output_messages(
            &call,
            &serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": response_text}], "finish_reason": "stop"}])
                .to_string(),
        );
        llmtel::record_response(&call, "chatcmpl-e2e-1", "gpt-4o-mini", &["stop"]);
        llmtel::record_usage(
            &call,
            &llmtel::Usage {
                input_tokens: 100_000,
                output_tokens: 10_000,
                ..Default::default()
            },
        );
        llmtel::record_error(
            &call,
            "invalid_request",
            &format!(
                "400 from https://generativelanguage.googleapis.com{}: Invalid value (\"{prompt}\") with Bearer {}",
                gemini_path(&keys.gemini),
                keys.openai
            ),
        );
        drop(call);

        // The budget is spent now: the next reserve is refused, naming the rule and scope.
        let refused = budgets.reserve(
            &ctx,
            llmtel_budget::Estimate::for_model(
                llmtel::Catalog::builtin(),
                "gpt-4o-mini",
                None,
                100,
                10,
                jiff::civil::date(2025, 6, 1),
            )
            .unwrap(),
        );
        match refused {
            Err(e) => out.add("budgets: refusal error", format!("{e}\n{e:?}")),
            Ok(_) => panic!("the second call is over the per-key budget"),
        }

        // 2. The reqwest middleware: a refused connection to a Gemini `?key=` URL, and a
        //    provider 400 that quotes the prompt.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let base = format!("http://127.0.0.1:{}", closed_port());
            let mw = llmtel_reqwest::LlmMiddleware::new()
                .with_gemini_base_url(&base)
                .unwrap();
            out.add("debug: LlmMiddleware", format!("{mw:?}"));
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(mw)
                .build();
            let err = client
                .post(format!("{base}{}", gemini_path(&keys.gemini)))
                .header("content-type", "application/json")
                .header("x-goog-api-key", &keys.gemini)
                .body(gemini_body())
                .send()
                .await
                .expect_err("nothing listens on the port");
            drop(err); // the caller's own error: not telemetry

            let base = format!("http://127.0.0.1:{}", provider_400.port);
            let mw = llmtel_reqwest::LlmMiddleware::new()
                .with_gemini_base_url(&base)
                .unwrap();
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(mw)
                .build();
            let resp = client
                .post(format!("{base}{}", gemini_path(&keys.gemini)))
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {}", keys.openai))
                .body(gemini_body())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 400);
            let _ = resp.bytes().await.unwrap();
        });
        assert!(llmtel::finish_pending_spans(Duration::from_secs(10)));
    });

    // 3. Quality: every built-in evaluator on a response quoting the keys and the prompt,
    //    and feedback whose comment quotes them.
    quality.evaluate(
        llmtel_quality::EvalInput::new(response_text.clone())
            .with_question(prompt.clone())
            .with_context(format!("internal doc: {prompt}, key {}", keys.gemini))
            .with_response_id("chatcmpl-e2e-1"),
    );
    quality.feedback(
        llmtel_quality::Feedback::thumbs(
            llmtel_quality::CallRef::ResponseId("chatcmpl-e2e-1".into()),
            false,
        )
        .with_comment(format!(
            "it told me to {prompt} and printed {}",
            keys.anthropic
        )),
    );
    assert!(quality.flush(Duration::from_secs(10)), "quality drained");
    assert!(budgets.flush(Duration::from_secs(10)), "budgets drained");
    assert!(alerts.flush(Duration::from_secs(15)), "alerts delivered");
    assert!(call_log.flush(Duration::from_secs(10)), "call log written");
    provider.force_flush().unwrap();

    // Exported spans.
    let spans = exporter.get_finished_spans().unwrap();
    assert!(
        spans.iter().any(|s| s.name.contains("gpt-4o-mini")),
        "the layer's call was exported: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let reqwest_spans = spans
        .iter()
        .filter(|s| s.name.contains("gemini-2.5-flash"))
        .count();
    assert_eq!(reqwest_spans, 2, "both middleware calls were exported");
    let evaluations: Vec<_> = spans
        .iter()
        .filter(|s| s.name.contains("evaluation"))
        .collect();
    assert!(
        evaluations.len() >= 2,
        "evaluation results and the feedback were exported: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    out.add("exported spans", format!("{spans:?}"));
    out.add(
        "exported gen_ai.evaluation.result spans",
        format!("{evaluations:?}"),
    );

    // Budgets: Debug, status output, alerts raised.
    out.add("debug: Budgets", format!("{budgets:?}"));
    let status = budgets.status().unwrap();
    out.add(
        "budgets: status",
        format!(
            "{status:?}\n{}\n{}",
            llmtel_budget::render_table(&status),
            llmtel_budget::render_json(&status)
        ),
    );
    out.add("budgets: stats", format!("{:?}", budgets.stats()));

    // Quality: snapshot JSON, stats, Debug.
    let snapshot = quality.snapshot();
    out.add(
        "quality: snapshot JSON",
        serde_json::to_string(&snapshot).unwrap(),
    );
    out.add("quality: stats", format!("{:?}", quality.stats()));
    out.add("debug: Quality", format!("{quality:?}"));
    if let Some(e) = quality.last_evaluator_error() {
        out.add("quality: last evaluator error", e);
    }

    // Alerts: every sink's view.
    let raised = memory.alerts();
    assert!(
        raised
            .iter()
            .any(|a| format!("{a:?}").contains("per-key-daily")),
        "the budget alerted: {raised:?}"
    );
    out.add("alerts: raised (memory sink)", format!("{raised:?}"));
    let webhook_bodies = webhook.bodies();
    assert!(
        webhook_bodies.contains("per-key-daily")
            && webhook_bodies.contains("llmtel.api_key_id=[REDACTED:"),
        "the webhook received the budget alerts, the key redacted: {webhook_bodies}"
    );
    out.add("alerts: webhook bodies", webhook_bodies);
    let slack_bodies = slack.bodies();
    assert!(
        slack_bodies.contains("per-key-daily") && slack_bodies.contains("[REDACTED:"),
        "the Slack endpoint received the budget alerts, the key redacted: {slack_bodies}"
    );
    out.add("alerts: Slack bodies", slack_bodies);
    let stats = alerts.stats();
    assert!(stats.failed > 0, "the dead webhook failed: {stats:?}");
    out.add("alerts: dispatcher stats", format!("{stats:?}"));
    out.add("debug: AlertDispatcher", format!("{alerts:?}"));

    // Call log and report.
    let log_text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log_text.lines().count() >= 3,
        "calls, evaluations, alerts: {log_text}"
    );
    out.add("call log", log_text);
    out.add("debug: CallLog", format!("{call_log:?}"));
    let report = llmtel_report::Report::from_log(&log_path, &llmtel_report::Period::all()).unwrap();
    for (format, text) in [
        ("markdown", report.to_markdown()),
        ("html", report.to_html()),
        ("json", report.to_json()),
    ] {
        let file = dir.path().join(format!("report.{format}"));
        std::fs::write(&file, text).unwrap();
        out.add(
            format!("report: {format}"),
            std::fs::read_to_string(&file).unwrap(),
        );
    }

    // The dashboard and /metrics, served and scraped.
    let dashboard = llmtel_quality::dashboard::serve(&quality, "127.0.0.1:0").unwrap();
    let snapshot_http = http_get(&format!("http://{}/snapshot", dashboard.local_addr()));
    assert!(snapshot_http.contains("\"overall\""), "{snapshot_http}");
    out.add("dashboard: GET /snapshot", snapshot_http);
    let metrics_server = prom.serve("127.0.0.1:0").unwrap();
    let metrics = http_get(&format!("http://{}/metrics", metrics_server.local_addr()));
    assert!(metrics.contains("llm_requests_total"), "{metrics}");
    out.add("metrics: GET /metrics", metrics);
    out.add("debug: PrometheusSink", format!("{prom:?}"));
    meter_provider.force_flush().unwrap();
    let exported_metrics = metric_exporter.get_finished_metrics().unwrap();
    assert!(
        !exported_metrics.is_empty(),
        "the OTel metrics were exported"
    );
    out.add("otel metrics (exported)", format!("{exported_metrics:?}"));
    out.add("debug: OtelMetricsSink", format!("{otel_metrics:?}"));

    quality.shutdown();
    alerts.shutdown().expect("the alert dispatcher shut down");
    call_log.shutdown();
    out.add(
        "process logs",
        String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned(),
    );
    out
}

/// `Debug` and error `Display` of every public config type, each given secrets.
fn config_debug(keys: &Keys, out: &mut Outputs) {
    let bearer = format!("Bearer {}", keys.openai);
    let gemini_url = format!(
        "https://generativelanguage.googleapis.com{}",
        gemini_path(&keys.gemini)
    );
    let builder = llmtel::builder()
        .with_endpoint(format!(
            "https://otlp.example.test:4318?key={}",
            keys.gemini
        ))
        .with_header("Authorization", bearer.clone())
        .with_header("x-api-key", keys.anthropic.clone())
        .with_preset(llmtel::Preset::Langfuse {
            host: "https://cloud.langfuse.com".into(),
            public_key: "pk-lf-public".into(),
            secret_key: keys.anthropic.clone(),
        })
        .with_content_capture(
            llmtel::ContentCapture::enabled().with_redactor(|s: &str| s.to_owned()),
        );
    out.add("debug: llmtel::Builder", format!("{builder:?}"));
    for preset in [
        llmtel::Preset::LangSmith {
            endpoint: format!("https://api.smith.langchain.com?key={}", keys.gemini),
            api_key: keys.openai.clone(),
            project: "p".into(),
        },
        llmtel::Preset::Phoenix {
            endpoint: format!("http://127.0.0.1:6006/?api_key={}", keys.openai),
            project: "p".into(),
        },
    ] {
        out.add("debug: llmtel::Preset", format!("{preset:?}"));
    }
    out.add(
        "debug: ContentCapture",
        format!(
            "{:?}",
            llmtel::ContentCapture::enabled().with_redactor(|s: &str| s.to_owned())
        ),
    );
    let mw = llmtel_reqwest::LlmMiddleware::new()
        .with_gemini_base_url(&format!("https://gemini.example.test/?key={}", keys.gemini))
        .unwrap();
    out.add("debug: LlmMiddleware with a key URL", format!("{mw:?}"));

    let http = llmtel_alert::HttpConfig::default()
        .with_header("Authorization", bearer.clone())
        .with_header("x-api-key", keys.anthropic.clone());
    out.add("debug: HttpConfig", format!("{http:?}"));
    let slack_url = format!(
        "https://hooks.slack.com/services/T0000/B0000/{}",
        keys.slack_token
    );
    out.add(
        "debug: SlackSink",
        format!("{:?}", llmtel_alert::SlackSink::new(&slack_url).unwrap()),
    );
    out.add(
        "debug: WebhookSink",
        format!(
            "{:?}",
            llmtel_alert::WebhookSink::with_config(
                &format!("https://hooks.example.test/x?token={}", keys.slack_token),
                http.clone()
            )
            .unwrap()
        ),
    );
    out.add(
        "debug: AlertmanagerSink",
        format!(
            "{:?}",
            llmtel_alert::AlertmanagerSink::with_config(
                &format!("https://am:{}@am.example.test", keys.redis_password),
                http
            )
            .unwrap()
        ),
    );
    if let Err(e) = llmtel_alert::SlackSink::new(&format!("ftp://x/{}", keys.slack_token)) {
        out.add("error: SlackSink bad URL", format!("{e}\n{e:?}"));
    }

    // The Redis store with a password URL: Debug, and its errors with Redis down.
    let redis_url = format!(
        "redis://:{}@127.0.0.1:{}/0",
        keys.redis_password,
        closed_port()
    );
    let store = llmtel_budget::RedisStore::open(&redis_url)
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    out.add("debug: RedisStore", format!("{store:?}"));
    let config = llmtel_budget::Config::from_toml_str(&format!(
        r#"
        [store]
        kind = "redis"
        url = "{redis_url}"

        [[rule]]
        name = "r"
        scope = "api_key"
        period = "day"
        time_zone = "UTC"
        limit_usd = "1"
        "#
    ))
    .unwrap();
    out.add(
        "debug: budget Config and StoreConfig",
        format!("{config:?}"),
    );
    let budgets = llmtel_budget::Budgets::builder()
        .with_rules(config.rules)
        .with_store(Arc::new(store))
        .build();
    match budgets.status() {
        Err(e) => out.add("error: Redis store down", format!("{e}\n{e:?}")),
        Ok(s) => out.add("budgets on a down Redis: status", format!("{s:?}")),
    }
    let ctx =
        llmtel_budget::CallContext::new().with_attribute("llmtel.api_key_id", keys.openai.clone());
    let _ = budgets.reserve(&ctx, llmtel_budget::Estimate::new(llmtel::Usd::ZERO, 10));
    out.add("debug: Budgets on a down Redis", format!("{budgets:?}"));
    out.add(
        "budgets on a down Redis: stats",
        format!("{:?}", budgets.stats()),
    );
    if let Err(e) =
        llmtel_budget::RedisStore::open(&format!("redis://:{}@[not-a-host", keys.redis_password))
    {
        out.add("error: invalid Redis URL", format!("{e}\n{e:?}"));
    }

    // Evaluators calling remote endpoints, with API keys.
    let judge = llmtel_quality::LlmJudge::builder(
        format!("http://127.0.0.1:{}/v1?key={}", closed_port(), keys.gemini),
        "gpt-4o-mini",
    )
    .with_api_key(keys.openai.clone());
    out.add("debug: LlmJudgeBuilder", format!("{judge:?}"));
    let judge = Arc::new(judge.build().unwrap());
    out.add("debug: LlmJudge", format!("{judge:?}"));
    out.add(
        "debug: QualityBuilder with the judge",
        format!(
            "{:?}",
            llmtel_quality::Quality::builder().with_evaluator(judge)
        ),
    );
    let embed = llmtel_quality::EmbeddingRelevance::builder(
        format!("http://127.0.0.1:{}/v1", closed_port()),
        "text-embedding-3-small",
    )
    .with_api_key(keys.anthropic.clone());
    out.add("debug: EmbeddingRelevanceBuilder", format!("{embed:?}"));
    out.add(
        "debug: EmbeddingRelevance",
        format!("{:?}", embed.build().unwrap()),
    );
    let _ = gemini_url;
}

/// Runs this test binary's `console_sink_child` test in a child process with `mode`, and
/// returns what it wrote to standard error (the console sink's only output).
fn console_output(mode: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "console_sink_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LLMTEL_E2E_CONSOLE_CHILD", mode)
        .output()
        .unwrap();
    assert!(out.status.success(), "console child failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Not a check by itself: the console child process (see [`console_output`]).
#[test]
fn console_sink_child() {
    let Ok(mode) = std::env::var("LLMTEL_E2E_CONSOLE_CHILD") else {
        return;
    };
    let keys = Keys::new();
    let mut builder = llmtel::builder()
        .with_export_disabled(true)
        .with_console(true);
    if mode == "on" {
        builder = builder.with_content_capture(
            llmtel::ContentCapture::enabled()
                .with_redactor(|s: &str| s.replace(PROMPT_WORD, HOOK_MARKER)),
        );
    }
    let guard = builder.install().unwrap();
    let prompt = prompt();
    let call = llmtel::llm_span!(
        "chat",
        "openai",
        "gpt-4o-mini",
        "user.id" = %keys.openai,
        "llmtel.feature" = "support",
        "llmtel.tenant" = %keys.gemini,
    );
    llmtel::record_usage(
        &call,
        &llmtel::Usage {
            input_tokens: 10,
            output_tokens: 2,
            ..Default::default()
        },
    );
    llmtel::record_error(&call, &keys.anthropic, &format!("{prompt} {}", keys.openai));
    drop(call);
    drop(guard);
    eprintln!("console child done");
}

/// Runs every path with `policy` and returns what was captured and the leaks found.
fn scan(mode: &str, policy: llmtel::ContentCapture) -> (Outputs, Vec<String>) {
    let keys = Keys::new();
    let mut out = run_every_path(policy, &keys);
    config_debug(&keys, &mut out);
    let console = console_output(mode);
    assert!(
        console.contains("llmtel  chat") && console.contains("console child done"),
        "the console sink printed the call: {console}"
    );
    out.add("console sink (stderr)", console);
    let leaks: Vec<String> = out
        .leaks(&keys)
        .into_iter()
        .map(|(_, _, line)| format!("capture {mode}: {line}"))
        .collect();
    (out, leaks)
}

fn check(mode: &str, policy: llmtel::ContentCapture) -> Outputs {
    let (out, leaks) = scan(mode, policy);
    assert!(
        leaks.is_empty(),
        "{} leak(s) with capture {mode}:\n{}",
        leaks.len(),
        leaks.join("\n\n")
    );
    out
}

fn hook_policy() -> llmtel::ContentCapture {
    llmtel::ContentCapture::enabled().with_redactor(|s: &str| s.replace(PROMPT_WORD, HOOK_MARKER))
}

#[test]
fn with_capture_off_no_key_and_no_prompt_leaves_on_any_path() {
    let _serial = serial();
    let out = check("off", llmtel::ContentCapture::disabled());
    assert!(
        !out.get("exported spans").contains(HOOK_MARKER),
        "no content, so no hook marker"
    );
    llmtel::set_content_capture(llmtel::ContentCapture::disabled());
}

#[test]
fn with_capture_on_content_goes_through_the_hook_on_every_path_and_keys_never_leave() {
    let _serial = serial();
    let out = check("on", hook_policy());
    llmtel::set_content_capture(llmtel::ContentCapture::disabled());
    // Content is there, through the hook, on the paths that carry it.
    for path in [
        "exported spans",
        "exported gen_ai.evaluation.result spans",
        "call log",
        "report: markdown",
        "report: html",
        "report: json",
    ] {
        assert!(
            out.get(path).contains(HOOK_MARKER),
            "[{path}] content is kept on opt-in, through the hook: {}",
            out.get(path)
        );
    }
}
