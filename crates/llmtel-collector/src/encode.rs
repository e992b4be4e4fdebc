//! Encodes the forwarded request with each span's attributes written straight from the
//! exporter stage's `KeyValue`s, so they are not converted back into protobuf structs (one
//! allocation per key and value) only to be encoded and dropped.
//!
//! Protobuf allows a message's fields in any order and a repeated field's entries anywhere
//! in it: a span is its protobuf message without attributes, followed by its attributes
//! (field 9); resources, scopes and the rest of each span are encoded by prost as received.

use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// The attributes of each span of a request, by resource, scope and span, aligned with the
/// request's spans.
pub(crate) type Attributes = Vec<Vec<Vec<Vec<KeyValue>>>>;

/// The `ExportTraceServiceRequest` of `resource_spans`, where the spans carry no attributes
/// of their own and `attributes[r][s][i]` are those of span `i` of scope `s` of resource `r`.
pub(crate) fn request(resource_spans: &[ResourceSpans], attributes: &Attributes) -> Vec<u8> {
    // Each span's length, computed once (needed for its prefix and its parents').
    let lens: Vec<Vec<Vec<usize>>> = resource_spans
        .iter()
        .zip(attributes)
        .map(|(rs, a)| {
            rs.scope_spans
                .iter()
                .zip(a)
                .map(|(ss, a)| {
                    ss.spans
                        .iter()
                        .zip(a)
                        .map(|(s, a)| span_len(s, a))
                        .collect()
                })
                .collect()
        })
        .collect();
    let scope_lens: Vec<Vec<usize>> = resource_spans
        .iter()
        .zip(&lens)
        .map(|(rs, l)| {
            rs.scope_spans
                .iter()
                .zip(l)
                .map(|(ss, l)| scope_len(ss, l))
                .collect()
        })
        .collect();
    let resource_lens: Vec<usize> = resource_spans
        .iter()
        .zip(&scope_lens)
        .map(|(rs, l)| resource_len(rs, l))
        .collect();
    let total: usize = resource_lens.iter().map(|&l| delimited(1, l)).sum();
    let mut buf = Vec::with_capacity(total);
    // Zipped, never indexed: shapes that disagree (they cannot: the stage returns one list
    // per span it kept) would lose the unmatched spans, not panic.
    for (((rs, attrs), scope_lens), (resource_len, lens)) in resource_spans
        .iter()
        .zip(attributes)
        .zip(&scope_lens)
        .zip(resource_lens.iter().zip(&lens))
    {
        header(1, *resource_len, &mut buf);
        if let Some(resource) = &rs.resource {
            prost::encoding::message::encode(1, resource, &mut buf);
        }
        for (((ss, attrs), scope_len), lens) in
            rs.scope_spans.iter().zip(attrs).zip(scope_lens).zip(lens)
        {
            header(2, *scope_len, &mut buf);
            if let Some(scope) = &ss.scope {
                prost::encoding::message::encode(1, scope, &mut buf);
            }
            for ((span, attrs), len) in ss.spans.iter().zip(attrs).zip(lens) {
                header(2, *len, &mut buf);
                span.encode_raw(&mut buf);
                for kv in attrs {
                    key_value(9, kv, &mut buf);
                }
            }
            if !ss.schema_url.is_empty() {
                prost::encoding::string::encode(3, &ss.schema_url, &mut buf);
            }
        }
        if !rs.schema_url.is_empty() {
            prost::encoding::string::encode(3, &rs.schema_url, &mut buf);
        }
    }
    buf
}

/// A length-delimited field's key and length.
fn header(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

/// The bytes of a length-delimited field whose content is `len` bytes.
fn delimited(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn span_len(span: &Span, attributes: &[KeyValue]) -> usize {
    span.encoded_len()
        + attributes
            .iter()
            .map(|kv| delimited(9, key_value_len(kv)))
            .sum::<usize>()
}

fn scope_len(ss: &ScopeSpans, span_lens: &[usize]) -> usize {
    ss.scope
        .as_ref()
        .map_or(0, |m| prost::encoding::message::encoded_len(1, m))
        + span_lens.iter().map(|&l| delimited(2, l)).sum::<usize>()
        + string_len(3, &ss.schema_url)
}

fn resource_len(rs: &ResourceSpans, scope_lens: &[usize]) -> usize {
    rs.resource
        .as_ref()
        .map_or(0, |m| prost::encoding::message::encoded_len(1, m))
        + scope_lens.iter().map(|&l| delimited(2, l)).sum::<usize>()
        + string_len(3, &rs.schema_url)
}

/// A proto3 string field (left out when empty).
fn string_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        delimited(tag, s.len())
    }
}

/// `KeyValue { key = 1; AnyValue value = 2; }`.
fn key_value_len(kv: &KeyValue) -> usize {
    string_len(1, kv.key.as_str()) + delimited(2, any_value_len(&kv.value))
}

/// Writes `kv`, whose [`key_value_len`] is `len`, as field `tag`.
fn key_value(tag: u32, kv: &KeyValue, buf: &mut Vec<u8>) {
    let key = kv.key.as_str();
    let value_len = any_value_len(&kv.value);
    header(tag, string_len(1, key) + delimited(2, value_len), buf);
    if !key.is_empty() {
        str_field(1, key, buf);
    }
    header(2, value_len, buf);
    any_value(&kv.value, buf);
}

fn str_field(tag: u32, s: &str, buf: &mut Vec<u8>) {
    header(tag, s.len(), buf);
    buf.extend_from_slice(s.as_bytes());
}

/// `AnyValue`: a oneof, so its field is written even when it holds the default. Scalars
/// and arrays of scalars are written here; anything else as the protobuf conversion makes it.
fn any_value_len(v: &Value) -> usize {
    match v {
        Value::String(s) => delimited(1, s.as_str().len()),
        Value::Bool(_) => BOOL_LEN,
        Value::I64(i) => i64_len(*i),
        Value::F64(_) => F64_LEN,
        Value::Array(a) => match array_len(a) {
            Some(len) => delimited(5, len),
            None => crate::convert::proto_value(v.clone()).encoded_len(),
        },
        other => crate::convert::proto_value(other.clone()).encoded_len(),
    }
}

const BOOL_LEN: usize = 2;
const F64_LEN: usize = 9;

fn i64_len(i: i64) -> usize {
    key_len(3) + encoded_len_varint(i as u64)
}

fn any_value(v: &Value, buf: &mut Vec<u8>) {
    match v {
        Value::String(s) => str_field(1, s.as_str(), buf),
        Value::Bool(b) => bool_field(*b, buf),
        Value::I64(i) => i64_field(*i, buf),
        Value::F64(f) => f64_field(*f, buf),
        Value::Array(a) if array_len(a).is_some() => {
            header(5, array_len(a).unwrap_or_default(), buf);
            array(a, buf);
        }
        other => crate::convert::proto_value(other.clone()).encode_raw(buf),
    }
}

fn bool_field(b: bool, buf: &mut Vec<u8>) {
    encode_key(2, WireType::Varint, buf);
    buf.push(u8::from(b));
}

fn i64_field(i: i64, buf: &mut Vec<u8>) {
    encode_key(3, WireType::Varint, buf);
    encode_varint(i as u64, buf);
}

fn f64_field(f: f64, buf: &mut Vec<u8>) {
    encode_key(4, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&f.to_le_bytes());
}

/// `ArrayValue { repeated AnyValue values = 1; }` of scalars; `None` for other arrays.
fn array_len(a: &Array) -> Option<usize> {
    Some(match a {
        Array::String(v) => v
            .iter()
            .map(|s| delimited(1, delimited(1, s.as_str().len())))
            .sum(),
        Array::Bool(v) => v.len() * delimited(1, BOOL_LEN),
        Array::I64(v) => v.iter().map(|i| delimited(1, i64_len(*i))).sum(),
        Array::F64(v) => v.len() * delimited(1, F64_LEN),
        _ => return None,
    })
}

fn array(a: &Array, buf: &mut Vec<u8>) {
    match a {
        Array::String(v) => {
            for s in v {
                header(1, delimited(1, s.as_str().len()), buf);
                str_field(1, s.as_str(), buf);
            }
        }
        Array::Bool(v) => {
            for b in v {
                header(1, BOOL_LEN, buf);
                bool_field(*b, buf);
            }
        }
        Array::I64(v) => {
            for i in v {
                header(1, i64_len(*i), buf);
                i64_field(*i, buf);
            }
        }
        Array::F64(v) => {
            for f in v {
                header(1, F64_LEN, buf);
                f64_field(*f, buf);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::StringValue;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn attributes() -> Vec<KeyValue> {
        vec![
            KeyValue::new("gen_ai.request.model", "gpt-4o"),
            KeyValue::new("gen_ai.usage.input_tokens", 1_234_567_i64),
            KeyValue::new("negative", -5_i64),
            KeyValue::new("zero", 0_i64),
            KeyValue::new("gen_ai.usage.cost", 0.000_123_f64),
            KeyValue::new("flag", false),
            KeyValue::new("empty", ""),
            KeyValue::new(
                "gen_ai.response.finish_reasons",
                Value::Array(Array::String(vec![StringValue::from("stop")])),
            ),
            KeyValue::new("ints", Value::Array(Array::I64(vec![1, -2]))),
            KeyValue::new("floats", Value::Array(Array::F64(vec![0.5, -1.0]))),
            KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("none", Value::Array(Array::String(vec![]))),
            KeyValue::new("", "no key"),
            KeyValue::new("long", "x".repeat(300)),
        ]
    }

    #[test]
    fn the_request_decodes_to_the_spans_with_their_attributes() {
        let span = |n: u8| Span {
            trace_id: vec![n; 16],
            span_id: vec![n; 8],
            name: format!("chat {n}"),
            flags: 0x301,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..Default::default()
        };
        let rs = vec![
            ResourceSpans {
                resource: Some(Resource {
                    attributes: crate::convert::proto_keyvalues(vec![KeyValue::new(
                        "service.name",
                        "svc",
                    )]),
                    ..Default::default()
                }),
                scope_spans: vec![
                    ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "openai".into(),
                            ..Default::default()
                        }),
                        spans: vec![span(1), span(2)],
                        schema_url: "https://opentelemetry.io/schemas/1.37.0".into(),
                    },
                    ScopeSpans {
                        spans: vec![span(3)],
                        ..Default::default()
                    },
                ],
                schema_url: "s".into(),
            },
            ResourceSpans::default(),
        ];
        let attrs: Attributes = vec![vec![vec![attributes(), vec![]], vec![attributes()]], vec![]];
        let bytes = request(&rs, &attrs);
        let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let mut expected = rs.clone();
        for (r, rs) in expected.iter_mut().enumerate() {
            for (s, ss) in rs.scope_spans.iter_mut().enumerate() {
                for (i, span) in ss.spans.iter_mut().enumerate() {
                    span.attributes = crate::convert::proto_keyvalues(attrs[r][s][i].clone());
                }
            }
        }
        assert_eq!(decoded.resource_spans, expected);
        // The same length prost would write for the same request.
        let prost_len = ExportTraceServiceRequest {
            resource_spans: expected,
        }
        .encoded_len();
        assert_eq!(bytes.len(), prost_len);
    }
}
