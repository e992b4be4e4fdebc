//! [`CallLogLayer`]: calls with their captured content, and evaluation results, into the log.

use std::fmt;
use std::sync::OnceLock;

use jiff::Timestamp;
use llmtel::LlmCall;
use llmtel::semconv::{common, gen_ai};
use tracing_core::dispatcher::{Dispatch, WeakDispatch};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record as Values};
use tracing_core::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::log::CallLog;
use crate::record::{CallRecord, EvaluationEntry, Record};

/// Name of the spans `llmtel-quality` emits for evaluator results and user feedback.
const EVALUATION_SPAN: &str = "gen_ai.evaluation.result";

/// The tracing layer of a [`CallLog`] (see [`CallLog::layer`]).
///
/// Add it **after** `llmtel::layer()`: at a span's close it reads the [`LlmCall`] that layer
/// left in the span's extensions, adds the content recorded on the span
/// (`gen_ai.input.messages`, `gen_ai.output.messages`; present only when the app captured
/// it) and queues the call. It also logs the `gen_ai.evaluation.result` spans that
/// `llmtel-quality` emits (evaluator results, user feedback), so that a report can score
/// each call. Nothing is written on the request thread.
pub struct CallLogLayer {
    log: CallLog,
    calls: bool,
    /// The dispatcher this layer is registered with, where an evaluation span's trace id is
    /// looked up (not shared by a clone, which may be registered with another subscriber).
    dispatch: OnceLock<WeakDispatch>,
}

impl Clone for CallLogLayer {
    fn clone(&self) -> Self {
        CallLogLayer {
            log: self.log.clone(),
            calls: self.calls,
            dispatch: OnceLock::new(),
        }
    }
}

impl fmt::Debug for CallLogLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallLogLayer")
            .field("path", &self.log.path())
            .field("calls", &self.calls)
            .finish()
    }
}

impl CallLogLayer {
    pub(crate) fn new(log: CallLog) -> Self {
        CallLogLayer {
            log,
            calls: true,
            dispatch: OnceLock::new(),
        }
    }

    /// Logs only the evaluation results: for an app that already gives its calls to the
    /// log as a sink (`LlmLayer::with_sink`), so that no call is logged twice.
    pub fn without_calls(mut self) -> Self {
        self.calls = false;
        self
    }
}

/// What this layer keeps per span: the content of an LLM span, the fields of an
/// evaluation span.
#[derive(Debug, Default)]
struct Captured {
    input: Option<String>,
    output: Option<String>,
    eval: Option<EvaluationEntry>,
}

/// Records the fields this layer reads.
struct Visitor<'a>(&'a mut Captured);

impl Visitor<'_> {
    fn string(&mut self, name: &str, v: String) {
        let c = &mut *self.0;
        match name {
            gen_ai::INPUT_MESSAGES => c.input = Some(v),
            gen_ai::OUTPUT_MESSAGES => c.output = Some(v),
            _ => {
                let Some(e) = c.eval.as_mut() else { return };
                match name {
                    "gen_ai.evaluation.name" => e.name = v,
                    "gen_ai.evaluation.score.label" => e.label = Some(v),
                    "gen_ai.evaluation.explanation" => e.explanation = Some(v),
                    gen_ai::RESPONSE_ID => e.response_id = Some(v),
                    common::ERROR_TYPE => e.error_type = Some(v),
                    "gen_ai.evaluation.score.value" => e.score = v.trim().parse().ok(),
                    _ => {}
                }
            }
        }
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field.name(), value.to_owned());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "gen_ai.evaluation.score.value" {
            if let Some(e) = self.0.eval.as_mut() {
                e.score = value.is_finite().then_some(value);
            }
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_f64(field, value as f64);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_f64(field, value as f64);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if is_read(name) {
            self.string(name, format!("{value:?}"));
        }
    }
}

/// Whether this layer reads the field.
fn is_read(name: &str) -> bool {
    name == gen_ai::INPUT_MESSAGES
        || name == gen_ai::OUTPUT_MESSAGES
        || name.starts_with("gen_ai.evaluation.")
        || name == gen_ai::RESPONSE_ID
        || name == common::ERROR_TYPE
}

fn is_evaluation_span(meta: &Metadata<'_>) -> bool {
    meta.name() == EVALUATION_SPAN && meta.target() == llmtel::semconv::llmtel::QUALITY_TARGET
}

fn has_content_fields(meta: &Metadata<'_>) -> bool {
    let f = meta.fields();
    f.field(gen_ai::INPUT_MESSAGES).is_some() || f.field(gen_ai::OUTPUT_MESSAGES).is_some()
}

/// Whether the span can be an LLM call (a field `llmtel::layer()` reads).
fn has_gen_ai_fields(meta: &Metadata<'_>) -> bool {
    meta.fields()
        .iter()
        .any(|f| llmtel::semconv::is_gen_ai_field(f.name()))
}

impl<S> Layer<S> for CallLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        let eval = is_evaluation_span(meta);
        let content = self.calls && has_content_fields(meta);
        if !(eval || content) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut c = Captured {
            eval: eval.then(EvaluationEntry::default),
            ..Default::default()
        };
        attrs.record(&mut Visitor(&mut c));
        span.extensions_mut().insert(c);
    }

    fn on_record(&self, id: &Id, values: &Values<'_>, ctx: Context<'_, S>) {
        // Most records carry nothing this layer reads: probe them first, look the span up
        // only when they do.
        let mut seen = false;
        values.record(&mut FieldProbe(&mut seen));
        if !seen {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(c) = ext.get_mut::<Captured>() {
            values.record(&mut Visitor(c));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let meta = span.metadata();
        if is_evaluation_span(meta) {
            let Some(c) = span.extensions_mut().remove::<Captured>() else {
                return;
            };
            if let Some(mut e) = c.eval {
                e.time = Timestamp::now();
                e.trace_id = trace_id(&id, self.dispatch.get());
                self.log.append(Record::Evaluation(e));
            }
            return;
        }
        if !self.calls || !has_gen_ai_fields(meta) {
            return;
        }
        // Finishes the call if llmtel's layer runs after this one: any order works.
        llmtel::close_call(&span);
        let content = span.extensions_mut().remove::<Captured>();
        let ext = span.extensions();
        let Some(call) = ext.get::<LlmCall>() else {
            return;
        };
        let mut rec = CallRecord::from_call(call);
        if let Some(c) = content {
            rec.input_messages = c.input;
            rec.output_messages = c.output;
        }
        drop(ext);
        self.log.append(Record::Call(Box::new(rec)));
    }
}

/// Sets `seen` when a record carries a field this layer reads.
struct FieldProbe<'a>(&'a mut bool);

impl Visit for FieldProbe<'_> {
    fn record_debug(&mut self, field: &Field, _: &dyn fmt::Debug) {
        if is_read(field.name()) {
            *self.0 = true;
        }
    }
}

/// The trace id of an evaluation span: the evaluated call's trace, when an OpenTelemetry
/// layer is installed (the span is parented to the call's span context); looked up in the
/// dispatcher the layer is registered with (`registered`), else this thread's default.
fn trace_id(id: &Id, registered: Option<&WeakDispatch>) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let dispatch = registered
        .and_then(WeakDispatch::upgrade)
        .unwrap_or_else(|| tracing_core::dispatcher::get_default(Clone::clone));
    let cx = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
