//! Sinks that POST JSON over HTTP: generic webhook, Slack, Alertmanager API v2.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::alert::{Alert, AlertState};
use crate::sink::{AlertError, AlertSink};

/// Timeout, retry, header and TLS policy shared by the HTTP sinks.
///
/// Redirects are never followed: a 3xx answer is a failure ([`AlertError::Status`]) that
/// names where it points (scheme, host and port), so that the sink can be given that URL.
///
/// `Debug` never shows header values (they carry tokens): each one prints as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Timeout of one request (connect + response). Default 5 s.
    pub timeout: Duration,
    /// Retries after the first attempt on a transport error, a 5xx or a 429. Default 3.
    pub retries: u32,
    /// Backoff before the first retry, doubled each time. Default 200 ms.
    pub backoff: Duration,
    /// Upper bound of one backoff. Default 5 s.
    pub max_backoff: Duration,
    /// Extra headers (`Authorization`, ...).
    pub headers: Vec<(String, String)>,
    /// A PEM file of CA certificates trusted on top of the platform's roots (a private CA in
    /// front of a webhook or Alertmanager). Default none. Needs the `tls` feature (default).
    pub ca_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            headers: Vec::new(),
            ca_file: None,
        }
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, _)| (k.as_str(), REDACTED))
            .collect();
        f.debug_struct("HttpConfig")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("max_backoff", &self.max_backoff)
            .field("headers", &headers)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl HttpConfig {
    /// Timeout of one request (connect + response).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries after the first attempt on a transport error, a 5xx or a 429.
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Backoff before the first retry (doubled each time) and its upper bound.
    pub fn with_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = first;
        self.max_backoff = max;
        self
    }

    /// Adds a header sent with every request (its value never appears in `Debug`).
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }

    /// Trusts the CA certificates of this PEM file on top of the platform's roots.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
}

/// What `Debug` and errors show instead of a secret.
const REDACTED: &str = "<redacted>";

/// A URL as safe to show: scheme, host and port only; any user info, path and query (where
/// webhook tokens live: Slack's URL *is* the secret) become `<redacted>`.
pub(crate) fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if (u.path().is_empty() || u.path() == "/") && u.query().is_none() {
                String::new()
            } else {
                format!("/{REDACTED}")
            };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
        Err(_) => REDACTED.to_owned(),
    }
}

/// Removes URL paths, queries and user info from free text (transport error chains), and the
/// values of `key=` / `token=` style parameters and `Bearer` tokens, whatever quotes them.
pub(crate) fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The scheme: the alphanumeric run before "://".
        let head = &rest[..i];
        let scheme_start = head
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map_or(0, |j| j + 1);
        out.push_str(&head[..scheme_start]);
        let after = &rest[i + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | '<' | ','))
            .unwrap_or(after.len());
        let url = &rest[scheme_start..i + 3 + end];
        out.push_str(&display_url(url));
        rest = &after[end..];
    }
    out.push_str(rest);
    redact_tokens(&out)
}

fn redact_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let words: Vec<&str> = text.split(' ').collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if i > 0 {
            out.push(' ');
        }
        let lower = w.to_ascii_lowercase();
        if lower == "bearer" && i + 1 < words.len() {
            out.push_str(w);
            out.push(' ');
            out.push_str(REDACTED);
            i += 2;
            continue;
        }
        let secretish = ["key=", "token=", "password=", "secret=", "sig="];
        if let Some(k) = secretish
            .iter()
            .find_map(|k| lower.find(k).map(|p| p + k.len()))
        {
            out.push_str(&w[..k]);
            out.push_str(REDACTED);
        } else if lower.starts_with("sk-") || w.starts_with("AIza") || lower.starts_with("xox") {
            out.push_str(REDACTED);
        } else {
            out.push_str(w);
        }
        i += 1;
    }
    out
}

/// A transport error as text: reqwest's message and its causes, without the URL.
fn transport_message(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !msg.contains(&s_text) {
            msg.push_str(": ");
            msg.push_str(&s_text);
        }
        source = s.source();
    }
    redact_text(&msg)
}

struct Poster {
    name: &'static str,
    url: String,
    config: HttpConfig,
    /// `None` only while the poster is dropped (see its `Drop`).
    client: Option<reqwest::blocking::Client>,
}

impl Drop for Poster {
    /// reqwest's blocking client shuts its own runtime down when dropped, which panics on
    /// a thread of an async runtime: where an app on tokio often drops its last budget,
    /// monitor or collector, and with it this sink. It is dropped on a thread of its own.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // (Should no thread start, the client is dropped here, as it always was.)
            let _ = std::thread::Builder::new()
                .name("llmtel-alert-drop".into())
                .spawn(move || drop(client));
        }
    }
}

impl fmt::Debug for Poster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poster")
            .field("name", &self.name)
            .field("url", &display_url(&self.url))
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Poster {
    fn new(name: &'static str, url: &str, config: HttpConfig) -> Result<Self, AlertError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            AlertError::Config(format!(
                "{name}: invalid URL {}: {e}; give an absolute http:// or https:// URL",
                display_url(url)
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(AlertError::Config(format!(
                "{name}: unsupported URL scheme `{}`: give an http:// or https:// URL",
                parsed.scheme()
            )));
        }
        if parsed.scheme() == "https" && !cfg!(feature = "tls") {
            return Err(AlertError::Config(format!(
                "{name}: {} is https but llmtel-alert was built without its `tls` feature \
                 (a default feature): enable it",
                display_url(url)
            )));
        }
        // A header that is not valid HTTP fails every request before it is sent: said now,
        // not retried with backoff on every alert.
        for (k, v) in &config.headers {
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(v).is_err()
            {
                return Err(AlertError::Config(format!(
                    "{name}: header `{k}` is not a valid HTTP header name and value (no line \
                     breaks or control characters): fix it in the sink's headers"
                )));
            }
        }
        // No redirect is followed: reqwest turns the POST of a 301, 302 or 303 into a GET
        // without its body (and drops `Authorization` across hosts), which a receiver such as
        // Alertmanager answers 200: the alert was counted delivered and never posted. A 3xx
        // is a failure that names where to point the sink instead (see `post`).
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &config.ca_file {
            builder = with_ca_file(builder, name, path)?;
        }
        // reqwest's blocking client starts a runtime of its own and waits for it, which
        // panics on a thread of an async runtime (an app's `#[tokio::main]`, where sinks are
        // usually built): it is built on a thread of its own.
        let built = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("llmtel-alert-client".into())
                .spawn_scoped(scope, move || builder.build())
                .map(|h| h.join())
        });
        let client = match built {
            Ok(Ok(Ok(client))) => client,
            Ok(Ok(Err(e))) => {
                return Err(AlertError::Config(format!(
                    "{name}: HTTP client: {}",
                    transport_message(e)
                )));
            }
            Ok(Err(_)) | Err(_) => {
                return Err(AlertError::Config(format!(
                    "{name}: HTTP client: could not be built (no thread to build it on)"
                )));
            }
        };
        Ok(Poster {
            name,
            url: url.to_string(),
            config,
            client: Some(client),
        })
    }
    /// POSTs `body`, retrying transport errors, 5xx and 429 with exponential backoff, or
    /// after the receiver's `Retry-After` (seconds, at most [`MAX_RETRY_AFTER`]) when longer.
    fn post(&self, body: &Value) -> Result<(), AlertError> {
        let mut backoff = self.config.backoff.min(self.config.max_backoff);
        let mut attempt = 0;
        let Some(client) = &self.client else {
            return Err(AlertError::Config(format!("{}: shut down", self.name)));
        };
        loop {
            let mut req = client.post(&self.url).json(body);
            for (k, v) in &self.config.headers {
                req = req.header(k, v);
            }
            let mut retry_after = None;
            let err = match req.send() {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) if resp.status().is_redirection() => {
                    // The same answer on every try: not retried.
                    return Err(self.redirected(&resp));
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    // Slack answers its rate limit (about a message a second) with a 429 and
                    // `Retry-After`: retrying sooner loses the alert.
                    retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                    let text: String = resp.text().unwrap_or_default().chars().take(200).collect();
                    let e = AlertError::Status {
                        sink: self.name.to_string(),
                        status,
                        body: redact_text(&text),
                    };
                    if !(status >= 500 || status == 429) {
                        return Err(e);
                    }
                    e
                }
                Err(e) => {
                    // A request that cannot be built or a redirect refused fails the same way
                    // on every try.
                    let permanent = e.is_builder() || e.is_redirect();
                    let err = AlertError::Transport {
                        sink: self.name.to_string(),
                        message: transport_message(e),
                    };
                    if permanent {
                        return Err(err);
                    }
                    err
                }
            };
            if attempt >= self.config.retries {
                return Err(err);
            }
            attempt += 1;
            std::thread::sleep(retry_after.map_or(backoff, |r| r.max(backoff)));
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }
}

impl Poster {
    /// The failure for a redirect, which is never followed: where it points, as safe to
    /// show (scheme, host and port), and what to do.
    fn redirected(&self, resp: &reqwest::blocking::Response) -> AlertError {
        let to = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|location| {
                // A relative `Location` is relative to the URL posted to.
                reqwest::Url::parse(&self.url)
                    .and_then(|base| base.join(location))
                    .ok()
            })
            .map_or_else(
                || "an unreadable Location".to_owned(),
                |u| display_url(u.as_str()),
            );
        AlertError::Status {
            sink: self.name.to_string(),
            status: resp.status().as_u16(),
            body: format!(
                "the sink answered with a redirect to {to}, which is not followed (the alert \
                 would not be posted there): configure that URL directly"
            ),
        }
    }
}

/// The longest `Retry-After` a sink waits for (the dispatcher's one thread serves every
/// sink): past it, it retries sooner.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

#[cfg(feature = "tls")]
fn with_ca_file(
    builder: reqwest::blocking::ClientBuilder,
    name: &str,
    path: &Path,
) -> Result<reqwest::blocking::ClientBuilder, AlertError> {
    let pem = std::fs::read(path).map_err(|e| {
        AlertError::Config(format!(
            "{name}: cannot read the CA file {}: {e}; give a readable PEM file (ca_file)",
            path.display()
        ))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            AlertError::Config(format!(
                "{name}: the CA file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ))
        })?;
    Ok(builder.tls_certs_merge(certs))
}

#[cfg(not(feature = "tls"))]
fn with_ca_file(
    _builder: reqwest::blocking::ClientBuilder,
    name: &str,
    _path: &Path,
) -> Result<reqwest::blocking::ClientBuilder, AlertError> {
    Err(AlertError::Config(format!(
        "{name}: ca_file needs llmtel-alert's `tls` feature (a default feature): enable it"
    )))
}

/// Escapes text for Slack's `mrkdwn` (`&`, `<`, `>`), so that no value in it can ping
/// (`<!channel>`), mention (`<@U…>`) or link (`<https://…|…>`).
pub fn escape_slack(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn rfc3339(t: jiff::Timestamp) -> String {
    t.to_string()
}

/// POSTs each batch as JSON to any URL:
/// `{"alerts": [{"name", "state", "severity", "labels", "annotations", "starts_at", "ends_at"}]}`.
#[derive(Debug)]
pub struct WebhookSink {
    poster: Poster,
}

impl WebhookSink {
    /// A webhook sink with the default [`HttpConfig`].
    ///
    /// # Errors
    /// [`AlertError::Config`] for an invalid URL.
    pub fn new(url: &str) -> Result<Self, AlertError> {
        Self::with_config(url, HttpConfig::default())
    }

    /// A webhook sink with its own timeout, retries and headers.
    ///
    /// # Errors
    /// [`AlertError::Config`] for an invalid URL.
    pub fn with_config(url: &str, config: HttpConfig) -> Result<Self, AlertError> {
        Ok(WebhookSink {
            poster: Poster::new("webhook", url, config)?,
        })
    }

    /// The JSON body sent for a batch.
    pub fn body(alerts: &[Alert]) -> Value {
        json!({ "alerts": alerts })
    }
}

impl AlertSink for WebhookSink {
    fn name(&self) -> &str {
        "webhook"
    }

    fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        self.poster.post(&Self::body(alerts))
    }
}

/// POSTs to a Slack incoming webhook (or any Slack-compatible one: Mattermost, Rocket.Chat):
/// `{"text": "..."}` with one line per alert.
///
/// Every value in the text (alert name, labels such as user ids, annotations) is escaped for
/// Slack ([`escape_slack`]): a user named `<!channel>` pings no one. The webhook URL is the
/// secret: `Debug` shows its scheme and host only.
#[derive(Debug)]
pub struct SlackSink {
    poster: Poster,
}

impl SlackSink {
    /// A Slack sink with the default [`HttpConfig`].
    ///
    /// # Errors
    /// [`AlertError::Config`] for an invalid URL.
    pub fn new(url: &str) -> Result<Self, AlertError> {
        Self::with_config(url, HttpConfig::default())
    }

    /// A Slack sink with its own timeout and retries.
    ///
    /// # Errors
    /// [`AlertError::Config`] for an invalid URL.
    pub fn with_config(url: &str, config: HttpConfig) -> Result<Self, AlertError> {
        Ok(SlackSink {
            poster: Poster::new("slack", url, config)?,
        })
    }

    /// The JSON body sent for a batch.
    pub fn body(alerts: &[Alert]) -> Value {
        let lines: Vec<String> = alerts
            .iter()
            .map(|a| {
                let icon = match a.state {
                    AlertState::Firing => ":rotating_light:",
                    AlertState::Resolved => ":white_check_mark:",
                };
                format!("{icon} {}", escape_slack(&a.to_text()))
            })
            .collect();
        json!({ "text": lines.join("\n") })
    }
}

impl AlertSink for SlackSink {
    fn name(&self) -> &str {
        "slack"
    }

    fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        self.poster.post(&Self::body(alerts))
    }
}

/// How often a lasting alert is posted again to Alertmanager: well inside its default
/// `resolve_timeout` (5 minutes), as Prometheus re-sends its own.
const ALERTMANAGER_RESEND: std::time::Duration = std::time::Duration::from_secs(60);

/// Posts to Prometheus Alertmanager's API v2 (`POST {base}/api/v2/alerts`).
///
/// Labels are the alert's labels plus `alertname` and `severity`; annotations as given.
/// A firing alert is posted with `startsAt` and no `endsAt` (Alertmanager then keeps it
/// firing for its `resolve_timeout`, 5 minutes by default); a resolved one with `endsAt`,
/// which resolves it. An alert marked [`Alert::until_resolved`] is posted again every
/// minute while it fires ([`AlertSink::resend_interval`]), as Alertmanager expects of its
/// clients, so that it is not resolved while its condition holds.
#[derive(Debug)]
pub struct AlertmanagerSink {
    poster: Poster,
    resend: std::time::Duration,
}

impl AlertmanagerSink {
    /// A sink for the Alertmanager at `base_url` (e.g. `http://127.0.0.1:9093`).
    ///
    /// # Errors
    /// [`AlertError::Config`] for an invalid URL.
    pub fn new(base_url: &str) -> Result<Self, AlertError> {
        Self::with_config(base_url, HttpConfig::default())
    }

    /// The same with its own timeout, retries and headers.
    ///
    /// # Errors
    /// [`AlertError::Config`] for an invalid URL.
    pub fn with_config(base_url: &str, config: HttpConfig) -> Result<Self, AlertError> {
        let url = format!("{}/api/v2/alerts", base_url.trim_end_matches('/'));
        Ok(AlertmanagerSink {
            poster: Poster::new("alertmanager", &url, config)?,
            resend: ALERTMANAGER_RESEND,
        })
    }

    /// Posts lasting alerts ([`Alert::until_resolved`]) again this often while they fire
    /// (default 1 minute, at least 100 ms): keep it well under the Alertmanager's
    /// `resolve_timeout`.
    pub fn with_resend_interval(mut self, every: std::time::Duration) -> Self {
        self.resend = every.max(std::time::Duration::from_millis(100));
        self
    }

    /// The JSON body sent for a batch (a `postableAlerts` array).
    pub fn body(alerts: &[Alert]) -> Value {
        Value::Array(
            alerts
                .iter()
                .map(|a| {
                    let mut labels = serde_json::Map::new();
                    for (k, v) in &a.labels {
                        labels.insert(k.clone(), Value::String(v.clone()));
                    }
                    labels.insert("alertname".into(), Value::String(a.name.clone()));
                    labels.insert("severity".into(), Value::String(a.severity.as_str().into()));
                    let mut o = json!({
                        "labels": labels,
                        "annotations": a.annotations,
                        "startsAt": rfc3339(a.starts_at),
                    });
                    if let (AlertState::Resolved, Some(end)) = (a.state, a.ends_at) {
                        o["endsAt"] = Value::String(rfc3339(end));
                    } else if a.state == AlertState::Resolved {
                        o["endsAt"] = Value::String(rfc3339(jiff::Timestamp::now()));
                    }
                    o
                })
                .collect(),
        )
    }
}

impl AlertSink for AlertmanagerSink {
    fn name(&self) -> &str {
        "alertmanager"
    }

    fn resend_interval(&self) -> Option<std::time::Duration> {
        Some(self.resend)
    }

    fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        self.poster.post(&Self::body(alerts))
    }
}
