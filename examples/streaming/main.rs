//! A streamed Anthropic Messages call through the llmtel reqwest middleware. The text is
//! printed as it arrives (the middleware passes every chunk through unbuffered); the span
//! gets the time to first chunk, the usage from `message_start` + `message_delta` and the
//! cost when the stream ends.
//!
//! ```sh
//! ANTHROPIC_API_KEY=sk-ant-... cargo run -p streaming --example streaming
//! ```

use std::io::Write as _;
use std::process::ExitCode;

const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streaming: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), String> {
    let Some(key) = std::env::var("ANTHROPIC_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
    else {
        return Err(
            "ANTHROPIC_API_KEY is not set. Set it to your Anthropic API key \
             (ANTHROPIC_BASE_URL points the example at another Messages endpoint)."
                .to_owned(),
        );
    };
    let base = std::env::var("ANTHROPIC_BASE_URL")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    let base = base.trim_end_matches('/').to_owned();
    let model =
        std::env::var("ANTHROPIC_MODEL").unwrap_or_else(|_| "claude-sonnet-4-20250514".to_owned());

    let _guard = llmtel::init().map_err(|e| format!("cannot start llmtel: {e}"))?;
    let middleware = llmtel_reqwest::LlmMiddleware::new()
        .with_anthropic_base_url(&base)
        .map_err(|e| format!("ANTHROPIC_BASE_URL: {e}"))?;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();

    let body = serde_json::json!({
        "model": model,
        "max_tokens": 300,
        "stream": true,
        "messages": [{"role": "user", "content": "Write a haiku about tracing."}],
    });
    let mut response = client
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("request to {base} failed: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(format!("{base} answered {status}: {text}"));
    }
    // A minimal SSE reader for the demo: print each text delta as it arrives.
    // Bytes, split into events before decoding: a character split across two network chunks
    // stays whole.
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("the stream failed: {e}"))?
    {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            for line in String::from_utf8_lossy(&event).lines() {
                let Some(data) = line.strip_prefix("data: ") else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
                    continue;
                };
                if let Some(t) = v.pointer("/delta/text").and_then(|t| t.as_str()) {
                    print!("{t}");
                    let _ = std::io::stdout().flush();
                }
            }
        }
    }
    println!();
    Ok(()) // the span ended with the stream; the guard flushes it on drop
}
