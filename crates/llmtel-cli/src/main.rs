//! `llmtel`: the llmtel command line.
//!
//! ```text
//! llmtel cost --model gpt-4o --input-tokens 1000000 --output-tokens 1000000 [--at DATE] [--json]
//! llmtel cost --batch [--prices FILE] < calls.jsonl      # one JSON call per line in, one result per line out
//! llmtel prices MODEL [--at DATE] [--json]             # the entry, its dated prices
//! llmtel prices resolve MODEL [--provider P]           # each resolution step tried
//! llmtel prices list [--provider P] [--json]
//! llmtel prices check FILE                             # validate a TOML or LiteLLM JSON price file
//! llmtel report --log FILE [--from T] [--to T] [--format md|html|json] [--out FILE]
//! llmtel collector [--config FILE] [--grpc-listen ADDR] [--http-listen ADDR] [--metrics-listen ADDR]
//! ```
//!
//! Every command takes `--prices FILE` (llmtel TOML or LiteLLM JSON), merged over the
//! built-in catalog. Exit codes: 0 success; 2 usage error, unknown model, bad price
//! file, or a missing or empty call log.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use jiff::civil::Date;
use llmtel_pricing::{Catalog, ModelEntry, PricedCall, Usage, Usd};

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
    /// Output tokens spent on reasoning.
    #[arg(long, default_value_t = 0)]
    reasoning_tokens: u64,
    /// Provider hint (gen_ai.provider.name: openai, anthropic, gcp.gemini, ...).
    #[arg(long)]
    provider: Option<String>,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Date of the call, selecting the price in force [default: today, UTC].
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    at: Option<Date>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Price many calls: read one JSON object per line on stdin (`model`, `input_tokens`,
    /// `output_tokens`, optional `cache_read_tokens`, `cache_write_tokens`,
    /// `reasoning_tokens`, `provider`, `at`), write one JSON result per line (as
    /// `--json`, or `{"error": ...}`).
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
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
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
    match &args.out {
        None => Ok(text),
        Some(out) => {
            std::fs::write(out, &text)
                .map_err(|e| format!("llmtel report: cannot write {}: {e}", out.display()))?;
            Ok(format!(
                "wrote {}: {} calls, {} cost, {} malformed lines skipped",
                out.display(),
                report.totals.requests,
                report.totals.cost,
                report.log.malformed
            ))
        }
    }
}

fn parse_date(s: &str) -> Result<Date, String> {
    s.parse::<Date>()
        .map_err(|e| format!("expected a date as YYYY-MM-DD: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cost(args) if args.batch => batch(&args),
        Command::Cost(args) => cost(&args),
        Command::Prices(args) => prices(args),
        Command::Report(args) => report(&args),
        Command::Budget {
            cmd: BudgetCommand::Status { config, json },
        } => llmtel_budget::status_report(&config, json)
            .map(|out| out.trim_end().to_owned())
            .map_err(|e| format!("llmtel budget status: {e}")),
        Command::Collector(args) => collector::run(&args),
    };
    match result {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
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
    let at = args.at.unwrap_or_else(today);
    let call = catalog
        .price(model, args.provider.as_deref(), &usage, at)
        .map_err(|e| e.to_string())?;
    Ok(if args.json {
        render_json(model, &usage, &call).to_string()
    } else {
        render_table(model, &usage, &call)
    })
}

/// `cost --batch`: JSON lines in, JSON lines out; a bad line gives an `error` object.
fn batch(args: &CostArgs) -> Result<String, String> {
    let catalog = catalog(&args.catalog)?;
    let default_at = args.at.unwrap_or_else(today);
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (n, line) in stdin.lock().lines().enumerate() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = match batch_call(&catalog, &line, default_at, args.provider.as_deref()) {
            Ok(v) => v,
            Err(e) => serde_json::json!({ "line": n + 1, "error": e }),
        };
        writeln!(out, "{value}").map_err(|e| format!("writing stdout: {e}"))?;
    }
    out.flush().map_err(|e| format!("writing stdout: {e}"))?;
    Ok(String::new())
}

fn batch_call(
    catalog: &Catalog,
    line: &str,
    default_at: Date,
    default_provider: Option<&str>,
) -> Result<serde_json::Value, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
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
        Some(s) => parse_date(s)?,
        None => default_at,
    };
    let usage = Usage {
        input_tokens: tokens("input_tokens")?,
        output_tokens: tokens("output_tokens")?,
        cache_read_tokens: tokens("cache_read_tokens")?,
        cache_write_tokens: tokens("cache_write_tokens")?,
        reasoning_tokens: tokens("reasoning_tokens")?,
    };
    let call = catalog
        .price(model, provider, &usage, at)
        .map_err(|e| e.to_string())?;
    Ok(render_json(model, &usage, &call))
}

fn today() -> Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

fn render_json(model: &str, usage: &Usage, call: &PricedCall) -> serde_json::Value {
    let b = &call.breakdown;
    serde_json::json!({
        "model": model,
        "matched": call.model,
        "match": call.matched.as_str(),
        "provider": call.provider,
        "price_date": call.price_date.to_string(),
        "tier_above_input_tokens": call.tier_above_input_tokens,
        "usage_note": call.usage_note,
        "currency": "USD",
        "cost_usd": b.total.as_f64(),
        "cost_usd_exact": decimal(b.total),
        "breakdown": {
            "input": b.input.as_f64(),
            "output": b.output.as_f64(),
            "cache_read": b.cache_read.as_f64(),
            "cache_write": b.cache_write.as_f64(),
            "reasoning": b.reasoning.as_f64(),
        },
        "breakdown_exact": {
            "input": decimal(b.input),
            "output": decimal(b.output),
            "cache_read": decimal(b.cache_read),
            "cache_write": decimal(b.cache_write),
            "reasoning": decimal(b.reasoning),
        },
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        },
    })
}

/// `$12.500000` without the `$`.
fn decimal(v: Usd) -> String {
    v.to_string().trim_start_matches('$').to_string()
}

fn render_table(model: &str, usage: &Usage, call: &PricedCall) -> String {
    use std::fmt::Write as _;
    let b = &call.breakdown;
    // Tokens billed in each class, read the way the pricing read them.
    let cache = u128::from(usage.cache_read_tokens) + u128::from(usage.cache_write_tokens);
    let uncached = u128::from(usage.input_tokens)
        .checked_sub(cache)
        .unwrap_or(u128::from(usage.input_tokens));
    let plain_output = usage
        .output_tokens
        .checked_sub(usage.reasoning_tokens)
        .unwrap_or(usage.output_tokens);
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
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<12} {:>14} {:>16}", "", "tokens", "cost");
    let rows: [(&str, u128, Usd); 5] = [
        ("input", uncached, b.input),
        ("cache read", usage.cache_read_tokens.into(), b.cache_read),
        (
            "cache write",
            usage.cache_write_tokens.into(),
            b.cache_write,
        ),
        ("output", plain_output.into(), b.output),
        ("reasoning", usage.reasoning_tokens.into(), b.reasoning),
    ];
    for (name, tokens, cost) in rows {
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
            print!("{out}");
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

fn check(file: &Path) -> Result<String, String> {
    let src = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read price file `{}`: {e}", file.display()))?;
    let origin = file.display().to_string();
    let (user, format, skipped) = if Catalog::looks_like_json(file, &src) {
        let import = Catalog::import_litellm_json(&src, &origin).map_err(|e| e.to_string())?;
        let skipped = import.skipped.len();
        (import.catalog, "LiteLLM JSON", Some(skipped))
    } else {
        let c = Catalog::from_toml_str(&src, &origin).map_err(|e| e.to_string())?;
        (c, "llmtel TOML", None)
    };
    let merged = Catalog::builtin().merged_with(&user);
    for (name, target) in user.deployments() {
        if merged.resolve(target, None).is_none() {
            return Err(format!(
                "{origin}: field `deployments.{name}`: model `{target}` is not in the catalog (built-in or this file); name a known model (see `llmtel prices list`) or add an entry for it"
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
