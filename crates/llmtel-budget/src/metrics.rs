//! Budget gauges on `llmtel-metrics`' Prometheus endpoint (feature `prometheus`).

use std::fmt;
use std::sync::Weak;

use llmtel_metrics::PrometheusSink;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::budgets::{Budgets, Inner};
use crate::status::RuleStatus;

/// Series per rule at most (the most used scope values first); the rest are counted in
/// `llm_budget_series_dropped`.
pub const MAX_SERIES_PER_RULE: usize = 1_000;

impl Budgets {
    /// Registers the budget gauges on a Prometheus sink's registry, read from the store at
    /// every scrape (the status of every rule and scope value, as [`Budgets::status`]):
    ///
    /// | series | labels | value |
    /// |---|---|---|
    /// | `llm_budget_utilization_ratio` | `budget`, `scope` | settled spend / limit (the higher of USD and tokens) |
    /// | `llm_budget_spent_usd` | `budget`, `scope` | settled spend in the current period |
    /// | `llm_budget_reserved_usd` | `budget`, `scope` | spend held by unexpired reservations |
    /// | `llm_budget_limit_usd` | `budget`, `scope` | the USD limit (rules with one) |
    /// | `llm_budget_spent_tokens` | `budget`, `scope` | settled tokens |
    /// | `llm_budget_limit_tokens` | `budget`, `scope` | the token limit (rules with one) |
    /// | `llm_budget_store_up` | `store` | 1 when the scrape could read the store, else 0 |
    /// | `llm_budget_series_dropped` | | scope values left out (over [`MAX_SERIES_PER_RULE`] a rule) |
    ///
    /// `budget` is the rule name, `scope` is `attribute=value` (`user.id=u-1`, `*=*` for a
    /// global rule), as in `llmtel budget status`; an API-key scope's value, and any value
    /// that holds a secret, reads `attribute=[REDACTED:<12 hex digits>]`, a fingerprint stable while the process
    /// runs ([`crate::RuleStatus::scope`]), so two keys are two series. The sink holds the
    /// budgets weakly.
    ///
    /// ```
    /// use llmtel_budget::{Budgets, CallContext, Period, Rule, Scope};
    /// let budgets = Budgets::builder()
    ///     .with_rule(Rule::new("daily", Scope::User, Period::Lifetime)
    ///         .with_limit_usd(llmtel::Usd::parse_decimal("2").unwrap()))
    ///     .build();
    /// budgets.record(&CallContext::new().with_user("u-1"), llmtel::Usd::parse_decimal("0.5").unwrap(), 10);
    /// let sink = llmtel_metrics::PrometheusSink::default();
    /// budgets.register_metrics(&sink);
    /// assert!(sink.encode_openmetrics().contains(
    ///     r#"llm_budget_utilization_ratio{budget="daily",scope="user.id=u-1"} 0.25"#));
    /// ```
    pub fn register_metrics(&self, sink: &PrometheusSink) {
        sink.register_collector(Box::new(BudgetCollector {
            budgets: std::sync::Arc::downgrade(&self.inner),
        }));
    }
}

struct BudgetCollector {
    budgets: Weak<Inner>,
}

impl fmt::Debug for BudgetCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetCollector").finish_non_exhaustive()
    }
}

type Row<'a> = [(&'static str, &'a str); 2];

fn labels<'a>(r: &&'a RuleStatus) -> Row<'a> {
    [("budget", &r.rule), ("scope", &r.scope)]
}

fn gauges<'a, T: prometheus_client::encoding::EncodeGaugeValue + Copy + 'a>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (Row<'a>, T)>,
) -> Result<(), fmt::Error> {
    let mut me = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        ConstGauge::new(v).encode(me.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for BudgetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let Some(inner) = self.budgets.upgrade() else {
            return Ok(());
        };
        let budgets = Budgets::internal(inner);
        let (rows, up) = match budgets.status_by_rule() {
            Ok(r) => (r, 1i64),
            Err(e) => {
                tracing::debug!(target: "llmtel_budget", error = %e, "budget gauges: store unreadable");
                (Vec::new(), 0)
            }
        };
        // The most used values of each rule first, at most MAX_SERIES_PER_RULE a rule: a rule
        // by its index, not its name (two rules of one name on values that never meet have
        // a cap each).
        let mut rows: Vec<&(usize, RuleStatus)> = rows.iter().collect();
        rows.sort_by(|(ia, a), (ib, b)| {
            ia.cmp(ib).then(
                b.utilization
                    .partial_cmp(&a.utilization)
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
        });
        let mut kept: Vec<&RuleStatus> = Vec::with_capacity(rows.len());
        let mut dropped = 0u64;
        let mut n = 0;
        for (i, (rule, r)) in rows.iter().enumerate() {
            if i == 0 || rows[i - 1].0 != *rule {
                n = 0;
            }
            n += 1;
            if n <= MAX_SERIES_PER_RULE {
                kept.push(r);
            } else {
                dropped += 1;
            }
        }
        let k = &kept;
        gauges(
            &mut encoder,
            "llm_budget_utilization_ratio",
            "Share of the budget spent in the current period (settled spend / limit)",
            k.iter().map(|r| (labels(r), r.utilization)),
        )?;
        gauges(
            &mut encoder,
            "llm_budget_spent_usd",
            "Settled spend of the budget in the current period, USD",
            k.iter().map(|r| (labels(r), r.spent.as_f64())),
        )?;
        gauges(
            &mut encoder,
            "llm_budget_reserved_usd",
            "Spend held by unexpired reservations, USD",
            k.iter().map(|r| (labels(r), r.reserved.as_f64())),
        )?;
        gauges(
            &mut encoder,
            "llm_budget_limit_usd",
            "USD limit of the budget",
            k.iter()
                .filter_map(|r| Some((labels(r), r.limit?.as_f64()))),
        )?;
        gauges(
            &mut encoder,
            "llm_budget_spent_tokens",
            "Settled tokens of the budget in the current period",
            k.iter()
                .map(|r| (labels(r), i64::try_from(r.spent_tokens).unwrap_or(i64::MAX))),
        )?;
        gauges(
            &mut encoder,
            "llm_budget_limit_tokens",
            "Token limit of the budget",
            k.iter().filter_map(|r| {
                Some((
                    labels(r),
                    i64::try_from(r.limit_tokens?).unwrap_or(i64::MAX),
                ))
            }),
        )?;
        let store = budgets.store().kind();
        let mut me = encoder.encode_descriptor(
            "llm_budget_store_up",
            "Whether the scrape could read the budget store",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(up).encode(me.encode_family(&[("store", store)])?)?;
        let me = encoder.encode_descriptor(
            "llm_budget_series_dropped",
            "Budget scope values left out of these gauges (over the series cap of a rule)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(dropped).unwrap_or(i64::MAX)).encode(me)?;
        Ok(())
    }
}
