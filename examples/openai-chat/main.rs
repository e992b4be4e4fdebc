//! One chat completion through the llmtel reqwest middleware: the call becomes a GenAI span
//! with usage and exact cost, printed on the console (or exported over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
//!
//! ```sh
//! OPENAI_API_KEY=sk-... cargo run -p openai-chat --example openai-chat
//! # Ollama (any key value; the model must be pulled):
//! OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_API_KEY=ollama OPENAI_MODEL=llama3.2 \
//!     cargo run -p openai-chat --example openai-chat
//! ```

use std::process::ExitCode;

const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openai-chat: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), String> {
    // Like the official SDKs: OPENAI_API_KEY is required, OPENAI_BASE_URL optional.
    let Some(key) = std::env::var("OPENAI_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
    else {
        return Err("OPENAI_API_KEY is not set. Set it to your OpenAI API key \
             (for Ollama or another local OpenAI-compatible server, any value, e.g. \
             OPENAI_API_KEY=ollama, together with OPENAI_BASE_URL=http://localhost:11434/v1)."
            .to_owned());
    };
    let base = std::env::var("OPENAI_BASE_URL")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    let base = base.trim_end_matches('/').to_owned();
    let model = std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".to_owned());
    let provider = if base == DEFAULT_BASE_URL {
        "openai"
    } else if base.contains(":11434") {
        "ollama"
    } else {
        "openai_compatible"
    };

    let _guard = llmtel::init().map_err(|e| format!("cannot start llmtel: {e}"))?;
    let middleware = llmtel_reqwest::LlmMiddleware::new()
        .with_openai_compatible(&base, provider)
        .map_err(|e| format!("OPENAI_BASE_URL: {e}"))?;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();

    let body = serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You answer in one sentence."},
            {"role": "user", "content": "What does OpenTelemetry do?"}
        ],
        "max_tokens": 100,
    });
    let response = client
        .post(format!("{base}/chat/completions"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("request to {base} failed: {e}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("reading the response failed: {e}"))?;
    if !status.is_success() {
        return Err(format!("{base} answered {status}: {text}"));
    }
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let answer = json
        .pointer("/choices/0/message/content")
        .and_then(|c| c.as_str())
        .unwrap_or("(no content)");
    println!("{answer}");
    Ok(()) // the guard flushes the span (console line or OTLP) on drop
}
