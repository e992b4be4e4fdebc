//! Reading spans back from the real peers: Arize Phoenix (trace store) and
//! rotel (collector stage), both started by `scripts/peers.sh start`.
//!
//! A test that needs them calls [`Peers::from_env`], which panics (never
//! skips) when the peers are not there. Every test should export to its own
//! Phoenix project (resource attribute `openinference.project.name`, e.g.
//! `llmtel-<test name>-<random>`): nextest runs tests in parallel against the
//! same Phoenix, and a project is a cheap, exact way to find one's own spans.
//! Phoenix stores spans ~200 ms after export; rotel batches for 200 ms more.
//!
//! # What Phoenix (arize-phoenix 20.26) returns
//!
//! Measured by sending spans with the Python OTel SDK over OTLP gRPC and
//! HTTP/protobuf, directly and through rotel (all four give the same result).
//!
//! ## `GET /v1/projects/{project}/spans?limit=1000` ([`wait_for_spans`])
//!
//! `404` (body `Project with name X not found`) until the project's first span
//! is stored. Otherwise `{"data": [span, ...], "next_cursor": null | "U3Bhbjox"}`
//! where one span is:
//!
//! ```json
//! {
//!   "id": "U3Bhbjoy",
//!   "name": "chat gpt-4o",
//!   "context": {"trace_id": "06d083cb39d1805bb7c3c454723fe40a", "span_id": "617693f464a79ce0"},
//!   "span_kind": "LLM",
//!   "parent_id": null,
//!   "start_time": "2026-11-27T05:11:45.392931+00:00",
//!   "end_time": "2026-11-27T05:11:45.401403+00:00",
//!   "status_code": "UNSET",
//!   "status_message": "",
//!   "attributes": {
//!     "gen_ai.request.model": "gpt-4o",
//!     "gen_ai.usage.input_tokens": 1234,
//!     "probe.int_as_string": "1234",
//!     "probe.double": 0.5,
//!     "probe.double_integral": 2.0,
//!     "probe.bool": true,
//!     "probe.str_array": ["a", "b"],
//!     "llm.model_name": "gpt-4o",
//!     "llm.token_count.prompt": 1234
//!   },
//!   "events": [{"name": "ev", "timestamp": "2026-11-27T05:11:45.393061+00:00", "attributes": {"k": 1}}]
//! }
//! ```
//!
//! - Attribute keys are **flat dotted keys** (`"gen_ai.usage.input_tokens"`),
//!   not nested objects; [`attr`] also walks nested objects in case a Phoenix
//!   version nests them.
//! - **Types survive**: an OTLP `intValue` comes back as a JSON integer
//!   (`1234`, also `-5` and `9007199254740993` exactly), a `stringValue "1234"`
//!   as the JSON string `"1234"`, a `doubleValue` as a JSON float (`0.5`, and
//!   `2.0` keeps its `.0`, so `serde_json` sees it as f64, not as an integer),
//!   bool as JSON bool, arrays as JSON arrays. [`attr_kind`] tells them apart.
//! - `parent_id` is the parent's span id (hex) or `null` for a root.
//! - `status_code` is `"UNSET" | "OK" | "ERROR"`; `status_message` is `""` when unset.
//! - `span_kind` is the **OpenInference** kind (`LLM` for GenAI spans, else
//!   `UNKNOWN`), not the OTel `SpanKind`, which Phoenix does not keep.
//! - Times are RFC 3339 with microseconds (nanoseconds are cut).
//! - Phoenix **adds** OpenInference attributes to `gen_ai.*` spans:
//!   `llm.model_name`, `llm.token_count.prompt|completion`, and
//!   `openinference.span.kind` (the latter only shows in the otlpv1 endpoint).
//!   Do not count attributes; look up the ones you expect.
//!
//! ## `GET /v1/projects/{project}/spans/otlpv1?limit=1000` ([`wait_for_otlp_spans`])
//!
//! Same 404 / `{"data", "next_cursor"}` envelope; spans in an OTLP-like shape
//! with **snake_case** fields (not the proto3 JSON camelCase) and every unset
//! field present as `null` (trimmed here):
//!
//! ```json
//! {
//!   "trace_id": "06d083cb39d1805bb7c3c454723fe40a",
//!   "span_id": "facef1d9a45cc83b",
//!   "parent_span_id": "617693f464a79ce0",
//!   "name": "child",
//!   "kind": "SPAN_KIND_INTERNAL",
//!   "start_time_unix_nano": 1795756305393035008,
//!   "end_time_unix_nano": 1795756305393071872,
//!   "status": {"code": 2, "message": "boom"},
//!   "attributes": [
//!     {"key": "probe.int", "value": {"int_value": 42, "string_value": null, "double_value": null,
//!                                    "bool_value": null, "array_value": null, "kvlist_value": null,
//!                                    "bytes_value": null}},
//!     {"key": "probe.int_as_string", "value": {"string_value": "1234", "int_value": null, "...": null}},
//!     {"key": "probe.str_array", "value": {"array_value": {"values": [{"string_value": "a", "...": null}]}}}
//!   ],
//!   "events": [{"name": "ev", "time_unix_nano": 1795756305393060864,
//!               "attributes": [{"key": "k", "value": {"int_value": 1, "...": null}}]}],
//!   "dropped_attributes_count": null, "flags": null, "links": null, "trace_state": null
//! }
//! ```
//!
//! - `int_value` is a JSON number (not the proto3-JSON string), `string_value`
//!   a string, `double_value` a float: the int/string distinction holds here
//!   too. Phoenix derives these from the JSON it stored (Python int / float /
//!   str), so this endpoint carries exactly the same type information as the
//!   REST one, no more: it is not the wire data.
//! - `kind` is **always** `SPAN_KIND_INTERNAL` (Phoenix does not store it);
//!   `status.code` is 0 unset, 1 ok, 2 error; `parent_span_id` is `null` for a root;
//!   the nanosecond times are rebuilt from microseconds (and float-rounded).
//!
//! ## Resource attributes
//!
//! **Neither endpoint returns resource attributes**: Phoenix only reads
//! `openinference.project.name` from the resource (to pick the project) and
//! drops the rest; the OTel span kind and instrumentation scope are dropped
//! too. To check those, read what rotel received: `scripts/peers.sh start`
//! runs rotel with `--debug-log traces --debug-log-verbosity detailed` and
//! exports the log's path as `LLMTEL_ROTEL_LOG`; [`wait_for_rotel_spans`]
//! parses it into [`RotelSpan`]s with resource attributes, scope, OTel span
//! kind, and attribute values with their wire types (`Int(7)`, `Str(x)`,
//! `Double(0.5)`, `Bool(true)`, `Slice(Str(a), Str(b))`, ...). Only spans sent
//! through rotel (`rotel_otlp_grpc` / `rotel_otlp_http`) appear there.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What to do when the peers are missing.
pub const HOW_TO_START: &str = "peer tests need Phoenix and rotel: run \
`scripts/peers.sh install && scripts/peers.sh start && source .peers/env` first, \
or `scripts/test.sh`, which does it";

/// Environment variables written by `scripts/peers.sh start` into `.peers/env`.
pub const ENV_PHOENIX_URL: &str = "LLMTEL_PHOENIX_URL";
/// OTLP gRPC endpoint of Phoenix.
pub const ENV_PHOENIX_OTLP_GRPC: &str = "LLMTEL_PHOENIX_OTLP_GRPC";
/// OTLP HTTP base URL of Phoenix (clients append `/v1/traces`).
pub const ENV_PHOENIX_OTLP_HTTP: &str = "LLMTEL_PHOENIX_OTLP_HTTP";
/// OTLP gRPC endpoint of rotel.
pub const ENV_ROTEL_OTLP_GRPC: &str = "LLMTEL_ROTEL_OTLP_GRPC";
/// OTLP HTTP base URL of rotel (clients append `/v1/traces`).
pub const ENV_ROTEL_OTLP_HTTP: &str = "LLMTEL_ROTEL_OTLP_HTTP";
/// Path of rotel's debug log (what rotel received, resource attributes included).
pub const ENV_ROTEL_LOG: &str = "LLMTEL_ROTEL_LOG";

/// Pause between two polls of Phoenix or of the rotel log.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Timeout of one HTTP request to Phoenix.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Page size (Phoenix's maximum).
const PAGE_LIMIT: usize = 1000;
/// Safety bound on pages read per poll.
const MAX_PAGES: usize = 200;

/// Addresses of the running peers, read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    /// Phoenix HTTP base URL (UI, REST API, OTLP/HTTP), e.g. `http://127.0.0.1:6006`.
    pub phoenix_url: String,
    /// Phoenix OTLP gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub phoenix_otlp_grpc: String,
    /// Phoenix OTLP/HTTP base URL (protobuf only; append `/v1/traces`).
    pub phoenix_otlp_http: String,
    /// rotel OTLP gRPC endpoint (forwards to Phoenix), e.g. `http://127.0.0.1:4327`.
    pub rotel_otlp_grpc: String,
    /// rotel OTLP/HTTP base URL (append `/v1/traces`), e.g. `http://127.0.0.1:4328`.
    pub rotel_otlp_http: String,
}

impl Peers {
    /// Reads the peers' addresses from the `LLMTEL_*` variables of `.peers/env`
    /// and checks that Phoenix answers `GET /healthz` and that rotel accepts
    /// connections. Panics with instructions otherwise: a peer test never skips.
    pub fn from_env() -> Peers {
        let names = [
            ENV_PHOENIX_URL,
            ENV_PHOENIX_OTLP_GRPC,
            ENV_PHOENIX_OTLP_HTTP,
            ENV_ROTEL_OTLP_GRPC,
            ENV_ROTEL_OTLP_HTTP,
        ];
        let mut values = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => {
                    values.push(v.trim().trim_end_matches('/').to_owned())
                }
                _ => {
                    missing.push(name);
                    values.push(String::new());
                }
            }
        }
        if !missing.is_empty() {
            panic!(
                "{HOW_TO_START} (missing environment variables: {})",
                missing.join(", ")
            );
        }
        let mut values = values.into_iter();
        let mut next = || values.next().unwrap_or_default();
        let peers = Peers {
            phoenix_url: next(),
            phoenix_otlp_grpc: next(),
            phoenix_otlp_http: next(),
            rotel_otlp_grpc: next(),
            rotel_otlp_http: next(),
        };

        let health = format!("{}/healthz", peers.phoenix_url);
        let url = health.clone();
        match off_runtime(move || {
            let resp = client()?.get(&url).send().map_err(|e| error_chain(&e))?;
            Ok(resp.status().as_u16())
        }) {
            Ok(status) if (200..300).contains(&status) => {}
            Ok(status) => panic!(
                "Phoenix is not healthy: GET {health} answered HTTP {status}; \
                 see `scripts/peers.sh status` and .peers/phoenix.log. {HOW_TO_START}"
            ),
            Err(e) => panic!(
                "Phoenix does not answer GET {health} ({e}); is it running? \
                 see `scripts/peers.sh status`. {HOW_TO_START}"
            ),
        }
        for endpoint in [&peers.rotel_otlp_grpc, &peers.rotel_otlp_http] {
            if let Err(e) = tcp_probe(endpoint) {
                panic!(
                    "rotel does not accept connections at {endpoint} ({e}); is it running? \
                     see `scripts/peers.sh status`. {HOW_TO_START}"
                );
            }
        }
        peers
    }

    /// OTLP/HTTP traces URL of Phoenix (`{phoenix_otlp_http}/v1/traces`).
    pub fn phoenix_traces_url(&self) -> String {
        format!("{}/v1/traces", self.phoenix_otlp_http)
    }

    /// OTLP/HTTP traces URL of rotel (`{rotel_otlp_http}/v1/traces`).
    pub fn rotel_traces_url(&self) -> String {
        format!("{}/v1/traces", self.rotel_otlp_http)
    }
}

/// A project name unique to this process and call, e.g.
/// `llmtel-otlp_grpc-1234-1a2b3c4d`, for one test's spans.
pub fn unique_project(test: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let clean: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("llmtel-{clean}-{}-{nanos:08x}{n}", std::process::id())
}

// ---------------------------------------------------------------------------
// Polling Phoenix
// ---------------------------------------------------------------------------

/// Polls `GET {phoenix_url}/v1/projects/{project}/spans?limit=1000` (all
/// pages, oldest first) until at least `min_count` spans satisfy
/// `trace_filter`, and returns all spans that satisfy it. A 404 (project not
/// created yet) counts as no spans. Panics at `timeout` with what it saw.
///
/// Spans have the REST shape shown in the module docs; read them with
/// [`span_name`], [`span_id`], [`trace_id`], [`parent_id`], [`attr`],
/// [`attr_kind`], [`status_code`].
pub fn wait_for_spans(
    phoenix_url: &str,
    project: &str,
    trace_filter: impl Fn(&Value) -> bool,
    min_count: usize,
    timeout: Duration,
) -> Vec<Value> {
    wait_for(
        phoenix_url,
        project,
        Endpoint::Rest,
        trace_filter,
        min_count,
        timeout,
    )
}

/// Like [`wait_for_spans`], but from `GET /v1/projects/{project}/spans/otlpv1`:
/// spans in Phoenix's OTLP-like shape (see the module docs), attributes as a
/// list of `{key, value: {int_value | string_value | double_value | ...}}`.
/// The accessors of this module work on both shapes; [`otlp_attr_kind`] gives
/// the value's kind.
pub fn wait_for_otlp_spans(
    phoenix_url: &str,
    project: &str,
    trace_filter: impl Fn(&Value) -> bool,
    min_count: usize,
    timeout: Duration,
) -> Vec<Value> {
    wait_for(
        phoenix_url,
        project,
        Endpoint::Otlp,
        trace_filter,
        min_count,
        timeout,
    )
}

/// A filter for [`wait_for_spans`] / [`wait_for_otlp_spans`]: spans of one trace.
pub fn in_trace(trace: &str) -> impl Fn(&Value) -> bool + '_ {
    move |span| trace_id(span).eq_ignore_ascii_case(trace)
}

/// A filter for [`wait_for_spans`] / [`wait_for_otlp_spans`]: every span.
pub fn any_span(_: &Value) -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Rest,
    Otlp,
}

/// What one poll found.
#[derive(Debug)]
enum Poll {
    /// HTTP 404: the project does not exist yet.
    NoProject,
    /// All spans of the project.
    Spans(Vec<Value>),
}

fn wait_for(
    phoenix_url: &str,
    project: &str,
    endpoint: Endpoint,
    filter: impl Fn(&Value) -> bool,
    min_count: usize,
    timeout: Duration,
) -> Vec<Value> {
    let base = phoenix_url.trim_end_matches('/').to_owned();
    let deadline = Instant::now() + timeout;
    let mut polls = 0usize;
    let mut pause = POLL_INTERVAL;
    loop {
        polls += 1;
        let (b, p) = (base.clone(), project.to_owned());
        let last = off_runtime(move || fetch_project_spans(&b, &p, endpoint));
        if let Ok(Poll::Spans(spans)) = &last {
            // Reading a large project back is work for Phoenix too (every span, with its
            // attributes): the more it holds, the longer the wait before the next read, so
            // that the reads do not starve its ingestion.
            pause = POLL_INTERVAL
                .max(Duration::from_millis(10 * spans.len() as u64))
                .min(Duration::from_secs(10));
            let matching: Vec<Value> = spans.iter().filter(|s| filter(s)).cloned().collect();
            if matching.len() >= min_count {
                return matching;
            }
        }
        if Instant::now() >= deadline {
            let path = match endpoint {
                Endpoint::Rest => "spans",
                Endpoint::Otlp => "spans/otlpv1",
            };
            let seen = match &last {
                Err(e) => format!("the last request failed: {e}"),
                Ok(Poll::NoProject) => {
                    "HTTP 404: the project does not exist, so no span of it reached Phoenix \
                     (wrong project name / resource attribute `openinference.project.name`, \
                     exporter not flushed, or wrong endpoint?)"
                        .to_owned()
                }
                Ok(Poll::Spans(spans)) => {
                    let matching = spans.iter().filter(|s| filter(s)).count();
                    let mut text = format!(
                        "{} span(s) in the project, {matching} matching the filter:\n",
                        spans.len()
                    );
                    for span in spans.iter().take(100) {
                        let _ = writeln!(text, "  {}", describe(span));
                    }
                    if spans.len() > 100 {
                        let _ = writeln!(text, "  ... and {} more", spans.len() - 100);
                    }
                    text
                }
            };
            panic!(
                "timed out after {timeout:?} ({polls} polls) waiting for {min_count} matching span(s) \
                 in Phoenix project {project:?} at {base}/v1/projects/{project}/{path}; {seen}"
            );
        }
        std::thread::sleep(pause);
    }
}

/// One line about a span of either shape, for failure messages.
fn describe(span: &Value) -> String {
    format!(
        "name={:?} trace_id={} span_id={} parent_id={} status={} attributes={}",
        span_name(span),
        trace_id(span),
        span_id(span),
        parent_id(span).unwrap_or("-"),
        status_code(span),
        span.get("attributes")
            .map(Value::to_string)
            .unwrap_or_default()
    )
}

fn fetch_project_spans(base: &str, project: &str, endpoint: Endpoint) -> Result<Poll, String> {
    let client = client()?;
    let mut spans = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut url = match endpoint {
            // Oldest first, so that spans keep the order they started in.
            Endpoint::Rest => format!(
                "{base}/v1/projects/{}/spans?limit={PAGE_LIMIT}&sort=start_time&order=asc",
                encode(project)
            ),
            Endpoint::Otlp => {
                format!(
                    "{base}/v1/projects/{}/spans/otlpv1?limit={PAGE_LIMIT}",
                    encode(project)
                )
            }
        };
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(&encode(c));
        }
        let resp = client
            .get(&url)
            .send()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(Poll::NoProject);
        }
        if !(200..300).contains(&status) {
            let body = resp.text().unwrap_or_default();
            return Err(format!("GET {url}: HTTP {status}: {body}"));
        }
        let page: Value = resp
            .json()
            .map_err(|e| format!("GET {url}: invalid JSON: {e}"))?;
        match page.get("data") {
            Some(Value::Array(data)) => spans.extend(data.iter().cloned()),
            _ => return Err(format!("GET {url}: no `data` array in {page}")),
        }
        match page.get("next_cursor") {
            Some(Value::String(next)) if !next.is_empty() => cursor = Some(next.clone()),
            _ => {
                if endpoint == Endpoint::Otlp {
                    spans.sort_by_key(|s| {
                        s.get("start_time_unix_nano")
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                    });
                }
                return Ok(Poll::Spans(spans));
            }
        }
    }
    Err(format!(
        "more than {MAX_PAGES} pages of spans in project {project:?}"
    ))
}

fn client() -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(Duration::from_secs(3))
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// An error and its sources, `a: b: c` (reqwest's own message hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

/// Runs `f` on a fresh thread: reqwest's blocking client panics when used or
/// dropped inside an async runtime, and tests may well be `#[tokio::test]`s.
fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    match std::thread::spawn(f).join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// TCP connect to the host:port of an `http://host:port` URL.
fn tcp_probe(endpoint: &str) -> Result<(), String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let addrs: Vec<_> = authority
        .to_socket_addrs()
        .map_err(|e| format!("bad address {authority:?}: {e}"))?
        .collect();
    let mut last = format!("no address for {authority:?}");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

// ---------------------------------------------------------------------------
// Accessors (REST and otlpv1 shapes)
// ---------------------------------------------------------------------------

fn str_at<'a>(span: &'a Value, pointers: &[&str]) -> Option<&'a str> {
    pointers
        .iter()
        .find_map(|p| span.pointer(p).and_then(Value::as_str))
}

/// The span's name (`""` if absent).
pub fn span_name(span: &Value) -> &str {
    str_at(span, &["/name"]).unwrap_or("")
}

/// The span id, 16 hex digits (REST `context.span_id`, otlpv1 `span_id`).
pub fn span_id(span: &Value) -> &str {
    str_at(span, &["/context/span_id", "/span_id"]).unwrap_or("")
}

/// The trace id, 32 hex digits (REST `context.trace_id`, otlpv1 `trace_id`).
pub fn trace_id(span: &Value) -> &str {
    str_at(span, &["/context/trace_id", "/trace_id"]).unwrap_or("")
}

/// The parent span id, `None` for a root span (REST `parent_id`, otlpv1 `parent_span_id`).
pub fn parent_id(span: &Value) -> Option<&str> {
    str_at(span, &["/parent_id", "/parent_span_id"]).filter(|s| !s.is_empty())
}

/// `"UNSET"`, `"OK"` or `"ERROR"` (REST `status_code`; otlpv1 `status.code` 0/1/2 mapped).
pub fn status_code(span: &Value) -> &str {
    if let Some(code) = str_at(span, &["/status_code"]) {
        return code;
    }
    match span.pointer("/status/code") {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => "UNSET",
            Some(1) => "OK",
            Some(2) => "ERROR",
            _ => "?",
        },
        Some(Value::String(s)) => match s.as_str() {
            "STATUS_CODE_UNSET" => "UNSET",
            "STATUS_CODE_OK" => "OK",
            "STATUS_CODE_ERROR" => "ERROR",
            other => other,
        },
        _ => "",
    }
}

/// The status message (`""` if none).
pub fn status_message(span: &Value) -> &str {
    str_at(span, &["/status_message", "/status/message"]).unwrap_or("")
}

/// A span attribute by its full dotted key, e.g. `attr(&span, "gen_ai.usage.input_tokens")`.
///
/// REST shape: the value as Phoenix returns it (`1234`, `"1234"`, `0.5`,
/// `true`, `["a","b"]`); flat dotted keys and nested objects both work.
/// otlpv1 shape: the one non-null field of the attribute's AnyValue (for
/// `{"int_value": 1234, ...}` that is `1234`; arrays give `{"values": [...]}`).
pub fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    match span.get("attributes")? {
        Value::Object(_) => lookup_dotted(span.get("attributes")?, key),
        Value::Array(list) => otlp_entry(list, key)
            .and_then(any_value_inner)
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Walks `key` through `obj`, accepting any split of the dotted key between
/// flat keys and nested objects (`{"a.b": 1}`, `{"a": {"b": 1}}`, `{"a": {"b.c": 1}}`).
fn lookup_dotted<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    if let Some(v) = map.get(key) {
        return Some(v);
    }
    for (i, _) in key.match_indices('.') {
        if let Some(inner) = map.get(&key[..i]) {
            if let Some(v) = lookup_dotted(inner, &key[i + 1..]) {
                return Some(v);
            }
        }
    }
    None
}

fn otlp_entry<'a>(list: &'a [Value], key: &str) -> Option<&'a Value> {
    list.iter()
        .find(|kv| kv.get("key").and_then(Value::as_str) == Some(key))
        .and_then(|kv| kv.get("value"))
}

/// The kind and the non-null field of an OTLP AnyValue, in Phoenix's
/// snake_case (`int_value`) or proto3 JSON camelCase (`intValue`).
fn any_value_inner(any: &Value) -> Option<(&'static str, &Value)> {
    const FIELDS: [(&str, &str, &str); 7] = [
        ("string_value", "stringValue", "string"),
        ("int_value", "intValue", "int"),
        ("double_value", "doubleValue", "double"),
        ("bool_value", "boolValue", "bool"),
        ("array_value", "arrayValue", "array"),
        ("kvlist_value", "kvlistValue", "kvlist"),
        ("bytes_value", "bytesValue", "bytes"),
    ];
    let map = any.as_object()?;
    FIELDS.iter().find_map(|(snake, camel, kind)| {
        map.get(*snake)
            .or_else(|| map.get(*camel))
            .filter(|v| !v.is_null())
            .map(|v| (*kind, v))
    })
}

/// Converts an OTLP AnyValue to plain JSON (`{"int_value": 3}` → `3`,
/// proto3-JSON `{"intValue": "3"}` → `3`, arrays → JSON arrays, kvlists → objects).
fn any_value_plain(kind: &str, inner: &Value) -> Value {
    match kind {
        "int" => match inner {
            Value::String(s) => s
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| inner.clone()),
            _ => inner.clone(),
        },
        "array" => Value::Array(
            inner
                .get("values")
                .and_then(Value::as_array)
                .map(|vals| {
                    vals.iter()
                        .map(|v| {
                            any_value_inner(v).map_or(Value::Null, |(k, i)| any_value_plain(k, i))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        "kvlist" => Value::Object(
            inner
                .get("values")
                .and_then(Value::as_array)
                .map(|kvs| {
                    kvs.iter()
                        .filter_map(|kv| {
                            let key = kv.get("key")?.as_str()?.to_owned();
                            let value = kv
                                .get("value")
                                .and_then(any_value_inner)
                                .map_or(Value::Null, |(k, i)| any_value_plain(k, i));
                            Some((key, value))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => inner.clone(),
    }
}

/// The kind and plain value of an attribute of an **otlpv1-shape** span:
/// `("int", 1234)`, `("string", "1234")`, `("double", 0.5)`, `("bool", true)`,
/// `("array", [..])`, `("kvlist", {..})`, `("bytes", ..)`. Given a REST-shape
/// span it falls back to [`attr_kind`].
pub fn otlp_attr_kind(span: &Value, key: &str) -> Option<(&'static str, Value)> {
    match span.get("attributes")? {
        Value::Array(list) => {
            let (kind, inner) = otlp_entry(list, key).and_then(any_value_inner)?;
            Some((kind, any_value_plain(kind, inner)))
        }
        _ => attr_kind(span, key),
    }
}

/// The kind and value of an attribute of a **REST-shape** span, from its JSON
/// type (which Phoenix preserves, see the module docs): a JSON integer is
/// `"int"`, a JSON float (`0.5`, `2.0`) `"double"`, a string `"string"` (so
/// `"1234"` is a string, never an int), `"bool"`, `"array"`, `"kvlist"` (object).
/// Given an otlpv1-shape span it defers to [`otlp_attr_kind`].
pub fn attr_kind(span: &Value, key: &str) -> Option<(&'static str, Value)> {
    if span.get("attributes").is_some_and(Value::is_array) {
        return otlp_attr_kind(span, key);
    }
    let v = attr(span, key)?;
    let kind = match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "double",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "kvlist",
        Value::Null => "null",
    };
    Some((kind, v.clone()))
}

/// An attribute as an integer, only if Phoenix holds it as an integer (not
/// as a string such as `"1234"`, nor as a float). Both shapes.
pub fn attr_i64(span: &Value, key: &str) -> Option<i64> {
    match attr_kind(span, key)? {
        ("int", v) => v.as_i64(),
        _ => None,
    }
}

/// An attribute as a string, only if Phoenix holds it as a string. Both shapes.
pub fn attr_str<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    attr(span, key).and_then(Value::as_str)
}

/// An attribute as an f64, only if it is a JSON number (int or double). Both shapes.
pub fn attr_f64(span: &Value, key: &str) -> Option<f64> {
    attr(span, key).and_then(Value::as_f64)
}

// ---------------------------------------------------------------------------
// rotel's debug log: what the collector stage received (resource included)
// ---------------------------------------------------------------------------

/// One span as rotel's detailed debug log printed it.
///
/// Attribute values are kept in rotel's notation, which carries the OTLP
/// wire type: `Str(gpt-4o)`, `Int(1234)`, `Double(0.5)`, `Bool(true)`,
/// `Slice(Str(a), Str(b))`, ...; see [`rotel_value`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotelSpan {
    /// Resource attributes of the span's ResourceSpans.
    pub resource: BTreeMap<String, String>,
    /// Instrumentation scope, `"name version"` as printed (e.g. `"llmtel 0.1.0"`).
    pub scope: String,
    /// Trace id, 32 hex digits.
    pub trace_id: String,
    /// Span id, 16 hex digits.
    pub span_id: String,
    /// Parent span id, `""` for a root.
    pub parent_id: String,
    /// Span name.
    pub name: String,
    /// OTel span kind, e.g. `SPAN_KIND_CLIENT`.
    pub kind: String,
    /// `STATUS_CODE_UNSET` / `STATUS_CODE_OK` / `STATUS_CODE_ERROR`.
    pub status_code: String,
    /// Status message (`""` if none).
    pub status_message: String,
    /// Span attributes (not those of events).
    pub attributes: BTreeMap<String, String>,
}

/// Path of rotel's debug log from `LLMTEL_ROTEL_LOG` (set by `.peers/env`);
/// panics with instructions when unset.
pub fn rotel_log_path() -> PathBuf {
    match std::env::var_os(ENV_ROTEL_LOG) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!("{HOW_TO_START} (missing environment variable: {ENV_ROTEL_LOG})"),
    }
}

/// Splits a rotel value like `Int(1234)` into `("int", "1234")`. Kinds:
/// `string` (Str), `int`, `double`, `bool`, `array` (Slice), `kvlist` (Map), `bytes`.
pub fn rotel_value(raw: &str) -> Option<(&'static str, &str)> {
    let (tag, rest) = raw.split_once('(')?;
    let inner = rest.strip_suffix(')')?;
    let kind = match tag {
        "Str" => "string",
        "Int" => "int",
        "Double" => "double",
        "Bool" => "bool",
        "Slice" => "array",
        "Map" => "kvlist",
        "Bytes" => "bytes",
        _ => return None,
    };
    Some((kind, inner))
}

/// Parses rotel's `--debug-log traces --debug-log-verbosity detailed` output.
pub fn parse_rotel_log(text: &str) -> Vec<RotelSpan> {
    enum Section {
        Resource,
        SpanAttrs,
        Other,
    }
    let mut spans: Vec<RotelSpan> = Vec::new();
    let mut resource: BTreeMap<String, String> = BTreeMap::new();
    let mut scope = String::new();
    let mut section = Section::Other;
    let mut last_key: Option<String> = None;

    for line in text.lines() {
        if line.starts_with("ResourceSpans #") {
            resource = BTreeMap::new();
            scope.clear();
            section = Section::Other;
            last_key = None;
            continue;
        }
        if line == "Resource attributes:" {
            section = Section::Resource;
            last_key = None;
            continue;
        }
        if let Some(rest) = line.strip_prefix("InstrumentationScope ") {
            scope = rest.trim().to_owned();
            section = Section::Other;
            continue;
        }
        if line.starts_with("Span #") {
            spans.push(RotelSpan {
                resource: resource.clone(),
                scope: scope.clone(),
                ..RotelSpan::default()
            });
            section = Section::Other;
            continue;
        }
        if line == "Attributes:" {
            section = Section::SpanAttrs;
            last_key = None;
            continue;
        }
        if let Some(entry) = line.strip_prefix("     -> ") {
            if let Some((k, v)) = entry.split_once(": ") {
                let (k, v) = (k.to_owned(), v.to_owned());
                match section {
                    Section::Resource => {
                        resource.insert(k.clone(), v);
                        last_key = Some(k);
                    }
                    Section::SpanAttrs => {
                        if let Some(span) = spans.last_mut() {
                            span.attributes.insert(k.clone(), v);
                        }
                        last_key = Some(k);
                    }
                    _ => {}
                }
                continue;
            }
        }
        if let Some(field) = line.strip_prefix("    ") {
            if let (Some((name, value)), Some(span)) = (field.split_once(" : "), spans.last_mut()) {
                let value = value.trim().to_owned();
                match name.trim() {
                    "Trace ID" => span.trace_id = value,
                    "Parent ID" => span.parent_id = value,
                    "ID" => span.span_id = value,
                    "Name" => span.name = value,
                    "Kind" => span.kind = value,
                    "Status code" => span.status_code = value,
                    "Status message" => span.status_message = value,
                    _ => {}
                }
                section = Section::Other;
                continue;
            }
        }
        if is_rotel_own_log_line(line) {
            continue;
        }
        let continues_value = matches!(section, Section::Resource | Section::SpanAttrs)
            && last_key.is_some()
            && !line.ends_with(':')
            && !line.starts_with("Start time:")
            && !line.starts_with("End time:")
            && !line.starts_with("ScopeSpans")
            && !line.starts_with("SpanEvent #")
            && !line.starts_with("SpanLink #");
        if !continues_value {
            section = Section::Other;
            last_key = None;
            continue;
        }
        // Continuation of a multi-line string value.
        if let Some(key) = &last_key {
            let target = match section {
                Section::Resource => resource.get_mut(key),
                Section::SpanAttrs => spans.last_mut().and_then(|s| s.attributes.get_mut(key)),
                _ => None,
            };
            if let Some(value) = target {
                value.push('\n');
                value.push_str(line);
            }
        }
    }
    spans
}

/// rotel's own log lines start with an RFC 3339 timestamp, e.g.
/// `2026-11-27T05:12:47.094733Z  INFO Starting Rotel.`
fn is_rotel_own_log_line(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

/// Polls rotel's debug log at `log_path` until at least `min_count` spans
/// satisfy `filter`, and returns them (in the order rotel received them).
/// Panics at `timeout` with what it saw. Only spans exported through rotel
/// show up; rotel prints a batch when it receives it, before forwarding it.
pub fn wait_for_rotel_spans(
    log_path: &Path,
    filter: impl Fn(&RotelSpan) -> bool,
    min_count: usize,
    timeout: Duration,
) -> Vec<RotelSpan> {
    let deadline = Instant::now() + timeout;
    loop {
        let read = std::fs::read(log_path).map(|b| String::from_utf8_lossy(&b).into_owned());
        let spans = read.as_deref().map(parse_rotel_log).unwrap_or_default();
        let matching: Vec<RotelSpan> = spans.iter().filter(|s| filter(s)).cloned().collect();
        if matching.len() >= min_count {
            return matching;
        }
        if Instant::now() >= deadline {
            let seen = match &read {
                Err(e) => format!("cannot read it: {e}"),
                Ok(_) => {
                    let mut text = format!(
                        "{} span(s) in it, {} matching:\n",
                        spans.len(),
                        matching.len()
                    );
                    for s in spans.iter().rev().take(50) {
                        let _ = writeln!(
                            text,
                            "  name={:?} trace_id={} span_id={} kind={} resource={:?}",
                            s.name, s.trace_id, s.span_id, s.kind, s.resource
                        );
                    }
                    text
                }
            };
            panic!(
                "timed out after {timeout:?} waiting for {min_count} matching span(s) in rotel's log {}; {seen}",
                log_path.display()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
