//! The collector's settings: defaults, `with_*` builders, and the TOML file (`--config`).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::ConfigError;

/// Protocol used to forward traces downstream (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (`grpc`).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`, the default).
    HttpProtobuf,
}

impl Protocol {
    /// Parses `grpc` or `http/protobuf` (the values of `OTEL_EXPORTER_OTLP_PROTOCOL`; `http`
    /// is `http/protobuf`, as the library reads it).
    ///
    /// # Errors
    /// [`ConfigError::Protocol`] for any other value, `http/json` included.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        match s.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" | "http" => Ok(Protocol::HttpProtobuf),
            other => Err(ConfigError::Protocol(other.to_owned())),
        }
    }
}

/// Settings of a [`Collector`](crate::Collector). Defaults: gRPC on `127.0.0.1:4317`, HTTP
/// on `127.0.0.1:4318`, `/metrics` on `127.0.0.1:9466`, a queue of 8192 spans, requests up
/// to 4 MiB, forwarded requests of at most 3 MiB, a failed forward retried for 30 s, prompt and
/// response content dropped, downstream from `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
/// `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` /
/// `OTEL_EXPORTER_OTLP_PROTOCOL`.
///
/// The TOML file has the same settings (every key optional):
///
/// ```toml
/// grpc_listen = "127.0.0.1:4317"
/// http_listen = "127.0.0.1:4318"
/// metrics_listen = "127.0.0.1:9466"
/// queue_size = 8192            # spans held for forwarding; past it senders get 429 / UNAVAILABLE
/// queue_bytes = 67108864       # and bytes of requests held (64 MiB, decoded size estimated):
///                              # the bound when spans are big
/// max_request_bytes = 4194304  # largest OTLP request accepted
/// max_connections = 256        # connections open at once on each OTLP listener
/// capture_content = false      # keep prompt/response attributes (truncated); off: dropped
/// budgets = "budgets.toml"     # record spend against these rules and store (the library's format)
///
/// [quality]                    # monitor error rate, latency, cost, evaluation results and
/// enabled = true               # user feedback per model and feature; llm_quality_* on /metrics
///
/// [alerts]                     # where the budgets' and the monitor's alerts go
/// alertmanager = "http://127.0.0.1:9093"        # Prometheus Alertmanager, /api/v2/alerts
/// webhooks = ["https://hooks.example.com/llm"]  # JSON webhooks
/// slack = "https://hooks.slack.com/services/…"  # a Slack incoming webhook
///
/// [forward]
/// endpoint = "http://otel-collector:4318"  # else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the
///                                      # traces URL, as is), else OTEL_EXPORTER_OTLP_ENDPOINT;
///                                      # never the collector's own listener (refused at start)
/// protocol = "http/protobuf"           # or "grpc"; else OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
///                                      # else OTEL_EXPORTER_OTLP_PROTOCOL
/// retry_for_secs = 30                  # a batch the downstream refuses is retried this long
///                                      # (at most 86400)
/// timeout_secs = 10                    # one forward attempt
/// headers = { authorization = "Bearer …" }  # on every forward, over OTEL_EXPORTER_OTLP_HEADERS
/// ca_file = "ca.pem"                   # an https downstream's private CA, on top of the
///                                      # platform's roots; else OTEL_EXPORTER_OTLP_CERTIFICATE
/// compression = "gzip"                 # or "none"; else OTEL_EXPORTER_OTLP_COMPRESSION
/// max_request_bytes = 3145728          # a request that grew past it (the stage adds ~600 B
///                                      # an LLM span) is forwarded as several
/// ```
///
/// An `https://` downstream is reached over TLS, over gRPC as over HTTP: rustls, the
/// platform's roots, and the CA of `ca_file` (else `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`,
/// else `OTEL_EXPORTER_OTLP_CERTIFICATE`).
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) grpc_listen: SocketAddr,
    pub(crate) http_listen: SocketAddr,
    pub(crate) metrics_listen: SocketAddr,
    pub(crate) queue_size: usize,
    pub(crate) queue_bytes: usize,
    pub(crate) max_request_bytes: usize,
    pub(crate) max_connections: usize,
    pub(crate) forward_max_request_bytes: usize,
    pub(crate) forward_endpoint: Option<Endpoint>,
    pub(crate) forward_protocol: Option<Protocol>,
    pub(crate) forward_headers: ForwardHeaders,
    pub(crate) forward_ca_file: Option<std::path::PathBuf>,
    pub(crate) forward_gzip: Option<bool>,
    pub(crate) retry_for: Duration,
    pub(crate) timeout: Duration,
    pub(crate) content: llmtel::ContentCapture,
    pub(crate) budgets: Option<llmtel_budget::Budgets>,
    pub(crate) alerts: Option<llmtel_alert::AlertDispatcher>,
    pub(crate) sinks: Vec<Arc<dyn llmtel::CallSink>>,
    pub(crate) quality: Option<llmtel_quality::Quality>,
    pub(crate) catalog: Option<Prices>,
}

/// The price catalog spans are priced with; its `Debug` says how many models it holds.
#[derive(Clone)]
pub(crate) struct Prices(pub(crate) Arc<llmtel::Catalog>);

impl fmt::Debug for Prices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Catalog({} models)", self.0.len())
    }
}

/// A downstream URL; its `Debug` hides user info and query (they may hold credentials).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Endpoint(pub(crate) String);

/// Headers sent with every forward; `Debug` shows their names only.
#[derive(Clone, Default)]
pub(crate) struct ForwardHeaders(pub(crate) Vec<(String, String)>);

impl fmt::Debug for ForwardHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}: (redacted)")))
            .finish()
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        let (scheme, rest) = s.split_once("://").unwrap_or(("", s));
        // User info ends at the last `@`: a password may hold `#`, `?` or `/` written raw.
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let hidden = s.len() > scheme.len() + 3 + rest.len();
        write!(
            f,
            "\"{scheme}://{rest}{}\"",
            if hidden { " (redacted)" } else { "" }
        )
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 4317)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 4318)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9466)),
            queue_size: 8192,
            queue_bytes: 64 * 1024 * 1024,
            max_request_bytes: 4 * 1024 * 1024,
            max_connections: 256,
            forward_max_request_bytes: llmtel::DEFAULT_MAX_EXPORT_BATCH_BYTES,
            forward_endpoint: None,
            forward_protocol: None,
            forward_headers: ForwardHeaders::default(),
            forward_ca_file: None,
            forward_gzip: None,
            retry_for: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            content: llmtel::ContentCapture::disabled(),
            budgets: None,
            alerts: None,
            sinks: Vec::new(),
            quality: None,
            catalog: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    grpc_listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    queue_size: Option<usize>,
    queue_bytes: Option<usize>,
    max_request_bytes: Option<usize>,
    max_connections: Option<usize>,
    capture_content: Option<bool>,
    /// A budgets file (the library's format: `[[rule]]` tables and a `[store]`).
    budgets: Option<String>,
    alerts: Option<FileAlerts>,
    quality: Option<FileQuality>,
    forward: Option<FileForward>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQuality {
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAlerts {
    alertmanager: Option<String>,
    #[serde(default)]
    webhooks: Vec<String>,
    slack: Option<String>,
}

impl FileAlerts {
    /// The dispatcher sending to every sink the table names, or `None` when it names none.
    fn dispatcher(self) -> Result<Option<llmtel_alert::AlertDispatcher>, ConfigError> {
        use llmtel_alert::{AlertmanagerSink, SlackSink, WebhookSink};
        let bad = |what: &str, e: llmtel_alert::AlertError| {
            ConfigError::Invalid(format!(
                "[alerts] {what}: {e} (give an http:// or https:// URL)"
            ))
        };
        let mut b = llmtel_alert::AlertDispatcher::builder();
        let mut any = false;
        if let Some(url) = &self.alertmanager {
            b = b.with_sink(Arc::new(
                AlertmanagerSink::new(url).map_err(|e| bad("alertmanager", e))?,
            ));
            any = true;
        }
        for url in &self.webhooks {
            b = b.with_sink(Arc::new(
                WebhookSink::new(url).map_err(|e| bad("webhooks", e))?,
            ));
            any = true;
        }
        if let Some(url) = &self.slack {
            b = b.with_sink(Arc::new(SlackSink::new(url).map_err(|e| bad("slack", e))?));
            any = true;
        }
        Ok(any.then(|| b.build()))
    }
}

/// The most `[forward] retry_for_secs` takes: one day.
const MAX_RETRY_FOR_SECS: u64 = 24 * 60 * 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForward {
    endpoint: Option<String>,
    protocol: Option<String>,
    retry_for_secs: Option<u64>,
    timeout_secs: Option<u64>,
    headers: Option<std::collections::BTreeMap<String, String>>,
    ca_file: Option<std::path::PathBuf>,
    compression: Option<String>,
    max_request_bytes: Option<usize>,
}

impl Config {
    /// The defaults (see [`Config`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a TOML file (see [`Config`] for the keys) over the defaults.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read, [`ConfigError::Parse`] when it is
    /// not valid TOML or has an unknown key or a wrong type (the message names it),
    /// [`ConfigError::Protocol`] / [`ConfigError::Invalid`] for a bad value.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text (see [`Config`] for the keys) over the defaults.
    ///
    /// # Errors
    /// As [`Config::from_file`], without [`ConfigError::Read`].
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<toml>".to_owned(),
            message: without_string_values(e.message())
                + &e.span()
                    .map(|r| format!(" (at byte {})", r.start))
                    .unwrap_or_default(),
        })?;
        let mut c = Config::default();
        if let Some(a) = file.grpc_listen {
            c.grpc_listen = a;
        }
        if let Some(a) = file.http_listen {
            c.http_listen = a;
        }
        if let Some(a) = file.metrics_listen {
            c.metrics_listen = a;
        }
        if let Some(n) = file.queue_size {
            c = c.with_queue_size(n)?;
        }
        if let Some(n) = file.queue_bytes {
            c = c.with_queue_bytes(n)?;
        }
        if let Some(n) = file.max_request_bytes {
            c = c.with_max_request_bytes(n)?;
        }
        if let Some(n) = file.max_connections {
            c = c.with_max_connections(n)?;
        }
        if file.capture_content == Some(true) {
            c = c.with_content_capture(llmtel::ContentCapture::enabled());
        }
        // Alerts first: the budgets built from their file send to them.
        if let Some(a) = file.alerts {
            if let Some(d) = a.dispatcher()? {
                c = c.with_alerts(d);
            }
        }
        if let Some(path) = file.budgets {
            c = c.with_budgets_file(&path)?;
        }
        if file.quality.is_some_and(|q| q.enabled) {
            let mut b = llmtel_quality::Quality::builder().with_events(false);
            if let Some(a) = &c.alerts {
                b = b.with_alerts(a.clone());
            }
            c = c.with_quality(b.build());
        }
        if let Some(f) = file.forward {
            if let Some(e) = f.endpoint {
                c = c.with_forward_endpoint(e)?;
            }
            if let Some(p) = f.protocol {
                c.forward_protocol = Some(Protocol::parse(&p)?);
            }
            if let Some(s) = f.retry_for_secs {
                if s > MAX_RETRY_FOR_SECS {
                    return Err(ConfigError::Invalid(format!(
                        "[forward] retry_for_secs = {s}: at most {MAX_RETRY_FOR_SECS} (one \
                         day); a batch the downstream refuses for longer is better dropped \
                         and counted"
                    )));
                }
                c.retry_for = Duration::from_secs(s);
            }
            if let Some(s) = f.timeout_secs {
                c = c.with_timeout(Duration::from_secs(s))?;
            }
            for (k, v) in f.headers.unwrap_or_default() {
                c = c.with_forward_header(k, v);
            }
            if let Some(ca) = f.ca_file {
                c = c.with_forward_ca_file(ca);
            }
            if let Some(v) = f.compression {
                c.forward_gzip = Some(parse_compression(&v, "[forward] compression")?);
            }
            if let Some(n) = f.max_request_bytes {
                c = c.with_forward_max_request_bytes(n)?;
            }
        }
        c.check_queue_room()?;
        Ok(c)
    }

    /// That every request the receivers accept (up to `max_request_bytes`) can be queued:
    /// `queue_bytes` must hold one at least, else a request valid on the wire would be
    /// refused as too large for good. (Its decoded structures may take more than the queue
    /// holds: such a request waits for an empty queue and then has it to itself, see
    /// [`with_queue_bytes`](Self::with_queue_bytes).) Checked when the file is read and when
    /// the collector starts, whatever order the settings were given in.
    pub(crate) fn check_queue_room(&self) -> Result<(), ConfigError> {
        if self.queue_bytes < self.max_request_bytes {
            return Err(ConfigError::Invalid(format!(
                "queue_bytes ({}) is below max_request_bytes ({}): a request the collector \
                 accepts could never be queued; set queue_bytes to at least {} or \
                 max_request_bytes to at most {}",
                self.queue_bytes, self.max_request_bytes, self.max_request_bytes, self.queue_bytes
            )));
        }
        Ok(())
    }

    /// Whether requests forwarded downstream are gzip-compressed (default: as
    /// `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, else `OTEL_EXPORTER_OTLP_COMPRESSION`, says;
    /// else not). Over gRPC with `grpc-encoding: gzip`, over HTTP with `Content-Encoding: gzip`.
    pub fn with_forward_gzip(mut self, on: bool) -> Self {
        self.forward_gzip = Some(on);
        self
    }

    /// Trusts the CA certificates of this PEM file for an `https://` downstream, on top of
    /// the platform's roots (else `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`, else
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`). Read when the collector starts.
    pub fn with_forward_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.forward_ca_file = Some(path.into());
        self
    }

    /// Sends the header `name: value` with every request forwarded downstream (an
    /// authorization or tenant header), over those of `OTEL_EXPORTER_OTLP_HEADERS` and
    /// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, which are sent too. Values never appear in
    /// `Debug` or in errors.
    pub fn with_forward_header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        let name = name.into();
        self.forward_headers
            .0
            .retain(|(old, _)| !old.eq_ignore_ascii_case(&name));
        self.forward_headers.0.push((name, value.into()));
        self
    }

    /// Listens for OTLP/gRPC on `addr` (port 0: any free port, see
    /// [`Collector::grpc_addr`](crate::Collector::grpc_addr)).
    pub fn with_grpc_listen(mut self, addr: SocketAddr) -> Self {
        self.grpc_listen = addr;
        self
    }

    /// Listens for OTLP/HTTP on `addr`.
    pub fn with_http_listen(mut self, addr: SocketAddr) -> Self {
        self.http_listen = addr;
        self
    }

    /// Serves `/metrics` on `addr`.
    pub fn with_metrics_listen(mut self, addr: SocketAddr) -> Self {
        self.metrics_listen = addr;
        self
    }

    /// Holds at most `spans` spans waiting to be forwarded (8,192 by default). Past it
    /// senders are told to retry later. A request of more spans than that is queued when
    /// the queue is empty and has it to itself until it is sent or given up on: a request
    /// the receivers accept is never refused as too large for the queue. When a request of
    /// more than half the queue (spans or bytes) does not fit, the queue is kept for it for
    /// 5 s: smaller requests are told to retry meanwhile, so that what is queued is
    /// forwarded and the big one, retried, gets in under steady traffic.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for 0.
    pub fn with_queue_size(mut self, spans: usize) -> Result<Self, ConfigError> {
        if spans == 0 {
            return Err(ConfigError::Invalid(
                "queue_size must be at least 1 span".into(),
            ));
        }
        self.queue_size = spans;
        Ok(self)
    }

    /// Holds at most `bytes` of OTLP requests waiting to be forwarded (64 MiB by default):
    /// each counted as its encoded size, decompressed, plus an estimate of what its decoded
    /// structures take beyond it (each resource, scope, span, event, link, attribute and
    /// array or map value: an attribute of a few bytes on the wire takes 100 or so once
    /// decoded), held until the request is sent or given up on. With [`with_queue_size`](Self::with_queue_size),
    /// what bounds the collector's memory while the downstream is slow or down, big spans
    /// (captured prompts) or small. Past it senders are told to retry later, as past the
    /// span count. Once a request has been run through the stage only its encoded bodies
    /// are held, and it holds only their size. A request whose decoded structures alone
    /// take more than the queue holds (one of many tiny attributes) is queued when the
    /// queue is empty, holding all of it until it is staged: a request the receivers accept
    /// is never refused as too large for the queue, and that one request, alone in the
    /// queue, can take more memory than `queue_bytes` until it is staged (it is at most
    /// `max_request_bytes` encoded).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] below 64 KiB; [`Collector::start`](crate::Collector::start)
    /// and [`Config::from_toml`] refuse it below `max_request_bytes` (4 MiB by default).
    pub fn with_queue_bytes(mut self, bytes: usize) -> Result<Self, ConfigError> {
        if bytes < 64 * 1024 {
            return Err(ConfigError::Invalid(
                "queue_bytes must be at least 65536".into(),
            ));
        }
        self.queue_bytes = bytes;
        Ok(self)
    }

    /// Accepts OTLP requests up to `bytes` (gRPC messages and HTTP bodies, decompressed). A
    /// bigger one is refused, HTTP `413` / gRPC `INVALID_ARGUMENT` (plain or gzip alike;
    /// neither is retried by OTLP senders, who would otherwise send the same batch again
    /// and again), and counted in `Stats::refused_too_large`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] below 1 KiB.
    pub fn with_max_request_bytes(mut self, bytes: usize) -> Result<Self, ConfigError> {
        if bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_request_bytes must be at least 1024".into(),
            ));
        }
        self.max_request_bytes = bytes;
        Ok(self)
    }

    /// Serves at most `n` connections at once on each OTLP listener (256 by default): one
    /// more is refused (OTLP/HTTP: `503` and closed; OTLP/gRPC: closed at once; its sender
    /// retries) and counted (`Stats::refused_connections`). The other limits of the
    /// listeners are fixed. OTLP/HTTP: a request head within 5 s, a connection idle for
    /// 30 s closed, 16 KiB of head, a body up to `max_request_bytes`. OTLP/gRPC: 100
    /// streams at once on a connection (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`), 32
    /// requests handled at once per connection (the others wait), 30 s for a request (its
    /// message read included; answered `CANCELLED`, which senders retry), a keepalive ping
    /// every 30 s answered within 10 s, a connection with no byte either way for 75 s
    /// closed.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for 0.
    pub fn with_max_connections(mut self, n: usize) -> Result<Self, ConfigError> {
        if n == 0 {
            return Err(ConfigError::Invalid(
                "max_connections must be at least 1".into(),
            ));
        }
        self.max_connections = n;
        Ok(self)
    }

    /// Forwards to `endpoint` (for HTTP, the base URL: `/v1/traces` is added) instead of
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] unless it starts with `http://` or `https://`.
    pub fn with_forward_endpoint(
        mut self,
        endpoint: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let e = endpoint.into();
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "forward endpoint {:?} must start with http:// or https://",
                Endpoint(e)
            )));
        }
        self.forward_endpoint = Some(Endpoint(e));
        Ok(self)
    }

    /// Records the spend of every priced span against `budgets` (its rules, store and
    /// alerts), by the scopes the span's attributes give: spend from every service in one
    /// place. Spend counts whether or not the downstream takes the spans.
    pub fn with_budgets(mut self, budgets: llmtel_budget::Budgets) -> Self {
        self.budgets = Some(budgets);
        self
    }

    /// Hands every LLM call the collector prices to `sink`, as llmtel's layer hands calls in
    /// process: `llmtel_quality`'s monitor, a call log, an OpenTelemetry metrics sink. (The
    /// Prometheus series of the in-process stack are always on `/metrics`.)
    pub fn with_sink(mut self, sink: Arc<dyn llmtel::CallSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Monitors the quality of every LLM call the collector prices with `quality`'s
    /// detectors (error rate, latency, cost; its alerts go where it was built to send them),
    /// hands it the evaluation results and user feedback the spans carry (a
    /// `gen_ai.evaluation.result` event on a call's span, or a span with
    /// `gen_ai.evaluation.name` about its parent), and serves its `llm_quality_*` series on
    /// `/metrics`. Build it `with_events(false)`: the results are the senders' own spans,
    /// forwarded as they came.
    pub fn with_quality(mut self, quality: llmtel_quality::Quality) -> Self {
        self.sinks.push(Arc::new(quality.sink()));
        self.quality = Some(quality);
        self
    }

    /// Sends the alerts of budgets built from a file ([`Config::with_budgets_file`]) through
    /// `alerts` (threshold crossings, unpriced models, refused store writes). Budgets given
    /// with [`Config::with_budgets`] carry their own dispatcher.
    pub fn with_alerts(mut self, alerts: llmtel_alert::AlertDispatcher) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// As [`Config::with_budgets`], from a budgets file in the library's format
    /// (`[[rule]]` tables and a `[store]` table: memory, SQLite or Redis, with its
    /// `on_store_error`), alerting through [`Config::with_alerts`] when set.
    ///
    /// # Errors
    /// [`ConfigError::Budgets`] when the file cannot be read or parsed or its store cannot be
    /// opened (the message names the rule, field or store at fault).
    pub fn with_budgets_file(self, path: &str) -> Result<Self, ConfigError> {
        let fail = |message: String| ConfigError::Budgets {
            path: path.to_owned(),
            message,
        };
        let cfg = llmtel_budget::Config::load(Path::new(path)).map_err(|e| fail(e.to_string()))?;
        let mut builder = llmtel_budget::from_config(&cfg).map_err(|e| fail(e.to_string()))?;
        if let Some(alerts) = &self.alerts {
            builder = builder.with_alerts(alerts.clone());
        }
        Ok(self.with_budgets(builder.build()))
    }

    /// The custom attributes the budget rules are scoped by (`Scope::Attribute`), as
    /// `'static` names (one small allocation per rule, kept for the process).
    pub(crate) fn budget_attributes(&self) -> Vec<&'static str> {
        let Some(b) = &self.budgets else {
            return Vec::new();
        };
        let mut names: Vec<&'static str> = Vec::new();
        for rule in b.rules() {
            if let llmtel_budget::Scope::Attribute(name) = &rule.scope {
                if !names.iter().any(|n| n == name) {
                    names.push(Box::leak(name.clone().into_boxed_str()));
                }
            }
        }
        names
    }

    /// Applies `policy` to prompt and response attributes (`gen_ai.input.messages`,
    /// `input.value`, ...) of every span. Default: disabled, they are dropped.
    pub fn with_content_capture(mut self, policy: llmtel::ContentCapture) -> Self {
        self.content = policy;
        self
    }

    /// Prices spans with `catalog` instead of the built-in one (for example the built-in
    /// catalog with a price file merged over it: `llmtel::pricing::PriceSources::load`, which
    /// `llmtel collector` runs for `LLMTEL_PRICES` / `LLMTEL_PRICES_URL`).
    pub fn with_catalog(mut self, catalog: impl Into<Arc<llmtel::Catalog>>) -> Self {
        self.catalog = Some(Prices(catalog.into()));
        self
    }

    /// Forwards with `protocol` instead of `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` /
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn with_forward_protocol(mut self, protocol: Protocol) -> Self {
        self.forward_protocol = Some(protocol);
        self
    }

    /// Forwards requests of at most `bytes` (encoded, before compression): a request that is
    /// bigger once priced and rewritten (the stage adds ~600 bytes to an LLM span) goes
    /// downstream as several, spans in order, each under its own resource and scope, each
    /// retried and counted on its own. Default 3 MiB
    /// ([`llmtel::DEFAULT_MAX_EXPORT_BATCH_BYTES`]), under the 4 MiB a gRPC receiver takes by
    /// default (the OpenTelemetry Collector's, Phoenix's, tonic's); lower it for a downstream
    /// that takes less.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] below 64 KiB.
    pub fn with_forward_max_request_bytes(mut self, bytes: usize) -> Result<Self, ConfigError> {
        if bytes < 64 * 1024 {
            return Err(ConfigError::Invalid(
                "[forward] max_request_bytes must be at least 65536".into(),
            ));
        }
        self.forward_max_request_bytes = bytes;
        Ok(self)
    }

    /// Retries a batch the downstream refuses (or cannot be reached for) for `d` before
    /// dropping it (counted as `export_failed`). Its spans stay in the queue meanwhile. A `d`
    /// too long to be a point in time (`Duration::MAX`) retries without end.
    pub fn with_retry_for(mut self, d: Duration) -> Self {
        self.retry_for = d;
        self
    }

    /// Gives one forward attempt at most `d`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for zero.
    pub fn with_timeout(mut self, d: Duration) -> Result<Self, ConfigError> {
        if d.is_zero() {
            return Err(ConfigError::Invalid("timeout must be above zero".into()));
        }
        self.timeout = d;
        Ok(self)
    }

    /// Whether forwarded requests are gzip-compressed: the configured setting, else the
    /// environment's (see [`Config::with_forward_gzip`]).
    pub(crate) fn forward_gzip(&self) -> Result<bool, ConfigError> {
        if let Some(on) = self.forward_gzip {
            return Ok(on);
        }
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ] {
            if let Ok(v) = std::env::var(var) {
                if !v.trim().is_empty() {
                    return parse_compression(&v, var);
                }
            }
        }
        Ok(false)
    }

    /// The downstream URL to send to and the protocol: the configured ones, else the
    /// environment's (see [`Config::downstream_with`]).
    pub(crate) fn downstream(&self) -> Result<(Endpoint, Protocol), ConfigError> {
        self.downstream_with(|var| std::env::var(var).ok())
    }

    /// The downstream URL to send to and the protocol, the environment read with `env`, as
    /// the OTLP exporter specification says. Protocol: the configured one, else
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else
    /// `http/protobuf`. Endpoint: the configured one, else
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used as is (the traces URL itself), else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`. Over HTTP, `/v1/traces` is added to the configured
    /// endpoint and to `OTEL_EXPORTER_OTLP_ENDPOINT` (base URLs), never to
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub(crate) fn downstream_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Endpoint, Protocol), ConfigError> {
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let protocol = match self.forward_protocol {
            Some(p) => p,
            None => match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            {
                Some(p) => Protocol::parse(&p)?,
                None => Protocol::HttpProtobuf,
            },
        };
        let (url, as_is) = match &self.forward_endpoint {
            Some(e) => (e.0.clone(), false),
            None => match var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
                Some(e) => (e, true),
                None => (
                    var("OTEL_EXPORTER_OTLP_ENDPOINT").ok_or(ConfigError::NoDownstream)?,
                    false,
                ),
            },
        };
        // The same check as a configured endpoint's.
        let url = Config::default()
            .with_forward_endpoint(url)?
            .forward_endpoint
            .ok_or(ConfigError::NoDownstream)?
            .0;
        let url = match protocol {
            Protocol::HttpProtobuf if !as_is => {
                format!("{}/v1/traces", url.trim_end_matches('/'))
            }
            _ => url,
        };
        Ok((Endpoint(url), protocol))
    }
}

/// `gzip` or `none`, from `setting`.
fn parse_compression(v: &str, setting: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "gzip" => Ok(true),
        "none" => Ok(false),
        other => Err(ConfigError::Invalid(format!(
            "{setting} = {other:?}: the collector forwards with \"gzip\" or \"none\""
        ))),
    }
}

/// A parser's message without the string values it quotes (`invalid type: string "…"`): a
/// value in the wrong place may be a secret (`headers = "authorization=Bearer …"`, written as
/// `OTEL_EXPORTER_OTLP_HEADERS` is, where a table is expected). The byte offset the caller
/// adds says where it is.
fn without_string_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("string \"") {
        let (before, quoted) = rest.split_at(at + "string ".len());
        out.push_str(before);
        out.push_str("(value not shown)");
        // Past the closing quote (a quote escaped inside the value does not end it).
        let mut escaped = false;
        let end = quoted[1..]
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .map_or(quoted.len(), |(i, _)| i + 2);
        rest = &quoted[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_in_the_wrong_place_is_not_repeated_in_the_error() {
        let e = Config::from_toml(
            "[forward]\nheaders = \"authorization=Bearer sk-live-TESTFAKE\\\"0123\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("TESTFAKE"), "{e}");
        assert!(!e.contains("0123"), "{e}");
        assert!(e.contains("(value not shown)"), "{e}");
        assert!(e.contains("expected a map"), "{e}");
        assert!(e.contains("at byte"), "{e}");
        assert_eq!(
            without_string_values(r#"invalid value: string "a\"b", expected x; string "c""#),
            "invalid value: string (value not shown), expected x; string (value not shown)"
        );
    }

    #[test]
    fn a_full_file_sets_every_setting() {
        let c = Config::from_toml(
            r#"
grpc_listen = "127.0.0.1:14317"
http_listen = "127.0.0.1:14318"
metrics_listen = "127.0.0.1:19466"
queue_size = 10
max_request_bytes = 2048
capture_content = true
[forward]
endpoint = "http://127.0.0.1:4000"
protocol = "grpc"
retry_for_secs = 5
timeout_secs = 2
"#,
        )
        .unwrap();
        assert_eq!(c.grpc_listen.port(), 14317);
        assert_eq!(c.http_listen.port(), 14318);
        assert_eq!(c.metrics_listen.port(), 19466);
        assert_eq!((c.queue_size, c.max_request_bytes), (10, 2048));
        assert!(c.content.apply("x").is_some());
        let (e, p) = c.downstream().unwrap();
        assert_eq!((e.0.as_str(), p), ("http://127.0.0.1:4000", Protocol::Grpc));
        assert_eq!(c.retry_for, Duration::from_secs(5));
        assert_eq!(c.timeout, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let e = Config::from_toml("queue_size = 0").unwrap_err().to_string();
        assert!(e.contains("queue_size must be at least 1"), "{e}");
        let e = Config::from_toml("[forward]\nprotocol = \"http/json\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("use \"grpc\" or \"http/protobuf\""), "{e}");
        // `http`, which the library takes as `http/protobuf`, is the same here.
        assert_eq!(Protocol::parse(" http ").ok(), Some(Protocol::HttpProtobuf));
        let e = Config::from_toml("[forward]\nendpoint = \"127.0.0.1:4317\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must start with http://"), "{e}");
        let e = Config::from_toml("grpc_listen = \"localhost\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid collector config"), "{e}");
    }

    #[test]
    fn endpoint_debug_hides_credentials() {
        let e = Endpoint("https://user:hunter2@otlp.example:4318/x?token=s3cret".into());
        let d = format!("{e:?}");
        assert!(!d.contains("hunter2") && !d.contains("s3cret"), "{d}");
        assert!(d.contains("otlp.example:4318/x"), "{d}");
        // A password holding `#`, `?` or `/` written raw: cut there first, its start was
        // shown.
        for raw in ["pa#ss", "pa?ss", "pa/ss"] {
            let e = Endpoint(format!("https://u:{raw}@otlp.example:4318"));
            let d = format!("{e:?}");
            assert!(!d.contains("pa"), "{d}");
            assert!(
                d.contains("otlp.example:4318") && d.contains("(redacted)"),
                "{d}"
            );
        }
    }
}
