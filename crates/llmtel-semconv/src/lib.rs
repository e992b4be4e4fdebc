//! Attribute, metric and event names used by llmtel.
//!
//! This crate holds names only and has no dependencies. It pins the OpenTelemetry GenAI
//! semantic conventions at **v1.41.1** ([`SCHEMA_URL`]) and adds llmtel's own cost and pricing
//! names (the spec has no cost attribute yet) and the OpenInference names Arize Phoenix reads.
//! Where the GenAI conventions have renamed an attribute since, both spellings are listed and
//! llmtel reads both and writes the pinned one.
//!
//! ```
//! use llmtel_semconv::gen_ai;
//! assert_eq!(gen_ai::USAGE_INPUT_TOKENS, "gen_ai.usage.input_tokens");
//! assert!(llmtel_semconv::is_gen_ai_field("gen_ai.request.model"));
//! assert!(!llmtel_semconv::is_gen_ai_field("http.request.method"));
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![no_std]

/// Schema URL of the pinned semantic conventions.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.41.1";

/// Prefix shared by every GenAI attribute.
pub const GEN_AI_PREFIX: &str = "gen_ai.";

/// Whether a field or attribute name belongs to the GenAI conventions (`gen_ai.*`).
#[inline]
pub fn is_gen_ai_field(name: &str) -> bool {
    name.as_bytes().starts_with(GEN_AI_PREFIX.as_bytes())
}

/// OpenTelemetry GenAI span attributes (semantic conventions v1.41.1).
pub mod gen_ai {
    /// The operation: one of the [`operation`](super::operation) values.
    pub const OPERATION_NAME: &str = "gen_ai.operation.name";
    /// The provider (`openai`, `anthropic`, `gcp.gemini`, ...). Replaces [`SYSTEM`].
    pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
    /// Deprecated spelling of [`PROVIDER_NAME`]; read, never written.
    pub const SYSTEM: &str = "gen_ai.system";
    /// Id of the conversation (session) the call belongs to.
    pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";
    /// Requested output type (text, json, image, speech).
    pub const OUTPUT_TYPE: &str = "gen_ai.output.type";

    /// Model the request asked for.
    pub const REQUEST_MODEL: &str = "gen_ai.request.model";
    /// Requested number of choices.
    pub const REQUEST_CHOICE_COUNT: &str = "gen_ai.request.choice.count";
    /// Requested seed.
    pub const REQUEST_SEED: &str = "gen_ai.request.seed";
    /// Whether the response was requested as a stream.
    pub const REQUEST_STREAM: &str = "gen_ai.request.stream";
    /// Sampling temperature.
    pub const REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
    /// Nucleus sampling parameter.
    pub const REQUEST_TOP_P: &str = "gen_ai.request.top_p";
    /// Top-k sampling parameter.
    pub const REQUEST_TOP_K: &str = "gen_ai.request.top_k";
    /// Maximum number of output tokens requested.
    pub const REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
    /// Frequency penalty.
    pub const REQUEST_FREQUENCY_PENALTY: &str = "gen_ai.request.frequency_penalty";
    /// Presence penalty.
    pub const REQUEST_PRESENCE_PENALTY: &str = "gen_ai.request.presence_penalty";
    /// Stop sequences (string array).
    pub const REQUEST_STOP_SEQUENCES: &str = "gen_ai.request.stop_sequences";

    /// Id the provider gave the response.
    pub const RESPONSE_ID: &str = "gen_ai.response.id";
    /// Model that actually answered.
    pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
    /// Finish reasons, one per choice (string array).
    pub const RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    /// Time to the first chunk of a streamed response, in seconds.
    pub const RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";

    /// Input tokens, **inclusive** of cached input tokens.
    pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    /// Output tokens, inclusive of reasoning tokens.
    pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    /// Input tokens read from the provider's prompt cache.
    pub const USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
    /// Input tokens written to the provider's prompt cache (v1.41.1 spelling).
    pub const USAGE_CACHE_CREATION_INPUT_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
    /// Newer spelling of [`USAGE_CACHE_CREATION_INPUT_TOKENS`] (semantic-conventions-genai main).
    pub const USAGE_CACHE_WRITE_INPUT_TOKENS: &str = "gen_ai.usage.cache_write.input_tokens";
    /// Output tokens spent on reasoning.
    pub const USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
    /// Total cost of the call in USD (read by Langfuse, written by OpenLIT; not in the spec).
    pub const USAGE_COST: &str = "gen_ai.usage.cost";

    /// Opt-in content: input messages as JSON.
    pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
    /// Opt-in content: output messages as JSON.
    pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
    /// Opt-in content: system instructions as JSON.
    pub const SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
    /// Opt-in content: tool definitions as JSON.
    pub const TOOL_DEFINITIONS: &str = "gen_ai.tool.definitions";

    /// Agent id.
    pub const AGENT_ID: &str = "gen_ai.agent.id";
    /// Agent name.
    pub const AGENT_NAME: &str = "gen_ai.agent.name";
    /// Agent description.
    pub const AGENT_DESCRIPTION: &str = "gen_ai.agent.description";
    /// Agent version.
    pub const AGENT_VERSION: &str = "gen_ai.agent.version";
    /// Tool name.
    pub const TOOL_NAME: &str = "gen_ai.tool.name";
    /// Tool call id.
    pub const TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
    /// Tool type (function, extension, datastore).
    pub const TOOL_TYPE: &str = "gen_ai.tool.type";
    /// Tool description.
    pub const TOOL_DESCRIPTION: &str = "gen_ai.tool.description";
    /// Workflow name.
    pub const WORKFLOW_NAME: &str = "gen_ai.workflow.name";
    /// Data source id for retrieval.
    pub const DATA_SOURCE_ID: &str = "gen_ai.data_source.id";

    /// Token type on the token usage metric (`input` / `output`).
    pub const TOKEN_TYPE: &str = "gen_ai.token.type";

    /// Evaluation event: evaluation name.
    pub const EVALUATION_NAME: &str = "gen_ai.evaluation.name";
    /// Evaluation event: numeric score.
    pub const EVALUATION_SCORE_VALUE: &str = "gen_ai.evaluation.score.value";
    /// Evaluation event: score label.
    pub const EVALUATION_SCORE_LABEL: &str = "gen_ai.evaluation.score.label";
    /// Evaluation event: explanation.
    pub const EVALUATION_EXPLANATION: &str = "gen_ai.evaluation.explanation";
}

/// Values of `gen_ai.operation.name`.
pub mod operation {
    /// Chat completion.
    pub const CHAT: &str = "chat";
    /// Gemini-style content generation.
    pub const GENERATE_CONTENT: &str = "generate_content";
    /// Legacy text completion.
    pub const TEXT_COMPLETION: &str = "text_completion";
    /// Embeddings.
    pub const EMBEDDINGS: &str = "embeddings";
    /// Retrieval from a data source.
    pub const RETRIEVAL: &str = "retrieval";
    /// Agent creation.
    pub const CREATE_AGENT: &str = "create_agent";
    /// Agent invocation.
    pub const INVOKE_AGENT: &str = "invoke_agent";
    /// Tool execution.
    pub const EXECUTE_TOOL: &str = "execute_tool";
    /// Workflow invocation.
    pub const INVOKE_WORKFLOW: &str = "invoke_workflow";

    /// Whether an operation is a model call that consumes tokens and can be priced.
    pub fn is_model_call(op: &str) -> bool {
        matches!(op, CHAT | GENERATE_CONTENT | TEXT_COMPLETION | EMBEDDINGS)
    }
}

/// Common (non-GenAI) attributes.
pub mod common {
    /// Error class of a failed operation.
    pub const ERROR_TYPE: &str = "error.type";
    /// Server host.
    pub const SERVER_ADDRESS: &str = "server.address";
    /// Server port.
    pub const SERVER_PORT: &str = "server.port";
    /// Service name resource attribute.
    pub const SERVICE_NAME: &str = "service.name";
}

/// llmtel's cost, pricing and app-dimension attributes.
pub mod llmtel {
    /// Cost of the uncached input tokens, USD.
    pub const COST_INPUT: &str = "llmtel.cost.input";
    /// Cost of the output tokens (less reasoning), USD.
    pub const COST_OUTPUT: &str = "llmtel.cost.output";
    /// Cost of the cache-read input tokens, USD.
    pub const COST_CACHE_READ: &str = "llmtel.cost.cache_read";
    /// Cost of the cache-write input tokens, USD.
    pub const COST_CACHE_WRITE: &str = "llmtel.cost.cache_write";
    /// Cost of the reasoning tokens, USD.
    pub const COST_REASONING: &str = "llmtel.cost.reasoning";
    /// Currency of every cost attribute (`USD`).
    pub const COST_CURRENCY: &str = "llmtel.cost.currency";
    /// Where the total came from: `catalog`, `provider` or `app`.
    pub const COST_SOURCE: &str = "llmtel.cost.source";
    /// Whether the cost rests on estimated token counts.
    pub const COST_ESTIMATED: &str = "llmtel.cost.estimated";
    /// How estimated token counts were obtained.
    pub const COST_ESTIMATE_METHOD: &str = "llmtel.cost.estimate_method";
    /// Set to `true` when the model has no price in the catalog (no cost is written then).
    pub const COST_UNKNOWN_MODEL: &str = "llmtel.cost.unknown_model";
    /// A cost the app or the provider reports for the call (USD); wins over the computed one.
    pub const COST_REPORTED: &str = "llmtel.cost.reported";
    /// Why usage could not be priced as given (e.g. cache tokens exceed input tokens).
    pub const USAGE_NOTE: &str = "llmtel.usage.note";

    /// Catalog key that matched the model name.
    pub const PRICING_MODEL: &str = "llmtel.pricing.model";
    /// Provider of the catalog entry that matched.
    pub const PRICING_PROVIDER: &str = "llmtel.pricing.provider";
    /// Date from which the applied price is in force (ISO 8601).
    pub const PRICING_DATE: &str = "llmtel.pricing.date";
    /// How the model name was resolved (exact, case, prefix, snapshot, ...).
    pub const PRICING_MATCH: &str = "llmtel.pricing.match";
    /// The long-context tier applied, as its input-token threshold.
    pub const PRICING_TIER: &str = "llmtel.pricing.tier_above_input_tokens";

    /// Cost of the uncached audio input tokens, USD (part of the input).
    pub const COST_AUDIO_INPUT: &str = "llmtel.cost.audio_input";
    /// Cost of the cached (cache-read) audio input tokens, USD.
    pub const COST_CACHED_AUDIO: &str = "llmtel.cost.cached_audio";
    /// Cost of the image input tokens, USD.
    pub const COST_IMAGE_INPUT: &str = "llmtel.cost.image_input";
    /// Cost of the video input tokens, USD.
    pub const COST_VIDEO_INPUT: &str = "llmtel.cost.video_input";
    /// Cost of the audio output tokens, USD (part of the output).
    pub const COST_AUDIO_OUTPUT: &str = "llmtel.cost.audio_output";
    /// Cost of the image output tokens, USD (part of the output; image generation).
    pub const COST_IMAGE_OUTPUT: &str = "llmtel.cost.image_output";
    /// Cost of the web search queries, USD (per-query price).
    pub const COST_WEB_SEARCH: &str = "llmtel.cost.web_search";
    /// Cost of the code interpreter sessions, USD.
    pub const COST_CODE_INTERPRETER: &str = "llmtel.cost.code_interpreter";
    /// Cost of the file search calls, USD.
    pub const COST_FILE_SEARCH: &str = "llmtel.cost.file_search";
    /// Cost of the generated images, USD (per-image price).
    pub const COST_IMAGES: &str = "llmtel.cost.images";
    /// Cost of the input characters (text to speech), USD.
    pub const COST_CHARACTERS: &str = "llmtel.cost.characters";
    /// Cost of the input and output audio seconds (transcription, speech), USD.
    pub const COST_AUDIO_SECONDS: &str = "llmtel.cost.audio_seconds";
    /// How the call was priced where it could not be priced as reported (string array:
    /// `service_tier_not_offered_priced_at_standard`, `modality_tokens_exclusive_of_text`,
    /// `request_charge_not_in_catalog`, `unit_price_not_in_catalog`, `unit_counts_missing`,
    /// `off_peak_time_zone_unknown`).
    pub const COST_NOTES: &str = "llmtel.cost.notes";
    /// The service tier whose rates priced the call (`priority`, `flex`, `batch`); absent
    /// for the standard rates.
    pub const PRICING_SERVICE_TIER: &str = "llmtel.pricing.service_tier";
    /// `true` when the call started in an off-peak window and was priced at its rates.
    pub const PRICING_OFF_PEAK: &str = "llmtel.pricing.off_peak";

    /// The service tier the provider reported for the call, for providers without a
    /// convention of their own (Anthropic `usage.service_tier`, Gemini); OpenAI's is
    /// [`openai::RESPONSE_SERVICE_TIER`](super::openai::RESPONSE_SERVICE_TIER).
    pub const RESPONSE_SERVICE_TIER: &str = "llmtel.response.service_tier";
    /// Audio input tokens, part of `gen_ai.usage.input_tokens` (OpenAI
    /// `prompt_tokens_details.audio_tokens`, Gemini `promptTokensDetails` `AUDIO`).
    pub const USAGE_AUDIO_INPUT_TOKENS: &str = "llmtel.usage.audio.input_tokens";
    /// Cached audio input tokens, part of the audio input and cache-read tokens (OpenAI
    /// realtime `input_token_details.cached_tokens_details.audio_tokens`).
    pub const USAGE_AUDIO_CACHE_READ_INPUT_TOKENS: &str =
        "llmtel.usage.audio.cache_read.input_tokens";
    /// Image input tokens, part of the input tokens (OpenAI `image_tokens`, Gemini `IMAGE`).
    pub const USAGE_IMAGE_INPUT_TOKENS: &str = "llmtel.usage.image.input_tokens";
    /// Video input tokens, part of the input tokens (Gemini `VIDEO`).
    pub const USAGE_VIDEO_INPUT_TOKENS: &str = "llmtel.usage.video.input_tokens";
    /// Of `gen_ai.usage.cache_creation.input_tokens`, those written to the 1-hour cache
    /// (Anthropic `usage.cache_creation.ephemeral_1h_input_tokens`), priced at the 1-hour
    /// write rate.
    pub const USAGE_CACHE_CREATION_1H_INPUT_TOKENS: &str =
        "llmtel.usage.cache_creation_1h.input_tokens";
    /// Audio output tokens, part of `gen_ai.usage.output_tokens` (OpenAI
    /// `completion_tokens_details.audio_tokens`, Gemini `candidatesTokensDetails` `AUDIO`).
    pub const USAGE_AUDIO_OUTPUT_TOKENS: &str = "llmtel.usage.audio.output_tokens";
    /// Image output tokens, part of `gen_ai.usage.output_tokens` (OpenAI images endpoint
    /// `usage.output_tokens_details.image_tokens`).
    pub const USAGE_IMAGE_OUTPUT_TOKENS: &str = "llmtel.usage.image.output_tokens";
    /// Web search queries billed per query (Anthropic
    /// `usage.server_tool_use.web_search_requests`, OpenAI `web_search_call` output items).
    pub const USAGE_WEB_SEARCH_REQUESTS: &str = "llmtel.usage.web_search.requests";
    /// Web search context size of the request (`low`, `medium`, `high`; OpenAI
    /// `web_search_options.search_context_size`).
    pub const REQUEST_SEARCH_CONTEXT_SIZE: &str = "llmtel.request.search_context_size";
    /// Code interpreter sessions (containers) the call started.
    pub const USAGE_CODE_INTERPRETER_SESSIONS: &str = "llmtel.usage.code_interpreter.sessions";
    /// File search tool calls.
    pub const USAGE_FILE_SEARCH_CALLS: &str = "llmtel.usage.file_search.calls";
    /// Images generated (OpenAI images endpoint: the `data` items).
    pub const USAGE_IMAGES: &str = "llmtel.usage.images";
    /// Input characters of a text-to-speech request (the length of `input`).
    pub const USAGE_INPUT_CHARACTERS: &str = "llmtel.usage.input_characters";
    /// Input audio duration of a transcription, milliseconds.
    pub const USAGE_INPUT_AUDIO_MS: &str = "llmtel.usage.input_audio_ms";
    /// Output audio duration of a speech response, milliseconds.
    pub const USAGE_OUTPUT_AUDIO_MS: &str = "llmtel.usage.output_audio_ms";

    /// App dimension: end user.
    pub const USER_ID: &str = "user.id";
    /// App dimension: session (also written as `gen_ai.conversation.id` when unset).
    pub const SESSION_ID: &str = "session.id";
    /// App dimension: product feature.
    pub const FEATURE: &str = "llmtel.feature";
    /// App dimension: tenant.
    pub const TENANT: &str = "llmtel.tenant";
    /// `"true"` on an LLM call made by an evaluator (LLM-as-judge, embeddings): priced under
    /// its own feature, never evaluated or monitored as an app call.
    pub const EVALUATION: &str = "llmtel.evaluation";

    /// `tracing` target of the `gen_ai.evaluation.result` spans and events llmtel-quality
    /// emits (llmtel-report records them in the call log by it).
    pub const QUALITY_TARGET: &str = "llmtel_quality";
    /// Name of the span llmtel-quality opens around each example of an offline experiment.
    pub const EXPERIMENT_EXAMPLE_SPAN: &str = "llmtel.experiment.example";
    /// llmtel-budget: the rule most used after the call.
    pub const BUDGET_RULE: &str = "llmtel.budget.rule";
    /// llmtel-budget: that rule's utilization after the call (fraction of its limit).
    pub const BUDGET_UTILIZATION: &str = "llmtel.budget.utilization";
    /// llmtel-budget: `true` when the call had no price (model unknown to the catalog) and
    /// a budget rule applied its `on_unpriced` policy (refuse, fallback price or allow).
    pub const BUDGET_UNPRICED: &str = "llmtel.budget.unpriced";

    /// Offline evaluation: the experiment's name.
    pub const EXPERIMENT_NAME: &str = "llmtel.experiment.name";
    /// Offline evaluation: one run of an experiment (unique per run), so that the LLM calls
    /// of concurrent runs are told apart.
    pub const EXPERIMENT_RUN_ID: &str = "llmtel.experiment.run_id";
    /// Offline evaluation: the id of the dataset example the span ran.
    pub const EXPERIMENT_EXAMPLE_ID: &str = "llmtel.experiment.example.id";
}

/// OpenAI-specific GenAI attributes (semantic conventions, OpenAI section).
pub mod openai {
    /// The service tier OpenAI reports in the response (`default`, `flex`, `priority`, ...).
    pub const RESPONSE_SERVICE_TIER: &str = "openai.response.service_tier";
    /// The service tier the request asked for.
    pub const REQUEST_SERVICE_TIER: &str = "openai.request.service_tier";
}

/// OpenInference names (Arize Phoenix), written when the compatibility option is on.
pub mod openinference {
    /// Span kind: LLM, EMBEDDING, CHAIN, RETRIEVER, RERANKER, TOOL, AGENT, GUARDRAIL, EVALUATOR.
    pub const SPAN_KIND: &str = "openinference.span.kind";
    /// Resource attribute naming the Phoenix project.
    pub const PROJECT_NAME: &str = "openinference.project.name";
    /// Model name.
    pub const LLM_MODEL_NAME: &str = "llm.model_name";
    /// Provider.
    pub const LLM_PROVIDER: &str = "llm.provider";
    /// System.
    pub const LLM_SYSTEM: &str = "llm.system";
    /// Prompt tokens.
    pub const TOKEN_COUNT_PROMPT: &str = "llm.token_count.prompt";
    /// Completion tokens.
    pub const TOKEN_COUNT_COMPLETION: &str = "llm.token_count.completion";
    /// Total tokens.
    pub const TOKEN_COUNT_TOTAL: &str = "llm.token_count.total";
    /// Cache-read prompt tokens.
    pub const TOKEN_COUNT_PROMPT_CACHE_READ: &str = "llm.token_count.prompt_details.cache_read";
    /// Cache-write prompt tokens.
    pub const TOKEN_COUNT_PROMPT_CACHE_WRITE: &str = "llm.token_count.prompt_details.cache_write";
    /// Reasoning completion tokens.
    pub const TOKEN_COUNT_COMPLETION_REASONING: &str =
        "llm.token_count.completion_details.reasoning";
    /// Total cost.
    pub const COST_TOTAL: &str = "llm.cost.total";
    /// Prompt cost.
    pub const COST_PROMPT: &str = "llm.cost.prompt";
    /// Completion cost.
    pub const COST_COMPLETION: &str = "llm.cost.completion";
    /// Uncached input cost.
    pub const COST_PROMPT_INPUT: &str = "llm.cost.prompt_details.input";
    /// Cache-read cost.
    pub const COST_PROMPT_CACHE_READ: &str = "llm.cost.prompt_details.cache_read";
    /// Cache-write cost.
    pub const COST_PROMPT_CACHE_WRITE: &str = "llm.cost.prompt_details.cache_write";
    /// Output cost.
    pub const COST_COMPLETION_OUTPUT: &str = "llm.cost.completion_details.output";
    /// Reasoning cost.
    pub const COST_COMPLETION_REASONING: &str = "llm.cost.completion_details.reasoning";
    /// Session id.
    pub const SESSION_ID: &str = "session.id";
    /// User id.
    pub const USER_ID: &str = "user.id";
}

/// Metric names (v1.41.1) and llmtel's additions.
pub mod metrics {
    /// Histogram of tokens per call, with `gen_ai.token.type`.
    pub const CLIENT_TOKEN_USAGE: &str = "gen_ai.client.token.usage";
    /// Histogram of call duration, seconds.
    pub const CLIENT_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
    /// Histogram of time to first chunk, seconds.
    pub const CLIENT_TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
    /// Histogram of time per output chunk, seconds.
    pub const CLIENT_TIME_PER_OUTPUT_CHUNK: &str = "gen_ai.client.operation.time_per_output_chunk";
    /// Bucket boundaries of the token usage histogram.
    pub const TOKEN_USAGE_BUCKETS: [f64; 14] = [
        1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
        4194304.0, 16777216.0, 67108864.0,
    ];
    /// Bucket boundaries of the duration histograms, seconds.
    pub const DURATION_BUCKETS: [f64; 14] = [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ];
}
