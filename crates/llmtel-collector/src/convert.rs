//! OTLP protobuf messages to the SDK's `SpanData`, so received spans go through the same
//! exporter stage as in-process ones.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope as ProtoScope, KeyValue as ProtoKeyValue, any_value,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span as ProtoSpan, status};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

/// `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK` of the OTLP trace protocol.
const CONTEXT_IS_REMOTE: u32 = 0x200;

/// One resource's spans, ready for the exporter stage.
#[derive(Debug)]
pub(crate) struct ResourceBatch {
    pub(crate) resource: Resource,
    pub(crate) spans: Vec<SpanData>,
}

/// Converts one `ResourceSpans`; returns the batch and how many spans were invalid (a trace
/// or span id of the wrong length, or all zero) and left out.
pub(crate) fn resource_spans(rs: ResourceSpans) -> (ResourceBatch, u64) {
    let attrs = rs
        .resource
        .map(|r| keyvalues(r.attributes))
        .unwrap_or_default();
    let builder = Resource::builder_empty();
    let resource = if rs.schema_url.is_empty() {
        builder.with_attributes(attrs).build()
    } else {
        builder.with_schema_url(attrs, rs.schema_url).build()
    };
    let mut spans = Vec::new();
    let mut invalid = 0u64;
    for ss in rs.scope_spans {
        let scope = scope(ss.scope, ss.schema_url);
        for s in ss.spans {
            match span(s, &scope) {
                Some(d) => spans.push(d),
                None => invalid += 1,
            }
        }
    }
    (ResourceBatch { resource, spans }, invalid)
}

fn scope(scope: Option<ProtoScope>, schema_url: String) -> InstrumentationScope {
    let scope = scope.unwrap_or_default();
    let mut b = InstrumentationScope::builder(scope.name);
    if !scope.version.is_empty() {
        b = b.with_version(scope.version);
    }
    if !schema_url.is_empty() {
        b = b.with_schema_url(schema_url);
    }
    b.with_attributes(keyvalues(scope.attributes)).build()
}

fn time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn trace_id(b: &[u8]) -> Option<TraceId> {
    let id = TraceId::from_bytes(<[u8; 16]>::try_from(b).ok()?);
    (id != TraceId::INVALID).then_some(id)
}

fn span_id(b: &[u8]) -> Option<SpanId> {
    let id = SpanId::from_bytes(<[u8; 8]>::try_from(b).ok()?);
    (id != SpanId::INVALID).then_some(id)
}

fn context(trace: &[u8], span: &[u8], flags: u32, state: &str) -> Option<SpanContext> {
    Some(SpanContext::new(
        trace_id(trace)?,
        span_id(span)?,
        TraceFlags::new((flags & 0xff) as u8),
        flags & CONTEXT_IS_REMOTE != 0,
        TraceState::from_str(state).unwrap_or_default(),
    ))
}

fn span(s: ProtoSpan, scope: &InstrumentationScope) -> Option<SpanData> {
    let span_context = context(&s.trace_id, &s.span_id, s.flags, &s.trace_state)?;
    let parent_span_id = if s.parent_span_id.is_empty() {
        SpanId::INVALID
    } else {
        span_id(&s.parent_span_id)?
    };
    let span_kind = match s.kind {
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Internal,
    };
    let status = match s.status {
        Some(st) if st.code == status::StatusCode::Error as i32 => Status::error(st.message),
        Some(st) if st.code == status::StatusCode::Ok as i32 => Status::Ok,
        _ => Status::Unset,
    };
    let mut events = SpanEvents::default();
    events.dropped_count = s.dropped_events_count;
    events.events = s
        .events
        .into_iter()
        .map(|e| {
            Event::new(
                e.name,
                time(e.time_unix_nano),
                keyvalues(e.attributes),
                e.dropped_attributes_count,
            )
        })
        .collect();
    let mut links = SpanLinks::default();
    links.dropped_count = s.dropped_links_count;
    links.links = s
        .links
        .into_iter()
        .filter_map(|l| {
            let cx = context(&l.trace_id, &l.span_id, l.flags, &l.trace_state)?;
            Some(Link::new(
                cx,
                keyvalues(l.attributes),
                l.dropped_attributes_count,
            ))
        })
        .collect();
    Some(SpanData {
        span_context,
        parent_span_id,
        parent_span_is_remote: s.flags & CONTEXT_IS_REMOTE != 0,
        span_kind,
        name: Cow::Owned(s.name),
        start_time: time(s.start_time_unix_nano),
        end_time: time(s.end_time_unix_nano),
        attributes: keyvalues(s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events,
        links,
        status,
        instrumentation_scope: scope.clone(),
    })
}

/// OTLP attributes to SDK attributes; an attribute without a value is left out.
pub(crate) fn keyvalues(kvs: Vec<ProtoKeyValue>) -> Vec<KeyValue> {
    kvs.into_iter()
        .filter_map(|kv| Some(KeyValue::new(kv.key, value(kv.value?)?)))
        .collect()
}

/// One OTLP value as an SDK value. Homogeneous arrays of scalars stay arrays; maps, byte
/// strings and mixed arrays become their JSON text (the SDK has no such values).
fn value(v: AnyValue) -> Option<Value> {
    Some(match v.value? {
        any_value::Value::StringValue(s) => Value::String(s.into()),
        any_value::Value::BoolValue(b) => Value::Bool(b),
        any_value::Value::IntValue(i) => Value::I64(i),
        any_value::Value::DoubleValue(d) => Value::F64(d),
        any_value::Value::ArrayValue(a) => array(a.values),
        other => Value::String(json(&other).to_string().into()),
    })
}

fn array(values: Vec<AnyValue>) -> Value {
    use any_value::Value as V;
    let items: Vec<V> = values.into_iter().filter_map(|v| v.value).collect();
    if items.iter().all(|v| matches!(v, V::StringValue(_))) {
        let v = items
            .into_iter()
            .filter_map(|v| match v {
                V::StringValue(s) => Some(StringValue::from(s)),
                _ => None,
            })
            .collect();
        return Value::Array(Array::String(v));
    }
    if items.iter().all(|v| matches!(v, V::IntValue(_))) {
        let v = items
            .into_iter()
            .filter_map(|v| match v {
                V::IntValue(i) => Some(i),
                _ => None,
            })
            .collect();
        return Value::Array(Array::I64(v));
    }
    if items.iter().all(|v| matches!(v, V::DoubleValue(_))) {
        let v = items
            .into_iter()
            .filter_map(|v| match v {
                V::DoubleValue(d) => Some(d),
                _ => None,
            })
            .collect();
        return Value::Array(Array::F64(v));
    }
    if items.iter().all(|v| matches!(v, V::BoolValue(_))) {
        let v = items
            .into_iter()
            .filter_map(|v| match v {
                V::BoolValue(b) => Some(b),
                _ => None,
            })
            .collect();
        return Value::Array(Array::Bool(v));
    }
    Value::String(
        serde_json::Value::Array(items.iter().map(json).collect())
            .to_string()
            .into(),
    )
}

fn json(v: &any_value::Value) -> serde_json::Value {
    use any_value::Value as V;
    match v {
        V::StringValue(s) => s.clone().into(),
        V::BoolValue(b) => (*b).into(),
        V::IntValue(i) => (*i).into(),
        V::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        V::ArrayValue(a) => a
            .values
            .iter()
            .map(|v| v.value.as_ref().map(json).unwrap_or_default())
            .collect(),
        V::KvlistValue(kv) => kv
            .values
            .iter()
            .map(|kv| {
                let v = kv
                    .value
                    .as_ref()
                    .and_then(|v| v.value.as_ref())
                    .map(json)
                    .unwrap_or_default();
                (kv.key.clone(), v)
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        V::BytesValue(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
        #[allow(unreachable_patterns)]
        _ => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn s(v: &str) -> AnyValue {
        AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }
    }

    #[test]
    fn string_arrays_stay_arrays_and_maps_become_json_text() {
        let arr = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![s("stop"), s("length")],
            })),
        };
        assert_eq!(
            value(arr),
            Some(Value::Array(Array::String(vec![
                "stop".into(),
                "length".into()
            ])))
        );
        let map = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![ProtoKeyValue {
                    key: "a".into(),
                    value: Some(s("b")),
                    ..Default::default()
                }],
            })),
        };
        assert_eq!(value(map), Some(Value::String(r#"{"a":"b"}"#.into())));
    }

    #[test]
    fn a_span_with_a_short_trace_id_is_left_out_and_counted() {
        let rs = ResourceSpans {
            scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                spans: vec![ProtoSpan {
                    trace_id: vec![1; 3],
                    span_id: vec![1; 8],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let (batch, invalid) = resource_spans(rs);
        assert!(batch.spans.is_empty());
        assert_eq!(invalid, 1);
    }
}
