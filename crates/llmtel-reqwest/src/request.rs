//! Request parameters read from the JSON body of an LLM call.

use serde_json::Value;

use crate::route::Api;

/// What the request asked for (`gen_ai.request.*`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RequestInfo {
    /// `model` (OpenAI, Anthropic), or the model of a Gemini / Azure path.
    pub model: Option<String>,
    /// Whether a streamed response was asked for.
    pub stream: bool,
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p` / `topP`.
    pub top_p: Option<f64>,
    /// `top_k` / `topK`.
    pub top_k: Option<f64>,
    /// `max_tokens`, `max_completion_tokens`, `max_output_tokens`, `maxOutputTokens`.
    pub max_tokens: Option<i64>,
    /// `seed`.
    pub seed: Option<i64>,
    /// `n` / `candidateCount`.
    pub choice_count: Option<i64>,
    /// `frequency_penalty`.
    pub frequency_penalty: Option<f64>,
    /// `presence_penalty`.
    pub presence_penalty: Option<f64>,
    /// `stop` / `stop_sequences` / `stopSequences`.
    pub stop_sequences: Vec<String>,
    /// Whether an OpenAI stream already asks for usage (`stream_options.include_usage`).
    pub include_usage: bool,
}

fn f(v: &Value, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_f64))
}

fn i(v: &Value, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_i64))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

impl RequestInfo {
    /// Reads the parameters from a parsed request body.
    pub fn from_json(api: Api, body: &Value) -> Self {
        let mut info = RequestInfo {
            model: body.get("model").and_then(Value::as_str).map(str::to_owned),
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            temperature: f(body, &["temperature"]),
            top_p: f(body, &["top_p"]),
            top_k: f(body, &["top_k"]),
            max_tokens: i(
                body,
                &["max_tokens", "max_completion_tokens", "max_output_tokens"],
            ),
            seed: i(body, &["seed"]),
            choice_count: i(body, &["n"]),
            frequency_penalty: f(body, &["frequency_penalty"]),
            presence_penalty: f(body, &["presence_penalty"]),
            stop_sequences: strings(body.get("stop").or_else(|| body.get("stop_sequences"))),
            include_usage: body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        if matches!(api, Api::GeminiGenerate | Api::GeminiStreamGenerate) {
            info.stream = api == Api::GeminiStreamGenerate;
            if let Some(g) = body.get("generationConfig") {
                info.temperature = f(g, &["temperature"]);
                info.top_p = f(g, &["topP", "top_p"]);
                info.top_k = f(g, &["topK", "top_k"]);
                info.max_tokens = i(g, &["maxOutputTokens", "max_output_tokens"]);
                info.seed = i(g, &["seed"]);
                info.choice_count = i(g, &["candidateCount", "candidate_count"]);
                info.frequency_penalty = f(g, &["frequencyPenalty"]);
                info.presence_penalty = f(g, &["presencePenalty"]);
                info.stop_sequences = strings(g.get("stopSequences"));
            }
        }
        info
    }
}

/// The prompt's text (messages, system, instructions, input), for usage estimates: string
/// contents and `text` parts, joined with newlines.
pub fn prompt_text(api: Api, body: &Value) -> String {
    let mut out = String::new();
    let mut push = |s: &str| {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(s);
    };
    match api {
        Api::GeminiGenerate | Api::GeminiStreamGenerate => {
            for key in ["systemInstruction", "system_instruction"] {
                collect_text(body.get(key), &mut push);
            }
            collect_text(body.get("contents"), &mut push);
        }
        _ => {
            for key in ["system", "instructions", "messages", "input", "prompt"] {
                collect_text(body.get(key), &mut push);
            }
        }
    }
    out
}

/// The JSON of the prompt messages, for opt-in content capture (the provider's shape).
pub fn input_messages_json(api: Api, body: &Value) -> Option<String> {
    let key = match api {
        Api::GeminiGenerate | Api::GeminiStreamGenerate => "contents",
        Api::OpenAiResponses | Api::OpenAiEmbeddings => "input",
        Api::OpenAiCompletions => "prompt",
        _ => "messages",
    };
    body.get(key).map(Value::to_string)
}

fn collect_text(v: Option<&Value>, push: &mut impl FnMut(&str)) {
    match v {
        Some(Value::String(s)) => push(s),
        Some(Value::Array(a)) => {
            for item in a {
                collect_text(Some(item), push);
            }
        }
        Some(Value::Object(o)) => {
            if let Some(Value::String(t)) = o.get("text") {
                push(t);
            }
            for key in ["content", "parts"] {
                collect_text(o.get(key), push);
            }
        }
        _ => {}
    }
}
