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
