//! `budget-guard`: an axum web service that caps what each user spends on LLM calls per day.
//! See README.md.
//!
//! - `POST /chat` with `{"user": "...", "prompt": "...", "max_tokens": 256}` reserves the
//!   call's worst case (the prompt's tokens, counted with the model's tokenizer, plus
//!   `max_tokens`, at the model's prices) against every budget rule of the user. Past a limit
//!   it answers **429** with `Retry-After` (seconds to the rule's reset, e.g. the next local
//!   midnight of the rule's time zone) and the rule, spend and limit as JSON. Otherwise it
//!   calls the model and answers the completion and the call's exact cost; the
//!   [`llmtel_budget::BudgetLayer`] settles the reservation to that cost when the LLM span
//!   closes.
//! - `GET /budget/{user}`: the user's spend, reservations, limit and reset time per rule.
//! - The model is **simulated** (there is no provider call in this example): fixed latency,
//!   input tokens = the prompt's tokens, a fixed 48 output tokens, priced as `gpt-4o-mini`
//!   from llmtel's catalog, so it runs anywhere.
//! - Rules: `examples/budget-guard/budgets.toml`, or the file named by `BUDGET_CONFIG`.
//!   Store: SQLite (`BUDGET_DB`, default `budget-guard.db`) unless `REDIS_URL` is set, then
//!   Redis (keys under `BUDGET_REDIS_PREFIX`, default `llmtel:budget-guard:`), shared by every
//!   replica.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use llmtel::{Catalog, Usage};
use llmtel_alert::{AlertDispatcher, AlertmanagerSink, LogSink};
use llmtel_budget::{
    BudgetStore, Budgets, CallContext, Config, Estimate, FailMode, RedisStore, ReserveError,
    SqliteStore,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
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

#[derive(Debug)]
struct App {
    budgets: Budgets,
    latency: Duration,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    user: String,
    prompt: String,
    /// Upper bound of the answer's tokens; the reservation assumes all of them.
    #[serde(default)]
    max_tokens: Option<u64>,
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

/// Usage of the simulated model: the prompt's tokens in, a fixed answer length out.
fn simulated_usage(prompt_tokens: u64) -> Usage {
    Usage {
        input_tokens: prompt_tokens,
        output_tokens: SIM_OUTPUT_TOKENS,
        ..Default::default()
    }
}

async fn chat(State(app): State<Arc<App>>, Json(req): Json<ChatRequest>) -> Response {
    if req.user.trim().is_empty() || req.prompt.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "`user` and `prompt` must not be empty",
        );
    }
    let max_tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if max_tokens < SIM_OUTPUT_TOKENS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("max_tokens must be at least {SIM_OUTPUT_TOKENS} (the simulated answer)"),
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
        .with_user(req.user.as_str())
        .with_model(SIM_MODEL)
        .with_provider(SIM_PROVIDER);
    let reservation = match app.budgets.reserve(&ctx, estimate) {
        Ok(r) => r,
        Err(ReserveError::Exceeded(e)) => {
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
        Err(e @ ReserveError::StoreUnavailable(_)) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
    };

    let llm = llmtel::llm_span!("chat", SIM_PROVIDER, SIM_MODEL, user.id = %req.user);
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

/// The user's budgets: one row per rule that applies to them.
async fn budget(State(app): State<Arc<App>>, Path(user): Path<String>) -> Response {
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

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// SQLite unless `REDIS_URL` is set.
fn open_store() -> Result<(Arc<dyn BudgetStore>, String), String> {
    match std::env::var("REDIS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(url) => {
            let prefix = env_or("BUDGET_REDIS_PREFIX", "llmtel:budget-guard:");
            let store = RedisStore::open(&url)
                .map_err(|e| format!("REDIS_URL: {e}"))?
                .with_prefix(&prefix);
            Ok((Arc::new(store), format!("redis (prefix {prefix})")))
        }
        None => {
            let path = env_or("BUDGET_DB", "budget-guard.db");
            let store = SqliteStore::open(&path).map_err(|e| format!("BUDGET_DB {path}: {e}"))?;
            Ok((Arc::new(store), format!("sqlite {path}")))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let config = Config::load(&config_path)?;
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
    let (store, store_name) = open_store()?;
    let fail = match config.store.on_store_error.as_deref() {
        Some("closed") => FailMode::Closed,
        _ => FailMode::Open,
    };
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
        "budget-guard: POST http://{}/chat, GET /budget/{{user}}; {} rule(s) from {}; store {store_name}",
        listener.local_addr()?,
        config.rules.len(),
        config_path.display(),
    );
    let app = Router::new()
        .route("/chat", post(chat))
        .route("/budget/{user}", get(budget))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(App {
            budgets: budgets.clone(),
            latency,
        }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
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
