//! A local stand-in for an OpenAI-compatible API (chat completions and embeddings), for the
//! remote evaluators' tests. Payload shapes follow the OpenAI API reference (chat completion
//! object: id, object, created, model, choices[].message, finish_reason, usage with
//! prompt_tokens_details.cached_tokens and completion_tokens_details.reasoning_tokens;
//! embeddings list: object, data[].{object, index, embedding}, model, usage).
//!
//! - Chat: the judge's reply is looked up among recorded fixtures by the question **and** the
//!   answer found in the request's user message (so a prompt that loses either gets a 400),
//!   or is one fixed reply.
//! - Embeddings: real, deterministic vectors: content words (stop words dropped, a plural `s`
//!   stripped) and their character trigrams hashed into 256 dimensions, L2-normalised.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One recorded judge reply: found when the request's user message holds both texts.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub question: String,
    pub answer: String,
    pub reply: String,
}

/// What the stand-in answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Chat: the fixture matching the request; embeddings: hashed vectors.
    Replay(Vec<Fixture>),
    /// Chat: this reply content with this usage (prompt, cached, completion, reasoning).
    Fixed {
        content: String,
        usage: (u64, u64, u64, u64),
    },
    /// This status with an OpenAI error body.
    Status(u16),
    /// 200 with this body, as is.
    Raw(&'static str),
    /// Wait this long, then answer as `Replay` with no fixtures (a 400).
    Slow(Duration),
}

/// A request the stand-in received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

struct Shared {
    behaviour: Behaviour,
    received: Mutex<Vec<Received>>,
}

/// The running stand-in (it lives until the test process exits).
pub struct StandIn {
    pub base: String,
    shared: Arc<Shared>,
}

impl StandIn {
    pub fn start(behaviour: Behaviour) -> StandIn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            behaviour,
            received: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .with_state(shared.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(l, app).await.unwrap();
            });
        });
        StandIn { base, shared }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }
}

/// A base URL where nothing listens (a port just released).
pub fn dead_base() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

fn record(s: &Shared, path: &str, headers: &HeaderMap, body: &Value) {
    s.received.lock().unwrap().push(Received {
        path: path.into(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
    });
}

fn error(status: u16, message: &str, kind: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// Answers that are not the normal replay (status, raw body, slowness).
async fn special(b: &Behaviour) -> Option<Response> {
    match b {
        Behaviour::Status(code) => Some(match code {
            401 => error(401, "Incorrect API key provided.", "invalid_request_error"),
            429 => error(429, "Rate limit reached for requests", "requests"),
            c => error(
                *c,
                "The server had an error while processing your request.",
                "server_error",
            ),
        }),
        Behaviour::Raw(body) => Some(
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                *body,
            )
                .into_response(),
        ),
        Behaviour::Slow(d) => {
            tokio::time::sleep(*d).await;
            Some(error(
                400,
                "slow stand-in has no reply",
                "invalid_request_error",
            ))
        }
        _ => None,
    }
}

fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

async fn chat(State(s): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return error(
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
        );
    };
    record(&s, "/v1/chat/completions", &headers, &body);
    if let Some(r) = special(&s.behaviour).await {
        return r;
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let system = messages
        .iter()
        .find(|m| m["role"] == "system")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let user = messages
        .iter()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    if !system.contains("\"score\"") {
        return error(400, "the rubric asks for no score", "invalid_request_error");
    }
    let (content, usage) = match &s.behaviour {
        Behaviour::Fixed { content, usage } => (content.clone(), *usage),
        Behaviour::Replay(fixtures) => {
            let Some(f) = fixtures
                .iter()
                .find(|f| user.contains(f.question.as_str()) && user.contains(f.answer.as_str()))
            else {
                return error(
                    400,
                    "no recorded reply for this prompt",
                    "invalid_request_error",
                );
            };
            let prompt = tokens(system) + tokens(user) + 7;
            (f.reply.clone(), (prompt, 0, tokens(&f.reply), 0))
        }
        _ => unreachable!(),
    };
    let (prompt, cached, completion, reasoning) = usage;
    let model = body["model"].as_str().unwrap_or("gpt-4o-mini");
    let mut h = DefaultHasher::new();
    user.hash(&mut h);
    axum::Json(json!({
        "id": format!("chatcmpl-{:016x}", h.finish()),
        "object": "chat.completion",
        "created": 1_741_570_283,
        "model": format!("{model}-2024-07-18"),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1"
    }))
    .into_response()
}

const STOP: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "if", "in", "is", "it", "my", "of", "on", "or", "our", "the", "this", "to", "we", "what",
    "when", "where", "which", "who", "why", "will", "with", "you", "your", "there", "that", "it's",
    "i'm", "me", "after", "up", "any", "all", "have", "has", "not", "get",
];

/// The stand-in's embedding: content words and their character trigrams, hashed into 256
/// dimensions (words weigh 2, trigrams 1), L2-normalised.
pub fn embed(text: &str) -> Vec<f64> {
    let mut v = vec![0.0f64; 256];
    let mut add = |feature: &str, w: f64| {
        let mut h = DefaultHasher::new();
        feature.hash(&mut h);
        let x = h.finish();
        let sign = if x & 1 == 0 { 1.0 } else { -1.0 };
        v[((x >> 1) % 256) as usize] += sign * w;
    };
    for raw in text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
    {
        let w = raw.to_lowercase();
        if STOP.contains(&w.as_str()) {
            continue;
        }
        let w = if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
            w[..w.len() - 1].to_owned()
        } else {
            w
        };
        add(&w, 2.0);
        let padded: Vec<char> = format!(" {w} ").chars().collect();
        for t in padded.windows(3) {
            add(&t.iter().collect::<String>(), 1.0);
        }
    }
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n > 0.0 {
        for x in &mut v {
            *x /= n;
        }
    }
    v
}

async fn embeddings(State(s): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return error(
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
        );
    };
    record(&s, "/v1/embeddings", &headers, &body);
    if let Some(r) = special(&s.behaviour).await {
        return r;
    }
    let inputs: Vec<String> = match &body["input"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => return error(400, "'input' is required", "invalid_request_error"),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embed(t)}))
        .collect();
    let prompt: u64 = inputs
        .iter()
        .map(|t| t.split_whitespace().count() as u64)
        .sum();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "model": body["model"].as_str().unwrap_or("text-embedding-3-small"),
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt}
    }))
    .into_response()
}
