//! Which requests are LLM calls: by host and path, or by a configured base URL.

use std::sync::Arc;

use reqwest::{Method, Url};

/// The wire protocol of an LLM endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI Chat Completions (`POST …/chat/completions`), also every OpenAI-compatible server.
    OpenAiChat,
    /// OpenAI Responses (`POST …/responses`).
    OpenAiResponses,
    /// OpenAI legacy Completions (`POST …/completions`).
    OpenAiCompletions,
    /// OpenAI Embeddings (`POST …/embeddings`).
    OpenAiEmbeddings,
    /// Anthropic Messages (`POST /v1/messages`).
    AnthropicMessages,
    /// Gemini `models/{model}:generateContent`.
    GeminiGenerate,
    /// Gemini `models/{model}:streamGenerateContent` (SSE with `alt=sse`, else a JSON array).
    GeminiStreamGenerate,
    /// OpenAI image generation and edits (`POST …/images/generations`, `…/images/edits`):
    /// priced by the tokens the response reports (gpt-image-*), the images counted.
    OpenAiImages,
    /// OpenAI text to speech (`POST …/audio/speech`): priced per input character (tts-1),
    /// or by the tokens a streamed (`stream_format: "sse"`) response reports.
    OpenAiSpeech,
    /// OpenAI transcription and translation (`POST …/audio/transcriptions`,
    /// `…/audio/translations`, multipart): priced per second of audio (whisper-1) or by
    /// the tokens the response reports (gpt-4o-transcribe).
    OpenAiTranscription,
}

impl Api {
    /// The `gen_ai.operation.name` of a call to this endpoint.
    pub fn operation(self) -> &'static str {
        match self {
            Api::OpenAiChat | Api::OpenAiResponses | Api::AnthropicMessages => "chat",
            Api::OpenAiCompletions => "text_completion",
            Api::OpenAiEmbeddings => "embeddings",
            Api::GeminiGenerate
            | Api::GeminiStreamGenerate
            | Api::OpenAiImages
            | Api::OpenAiSpeech
            | Api::OpenAiTranscription => "generate_content",
        }
    }

    /// The `gen_ai.output.type` of a call to this endpoint, where it is not text by default.
    pub fn output_type(self) -> Option<&'static str> {
        match self {
            Api::OpenAiImages => Some("image"),
            Api::OpenAiSpeech => Some("speech"),
            Api::OpenAiTranscription => Some("text"),
            _ => None,
        }
    }

    /// Whether the endpoint generates or reads media (images, audio): its usage is not
    /// estimated from text when the response does not report it.
    pub fn is_media(self) -> bool {
        matches!(
            self,
            Api::OpenAiImages | Api::OpenAiSpeech | Api::OpenAiTranscription
        )
    }
}

/// The request dialect spoken at a base URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// OpenAI and every OpenAI-compatible server (Ollama, vLLM, Groq, Together, OpenRouter,
    /// DeepSeek, Mistral, Azure OpenAI).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini (`generativelanguage.googleapis.com`, Vertex AI).
    Gemini,
}

/// A recognised LLM call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The endpoint's protocol.
    pub api: Api,
    /// `gen_ai.provider.name`.
    pub provider: Arc<str>,
    /// The model named by the path (Gemini `models/{model}`, Azure `deployments/{name}`).
    pub path_model: Option<String>,
}

#[derive(Clone)]
pub(crate) struct BaseUrl {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: String,
    flavor: Flavor,
    provider: Arc<str>,
}

impl BaseUrl {
    pub(crate) fn parse(base: &str, flavor: Flavor, provider: &str) -> Result<Self, String> {
        let url = Url::parse(base)
            .map_err(|e| format!("invalid base URL {:?}: {e}", llmtel::redact(base)))?;
        let host = url
            .host_str()
            // Redacted as above: `localhost:8080/v1?api_key=…` parses with `localhost` as its
            // scheme and no host, and its key would be in the message.
            .ok_or_else(|| format!("base URL {:?} has no host", llmtel::redact(base)))?
            .to_ascii_lowercase();
        Ok(BaseUrl {
            scheme: url.scheme().to_owned(),
            host,
            port: url.port_or_known_default(),
            path: url.path().trim_end_matches('/').to_owned(),
            flavor,
            provider: Arc::from(provider),
        })
    }

    fn matches(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && url.port_or_known_default() == self.port
            && url.path().starts_with(&self.path)
            && url.path()[self.path.len()..]
                .chars()
                .next()
                .is_none_or(|c| c == '/')
    }
}

/// Recognises LLM calls; see [`crate::LlmMiddleware`] for the built-in hosts.
// A base URL can carry a key in its path (some gateways): redacted in `Debug`.
impl std::fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseUrl")
            .field("scheme", &self.scheme)
            .field("host", &llmtel::redact(&self.host))
            .field("port", &self.port)
            .field("path", &llmtel::redact(&self.path))
            .field("flavor", &self.flavor)
            .field("provider", &self.provider)
            .finish()
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Router {
    bases: Vec<BaseUrl>,
}

impl Router {
    pub(crate) fn add(&mut self, base: BaseUrl) {
        // Longest path first, so a more specific base URL wins.
        self.bases.push(base);
        self.bases
            .sort_by_key(|b| std::cmp::Reverse(b.host.len() + b.path.len()));
    }

    pub(crate) fn route(&self, method: &Method, url: &Url) -> Option<Route> {
        if method != Method::POST {
            return None;
        }
        let path = url.path();
        // The most specific base whose flavour has this endpoint: a gateway serving two APIs
        // (`…/v1` OpenAI-compatible, `…` Anthropic) routes `/v1/messages` to the second.
        for base in &self.bases {
            if base.matches(url) {
                if let Some(r) = match_path(base.flavor, path, base.provider.clone()) {
                    return Some(r);
                }
            }
        }
        let host = url.host_str()?.to_ascii_lowercase();
        let (flavor, provider): (Flavor, &str) = match host.as_str() {
            "api.openai.com" => (Flavor::OpenAi, "openai"),
            "api.anthropic.com" => (Flavor::Anthropic, "anthropic"),
            // Gemini's OpenAI-compatible endpoint (`/v1beta/openai/chat/completions`).
            "generativelanguage.googleapis.com" if path.contains("/openai/") => {
                (Flavor::OpenAi, "gcp.gemini")
            }
            "generativelanguage.googleapis.com" => (Flavor::Gemini, "gcp.gemini"),
            "api.groq.com" => (Flavor::OpenAi, "groq"),
            "api.together.xyz" => (Flavor::OpenAi, "together_ai"),
            "openrouter.ai" => (Flavor::OpenAi, "openrouter"),
            "api.deepseek.com" => (Flavor::OpenAi, "deepseek"),
            "api.mistral.ai" => (Flavor::OpenAi, "mistral_ai"),
            h if h.ends_with(".openai.azure.com")
                || h.ends_with(".cognitiveservices.azure.com")
                || h.ends_with(".services.ai.azure.com") =>
            {
                return match_azure(path);
            }
            // Vertex AI's OpenAI-compatible endpoint (`…/endpoints/openapi/chat/completions`).
            h if (h.ends_with("-aiplatform.googleapis.com")
                || h == "aiplatform.googleapis.com")
                && path.contains("/endpoints/openapi/") =>
            {
                (Flavor::OpenAi, "gcp.vertex_ai")
            }
            h if h.ends_with("-aiplatform.googleapis.com") || h == "aiplatform.googleapis.com" => {
                (Flavor::Gemini, "gcp.vertex_ai")
            }
            _ => return None,
        };
        match_path(flavor, path, Arc::from(provider))
    }
}

fn match_path(flavor: Flavor, path: &str, provider: Arc<str>) -> Option<Route> {
    let path = path.trim_end_matches('/');
    let (api, path_model) = match flavor {
        Flavor::OpenAi => (openai_api(path)?, None),
        Flavor::Anthropic => {
            if path.ends_with("/messages") {
                (Api::AnthropicMessages, None)
            } else {
                return None;
            }
        }
        Flavor::Gemini => gemini(path)?,
    };
    Some(Route {
        api,
        provider,
        path_model,
    })
}

fn openai_api(path: &str) -> Option<Api> {
    if path.ends_with("/chat/completions") {
        Some(Api::OpenAiChat)
    } else if path.ends_with("/completions") {
        Some(Api::OpenAiCompletions)
    } else if path.ends_with("/responses") {
        Some(Api::OpenAiResponses)
    } else if path.ends_with("/embeddings") {
        Some(Api::OpenAiEmbeddings)
    } else if path.ends_with("/images/generations") || path.ends_with("/images/edits") {
        Some(Api::OpenAiImages)
    } else if path.ends_with("/audio/speech") {
        Some(Api::OpenAiSpeech)
    } else if path.ends_with("/audio/transcriptions") || path.ends_with("/audio/translations") {
        Some(Api::OpenAiTranscription)
    } else {
        None
    }
}

fn gemini(path: &str) -> Option<(Api, Option<String>)> {
    let (head, method) = path.rsplit_once(':')?;
    let api = match method {
        "generateContent" => Api::GeminiGenerate,
        "streamGenerateContent" => Api::GeminiStreamGenerate,
        _ => return None,
    };
    let model = head.rsplit_once("/models/").map(|(_, m)| m.to_owned());
    Some((api, model))
}

fn match_azure(path: &str) -> Option<Route> {
    // Azure AI Foundry's model inference API (`/models/chat/completions?api-version=…`).
    if let Some(rest) = path.strip_prefix("/models/") {
        return Some(Route {
            api: openai_api(&format!("/{}", rest.trim_end_matches('/')))?,
            provider: Arc::from("azure.ai.inference"),
            path_model: None,
        });
    }
    let provider: Arc<str> = Arc::from("azure.ai.openai");
    let deployment = path
        .strip_prefix("/openai/deployments/")
        .and_then(|rest| rest.split('/').next())
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    if deployment.is_none() && !path.starts_with("/openai/") {
        return None;
    }
    Some(Route {
        api: openai_api(path.trim_end_matches('/'))?,
        provider,
        path_model: deployment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(url: &str) -> Option<(Api, String, Option<String>)> {
        let mut r = Router::default();
        r.add(BaseUrl::parse("http://localhost:11434/v1", Flavor::OpenAi, "ollama").unwrap());
        r.route(&Method::POST, &Url::parse(url).unwrap())
            .map(|r| (r.api, r.provider.to_string(), r.path_model))
    }

    #[test]
    fn openai_compatible_endpoints_on_google_and_azure_hosts() {
        for (url, provider) in [
            (
                "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
                "gcp.gemini",
            ),
            (
                "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints/openapi/chat/completions",
                "gcp.vertex_ai",
            ),
            (
                "https://x.services.ai.azure.com/models/chat/completions?api-version=2024-05-01-preview",
                "azure.ai.inference",
            ),
        ] {
            assert_eq!(
                route(url).map(|r| (r.0, r.1)),
                Some((Api::OpenAiChat, provider.to_owned())),
                "{url}"
            );
        }
        // Gemini's own API still routes as Gemini.
        assert_eq!(
            route("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent")
                .map(|r| r.0),
            Some(Api::GeminiGenerate)
        );
    }

    #[test]
    fn a_gateway_serving_two_apis_routes_each_endpoint_to_its_flavour() {
        let mut r = Router::default();
        r.add(BaseUrl::parse("http://gw:4000/v1", Flavor::OpenAi, "litellm").unwrap());
        r.add(BaseUrl::parse("http://gw:4000", Flavor::Anthropic, "anthropic").unwrap());
        let api = |u: &str| {
            r.route(&Method::POST, &Url::parse(u).unwrap())
                .map(|r| (r.api, r.provider.to_string()))
        };
        assert_eq!(
            api("http://gw:4000/v1/messages"),
            Some((Api::AnthropicMessages, "anthropic".to_owned()))
        );
        assert_eq!(
            api("http://gw:4000/v1/chat/completions"),
            Some((Api::OpenAiChat, "litellm".to_owned()))
        );
    }

    #[test]
    fn built_in_hosts() {
        let cases = [
            (
                "https://api.openai.com/v1/chat/completions",
                Api::OpenAiChat,
                "openai",
            ),
            (
                "https://api.openai.com/v1/responses",
                Api::OpenAiResponses,
                "openai",
            ),
            (
                "https://api.openai.com/v1/completions",
                Api::OpenAiCompletions,
                "openai",
            ),
            (
                "https://api.openai.com/v1/embeddings",
                Api::OpenAiEmbeddings,
                "openai",
            ),
            (
                "https://api.anthropic.com/v1/messages",
                Api::AnthropicMessages,
                "anthropic",
            ),
            (
                "https://api.openai.com/v1/images/generations",
                Api::OpenAiImages,
                "openai",
            ),
            (
                "https://api.openai.com/v1/images/edits",
                Api::OpenAiImages,
                "openai",
            ),
            (
                "https://api.openai.com/v1/audio/speech",
                Api::OpenAiSpeech,
                "openai",
            ),
            (
                "https://api.openai.com/v1/audio/transcriptions",
                Api::OpenAiTranscription,
                "openai",
            ),
            (
                "https://api.openai.com/v1/audio/translations",
                Api::OpenAiTranscription,
                "openai",
            ),
            (
                "https://api.groq.com/openai/v1/chat/completions",
                Api::OpenAiChat,
                "groq",
            ),
            (
                "https://openrouter.ai/api/v1/chat/completions",
                Api::OpenAiChat,
                "openrouter",
            ),
            (
                "https://api.deepseek.com/chat/completions",
                Api::OpenAiChat,
                "deepseek",
            ),
            (
                "https://api.mistral.ai/v1/chat/completions",
                Api::OpenAiChat,
                "mistral_ai",
            ),
            (
                "https://api.together.xyz/v1/chat/completions",
                Api::OpenAiChat,
                "together_ai",
            ),
            (
                "http://localhost:11434/v1/chat/completions",
                Api::OpenAiChat,
                "ollama",
            ),
        ];
        for (url, api, provider) in cases {
            let (a, p, _) = route(url).unwrap_or_else(|| panic!("{url} not recognised"));
            assert_eq!((a, p.as_str()), (api, provider), "{url}");
        }
    }

    #[test]
    fn gemini_and_azure_take_the_model_from_the_path() {
        assert_eq!(
            route(
                "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
            ),
            Some((
                Api::GeminiStreamGenerate,
                "gcp.gemini".into(),
                Some("gemini-2.5-flash".into())
            ))
        );
        assert_eq!(
            route(
                "https://my-res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
            ),
            Some((
                Api::OpenAiChat,
                "azure.ai.openai".into(),
                Some("gpt4o-prod".into())
            ))
        );
    }

    #[test]
    fn a_base_url_without_a_host_is_refused_without_its_key_in_the_error() {
        // `localhost` is read as the scheme: no host.
        let base = "localhost:8080/v1?api_key=sk-live-0123456789abcdefABCDEF";
        let err = BaseUrl::parse(base, Flavor::OpenAi, "ollama").unwrap_err();
        assert!(err.contains("has no host"), "{err}");
        assert!(!err.contains("sk-live"), "{err}");
        let err = crate::LlmMiddleware::new()
            .with_openai_compatible(base, "ollama")
            .unwrap_err();
        assert!(!err.to_string().contains("sk-live"), "{err}");
        assert!(!format!("{err:?}").contains("sk-live"), "{err:?}");
    }

    #[test]
    fn other_requests_are_not_llm_calls() {
        for url in [
            "https://api.openai.com/v1/models",
            "https://api.openai.com/v1/files",
            "https://api.openai.com/v1/images/variations",
            "https://api.openai.com/v1/audio/voices",
            "https://example.com/v1/chat/completions",
            "http://localhost:11435/v1/chat/completions",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:countTokens",
        ] {
            assert_eq!(route(url), None, "{url}");
        }
        let mut r = Router::default();
        r.add(BaseUrl::parse("https://api.openai.com/v1", Flavor::OpenAi, "openai").unwrap());
        let get = r.route(
            &Method::GET,
            &Url::parse("https://api.openai.com/v1/responses").unwrap(),
        );
        assert_eq!(get, None);
    }
}
