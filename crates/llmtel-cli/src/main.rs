//! `llmtel`: the llmtel command line.
//!
//! ```text
//! llmtel cost --model gpt-4o --input-tokens 1000000 --output-tokens 1000000 [--at DATE|RFC3339] [--json]
//!             [--service-tier T] [--audio-input-tokens N] [--audio-output-tokens N]
//!             [--image-input-tokens N] [--web-search-queries N] [--search-context-size S]
//!             [--code-interpreter-sessions N] [--file-search-calls N]
//! llmtel cost --batch [--prices FILE] < calls.jsonl      # one JSON call per line in, one result per line out
//! llmtel prices MODEL [--at DATE] [--json]             # the entry, its dated prices
//! llmtel prices resolve MODEL [--provider P]           # each resolution step tried
//! llmtel prices list [--provider P] [--json]
//! llmtel prices check FILE                             # validate a TOML or LiteLLM JSON price file
//! llmtel prices diff OLD NEW [--json]                  # added, removed and changed prices
//! llmtel report --log FILE [--from T] [--to T] [--format md|html|json] [--out FILE [--force]]
//! llmtel collector [--config FILE] [--grpc-listen ADDR] [--http-listen ADDR] [--metrics-listen ADDR]
//! ```
//!
//! Every command takes `--prices FILE` (llmtel TOML or LiteLLM JSON), merged over the
//! built-in catalog. Exit codes: 0 success; 1 standard output could not be written (a full
//! disk; a closed pipe, as `llmtel ... | head`, ends quietly with 0); 2 usage error, unknown
//! model, bad price file, a missing or empty call log, or an `--out` refused.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use jiff::civil::Date;
use llmtel_pricing::{
    Call, Catalog, CostBreakdown, ModelEntry, Price, PricedCall, SearchContextSize, Usage,
    UsageDetails, Usd,
};

mod collector;

/// OpenTelemetry-native observability for LLM apps.
#[derive(Debug, Parser)]
#[command(name = "llmtel", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Price one LLM call from the price catalog.
    Cost(CostArgs),
    /// Show, resolve, list and check prices.
    Prices(PricesArgs),
    /// A report on a period of a call log (llmtel_report::CallLog): cost by model, user and
    /// feature, trends, alerts, worst calls.
    Report(ReportArgs),
    /// Budgets configured in a file.
    Budget {
        #[command(subcommand)]
        cmd: BudgetCommand,
    },
    /// Receive OTLP traces from any service, price GenAI spans, forward them over OTLP
    /// (to OTEL_EXPORTER_OTLP_ENDPOINT).
    Collector(collector::CollectorArgs),
}

#[derive(Debug, Subcommand)]
enum BudgetCommand {
    /// Spent, limit, utilization, remaining and reset time per rule and scope, read from the
    /// configured store.
    Status {
        /// Budget config (TOML: `[[rule]]` tables and an optional `[store]` table).
        #[arg(long)]
        config: std::path::PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct CostArgs {
    /// Model name as reported (`gpt-4o`, `openai/gpt-4o-2024-08-06`, a Bedrock id, ...).
    #[arg(long, required_unless_present = "batch")]
    model: Option<String>,
    /// Input tokens, inclusive of cache-read and cache-write tokens.
    #[arg(long, required_unless_present = "batch")]
    input_tokens: Option<u64>,
    /// Output tokens, inclusive of reasoning tokens.
    #[arg(long, required_unless_present = "batch")]
    output_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    #[arg(long, default_value_t = 0)]
    cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[arg(long, default_value_t = 0)]
    cache_write_tokens: u64,
    /// Of --cache-write-tokens, those written to Anthropic's 1-hour cache (priced at the
    /// 1-hour write rate).
    #[arg(long, default_value_t = 0)]
    cache_write_1h_tokens: u64,
    /// Output tokens spent on reasoning.
    #[arg(long, default_value_t = 0)]
    reasoning_tokens: u64,
    /// Audio input tokens, part of --input-tokens (priced at the audio input rate).
    #[arg(long, default_value_t = 0)]
    audio_input_tokens: u64,
    /// Cached audio input tokens, part of --audio-input-tokens and --cache-read-tokens.
    #[arg(long, default_value_t = 0)]
    cached_audio_tokens: u64,
    /// Image input tokens, part of --input-tokens.
    #[arg(long, default_value_t = 0)]
    image_input_tokens: u64,
    /// Video input tokens, part of --input-tokens.
    #[arg(long, default_value_t = 0)]
    video_input_tokens: u64,
    /// Audio output tokens, part of --output-tokens.
    #[arg(long, default_value_t = 0)]
    audio_output_tokens: u64,
    /// Image output tokens, part of --output-tokens (image generation models).
    #[arg(long, default_value_t = 0)]
    image_output_tokens: u64,
    /// Web search queries (billed per query).
    #[arg(long, default_value_t = 0)]
    web_search_queries: u64,
    /// Web search context size: low, medium (default) or high.
    #[arg(long, value_name = "low|medium|high", value_parser = parse_search_size)]
    search_context_size: Option<SearchContextSize>,
    /// Code interpreter sessions.
    #[arg(long, default_value_t = 0)]
    code_interpreter_sessions: u64,
    /// File search tool calls (billed per call).
    #[arg(long, default_value_t = 0)]
    file_search_calls: u64,
    /// Images generated (image generation models priced per image, e.g.
    /// `--model high/1024-x-1024/gpt-image-1`).
    #[arg(long, default_value_t = 0)]
    images: u64,
    /// Input characters (text-to-speech models priced per character).
    #[arg(long, default_value_t = 0)]
    input_characters: u64,
    /// Seconds of input audio (transcription models priced per second), e.g. 90.5.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds_ms, default_value = "0")]
    input_audio_seconds: u64,
    /// Seconds of output audio (speech models priced per second).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds_ms, default_value = "0")]
    output_audio_seconds: u64,
    /// Service tier the response reported (OpenAI `service_tier`, Anthropic
    /// `usage.service_tier`): priority, flex, batch, default, ...
    #[arg(long, value_name = "T")]
    service_tier: Option<String>,
    /// Provider hint (gen_ai.provider.name: openai, anthropic, gcp.gemini, ...).
    #[arg(long)]
    provider: Option<String>,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// When the call started: an RFC 3339 instant (`2026-03-03T16:45:00Z`, selects the
    /// price in force and off-peak windows) or a date (`2026-03-03`, no off-peak window)
    /// [default: now].
    #[arg(long, value_name = "RFC3339|YYYY-MM-DD", value_parser = parse_at)]
    at: Option<At>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Price many calls: read one JSON object per line on stdin (`model`, `input_tokens`,
    /// `output_tokens`; optional `provider`, `at`, `service_tier`, `search_context_size`,
    /// `input_audio_seconds`, `output_audio_seconds` (numbers) and the counts named as the
    /// flags are, with `_` for `-`), write one JSON result per line (as `--json`, or
    /// `{"error": ...}`; a field not listed is an error, not ignored).
    #[arg(long, conflicts_with_all = ["model", "input_tokens", "output_tokens"])]
    batch: bool,
}

#[derive(Debug, Args)]
struct CatalogArgs {
    /// A price file merged over the built-in catalog: llmtel TOML (see llmtel-pricing's
    /// data/README.md) or LiteLLM's JSON (`.json`, or text starting with `{`).
    #[arg(long, value_name = "FILE", global = true)]
    prices: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct PricesArgs {
    #[command(subcommand)]
    command: Option<PricesCommand>,
    /// Model name to show.
    model: Option<String>,
    /// Provider hint (gen_ai.provider.name).
    #[arg(long)]
    provider: Option<String>,
    /// Date whose price is marked as in force [default: today, UTC].
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    at: Option<Date>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    catalog: CatalogArgs,
}

#[derive(Debug, Subcommand)]
enum PricesCommand {
    /// Explain each resolution step tried for a model name and which matched.
    Resolve {
        /// Model name as reported.
        model: String,
        /// Provider hint (gen_ai.provider.name).
        #[arg(long)]
        provider: Option<String>,
        #[command(flatten)]
        catalog: CatalogArgs,
    },
    /// List the catalog's entries.
    List {
        /// Only this provider's entries (gen_ai.provider.name, e.g. openai, aws.bedrock).
        #[arg(long)]
        provider: Option<String>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        catalog: CatalogArgs,
    },
    /// Validate a price file (llmtel TOML or LiteLLM JSON); prints its entry count.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// What changed between two price files (llmtel TOML or LiteLLM JSON): models added,
    /// removed, and each changed rate of the latest price.
    Diff {
        /// The old price file.
        old: PathBuf,
        /// The new price file.
        new: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The call log (JSON lines written by llmtel_report::CallLog); its rotated files
    /// (FILE.1, FILE.2, ...) are read too.
    #[arg(long, value_name = "FILE")]
    log: PathBuf,
    /// Start of the period, inclusive: RFC 3339 (2025-03-01T12:00:00Z) or a date (UTC)
    /// [default: the first call].
    #[arg(long, value_name = "RFC3339|DATE")]
    from: Option<String>,
    /// End of the period, exclusive; a date includes that whole day [default: the last call].
    #[arg(long, value_name = "RFC3339|DATE")]
    to: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    format: ReportFormat,
    /// Write the report to this file instead of standard output. It is written whole or not
    /// at all (to a temporary file in the same directory, then renamed). Never the call log
    /// or one of its rotated files; an existing file only with --force.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace the --out file if it exists.
    #[arg(long, requires = "out")]
    force: bool,
    /// Bucket length of the series [default: hour up to 48 hours, else day].
    #[arg(long, value_enum)]
    bucket: Option<ReportBucket>,
    /// How many of the worst calls by quality score to list.
    #[arg(long, default_value_t = 10)]
    worst: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    /// Markdown.
    Md,
    /// One self-contained HTML file with SVG charts.
    Html,
    /// JSON (costs as exact decimal strings).
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportBucket {
    /// One hour (UTC).
    Hour,
    /// One day (UTC).
    Day,
}

/// `llmtel report`: the rendered report, or written to `--out` (then a one-line summary).
fn report(args: &ReportArgs) -> Result<String, String> {
    use llmtel_report::{Bucket, Period, Report};
    let period = Period::parse(args.from.as_deref(), args.to.as_deref())
        .map_err(|e| format!("llmtel report: {e}"))?;
    // Checked before the log is read: a refused --out costs nothing.
    let out_path = match &args.out {
        Some(out) => Some(report_target(out, &args.log, args.force)?),
        None => None,
    };
    let mut builder = Report::builder()
        .with_period(period)
        .with_worst_calls(args.worst);
    if let Some(b) = args.bucket {
        builder = builder.with_bucket(match b {
            ReportBucket::Hour => Bucket::Hour,
            ReportBucket::Day => Bucket::Day,
        });
    }
    let report = builder
        .from_log(&args.log)
        .map_err(|e| format!("llmtel report: {e}"))?;
    let text = match args.format {
        ReportFormat::Md => report.to_markdown(),
        ReportFormat::Html => report.to_html(),
        ReportFormat::Json => report.to_json(),
    };
    match (&args.out, out_path) {
        (Some(out), Some(target)) => {
            match target {
                ReportTarget::File(path) => write_replacing(&path, text.as_bytes()),
                ReportTarget::Stream(path) => std::fs::write(path, text.as_bytes()),
            }
            .map_err(|e| format!("llmtel report: cannot write {}: {e}", out.display()))?;
            Ok(format!(
                "wrote {}: {} calls, {} cost, {} malformed lines skipped",
                out.display(),
                report.totals.requests,
                report.totals.cost,
                report.log.malformed
            ))
        }
        _ => Ok(text),
    }
}

/// Where `report --out` writes: `out` with its directory (and `out` itself, if it exists)
/// resolved through symlinks. Refuses the call log and its rotated files (`LOG.1`, ...), and
/// an existing file unless `force`.
fn report_target(out: &Path, log: &Path, force: bool) -> Result<ReportTarget, String> {
    let shown = out.display();
    let target = match std::fs::canonicalize(out) {
        Ok(path) => path,
        Err(_) => {
            let name = out.file_name().ok_or_else(|| {
                format!("llmtel report: --out {shown} is not a file name: give a file to write")
            })?;
            let dir = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let dir = std::fs::canonicalize(dir).map_err(|e| {
                format!(
                    "llmtel report: cannot write {shown}: directory {}: {e}; create it first",
                    dir.display()
                )
            })?;
            dir.join(name)
        }
    };
    // The log as canonical a path as can be had (it may not exist yet: the read says so).
    let log_path = std::fs::canonicalize(log)
        .or_else(|_| std::path::absolute(log))
        .unwrap_or_else(|_| log.to_owned());
    if is_log_or_rotated(&target, &log_path) {
        return Err(format!(
            "llmtel report: --out {shown} is the call log {} or one of its rotated files: writing the report there would destroy the log; give another file",
            log.display()
        ));
    }
    let exists = std::fs::symlink_metadata(&target).is_ok();
    match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => Err(format!(
            "llmtel report: --out {shown} is a directory: give a file name in it"
        )),
        // A device or a pipe (`--out /dev/stdout`): written to, there is nothing to replace.
        Ok(m) if !m.is_file() => Ok(ReportTarget::Stream(target)),
        // (A dangling symlink exists too.)
        _ if exists && !force => Err(format!(
            "llmtel report: {shown} already exists: pass --force to replace it, or give another file"
        )),
        _ => Ok(ReportTarget::File(target)),
    }
}

/// Where `report --out` writes.
#[derive(Debug)]
enum ReportTarget {
    /// A file, written whole: a temporary file renamed over it.
    File(PathBuf),
    /// A device or a FIFO, written to as it is.
    Stream(PathBuf),
}

/// Whether `path` is `log` or one of its rotated files (`LOG.1`, `LOG.2`, ...).
fn is_log_or_rotated(path: &Path, log: &Path) -> bool {
    if path == log {
        return true;
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    let (Some(log_dir), Some(log_name)) = (log.parent(), log.file_name()) else {
        return false;
    };
    if dir != log_dir {
        return false;
    }
    let (name, log_name) = (name.to_string_lossy(), log_name.to_string_lossy());
    name.strip_prefix(&*log_name)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Writes `bytes` to `path` whole or not at all: into a new file next to it, synced, then
/// renamed over `path`. The temporary file is removed if anything fails.
fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{name}.{}-{nanos}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// `--at`: an instant or a bare date.
#[derive(Clone, Copy, Debug)]
enum At {
    Instant(jiff::Timestamp),
    Date(Date),
}

impl At {
    fn call(self) -> Call<'static> {
        match self {
            At::Instant(t) => Call::at(t),
            At::Date(d) => Call::on_date(d),
        }
    }
}

fn parse_at(s: &str) -> Result<At, String> {
    if let Ok(t) = s.trim().parse::<jiff::Timestamp>() {
        return Ok(At::Instant(t));
    }
    let s = s.trim();
    // A date alone: jiff reads a date out of anything that starts with one, and a time
    // without an offset must not be priced as its day (no off-peak window would apply).
    match s.parse::<Date>() {
        Ok(d) if d.to_string() == s => Ok(At::Date(d)),
        _ if s.parse::<jiff::civil::DateTime>().is_ok() => Err(format!(
            "{s:?} has no UTC offset: add Z for UTC or the offset meant (2026-03-03T16:45:00Z, 2026-03-03T17:45:00+01:00), or give a date alone (2026-03-03)"
        )),
        _ => Err(format!(
            "expected an RFC 3339 instant (2026-03-03T16:45:00Z, 2026-03-03T17:45:00+01:00) or a date (2026-03-03), got {s:?}"
        )),
    }
}

/// Seconds with up to 3 decimals (`90.5`) as milliseconds.
fn parse_seconds_ms(s: &str) -> Result<u64, String> {
    let bad =
        || format!("expected seconds as a number >= 0 with at most 3 decimals (90.5), got {s:?}");
    let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac: u64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)
}

fn parse_search_size(s: &str) -> Result<SearchContextSize, String> {
    SearchContextSize::parse(s).ok_or_else(|| format!("expected low, medium or high, got {s:?}"))
}

fn parse_date(s: &str) -> Result<Date, String> {
    s.parse::<Date>()
        .map_err(|e| format!("expected a date as YYYY-MM-DD: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cost(args) if args.batch => batch(&args).map(|()| String::new()),
        Command::Cost(args) => cost(&args).map_err(Failure::Message),
        Command::Prices(args) => prices(args).map_err(Failure::Message),
        Command::Report(args) => report(&args).map_err(Failure::Message),
        Command::Budget {
            cmd: BudgetCommand::Status { config, json },
        } => llmtel_budget::status_report(&config, json)
            .map(|out| out.trim_end().to_owned())
            .map_err(|e| Failure::Message(format!("llmtel budget status: {e}"))),
        Command::Collector(args) => collector::run(&args).map_err(Failure::Message),
    };
    let written = match result {
        Ok(out) if out.is_empty() => Ok(()),
        Ok(out) => write_stdout(&format!("{out}\n")),
        Err(Failure::Stdout(e)) => Err(e),
        Err(Failure::Message(message)) => {
            // Not `eprintln!`: it panics on a closed stderr.
            let _ = writeln!(std::io::stderr(), "error: {message}");
            return ExitCode::from(2);
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout (`llmtel cost ... | head`): the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: writing stdout: {e}");
            ExitCode::from(1)
        }
    }
}

/// Why a command failed.
#[derive(Debug)]
enum Failure {
    /// Bad input, a missing file, ...: printed after `error: `, exit code 2.
    Message(String),
    /// Standard output could not be written (a closed pipe ends quietly; anything else,
    /// such as a full disk, is printed with exit code 1).
    Stdout(std::io::Error),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Message(message)
    }
}

/// Writes `text` to standard output and flushes it: a write error (a full disk, a closed
/// pipe) is returned, never ignored or a panic.
fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The built-in catalog, or it with the user's file merged over it.
fn catalog(args: &CatalogArgs) -> Result<std::borrow::Cow<'static, Catalog>, String> {
    match &args.prices {
        Some(path) => Catalog::builtin_with(path)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| e.to_string()),
        None => Ok(std::borrow::Cow::Borrowed(Catalog::builtin())),
    }
}

/// Prices the call and renders it; `Err` is the message for stderr.
fn cost(args: &CostArgs) -> Result<String, String> {
    let catalog = catalog(&args.catalog)?;
    let model = args.model.as_deref().unwrap_or_default();
    let usage = Usage {
        input_tokens: args.input_tokens.unwrap_or(0),
        output_tokens: args.output_tokens.unwrap_or(0),
        cache_read_tokens: args.cache_read_tokens,
        cache_write_tokens: args.cache_write_tokens,
        reasoning_tokens: args.reasoning_tokens,
    };
    let details = UsageDetails {
        audio_input_tokens: args.audio_input_tokens,
        cache_read_audio_tokens: args.cached_audio_tokens,
        image_input_tokens: args.image_input_tokens,
        video_input_tokens: args.video_input_tokens,
        cache_write_1h_tokens: args.cache_write_1h_tokens,
        audio_output_tokens: args.audio_output_tokens,
        image_output_tokens: args.image_output_tokens,
        web_search_queries: args.web_search_queries,
        code_interpreter_sessions: args.code_interpreter_sessions,
        file_search_calls: args.file_search_calls,
        images: args.images,
        input_characters: args.input_characters,
        input_audio_ms: args.input_audio_seconds,
        output_audio_ms: args.output_audio_seconds,
    };
    let mut at = args
        .at
        .unwrap_or_else(|| At::Instant(jiff::Timestamp::now()))
        .call()
        .with_details(details);
    at.service_tier = args.service_tier.as_deref();
    at.search_context_size = args.search_context_size;
    let call = catalog
        .price_call(model, args.provider.as_deref(), &usage, &at)
        .map_err(|e| e.to_string())?;
    Ok(if args.json {
        render_json(model, &usage, &details, &call).to_string()
    } else {
        render_table(model, &usage, &details, &call)
    })
}

/// The longest line `cost --batch` reads: 1 MiB (a priced call is a few hundred bytes).
const MAX_BATCH_LINE_BYTES: usize = 1024 * 1024;

/// `cost --batch`: JSON lines in, JSON lines out; a bad line gives an `error` object.
fn batch(args: &CostArgs) -> Result<(), Failure> {
    let catalog = catalog(&args.catalog)?;
    let default_at = args.at.unwrap_or_else(|| At::Date(today()));
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = Vec::new();
    // Bytes, decoded line by line: a line that is not UTF-8, or longer than
    // MAX_BATCH_LINE_BYTES (never held whole), gets its error object; the rest are still
    // priced.
    for n in 1.. {
        let Some(complete) = read_line_capped(&mut input, &mut line, MAX_BATCH_LINE_BYTES)
            .map_err(|e| format!("reading stdin: {e}"))?
        else {
            break;
        };
        let value = if !complete {
            Err(format!(
                "the line is longer than {MAX_BATCH_LINE_BYTES} bytes (1 MiB), the most `cost --batch` reads: give one call per line"
            ))
        } else {
            match std::str::from_utf8(&line) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => batch_call(&catalog, text, default_at, args.provider.as_deref()),
                Err(_) => Err("the line is not valid UTF-8".to_owned()),
            }
        };
        let value = match value {
            Ok(v) => v,
            Err(e) => serde_json::json!({ "line": n, "error": e }),
        };
        writeln!(out, "{value}").map_err(Failure::Stdout)?;
    }
    out.flush().map_err(Failure::Stdout)
}

/// Reads the next line of `input` (without its `\n`) into `line`, holding at most `max`
/// bytes: `Some(true)` a whole line, `Some(false)` a line longer than `max` (read to its end
/// and dropped), `None` the end of the input.
fn read_line_capped<R: BufRead>(
    input: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let n = std::io::Read::take(&mut *input, cap).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Some(true));
    }
    if line.len() <= max {
        // The last line, with no newline.
        return Ok(Some(true));
    }
    // Too long: skip the rest of it without keeping it.
    line.clear();
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                break;
            }
            None => {
                let len = buf.len();
                input.consume(len);
            }
        }
    }
    Ok(Some(false))
}

/// The fields a `--batch` line may have.
const BATCH_FIELDS: [&str; 26] = [
    "model",
    "provider",
    "at",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "cached_audio_tokens",
    "image_input_tokens",
    "video_input_tokens",
    "audio_output_tokens",
    "image_output_tokens",
    "web_search_queries",
    "code_interpreter_sessions",
    "file_search_calls",
    "images",
    "input_characters",
    "input_audio_seconds",
    "output_audio_seconds",
    "input_audio_ms",
    "output_audio_ms",
    "service_tier",
    "search_context_size",
];

fn batch_call(
    catalog: &Catalog,
    line: &str,
    default_at: At,
    default_provider: Option<&str>,
) -> Result<serde_json::Value, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let Some(fields) = v.as_object() else {
        return Err("each line must be a JSON object".to_owned());
    };
    // A misspelt or unknown field was ignored, and the call priced without it.
    if let Some(unknown) = fields.keys().find(|k| !BATCH_FIELDS.contains(&k.as_str())) {
        let name: String = unknown.chars().take(64).collect();
        return Err(format!(
            "unknown field {name:?}; the fields are {}",
            BATCH_FIELDS.join(", ")
        ));
    }
    let seconds = |field: &str| -> Result<u64, String> {
        match v.get(field) {
            None | Some(serde_json::Value::Null) => Ok(0),
            Some(serde_json::Value::Number(n)) => {
                parse_seconds_ms(&n.to_string()).map_err(|e| format!("`{field}`: {e}"))
            }
            Some(_) => Err(format!("`{field}` must be a number of seconds (90.5)")),
        }
    };
    let tokens = |field: &str| -> Result<u64, String> {
        match v.get(field) {
            None | Some(serde_json::Value::Null) => Ok(0),
            Some(x) => x
                .as_u64()
                .ok_or_else(|| format!("`{field}` must be a non-negative integer")),
        }
    };
    let model = v
        .get("model")
        .and_then(|m| m.as_str())
        .ok_or("missing `model`")?;
    let provider = v
        .get("provider")
        .and_then(|p| p.as_str())
        .or(default_provider);
    let at = match v.get("at").and_then(|a| a.as_str()) {
        Some(s) => parse_at(s)?,
        None => default_at,
    };
    let usage = Usage {
        input_tokens: tokens("input_tokens")?,
        output_tokens: tokens("output_tokens")?,
        cache_read_tokens: tokens("cache_read_tokens")?,
        cache_write_tokens: tokens("cache_write_tokens")?,
        reasoning_tokens: tokens("reasoning_tokens")?,
    };
    let details = UsageDetails {
        audio_input_tokens: tokens("audio_input_tokens")?,
        cache_read_audio_tokens: tokens("cached_audio_tokens")?,
        image_input_tokens: tokens("image_input_tokens")?,
        video_input_tokens: tokens("video_input_tokens")?,
        cache_write_1h_tokens: tokens("cache_write_1h_tokens")?,
        audio_output_tokens: tokens("audio_output_tokens")?,
        image_output_tokens: tokens("image_output_tokens")?,
        web_search_queries: tokens("web_search_queries")?,
        code_interpreter_sessions: tokens("code_interpreter_sessions")?,
        file_search_calls: tokens("file_search_calls")?,
        images: tokens("images")?,
        input_characters: tokens("input_characters")?,
        input_audio_ms: tokens("input_audio_ms")?.saturating_add(seconds("input_audio_seconds")?),
        output_audio_ms: tokens("output_audio_ms")?
            .saturating_add(seconds("output_audio_seconds")?),
    };
    let mut call = at.call().with_details(details);
    call.service_tier = v.get("service_tier").and_then(|t| t.as_str());
    if let Some(s) = v.get("search_context_size").and_then(|t| t.as_str()) {
        call.search_context_size = Some(parse_search_size(s)?);
    }
    let call = catalog
        .price_call(model, provider, &usage, &call)
        .map_err(|e| e.to_string())?;
    Ok(render_json(model, &usage, &details, &call))
}

fn today() -> Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

fn render_json(
    model: &str,
    usage: &Usage,
    details: &UsageDetails,
    call: &PricedCall,
) -> serde_json::Value {
    let b = &call.breakdown;
    serde_json::json!({
        "model": model,
        "matched": call.model,
        "match": call.matched.as_str(),
        "provider": call.provider,
        "price_date": call.price_date.to_string(),
        "tier_above_input_tokens": call.tier_above_input_tokens,
        "usage_note": call.usage_note,
        "service_tier": call.service_tier,
        "off_peak": call.off_peak,
        "notes": call.notes,
        "currency": "USD",
        "cost_usd": b.total.as_f64(),
        "cost_usd_exact": decimal(b.total),
        "breakdown": parts(b).map(|(k, v)| (k.to_string(), v.as_f64().into())).collect::<serde_json::Map<_, _>>(),
        "breakdown_exact": parts(b).map(|(k, v)| (k.to_string(), decimal(v).into())).collect::<serde_json::Map<_, _>>(),
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_input_tokens": details.audio_input_tokens,
            "cached_audio_tokens": details.cache_read_audio_tokens,
            "image_input_tokens": details.image_input_tokens,
            "video_input_tokens": details.video_input_tokens,
            "cache_write_1h_tokens": details.cache_write_1h_tokens,
            "audio_output_tokens": details.audio_output_tokens,
            "image_output_tokens": details.image_output_tokens,
            "web_search_queries": details.web_search_queries,
            "code_interpreter_sessions": details.code_interpreter_sessions,
            "file_search_calls": details.file_search_calls,
            "images": details.images,
            "input_characters": details.input_characters,
            "input_audio_ms": details.input_audio_ms,
            "output_audio_ms": details.output_audio_ms,
        },
    })
}

/// The named parts of a breakdown, in output order (the `llmtel.cost.<part>` names).
fn parts(b: &CostBreakdown) -> impl Iterator<Item = (&'static str, Usd)> {
    [
        ("input", b.input),
        ("output", b.output),
        ("cache_read", b.cache_read),
        ("cache_write", b.cache_write),
        ("reasoning", b.reasoning),
        ("audio_input", b.audio_input),
        ("cached_audio", b.cached_audio),
        ("image_input", b.image_input),
        ("video_input", b.video_input),
        ("audio_output", b.audio_output),
        ("image_output", b.image_output),
        ("web_search", b.web_search),
        ("code_interpreter", b.code_interpreter),
        ("file_search", b.file_search),
        ("images", b.images),
        ("characters", b.characters),
        ("audio_seconds", b.audio_seconds),
    ]
    .into_iter()
}

/// `$12.500000` without the `$`.
fn decimal(v: Usd) -> String {
    v.to_string().trim_start_matches('$').to_string()
}

fn render_table(model: &str, usage: &Usage, details: &UsageDetails, call: &PricedCall) -> String {
    use std::fmt::Write as _;
    let b = &call.breakdown;
    // Tokens billed in each class, read the way the pricing read them.
    let cached_audio = details.cached_audio_tokens(usage);
    let modal = details.modal_input_tokens();
    let text_input = u128::from(usage.input_tokens)
        .checked_sub(modal)
        .unwrap_or(u128::from(usage.input_tokens));
    let text_cache_read = usage.cache_read_tokens - cached_audio;
    let cache = u128::from(text_cache_read) + u128::from(usage.cache_write_tokens);
    let uncached = text_input.checked_sub(cache).unwrap_or(text_input);
    let text_output = u128::from(usage.output_tokens)
        .checked_sub(details.modal_output_tokens())
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or(usage.output_tokens);
    let plain_output = text_output
        .checked_sub(usage.reasoning_tokens)
        .unwrap_or(text_output);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model        {} (matched `{}`, {})",
        model,
        call.model,
        call.matched.as_str()
    );
    let _ = writeln!(out, "provider     {}", call.provider);
    let _ = writeln!(out, "price date   {}", call.price_date);
    if let Some(t) = call.tier_above_input_tokens {
        let _ = writeln!(out, "tier         above {t} input tokens");
    }
    if let Some(note) = call.usage_note {
        let _ = writeln!(out, "note         {note}");
    }
    if let Some(t) = &call.service_tier {
        let _ = writeln!(out, "service tier {t}");
    }
    if call.off_peak {
        let _ = writeln!(out, "off-peak     yes (off-peak window rates)");
    }
    for note in &call.notes {
        let _ = writeln!(out, "note         {note}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<12} {:>14} {:>16}", "", "tokens", "cost");
    let rows: [(&str, u128, Usd); 17] = [
        ("input", uncached, b.input),
        ("cache read", text_cache_read.into(), b.cache_read),
        (
            "cache write",
            usage.cache_write_tokens.into(),
            b.cache_write,
        ),
        ("output", plain_output.into(), b.output),
        ("reasoning", usage.reasoning_tokens.into(), b.reasoning),
        (
            "audio input",
            (details.audio_input_tokens - cached_audio).into(),
            b.audio_input,
        ),
        ("cached audio", cached_audio.into(), b.cached_audio),
        (
            "image input",
            details.image_input_tokens.into(),
            b.image_input,
        ),
        (
            "video input",
            details.video_input_tokens.into(),
            b.video_input,
        ),
        (
            "audio output",
            details.audio_output_tokens.into(),
            b.audio_output,
        ),
        (
            "image output",
            details.image_output_tokens.into(),
            b.image_output,
        ),
        (
            "web search",
            details.web_search_queries.into(),
            b.web_search,
        ),
        (
            "code interp.",
            details.code_interpreter_sessions.into(),
            b.code_interpreter,
        ),
        (
            "file search",
            details.file_search_calls.into(),
            b.file_search,
        ),
        ("images", details.images.into(), b.images),
        ("characters", details.input_characters.into(), b.characters),
        (
            "audio ms",
            u128::from(details.input_audio_ms) + u128::from(details.output_audio_ms),
            b.audio_seconds,
        ),
    ];
    for (i, (name, tokens, cost)) in rows.into_iter().enumerate() {
        if i >= 5 && tokens == 0 && cost == Usd::ZERO {
            continue;
        }
        let _ = writeln!(out, "{name:<12} {tokens:>14} {cost:>16}");
    }
    let _ = write!(out, "{:<12} {:>14} {:>16}", "total", "", b.total);
    out
}

// ---------------------------------------------------------------------------------------
// llmtel prices

fn prices(args: PricesArgs) -> Result<String, String> {
    match args.command {
        Some(PricesCommand::Resolve {
            model,
            provider,
            catalog: c,
        }) => {
            let c = pick_catalog(&c, &args.catalog)?;
            resolve(&c, &model, provider.as_deref().or(args.provider.as_deref()))
        }
        Some(PricesCommand::List {
            provider,
            json,
            catalog: c,
        }) => {
            let c = pick_catalog(&c, &args.catalog)?;
            Ok(list(
                &c,
                provider.as_deref().or(args.provider.as_deref()),
                json || args.json,
            ))
        }
        Some(PricesCommand::Check { file }) => check(&file),
        Some(PricesCommand::Diff { old, new, json }) => diff(&old, &new, json || args.json),
        None => {
            let Some(model) = args.model else {
                return Err(
                    "give a model (`llmtel prices gpt-4o`) or a command: resolve, list, check"
                        .into(),
                );
            };
            let c = catalog(&args.catalog)?;
            show(
                &c,
                &model,
                args.provider.as_deref(),
                args.at.unwrap_or_else(today),
                args.json,
            )
        }
    }
}

fn pick_catalog(
    inner: &CatalogArgs,
    outer: &CatalogArgs,
) -> Result<std::borrow::Cow<'static, Catalog>, String> {
    if inner.prices.is_some() {
        catalog(inner)
    } else {
        catalog(outer)
    }
}

/// USD per million tokens from pico-dollars per token: `2500000` → `2.5`.
fn per_million(picos: u64) -> String {
    let whole = picos / 1_000_000;
    let frac = picos % 1_000_000;
    if frac == 0 {
        return format!("{whole}");
    }
    let f = format!("{frac:06}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

fn show(
    catalog: &Catalog,
    model: &str,
    provider: Option<&str>,
    at: Date,
    json: bool,
) -> Result<String, String> {
    use std::fmt::Write as _;
    let resolved = catalog.resolve(model, provider).ok_or_else(|| {
        let near = catalog.suggest(model, 3);
        format!(
            "unknown model `{model}`. Nearest known: {}. `llmtel prices resolve {model}` shows the steps tried",
            if near.is_empty() {
                "(none)".to_string()
            } else {
                near.join(", ")
            }
        )
    })?;
    let entry = catalog
        .get(&resolved.key)
        .ok_or_else(|| format!("catalog entry `{}` vanished", resolved.key))?;
    let in_force = entry.price_at(at).map(|p| p.effective);
    if json {
        let mut v = entry_json(entry);
        v["match"] = resolved.kind.as_str().into();
        v["model"] = model.into();
        v["in_force"] = in_force.map(|d| d.to_string()).into();
        return Ok(v.to_string());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} (matched `{}`, {})",
        model,
        entry.id,
        resolved.kind.as_str()
    );
    let _ = writeln!(out, "provider        {}", entry.provider);
    let _ = writeln!(out, "kind            {}", entry.kind.as_str());
    if !entry.aliases.is_empty() {
        let _ = writeln!(out, "aliases         {}", entry.aliases.join(", "));
    }
    if let Some(c) = entry.context_window {
        let _ = writeln!(out, "context window  {c} tokens");
    }
    if let Some(m) = entry.max_output_tokens {
        let _ = writeln!(out, "max output      {m} tokens");
    }
    let _ = writeln!(out, "prices (USD per million tokens):");
    for p in &entry.prices {
        let mark = if Some(p.effective) == in_force {
            format!("  <- in force on {at}")
        } else {
            String::new()
        };
        let _ = writeln!(out, "  from {}{mark}", p.effective);
        let r = &p.rates;
        let _ = writeln!(
            out,
            "    input {}  output {}",
            per_million(r.input),
            per_million(r.output)
        );
        let opt = |name: &str, v: Option<u64>| {
            v.map(|v| format!("  {name} {}", per_million(v)))
                .unwrap_or_default()
        };
        let extra = [
            opt("cache_read", r.cache_read),
            opt("cache_write", r.cache_write),
            opt("cache_write_1h", p.cache_write_1h),
            opt("reasoning", r.reasoning),
            opt("batch_input", p.batch_input),
            opt("batch_output", p.batch_output),
        ]
        .concat();
        if !extra.is_empty() {
            let _ = writeln!(out, "   {extra}");
        }
        for t in &p.tiers {
            let _ = writeln!(
                out,
                "    above {} input tokens: input {}  output {}{}{}{}",
                t.above_input_tokens,
                per_million(t.input),
                per_million(t.output),
                opt("cache_read", t.cache_read),
                opt("cache_write", t.cache_write),
                opt("reasoning", t.reasoning),
            );
        }
        if let Some(s) = &p.source {
            let _ = writeln!(out, "    source {s}");
        }
    }
    Ok(out.trim_end().to_string())
}

fn entry_json(e: &ModelEntry) -> serde_json::Value {
    let opt = |v: Option<u64>| v.map(per_million);
    serde_json::json!({
        "id": e.id,
        "provider": e.provider,
        "kind": e.kind.as_str(),
        "aliases": e.aliases,
        "context_window": e.context_window,
        "max_output_tokens": e.max_output_tokens,
        "prices": e.prices.iter().map(|p| serde_json::json!({
            "effective": p.effective.to_string(),
            "input": per_million(p.rates.input),
            "output": per_million(p.rates.output),
            "cache_read": opt(p.rates.cache_read),
            "cache_write": opt(p.rates.cache_write),
            "cache_write_1h": opt(p.cache_write_1h),
            "reasoning": opt(p.rates.reasoning),
            "batch_input": opt(p.batch_input),
            "batch_output": opt(p.batch_output),
            "source": p.source,
            "tiers": p.tiers.iter().map(|t| serde_json::json!({
                "above_input_tokens": t.above_input_tokens,
                "input": per_million(t.input),
                "output": per_million(t.output),
                "cache_read": opt(t.cache_read),
                "cache_write": opt(t.cache_write),
                "reasoning": opt(t.reasoning),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn resolve(catalog: &Catalog, model: &str, provider: Option<&str>) -> Result<String, String> {
    use std::fmt::Write as _;
    let steps = catalog.explain(model, provider);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "resolving `{model}`{}",
        provider
            .map(|p| format!(" (provider hint {p})"))
            .unwrap_or_default()
    );
    for (i, s) in steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>2}. {:<48} {:<50} {}",
            i + 1,
            s.step,
            s.tried,
            s.matched
                .as_deref()
                .map(|m| format!("-> {m}"))
                .unwrap_or_else(|| "no match".into())
        );
    }
    match catalog.resolve(model, provider) {
        Some(r) => {
            let _ = write!(out, "matched `{}` ({})", r.key, r.kind.as_str());
            Ok(out)
        }
        None => {
            let near = catalog.suggest(model, 3);
            // The steps tried, then the error on stderr (exit 2 either way).
            if let Err(e) = write_stdout(&out)
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                let _ = writeln!(std::io::stderr(), "error: writing stdout: {e}");
            }
            Err(format!(
                "unknown model `{model}`: no step matched. Nearest known: {}",
                if near.is_empty() {
                    "(none)".to_string()
                } else {
                    near.join(", ")
                }
            ))
        }
    }
}

fn list(catalog: &Catalog, provider: Option<&str>, json: bool) -> String {
    use std::fmt::Write as _;
    let entries: Vec<&ModelEntry> = catalog
        .entries()
        .filter(|e| provider.is_none_or(|p| e.provider.eq_ignore_ascii_case(p)))
        .collect();
    if json {
        return serde_json::Value::Array(entries.iter().map(|e| entry_json(e)).collect())
            .to_string();
    }
    let today = today();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<60} {:<18} {:<10} {:>10} {:>10} {:>10}  (USD per million tokens, price in force today)",
        "model", "provider", "kind", "input", "output", "cache read"
    );
    for e in &entries {
        let Some(p) = e.price_at(today) else { continue };
        let _ = writeln!(
            out,
            "{:<60} {:<18} {:<10} {:>10} {:>10} {:>10}",
            e.id,
            e.provider,
            e.kind.as_str(),
            per_million(p.rates.input),
            per_million(p.rates.output),
            p.rates.cache_read.map(per_million).unwrap_or_default()
        );
    }
    let _ = write!(out, "{} entries", entries.len());
    out
}

/// The largest price file `prices check` reads: 64 MiB (LiteLLM's whole catalog is about
/// 3.5 MiB).
const MAX_PRICE_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The text of a price file, read up to [`MAX_PRICE_FILE_BYTES`] (never more into memory).
fn read_price_file(file: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| format!("cannot read price file `{}`: {e}", file.display());
    let f = std::fs::File::open(file).map_err(cannot)?;
    let mut bytes = Vec::new();
    f.take(MAX_PRICE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_PRICE_FILE_BYTES {
        return Err(format!(
            "price file `{}` is larger than {MAX_PRICE_FILE_BYTES} bytes (64 MiB), the most `llmtel prices check` reads: is it the right file? A price file lists models and their rates",
            file.display()
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "cannot read price file `{}`: not UTF-8 text (invalid byte at offset {})",
            file.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

fn check(file: &Path) -> Result<String, String> {
    let src = read_price_file(file)?;
    let origin = file.display().to_string();
    let (user, format, skipped) = if Catalog::looks_like_json(file, &src) {
        let import = Catalog::import_litellm_json(&src, &origin).map_err(|e| e.to_string())?;
        let skipped = import.skipped.len();
        (import.catalog, "LiteLLM JSON", Some(skipped))
    } else {
        let c = Catalog::from_toml_str(&src, &origin).map_err(|e| e.to_string())?;
        (c, "llmtel TOML", None)
    };
    let merged = Catalog::builtin()
        .try_merged_with(&user, &origin)
        .map_err(|e| e.to_string())?;
    // As calls are priced: following chains of deployments, a cycle leading nowhere.
    for (name, target) in user.deployments() {
        if merged.resolve_deployment(name, None).is_none() {
            return Err(format!(
                "{origin}: field `deployments.{name}`: model `{target}` is not in the catalog (built-in or this file), or the deployments it leads to map back to each other without reaching one; name a known model (see `llmtel prices list`) or add an entry for it"
            ));
        }
    }
    let mut out = format!("{origin}: ok, {format}, {} entries", user.len());
    let deployments = user.deployments().count();
    if deployments > 0 {
        out.push_str(&format!(", {deployments} deployments"));
    }
    if let Some(s) = skipped {
        out.push_str(&format!(
            " ({s} entries skipped: not token-priced or not chat/embedding/completion/moderation)"
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// llmtel prices diff

/// Every rate of a price as `field -> value` (USD per million tokens; per-request charges
/// in USD), for comparing two prices field by field.
fn flatten_price(p: &Price) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    let mut put = |k: String, v: Option<u64>| {
        if let Some(v) = v {
            m.insert(k, per_million(v));
        }
    };
    let r = &p.rates;
    put("input".into(), Some(r.input));
    put("output".into(), Some(r.output));
    put("cache_read".into(), r.cache_read);
    put("cache_write".into(), r.cache_write);
    put("cache_write_1h".into(), p.cache_write_1h);
    put("reasoning".into(), r.reasoning);
    put("batch_input".into(), p.batch_input);
    put("batch_output".into(), p.batch_output);
    for t in &p.tiers {
        let k = |f: &str| format!("tier.above_{}.{f}", t.above_input_tokens);
        put(k("input"), Some(t.input));
        put(k("output"), Some(t.output));
        put(k("cache_read"), t.cache_read);
        put(k("cache_write"), t.cache_write);
        put(k("reasoning"), t.reasoning);
    }
    for (name, st) in &p.dims.service_tiers {
        let k = |f: &str| format!("service_tier.{name}.{f}");
        put(k("input"), st.input);
        put(k("output"), st.output);
        put(k("cache_read"), st.cache_read);
        put(k("cache_write"), st.cache_write);
        put(k("audio_input"), st.audio_input);
        put(k("cache_read_audio"), st.cache_read_audio);
        for t in &st.tiers {
            put(
                k(&format!("tier.above_{}.input", t.above_input_tokens)),
                Some(t.input),
            );
            put(
                k(&format!("tier.above_{}.output", t.above_input_tokens)),
                Some(t.output),
            );
        }
    }
    let md = &p.dims.modality;
    put("modality.audio_input".into(), md.audio_input);
    put("modality.audio_output".into(), md.audio_output);
    put("modality.image_input".into(), md.image_input);
    put("modality.video_input".into(), md.video_input);
    put("modality.cache_read_audio".into(), md.cache_read_audio);
    put("modality.cache_read_image".into(), md.cache_read_image);
    put("modality.cache_write_audio".into(), md.cache_write_audio);
    put("modality.image_output".into(), md.image_output);
    if let Some(op) = &p.dims.off_peak {
        put("off_peak.input".into(), Some(op.input));
        put("off_peak.output".into(), Some(op.output));
        put("off_peak.cache_read".into(), op.cache_read);
        let windows: Vec<String> = op
            .windows
            .iter()
            .map(|w| {
                format!(
                    "{:?} {:02}:{:02}-{:02}:{:02}",
                    w.weekdays,
                    w.start_minute / 60,
                    w.start_minute % 60,
                    w.end_minute / 60,
                    w.end_minute % 60
                )
            })
            .collect();
        m.insert("off_peak.windows".into(), windows.join(", "));
    }
    let rq = &p.dims.requests;
    if let Some(w) = rq.web_search {
        m.insert("per_request.web_search.low".into(), decimal(w.low));
        m.insert("per_request.web_search.medium".into(), decimal(w.medium));
        m.insert("per_request.web_search.high".into(), decimal(w.high));
    }
    if let Some(c) = rq.code_interpreter_session {
        m.insert("per_request.code_interpreter_session".into(), decimal(c));
    }
    if let Some(c) = rq.file_search_call {
        m.insert("per_request.file_search_call".into(), decimal(c));
    }
    m
}

/// `llmtel prices diff OLD NEW`: models added and removed, and for models in both, each
/// rate of the latest price that changed (and a changed effective date).
fn diff(old: &Path, new: &Path, json: bool) -> Result<String, String> {
    use std::fmt::Write as _;
    let a = Catalog::load(old).map_err(|e| e.to_string())?;
    let b = Catalog::load(new).map_err(|e| e.to_string())?;
    let added: Vec<&str> = b
        .entries()
        .filter(|e| a.get(&e.id).is_none())
        .map(|e| e.id.as_str())
        .collect();
    let removed: Vec<&str> = a
        .entries()
        .filter(|e| b.get(&e.id).is_none())
        .map(|e| e.id.as_str())
        .collect();
    let mut changed = Vec::new();
    for ea in a.entries() {
        let Some(eb) = b.get(&ea.id) else { continue };
        let (Some(pa), Some(pb)) = (ea.prices.last(), eb.prices.last()) else {
            continue;
        };
        let (fa, fb) = (flatten_price(pa), flatten_price(pb));
        let mut fields = Vec::new();
        if pa.effective != pb.effective {
            fields.push((
                "effective".to_string(),
                Some(pa.effective.to_string()),
                Some(pb.effective.to_string()),
            ));
        }
        let keys: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
        for k in keys {
            let (x, y) = (fa.get(k), fb.get(k));
            if x != y {
                fields.push((k.clone(), x.cloned(), y.cloned()));
            }
        }
        if !fields.is_empty() {
            changed.push((ea.id.as_str(), fields));
        }
    }
    if json {
        let changed: Vec<serde_json::Value> = changed
            .iter()
            .map(|(id, fields)| {
                serde_json::json!({
                    "id": id,
                    "changes": fields.iter().map(|(f, x, y)| serde_json::json!({
                        "field": f, "old": x, "new": y,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        return Ok(serde_json::json!({
            "old": old.display().to_string(),
            "new": new.display().to_string(),
            "added": added,
            "removed": removed,
            "changed": changed,
        })
        .to_string());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} -> {}: {} added, {} removed, {} changed (rates in USD per million tokens; per-request charges in USD)",
        old.display(),
        new.display(),
        added.len(),
        removed.len(),
        changed.len()
    );
    for id in &added {
        let _ = writeln!(out, "+ {id}");
    }
    for id in &removed {
        let _ = writeln!(out, "- {id}");
    }
    for (id, fields) in &changed {
        let _ = writeln!(out, "~ {id}");
        for (f, x, y) in fields {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
            let _ = writeln!(out, "    {f}: {} -> {}", show(x), show(y));
        }
    }
    Ok(out.trim_end().to_string())
}
