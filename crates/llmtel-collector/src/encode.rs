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

/// Part of a request that, encoded by [`request`], is at most the size it was split for:
/// its spans in the order they came, each under the resource and scope it came with.
#[derive(Debug, Default)]
pub(crate) struct Part {
    pub(crate) resource_spans: Vec<ResourceSpans>,
    pub(crate) attributes: Attributes,
    /// The spans it holds (a range of the request's spans, counted in order).
    pub(crate) spans: usize,
}

/// The most a length-delimited field's key and length prefix take.
const PREFIX_MAX: usize = 1 + 10;

/// Splits a request (as given to [`request`]) into parts that each encode to at most `max`
/// bytes, spans kept in order; a span bigger than `max` on its own goes alone in its part.
/// Resources and scopes are cloned into each part that holds some of their spans (without
/// their spans); the spans and their attributes are moved. Resources and scopes without spans
/// are left out.
pub(crate) fn split(
    resource_spans: Vec<ResourceSpans>,
    attributes: Attributes,
    max: usize,
) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut part = Part::default();
    // Bytes the part takes so far (an upper bound: prefixes counted at their longest).
    let mut used = 0;
    for (rs, attrs) in resource_spans.into_iter().zip(attributes) {
        let ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        } = rs;
        let resource_cost = group_cost(resource.as_ref(), &schema_url);
        // Whether the part's last resource is this one.
        let mut in_resource = false;
        for (ss, attrs) in scope_spans.into_iter().zip(attrs) {
            let ScopeSpans {
                scope,
                spans,
                schema_url: scope_schema_url,
            } = ss;
            let scope_cost = group_cost(scope.as_ref(), &scope_schema_url);
            // Whether the part's last scope is this one.
            let mut in_scope = false;
            for (span, attrs) in spans.into_iter().zip(attrs) {
                let len = delimited(2, span_len(&span, &attrs));
                let cost = |in_resource: bool, in_scope: bool| {
                    len + if in_scope {
                        0
                    } else if in_resource {
                        scope_cost
                    } else {
                        resource_cost + scope_cost
                    }
                };
                if part.spans > 0 && used + cost(in_resource, in_scope) > max {
                    parts.push(std::mem::take(&mut part));
                    (used, in_resource, in_scope) = (0, false, false);
                }
                used += cost(in_resource, in_scope);
                if !in_resource {
                    part.resource_spans.push(ResourceSpans {
                        resource: resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: schema_url.clone(),
                    });
                    part.attributes.push(Vec::new());
                    in_resource = true;
                }
                let (Some(r), Some(a)) =
                    (part.resource_spans.last_mut(), part.attributes.last_mut())
                else {
                    continue; // (pushed just above)
                };
                if !in_scope {
                    r.scope_spans.push(ScopeSpans {
                        scope: scope.clone(),
                        spans: Vec::new(),
                        schema_url: scope_schema_url.clone(),
                    });
                    a.push(Vec::new());
                    in_scope = true;
                }
                if let (Some(ss), Some(a)) = (r.scope_spans.last_mut(), a.last_mut()) {
                    ss.spans.push(span);
                    a.push(attrs);
                    part.spans += 1;
                }
            }
        }
    }
    if part.spans > 0 {
        parts.push(part);
    }
    parts
}

/// The most a resource's or a scope's entry takes in a part without its spans: its prefix,
/// its message (field 1) and its schema URL (field 3).
fn group_cost(message: Option<&impl Message>, schema_url: &str) -> usize {
    PREFIX_MAX
        + message.map_or(0, |m| prost::encoding::message::encoded_len(1, m))
        + string_len(3, schema_url)
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

    /// A request of `shape[r][s]` spans per resource and scope, span `n` carrying an
    /// attribute of `sizes[n % sizes.len()]` bytes (its number in it, to check the order).
    fn shaped(shape: &[Vec<usize>], sizes: &[usize]) -> (Vec<ResourceSpans>, Attributes) {
        let mut n = 0usize;
        let mut rs = Vec::new();
        let mut attrs: Attributes = Vec::new();
        for (r, scopes) in shape.iter().enumerate() {
            let mut scope_spans = Vec::new();
            let mut of_resource = Vec::new();
            for (s, &count) in scopes.iter().enumerate() {
                let mut spans = Vec::new();
                let mut of_scope = Vec::new();
                for _ in 0..count {
                    spans.push(Span {
                        trace_id: vec![1; 16],
                        span_id: (n as u64 + 1).to_be_bytes().to_vec(),
                        name: format!("span {n}"),
                        ..Default::default()
                    });
                    let size = sizes[n % sizes.len()];
                    of_scope.push(vec![
                        KeyValue::new("n", n as i64),
                        KeyValue::new("pad", "p".repeat(size)),
                    ]);
                    n += 1;
                }
                scope_spans.push(ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: format!("scope {r}.{s}"),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: if s % 2 == 0 {
                        "https://s".into()
                    } else {
                        String::new()
                    },
                });
                of_resource.push(of_scope);
            }
            rs.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: crate::convert::proto_keyvalues(vec![KeyValue::new(
                        "service.name",
                        format!("svc {r}"),
                    )]),
                    ..Default::default()
                }),
                scope_spans,
                schema_url: String::new(),
            });
            attrs.push(of_resource);
        }
        (rs, attrs)
    }

    /// Each span of an encoded request, with the resource and scope it is under.
    fn flat(bytes: &[u8]) -> Vec<(Option<Resource>, Option<InstrumentationScope>, String, Span)> {
        let decoded = ExportTraceServiceRequest::decode(bytes).unwrap();
        let mut out = Vec::new();
        for rs in decoded.resource_spans {
            for ss in rs.scope_spans {
                for span in ss.spans {
                    out.push((
                        rs.resource.clone(),
                        ss.scope.clone(),
                        ss.schema_url.clone(),
                        span,
                    ));
                }
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Each part is at most the size asked (unless it is one span bigger than that), and
        /// the parts hold every span, in order, under its resource and scope.
        #[test]
        fn a_request_splits_into_parts_under_the_size_with_every_span_in_order(
            shape in proptest::collection::vec(proptest::collection::vec(0usize..12, 1..4), 1..4),
            sizes in proptest::collection::vec(0usize..3_000, 1..6),
            max in 200usize..20_000,
        ) {
            let (rs, attrs) = shaped(&shape, &sizes);
            let whole = flat(&request(&rs, &attrs));
            let parts = split(rs, attrs, max);
            let mut rejoined = Vec::new();
            for part in &parts {
                let bytes = request(&part.resource_spans, &part.attributes);
                proptest::prop_assert!(part.spans > 0);
                proptest::prop_assert!(
                    bytes.len() <= max || part.spans == 1,
                    "{} bytes in a part of {} spans, asked at most {max}", bytes.len(), part.spans
                );
                let spans = flat(&bytes);
                proptest::prop_assert_eq!(spans.len(), part.spans);
                rejoined.extend(spans);
            }
            proptest::prop_assert_eq!(rejoined, whole);
        }
    }

    #[test]
    fn a_request_under_the_size_stays_whole() {
        let (rs, attrs) = shaped(&[vec![3, 2], vec![4]], &[100]);
        let len = request(&rs, &attrs).len();
        let parts = split(rs, attrs, len + 64);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].spans, 9);
        assert_eq!(
            request(&parts[0].resource_spans, &parts[0].attributes).len(),
            len
        );
    }
}
