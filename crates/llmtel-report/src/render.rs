//! Rendering a [`Report`]: Markdown, and one self-contained HTML file with inline SVG charts.

use std::fmt::Write as _;

use jiff::Timestamp;
use llmtel::Usd;

use crate::report::{CostRow, Latency, Report, SeriesPoint, WorstCall};

/// Rows shown per cost table; the rest are summed in one line (the JSON has them all).
pub const MAX_ROWS: usize = 20;

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1} %", v * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}

fn secs(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3} s")).unwrap_or_else(|| "–".into())
}

fn share(part: Usd, total: Usd) -> String {
    if total == Usd::ZERO {
        return "–".into();
    }
    format!(
        "{:.1} %",
        part.picos() as f64 * 100.0 / total.picos() as f64
    )
}

fn when(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_else(|| "–".into())
}

fn lat(l: Option<Latency>) -> (String, String) {
    (secs(l.map(|l| l.p50_s)), secs(l.map(|l| l.p95_s)))
}

/// A Markdown table cell (or list item), read as plain text: no line breaks, no column
/// separators, no HTML (Markdown renderers pass raw HTML through: a user id of
/// `<img onerror=...>` ran in a pandoc, mkdocs or VS Code preview of the report), no link,
/// image, code span, emphasis or strikethrough (a user id of `![](https://host/p.png)`
/// loaded a remote image in a preview, `[x](javascript:...)` was a link). Without `[` and
/// `]` no link or image can start, so parentheses stay as they are (`3 (0.5 %)`).
fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '|' | '[' | ']' | '!' | '`' | '*' | '_' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// HTML text or attribute value.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The rows of a table: text cells, a header, and rows.
struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn markdown(&self, out: &mut String) {
        let _ = writeln!(out, "| {} |", self.header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(self.header.len()));
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|c| cell(c)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
    }

    fn html(&self, out: &mut String) {
        out.push_str("<table>\n<thead><tr>");
        for h in &self.header {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for r in &self.rows {
            out.push_str("<tr>");
            for c in r {
                let _ = write!(out, "<td>{}</td>", esc(c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
    }
}

fn totals_table(r: &Report) -> Table {
    let t = &r.totals;
    let (p50, p95) = lat(t.latency);
    Table {
        header: vec!["Measure", "Value"],
        rows: vec![
            vec!["Requests".into(), t.requests.to_string()],
            vec![
                "Errors".into(),
                format!("{} ({})", t.errors, pct(t.error_rate)),
            ],
            vec![
                "Cost".into(),
                format!("{} ({} calls unpriced)", t.cost, t.unpriced),
            ],
            vec![
                "Tokens (input / output)".into(),
                format!("{} / {}", t.input_tokens, t.output_tokens),
            ],
            vec!["Latency p50 / p95".into(), format!("{p50} / {p95}")],
            vec![
                "Quality score".into(),
                format!("{} ({} calls)", num(t.avg_quality_score), t.scored_calls),
            ],
            vec![
                "User rating".into(),
                format!("{} ({} ratings)", num(t.avg_rating), t.ratings),
            ],
            vec![
                "Alerts (fired / resolved)".into(),
                format!("{} / {}", r.alerts.firing, r.alerts.resolved),
            ],
        ],
    }
}

fn cost_table(what: &'static str, rows: &[CostRow], total: Usd) -> Table {
    let mut out: Vec<Vec<String>> = rows
        .iter()
        .take(MAX_ROWS)
        .map(|r| {
            vec![
                r.key.clone(),
                r.requests.to_string(),
                r.errors.to_string(),
                r.cost.to_string(),
                share(r.cost, total),
                r.input_tokens.to_string(),
                r.output_tokens.to_string(),
            ]
        })
        .collect();
    if rows.len() > MAX_ROWS {
        let rest = &rows[MAX_ROWS..];
        let cost = rest.iter().fold(Usd::ZERO, |a, r| a.saturating_add(r.cost));
        out.push(vec![
            format!("… {} more", rest.len()),
            rest.iter().map(|r| r.requests).sum::<u64>().to_string(),
            rest.iter().map(|r| r.errors).sum::<u64>().to_string(),
            cost.to_string(),
            share(cost, total),
            // Saturating: token counts come from the log (a corrupt line may hold u64::MAX).
            rest.iter()
                .fold(0u64, |a, r| a.saturating_add(r.input_tokens))
                .to_string(),
            rest.iter()
                .fold(0u64, |a, r| a.saturating_add(r.output_tokens))
                .to_string(),
        ]);
    }
    Table {
        header: vec![
            what,
            "Requests",
            "Errors",
            "Cost",
            "Share",
            "Input tokens",
            "Output tokens",
        ],
        rows: out,
    }
}

fn series_table(series: &[SeriesPoint]) -> Table {
    Table {
        header: vec![
            "Start",
            "Requests",
            "Error rate",
            "Cost",
            "Latency p50",
            "Latency p95",
            "Quality",
        ],
        rows: series
            .iter()
            .map(|p| {
                let (p50, p95) = lat(p.latency);
                vec![
                    p.start.to_string(),
                    p.requests.to_string(),
                    pct(p.error_rate),
                    p.cost.to_string(),
                    p50,
                    p95,
                    num(p.quality_score),
                ]
            })
            .collect(),
    }
}

fn evaluators_table(r: &Report) -> Table {
    Table {
        header: vec!["Evaluation", "Average", "Results"],
        rows: r
            .evaluators
            .iter()
            .map(|(k, v)| vec![k.clone(), format!("{:.3}", v.avg), v.count.to_string()])
            .collect(),
    }
}

fn alerts_table(r: &Report) -> Table {
    Table {
        header: vec!["Time", "State", "Severity", "Alert", "Labels", "Summary"],
        rows: r
            .alerts
            .events
            .iter()
            .map(|a| {
                let labels: Vec<String> =
                    a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                vec![
                    a.event_time().to_string(),
                    a.state.clone(),
                    a.severity.clone(),
                    a.name.clone(),
                    labels.join(", "),
                    a.summary().to_owned(),
                ]
            })
            .collect(),
    }
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "–".into())
}

fn worst_table(r: &Report) -> Table {
    Table {
        header: vec![
            "#",
            "Score",
            "Time",
            "Model",
            "Feature",
            "User",
            "Response id",
            "Error",
            "Evaluations",
        ],
        rows: r
            .worst_calls
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let c = &w.call;
                let evals: Vec<String> = w
                    .evaluations
                    .iter()
                    .map(|(k, v)| format!("{k}={v:.2}"))
                    .collect();
                vec![
                    (i + 1).to_string(),
                    format!("{:.3}", w.quality_score),
                    c.time.to_string(),
                    opt(&c.model),
                    opt(&c.feature),
                    opt(&c.user),
                    opt(&c.response_id),
                    opt(&c.error_type),
                    evals.join(", "),
                ]
            })
            .collect(),
    }
}

fn log_lines(r: &Report) -> Vec<String> {
    let l = &r.log;
    let mut v = vec![format!(
        "Read {} lines: {} records, {} malformed (skipped); {} calls and alerts outside the period; {} evaluations matching no call.",
        l.lines, l.records, l.malformed, l.outside_period, l.unmatched_evaluations
    )];
    if l.dropped_by_logger > 0 {
        v.push(format!(
            "The call log dropped {} records during the period (queue or file full): figures miss them.",
            l.dropped_by_logger
        ));
    }
    if let Some(t) = l.log_full_since {
        v.push(format!(
            "The call log was full from {t} (its maximum size reached, no rotated file kept): it dropped every record after that, uncounted here; figures miss them."
        ));
    }
    for m in &l.malformed_lines {
        v.push(format!(
            "Malformed: {} line {}: {}",
            m.file, m.line, m.error
        ));
    }
    v
}

fn title(r: &Report) -> String {
    format!("LLM report {} – {}", when(r.period.from), when(r.period.to))
}

/// The longest run of backticks in `s`, plus one (at least 3): a fence `s` cannot close.
fn fence(s: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

fn content_of(w: &WorstCall) -> Vec<(&'static str, &str)> {
    let c = &w.call;
    [
        ("Prompt", &c.input_messages),
        ("Response", &c.output_messages),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    .collect()
}

impl Report {
    /// The report as Markdown (GitHub-flavoured tables).
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# {}\n", title(self));
        let _ = writeln!(
            out,
            "Generated {}; series per {}.\n",
            self.generated_at,
            self.bucket.as_str()
        );
        out.push_str("## Totals\n\n");
        totals_table(self).markdown(&mut out);
        for (h, what, rows) in self.cost_sections() {
            let _ = writeln!(out, "## {h}\n");
            cost_table(what, rows, self.totals.cost).markdown(&mut out);
        }
        let _ = writeln!(out, "## Trends per {}\n", self.bucket.as_str());
        series_table(&self.series).markdown(&mut out);
        out.push_str("## Evaluations\n\n");
        if self.evaluators.is_empty() {
            out.push_str("No evaluation results for the period's calls.\n\n");
        } else {
            evaluators_table(self).markdown(&mut out);
        }
        let _ = writeln!(
            out,
            "## Alerts\n\n{} fired, {} resolved.\n",
            self.alerts.firing, self.alerts.resolved
        );
        if !self.alerts.events.is_empty() {
            alerts_table(self).markdown(&mut out);
        }
        out.push_str("## Worst calls by quality score\n\n");
        if self.worst_calls.is_empty() {
            out.push_str("No scored calls.\n\n");
        } else {
            worst_table(self).markdown(&mut out);
            for (i, w) in self.worst_calls.iter().enumerate() {
                for (k, v) in content_of(w) {
                    let f = fence(v);
                    let _ = writeln!(out, "**#{} {k}**\n\n{f}\n{v}\n{f}\n", i + 1);
                }
            }
        }
        out.push_str("## Log\n\n");
        for l in log_lines(self) {
            // A malformed line's error quotes the line: one line, no HTML.
            let _ = writeln!(out, "- {}", cell(&l));
        }
        out
    }

    fn cost_sections(&self) -> [(&'static str, &'static str, &[CostRow]); 3] {
        [
            ("Cost by model", "Model", &self.by_model),
            ("Cost by user", "User", &self.by_user),
            ("Cost by feature", "Feature", &self.by_feature),
        ]
    }

    /// The report as one self-contained HTML file: inline CSS and inline SVG charts (no
    /// script, nothing fetched). Every text from the log is escaped.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        let t = esc(&title(self));
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>{t}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{t}</h1>\n<p>Generated {}; series per {}.</p>\n",
            esc(&self.generated_at.to_string()),
            self.bucket.as_str()
        );
        out.push_str("<h2>Totals</h2>\n");
        totals_table(self).html(&mut out);
        let _ = writeln!(out, "<h2>Trends per {}</h2>", self.bucket.as_str());
        out.push_str("<div class=\"charts\">\n");
        for chart in self.charts() {
            chart.svg(&self.series, &mut out);
        }
        out.push_str("</div>\n");
        for (h, what, rows) in self.cost_sections() {
            let _ = writeln!(out, "<h2>{}</h2>", esc(h));
            cost_table(what, rows, self.totals.cost).html(&mut out);
        }
        out.push_str("<h2>Series</h2>\n");
        series_table(&self.series).html(&mut out);
        out.push_str("<h2>Evaluations</h2>\n");
        if self.evaluators.is_empty() {
            out.push_str("<p>No evaluation results for the period's calls.</p>\n");
        } else {
            evaluators_table(self).html(&mut out);
        }
        let _ = writeln!(
            out,
            "<h2>Alerts</h2>\n<p>{} fired, {} resolved.</p>",
            self.alerts.firing, self.alerts.resolved
        );
        if !self.alerts.events.is_empty() {
            alerts_table(self).html(&mut out);
        }
        out.push_str("<h2>Worst calls by quality score</h2>\n");
        if self.worst_calls.is_empty() {
            out.push_str("<p>No scored calls.</p>\n");
        } else {
            worst_table(self).html(&mut out);
            for (i, w) in self.worst_calls.iter().enumerate() {
                for (k, v) in content_of(w) {
                    let _ = writeln!(
                        out,
                        "<details><summary>#{} {k}</summary><pre>{}</pre></details>",
                        i + 1,
                        esc(v)
                    );
                }
            }
        }
        out.push_str("<h2>Log</h2>\n<ul>\n");
        for l in log_lines(self) {
            let _ = writeln!(out, "<li>{}</li>", esc(&l));
        }
        out.push_str("</ul>\n</body>\n</html>\n");
        out
    }

    fn charts(&self) -> Vec<Chart> {
        vec![
            Chart {
                id: "cost",
                title: "Cost (USD)",
                lines: vec![("cost", "#1f77b4", |p| Some(p.cost.as_f64()))],
                fmt: |v| format!("${v:.4}"),
            },
            Chart {
                id: "requests",
                title: "Requests",
                lines: vec![("requests", "#2ca02c", |p| Some(p.requests as f64))],
                fmt: |v| format!("{v:.0}"),
            },
            Chart {
                id: "error_rate",
                title: "Error rate",
                lines: vec![("error rate", "#d62728", |p| p.error_rate)],
                fmt: |v| format!("{:.1} %", v * 100.0),
            },
            Chart {
                id: "latency",
                title: "Latency (s), p50 and p95",
                lines: vec![
                    ("p50", "#9467bd", |p| p.latency.map(|l| l.p50_s)),
                    ("p95", "#ff7f0e", |p| p.latency.map(|l| l.p95_s)),
                ],
                fmt: |v| format!("{v:.3} s"),
            },
            Chart {
                id: "quality",
                title: "Quality score",
                lines: vec![("quality", "#17becf", |p| p.quality_score)],
                fmt: |v| format!("{v:.3}"),
            },
        ]
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}\
th{background:#f3f3f3}.charts{display:flex;flex-wrap:wrap;gap:1em}\
svg.chart{border:1px solid #ddd;background:#fff}\
pre{white-space:pre-wrap;background:#f7f7f7;padding:.5em}";

type Value = fn(&SeriesPoint) -> Option<f64>;

/// One line chart over the series.
struct Chart {
    id: &'static str,
    title: &'static str,
    lines: Vec<(&'static str, &'static str, Value)>,
    fmt: fn(f64) -> String,
}

const W: f64 = 480.0;
const H: f64 = 200.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 15.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 30.0;

impl Chart {
    /// An SVG with one circle (class `pt`) per bucket that has a value, per line.
    fn svg(&self, series: &[SeriesPoint], out: &mut String) {
        let n = series.len();
        let max = series
            .iter()
            .flat_map(|p| self.lines.iter().filter_map(move |l| (l.2)(p)))
            .fold(0.0f64, f64::max);
        let max = if max > 0.0 && max.is_finite() {
            max
        } else {
            1.0
        };
        let x = |i: usize| {
            if n <= 1 {
                LEFT + (W - LEFT - RIGHT) / 2.0
            } else {
                LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
            }
        };
        let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v / max);
        let _ = writeln!(
            out,
            "<svg class=\"chart\" data-chart=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
            self.id,
            esc(self.title)
        );
        let _ = writeln!(
            out,
            "<text x=\"{LEFT}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
            esc(self.title)
        );
        let (x0, x1, yb, yt) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
        let _ = writeln!(
            out,
            "<line x1=\"{x0}\" y1=\"{yb}\" x2=\"{x1}\" y2=\"{yb}\" stroke=\"#999\"/>\n<line x1=\"{x0}\" y1=\"{yt}\" x2=\"{x0}\" y2=\"{yb}\" stroke=\"#999\"/>"
        );
        for (v, yy) in [(0.0, yb), (max, yt)] {
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
                x0 - 4.0,
                yy + 3.0,
                esc(&(self.fmt)(v))
            );
        }
        if let (Some(first), Some(last)) = (series.first(), series.last()) {
            let _ = writeln!(
                out,
                "<text x=\"{x0}\" y=\"{}\" font-size=\"10\">{}</text>",
                H - 10.0,
                esc(&first.start.to_string())
            );
            if n > 1 {
                let _ = writeln!(
                    out,
                    "<text x=\"{x1}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
                    H - 10.0,
                    esc(&last.start.to_string())
                );
            }
        }
        for (label, color, value) in &self.lines {
            // A polyline per run of buckets with a value: a gap where there is none.
            let mut run: Vec<String> = Vec::new();
            let flush = |run: &mut Vec<String>, out: &mut String| {
                if run.len() > 1 {
                    let _ = writeln!(
                        out,
                        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                        run.join(" ")
                    );
                }
                run.clear();
            };
            for (i, p) in series.iter().enumerate() {
                match value(p) {
                    Some(v) if v.is_finite() => run.push(format!("{:.1},{:.1}", x(i), y(v))),
                    _ => flush(&mut run, out),
                }
            }
            flush(&mut run, out);
            for (i, p) in series.iter().enumerate() {
                if let Some(v) = value(p).filter(|v| v.is_finite()) {
                    let _ = writeln!(
                        out,
                        "<circle class=\"pt\" data-line=\"{label}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>{} {label}: {}</title></circle>",
                        x(i),
                        y(v),
                        esc(&p.start.to_string()),
                        esc(&(self.fmt)(v))
                    );
                }
            }
        }
        out.push_str("</svg>\n");
    }
}
