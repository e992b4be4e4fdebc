//! Quality gauges on `llmtel-metrics`' Prometheus endpoint (feature `prometheus`).

use std::fmt;

use llmtel_metrics::PrometheusSink;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use crate::monitor::SeriesSnapshot;
use crate::pipeline::{Quality, WeakQuality};

/// The `evaluation` label value of the composite quality score in `llm_quality_score`
/// (the evaluators' averages carry their own name there). An evaluator of this name is left
/// out of that series, so that every label set stays unique.
pub const COMPOSITE_EVALUATION: &str = "quality_score";

impl Quality {
    /// Registers the quality gauges on a Prometheus sink's registry, read from
    /// [`Quality::snapshot`] at every scrape, one label set per (model, feature) series of the
    /// monitor:
    ///
    /// | series | labels | value |
    /// |---|---|---|
    /// | `llm_quality_score` | `evaluation="quality_score"`, `model`, `feature` | average composite quality score of the calls |
    /// | `llm_quality_score` | `evaluation`, `model`, `feature` | average score of that evaluator |
    /// | `llm_quality_error_rate` | `model`, `feature` | failed calls / calls |
    /// | `llm_quality_latency_seconds` | `model`, `feature`, `quantile` (`0.5`, `0.95`, `0.99`) | latency of successful calls (quantile sketch, 1 % relative accuracy) |
    /// | `llm_quality_rating_avg` | `model`, `feature` | average user rating, `0..=1` |
    /// | `llm_quality_insufficient_data` | `model`, `feature`, `detector` | 1 while that detector has not had the values to judge within [`crate::MonitorConfig::insufficient_after`], else 0 |
    /// | `llm_quality_requests_total` | `model`, `feature` | calls recorded |
    /// | `llm_quality_dropped_total` | `kind` (`call`, `evaluation`, `feedback`) | inputs dropped because a queue was full or the pipeline stopped |
    /// | `llm_quality_series_overflow_total` | | calls filed under `(other)` over [`crate::MonitorConfig::max_series`] |
    /// | `llm_quality_evaluations_over_limit_total` | | evaluation results left out of a series over [`crate::MonitorConfig::max_evaluators`] ([`crate::MonitorStats::evaluations_over_limit`]) |
    ///
    /// The figures are those of the snapshot's `total` (since the pipeline started, open
    /// window included); a figure the monitor does not have yet (no rating, no successful
    /// call, no evaluation) has no sample. Every sample of `llm_quality_score` has an
    /// `evaluation` label, so `avg by (evaluation) (llm_quality_score)` charts the composite
    /// next to each evaluator. Label cardinality is the monitor's: at most
    /// [`crate::MonitorConfig::max_series`] (model, feature) pairs plus `(other)`, and at most
    /// [`crate::MonitorConfig::max_evaluators`] evaluations a series. The sink holds the
    /// pipeline weakly: once every clone of it is dropped, the series are gone.
    ///
    /// ```
    /// use std::time::Duration;
    /// use llmtel_quality::{CallSignals, Quality};
    /// let quality = Quality::builder().build();
    /// quality.sink().send(CallSignals {
    ///     model: Some("gpt-4o-mini".into()),
    ///     feature: Some("chat".into()),
    ///     response_id: None,
    ///     trace_id: None,
    ///     span_id: None,
    ///     ended_at: std::time::SystemTime::now(),
    ///     latency: Duration::from_millis(800),
    ///     error_type: None,
    ///     truncated: false,
    ///     content_filtered: false,
    ///     output_tokens: None,
    ///     tokens_per_second: None,
    ///     time_to_first_chunk: None,
    ///     cost_usd: None,
    /// });
    /// assert!(quality.flush(Duration::from_secs(5)));
    /// let sink = llmtel_metrics::PrometheusSink::default();
    /// quality.register_metrics(&sink);
    /// assert!(sink.encode_openmetrics().contains(
    ///     r#"llm_quality_score{evaluation="quality_score",model="gpt-4o-mini",feature="chat"} 1.0"#));
    /// ```
    pub fn register_metrics(&self, sink: &PrometheusSink) {
        sink.register_collector(Box::new(QualityCollector {
            quality: self.downgrade(),
        }));
    }
}

struct QualityCollector {
    quality: WeakQuality,
}

impl fmt::Debug for QualityCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QualityCollector").finish_non_exhaustive()
    }
}

fn series_labels(s: &SeriesSnapshot) -> [(&'static str, &str); 2] {
    [("model", &s.model), ("feature", &s.feature)]
}

/// One gauge per series that has the figure.
fn per_series(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &[SeriesSnapshot],
    value: impl Fn(&SeriesSnapshot) -> Option<f64>,
) -> Result<(), fmt::Error> {
    let mut me = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for s in series {
        if let Some(v) = value(s) {
            ConstGauge::new(v).encode(me.encode_family(&series_labels(s))?)?;
        }
    }
    Ok(())
}

impl Collector for QualityCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let Some(quality) = self.quality.upgrade() else {
            return Ok(());
        };
        let snap = quality.snapshot();
        let stats = quality.stats();
        drop(quality);
        let series = &snap.series;

        {
            let mut me = encoder.encode_descriptor(
                "llm_quality_score",
                "Average quality score by (model, feature): the composite score (evaluation=\"quality_score\") and each evaluator's average, 0..=1",
                None,
                MetricType::Gauge,
            )?;
            for s in series {
                let t = &s.total;
                if let Some(q) = t.quality_score {
                    let ls = [
                        ("evaluation", COMPOSITE_EVALUATION),
                        ("model", &s.model),
                        ("feature", &s.feature),
                    ];
                    ConstGauge::new(q).encode(me.encode_family(&ls)?)?;
                }
                for (name, avg) in &t.evaluators {
                    if name == COMPOSITE_EVALUATION {
                        continue;
                    }
                    let ls = [
                        ("evaluation", name.as_str()),
                        ("model", &s.model),
                        ("feature", &s.feature),
                    ];
                    ConstGauge::new(avg.avg).encode(me.encode_family(&ls)?)?;
                }
            }
        }
        per_series(
            &mut encoder,
            "llm_quality_error_rate",
            "Share of the LLM calls that failed, by (model, feature)",
            series,
            |s| s.total.error_rate,
        )?;
        {
            let mut me = encoder.encode_descriptor(
                "llm_quality_latency",
                "Latency quantiles of the successful LLM calls by (model, feature), seconds (1 % relative accuracy)",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            for s in series {
                let Some(q) = &s.total.latency_s else {
                    continue;
                };
                for (quantile, v) in [("0.5", q.p50), ("0.95", q.p95), ("0.99", q.p99)] {
                    let ls = [
                        ("model", s.model.as_str()),
                        ("feature", s.feature.as_str()),
                        ("quantile", quantile),
                    ];
                    ConstGauge::new(v).encode(me.encode_family(&ls)?)?;
                }
            }
        }
        per_series(
            &mut encoder,
            "llm_quality_rating_avg",
            "Average user rating by (model, feature), 0..=1",
            series,
            |s| s.total.avg_rating,
        )?;
        {
            let mut me = encoder.encode_descriptor(
                "llm_quality_insufficient_data",
                "1 while a quality detector of (model, feature) lacks the values to judge, else 0",
                None,
                MetricType::Gauge,
            )?;
            for s in series {
                for (detector, st) in &s.detectors {
                    let ls = [
                        ("model", s.model.as_str()),
                        ("feature", s.feature.as_str()),
                        ("detector", detector.as_str()),
                    ];
                    let v = i64::from(st.insufficient_since_unix_s.is_some());
                    ConstGauge::new(v).encode(me.encode_family(&ls)?)?;
                }
            }
        }
        {
            let mut me = encoder.encode_descriptor(
                "llm_quality_requests",
                "LLM calls recorded by the quality monitor, by (model, feature)",
                None,
                MetricType::Counter,
            )?;
            for s in series {
                ConstCounter::new(s.total.requests).encode(me.encode_family(&series_labels(s))?)?;
            }
        }
        {
            let mut me = encoder.encode_descriptor(
                "llm_quality_dropped",
                "Quality inputs dropped because a queue was full or the pipeline had stopped",
                None,
                MetricType::Counter,
            )?;
            for (kind, n) in [
                ("call", stats.calls_dropped),
                ("evaluation", stats.evals_dropped),
                ("feedback", stats.feedback_dropped),
                ("evaluation_result", stats.results_dropped),
            ] {
                ConstCounter::new(n).encode(me.encode_family(&[("kind", kind)])?)?;
            }
        }
        let me = encoder.encode_descriptor(
            "llm_quality_series_overflow",
            "LLM calls filed under (other) because the monitor reached its series limit",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(snap.stats.overflow_calls).encode(me)?;
        let me = encoder.encode_descriptor(
            "llm_quality_evaluations_over_limit",
            "Evaluation results left out of a series' quality figures and detection because it tracked the most evaluation names (MonitorConfig::max_evaluators), once per series",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(snap.stats.evaluations_over_limit).encode(me)?;
        Ok(())
    }
}
