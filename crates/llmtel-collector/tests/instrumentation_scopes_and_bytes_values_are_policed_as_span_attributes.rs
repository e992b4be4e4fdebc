//! The instrumentation scope of received spans (its name, version and attributes) was
//! forwarded as it came, and a bytes-valued attribute was read by the secrets rules as hex,
//! in which no rule reads a secret: a credential in either reached the downstream. Both now
//! get the span attributes' policy (`llmtel::police_attributes`, `llmtel::redact`).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use llmtel_collector::Collector;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};

/// The attributes' text, bytes values read as UTF-8 (their `Debug` shows numbers, in which
/// no secret would be found).
fn text(kvs: &[KeyValue]) -> String {
    fn value(v: &AnyValue, out: &mut String) {
        match &v.value {
            Some(any_value::Value::BytesValue(b)) => out.push_str(&String::from_utf8_lossy(b)),
            Some(any_value::Value::ArrayValue(a)) => a.values.iter().for_each(|v| value(v, out)),
            Some(any_value::Value::KvlistValue(l)) => out.push_str(&text(&l.values)),
            other => out.push_str(&format!("{other:?}")),
        }
        out.push(' ');
    }
    let mut out = String::new();
    for kv in kvs {
        out.push_str(&kv.key);
        out.push('=');
        if let Some(v) = &kv.value {
            value(v, &mut out);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scopes_credentials_never_reach_the_downstream() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();
    let mut req = request("svc", 5, vec![("scoped".into(), chat_call("gpt-4o", None))]);
    req.resource_spans[0].scope_spans[0].scope = Some(InstrumentationScope {
        name: "acme.sdk https://u:hunter2-SCOPENAME@example.com/".into(),
        version: "1.2.3 Bearer sk-live-SCOPEVERSION".into(),
        attributes: vec![
            s("acme.api_key", "sk-live-SCOPEKEY"),
            s(
                "http.request.header.authorization",
                "Bearer abc-SCOPEHEADER",
            ),
            s("acme.endpoint", "https://h/v1?key=SCOPEINURL"),
            s("acme.note", "kept as it is"),
            kv(
                "acme.blob",
                any_value::Value::BytesValue(b"Authorization: Bearer sk-live-SCOPEBYTES".to_vec()),
            ),
        ],
        dropped_attributes_count: 1,
    });
    post_protobuf(&collector, req).await;
    receiver.wait_for("scoped").await;
    let scope = receiver.scopes.lock().unwrap()[0]
        .clone()
        .expect("the scope is kept");
    let all = format!("{scope:?} {}", text(&scope.attributes));
    for secret in [
        "hunter2",
        "SCOPEVERSION",
        "SCOPEKEY",
        "SCOPEHEADER",
        "SCOPEINURL",
        "SCOPEBYTES",
    ] {
        assert!(!all.contains(secret), "{secret} was forwarded: {all}");
    }
    assert!(scope.name.starts_with("acme.sdk "), "{all}");
    assert!(scope.version.starts_with("1.2.3 Bearer "), "{all}");
    assert!(
        scope.attributes.iter().any(|kv| kv.key == "acme.note")
            && scope.attributes.iter().any(|kv| kv.key == "acme.endpoint")
            && scope.attributes.iter().any(|kv| kv.key == "acme.blob"),
        "values with a secret are redacted, the rest kept: {all}"
    );
    assert_eq!(
        scope.dropped_attributes_count, 3,
        "the two credential attributes removed are counted: {all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_a_bytes_value_never_reaches_the_downstream() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();
    let bytes = |v: &[u8]| any_value::Value::BytesValue(v.to_vec());
    let mut attributes = chat_call("gpt-4o", None);
    attributes.push(kv("app.header", bytes(b"Bearer sk-live-SPANBYTES123")));
    // Not UTF-8 around it: still read.
    attributes.push(kv("app.raw", bytes(b"\xff\xfe x-api-key: RAWBYTESKEY\xff")));
    // Binary with no secret: forwarded as it came.
    attributes.push(kv("app.binary", bytes(&[0, 1, 0xfe, 0xff])));
    let mut req = request("svc", 6, vec![("bytes".into(), attributes)]);
    req.resource_spans[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(kv("deploy.blob", bytes(b"token=RESOURCEBYTES")));
    post_protobuf(&collector, req).await;
    let (resource, span) = receiver.wait_for("bytes").await;
    let all = format!("{} {}", text(&resource), text(&span.attributes));
    for secret in ["SPANBYTES", "RAWBYTESKEY", "RESOURCEBYTES"] {
        assert!(!all.contains(secret), "{secret} was forwarded: {all}");
    }
    assert_eq!(
        attr(&span, "app.binary"),
        Some(&bytes(&[0, 1, 0xfe, 0xff])),
        "bytes without a secret are forwarded as they came"
    );
    assert!(attr(&span, "app.header").is_some(), "redacted, not dropped");
}
