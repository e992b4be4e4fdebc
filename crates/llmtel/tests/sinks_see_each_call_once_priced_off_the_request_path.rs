//! `llmtel::builder()` exporting runs its sinks (llmtel's OTel metrics, the user's
//! `with_sink`) on the export stage: the call is priced once there, off the request path,
//! for the exported span and every sink. No call is lost to the sinks or counted twice:
//! the calls of spans that are not exported (not sampled) reach the sinks from the layer,
//! and those of spans the export queue drops reach them as the queue drops them. Dimensions
//! inherited from an ancestor (`user.id` on the request span) are written on the exported
//! LLM span, so the export stage's call has them too. The receiver is a real OTLP/HTTP
//! endpoint in the test, decoding the protobuf body.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::sync::{Arc, Mutex, mpsc};
use std::thread::ThreadId;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use support::otlp_http::{Request, receiver};
use tracing_subscriber::prelude::*;

/// What a sink saw of one call, and on which thread.
#[derive(Clone, Debug)]
struct Seen {
    model: Option<String>,
    user: Option<String>,
    cost: Option<f64>,
    thread: ThreadId,
}

#[derive(Debug, Default)]
struct Record(Mutex<Vec<Seen>>);

impl llmtel::CallSink for Record {
    fn on_call(&self, call: &llmtel::LlmCall) {
        self.0.lock().unwrap().push(Seen {
            model: call.request_model.clone(),
            user: call.dimensions.user.as_deref().map(str::to_owned),
            cost: call.cost_usd().map(|c| c.as_f64()),
            thread: std::thread::current().id(),
        });
    }
}

impl Record {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

/// `n` gpt-4o calls of 1,000 input and 200 output tokens, inside a request span with
/// `user.id = u-7`.
fn calls(n: usize) {
    let _request = tracing::info_span!("request", "user.id" = "u-7").entered();
    for _ in 0..n {
        drop(call());
    }
}

/// A gpt-4o call of 1,000 input and 200 output tokens, left open.
fn call() -> tracing::Span {
    let call = llmtel::llm_span!("chat", "openai", "gpt-4o");
    llmtel::record_usage(
        &call,
        &llmtel::Usage {
            input_tokens: 1_000,
            output_tokens: 200,
            ..Default::default()
        },
    );
    call
}

/// `builder()` exporting over OTLP/HTTP to a receiver of the test's, with `sinks`, set up
/// further by `setup`; runs `calls(n)` under it on this thread.
fn run(
    sinks: Vec<Arc<dyn llmtel::CallSink>>,
    setup: impl FnOnce(llmtel::Builder) -> llmtel::Builder,
    n: usize,
) -> (llmtel::Guard, mpsc::Receiver<Request>) {
    let (url, rx) = receiver();
    let mut builder = llmtel::builder()
        .with_endpoint(url)
        .with_protocol(llmtel::Protocol::HttpProtobuf)
        .with_console(false)
        .with_metrics(false);
    for sink in sinks {
        builder = builder.with_sink(sink);
    }
    let (layer, guard) = setup(builder)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || calls(n));
    (guard, rx)
}

/// gpt-4o at $2.50 / $10 per million tokens.
const COST: f64 = 1_000.0 * 2.5e-6 + 200.0 * 10e-6;

fn assert_priced(seen: &[Seen]) {
    for s in seen {
        assert_eq!(s.model.as_deref(), Some("gpt-4o"));
        assert_eq!(
            s.user.as_deref(),
            Some("u-7"),
            "the inherited user.id: {s:?}"
        );
        let cost = s.cost.unwrap_or_else(|| panic!("not priced: {s:?}"));
        assert!((cost - COST).abs() < 1e-12, "{cost} != {COST}");
    }
}

/// Reads `n` exported `chat` spans off `rx` and checks each carries the inherited `user.id`
/// and the cost.
fn assert_exported_chat_spans(rx: &mpsc::Receiver<Request>, n: usize) {
    let mut chat = 0;
    while let Ok(request) = rx.recv_timeout(Duration::from_secs(5)) {
        if request.path != "/v1/traces" {
            continue;
        }
        let req = ExportTraceServiceRequest::decode(request.body.as_slice()).unwrap();
        for span in req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .filter(|s| s.name.starts_with("chat"))
        {
            chat += 1;
            let get = |key: &str| {
                span.attributes
                    .iter()
                    .find(|kv| kv.key == key)
                    .and_then(|kv| kv.value.as_ref()?.value.clone())
            };
            assert_eq!(
                get("user.id"),
                Some(any_value::Value::StringValue("u-7".into())),
                "the inherited user.id on the exported span"
            );
            match get("gen_ai.usage.cost") {
                Some(any_value::Value::DoubleValue(c)) => assert!((c - COST).abs() < 1e-12),
                other => panic!("cost on the exported span: {other:?}"),
            }
        }
        if chat == n {
            break;
        }
    }
    assert_eq!(chat, n);
}

#[test]
fn without_summaries_or_sinks_the_exported_calls_still_inherit_their_dimensions() {
    // Export only (no trace summaries, no sink, no console): the request span's user.id
    // still reaches its LLM spans' exported attributes.
    let (guard, rx) = run(vec![], |b| b.with_summaries_capacity(0), 5);
    guard.flush().unwrap();
    assert_exported_chat_spans(&rx, 5);
}

#[test]
fn exported_calls_reach_the_sinks_once_priced_on_the_export_thread() {
    let record = Arc::new(Record::default());
    let (guard, rx) = run(vec![record.clone()], |b| b, 20);
    guard.flush().unwrap();

    let seen = record.seen();
    assert_eq!(seen.len(), 20, "each call once: {seen:?}");
    assert_priced(&seen);
    let me = std::thread::current().id();
    assert!(
        seen.iter().all(|s| s.thread != me),
        "priced and handed to the sinks off the request thread"
    );

    // The exported LLM spans carry the inherited user.id and the same cost.
    assert_exported_chat_spans(&rx, 20);
    drop(guard);
    assert_eq!(record.seen().len(), 20, "not again at shutdown");
}

/// Runs `n` calls with `setup`, and checks that `record` got each one on this thread, as
/// its span closed (before any flush), and never again.
fn assert_each_call_on_the_request_thread(setup: impl FnOnce(llmtel::Builder) -> llmtel::Builder) {
    let record = Arc::new(Record::default());
    let (guard, _rx) = run(vec![record.clone()], setup, 10);
    let seen = record.seen();
    assert_eq!(seen.len(), 10, "{seen:?}");
    assert_priced(&seen);
    let me = std::thread::current().id();
    assert!(seen.iter().all(|s| s.thread == me));
    guard.flush().unwrap();
    drop(guard);
    assert_eq!(record.seen().len(), 10, "never twice");
}

#[test]
fn calls_of_spans_not_sampled_reach_the_sinks_from_the_layer() {
    assert_each_call_on_the_request_thread(|b| {
        b.with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff)
    });
}

#[test]
fn calls_of_spans_outside_the_trace_filter_reach_the_sinks_from_the_layer() {
    // The calls are `info` spans: none is exported.
    assert_each_call_on_the_request_thread(|b| b.with_trace_filter("warn"));
}

#[test]
fn calls_of_spans_the_export_queue_drops_still_reach_the_sinks_once() {
    let record = Arc::new(Record::default());
    let dropped_before = llmtel::health().spans_dropped;
    let (guard, _rx) = run(
        vec![record.clone()],
        |b| {
            b.with_queue(llmtel::QueueConfig {
                max_queue_size: 8,
                max_export_batch_size: 512,
                scheduled_delay: Duration::from_secs(60),
                flush_timeout: Duration::from_secs(10),
                ..llmtel::QueueConfig::default()
            })
        },
        200,
    );
    let dropped = llmtel::health().spans_dropped - dropped_before;
    assert!(
        dropped >= 100,
        "the queue of 8 dropped most of 201 spans: {dropped}"
    );
    guard.flush().unwrap();

    let seen = record.seen();
    assert_eq!(seen.len(), 200, "each call once, dropped or exported");
    assert_priced(&seen);
    // The request span is one of the dropped spans at most; every other one was a call.
    let me = std::thread::current().id();
    let on_request_thread = seen.iter().filter(|s| s.thread == me).count() as u64;
    assert!(
        on_request_thread == dropped || on_request_thread + 1 == dropped,
        "the calls of dropped spans, handed over as they were dropped: {on_request_thread} \
         of {dropped} dropped spans"
    );
    drop(guard);
    assert_eq!(record.seen().len(), 200);
}

/// A sink that must see each call as its span closes.
#[derive(Debug, Default)]
struct OnRequestThread(Record);

impl llmtel::CallSink for OnRequestThread {
    fn on_call(&self, call: &llmtel::LlmCall) {
        self.0.on_call(call);
    }
    fn on_request_thread(&self) -> bool {
        true
    }
}

#[test]
fn a_sink_that_asks_for_the_request_thread_gets_each_call_as_its_span_closes() {
    let eager = Arc::new(OnRequestThread::default());
    let record = Arc::new(Record::default());
    let (guard, _rx) = run(vec![eager.clone(), record.clone()], |b| b, 10);
    let me = std::thread::current().id();
    let seen = eager.0.seen();
    assert_eq!(seen.len(), 10, "as each span closed: {seen:?}");
    assert_priced(&seen);
    assert!(seen.iter().all(|s| s.thread == me));
    guard.flush().unwrap();
    drop(guard);
    assert_eq!(eager.0.seen().len(), 10, "never again on the export stage");
    let others = record.seen();
    assert_eq!(others.len(), 10);
    assert!(
        others.iter().all(|s| s.thread != me),
        "the others stay off it"
    );
}

#[test]
fn calls_closed_on_a_thread_without_the_subscriber_as_its_default_reach_the_sinks_once() {
    // A subscriber set as the default of one thread only (`set_default`, tests, a
    // multi-thread runtime's spans moved to a worker): a span made here and closed on a
    // thread whose default is another dispatcher still finds its OpenTelemetry span, so its
    // call goes through the export stage once, not also through the layer.
    let record = Arc::new(Record::default());
    let (layer, guard, rx) = builder_layer(record.clone());
    let default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let request = tracing::info_span!("request", "user.id" = "u-7");
    let spans: Vec<_> = (0..5).map(|_| request.in_scope(call)).collect();
    std::thread::spawn(move || {
        for call in spans {
            // Entered and closed here, where the default dispatcher is not the span's.
            drop(call.entered());
        }
    })
    .join()
    .unwrap();
    drop(request);
    guard.flush().unwrap();

    let seen = record.seen();
    assert_eq!(seen.len(), 5, "each call once: {seen:?}");
    assert_priced(&seen);
    assert_exported_chat_spans(&rx, 5);
    drop(default);
    drop(guard);
    assert_eq!(record.seen().len(), 5, "never twice");
}

/// `builder()` exporting to a receiver of the test's, with `sink`, for a stack of `S`.
fn builder_layer<S>(
    sink: Arc<Record>,
) -> (
    Box<dyn tracing_subscriber::Layer<S> + Send + Sync>,
    llmtel::Guard,
    mpsc::Receiver<Request>,
)
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    builder_layer_with(sink, |b| b)
}

/// [`builder_layer`], set up further by `setup`.
fn builder_layer_with<S>(
    sink: Arc<Record>,
    setup: impl FnOnce(llmtel::Builder) -> llmtel::Builder,
) -> (
    Box<dyn tracing_subscriber::Layer<S> + Send + Sync>,
    llmtel::Guard,
    mpsc::Receiver<Request>,
)
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    let (url, rx) = receiver();
    let builder = llmtel::builder()
        .with_endpoint(url)
        .with_protocol(llmtel::Protocol::HttpProtobuf)
        .with_console(false)
        .with_metrics(false)
        .with_sink(sink);
    let (layer, guard) = setup(builder).build::<S>().unwrap();
    (layer, guard, rx)
}

/// `builder()`'s layer and a user's own `llmtel::layer().with_sink(..)` in one stack, the
/// user's first or not: both layers' sinks get each call once, priced.
fn two_llmtel_layers(user_layer_first: bool) {
    let exported = Arc::new(Record::default());
    let mine = Arc::new(Record::default());
    let user_layer = llmtel::layer().with_sink(mine.clone());
    let n = 6;
    let (guard, rx) = if user_layer_first {
        let (layer, guard, rx) = builder_layer(exported.clone());
        let subscriber = tracing_subscriber::registry().with(user_layer).with(layer);
        tracing::subscriber::with_default(subscriber, || calls(n));
        (guard, rx)
    } else {
        let (layer, guard, rx) = builder_layer(exported.clone());
        let subscriber = tracing_subscriber::registry().with(layer).with(user_layer);
        tracing::subscriber::with_default(subscriber, || calls(n));
        (guard, rx)
    };
    // The user's layer hands its calls over as each span closes.
    let seen = mine.seen();
    assert_eq!(
        seen.len(),
        n,
        "the user's layer's sink, each call once: {seen:?}"
    );
    assert_priced(&seen);
    guard.flush().unwrap();
    let seen = exported.seen();
    assert_eq!(
        seen.len(),
        n,
        "the builder's sink, each call once: {seen:?}"
    );
    assert_priced(&seen);
    assert_exported_chat_spans(&rx, n);
    drop(guard);
    assert_eq!(mine.seen().len(), n, "never twice");
    assert_eq!(exported.seen().len(), n, "never twice");
}

#[test]
fn a_users_own_llmtel_layer_before_the_builders_gets_every_call_too() {
    two_llmtel_layers(true);
}

#[test]
fn a_users_own_llmtel_layer_after_the_builders_gets_every_call_too() {
    two_llmtel_layers(false);
}

#[test]
fn two_plain_llmtel_layers_each_get_every_call_once() {
    let first = Arc::new(Record::default());
    let second = Arc::new(Record::default());
    let subscriber = tracing_subscriber::registry()
        .with(llmtel::layer().with_sink(first.clone()))
        .with(llmtel::layer().with_sink(second.clone()));
    tracing::subscriber::with_default(subscriber, || calls(4));
    for record in [&first, &second] {
        let seen = record.seen();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_priced(&seen);
    }
}

#[test]
fn a_plain_layer_first_prices_with_the_builders_catalog_and_each_sink_gets_the_call_once() {
    // The builder's layer leads the capture wherever it stands: the user's plain layer
    // (built-in prices) before it gets the call priced with the builder's catalog.
    let catalog = llmtel::Catalog::from_toml_str(
        r#"
[[model]]
id = "gpt-4o"
provider = "openai"
kind = "chat"
[[model.price]]
effective = "2024-01-01"
input = 10
output = 20
"#,
        "test prices",
    )
    .unwrap();
    let catalog = Arc::new(llmtel::Catalog::builtin().merged_with(&catalog));
    let exported = Arc::new(Record::default());
    let mine = Arc::new(Record::default());
    let (layer, guard, _rx) = builder_layer_with(exported.clone(), |b| b.with_catalog(catalog));
    // The user's layer twice (a clone stacked again): it joins once.
    let user_layer = llmtel::layer().with_sink(mine.clone());
    let subscriber = tracing_subscriber::registry()
        .with(user_layer.clone())
        .with(layer)
        .with(user_layer);
    tracing::subscriber::with_default(subscriber, || calls(3));
    guard.flush().unwrap();
    let cost = 1_000.0 * 10e-6 + 200.0 * 20e-6;
    for (record, name) in [(&mine, "user's"), (&exported, "builder's")] {
        let seen = record.seen();
        assert_eq!(seen.len(), 3, "{name}: {seen:?}");
        for s in &seen {
            let c = s.cost.unwrap();
            assert!((c - cost).abs() < 1e-12, "{name}: {c} != {cost}");
        }
    }
    drop(guard);
}
