//! Synthetic traffic: a seeded RNG, a simulated clock and `LlmCall`s built as `LlmLayer`
//! builds them; `labelled`: the labelled data sets of the built-in evaluators.
#![allow(dead_code, unreachable_pub)]

pub mod labelled;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmtel::{Cost, CostSource, Dimensions, LlmCall, Usage, Usd};

/// SplitMix64: small, seeded, good enough for traffic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(1e-12);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Log-normal with this median and log-sd.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }
}

/// A simulated clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock(pub SystemTime);

impl Clock {
    pub fn start() -> Self {
        Clock(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
    }
    pub fn now(&self) -> SystemTime {
        self.0
    }
    pub fn advance(&mut self, d: Duration) {
        self.0 += d;
    }
}

/// One call as `LlmLayer` would report it.
#[derive(Debug, Clone)]
pub struct CallSpec {
    pub model: &'static str,
    pub feature: &'static str,
    pub response_id: String,
    pub started_at: SystemTime,
    pub latency_s: f64,
    pub error: Option<&'static str>,
    pub finish: &'static str,
    pub output_tokens: u64,
    pub cost_usd: Option<f64>,
}

pub fn call(s: &CallSpec) -> LlmCall {
    LlmCall {
        name: format!("chat {}", s.model),
        operation: "chat".into(),
        provider: Some("openai".into()),
        request_model: Some(s.model.into()),
        response_model: Some(s.model.into()),
        response_id: Some(s.response_id.clone()),
        finish_reasons: if s.error.is_some() {
            vec![]
        } else {
            vec![s.finish.to_owned()]
        },
        usage: Usage {
            input_tokens: 800,
            output_tokens: s.output_tokens,
            ..Default::default()
        },
        has_usage: s.error.is_none(),
        cost: s.cost_usd.and_then(Usd::from_f64).map(|total| Cost {
            total,
            breakdown: None,
            source: CostSource::Catalog,
            estimated: false,
            pricing: None,
            computed_total: None,
        }),
        unknown_model: false,
        usage_error: None,
        error_type: s.error.map(str::to_owned),
        streamed: false,
        max_tokens: Some(1024),
        time_to_first_chunk: None,
        dimensions: Dimensions {
            feature: Some(s.feature.into()),
            ..Default::default()
        },
        started_at: s.started_at,
        duration: Duration::from_secs_f64(s.latency_s),
        trace_id: None,
        span_id: None,
    }
}

/// The signals of one call of `model` for the feature `faq` ending at `at` (800 ms), failed
/// with `timeout` when `error`: what the monitor tests feed it directly.
pub fn signals(model: &str, at: SystemTime, error: bool) -> llmtel_quality::CallSignals {
    llmtel_quality::CallSignals {
        model: Some(model.into()),
        feature: Some("faq".into()),
        response_id: None,
        trace_id: None,
        span_id: None,
        ended_at: at,
        latency: Duration::from_millis(800),
        error_type: error.then(|| "timeout".into()),
        truncated: false,
        content_filtered: false,
        output_tokens: None,
        tokens_per_second: None,
        time_to_first_chunk: None,
        cost_usd: None,
    }
}
