//! `llmtel collector`: the OTLP collector stage of `llmtel-collector`, run until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use llmtel_collector::{Collector, Config};

/// Flags of `llmtel collector` (each overrides the config file).
#[derive(Debug, Args)]
pub(crate) struct CollectorArgs {
    /// Collector config (TOML: listen addresses, queue size, `[forward]` endpoint and
    /// protocol; see the llmtel-collector docs).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where to receive OTLP/gRPC [default: 127.0.0.1:4317].
    #[arg(long, value_name = "ADDR")]
    grpc_listen: Option<SocketAddr>,
    /// Where to receive OTLP/HTTP (`POST /v1/traces`) [default: 127.0.0.1:4318].
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// Where to serve `/metrics` [default: 127.0.0.1:9466].
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

/// Runs the collector until Ctrl-C (or SIGTERM's default action).
pub(crate) fn run(args: &CollectorArgs) -> Result<String, String> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::new(),
    };
    if let Some(a) = args.grpc_listen {
        config = config.with_grpc_listen(a);
    }
    if let Some(a) = args.http_listen {
        config = config.with_http_listen(a);
    }
    if let Some(a) = args.metrics_listen {
        config = config.with_metrics_listen(a);
    }
    // Fresh prices without a release, as in-process llmtel: a source that does not load keeps
    // the built-in prices and says what to do.
    let sources = llmtel_pricing::PriceSources::from_env();
    if !sources.is_empty() {
        let layered = sources.load();
        for failure in &layered.failures {
            eprintln!("llmtel collector: {failure}");
        }
        if !layered.layers.is_empty() {
            eprintln!(
                "llmtel collector: prices: the built-in catalog with {} merged over it",
                layered.layers.join(", then ")
            );
        }
        config = config.with_catalog(layered.catalog);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the collector's runtime: {e}"))?;
    rt.block_on(async {
        let collector = Collector::start(config)
            .await
            .map_err(|e| format!("llmtel collector: {e}"))?;
        eprintln!(
            "llmtel collector: OTLP/gRPC on {}, OTLP/HTTP on http://{}/v1/traces, metrics on http://{}/metrics",
            collector.grpc_addr(),
            collector.http_addr(),
            collector.metrics_addr()
        );
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| format!("llmtel collector: cannot wait for Ctrl-C: {e}"))?;
        let s = collector.stats();
        Ok(format!(
            "llmtel collector: stopped; received {}, forwarded {}, dropped {}, still queued {}",
            s.received,
            s.forwarded,
            s.dropped(),
            s.queue_depth
        ))
    })
}
