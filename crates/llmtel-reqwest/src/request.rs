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
        Api::OpenAiCompletions | Api::OpenAiImages => "prompt",
        Api::OpenAiSpeech => "input",
        Api::OpenAiTranscription => return None,
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

/// The request parameters, read without building the whole JSON tree: the prompt (messages,
/// contents, input) is skipped, not parsed into values, so a long prompt costs one scan.
/// `None` when the body is not a JSON object; a body whose parameters have unusual types
/// (a number as a string, say) is read by [`RequestInfo::from_json`] instead.
pub fn request_info(api: Api, body: &[u8]) -> Option<RequestInfo> {
    match serde_json::from_slice::<Params<'_>>(body) {
        Ok(p) => Some(p.into_info(api)),
        Err(_) => serde_json::from_slice::<Value>(body)
            .ok()
            .filter(Value::is_object)
            .map(|v| RequestInfo::from_json(api, &v)),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct GenerationConfig {
    temperature: Option<f64>,
    #[serde(alias = "top_p")]
    #[serde(rename = "topP")]
    top_p: Option<f64>,
    #[serde(alias = "top_k")]
    #[serde(rename = "topK")]
    top_k: Option<f64>,
    #[serde(alias = "max_output_tokens")]
    #[serde(rename = "maxOutputTokens")]
    max_tokens: Option<i64>,
    seed: Option<i64>,
    #[serde(alias = "candidate_count")]
    #[serde(rename = "candidateCount")]
    choice_count: Option<i64>,
    #[serde(rename = "frequencyPenalty")]
    frequency_penalty: Option<f64>,
    #[serde(rename = "presencePenalty")]
    presence_penalty: Option<f64>,
    #[serde(rename = "stopSequences")]
    stop_sequences: Option<Stop>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<Option<String>>),
}

impl Stop {
    fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v.into_iter().flatten().collect(),
        }
    }
}

/// The parameters of any provider's request body; every other key is skipped.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Params<'a> {
    #[serde(borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    stream: Option<bool>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<f64>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    max_output_tokens: Option<i64>,
    seed: Option<i64>,
    n: Option<i64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    stop: Option<Stop>,
    stop_sequences: Option<Stop>,
    stream_options: Option<StreamOptions>,
    #[serde(rename = "generationConfig")]
    generation_config: Option<GenerationConfig>,
}

impl Params<'_> {
    fn into_info(self, api: Api) -> RequestInfo {
        let mut info = RequestInfo {
            model: self.model.map(std::borrow::Cow::into_owned),
            stream: self.stream.unwrap_or(false),
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            max_tokens: self
                .max_tokens
                .or(self.max_completion_tokens)
                .or(self.max_output_tokens),
            seed: self.seed,
            choice_count: self.n,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            stop_sequences: self
                .stop
                .or(self.stop_sequences)
                .map(Stop::into_vec)
                .unwrap_or_default(),
            include_usage: self
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
        };
        if matches!(api, Api::GeminiGenerate | Api::GeminiStreamGenerate) {
            info.stream = api == Api::GeminiStreamGenerate;
            if let Some(g) = self.generation_config {
                info.temperature = g.temperature;
                info.top_p = g.top_p;
                info.top_k = g.top_k;
                info.max_tokens = g.max_tokens;
                info.seed = g.seed;
                info.choice_count = g.choice_count;
                info.frequency_penalty = g.frequency_penalty;
                info.presence_penalty = g.presence_penalty;
                info.stop_sequences = g.stop_sequences.map(Stop::into_vec).unwrap_or_default();
            }
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skipping_reader_agrees_with_the_json_tree() {
        let bodies: &[(Api, &str)] = &[
            (
                Api::OpenAiChat,
                r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi \"there\" \u00e9"}],"temperature":0.2,"top_p":1,"max_completion_tokens":512,"seed":7,"n":2,"frequency_penalty":0.5,"presence_penalty":-0.5,"stop":["\n\n",null,"END"],"stream":true,"stream_options":{"include_usage":true}}"#,
            ),
            (
                Api::OpenAiChat,
                r#"{"model":"gpt-4o-mini","stop":"***","max_tokens":16,"messages":[]}"#,
            ),
            (
                Api::OpenAiResponses,
                r#"{"model":"o3","input":[{"role":"user","content":[{"type":"input_text","text":"x"}]}],"max_output_tokens":2048}"#,
            ),
            (
                Api::AnthropicMessages,
                r#"{"model":"claude-sonnet-4-5","max_tokens":1024,"top_k":40,"stop_sequences":["Human:"],"system":"be brief","messages":[{"role":"user","content":"Hello"}],"stream":true}"#,
            ),
            (
                Api::GeminiStreamGenerate,
                r#"{"contents":[{"role":"user","parts":[{"text":"Hi"}]}],"generationConfig":{"temperature":0.9,"topP":0.8,"topK":20,"maxOutputTokens":300,"candidateCount":1,"stopSequences":["x"],"seed":3,"frequencyPenalty":0.1,"presencePenalty":0.2}}"#,
            ),
            (
                Api::GeminiGenerate,
                r#"{"contents":[],"generationConfig":{"top_p":0.5,"max_output_tokens":10}}"#,
            ),
            // Unusual types: read by the tree instead, same answers.
            (
                Api::OpenAiChat,
                r#"{"model":"gpt-4o","temperature":"0.2","max_tokens":100.0,"stop":[1,"a"]}"#,
            ),
            (Api::OpenAiChat, r#"{"model":7,"n":"2"}"#),
            (Api::OpenAiChat, r#"{"model":"a","model":"b"}"#),
            (Api::OpenAiChat, r#"{}"#),
        ];
        for (api, body) in bodies {
            let tree: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                request_info(*api, body.as_bytes()),
                Some(RequestInfo::from_json(*api, &tree)),
                "{body}"
            );
        }
        assert_eq!(request_info(Api::OpenAiChat, b"[1,2]"), None);
        assert_eq!(request_info(Api::OpenAiChat, b"{not json"), None);
    }
}
