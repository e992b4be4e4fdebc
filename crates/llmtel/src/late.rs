//! Attributes that reach an LLM call's span after its OpenTelemetry span has ended.
//!
//! `tracing` runs layers' `on_close` in stacking order, and `tracing_opentelemetry`'s layer
//! ends the OpenTelemetry span in its own `on_close`. A layer that runs after it (budgets
//! stacked after llmtel's bundle, llmtel's layer after the app's own OpenTelemetry layer) can
//! no longer set an attribute on the live span. So llmtel keeps such attributes here, keyed
//! by span id, and [`crate::GenAiExporter`] adds them to the span on the export thread: what
//! a layer or sink adds reaches the exported span whatever order the layers run in.
//!
//! No race: a span that may receive late attributes is registered here *before* its
//! OpenTelemetry span ends, when llmtel's layer reads its OpenTelemetry ids: when the span is
//! first entered, when its outcome (usage, response, error) is recorded on a span never
//! entered, or at its close when llmtel's layers close it before the OpenTelemetry layer.
//! The registration is marked ready only when the span's data is dropped by the registry,
//! after every layer's `on_close`. The exporter waits (off the request path, at most [`WAIT`]
//! per batch) for a registered span that is not ready yet, but never on the thread closing
//! it (a simple span processor exports there, inside the OpenTelemetry layer's close): see
//! [`merge_into`]. A span the exporter took before its layers were done goes out with what
//! it has, and what they add afterwards is counted in
//! [`crate::Health::late_attributes_dropped`] at once. Attributes for a span that was not
//! registered are merged if the exporter has not sent it yet. Bounded: at most
//! [`MAX_ENTRIES`] spans are held; an entry evicted with attributes the exporter never took
//! is counted in [`crate::Health::late_attributes_dropped`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::SpanData;

use crate::export::replace_attributes;
use crate::health::{COUNTERS, inc};

/// Spans held at most (pending or ready, not yet taken by an exporter).
pub const MAX_ENTRIES: usize = 65_536;

/// The longest an export batch waits for spans whose layers have not all closed yet.
pub const WAIT: Duration = Duration::from_millis(100);

static WANTED: AtomicBool = AtomicBool::new(false);

/// A layer will set late attributes ([`crate::set_span_attributes`]).
pub(crate) fn want() {
    WANTED.store(true, Ordering::Release);
}

/// Whether any layer will set late attributes: until one does, spans are not registered.
#[inline]
pub(crate) fn wanted() -> bool {
    WANTED.load(Ordering::Acquire)
}

#[derive(Debug)]
struct Entry {
    attributes: Vec<KeyValue>,
    /// Every layer has closed the span (the registry dropped its data).
    ready: bool,
    /// The thread that registered the span: the one that first entered it (or read its ids
    /// when its outcome was recorded), or the one closing it.
    registered_on: ThreadId,
    /// The thread closing the span, once the first of llmtel's closes ran there: an exporter
    /// running there (a simple, synchronous span processor) must not wait for it, or it
    /// would block that thread (the request's) for nothing.
    closing_on: Option<ThreadId>,
    /// The exporter took the span before every layer had closed it: what a layer adds
    /// afterwards can no longer reach it, and is counted as dropped at once.
    exported: bool,
}

impl Entry {
    fn pending(closing: bool) -> Self {
        let here = std::thread::current().id();
        Entry {
            attributes: Vec::new(),
            ready: false,
            registered_on: here,
            closing_on: closing.then_some(here),
            exported: false,
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<SpanId, Entry>,
    /// Insertion order, for eviction (ids already taken are skipped).
    order: VecDeque<SpanId>,
    /// Exporters waiting for a span to be ready: a span's last close wakes them only then
    /// (a wake-up is a system call).
    waiters: usize,
}

#[derive(Debug, Default)]
struct Late {
    table: Mutex<Table>,
    ready: Condvar,
}

fn late() -> &'static Late {
    static LATE: OnceLock<Late> = OnceLock::new();
    LATE.get_or_init(Late::default)
}

fn lock() -> MutexGuard<'static, Table> {
    late().table.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a span was ever kept here: until then the exporter does not look.
static USED: AtomicBool = AtomicBool::new(false);

/// Whether the exporter must merge late attributes (some span was kept here).
#[inline]
pub(crate) fn in_use() -> bool {
    USED.load(Ordering::Acquire)
}

impl Table {
    fn insert(&mut self, id: SpanId, entry: Entry) {
        if !USED.load(Ordering::Relaxed) {
            USED.store(true, Ordering::Release);
        }
        while self.order.len() >= MAX_ENTRIES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(e) = self.entries.remove(&old) {
                if !e.attributes.is_empty() {
                    inc(&COUNTERS.late_attributes_dropped);
                }
            }
        }
        if self.entries.insert(id, entry).is_none() {
            self.order.push_back(id);
        }
    }
}

/// Registers `id` as a span whose layers may add attributes after its OpenTelemetry span
/// ends; dropping the returned guard (with the span's registry data) marks it ready.
/// `closing`: registered by the first of llmtel's closes, on the thread closing the span.
pub(crate) fn register(id: SpanId, closing: bool) -> LateGuard {
    lock().insert(id, Entry::pending(closing));
    LateGuard(id)
}

/// The first of llmtel's closes of a registered span runs on this thread: an exporter
/// running here must not wait for the span, one running elsewhere may.
pub(crate) fn closing(id: SpanId) {
    let mut t = lock();
    if let Some(e) = t.entries.get_mut(&id) {
        e.closing_on
            .get_or_insert_with(|| std::thread::current().id());
    }
}

/// Adds attributes for span `id`, to be merged by the exporter. A span that was not
/// registered gets a ready entry (merged if the exporter has not sent it yet; otherwise
/// evicted later and counted); attributes for a registered span the exporter already took
/// are counted as dropped at once.
pub(crate) fn push(id: SpanId, attributes: Vec<KeyValue>) {
    if attributes.is_empty() {
        return;
    }
    let mut t = lock();
    if let Some(e) = t.entries.get_mut(&id) {
        if e.exported {
            inc(&COUNTERS.late_attributes_dropped);
            return;
        }
        e.attributes.extend(attributes);
    } else {
        let here = std::thread::current().id();
        t.insert(
            id,
            Entry {
                attributes,
                ready: true,
                registered_on: here,
                closing_on: Some(here),
                exported: false,
            },
        );
    }
}

/// Kept in the span's extensions: the registry drops it after every layer's `on_close`.
#[derive(Debug)]
pub(crate) struct LateGuard(pub(crate) SpanId);

impl Drop for LateGuard {
    fn drop(&mut self) {
        let mut t = lock();
        match t.entries.get_mut(&self.0) {
            // Nothing was added, or the exporter took the span already: nothing for the
            // exporter to wait for or merge.
            Some(e) if e.attributes.is_empty() || e.exported => {
                t.entries.remove(&self.0);
            }
            Some(e) => e.ready = true,
            None => {}
        }
        let waiting = t.waiters > 0;
        drop(t);
        if waiting {
            late().ready.notify_all();
        }
    }
}

thread_local! {
    /// Whether this thread is one of llmtel's export threads, which never close an
    /// application's span.
    static EXPORT_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as an export thread of llmtel's: an exporter here may wait for a span
/// whatever the thread closing it.
pub(crate) fn exports_here() {
    EXPORT_THREAD.with(|e| e.set(true));
}

/// Whether this thread exports in the background, never closing an application's span:
/// one of llmtel's export threads, or a thread the OpenTelemetry SDK suppressed its own
/// telemetry on (the SDK's batch processor's). A simple processor exports on the thread
/// that ends the span.
fn exports_in_background() -> bool {
    EXPORT_THREAD.with(std::cell::Cell::get)
        || opentelemetry::Context::is_current_telemetry_suppressed()
}

/// Adds to each span of `batch` the late attributes kept for it (replacing a key the span
/// already has), waiting at most [`WAIT`] in all for spans still pending, and never on the
/// thread closing them.
///
/// A span whose first llmtel close runs on another thread is waited for. One whose closes
/// have not started (its OpenTelemetry layer ends it before llmtel's layers) is waited for
/// only on a background export thread: the exporter may be running on the very thread that
/// is closing it (a simple span processor), which cannot finish the close while it waits. A
/// span not waited for goes out with what it has; what its layers add afterwards is counted
/// as dropped.
pub(crate) fn merge_into(batch: &mut [SpanData]) {
    let l = late();
    let mut t = lock();
    if t.entries.is_empty() {
        return;
    }
    let deadline = Instant::now() + WAIT;
    let here = std::thread::current().id();
    let background = exports_in_background();
    for span in batch.iter_mut() {
        let id = span.span_context.span_id();
        while let Some(e) = t.entries.get_mut(&id) {
            if e.ready {
                if let Some(e) = t.entries.remove(&id) {
                    inc(&COUNTERS.late_attributes_merged);
                    replace_attributes(&mut span.attributes, e.attributes);
                }
                break;
            }
            let may_wait = match e.closing_on {
                Some(closer) => closer != here,
                None => background && e.registered_on != here,
            };
            let now = Instant::now();
            if e.exported || !may_wait || now >= deadline {
                // Goes out with what it has; later additions are counted as dropped.
                e.exported = true;
                let attributes = std::mem::take(&mut e.attributes);
                if !attributes.is_empty() {
                    inc(&COUNTERS.late_attributes_merged);
                    replace_attributes(&mut span.attributes, attributes);
                }
                break;
            }
            t.waiters += 1;
            t = l
                .ready
                .wait_timeout(t, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            t.waiters -= 1;
        }
    }
    if t.order.len() > 2 * t.entries.len() + 1024 {
        let Table { entries, order, .. } = &mut *t;
        order.retain(|id| entries.contains_key(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_never_holds_more_than_its_cap() {
        let mut t = Table::default();
        for i in 1..=(MAX_ENTRIES as u64 + 10) {
            t.insert(
                SpanId::from_bytes(i.to_be_bytes()),
                Entry {
                    attributes: vec![KeyValue::new("k", 1)],
                    ready: true,
                    ..Entry::pending(true)
                },
            );
        }
        assert_eq!(t.entries.len(), MAX_ENTRIES);
        assert_eq!(t.order.len(), MAX_ENTRIES);
    }
}
