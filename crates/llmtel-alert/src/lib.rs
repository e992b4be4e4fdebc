//! Alerts for llmtel: one [`Alert`] type, an [`AlertSink`] trait with sinks for
//! tracing/log, a generic JSON webhook, Slack-compatible webhooks and the Prometheus
//! Alertmanager API v2, and an [`AlertDispatcher`] that delivers them off the request path.
//!
//! Raising an alert never blocks and never panics: [`AlertDispatcher::send`] puts the alert
//! on a bounded queue drained by one dispatcher thread; a full queue drops the alert and
//! counts it ([`DispatchStats::dropped`]), except a resolved alert the re-sends of a lasting
//! one wait for ([`DispatchStats::resolves_kept`]); a sink that fails or hangs (every HTTP
//! sink has a timeout and a bounded number of retries) is counted ([`DispatchStats::failed`])
//! and delays only the dispatcher thread.
//!
//! ```
//! use llmtel_alert::{Alert, AlertDispatcher, LogSink, Severity};
//! use std::sync::Arc;
//!
//! let alerts = AlertDispatcher::builder().with_sink(Arc::new(LogSink::new())).build();
//! alerts.send(
//!     Alert::firing("LlmBudgetThreshold", Severity::Warning)
//!         .with_label("rule", "per-user-daily")
//!         .with_annotation("summary", "user u-1 spent 80 % of $5.00"),
//! );
//! alerts.flush(std::time::Duration::from_secs(1));
//! assert_eq!(alerts.stats().delivered, 1);
//! ```
//!
//! # Security
//! - The HTTP sinks speak https (feature `tls`, on by default: rustls with the platform's
//!   certificate verifier); [`HttpConfig::with_ca_file`] trusts a private CA as well.
//! - Webhook URLs (Slack's URL *is* the secret), header values and tokens never appear in
//!   `Debug` or in errors: URLs show as `scheme://host/<redacted>`, headers as `<redacted>`,
//!   and a transport error ([`DispatchStats::last_error`]) carries no URL path or query.
//! - Slack text is escaped ([`escape_slack`]): a label value cannot ping or link.
//! - Every alert goes through llmtel's redaction step ([`Alert::redacted`], applied by the
//!   dispatcher before any sink): an API key in a label (a budget scope value, a user id) or
//!   an annotation is delivered as `[REDACTED]`.
//!
//! # Feature flags
//! - `tls` (default): https for the HTTP sinks, and [`HttpConfig::ca_file`].
//! - `testing`: [`MemorySink`], an in-memory sink to assert on delivered alerts.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod alert;
mod dispatch;
mod http;
mod sink;

pub use alert::{Alert, AlertState, Severity};
pub use dispatch::{AlertDispatcher, DispatchStats, DispatcherBuilder};
pub use http::{AlertmanagerSink, HttpConfig, SlackSink, WebhookSink, escape_slack};
#[cfg(feature = "testing")]
pub use sink::MemorySink;
pub use sink::{AlertError, AlertSink, LogSink};
