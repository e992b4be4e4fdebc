//! The alert record.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

/// How urgent an alert is; exported as the `severity` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For information.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// `info`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Whether the condition holds (firing) or has ended (resolved).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds.
    Firing,
    /// The condition has ended.
    Resolved,
}

impl AlertState {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert: a name, identifying labels, descriptive annotations, a severity and a state.
///
/// The identity of an alert (for deduplication by Alertmanager and for resolving it later)
/// is its name plus its labels; annotations can change between sends.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Alert name (`alertname` label in Alertmanager).
    pub name: String,
    /// Identifying labels (`rule`, `scope`, ...).
    pub labels: BTreeMap<String, String>,
    /// Descriptive text (`summary`, `description`, ...).
    pub annotations: BTreeMap<String, String>,
    /// How urgent it is.
    pub severity: Severity,
    /// Firing or resolved.
    pub state: AlertState,
    /// When the condition started.
    pub starts_at: Timestamp,
    /// When it ended (set for resolved alerts).
    pub ends_at: Option<Timestamp>,
    /// The condition lasts until a resolved alert of the same identity is sent
    /// ([`Alert::until_resolved`]): sinks that need it (Alertmanager) are sent it again while
    /// it fires. `false` for a one-off notice (a budget threshold crossed).
    #[serde(skip)]
    pub until_resolved: bool,
}

impl Alert {
    /// A firing alert starting now.
    pub fn firing(name: impl Into<String>, severity: Severity) -> Self {
        Alert {
            name: name.into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            severity,
            state: AlertState::Firing,
            starts_at: Timestamp::now(),
            ends_at: None,
            until_resolved: false,
        }
    }

    /// Marks a firing alert whose condition lasts until a resolved alert of the same
    /// identity is sent (a store that is down, a quality drift): the dispatcher sends it
    /// again to the sinks that expire alerts not re-sent ([`AlertSink::resend_interval`]:
    /// Alertmanager resolves an alert by itself after its `resolve_timeout`, 5 minutes by
    /// default) until it is resolved.
    ///
    /// [`AlertSink::resend_interval`]: crate::AlertSink::resend_interval
    pub fn until_resolved(mut self) -> Self {
        self.until_resolved = true;
        self
    }

    /// The same alert, resolved now.
    pub fn resolved(mut self) -> Self {
        self.state = AlertState::Resolved;
        self.ends_at = Some(Timestamp::now());
        self
    }

    /// Adds or replaces a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds or replaces an annotation.
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// Sets when the condition started.
    pub fn with_starts_at(mut self, at: Timestamp) -> Self {
        self.starts_at = at;
        self
    }

    /// The same alert with every text that can carry a request-controlled value (the name,
    /// label values, annotations) through llmtel's redaction step ([`llmtel::redact()`]): an
    /// API key used as a scope value or user id is `[REDACTED]`. The dispatcher applies it to
    /// every alert before any sink sees it.
    pub fn redacted(mut self) -> Self {
        self.name = llmtel::redact::redact_string(self.name);
        for v in self.labels.values_mut() {
            *v = llmtel::redact::redact_string(std::mem::take(v));
        }
        for v in self.annotations.values_mut() {
            *v = llmtel::redact::redact_string(std::mem::take(v));
        }
        self
    }

    /// The `summary` annotation, or the name.
    pub fn summary(&self) -> &str {
        self.annotations
            .get("summary")
            .map(String::as_str)
            .unwrap_or(&self.name)
    }

    /// The alert as one line of text (log and Slack sinks).
    pub fn to_text(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "[{}] {} ({}): {} {{{}}}",
            self.state.as_str().to_uppercase(),
            self.name,
            self.severity.as_str(),
            self.summary(),
            labels.join(", ")
        )
    }
}
