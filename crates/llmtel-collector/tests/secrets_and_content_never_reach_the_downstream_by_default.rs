//! Credentials never leave the collector, and prompt/response content only when the
//! collector's config opts in: the library's policy, applied to spans from anywhere.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use llmtel_collector::Collector;

fn leaky_span() -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.request.model", "gpt-4o"),
        i("gen_ai.usage.input_tokens", 10),
        i("gen_ai.usage.output_tokens", 10),
        s("http.request.header.authorization", "Bearer sk-live-SECRET"),
        s("openai.api_key", "sk-live-SECRET"),
        s(
            "gen_ai.input.messages",
            r#"[{"role":"user","content":"my PRIVATE prompt"}]"#,
        ),
        s("input.value", "my PRIVATE prompt"),
    ]
}

async fn post(collector: &Collector, name: &str) {
    post_protobuf(
        collector,
        request("svc", 3, vec![(name.into(), leaky_span())]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_content_are_removed_by_default() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();
    post(&collector, "leaky").await;
    let (_, span) = receiver.wait_for("leaky").await;
    let all = format!("{span:?}");
    assert!(!all.contains("SECRET"), "a credential was forwarded: {all}");
    assert!(!all.contains("PRIVATE"), "content was forwarded: {all}");
    assert!(attr(&span, "gen_ai.usage.cost").is_some(), "still priced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_is_forwarded_when_the_config_opts_in_but_credentials_never_are() {
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(
        config(downstream).with_content_capture(llmtel::ContentCapture::enabled()),
    )
    .await
    .unwrap();
    post(&collector, "leaky").await;
    let (_, span) = receiver.wait_for("leaky").await;
    let all = format!("{span:?}");
    assert!(!all.contains("SECRET"), "a credential was forwarded: {all}");
    assert!(all.contains("PRIVATE"), "opted-in content is kept: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_on_the_resource_and_on_span_links_are_removed_too() {
    use opentelemetry_proto::tonic::trace::v1::span::Link;
    let (receiver, downstream, _rx) = Receiver::start().await;
    let collector = Collector::start(config(downstream)).await.unwrap();
    let mut req = request("svc", 4, vec![("linked".into(), leaky_span())]);
    let rs = &mut req.resource_spans[0];
    let resource = rs.resource.as_mut().unwrap();
    resource
        .attributes
        .push(s("deployment.api_key", "sk-live-RESOURCE"));
    resource.attributes.push(s(
        "deployment.endpoint",
        "https://u:hunter2-PASSWORD@example.com/?api_key=sk-live-INURL",
    ));
    rs.scope_spans[0].spans[0].links.push(Link {
        trace_id: vec![9; 16],
        span_id: vec![9; 8],
        attributes: vec![
            s("link.authorization", "Bearer sk-live-LINK"),
            s(
                "link.note",
                "called with key sk-proj-abcdefghijklmnopqrstuvwxyzLINKVALUE",
            ),
            s("input.value", "a PRIVATE prompt on a link"),
        ],
        ..Default::default()
    });
    post_protobuf(&collector, req).await;
    let (resource, span) = receiver.wait_for("linked").await;
    let all = format!("{resource:?} {span:?}");
    for secret in [
        "RESOURCE",
        "INURL",
        "hunter2",
        "sk-live-LINK",
        "LINKVALUE",
        "PRIVATE",
    ] {
        assert!(!all.contains(secret), "{secret} was forwarded: {all}");
    }
    assert_eq!(span.links.len(), 1, "the link itself is kept");
    assert!(
        resource.iter().any(|kv| kv.key == "service.name"),
        "the rest of the resource is kept: {resource:?}"
    );
    assert!(
        resource.iter().any(|kv| kv.key == "deployment.endpoint"),
        "a value with a secret in it is redacted, not dropped: {resource:?}"
    );
}
