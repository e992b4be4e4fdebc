//! The LLM judge and the embeddings evaluator speak https with the default TLS backend
//! (rustls): against a real local TLS server whose certificate comes from a private CA, they
//! succeed once `with_ca_file` trusts that CA, and fail with a clear error (no panic, no key in
//! it) when it does not. A CA file that cannot be read is an error at `build()`.
#![cfg(all(feature = "judge", feature = "embeddings"))]
#![allow(clippy::unwrap_used)]

mod openai_standin;
#[path = "../../llmtel-alert/tests/support/tls.rs"]
mod tls;

use std::time::Duration;

use llmtel_quality::eval::{EmbeddingRelevance, EndpointConfigError, LlmJudge};
use llmtel_quality::{EvalInput, Evaluator};
use openai_standin::{Behaviour, StandIn};
use tls::{TestCa, TlsFront};

const KEY: &str = "sk-test-never-shown-5b1f0c7e9a2d";

fn input() -> EvalInput {
    EvalInput::new("Go to Settings > Security and turn on two-factor authentication.")
        .with_question("How do I enable two-factor authentication?")
}

fn run(e: &dyn Evaluator) -> Result<Option<llmtel_quality::Evaluation>, llmtel_quality::EvalError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let i = input();
    rt.block_on(e.try_evaluate(&i))
}

/// An https base URL in front of a stand-in, with a certificate of `ca`.
fn https_standin(ca: &TestCa, behaviour: Behaviour) -> (String, TlsFront) {
    let plain = StandIn::start(behaviour);
    let front = TlsFront::start(ca, plain.base.trim_start_matches("http://"));
    (front.url("/v1"), front)
}

#[test]
fn the_judge_and_embeddings_reach_an_https_endpoint_trusting_a_custom_ca() {
    let ca = TestCa::new("remote-evaluators");
    let (judge_base, judge_front) = https_standin(
        &ca,
        Behaviour::Fixed {
            content: r#"{"score": 5, "label": "helpful", "explanation": "Gives the steps."}"#
                .into(),
            usage: (300, 0, 20, 0),
        },
    );
    let judge = LlmJudge::builder(&judge_base, "gpt-4o-mini")
        .with_api_key(KEY)
        .with_ca_file(&ca.file)
        .with_http_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let verdict = run(&judge)
        .expect("the judge answers over https")
        .expect("a verdict");
    assert!(verdict.score > 0.9, "{verdict:?}");
    assert!(
        judge_front
            .handshakes
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1
    );

    let (emb_base, _emb_front) = https_standin(&ca, Behaviour::Replay(Vec::new()));
    let embeddings = EmbeddingRelevance::builder(&emb_base, "text-embedding-3-small")
        .with_api_key(KEY)
        .with_ca_file(&ca.file)
        .with_http_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let relevance = run(&embeddings)
        .expect("embeddings answer over https")
        .expect("a score");
    assert!((0.0..=1.0).contains(&relevance.score), "{relevance:?}");
}

#[test]
fn an_untrusted_certificate_is_a_clear_error_without_the_key() {
    let ca = TestCa::new("remote-untrusted");
    let (base, front) = https_standin(&ca, Behaviour::Replay(Vec::new()));
    // No `with_ca_file`: the platform's roots do not know the test CA.
    let judge = LlmJudge::builder(&base, "gpt-4o-mini")
        .with_api_key(KEY)
        .with_http_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let err = run(&judge).unwrap_err().to_string();
    assert!(!err.contains(KEY), "{err}");
    assert!(
        err.contains("127.0.0.1"),
        "the error names the endpoint: {err}"
    );
    // The server counts the refused handshake on its own task, which may run after the
    // client has returned its error.
    assert!(
        front.wait_failed_handshakes(1) >= 1,
        "the stand-in never saw the refused handshake"
    );
}

#[test]
fn a_ca_file_that_cannot_be_read_is_an_error_at_build() {
    let missing = std::env::temp_dir().join("llmtel-no-such-ca-file.pem");
    let err = LlmJudge::builder("https://127.0.0.1:9/v1", "gpt-4o-mini")
        .with_ca_file(&missing)
        .build()
        .unwrap_err();
    assert!(matches!(err, EndpointConfigError::CaFile { .. }), "{err:?}");
    assert!(err.to_string().contains("PEM"), "{err}");
    let not_pem = std::env::temp_dir().join(format!("llmtel-not-a-ca-{}.pem", std::process::id()));
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let err = EmbeddingRelevance::builder("https://127.0.0.1:9/v1", "text-embedding-3-small")
        .with_ca_file(&not_pem)
        .build()
        .unwrap_err();
    assert!(matches!(err, EndpointConfigError::CaFile { .. }), "{err:?}");
    let _ = std::fs::remove_file(&not_pem);
}
