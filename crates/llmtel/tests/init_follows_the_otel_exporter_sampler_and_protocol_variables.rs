//! What `init()` / `builder()` export is what the standard variables say:
//!
//! - `OTEL_TRACES_EXPORTER=none` keeps the traces home (the metrics, which have their own
//!   `OTEL_METRICS_EXPORTER`, still go); it was ignored;
//! - `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` alone exports the metrics (only): it exported
//!   nothing, though the README listed it among the variables that turn export on;
//! - the metrics go with `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`, not the traces' protocol;
//! - a bad `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, or an `OTEL_TRACES_EXPORTER`
//!   llmtel does not have (`zipkin`), is warned about once on stderr, saying what llmtel uses
//!   and what to set, and ignored (the specification's rule: it failed `init()`, and before
//!   that sampled every trace silently), unless the code sets the sampler;
//! - a protocol (`http/json`), timeout or `OTEL_BSP_*` value llmtel cannot use is warned
//!   about once on stderr, naming the variable, its value, what llmtel uses and what to set,
//!   and ignored (it failed `init()`: the specification says to warn and ignore);
//! - with `OTEL_SDK_DISABLED=true` nothing is exported, so the protocol is not read;
//! - an invalid `RUST_LOG` is reported as such (it was "invalid trace filter").
//!
//! The variables are process-wide and the workspace forbids `unsafe` (no `set_var`), so each
//! case runs in a child process of this test binary, which prints what it saw.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

#[path = "support/grpc_metrics.rs"]
mod grpc_metrics;
mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;

const CHILD: &str = "LLMTEL_ENV_TEST_CHILD";
/// A sampler the child sets in code (`always_on`), if any.
const CODE_SAMPLER: &str = "LLMTEL_ENV_TEST_CODE_SAMPLER";

/// Every variable these tests set, removed from the child's environment first.
const VARS: [&str; 27] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
    "OTEL_EXPORTER_OTLP_METRICS_INSECURE",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_SDK_DISABLED",
    "RUST_LOG",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    LINGER,
    CODE_SAMPLER,
];

/// How long the child waits, its call made, before it drops its guard (ms; else not at all).
const LINGER: &str = "LLMTEL_TEST_LINGER_MS";

/// Runs `child` with `env`; returns the line it printed after `RESULT `.
fn run_child(child: &str, env: &[(&str, &str)]) -> String {
    run_child_with_stderr(child, env).0
}

/// [`run_child`], and what the child wrote on stderr.
fn run_child_with_stderr(child: &str, env: &[(&str, &str)]) -> (String, String) {
    let out = support::child::run(child, CHILD, &VARS, env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (The harness prints the test's name on the same line, before it.)
    let result = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r.trim()))
        .unwrap_or_else(|| panic!("the child printed no result:\n{stdout}"))
        .to_owned();
    (result, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The lines of `stderr` that start with `llmtel: ` and contain `what`.
fn warnings<'a>(stderr: &'a str, what: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("llmtel: ") && l.contains(what))
        .collect()
}

/// Builds llmtel from the environment, makes one LLM call and drops the guard (which exports
/// what is left); prints `exporting=… spans_exported=…`, or `error: …`.
#[test]
#[ignore = "child process of the tests of this file"]
fn child_builds_from_the_environment() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let mut b = llmtel::builder().with_console(false);
    if std::env::var(CODE_SAMPLER).is_ok() {
        b = b.with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn);
    }
    let (layer, guard) = match b.build::<tracing_subscriber::Registry>() {
        Ok(built) => built,
        Err(e) => {
            println!("RESULT error: {e}");
            return;
        }
    };
    let exporting = guard.is_exporting();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let call = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
        llmtel::record_usage(
            &call,
            &llmtel::Usage {
                input_tokens: 100,
                output_tokens: 20,
                ..Default::default()
            },
        );
    });
    if let Some(ms) = std::env::var(LINGER).ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    drop(guard);
    let h = llmtel::health();
    println!(
        "RESULT exporting={exporting} spans_exported={}",
        h.spans_exported
    );
}

/// `init()` (which installs the log layer) from the environment; prints `ok` or `error: …`.
#[test]
#[ignore = "child process of the tests of this file"]
fn child_installs_from_the_environment() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    match llmtel::init() {
        Ok(_guard) => println!("RESULT ok"),
        Err(e) => println!("RESULT error: {e}"),
    }
}

/// The paths of the requests `rx` gets until one for `until` (waiting at most 10 s for it).
fn paths_until(rx: &mpsc::Receiver<support::otlp_http::Request>, until: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut paths = Vec::new();
    while Instant::now() < deadline && !paths.iter().any(|p| p == until) {
        if let Ok(r) = rx.recv_timeout(Duration::from_millis(100)) {
            paths.push(r.path);
        }
    }
    paths
}

#[test]
fn otel_traces_exporter_none_keeps_the_traces_home_and_the_metrics_still_go() {
    let (url, rx) = support::otlp_http::receiver();
    let result = run_child(
        "child_builds_from_the_environment",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ],
    );
    assert_eq!(result, "exporting=false spans_exported=0");
    // The receiver takes one request at a time, in order: the guard exports the traces
    // before the metrics, so a trace export would have come first.
    let paths = paths_until(&rx, "/v1/metrics");
    assert_eq!(paths, ["/v1/metrics"]);
}

#[test]
fn an_exporter_llmtel_does_not_have_is_warned_about_and_ignored() {
    // A compose file's shared environment (`zipkin` for another service) does not stop the
    // app: the OpenTelemetry specification says to warn and ignore. With no endpoint, nothing
    // is exported either way.
    for exporter in ["zipkin", "logging"] {
        let (result, stderr) = run_child_with_stderr(
            "child_builds_from_the_environment",
            &[("OTEL_TRACES_EXPORTER", exporter)],
        );
        assert_eq!(result, "exporting=false spans_exported=0", "{stderr}");
        let w = warnings(&stderr, "OTEL_TRACES_EXPORTER");
        assert_eq!(w.len(), 1, "{stderr}");
        assert!(
            w[0].contains(exporter) && w[0].contains("ignored") && w[0].contains("using otlp"),
            "{stderr}"
        );
    }
    // With an endpoint, the traces go over OTLP, the default.
    let (url, rx) = support::otlp_http::receiver();
    let (result, stderr) = run_child_with_stderr(
        "child_builds_from_the_environment",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
        ],
    );
    assert_eq!(result, "exporting=true spans_exported=1", "{stderr}");
    assert_eq!(
        warnings(&stderr, "OTEL_TRACES_EXPORTER").len(),
        1,
        "{stderr}"
    );
    assert_eq!(paths_until(&rx, "/v1/traces"), ["/v1/traces"]);
}

#[test]
fn the_metrics_endpoint_alone_exports_the_metrics_only() {
    let (url, rx) = support::otlp_http::receiver();
    let metrics_url = format!("{url}/v1/metrics");
    let result = run_child(
        "child_builds_from_the_environment",
        &[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &metrics_url),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    );
    assert_eq!(result, "exporting=false spans_exported=0");
    assert_eq!(paths_until(&rx, "/v1/metrics"), ["/v1/metrics"]);
}

#[test]
fn the_metrics_go_with_their_own_protocol() {
    // Traces over HTTP to one receiver, metrics over gRPC to another.
    let (traces_url, traces_rx) = support::otlp_http::receiver();
    let (grpc_url, metrics_rx) = grpc_metrics::receiver();
    let result = run_child(
        "child_builds_from_the_environment",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &traces_url),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &grpc_url),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
        ],
    );
    assert_eq!(result, "exporting=true spans_exported=1");
    assert_eq!(paths_until(&traces_rx, "/v1/traces"), ["/v1/traces"]);
    assert!(
        metrics_rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "no metrics export reached the gRPC receiver"
    );
}

#[test]
fn a_bad_sampler_is_warned_about_and_ignored_and_a_good_one_is_followed() {
    let (url, _rx) = support::otlp_http::receiver();
    let with_stderr = |sampler: &str, arg: Option<&str>, code: bool| {
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_TRACES_SAMPLER", sampler),
        ];
        if let Some(a) = arg {
            env.push(("OTEL_TRACES_SAMPLER_ARG", a));
        }
        if code {
            env.push((CODE_SAMPLER, "always_on"));
        }
        run_child_with_stderr("child_builds_from_the_environment", &env)
    };
    let with = |sampler: &str, arg: Option<&str>, code: bool| with_stderr(sampler, arg, code).0;
    // A ratio that is not one is 1: the trace is sampled and exported.
    let (result, stderr) = with_stderr("traceidratio", Some("10%"), false);
    assert_eq!(result, "exporting=true spans_exported=1", "{stderr}");
    let w = warnings(&stderr, "OTEL_TRACES_SAMPLER_ARG");
    assert_eq!(w.len(), 1, "{stderr}");
    assert!(
        w[0].contains("\"10%\"") && w[0].contains("0 to 1") && w[0].contains("sampling with 1"),
        "{stderr}"
    );
    // A sampler llmtel does not build is the default, parent-based always on.
    for unsupported in ["xray", "parentbased_jaeger_remote"] {
        let (result, stderr) = with_stderr(unsupported, None, false);
        assert_eq!(result, "exporting=true spans_exported=1", "{stderr}");
        let w = warnings(&stderr, "OTEL_TRACES_SAMPLER=");
        assert_eq!(w.len(), 1, "{stderr}");
        assert!(
            w[0].contains(unsupported)
                && w[0].contains("not supported")
                && w[0].contains("parentbased_always_on")
                && w[0].contains("Builder::with_sampler"),
            "{stderr}"
        );
    }
    // Set in code, the sampler wins and the variables are not read: no warning.
    let (result, stderr) = with_stderr("nonsense", Some("10%"), true);
    assert_eq!(result, "exporting=true spans_exported=1");
    assert!(
        warnings(&stderr, "OTEL_TRACES_SAMPLER").is_empty(),
        "{stderr}"
    );
    // A valid one is followed: nothing sampled, nothing exported.
    assert_eq!(
        with("always_off", None, false),
        "exporting=true spans_exported=0"
    );
    assert_eq!(
        with("traceidratio", Some("0"), false),
        "exporting=true spans_exported=0"
    );
    // The code's sampler wins: the variables are not read.
    assert_eq!(
        with("always_off", None, true),
        "exporting=true spans_exported=1"
    );
}

#[test]
fn a_zero_metric_interval_an_unknown_metrics_exporter_and_compression_are_warned_about() {
    // `OTEL_METRIC_EXPORT_INTERVAL=0` made the SDK's reader export in a busy loop; the
    // other two were ignored without a word.
    let (url, rx) = support::otlp_http::receiver();
    let (result, stderr) = run_child_with_stderr(
        "child_builds_from_the_environment",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            // The call's metrics are recorded once its span is exported (at once), then
            // the child waits: a reader looping would export them again and again.
            ("OTEL_BSP_SCHEDULE_DELAY", "1"),
            (LINGER, "700"),
        ],
    );
    assert_eq!(result, "exporting=true spans_exported=1", "{stderr}");
    for (var, says) in [
        (
            "OTEL_METRIC_EXPORT_INTERVAL=",
            "ignored: using 60000 ms (the default)",
        ),
        ("OTEL_METRICS_EXPORTER=", "ignored: using otlp"),
        (
            "OTEL_EXPORTER_OTLP_COMPRESSION=",
            "ignored: using none (the default)",
        ),
    ] {
        let w = warnings(&stderr, var);
        assert!(w.len() == 1 && w[0].contains(says), "{var}: {stderr}");
    }
    // The child has exited: every request it sent is here. The metrics went once, at
    // shutdown (the interval is the default minute), not in a loop.
    let mut paths = Vec::new();
    while let Ok(r) = rx.recv_timeout(Duration::from_millis(500)) {
        paths.push(r.path);
    }
    let metrics = paths.iter().filter(|p| *p == "/v1/metrics").count();
    assert_eq!(metrics, 1, "{paths:?}");
    assert!(paths.iter().any(|p| p == "/v1/traces"), "{paths:?}");
}

#[test]
fn with_export_disabled_no_protocol_is_read() {
    let (result, stderr) = run_child_with_stderr(
        "child_builds_from_the_environment",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    );
    assert_eq!(result, "exporting=false spans_exported=0");
    assert!(warnings(&stderr, "PROTOCOL").is_empty(), "{stderr}");
}

#[test]
fn a_protocol_llmtel_does_not_speak_is_warned_about_and_the_default_used() {
    // `http/json` (the generic variable, or a signal's) failed `init()`; the specification
    // says to warn and use the default: the spans go over OTLP/HTTP with protobuf.
    for var in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ] {
        let (url, rx) = support::otlp_http::receiver();
        let (result, stderr) = run_child_with_stderr(
            "child_builds_from_the_environment",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
                (var, "http/json"),
            ],
        );
        assert_eq!(result, "exporting=true spans_exported=1", "{stderr}");
        // Once, though the traces and the metrics both read it.
        let w = warnings(&stderr, &format!("{var}="));
        assert_eq!(w.len(), 1, "{stderr}");
        assert!(
            w[0].contains("\"http/json\"")
                && w[0].contains("ignored: using http/protobuf")
                && w[0].contains("set it to http/protobuf or grpc"),
            "{stderr}"
        );
        let paths = paths_until(&rx, "/v1/traces");
        assert!(paths.iter().any(|p| p == "/v1/traces"), "{paths:?}");
    }
    // The metrics' own variable: the metrics go with the default, the traces unaffected.
    let (url, rx) = support::otlp_http::receiver();
    let (result, stderr) = run_child_with_stderr(
        "child_builds_from_the_environment",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
        ],
    );
    assert_eq!(result, "exporting=true spans_exported=1", "{stderr}");
    assert_eq!(
        warnings(&stderr, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=").len(),
        1,
        "{stderr}"
    );
    let paths = paths_until(&rx, "/v1/metrics");
    assert!(paths.iter().any(|p| p == "/v1/metrics"), "{paths:?}");
}

#[test]
fn a_timeout_or_queue_setting_that_is_not_a_number_is_warned_about_and_the_default_used() {
    let (url, rx) = support::otlp_http::receiver();
    let bad = [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "x", "10000 ms (the default)"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "5s",
            "10000 ms (the default)",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
            "-1",
            "10000 ms (the default)",
        ),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "abc", "16384 (the default)"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0", "1024 (the default)"),
        ("OTEL_BSP_SCHEDULE_DELAY", "-1", "2000 ms (the default)"),
    ];
    let mut env: Vec<(&str, &str)> = bad.iter().map(|(k, v, _)| (*k, *v)).collect();
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()));
    let (result, stderr) = run_child_with_stderr("child_builds_from_the_environment", &env);
    assert_eq!(result, "exporting=true spans_exported=1", "{stderr}");
    for (var, value, using) in bad {
        let w = warnings(&stderr, &format!("{var}="));
        // `OTEL_EXPORTER_OTLP_TIMEOUT` is read for the traces and the metrics: said once.
        assert_eq!(w.len(), 1, "{var}: {stderr}");
        assert!(
            w[0].contains(&format!("{var}=\"{value}\""))
                && w[0].contains(&format!("ignored: using {using}"))
                && w[0].contains("write"),
            "{var}: {stderr}"
        );
    }
    let paths = paths_until(&rx, "/v1/traces");
    assert!(paths.iter().any(|p| p == "/v1/traces"), "{paths:?}");
}

#[test]
fn an_invalid_rust_log_is_named() {
    let result = run_child(
        "child_installs_from_the_environment",
        &[("RUST_LOG", "warn,[bad")],
    );
    assert!(
        result.starts_with("error:") && result.contains("RUST_LOG"),
        "{result}"
    );
    assert!(!result.contains("trace filter"), "{result}");
}
