//! llmtel's own health counters: every drop and every problem is counted and visible.
//!
//! ```
//! let before = llmtel::health();
//! // ... the app runs ...
//! let now = llmtel::health();
//! assert!(now.spans_dropped >= before.spans_dropped);
//! ```

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// A counter on its own cache line, so that counters bumped by the application's threads and
/// by the export thread do not slow each other down (false sharing).
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Padded(pub(crate) AtomicU64);

impl std::ops::Deref for Padded {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) llm_calls: Padded,
    pub(crate) priced_calls: Padded,
    pub(crate) unknown_model_calls: Padded,
    pub(crate) malformed_usage: Padded,
    pub(crate) spans_queued: Padded,
    pub(crate) spans_dropped: Padded,
    pub(crate) spans_exported: Padded,
    pub(crate) spans_export_failed: Padded,
    pub(crate) export_errors: Padded,
    pub(crate) summaries_evicted: Padded,
    pub(crate) values_truncated: Padded,
    pub(crate) estimates_approximated: Padded,
    pub(crate) late_attributes_merged: Padded,
    pub(crate) late_attributes_dropped: Padded,
    pub(crate) background_dropped: Padded,
    pub(crate) sink_panics: Padded,
    pub(crate) custom_dimensions_dropped: Padded,
    pub(crate) kept_over_budget: Padded,
    pub(crate) body_bytes_skipped: Padded,
    pub(crate) body_decoder_panics: Padded,
}

pub(crate) static COUNTERS: Counters = Counters {
    llm_calls: Padded(AtomicU64::new(0)),
    priced_calls: Padded(AtomicU64::new(0)),
    unknown_model_calls: Padded(AtomicU64::new(0)),
    malformed_usage: Padded(AtomicU64::new(0)),
    spans_queued: Padded(AtomicU64::new(0)),
    spans_dropped: Padded(AtomicU64::new(0)),
    spans_exported: Padded(AtomicU64::new(0)),
    spans_export_failed: Padded(AtomicU64::new(0)),
    export_errors: Padded(AtomicU64::new(0)),
    summaries_evicted: Padded(AtomicU64::new(0)),
    values_truncated: Padded(AtomicU64::new(0)),
    estimates_approximated: Padded(AtomicU64::new(0)),
    late_attributes_merged: Padded(AtomicU64::new(0)),
    late_attributes_dropped: Padded(AtomicU64::new(0)),
    background_dropped: Padded(AtomicU64::new(0)),
    sink_panics: Padded(AtomicU64::new(0)),
    custom_dimensions_dropped: Padded(AtomicU64::new(0)),
    kept_over_budget: Padded(AtomicU64::new(0)),
    body_bytes_skipped: Padded(AtomicU64::new(0)),
    body_decoder_panics: Padded(AtomicU64::new(0)),
};

#[inline]
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

#[inline]
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

/// A snapshot of llmtel's health counters (process-wide, monotonic since start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    /// LLM calls seen in process by [`crate::LlmLayer`].
    pub llm_calls: u64,
    /// Calls priced (from the catalog or a reported cost). This and the next two are counted
    /// by the exporter for every exported call, or by the layer where nothing is exported.
    pub priced_calls: u64,
    /// Calls whose model has no price in the catalog (no cost written; never a silent zero).
    pub unknown_model_calls: u64,
    /// Calls with a malformed usage field (the attribute is exported as given; no cost), or
    /// whose only usage is units the catalog has no price for (no cost rather than $0).
    pub malformed_usage: u64,
    /// Spans accepted by llmtel's export queue.
    pub spans_queued: u64,
    /// Spans dropped because the export queue was full (collector slow or down).
    pub spans_dropped: u64,
    /// Spans the exporter accepted.
    pub spans_exported: u64,
    /// Spans lost because an export failed (collector down, rejected).
    pub spans_export_failed: u64,
    /// Failed export attempts.
    pub export_errors: u64,
    /// Trace summaries evicted from the bounded in-process store.
    pub summaries_evicted: u64,
    /// Caller-controlled values (user ids, scope and label values, model names) longer than
    /// [`crate::MAX_VALUE_BYTES`] that were capped ([`crate::cap_value`]).
    pub values_truncated: u64,
    /// Token counts for a model with a real tokenizer that used the characters-per-token
    /// approximation instead, because the text was too long for the tokenizer (over
    /// [`crate::estimate::MAX_TOKENIZER_BYTES`], or a run of more than
    /// [`crate::estimate::MAX_TOKENIZER_RUN`] characters without whitespace) or because the
    /// tokenizer panicked.
    pub estimates_approximated: u64,
    /// Spans whose sinks or layers added attributes after the OpenTelemetry span had ended
    /// (a layer stacked after it), merged into the exported span by the exporter stage.
    pub late_attributes_merged: u64,
    /// Late attributes that could not reach the exported span (counted once per layer that
    /// set them): the exporter was not llmtel's [`crate::GenAiExporter`], or it took the span
    /// before the span's layers had all closed (it waits at most
    /// [`crate::LATE_ATTRIBUTES_WAIT`], and never on the thread closing the span: a simple
    /// span processor exports there, before the layers stacked after the OpenTelemetry layer
    /// close it).
    pub late_attributes_dropped: u64,
    /// Items dropped by any of llmtel's background workers because its queue was full or it
    /// had stopped: spans (also in `spans_dropped`), call-log records, budget writes, alerts,
    /// quality observations, ... [`crate::worker::workers`] lists each worker's counters.
    pub background_dropped: u64,
    /// Calls a [`crate::CallSink`] panicked on while llmtel's export stage handed them to it
    /// (the spans are exported all the same).
    pub sink_panics: u64,
    /// Custom `llmtel.*` dimensions read from an exported span's attributes that the
    /// export stage's call could not keep: the name was longer than
    /// [`crate::MAX_VALUE_BYTES`], or 1,024 distinct custom names had been kept already
    /// (process-wide; the span keeps the attribute).
    pub custom_dimensions_dropped: u64,
    /// Response bodies an HTTP instrumentation read from their tail only, and request copies
    /// it did not keep, because its budget for the bytes kept per call in flight was in use
    /// (`llmtel-reqwest`'s `MAX_KEPT_BYTES`): the usage is still read, an estimate counts the
    /// output only and captured content has no input. The calls' spans carry
    /// `llmtel.parse_error`. Counted with [`count_kept_over_budget`].
    pub kept_over_budget: u64,
    /// Response body bytes an HTTP instrumentation never decoded because its reader was too
    /// far behind (`llmtel-reqwest`'s `MAX_QUEUED_BYTES` were waiting): the calls' spans
    /// carry `llmtel.parse_error`. Counted with [`count_body_bytes_skipped`].
    pub body_bytes_skipped: u64,
    /// Calls whose body decoding panicked in an HTTP instrumentation (a bug: please report
    /// it): their spans end failed with `error.type = internal`. Counted with
    /// [`count_body_decoder_panic`].
    pub body_decoder_panics: u64,
}

impl Health {
    /// Every counter as `(name, description, value)`, in field order; the name is the
    /// field's name. Exporters (the Prometheus sink's `llmtel_<name>_total` series) list
    /// these, so a counter added to `Health` reaches them without a second list.
    pub fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        vec![
            ("llm_calls", "LLM calls seen in process", self.llm_calls),
            ("priced_calls", "LLM calls priced", self.priced_calls),
            (
                "unknown_model_calls",
                "LLM calls whose model has no price",
                self.unknown_model_calls,
            ),
            (
                "malformed_usage",
                "LLM calls with a malformed usage field",
                self.malformed_usage,
            ),
            (
                "spans_queued",
                "Spans accepted by the export queue",
                self.spans_queued,
            ),
            (
                "spans_dropped",
                "Spans dropped because the export queue was full",
                self.spans_dropped,
            ),
            (
                "spans_exported",
                "Spans the exporter accepted",
                self.spans_exported,
            ),
            (
                "spans_export_failed",
                "Spans whose export failed",
                self.spans_export_failed,
            ),
            ("export_errors", "Failed export batches", self.export_errors),
            (
                "summaries_evicted",
                "Trace summaries evicted",
                self.summaries_evicted,
            ),
            (
                "values_truncated",
                "Caller-controlled values capped at MAX_VALUE_BYTES",
                self.values_truncated,
            ),
            (
                "estimates_approximated",
                "Token counts approximated instead of tokenized",
                self.estimates_approximated,
            ),
            (
                "late_attributes_merged",
                "Spans whose late attributes were merged into the exported span",
                self.late_attributes_merged,
            ),
            (
                "late_attributes_dropped",
                "Late attributes that could not reach the exported span",
                self.late_attributes_dropped,
            ),
            (
                "background_dropped",
                "Items dropped by llmtel's background workers",
                self.background_dropped,
            ),
            (
                "sink_panics",
                "Calls a sink panicked on in the export stage",
                self.sink_panics,
            ),
            (
                "custom_dimensions_dropped",
                "Custom llmtel.* dimensions the export stage could not keep",
                self.custom_dimensions_dropped,
            ),
            (
                "kept_over_budget",
                "Bodies read from their tail and request copies not kept for the kept-bytes budget",
                self.kept_over_budget,
            ),
            (
                "body_bytes_skipped",
                "Response body bytes an HTTP instrumentation skipped because its reader was behind",
                self.body_bytes_skipped,
            ),
            (
                "body_decoder_panics",
                "Calls whose body decoding panicked in an HTTP instrumentation",
                self.body_decoder_panics,
            ),
        ]
    }
}

/// Reads the health counters.
pub fn health() -> Health {
    let c = &COUNTERS;
    Health {
        llm_calls: c.llm_calls.load(Relaxed),
        priced_calls: c.priced_calls.load(Relaxed),
        unknown_model_calls: c.unknown_model_calls.load(Relaxed),
        malformed_usage: c.malformed_usage.load(Relaxed),
        spans_queued: c.spans_queued.load(Relaxed),
        spans_dropped: c.spans_dropped.load(Relaxed),
        spans_exported: c.spans_exported.load(Relaxed),
        spans_export_failed: c.spans_export_failed.load(Relaxed),
        export_errors: c.export_errors.load(Relaxed),
        summaries_evicted: c.summaries_evicted.load(Relaxed),
        values_truncated: c.values_truncated.load(Relaxed),
        estimates_approximated: c.estimates_approximated.load(Relaxed),
        late_attributes_merged: c.late_attributes_merged.load(Relaxed),
        late_attributes_dropped: c.late_attributes_dropped.load(Relaxed),
        background_dropped: c.background_dropped.load(Relaxed),
        sink_panics: c.sink_panics.load(Relaxed),
        custom_dimensions_dropped: c.custom_dimensions_dropped.load(Relaxed),
        kept_over_budget: c.kept_over_budget.load(Relaxed),
        body_bytes_skipped: c.body_bytes_skipped.load(Relaxed),
        body_decoder_panics: c.body_decoder_panics.load(Relaxed),
    }
}

/// Counts one response body read from its tail only, or one request copy not kept, because
/// an instrumentation's budget for the bytes it keeps per call was in use
/// ([`Health::kept_over_budget`]). For instrumentation crates (`llmtel-reqwest`).
///
/// ```
/// let before = llmtel::health().kept_over_budget;
/// llmtel::count_kept_over_budget();
/// assert_eq!(llmtel::health().kept_over_budget, before + 1);
/// ```
pub fn count_kept_over_budget() {
    inc(&COUNTERS.kept_over_budget);
}

/// Counts `bytes` of response bodies an instrumentation's reader never decoded because it
/// was too far behind ([`Health::body_bytes_skipped`]). For instrumentation crates
/// (`llmtel-reqwest`).
///
/// ```
/// let before = llmtel::health().body_bytes_skipped;
/// llmtel::count_body_bytes_skipped(4096);
/// assert_eq!(llmtel::health().body_bytes_skipped, before + 4096);
/// ```
pub fn count_body_bytes_skipped(bytes: u64) {
    add(&COUNTERS.body_bytes_skipped, bytes);
}

/// Counts one call whose body decoding panicked in an instrumentation
/// ([`Health::body_decoder_panics`]). For instrumentation crates (`llmtel-reqwest`).
///
/// ```
/// let before = llmtel::health().body_decoder_panics;
/// llmtel::count_body_decoder_panic();
/// assert_eq!(llmtel::health().body_decoder_panics, before + 1);
/// ```
pub fn count_body_decoder_panic() {
    inc(&COUNTERS.body_decoder_panics);
}

#[cfg(test)]
mod tests {
    use super::Health;

    /// `counters()` names every field of `Health` in order, each with its own value: a
    /// counter added to the struct and not to the list, or two values swapped, fails here,
    /// not silently on a Prometheus page. (Every field set, each to a distinct value.)
    #[test]
    fn counters_name_every_field_in_order_with_its_value() {
        let h = Health {
            llm_calls: 1,
            priced_calls: 2,
            unknown_model_calls: 3,
            malformed_usage: 4,
            spans_queued: 5,
            spans_dropped: 6,
            spans_exported: 7,
            spans_export_failed: 8,
            export_errors: 9,
            summaries_evicted: 10,
            values_truncated: 11,
            estimates_approximated: 12,
            late_attributes_merged: 13,
            late_attributes_dropped: 14,
            background_dropped: 15,
            sink_panics: 16,
            custom_dimensions_dropped: 17,
            kept_over_budget: 18,
            body_bytes_skipped: 19,
            body_decoder_panics: 20,
        };
        let debug = format!("{h:?}");
        let inner = debug
            .strip_prefix("Health { ")
            .and_then(|d| d.strip_suffix(" }"))
            .unwrap_or_default();
        let fields: Vec<(String, u64)> = inner
            .split(", ")
            .filter_map(|f| f.split_once(": "))
            .map(|(n, v)| (n.to_owned(), v.parse().unwrap_or(u64::MAX)))
            .collect();
        let listed: Vec<(String, u64)> =
            h.counters().iter().map(|c| (c.0.to_owned(), c.2)).collect();
        assert_eq!(listed, fields);
        assert_eq!(listed.len(), 20);
    }
}
