//! `axum-service`: a small web service whose LLM calls are traced, priced and measured by
//! llmtel. See README.md.
//!
//! - `POST /chat` with `{"user": "...", "prompt": "..."}` answers the completion and the
//!   call's exact cost. Without a provider key the model is **simulated**: fixed latency and
//!   deterministic usage, priced as `gpt-4o-mini` from llmtel's catalog. A prompt containing
//!   `simulate-error` makes the simulated provider fail (`rate_limit`), to see errors.
//! - Budgets (`llmtel-budget`): every user gets a daily budget (`USER_DAILY_BUDGET_USD`,
//!   default $1), reserved before the call; past it, `429` with `Retry-After`.
//! - Quality (`llmtel-quality`): every call feeds the monitor; each completion is evaluated
//!   off the request path by the built-in evaluators.
//! - Prometheus metrics at `/metrics` on `LLMTEL_METRICS_ADDR` (default 127.0.0.1:9464),
//!   with the budget and quality gauges.
//! - Traces (and the OpenTelemetry metrics) over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//! - On SIGTERM or Ctrl-C it stops accepting, lets the requests being served finish (up to
//!   [`DRAIN_TIMEOUT`]), then flushes their traces and metrics and exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use llmtel::{Catalog, Usage};
use llmtel_alert::{AlertDispatcher, AlertmanagerSink, LogSink};
use llmtel_budget::{Budgets, CallContext, Estimate, ReserveError};
use llmtel_metrics::listener::{Limits, serve_with_limits_until};
use llmtel_metrics::{CardinalityGuard, Dimension, PrometheusSink};
use llmtel_quality::{EvalInput, Quality};
use opentelemetry::trace::TracerProvider as _;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The simulated model: priced from llmtel's catalog like the real one.
const SIM_PROVIDER: &str = "openai";
const SIM_MODEL: &str = "gpt-4o-mini";
const SIM_OUTPUT_TOKENS: u64 = 48;
/// The largest answer a call may produce (reserved against the budget).
const MAX_TOKENS: u64 = 256;
/// The largest request body `/chat` reads (a bigger one gets 413 unread). Large enough for
/// the hostile-input test's 1 MiB user ids: the service must survive those, not refuse them.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// How long a shutdown waits for the requests being served before it flushes the telemetry
/// and exits. Under compose's `stop_grace_period` (docker-compose.yml), which must also
/// leave time for the flush.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct App {
    latency: Duration,
    budgets: Budgets,
    quality: Quality,
    calls: Arc<AtomicU64>,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    user: String,
    prompt: String,
    /// Optional feature name for spend by feature (default `chat`).
    feature: Option<String>,
}

#[derive(Debug, Serialize)]
struct ChatResponse {
    completion: String,
    model: &'static str,
    simulated: bool,
    input_tokens: u64,
    output_tokens: u64,
    /// The call's cost in USD (for display).
    cost_usd: f64,
    /// The same cost exactly, in pico-dollars (1e-12 USD).
    cost_picousd: u64,
    trace_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
    /// The failed call's trace, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
}

type ApiError = (StatusCode, Json<ErrorBody>);

fn bad(status: StatusCode, msg: impl Into<String>) -> ApiError {
    (
        status,
        Json(ErrorBody {
            error: msg.into(),
            trace_id: None,
        }),
    )
}

/// Usage of the simulated model: deterministic in the prompt.
fn simulated_usage(prompt: &str) -> Usage {
    Usage {
        input_tokens: 8 + (prompt.chars().count() as u64).div_ceil(4),
        output_tokens: SIM_OUTPUT_TOKENS,
        ..Default::default()
    }
}

async fn chat(State(app): State<App>, Json(req): Json<ChatRequest>) -> Response {
    match chat_inner(app, req).await {
        Ok(ok) => ok.into_response(),
        Err(Refused::Api(e)) => e.into_response(),
        Err(Refused::Budget(r)) => r,
    }
}

enum Refused {
    Api(ApiError),
    Budget(Response),
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Refused::Api(e)
    }
}

/// The 429 a handler answers past a budget: the rule, what was spent, and when it resets.
fn over_budget(app: &App, e: &llmtel_budget::BudgetExceeded) -> Response {
    let retry = e.retry_after_secs(app.budgets.now());
    let body = serde_json::json!({
        "error": "budget exceeded",
        "rule": e.rule,
        "scope": e.scope,
        "spent_usd": e.spent.as_f64(),
        "limit_usd": e.limit.as_f64(),
        "retry_after_secs": retry,
    });
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    if let Some(s) = retry {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

async fn chat_inner(app: App, req: ChatRequest) -> Result<Json<ChatResponse>, Refused> {
    if req.user.trim().is_empty() || req.prompt.trim().is_empty() {
        return Err(bad(
            StatusCode::BAD_REQUEST,
            "`user` and `prompt` must not be empty",
        )
        .into());
    }
    let feature = req.feature.clone().unwrap_or_else(|| "chat".into());
    let request_span = tracing::info_span!(
        "POST /chat",
        "user.id" = %req.user,
        "llmtel.feature" = %feature,
    );
    async move {
        // The budget, before the model is called: the prompt's tokens plus the largest
        // answer, at the model's prices.
        let today = app.budgets.now().to_zoned(jiff::tz::TimeZone::UTC).date();
        let prompt_tokens = llmtel::estimate::count_tokens(SIM_MODEL, &req.prompt).tokens;
        let estimate = Estimate::for_model(
            Catalog::builtin(),
            SIM_MODEL,
            Some(SIM_PROVIDER),
            prompt_tokens + 8,
            MAX_TOKENS,
            today,
        )
        .map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let ctx = CallContext::new()
            .with_user(req.user.as_str())
            .with_feature(feature.as_str())
            .with_model(SIM_MODEL)
            .with_provider(SIM_PROVIDER);
        let reservation = match app.budgets.reserve(&ctx, estimate) {
            Ok(r) => r,
            Err(ReserveError::Exceeded(e)) => return Err(Refused::Budget(over_budget(&app, &e))),
            Err(e @ ReserveError::Unpriced { .. }) => {
                return Err(bad(StatusCode::FORBIDDEN, e.to_string()).into());
            }
            Err(e @ ReserveError::StoreUnavailable(_)) => {
                return Err(bad(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into());
            }
        };
        let llm = llmtel::llm_span!("chat", SIM_PROVIDER, SIM_MODEL);
        // Settled to the actual cost when the LLM span closes.
        reservation.bind(&llm);
        let response_id = format!("sim-{}", app.calls.fetch_add(1, Ordering::Relaxed));
        let usage = simulated_usage(&req.prompt);
        let outcome = async {
            tokio::time::sleep(app.latency).await;
            if req.prompt.contains("simulate-error") {
                llmtel::record_error(
                    &tracing::Span::current(),
                    "rate_limit",
                    "simulated 429 from the provider",
                );
                return Err(());
            }
            llmtel::record_response(
                &tracing::Span::current(),
                &response_id,
                SIM_MODEL,
                &["stop"],
            );
            llmtel::record_usage(&tracing::Span::current(), &usage);
            Ok(format!(
                "[simulated {SIM_MODEL}] You said {} characters; here is a canned answer.",
                req.prompt.chars().count()
            ))
        }
        .instrument(llm)
        .await;
        // The LLM span has closed: its call is in this trace's summary, priced exactly.
        let summary = llmtel::current_trace_summary();
        let completion = match outcome {
            Ok(c) => c,
            Err(()) => {
                let (status, Json(mut body)) = bad(
                    StatusCode::BAD_GATEWAY,
                    "simulated provider error: rate_limit",
                );
                body.trace_id = summary.and_then(|s| s.trace_id);
                return Err(Refused::Api((status, Json(body))));
            }
        };
        // Quality: evaluated off the request path (relevance, fluency, refusal, PII, ...).
        app.quality.evaluate(
            EvalInput::new(completion.clone())
                .with_question(req.prompt.clone())
                .with_response_id(response_id.clone()),
        );
        let cost = summary.as_ref().map(|s| s.cost).unwrap_or_default();
        Ok(Json(ChatResponse {
            completion,
            model: SIM_MODEL,
            simulated: true,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_usd: cost.as_f64(),
            cost_picousd: u64::try_from(cost.picos()).unwrap_or(u64::MAX),
            trace_id: summary.and_then(|s| s.trace_id),
        }))
    }
    .instrument(request_span)
    .await
}

/// The requests being served, so that a shutdown lets them finish before the llmtel guard
/// is dropped: the listener stops accepting at SIGTERM, but a request already in its handler
/// would otherwise lose its answer, its span and its settled spend when `main` returns.
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

/// Alertmanager's webhook (the compose stack sends alerts here): logged to stderr.
// The budgets' and quality monitor's alerts also go to Alertmanager directly with ALERTMANAGER_URL.
async fn alerts(Json(body): Json<serde_json::Value>) -> StatusCode {
    let alerts = body["alerts"].as_array().map_or(0, Vec::len);
    eprintln!(
        "axum-service: alertmanager webhook: status={} alerts={alerts} group={}",
        body["status"], body["groupLabels"]
    );
    StatusCode::OK
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = env_or("HOST", "127.0.0.1");
    let port: u16 = env_or("PORT", "8080")
        .parse()
        .map_err(|e| format!("PORT: {e}"))?;
    let metrics_addr = env_or("LLMTEL_METRICS_ADDR", "127.0.0.1:9464");
    let latency = Duration::from_millis(
        env_or("SIM_LATENCY_MS", "150")
            .parse()
            .map_err(|e| format!("SIM_LATENCY_MS: {e}"))?,
    );
    if std::env::var_os("OPENAI_API_KEY").is_some() {
        eprintln!(
            "axum-service: OPENAI_API_KEY is set, but this example only simulates the model (a real provider call is not wired in yet)"
        );
    }

    // Prometheus: the classic series, spend also by user (capped) and feature.
    let guard = Arc::new(CardinalityGuard::new(100).with_cap("user", 1000));
    let prom = PrometheusSink::builder()
        .with_dimension(Dimension::User)
        .with_dimension(Dimension::Feature)
        .with_guard(guard)
        .build();
    // Budgets: a daily budget per user (memory store; see examples/budget-guard for SQLite
    // and Redis), and quality monitoring with the built-in evaluators. Their gauges go on
    // the same metrics endpoint.
    let budget_config = llmtel_budget::Config::from_toml_str(&format!(
        "[[rule]]\nname = \"per-user-daily\"\nscope = \"user\"\nperiod = \"day\"\nlimit_usd = \"{}\"\nthresholds = [50, 80, 100]\n",
        env_or("USER_DAILY_BUDGET_USD", "1")
    ))
    .map_err(|e| format!("USER_DAILY_BUDGET_USD: {e}"))?;
    // Budget thresholds (50, 80 and 100 % of a user's day) and quality alerts (error rate,
    // latency, ratings, cost): to the log, and to Alertmanager when ALERTMANAGER_URL names one.
    let mut dispatcher = AlertDispatcher::builder().with_sink(Arc::new(LogSink::new()));
    if let Some(url) = std::env::var("ALERTMANAGER_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        dispatcher = dispatcher.with_sink(Arc::new(
            AlertmanagerSink::new(&url).map_err(|e| format!("ALERTMANAGER_URL: {e}"))?,
        ));
    }
    let dispatcher = dispatcher.build();
    let budgets = Budgets::builder()
        .with_rules(budget_config.rules)
        .with_alerts(dispatcher.clone())
        .build();
    let quality = Quality::builder()
        .with_builtin_evaluators()
        .with_alerts(dispatcher)
        .build();
    budgets.register_metrics(&prom);
    quality.register_metrics(&prom);

    // `build()` also exports the GenAI OpenTelemetry metrics over OTLP next to the traces
    // when an endpoint is set (llmtel's `metrics` feature).
    let builder = llmtel::builder()
        .with_service_name(env_or("OTEL_SERVICE_NAME", "axum-service"))
        .with_console(false)
        .with_sink(Arc::new(prom.clone()))
        .with_sink(Arc::new(quality.sink()));
    let (llmtel_layers, llmtel_guard) = builder.build()?;
    // Whether llmtel exports is its own decision (OTEL_EXPORTER_OTLP_ENDPOINT or
    // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, non-empty; OTEL_SDK_DISABLED): ask the guard. A
    // guess made here disagreed with it, and two OpenTelemetry layers in one stack panic on
    // the first span (both store their data in the span's extensions).
    let exporting = llmtel_guard.is_exporting();
    // Without export, a local tracer still gives every call a trace id (for exemplars and
    // the response), with nothing sent anywhere. INFO and above: the request and LLM spans,
    // not every debug span of the dependencies.
    let local_ids: Box<dyn Layer<_> + Send + Sync> = if exporting {
        Box::new(tracing_subscriber::layer::Identity::new())
    } else {
        let tp = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        Box::new(
            tracing_opentelemetry::layer()
                .with_tracer(tp.tracer("axum-service"))
                .with_filter(LevelFilter::INFO),
        )
    };
    // Any order works: the budget layer records the priced call and settles the reservation
    // bound to the span; its `llmtel.budget.*` attributes reach the exported span through
    // llmtel's exporter stage, although the bundle's OpenTelemetry layer ended it first.
    tracing_subscriber::registry()
        .with(llmtel_layers)
        .with(budgets.layer())
        .with(local_ids)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::EnvFilter::new(env_or(
                    "RUST_LOG", "warn",
                ))),
        )
        .init();

    let metrics_listener = tokio::net::TcpListener::bind(&metrics_addr)
        .await
        .map_err(|e| format!("LLMTEL_METRICS_ADDR {metrics_addr}: {e}"))?;
    let app_addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("HOST/PORT {host}:{port}: {e}"))?;
    let listener = tokio::net::TcpListener::bind(app_addr)
        .await
        .map_err(|e| format!("{app_addr}: {e}"))?;
    eprintln!(
        "axum-service: POST http://{}/chat, metrics http://{}/metrics{}",
        listener.local_addr()?,
        metrics_listener.local_addr()?,
        if exporting {
            ", exporting over OTLP"
        } else {
            ""
        }
    );

    let metrics_app: Router = llmtel_metrics::prometheus::axum_router(prom);
    let drain = Drain::default();
    let app = Router::new()
        .route("/chat", post(chat))
        .route("/healthz", get(|| async { "ok" }))
        .route("/alerts", post(alerts))
        .with_state(App {
            latency,
            budgets: budgets.clone(),
            quality: quality.clone(),
            calls: Arc::new(AtomicU64::new(0)),
        })
        .layer(middleware::from_fn_with_state(drain.clone(), Drain::track));

    // Both listeners: bounded connections, a header-read timeout, an idle timeout and
    // head/body limits, so a slow or hostile client cannot stall the service or its scrapes.
    let limits = Limits::default()
        .with_max_connections(256)
        .with_max_body_bytes(MAX_BODY_BYTES);
    let metrics_limits = Limits::default();
    let metrics_task = tokio::spawn(async move {
        serve_with_limits_until(metrics_listener, metrics_app, metrics_limits, shutdown()).await
    });
    let stopping = drain.stopping.clone();
    serve_with_limits_until(listener, app, limits, async move {
        shutdown().await;
        stopping.store(true, Ordering::SeqCst);
    })
    .await?;
    // No new connection is accepted; the requests being served finish (their spans close
    // and their reservations settle) before the guard flushes.
    let left = drain.until_idle(DRAIN_TIMEOUT).await;
    if left > 0 {
        eprintln!(
            "axum-service: {left} request(s) still running after {DRAIN_TIMEOUT:?}; exiting without them"
        );
    }
    let _ = metrics_task.await;
    // Flush traces, then metrics.
    drop(llmtel_guard);
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
