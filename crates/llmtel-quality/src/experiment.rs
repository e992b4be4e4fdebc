//! Offline evaluation: run an app function over a dataset with chosen evaluators, each
//! example traced, and get an experiment summary (scores, cost, latency).
//!
//! - [`Dataset`]: examples from JSONL (`{"id"?, "input", "expected"?, "context"?, "metadata"?}`).
//! - [`Experiment`]: the evaluators ([`Evaluator`]s on the answer, [`ReferenceEvaluator`]s
//!   such as [`ExpectedOutput`] against `expected`), the concurrency, and
//!   [`Experiment::run`].
//! - [`ExperimentSink`]: the [`llmtel::CallSink`] that hands the LLM calls made inside each
//!   example to the run, so that cost, tokens and LLM latency come from the real spans.
//! - [`ExperimentSummary`]: per-example rows and totals, as a text table (`Display`) and JSON.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::io::BufRead;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, StreamExt as _};
use llmtel::{CallSink, LlmCall, Usd};
use llmtel_semconv::llmtel as lt;
use opentelemetry::trace::{SpanId, TraceId};
use serde::Serialize;
use tracing::Instrument as _;

use crate::emit::{EvaluationRecord, TARGET, emit_evaluation};
use crate::eval::words;
use crate::eval::{EvalInput, Evaluation, Evaluator};

// ---------------------------------------------------------------------------
// Dataset
// ---------------------------------------------------------------------------

/// One example of a [`Dataset`]: what the app gets, and what a right answer looks like.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Example {
    /// Unique in its dataset: the `id` of the line (a string or a number), else `line-<n>`.
    pub id: String,
    /// The app's input (a question, a prompt, a ticket).
    pub input: String,
    /// The expected output, for [`ReferenceEvaluator`]s; examples without one are not scored
    /// by them.
    pub expected: Option<String>,
    /// Documents the answer should be grounded in (given to the evaluators as context).
    pub context: Vec<String>,
    /// Anything else the app needs (user, feature, tags), as given.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Why a dataset could not be read. A malformed line stops the read: the error names the
/// line, so the file can be fixed and read again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The file could not be opened or read.
    #[error("cannot read dataset {}: {source}", path.display())]
    Io {
        /// The dataset file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a valid example.
    #[error(
        "dataset line {line}: {message}; each line must be one JSON object such as \
         {{\"id\": \"q1\", \"input\": \"...\", \"expected\": \"...\", \"context\": [\"...\"], \"metadata\": {{}}}} \
         (only `input` is required)"
    )]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Two examples have the same id.
    #[error(
        "dataset line {line}: id {id:?} is already used on line {first_line}; ids must be unique"
    )]
    DuplicateId {
        /// The id.
        id: String,
        /// Where it first appears.
        first_line: usize,
        /// Where it appears again.
        line: usize,
    },
    /// The dataset has no example (only blank lines).
    #[error("the dataset has no example: add one JSON object per line")]
    Empty,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExample {
    id: Option<serde_json::Value>,
    input: String,
    expected: Option<String>,
    #[serde(default)]
    context: Vec<String>,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
}

/// Examples to run an [`Experiment`] over, in file order.
///
/// ```
/// let jsonl = r#"
/// {"id": "capital", "input": "What is the capital of France?", "expected": "Paris"}
/// {"input": "2 + 2?", "expected": "4", "metadata": {"topic": "math"}}
/// "#;
/// let dataset = llmtel_quality::Dataset::from_reader(jsonl.as_bytes())?;
/// assert_eq!(dataset.len(), 2);
/// assert_eq!(dataset.examples()[1].id, "line-3"); // no id: named after its line
///
/// let bad = llmtel_quality::Dataset::from_reader(r#"{"question": "?"}"#.as_bytes());
/// assert!(bad.unwrap_err().to_string().starts_with("dataset line 1: unknown field `question`"));
/// # Ok::<(), llmtel_quality::DatasetError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Dataset {
    examples: Vec<Example>,
}

impl Dataset {
    /// A dataset of these examples.
    ///
    /// # Errors
    /// [`DatasetError::DuplicateId`] when two examples share an id (lines are counted from 1
    /// in the order given); [`DatasetError::Empty`] when there is none.
    pub fn new(examples: Vec<Example>) -> Result<Dataset, DatasetError> {
        let mut seen = HashMap::new();
        for (i, ex) in examples.iter().enumerate() {
            check_unique(&mut seen, &ex.id, i + 1)?;
        }
        if examples.is_empty() {
            return Err(DatasetError::Empty);
        }
        Ok(Dataset { examples })
    }

    /// Reads a JSONL file (see [`Dataset::from_reader`]).
    ///
    /// # Errors
    /// [`DatasetError::Io`] when the file cannot be read, else as [`Dataset::from_reader`].
    pub fn from_jsonl(path: impl AsRef<Path>) -> Result<Dataset, DatasetError> {
        let path = path.as_ref();
        let io = |source| DatasetError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        Dataset::read(std::io::BufReader::new(file)).map_err(|e| match e {
            ReadError::Io(source) => io(source),
            ReadError::Dataset(e) => e,
        })
    }

    /// Reads JSONL: one example per line, `{"id"?, "input", "expected"?, "context"?: [..],
    /// "metadata"?: {..}}`. Blank lines are skipped; an `id` may be a string or a number
    /// (missing: `line-<n>`). Unknown fields are refused, so that a typo (`"expect"`) does not
    /// silently leave examples unscored.
    ///
    /// # Errors
    /// The first malformed line ([`DatasetError::Line`], with its number and what is wrong),
    /// a duplicate id, no example at all, or an I/O error (reported as line 0 of the reader).
    pub fn from_reader(reader: impl std::io::Read) -> Result<Dataset, DatasetError> {
        Dataset::read(std::io::BufReader::new(reader)).map_err(|e| match e {
            ReadError::Io(source) => DatasetError::Line {
                line: 0,
                message: format!("cannot read: {source}"),
            },
            ReadError::Dataset(e) => e,
        })
    }

    fn read(reader: impl BufRead) -> Result<Dataset, ReadError> {
        let mut examples = Vec::new();
        let mut seen = HashMap::new();
        for (i, line) in reader.lines().enumerate() {
            let n = i + 1;
            let line = line.map_err(ReadError::Io)?;
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            let raw: RawExample = serde_json::from_str(text).map_err(|e| DatasetError::Line {
                line: n,
                message: strip_position(&e),
            })?;
            let id = match raw.id {
                None | Some(serde_json::Value::Null) => format!("line-{n}"),
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s,
                Some(serde_json::Value::Number(v)) => v.to_string(),
                Some(other) => {
                    return Err(DatasetError::Line {
                        line: n,
                        message: format!(
                            "`id` must be a non-empty string or a number, not {other}"
                        ),
                    }
                    .into());
                }
            };
            check_unique(&mut seen, &id, n)?;
            examples.push(Example {
                id,
                input: raw.input,
                expected: raw.expected,
                context: raw.context,
                metadata: raw.metadata,
            });
        }
        if examples.is_empty() {
            return Err(DatasetError::Empty.into());
        }
        Ok(Dataset { examples })
    }

    /// The examples, in file order.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there is no example (never true for a dataset that was read successfully).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

enum ReadError {
    Io(std::io::Error),
    Dataset(DatasetError),
}

impl From<DatasetError> for ReadError {
    fn from(e: DatasetError) -> Self {
        ReadError::Dataset(e)
    }
}

fn check_unique(
    seen: &mut HashMap<String, usize>,
    id: &str,
    line: usize,
) -> Result<(), DatasetError> {
    if let Some(&first_line) = seen.get(id) {
        return Err(DatasetError::DuplicateId {
            id: id.to_owned(),
            first_line,
            line,
        });
    }
    seen.insert(id.to_owned(), line);
    Ok(())
}

/// serde_json's message without its ` at line 1 column 9` (the line is ours to give).
fn strip_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    }
}

// ---------------------------------------------------------------------------
// Reference evaluators
// ---------------------------------------------------------------------------

/// An evaluator that compares the answer with the example's `expected` output. Run by an
/// [`Experiment`] on every example that has one.
pub trait ReferenceEvaluator: Send + Sync + fmt::Debug + 'static {
    /// The evaluation name (`gen_ai.evaluation.name`), also the summary's column.
    fn name(&self) -> &str;
    /// Scores `answer` against `expected`, `0..=1`.
    fn score(&self, answer: &str, expected: &str) -> Evaluation;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchMode {
    Exact,
    Normalised,
    TokenF1,
}

/// The expected-output evaluator: exact match, normalised match or token F1.
///
/// - [`ExpectedOutput::exact`] (`exact_match`): 1 when the answer equals `expected` once
///   leading and trailing whitespace is trimmed, else 0.
/// - [`ExpectedOutput::normalised`] (`normalised_match`): 1 when both are equal as words:
///   lower-cased, punctuation removed, articles (`a`, `an`, `the`) dropped, whitespace
///   collapsed (the SQuAD normalisation).
/// - [`ExpectedOutput::token_f1`] (`token_f1`): the F1 of the normalised words of the answer
///   against those of `expected` (bag of words: precision = common / answer words, recall =
///   common / expected words).
///
/// ```
/// use llmtel_quality::{ExpectedOutput, ReferenceEvaluator};
/// let f1 = ExpectedOutput::token_f1().score("The capital is Paris", "Paris");
/// assert_eq!(f1.score, 0.5); // precision 1/3 ("capital", "is", "paris"), recall 1/1
/// assert_eq!(ExpectedOutput::normalised().score("Paris.", "paris").score, 1.0);
/// assert_eq!(ExpectedOutput::exact().score("Paris.", "paris").score, 0.0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedOutput {
    mode: MatchMode,
}

impl ExpectedOutput {
    /// Exact match after trimming (`exact_match`).
    pub fn exact() -> Self {
        ExpectedOutput {
            mode: MatchMode::Exact,
        }
    }

    /// Match of the normalised words (`normalised_match`).
    pub fn normalised() -> Self {
        ExpectedOutput {
            mode: MatchMode::Normalised,
        }
    }

    /// Token F1 of the normalised words (`token_f1`).
    pub fn token_f1() -> Self {
        ExpectedOutput {
            mode: MatchMode::TokenF1,
        }
    }
}

fn normalised_words(s: &str) -> Vec<String> {
    words(s)
        .into_iter()
        .filter(|w| !matches!(w.as_str(), "a" | "an" | "the"))
        .collect()
}

/// SQuAD token F1 of two bags of words (both empty: 1; one empty: 0).
fn token_f1(answer: &[String], expected: &[String]) -> f64 {
    if answer.is_empty() || expected.is_empty() {
        return if answer.is_empty() && expected.is_empty() {
            1.0
        } else {
            0.0
        };
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in expected {
        *counts.entry(w.as_str()).or_default() += 1;
    }
    let mut common = 0usize;
    for w in answer {
        if let Some(c) = counts.get_mut(w.as_str()) {
            if *c > 0 {
                *c -= 1;
                common += 1;
            }
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / answer.len() as f64;
    let recall = common as f64 / expected.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

impl ReferenceEvaluator for ExpectedOutput {
    fn name(&self) -> &str {
        match self.mode {
            MatchMode::Exact => "exact_match",
            MatchMode::Normalised => "normalised_match",
            MatchMode::TokenF1 => "token_f1",
        }
    }

    fn score(&self, answer: &str, expected: &str) -> Evaluation {
        let name = self.name();
        let matched = |ok: bool, how: &str| {
            Evaluation::new(
                name,
                if ok { 1.0 } else { 0.0 },
                if ok { "match" } else { "mismatch" },
                if ok {
                    format!("the answer equals the expected output ({how})")
                } else {
                    format!("the answer differs from the expected output ({how})")
                },
            )
        };
        match self.mode {
            MatchMode::Exact => matched(answer.trim() == expected.trim(), "exact"),
            MatchMode::Normalised => matched(
                normalised_words(answer) == normalised_words(expected),
                "normalised words",
            ),
            MatchMode::TokenF1 => {
                let (a, e) = (normalised_words(answer), normalised_words(expected));
                let f1 = token_f1(&a, &e);
                let label = if f1 >= 1.0 {
                    "match"
                } else if f1 > 0.0 {
                    "partial"
                } else {
                    "mismatch"
                };
                Evaluation::new(
                    name,
                    f1,
                    label,
                    format!(
                        "token F1 {f1:.3} ({} answer words, {} expected words)",
                        a.len(),
                        e.len()
                    ),
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The LLM calls of each example
// ---------------------------------------------------------------------------

/// What the runs in progress collect, by run id.
static RUNS: LazyLock<Mutex<HashMap<String, Arc<RunCalls>>>> = LazyLock::new(Default::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The LLM calls of one run, aggregated per example id as they close (bounded: one
/// aggregate per example, whatever the number of calls).
#[derive(Debug, Default)]
struct RunCalls {
    by_example: Mutex<HashMap<String, CallTotals>>,
}

/// The LLM calls made inside one example, as llmtel's layer reported them.
#[derive(Clone, Debug, Default, PartialEq)]
struct CallTotals {
    calls: u64,
    priced: u64,
    unpriced: u64,
    failed: u64,
    cost: Usd,
    input_tokens: u64,
    output_tokens: u64,
    llm_time: Duration,
    /// The last call that closed: the one evaluations are attached to.
    last: Option<LastCall>,
}

#[derive(Clone, Debug, PartialEq)]
struct LastCall {
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    response_id: Option<String>,
}

impl CallTotals {
    fn add(&mut self, call: &LlmCall) {
        self.calls += 1;
        if call.is_error() {
            self.failed += 1;
        }
        match call.cost_usd() {
            Some(c) => {
                self.priced += 1;
                self.cost = self.cost.saturating_add(c);
            }
            // A failed call with no usage costs nothing and is not "unpriced".
            None if !call.is_error() || call.has_usage => self.unpriced += 1,
            None => {}
        }
        self.input_tokens = self.input_tokens.saturating_add(call.usage.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(call.usage.output_tokens);
        self.llm_time = self.llm_time.saturating_add(call.duration);
        self.last = Some(LastCall {
            trace_id: call.trace_id,
            span_id: call.span_id,
            response_id: call.response_id.clone(),
        });
    }
}

/// Registers a run while it is alive; unregisters it on drop (also when the run's future is
/// dropped half-way).
struct Registration {
    run_id: String,
    calls: Arc<RunCalls>,
}

impl Registration {
    fn new() -> Registration {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let run_id = format!(
            "{:x}-{:x}-{}",
            nanos & 0xffff_ffff_ffff,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let calls = Arc::new(RunCalls::default());
        lock(&RUNS).insert(run_id.clone(), calls.clone());
        Registration { run_id, calls }
    }

    fn take(&self, example_id: &str) -> CallTotals {
        // The sink files calls under the example id as llmtel captured it: capped.
        lock(&self.calls.by_example)
            .remove(llmtel::cap_value(example_id).as_ref())
            .unwrap_or_default()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&RUNS).remove(&self.run_id);
    }
}

/// The [`CallSink`] that gives each running [`Experiment`] the LLM calls made inside its
/// examples: add it to the process's [`llmtel::LlmLayer`] (or `llmtel::builder().with_sink(..)`).
///
/// Each example runs in a span carrying `llmtel.experiment.run_id` and
/// `llmtel.experiment.example.id`; llmtel's layer passes them down to the LLM calls below
/// it (as it does for `llmtel.*` app dimensions), and this sink files each call under its run
/// and example. A call made outside an experiment costs it one scan of the call's custom
/// dimensions. Without this sink the experiment still runs, but sees no call: its rows show
/// no cost and the summary says how many examples made no LLM call it could see.
///
/// ```
/// use std::sync::Arc;
/// let layer = llmtel::LlmLayer::new().with_sink(Arc::new(llmtel_quality::ExperimentSink));
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ExperimentSink;

impl CallSink for ExperimentSink {
    fn on_call(&self, call: &LlmCall) {
        let Some(run) = call.dimensions.get(lt::EXPERIMENT_RUN_ID) else {
            return;
        };
        let Some(example) = call.dimensions.get(lt::EXPERIMENT_EXAMPLE_ID) else {
            return;
        };
        let calls = lock(&RUNS).get(run).cloned();
        if let Some(calls) = calls {
            lock(&calls.by_example)
                .entry(example.to_owned())
                .or_default()
                .add(call);
        }
    }

    /// The experiment reads an example's calls as soon as it has run.
    fn on_request_thread(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------
// Experiment
// ---------------------------------------------------------------------------

/// Runs an app function over a [`Dataset`], traces each example, scores the answers and
/// summarises scores, cost and latency ([`ExperimentSummary`]).
///
/// Each example runs inside its own trace, in a span named `llmtel.experiment.example`
/// (`otel.name` = `experiment <name> <id>`, attributes `llmtel.experiment.name`,
/// `llmtel.experiment.run_id`, `llmtel.experiment.example.id`), which parents the app's own
/// LLM spans. Cost, tokens and LLM time per example come from those spans through
/// [`ExperimentSink`]; latency is the example's wall time (the app function, start to end).
/// Every evaluation is also emitted as a `gen_ai.evaluation.result` span on the example's
/// last LLM call ([`emit_evaluation`]).
///
/// An app error or panic is counted in the example's row and the summary; the run goes on.
///
/// ```
/// use std::sync::Arc;
/// use tracing_subscriber::prelude::*;
/// use llmtel_quality::{Dataset, ExpectedOutput, Experiment};
///
/// let dataset = Dataset::from_reader(
///     r#"{"id": "q1", "input": "Capital of France?", "expected": "Paris"}
///        {"id": "q2", "input": "Capital of Italy?", "expected": "Rome"}"#.as_bytes(),
/// )?;
/// let subscriber = tracing_subscriber::registry()
///     .with(llmtel::LlmLayer::new().with_sink(Arc::new(llmtel_quality::ExperimentSink)));
/// let _default = tracing::subscriber::set_default(subscriber);
///
/// let experiment = Experiment::new("capitals")
///     .with_reference_evaluator(Arc::new(ExpectedOutput::normalised()))
///     .with_concurrency(2);
/// let summary = block_on(experiment.run(&dataset, |example| async move {
///     let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
///     llmtel::record_usage(&span, &llmtel::Usage { input_tokens: 30, output_tokens: 2, ..Default::default() });
///     Ok::<_, std::convert::Infallible>(if example.id == "q1" { "Paris" } else { "Milan" }.to_owned())
/// }));
/// assert_eq!(summary.evaluators["normalised_match"].pass_rate, 0.5);
/// assert_eq!(summary.calls, 2);
/// println!("{summary}");
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// # Ok::<(), llmtel_quality::DatasetError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Experiment {
    name: String,
    evaluators: Vec<Arc<dyn Evaluator>>,
    reference: Vec<Arc<dyn ReferenceEvaluator>>,
    concurrency: usize,
    pass_threshold: f64,
    thresholds: BTreeMap<String, f64>,
    emit: bool,
}

impl Experiment {
    /// An experiment with no evaluator, one example at a time, a pass threshold of 0.5, and
    /// evaluations emitted as spans.
    pub fn new(name: impl Into<String>) -> Experiment {
        Experiment {
            name: name.into(),
            evaluators: Vec::new(),
            reference: Vec::new(),
            concurrency: 1,
            pass_threshold: 0.5,
            thresholds: BTreeMap::new(),
            emit: true,
        }
    }

    /// Adds an evaluator of the answer (the built-ins: relevance, fluency, groundedness,
    /// refusal, JSON validity, PII), given the example's input as the question and its
    /// context.
    pub fn with_evaluator(mut self, evaluator: Arc<dyn Evaluator>) -> Self {
        self.evaluators.push(evaluator);
        self
    }

    /// Adds several evaluators, e.g. [`crate::eval::builtin`].
    pub fn with_evaluators(
        mut self,
        evaluators: impl IntoIterator<Item = Arc<dyn Evaluator>>,
    ) -> Self {
        self.evaluators.extend(evaluators);
        self
    }

    /// Adds an evaluator against the example's `expected` output, e.g. [`ExpectedOutput`].
    pub fn with_reference_evaluator(mut self, evaluator: Arc<dyn ReferenceEvaluator>) -> Self {
        self.reference.push(evaluator);
        self
    }

    /// At most `n` examples in flight at once (default 1; 0 is taken as 1). They run
    /// concurrently in the task that awaits [`Experiment::run`].
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The score from which an evaluation counts as passed (default 0.5; NaN is ignored).
    pub fn with_pass_threshold(mut self, threshold: f64) -> Self {
        if !threshold.is_nan() {
            self.pass_threshold = threshold;
        }
        self
    }

    /// The pass threshold of one evaluator, by name (NaN is ignored).
    pub fn with_threshold(mut self, evaluator: impl Into<String>, threshold: f64) -> Self {
        if !threshold.is_nan() {
            self.thresholds.insert(evaluator.into(), threshold);
        }
        self
    }

    /// Whether evaluations are emitted as `gen_ai.evaluation.result` spans (default on).
    pub fn with_emit_evaluations(mut self, on: bool) -> Self {
        self.emit = on;
        self
    }

    /// The experiment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn threshold(&self, evaluator: &str) -> f64 {
        self.thresholds
            .get(evaluator)
            .copied()
            .unwrap_or(self.pass_threshold)
    }

    /// Runs `app` on every example of `dataset` (at most [`Experiment::with_concurrency`] at
    /// once), scores the answers and returns the summary, rows in dataset order.
    ///
    /// `app` gets the example and returns the answer, or an error (any `Display`), which is
    /// counted in the example's row. A panic in the app is caught and counted the same way;
    /// a panic in an evaluator is its error on that example (`evaluation_errors`).
    /// The LLM calls the app makes must close before its future completes (calls in tasks
    /// that outlive it are not counted).
    pub async fn run<F, Fut, E>(&self, dataset: &Dataset, app: F) -> ExperimentSummary
    where
        F: Fn(Example) -> Fut,
        Fut: Future<Output = Result<String, E>>,
        E: fmt::Display,
    {
        let registration = Registration::new();
        let reg = &registration;
        let app = &app;
        let examples = dataset.examples();
        // Indices, not `&Example`s, go through the stream: a closure over borrowed items
        // would make the run's future lose `Send` (rustc's higher-ranked closure limits).
        let mut rows: Vec<(usize, ExampleResult)> = futures_util::stream::iter(0..examples.len())
            .map(|i| async move { (i, self.run_one(reg, &examples[i], app).await) })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        rows.sort_by_key(|(i, _)| *i);
        let rows = rows.into_iter().map(|(_, r)| r).collect();
        ExperimentSummary::new(self, &registration.run_id, rows)
    }

    async fn run_one<F, Fut, E>(&self, reg: &Registration, ex: &Example, app: &F) -> ExampleResult
    where
        F: Fn(Example) -> Fut,
        Fut: Future<Output = Result<String, E>>,
        E: fmt::Display,
    {
        let span = tracing::info_span!(
            target: TARGET,
            parent: None,
            "llmtel.experiment.example",
            "otel.name" = %format_args!("experiment {} {}", self.name, ex.id),
            "otel.status_code" = tracing::field::Empty,
            "otel.status_description" = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            "llmtel.experiment.name" = %self.name,
            "llmtel.experiment.run_id" = %reg.run_id,
            "llmtel.experiment.example.id" = %ex.id,
        );
        let started = Instant::now();
        // A panic while building the future or while polling it fails this example only.
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| {
            span.in_scope(|| app(ex.clone()))
        })) {
            Ok(fut) => {
                AssertUnwindSafe(fut.instrument(span.clone()))
                    .catch_unwind()
                    .await
            }
            Err(panic) => Err(panic),
        };
        let latency = started.elapsed();
        let calls = reg.take(&ex.id);
        let (answer, error) = match outcome {
            Ok(Ok(answer)) => (Some(answer), None),
            Ok(Err(e)) => {
                let msg = e.to_string();
                span.record("error.type", "app_error");
                (None, Some(msg))
            }
            Err(panic) => {
                span.record("error.type", "panic");
                (
                    None,
                    Some(format!("the app panicked: {}", panic_message(&*panic))),
                )
            }
        };
        if let Some(msg) = &error {
            span.record("otel.status_code", "error");
            span.record("otel.status_description", msg.as_str());
        }
        let mut scores = BTreeMap::new();
        let mut evaluation_errors = BTreeMap::new();
        if let Some(answer) = &answer {
            let (evaluations, errors) = self.evaluate(ex, answer, calls.last.as_ref()).await;
            evaluation_errors = errors;
            for evaluation in evaluations {
                if self.emit {
                    span.in_scope(|| emit(&evaluation, calls.last.as_ref()));
                }
                let passed = evaluation.score >= self.threshold(&evaluation.name);
                scores.insert(
                    evaluation.name.clone(),
                    Score {
                        score: evaluation.score,
                        label: evaluation.label,
                        passed,
                        explanation: evaluation.explanation,
                    },
                );
            }
        }
        ExampleResult {
            id: ex.id.clone(),
            evaluation_errors,
            answer,
            error,
            scores,
            cost: calls.cost,
            calls: calls.calls,
            unpriced_calls: calls.unpriced,
            failed_calls: calls.failed,
            input_tokens: calls.input_tokens,
            output_tokens: calls.output_tokens,
            latency_ms: latency.as_secs_f64() * 1000.0,
            llm_time_ms: calls.llm_time.as_secs_f64() * 1000.0,
            trace_id: calls
                .last
                .as_ref()
                .and_then(|l| l.trace_id)
                .map(|t| t.to_string()),
        }
    }

    async fn evaluate(
        &self,
        ex: &Example,
        answer: &str,
        last: Option<&LastCall>,
    ) -> (Vec<Evaluation>, BTreeMap<String, String>) {
        let mut input = EvalInput::new(answer).with_question(ex.input.clone());
        input.context = ex.context.clone();
        if let Some(last) = last {
            input.response_id = last.response_id.clone();
            input.trace_id = last.trace_id;
            input.span_id = last.span_id;
        }
        let mut out = Vec::new();
        let mut errors = BTreeMap::new();
        for evaluator in &self.evaluators {
            // Its error is kept, not read as "did not apply": a judge whose provider refuses
            // (a wrong key, a rate limit) would otherwise vanish from the summary, or score
            // only the examples that got through. A panic (building the future or polling it)
            // is this evaluator's error on this example: it aborted the whole run.
            let outcome =
                match std::panic::catch_unwind(AssertUnwindSafe(|| evaluator.try_evaluate(&input)))
                {
                    Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
                    Err(panic) => Err(panic),
                };
            let error = match outcome {
                Ok(Ok(Some(e))) => {
                    out.push(e);
                    continue;
                }
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => e.to_string(),
                Err(panic) => format!("the evaluator panicked: {}", panic_message(&*panic)),
            };
            errors.insert(
                evaluator.name().to_owned(),
                llmtel::redact::redact_string(error),
            );
        }
        if let Some(expected) = &ex.expected {
            for evaluator in &self.reference {
                match std::panic::catch_unwind(AssertUnwindSafe(|| {
                    evaluator.score(answer, expected)
                })) {
                    Ok(e) => out.push(e),
                    Err(panic) => {
                        errors.insert(
                            evaluator.name().to_owned(),
                            llmtel::redact::redact_string(format!(
                                "the evaluator panicked: {}",
                                panic_message(&*panic)
                            )),
                        );
                    }
                }
            }
        }
        (out, errors)
    }
}

/// A panic's message, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

fn emit(e: &Evaluation, last: Option<&LastCall>) {
    emit_evaluation(&EvaluationRecord {
        name: e.name.clone(),
        score: Some(e.score),
        label: Some(e.label.clone()),
        explanation: Some(e.explanation.clone()),
        response_id: last.and_then(|l| l.response_id.clone()),
        trace_id: last.and_then(|l| l.trace_id),
        span_id: last.and_then(|l| l.span_id),
        error_type: None,
    });
}

// ---------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------

/// One evaluator's result on one example.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Score {
    /// `0..=1`, higher is better.
    pub score: f64,
    /// The evaluator's label (`match`, `relevant`, ...).
    pub label: String,
    /// Whether the score reached the evaluator's pass threshold.
    pub passed: bool,
    /// The evaluator's explanation.
    pub explanation: String,
}

/// One example of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExampleResult {
    /// The example's id.
    pub id: String,
    /// The app's answer, when it gave one.
    pub answer: Option<String>,
    /// The app's error (or panic), when it failed.
    pub error: Option<String>,
    /// Scores by evaluator name (evaluators that did not apply, or failed, are absent).
    pub scores: BTreeMap<String, Score>,
    /// Evaluators that failed on this example (a judge's provider refusing or timing out),
    /// by name, with their error (credentials redacted).
    pub evaluation_errors: BTreeMap<String, String>,
    /// Cost of the example's priced LLM calls, USD (exact; JSON: a number).
    pub cost: Usd,
    /// LLM calls made inside the example.
    pub calls: u64,
    /// Calls that could not be priced (unknown model, missing usage).
    pub unpriced_calls: u64,
    /// Calls that failed (`error.type`).
    pub failed_calls: u64,
    /// Input tokens of its calls.
    pub input_tokens: u64,
    /// Output tokens of its calls.
    pub output_tokens: u64,
    /// Wall time of the app function, milliseconds.
    pub latency_ms: f64,
    /// Time spent in LLM calls (sum of their spans' durations), milliseconds.
    pub llm_time_ms: f64,
    /// Trace id of its last LLM call (hex), when an OpenTelemetry layer is installed.
    pub trace_id: Option<String>,
}

/// One evaluator over a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvaluatorSummary {
    /// Examples it scored.
    pub scored: usize,
    /// Examples it failed on (an error, in the row's `evaluation_errors`): left out of the
    /// mean and pass rate, which cover only `scored`.
    pub failed: usize,
    /// Mean score over them.
    pub mean: f64,
    /// Examples whose score reached the threshold.
    pub passed: usize,
    /// `passed / scored`.
    pub pass_rate: f64,
    /// The pass threshold used.
    pub threshold: f64,
}

/// The result of [`Experiment::run`]: per-example rows and totals. `Display` renders a text
/// table; [`ExperimentSummary::to_json`] gives JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExperimentSummary {
    /// The experiment's name.
    pub name: String,
    /// This run's id (`llmtel.experiment.run_id` on every example span).
    pub run_id: String,
    /// Rows, in dataset order.
    pub rows: Vec<ExampleResult>,
    /// Per evaluator, by name.
    pub evaluators: BTreeMap<String, EvaluatorSummary>,
    /// Examples run.
    pub examples: usize,
    /// Examples where the app failed.
    pub errors: usize,
    /// LLM calls, all examples.
    pub calls: u64,
    /// Examples that completed with no LLM call seen (the app made none, or
    /// [`ExperimentSink`] is not installed).
    pub examples_without_calls: usize,
    /// Calls that could not be priced.
    pub unpriced_calls: u64,
    /// Total cost, USD.
    pub total_cost: Usd,
    /// Total cost / examples, USD.
    pub mean_cost: Usd,
    /// Median example latency, milliseconds (nearest rank).
    pub latency_p50_ms: f64,
    /// 95th percentile example latency, milliseconds (nearest rank).
    pub latency_p95_ms: f64,
}

/// Nearest-rank percentile of sorted values (`p` in `0..=1`); 0 for no value.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The summary of evaluator `name`, made when first seen.
fn evaluator_entry<'m>(
    evaluators: &'m mut BTreeMap<String, EvaluatorSummary>,
    exp: &Experiment,
    name: &str,
) -> &'m mut EvaluatorSummary {
    evaluators
        .entry(name.to_owned())
        .or_insert_with(|| EvaluatorSummary {
            scored: 0,
            failed: 0,
            mean: 0.0,
            passed: 0,
            pass_rate: 0.0,
            threshold: exp.threshold(name),
        })
}

impl ExperimentSummary {
    fn new(exp: &Experiment, run_id: &str, rows: Vec<ExampleResult>) -> ExperimentSummary {
        let mut evaluators: BTreeMap<String, EvaluatorSummary> = BTreeMap::new();
        let mut total_cost = Usd::ZERO;
        let mut latencies = Vec::with_capacity(rows.len());
        for row in &rows {
            for (name, s) in &row.scores {
                let e = evaluator_entry(&mut evaluators, exp, name);
                e.scored += 1;
                e.mean += s.score; // the sum until divided below
                e.passed += usize::from(s.passed);
            }
            for name in row.evaluation_errors.keys() {
                evaluator_entry(&mut evaluators, exp, name).failed += 1;
            }
            total_cost = total_cost.saturating_add(row.cost);
            latencies.push(row.latency_ms);
        }
        for e in evaluators.values_mut().filter(|e| e.scored > 0) {
            e.mean /= e.scored as f64;
            e.pass_rate = e.passed as f64 / e.scored as f64;
        }
        latencies.sort_by(f64::total_cmp);
        let n = rows.len();
        ExperimentSummary {
            name: exp.name.clone(),
            run_id: run_id.to_owned(),
            evaluators,
            examples: n,
            errors: rows.iter().filter(|r| r.error.is_some()).count(),
            calls: rows.iter().map(|r| r.calls).sum(),
            examples_without_calls: rows
                .iter()
                .filter(|r| r.error.is_none() && r.calls == 0)
                .count(),
            unpriced_calls: rows.iter().map(|r| r.unpriced_calls).sum(),
            total_cost,
            mean_cost: match u128::try_from(n) {
                Ok(d) if d > 0 => Usd::from_picos(total_cost.picos() / d),
                _ => Usd::ZERO,
            },
            latency_p50_ms: percentile(&latencies, 0.50),
            latency_p95_ms: percentile(&latencies, 0.95),
            rows,
        }
    }

    /// The summary as JSON (costs as numbers of dollars, latencies in milliseconds).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Cuts `s` to `max` characters, marking the cut with `…`.
fn cell(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

impl fmt::Display for ExperimentSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&String> = self.evaluators.keys().collect();
        let id_w = self
            .rows
            .iter()
            .map(|r| r.id.chars().count())
            .max()
            .unwrap_or(2)
            .clamp(2, 24);
        let col_w = |name: &str| name.chars().count().max(6);
        writeln!(
            f,
            "experiment {:?} (run {}): {} examples, {} failed",
            self.name, self.run_id, self.examples, self.errors
        )?;
        write!(f, "{:<id_w$}", "id")?;
        for n in &names {
            write!(f, "  {:>w$}", n, w = col_w(n))?;
        }
        writeln!(
            f,
            "  {:>5}  {:>12}  {:>10}  error",
            "calls", "cost", "latency"
        )?;
        for r in &self.rows {
            write!(f, "{:<id_w$}", cell(&r.id, id_w))?;
            for n in &names {
                let v = match r.scores.get(*n) {
                    Some(s) => format!("{:.2}{}", s.score, if s.passed { " " } else { "✗" }),
                    None => "-".to_owned(),
                };
                write!(f, "  {:>w$}", v, w = col_w(n))?;
            }
            writeln!(
                f,
                "  {:>5}  {:>12}  {:>7.1} ms  {}",
                r.calls,
                r.cost.to_string(),
                r.latency_ms,
                r.error.as_deref().map(|e| cell(e, 60)).unwrap_or_default()
            )?;
        }
        writeln!(
            f,
            "(✗: below the evaluator's pass threshold; -: not scored)"
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<18}  {:>6}  {:>9}  {:>6}  {:>6}  {:>9}",
            "evaluator", "mean", "pass rate", "scored", "failed", "threshold"
        )?;
        for (name, e) in &self.evaluators {
            writeln!(
                f,
                "{:<18}  {:>6.3}  {:>8.1}%  {:>6}  {:>6}  {:>9}",
                cell(name, 18),
                e.mean,
                e.pass_rate * 100.0,
                e.scored,
                e.failed,
                e.threshold
            )?;
        }
        writeln!(f)?;
        write!(
            f,
            "cost: total {}, mean {} per example | latency p50 {:.1} ms, p95 {:.1} ms | \
             {} LLM calls | failed examples: {}",
            self.total_cost,
            self.mean_cost,
            self.latency_p50_ms,
            self.latency_p95_ms,
            self.calls,
            self.errors
        )?;
        if self.unpriced_calls > 0 {
            write!(f, " | {} unpriced calls", self.unpriced_calls)?;
        }
        if self.examples_without_calls > 0 {
            write!(
                f,
                "\nnote: {} example(s) made no LLM call that the experiment saw; is \
                 llmtel_quality::ExperimentSink a sink of the LlmLayer?",
                self.examples_without_calls
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_field_names_are_the_semconv_names() {
        // `info_span!` needs literal field names: keep them equal to llmtel-semconv's.
        assert_eq!(lt::EXPERIMENT_EXAMPLE_SPAN, "llmtel.experiment.example");
        assert_eq!(lt::EXPERIMENT_NAME, "llmtel.experiment.name");
        assert_eq!(lt::EXPERIMENT_RUN_ID, "llmtel.experiment.run_id");
        assert_eq!(lt::EXPERIMENT_EXAMPLE_ID, "llmtel.experiment.example.id");
    }

    #[test]
    fn a_run_can_be_spawned_on_a_multi_threaded_runtime() {
        fn assert_send<T: Send>(_: &T) {}
        let dataset = Dataset::from_reader(r#"{"input": "q"}"#.as_bytes()).unwrap();
        let experiment = Experiment::new("send");
        let run = experiment.run(&dataset, |ex| async move { Ok::<_, String>(ex.input) });
        assert_send(&run);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 10.0);
        assert_eq!(percentile(&v, 0.95), 19.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn token_f1_counts_repeated_words_once_each() {
        let w = |s: &str| normalised_words(s);
        assert_eq!(token_f1(&w("paris paris"), &w("paris")), 2.0 / 3.0);
        assert_eq!(token_f1(&w(""), &w("")), 1.0);
        assert_eq!(token_f1(&w("rome"), &w("paris")), 0.0);
        assert_eq!(normalised_words("The  Eiffel tower!"), ["eiffel", "tower"]);
    }

    #[test]
    fn id_must_be_a_string_or_a_number() {
        let e = Dataset::from_reader(r#"{"id": [1], "input": "x"}"#.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("line 1: `id` must be"), "{e}");
        let d = Dataset::from_reader(r#"{"id": 7, "input": "x"}"#.as_bytes()).unwrap();
        assert_eq!(d.examples()[0].id, "7");
    }
}
