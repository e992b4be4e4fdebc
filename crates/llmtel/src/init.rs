//! `llmtel::init()` and its [`Builder`]: the subscriber stack, OTLP export and the guard.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use llmtel_pricing::Catalog;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_core::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::console::ConsoleSink;
use crate::content::{self, ContentCapture};
use crate::export::{ExportQueue, QueueConfig, QueueError};
use crate::layer::{CallSink, LlmLayer};
use crate::summary::TraceSummaries;
use crate::tls::OtlpTls;

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (default port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318). The spec's default.
    HttpProtobuf,
}

impl Protocol {
    pub(crate) fn parse(s: &str) -> Result<Protocol, InitError> {
        match s.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" | "http" => Ok(Protocol::HttpProtobuf),
            other => Err(InitError::Protocol(other.to_owned())),
        }
    }

    /// The name the OTLP specification gives it (`OTEL_EXPORTER_OTLP_PROTOCOL`).
    const fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }

    /// The protocol the environment asks for one signal: `signal_var` (for example
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`), else `OTEL_EXPORTER_OTLP_PROTOCOL`, else
    /// `http/protobuf`. A value llmtel does not speak (`http/json`) is warned about once on
    /// stderr and ignored, as the OpenTelemetry specification says of a malformed one.
    #[cfg(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc")))]
    pub(crate) fn from_env(signal_var: &str) -> Protocol {
        Protocol::warned(signal_var, env)
    }

    /// [`Protocol::from_env`] with the variables read by `get`.
    fn warned(signal_var: &str, get: impl Fn(&str) -> Option<String>) -> Protocol {
        let (protocol, warnings) = Protocol::from_vars(signal_var, get);
        warn_env_each(&warnings);
        protocol
    }

    /// The protocol of `signal_var`, else of `OTEL_EXPORTER_OTLP_PROTOCOL`, else
    /// `http/protobuf`, read by `get`; a value that is not a protocol llmtel speaks is as
    /// unset (the next variable, else the default, is used), with a warning saying so.
    fn from_vars(
        signal_var: &str,
        get: impl Fn(&str) -> Option<String>,
    ) -> (Protocol, Vec<String>) {
        first_valid(
            &[signal_var, "OTEL_EXPORTER_OTLP_PROTOCOL"],
            get,
            |v| Protocol::parse(v).ok(),
            |p| p.name().to_owned(),
            Protocol::HttpProtobuf,
            "an OTLP protocol llmtel speaks",
            "set it to http/protobuf or grpc",
        )
    }
}

/// The value of the first of `vars` (read by `get`) that `parse` takes, else `default`; and,
/// for each one set to something `parse` does not take, the warning to give: it is not
/// `what`, it is ignored, what is used instead (`show`n, from which variable or the
/// default), and `fix`, what to write. The OpenTelemetry specification's rule for a
/// malformed value: warn, and use the next variable, else the default.
pub(crate) fn first_valid<T: Copy>(
    vars: &[&str],
    get: impl Fn(&str) -> Option<String>,
    parse: impl Fn(&str) -> Option<T>,
    show: impl Fn(T) -> String,
    default: T,
    what: &str,
    fix: &str,
) -> (T, Vec<String>) {
    let mut ignored = Vec::new();
    let mut found = None;
    for &var in vars {
        let Some(value) = get(var) else { continue };
        match parse(&value) {
            Some(v) => {
                found = Some((v, var));
                break;
            }
            None => ignored.push((var, value)),
        }
    }
    let (value, using) = match found {
        Some((v, var)) => (v, format!("{} (from {var})", show(v))),
        None => (default, format!("{} (the default)", show(default))),
    };
    let warnings = ignored
        .into_iter()
        .map(|(var, v)| {
            format!(
                "{var}={} is not {what}, ignored: using {using}; {fix}",
                quoted(&v)
            )
        })
        .collect();
    (value, warnings)
}

/// The signals llmtel exports over OTLP, each with its own variables (read before the
/// generic `OTEL_EXPORTER_OTLP_*` one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    not(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc"))),
    allow(dead_code)
)]
pub(crate) enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    const fn endpoint_var(self) -> &'static str {
        match self {
            Signal::Traces => "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            Signal::Metrics => "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        }
    }

    const fn protocol_var(self) -> &'static str {
        match self {
            Signal::Traces => "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            Signal::Metrics => "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        }
    }

    #[cfg(any(test, feature = "otlp-grpc"))]
    const fn insecure_var(self) -> &'static str {
        match self {
            Signal::Traces => "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
            Signal::Metrics => "OTEL_EXPORTER_OTLP_METRICS_INSECURE",
        }
    }
}

/// A line on stderr, as `eprintln!` but never a panic: a closed stderr (`app 2>&1 | true`,
/// EPIPE) must not panic `init()` or a `Guard`'s drop.
macro_rules! stderr_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// The endpoint a gRPC exporter of `signal` sends to, with its scheme: the code's, else the
/// signal's variable, else `OTEL_EXPORTER_OTLP_ENDPOINT` (for metrics, else the traces'
/// variable: they go next to the traces); `None` when none is set. One without a scheme
/// (`collector.example.com:4317`) gets `http://` when the signal's `..._INSECURE` (else
/// `OTEL_EXPORTER_OTLP_INSECURE`) is `true`, else `https://`: decided here, once, and the
/// exporter given the result, so that llmtel's TLS settings and the exporter agree (the
/// exporter would decide from its own reading of the variables).
#[cfg(any(test, feature = "otlp-grpc"))]
fn grpc_endpoint(
    code: Option<&str>,
    signal: Signal,
    get: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let endpoint = code
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .or_else(|| get(signal.endpoint_var()))
        .or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .or_else(|| match signal {
            Signal::Metrics => get(Signal::Traces.endpoint_var()),
            Signal::Traces => None,
        })?;
    Some(crate::tls::with_scheme(
        endpoint,
        crate::tls::insecure(signal.insecure_var(), &get),
    ))
}

/// Prints `warning` on stderr, prefixed `llmtel: `, once per process (a builder built twice
/// does not say it twice). For the values of the environment that llmtel ignores, as the
/// OpenTelemetry specification says of an unknown or malformed one: a warning, and the
/// default instead. Before any subscriber exists, so stderr.
pub(crate) fn warn_env_once(warning: &str) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if warned.iter().any(|w| w == warning) {
        return;
    }
    warned.push(warning.to_owned());
    stderr_line!("llmtel: {warning}");
}

/// [`warn_env_once`] for each of `warnings`.
pub(crate) fn warn_env_each(warnings: &[String]) {
    for w in warnings {
        warn_env_once(w);
    }
}

/// A variable's value as a warning quotes it: redacted (it can be anything), at most 100
/// characters.
pub(crate) fn quoted(value: &str) -> String {
    let v = crate::redact::redact(value);
    match v.char_indices().nth(100) {
        Some((i, _)) => format!("{:?}...", &v[..i]),
        None => format!("{v:?}"),
    }
}

/// The sampler of `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, read by `get`
/// (trimmed; empty is unset): the specification's names (case ignored), the ratio a number
/// from 0 to 1 (1 when the argument is unset); unset, the SDK's default, parent-based
/// always on.
///
/// A sampler llmtel does not build (an unknown name, `jaeger_remote`, `xray`) is ignored
/// (the default instead), and a ratio that is not one (`10%`) is 1, each with the warning
/// returned, saying what llmtel uses and what to set: the specification's rule for values
/// of the environment an SDK does not support (a compose file's shared environment must not
/// stop the app). The SDK would have said so only in a log compiled out of it.
fn sampler_from(get: impl Fn(&str) -> Option<String>) -> (Sampler, Option<String>) {
    const NAMES: &str = "always_on, always_off, traceidratio, parentbased_always_on, \
                         parentbased_always_off or parentbased_traceidratio";
    let default = || Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
    let Some(name) = get("OTEL_TRACES_SAMPLER") else {
        return (default(), None);
    };
    let ratio = || -> (f64, Option<String>) {
        let Some(arg) = get("OTEL_TRACES_SAMPLER_ARG") else {
            return (1.0, None);
        };
        match arg.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => (r, None),
            _ => (
                1.0,
                Some(format!(
                    "OTEL_TRACES_SAMPLER_ARG={} is not a sampling ratio, ignored: sampling with \
                     1 (every trace); write a number from 0 to 1 (0.1 keeps one trace in ten)",
                    quoted(&arg)
                )),
            ),
        }
    };
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "always_on" => (Sampler::AlwaysOn, None),
        "always_off" => (Sampler::AlwaysOff, None),
        "traceidratio" => {
            let (r, warning) = ratio();
            (Sampler::TraceIdRatioBased(r), warning)
        }
        "parentbased_always_on" => (default(), None),
        "parentbased_always_off" => (Sampler::ParentBased(Box::new(Sampler::AlwaysOff)), None),
        "parentbased_traceidratio" => {
            let (r, warning) = ratio();
            (
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r))),
                warning,
            )
        }
        "jaeger_remote" | "parentbased_jaeger_remote" | "xray" => (
            default(),
            Some(format!(
                "OTEL_TRACES_SAMPLER={} is not supported by llmtel, ignored: sampling with \
                 parentbased_always_on (the default); set it to {NAMES}, or build the sampler \
                 in code (Builder::with_sampler)",
                quoted(&name)
            )),
        ),
        _ => (
            default(),
            Some(format!(
                "OTEL_TRACES_SAMPLER={} is not a sampler, ignored: sampling with \
                 parentbased_always_on (the default); set it to {NAMES}",
                quoted(&name)
            )),
        ),
    }
}

/// Where `OTEL_TRACES_EXPORTER` sends the traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TracesExporters {
    /// Over OTLP (when an endpoint is set).
    otlp: bool,
    /// llmtel's console line per LLM call.
    console: bool,
}

/// `OTEL_TRACES_EXPORTER`, read by `get`: a comma-separated list of `otlp` and `console`
/// (case ignored), or `none`; unset, `otlp`.
///
/// An exporter llmtel does not have (`zipkin`, `logging`, ...) is ignored, and `none` listed
/// with another too; with nothing left, `otlp` (the default). The warning returned says what
/// was ignored and what llmtel uses (the specification's rule for values of the environment
/// an SDK does not support).
fn traces_exporters(get: impl Fn(&str) -> Option<String>) -> (TracesExporters, Option<String>) {
    let default = TracesExporters {
        otlp: true,
        console: false,
    };
    let Some(value) = get("OTEL_TRACES_EXPORTER") else {
        return (default, None);
    };
    let mut out = TracesExporters {
        otlp: false,
        console: false,
    };
    let mut none = false;
    let mut unknown = Vec::new();
    let mut names = 0_usize;
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        names += 1;
        match name.to_ascii_lowercase().as_str() {
            "otlp" => out.otlp = true,
            "console" => out.console = true,
            "none" => none = true,
            _ => unknown.push(quoted(name)),
        }
    }
    let mut ignored = unknown
        .iter()
        .map(|n| format!("llmtel has no {n} exporter"))
        .collect::<Vec<_>>();
    if names == 0 {
        // Only commas (`${A},${B}` with both empty): no exporter named, so the default,
        // never traces turned off without a word.
        ignored.push("it names no exporter".to_owned());
    }
    let none_alone = none && !out.otlp && !out.console;
    if none && !none_alone {
        ignored.push("none goes alone, not with other exporters".to_owned());
    }
    if ignored.is_empty() {
        return (out, None);
    }
    if !none_alone && !out.otlp && !out.console {
        out = default;
    }
    let using = match (none_alone, out.otlp, out.console) {
        (true, _, _) => "none",
        (_, true, true) => "otlp,console",
        (_, true, false) => "otlp",
        _ => "console",
    };
    let warning = format!(
        "OTEL_TRACES_EXPORTER={}: {}, ignored: using {using}; set it to otlp (export over \
         OTLP), console (a line per LLM call on stderr, no export), otlp,console, or none (no \
         export)",
        quoted(&value),
        ignored.join("; ")
    );
    (out, Some(warning))
}

/// The warnings for the compression variables of a signal (`signal_var`, then
/// `OTEL_EXPORTER_OTLP_COMPRESSION`) that name no compression llmtel sends: opentelemetry-otlp
/// skips such a value (to the next variable, else uncompressed) without a word, its own
/// warning compiled out with its `internal-logs` feature.
fn compression_warnings(signal_var: &str, get: impl Fn(&str) -> Option<String>) -> Vec<String> {
    first_valid(
        &[signal_var, "OTEL_EXPORTER_OTLP_COMPRESSION"],
        get,
        |v| match v.trim().to_ascii_lowercase().as_str() {
            "gzip" => Some("gzip"),
            "none" => Some("none"),
            _ => None,
        },
        |c| c.to_owned(),
        "none",
        "a compression llmtel sends",
        "set it to gzip or none",
    )
    .1
}

/// Whether `OTEL_METRICS_EXPORTER`, read by `get`, turns the OTLP metrics off (`none`), and
/// the warning for what llmtel ignores in it: an exporter other than `otlp` (`prometheus`,
/// `console`, a typo), which otherwise meant OTLP metrics without a word.
fn metrics_exporter_off(get: impl Fn(&str) -> Option<String>) -> (bool, Option<String>) {
    let Some(value) = get("OTEL_METRICS_EXPORTER") else {
        return (false, None);
    };
    let names: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.len() == 1 && names[0].eq_ignore_ascii_case("none") {
        return (true, None);
    }
    let ignored: Vec<String> = names
        .iter()
        .filter(|n| !n.eq_ignore_ascii_case("otlp"))
        .map(|n| quoted(n))
        .collect();
    if ignored.is_empty() && !names.is_empty() {
        return (false, None);
    }
    let warning = format!(
        "OTEL_METRICS_EXPORTER={}: llmtel has no {} metrics exporter, ignored: using otlp; \
         set it to otlp or none (a Prometheus endpoint is llmtel-metrics' \
         `PrometheusSink`, served on LLMTEL_METRICS_ADDR)",
        quoted(&value),
        if ignored.is_empty() {
            "such".to_owned()
        } else {
            ignored.join(" or ")
        }
    );
    (false, Some(warning))
}

/// The filter of llmtel's stderr log layer: the code's directives, else `RUST_LOG` (read by
/// `get`), else `warn`.
///
/// # Errors
/// [`InitError::Setting`] naming where the directives that do not parse came from.
fn log_filter(
    code: Option<&str>,
    get: impl Fn(&str) -> Option<String>,
) -> Result<EnvFilter, InitError> {
    let (directives, from) = match (code, get("RUST_LOG")) {
        (Some(d), _) => (d.to_owned(), "Builder::with_log_filter"),
        (None, Some(d)) => (d, "RUST_LOG"),
        (None, None) => return Ok(EnvFilter::new("warn")),
    };
    EnvFilter::builder().parse(&directives).map_err(|e| {
        InitError::Setting(format!(
            "invalid log filter in {from} ({:?}): {e}; write tracing directives such as \
             `warn` or `warn,my_app=debug`",
            crate::redact::redact(&directives)
        ))
    })
}

/// The resource llmtel exports with: `service.name` when given (else the SDK's, from
/// `OTEL_SERVICE_NAME`), `OTEL_RESOURCE_ATTRIBUTES` under `attributes`, and the GenAI
/// semantic conventions' schema URL. Its attributes go through llmtel's secrets rules (as a
/// span's): a credential-named attribute is dropped, a URL's password redacted.
pub(crate) fn genai_resource(
    service_name: Option<String>,
    attributes: impl IntoIterator<Item = KeyValue>,
) -> Resource {
    // The SDK's detectors without its `OTEL_RESOURCE_ATTRIBUTES` one, which does not
    // percent-decode the values (`service.namespace=my%20team` was exported as written):
    // read here as the specification says. Later attributes win a shared key.
    let detected = Resource::builder_empty()
        .with_detectors(&[
            Box::new(opentelemetry_sdk::resource::SdkProvidedResourceDetector),
            Box::new(opentelemetry_sdk::resource::TelemetryResourceDetector),
        ])
        .build();
    let mut all: Vec<KeyValue> = detected
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    all.extend(env_resource_attributes());
    // `OTEL_SERVICE_NAME` wins over a `service.name` in `OTEL_RESOURCE_ATTRIBUTES` (the
    // specification; the SDK's own detectors give the latter the last word).
    let service_name = service_name.or_else(|| {
        std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|s| !s.trim().is_empty())
    });
    if let Some(name) = service_name {
        all.push(KeyValue::new("service.name", name));
    }
    all.extend(attributes);
    crate::export::police_attributes(&mut all, &ContentCapture::disabled());
    Resource::builder_empty()
        .with_schema_url(all, llmtel_semconv::SCHEMA_URL)
        .build()
}

/// `OTEL_RESOURCE_ATTRIBUTES`, decoded; a value that does not decode discards the whole
/// variable, as the specification says, and says so on stderr.
fn env_resource_attributes() -> Vec<KeyValue> {
    let Ok(raw) = std::env::var("OTEL_RESOURCE_ATTRIBUTES") else {
        return Vec::new();
    };
    match parse_resource_attributes(&raw) {
        Ok(attributes) => attributes,
        Err(e) => {
            stderr_line!(
                "llmtel: OTEL_RESOURCE_ATTRIBUTES ignored: {e}; write it as key=value pairs \
                 separated by commas, with `,`, `=`, `%`, spaces and non-ASCII characters in \
                 values percent-encoded (my%20team)"
            );
            Vec::new()
        }
    }
}

/// Parses `key1=value1,key2=value2` (W3C Baggage without properties), percent-decoding the
/// values (OpenTelemetry resource SDK specification, "Specifying resource information via an
/// environment variable").
fn parse_resource_attributes(raw: &str) -> Result<Vec<KeyValue>, String> {
    let mut out = Vec::new();
    for entry in raw.split(',') {
        if entry.trim().is_empty() {
            continue;
        }
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| format!("`{}` has no `=`", entry.trim()))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("`{}` has no key", entry.trim()));
        }
        let value = percent_decode(value.trim())
            .ok_or_else(|| format!("the value of `{key}` is not validly percent-encoded UTF-8"))?;
        out.push(KeyValue::new(key.to_owned(), value));
    }
    Ok(out)
}

/// `%XX` sequences as bytes, the result as UTF-8; `None` for a bad sequence.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Ready-made settings for common LLM observability backends. Each URL gets the backend's
/// path, or what it lacks of it: one given with it (`http://localhost:6006/v1/traces`) is
/// used as it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Preset {
    /// Langfuse: OTLP/HTTP at `{host}/api/public/otel`, Basic auth from the key pair.
    Langfuse {
        /// e.g. `https://cloud.langfuse.com` or a self-hosted URL.
        host: String,
        /// `pk-lf-...`
        public_key: String,
        /// `sk-lf-...`
        secret_key: String,
    },
    /// LangSmith: OTLP/HTTP at `{endpoint}/otel`, `x-api-key` and the project header.
    LangSmith {
        /// e.g. `https://api.smith.langchain.com`.
        endpoint: String,
        /// LangSmith API key.
        api_key: String,
        /// Project name (`Langsmith-Project` header).
        project: String,
    },
    /// Arize Phoenix: OTLP/HTTP at `{endpoint}/v1/traces`, project as the resource attribute
    /// `openinference.project.name`, OpenInference aliases on.
    Phoenix {
        /// e.g. `http://127.0.0.1:6006`.
        endpoint: String,
        /// Phoenix project.
        project: String,
    },
}

impl fmt::Debug for Preset {
    // Keys never reach logs either: they print as `<redacted>`, URLs go through
    // `llmtel::redact` (a `?key=` or a password in the URL).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Preset::Langfuse { host, .. } => f
                .debug_struct("Langfuse")
                .field("host", &crate::redact::redact(host))
                .field("public_key", &REDACTED_FIELD)
                .field("secret_key", &REDACTED_FIELD)
                .finish(),
            Preset::LangSmith {
                endpoint, project, ..
            } => f
                .debug_struct("LangSmith")
                .field("endpoint", &crate::redact::redact(endpoint))
                .field("api_key", &REDACTED_FIELD)
                .field("project", project)
                .finish(),
            Preset::Phoenix { endpoint, project } => f
                .debug_struct("Phoenix")
                .field("endpoint", &crate::redact::redact(endpoint))
                .field("project", project)
                .finish(),
        }
    }
}

/// Prints `<redacted>` in place of a secret in `Debug` output.
struct Redacted;

const REDACTED_FIELD: Redacted = Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Preset {
    /// Langfuse from `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY` and `LANGFUSE_HOST`
    /// (default `https://cloud.langfuse.com`).
    ///
    /// # Errors
    /// [`InitError::MissingEnv`] naming the variable that is not set.
    pub fn langfuse_from_env() -> Result<Preset, InitError> {
        Ok(Preset::Langfuse {
            host: env("LANGFUSE_HOST").unwrap_or_else(|| "https://cloud.langfuse.com".into()),
            public_key: env("LANGFUSE_PUBLIC_KEY")
                .ok_or(InitError::MissingEnv("LANGFUSE_PUBLIC_KEY"))?,
            secret_key: env("LANGFUSE_SECRET_KEY")
                .ok_or(InitError::MissingEnv("LANGFUSE_SECRET_KEY"))?,
        })
    }

    /// LangSmith from `LANGSMITH_API_KEY`, `LANGSMITH_PROJECT` (default `default`) and
    /// `LANGSMITH_ENDPOINT` (default `https://api.smith.langchain.com`).
    ///
    /// # Errors
    /// [`InitError::MissingEnv`] when `LANGSMITH_API_KEY` is not set.
    pub fn langsmith_from_env() -> Result<Preset, InitError> {
        Ok(Preset::LangSmith {
            endpoint: env("LANGSMITH_ENDPOINT")
                .unwrap_or_else(|| "https://api.smith.langchain.com".into()),
            api_key: env("LANGSMITH_API_KEY").ok_or(InitError::MissingEnv("LANGSMITH_API_KEY"))?,
            project: env("LANGSMITH_PROJECT").unwrap_or_else(|| "default".into()),
        })
    }

    /// (endpoint, headers, resource attributes, openinference)
    fn settings(&self) -> (String, Vec<(String, String)>, Vec<KeyValue>, bool) {
        match self {
            Preset::Langfuse {
                host,
                public_key,
                secret_key,
            } => (
                with_path(host, "/api/public/otel/v1/traces"),
                vec![(
                    "Authorization".into(),
                    format!(
                        "Basic {}",
                        base64(format!("{public_key}:{secret_key}").as_bytes())
                    ),
                )],
                vec![],
                false,
            ),
            Preset::LangSmith {
                endpoint,
                api_key,
                project,
            } => (
                with_path(endpoint, "/otel/v1/traces"),
                vec![
                    ("x-api-key".into(), api_key.clone()),
                    ("Langsmith-Project".into(), project.clone()),
                ],
                vec![],
                false,
            ),
            Preset::Phoenix { endpoint, project } => (
                with_path(endpoint, "/v1/traces"),
                vec![],
                vec![KeyValue::new(
                    llmtel_semconv::openinference::PROJECT_NAME,
                    project.clone(),
                )],
                true,
            ),
        }
    }
}

/// `base` followed by what it lacks of `path`: the whole path after a bare host, the rest of
/// it after a URL that already ends with part of it (whole `/`-separated segments), nothing
/// after one that ends with all of it. A preset's URL given with the signal path
/// (`http://localhost:6006/v1/traces`) got it twice.
fn with_path(base: &str, path: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    // The longest start of `path` that ends at a segment's end and `base` ends with.
    let mut take = path.len();
    loop {
        let part = &path[..take];
        if base.ends_with(part) {
            return format!("{base}{}", &path[take..]);
        }
        match part.rfind('/') {
            Some(0) | None => return format!("{base}{path}"),
            Some(i) => take = i,
        }
    }
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn env(key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The OTLP exporter specification's client-certificate variables (mTLS).
const CLIENT_CERTIFICATE_VARS: [&str; 6] = [
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
];

/// [`InitError::Setting`] when a client-certificate variable is set: llmtel does not send
/// client certificates, and a collector that requires them refuses every handshake (the
/// spans were only counted as failed).
fn refuse_client_certificates(var: impl Fn(&str) -> Option<String>) -> Result<(), InitError> {
    match CLIENT_CERTIFICATE_VARS.iter().find(|v| var(v).is_some()) {
        Some(v) => Err(InitError::Setting(format!(
            "{v} is set, but llmtel does not send client certificates (mTLS): export to a local \
             collector that holds the certificate (llmtel collector, the OpenTelemetry \
             Collector) or unset it"
        ))),
        None => Ok(()),
    }
}

/// Why llmtel could not be set up. Nothing is installed when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A protocol llmtel does not speak. No longer returned by `init()` and `builder()`: an
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (or a signal's `..._PROTOCOL`) that names one is warned
    /// about on stderr and ignored, as the OpenTelemetry specification says (kept so that
    /// existing matches compile).
    #[error(
        "unsupported OTLP protocol `{0}`: use `grpc` or `http/protobuf` (OTEL_EXPORTER_OTLP_PROTOCOL, or a signal's OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_METRICS_PROTOCOL)"
    )]
    Protocol(String),
    /// The protocol's cargo feature is off.
    #[error("OTLP protocol {0:?} needs llmtel's cargo feature `{1}`")]
    FeatureOff(Protocol, &'static str),
    /// The endpoint is `https://` but this build or protocol cannot do TLS. Not returned
    /// since TLS is part of the OTLP features (kept so that existing matches compile).
    #[error("{0}")]
    Tls(&'static str),
    /// The CA certificate file for OTLP over TLS cannot be used (`Builder::with_ca_file`,
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`, `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`).
    #[error("{0}")]
    Certificate(String),
    /// A variable a preset needs is not set.
    #[error("environment variable {0} is not set; set it or configure the preset in code")]
    MissingEnv(&'static str),
    /// The exporter or its thread could not start (e.g. an invalid endpoint URL).
    #[error("{0}. Check OTEL_EXPORTER_OTLP_ENDPOINT (a URL such as http://127.0.0.1:4318)")]
    Export(#[from] QueueError),
    /// The OTLP metrics exporter or its thread could not start (e.g. an invalid endpoint
    /// URL). The message is redacted (an endpoint's credentials are not shown).
    #[error(
        "llmtel could not build the metrics exporter: {0}. Check the endpoint \
         (Builder::with_endpoint, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or \
         OTEL_EXPORTER_OTLP_ENDPOINT: a URL such as http://127.0.0.1:4318)"
    )]
    MetricsExport(String),
    /// A global subscriber is already installed.
    #[error(
        "a global tracing subscriber is already set; use llmtel::builder().build() and add the layer to your own stack"
    )]
    AlreadyInstalled,
    /// A directive of the trace filter does not parse.
    #[error("invalid trace filter: {0}")]
    Filter(String),
    /// A setting does not parse or is not supported: an export header name or value set in
    /// code, a client-certificate variable, the log filter (`RUST_LOG`),
    /// [`QueueConfig::try_from_env`]. The message says which and what to write (never a
    /// header's value). The OpenTelemetry variables whose values llmtel does not support
    /// (`OTEL_EXPORTER_OTLP_*PROTOCOL`, `OTEL_EXPORTER_OTLP_*TIMEOUT`, `OTEL_BSP_*`,
    /// `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`, `OTEL_TRACES_EXPORTER`) are warned
    /// about once on stderr and ignored instead, as the specification says: the warning
    /// names the variable, its value, what llmtel uses and what to set.
    #[error("{0}")]
    Setting(String),
}

/// Configures llmtel. Settings made in code win over the environment.
///
/// ```no_run
/// let _guard = llmtel::builder()
///     .with_service_name("support-bot")
///     .with_endpoint("http://127.0.0.1:4317")
///     .with_protocol(llmtel::Protocol::Grpc)
///     .with_content_capture(llmtel::ContentCapture::enabled().with_max_chars(1000))
///     .install()
///     .expect("llmtel");
/// ```
pub struct Builder {
    service_name: Option<String>,
    endpoint: Option<String>,
    protocol: Option<Protocol>,
    headers: Vec<(String, String)>,
    export_timeout: Option<Duration>,
    resource: Vec<KeyValue>,
    sampler: Option<Sampler>,
    preset: Option<Preset>,
    console: Option<bool>,
    content: Option<ContentCapture>,
    catalog: Option<Arc<Catalog>>,
    price_sources: Option<llmtel_pricing::PriceSources>,
    openinference: Option<bool>,
    location: bool,
    threads: bool,
    queue: Option<QueueConfig>,
    summaries: Option<TraceSummaries>,
    trace_filter: String,
    log_filter: Option<String>,
    disabled: Option<bool>,
    sinks: Vec<Arc<dyn CallSink>>,
    on_shutdown: Vec<ShutdownHook>,
    metrics: Option<bool>,
    ca_file: Option<PathBuf>,
}

type ShutdownHook = Box<dyn FnOnce() + Send + Sync>;

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("service_name", &self.service_name)
            .field(
                "endpoint",
                &self.endpoint.as_deref().map(crate::redact::redact),
            )
            .field("protocol", &self.protocol)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| (k, REDACTED_FIELD))
                    .collect::<Vec<_>>(),
            )
            .field("preset", &self.preset)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            service_name: None,
            endpoint: None,
            protocol: None,
            headers: Vec::new(),
            export_timeout: None,
            resource: Vec::new(),
            sampler: None,
            preset: None,
            console: None,
            content: None,
            catalog: None,
            price_sources: None,
            openinference: None,
            location: false,
            threads: false,
            queue: None,
            summaries: Some(TraceSummaries::new(1024)),
            trace_filter: "info".into(),
            log_filter: None,
            disabled: None,
            sinks: Vec::new(),
            on_shutdown: Vec::new(),
            metrics: None,
            ca_file: None,
        }
    }
}

/// A new [`Builder`].
pub fn builder() -> Builder {
    Builder::default()
}

/// Installs llmtel with settings from the environment (see [`Builder`]) as the global
/// subscriber, and returns the guard that flushes on drop.
///
/// With no OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`), nothing goes on the network: each LLM call is
/// printed as one console line and summarised per trace.
///
/// # Errors
/// [`InitError`]: an endpoint or CA file that cannot be used, a protocol whose cargo feature
/// is off, or a global subscriber already set.
pub fn init() -> Result<Guard, InitError> {
    builder().install()
}

impl Builder {
    /// `service.name` (else `OTEL_SERVICE_NAME`, else the SDK default).
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }
    /// OTLP endpoint (else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`).
    /// For HTTP it is a base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` is: `/v1/traces` is appended
    /// unless it ends with it (and the metrics go to `/v1/metrics` next to it).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// A PEM file of CA certificates to trust for an `https://` OTLP endpoint (traces and
    /// metrics), on top of the platform's roots. Else `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`
    /// (traces; `OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE` for metrics), else
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`. Both OTLP/HTTP and OTLP/gRPC use it.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Transport of the traces and the metrics (else `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` for
    /// the traces and `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` for the metrics, else
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`; a variable is read only for what
    /// is exported, and one naming a protocol llmtel does not speak, `http/json`, is warned
    /// about once on stderr and ignored). A gRPC endpoint without a scheme
    /// (`collector:4317`) is reached over TLS unless the signal's
    /// `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_INSECURE`, else `OTEL_EXPORTER_OTLP_INSECURE`, is
    /// `true`.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }
    /// How long one export request may take before it is abandoned (and retried, or its
    /// spans counted as failed). Else `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` (metrics:
    /// `OTEL_EXPORTER_OTLP_METRICS_TIMEOUT`), else `OTEL_EXPORTER_OTLP_TIMEOUT`, in
    /// milliseconds, else 10 s (a variable that is not whole milliseconds above 0 is warned
    /// about once on stderr and ignored). A collector that takes a request and never answers
    /// holds an export only this long, over HTTP as over gRPC.
    pub fn with_export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = Some(timeout);
        self
    }

    /// Adds a header to every export. A header set in code (here or by a preset) wins over
    /// one of the same name (any case) in `OTEL_EXPORTER_OTLP_HEADERS`: it is put on each
    /// request last.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }
    /// Adds a resource attribute (merged with `OTEL_RESOURCE_ATTRIBUTES`; code wins).
    pub fn with_resource_attribute(mut self, kv: KeyValue) -> Self {
        self.resource.push(kv);
        self
    }
    /// Sampler. Else `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`,
    /// `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio`) with
    /// `OTEL_TRACES_SAMPLER_ARG` (a ratio from 0 to 1, default 1), else parent-based always
    /// on. Another sampler name (`jaeger_remote`, `xray`, ...) is ignored (parent-based always
    /// on), and a ratio that is not one (`10%`) is 1, each said once on stderr with what to
    /// set (the OpenTelemetry specification's rule for the environment). Set here, the
    /// variables are not read.
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = Some(sampler);
        self
    }
    /// A backend preset; explicit endpoint and headers set in code still win.
    pub fn with_preset(mut self, preset: Preset) -> Self {
        self.preset = Some(preset);
        self
    }
    /// Console line per LLM call on stderr (default: on when no traces are exported over OTLP
    /// for want of an endpoint or with `OTEL_SDK_DISABLED=true`, or with
    /// `OTEL_TRACES_EXPORTER=console`; off with `OTEL_TRACES_EXPORTER=none`).
    pub fn with_console(mut self, on: bool) -> Self {
        self.console = Some(on);
        self
    }
    /// Content capture policy (default: off). Installed process-wide.
    pub fn with_content_capture(mut self, policy: ContentCapture) -> Self {
        self.content = Some(policy);
        self
    }
    /// Price catalog (default: the built-in one, with the price sources of
    /// [`Builder::with_price_sources`] layered over it).
    pub fn with_catalog(mut self, catalog: impl Into<Arc<Catalog>>) -> Self {
        self.catalog = Some(catalog.into());
        self
    }

    /// Price files and URLs layered over the built-in catalog at `build()` (default:
    /// [`llmtel_pricing::PriceSources::from_env`], i.e. `LLMTEL_PRICES` and
    /// `LLMTEL_PRICES_URL`): fresh prices without a new llmtel release. A source that cannot
    /// be loaded leaves the built-in prices, is counted
    /// ([`llmtel_pricing::price_source_failures`]) and printed once to stderr with what to
    /// do; what a source that loaded left out (an alias that is another model's id) is
    /// counted ([`llmtel_pricing::price_source_warnings`]) and printed too. Ignored when
    /// [`Builder::with_catalog`] is set.
    pub fn with_price_sources(mut self, sources: llmtel_pricing::PriceSources) -> Self {
        self.price_sources = Some(sources);
        self
    }
    /// OpenInference aliases for Phoenix (default: on with the Phoenix preset, else off).
    pub fn with_openinference(mut self, on: bool) -> Self {
        self.openinference = Some(on);
        self
    }
    /// tracing-opentelemetry's `code.*` attributes (default off: they double the attribute count).
    pub fn with_location(mut self, on: bool) -> Self {
        self.location = on;
        self
    }
    /// tracing-opentelemetry's `thread.*` attributes (default off).
    pub fn with_threads(mut self, on: bool) -> Self {
        self.threads = on;
        self
    }
    /// Export queue settings (default: [`QueueConfig::from_env`]; a variable set to a value
    /// that is not a setting is warned about once on stderr and its default used).
    pub fn with_queue(mut self, config: QueueConfig) -> Self {
        self.queue = Some(config);
        self
    }
    /// Keeps the summaries of the last `n` traces that made an LLM call (default 1024); `0`
    /// turns trace summaries off. Exporting, llmtel's layer still captures each LLM span on
    /// the request thread for the dimensions it inherits from its ancestors (its exported
    /// span carries them); not exporting, with no sink and no console, nothing is captured.
    pub fn with_summaries_capacity(mut self, n: usize) -> Self {
        self.summaries = (n > 0).then(|| TraceSummaries::new(n));
        self
    }
    /// Which spans are exported, as `EnvFilter` directives (default `info`). A plain level
    /// (`info`, `debug`, ...) is applied as a `LevelFilter`, which passes the same spans at
    /// less cost per span.
    pub fn with_trace_filter(mut self, directives: impl Into<String>) -> Self {
        self.trace_filter = directives.into();
        self
    }
    /// Log output to stderr with these `EnvFilter` directives (default: `RUST_LOG`, else
    /// `warn`), installed by [`Builder::install`] only. Directives that do not parse fail
    /// the install with [`InitError::Setting`], naming where they came from.
    pub fn with_log_filter(mut self, directives: impl Into<String>) -> Self {
        self.log_filter = Some(directives.into());
        self
    }
    /// Turns OTLP export off (`true`), or leaves it to the endpoint (`false`), whatever the
    /// environment says. Else `OTEL_SDK_DISABLED=true` turns it off, and
    /// `OTEL_TRACES_EXPORTER` says where the traces go: `otlp` (the default), `console`
    /// (llmtel's line per LLM call, no traces over OTLP), `otlp,console`, or `none` (no traces
    /// over OTLP; the metrics follow `OTEL_METRICS_EXPORTER`). Another exporter (`zipkin`,
    /// `logging`, ...) is ignored, said once on stderr (`otlp` when nothing else is listed).
    pub fn with_export_disabled(mut self, disabled: bool) -> Self {
        self.disabled = Some(disabled);
        self
    }
    /// Adds a sink for every completed LLM call.
    ///
    /// While llmtel exports, the sink gets the call of each exported span on the export
    /// thread, priced once there for the span and every sink (off the request path); the
    /// calls of spans that are not exported (not sampled, outside `with_trace_filter`) from
    /// the layer as the span closes, and those of spans the export queue drops as it drops
    /// them. Each call reaches the sink once, up to the export delay after it ended
    /// ([`Guard::flush`] hands over every call ended before it). Without export, every call
    /// reaches it from the layer as its span closes. A sink that must see each call while
    /// the request runs belongs on [`crate::LlmLayer::with_sink`].
    pub fn with_sink(mut self, sink: Arc<dyn CallSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Runs `f` when the guard drops, after the traces and llmtel's metrics are flushed: for
    /// example the shutdown of a `MeterProvider` of your own.
    pub fn with_shutdown_hook(mut self, f: impl FnOnce() + Send + Sync + 'static) -> Self {
        self.on_shutdown.push(Box::new(f));
        self
    }

    /// Exports the OpenTelemetry GenAI client metrics ([`crate::metrics::OtelMetricsSink`])
    /// over OTLP next to the traces: same endpoint (`/v1/metrics` instead of `/v1/traces`
    /// over HTTP; else `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`), headers and resource, the
    /// code's protocol else `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`, else
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else (sent to the traces' endpoint)
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, every
    /// `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s) and at shutdown. Default: on whenever an
    /// endpoint is set, the traces' or the metrics' own (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`
    /// alone exports the metrics only, as does `OTEL_TRACES_EXPORTER=none`), unless
    /// `OTEL_METRICS_EXPORTER=none` or a backend preset is used (Langfuse, LangSmith and
    /// Phoenix take no OTLP metrics). Needs the cargo feature `metrics` (default).
    pub fn with_metrics(mut self, on: bool) -> Self {
        self.metrics = Some(on);
        self
    }

    /// The protocol of `signal`: the code's, a preset's (OTLP/HTTP), else the signal's
    /// `..._PROTOCOL` variable, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf` (a
    /// variable that names no protocol llmtel speaks is warned about and ignored).
    fn resolve_protocol(&self, signal: Signal, get: impl Fn(&str) -> Option<String>) -> Protocol {
        if let Some(p) = self.protocol {
            return p;
        }
        if self.preset.is_some() {
            return Protocol::HttpProtobuf;
        }
        Protocol::warned(signal.protocol_var(), get)
    }

    /// The protocol of the metrics: [`Builder::resolve_protocol`], except when they go to the
    /// traces' endpoint (the code's, or the one variable of the traces' and the generic
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` that is set, with no `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`)
    /// and neither `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` nor `OTEL_EXPORTER_OTLP_PROTOCOL` is
    /// set: then `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, when it names one. An endpoint speaks
    /// one protocol: with only `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc` set, the metrics went
    /// over OTLP/HTTP to the gRPC port (`POST :4317/v1/metrics`), every export failing. Only
    /// while the traces are exported (`traces_exported`): with `OTEL_TRACES_EXPORTER=none`
    /// no traces use that endpoint, and the metrics keep the specification's default.
    #[cfg_attr(
        not(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc"))),
        allow(dead_code)
    )]
    fn metrics_protocol(
        &self,
        traces_exported: bool,
        get: impl Fn(&str) -> Option<String>,
    ) -> Protocol {
        let shares_the_traces_endpoint = traces_exported
            && (self.endpoint.is_some()
                || (get(Signal::Metrics.endpoint_var()).is_none()
                    && (get(Signal::Traces.endpoint_var()).is_none()
                        || get("OTEL_EXPORTER_OTLP_ENDPOINT").is_none())));
        if self.protocol.is_none()
            && self.preset.is_none()
            && shares_the_traces_endpoint
            && get(Signal::Metrics.protocol_var())
                .and_then(|p| Protocol::parse(&p).ok())
                .is_none()
            && get("OTEL_EXPORTER_OTLP_PROTOCOL")
                .and_then(|p| Protocol::parse(&p).ok())
                .is_none()
        {
            // (A variable whose value does not parse is ignored, as if unset, and warned
            // about where it is read.)
            if let Some(p) =
                get(Signal::Traces.protocol_var()).and_then(|p| Protocol::parse(&p).ok())
            {
                return p;
            }
        }
        self.resolve_protocol(Signal::Metrics, get)
    }

    /// Builds llmtel's layers and the guard without installing anything, for apps that
    /// compose their own subscriber. Add the returned layer to a `Registry`-based stack.
    ///
    /// # Errors
    /// [`InitError`] on an endpoint or CA file that cannot be used, or a protocol whose cargo
    /// feature is off.
    pub fn build<S>(self) -> Result<(Box<dyn Layer<S> + Send + Sync>, Guard), InitError>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let disabled = self.disabled.unwrap_or_else(|| {
            env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        });
        let (preset_endpoint, preset_headers, preset_resource, preset_oi) = match &self.preset {
            Some(p) => {
                let (e, h, r, oi) = p.settings();
                (Some(e), h, r, oi)
            }
            None => (None, vec![], vec![], false),
        };
        let endpoint = self.endpoint.clone().or(preset_endpoint);
        let env_endpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
        // `OTEL_TRACES_EXPORTER`, unless the code turned export on or off.
        let exporters = if disabled || self.disabled.is_some() {
            TracesExporters {
                otlp: true,
                console: false,
            }
        } else {
            let (exporters, warning) = traces_exporters(env);
            if let Some(w) = warning {
                warn_env_once(&w);
            }
            exporters
        };
        let exporting =
            !disabled && exporters.otlp && (endpoint.is_some() || env_endpoint.is_some());
        // The metrics go over OTLP whether the traces do or not (`OTEL_TRACES_EXPORTER=none`,
        // or only `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` set).
        let metrics_exporting = !disabled
            && (endpoint.is_some()
                || env_endpoint.is_some()
                || env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_some())
            && self.metrics.unwrap_or_else(|| {
                self.preset.is_none() && {
                    let (off, warning) = metrics_exporter_off(env);
                    if let Some(w) = warning {
                        warn_env_once(&w);
                    }
                    !off
                }
            });
        if exporting || metrics_exporting {
            refuse_client_certificates(env)?;
        }
        // The protocol is read (and a bad one refused) only for what is exported.
        let traces = if exporting {
            let protocol = self.resolve_protocol(Signal::Traces, env);
            // Over gRPC the endpoint is given to the exporter with its scheme (decided here
            // from the traces' `..._INSECURE`), so that it and the TLS settings agree; over
            // HTTP the exporter reads the variables itself (a signal's endpoint is used as
            // it is, the generic one gets `/v1/traces`).
            let traces_endpoint = match protocol {
                #[cfg(feature = "otlp-grpc")]
                Protocol::Grpc => grpc_endpoint(endpoint.as_deref(), Signal::Traces, env),
                _ => endpoint.clone(),
            };
            // The CA to trust over TLS, read now so that a bad file is a clear error at init.
            let tls = OtlpTls::resolve(
                traces_endpoint.as_deref().or(env_endpoint.as_deref()),
                self.ca_file
                    .as_deref()
                    .map(|p| (p, "Builder::with_ca_file")),
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                ],
                CA_HINT,
            )
            .map_err(InitError::Certificate)?;
            Some((protocol, traces_endpoint, tls))
        } else {
            None
        };

        if let Some(policy) = self.content.clone() {
            content::set_content_capture(policy);
        }
        let catalog = self.catalog.clone().unwrap_or_else(|| {
            let sources = self
                .price_sources
                .clone()
                .unwrap_or_else(llmtel_pricing::PriceSources::from_env);
            if sources.is_empty() {
                return Arc::new(Catalog::builtin().clone());
            }
            // On a thread of its own: a URL fetch is blocking I/O, and `build()` is often
            // called inside an async runtime (`#[tokio::main]`).
            let layered = match std::thread::Builder::new()
                .name("llmtel-prices".into())
                .spawn(move || sources.load())
                .map(|h| h.join())
            {
                Ok(Ok(layered)) => layered,
                _ => {
                    stderr_line!(
                        "llmtel: the price sources could not be loaded (no thread); pricing \
                         with the built-in prices"
                    );
                    return Arc::new(Catalog::builtin().clone());
                }
            };
            for failure in &layered.failures {
                // Before any subscriber exists: stderr. The message names no URL token.
                stderr_line!(
                    "llmtel: {}; pricing with the built-in prices",
                    crate::redact::redact(&failure.to_string())
                );
            }
            for warning in &layered.warnings {
                // What a source that loaded left out (an alias naming another model).
                stderr_line!("llmtel: {}", crate::redact::redact(&warning.to_string()));
            }
            Arc::new(layered.catalog)
        });
        let openinference = self.openinference.unwrap_or(preset_oi);

        // A preset's, then the code's: a later name (any case) replaces an earlier one.
        let headers = crate::headers::CodeHeaders::new(
            preset_headers
                .into_iter()
                .chain(self.headers.iter().cloned()),
        )?;
        let resource = genai_resource(
            self.service_name.clone(),
            preset_resource
                .into_iter()
                .chain(self.resource.iter().cloned()),
        );

        // In-process LLM calls: only when something consumes them.
        let mut sinks = self.sinks.clone();
        #[cfg(not(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc"))))]
        let metrics_export = None::<()>;
        #[cfg(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc")))]
        let mut metrics_export = None;
        #[cfg(not(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc"))))]
        let _ = metrics_exporting;
        #[cfg(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc")))]
        if metrics_exporting {
            let m = spawn_metrics(
                self.metrics_protocol(exporting, env),
                endpoint.clone(),
                headers.clone(),
                resource.clone(),
                self.ca_file.as_deref(),
                None,
                crate::headers::export_timeout(
                    self.export_timeout,
                    &[
                        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
                        "OTEL_EXPORTER_OTLP_TIMEOUT",
                    ],
                ),
            )?;
            sinks.push(Arc::new(crate::metrics::OtelMetricsSink::from_provider(
                &m.provider,
            )));
            metrics_export = Some(m);
        }
        // The console line: asked for (`OTEL_TRACES_EXPORTER=console`), else when the traces
        // would go over OTLP but are not exported (no endpoint, `OTEL_SDK_DISABLED`): not
        // with `OTEL_TRACES_EXPORTER=none`, which asks for no traces anywhere.
        if self
            .console
            .unwrap_or(exporters.console || (exporters.otlp && !exporting))
        {
            sinks.push(Arc::new(ConsoleSink));
        }
        // Exporting, the sinks run on the export stage for the calls it exports (priced once
        // there, off the request path) and in the layer for the others (not sampled, filtered
        // out of the traces); the queue hands them the spans it drops.
        // Exporting, the layer is there even with no summaries and no sink: an LLM span's
        // exported attributes carry the dimensions it inherits from its ancestors (`user.id`
        // on the request span), which only the request thread sees.
        // What the export threads warn about (an unknown model priced there) goes to the
        // subscriber the layer is installed in.
        let warn_to = crate::enrich::WarnTo::default();
        let llm = (exporting || self.summaries.is_some() || !sinks.is_empty()).then(|| {
            let mut l = LlmLayer::new()
                .with_catalog(catalog.clone())
                .with_health_counting(!exporting)
                .with_sinks_on_export_stage(exporting)
                .with_warnings_to(warn_to.clone());
            for s in &sinks {
                l = l.with_sink(s.clone());
            }
            l
        });

        let mut provider = None;
        let mut shutdown_timeout = QueueConfig::default().flush_timeout;
        let otel_layer = if let Some((protocol, traces_endpoint, traces_tls)) = traces {
            let queue_cfg = match self.queue.clone() {
                Some(q) => q,
                None => QueueConfig::warned_from_env(),
            };
            shutdown_timeout = queue_cfg.flush_timeout;
            let stage = ExporterStage {
                catalog: catalog.clone(),
                openinference,
                sinks: sinks
                    .iter()
                    .filter(|s| !s.on_request_thread())
                    .cloned()
                    .collect(),
            };
            let overflow = stage.overflow();
            let timeout = crate::headers::export_timeout(
                self.export_timeout,
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                    "OTEL_EXPORTER_OTLP_TIMEOUT",
                ],
            );
            // The code's sampler, else the environment's (a bad one is said on stderr, and
            // the default used).
            let sampler = match self.sampler.clone() {
                Some(s) => s,
                None => {
                    let (sampler, warning) = sampler_from(env);
                    if let Some(w) = warning {
                        warn_env_once(&w);
                    }
                    sampler
                }
            };
            let filter = trace_filter::<S>(&self.trace_filter)?;
            let mut queue = spawn_exporter(
                protocol,
                traces_endpoint,
                headers,
                timeout,
                queue_cfg,
                stage,
                traces_tls,
                warn_to.clone(),
            )?;
            if let Some(overflow) = overflow {
                queue = queue.with_overflow(overflow);
            }
            let p = SdkTracerProvider::builder()
                .with_span_processor(queue)
                .with_resource(resource)
                .with_sampler(sampler)
                .build();
            let tracer = p.tracer("llmtel");
            provider = Some(p);
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_location(self.location)
                    .with_threads(self.threads)
                    .with_tracked_inactivity(false)
                    .with_filter(filter),
            )
        } else {
            None
        };

        // Inner layers run first: llmtel builds the call and adds it to its trace's summary
        // (kept by its own layer, on the spans it looks up anyway), then the OpenTelemetry
        // layer ends the span (its cost is added on the export thread).
        // (No `Option<Layer>` here: a `None` layer reports `LevelFilter::OFF` as its hint.)
        let llm = llm.map(|l| match &self.summaries {
            Some(s) => l.with_summaries(s.clone()),
            None => l,
        });
        let layer: Box<dyn Layer<S> + Send + Sync> = match (llm, otel_layer) {
            (Some(l), Some(o)) => Box::new(l.and_then(o)),
            (Some(l), None) => Box::new(l),
            (None, Some(o)) => Box::new(o),
            (None, None) => Box::new(tracing_subscriber::layer::Identity::new()),
        };
        let guard = Guard {
            provider,
            shutdown_timeout,
            summaries: self.summaries.unwrap_or_else(|| TraceSummaries::new(1)),
            exporting,
            on_shutdown: self.on_shutdown,
            #[cfg(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc")))]
            metrics: metrics_export,
        };
        #[cfg(not(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc"))))]
        let _ = metrics_export;
        Ok((layer, guard))
    }

    /// Builds and installs llmtel as the global default subscriber (with a stderr log layer
    /// filtered by `RUST_LOG`, default `warn`), and returns the guard.
    ///
    /// # Errors
    /// [`InitError`]; [`InitError::AlreadyInstalled`] when a global subscriber exists.
    pub fn install(self) -> Result<Guard, InitError> {
        let log_filter = log_filter(self.log_filter.as_deref(), env)?;
        let (layer, guard) = self.build()?;
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(log_filter);
        tracing_subscriber::registry()
            .with(layer)
            .with(fmt)
            .try_init()
            .map_err(|_| InitError::AlreadyInstalled)?;
        if let Some(p) = &guard.provider {
            opentelemetry::global::set_tracer_provider(p.clone());
        }
        Ok(guard)
    }
}

/// The filter of the spans llmtel exports. A plain level (the default `info`) is a
/// [`LevelFilter`](tracing_subscriber::filter::LevelFilter): the same spans an `EnvFilter` of
/// that one directive passes, decided from each callsite's level once, where an `EnvFilter`
/// also looks every span up in its own locked map as it is entered, exited and closed (~350
/// instructions a call and its request span, BENCHMARKS.md). Any other directives are an
/// `EnvFilter`.
fn trace_filter<S>(
    directives: &str,
) -> Result<Box<dyn tracing_subscriber::layer::Filter<S> + Send + Sync>, InitError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use tracing_subscriber::filter::LevelFilter;
    let d = directives.trim();
    let level = [
        ("trace", LevelFilter::TRACE),
        ("debug", LevelFilter::DEBUG),
        ("info", LevelFilter::INFO),
        ("warn", LevelFilter::WARN),
        ("error", LevelFilter::ERROR),
        ("off", LevelFilter::OFF),
    ]
    .into_iter()
    .find_map(|(name, level)| d.eq_ignore_ascii_case(name).then_some(level));
    if let Some(level) = level {
        return Ok(Box::new(level));
    }
    let filter = EnvFilter::builder()
        .parse(directives)
        .map_err(|e| InitError::Filter(e.to_string()))?;
    Ok(Box::new(filter))
}

/// What llmtel's exporter stage needs to price spans on the export thread.
// Built (and its catalog checked) whatever the features; with no OTLP transport compiled in
// there is no exporter for it to wrap.
#[cfg_attr(
    not(any(feature = "otlp-grpc", feature = "otlp-http")),
    allow(dead_code)
)]
struct ExporterStage {
    catalog: Arc<Catalog>,
    openinference: bool,
    /// The sinks of the calls of exported spans, run here (priced once, off the request path).
    sinks: Vec<Arc<dyn CallSink>>,
}

impl ExporterStage {
    /// llmtel's export stage in front of `inner`: the catalog, the OpenInference aliases and
    /// the sinks of the calls of exported spans.
    fn stage<E: opentelemetry_sdk::trace::SpanExporter>(
        &self,
        inner: E,
    ) -> crate::export::GenAiExporter<E> {
        let mut stage = crate::export::GenAiExporter::new(inner)
            .with_catalog(self.catalog.clone())
            .with_openinference(self.openinference);
        for sink in &self.sinks {
            stage = stage.with_sink(sink.clone());
        }
        stage
    }

    /// What the export queue does with a span it cannot take: its call still reaches the
    /// sinks (priced on the thread that ended it, as the layer would have); `None` without
    /// sinks.
    fn overflow(&self) -> Option<crate::export::Overflow> {
        if self.sinks.is_empty() {
            return None;
        }
        let stage = self
            .stage(crate::export::NoExport)
            .with_health_counting(false);
        Some(Arc::new(move |mut span| {
            stage.process_for_sinks(&mut span, &content::content_capture());
        }))
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_exporter(
    protocol: Protocol,
    endpoint: Option<String>,
    headers: crate::headers::CodeHeaders,
    timeout: Duration,
    cfg: QueueConfig,
    stage: ExporterStage,
    tls: OtlpTls,
    warn_to: crate::enrich::WarnTo,
) -> Result<ExportQueue, InitError> {
    // Each is used by the arm of a transport feature; with both off, neither arm uses them.
    let _ = (&endpoint, &headers, &timeout, &cfg, &stage, &tls, &warn_to);
    warn_env_each(&compression_warnings(
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        env,
    ));
    match protocol {
        Protocol::Grpc => {
            #[cfg(feature = "otlp-grpc")]
            {
                use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
                let tls_config = tls.tonic().map_err(InitError::Certificate)?;
                return Ok(ExportQueue::spawn_warning_to(
                    move || {
                        let mut b = opentelemetry_otlp::SpanExporter::builder().with_tonic();
                        if let Some(e) = endpoint {
                            b = b.with_endpoint(e);
                        }
                        if let Some(t) = tls_config {
                            b = b.with_tls_config(t);
                        }
                        if !headers.is_empty() {
                            b = b.with_interceptor(headers.interceptor());
                        }
                        b.with_timeout(timeout).build().map(|e| stage.stage(e))
                    },
                    cfg,
                    warn_to,
                )?);
            }
            #[allow(unreachable_code)]
            Err(InitError::FeatureOff(Protocol::Grpc, "otlp-grpc"))
        }
        Protocol::HttpProtobuf => {
            #[cfg(feature = "otlp-http")]
            {
                use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
                let client = http_client(&tls, headers, timeout)?;
                return Ok(ExportQueue::spawn_warning_to(
                    move || {
                        let mut b = opentelemetry_otlp::SpanExporter::builder()
                            .with_http()
                            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                            .with_http_client(client);
                        if let Some(e) = endpoint {
                            b = b.with_endpoint(http_traces_url(&e));
                        }
                        b.with_timeout(timeout).build().map(|e| stage.stage(e))
                    },
                    cfg,
                    warn_to,
                )?);
            }
            #[allow(unreachable_code)]
            Err(InitError::FeatureOff(Protocol::HttpProtobuf, "otlp-http"))
        }
    }
}

/// The meter provider exporting llmtel's metrics next to the traces: same protocol, endpoint,
/// headers and resource.
///
/// The metrics' export interval: the code's, unless zero, else `OTEL_METRIC_EXPORT_INTERVAL`
/// (whole milliseconds above 0), else 60 s; and the warning for a value ignored. Not left to
/// the SDK, which reads the variable when given no interval and took `0` as an interval of
/// zero (its thread exported in a busy loop) and a malformed value as 60 s without a word.
#[cfg(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc")))]
fn metric_export_interval(
    code: Option<Duration>,
    get: impl Fn(&str) -> Option<String>,
) -> (Duration, Vec<String>) {
    if let Some(i) = code.filter(|i| !i.is_zero()) {
        return (i, Vec::new());
    }
    first_valid(
        &["OTEL_METRIC_EXPORT_INTERVAL"],
        get,
        crate::headers::parse_positive_millis,
        |d| format!("{} ms", d.as_millis()),
        Duration::from_secs(60),
        "an export interval",
        "write whole milliseconds above 0 (60000 for a minute)",
    )
}

/// Also what [`crate::metrics::otlp_meter_provider`] builds: one OTLP metrics pipeline for
/// `init()` and for apps that bring their own.
#[cfg(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc")))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn_metrics(
    protocol: Protocol,
    endpoint: Option<String>,
    headers: crate::headers::CodeHeaders,
    resource: Resource,
    ca_file: Option<&std::path::Path>,
    interval: Option<Duration>,
    timeout: Duration,
) -> Result<crate::metrics::export::MetricsExport, InitError> {
    use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
    // The exporter's errors may quote the endpoint, credentials included.
    let exporter_error = |e: String| InitError::MetricsExport(crate::redact::redact_string(e));
    let runtime = Arc::new(
        crate::metrics::export::MetricsRuntime::start()
            .map_err(|e| exporter_error(format!("its thread did not start: {e}")))?,
    );
    let (interval, warnings) = metric_export_interval(interval, env);
    warn_env_each(&warnings);
    warn_env_each(&compression_warnings(
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
        env,
    ));
    let periodic = |e| PeriodicReader::builder(e).with_interval(interval).build();
    // Over gRPC the endpoint goes to the exporter with its scheme, decided from the metrics'
    // `..._INSECURE` (see `grpc_endpoint`). Over HTTP, with no endpoint in code,
    // opentelemetry-otlp reads OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, then
    // OTEL_EXPORTER_OTLP_ENDPOINT; a traces-only variable is followed too.
    let endpoint = match protocol {
        #[cfg(feature = "otlp-grpc")]
        Protocol::Grpc => grpc_endpoint(endpoint.as_deref(), Signal::Metrics, env),
        _ => endpoint.or_else(|| {
            (env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_none()
                && env("OTEL_EXPORTER_OTLP_ENDPOINT").is_none())
            .then(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            .flatten()
        }),
    };
    let tls_endpoint = endpoint
        .clone()
        .or_else(|| env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let tls = OtlpTls::resolve(
        tls_endpoint.as_deref(),
        ca_file.map(|p| (p, "Builder::with_ca_file")),
        &[
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        ],
        CA_HINT,
    )
    .map_err(InitError::Certificate)?;
    let _ = &tls;
    let reader = match protocol {
        Protocol::Grpc => {
            #[cfg(feature = "otlp-grpc")]
            {
                use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
                let tls_config = tls.tonic().map_err(InitError::Certificate)?;
                let exporter = runtime.enter(|| {
                    let mut b = opentelemetry_otlp::MetricExporter::builder().with_tonic();
                    if let Some(e) = endpoint {
                        b = b.with_endpoint(e);
                    }
                    if let Some(t) = tls_config {
                        b = b.with_tls_config(t);
                    }
                    if !headers.is_empty() {
                        b = b.with_interceptor(headers.interceptor());
                    }
                    b.with_timeout(timeout).build()
                });
                let exporter = exporter.map_err(|e| exporter_error(e.to_string()))?;
                periodic(runtime.wrap(exporter))
            }
            #[cfg(not(feature = "otlp-grpc"))]
            return Err(InitError::FeatureOff(Protocol::Grpc, "otlp-grpc"));
        }
        Protocol::HttpProtobuf => {
            #[cfg(feature = "otlp-http")]
            {
                use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
                let client = http_client(&tls, headers, timeout)?;
                let exporter = runtime.enter(|| {
                    let mut b = opentelemetry_otlp::MetricExporter::builder()
                        .with_http()
                        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                        .with_http_client(client);
                    if let Some(e) = endpoint {
                        b = b.with_endpoint(http_metrics_url(&e));
                    }
                    b.with_timeout(timeout).build()
                });
                let exporter = exporter.map_err(|e| exporter_error(e.to_string()))?;
                periodic(runtime.wrap(exporter))
            }
            #[cfg(not(feature = "otlp-http"))]
            return Err(InitError::FeatureOff(Protocol::HttpProtobuf, "otlp-http"));
        }
    };
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();
    Ok(crate::metrics::export::MetricsExport { provider, runtime })
}

/// The metrics URL next to a traces endpoint: `/v1/metrics` instead of a trailing
/// `/v1/traces`, appended to a base URL otherwise.
#[cfg(any(test, all(feature = "metrics", feature = "otlp-http")))]
fn http_metrics_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    let base = e.strip_suffix("/v1/traces").unwrap_or(e);
    if base.ends_with("/v1/metrics") {
        base.to_owned()
    } else {
        format!("{base}/v1/metrics")
    }
}

/// A code-given HTTP endpoint is a base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` is: it gets
/// `/v1/traces` unless it ends with it (`https://otlp-gateway.grafana.net/otlp` ->
/// `.../otlp/v1/traces`, as its metrics go to `.../otlp/v1/metrics`).
#[cfg(any(test, feature = "otlp-http"))]
fn http_traces_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    if e.ends_with("/v1/traces") {
        e.to_owned()
    } else {
        format!("{e}/v1/traces")
    }
}

/// The HTTP client of the OTLP/HTTP exporter: async reqwest, rustls with the platform's
/// verifier plus the CA of `tls`, each request bounded by `timeout` (opentelemetry-otlp's
/// own timeout does not bound a request sent through a given client: a collector that
/// takes the request and never answers would hold the export forever), and the code's
/// headers put on each request last.
#[cfg(feature = "otlp-http")]
fn http_client(
    tls: &OtlpTls,
    headers: crate::headers::CodeHeaders,
    timeout: Duration,
) -> Result<crate::headers::HeadersLast, InitError> {
    let client = tls
        .reqwest_builder()
        .map_err(InitError::Certificate)?
        .timeout(timeout)
        .build()
        .map_err(|e| InitError::Certificate(format!("cannot set up TLS for OTLP/HTTP: {e}")))?;
    Ok(crate::headers::HeadersLast { client, headers })
}

/// What the error for an https endpoint on a system without CA certificates suggests.
const CA_HINT: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE or Builder::with_ca_file";

/// How long the guard waits for spans finished off the request thread
/// ([`crate::finish_pending_spans`]) before it flushes or shuts down.
const PENDING_SPANS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Flushes and shuts down llmtel's export when dropped: no span is lost at a clean shutdown.
/// Spans still being finished off the request thread (`llmtel-reqwest`'s body reader) are
/// ended first ([`crate::finish_pending_spans`]), then the traces go, then llmtel's metrics
/// (their last export), then the shutdown hooks.
///
/// Keep it alive for the life of the program (`let _guard = llmtel::init()?;`).
#[must_use = "dropping the guard shuts down export"]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
    /// How long dropping the guard waits for the export to finish
    /// ([`QueueConfig::flush_timeout`]).
    shutdown_timeout: Duration,
    summaries: TraceSummaries,
    exporting: bool,
    on_shutdown: Vec<ShutdownHook>,
    #[cfg(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc")))]
    metrics: Option<crate::metrics::export::MetricsExport>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("exporting", &self.exporting)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// The trace summaries store.
    pub fn summaries(&self) -> &TraceSummaries {
        &self.summaries
    }

    /// Whether spans are exported over OTLP.
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// Exports everything finished so far and waits for it (up to the queue's flush timeout).
    ///
    /// # Errors
    /// The exporter's error when the export failed or timed out.
    pub fn flush(&self) -> Result<(), opentelemetry_sdk::error::OTelSdkError> {
        crate::finish_pending_spans(PENDING_SPANS_TIMEOUT);
        match &self.provider {
            Some(p) => p.force_flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !crate::finish_pending_spans(PENDING_SPANS_TIMEOUT) {
            stderr_line!("llmtel: some spans were still being finished at shutdown");
        }
        if let Some(p) = self.provider.take() {
            // The queue's own timeout: the SDK's `shutdown()` gives up after 5 s whatever
            // the queue was told (a collector restarting for 7 s lost every queued span).
            if let Err(e) = p.shutdown_with_timeout(self.shutdown_timeout) {
                stderr_line!(
                    "llmtel: export shutdown did not complete: {}",
                    crate::redact(&e.to_string())
                );
            }
        }
        #[cfg(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc")))]
        if let Some(m) = self.metrics.take() {
            if let Err(e) = m.shutdown() {
                stderr_line!(
                    "llmtel: metrics export shutdown did not complete: {}",
                    crate::redact(&e.to_string())
                );
            }
        }
        for f in self.on_shutdown.drain(..) {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preset_url_given_with_its_path_does_not_get_it_twice() {
        let phoenix = |endpoint: &str| {
            Preset::Phoenix {
                endpoint: endpoint.into(),
                project: "p".into(),
            }
            .settings()
            .0
        };
        for e in [
            "http://localhost:6006",
            "http://localhost:6006/",
            "http://localhost:6006/v1/traces",
            "http://localhost:6006/v1/traces/",
            "http://localhost:6006/v1",
        ] {
            assert_eq!(phoenix(e), "http://localhost:6006/v1/traces", "{e}");
        }
        let langfuse = |host: &str| {
            Preset::Langfuse {
                host: host.into(),
                public_key: "pk-lf-1".into(),
                secret_key: "sk-lf-2".into(),
            }
            .settings()
            .0
        };
        for h in [
            "https://cloud.langfuse.com",
            "https://cloud.langfuse.com/api/public/otel",
            "https://cloud.langfuse.com/api/public/otel/v1/traces",
        ] {
            assert_eq!(
                langfuse(h),
                "https://cloud.langfuse.com/api/public/otel/v1/traces",
                "{h}"
            );
        }
        let langsmith = |endpoint: &str| {
            Preset::LangSmith {
                endpoint: endpoint.into(),
                api_key: "k".into(),
                project: "p".into(),
            }
            .settings()
            .0
        };
        for e in [
            "https://api.smith.langchain.com",
            "https://api.smith.langchain.com/otel",
            "https://api.smith.langchain.com/otel/v1/traces",
        ] {
            assert_eq!(
                langsmith(e),
                "https://api.smith.langchain.com/otel/v1/traces",
                "{e}"
            );
        }
        // A base with a path of its own keeps it.
        assert_eq!(
            phoenix("https://proxy.example/phoenix"),
            "https://proxy.example/phoenix/v1/traces"
        );
    }

    /// Reads variables from `set` as [`env`] reads the environment (trimmed, empty unset).
    fn vars<'a>(set: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + Clone + 'a {
        move |k| {
            set.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        }
    }

    /// The sampler built, and the warning if any.
    fn sampler(set: &[(&str, &str)]) -> (String, Option<String>) {
        let (s, w) = sampler_from(vars(set));
        (format!("{s:?}"), w)
    }

    #[test]
    #[cfg(all(feature = "metrics", any(feature = "otlp-http", feature = "otlp-grpc")))]
    fn a_zero_or_malformed_metric_export_interval_is_warned_about_and_never_used() {
        use std::time::Duration;
        let interval = |code: Option<Duration>, v: Option<&'static str>| {
            super::metric_export_interval(code, move |k| {
                (k == "OTEL_METRIC_EXPORT_INTERVAL")
                    .then(|| v.map(str::to_owned))
                    .flatten()
            })
        };
        // `0` made the SDK's reader export in a busy loop; a malformed value was 60 s
        // silently.
        for bad in ["0", "-5", "5s", "abc"] {
            let (i, w) = interval(None, Some(bad));
            assert_eq!(i, Duration::from_secs(60), "{bad}");
            assert!(
                w.len() == 1
                    && w[0].contains("OTEL_METRIC_EXPORT_INTERVAL")
                    && w[0].contains("is not an export interval, ignored: using 60000 ms")
                    && w[0].contains("write whole milliseconds above 0"),
                "{bad}: {w:?}"
            );
        }
        assert_eq!(
            interval(None, Some(" 1500 ")),
            (Duration::from_millis(1500), vec![])
        );
        assert_eq!(interval(None, None), (Duration::from_secs(60), vec![]));
        // The code's interval wins, unless it is zero (then the environment's, as the SDK
        // does with `with_interval(0)`).
        assert_eq!(
            interval(Some(Duration::from_secs(5)), Some("0")),
            (Duration::from_secs(5), vec![])
        );
        assert_eq!(
            interval(Some(Duration::ZERO), Some("2000")),
            (Duration::from_millis(2000), vec![])
        );
    }

    #[test]
    fn an_unsupported_compression_is_warned_about_naming_what_is_sent_instead() {
        let warnings = |set: &'static [(&'static str, &'static str)]| {
            super::compression_warnings("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", move |k| {
                set.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        assert!(warnings(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP")]).is_empty());
        assert!(warnings(&[("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none")]).is_empty());
        // zstd (a feature llmtel does not build) and a typo were skipped silently.
        let w = warnings(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")]);
        assert!(
            w.len() == 1
                && w[0].contains("OTEL_EXPORTER_OTLP_COMPRESSION=\"zstd\"")
                && w[0].contains("ignored: using none (the default); set it to gzip or none"),
            "{w:?}"
        );
        let w = warnings(&[
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gz"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]);
        assert!(
            w.len() == 1
                && w[0].contains("ignored: using gzip (from OTEL_EXPORTER_OTLP_COMPRESSION)"),
            "{w:?}"
        );
    }

    #[test]
    fn an_unsupported_metrics_exporter_is_warned_about_and_none_turns_the_metrics_off() {
        let off = |v: &'static str| {
            super::metrics_exporter_off(move |k| {
                (k == "OTEL_METRICS_EXPORTER").then(|| v.to_owned())
            })
        };
        assert_eq!(off("none"), (true, None));
        assert_eq!(off(" NONE "), (true, None));
        assert_eq!(off("otlp"), (false, None));
        assert_eq!(super::metrics_exporter_off(|_| None), (false, None));
        // Another exporter was OTLP metrics without a word.
        for (v, named) in [
            ("prometheus", "\"prometheus\""),
            ("otlp,console", "\"console\""),
            ("none,otlp", "\"none\""),
            (",", "such"),
        ] {
            let (is_off, w) = off(v);
            let w = w.unwrap_or_default();
            assert!(
                !is_off
                    && w.contains("OTEL_METRICS_EXPORTER=")
                    && w.contains(&format!("llmtel has no {named} metrics exporter"))
                    && w.contains("ignored: using otlp; set it to otlp or none"),
                "{v}: {w}"
            );
        }
    }

    #[test]
    fn the_environments_sampler_is_built_by_llmtel_and_a_bad_one_is_warned_about_and_ignored() {
        const S: &str = "OTEL_TRACES_SAMPLER";
        const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
        for (set, want) in [
            (&[][..], "ParentBased(AlwaysOn)"),
            (&[(S, " ")][..], "ParentBased(AlwaysOn)"),
            (&[(S, "always_on")][..], "AlwaysOn"),
            (&[(S, " always_off ")][..], "AlwaysOff"),
            (
                &[(S, "traceidratio"), (ARG, "0.25")][..],
                "TraceIdRatioBased(0.25)",
            ),
            (&[(S, "traceidratio")][..], "TraceIdRatioBased(1.0)"),
            (
                &[(S, "TraceIdRatio"), (ARG, "0")][..],
                "TraceIdRatioBased(0.0)",
            ),
            (&[(S, "parentbased_always_on")][..], "ParentBased(AlwaysOn)"),
            (
                &[(S, "parentbased_always_off")][..],
                "ParentBased(AlwaysOff)",
            ),
            (
                &[(S, "parentbased_traceidratio"), (ARG, " 0.1 ")][..],
                "ParentBased(TraceIdRatioBased(0.1))",
            ),
            // The argument of another sampler is not read.
            (&[(S, "always_on"), (ARG, "10%")][..], "AlwaysOn"),
        ] {
            assert_eq!(sampler(set), (want.to_owned(), None), "{set:?}");
        }
        for bad in ["10%", "1.5", "-0.1", "NaN", "half"] {
            let (s, w) = sampler(&[(S, "parentbased_traceidratio"), (ARG, bad)]);
            assert_eq!(s, "ParentBased(TraceIdRatioBased(1.0))");
            let w = w.unwrap();
            assert!(
                w.contains(ARG) && w.contains(bad) && w.contains("from 0 to 1"),
                "{bad}: {w}"
            );
        }
        for unsupported in ["jaeger_remote", "parentbased_jaeger_remote", "xray"] {
            let (s, w) = sampler(&[(S, unsupported)]);
            assert_eq!(s, "ParentBased(AlwaysOn)");
            let w = w.unwrap();
            assert!(
                w.contains("not supported")
                    && w.contains(unsupported)
                    && w.contains("sampling with parentbased_always_on")
                    && w.contains("parentbased_traceidratio"),
                "{w}"
            );
        }
        let (s, w) = sampler(&[(S, "ratio")]);
        assert_eq!(s, "ParentBased(AlwaysOn)");
        let w = w.unwrap();
        assert!(
            w.contains("\"ratio\" is not a sampler") && w.contains("always_on"),
            "{w}"
        );
    }

    #[test]
    fn otel_traces_exporter_says_where_the_traces_go() {
        const V: &str = "OTEL_TRACES_EXPORTER";
        let ex = |set: &[(&str, &str)]| traces_exporters(vars(set));
        let t = |otlp, console| (TracesExporters { otlp, console }, None);
        assert_eq!(ex(&[]), t(true, false));
        assert_eq!(ex(&[(V, "")]), t(true, false));
        assert_eq!(ex(&[(V, "otlp")]), t(true, false));
        assert_eq!(ex(&[(V, "none")]), t(false, false));
        assert_eq!(ex(&[(V, " None ")]), t(false, false));
        assert_eq!(ex(&[(V, "console")]), t(false, true));
        assert_eq!(ex(&[(V, "otlp, console")]), t(true, true));
        // What llmtel does not have is ignored, with a warning saying what it uses.
        for (bad, otlp, console, using) in [
            ("zipkin", true, false, "using otlp"),
            ("logging", true, false, "using otlp"),
            ("otlp,jaeger", true, false, "using otlp"),
            ("zipkin,console", false, true, "using console"),
            ("none,otlp", true, false, "using otlp"),
            ("none,zipkin", false, false, "using none"),
            // Only commas (`${A},${B}` with both empty): the default, said, not traces off.
            (",", true, false, "using otlp"),
        ] {
            let (got, w) = ex(&[(V, bad)]);
            assert_eq!(got, TracesExporters { otlp, console }, "{bad}");
            let w = w.unwrap();
            assert!(
                w.starts_with(V) && w.contains(bad) && w.contains(using) && w.contains("none"),
                "{w}"
            );
        }
    }

    #[test]
    fn each_signal_reads_its_own_protocol_variable() {
        const T: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
        const M: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
        const G: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
        let set = [(M, "grpc"), (G, "http/protobuf")];
        let b = builder();
        assert_eq!(
            b.resolve_protocol(Signal::Metrics, vars(&set)),
            Protocol::Grpc
        );
        assert_eq!(
            b.resolve_protocol(Signal::Traces, vars(&set)),
            Protocol::HttpProtobuf
        );
        let set = [(T, "grpc")];
        assert_eq!(
            b.resolve_protocol(Signal::Metrics, vars(&set)),
            Protocol::HttpProtobuf
        );
        let set = [(G, "grpc")];
        assert_eq!(
            b.resolve_protocol(Signal::Metrics, vars(&set)),
            Protocol::Grpc
        );
        // The code's protocol, or a preset's, wins over the variables.
        let set = [(M, "grpc"), (T, "grpc")];
        let code = builder().with_protocol(Protocol::HttpProtobuf);
        let preset = builder().with_preset(Preset::Phoenix {
            endpoint: "http://127.0.0.1:6006".into(),
            project: "p".into(),
        });
        for b in [code, preset] {
            for signal in [Signal::Traces, Signal::Metrics] {
                assert_eq!(
                    b.resolve_protocol(signal, vars(&set)),
                    Protocol::HttpProtobuf
                );
            }
        }
        // One llmtel does not speak is ignored: the next variable, else the default.
        assert_eq!(
            builder().resolve_protocol(Signal::Metrics, vars(&[(M, "http/json")])),
            Protocol::HttpProtobuf
        );
        assert_eq!(
            builder().resolve_protocol(Signal::Metrics, vars(&[(M, "http/json"), (G, "grpc")])),
            Protocol::Grpc
        );
    }

    /// Metrics sent to the traces' endpoint go with the traces' protocol when only that one
    /// is set; their own endpoint, or a protocol variable of their own (or the generic one),
    /// leaves them to it.
    #[test]
    fn metrics_sharing_the_traces_endpoint_follow_a_traces_only_protocol() {
        const T: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
        const M: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
        const G: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
        const E: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
        const TE: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
        const ME: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
        let m = |b: &Builder, set: &[(&str, &str)]| Some(b.metrics_protocol(true, vars(set)));
        let b = builder();
        let grpc = Some(Protocol::Grpc);
        let http = Some(Protocol::HttpProtobuf);
        assert_eq!(m(&b, &[(E, "http://c:4317"), (T, "grpc")]), grpc);
        assert_eq!(m(&b, &[(TE, "http://c:4317"), (T, "grpc")]), grpc);
        assert_eq!(m(&b, &[(T, "grpc")]), grpc);
        let code = builder().with_endpoint("http://c:4317");
        assert_eq!(m(&code, &[(ME, "http://m:4318"), (T, "grpc")]), grpc);
        // Their own protocol, the generic one, or an endpoint of their own: not the traces'.
        assert_eq!(
            m(
                &b,
                &[(E, "http://c:4317"), (T, "grpc"), (M, "http/protobuf")]
            ),
            http
        );
        assert_eq!(
            m(
                &b,
                &[(E, "http://c:4317"), (T, "grpc"), (G, "http/protobuf")]
            ),
            http
        );
        assert_eq!(m(&b, &[(ME, "http://m:4318"), (T, "grpc")]), http);
        assert_eq!(
            m(
                &b,
                &[(E, "http://m:4318"), (TE, "http://t:4317"), (T, "grpc")]
            ),
            http
        );
        // The code's protocol wins.
        let code = builder().with_protocol(Protocol::HttpProtobuf);
        assert_eq!(m(&code, &[(E, "http://c:4317"), (T, "grpc")]), http);
        // A traces' protocol that does not parse is ignored for the metrics too.
        assert_eq!(m(&b, &[(E, "http://c:4318"), (T, "http/json")]), http);
        // A generic or metrics protocol that does not parse is ignored (warned about where
        // it is read): the metrics still follow the traces' gRPC.
        assert_eq!(
            m(&b, &[(E, "http://c:4317"), (T, "grpc"), (G, "http/json")]),
            grpc
        );
        assert_eq!(
            m(&b, &[(E, "http://c:4317"), (T, "grpc"), (M, "http/json")]),
            grpc
        );
        // No traces exported (`OTEL_TRACES_EXPORTER=none`): no traces use the endpoint, the
        // metrics keep the specification's default.
        let none = b.metrics_protocol(false, vars(&[(E, "http://c:4318"), (T, "grpc")]));
        assert_eq!(Some(none), http);
    }

    /// A schemeless gRPC endpoint with only the metrics' `..._INSECURE` set: the traces go
    /// over TLS, the metrics in plain text, each exporter given the endpoint with the scheme
    /// llmtel's TLS settings were made for (the traces' exporter made it https with no TLS
    /// settings when llmtel decided plain text: every handshake failed).
    #[test]
    fn a_schemeless_grpc_endpoint_is_secure_unless_its_own_signal_says_insecure() {
        let set = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector.example.com:4317"),
            ("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "true"),
        ];
        let traces = grpc_endpoint(None, Signal::Traces, vars(&set));
        let metrics = grpc_endpoint(None, Signal::Metrics, vars(&set));
        assert_eq!(
            traces.as_deref(),
            Some("https://collector.example.com:4317")
        );
        assert_eq!(
            metrics.as_deref(),
            Some("http://collector.example.com:4317")
        );
        let tls = |e: &Option<String>| {
            OtlpTls::resolve(e.as_deref(), None, &[], CA_HINT).map(|t| crate::tls::is_tls(&t))
        };
        assert_eq!(tls(&traces), Ok(true));
        assert_eq!(tls(&metrics), Ok(false));
        // The code's endpoint, the signal's variable, the generic one; the metrics follow
        // a traces-only variable.
        let set = [
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://both:4317"),
        ];
        assert_eq!(
            grpc_endpoint(Some("code:4317"), Signal::Traces, vars(&set)).as_deref(),
            Some("https://code:4317")
        );
        assert_eq!(
            grpc_endpoint(None, Signal::Traces, vars(&set)).as_deref(),
            Some("http://traces:4317")
        );
        assert_eq!(
            grpc_endpoint(None, Signal::Metrics, vars(&set)).as_deref(),
            Some("http://both:4317")
        );
        let set = [("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317")];
        assert_eq!(
            grpc_endpoint(None, Signal::Metrics, vars(&set)).as_deref(),
            Some("http://traces:4317")
        );
        assert_eq!(grpc_endpoint(None, Signal::Traces, vars(&[])), None);
    }

    #[test]
    fn an_invalid_log_filter_names_where_it_came_from() {
        let e = log_filter(None, vars(&[("RUST_LOG", "warn,[bad")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("RUST_LOG") && !e.contains("trace filter"), "{e}");
        let e = log_filter(Some("[bad"), vars(&[("RUST_LOG", "info")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Builder::with_log_filter"), "{e}");
        assert!(log_filter(None, vars(&[])).is_ok());
        assert!(log_filter(Some("debug"), vars(&[("RUST_LOG", "[bad")])).is_ok());
    }

    #[test]
    fn client_certificate_variables_are_refused_with_what_to_do() {
        assert!(refuse_client_certificates(|_| None).is_ok());
        let err = refuse_client_certificates(|v| {
            (v == "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY").then(|| "/etc/key.pem".to_owned())
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"),
            "{err}"
        );
        assert!(
            err.contains("mTLS") && err.contains("local collector"),
            "{err}"
        );
    }

    #[test]
    fn resource_attributes_go_through_the_secrets_rules() {
        let r = genai_resource(
            Some("billing".into()),
            [
                KeyValue::new("deploy.api_key", "sk-proj-0123456789abcdefghij"),
                KeyValue::new("deploy.url", "https://u:hunter2@example.com/x"),
                KeyValue::new("deployment.environment.name", "prod"),
            ],
        );
        let text = format!("{r:?}");
        assert!(
            !text.contains("deploy.api_key") && !text.contains("sk-proj"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            r.get(&opentelemetry::Key::from_static_str("service.name")),
            Some("billing".into())
        );
        assert_eq!(
            r.get(&opentelemetry::Key::from_static_str(
                "deployment.environment.name"
            )),
            Some("prod".into())
        );
        assert!(
            r.get(&opentelemetry::Key::from_static_str("telemetry.sdk.name"))
                .is_some()
        );
        assert_eq!(r.schema_url(), Some(llmtel_semconv::SCHEMA_URL));
    }

    #[test]
    fn otel_resource_attributes_values_are_percent_decoded() {
        let kv = parse_resource_attributes(
            "service.namespace=my%20team, deployment.environment = prod ,note=a%2Cb%3Dc%25,city=K%C3%B6ln,,",
        )
        .unwrap();
        let got: Vec<(String, String)> = kv
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("service.namespace", "my team"),
                ("deployment.environment", "prod"),
                ("note", "a,b=c%"),
                ("city", "Köln"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        // A bad encoding, a pair without `=` or a key: the whole variable is discarded.
        for bad in ["a=%zz", "a=%2", "a=%+1", "a=%FF", "a=1,b", "=1"] {
            assert!(parse_resource_attributes(bad).is_err(), "{bad}");
        }
    }

    /// The names of the spans a layer behind `trace_filter(directives)` sees open and close.
    fn spans_passed(directives: &str) -> Vec<String> {
        use std::sync::Mutex;
        #[derive(Clone, Default)]
        struct Seen(Arc<Mutex<Vec<String>>>);
        impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Seen {
            fn on_close(
                &self,
                id: tracing_core::span::Id,
                ctx: tracing_subscriber::layer::Context<'_, S>,
            ) {
                if let Some(span) = ctx.span(&id) {
                    self.0.lock().unwrap().push(span.name().to_owned());
                }
            }
        }
        let seen = Seen::default();
        let filter = trace_filter(directives).expect("valid directives");
        let subscriber = tracing_subscriber::registry().with(seen.clone().with_filter(filter));
        tracing::subscriber::with_default(subscriber, || {
            let _request = tracing::info_span!("request").entered();
            drop(tracing::debug_span!("db_query"));
            drop(tracing::warn_span!(target: "llmtel", "retry"));
            drop(tracing::info_span!(target: "app::chat", "chat"));
        });
        seen.0.lock().unwrap().clone()
    }

    #[test]
    fn a_plain_level_trace_filter_passes_the_spans_its_env_filter_would() {
        assert_eq!(spans_passed("info"), ["retry", "chat", "request"]);
        assert_eq!(spans_passed(" INFO "), ["retry", "chat", "request"]);
        assert_eq!(
            spans_passed("debug"),
            ["db_query", "retry", "chat", "request"]
        );
        assert_eq!(spans_passed("warn"), ["retry"]);
        assert!(spans_passed("off").is_empty());
        // Directives with a target stay an EnvFilter.
        assert_eq!(spans_passed("warn,app=info"), ["retry", "chat"]);
        for d in ["info", "debug", "warn", "off", "warn,app=info"] {
            let env = EnvFilter::builder().parse(d).expect("valid");
            let level = trace_filter::<tracing_subscriber::Registry>(d).expect("valid");
            assert_eq!(
                level.max_level_hint(),
                tracing_subscriber::layer::Filter::<tracing_subscriber::Registry>::max_level_hint(
                    &env
                ),
                "{d}"
            );
        }
        assert!(matches!(
            trace_filter::<tracing_subscriber::Registry>("not a valid [filter"),
            Err(InitError::Filter(_))
        ));
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"pk-lf-1:sk-lf-2"), "cGstbGYtMTpzay1sZi0y");
    }

    #[test]
    fn http_endpoint_gets_the_signal_path_unless_it_ends_with_it() {
        assert_eq!(http_traces_url("http://h:4318"), "http://h:4318/v1/traces");
        assert_eq!(http_traces_url("http://h:4318/"), "http://h:4318/v1/traces");
        // A base URL with a path prefix (Grafana Cloud's `/otlp`), as its metrics get.
        assert_eq!(
            http_traces_url("https://gateway.example/otlp"),
            "https://gateway.example/otlp/v1/traces"
        );
        assert_eq!(
            http_metrics_url("https://gateway.example/otlp"),
            "https://gateway.example/otlp/v1/metrics"
        );
        assert_eq!(
            http_traces_url("http://h/api/public/otel/v1/traces"),
            "http://h/api/public/otel/v1/traces"
        );
    }

    #[test]
    fn metrics_go_next_to_the_traces_path() {
        assert_eq!(
            http_metrics_url("http://h:4318"),
            "http://h:4318/v1/metrics"
        );
        assert_eq!(
            http_metrics_url("http://h:4318/"),
            "http://h:4318/v1/metrics"
        );
        assert_eq!(
            http_metrics_url("http://h:4318/v1/traces"),
            "http://h:4318/v1/metrics"
        );
        assert_eq!(
            http_metrics_url("http://h/otel/v1/metrics"),
            "http://h/otel/v1/metrics"
        );
        assert_eq!(
            http_metrics_url("http://h/otel"),
            "http://h/otel/v1/metrics"
        );
    }

    /// A protocol variable naming one llmtel does not speak (`http/json`) is ignored with a
    /// warning naming it, its value, the protocol used and what to set (it failed `init()`;
    /// the specification says to warn and use the default).
    #[test]
    fn a_protocol_variable_llmtel_does_not_speak_is_warned_about_and_ignored() {
        const T: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
        const G: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
        let (p, w) = Protocol::from_vars(T, vars(&[(G, "http/json")]));
        assert_eq!(p, Protocol::HttpProtobuf);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"http/json\"")
                && w[0].contains("ignored: using http/protobuf (the default)")
                && w[0].contains("set it to http/protobuf or grpc"),
            "{w:?}"
        );
        let (p, w) = Protocol::from_vars(T, vars(&[(T, "grpc/json"), (G, "grpc")]));
        assert_eq!(p, Protocol::Grpc);
        assert!(
            w.len() == 1 && w[0].contains(T) && w[0].contains("using grpc (from"),
            "{w:?}"
        );
        let (p, w) = Protocol::from_vars(T, vars(&[(T, "grpc")]));
        assert_eq!((p, w.len()), (Protocol::Grpc, 0));
    }

    #[test]
    fn unknown_protocol_is_a_clear_error() {
        let e = Protocol::parse("http/json").unwrap_err().to_string();
        assert!(e.contains("grpc") && e.contains("http/protobuf"), "{e}");
    }

    #[test]
    fn https_builds_with_default_features_over_grpc_and_http() {
        // Loopback port 1: nothing listens, nothing leaves the machine.
        for (endpoint, protocol) in [
            ("https://127.0.0.1:1", Protocol::Grpc),
            ("https://127.0.0.1:1/v1/traces", Protocol::HttpProtobuf),
        ] {
            let g = builder()
                .with_endpoint(endpoint)
                .with_protocol(protocol)
                .with_console(false)
                .with_metrics(false)
                .build::<tracing_subscriber::Registry>()
                .map(|(_, g)| g)
                .expect("builds");
            assert!(g.is_exporting());
        }
    }

    #[test]
    fn langfuse_preset_sends_basic_auth_to_the_otel_path() {
        let p = Preset::Langfuse {
            host: "https://cloud.langfuse.com/".into(),
            public_key: "pk-lf-1".into(),
            secret_key: "sk-lf-2".into(),
        };
        let (endpoint, headers, _, oi) = p.settings();
        assert_eq!(
            endpoint,
            "https://cloud.langfuse.com/api/public/otel/v1/traces"
        );
        assert_eq!(
            headers,
            vec![(
                "Authorization".to_string(),
                "Basic cGstbGYtMTpzay1sZi0y".to_string()
            )]
        );
        assert!(!oi);
    }

    #[test]
    fn langsmith_and_phoenix_presets() {
        let (e, h, _, _) = Preset::LangSmith {
            endpoint: "https://api.smith.langchain.com".into(),
            api_key: "lsv2_x".into(),
            project: "support".into(),
        }
        .settings();
        assert_eq!(e, "https://api.smith.langchain.com/otel/v1/traces");
        assert!(h.contains(&("x-api-key".into(), "lsv2_x".into())));
        assert!(h.contains(&("Langsmith-Project".into(), "support".into())));
        let (e, h, r, oi) = Preset::Phoenix {
            endpoint: "http://127.0.0.1:6006".into(),
            project: "p".into(),
        }
        .settings();
        assert_eq!(e, "http://127.0.0.1:6006/v1/traces");
        assert!(h.is_empty() && oi);
        assert_eq!(r[0].key.as_str(), "openinference.project.name");
    }

    #[test]
    fn shutdown_hooks_run_when_the_guard_drops() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let (_, guard) = builder()
            .with_console(false)
            .with_shutdown_hook(move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .build::<tracing_subscriber::Registry>()
            .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        drop(guard);
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn preset_debug_never_shows_keys() {
        let p = Preset::Langfuse {
            host: "h".into(),
            public_key: "pk-lf-x".into(),
            secret_key: "sk-lf-secret".into(),
        };
        let s = format!("{p:?}");
        assert!(!s.contains("sk-lf-secret") && !s.contains("pk-lf-x"), "{s}");
    }
}
