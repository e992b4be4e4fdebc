//! OpenTelemetry GenAI client metrics (semantic conventions v1.41.1) from [`LlmCall`]s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::{CallSink, LlmCall};
use llmtel_semconv::metrics as m;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundHistogram, Histogram, Meter, MeterProvider, ObservableCounter};

use super::cache::LabelCache;
use super::guard::CardinalityGuard;
use super::names;
use super::{Dimension, UNKNOWN_VALUE};

const ATTR_OPERATION: &str = "gen_ai.operation.name";
const ATTR_PROVIDER: &str = "gen_ai.provider.name";
const ATTR_REQUEST_MODEL: &str = "gen_ai.request.model";
const ATTR_RESPONSE_MODEL: &str = "gen_ai.response.model";
const ATTR_TOKEN_TYPE: &str = "gen_ai.token.type";
const ATTR_ERROR_TYPE: &str = "error.type";

type AttrKey = Vec<(&'static str, String)>;

/// Exact cost totals per attribute set, in pico-dollars, read by the observable counter.
#[derive(Debug, Default)]
struct CostTotals(Mutex<HashMap<AttrKey, Arc<Mutex<Option<u128>>>>>);

/// Request counts per attribute set (with `llmtel.request.status`), read by the observable
/// counter: a call adds one to an atomic instead of measuring through the SDK (which hashes
/// the attribute set each time).
#[derive(Debug, Default)]
struct RequestTotals(Mutex<HashMap<AttrKey, Arc<AtomicU64>>>);

/// Everything one call records with, built once per value combination.
struct AttrSet {
    base: Vec<KeyValue>,
    requests: Arc<AtomicU64>,
    input: Vec<KeyValue>,
    output: Vec<KeyValue>,
    /// `None` until a priced call adds to it.
    cost: Arc<Mutex<Option<u128>>>,
    /// The histograms bound to these attributes: a record through a bound histogram updates
    /// its series directly, where an unbound one hashes the whole attribute set (SipHash) to
    /// find it: ~1,350 instructions a record, three or more a call. Each is bound at its
    /// first record, since a bound series is exported from then on (a set that never
    /// streamed has no time-to-first-chunk series, as before).
    bound: BoundSet,
}

#[derive(Default)]
struct BoundSet {
    duration: OnceLock<BoundHistogram<f64>>,
    ttfc: OnceLock<BoundHistogram<f64>>,
    tpoc: OnceLock<BoundHistogram<f64>>,
    input: OnceLock<BoundHistogram<u64>>,
    output: OnceLock<BoundHistogram<u64>>,
}

/// A [`CallSink`] recording the GenAI client metrics of OpenTelemetry semantic conventions
/// v1.41.1 on a [`Meter`], plus llmtel's cost and request counters.
///
/// | instrument | kind, unit | when |
/// |---|---|---|
/// | `gen_ai.client.token.usage` | histogram, `{token}`, `gen_ai.token.type` = `input`/`output` | the call reported usage |
/// | `gen_ai.client.operation.duration` | histogram, `s` | every call, failed ones too |
/// | `gen_ai.client.operation.time_to_first_chunk` | histogram, `s` | streamed calls with a first-chunk time |
/// | `gen_ai.client.operation.time_per_output_chunk` | histogram, `s` | streamed calls: `(duration − time to first chunk) / (output tokens − 1)`, one token per chunk assumed |
/// | `llmtel.client.cost` | counter, `USD` | priced calls; exact sums, `f64` only at export |
/// | `llmtel.client.requests` | counter, `{request}`, `llmtel.request.status` = `ok`/`error` | every call |
///
/// Histograms use the spec's explicit bucket boundaries. Attributes: `gen_ai.operation.name`,
/// `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model` (when known),
/// `error.type` (failed calls), and the [`Dimension`]s asked for. Model names and dimensions
/// pass the [`CardinalityGuard`].
///
/// ```
/// use std::sync::Arc;
/// use opentelemetry::metrics::MeterProvider as _;
/// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
/// let sink = llmtel::metrics::OtelMetricsSink::builder().build(&provider.meter("llmtel"));
/// let _builder = llmtel::builder().with_sink(Arc::new(sink));
/// ```
#[derive(Debug)]
pub struct OtelMetricsSink {
    token_usage: Histogram<u64>,
    duration: Histogram<f64>,
    ttfc: Histogram<f64>,
    tpoc: Histogram<f64>,
    requests: Arc<RequestTotals>,
    _requests_instrument: ObservableCounter<u64>,
    cost: Arc<CostTotals>,
    _cost_instrument: ObservableCounter<f64>,
    dims: Vec<Dimension>,
    guard: Arc<CardinalityGuard>,
    /// Attribute sets by the call values they were built from (this runs on the request
    /// path for every call).
    prepared: LabelCache<AttrSet>,
}

/// Builds an [`OtelMetricsSink`].
#[derive(Debug, Default)]
pub struct OtelMetricsSinkBuilder {
    dims: Vec<Dimension>,
    guard: Option<Arc<CardinalityGuard>>,
}

impl OtelMetricsSinkBuilder {
    /// Adds a dimension as an attribute (none by default: user and session ids are
    /// unbounded; the guard caps them).
    pub fn with_dimension(mut self, d: Dimension) -> Self {
        if !self.dims.contains(&d) {
            self.dims.push(d);
        }
        self
    }

    /// The cardinality guard (default: 100 distinct values per attribute).
    pub fn with_guard(mut self, guard: Arc<CardinalityGuard>) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Creates the instruments on `meter`.
    pub fn build(self, meter: &Meter) -> OtelMetricsSink {
        let token_usage = meter
            .u64_histogram(m::CLIENT_TOKEN_USAGE)
            .with_unit("{token}")
            .with_description("Measures number of input and output tokens used")
            .with_boundaries(m::TOKEN_USAGE_BUCKETS.to_vec())
            .build();
        let seconds = |name: &'static str, desc: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(desc)
                .with_boundaries(m::DURATION_BUCKETS.to_vec())
                .build()
        };
        let duration = seconds(m::CLIENT_OPERATION_DURATION, "GenAI operation duration");
        let ttfc = seconds(
            m::CLIENT_TIME_TO_FIRST_CHUNK,
            "Time to receive the first chunk of a streamed response",
        );
        let tpoc = seconds(
            m::CLIENT_TIME_PER_OUTPUT_CHUNK,
            "Time between consecutive chunks of a streamed response",
        );
        let requests = Arc::new(RequestTotals::default());
        let counts = requests.clone();
        let requests_instrument = meter
            .u64_observable_counter(names::CLIENT_REQUESTS)
            .with_unit("{request}")
            .with_description("LLM calls, by status")
            .with_callback(move |obs| {
                let map = counts.0.lock().unwrap_or_else(|e| e.into_inner());
                for (key, n) in map.iter() {
                    obs.observe(n.load(Ordering::Relaxed), &to_kv(key));
                }
            })
            .build();
        let cost = Arc::new(CostTotals::default());
        let totals = cost.clone();
        let cost_instrument = meter
            .f64_observable_counter(names::CLIENT_COST)
            .with_unit(names::UNIT_USD)
            .with_description("Cost of LLM calls in USD (exact sums, converted at export)")
            .with_callback(move |obs| {
                let map = totals.0.lock().unwrap_or_else(|e| e.into_inner());
                for (key, picos) in map.iter() {
                    let Some(picos) = *picos.lock().unwrap_or_else(|e| e.into_inner()) else {
                        continue;
                    };
                    obs.observe(crate::Usd::from_picos(picos).as_f64(), &to_kv(key));
                }
            })
            .build();
        OtelMetricsSink {
            token_usage,
            duration,
            ttfc,
            tpoc,
            requests,
            _requests_instrument: requests_instrument,
            cost,
            _cost_instrument: cost_instrument,
            dims: self.dims,
            guard: self.guard.unwrap_or_default(),
            prepared: LabelCache::default(),
        }
    }
}

impl OtelMetricsSink {
    /// A builder.
    pub fn builder() -> OtelMetricsSinkBuilder {
        OtelMetricsSinkBuilder::default()
    }

    /// A sink with default settings on the meter `llmtel` of `provider`.
    pub fn from_provider(provider: &impl MeterProvider) -> Self {
        Self::builder().build(&provider.meter("llmtel"))
    }

    /// The guard its attribute values pass.
    pub fn guard(&self) -> &Arc<CardinalityGuard> {
        &self.guard
    }

    fn attributes(&self, call: &LlmCall) -> AttrKey {
        let mut a: AttrKey = Vec::with_capacity(6 + self.dims.len());
        a.push((ATTR_OPERATION, call.operation.clone()));
        // Required by the conventions: `unknown` when the span did not say.
        let provider = call.provider.as_deref().unwrap_or(UNKNOWN_VALUE);
        a.push((ATTR_PROVIDER, self.guard.admit(ATTR_PROVIDER, provider)));
        if let Some(model) = &call.request_model {
            a.push((
                ATTR_REQUEST_MODEL,
                self.guard.admit(ATTR_REQUEST_MODEL, model),
            ));
        }
        if let Some(model) = &call.response_model {
            a.push((
                ATTR_RESPONSE_MODEL,
                self.guard.admit(ATTR_RESPONSE_MODEL, model),
            ));
        }
        if let Some(e) = &call.error_type {
            a.push((ATTR_ERROR_TYPE, self.guard.admit(ATTR_ERROR_TYPE, e)));
        }
        for d in &self.dims {
            let v = d.label_value(call);
            a.push((d.attribute(), self.guard.admit(d.attribute(), &v)));
        }
        a
    }
}

/// The most attribute sets a total (cost, requests) is kept for: with its overflow set, the
/// SDK's default cardinality limit (2,000) for the instrument reporting it, so the SDK never
/// folds one of them into its own. Each label is capped, but not their combinations
/// (request model x response model x error type x dimensions).
const MAX_TOTALS: usize = 1999;

/// The SDK's overflow attribute (`otel.metric.overflow = true`).
const OVERFLOW_ATTR: &str = "otel.metric.overflow";

/// The total kept for `key` in `totals` (created at zero the first time); past
/// [`MAX_TOTALS`] sets, a new one is kept under the SDK's overflow set
/// (`otel.metric.overflow = "true"`), so what it counts is still in the sum.
fn handle<T: Default>(totals: &Mutex<HashMap<AttrKey, Arc<T>>>, key: AttrKey) -> Arc<T> {
    let mut t = totals.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = t.get(&key) {
        return h.clone();
    }
    let key = if t.len() >= MAX_TOTALS {
        vec![(OVERFLOW_ATTR, "true".to_owned())]
    } else {
        key
    };
    t.entry(key).or_default().clone()
}

fn to_kv(a: &AttrKey) -> Vec<KeyValue> {
    a.iter()
        .map(|(k, v)| match *k {
            // A boolean, as the SDK writes it: the same series as the SDK's own overflow.
            OVERFLOW_ATTR => KeyValue::new(*k, true),
            _ => KeyValue::new(*k, v.clone()),
        })
        .collect()
}

impl OtelMetricsSink {
    /// The call's values its attribute set is built from, in a fixed order.
    fn raw<'a>(&'a self, call: &'a LlmCall) -> impl Iterator<Item = Option<&'a str>> + Clone + 'a {
        [
            Some(call.operation.as_str()),
            call.provider.as_deref(),
            call.request_model.as_deref(),
            call.response_model.as_deref(),
            call.error_type.as_deref(),
        ]
        .into_iter()
        .chain(self.dims.iter().map(move |d| d.value(call)))
    }

    /// The attribute set for `call`: built before for the same values, or built now.
    fn attr_set(&self, call: &LlmCall) -> Arc<AttrSet> {
        self.prepared
            .get_or_build(self.raw(call), &self.guard, || self.build_set(call))
    }

    fn build_set(&self, call: &LlmCall) -> (AttrSet, Vec<&'static str>) {
        let key = self.attributes(call);
        let overflowed = key
            .iter()
            .filter(|(_, v)| v == super::guard::OVERFLOW_VALUE)
            .map(|(k, _)| *k)
            .collect();
        let base = to_kv(&key);
        // `gen_ai.client.token.usage` has no `error.type` (a failed call that reported usage
        // counted its tokens in series of their own).
        let with = |kv: KeyValue| {
            let mut v: Vec<KeyValue> = base
                .iter()
                .filter(|a| a.key.as_str() != ATTR_ERROR_TYPE)
                .cloned()
                .collect();
            v.push(kv);
            v
        };
        let mut with_status = key.clone();
        with_status.push((
            names::REQUEST_STATUS,
            if call.is_error() { "error" } else { "ok" }.to_owned(),
        ));
        let requests = handle(&self.requests.0, with_status);
        let input = with(KeyValue::new(ATTR_TOKEN_TYPE, "input"));
        let output = with(KeyValue::new(ATTR_TOKEN_TYPE, "output"));
        let cost = handle(&self.cost.0, key);
        let set = AttrSet {
            base,
            requests,
            input,
            output,
            cost,
            bound: BoundSet::default(),
        };
        (set, overflowed)
    }
}

impl CallSink for OtelMetricsSink {
    fn on_call(&self, call: &LlmCall) {
        let set = self.attr_set(call);
        let b = &set.bound;
        let secs = call.duration.as_secs_f64();
        b.duration
            .get_or_init(|| self.duration.bind(&set.base))
            .record(secs);
        if call.streamed {
            if let Some(ttfc) = call.time_to_first_chunk {
                b.ttfc
                    .get_or_init(|| self.ttfc.bind(&set.base))
                    .record(ttfc);
                let out = call.usage.output_tokens;
                if out > 1 && secs >= ttfc {
                    b.tpoc
                        .get_or_init(|| self.tpoc.bind(&set.base))
                        .record((secs - ttfc) / (out - 1) as f64);
                }
            }
        }
        if let Some(cost) = call.cost_usd() {
            let mut total = set.cost.lock().unwrap_or_else(|e| e.into_inner());
            *total = Some(total.unwrap_or(0).saturating_add(cost.picos()));
        }
        set.requests.fetch_add(1, Ordering::Relaxed);
        if call.has_usage {
            b.input
                .get_or_init(|| self.token_usage.bind(&set.input))
                .record(call.usage.input_tokens);
            // An embeddings call has no output tokens: a count that does not exist is not
            // reported (the conventions: "MUST NOT report usage metric" it cannot obtain),
            // where a 0 would drag the output distribution down.
            if call.operation != llmtel_semconv::operation::EMBEDDINGS {
                b.output
                    .get_or_init(|| self.token_usage.bind(&set.output))
                    .record(call.usage.output_tokens);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn totals_are_kept_for_at_most_max_sets_and_the_rest_share_the_overflow_set() {
        // Each label is capped, their combinations were not: a set a call for good.
        let totals: Mutex<HashMap<AttrKey, Arc<AtomicU64>>> = Mutex::default();
        let key = |i: usize| vec![("gen_ai.request.model", format!("m{i}"))];
        for i in 0..MAX_TOTALS + 500 {
            handle(&totals, key(i)).fetch_add(1, Relaxed);
        }
        // A set kept before the cap still counts apart.
        handle(&totals, key(0)).fetch_add(1, Relaxed);
        let t = totals.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(t.len(), MAX_TOTALS + 1);
        let overflow = vec![(OVERFLOW_ATTR, "true".to_owned())];
        assert_eq!(
            to_kv(&overflow),
            vec![KeyValue::new("otel.metric.overflow", true)]
        );
        assert_eq!(t[&overflow].load(Relaxed), 500);
        assert_eq!(t[&key(0)].load(Relaxed), 2);
    }
}
