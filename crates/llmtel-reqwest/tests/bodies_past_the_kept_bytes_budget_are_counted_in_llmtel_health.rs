//! What the body reader cannot keep whole because its budget for the bytes kept per call
//! in flight (`MAX_KEPT_BYTES`, 256 MiB) is in use is a loss like any other: counted where
//! every drop is visible, `llmtel::health()` (`kept_over_budget`), not only in
//! `ReaderStats::over_budget`, which nothing exported.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fixtures::*;
use common::*;
use tokio::sync::Notify;

const PREFIX: &str = r#"{"id":"chatcmpl-big","object":"chat.completion","created":1741569952,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":""#;
const SUFFIX: &str = r#""},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":9,"total_tokens":16}}"#;
/// Past 8 MiB a JSON body's buffer doubles to its 16 MiB cap: 16 calls holding that many
/// fill the 256 MiB budget.
const HELD_PART: usize = 9 * 1024 * 1024;

/// A JSON answer whose first 9 MiB (and more) arrive, then nothing until `go`: the call
/// holds its buffer meanwhile. Big chunks, then small ones that make the caller's side hand
/// everything read so far to the body reader.
fn held_answer(go: Arc<Notify>) -> (Reply, usize) {
    let mut steps = vec![Step::Bytes(PREFIX.as_bytes().to_vec())];
    let big = vec![b'a'; 256 * 1024];
    for _ in 0..HELD_PART / big.len() {
        steps.push(Step::Bytes(big.clone()));
    }
    for _ in 0..40 {
        steps.push(Step::Bytes(vec![b'a'; 4 * 1024]));
    }
    let first_part = PREFIX.len() + HELD_PART + 40 * 4 * 1024;
    steps.push(Step::Wait(go));
    steps.push(Step::Bytes(SUFFIX.as_bytes().to_vec()));
    let reply = Reply {
        status: 200,
        content_type: "application/json",
        steps,
        chunked: true,
    };
    (reply, first_part)
}

#[test]
fn a_body_not_kept_whole_for_the_budget_is_counted_in_llmtel_health() {
    const CALLS: usize = 18;
    let stats_before = llmtel_reqwest::reader_stats();
    let health_before = llmtel::health();
    let counted = std::sync::Mutex::new(None);
    let p = run_async(|| async {
        let gos: Vec<Arc<Notify>> = (0..CALLS).map(|_| Arc::new(Notify::new())).collect();
        let mut replies = Vec::new();
        let mut first_part = 0;
        for go in &gos {
            let (reply, n) = held_answer(go.clone());
            replies.push(reply);
            first_part = n;
        }
        let server = Replay::start(replies).await;
        let c = client(middleware(&server));
        let mut open = Vec::new();
        for _ in 0..CALLS {
            let mut resp = c
                .post(server.url("/openai/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(OPENAI_CHAT_REQUEST)
                .send()
                .await
                .unwrap();
            let mut read = 0;
            while read < first_part {
                read += resp.chunk().await.unwrap().expect("more body").len();
            }
            open.push(resp);
            if llmtel_reqwest::reader_stats().over_budget > stats_before.over_budget {
                break;
            }
        }
        // The body reader decodes on its own thread: wait until it has seen the budget full.
        let deadline = Instant::now() + Duration::from_secs(10);
        while llmtel_reqwest::reader_stats().over_budget == stats_before.over_budget
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stats = llmtel_reqwest::reader_stats();
        *counted.lock().unwrap() = Some((
            stats.over_budget - stats_before.over_budget,
            llmtel::health().kept_over_budget - health_before.kept_over_budget,
            open.len(),
        ));
        for go in &gos {
            go.notify_one();
        }
        for mut resp in open {
            while resp.chunk().await.unwrap().is_some() {}
        }
    });
    let (over, in_health, calls) = counted.into_inner().unwrap().unwrap();
    assert!(over >= 1, "the budget was never full ({calls} calls held)");
    assert_eq!(
        in_health, over,
        "every body not kept whole is counted in llmtel::health().kept_over_budget"
    );
    // The calls themselves are whole: each priced from its usage, the one past the budget
    // from its tail, noted.
    let spans: Vec<_> = p
        .spans()
        .into_iter()
        .filter(|s| attr(s, "gen_ai.operation.name").is_some())
        .collect();
    assert_eq!(spans.len(), calls);
    for s in &spans {
        assert_eq!(i64_attr(s, "gen_ai.usage.output_tokens"), 9);
    }
    assert!(
        spans.iter().any(|s| attr(s, "llmtel.parse_error").is_some()
            && str_attr(s, "llmtel.parse_error").contains("budget for kept bytes")),
        "{spans:?}"
    );
}
