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
//! OpenTelemetry span ends (when llmtel's layer first sees both: when the span is entered,
//! or at its close when llmtel's layer closes it before the OpenTelemetry layer), and the
//! registration is marked ready only when the span's data is dropped by the registry, after
//! every layer's `on_close`. A span that is never entered and whose OpenTelemetry layer
//! closes first is not registered: its late attributes are still merged if the exporter has
//! not sent it yet, and counted as dropped otherwise. The exporter waits (off the request path, at most [`WAIT`] per batch) for a
//! registered span that is not ready yet. Bounded: at most [`MAX_ENTRIES`] spans are held;
//! an entry evicted with attributes the exporter never took is counted in
//! [`crate::Health::late_attributes_dropped`].

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
    ready: bool,
    /// The thread the span closes on: an exporter running there (a simple, synchronous
    /// span processor) must not wait for it, or it would block the request thread.
    thread: ThreadId,
}

impl Entry {
    fn pending() -> Self {
        Entry {
            attributes: Vec::new(),
            ready: false,
            thread: std::thread::current().id(),
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<SpanId, Entry>,
    /// Insertion order, for eviction (ids already taken are skipped).
    order: VecDeque<SpanId>,
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

impl Table {
    fn insert(&mut self, id: SpanId, entry: Entry) {
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
pub(crate) fn register(id: SpanId) -> LateGuard {
    lock().insert(id, Entry::pending());
    LateGuard(id)
}

/// Adds attributes for span `id`, to be merged by the exporter. A span that was not
/// registered gets a ready entry (merged if the exporter has not sent it yet; otherwise
/// evicted later and counted).
pub(crate) fn push(id: SpanId, attributes: Vec<KeyValue>) {
    if attributes.is_empty() {
        return;
    }
    let mut t = lock();
    if let Some(e) = t.entries.get_mut(&id) {
        e.attributes.extend(attributes);
    } else {
        t.insert(
            id,
            Entry {
                attributes,
                ready: true,
                thread: std::thread::current().id(),
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
            // Nothing was added: nothing for the exporter to wait for or merge.
            Some(e) if e.attributes.is_empty() => {
                t.entries.remove(&self.0);
            }
            Some(e) => e.ready = true,
            None => {}
        }
        drop(t);
        late().ready.notify_all();
    }
}

/// Adds to each span of `batch` the late attributes kept for it (replacing a key the span
/// already has), waiting at most [`WAIT`] in all for spans still pending.
pub(crate) fn merge_into(batch: &mut [SpanData]) {
    let l = late();
    let mut t = lock();
    if t.entries.is_empty() {
        return;
    }
    let deadline = Instant::now() + WAIT;
    let here = std::thread::current().id();
    for span in batch.iter_mut() {
        let id = span.span_context.span_id();
        loop {
            match t.entries.get(&id) {
                None => break,
                Some(e) if e.ready => {
                    if let Some(e) = t.entries.remove(&id) {
                        inc(&COUNTERS.late_attributes_merged);
                        replace_attributes(&mut span.attributes, e.attributes);
                    }
                    break;
                }
                // Exported synchronously on the thread that is closing it: never wait there.
                // What its layers add later stays until evicted, and is counted then.
                Some(e) if e.thread == here => break,
                Some(_) => {
                    let now = Instant::now();
                    if now >= deadline {
                        // Its layers have not all closed: merge what is there and count
                        // what may come after.
                        if let Some(e) = t.entries.remove(&id) {
                            inc(&COUNTERS.late_attributes_dropped);
                            replace_attributes(&mut span.attributes, e.attributes);
                        }
                        break;
                    }
                    t = l
                        .ready
                        .wait_timeout(t, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
    if t.order.len() > 2 * t.entries.len() + 1024 {
        let Table { entries, order } = &mut *t;
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
                    thread: std::thread::current().id(),
                },
            );
        }
        assert_eq!(t.entries.len(), MAX_ENTRIES);
        assert_eq!(t.order.len(), MAX_ENTRIES);
    }
}
