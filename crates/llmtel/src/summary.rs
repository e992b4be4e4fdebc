//! Per-trace summaries: spans, LLM calls, wall time, tokens, cost and errors of a trace,
//! kept in process for recent traces with bounded memory.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llmtel_pricing::Usd;
use opentelemetry::trace::TraceId;
use serde::Serialize;
use tracing_core::Subscriber;
use tracing_core::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::call::LlmCall;
use crate::health::{COUNTERS, inc};
use crate::layer::SpanSlot;
use crate::maybe::MaybeIds;

/// What one trace did: answers "what did this request cost".
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TraceSummary {
    /// OpenTelemetry trace id (hex), when an OpenTelemetry layer is in the stack.
    pub trace_id: Option<String>,
    /// Name of the root span.
    pub root: String,
    /// Spans in the trace (so far, for a trace still open).
    pub spans: u64,
    /// LLM calls in the trace.
    pub llm_calls: u64,
    /// Failed LLM calls.
    pub errors: u64,
    /// Input tokens (inclusive of cached).
    pub input_tokens: u64,
    /// Cached input tokens.
    pub cache_read_tokens: u64,
    /// Output tokens (inclusive of reasoning).
    pub output_tokens: u64,
    /// Cost of the priced calls, USD.
    #[serde(serialize_with = "usd_as_f64")]
    pub cost: Usd,
    /// Calls that could not be priced (unknown model, missing or malformed usage).
    pub unpriced_calls: u64,
    /// Whether any cost rests on estimated token counts.
    pub estimated: bool,
    /// Wall time from the root span's start to its end (or to now while open).
    pub wall_time: Duration,
    /// Whether the root span has closed.
    pub complete: bool,
}

fn usd_as_f64<S: serde::Serializer>(v: &Usd, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(v.as_f64())
}

impl TraceSummary {
    fn add(&mut self, call: &LlmCall) {
        self.llm_calls += 1;
        if call.is_error() {
            self.errors += 1;
        }
        // The totals the call was priced on: input reported exclusive of cached tokens
        // (Anthropic: input 10, cache read 5,000) counts 5,010, as the catalog prices it;
        // reasoning reported apart from output (reasoning > output) is added to it likewise.
        let usage = &call.usage;
        let output = if usage.reasoning_tokens > usage.output_tokens {
            usage.output_tokens.saturating_add(usage.reasoning_tokens)
        } else {
            usage.output_tokens
        };
        self.input_tokens = self.input_tokens.saturating_add(usage.prompt_tokens());
        self.cache_read_tokens = self
            .cache_read_tokens
            .saturating_add(usage.cache_read_tokens);
        self.output_tokens = self.output_tokens.saturating_add(output);
        match &call.cost {
            Some(c) => {
                self.cost = self.cost.saturating_add(c.total);
                self.estimated |= c.estimated;
            }
            None if !call.is_error() || call.has_usage => self.unpriced_calls += 1,
            None => {}
        }
    }
}

impl fmt::Display for TraceSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} | {} spans, {} LLM calls, {:.0?} | tokens in {} (cached {}) out {} | cost {}{}",
            self.root,
            self.spans,
            self.llm_calls,
            self.wall_time,
            self.input_tokens,
            self.cache_read_tokens,
            self.output_tokens,
            self.cost,
            if self.estimated { " (estimated)" } else { "" },
        )?;
        if self.unpriced_calls > 0 {
            write!(f, " | {} unpriced", self.unpriced_calls)?;
        }
        if self.errors > 0 {
            write!(f, " | {} failed", self.errors)?;
        }
        Ok(())
    }
}

/// What a span keeps of its trace's summary: the shared totals, and for the trace's root (it
/// has no parent) when it opened, so that its close needs no parent lookup.
///
/// A root's totals are shared only once a second span joins its trace (its first child
/// makes them): a trace of one span, most traffic without an LLM call, allocates nothing for
/// its summary, and a lone LLM span adds its call to a summary made as it closes.
///
/// A span is joined by one store, the first that sees it open ([`TraceSummaries::key`]): a
/// second store in the same stack neither counts its spans nor adds its calls again; a
/// root names it in `also`, and the trace is kept in it too.
#[derive(Debug)]
pub(crate) struct Joined {
    agg: Option<Arc<TraceAgg>>,
    root: Option<Instant>,
    store: usize,
    also: Vec<TraceSummaries>,
}

/// The summary a span joined, in its extensions' [`SpanSlot`].
fn joined<'e>(ext: &'e tracing_subscriber::registry::Extensions<'_>) -> Option<&'e Joined> {
    ext.get::<SpanSlot>().and_then(|s| s.joined.as_ref())
}

#[derive(Debug)]
struct TraceAgg {
    opened: Instant,
    spans: AtomicU64,
    /// Whether a call was added: a trace that made none is neither read back nor kept when
    /// its root closes (most traffic, and the lock is not taken for it).
    called: AtomicBool,
    /// The root span's id (`None` for a trace whose root opened before the layer saw spans):
    /// marked in [`TraceSummaries`]' `roots` once a call is added, so the root's close is
    /// the only close of a span without a call that is not dismissed unread.
    root_id: Option<Id>,
    data: Mutex<Tracked>,
}

/// A trace's totals and its id, while it runs and once kept: the id is written as hex only
/// when a summary is read, not for every trace on the request path.
///
/// While llmtel exports, the export stage prices each exported call; the summary keeps its
/// last few calls unpriced (sharing the span's captured fields) and prices them when it is
/// read, so a summary nobody reads never prices a call on the request thread a second time.
#[derive(Clone, Debug, Default)]
struct Tracked {
    summary: TraceSummary,
    trace: Option<TraceId>,
    /// Calls not priced yet (at most [`UNPRICED_PER_TRACE`]).
    unpriced: Vec<crate::layer::UnpricedCall>,
    /// The trace is a lone LLM span, named after its call.
    named_by_call: bool,
    /// The root span's name, written into the summary when it is read (unless the trace is
    /// named after its call).
    root: &'static str,
}

/// The call a span made, as its close hands it to the summary.
enum Closed<'a> {
    /// Left unpriced for the export stage (priced when the summary is read).
    Unpriced(crate::layer::UnpricedCall),
    /// Built (and priced) on the request thread, in the span's extensions.
    Built(&'a LlmCall),
}

/// The calls a trace keeps unpriced: one more prices them all into the totals, so the memory a
/// trace holds is bounded however many calls it makes.
const UNPRICED_PER_TRACE: usize = 4;

impl Tracked {
    /// Notes a call of the trace: the trace's id, if not known yet, and whether the call's
    /// span is the trace's root (a lone LLM span names the trace after its call).
    fn note_call(&mut self, trace: Option<TraceId>, lone: bool) {
        if self.trace.is_none() {
            self.trace = trace;
        }
        self.named_by_call |= lone;
    }

    /// Whether the trace made an LLM call (priced or not yet).
    fn has_calls(&self) -> bool {
        self.summary.llm_calls > 0 || !self.unpriced.is_empty()
    }

    fn add(&mut self, call: &LlmCall) {
        self.summary.add(call);
        if self.named_by_call {
            self.summary.root.clone_from(&call.name);
        }
    }

    /// Adds the call a span made as it closed; `lone` when the span is the trace's root.
    fn add_closed(&mut self, call: Closed<'_>, lone: bool) {
        match call {
            Closed::Unpriced(c) => {
                self.note_call(c.trace_id(), lone);
                self.add_unpriced(c);
            }
            Closed::Built(c) => {
                self.note_call(c.trace_id, lone);
                self.add(c);
            }
        }
    }

    fn add_unpriced(&mut self, call: crate::layer::UnpricedCall) {
        if self.unpriced.len() >= UNPRICED_PER_TRACE {
            self.price_unpriced();
        }
        self.unpriced.push(call);
    }

    fn price_unpriced(&mut self) {
        for call in std::mem::take(&mut self.unpriced) {
            self.add(&call.into_call());
        }
    }

    /// The summary as read: its unpriced calls priced (on the reader's thread, outside any
    /// lock).
    fn public(mut self) -> TraceSummary {
        self.price_unpriced();
        let mut s = self.summary;
        if !self.named_by_call {
            self.root.clone_into(&mut s.root);
        }
        s.trace_id = self.trace.map(|t| t.to_string());
        s
    }
}

impl TraceAgg {
    fn new(opened: Instant, spans: u64, root: &'static str, root_id: Option<Id>) -> Self {
        TraceAgg {
            opened,
            spans: AtomicU64::new(spans),
            called: AtomicBool::new(false),
            root_id,
            data: Mutex::new(Tracked::rooted(root)),
        }
    }

    /// The trace so far, while it runs.
    fn snapshot(&self) -> Tracked {
        let t = self.data.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.stamp(t, false)
    }

    /// The trace as its root span closes: every span of it has closed, so nothing adds to it
    /// any more and its totals are moved out, not copied.
    fn finish(&self) -> Tracked {
        let t = std::mem::take(&mut *self.data.lock().unwrap_or_else(|e| e.into_inner()));
        self.stamp(t, true)
    }

    fn stamp(&self, t: Tracked, complete: bool) -> Tracked {
        t.stamped(self.spans.load(Relaxed), self.opened, complete)
    }
}

impl Tracked {
    /// A trace's totals before any call, `root` its root span's name.
    fn rooted(root: &'static str) -> Self {
        Tracked {
            root,
            ..Tracked::default()
        }
    }

    fn stamped(mut self, spans: u64, opened: Instant, complete: bool) -> Self {
        self.summary.spans = spans;
        self.summary.wall_time = opened.elapsed();
        self.summary.complete = complete;
        self
    }
}

#[derive(Debug, Default)]
struct Store {
    ring: VecDeque<Tracked>,
    /// Trace id -> absolute index (`evicted` at the time of the push + position in `ring`).
    /// (foldhash: a trace id can come from a remote caller, so the hash is seeded.)
    by_trace: foldhash::HashMap<TraceId, usize>,
    /// Summaries evicted so far; also the absolute index of `ring[0]`.
    evicted: u64,
}

/// The bounded store of completed trace summaries, shared with [`TraceSummaryLayer`]: the
/// last `capacity` traces that made at least one LLM call (a trace that made none is not
/// kept, so traffic that never calls a model does not push out the traces that did;
/// [`current_trace_summary`] still answers while any trace runs).
///
/// ```
/// use tracing_subscriber::prelude::*;
/// let summaries = llmtel::TraceSummaries::new(100);
/// let subscriber = tracing_subscriber::registry()
///     .with(llmtel::layer())
///     .with(summaries.layer());
/// tracing::subscriber::with_default(subscriber, || {
///     let request = tracing::info_span!("handle_request");
///     let _g = request.enter();
///     let call = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
///     llmtel::record_usage(&call, &llmtel::Usage { input_tokens: 1000, output_tokens: 100, ..Default::default() });
/// });
/// let last = summaries.recent(1).pop().unwrap();
/// assert_eq!(last.llm_calls, 1);
/// assert_eq!(last.input_tokens, 1000);
/// assert!(last.cost > llmtel::Usd::ZERO);
/// ```
#[derive(Clone, Debug)]
pub struct TraceSummaries {
    store: Arc<Mutex<Store>>,
    capacity: usize,
    /// The roots of open traces that made a call: the closes llmtel's layer must read for a
    /// span it did not capture (every other such close is dismissed without a lookup).
    roots: Arc<MaybeIds>,
}

impl TraceSummaries {
    /// A store that keeps the last `capacity` completed traces that made an LLM call (at
    /// least 1).
    pub fn new(capacity: usize) -> Self {
        TraceSummaries {
            store: Arc::new(Mutex::new(Store::default())),
            roots: Arc::new(MaybeIds::new()),
            capacity: capacity.max(1),
        }
    }

    /// The layer that feeds this store, before or after [`crate::layer`] (whichever closes
    /// a span first finishes its [`LlmCall`]). Next to another store's layer (the one
    /// [`crate::builder`] keeps, say), each store keeps every trace, counted once.
    pub fn layer(&self) -> TraceSummaryLayer {
        TraceSummaryLayer {
            summaries: self.clone(),
        }
    }

    /// The most recent `n` completed traces that made an LLM call, oldest first.
    pub fn recent(&self, n: usize) -> Vec<TraceSummary> {
        let kept: Vec<Tracked> = {
            let s = self.store.lock().unwrap_or_else(|e| e.into_inner());
            let skip = s.ring.len().saturating_sub(n);
            s.ring.iter().skip(skip).cloned().collect()
        };
        kept.into_iter().map(Tracked::public).collect()
    }

    /// The completed trace with this OpenTelemetry trace id, if still kept (`None` for a
    /// trace that made no LLM call, and for one evicted).
    pub fn get(&self, trace_id: TraceId) -> Option<TraceSummary> {
        let kept = {
            let s = self.store.lock().unwrap_or_else(|e| e.into_inner());
            let abs = *s.by_trace.get(&trace_id)?;
            let first = s.evicted as usize;
            s.ring.get(abs.checked_sub(first)?).cloned()
        };
        kept.map(Tracked::public)
    }

    /// Number of completed traces kept.
    pub fn len(&self) -> usize {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ring
            .len()
    }

    /// Whether no completed trace is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&self, kept: Tracked) {
        let mut s = self.store.lock().unwrap_or_else(|e| e.into_inner());
        if s.ring.len() == self.capacity {
            if let Some(old) = s.ring.pop_front() {
                // Only its own entry: a later summary of the same trace id (two local roots
                // of one distributed trace) stays found.
                let abs = s.evicted as usize;
                if let Some(t) = old.trace {
                    if s.by_trace.get(&t) == Some(&abs) {
                        s.by_trace.remove(&t);
                    }
                }
                s.evicted += 1;
                inc(&COUNTERS.summaries_evicted);
            }
        }
        let abs = s.evicted as usize + s.ring.len();
        if let Some(t) = kept.trace {
            s.by_trace.insert(t, abs);
        }
        s.ring.push_back(kept);
    }
}

/// The summary of the trace the current span belongs to, while it is still open
/// (`complete == false`), when a [`TraceSummaryLayer`] is installed.
///
/// ```
/// use tracing_subscriber::prelude::*;
/// let summaries = llmtel::TraceSummaries::new(10);
/// let subscriber = tracing_subscriber::registry().with(llmtel::layer()).with(summaries.layer());
/// tracing::subscriber::with_default(subscriber, || {
///     let request = tracing::info_span!("handle_request");
///     let _g = request.enter();
///     {
///         let call = llmtel::llm_span!("chat", "anthropic", "claude-sonnet-4");
///         llmtel::record_usage(&call, &llmtel::Usage { input_tokens: 2000, output_tokens: 500, ..Default::default() });
///     }
///     let so_far = llmtel::current_trace_summary().unwrap();
///     assert_eq!(so_far.llm_calls, 1);
///     assert!(!so_far.complete);
/// });
/// ```
pub fn current_trace_summary() -> Option<TraceSummary> {
    let mut out = None;
    tracing::Span::current().with_subscriber(|(id, dispatch)| {
        let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
            return;
        };
        if let Some(span) = registry.span(id) {
            // What is needed is taken out and the span's extensions released first: reading
            // the summary prices its unpriced calls, which may log (an unknown model), and
            // a layer seeing that event may lock the current span's extensions.
            let Some((agg, root)) = joined(&span.extensions()).map(|j| (j.agg.clone(), j.root))
            else {
                return;
            };
            let so_far = match (agg, root) {
                (Some(agg), _) => agg.snapshot(),
                (None, Some(opened)) => Tracked::rooted(span.name()).stamped(1, opened, false),
                (None, None) => return,
            };
            out = Some(so_far.public());
        }
    });
    out
}

/// The layer behind [`TraceSummaries`]: counts every span of a trace and adds each
/// [`LlmCall`] to its trace's totals. It sees every span: one `Arc` clone for each span with a
/// parent, nothing shared for a trace of one span.
#[derive(Clone, Debug)]
pub struct TraceSummaryLayer {
    summaries: TraceSummaries,
}

impl<S> Layer<S> for TraceSummaryLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            self.summaries.open(&span);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            self.summaries.close(&span);
        }
    }
}

impl TraceSummaries {
    /// Whether the close of `id`, a span llmtel's layer did not capture, may have work here:
    /// only the root of a trace that made a call has (`false`: certainly none).
    #[inline]
    pub(crate) fn may_close_a_root(&self, id: &Id) -> bool {
        self.roots.maybe(id)
    }

    /// Which store this is, as [`Joined`] names it.
    fn key(&self) -> usize {
        Arc::as_ptr(&self.store) as usize
    }

    /// A span opens: it joins its parent's trace, or starts one; or, when another store of
    /// the stack has joined it already, a root keeps its trace for this one too.
    pub(crate) fn open<'a, R: LookupSpan<'a>>(&self, span: &SpanRef<'a, R>) {
        let store = self.key();
        SpanSlot::update(&mut span.extensions_mut(), |s| match &mut s.joined {
            Some(joined) => {
                if joined.store != store
                    && joined.root.is_some()
                    && !joined.also.iter().any(|a| a.key() == store)
                {
                    joined.also.push(self.clone());
                }
            }
            none => {
                // (The parent's extensions are locked inside this span's: nothing else can
                // hold this span's yet, it is opening.)
                *none = Some(match span.parent() {
                    None => Joined {
                        agg: None,
                        root: Some(Instant::now()),
                        store,
                        also: Vec::new(),
                    },
                    Some(parent) => Joined {
                        agg: Some(join(&parent, span)),
                        root: None,
                        store,
                        also: Vec::new(),
                    },
                });
            }
        });
    }

    /// Keeps a finished trace here and in the other stores its root named.
    fn keep(&self, also: &[TraceSummaries], kept: Tracked) {
        for other in also {
            other.push(kept.clone());
        }
        self.push(kept);
    }

    /// A span closes: its call, if it made one, is added to its trace; a root keeps its
    /// trace's summary.
    pub(crate) fn close<'a, R: LookupSpan<'a>>(&self, span: &SpanRef<'a, R>) {
        if joined(&span.extensions()).is_none() {
            return;
        }
        // Stacked before llmtel's layer, this layer finishes the call itself; when the
        // export stage prices the call, it is kept unpriced until the summary is read.
        let unpriced = crate::layer::close_call_unpriced(span);
        self.close_with(span, unpriced);
    }

    /// [`close`](Self::close) with the call finished already: `unpriced` is the call left
    /// unpriced for the export stage, if any; otherwise a call built on the request thread
    /// is read from the span's extensions.
    pub(crate) fn close_with<'a, R: LookupSpan<'a>>(
        &self,
        span: &SpanRef<'a, R>,
        unpriced: Option<crate::layer::UnpricedCall>,
    ) {
        // Taken by the store that joined the span, once (a store stacked twice closes it
        // twice; another store's close leaves it).
        let store = self.key();
        let mut ext = span.extensions_mut();
        let Some(slot) = ext.get_mut::<SpanSlot>() else {
            return;
        };
        let Some(Joined {
            agg, root, also, ..
        }) = slot.joined.take_if(|j| j.store == store)
        else {
            return;
        };
        let lone = root.is_some();
        // The call the span made, if any: left unpriced for the export stage, or built on
        // the request thread.
        let call = match unpriced {
            Some(c) => Some(Closed::Unpriced(c)),
            None => ext.get_mut::<LlmCall>().map(|c| Closed::Built(c)),
        };
        let Some(agg) = agg else {
            // A root no other span joined: its call, if it made one, is its trace's only one.
            let (Some(opened), Some(call)) = (root, call) else {
                return;
            };
            let mut t = Tracked::rooted(span.name());
            t.add_closed(call, true);
            self.keep(&also, t.stamped(1, opened, true));
            return;
        };
        if let Some(call) = call {
            agg.data
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add_closed(call, lone);
            if !agg.called.swap(true, Relaxed) {
                if let Some(root) = &agg.root_id {
                    self.roots.add(root);
                }
            }
        }
        // A trace that made no LLM call cost nothing: not kept, so requests that never call
        // a model do not evict the summaries of those that did (and its totals are not read).
        if lone && agg.called.load(Relaxed) {
            // (A root's shared totals were made for it: `root_id` is its id.)
            if let Some(root) = &agg.root_id {
                self.roots.remove(root);
            }
            let done = agg.finish();
            if done.has_calls() {
                self.keep(&also, done);
            }
        }
    }
}

/// The shared totals of `parent`'s trace, which `span` joins (counted): made by the first
/// child of a root (the root and the child are its first two spans). A parent that joined no
/// trace (it opened before this layer saw spans) leaves `span` to start one of its own.
fn join<'a, R: LookupSpan<'a>>(parent: &SpanRef<'a, R>, span: &SpanRef<'a, R>) -> Arc<TraceAgg> {
    // (One write lock, not a read and then a write for a root's first child: a lock is most
    // of what a join costs.)
    let mut ext = parent.extensions_mut();
    let Some(j) = ext.get_mut::<SpanSlot>().and_then(|s| s.joined.as_mut()) else {
        return Arc::new(TraceAgg::new(Instant::now(), 1, span.name(), None));
    };
    match &j.agg {
        Some(agg) => {
            agg.spans.fetch_add(1, Relaxed);
            agg.clone()
        }
        None => {
            let opened = j.root.unwrap_or_else(Instant::now);
            let agg = Arc::new(TraceAgg::new(opened, 2, parent.name(), Some(parent.id())));
            j.agg = Some(agg.clone());
            agg
        }
    }
}

#[cfg(test)]
mod root_marks {
    use tracing_subscriber::prelude::*;

    /// One priced LLM call, closed.
    pub(super) fn call() {
        let c = crate::llm_span!("chat", "openai", "gpt-4o-mini");
        crate::record_usage(
            &c,
            &crate::Usage {
                input_tokens: 10,
                output_tokens: 1,
                ..Default::default()
            },
        );
    }

    /// The root of a trace is marked from its first call until it closes (so its close, the
    /// only one of a span without a call that has work, is read) and never otherwise: after
    /// any number of traces no mark is left.
    #[test]
    fn a_root_is_marked_from_its_trace_first_call_until_it_closes() {
        let summaries = super::TraceSummaries::new(64);
        let layer = crate::LlmLayer::new().with_summaries(summaries.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for i in 0..5_000 {
                let root = tracing::info_span!("handle", i);
                let _entered = root.enter();
                {
                    let _step = tracing::info_span!("step").entered();
                    assert!(summaries.roots.is_empty(), "no call yet");
                    if i % 2 == 0 {
                        call();
                        call();
                        assert!(summaries.may_close_a_root(&root.id().expect("enabled")));
                    }
                }
            }
        });
        assert!(summaries.roots.is_empty(), "a mark left behind");
        // Every trace with a call kept (the last 64), none of the others.
        let kept = summaries.recent(100);
        assert_eq!(kept.len(), 64);
        assert!(
            kept.iter()
                .all(|s| s.llm_calls == 2 && s.spans == 4 && s.complete)
        );
    }
}

#[cfg(test)]
mod totals {
    use tracing_subscriber::prelude::*;

    /// A trace's token totals are the ones its calls were priced on: input reported
    /// exclusive of cached tokens (Anthropic's shape) counts them, and reasoning reported
    /// apart from output (more reasoning than output) is added to the output.
    #[test]
    fn token_totals_count_what_the_calls_were_priced_on() {
        let summaries = super::TraceSummaries::new(8);
        let subscriber = tracing_subscriber::registry()
            .with(crate::LlmLayer::new())
            .with(summaries.layer());
        let so_far = tracing::subscriber::with_default(subscriber, || {
            let _request = tracing::info_span!("handle").entered();
            {
                let c = crate::llm_span!("chat", "anthropic", "claude-sonnet-4");
                crate::record_usage(
                    &c,
                    &crate::Usage {
                        input_tokens: 10,
                        cache_read_tokens: 5_000,
                        output_tokens: 20,
                        ..Default::default()
                    },
                );
            }
            {
                let c = crate::llm_span!("chat", "openai", "o3");
                crate::record_usage(
                    &c,
                    &crate::Usage {
                        input_tokens: 100,
                        output_tokens: 5,
                        reasoning_tokens: 100,
                        ..Default::default()
                    },
                );
            }
            super::current_trace_summary()
        });
        let so_far = so_far.expect("a summary");
        assert_eq!(so_far.llm_calls, 2);
        assert_eq!(so_far.input_tokens, 5_010 + 100, "{so_far:?}");
        assert_eq!(so_far.cache_read_tokens, 5_000);
        assert_eq!(so_far.output_tokens, 20 + 105, "{so_far:?}");
    }
}

#[cfg(all(test, feature = "otlp-http"))]
#[path = "../tests/support/otlp_http.rs"]
mod otlp_http;

#[cfg(all(test, feature = "otlp-http"))]
mod tests {
    use super::otlp_http;
    use tracing_subscriber::prelude::*;

    /// While llmtel exports, a trace keeps its last calls unpriced (the export stage prices
    /// them for the span; the summary when it is read), never more than its bound.
    #[test]
    fn exporting_keeps_at_most_a_few_calls_unpriced_per_trace() {
        let (layer, guard) = crate::builder()
            .with_console(false)
            .with_metrics(false)
            .with_endpoint(otlp_http::receiver().0)
            .with_protocol(crate::Protocol::HttpProtobuf)
            .build::<tracing_subscriber::Registry>()
            .expect("a pipeline");
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for calls in [1, 3, 10] {
                let _root = tracing::info_span!("handle").entered();
                for _ in 0..calls {
                    super::root_marks::call();
                }
            }
        });
        let unpriced: Vec<usize> = {
            let store = guard.summaries().store.lock().expect("not poisoned");
            store.ring.iter().map(|t| t.unpriced.len()).collect()
        };
        // The fifth call of a trace prices the four before it, and so on.
        let kept = |calls: usize| (calls - 1) % super::UNPRICED_PER_TRACE + 1;
        assert_eq!(unpriced, [kept(1), kept(3), kept(10)]);
        assert_eq!(kept(10), 2);
        let calls: Vec<u64> = guard
            .summaries()
            .recent(3)
            .iter()
            .map(|s| s.llm_calls)
            .collect();
        assert_eq!(calls, [1, 3, 10]);
    }

    /// A layer that locks the current span's extensions for an event.
    struct LocksCurrentSpan;

    impl<S> tracing_subscriber::Layer<S> for LocksCurrentSpan
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        fn on_event(
            &self,
            _event: &tracing::Event<'_>,
            ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if let Some(span) = ctx.lookup_current() {
                span.extensions_mut().insert(());
            }
        }
    }

    /// Reading the summary prices the calls the export stage left unpriced, which warns for
    /// an unknown model: a layer locking the current span's extensions for that event must
    /// not find them held by `current_trace_summary` (it deadlocked or panicked).
    #[test]
    fn reading_a_summary_that_logs_does_not_hold_the_span() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (layer, _guard) = crate::builder()
                .with_console(false)
                .with_metrics(false)
                .with_endpoint(otlp_http::receiver().0)
                .with_protocol(crate::Protocol::HttpProtobuf)
                .build::<tracing_subscriber::Registry>()
                .expect("a pipeline");
            let subscriber = tracing_subscriber::registry()
                .with(layer)
                .with(LocksCurrentSpan);
            let calls = tracing::subscriber::with_default(subscriber, || {
                let _root = tracing::info_span!("handle").entered();
                {
                    let c = crate::llm_span!("chat", "openai", "llmtel-no-such-model-summary");
                    crate::record_usage(
                        &c,
                        &crate::Usage {
                            input_tokens: 10,
                            output_tokens: 1,
                            ..Default::default()
                        },
                    );
                }
                super::current_trace_summary().map(|s| (s.llm_calls, s.unpriced_calls))
            });
            let _ = done.send(calls);
        });
        let read = finished.recv_timeout(std::time::Duration::from_secs(20));
        assert_eq!(read, Ok(Some((1, 1))));
    }
}
