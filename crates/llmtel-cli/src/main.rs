//! `llmtel`: the llmtel command line.
//!
//! `llmtel cost` prices one LLM call from the llmtel price catalog:
//!
//! ```text
//! llmtel cost --model gpt-4o --input-tokens 1000000 --output-tokens 1000000 [--json]
//! ```
//!
//! Exit codes: 0 success; 2 usage error, unknown model, or bad price file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use jiff::civil::Date;
use llmtel_pricing::{Catalog, PricedCall, Usage, Usd};

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
}

#[derive(Debug, Args)]
struct CostArgs {
    /// Model name as reported (`gpt-4o`, `openai/gpt-4o-2024-08-06`, a Bedrock id, ...).
    #[arg(long)]
    model: String,
    /// Input tokens, inclusive of cache-read and cache-write tokens.
    #[arg(long)]
    input_tokens: u64,
    /// Output tokens, inclusive of reasoning tokens.
    #[arg(long)]
    output_tokens: u64,
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
    /// A TOML price file merged over the built-in catalog (see llmtel-pricing's data/README.md).
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// Date of the call, selecting the price in force [default: today, UTC].
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    at: Option<Date>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_date(s: &str) -> Result<Date, String> {
    s.parse::<Date>()
        .map_err(|e| format!("expected a date as YYYY-MM-DD: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Cost(args) => match cost(&args) {
            Ok(out) => {
                println!("{out}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        },
    }
}

/// Prices the call and renders it; `Err` is the message for stderr.
fn cost(args: &CostArgs) -> Result<String, String> {
    let builtin = Catalog::builtin();
    let merged;
    let catalog = match &args.prices {
        Some(path) => {
            let user = Catalog::load(path).map_err(|e| e.to_string())?;
            merged = builtin.merged_with(&user);
            &merged
        }
        None => builtin,
    };
    let usage = Usage {
        input_tokens: args.input_tokens,
        output_tokens: args.output_tokens,
        cache_read_tokens: args.cache_read_tokens,
        cache_write_tokens: args.cache_write_tokens,
        reasoning_tokens: args.reasoning_tokens,
    };
    let at = args.at.unwrap_or_else(today);
    let call = catalog
        .price(&args.model, args.provider.as_deref(), &usage, at)
        .map_err(|e| e.to_string())?;
    Ok(if args.json {
        render_json(args, &usage, &call)
    } else {
        render_table(args, &usage, &call)
    })
}

fn today() -> Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

fn render_json(args: &CostArgs, usage: &Usage, call: &PricedCall) -> String {
    let b = &call.breakdown;
    serde_json::json!({
        "model": args.model,
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
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        },
    })
    .to_string()
}

/// `$12.500000` without the `$`.
fn decimal(v: Usd) -> String {
    v.to_string().trim_start_matches('$').to_string()
}

fn render_table(args: &CostArgs, usage: &Usage, call: &PricedCall) -> String {
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
        args.model,
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
