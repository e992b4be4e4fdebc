//! Sinks that POST JSON over HTTP: generic webhook, Slack, Alertmanager API v2.

use std::time::Duration;

use serde_json::{Value, json};

use crate::alert::{Alert, AlertState};
use crate::sink::{AlertError, AlertSink};

/// Timeout and retry policy shared by the HTTP sinks.
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            headers: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Poster {
    name: &'static str,
    url: String,
    config: HttpConfig,
    client: reqwest::blocking::Client,
}

impl Poster {
    fn new(name: &'static str, url: &str, config: HttpConfig) -> Result<Self, AlertError> {
        reqwest::Url::parse(url)
            .map_err(|e| AlertError::Config(format!("{name}: invalid URL {url:?}: {e}")))?;
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| AlertError::Config(format!("{name}: HTTP client: {e}")))?;
        Ok(Poster {
            name,
            url: url.to_string(),
            config,
            client,
        })
    }

    /// POSTs `body`, retrying transport errors, 5xx and 429 with exponential backoff.
    fn post(&self, body: &Value) -> Result<(), AlertError> {
        let mut backoff = self.config.backoff;
        let mut attempt = 0;
        loop {
            let mut req = self.client.post(&self.url).json(body);
            for (k, v) in &self.config.headers {
                req = req.header(k, v);
            }
            let err = match req.send() {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text: String = resp.text().unwrap_or_default().chars().take(200).collect();
                    let e = AlertError::Status {
                        sink: self.name.to_string(),
                        status,
                        body: text,
                    };
                    if !(status >= 500 || status == 429) {
                        return Err(e);
                    }
                    e
                }
                Err(e) => AlertError::Transport {
                    sink: self.name.to_string(),
                    message: e.to_string(),
                },
            };
            if attempt >= self.config.retries {
                return Err(err);
            }
            attempt += 1;
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }
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
                format!("{icon} {}", a.to_text())
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

/// Posts to Prometheus Alertmanager's API v2 (`POST {base}/api/v2/alerts`).
///
/// Labels are the alert's labels plus `alertname` and `severity`; annotations as given.
/// A firing alert is posted with `startsAt` and no `endsAt` (Alertmanager then keeps it
/// firing for its `resolve_timeout`); a resolved one with `endsAt`, which resolves it.
#[derive(Debug)]
pub struct AlertmanagerSink {
    poster: Poster,
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
        })
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

    fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        self.poster.post(&Self::body(alerts))
    }
}
