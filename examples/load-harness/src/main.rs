//! llmtel's load harness: drives the full stack a user runs (llmtel layer and OTLP export,
//! budgets, quality, Prometheus, call log) at a set rate or flat out, from several threads
//! or from tokio tasks, and reports spans created, queued, dropped and exported (llmtel's
//! counters) against spans received (counted by a separate receiver process), CPU per span,
//! RSS over the run and how long each span held the emitting thread.
//!
//! ```text
//! load-harness drive --rate 20000 --seconds 60 --threads 2 --receiver 127.0.0.1:4399
//! load-harness receive --listen 127.0.0.1:4399      # started by `drive --receiver`
//! ```
//!
//! With `--receiver ADDR` the driver starts `load-harness receive` on ADDR (a plain OTLP/gRPC
//! trace receiver that counts spans and prints the count) and, unless
//! `OTEL_EXPORTER_OTLP_ENDPOINT` points elsewhere (a collector stage such as rotel forwarding
//! to ADDR, see `scripts/load.sh`), exports to it directly. The report is one JSON object on
//! stdout. See BENCHMARKS.md, "Load".

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tracing_subscriber::prelude::*;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "system"
};

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("receive") => receive(&Flags::parse(&args[1..])?),
        Some("drive") => drive(&Flags::parse(&args[1..])?),
        Some("relay") => relay(&Flags::parse(&args[1..])?),
        _ => Err(USAGE.into()),
    }
}

const USAGE: &str = "usage: load-harness drive [--stack llmtel|otel|none] [--rate N] [--pace per-span|burst] [--seconds S] \
[--threads T] [--spans N] [--tokio] [--llm-share F] [--in-request] [--budgets off|memory|sqlite|redis] [--budget-sink] [--no-quality] [--no-call-log] \
[--no-prometheus] [--no-summaries] [--receiver ADDR] [--receiver-delay-ms MS]\n       load-harness receive --listen ADDR [--delay-ms MS]\n       \
load-harness relay --target URL --stage-pid PID --receiver ADDR [--rate N] [--seconds S] [--batch B]";

/// `--name value` and `--flag` pairs.
struct Flags(Vec<(String, Option<String>)>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, Error> {
        let mut out = Vec::new();
        let mut it = args.iter().peekable();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument `{a}`\n{USAGE}").into());
            };
            let value = match it.peek() {
                Some(v) if !v.starts_with("--") => it.next().cloned(),
                _ => None,
            };
            out.push((name.to_owned(), value));
        }
        Ok(Flags(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: `{v}` is not a number\n{USAGE}").into()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The receiver: a separate process, so its work is not counted in the driver's CPU.

/// Counts the spans it receives; answers each request after `delay` (a collector across a
/// network, or a slow one).
struct Counting(Arc<AtomicU64>, Duration);

#[tonic::async_trait]
impl TraceService for Counting {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        if !self.1.is_zero() {
            tokio::time::sleep(self.1).await;
        }
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn receive(flags: &Flags) -> Result<(), Error> {
    let listen = flags.get("listen").unwrap_or("127.0.0.1:4399").to_owned();
    let delay = Duration::from_millis(flags.num("delay-ms", 0)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("receiver: cannot listen on {listen}: {e}"))?;
        println!("listening {}", listener.local_addr()?);
        let count = Arc::new(AtomicU64::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            let mut last = u64::MAX;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let n = seen.load(Ordering::Relaxed);
                if n != last {
                    println!("received {n}");
                    last = n;
                }
            }
        });
        tonic::transport::Server::builder()
            .add_service(
                TraceServiceServer::new(Counting(count, delay))
                    .max_decoding_message_size(64 * 1024 * 1024)
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await?;
        Ok::<_, Error>(())
    })
}

/// The receiver child and the last count it printed.
struct Receiver {
    child: Child,
    received: Arc<AtomicU64>,
}

impl Receiver {
    fn start(listen: &str, delay_ms: u64) -> Result<Receiver, Error> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "receive",
                "--listen",
                listen,
                "--delay-ms",
                &delay_ms.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("receiver: no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(l)) if l.starts_with("listening ") => {}
            other => {
                let _ = child.kill();
                return Err(format!("receiver did not start: {other:?}").into());
            }
        }
        let received = Arc::new(AtomicU64::new(0));
        let theirs = received.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("received ").and_then(|n| n.parse().ok()) {
                    theirs.store(n, Ordering::Relaxed);
                }
            }
        });
        Ok(Receiver { child, received })
    }

    /// Waits until the count reaches `want` or stops moving for `quiet`.
    fn settle(&self, want: u64, quiet: Duration, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        let mut last = (self.received.load(Ordering::Relaxed), Instant::now());
        loop {
            let n = self.received.load(Ordering::Relaxed);
            if n >= want || Instant::now() >= deadline {
                return n;
            }
            if n != last.0 {
                last = (n, Instant::now());
            } else if last.1.elapsed() >= quiet {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The driver.

/// User-mode plus kernel-mode CPU time of this process (`/proc/self/stat`, clock ticks of
/// 10 ms).
fn cpu_time() -> Duration {
    cpu_time_of("self")
}

/// As [`cpu_time`], of process `pid` (`"self"` for this one).
fn cpu_time_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// CPU time of each thread of this process by name (`/proc/self/task`), in milliseconds,
/// summed over threads of the same name.
fn thread_cpu_ms() -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        *out.entry(name.trim().to_owned()).or_insert(0) += (ticks(11) + ticks(12)) * 10;
    }
    out
}

/// Resident set size in KiB (`VmRSS`).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[derive(Clone, Copy)]
struct Load {
    /// Spans per second per emitter (0: flat out).
    rate: f64,
    duration: Duration,
    llm_share: f64,
    /// Each LLM span is opened inside an entered request span that carries the user and the
    /// feature (which the LLM span inherits), as in a service; the request span counts as
    /// one more non-LLM span. A non-LLM span is opened inside a request span too (two spans).
    in_request: bool,
    /// Spans at most.
    max_spans: u64,
    /// Paced in bursts (`--pace burst`: sleep only when 1 ms or more ahead, as
    /// `scripts/python-sdk-baseline.py` does by default) rather than a wake-up per span.
    burst: bool,
}

/// Emits spans until the duration is over or `max_spans` are out; returns (LLM spans, other
/// spans, how long each span held this thread).
fn emit(load: Load, emitter: usize, stop: &AtomicBool) -> (u64, u64, Held) {
    let start = Instant::now();
    let mut held = Held::new();
    let (mut llm, mut other) = (0u64, 0u64);
    let users = ["u-1", "u-2", "u-3", "u-4", "u-5", "u-6", "u-7", "u-8"];
    let usage = llmtel::Usage {
        input_tokens: 1200,
        output_tokens: 300,
        cache_read_tokens: 400,
        ..Default::default()
    };
    let mut n: u64 = 0;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= load.duration || n >= load.max_spans || stop.load(Ordering::Relaxed) {
            break;
        }
        if load.rate > 0.0 {
            if load.burst {
                // Python's baseline pacing: sleep only when a millisecond or more ahead.
                let ahead = n as f64 / load.rate - elapsed.as_secs_f64();
                if ahead > 0.001 {
                    std::thread::sleep(Duration::from_secs_f64(ahead));
                }
            } else if n as f64 >= elapsed.as_secs_f64() * load.rate {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
        }
        // The share of LLM spans, spread evenly.
        let is_llm =
            ((n + 1) as f64 * load.llm_share).floor() > (n as f64 * load.llm_share).floor();
        let t = Instant::now();
        if is_llm {
            let user = users[(n as usize + emitter) % users.len()];
            if load.in_request {
                let request = tracing::info_span!(
                    "handle_request",
                    "user.id" = user,
                    "llmtel.feature" = "load"
                );
                let _entered = request.enter();
                let span = llmtel::llm_span!("chat", "openai", "gpt-4o-mini");
                llmtel::record_usage(&span, &usage);
                drop(span);
                other += 1;
            } else {
                let span = llmtel::llm_span!(
                    "chat",
                    "openai",
                    "gpt-4o-mini",
                    "user.id" = user,
                    "llmtel.feature" = "load"
                );
                llmtel::record_usage(&span, &usage);
                drop(span);
            }
            llm += 1;
        } else if load.in_request {
            // A span without gen_ai fields in a request span: the second span of a trace.
            let request = tracing::info_span!("handle_request", n);
            let _entered = request.enter();
            drop(tracing::info_span!("query", n));
            other += 2;
        } else {
            let span = tracing::info_span!("handle_request", n);
            drop(span);
            other += 1;
        }
        held.record(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        n += 1;
    }
    (llm, other, held)
}

/// What the run exports through.
enum Stack {
    Llmtel(llmtel::Guard),
    Otel(opentelemetry_sdk::trace::SdkTracerProvider),
    /// No subscriber (`--stack none`).
    None,
}

/// How long each span held the emitting thread, in nanoseconds: a fixed log-scale histogram
/// (64 steps per power of two, so a percentile is within 1.6 % of the true value), so the
/// harness's own memory stays flat however many spans it emits (the soak runs 10 million).
#[derive(Clone)]
struct Held {
    counts: Vec<u64>,
    n: u64,
    max: u64,
    over_1ms: u64,
}

/// Steps per power of two.
const SUB: u64 = 64;

impl Default for Held {
    fn default() -> Held {
        Held::new()
    }
}

impl Held {
    fn new() -> Held {
        Held {
            counts: vec![0; (59 * SUB) as usize], // the last bucket holds 2^63
            n: 0,
            max: 0,
            over_1ms: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let e = u64::from(63 - v.leading_zeros()); // at least 6
        ((e - 5) * SUB + ((v >> (e - 6)) - SUB)) as usize
    }

    /// The smallest value of bucket `i`.
    fn lower(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        (i % SUB + SUB) << (i / SUB - 1)
    }

    fn record(&mut self, ns: u64) {
        self.counts[Held::index(ns)] += 1;
        self.n += 1;
        self.max = self.max.max(ns);
        if ns > 1_000_000 {
            self.over_1ms += 1;
        }
    }

    fn merge(&mut self, other: &Held) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
        self.over_1ms += other.over_1ms;
    }

    fn percentile(&self, p: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((self.n - 1) as f64 * p).round() as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Held::lower(i).min(self.max);
            }
        }
        self.max
    }
}

fn drive(flags: &Flags) -> Result<(), Error> {
    let rate: f64 = flags.num("rate", 20_000.0)?;
    let seconds: f64 = flags.num("seconds", 10.0)?;
    let threads: usize = flags.num("threads", 2)?;
    let threads = threads.max(1);
    let llm_share: f64 = flags.num("llm-share", 1.0)?;
    let use_tokio = flags.has("tokio");
    let stack_name = flags.get("stack").unwrap_or("llmtel").to_owned();
    let (baseline, untraced) = match stack_name.as_str() {
        "llmtel" => (false, false),
        "otel" => (true, false),
        // No subscriber: the loop's own cost, subtracted from a traced run's.
        "none" => (true, true),
        other => return Err(format!("--stack {other}: use llmtel, otel or none").into()),
    };
    let burst = match flags.get("pace").unwrap_or("per-span") {
        "per-span" => false,
        "burst" => true,
        other => return Err(format!("--pace {other}: use per-span or burst").into()),
    };
    // The baseline has none of llmtel's parts.
    let off = |name: &str| baseline || flags.has(name);
    let budgets_kind = if baseline {
        "off".to_owned()
    } else {
        flags.get("budgets").unwrap_or("memory").to_owned()
    };

    let receiver_delay: u64 = flags.num("receiver-delay-ms", 0)?;
    let receiver = flags
        .get("receiver")
        .map(|r| Receiver::start(r, receiver_delay))
        .transpose()?;

    // The stack: llmtel's layer and export, Prometheus, quality and the call log as sinks,
    // budgets (over the store asked for) as a layer, or as a sink with `--budget-sink`.
    let dir = std::env::temp_dir().join(format!("llmtel-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut builder = llmtel::builder()
        .with_service_name("load-harness")
        .with_console(false);
    let mut endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok();
    if let (Some(addr), None) = (flags.get("receiver"), &endpoint) {
        // Straight to the receiver when no collector stage is named.
        endpoint = Some(format!("http://{addr}"));
        builder = builder
            .with_endpoint(format!("http://{addr}"))
            .with_protocol(llmtel::Protocol::Grpc);
    }
    if !baseline && flags.has("no-summaries") {
        builder = builder.with_summaries_capacity(0);
    }
    let prom = (!off("no-prometheus")).then(|| llmtel_metrics::PrometheusSink::builder().build());
    if let Some(p) = &prom {
        builder = builder.with_sink(Arc::new(p.clone()));
    }
    let quality = (!off("no-quality")).then(|| llmtel_quality::Quality::builder().build());
    if let Some(q) = &quality {
        builder = builder.with_sink(Arc::new(q.sink()));
    }
    let call_log = if off("no-call-log") {
        None
    } else {
        Some(llmtel_report::CallLog::builder(dir.join("calls.jsonl")).build()?)
    };
    if let Some(l) = &call_log {
        builder = builder.with_sink(Arc::new(l.clone()));
    }
    let store: Option<Arc<dyn llmtel_budget::BudgetStore>> = match budgets_kind.as_str() {
        "off" => None,
        "memory" => Some(Arc::new(llmtel_budget::MemoryStore::new())),
        "sqlite" => Some(Arc::new(llmtel_budget::SqliteStore::open(
            dir.join("budgets.sqlite"),
        )?)),
        "redis" => {
            let url = std::env::var("LLMTEL_REDIS_URL")
                .or_else(|_| std::env::var("REDIS_URL"))
                .map_err(|_| "--budgets redis needs LLMTEL_REDIS_URL or REDIS_URL")?;
            Some(Arc::new(
                llmtel_budget::RedisStore::open(&url)?
                    .with_prefix(&format!("llmtel-load-{}", std::process::id())),
            ))
        }
        other => return Err(format!("--budgets {other}: use off, memory, sqlite or redis").into()),
    };
    let budgets = match store {
        Some(store) => {
            let config = llmtel_budget::Config::from_toml_str(
                "[[rule]]\nname = \"per-user-daily\"\nscope = \"user\"\nperiod = \"day\"\nlimit_usd = \"1000000\"\n",
            )?;
            Some(
                llmtel_budget::Budgets::builder()
                    .with_rules(config.rules)
                    .with_store(store)
                    .build(),
            )
        }
        None => None,
    };
    let budget_layer = !flags.has("budget-sink");
    if let (Some(b), false) = (&budgets, budget_layer) {
        builder = builder.with_sink(Arc::new(b.sink()));
    }
    let stack = if untraced {
        Stack::None
    } else if baseline {
        // tracing-opentelemetry over the SDK with the same bounded export queue and the same
        // OTLP/gRPC exporter: what llmtel adds is the difference.
        use opentelemetry::trace::TracerProvider as _;
        let endpoint = endpoint
            .clone()
            .ok_or("--stack otel needs OTEL_EXPORTER_OTLP_ENDPOINT or --receiver")?;
        let queue = llmtel::ExportQueue::spawn(
            move || {
                use opentelemetry_otlp::WithExportConfig as _;
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint)
                    .build()
            },
            llmtel::QueueConfig::from_env(),
        )?;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(queue)
            .build();
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("load-harness")))
            .init();
        Stack::Otel(provider)
    } else {
        let (layers, guard) = builder.build()?;
        tracing_subscriber::registry()
            .with(layers)
            .with(
                budgets
                    .as_ref()
                    .filter(|_| budget_layer)
                    .map(llmtel_budget::Budgets::layer),
            )
            .init();
        Stack::Llmtel(guard)
    };

    // RSS and descriptors every second.
    let sampling = Arc::new(AtomicBool::new(true));
    let samples = {
        let on = sampling.clone();
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let t0 = Instant::now();
            while on.load(Ordering::Relaxed) {
                s.push((t0.elapsed().as_secs_f64(), rss_kib(), open_fds()));
                std::thread::sleep(Duration::from_secs(1));
            }
            s
        })
    };

    let load = Load {
        rate: rate / threads as f64,
        duration: Duration::from_secs_f64(seconds),
        llm_share: llm_share.clamp(0.0, 1.0),
        in_request: flags.has("in-request"),
        // `--spans N`: each emitting thread stops after N spans (for instruction counts under
        // callgrind, where a fixed duration would emit a different number each run).
        max_spans: flags.num("spans", u64::MAX)?,
        burst,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let before = llmtel::health();
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let results: Vec<(u64, u64, Held)> = if use_tokio {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?;
        rt.block_on(async {
            let tasks: Vec<_> = (0..threads)
                .map(|i| {
                    let stop = stop.clone();
                    // Each task emits in slices of 1 ms, yielding between them.
                    tokio::spawn(async move {
                        let (mut llm, mut other, mut held) = (0, 0, Held::new());
                        let start = Instant::now();
                        // Iterations so far (a call in a request span is two spans).
                        let emitted = |llm: u64, other: u64| {
                            if load.in_request { other } else { llm + other }
                        };
                        while start.elapsed() < load.duration {
                            // What is due by now (256 at a time flat out), emitted without
                            // pausing; the pacing sleeps are the runtime's, never a
                            // blocking sleep on its worker thread.
                            let due = if load.rate > 0.0 {
                                (start.elapsed().as_secs_f64() * load.rate) as u64
                            } else {
                                emitted(llm, other) + 256
                            };
                            if emitted(llm, other) >= due {
                                tokio::time::sleep(Duration::from_micros(500)).await;
                                continue;
                            }
                            let slice = Load {
                                rate: 0.0,
                                duration: Duration::from_millis(1),
                                max_spans: due - emitted(llm, other),
                                ..load
                            };
                            let (l, o, h) = emit(slice, i, &stop);
                            llm += l;
                            other += o;
                            held.merge(&h);
                            tokio::task::yield_now().await;
                        }
                        (llm, other, held)
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap_or_default());
            }
            out
        })
    } else {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || emit(load, i, &stop))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    };
    let emitting = t0.elapsed();
    let cpu_emitting = cpu_time().saturating_sub(cpu0);

    // Everything queued goes out; then the receiver's count settles.
    let flushed = match &stack {
        Stack::Llmtel(guard) => guard.flush().is_ok(),
        Stack::Otel(provider) => provider.force_flush().is_ok(),
        Stack::None => true,
    };
    if let Some(q) = &quality {
        q.flush(Duration::from_secs(30));
    }
    if let Some(b) = &budgets {
        b.flush(Duration::from_secs(30));
    }
    if let Some(l) = &call_log {
        l.flush(Duration::from_secs(30));
    }
    let cpu_total = cpu_time().saturating_sub(cpu0);
    let threads_cpu = thread_cpu_ms();
    let after = llmtel::health();
    let created_llm: u64 = results.iter().map(|r| r.0).sum();
    let created_other: u64 = results.iter().map(|r| r.1).sum();
    let created = created_llm + created_other;
    let exported = after.spans_exported - before.spans_exported;
    let received = receiver
        .as_ref()
        .map(|r| r.settle(exported, Duration::from_secs(3), Duration::from_secs(60)));
    sampling.store(false, Ordering::Relaxed);
    let samples = samples.join().unwrap_or_default();

    let mut held = Held::new();
    for r in &results {
        held.merge(&r.2);
    }
    let rss: Vec<u64> = samples.iter().map(|s| s.1).collect();
    let fds: Vec<usize> = samples.iter().map(|s| s.2).collect();
    let report = serde_json::json!({
        "settings": {
            "stack": stack_name, "pace": if burst { "burst" } else { "per-span" },
            "allocator": ALLOCATOR,
            "rate": rate, "seconds": seconds, "threads": threads, "tokio": use_tokio,
            "llm_share": llm_share, "in_request": load.in_request, "budgets": budgets_kind, "budget_sink": !budget_layer,
            "quality": quality.is_some(), "call_log": call_log.is_some(),
            "prometheus": prom.is_some(),
            "endpoint": endpoint,
        },
        "spans": {
            "created": created, "created_llm": created_llm, "created_other": created_other,
            "queued": after.spans_queued - before.spans_queued,
            "dropped": after.spans_dropped - before.spans_dropped,
            "exported": exported,
            "export_failed": after.spans_export_failed - before.spans_export_failed,
            "received": received,
            "background_dropped": after.background_dropped - before.background_dropped,
            "flushed": flushed,
        },
        "achieved_rate": created as f64 / emitting.as_secs_f64(),
        "cpu_us_per_span": {
            "while_emitting": cpu_emitting.as_secs_f64() * 1e6 / created.max(1) as f64,
            "including_flush": cpu_total.as_secs_f64() * 1e6 / created.max(1) as f64,
        },
        "request_path_ns": {
            "p50": held.percentile(0.50), "p99": held.percentile(0.99),
            "p999": held.percentile(0.999), "max": held.max,
            "over_1ms": held.over_1ms,
        },
        "rss_kib": {
            "first": rss.first(), "max": rss.iter().max(), "last": rss.last(),
            "series": rss,
        },
        "open_fds": { "first": fds.first(), "max": fds.iter().max(), "last": fds.last() },
        "thread_cpu_ms": threads_cpu,
        "workers": llmtel::worker::workers(),
    });
    println!("{report:#}");
    match stack {
        Stack::Llmtel(guard) => drop(guard),
        Stack::Otel(provider) => {
            let _ = provider.shutdown();
        }
        Stack::None => {}
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The relay run: a collector stage under load (issue #15, BENCHMARKS.md "Collector").

/// One OTLP request of `batch` LLM spans as a Python or TypeScript service's GenAI
/// instrumentation sends them (`gen_ai.*` usage, a user and a feature), ids from `seq`.
fn llm_batch(batch: usize, seq: u64) -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let s = |k: &str, v: &str| KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.to_owned())),
        }),
        ..Default::default()
    };
    let i = |k: &str, v: i64| KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(v)),
        }),
        ..Default::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let spans = (0..batch as u64)
        .map(|n| {
            let id = seq * batch as u64 + n + 1;
            Span {
                trace_id: [id.to_be_bytes(), 7u64.to_be_bytes()].concat(),
                span_id: id.to_be_bytes().to_vec(),
                name: "chat gpt-4o".to_owned(),
                kind: 3,
                start_time_unix_nano: now - 800_000_000,
                end_time_unix_nano: now,
                attributes: vec![
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.provider.name", "openai"),
                    s("gen_ai.request.model", "gpt-4o"),
                    s("gen_ai.response.model", "gpt-4o-2024-08-06"),
                    s("gen_ai.response.id", "chatcmpl-load"),
                    i("gen_ai.usage.input_tokens", 1200),
                    i("gen_ai.usage.output_tokens", 300),
                    i("gen_ai.usage.cache_read.input_tokens", 1024),
                    s("user.id", if n % 2 == 0 { "alice" } else { "bob" }),
                    s("llmtel.feature", "support"),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![s("service.name", "python-app")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Sends LLM spans over OTLP/gRPC to `--target` (a collector stage: `llmtel collector`,
/// rotel) at `--rate` spans/s for `--seconds`, in requests of `--batch` spans, while the
/// stage forwards to this harness's counting receiver on `--receiver`; reports spans sent,
/// accepted, refused (backpressure) and received downstream, and the stage's CPU (process
/// `--stage-pid`, from /proc) per span.
fn relay(flags: &Flags) -> Result<(), Error> {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    let target = flags
        .get("target")
        .ok_or("--target URL is required")?
        .to_owned();
    let pid = flags
        .get("stage-pid")
        .ok_or("--stage-pid PID is required")?
        .to_owned();
    let listen = flags.get("receiver").ok_or("--receiver ADDR is required")?;
    let rate: u64 = flags.num("rate", 20_000)?;
    let seconds: u64 = flags.num("seconds", 60)?;
    let batch: usize = flags.num("batch", 100)?;
    let receiver = Receiver::start(listen, 0)?;
    // Built ahead: the generator's own work stays off the measurement.
    let requests: Vec<ExportTraceServiceRequest> = (0..(rate * seconds).div_ceil(batch as u64))
        .map(|seq| llm_batch(batch, seq))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (sent, accepted, refused, failed, elapsed, cpu) = rt.block_on(async {
        let mut client = TraceServiceClient::connect(target.clone())
            .await
            .map_err(|e| format!("cannot connect to the stage at {target}: {e}"))?
            .max_encoding_message_size(64 * 1024 * 1024);
        let interval = Duration::from_secs_f64(batch as f64 / rate.max(1) as f64);
        let cpu0 = cpu_time_of(&pid);
        let start = tokio::time::Instant::now();
        let (mut sent, mut accepted, mut refused, mut failed) = (0u64, 0u64, 0u64, 0u64);
        for (k, req) in requests.into_iter().enumerate() {
            tokio::time::sleep_until(start + interval * k as u32).await;
            sent += batch as u64;
            match client.export(req).await {
                Ok(_) => accepted += batch as u64,
                Err(s) if s.code() == tonic::Code::ResourceExhausted => refused += batch as u64,
                Err(_) => failed += batch as u64,
            }
        }
        let elapsed = start.elapsed();
        Ok::<_, Error>((sent, accepted, refused, failed, elapsed, cpu0))
    })?;
    let received = receiver.settle(accepted, Duration::from_secs(5), Duration::from_secs(60));
    let stage_cpu = cpu_time_of(&pid).saturating_sub(cpu);
    let report = serde_json::json!({
        "target": target,
        "rate": rate,
        "achieved_rate": sent as f64 / elapsed.as_secs_f64(),
        "seconds": elapsed.as_secs_f64(),
        "batch": batch,
        "spans": {
            "sent": sent,
            "accepted": accepted,
            "refused": refused,
            "failed": failed,
            "received": received,
            "lost": accepted.saturating_sub(received),
        },
        "stage_cpu_s": stage_cpu.as_secs_f64(),
        "stage_cpu_us_per_span": stage_cpu.as_secs_f64() * 1e6 / sent.max(1) as f64,
        "stage_cpu_share": stage_cpu.as_secs_f64() / elapsed.as_secs_f64(),
    });
    println!("{report}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Held;

    #[test]
    fn held_percentiles_are_within_two_percent_and_buckets_are_contiguous() {
        for i in 1..(59 * 64) {
            assert_eq!(Held::index(Held::lower(i)), i, "bucket {i}");
            assert!(Held::lower(i) > Held::lower(i - 1));
        }
        let mut h = Held::new();
        for v in 1..=100_000u64 {
            h.record(v * 37);
        }
        for (p, want) in [(0.5, 50_000.0 * 37.0), (0.99, 99_000.0 * 37.0)] {
            let got = h.percentile(p) as f64;
            assert!((got - want).abs() / want < 0.02, "p{p}: {got} vs {want}");
        }
        assert_eq!(h.max, 3_700_000);
        assert_eq!(h.over_1ms, 100_000 - 1_000_000 / 37);
    }
}
