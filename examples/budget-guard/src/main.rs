//! `budget-guard`: an axum web service that caps what each user spends on LLM calls per day.
//! See README.md.
//!
//! - Every request but `/healthz` names its caller with `Authorization: Bearer KEY`, where
//!   KEY is one of the `[api_keys]` table of the budgets file (`"KEY" = "user"`). A missing or
//!   unknown key gets **401** with a JSON error saying what to send. Keys are compared in
//!   constant time and never reach a span, a log line or a `Debug` output. The caller is
//!   never taken from the body (a `user` field there is ignored).
//! - `POST /chat` with `{"prompt": "...", "max_tokens": 256}` reserves the
//!   call's worst case (the prompt's tokens, counted with the model's tokenizer, plus
//!   `max_tokens`, at the model's prices) against every budget rule of the user. Past a limit
//!   it answers **429** with `Retry-After` (seconds to the rule's reset, e.g. the next local
//!   midnight of the rule's time zone) and the rule, spend and limit as JSON. Otherwise it
//!   calls the model and answers the completion and the call's exact cost; the
//!   [`llmtel_budget::BudgetLayer`] settles the reservation to that cost when the LLM span
//!   closes.
//! - `GET /budget`: the caller's own spend, reservations, limit and reset time per rule.
//!   `GET /budget/{user}` answers the same for the caller's own user and **403** for anyone
//!   else's.
//! - Hostile input is bounded: bodies over 64 KiB get **413**, a prompt over
//!   32 KiB, a `max_tokens` over 16,384 or another model than the
//!   simulated one get **400**, each with a JSON error saying what to change.
//! - The model is **simulated** (there is no provider call in this example): fixed latency,
//!   input tokens = the prompt's tokens, a fixed 48 output tokens, priced as `gpt-4o-mini`
//!   from llmtel's catalog, so it runs anywhere.
//! - Rules: `examples/budget-guard/budgets.toml`, or the file named by `BUDGET_CONFIG`.
//!   Store: Redis when `REDIS_URL` is set (keys under `BUDGET_REDIS_PREFIX`, default
//!   `llmtel:budget-guard:`), shared by every replica; else SQLite when `BUDGET_DB` is set;
//!   else the store the file's `[store]` table names (`kind`, `path`, `url`, `prefix`,
//!   `ca_file`, as `llmtel budget status` reads it); else SQLite `budget-guard.db`. The
//!   table's `on_store_error` (`"open"`, the default, or `"closed"`) says what `/chat` does
//!   while the store is down; any other value stops the service at startup.
//! - On SIGTERM or Ctrl-C it stops accepting, lets the requests being served finish (up to
//!   [`DRAIN_TIMEOUT`]), then writes the spend still queued for the store and exits.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use llmtel::{Catalog, Usage};
use llmtel_alert::{AlertDispatcher, AlertmanagerSink, LogSink};
use llmtel_budget::{
    BudgetStore, Budgets, CallContext, Config, Estimate, FailMode, RedisStore, ReserveError,
    SqliteStore, StoreConfig,
};
use llmtel_metrics::listener::{Limits, serve_with_limits_until};
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::{Choice, ConstantTimeEq};
use tracing::Instrument;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The simulated model, priced from llmtel's catalog like the real one.
const SIM_PROVIDER: &str = "openai";
const SIM_MODEL: &str = "gpt-4o-mini";
/// Output tokens of every simulated answer.
const SIM_OUTPUT_TOKENS: u64 = 48;
/// `max_tokens` when the request does not say.
const DEFAULT_MAX_TOKENS: u64 = 256;
/// The largest request body read; a larger one gets 413 before it is buffered.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest prompt accepted (bytes of UTF-8); a longer one gets 400.
const MAX_PROMPT_BYTES: usize = 32 * 1024;
/// The largest `max_tokens` accepted; a larger one gets 400.
const MAX_MAX_TOKENS: u64 = 16_384;
/// The shortest API key accepted in the budgets file.
const MIN_API_KEY_CHARS: usize = 16;
/// The longest user name an API key may map to.
const MAX_USER_BYTES: usize = 256;
/// How long a shutdown waits for the requests being served before it writes the queued
/// spend and exits.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// What a caller without a valid key is told to send.
const AUTH_HINT: &str = "send `Authorization: Bearer <API key>`, with a key of the [api_keys] table of the budgets file";

#[derive(Debug)]
struct App {
    budgets: Budgets,
    keys: ApiKeys,
    latency: Duration,
}

/// The `[api_keys]` table of the budgets file: API key → user.
///
/// `Debug` shows how many keys there are, never a key.
struct ApiKeys {
    entries: Vec<(Box<[u8]>, String)>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// Reads the `[api_keys]` table (`"KEY" = "user"`). The errors name the user, never the key.
    fn from_toml(table: Option<toml::Value>) -> Result<ApiKeys, String> {
        const EXAMPLE: &str = "add one, e.g.\n  [api_keys]\n  \"<a long random key, e.g. from `openssl rand -hex 24`>\" = \"alice\"";
        let table = match table {
            None => return Err(format!("no [api_keys] table: {EXAMPLE}")),
            Some(toml::Value::Table(t)) => t,
            Some(_) => return Err(format!("api_keys must be a table: {EXAMPLE}")),
        };
        if table.is_empty() {
            return Err(format!("the [api_keys] table is empty: {EXAMPLE}"));
        }
        let mut entries = Vec::with_capacity(table.len());
        for (n, (key, user)) in table.into_iter().enumerate() {
            let n = n + 1;
            let user = match user {
                toml::Value::String(u) if !u.trim().is_empty() && u.len() <= MAX_USER_BYTES => u,
                _ => {
                    return Err(format!(
                        "[api_keys] entry {n}: the user must be a non-empty string of at most {MAX_USER_BYTES} bytes"
                    ));
                }
            };
            if key.chars().count() < MIN_API_KEY_CHARS {
                return Err(format!(
                    "[api_keys]: the key of user {user:?} is shorter than {MIN_API_KEY_CHARS} characters; use a long random key (e.g. `openssl rand -hex 24`)"
                ));
            }
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "[api_keys]: the key of user {user:?} must be printable ASCII without spaces (it is sent in an HTTP header)"
                ));
            }
            entries.push((key.into_bytes().into_boxed_slice(), user));
        }
        Ok(ApiKeys { entries })
    }

    /// The user whose key is `presented`. Every key is compared, each in constant time, so
    /// the answer's timing does not tell which key (or how much of one, or its length)
    /// matched.
    fn user_for(&self, presented: &[u8]) -> Option<&str> {
        let mut found = None;
        for (key, user) in &self.entries {
            if bool::from(ct_eq(key, presented)) {
                found = Some(user.as_str());
            }
        }
        found
    }

    /// The caller named by the request's `Authorization: Bearer KEY` header.
    fn caller(&self, headers: &HeaderMap) -> Result<&str, &'static str> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err("missing API key");
        };
        let value = value.as_bytes();
        let scheme = b"bearer ";
        if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Err("the Authorization header is not `Bearer <API key>`");
        }
        let key = value[scheme.len()..].trim_ascii();
        self.user_for(key).ok_or("unknown API key")
    }
}

/// Whether `presented` equals `key`, in a time that depends on `key`'s length only: every
/// byte of `key` is compared (against 0 past the end of `presented`), whatever matched.
fn ct_eq(key: &[u8], presented: &[u8]) -> Choice {
    let mut equal = key.len().ct_eq(&presented.len());
    for (i, k) in key.iter().enumerate() {
        equal &= k.ct_eq(presented.get(i).unwrap_or(&0));
    }
    equal
}

/// The authenticated caller, put in the request's extensions by [`authenticate`].
#[derive(Clone, Debug)]
struct Caller(String);

/// Answers 401 unless the request carries a known API key; otherwise passes the caller on.
/// Runs before the body is read.
async fn authenticate(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let user = match app.keys.caller(req.headers()) {
        Ok(user) => {
            // The access log names the user, never the key.
            tracing::debug!(user.id = %user, method = %req.method(), "caller authenticated");
            user.to_owned()
        }
        Err(why) => {
            tracing::info!(reason = why, method = %req.method(), "401: no valid API key");
            let mut resp = (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": format!("{why}: {AUTH_HINT}") })),
            )
                .into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"budget-guard\""),
            );
            return resp;
        }
    };
    req.extensions_mut().insert(Caller(user));
    next.run(req).await
}

/// The body of `POST /chat`. Unknown fields (such as a `user`) are ignored: the caller comes
/// from the API key.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    prompt: String,
    /// Upper bound of the answer's tokens; the reservation assumes all of them.
    max_tokens: Option<u64>,
    /// The model; only the simulated one is served.
    model: Option<String>,
}

#[derive(Debug, Serialize)]
struct ChatResponse {
    completion: String,
    model: &'static str,
    simulated: bool,
    input_tokens: u64,
    output_tokens: u64,
    /// What was reserved before the call (prompt tokens + max_tokens), USD.
    reserved_usd: f64,
    /// The call's cost in USD (for display).
    cost_usd: f64,
    /// The same cost exactly, in pico-dollars (1e-12 USD).
    cost_picousd: u64,
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

/// A body that could not be read as a [`ChatRequest`]: the status axum chose (413 past
/// [`MAX_BODY_BYTES`], 415 without a JSON content type, 400/422 for bad JSON) and what to send.
fn bad_body(rejection: &JsonRejection) -> Response {
    let status = rejection.status();
    let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the request body is larger than {MAX_BODY_BYTES} bytes; send a shorter prompt")
    } else {
        // serde's message can quote the input: keep it short.
        let detail: String = rejection.body_text().chars().take(200).collect();
        format!(
            "send `Content-Type: application/json` and a body like {{\"prompt\": \"Hello!\", \"max_tokens\": 256}} ({detail})"
        )
    };
    error(status, msg)
}

/// Usage of the simulated model: the prompt's tokens in, a fixed answer length out.
fn simulated_usage(prompt_tokens: u64) -> Usage {
    Usage {
        input_tokens: prompt_tokens,
        output_tokens: SIM_OUTPUT_TOKENS,
        ..Default::default()
    }
}

async fn chat(
    State(app): State<Arc<App>>,
    Extension(Caller(user)): Extension<Caller>,
    body: Result<Json<ChatRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(req)) => req,
        Err(rejection) => return bad_body(&rejection),
    };
    if req.prompt.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "`prompt` must not be empty");
    }
    if req.prompt.len() > MAX_PROMPT_BYTES {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`prompt` is longer than {MAX_PROMPT_BYTES} bytes; shorten it"),
        );
    }
    if req.model.as_deref().is_some_and(|m| m != SIM_MODEL) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "`model` must be {SIM_MODEL:?} (the only model this example simulates) or left out"
            ),
        );
    }
    let max_tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if !(SIM_OUTPUT_TOKENS..=MAX_MAX_TOKENS).contains(&max_tokens) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "max_tokens must be from {SIM_OUTPUT_TOKENS} (the simulated answer) to {MAX_MAX_TOKENS}"
            ),
        );
    }
    let today = app.budgets.now().to_zoned(jiff::tz::TimeZone::UTC).date();
    // The worst case of the call, reserved before it runs.
    let prompt_tokens = llmtel::estimate::count_tokens(SIM_MODEL, &req.prompt).tokens;
    let estimate = match Estimate::for_model(
        Catalog::builtin(),
        SIM_MODEL,
        Some(SIM_PROVIDER),
        prompt_tokens,
        max_tokens,
        today,
    ) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let ctx = CallContext::new()
        .with_user(user.as_str())
        .with_model(SIM_MODEL)
        .with_provider(SIM_PROVIDER);
    let reservation = match app.budgets.reserve(&ctx, estimate) {
        Ok(r) => r,
        Err(e) => return refused(&app, &e),
    };

    let llm = llmtel::llm_span!("chat", SIM_PROVIDER, SIM_MODEL, user.id = %user);
    llm.record("gen_ai.request.max_tokens", max_tokens);
    // The budget layer settles the reservation with the actual cost when this span closes.
    reservation.bind(&llm);
    let usage = simulated_usage(prompt_tokens);
    let completion = async {
        // SIMULATION: no provider is called; a fixed latency and a canned answer.
        tokio::time::sleep(app.latency).await;
        let span = tracing::Span::current();
        llmtel::record_response(&span, "sim-1", SIM_MODEL, &["stop"]);
        llmtel::record_usage(&span, &usage);
        format!(
            "[simulated {SIM_MODEL}] You said {} characters; here is a canned answer.",
            req.prompt.chars().count()
        )
    }
    .instrument(llm)
    .await; // the LLM span closes here

    let cost = match Catalog::builtin().price(SIM_MODEL, Some(SIM_PROVIDER), &usage, today) {
        Ok(p) => p.breakdown.total,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    Json(ChatResponse {
        completion,
        model: SIM_MODEL,
        simulated: true,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        reserved_usd: estimate.usd.as_f64(),
        cost_usd: cost.as_f64(),
        cost_picousd: u64::try_from(cost.picos()).unwrap_or(u64::MAX),
    })
    .into_response()
}

/// The answer to a call the budgets refused: 429 with `Retry-After` past a limit, 503 when
/// the store is down (fail-closed), 403 for any other refusal (e.g. a rule's policy for
/// models without a price), with the reason.
fn refused(app: &App, e: &ReserveError) -> Response {
    if let Some(e) = e.exceeded() {
        let retry = e.retry_after_secs(app.budgets.now());
        let body = json!({
            "error": "budget exceeded",
            "rule": e.rule,
            "scope": e.scope,
            "period": e.period,
            "spent_usd": e.spent.as_f64(),
            "limit_usd": e.limit.as_f64(),
            "resets_at": e.resets_at.map(|t| t.to_string()),
            "retry_after_secs": retry,
        });
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
        if let Some(s) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        return resp;
    }
    let status = if matches!(e, ReserveError::StoreUnavailable(_)) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::FORBIDDEN
    };
    error(status, e.to_string())
}

/// `GET /budget`: the caller's own budgets, one row per rule that applies to them.
async fn own_budget(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>) -> Response {
    budget_of(&app, &caller.0)
}

/// `GET /budget/{user}`: the same as `GET /budget` for the caller's own user, 403 for anyone
/// else's.
async fn user_budget(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
) -> Response {
    if user != caller.0 {
        return error(
            StatusCode::FORBIDDEN,
            "an API key reads only its own user's budget: GET /budget",
        );
    }
    budget_of(&app, &caller.0)
}

/// The user's budgets: one row per rule that applies to them.
fn budget_of(app: &App, user: &str) -> Response {
    match app.budgets.status_for(&CallContext::new().with_user(user)) {
        Ok(rows) => Json(
            rows.iter()
                .map(|r| {
                    json!({
                        "rule": r.rule,
                        "scope": r.scope,
                        "period": r.period,
                        "spent_usd": r.spent.as_f64(),
                        "spent_picousd": u64::try_from(r.spent.picos()).unwrap_or(u64::MAX),
                        "reserved_usd": r.reserved.as_f64(),
                        "reserved_picousd": u64::try_from(r.reserved.picos()).unwrap_or(u64::MAX),
                        "limit_usd": r.limit.map(|l| l.as_f64()),
                        "utilization": r.utilization,
                        "resets_at": r.resets_at.map(|t| t.to_string()),
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Reads the budgets file: the rules and `[store]` for llmtel-budget, the `[api_keys]` table
/// for this service (taken out before the rest is parsed).
fn load_config(path: &FsPath) -> Result<(Config, ApiKeys), String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut table: toml::Table = src
        .parse()
        .map_err(|e: toml::de::Error| format!("{}: {}", path.display(), e.message()))?;
    let keys = ApiKeys::from_toml(table.remove("api_keys"))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let config = Config::from_toml_str(&table.to_string())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((config, keys))
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// What `/chat` does while the store is down: the `[store]` table's `on_store_error`. Any
/// value but `"open"` (the default) and `"closed"` is an error: a typo (`"Closed"`) would
/// otherwise turn enforcement off during an outage.
fn fail_mode(store: &StoreConfig) -> Result<FailMode, String> {
    match store.on_store_error.as_deref() {
        None | Some("open") => Ok(FailMode::Open),
        Some("closed") => Ok(FailMode::Closed),
        Some(other) => Err(format!(
            "[store] on_store_error = {other:?}: expected \"open\" (admit calls, buffer the spend) or \"closed\" (answer 503)"
        )),
    }
}

/// Whether the `[store]` table says where the budgets live (any field but `on_store_error`).
fn names_a_store(store: &StoreConfig) -> bool {
    store.kind.is_some()
        || store.path.is_some()
        || store.url.is_some()
        || store.prefix.is_some()
        || store.ca_file.is_some()
}

/// The store: Redis when `REDIS_URL` is set, else SQLite when `BUDGET_DB` is set, else the
/// one the file's `[store]` table names, else SQLite `budget-guard.db`. Returns it with a
/// description for the startup line (never a URL's password).
fn open_store(file: &StoreConfig) -> Result<(Arc<dyn BudgetStore>, String), String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let overridden = |by: &str| {
        if names_a_store(file) {
            eprintln!(
                "budget-guard: {by} is set: the budgets file's [store] table ({}) is not used",
                store_description(file)
            );
        }
    };
    if let Some(url) = env("REDIS_URL") {
        overridden("REDIS_URL");
        let prefix = env_or("BUDGET_REDIS_PREFIX", "llmtel:budget-guard:");
        let store = RedisStore::open(&url)
            .map_err(|e| format!("REDIS_URL: {e}"))?
            .with_prefix(&prefix);
        return Ok((Arc::new(store), format!("redis (prefix {prefix})")));
    }
    if let Some(path) = env("BUDGET_DB") {
        overridden("BUDGET_DB");
        let store = SqliteStore::open(&path).map_err(|e| format!("BUDGET_DB {path}: {e}"))?;
        return Ok((Arc::new(store), format!("sqlite {path}")));
    }
    if names_a_store(file) {
        if file.kind.is_none() {
            return Err(
                "the [store] table names no `kind`: add kind = \"sqlite\" (with `path`), \"redis\" (with `url`) or \"memory\""
                    .into(),
            );
        }
        let store = llmtel_budget::open_store(file).map_err(|e| format!("[store]: {e}"))?;
        return Ok((store, store_description(file)));
    }
    let path = "budget-guard.db";
    let store = SqliteStore::open(path).map_err(|e| format!("SQLite {path}: {e}"))?;
    Ok((Arc::new(store), format!("sqlite {path}")))
}

/// The `[store]` table in a few words, without a URL's password.
fn store_description(file: &StoreConfig) -> String {
    let mut d = file.kind.clone().unwrap_or_else(|| "no kind".into());
    if let Some(p) = &file.path {
        d.push_str(&format!(" {p}"));
    }
    if let Some(u) = &file.url {
        d.push_str(&format!(" {}", llmtel_budget::redact_url_credentials(u)));
    }
    if let Some(p) = &file.prefix {
        d.push_str(&format!(" (prefix {p})"));
    }
    d
}

/// The requests being served, so that a shutdown lets them finish before the queued spend is
/// written: the listener stops accepting at SIGTERM, but a request already in its handler
/// would otherwise lose its answer and its settled spend when `run` returns.
#[derive(Clone, Default)]
struct Drain {
    in_flight: Arc<AtomicUsize>,
    /// Set at SIGTERM: answers then carry `Connection: close`, so a kept-alive client does not
    /// send its next request to a service that is going away.
    stopping: Arc<AtomicBool>,
}

/// One request in flight; counted off when the handler ends (or is dropped).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drain {
    /// Middleware: counts the request while its handler runs.
    async fn track(State(drain): State<Drain>, req: Request, next: Next) -> Response {
        drain.in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight(drain.in_flight.clone());
        let mut resp = next.run(req).await;
        if drain.stopping.load(Ordering::SeqCst) {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    /// Waits until no request is being served, at most `limit`; the requests still running
    /// then (0 when all finished).
    async fn until_idle(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let n = self.in_flight.load(Ordering::SeqCst);
            if n == 0 || Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("budget-guard: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let host = env_or("HOST", "127.0.0.1");
    let port: u16 = env_or("PORT", "8080")
        .parse()
        .map_err(|e| format!("PORT: {e}"))?;
    let latency = Duration::from_millis(
        env_or("SIM_LATENCY_MS", "50")
            .parse()
            .map_err(|e| format!("SIM_LATENCY_MS: {e}"))?,
    );
    let config_path = std::env::var_os("BUDGET_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/budgets.toml")));
    let (config, keys) = load_config(&config_path)?;
    if std::env::var_os("OPENAI_API_KEY").is_some() {
        eprintln!(
            "budget-guard: OPENAI_API_KEY is set, but this example only simulates the model (no provider call is wired in)"
        );
    }

    // Threshold alerts and store outages: to the log, and to Alertmanager when named.
    let mut alerts = AlertDispatcher::builder().with_sink(Arc::new(LogSink::new()));
    if let Some(url) = std::env::var("ALERTMANAGER_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        alerts = alerts.with_sink(Arc::new(
            AlertmanagerSink::new(&url).map_err(|e| format!("ALERTMANAGER_URL: {e}"))?,
        ));
    }
    let fail = fail_mode(&config.store).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let (store, store_name) =
        open_store(&config.store).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let budgets = Budgets::builder()
        .with_rules(config.rules.clone())
        .with_store(store)
        .with_fail_mode(fail)
        .with_alerts(alerts.build())
        .build();

    // Inner layers run first: llmtel builds the priced call, then the budget layer records it.
    // (An OpenTelemetry layer, to export traces, goes after the budget layer.)
    tracing_subscriber::registry()
        .with(llmtel::layer())
        .with(budgets.layer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::EnvFilter::new(env_or(
                    "RUST_LOG", "warn",
                ))),
        )
        .init();

    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("HOST/PORT {host}:{port}: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    eprintln!(
        "budget-guard: POST http://{}/chat, GET /budget (Authorization: Bearer <API key>); {} rule(s) and {} API key(s) from {}; store {store_name}",
        listener.local_addr()?,
        config.rules.len(),
        keys.entries.len(),
        config_path.display(),
    );
    let state = Arc::new(App {
        budgets: budgets.clone(),
        keys,
        latency,
    });
    let drain = Drain::default();
    let app = Router::new()
        .route("/chat", post(chat))
        .route("/budget", get(own_budget))
        .route("/budget/{user}", get(user_budget))
        // Every route above needs an API key; the check runs before the body is read.
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .layer(middleware::from_fn_with_state(drain.clone(), Drain::track));
    // Bounded connections, a header-read timeout, an idle timeout and head/body limits: a
    // slow or hostile client cannot stall the service.
    // The listener's own body cap sits above the app's MAX_BODY_BYTES, so bodies in between
    // get the app's JSON 413 that says what to do; anything past 4 MiB is refused unread.
    let limits = Limits::default()
        .with_max_connections(256)
        .with_max_body_bytes(4 * 1024 * 1024);
    let stopping = drain.stopping.clone();
    serve_with_limits_until(listener, app, limits, async move {
        shutdown().await;
        stopping.store(true, Ordering::SeqCst);
    })
    .await?;
    // No new connection is accepted; the requests being served finish (their reservations
    // settle) before the spend is written.
    let left = drain.until_idle(DRAIN_TIMEOUT).await;
    if left > 0 {
        eprintln!(
            "budget-guard: {left} request(s) still running after {DRAIN_TIMEOUT:?}; exiting without them"
        );
    }
    // Write the spend still queued for the store before exiting.
    if !budgets.flush(Duration::from_secs(5)) {
        eprintln!("budget-guard: some spend could not be written before exit (store down?)");
    }
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/budgets.toml");
    const README: &str = include_str!("../README.md");

    #[test]
    fn the_shipped_budgets_file_has_the_two_demo_keys_the_readme_documents() {
        let (config, keys) = load_config(FsPath::new(SHIPPED)).unwrap();
        assert_eq!(config.rules.len(), 1);
        assert_eq!(keys.entries.len(), 2);
        for (key, user) in [
            ("demo-key-alice-5b1f0c7e9a2d4e86", "alice"),
            ("demo-key-bob-c3a8e2f17d9b4a05", "bob"),
        ] {
            assert_eq!(keys.user_for(key.as_bytes()), Some(user));
            assert!(README.contains(key), "README does not document {key}");
        }
        assert_eq!(keys.user_for(b"demo-key-alice"), None);
        assert_eq!(keys.user_for(b"demo-key-alice-5b1f0c7e9a2d4e860"), None);
        assert_eq!(keys.user_for(b"demo-key-alice-5b1f0c7e9a2d4e8\0"), None);
        assert_eq!(keys.user_for(b""), None);
    }

    #[test]
    fn debug_of_the_api_keys_never_shows_a_key() {
        let (_, keys) = load_config(FsPath::new(SHIPPED)).unwrap();
        let debug = format!("{keys:?} {keys:#?}");
        assert!(debug.contains("keys: 2"), "{debug}");
        assert!(!debug.contains("demo-key"), "{debug}");
    }

    #[test]
    fn the_bearer_scheme_is_parsed_and_anything_else_is_refused() {
        let (_, keys) = load_config(FsPath::new(SHIPPED)).unwrap();
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            keys.caller(&h).map(str::to_owned)
        };
        assert_eq!(
            with("Bearer demo-key-bob-c3a8e2f17d9b4a05").as_deref(),
            Ok("bob")
        );
        assert_eq!(
            with("BEARER  demo-key-bob-c3a8e2f17d9b4a05 ").as_deref(),
            Ok("bob")
        );
        assert_eq!(
            with("demo-key-bob-c3a8e2f17d9b4a05"),
            Err("the Authorization header is not `Bearer <API key>`")
        );
        assert_eq!(with("Bearer nope"), Err("unknown API key"));
        assert_eq!(keys.caller(&HeaderMap::new()), Err("missing API key"));
    }
}
