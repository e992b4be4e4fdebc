//! [`LlmLayer`]: LLM calls in process, while the request runs.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use llmtel_pricing::Catalog;
use opentelemetry::trace::{SpanId, TraceId};
use tracing_core::dispatcher::{Dispatch, WeakDispatch};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::call::LlmCall;
use crate::enrich::Pricer;
use crate::fields::{SpanFields, is_dimension_field, is_interesting_field, provider_from_system};
use crate::health::{COUNTERS, inc};
use crate::maybe::MaybeIds;

/// Receives every completed [`LlmCall`].
///
/// Added with [`LlmLayer::with_sink`], a sink is called synchronously in the layer's
/// `on_close`, on the application's thread: keep it short and non-blocking (push to a bounded
/// queue for anything slow). Added with [`crate::Builder::with_sink`] while llmtel exports,
/// or with [`crate::GenAiExporter::with_sink`], it is called on the export thread for the
/// calls of exported spans (priced once there), and from the layer for the others (see
/// [`crate::Builder::with_sink`]). The console printer and the OpenTelemetry metrics are
/// sinks.
pub trait CallSink: Send + Sync + fmt::Debug + 'static {
    /// Called once per LLM call, after its cost is known.
    fn on_call(&self, call: &LlmCall);

    /// Called instead of [`on_call`](Self::on_call) on llmtel's export stage, with the
    /// attributes to add to the call's exported span (budgets write `llmtel.budget.*`
    /// there); they go through the same secrets and content rules as the span's own. By
    /// default, `on_call`.
    fn on_exported_call(&self, call: &LlmCall, span_attributes: &mut Vec<opentelemetry::KeyValue>) {
        let _ = span_attributes;
        self.on_call(call);
    }

    /// Whether this sink must get each call as its span closes, on the application's
    /// thread, wherever it is added: `true` keeps it out of the export stage (for a sink
    /// read right after the call, such as an experiment's). `false` by default.
    fn on_request_thread(&self) -> bool {
        false
    }
}

/// What llmtel keeps in a span's extensions, in one box: the layer's state of a captured span
/// (taken out while a close works on it and put back in the same box: no allocation per
/// close) and the trace summary the span joined. One box where there were two: each is an
/// allocation and a free per span.
#[derive(Debug, Default)]
pub(crate) struct SpanSlot {
    state: Option<Capture>,
    pub(crate) joined: Option<crate::summary::Joined>,
    /// How many llmtel layers counted the span in their `captured` filter (which only says
    /// "maybe"): each one's own close uncounts it, whichever layer finished the call first.
    counted: u8,
    /// Whether the span's OpenTelemetry span is not sampled: attributes set after it ended
    /// are not kept for an exporter that will never take them.
    unsampled: bool,
}

/// What llmtel's layer captured of a span.
#[derive(Debug)]
enum Capture {
    /// A span whose callsite declares a `gen_ai.*` (or other call) field: it may be an LLM
    /// call, so everything it records is kept.
    Call(SpanState),
    /// A span whose callsite declares only dimension fields (`user.id`, `session.id`,
    /// `llmtel.feature`, `llmtel.tenant`, custom `llmtel.*`), such as a request span: it can
    /// never be a call, so only the dimensions its calls inherit are kept (no field set, no
    /// clocks).
    Dims { dims: crate::Dimensions },
}

impl SpanSlot {
    /// The layer's state of a captured span that may be a call, unless a close has it out.
    fn state<'e>(ext: &'e tracing_subscriber::registry::Extensions<'_>) -> Option<&'e SpanState> {
        match ext.get::<SpanSlot>()?.state.as_ref()? {
            Capture::Call(state) => Some(state),
            Capture::Dims { .. } => None,
        }
    }

    /// [`state`](Self::state), to write.
    fn state_mut<'e>(
        ext: &'e mut tracing_subscriber::registry::ExtensionsMut<'_>,
    ) -> Option<&'e mut SpanState> {
        match ext.get_mut::<SpanSlot>()?.state.as_mut()? {
            Capture::Call(state) => Some(state),
            Capture::Dims { .. } => None,
        }
    }

    /// The dimensions a captured span sets itself, unless a close has its state out.
    fn dims<'e>(
        ext: &'e tracing_subscriber::registry::Extensions<'_>,
    ) -> Option<&'e crate::Dimensions> {
        match ext.get::<SpanSlot>()?.state.as_ref()? {
            Capture::Call(state) => Some(&state.fields.dims),
            Capture::Dims { dims, .. } => Some(dims),
        }
    }

    /// Runs `f` on the slot of a span, added to its extensions if it has none yet.
    pub(crate) fn update(
        ext: &mut tracing_subscriber::registry::ExtensionsMut<'_>,
        f: impl FnOnce(&mut SpanSlot),
    ) {
        if let Some(slot) = ext.get_mut::<SpanSlot>() {
            f(slot);
            return;
        }
        let mut slot = SpanSlot::default();
        f(&mut slot);
        ext.insert(slot);
    }
}

/// Per-span state, stored once in the span's extensions (in its [`SpanSlot`]).
#[derive(Debug)]
struct SpanState {
    /// Shared once the span has closed with its call left unpriced for a reader that may
    /// never need the cost ([`UnpricedCall`]); written in place until then.
    fields: Arc<SpanFields>,
    opened: Instant,
    started_at: SystemTime,
    /// The OpenTelemetry ids, when an OpenTelemetry layer had created the span before this
    /// layer saw it (that layer runs first, so it also ends the span first).
    otel: Option<(TraceId, SpanId)>,
    /// Whether the OpenTelemetry span is sampled (it reaches the export stage).
    sampled: bool,
    /// Set by the first close: the call's sinks are run by llmtel's export stage (the
    /// span is sampled and the layer hands its calls to that stage), not here.
    closed: Option<Closed>,
    /// The layer that captured the span: whoever closes the call first
    /// ([`LlmLayer`]'s `on_close` or [`close_call`]) finishes it with this.
    layer: Arc<Inner>,
    /// The capturing layer's registration: the dispatcher it was registered with, whose
    /// OpenTelemetry layer holds the span (the span may close on a thread whose default
    /// dispatcher is another: a subscriber `set_default` on one thread, a span moved to a
    /// runtime's worker), and what it learned of that stack's order.
    reg: Arc<Registered>,
    /// Whether the OpenTelemetry ids were looked for when the call's outcome was recorded
    /// (once: a span never entered).
    probed: bool,
    /// Other llmtel layers of the same stack that captured the span too (a user's own
    /// `llmtel::layer().with_sink(..)` next to the builder's): the call is priced once, with
    /// the leading layer's catalog ([`SpanState::join`]), and handed to each layer's sinks.
    also: Vec<Arc<Inner>>,
}

impl SpanState {
    /// Another llmtel layer of the stack (`layer`, registered with `dispatch`) captured the
    /// span too: its sinks get the call, once (a layer stacked again, a clone of one, joins
    /// once). A layer that hands its calls to the export stage leads: the call is priced
    /// there, with its catalog, unless a sink wants it on the request thread.
    fn join(&mut self, layer: &Arc<Inner>, reg: &Arc<Registered>) {
        if self.reg.dispatch.get().is_none() && reg.dispatch.get().is_some() {
            self.reg = reg.clone();
        }
        if Arc::ptr_eq(&self.layer, layer) || self.also.iter().any(|l| Arc::ptr_eq(l, layer)) {
            return;
        }
        if layer.deferred && !self.layer.deferred {
            let led = std::mem::replace(&mut self.layer, layer.clone());
            self.also.push(led);
        } else {
            self.also.push(layer.clone());
        }
    }
}

/// The tracing layer that gives the application its LLM calls **in process**: each span with
/// `gen_ai.*` fields for a model operation (whoever created it: [`llm_span!`](crate::llm_span),
/// `rig`, `genai`, hand-written) becomes an [`LlmCall`] with its usage and exact cost when the
/// span closes. The call is handed to the layer's [`CallSink`]s and left in the span's
/// extensions for llmtel's other layers (trace summaries, budgets, quality, the call log),
/// stacked before or after this one: whichever closes the span first finishes the call
/// ([`close_call`]). Two of these layers in one stack (the builder's and your own, say) share
/// the span's capture: the call is priced once, with the builder's catalog (else the one
/// nearer the registry), and handed to each layer's sinks.
///
/// The cost attributes on the **exported** span do not depend on this layer: they are
/// computed off the request path by [`crate::GenAiExporter`] on the export thread. Add this
/// layer when something in the process needs the calls while the request runs; it costs
/// the request path the capture of the span's fields and one pricing per call
/// (BENCHMARKS.md). Spans with no field llmtel reads cost it a scan of their field names.
///
/// App dimensions (`user.id`, `session.id` / `gen_ai.conversation.id`, `llmtel.feature`,
/// `llmtel.tenant`, any `llmtel.*` string) set on an ancestor span reach the calls below it.
///
/// ```
/// use tracing_subscriber::prelude::*;
/// #[derive(Debug)]
/// struct Print;
/// impl llmtel::CallSink for Print {
///     fn on_call(&self, call: &llmtel::LlmCall) {
///         println!("{} cost {:?}", call.name, call.cost_usd());
///     }
/// }
/// let subscriber = tracing_subscriber::registry()
///     .with(llmtel::LlmLayer::new().with_sink(std::sync::Arc::new(Print)));
/// tracing::subscriber::with_default(subscriber, || {
///     let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
///     llmtel::record_usage(&span, &llmtel::Usage { input_tokens: 1000, output_tokens: 200, ..Default::default() });
/// });
/// ```
pub struct LlmLayer {
    inner: Arc<Inner>,
    /// Trace summaries kept by this layer itself ([`crate::builder`]): the same work as a
    /// [`TraceSummaryLayer`](crate::TraceSummaryLayer) stacked after it, on the span each
    /// hook has looked up already.
    summaries: Option<crate::TraceSummaries>,
    /// The dispatcher this layer is registered with (`on_register_dispatch`): where its
    /// spans' OpenTelemetry ids are looked up; and what it learned of that stack's order. Not
    /// shared by a clone, which may be registered with another subscriber.
    reg: Arc<Registered>,
    /// Told the dispatcher this layer is registered with: the builder's export threads warn
    /// the application there.
    warn_to: Option<crate::enrich::WarnTo>,
}

impl Clone for LlmLayer {
    fn clone(&self) -> Self {
        LlmLayer {
            inner: self.inner.clone(),
            summaries: self.summaries.clone(),
            reg: Arc::default(),
            warn_to: self.warn_to.clone(),
        }
    }
}

/// What one [`LlmLayer`] knows of the stack it is registered in.
#[derive(Debug, Default)]
struct Registered {
    /// The dispatcher (`on_register_dispatch`).
    dispatch: OnceLock<WeakDispatch>,
    /// Whether the first of llmtel's closes of an LLM span runs before or after the
    /// OpenTelemetry layer ends its span ([`LLMTEL_FIRST`], [`OTEL_FIRST`]; 0 until
    /// learned), learned from the spans themselves: a layer's place in its stack does not
    /// change.
    order: AtomicU8,
}

/// llmtel's first close of an LLM span sees its OpenTelemetry span live.
const LLMTEL_FIRST: u8 = 1;
/// The OpenTelemetry layer ends the span before llmtel's first close: what llmtel adds then
/// (the inherited dimensions) reaches it through the late attributes ([`crate::late`]).
const OTEL_FIRST: u8 = 2;

impl Registered {
    fn dispatch(&self) -> Option<&WeakDispatch> {
        self.dispatch.get()
    }

    fn order(&self) -> u8 {
        self.order.load(Ordering::Relaxed)
    }

    fn learn(&self, order: u8) {
        if self.order() != order {
            self.order.store(order, Ordering::Relaxed);
        }
    }
}

struct Inner {
    pricer: Pricer,
    sinks: Vec<Arc<dyn CallSink>>,
    /// Which open spans this layer captured: a span it did not is dismissed in `on_record`
    /// and `on_close` without a registry lookup. Added in `on_new_span`, removed by the
    /// span's first close.
    captured: MaybeIds,
    /// The sinks of a sampled span's call run on llmtel's export stage, which prices it
    /// once there ([`crate::builder`] sets this when it exports)...
    deferred: bool,
    /// ...except these, which say they must run here ([`CallSink::on_request_thread`]).
    request_sinks: Vec<Arc<dyn CallSink>>,
}

/// How the first close of a captured LLM span left it.
#[derive(Clone, Copy, Debug)]
struct Closed {
    deferred: bool,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmLayer")
            .field("catalog_entries", &self.pricer.catalog().len())
            .field("sinks", &self.sinks)
            .finish()
    }
}

impl fmt::Debug for LlmLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Default for LlmLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl LlmLayer {
    /// A layer pricing with the built-in catalog, with no sinks.
    ///
    /// It does not count priced / unknown-model calls in [`crate::health`] (the exporter
    /// counts what it exports); [`LlmLayer::with_health_counting`] turns that on where
    /// nothing is exported.
    pub fn new() -> Self {
        LlmLayer {
            inner: Arc::new(Inner {
                pricer: Pricer::new(Arc::new(Catalog::builtin().clone()), false),
                sinks: Vec::new(),
                captured: MaybeIds::new(),
                deferred: false,
                request_sinks: Vec::new(),
            }),
            summaries: None,
            reg: Arc::default(),
            warn_to: None,
        }
    }

    /// The layer's settings, to change before it is installed (a clone made earlier keeps
    /// the settings it had).
    fn inner_mut(&mut self) -> &mut Inner {
        if Arc::get_mut(&mut self.inner).is_none() {
            self.inner = Arc::new(Inner {
                pricer: self.inner.pricer.clone(),
                sinks: self.inner.sinks.clone(),
                captured: MaybeIds::new(),
                deferred: self.inner.deferred,
                request_sinks: self.inner.request_sinks.clone(),
            });
        }
        Arc::get_mut(&mut self.inner).unwrap_or_else(|| unreachable!("just made unique"))
    }

    /// Prices with `catalog` (for example the built-in one merged with a user price file).
    pub fn with_catalog(mut self, catalog: impl Into<Arc<Catalog>>) -> Self {
        let inner = self.inner_mut();
        inner.pricer = inner.pricer.clone().with_catalog(catalog.into());
        self
    }

    /// Counts priced, unknown-model and malformed-usage calls in [`crate::health`] (off by
    /// default, so that calls are not counted twice when the exporter counts them too).
    pub fn with_health_counting(mut self, on: bool) -> Self {
        let inner = self.inner_mut();
        inner.pricer = inner.pricer.clone().counting(on);
        self
    }

    /// Adds a sink that receives every completed call.
    pub fn with_sink(mut self, sink: Arc<dyn CallSink>) -> Self {
        let inner = self.inner_mut();
        if sink.on_request_thread() {
            inner.request_sinks.push(sink.clone());
        }
        inner.sinks.push(sink);
        self
    }

    /// Leaves the sinks of every call whose span is sampled to llmtel's export stage
    /// ([`crate::GenAiExporter::with_sink`] with the same sinks), which prices the call once,
    /// off the request path; calls of spans that are not exported (not sampled, filtered out)
    /// still reach the sinks here. The export queue hands a span it cannot take to the sinks
    /// at once, so no call is lost to them.
    pub(crate) fn with_sinks_on_export_stage(mut self, on: bool) -> Self {
        self.inner_mut().deferred = on;
        self
    }

    /// Tells `warn_to` the dispatcher this layer is registered with (the application's), for
    /// the warnings of the export threads of the same [`crate::builder`].
    pub(crate) fn with_warnings_to(mut self, warn_to: crate::enrich::WarnTo) -> Self {
        self.warn_to = Some(warn_to);
        self
    }

    /// Feeds `summaries` from this layer's own hooks, as its
    /// [`TraceSummaryLayer`](crate::TraceSummaryLayer) stacked after it would (without a
    /// second look-up of each span).
    pub(crate) fn with_summaries(mut self, summaries: crate::TraceSummaries) -> Self {
        self.summaries = Some(summaries);
        self
    }

    /// The catalog this layer prices with.
    pub fn catalog(&self) -> &Arc<Catalog> {
        self.inner.pricer.catalog()
    }
}

/// The [`LlmCall`] of a priced span: what every sink sees, built the same way for a span
/// llmtel's layer captured and for one the exporter stage priced (the collector's).
pub(crate) fn call_from_fields(
    f: SpanFields,
    priced: crate::enrich::Priced,
    fallback_name: &str,
    started_at: SystemTime,
    duration: std::time::Duration,
    otel: Option<(TraceId, SpanId)>,
) -> LlmCall {
    let operation = f
        .operation
        .map(std::borrow::Cow::into_owned)
        .unwrap_or_else(|| "chat".to_owned());
    let name = match (f.otel_name, &f.request_model) {
        (Some(n), _) => n,
        // `llm_span!`'s `otel.name`, which llmtel does not capture.
        (None, Some(m)) => [operation.as_str(), m].join(" "),
        (None, None) => fallback_name.to_owned(),
    };
    let has_usage = f.input.is_set() || f.output.is_set();
    LlmCall {
        name,
        operation,
        provider: f.provider.map(std::borrow::Cow::into_owned).or_else(|| {
            f.system
                .as_deref()
                .map(|s| provider_from_system(s).to_owned())
        }),
        error_type: f
            .error_type
            .or_else(|| f.status_error.then(|| "error".to_owned())),
        request_model: f.request_model,
        response_model: f.response_model,
        response_id: f.response_id,
        finish_reasons: f.finish_reasons.unwrap_or_default(),
        usage: priced.usage,
        has_usage,
        cost: priced.cost,
        unknown_model: priced.unknown_model,
        usage_error: priced.usage_error,
        streamed: f.stream.unwrap_or(false),
        max_tokens: f.max_tokens,
        time_to_first_chunk: f.time_to_first_chunk,
        dimensions: f.dims,
        started_at,
        duration,
        trace_id: otel.map(|(t, _)| t),
        span_id: otel.map(|(_, s)| s),
    }
}

/// What llmtel's layer keeps of a span, from its callsite's field names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// No field llmtel reads.
    Skip,
    /// Only dimension fields ([`Capture::Dims`]).
    Dims,
    /// A field a call is made of ([`Capture::Call`]).
    Call,
}

/// The [`Kind`] of a span's callsite: one scan of its field names, stopped at the first that
/// makes it a possible call.
#[inline]
fn kind(meta: &Metadata<'_>) -> Kind {
    let mut kind = Kind::Skip;
    for f in meta.fields().iter() {
        let name = f.name();
        if !is_interesting_field(name) {
            continue;
        }
        // (A `gen_ai.*` name is never only a dimension: no need to classify it.)
        if llmtel_semconv::is_gen_ai_field(name) || !is_dimension_field(name) {
            return Kind::Call;
        }
        kind = Kind::Dims;
    }
    kind
}

impl<S> Layer<S> for LlmLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        // Inside a `Vec` or an `Option` of layers, which do not forward this, the spans'
        // ids are looked up in the closing thread's default dispatcher instead.
        let _ = self.reg.dispatch.set(subscriber.downgrade());
        if let Some(w) = &self.warn_to {
            w.set(subscriber.downgrade());
        }
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let kind = kind(attrs.metadata());
        if kind == Kind::Skip && self.summaries.is_none() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        if kind != Kind::Skip {
            let mut fields = SpanFields {
                name_derived: kind == Kind::Call && crate::span::is_llm_span(attrs.metadata()),
                ..SpanFields::default()
            };
            attrs.record(&mut fields);
            let capture = if kind == Kind::Dims {
                Capture::Dims { dims: fields.dims }
            } else {
                // (The OpenTelemetry ids are not read here: reading them starts the
                // OpenTelemetry span, and a span started can no longer be given a parent
                // (`set_parent` right after the span is opened, as llmtel-eval's judge does,
                // fails with `AlreadyStarted`). `on_enter`, the record of the call's outcome
                // and the close read them.)
                Capture::Call(SpanState {
                    fields: Arc::new(fields),
                    opened: Instant::now(),
                    started_at: SystemTime::now(),
                    otel: None,
                    sampled: false,
                    closed: None,
                    layer: self.inner.clone(),
                    reg: self.reg.clone(),
                    probed: false,
                    also: Vec::new(),
                })
            };
            SpanSlot::update(&mut span.extensions_mut(), |s| {
                match (&mut s.state, capture) {
                    // Another llmtel layer captured it first: this one joins.
                    (Some(Capture::Call(first)), Capture::Call(_)) => {
                        first.join(&self.inner, &self.reg);
                    }
                    (state, capture) => *state = Some(capture),
                }
                s.counted = s.counted.saturating_add(1);
            });
            self.inner.captured.add(id);
        }
        if let Some(summaries) = &self.summaries {
            summaries.open(&span);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if !self.inner.captured.maybe(id) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let mut probe = None;
        match ext.get_mut::<SpanSlot>().and_then(|s| s.state.as_mut()) {
            Some(Capture::Call(state)) => {
                let fields: &mut SpanFields = Arc::make_mut(&mut state.fields);
                let had_outcome = fields.has_outcome();
                values.record(fields);
                if state.otel.is_none()
                    && !state.probed
                    && state.reg.order() != LLMTEL_FIRST
                    && !had_outcome
                    && fields.has_gen_ai
                    && fields.has_outcome()
                {
                    // A span not entered yet whose call has gone out: its OpenTelemetry ids
                    // are read now, before its OpenTelemetry layer can end it (see
                    // `note_outcome`).
                    state.probed = true;
                    probe = Some(state.reg.clone());
                }
            }
            Some(Capture::Dims { dims, .. }) => {
                // Read as a call's fields are (the same names, caps and conversions), and
                // only the dimensions kept.
                let mut fields = SpanFields {
                    dims: std::mem::take(dims),
                    ..SpanFields::default()
                };
                values.record(&mut fields);
                *dims = fields.dims;
            }
            None => {}
        }
        drop(ext);
        if let Some(reg) = probe {
            note_outcome(&span, &reg);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        // Entering a span starts its OpenTelemetry span (tracing-opentelemetry activates its
        // context on enter), so reading its ids here changes nothing for it; reading them on
        // a record could start it before the app's `set_parent`.
        if !self.inner.captured.maybe(id) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        note_otel_span(&span);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let maybe_captured = self.inner.captured.maybe(&id);
        // A span this layer did not capture made no call; its close has work only when it is
        // the root of a trace that did (its summary is kept).
        if !maybe_captured
            && !self
                .summaries
                .as_ref()
                .is_some_and(|s| s.may_close_a_root(&id))
        {
            return;
        }
        let Some(span) = ctx.span(&id) else { return };
        // Uncounted here, not where the call is finished: a layer stacked before this one
        // (budgets, quality, the call log) may have finished it already, and its call still
        // goes to this layer's trace summary.
        let captured = maybe_captured
            && span
                .extensions_mut()
                .get_mut::<SpanSlot>()
                .is_some_and(|s| {
                    let counted = s.counted > 0;
                    s.counted = s.counted.saturating_sub(1);
                    counted
                });
        if captured {
            self.inner.captured.remove(&id);
        }
        match &self.summaries {
            // The call is finished once and handed to the summaries as it is left: no second
            // read of the span's state.
            Some(summaries) => {
                let unpriced = if captured {
                    close_call_unpriced(&span)
                } else {
                    None
                };
                summaries.close_with(&span, unpriced);
            }
            None => {
                if captured {
                    finish_call(&span, false, None);
                }
            }
        }
    }
}

/// Reads the OpenTelemetry ids of a captured LLM span the first time it is entered and, when
/// a layer will set late attributes, registers the span for them: before its OpenTelemetry
/// span can end, whatever the layer order. When the OpenTelemetry layer entered the span
/// before this layer (its context is the current one already), it also ends it before
/// llmtel's layers close it: the dimensions the span inherits reach it late too, so it is
/// registered for them.
fn note_otel_span<'a, R: LookupSpan<'a>>(span: &SpanRef<'a, R>) {
    let reg = match SpanSlot::state(&span.extensions()) {
        Some(s) if s.otel.is_none() && s.fields.has_gen_ai => s.reg.clone(),
        _ => return,
    };
    let Some(otel) = otel_ids(&span.id(), reg.dispatch()) else {
        return;
    };
    let otel_first = reg.order() != LLMTEL_FIRST
        && opentelemetry::Context::map_current(|cx| {
            use opentelemetry::trace::TraceContextExt;
            cx.span().span_context().span_id() == otel.1
        });
    if otel_first {
        reg.learn(OTEL_FIRST);
    }
    let mut ext = span.extensions_mut();
    if let Some(state) = SpanSlot::state_mut(&mut ext) {
        state.otel = Some((otel.0, otel.1));
        state.sampled = otel.2;
    }
    register_late(&mut ext, otel.1, otel.2, otel_first, false);
}

/// Reads the OpenTelemetry ids of a captured LLM span never entered, once its call's outcome
/// (usage, response, error) is recorded: its OpenTelemetry layer may end it before llmtel's
/// layers close it, and without its id what they add then (the inherited dimensions,
/// `llmtel.budget.*`) could not reach it. Not earlier: reading the ids starts the
/// OpenTelemetry span, which can no longer be given a parent then. Not at all once the
/// layer has seen its stack's first llmtel close come before the OpenTelemetry layer's
/// (`LLMTEL_FIRST`): that close reads them, with the span live. Registered for late
/// attributes.
fn note_outcome<'a, R: LookupSpan<'a>>(span: &SpanRef<'a, R>, reg: &Registered) {
    let Some(otel) = otel_ids(&span.id(), reg.dispatch()) else {
        return;
    };
    let mut ext = span.extensions_mut();
    match SpanSlot::state_mut(&mut ext) {
        Some(state) if state.otel.is_none() => {
            state.otel = Some((otel.0, otel.1));
            state.sampled = otel.2;
        }
        _ => return,
    }
    register_late(&mut ext, otel.1, otel.2, true, false);
}

/// Registers the span for late attributes (once), when a layer will set them (`wanted`) or
/// llmtel's own may come late (`for_llmtel`). Only a sampled span: no exporter takes an
/// unsampled one's entry, which waited in the table until it was counted dropped (a loss
/// that never was); an unsampled one is marked so that attributes set after it ended are not
/// kept either. `closing`: registered by the first of llmtel's closes, on the closing thread.
fn register_late(
    ext: &mut tracing_subscriber::registry::ExtensionsMut<'_>,
    span_id: SpanId,
    sampled: bool,
    for_llmtel: bool,
    closing: bool,
) {
    if !sampled {
        SpanSlot::update(ext, |s| s.unsampled = true);
        return;
    }
    if (for_llmtel || crate::late::wanted()) && ext.get_mut::<crate::late::LateGuard>().is_none() {
        ext.insert(crate::late::register(span_id, closing));
    }
}

/// Finishes the LLM call of a closing span now, if llmtel's layer has not yet: builds its
/// [`LlmCall`] (priced, with its dimensions), hands it to the layer's sinks and leaves it in
/// the span's extensions. Returns whether the span has a call there.
///
/// A layer that reads the [`LlmCall`] in its own `on_close` (budgets, quality, the call log,
/// trace summaries) calls this first, so it sees the call whatever order the layers are
/// stacked in: whichever of them closes the span first finishes the call, once.
pub fn close_call<'a, R: LookupSpan<'a>>(span: &SpanRef<'a, R>) -> bool {
    if !CALLS_WANTED.load(Ordering::Relaxed) {
        CALLS_WANTED.store(true, Ordering::Relaxed);
    }
    finish_call(span, true, None)
}

/// Set (for good) once a layer has asked for a call on the request thread ([`close_call`]):
/// the call is priced there for it anyway, so trace summaries take that priced call instead
/// of keeping an unpriced copy to price again when read.
static CALLS_WANTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// [`close_call`]; with `want_call` false (llmtel's own layer, which needs no [`LlmCall`]),
/// a call whose sinks run on the export stage is not built here at all: its span keeps the
/// captured fields for a later layer that wants the call.
///
/// When the call is left for the export stage and `unpriced` is given, the call is handed
/// back there as an [`UnpricedCall`] sharing the span's fields.
fn finish_call<'a, R: LookupSpan<'a>>(
    span: &SpanRef<'a, R>,
    want_call: bool,
    unpriced: Option<&mut Option<UnpricedCall>>,
) -> bool {
    let taken = span
        .extensions_mut()
        .get_mut::<SpanSlot>()
        .and_then(|s| s.state.take());
    let mut state = match taken {
        Some(Capture::Call(state)) => state,
        Some(Capture::Dims { .. }) => {
            // A span of dimensions only: its children have closed and read them already.
            return false;
        }
        None => return span.extensions().get::<LlmCall>().is_some(),
    };
    let inner = state.layer.clone();
    let closed = match state.closed {
        Some(closed) if want_call => closed,
        // Closed already and left for the export stage: nothing to build for this caller.
        Some(_) => return leave_for_export(span, state, unpriced),
        None => {
            if !state.fields.has_gen_ai || !state.fields.is_model_call() {
                // A non-LLM span (a request span with `user.id`, an agent step): its children
                // have closed and read its dimensions already; nothing more to do.
                return false;
            }
            let closed = first_close(span, &mut state);
            inc(&COUNTERS.llm_calls);
            let sampled = state.sampled;
            if closed.deferred
                && !want_call
                && inner.request_sinks.is_empty()
                && state.also.iter().all(|l| sinks_here(l, sampled).is_empty())
            {
                state.closed = Some(closed);
                return leave_for_export(span, state, unpriced);
            }
            closed
        }
    };
    // The call is built here: it carries the dimensions its span inherits (its ancestors
    // are open while it closes).
    inherit_dimensions(
        &mut Arc::make_mut(&mut state.fields).dims,
        None,
        span.scope().skip(1),
    );
    let call = UnpricedCall::closing(span.metadata().name(), &state);
    let (also, sampled) = (std::mem::take(&mut state.also), state.sampled);
    // The span's state goes first, so the call takes the captured fields without a copy.
    drop(state);
    let call = call.into_call();
    let sinks = if closed.deferred {
        &inner.request_sinks
    } else {
        &inner.sinks
    };
    for sink in sinks
        .iter()
        .chain(also.iter().flat_map(|l| sinks_here(l, sampled)))
    {
        sink.on_call(&call);
    }
    span.extensions_mut().insert(call);
    true
}

/// The sinks of `layer` that get a call as its span closes: those that ask for the request
/// thread when the layer hands its sampled calls to the export stage, else all of them.
fn sinks_here(layer: &Inner, sampled: bool) -> &[Arc<dyn CallSink>] {
    if layer.deferred && sampled {
        &layer.request_sinks
    } else {
        &layer.sinks
    }
}

/// Leaves a closed call for the export stage: its state goes back in the span's slot (for a
/// later layer that wants the call) and, when asked, the call is handed back unpriced.
fn leave_for_export<'a, R: LookupSpan<'a>>(
    span: &SpanRef<'a, R>,
    state: SpanState,
    unpriced: Option<&mut Option<UnpricedCall>>,
) -> bool {
    if let Some(out) = unpriced {
        *out = Some(UnpricedCall::closing(span.metadata().name(), &state));
    }
    put_back(span, state);
    true
}

/// Puts the state [`finish_call`] took out of a span back in its slot.
fn put_back<'a, R: LookupSpan<'a>>(span: &SpanRef<'a, R>, state: SpanState) {
    if let Some(slot) = span.extensions_mut().get_mut::<SpanSlot>() {
        slot.state = Some(Capture::Call(state));
    }
}

/// A closed LLM call whose price nobody has asked for yet: what a reader that may never need
/// the cost keeps (trace summaries), priced with the layer's catalog when it is read. Its
/// fields are shared with the span, not copied; its dimensions are the span's own (the
/// inherited ones are on the exported span, and in a call [`finish_call`] builds).
#[derive(Clone)]
pub(crate) struct UnpricedCall {
    fields: Arc<SpanFields>,
    name: &'static str,
    started_at: SystemTime,
    duration: std::time::Duration,
    otel: Option<(TraceId, SpanId)>,
    layer: Arc<Inner>,
}

impl fmt::Debug for UnpricedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnpricedCall")
            .field("name", &self.name)
            .field("request_model", &self.fields.request_model)
            .finish_non_exhaustive()
    }
}

impl UnpricedCall {
    /// The call of a span closing now, from the state llmtel's layer captured (its fields
    /// shared with it).
    fn closing(name: &'static str, state: &SpanState) -> Self {
        UnpricedCall {
            fields: state.fields.clone(),
            name,
            started_at: state.started_at,
            duration: state.opened.elapsed(),
            otel: state.otel,
            layer: state.layer.clone(),
        }
    }

    /// The OpenTelemetry trace id of the call's span, known without pricing it.
    pub(crate) fn trace_id(&self) -> Option<TraceId> {
        self.otel.map(|(t, _)| t)
    }

    /// The call, priced now with the catalog of the layer that captured it. Its fields are
    /// moved into the call when nothing else holds them (copied otherwise).
    pub(crate) fn into_call(self) -> LlmCall {
        let priced = self.layer.pricer.price(&self.fields, self.started_at);
        call_from_fields(
            Arc::try_unwrap(self.fields).unwrap_or_else(|shared| (*shared).clone()),
            priced,
            self.name,
            self.started_at,
            self.duration,
            self.otel,
        )
    }
}

/// [`close_call`] for a reader that may never need the cost: when the call's sinks run on the
/// export stage (which prices it there) and no layer asks for calls on the request thread,
/// the call is left unpriced and handed back as an [`UnpricedCall`] sharing the span's
/// fields, so the request thread does not price it a second time. Otherwise (`None`) the
/// call is built as [`close_call`] builds it and is in the span's extensions, if the span is
/// an LLM call. The span's state is read once, whether an earlier layer closed the call or
/// this closes it (llmtel's own layer, when it keeps the trace summaries).
pub(crate) fn close_call_unpriced<'a, R: LookupSpan<'a>>(
    span: &SpanRef<'a, R>,
) -> Option<UnpricedCall> {
    if CALLS_WANTED.load(Ordering::Relaxed) {
        // Another layer prices the call on this thread: share its price.
        finish_call(span, true, None);
        return None;
    }
    let mut unpriced = None;
    finish_call(span, false, Some(&mut unpriced));
    unpriced
}

/// The first close of a captured LLM span: its inherited dimensions, written on its
/// exported span too, its OpenTelemetry ids, and whether its sinks run on the export stage.
fn first_close<'a, R: LookupSpan<'a>>(span: &SpanRef<'a, R>, state: &mut SpanState) -> Closed {
    // The OpenTelemetry context, once it was looked up here (`None` inside: the span has
    // ended): the inherited dimensions are set on its span without a second lookup.
    let mut live: Option<Option<opentelemetry::Context>> = None;
    let look = |span: &SpanRef<'a, R>, state: &SpanState| {
        tracing_opentelemetry::get_otel_context(&span.id(), &dispatch(state.reg.dispatch()))
    };
    if let Some((_, id)) = state.otel {
        // Registered when first entered (or when its outcome was recorded): an exporter on
        // this thread must not wait for it from now on (a simple span processor exports in
        // the OpenTelemetry layer's close, on this thread).
        if span.extensions().get::<crate::late::LateGuard>().is_some() {
            crate::late::closing(id);
        }
        if state.reg.order() == 0 {
            // Whether the OpenTelemetry layer has ended the span already: learned once per
            // layer, so that its spans never entered need not read their ids early.
            let cx = look(span, state);
            state.reg.learn(if cx.is_some() {
                LLMTEL_FIRST
            } else {
                OTEL_FIRST
            });
            live = Some(cx);
        }
    } else if let Some((cx, (trace, id, sampled))) = otel_context(&span.id(), state.reg.dispatch())
    {
        // The OpenTelemetry span is still live (its layer runs after this close): layers that
        // run after that one ends may still add attributes, so register it for them.
        state.otel = Some((trace, id));
        state.sampled = sampled;
        register_late(&mut span.extensions_mut(), id, sampled, false, true);
        state.reg.learn(LLMTEL_FIRST);
        live = Some(Some(cx));
    }
    let Some((_, span_id)) = state.otel else {
        if state.reg.order() != LLMTEL_FIRST {
            count_unreachable_inherited(span, state);
        }
        return Closed { deferred: false };
    };
    // Dimensions the span does not set come from its nearest ancestors that do; the exported
    // span carries them too, so the export stage sees the same call. They are gathered
    // apart and moved into its attributes, not copied into the span's fields: a call built
    // on this thread inherits them when it is built ([`finish_call`]).
    let mut inherited = crate::Dimensions::default();
    inherit_dimensions(
        &mut inherited,
        Some(&state.fields.dims),
        span.scope().skip(1),
    );
    if !inherited.is_empty() {
        let live = live.unwrap_or_else(|| look(span, state));
        set_attributes_on(span, live, Some(span_id), inherited_attributes(inherited));
    }
    Closed {
        deferred: state.layer.deferred && state.sampled,
    }
}

/// A span whose OpenTelemetry id llmtel never read, found ended at its first close: with the
/// OpenTelemetry layer stacked first, a span never entered and whose outcome was never
/// recorded (a request future cancelled) has been exported already, and the dimensions it
/// inherits cannot reach it (its id, the late attributes' key, is gone with its
/// OpenTelemetry data; reading it earlier would start the span before the app's
/// `set_parent`). Counted in [`crate::Health::late_attributes_dropped`] (once, as a layer's
/// late attributes are), when there are any and the span was exported: its nearest ancestor's
/// OpenTelemetry span is live and sampled (the default, parent-based sampler samples the span
/// as its parent; without an OpenTelemetry layer, or under an unsampled parent, nothing is
/// lost).
fn count_unreachable_inherited<'a, R: LookupSpan<'a>>(span: &SpanRef<'a, R>, state: &SpanState) {
    let mut inherited = crate::Dimensions::default();
    inherit_dimensions(
        &mut inherited,
        Some(&state.fields.dims),
        span.scope().skip(1),
    );
    if inherited.is_empty() {
        return;
    }
    let Some(parent) = span.parent() else { return };
    let exported =
        tracing_opentelemetry::get_otel_context(&parent.id(), &dispatch(state.reg.dispatch()))
            .is_some_and(|cx| {
                use opentelemetry::trace::TraceContextExt;
                let sc = cx.span().span_context().clone();
                sc.is_valid() && sc.is_sampled()
            });
    if exported {
        inc(&COUNTERS.late_attributes_dropped);
    }
}

/// The attributes of inherited dimensions (user, session, feature, tenant, then custom).
fn inherited_attributes(dims: crate::Dimensions) -> Vec<opentelemetry::KeyValue> {
    use llmtel_semconv::llmtel as lt;
    let named = [
        (lt::USER_ID, dims.user),
        (lt::SESSION_ID, dims.session),
        (lt::FEATURE, dims.feature),
        (lt::TENANT, dims.tenant),
    ];
    let mut out = Vec::with_capacity(4 + dims.custom.len());
    for (key, value) in named {
        if let Some(v) = value {
            out.push(opentelemetry::KeyValue::new(key, v));
        }
    }
    for (key, value) in dims.custom {
        out.push(opentelemetry::KeyValue::new(key, value));
    }
    out
}

/// Sets `attributes` on the exported OpenTelemetry span of the closing span `span`, whatever
/// order the layers run in: on the live span if its OpenTelemetry layer has not ended it yet,
/// otherwise through llmtel's exporter stage ([`crate::GenAiExporter`]), which adds them on
/// the export thread. Call [`expect_late_attributes`] once when your layer is registered.
///
/// Without an OpenTelemetry layer this does nothing. Attributes that cannot reach the span
/// (the pipeline's exporter is not llmtel's) are counted in
/// [`crate::Health::late_attributes_dropped`].
pub fn set_span_attributes<'a, R: LookupSpan<'a>>(
    span: &SpanRef<'a, R>,
    dispatch: &tracing::Dispatch,
    attributes: Vec<opentelemetry::KeyValue>,
) {
    if attributes.is_empty() {
        return;
    }
    let live = tracing_opentelemetry::get_otel_context(&span.id(), dispatch);
    set_attributes_on(span, live, None, attributes);
}

/// [`set_span_attributes`] with the span's OpenTelemetry context looked up already (`live`:
/// `None` once its OpenTelemetry span has ended, or without an OpenTelemetry layer), and its
/// OpenTelemetry span id when the caller knows it (`known`).
///
/// Once the OpenTelemetry span has ended, the attributes go to the exporter stage under the
/// span's id: the one llmtel's layer read (when the span was entered, when its outcome was
/// recorded, or at its close), whether or not the span was registered for late attributes.
/// A span whose id llmtel never read (no OpenTelemetry layer, one that filtered the span
/// out, or, with the OpenTelemetry layer first, a span never entered whose outcome was never
/// recorded) cannot be told from one that is not exported: nothing is kept here (llmtel's
/// own close counts the inherited dimensions of such a span lost when its parent's
/// OpenTelemetry span is live and sampled, see [`count_unreachable_inherited`]).
fn set_attributes_on<'a, R: LookupSpan<'a>>(
    span: &SpanRef<'a, R>,
    live: Option<opentelemetry::Context>,
    known: Option<SpanId>,
    attributes: Vec<opentelemetry::KeyValue>,
) {
    use opentelemetry::trace::TraceContextExt;
    if let Some(cx) = live {
        let s = cx.span();
        for kv in attributes {
            s.set_attribute(kv);
        }
        return;
    }
    let ext = span.extensions();
    if ext.get::<SpanSlot>().is_some_and(|s| s.unsampled) {
        // Not exported: no exporter would take them (they waited until counted dropped).
        return;
    }
    let span_id = known
        .or_else(|| ext.get::<crate::late::LateGuard>().map(|g| g.0))
        .or_else(|| ext.get::<LlmCall>().and_then(|c| c.span_id))
        .or_else(|| SpanSlot::state(&ext).and_then(|s| s.otel.map(|(_, id)| id)));
    drop(ext);
    if let Some(id) = span_id {
        crate::late::push(id, attributes);
    }
}

/// Runs `f` on the fields llmtel's layer keeps for `span`, if the layer captured it and the
/// span's subscriber is built on a `tracing_subscriber::Registry` (the usual stack). For
/// values recorded on the OpenTelemetry span directly (not as tracing fields), so that the
/// call the layer prices for its sinks has them too.
pub(crate) fn with_span_fields(span: &tracing::Span, f: impl FnOnce(&mut SpanFields)) {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let s = registry.span(id)?;
        let mut ext = s.extensions_mut();
        f(Arc::make_mut(&mut SpanSlot::state_mut(&mut ext)?.fields));
        Some(())
    });
}

/// Tells llmtel a layer will call [`set_span_attributes`]: from now on llmtel's layer keeps
/// each LLM span's id until every layer has closed it, so attributes set after its
/// OpenTelemetry span ended still reach the exported span.
pub fn expect_late_attributes() {
    crate::late::want();
}

/// The dimensions (`user.id`, `session.id`, `llmtel.feature`, `llmtel.tenant`, custom
/// `llmtel.*`) the current span would give an LLM call opened in it: its own and, for those
/// it does not set, its nearest ancestors'. Read from [`LlmLayer`]'s span data, so empty when
/// no `LlmLayer` is installed or no span is current. For pre-flight checks (budgets) before
/// a call's usage is known.
///
/// ```
/// use tracing_subscriber::prelude::*;
/// let subscriber = tracing_subscriber::registry().with(llmtel::layer());
/// tracing::subscriber::with_default(subscriber, || {
///     let request = tracing::info_span!("request", "user.id" = "u-7", "llmtel.feature" = "faq");
///     let _g = request.enter();
///     let dims = llmtel::current_dimensions();
///     assert_eq!(dims.user.as_deref(), Some("u-7"));
///     assert_eq!(dims.feature.as_deref(), Some("faq"));
/// });
/// ```
pub fn current_dimensions() -> crate::Dimensions {
    let mut dims = crate::Dimensions::default();
    tracing::Span::current().with_subscriber(|(id, dispatch)| {
        let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
            return;
        };
        let Some(span) = registry.span(id) else {
            return;
        };
        inherit_dimensions(&mut dims, None, span.scope());
    });
    dims
}

/// Fills each dimension neither `dims` nor `own` (if given) sets from the first of `spans`
/// (nearest first) that sets it.
fn inherit_dimensions<'a, R: LookupSpan<'a> + 'a>(
    dims: &mut crate::Dimensions,
    own: Option<&crate::Dimensions>,
    spans: impl Iterator<Item = tracing_subscriber::registry::SpanRef<'a, R>>,
) {
    for s in spans {
        if let Some(set) = SpanSlot::dims(&s.extensions()) {
            if !set.is_empty() {
                dims.inherit_unset(own, set);
            }
        }
    }
}

/// The dispatcher a span belongs to: the capturing layer's registered one (`registered`),
/// or, where that registration did not reach the layer, this thread's default.
fn dispatch(registered: Option<&WeakDispatch>) -> Dispatch {
    registered
        .and_then(WeakDispatch::upgrade)
        .unwrap_or_else(|| tracing::dispatcher::get_default(Clone::clone))
}

/// The OpenTelemetry trace and span id of a span, when an OpenTelemetry layer is installed,
/// and whether it is sampled; looked up in [`dispatch`]`(registered)`.
fn otel_ids(id: &Id, registered: Option<&WeakDispatch>) -> Option<(TraceId, SpanId, bool)> {
    otel_context(id, registered).map(|(_, ids)| ids)
}

/// [`otel_ids`] with the context they were read from, while the OpenTelemetry span is live.
fn otel_context(
    id: &Id,
    registered: Option<&WeakDispatch>,
) -> Option<(opentelemetry::Context, (TraceId, SpanId, bool))> {
    use opentelemetry::trace::TraceContextExt;
    let cx = tracing_opentelemetry::get_otel_context(id, &dispatch(registered))?;
    let sc = cx.span().span_context().clone();
    let ids = (sc.trace_id(), sc.span_id(), sc.is_sampled());
    sc.is_valid().then_some((cx, ids))
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::prelude::*;

    use super::LlmLayer;

    #[test]
    fn two_layers_in_one_stack_each_unmark_every_span_they_captured() {
        let (first, second) = (LlmLayer::new(), LlmLayer::new());
        let (a, b) = (first.inner.clone(), second.inner.clone());
        let subscriber = tracing_subscriber::registry().with(first).with(second);
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..50 {
                let span = crate::llm_span!("chat", "openai", "gpt-4o");
                assert!(a.captured.maybe(&span.id().unwrap()));
                assert!(b.captured.maybe(&span.id().unwrap()));
            }
        });
        assert!(a.captured.is_empty(), "the first layer's marks");
        assert!(b.captured.is_empty(), "the second layer's marks");
    }
}
