//! `axum-service`: a small web service whose LLM calls are traced, priced and measured by
//! llmtel. See README.md.
//!
//! - `POST /chat` with `{"user": "...", "prompt": "..."}` answers the completion and the
//!   call's exact cost. Without a provider key the model is **simulated**: fixed latency and
//!   deterministic usage, priced as `gpt-4o-mini` from llmtel's catalog. A prompt containing
//!   `simulate-error` makes the simulated provider fail (`rate_limit`), to see errors.
//! - Prometheus metrics at `/metrics` on `LLMTEL_METRICS_ADDR` (default 127.0.0.1:9464).
//! - Traces (and the OpenTelemetry metrics) over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use llmtel::Usage;
use llmtel_metrics::{CardinalityGuard, Dimension, PrometheusSink};
use opentelemetry::trace::TracerProvider as _;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The simulated model: priced from llmtel's catalog like the real one.
const SIM_PROVIDER: &str = "openai";
const SIM_MODEL: &str = "gpt-4o-mini";
const SIM_OUTPUT_TOKENS: u64 = 48;

#[derive(Clone, Debug)]
struct App {
    latency: Duration,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    user: String,
    prompt: String,
    /// Optional feature name for spend by feature (default `chat`).
    #[serde(default)]
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

async fn chat(
    State(app): State<App>,
    Json(req): Json<ChatRequest>,
) -> Result<Json<ChatResponse>, ApiError> {
    if req.user.trim().is_empty() || req.prompt.trim().is_empty() {
        return Err(bad(
            StatusCode::BAD_REQUEST,
            "`user` and `prompt` must not be empty",
        ));
    }
    let feature = req.feature.clone().unwrap_or_else(|| "chat".into());
    let request_span = tracing::info_span!(
        "POST /chat",
        "user.id" = %req.user,
        "llmtel.feature" = %feature,
    );
    async move {
        // HOOK(budgets): check the user's / feature's budget here, before calling the model
        // (reject with 429 when exhausted); the budgets issue plugs its guard in.
        let llm = llmtel::llm_span!("chat", SIM_PROVIDER, SIM_MODEL);
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
            llmtel::record_response(&tracing::Span::current(), "sim-1", SIM_MODEL, &["stop"]);
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
                return Err((status, Json(body)));
            }
        };
        // HOOK(quality): score the completion here (evaluation event on the LLM span).
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

/// Alertmanager's webhook (the compose stack sends alerts here): logged to stderr.
// HOOK(budgets): the budgets issue's alert sinks can take over this route.
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
    // HOOK(budgets, quality): register their gauges on the same endpoint with
    // `prom.register(..)` / `prom.register_collector(..)`.

    let exporting = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        && !env_or("OTEL_SDK_DISABLED", "false").eq_ignore_ascii_case("true");
    // `build()` also exports the GenAI OpenTelemetry metrics over OTLP next to the traces
    // when an endpoint is set (llmtel's `metrics` feature).
    let builder = llmtel::builder()
        .with_service_name(env_or("OTEL_SERVICE_NAME", "axum-service"))
        .with_console(false)
        .with_sink(Arc::new(prom.clone()));
    // HOOK(budgets, quality): `builder.with_sink(..)` for their call sinks.
    let (llmtel_layers, llmtel_guard) = builder.build()?;
    // Without export, a local tracer still gives every call a trace id (for exemplars and
    // the response), with nothing sent anywhere.
    let local_ids: Box<dyn Layer<_> + Send + Sync> = if exporting {
        Box::new(tracing_subscriber::layer::Identity::new())
    } else {
        let tp = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        Box::new(tracing_opentelemetry::layer().with_tracer(tp.tracer("axum-service")))
    };
    tracing_subscriber::registry()
        .with(llmtel_layers)
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
    let app = Router::new()
        .route("/chat", post(chat))
        .route("/healthz", get(|| async { "ok" }))
        .route("/alerts", post(alerts))
        .with_state(App { latency });

    let metrics_task = tokio::spawn(async move {
        axum::serve(metrics_listener, metrics_app)
            .with_graceful_shutdown(shutdown())
            .await
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
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
