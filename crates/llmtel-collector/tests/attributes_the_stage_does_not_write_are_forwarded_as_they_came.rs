//! Attribute values the SDK has no type for (a map, with a key twice in it, bytes, a mixed
//! array, a string array with an empty entry, no value at all), on a span that is not an LLM
//! call, on a priced LLM span and on their events, go through a real collector (received
//! over OTLP/HTTP protobuf, run through the stage, encoded by its encoder) and reach a real
//! OTLP/gRPC receiver exactly as they were sent: not as JSON text, not dropped, not merged.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use llmtel_collector::Collector;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::trace::v1::span::Event;
use prost::Message as _;

fn any(v: any_value::Value) -> AnyValue {
    AnyValue { value: Some(v) }
}

fn text(v: &str) -> AnyValue {
    any(any_value::Value::StringValue(v.into()))
}

/// Attributes whose values no SDK value holds as they are, and two ordinary ones.
fn odd_attributes() -> Vec<KeyValue> {
    vec![
        kv(
            "app.map",
            any_value::Value::KvlistValue(KeyValueList {
                values: vec![
                    KeyValue {
                        key: "a".into(),
                        value: Some(text("b")),
                        ..Default::default()
                    },
                    // the same key twice inside the map: both kept
                    KeyValue {
                        key: "a".into(),
                        value: Some(text("c")),
                        ..Default::default()
                    },
                ],
            }),
        ),
        kv(
            "app.bytes",
            any_value::Value::BytesValue(vec![0, 1, 0xfe, 0xff]),
        ),
        kv(
            "app.mixed",
            any_value::Value::ArrayValue(ArrayValue {
                values: vec![
                    any(any_value::Value::IntValue(1)),
                    any(any_value::Value::DoubleValue(2.5)),
                ],
            }),
        ),
        kv(
            "app.holey",
            any_value::Value::ArrayValue(ArrayValue {
                values: vec![text("x"), AnyValue { value: None }, text("y")],
            }),
        ),
        // no value at all, and an AnyValue with nothing in it
        KeyValue {
            key: "app.none".into(),
            value: None,
            ..Default::default()
        },
        KeyValue {
            key: "app.empty".into(),
            value: Some(AnyValue { value: None }),
            ..Default::default()
        },
        // control characters: a string the SDK holds as it is
        s("app.control", "\u{1}\u{2}\u{3}"),
        i("app.count", 7),
    ]
}

/// Attributes as comparable values, order aside (OTLP attributes are a map).
fn sorted(kvs: &[KeyValue]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = kvs.iter().map(|kv| kv.encode_to_vec()).collect();
    v.sort();
    v
}

fn find<'a>(kvs: &'a [KeyValue], key: &str) -> Vec<&'a KeyValue> {
    kvs.iter().filter(|kv| kv.key == key).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_the_stage_does_not_write_reach_the_downstream_as_they_came() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();

    let event = |name: &str| Event {
        time_unix_nano: 1_700_000_000_000_000_000,
        name: name.into(),
        attributes: odd_attributes(),
        dropped_attributes_count: 0,
    };
    let mut llm = chat_call("gpt-4o", None);
    llm.extend(odd_attributes());
    let mut req = request(
        "svc",
        21,
        vec![
            ("GET /orders".into(), odd_attributes()),
            ("chat gpt-4o".into(), llm),
        ],
    );
    for span in &mut req.resource_spans[0].scope_spans[0].spans {
        span.events.push(event("app.event"));
    }
    post_protobuf(&collector, req).await;

    // Not an LLM call: every attribute, and every event attribute, as it came.
    let (_, plain) = receiver.wait_for("GET /orders").await;
    assert_eq!(
        sorted(&plain.attributes),
        sorted(&odd_attributes()),
        "forwarded: {:?}",
        plain.attributes
    );
    assert_eq!(plain.dropped_attributes_count, 0);
    assert_eq!(plain.events.len(), 1);
    assert_eq!(
        sorted(&plain.events[0].attributes),
        sorted(&odd_attributes()),
        "event attributes forwarded: {:?}",
        plain.events[0].attributes
    );

    // A priced LLM span: priced, and the attributes the stage does not own as they came.
    let (_, priced) = receiver.wait_for("chat gpt-4o").await;
    assert!(f64_attr(&priced, "gen_ai.usage.cost") > 0.0, "priced");
    assert_eq!(priced.dropped_attributes_count, 0);
    for want in odd_attributes() {
        let got = find(&priced.attributes, &want.key);
        assert_eq!(got, vec![&want], "{} on the priced span", want.key);
    }
    assert_eq!(
        sorted(&priced.events[0].attributes),
        sorted(&odd_attributes()),
        "event attributes of the priced span: {:?}",
        priced.events[0].attributes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_holding_a_credential_is_still_redacted() {
    // The secrets rules see the values kept aside too: a rewritten one is forwarded
    // rewritten, not as it came.
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();
    let secret = kv(
        "app.settings",
        any_value::Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "note".into(),
                value: Some(text(
                    "called with key sk-proj-abcdefghijklmnopqrstuvwxyzMAPVALUE",
                )),
                ..Default::default()
            }],
        }),
    );
    post_protobuf(
        &collector,
        request("svc", 22, vec![("with map".into(), vec![secret])]),
    )
    .await;
    let (_, span) = receiver.wait_for("with map").await;
    let all = format!("{span:?}");
    assert!(
        !all.contains("MAPVALUE"),
        "a credential was forwarded: {all}"
    );
    assert_eq!(find(&span.attributes, "app.settings").len(), 1, "{all}");
}
