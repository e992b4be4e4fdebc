//! Between OTLP protobuf spans and the SDK's `SpanData`, so received spans go through the
//! same exporter stage as in-process ones. Only what the stage reads or rewrites moves into
//! the `SpanData` (name, attributes, events, status; the ids, times and kind are copied) and
//! back; the rest of the span (links, flags, trace state), its scope and its resource stay in
//! the protobuf message that is forwarded, so nothing is converted twice (their attributes
//! go through the same secrets rules there, [`police`]).
//!
//! An attribute value the SDK cannot hold as it is (a map, bytes, a mixed array, an array
//! with an empty entry, no value at all) is kept aside as it came ([`Kept`]): the stage sees
//! a stand-in (its JSON text), and unless the stage rewrote or removed it, the original
//! value is what is forwarded.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue as ProtoKeyValue, any_value,
};
use opentelemetry_proto::tonic::trace::v1::span::Event as ProtoEvent;
use opentelemetry_proto::tonic::trace::v1::{Span as ProtoSpan, Status as ProtoStatus, status};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

/// `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK` of the OTLP trace protocol.
const CONTEXT_IS_REMOTE: u32 = 0x200;

/// The attributes of one span (and of its events) that [`take`] kept aside as they came,
/// for [`restore`] to forward in place of their stand-ins.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    attributes: Vec<Original>,
    /// By event index; only events with some.
    events: Vec<(usize, Vec<Original>)>,
    /// How many events the span had (the originals are matched to them by index).
    event_count: usize,
}

/// One attribute as it came, and what the stage sees in its place.
#[derive(Debug)]
struct Original {
    /// The SDK value the stage sees instead (`None`: the attribute has no value, the stage
    /// does not see it).
    stand_in: Option<Value>,
    kv: ProtoKeyValue,
}

/// Moves what the exporter stage reads out of `s` into a `SpanData`, with the attributes
/// kept aside as they came; `None` (and `s` left as it was) when its trace or span id is
/// invalid (the wrong length, or all zero) or its parent span id has the wrong length (an
/// all-zero parent is a root span's). Put the stage's result back with [`restore`].
pub(crate) fn take(s: &mut ProtoSpan) -> Option<(SpanData, Kept)> {
    let span_context = context(&s.trace_id, &s.span_id, s.flags, &s.trace_state)?;
    // No parent: empty, or eight zero bytes (what several SDKs send for a root span).
    let parent_span_id = if s.parent_span_id.is_empty() || s.parent_span_id == [0; 8] {
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
    let status = match s.status.take() {
        Some(st) if st.code == status::StatusCode::Error as i32 => Status::error(st.message),
        Some(st) if st.code == status::StatusCode::Ok as i32 => Status::Ok,
        _ => Status::Unset,
    };
    let mut kept = Kept::default();
    let mut events = SpanEvents::default();
    events.dropped_count = s.dropped_events_count;
    events.events = std::mem::take(&mut s.events)
        .into_iter()
        .enumerate()
        .map(|(n, e)| {
            let mut originals = Vec::new();
            let attributes = sdk_attributes(e.attributes, 0, &mut originals);
            if !originals.is_empty() {
                kept.events.push((n, originals));
            }
            Event::new(
                e.name,
                time(e.time_unix_nano),
                attributes,
                e.dropped_attributes_count,
            )
        })
        .collect();
    kept.event_count = events.events.len();
    let attributes = sdk_attributes(
        std::mem::take(&mut s.attributes),
        STAGE_ATTRIBUTES,
        &mut kept.attributes,
    );
    let data = SpanData {
        span_context,
        parent_span_id,
        parent_span_is_remote: s.flags & CONTEXT_IS_REMOTE != 0,
        span_kind,
        name: Cow::Owned(std::mem::take(&mut s.name)),
        start_time: time(s.start_time_unix_nano),
        end_time: time(s.end_time_unix_nano),
        attributes,
        dropped_attributes_count: s.dropped_attributes_count,
        events,
        // The links stay in the protobuf span: the stage does not read them.
        links: SpanLinks::default(),
        status,
        // So do the scope and the resource.
        instrumentation_scope: InstrumentationScope::default(),
    };
    Some((data, kept))
}

/// Puts what the exporter stage made of `d` (taken from `s` by [`take`], with `kept`) back
/// into `s`, but for its attributes: the ones kept aside that the stage left as they were go
/// back into `s` as they came; the others are returned, for [`crate::encode::request`] to
/// write as they are ([`proto_keyvalues`] makes them protobuf attributes).
pub(crate) fn restore(s: &mut ProtoSpan, d: SpanData, kept: Kept) -> Vec<KeyValue> {
    s.name = d.name.into_owned();
    s.dropped_attributes_count = d.dropped_attributes_count;
    s.dropped_events_count = d.events.dropped_count;
    // The stage polices events in place; were their number to change, their originals
    // could not be matched to them: the stand-ins are forwarded then.
    let mut event_originals = if d.events.events.len() == kept.event_count {
        kept.events
    } else {
        Vec::new()
    };
    event_originals.reverse();
    s.events = d
        .events
        .events
        .into_iter()
        .enumerate()
        .map(|(n, mut e)| {
            let mut attributes = match event_originals.last() {
                Some((i, _)) if *i == n => event_originals
                    .pop()
                    .map(|(_, o)| put_back(&mut e.attributes, o))
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            attributes.extend(e.attributes.into_iter().map(proto_keyvalue));
            ProtoEvent {
                time_unix_nano: nanos(e.timestamp),
                name: e.name.into_owned(),
                attributes,
                dropped_attributes_count: e.dropped_attributes_count,
            }
        })
        .collect();
    s.status = match d.status {
        Status::Unset => None,
        Status::Ok => Some(ProtoStatus {
            code: status::StatusCode::Ok as i32,
            message: String::new(),
        }),
        Status::Error { description } => Some(ProtoStatus {
            code: status::StatusCode::Error as i32,
            message: description.into_owned(),
        }),
    };
    let mut attributes = d.attributes;
    // Encoded with the span, before the stage's attributes (their order carries no meaning).
    s.attributes = put_back(&mut attributes, kept.attributes);
    attributes
}

/// Takes out of `attributes` each stand-in the stage left as it was and returns the
/// original it stands for, with the attributes without a value whose key the stage did not
/// write. A stand-in the stage rewrote or removed stays rewritten or removed.
fn put_back(attributes: &mut Vec<KeyValue>, kept: Vec<Original>) -> Vec<ProtoKeyValue> {
    if kept.is_empty() {
        return Vec::new();
    }
    let mut slots: Vec<Option<Original>> = kept.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    attributes.retain(|kv| {
        let found = slots.iter_mut().find(|slot| {
            slot.as_ref().is_some_and(|o| {
                o.kv.key == kv.key.as_str()
                    && o.stand_in.as_ref().is_some_and(|v| same(v, &kv.value))
            })
        });
        match found.and_then(Option::take) {
            Some(o) => {
                out.push(o.kv);
                false
            }
            None => true,
        }
    });
    for o in slots.into_iter().flatten() {
        if o.stand_in.is_none() && !attributes.iter().any(|kv| kv.key.as_str() == o.kv.key) {
            out.push(o.kv);
        }
    }
    out
}

/// Whether a stand-in is as [`take`] made it (doubles compared by their bits: a NaN is
/// itself).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(Array::F64(x)), Value::Array(Array::F64(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits())
        }
        _ => a == b,
    }
}

/// SDK attributes as OTLP attributes.
#[cfg(test)]
pub(crate) fn proto_keyvalues(kvs: Vec<KeyValue>) -> Vec<ProtoKeyValue> {
    kvs.into_iter().map(proto_keyvalue).collect()
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Applies llmtel's secrets and content rules ([`llmtel::police_attributes`]) to OTLP
/// attributes the stage does not otherwise read (a resource's, a link's), in place: an
/// attribute the rules leave as it was stays as it came (maps and byte strings included);
/// one they rewrite takes the rewritten value; one they remove is removed. Returns how many
/// were removed.
pub(crate) fn police(kvs: &mut Vec<ProtoKeyValue>, policy: &llmtel::ContentCapture) -> u32 {
    let before = kvs.len();
    kvs.retain_mut(|kv| {
        let Some(v) = kv.value.clone().and_then(value) else {
            return true;
        };
        let mut one = vec![KeyValue::new(kv.key.clone(), v.clone())];
        if llmtel::police_attributes(&mut one, policy) > 0 {
            return false;
        }
        if let Some(after) = one.pop().filter(|after| after.value != v) {
            kv.value = Some(proto_value(after.value));
        }
        true
    });
    u32::try_from(before - kvs.len()).unwrap_or(u32::MAX)
}

/// Applies llmtel's rules to an instrumentation scope in place: its attributes as
/// [`police`] (the ones removed counted in its `dropped_attributes_count`), its name and
/// version through [`llmtel::redact()`], as a span's name.
pub(crate) fn police_scope(
    scope: &mut opentelemetry_proto::tonic::common::v1::InstrumentationScope,
    policy: &llmtel::ContentCapture,
) {
    let gone = police(&mut scope.attributes, policy);
    scope.dropped_attributes_count = scope.dropped_attributes_count.saturating_add(gone);
    for text in [&mut scope.name, &mut scope.version] {
        if let Cow::Owned(r) = llmtel::redact(text) {
            *text = r;
        }
    }
}

fn proto_keyvalue(kv: KeyValue) -> ProtoKeyValue {
    ProtoKeyValue {
        key: kv.key.into(),
        value: Some(proto_value(kv.value)),
        ..Default::default()
    }
}

/// An SDK value as OTLP (strings move, no copy).
pub(crate) fn proto_value(v: Value) -> AnyValue {
    use any_value::Value as V;
    let array = |values: Vec<V>| {
        V::ArrayValue(ArrayValue {
            values: values
                .into_iter()
                .map(|v| AnyValue { value: Some(v) })
                .collect(),
        })
    };
    let value = match v {
        Value::Bool(b) => V::BoolValue(b),
        Value::I64(i) => V::IntValue(i),
        Value::F64(f) => V::DoubleValue(f),
        Value::String(s) => V::StringValue(s.into()),
        Value::Array(Array::Bool(a)) => array(a.into_iter().map(V::BoolValue).collect()),
        Value::Array(Array::I64(a)) => array(a.into_iter().map(V::IntValue).collect()),
        Value::Array(Array::F64(a)) => array(a.into_iter().map(V::DoubleValue).collect()),
        Value::Array(Array::String(a)) => {
            array(a.into_iter().map(|s| V::StringValue(s.into())).collect())
        }
        // Values the SDK adds later: their text.
        other => V::StringValue(other.to_string()),
    };
    AnyValue { value: Some(value) }
}

fn time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// Leaves out of `resource_spans` the spans [`take`] would refuse (a trace or span id of the
/// wrong length or all zero, a parent id of the wrong length); returns how many.
pub(crate) fn drop_invalid(
    resource_spans: &mut [opentelemetry_proto::tonic::trace::v1::ResourceSpans],
) -> u64 {
    let mut dropped = 0;
    for ss in resource_spans.iter_mut().flat_map(|rs| &mut rs.scope_spans) {
        let before = ss.spans.len();
        ss.spans.retain(ids_valid);
        dropped += (before - ss.spans.len()) as u64;
    }
    dropped
}

/// Whether [`take`] accepts the span's ids.
fn ids_valid(s: &ProtoSpan) -> bool {
    trace_id(&s.trace_id).is_some()
        && span_id(&s.span_id).is_some()
        && (s.parent_span_id.is_empty()
            || s.parent_span_id == [0; 8]
            || span_id(&s.parent_span_id).is_some())
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

/// What the exporter stage adds to a priced span (cost, breakdown, pricing entry,
/// OpenInference names), reserved up front so that adding it does not move the attributes.
const STAGE_ATTRIBUTES: usize = 24;

/// OTLP attributes as SDK attributes, with room for `extra` more. One whose value an SDK
/// value holds exactly moves (no copy); one whose value it cannot hold ([`exact`]) is
/// pushed to `kept` as it came, and the SDK attribute is its stand-in (its JSON text); one
/// without a value goes to `kept` only.
fn sdk_attributes(
    kvs: Vec<ProtoKeyValue>,
    extra: usize,
    kept: &mut Vec<Original>,
) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(kvs.len() + extra);
    for kv in kvs {
        match kv.value.as_ref() {
            Some(v) if exact(v) => {
                if let Some(v) = kv.value.and_then(value) {
                    out.push(KeyValue::new(kv.key, v));
                }
            }
            Some(v) if v.value.is_some() => {
                let stand_in = value(v.clone());
                if let Some(stand_in) = &stand_in {
                    out.push(KeyValue::new(kv.key.clone(), stand_in.clone()));
                }
                kept.push(Original { stand_in, kv });
            }
            _ => kept.push(Original { stand_in: None, kv }),
        }
    }
    out
}

/// Whether an SDK value holds `v` exactly (written back, it is the same OTLP value): a
/// scalar, or an array of scalars of one type without an empty entry.
fn exact(v: &AnyValue) -> bool {
    use any_value::Value as V;
    match &v.value {
        Some(V::StringValue(_) | V::BoolValue(_) | V::IntValue(_) | V::DoubleValue(_)) => true,
        Some(V::ArrayValue(a)) => {
            let kind = |v: &AnyValue| match &v.value {
                Some(V::StringValue(_)) => 1,
                Some(V::BoolValue(_)) => 2,
                Some(V::IntValue(_)) => 3,
                Some(V::DoubleValue(_)) => 4,
                _ => 0,
            };
            match a.values.first().map(kind) {
                // An empty array is written back as an empty array.
                None => true,
                Some(0) => false,
                Some(k) => a.values.iter().all(|v| kind(v) == k),
            }
        }
        _ => false,
    }
}

/// One OTLP value as an SDK value. Homogeneous arrays of scalars stay arrays; maps, byte
/// strings and mixed arrays become their JSON text, byte strings as their UTF-8 text (the
/// SDK has no such values: what the stage sees of them, see [`Kept`]).
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
        // Bytes are the sender's to fill: text in them (`Bearer sk-…` as UTF-8) is text the
        // secrets rules must read, as text (it was written as hex, which no rule reads a
        // secret in, and forwarded as it came). Bytes that are not UTF-8 are read with
        // their invalid sequences replaced, so a secret among them is still read.
        V::BytesValue(b) => String::from_utf8_lossy(b).into_owned().into(),
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
    fn a_span_with_a_short_trace_id_is_left_out_untouched() {
        let mut span = ProtoSpan {
            trace_id: vec![1; 3],
            span_id: vec![1; 8],
            name: "kept".into(),
            ..Default::default()
        };
        assert!(take(&mut span).is_none());
        assert_eq!(span.name, "kept");
    }

    #[test]
    fn a_root_span_whose_parent_id_is_eight_zero_bytes_is_taken_as_a_root() {
        let mut span = ProtoSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![0; 8],
            name: "chat gpt-4o".into(),
            ..Default::default()
        };
        let (data, kept) = take(&mut span).unwrap();
        assert_eq!(data.parent_span_id, SpanId::INVALID);
        let _ = restore(&mut span, data, kept);
        assert_eq!(span.parent_span_id, [0; 8], "forwarded as it came");
        // A parent id of the wrong length is still invalid.
        span.parent_span_id = vec![0; 3];
        assert!(take(&mut span).is_none());
    }

    #[test]
    fn a_span_taken_and_restored_is_the_same_span() {
        let mut span = ProtoSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            name: "chat gpt-4o".into(),
            kind: 3,
            start_time_unix_nano: 1_700_000_000_123_456_789,
            end_time_unix_nano: 1_700_000_001_123_456_789,
            attributes: vec![
                ProtoKeyValue {
                    key: "gen_ai.request.model".into(),
                    value: Some(s("gpt-4o")),
                    ..Default::default()
                },
                ProtoKeyValue {
                    key: "gen_ai.response.finish_reasons".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::ArrayValue(ArrayValue {
                            values: vec![s("stop")],
                        })),
                    }),
                    ..Default::default()
                },
            ],
            events: vec![ProtoEvent {
                time_unix_nano: 1_700_000_000_999_999_999,
                name: "gen_ai.evaluation.result".into(),
                attributes: vec![ProtoKeyValue {
                    key: "gen_ai.evaluation.score.value".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::DoubleValue(0.5)),
                    }),
                    ..Default::default()
                }],
                dropped_attributes_count: 1,
            }],
            status: Some(ProtoStatus {
                code: status::StatusCode::Error as i32,
                message: "rate limited".into(),
            }),
            ..Default::default()
        };
        let before = span.clone();
        let (data, kept) = take(&mut span).unwrap();
        assert_eq!(data.attributes.len(), 2);
        assert_eq!(data.events.events[0].name, "gen_ai.evaluation.result");
        let attributes = restore(&mut span, data, kept);
        span.attributes = proto_keyvalues(attributes);
        assert_eq!(span, before);
    }
}
