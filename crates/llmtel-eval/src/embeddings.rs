//! Relevance of the answer to the question by embeddings, from any OpenAI-compatible
//! `/v1/embeddings` endpoint.

use serde_json::{Value, json};

use super::remote::{Endpoint, EndpointConfig, EndpointConfigError, endpoint_setters};
use super::{EvalError, EvalFuture, EvalInput, Evaluation, Evaluator, TryEvalFuture};

/// The default threshold of [`EmbeddingRelevance`]: a cosine similarity at or above it is
/// labelled `relevant`.
///
/// 0.4 suits OpenAI's `text-embedding-3-*` models, where unrelated text typically scores
/// below 0.3 and a question with a real answer above 0.4; other models spread similarities
/// differently: calibrate on a few labelled pairs of your own with
/// [`EmbeddingRelevanceBuilder::with_threshold`].
pub const DEFAULT_EMBEDDING_THRESHOLD: f64 = 0.4;

/// The default `llmtel.feature` of the evaluator's own embeddings calls.
pub const EMBEDDINGS_FEATURE: &str = "llmtel.embedding_relevance";

/// Builds an [`EmbeddingRelevance`]; see [`EmbeddingRelevance::builder`].
#[derive(Debug)]
pub struct EmbeddingRelevanceBuilder {
    endpoint: EndpointConfig,
    name: String,
    threshold: f64,
    dimensions: Option<u32>,
}

impl EmbeddingRelevanceBuilder {
    endpoint_setters!();

    /// The evaluation name (default `embedding_relevance`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The cosine similarity at or above which the answer is `relevant` (default
    /// [`DEFAULT_EMBEDDING_THRESHOLD`]).
    pub fn with_threshold(mut self, t: f64) -> Self {
        self.threshold = t;
        self
    }

    /// Asks for vectors of this many dimensions (`dimensions`, for models that support it).
    pub fn with_dimensions(mut self, n: u32) -> Self {
        self.dimensions = Some(n);
        self
    }

    /// Builds the evaluator (its HTTP client; nothing is sent).
    ///
    /// ## Errors
    /// An invalid or non-HTTP base URL, an empty model, a threshold outside `0..=1`, or an
    /// HTTP client that cannot be created.
    pub fn build(self) -> Result<EmbeddingRelevance, EndpointConfigError> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(EndpointConfigError::InvalidThreshold(self.threshold));
        }
        Ok(EmbeddingRelevance {
            endpoint: Endpoint::build(self.endpoint, "embeddings", "embeddings", "embeddings")?,
            name: self.name,
            threshold: self.threshold,
            dimensions: self.dimensions,
        })
    }
}

/// Relevance by embeddings: the cosine similarity of the question's and the answer's
/// embeddings, both from **one** request to an OpenAI-compatible `embeddings` endpoint.
///
/// Score = the cosine similarity, negative values as 0 (`0..=1`); label `relevant` at or
/// above the threshold ([`DEFAULT_EMBEDDING_THRESHOLD`]), else `irrelevant`. Unlike
/// [`crate::LexicalRelevance`] it sees answers relevant in other words. Applies when the input
/// has a question and a non-empty answer. Nothing is cached.
///
/// Its own call is a GenAI span `embeddings {model}`, priced under its own `llmtel.feature`
/// (default `llmtel.embedding_relevance`) and marked `llmtel.evaluation = "true"`, like
/// [`crate::LlmJudge`]'s.
///
/// ```no_run
/// use llmtel_eval::EmbeddingRelevance;
///
/// let relevance = EmbeddingRelevance::builder("https://api.openai.com/v1", "text-embedding-3-small")
///     .with_api_key(std::env::var("OPENAI_API_KEY").unwrap_or_default())
///     .build()?;
/// // Then `Quality::builder().with_evaluator(Arc::new(relevance))` (llmtel-quality).
/// # Ok::<(), llmtel_eval::EndpointConfigError>(())
/// ```
#[derive(Debug)]
pub struct EmbeddingRelevance {
    endpoint: Endpoint,
    name: String,
    threshold: f64,
    dimensions: Option<u32>,
}

impl EmbeddingRelevance {
    /// An evaluator calling embeddings `model` at `base_url`, an OpenAI-style base URL with or
    /// without `/v1`, or the full `.../embeddings` URL.
    pub fn builder(
        base_url: impl Into<String>,
        model: impl Into<String>,
    ) -> EmbeddingRelevanceBuilder {
        Self::with_endpoint(EndpointConfig::new(
            base_url.into(),
            model.into(),
            EMBEDDINGS_FEATURE,
        ))
    }

    /// Like [`EmbeddingRelevance::builder`], with the base URL from `OPENAI_BASE_URL`
    /// (default `https://api.openai.com/v1`) and the key from `OPENAI_API_KEY`.
    pub fn builder_from_env(model: impl Into<String>) -> EmbeddingRelevanceBuilder {
        Self::with_endpoint(EndpointConfig::from_env(model.into(), EMBEDDINGS_FEATURE))
    }

    fn with_endpoint(endpoint: EndpointConfig) -> EmbeddingRelevanceBuilder {
        EmbeddingRelevanceBuilder {
            endpoint,
            name: "embedding_relevance".into(),
            threshold: DEFAULT_EMBEDDING_THRESHOLD,
            dimensions: None,
        }
    }

    /// The full URL the evaluator posts to (without credentials).
    pub fn url(&self) -> &str {
        self.endpoint.url()
    }

    /// Scores one input (what the pipeline runs): `Ok(None)` when it does not apply.
    ///
    /// Call it from one Tokio runtime (the pipeline's evaluation thread has one): the HTTP
    /// client's pooled connections belong to the runtime that opened them.
    ///
    /// ## Errors
    /// See [`EvalError`]: the endpoint failed or did not return two usable vectors.
    pub async fn relevance(&self, input: &EvalInput) -> Result<Option<Evaluation>, EvalError> {
        let q = input.question.as_deref().map(str::trim).unwrap_or_default();
        let a = input.answer.trim();
        if q.is_empty() || a.is_empty() {
            return Ok(None);
        }
        let mut body = json!({
            "model": self.endpoint.model(),
            "input": [q, a],
            "encoding_format": "float",
        });
        if let Some(d) = self.dimensions {
            body["dimensions"] = json!(d);
        }
        let mut call = self.endpoint.open_call(input);
        let resp = self.endpoint.post(&mut call, &body).await?;
        let cos = call.settle(self.vectors(&resp).and_then(|(x, y)| self.cosine(&x, &y)))?;
        let score = cos.max(0.0);
        let label = if score >= self.threshold {
            "relevant"
        } else {
            "irrelevant"
        };
        Ok(Some(Evaluation::new(
            self.name.clone(),
            score,
            label,
            format!(
                "cosine similarity {cos:.3} of question and answer embeddings ({}), threshold {}",
                self.endpoint.model(),
                self.threshold
            ),
        )))
    }

    /// The two vectors of `data`, ordered by `index`.
    fn vectors(&self, resp: &Value) -> Result<(Vec<f64>, Vec<f64>), EvalError> {
        let data = resp
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| self.endpoint.malformed("no data array"))?;
        let mut out: [Option<Vec<f64>>; 2] = [None, None];
        for item in data {
            let idx = item
                .get("index")
                .and_then(Value::as_u64)
                .ok_or_else(|| self.endpoint.malformed("a data item has no index"))?;
            let slot = out
                .get_mut(idx as usize)
                .ok_or_else(|| self.endpoint.malformed(format!("unexpected index {idx}")))?;
            let v = item
                .get("embedding")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    self.endpoint.malformed(
                        "an embedding is not an array of floats (base64 encoding is not read)",
                    )
                })?
                .iter()
                .map(Value::as_f64)
                .collect::<Option<Vec<f64>>>()
                .ok_or_else(|| self.endpoint.malformed("an embedding holds a non-number"))?;
            *slot = Some(v);
        }
        match out {
            [Some(x), Some(y)] => Ok((x, y)),
            _ => Err(self
                .endpoint
                .malformed(format!("{} embeddings for 2 inputs", data.len()))),
        }
    }

    fn cosine(&self, x: &[f64], y: &[f64]) -> Result<f64, EvalError> {
        if x.len() != y.len() || x.is_empty() {
            return Err(self.endpoint.malformed(format!(
                "embeddings of {} and {} dimensions",
                x.len(),
                y.len()
            )));
        }
        let dot: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
        let nx = x.iter().map(|a| a * a).sum::<f64>().sqrt();
        let ny = y.iter().map(|b| b * b).sum::<f64>().sqrt();
        let cos = dot / (nx * ny);
        if cos.is_finite() {
            Ok(cos.clamp(-1.0, 1.0))
        } else {
            Err(self.endpoint.malformed("a zero or non-finite embedding"))
        }
    }
}

impl Evaluator for EmbeddingRelevance {
    fn name(&self) -> &str {
        &self.name
    }

    fn evaluate<'a>(&'a self, input: &'a EvalInput) -> EvalFuture<'a> {
        Box::pin(async move { self.relevance(input).await.ok().flatten() })
    }

    fn try_evaluate<'a>(&'a self, input: &'a EvalInput) -> TryEvalFuture<'a> {
        Box::pin(self.relevance(input))
    }
}
