//! The collector's health counters and their Prometheus text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Health of a running collector (since it started; counters are monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Spans accepted from senders (into the queue).
    pub received: u64,
    /// Spans forwarded with a cost (`gen_ai.usage.cost`).
    pub priced: u64,
    /// Spans forwarded whose model is not in the price catalog (`llmtel.cost.unknown_model`).
    pub unknown_model: u64,
    /// Spans forwarded that look like an LLM call (a model or token usage) but carry no cost:
    /// unknown model, or no usage to price. Includes `unknown_model`.
    pub unpriced: u64,
    /// Spans the downstream accepted.
    pub forwarded: u64,
    /// Requests forwarded as several because they were bigger than the forward limit
    /// (`[forward] max_request_bytes`).
    pub requests_split: u64,
    /// LLM spans whose spend was recorded against the budgets (when configured).
    pub budgeted: u64,
    /// Evaluation results and user feedback read from spans and handed to the quality
    /// monitor (with `[quality]` on).
    pub evaluations: u64,
    /// Spans the collector lost for want of room in its queue: a request refused for good
    /// because its encoded bytes alone are more than `queue_bytes` (`413` /
    /// `INVALID_ARGUMENT`, which OTLP senders do not retry). `Collector::start` refuses a
    /// `queue_bytes` below `max_request_bytes`, so this stays 0. A request refused for now
    /// (queue full, stopping) is not a drop: its sender still has its spans and retries
    /// them ([`refused_retryable`](Self::refused_retryable)).
    pub dropped_queue_full: u64,
    /// Requests refused for now because the queue was full, was being drained for a
    /// request that needs most of it, or the collector is stopping: answered `429` / `503`
    /// with `Retry-After`, or gRPC `UNAVAILABLE` with a `RetryInfo`, which OTLP senders retry
    /// (each retry refused is counted again). Not a drop: the sender still has the spans.
    pub refused_retryable: u64,
    /// The spans of [`refused_retryable`](Self::refused_retryable) requests (counted on
    /// each refusal: a request refused 60 times counts its spans 60 times).
    pub refused_retryable_spans: u64,
    /// Spans dropped after the downstream refused them for the whole retry time.
    pub dropped_export_failed: u64,
    /// Spans dropped because the stage panicked on their request (a sink given with
    /// `Config::with_sink`, the budgets or the quality monitor has a bug;
    /// [`Collector::last_error`](crate::Collector::last_error) has the panic's message).
    /// The collector goes on with the next request.
    pub dropped_stage_failed: u64,
    /// Spans dropped because their trace or span id was invalid (the sender is told in a
    /// partial success). Counted once the request's answer is final (accepted, or too large
    /// for the queue), not on each refusal the sender retries (queue full, stopping).
    pub dropped_invalid: u64,
    /// Spans the downstream refused for good: an error OTLP says must not be retried (HTTP
    /// 4xx but 429; gRPC `INVALID_ARGUMENT`, `UNAUTHENTICATED`, `PERMISSION_DENIED`, ...: a
    /// wrong header or endpoint, a span over the downstream's limit; an HTTP redirect, never
    /// followed), or rejected in a partial success. Not retried.
    pub dropped_rejected: u64,
    /// Requests refused because they went through this collector already (a forwarding
    /// loop: its downstream leads back to it) or through too many llmtel collectors (HTTP
    /// `508`, gRPC `FAILED_PRECONDITION`; see the `x-llmtel-collector` header).
    pub refused_loop: u64,
    /// Requests refused for their size: an OTLP/HTTP body or head over the listener's
    /// limits (`413` / `431`), a body or gRPC message over `max_request_bytes` once
    /// decompressed (HTTP `413`, gRPC `INVALID_ARGUMENT`: neither retried by OTLP senders).
    pub refused_too_large: u64,
    /// Requests refused because their body is not an OTLP trace export request (HTTP `400`,
    /// gRPC `INTERNAL`).
    pub refused_bad_request: u64,
    /// Requests refused for their encoding: a Content-Type that is not OTLP's, a
    /// Content-Encoding or `grpc-encoding` other than gzip, a body that is not valid gzip
    /// (HTTP `415` / `400`, gRPC `UNIMPLEMENTED`).
    pub refused_encoding: u64,
    /// Connections refused because `max_connections` were open on the listener (OTLP/HTTP:
    /// answered `503` and closed; OTLP/gRPC: closed at once). The sender's exporter retries.
    pub refused_connections: u64,
    /// Flushes of the budgets' spend or of the quality monitor that a shutdown could not
    /// finish in its time (spend, results or alerts may be lost; the shutdown says which on
    /// stderr, with what to do).
    /// 0 until [`Collector::shutdown`](crate::Collector::shutdown).
    pub flushes_failed: u64,
    /// Spans in the queue now (accepted, not yet forwarded or dropped); a request of more
    /// spans than the queue holds counts as `queue_capacity` (it has the queue to itself).
    pub queue_depth: u64,
    /// Spans the queue holds at most.
    pub queue_capacity: u64,
    /// Bytes of OTLP requests in the queue now: their encoded size, decompressed, plus an
    /// estimate of their decoded structures (see `Config::with_queue_bytes`).
    pub queue_bytes: u64,
    /// Bytes of OTLP requests the queue holds at most (`queue_bytes`): what bounds its
    /// memory when spans are big (captured prompts), where `queue_capacity` bounds it when
    /// they are many.
    pub queue_bytes_capacity: u64,
}

impl Stats {
    /// Every dropped span, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_export_failed
            + self.dropped_stage_failed
            + self.dropped_invalid
            + self.dropped_rejected
    }

    /// The Prometheus text exposition of these counters (`llmtel_collector_*`).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            );
        };
        counter(
            "llmtel_collector_spans_received_total",
            "Spans accepted from senders.",
            self.received,
        );
        counter(
            "llmtel_collector_spans_budgeted_total",
            "LLM spans whose spend was recorded against the budgets.",
            self.budgeted,
        );
        counter(
            "llmtel_collector_spans_priced_total",
            "Spans forwarded with gen_ai.usage.cost.",
            self.priced,
        );
        counter(
            "llmtel_collector_spans_unknown_model_total",
            "Spans forwarded whose model is not in the price catalog.",
            self.unknown_model,
        );
        counter(
            "llmtel_collector_spans_unpriced_total",
            "Spans forwarded that look like an LLM call but carry no cost.",
            self.unpriced,
        );
        counter(
            "llmtel_collector_spans_forwarded_total",
            "Spans the downstream accepted.",
            self.forwarded,
        );
        counter(
            "llmtel_collector_requests_split_total",
            "Requests forwarded as several, each under [forward] max_request_bytes.",
            self.requests_split,
        );
        counter(
            "llmtel_collector_evaluations_total",
            "Evaluation results and user feedback read from spans for the quality monitor.",
            self.evaluations,
        );
        counter(
            "llmtel_collector_connections_refused_total",
            "Connections refused because max_connections were open on the OTLP listener.",
            self.refused_connections,
        );
        counter(
            "llmtel_collector_requests_refused_retryable_total",
            "OTLP requests refused for now (queue full or draining, stopping) with a status \
             senders retry; not drops.",
            self.refused_retryable,
        );
        counter(
            "llmtel_collector_spans_refused_retryable_total",
            "Spans of the requests refused for now, counted on each refusal; not drops.",
            self.refused_retryable_spans,
        );
        counter(
            "llmtel_collector_flushes_failed_total",
            "Budget or quality flushes a shutdown could not finish in its time.",
            self.flushes_failed,
        );
        let name = "llmtel_collector_spans_dropped_total";
        let _ = write!(
            out,
            "# HELP {name} Spans dropped, by reason.\n# TYPE {name} counter\n\
             {name}{{reason=\"queue_full\"}} {}\n\
             {name}{{reason=\"export_failed\"}} {}\n\
             {name}{{reason=\"stage_failed\"}} {}\n\
             {name}{{reason=\"invalid\"}} {}\n\
             {name}{{reason=\"rejected\"}} {}\n",
            self.dropped_queue_full,
            self.dropped_export_failed,
            self.dropped_stage_failed,
            self.dropped_invalid,
            self.dropped_rejected
        );
        let name = "llmtel_collector_requests_refused_total";
        let _ = write!(
            out,
            "# HELP {name} OTLP requests refused as they arrived, by reason.\n\
             # TYPE {name} counter\n\
             {name}{{reason=\"too_large\"}} {}\n\
             {name}{{reason=\"bad_request\"}} {}\n\
             {name}{{reason=\"encoding\"}} {}\n\
             {name}{{reason=\"loop\"}} {}\n",
            self.refused_too_large,
            self.refused_bad_request,
            self.refused_encoding,
            self.refused_loop
        );
        for (name, help, v) in [
            (
                "llmtel_collector_queue_depth",
                "Spans waiting to be forwarded.",
                self.queue_depth,
            ),
            (
                "llmtel_collector_queue_capacity",
                "Spans the queue holds at most.",
                self.queue_capacity,
            ),
            (
                "llmtel_collector_queue_bytes",
                "Bytes of OTLP requests waiting to be forwarded.",
                self.queue_bytes,
            ),
            (
                "llmtel_collector_queue_bytes_capacity",
                "Bytes of OTLP requests the queue holds at most.",
                self.queue_bytes_capacity,
            ),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
            );
        }
        out
    }
}

/// Why a request was refused as it arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// It went through this collector already ([`crate::hop`]).
    Loop,
    /// Its size (gRPC; over HTTP the listener counts every `413` and `431`).
    TooLarge,
    /// Not an OTLP request.
    BadRequest,
    /// An encoding the collector does not take.
    Encoding,
}

/// The live counters behind [`Stats`].
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) priced: AtomicU64,
    pub(crate) unknown_model: AtomicU64,
    pub(crate) unpriced: AtomicU64,
    pub(crate) forwarded: AtomicU64,
    pub(crate) requests_split: AtomicU64,
    pub(crate) budgeted: AtomicU64,
    pub(crate) evaluations: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) refused_retryable: AtomicU64,
    pub(crate) refused_retryable_spans: AtomicU64,
    pub(crate) dropped_export_failed: AtomicU64,
    pub(crate) dropped_stage_failed: AtomicU64,
    pub(crate) dropped_invalid: AtomicU64,
    pub(crate) dropped_rejected: AtomicU64,
    refused_loop: AtomicU64,
    refused_too_large: AtomicU64,
    refused_bad_request: AtomicU64,
    refused_encoding: AtomicU64,
    /// gRPC connections refused (the HTTP listener counts its own).
    refused_connections: AtomicU64,
    pub(crate) flushes_failed: AtomicU64,
    /// The OTLP/HTTP listener's limits, whose counters count the requests it refused for
    /// their size (set once it listens).
    pub(crate) http_listener: std::sync::OnceLock<llmtel_metrics::listener::Limits>,
    /// Requests accepted that the stage has not run through yet (a shutdown waits for
    /// them before it flushes the budgets).
    pub(crate) unstaged: AtomicUsize,
    /// Spans held.
    pub(crate) spans: Room,
    /// Bytes held.
    pub(crate) bytes: Room,
    /// The queue kept for a request that needs most of it ([`Drain`]).
    pub(crate) drain: Drain,
    /// Why spans were last dropped after they were accepted, and what to do
    /// ([`crate::Collector::last_error`]).
    last_error: std::sync::Mutex<Option<String>>,
}

/// Room in the queue for one measure (spans, bytes): reserved when a request is accepted,
/// released when it has been forwarded or dropped.
#[derive(Debug)]
pub(crate) struct Room {
    used: AtomicUsize,
    capacity: usize,
}

impl Room {
    fn new(capacity: usize) -> Self {
        Room {
            used: AtomicUsize::new(0),
            capacity,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Reserves `n`; false (nothing reserved) when it does not fit.
    pub(crate) fn try_reserve(&self, n: usize) -> bool {
        let mut cur = self.used.load(Relaxed);
        loop {
            if cur.saturating_add(n) > self.capacity {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(cur, cur + n, Relaxed, Relaxed)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Frees `n`.
    pub(crate) fn release(&self, n: usize) {
        self.used.fetch_sub(n, Relaxed);
    }
}

/// How long the queue is kept for a request that needs most of it (refused because it did
/// not fit): new smaller requests are refused for now meanwhile, so that what is queued is
/// forwarded and the big one, retried, fits. Without it a steady stream of small requests
/// kept the queue from ever emptying, and the big one was refused for good in effect.
pub(crate) const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The queue kept for a request that needs most of it: armed when such a request is refused,
/// for [`DRAIN`]; ended when one is admitted or the time passes. Once a drain ended, the
/// next waits as long again (so that a big request that
/// cannot fit, its downstream down, does not keep the queue from everything else).
#[derive(Debug, Default)]
pub(crate) struct Drain {
    /// Until when the last drain runs (kept after it ran out, for the wait before the next).
    until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Drain {
    fn until(&self) -> std::sync::MutexGuard<'_, Option<std::time::Instant>> {
        self.until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the queue is being drained now.
    pub(crate) fn active(&self, now: std::time::Instant) -> bool {
        self.until().is_some_and(|u| now < u)
    }

    /// Starts a drain of [`DRAIN`], unless one runs or ran out less than [`DRAIN`] ago.
    pub(crate) fn arm(&self, now: std::time::Instant) {
        let mut until = self.until();
        if until.is_none_or(|u| now >= u + DRAIN) {
            *until = Some(now + DRAIN);
        }
    }

    /// Ends the drain: a request it was for was admitted. The next waits [`DRAIN`] from
    /// now, as after a drain that ran out: big requests relayed back to back (an upstream
    /// collector's batches) would otherwise keep the queue drained, and its small senders
    /// refused, nearly all the time.
    pub(crate) fn clear(&self, now: std::time::Instant) {
        let mut until = self.until();
        if until.is_some_and(|u| now < u) {
            *until = Some(now);
        }
    }
}

impl Counters {
    pub(crate) fn new(capacity: usize, byte_capacity: usize) -> Self {
        Counters {
            received: AtomicU64::new(0),
            priced: AtomicU64::new(0),
            unknown_model: AtomicU64::new(0),
            unpriced: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            requests_split: AtomicU64::new(0),
            budgeted: AtomicU64::new(0),
            evaluations: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            refused_retryable: AtomicU64::new(0),
            refused_retryable_spans: AtomicU64::new(0),
            dropped_export_failed: AtomicU64::new(0),
            dropped_stage_failed: AtomicU64::new(0),
            dropped_invalid: AtomicU64::new(0),
            dropped_rejected: AtomicU64::new(0),
            refused_loop: AtomicU64::new(0),
            refused_too_large: AtomicU64::new(0),
            refused_bad_request: AtomicU64::new(0),
            refused_encoding: AtomicU64::new(0),
            refused_connections: AtomicU64::new(0),
            flushes_failed: AtomicU64::new(0),
            http_listener: std::sync::OnceLock::new(),
            unstaged: AtomicUsize::new(0),
            spans: Room::new(capacity),
            bytes: Room::new(byte_capacity),
            drain: Drain::default(),
            last_error: std::sync::Mutex::default(),
        }
    }

    /// Counts a request refused as it arrived.
    pub(crate) fn refused(&self, why: Refused) {
        match why {
            Refused::Loop => &self.refused_loop,
            Refused::TooLarge => &self.refused_too_large,
            Refused::BadRequest => &self.refused_bad_request,
            Refused::Encoding => &self.refused_encoding,
        }
        .fetch_add(1, Relaxed);
    }

    /// Counts a gRPC connection refused (`max_connections` open).
    pub(crate) fn refused_connection(&self) {
        self.refused_connections.fetch_add(1, Relaxed);
    }

    /// Keeps `error` as the last one (on one line), through llmtel's redaction step
    /// ([`llmtel::redact()`]): what it carries of a downstream's answer or a panic's message
    /// (a URL with a key in its query, an echoed `Authorization` header) reaches
    /// [`crate::Collector::last_error`], `/metrics` and stderr, never the secret.
    pub(crate) fn note(&self, error: String) {
        let error = llmtel::redact::redact_string(error.replace(['\n', '\r'], " "));
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// The last error [`Counters::note`] kept.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reserves room for a request of `spans` spans and `bytes` bytes; false (nothing
    /// reserved) when either does not fit.
    pub(crate) fn try_reserve(&self, spans: usize, bytes: usize) -> bool {
        if !self.spans.try_reserve(spans) {
            return false;
        }
        if !self.bytes.try_reserve(bytes) {
            self.spans.release(spans);
            return false;
        }
        true
    }

    /// Frees the room of a request of `spans` spans and `bytes` bytes.
    pub(crate) fn release(&self, spans: usize, bytes: usize) {
        self.spans.release(spans);
        self.bytes.release(bytes);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            received: self.received.load(Relaxed),
            priced: self.priced.load(Relaxed),
            unknown_model: self.unknown_model.load(Relaxed),
            unpriced: self.unpriced.load(Relaxed),
            forwarded: self.forwarded.load(Relaxed),
            requests_split: self.requests_split.load(Relaxed),
            budgeted: self.budgeted.load(Relaxed),
            evaluations: self.evaluations.load(Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Relaxed),
            refused_retryable: self.refused_retryable.load(Relaxed),
            refused_retryable_spans: self.refused_retryable_spans.load(Relaxed),
            dropped_export_failed: self.dropped_export_failed.load(Relaxed),
            dropped_stage_failed: self.dropped_stage_failed.load(Relaxed),
            dropped_invalid: self.dropped_invalid.load(Relaxed),
            // Acquire: pairs with the Release of a final refusal, noted before it is counted.
            dropped_rejected: self
                .dropped_rejected
                .load(std::sync::atomic::Ordering::Acquire),
            refused_loop: self.refused_loop.load(Relaxed),
            // The listener counts every 413 and 431 on the OTLP/HTTP port: the bodies over
            // its limit, and the collector's own (gzip inflating past the limit, a request
            // bigger than the queue).
            refused_too_large: self.refused_too_large.load(Relaxed)
                + self.http_listener.get().map_or(0, |l| l.stats().too_large),
            refused_bad_request: self.refused_bad_request.load(Relaxed),
            refused_encoding: self.refused_encoding.load(Relaxed),
            refused_connections: self.refused_connections.load(Relaxed)
                + self.http_listener.get().map_or(0, |l| l.stats().refused),
            flushes_failed: self.flushes_failed.load(Relaxed),
            queue_depth: self.spans.used.load(Relaxed) as u64,
            queue_capacity: self.spans.capacity as u64,
            queue_bytes: self.bytes.used.load(Relaxed) as u64,
            queue_bytes_capacity: self.bytes.capacity as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_never_reserves_past_its_capacity() {
        let c = Counters::new(3, 1_000);
        assert!(c.try_reserve(2, 100));
        assert!(!c.try_reserve(2, 100));
        assert!(c.try_reserve(1, 100));
        c.release(3, 200);
        assert!(c.try_reserve(3, 100));
        assert_eq!(c.snapshot().queue_depth, 3);
    }

    #[test]
    fn the_queue_never_reserves_past_its_bytes_and_a_refusal_keeps_nothing() {
        let c = Counters::new(10, 1_000);
        assert!(c.try_reserve(1, 900));
        assert!(!c.try_reserve(1, 200), "spans fit, bytes do not");
        let s = c.snapshot();
        assert_eq!((s.queue_depth, s.queue_bytes), (1, 900), "nothing kept");
        c.release(1, 900);
        assert!(c.try_reserve(1, 1_000));
        assert_eq!(c.snapshot().queue_bytes_capacity, 1_000);
    }

    #[test]
    fn prometheus_text_has_every_drop_reason() {
        let s = Stats {
            dropped_queue_full: 4,
            ..Stats::default()
        };
        let t = s.to_prometheus();
        assert!(t.contains("llmtel_collector_spans_dropped_total{reason=\"queue_full\"} 4\n"));
        let t = Stats {
            refused_retryable: 2,
            refused_retryable_spans: 7,
            ..Stats::default()
        }
        .to_prometheus();
        assert!(t.contains("llmtel_collector_requests_refused_retryable_total 2\n"));
        assert!(t.contains("llmtel_collector_spans_refused_retryable_total 7\n"));
        assert!(t.contains("llmtel_collector_queue_depth 0\n"));
    }

    /// Big requests relayed back to back: each admission ends the drain and the next big
    /// one refused must wait [`DRAIN`] before it drains the queue again, so small senders
    /// get in between.
    #[test]
    fn a_drain_ended_by_an_admission_is_not_armed_again_at_once() {
        let drain = Drain::default();
        let t0 = std::time::Instant::now();
        drain.arm(t0);
        assert!(drain.active(t0));
        let admitted = t0 + std::time::Duration::from_secs(1);
        drain.clear(admitted);
        assert!(!drain.active(admitted));
        let next = admitted + std::time::Duration::from_millis(10);
        drain.arm(next);
        assert!(
            !drain.active(next),
            "a drain armed again right after an admission"
        );
        let later = admitted + DRAIN;
        drain.arm(later);
        assert!(drain.active(later), "after the wait a drain starts again");
    }
}
