//! Three days of traffic on a simulated clock, given to the call log and to a real quality
//! monitor as `LlmLayer` gives them (the same `LlmCall` to each sink); an error burst fires
//! an alert that the monitor sends through an `AlertDispatcher` into the log. The report
//! has one point per bucket with exact costs, the alert fired and resolved, and HTML with
//! one SVG point per bucket.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use llmtel::{CallSink, Cost, CostSource, Dimensions, LlmCall, Usage, Usd};
use llmtel_alert::{AlertDispatcher, MemorySink};
use llmtel_quality::{DetectorConfig, DetectorKind, MonitorConfig, Quality};
use llmtel_report::{Bucket, CallLog, Period, Report};
use support::{price, sum, temp_log};

const DAY0: &str = "2025-06-01T00:00:00Z";
const MODELS: [&str; 2] = ["gpt-4o", "gpt-4o-mini"];

/// One call as `LlmLayer` builds it, priced by the catalog on its date.
fn call(n: u64, started: Timestamp, failed: bool) -> LlmCall {
    let model = MODELS[(n % 2) as usize];
    let usage = Usage {
        input_tokens: 500 + 37 * n,
        output_tokens: 80 + 11 * n,
        ..Default::default()
    };
    let cost = (!failed).then(|| Cost {
        total: price(
            model,
            "openai",
            &usage,
            started.to_zoned(jiff::tz::TimeZone::UTC).date(),
        ),
        breakdown: None,
        source: CostSource::Catalog,
        estimated: false,
        pricing: None,
        computed_total: None,
    });
    LlmCall {
        name: format!("chat {model}"),
        operation: "chat".into(),
        provider: Some("openai".into()),
        request_model: Some(model.into()),
        response_model: Some(model.into()),
        response_id: Some(format!("resp-{n}")),
        finish_reasons: vec!["stop".into()],
        usage,
        has_usage: !failed,
        cost,
        unknown_model: false,
        usage_error: None,
        error_type: failed.then(|| "timeout".to_owned()),
        streamed: false,
        max_tokens: None,
        time_to_first_chunk: None,
        dimensions: Dimensions {
            user: Some(format!("user-{}", n % 3).into()),
            feature: Some("support".into()),
            ..Default::default()
        },
        started_at: SystemTime::from(started),
        duration: Duration::from_millis(400 + 10 * (n % 50)),
        trace_id: None,
        span_id: None,
    }
}

struct Traffic {
    path: std::path::PathBuf,
    /// Exact cost per day and per hour, and calls per hour.
    cost_by_day: BTreeMap<i64, Usd>,
    cost_by_hour: BTreeMap<i64, Usd>,
    calls_by_hour: BTreeMap<i64, u64>,
    total: Usd,
    calls: u64,
    /// The alerts the dispatcher delivered.
    delivered: Vec<llmtel_alert::Alert>,
}

/// 4 calls an hour for 72 hours; on day 2, hours 10 to 12 fail 3 calls in 4.
fn drive() -> Traffic {
    let path = temp_log("series");
    let log = CallLog::builder(&path).build().unwrap();
    let memory = MemorySink::new();
    let alerts = AlertDispatcher::builder()
        .with_sink(Arc::new(log.clone()))
        .with_sink(Arc::new(memory.clone()))
        .build();
    let error_rate = DetectorConfig {
        min_samples: 1,
        warmup_windows: 3,
        fire_after: 1,
        resolve_after: 1,
        abs_min: 0.2,
        rel_min: 0.0,
        k: 0.0,
        ..DetectorConfig::default_for(&DetectorKind::ErrorRate)
    };
    let monitor = MonitorConfig {
        window: Duration::from_secs(3600),
        ..MonitorConfig::default()
    }
    .with_detector(DetectorKind::ErrorRate, error_rate);
    let quality = Quality::builder()
        .with_monitor(monitor)
        .with_alerts(alerts)
        .with_events(false)
        .build();
    let sinks: [Arc<dyn CallSink>; 2] = [Arc::new(log.clone()), Arc::new(quality.sink())];
    let day0: Timestamp = DAY0.parse().unwrap();
    let mut t = Traffic {
        path: path.clone(),
        cost_by_day: BTreeMap::new(),
        cost_by_hour: BTreeMap::new(),
        calls_by_hour: BTreeMap::new(),
        total: Usd::ZERO,
        calls: 0,
        delivered: Vec::new(),
    };
    let mut n = 0;
    for hour in 0..72i64 {
        for i in 0..4i64 {
            n += 1;
            let failed = (34..=36).contains(&hour) && i < 3;
            let started = Timestamp::from_second(day0.as_second() + hour * 3600 + i * 600).unwrap();
            let c = call(n, started, failed);
            for s in &sinks {
                s.on_call(&c);
            }
            if let Some(v) = c.cost_usd() {
                *t.cost_by_day.entry(hour / 24).or_default() = t
                    .cost_by_day
                    .get(&(hour / 24))
                    .copied()
                    .unwrap_or_default()
                    .saturating_add(v);
                *t.cost_by_hour.entry(hour).or_default() = t
                    .cost_by_hour
                    .get(&hour)
                    .copied()
                    .unwrap_or_default()
                    .saturating_add(v);
                t.total = t.total.saturating_add(v);
            }
            *t.calls_by_hour.entry(hour).or_default() += 1;
            t.calls += 1;
        }
    }
    assert!(quality.flush(Duration::from_secs(20)));
    assert!(log.flush(Duration::from_secs(10)));
    t.delivered = memory.alerts();
    t
}

/// Tags open and closed in order (a small well-formedness check of the HTML).
fn assert_balanced(html: &str) {
    const VOID: &[&str] = &["meta", "br", "hr", "img", "input", "link"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("unclosed <");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        let self_closing = tag.ends_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if tag.starts_with('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.as_str()),
                "closing </{name}>"
            );
        } else if !self_closing && !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

/// The `<svg data-chart="id">` element's text.
fn chart<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("data-chart=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id} chart"));
    let end = start + html[start..].find("</svg>").unwrap();
    &html[start..end]
}

#[test]
fn daily_and_hourly_series_alerts_and_charts_are_exact() {
    let t = drive();
    let period = Period::parse(Some("2025-06-01"), Some("2025-06-03")).unwrap();
    let report = Report::from_log(&t.path, &period).unwrap();

    // Three days: daily buckets, one point each, exact costs.
    assert_eq!(report.bucket, Bucket::Day);
    assert_eq!(report.series.len(), 3);
    for (day, p) in report.series.iter().enumerate() {
        assert_eq!(
            p.start.as_second(),
            DAY0.parse::<Timestamp>().unwrap().as_second() + day as i64 * 86_400
        );
        assert_eq!(p.cost, t.cost_by_day[&(day as i64)], "day {day}");
        assert_eq!(p.requests, 96);
    }
    assert_eq!(report.series[0].errors, 0);
    assert_eq!(report.series[1].errors, 9);
    assert_eq!(report.series[1].error_rate, Some(9.0 / 96.0));
    assert_eq!(report.totals.cost, t.total);
    assert_eq!(report.totals.requests, t.calls);
    assert_eq!(
        report
            .by_model
            .iter()
            .map(|r| r.cost)
            .collect::<Vec<_>>()
            .iter()
            .fold(Usd::ZERO, |a, b| a.saturating_add(*b)),
        t.total
    );
    // Latency quantiles from the sketch: within its 1 % of the exact ones.
    let mut lat: Vec<f64> = (1..=t.calls)
        .filter(|n| {
            let hour = (n - 1) / 4;
            let i = (n - 1) % 4;
            !((34..=36).contains(&hour) && i < 3)
        })
        .map(|n| 0.4 + 0.01 * (n % 50) as f64)
        .collect();
    lat.sort_by(f64::total_cmp);
    let exact_p95 = lat[((lat.len() as f64 * 0.95).ceil() as usize) - 1];
    let p95 = report.totals.latency.unwrap().p95_s;
    assert!(
        (p95 - exact_p95).abs() <= 0.011 * exact_p95,
        "{p95} vs {exact_p95}"
    );

    // The error burst fired and resolved once per series it hit: all calls, and each model
    // (2 calls an hour each, 1 or 2 of them failing), as delivered by the dispatcher.
    let firing: Vec<&str> = report
        .alerts
        .events
        .iter()
        .filter(|a| !a.is_resolved())
        .map(|a| a.labels["model"].as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(firing, ["*", "gpt-4o", "gpt-4o-mini"]);
    assert_eq!((report.alerts.firing, report.alerts.resolved), (3, 3));
    assert_eq!(report.alerts.events.len(), t.delivered.len());
    let fired = &report.alerts.events[0];
    assert_eq!(fired.name, DetectorKind::ErrorRate.alert_name());
    assert!(!fired.is_resolved());
    for a in &report.alerts.events {
        assert!(a.event_time() > report.series[1].start && a.event_time() < report.series[2].start);
    }

    // HTML: self-contained, balanced, one point per bucket in the cost and request charts.
    let html = report.to_html();
    assert_balanced(&html);
    assert!(!html.contains("<script"));
    assert_eq!(
        html.matches("http").count(),
        html.matches("http://www.w3.org/2000/svg").count(),
        "no link but the SVG namespace"
    );
    assert!(!html.contains("src="), "nothing fetched");
    assert_eq!(chart(&html, "cost").matches("<circle").count(), 3);
    assert_eq!(chart(&html, "requests").matches("<circle").count(), 3);
    assert_eq!(
        chart(&html, "latency").matches("<circle").count(),
        6,
        "p50 and p95"
    );
    assert_eq!(chart(&html, "error_rate").matches("<circle").count(), 3);
    let md = report.to_markdown();
    assert!(
        md.contains("## Trends per day") && md.contains(&fired.name),
        "{md}"
    );

    // Hourly buckets over the same period: 72 points, empty hours included.
    let hourly = Report::builder()
        .with_period(period)
        .with_bucket(Bucket::Hour)
        .from_log(&t.path)
        .unwrap();
    assert_eq!(hourly.series.len(), 72);
    for (h, p) in hourly.series.iter().enumerate() {
        assert_eq!(
            p.cost,
            t.cost_by_hour.get(&(h as i64)).copied().unwrap_or_default(),
            "hour {h}"
        );
        assert_eq!(p.requests, t.calls_by_hour[&(h as i64)]);
    }
    assert_eq!(
        chart(&hourly.to_html(), "cost").matches("<circle").count(),
        72
    );

    // A narrower period keeps only its calls and alerts; the rest is counted outside.
    let day1 = Report::from_log(
        &t.path,
        &Period::parse(Some("2025-06-01"), Some("2025-06-01")).unwrap(),
    )
    .unwrap();
    assert_eq!(day1.totals.requests, 96);
    assert_eq!(day1.totals.cost, t.cost_by_day[&0]);
    assert_eq!(day1.bucket, Bucket::Hour);
    assert_eq!(day1.series.len(), 24);
    assert_eq!(day1.alerts.events.len(), 0);
    assert_eq!(day1.log.outside_period, 96 * 2 + t.delivered.len() as u64);
    assert_eq!(sum(day1.series.iter().map(|p| &p.cost)), t.cost_by_day[&0]);
}
