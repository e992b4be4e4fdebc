//! The sink trait and the sinks that need no network.

use std::fmt::Debug;

use crate::alert::{Alert, AlertState, Severity};

/// Why a sink could not deliver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// The request could not be sent or timed out (after every retry).
    #[error("{sink}: request failed: {message}")]
    Transport {
        /// Sink name.
        sink: String,
        /// What went wrong.
        message: String,
    },
    /// The receiver answered with a non-success status (after every retry).
    #[error("{sink}: HTTP {status}: {body}")]
    Status {
        /// Sink name.
        sink: String,
        /// HTTP status code.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// The sink is misconfigured (bad URL, client could not be built).
    #[error("{0}")]
    Config(String),
}

/// Where alerts go. Implementations are called from the dispatcher thread only, never from
/// the request path; they may block (bounded by their own timeouts).
pub trait AlertSink: Send + Sync + Debug {
    /// A short name for counters and logs (`log`, `webhook`, `slack`, `alertmanager`).
    fn name(&self) -> &str;

    /// Delivers a batch of alerts (firing and resolved).
    ///
    /// # Errors
    /// [`AlertError`] when the batch could not be delivered after the sink's retries.
    fn send(&self, alerts: &[Alert]) -> Result<(), AlertError>;

    /// How often a firing alert marked [`Alert::until_resolved`] must be sent again for the
    /// receiver to keep it firing (`None`, the default: once is enough).
    fn resend_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// Whether the sink emits `tracing` events for the application's subscriber
    /// ([`LogSink`]): its [`send`](AlertSink::send) then runs under the dispatcher that was
    /// current where the [`crate::AlertDispatcher`] was built. Other sinks run with tracing off
    /// on the dispatcher's thread (an HTTP client's own events stay out of the app's
    /// pipeline). Default `false`.
    fn logs_to_app(&self) -> bool {
        false
    }

    /// Delivers anything the sink buffers itself.
    ///
    /// # Errors
    /// As [`AlertSink::send`].
    fn flush(&self) -> Result<(), AlertError> {
        Ok(())
    }

    /// Releases the sink's resources; called once when the dispatcher stops.
    ///
    /// # Errors
    /// As [`AlertSink::send`].
    fn shutdown(&self) -> Result<(), AlertError> {
        Ok(())
    }
}

/// Writes each alert as a `tracing` event (target `llmtel_alert`): `WARN` for firing
/// warnings, `ERROR` for firing critical alerts, `INFO` otherwise.
#[derive(Debug, Default, Clone)]
pub struct LogSink {
    _priv: (),
}

impl LogSink {
    /// A log sink.
    pub fn new() -> Self {
        LogSink::default()
    }
}

impl AlertSink for LogSink {
    fn name(&self) -> &str {
        "log"
    }

    fn logs_to_app(&self) -> bool {
        true
    }

    fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        for a in alerts {
            let text = a.to_text();
            match (a.state, a.severity) {
                (AlertState::Firing, Severity::Critical) => {
                    tracing::error!(target: "llmtel_alert", alert = %a.name, "{text}")
                }
                (AlertState::Firing, Severity::Warning) => {
                    tracing::warn!(target: "llmtel_alert", alert = %a.name, "{text}")
                }
                _ => tracing::info!(target: "llmtel_alert", alert = %a.name, "{text}"),
            }
        }
        Ok(())
    }
}

/// Keeps every delivered alert in memory (feature `testing`).
#[cfg(feature = "testing")]
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    alerts: std::sync::Arc<std::sync::Mutex<Vec<Alert>>>,
}

#[cfg(feature = "testing")]
impl MemorySink {
    /// An empty sink; clones share the same store.
    pub fn new() -> Self {
        MemorySink::default()
    }

    /// Every alert delivered so far, in order.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the delivered alerts.
    pub fn clear(&self) {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(feature = "testing")]
impl AlertSink for MemorySink {
    fn name(&self) -> &str {
        "memory"
    }

    fn send(&self, alerts: &[Alert]) -> Result<(), AlertError> {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(alerts);
        Ok(())
    }
}
