//! `llmtel collector`: the OTLP collector stage of `llmtel-collector`, run until Ctrl-C or
//! SIGTERM, then stopped gracefully (what is queued is forwarded first).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// On Ctrl-C or SIGTERM, how long to keep forwarding what is queued before exiting
    /// (keep it under your orchestrator's grace period: Docker's is 10 s).
    #[arg(long, value_name = "SECONDS", default_value_t = 8.0)]
    shutdown_timeout: f64,
}

/// Runs the collector until Ctrl-C or SIGTERM, then stops it gracefully.
pub(crate) fn run(args: &CollectorArgs) -> Result<String, String> {
    // A panic in the stage (the budgets' store, the quality monitor) fails its request; its
    // message is printed redacted, as the last error keeps it, not as it is.
    llmtel_collector::redact_panic_messages();
    let shutdown_timeout = Duration::try_from_secs_f64(args.shutdown_timeout).map_err(|_| {
        format!(
            "--shutdown-timeout {}: give a number of seconds, 0 or more",
            args.shutdown_timeout
        )
    })?;
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
            say(format_args!("{failure}"));
        }
        for warning in &layered.warnings {
            say(format_args!("warning: {warning}"));
        }
        if !layered.layers.is_empty() {
            say(format_args!(
                "prices: the built-in catalog with {} merged over it",
                layered.layers.join(", then ")
            ));
        }
        config = config.with_catalog(layered.catalog);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the collector's runtime: {e}"))?;
    rt.block_on(async {
        // Listening for the signals before the collector starts: a SIGTERM while it starts
        // (or right after it serves) must stop it gracefully, not kill it by default.
        let stop = StopSignal::install()?;
        let collector = Collector::start(config)
            .await
            .map_err(|e| format!("llmtel collector: {e}"))?;
        say(format_args!(
            "OTLP/gRPC on {}, OTLP/HTTP on http://{}/v1/traces, metrics on http://{}/metrics",
            collector.grpc_addr(),
            collector.http_addr(),
            collector.metrics_addr()
        ));
        let signal = stop.wait().await?;
        say(format_args!(
            "{signal}: no longer receiving; forwarding what is queued ({} spans, up to {:?})",
            collector.stats().queue_depth,
            shutdown_timeout
        ));
        let s = collector.shutdown(shutdown_timeout).await;
        let mut out = format!(
            "llmtel collector: stopped; received {}, forwarded {}, dropped {}",
            s.received,
            s.forwarded,
            s.dropped()
        );
        if s.queue_depth > 0 {
            out.push_str(&format!(
                ", not sent {} (still queued at the shutdown timeout: raise --shutdown-timeout, \
                 or check the downstream)",
                s.queue_depth
            ));
        }
        Ok(out)
    })
}

/// Says `line` on stderr, after `llmtel collector: `. Not `eprintln!`, which panics when
/// stderr is a closed pipe (`llmtel collector 2>&1 | head`, a log reader that died): the
/// collector died with its queue instead of stopping gracefully.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "llmtel collector: {line}");
}

/// Ctrl-C or SIGTERM (what Docker, Kubernetes and systemd send to stop a process; as a
/// container's process 1 the collector would otherwise ignore it), listened for from
/// [`StopSignal::install`] on.
struct StopSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    /// Starts listening (inside the runtime).
    fn install() -> Result<StopSignal, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind, name: &str| {
                signal(kind).map_err(|e| format!("llmtel collector: cannot wait for {name}: {e}"))
            };
            Ok(StopSignal {
                interrupt: listen(SignalKind::interrupt(), "Ctrl-C")?,
                terminate: listen(SignalKind::terminate(), "SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignal {})
        }
    }

    /// Waits for the first of them and names it.
    async fn wait(self) -> Result<&'static str, String> {
        #[cfg(unix)]
        {
            let StopSignal {
                mut interrupt,
                mut terminate,
            } = self;
            tokio::select! {
                _ = interrupt.recv() => Ok("Ctrl-C"),
                _ = terminate.recv() => Ok("SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c()
                .await
                .map(|()| "Ctrl-C")
                .map_err(|e| format!("llmtel collector: cannot wait for Ctrl-C: {e}"))
        }
    }
}
