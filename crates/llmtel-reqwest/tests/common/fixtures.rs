//! Provider payloads, written from the providers' API references (shapes of the OpenAI chat
//! completions, Responses and embeddings objects and chunks, Anthropic Messages and its
//! stream events, Gemini GenerateContentResponse with usageMetadata).
#![allow(dead_code)]

// ---------------- OpenAI chat completions ----------------

pub const OPENAI_CHAT_REQUEST: &str = r#"{"model":"gpt-4o","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise the attached policy."}],"temperature":0.2,"top_p":0.9,"max_tokens":512,"seed":7,"stop":["END"]}"#;

/// 1200 prompt tokens of which 1024 cached; 300 completion tokens.
pub const OPENAI_CHAT_RESPONSE: &str = r#"{
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  "object": "chat.completion",
  "created": 1741570283,
  "model": "gpt-4o-2024-08-06",
  "choices": [
    {
      "index": 0,
      "message": {"role": "assistant", "content": "The policy says refunds are due within 30 days.", "refusal": null, "annotations": []},
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
  },
  "service_tier": "default",
  "system_fingerprint": "fp_fc9f1d7035"
}"#;

pub const OPENAI_STREAM_REQUEST: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello"}],"stream":true,"stream_options":{"include_usage":true}}"#;

pub const OPENAI_STREAM_REQUEST_NO_USAGE: &str =
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello"}],"stream":true}"#;

pub fn openai_chunk(content: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-stream1\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n",
        serde_json::to_string(content).unwrap()
    )
}

pub const OPENAI_STREAM_FIRST: &str = "data: {\"id\":\"chatcmpl-stream1\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n";

pub const OPENAI_STREAM_FINISH: &str = "data: {\"id\":\"chatcmpl-stream1\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n";

/// The `include_usage` chunk: 20 prompt tokens, 5 completion tokens.
pub const OPENAI_STREAM_USAGE: &str = "data: {\"id\":\"chatcmpl-stream1\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":5,\"total_tokens\":25,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n";

pub const DONE: &str = "data: [DONE]\n\n";

pub fn openai_stream(with_usage: bool) -> Vec<String> {
    let mut v = vec![
        OPENAI_STREAM_FIRST.to_owned(),
        openai_chunk("Hello"),
        openai_chunk(" there"),
        openai_chunk("!"),
        OPENAI_STREAM_FINISH.to_owned(),
    ];
    if with_usage {
        v.push(OPENAI_STREAM_USAGE.to_owned());
    }
    v.push(DONE.to_owned());
    v
}

// ---------------- OpenAI Responses ----------------

pub const RESPONSES_REQUEST: &str = r#"{"model":"o4-mini","input":"Plan a three-step migration.","reasoning":{"effort":"medium"},"max_output_tokens":2000}"#;

/// 1000 input (200 cached), 500 output (320 reasoning).
pub const RESPONSES_RESPONSE: &str = r#"{
  "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
  "object": "response",
  "created_at": 1741476542,
  "status": "completed",
  "error": null,
  "incomplete_details": null,
  "model": "o4-mini-2025-04-16",
  "output": [
    {"type": "reasoning", "id": "rs_1", "summary": []},
    {"type": "message", "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e6", "status": "completed", "role": "assistant",
     "content": [{"type": "output_text", "text": "1. Snapshot. 2. Dual-write. 3. Cut over.", "annotations": []}]}
  ],
  "usage": {
    "input_tokens": 1000,
    "input_tokens_details": {"cached_tokens": 200},
    "output_tokens": 500,
    "output_tokens_details": {"reasoning_tokens": 320},
    "total_tokens": 1500
  }
}"#;

pub fn responses_stream() -> Vec<String> {
    vec![
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_stream1\",\"object\":\"response\",\"created_at\":1741290958,\"status\":\"in_progress\",\"model\":\"o4-mini-2025-04-16\",\"output\":[],\"usage\":null}}\n\n".to_owned(),
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"delta\":\"1. Snapshot.\"}\n\n".to_owned(),
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":5,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"delta\":\" 2. Cut over.\"}\n\n".to_owned(),
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"id\":\"resp_stream1\",\"object\":\"response\",\"created_at\":1741290958,\"status\":\"completed\",\"model\":\"o4-mini-2025-04-16\",\"output\":[{\"type\":\"message\",\"id\":\"msg_1\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"1. Snapshot. 2. Cut over.\",\"annotations\":[]}]}],\"usage\":{\"input_tokens\":1000,\"input_tokens_details\":{\"cached_tokens\":200},\"output_tokens\":500,\"output_tokens_details\":{\"reasoning_tokens\":320},\"total_tokens\":1500}}}\n\n".to_owned(),
    ]
}

// ---------------- OpenAI embeddings ----------------

pub const EMBEDDINGS_REQUEST: &str = r#"{"model":"text-embedding-3-small","input":"The food was delicious and the waiter...","encoding_format":"float"}"#;

pub const EMBEDDINGS_RESPONSE: &str = r#"{
  "object": "list",
  "data": [{"object": "embedding", "embedding": [0.0023064255, -0.009327292, -0.0028842222], "index": 0}],
  "model": "text-embedding-3-small",
  "usage": {"prompt_tokens": 8, "total_tokens": 8}
}"#;

// ---------------- Anthropic Messages ----------------

pub const ANTHROPIC_REQUEST: &str = r#"{"model":"claude-sonnet-4-20250514","max_tokens":1024,"temperature":0.5,"top_k":40,"system":[{"type":"text","text":"You answer from the handbook.","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"What is the refund window?"}]}"#;

/// input 50 uncached, 1000 cache writes, 2000 cache reads; 400 output.
pub const ANTHROPIC_RESPONSE: &str = r#"{
  "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-20250514",
  "content": [{"type": "text", "text": "Refunds are accepted within 30 days."}],
  "stop_reason": "end_turn",
  "stop_sequence": null,
  "usage": {
    "input_tokens": 50,
    "cache_creation_input_tokens": 1000,
    "cache_read_input_tokens": 2000,
    "output_tokens": 400,
    "service_tier": "standard"
  }
}"#;

pub const ANTHROPIC_STREAM_REQUEST: &str = r#"{"model":"claude-sonnet-4-20250514","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Hello"}]}"#;

/// message_start: 25 input, 1500 cache reads; message_delta: 120 output (cumulative).
pub fn anthropic_stream() -> Vec<String> {
    vec![
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-20250514\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":1500,\"output_tokens\":1}}}\n\n".to_owned(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_owned(),
        "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_owned(),
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n".to_owned(),
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"! How can I help?\"}}\n\n".to_owned(),
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n".to_owned(),
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":120}}\n\n".to_owned(),
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_owned(),
    ]
}

// ---------------- Gemini ----------------

pub const GEMINI_REQUEST: &str = r#"{"contents":[{"role":"user","parts":[{"text":"Explain how AI works in a few words"}]}],"generationConfig":{"temperature":0.7,"topP":0.95,"topK":40,"maxOutputTokens":1024,"stopSequences":["<END>"]}}"#;

/// prompt 1000 (600 cached), candidates 200, thoughts 300.
pub const GEMINI_RESPONSE: &str = r#"{
  "candidates": [
    {
      "content": {"parts": [{"text": "AI learns patterns from data to make predictions."}], "role": "model"},
      "finishReason": "STOP",
      "index": 0
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 1000,
    "candidatesTokenCount": 200,
    "totalTokenCount": 1500,
    "cachedContentTokenCount": 600,
    "thoughtsTokenCount": 300,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1000}],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 600}]
  },
  "modelVersion": "gemini-2.5-flash",
  "responseId": "mAitaLmkHPPlz7IPvtfUqQ4"
}"#;

/// SSE (`alt=sse`): usage in every chunk, final counts in the last: prompt 10, candidates 40.
pub fn gemini_stream() -> Vec<String> {
    vec![
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"AI learns\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 10,\"candidatesTokenCount\": 2,\"totalTokenCount\": 12,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 10}]},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"KwmtaO2dNaWxz7IP5Iug2Qg\"}\r\n\r\n".to_owned(),
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" patterns from data.\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 10,\"candidatesTokenCount\": 40,\"totalTokenCount\": 50,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 10}]},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"KwmtaO2dNaWxz7IP5Iug2Qg\"}\r\n\r\n".to_owned(),
    ]
}

// ---------------- errors ----------------

pub const OPENAI_429: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29958, Requested 1200. Please try again in 2.316s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;

pub const OPENAI_400_CONTEXT: &str = r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130563 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;

pub const ANTHROPIC_529: &str =
    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;

pub const ANTHROPIC_400_TOO_LONG: &str = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208134 tokens > 200000 maximum"}}"#;

pub const GEMINI_429: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED"}}"#;

pub const GEMINI_400_TOKENS: &str = r#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#;

pub const ANTHROPIC_STREAM_ERROR: &str = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
