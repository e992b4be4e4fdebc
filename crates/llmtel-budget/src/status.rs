//! Status of budgets: per rule and scope, as data, a table or JSON.

use jiff::Timestamp;
use llmtel_pricing::Usd;
use serde::Serialize;

/// The state of one rule for one scope value in the current period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleStatus {
    /// Rule name.
    pub rule: String,
    /// `attribute=value` (`user.id=u-1`, `*=*` for global). An API-key scope's value,
    /// whatever its shape, and any value that holds a secret shows as
    /// `attribute=[REDACTED:<12 hex digits>]`, a fingerprint keyed with a
    /// secret of this process: distinct values stay distinct rows, stable while the process
    /// runs.
    pub scope: String,
    /// Period name.
    pub period: String,
    /// When the current period started (`None` for lifetime).
    pub period_start: Option<Timestamp>,
    /// Settled spend in the period.
    #[serde(serialize_with = "usd_f64")]
    pub spent: Usd,
    /// Settled tokens in the period.
    pub spent_tokens: u64,
    /// Spend held by unexpired reservations.
    #[serde(serialize_with = "usd_f64")]
    pub reserved: Usd,
    /// USD limit.
    #[serde(serialize_with = "opt_usd_f64")]
    pub limit: Option<Usd>,
    /// Token limit.
    pub limit_tokens: Option<u64>,
    /// Settled spend / limit (the higher of USD and tokens).
    pub utilization: f64,
    /// Limit - settled - reserved (USD), at least zero.
    #[serde(serialize_with = "opt_usd_f64")]
    pub remaining: Option<Usd>,
    /// The same in tokens.
    pub remaining_tokens: Option<u64>,
    /// When the period resets.
    pub resets_at: Option<Timestamp>,
}

fn usd_f64<S: serde::Serializer>(v: &Usd, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(v.as_f64())
}

fn opt_usd_f64<S: serde::Serializer>(v: &Option<Usd>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_f64(v.as_f64()),
        None => s.serialize_none(),
    }
}

fn cell_usd(u: Option<Usd>) -> String {
    u.map(|u| format!("${:.4}", u.as_f64()))
        .unwrap_or_else(|| "-".into())
}

/// Renders statuses as an aligned text table (the `llmtel budget status` output).
///
/// ```
/// let t = llmtel_budget::render_table(&[]);
/// assert!(t.starts_with("RULE"));
/// ```
pub fn render_table(rows: &[RuleStatus]) -> String {
    let header = [
        "RULE",
        "SCOPE",
        "PERIOD",
        "SPENT",
        "LIMIT",
        "USED",
        "REMAINING",
        "TOKENS",
        "RESETS AT",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        table.push(vec![
            r.rule.clone(),
            r.scope.clone(),
            r.period.clone(),
            cell_usd(Some(r.spent)),
            cell_usd(r.limit),
            format!("{:.1}%", r.utilization * 100.0),
            cell_usd(r.remaining),
            match r.limit_tokens {
                Some(l) => format!("{}/{l}", r.spent_tokens),
                None => r.spent_tokens.to_string(),
            },
            r.resets_at
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "never".into()),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Renders statuses as a JSON array.
pub fn render_json(rows: &[RuleStatus]) -> String {
    serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".into())
}
