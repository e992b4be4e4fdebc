//! [`LlmLayer`]: recognises LLM-call spans, prices them, and writes the cost on the
//! OpenTelemetry span before it is exported.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use llmtel_pricing::{Catalog, PricingError, Usage, Usd};
use opentelemetry::trace::{Status, TraceContextExt};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{
    Dispatch, Metadata, Subscriber, dispatcher::WeakDispatch, subscriber::Interest,
};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::call::{Cost, CostSource, LlmCall, PricingInfo};
use crate::enrich;
use crate::fields::{
    Count, SpanFields, is_interesting_field, provider_from_system, split_finish_reasons,
};
use crate::health::{COUNTERS, inc};

/// Receives every completed [`LlmCall`] synchronously in the layer's `on_close`.
///
/// Implementations run on the application's thread: keep them short and non-blocking (push
/// to a bounded queue for anything slow). The console printer and the trace summary store are
/// sinks.
pub trait CallSink: Send + Sync + fmt::Debug + 'static {
    /// Called once per LLM call, after its cost is known.
    fn on_call(&self, call: &LlmCall);
}

/// Per-span state, stored once in the span's extensions.
#[derive(Debug)]
struct SpanState {
    fields: SpanFields,
    opened: Instant,
    started_at: SystemTime,
}

#[derive(Debug, Default)]
struct Warned {
    unknown_models: Mutex<HashSet<String>>,
    misordered: std::sync::atomic::AtomicBool,
}

/// The tracing layer that recognises LLM calls and adds their cost.
///
/// It recognises **any** span with `gen_ai.*` fields, whoever created it (the
/// [`llm_span!`](crate::llm_span) macro, `rig`, `genai`, hand-written spans), reads the
/// deprecated `gen_ai.system` and both cache-write spellings, prices the call with the catalog
/// when the span closes and:
///
/// - writes the cost attributes (`gen_ai.usage.cost`, `llmtel.cost.*`, `llmtel.pricing.*`) on
///   the OpenTelemetry span of `tracing-opentelemetry`, so the exporter sends them;
/// - stores the [`LlmCall`] in the span's extensions for the layers added after it;
/// - hands the call to its [`CallSink`]s.
///
/// # Layer order
/// Inner layers run first. Add this layer **before** the `OpenTelemetryLayer` (closer to the
/// registry), so that it writes the cost before the OpenTelemetry layer ends and exports the
/// span; layers that read [`LlmCall`] from the extensions go between the two.
/// [`crate::init`] builds the stack in that order. A stack in the wrong order loses the cost
/// attributes (counted as [`crate::Health::enrichment_missed`], warned once).
///
/// Spans without `gen_ai.*`, `llmtel.*`, `user.id` or `session.id` fields are filtered out
/// per callsite (`Interest::never`) through [`LlmLayer::filtered`], so they cost almost nothing.
///
/// ```
/// use tracing_subscriber::prelude::*;
/// let subscriber = tracing_subscriber::registry().with(llmtel::layer());
/// tracing::subscriber::with_default(subscriber, || {
///     let span = llmtel::llm_span!("chat", "openai", "gpt-4o");
///     llmtel::record_usage(&span, &llmtel::Usage { input_tokens: 1000, output_tokens: 200, ..Default::default() });
/// });
/// ```
#[derive(Clone)]
pub struct LlmLayer {
    catalog: Arc<Catalog>,
    openinference: bool,
    sinks: Vec<Arc<dyn CallSink>>,
    dispatch: Arc<OnceLock<WeakDispatch>>,
    warned: Arc<Warned>,
}

impl fmt::Debug for LlmLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmLayer")
            .field("catalog_entries", &self.catalog.len())
            .field("openinference", &self.openinference)
            .field("sinks", &self.sinks)
            .finish()
    }
}

impl Default for LlmLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl LlmLayer {
    /// A layer pricing with the built-in catalog, with no sinks and OpenInference aliases off.
    pub fn new() -> Self {
        LlmLayer {
            catalog: Arc::new(Catalog::builtin().clone()),
            openinference: false,
            sinks: Vec::new(),
            dispatch: Arc::new(OnceLock::new()),
            warned: Arc::new(Warned::default()),
        }
    }

    /// Prices with `catalog` (for example the built-in one merged with a user price file).
    pub fn with_catalog(mut self, catalog: impl Into<Arc<Catalog>>) -> Self {
        self.catalog = catalog.into();
        self
    }

    /// Also writes the OpenInference names Arize Phoenix reads (`llm.model_name`,
    /// `llm.token_count.*`, `llm.cost.*`, `openinference.span.kind`). Off by default.
    pub fn with_openinference(mut self, on: bool) -> Self {
        self.openinference = on;
        self
    }

    /// Adds a sink that receives every completed call.
    pub fn with_sink(mut self, sink: Arc<dyn CallSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// The catalog this layer prices with.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// This layer behind a per-layer filter that disables it for callsites with no field llmtel
    /// reads. This is what [`crate::layer`] returns.
    pub fn filtered<S>(self) -> Filtered<Self, GenAiCallsites, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        Layer::with_filter(self, GenAiCallsites)
    }

    fn price(&self, f: &SpanFields, started_at: SystemTime) -> Priced {
        let mut out = Priced::default();
        let usage_error = [
            (llmtel_semconv::gen_ai::USAGE_INPUT_TOKENS, &f.input),
            (llmtel_semconv::gen_ai::USAGE_OUTPUT_TOKENS, &f.output),
            (llmtel_semconv::gen_ai::USAGE_CACHE_READ_INPUT_TOKENS, &f.cache_read),
            (llmtel_semconv::gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS, &f.cache_write),
            (llmtel_semconv::gen_ai::USAGE_REASONING_OUTPUT_TOKENS, &f.reasoning),
        ]
        .into_iter()
        .find_map(|(name, c)| match c {
            Count::Malformed(v) => Some(format!(
                "{name} = {v:?} is not a token count (a non-negative integer); the call is not priced. Record usage with llmtel::record_usage"
            )),
            _ => None,
        });
        out.usage = Usage {
            input_tokens: f.input.get(),
            output_tokens: f.output.get(),
            cache_read_tokens: f.cache_read.get(),
            cache_write_tokens: f.cache_write.get(),
            reasoning_tokens: f.reasoning.get(),
        };
        let estimated = f.estimated.unwrap_or(false);
        let provider = f
            .provider
            .as_deref()
            .or(f.system.as_deref().map(provider_from_system));

        // The catalog's price, when usage is there and well formed.
        let mut catalog_cost = None;
        if usage_error.is_none() && f.has_usage() {
            let date = civil_date(started_at);
            let models = [f.response_model.as_deref(), f.request_model.as_deref()];
            let mut first_unknown = None;
            for model in models.into_iter().flatten() {
                match self.catalog.price(model, provider, &out.usage, date) {
                    Ok(p) => {
                        catalog_cost = Some(p);
                        break;
                    }
                    Err(PricingError::UnknownModel { .. }) => {
                        first_unknown.get_or_insert(model);
                    }
                    Err(e @ PricingError::Overflow(_)) => {
                        out.usage_error = Some(format!("{e}"));
                        break;
                    }
                }
            }
            if catalog_cost.is_none() && out.usage_error.is_none() {
                if let Some(model) = first_unknown {
                    out.unknown_model = true;
                    self.warn_unknown(model);
                }
            }
        }
        if usage_error.is_some() {
            out.usage_error = usage_error;
        }

        let pricing = catalog_cost.as_ref().map(|p| PricingInfo {
            model: p.model.clone(),
            provider: p.provider.clone(),
            matched: p.matched,
            price_date: p.price_date,
            tier_above_input_tokens: p.tier_above_input_tokens,
            usage_note: p.usage_note,
        });
        let reported = f
            .reported_cost
            .filter(|v| v.is_finite() && *v >= 0.0)
            .and_then(Usd::from_f64);
        out.cost = match (reported, catalog_cost) {
            (Some(total), computed) => Some(Cost {
                total,
                breakdown: None,
                source: match f.cost_source.as_deref() {
                    Some("provider") => CostSource::Provider,
                    _ => CostSource::App,
                },
                estimated,
                pricing,
                computed_total: computed.map(|p| p.breakdown.total),
            }),
            (None, Some(p)) => Some(Cost {
                total: p.breakdown.total,
                breakdown: Some(p.breakdown),
                source: CostSource::Catalog,
                estimated,
                pricing,
                computed_total: None,
            }),
            (None, None) => None,
        };
        out
    }

    fn warn_unknown(&self, model: &str) {
        let mut seen = self
            .warned
            .unknown_models
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Bounded: past 1,000 distinct unknown names, stop remembering (and stop warning).
        if seen.len() < 1000 && seen.insert(model.to_owned()) {
            let suggestions = self.catalog.suggest(model, 3);
            drop(seen);
            tracing::warn!(
                target: "llmtel",
                model,
                nearest = %suggestions.join(", "),
                "llmtel: no price for model `{model}`; its calls get no cost (llmtel.cost.unknown_model = true). \
                 Add it with a price file or Catalog overrides (see `llmtel prices check`)."
            );
        }
    }

    fn build_call(&self, name: &'static str, state: SpanState) -> LlmCall {
        let f = state.fields;
        let priced = self.price(&f, state.started_at);
        let operation = f.operation.clone().unwrap_or_else(|| "chat".to_owned());
        let provider = f.provider.or_else(|| {
            f.system
                .as_deref()
                .map(|s| provider_from_system(s).to_owned())
        });
        let error_type = f
            .error_type
            .or_else(|| f.status_error.then(|| "error".to_owned()));
        let name = f.otel_name.unwrap_or_else(|| match &f.request_model {
            Some(m) => format!("{operation} {m}"),
            None => name.to_owned(),
        });
        LlmCall {
            name,
            operation,
            provider,
            request_model: f.request_model,
            response_model: f.response_model,
            response_id: f.response_id,
            finish_reasons: f
                .finish_reasons
                .as_deref()
                .map(split_finish_reasons)
                .unwrap_or_default(),
            usage: priced.usage,
            has_usage: f.input.is_set() || f.output.is_set(),
            cost: priced.cost,
            unknown_model: priced.unknown_model,
            usage_error: priced.usage_error,
            error_type,
            streamed: f.stream.unwrap_or(false),
            max_tokens: f.max_tokens,
            time_to_first_chunk: f.time_to_first_chunk,
            dimensions: f.dims,
            started_at: state.started_at,
            duration: state.opened.elapsed(),
            trace_id: None,
            span_id: None,
        }
    }

    /// Writes the enrichment on the live OpenTelemetry span, if there is one.
    fn enrich_otel<S>(&self, id: &Id, call: &mut LlmCall, status_set: bool, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        let Some(cx) = tracing_opentelemetry::get_otel_context(id, &dispatch) else {
            self.check_order(id, &dispatch, ctx);
            return;
        };
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            call.trace_id = Some(sc.trace_id());
            call.span_id = Some(sc.span_id());
        }
        if !span.is_recording() {
            return; // not sampled
        }
        span.set_attributes(enrich::attributes(call, self.openinference));
        if let (Some(err), false) = (&call.error_type, status_set) {
            span.set_status(Status::error(err.clone()));
        }
    }

    /// The span has no OpenTelemetry context. If its parent has one, the OpenTelemetry layer
    /// ran (and exported the span) before this layer: the stack is in the wrong order.
    #[cold]
    fn check_order<S>(&self, id: &Id, dispatch: &Dispatch, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        // The registry's own view: this layer's filtered context skips ancestors it ignores.
        let _ = ctx;
        let Some(parent) = dispatch
            .downcast_ref::<tracing_subscriber::Registry>()
            .and_then(|r| r.span(id))
            .and_then(|s| s.parent())
            .map(|p| p.id())
        else {
            return;
        };
        if tracing_opentelemetry::get_otel_context(&parent, dispatch).is_some() {
            inc(&COUNTERS.enrichment_missed);
            if !self
                .warned
                .misordered
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(
                    target: "llmtel",
                    "llmtel: the cost could not be written on the OpenTelemetry span because \
                     llmtel's layer runs after the OpenTelemetry layer. Add `llmtel::layer()` \
                     before `tracing_opentelemetry::layer()` in the subscriber stack, or use llmtel::init()."
                );
            }
        }
    }
}

#[derive(Default)]
struct Priced {
    usage: Usage,
    cost: Option<Cost>,
    unknown_model: bool,
    usage_error: Option<String>,
}

fn civil_date(t: SystemTime) -> jiff::civil::Date {
    jiff::Timestamp::try_from(t)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

impl<S> Layer<S> for LlmLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(SpanState {
            fields,
            opened: Instant::now(),
            started_at: SystemTime::now(),
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(state) = ext.get_mut::<SpanState>() {
            values.record(&mut state.fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let state = span.extensions_mut().remove::<SpanState>();
        let Some(mut state) = state else { return };
        if !state.fields.has_gen_ai || !state.fields.is_model_call() {
            return;
        }
        // Dimensions the span does not set come from its nearest ancestors that do.
        for parent in span.scope().skip(1) {
            if let Some(p) = parent.extensions().get::<SpanState>() {
                if !p.fields.dims.is_empty() {
                    state.fields.dims.inherit_from(&p.fields.dims);
                }
            }
        }
        let status_set = state.fields.status_error;
        let mut call = self.build_call(span.name(), state);
        inc(&COUNTERS.llm_calls);
        if call.cost.is_some() {
            inc(&COUNTERS.priced_calls);
        }
        if call.unknown_model {
            inc(&COUNTERS.unknown_model_calls);
        }
        if call.usage_error.is_some() {
            inc(&COUNTERS.malformed_usage);
        }
        self.enrich_otel(&id, &mut call, status_set, &ctx);
        for sink in &self.sinks {
            sink.on_call(&call);
        }
        span.extensions_mut().insert(call);
    }
}

/// Per-layer filter enabling llmtel's layers only for callsites that carry a field llmtel
/// reads (`gen_ai.*`, `llmtel.*`, `user.id`, `session.id`). Decided once per callsite.
#[derive(Clone, Copy, Debug, Default)]
pub struct GenAiCallsites;

impl GenAiCallsites {
    fn wants(meta: &Metadata<'_>) -> bool {
        meta.is_span() && meta.fields().iter().any(|f| is_interesting_field(f.name()))
    }
}

impl<S> Filter<S> for GenAiCallsites {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::wants(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if Self::wants(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}
