//! The record of one LLM call, as the layer sees it when the span closes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use llmtel_pricing::{CostBreakdown, PricedCall, Usage, Usd};
use opentelemetry::trace::{SpanId, TraceId};

/// App dimensions of a call: who and what it was for.
///
/// Read from the LLM span itself and, for every dimension the span does not set, from its
/// ancestors (a `user.id` on the request span reaches the LLM calls made inside it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Dimensions {
    /// `user.id`.
    pub user: Option<Arc<str>>,
    /// `session.id`, or `gen_ai.conversation.id` when no session is set.
    pub session: Option<Arc<str>>,
    /// `llmtel.feature`.
    pub feature: Option<Arc<str>>,
    /// `llmtel.tenant`.
    pub tenant: Option<Arc<str>>,
    /// Any other `llmtel.*` string field (e.g. `llmtel.api_key_id`), name and value.
    pub custom: Vec<(&'static str, Arc<str>)>,
}

/// As derived, but `llmtel.api_key_id` shows as its fingerprint
/// ([`crate::redact::fingerprint`]): a call, or a budget's `CallContext`, printed with
/// `{:?}` showed the key.
impl std::fmt::Debug for Dimensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let custom: Vec<(&str, std::borrow::Cow<'_, str>)> = self
            .custom
            .iter()
            .map(|(k, v)| (*k, crate::redact::shown(k, v)))
            .collect();
        f.debug_struct("Dimensions")
            .field("user", &self.user)
            .field("session", &self.session)
            .field("feature", &self.feature)
            .field("tenant", &self.tenant)
            .field("custom", &custom)
            .finish()
    }
}

impl Dimensions {
    /// Fills every dimension still unset from `parent`.
    pub fn inherit_from(&mut self, parent: &Dimensions) {
        self.inherit_unset(None, parent);
    }

    /// Fills every dimension that neither this nor `own` (if given) sets from `parent`: with
    /// `own`, what a span setting `own` inherits, gathered apart from it.
    pub(crate) fn inherit_unset(&mut self, own: Option<&Dimensions>, parent: &Dimensions) {
        fn fill(dst: &mut Option<Arc<str>>, own: bool, src: &Option<Arc<str>>) {
            if dst.is_none() && !own {
                dst.clone_from(src);
            }
        }
        let owns = |f: fn(&Dimensions) -> &Option<Arc<str>>| own.is_some_and(|o| f(o).is_some());
        fill(&mut self.user, owns(|d| &d.user), &parent.user);
        fill(&mut self.session, owns(|d| &d.session), &parent.session);
        fill(&mut self.feature, owns(|d| &d.feature), &parent.feature);
        fill(&mut self.tenant, owns(|d| &d.tenant), &parent.tenant);
        for (k, v) in &parent.custom {
            let set = |d: &Dimensions| d.custom.iter().any(|(name, _)| name == k);
            if !set(self) && !own.is_some_and(set) {
                self.custom.push((k, v.clone()));
            }
        }
    }

    /// The value of a dimension by attribute name (`user.id`, `llmtel.feature`, any custom).
    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            "user.id" => self.user.as_deref(),
            "session.id" | "gen_ai.conversation.id" => self.session.as_deref(),
            "llmtel.feature" => self.feature.as_deref(),
            "llmtel.tenant" => self.tenant.as_deref(),
            other => self
                .custom
                .iter()
                .find(|(k, _)| *k == other)
                .map(|(_, v)| &**v),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.user.is_none()
            && self.session.is_none()
            && self.feature.is_none()
            && self.tenant.is_none()
            && self.custom.is_empty()
    }
}

/// Where the cost of a call came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostSource {
    /// Computed from usage and the price catalog.
    Catalog,
    /// Reported by the provider (e.g. OpenRouter's `usage.cost`), recorded on the span.
    Provider,
    /// Given by the application.
    App,
}

impl CostSource {
    /// The value written to `llmtel.cost.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Catalog => "catalog",
            CostSource::Provider => "provider",
            CostSource::App => "app",
        }
    }
}

/// The cost of a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    /// Total in USD; exact.
    pub total: Usd,
    /// Breakdown, when computed from the catalog.
    pub breakdown: Option<CostBreakdown>,
    /// Where [`Cost::total`] came from.
    pub source: CostSource,
    /// Whether the token counts behind it were estimated.
    pub estimated: bool,
    /// The catalog's pricing of the call (entry, rates applied, notes and its own
    /// breakdown), also when a reported cost won over it.
    pub pricing: Option<PricedCall>,
    /// The catalog's total when a reported cost won over it, or when a cost priced upstream
    /// by llmtel (source `catalog`) is kept (to see drift).
    pub computed_total: Option<Usd>,
}

/// One LLM call (a span with `gen_ai.*` fields for a model operation), complete at close.
///
/// [`crate::LlmLayer`] stores it in the span's extensions when the span closes, so other layers
/// (budgets, quality, summaries) read it there in their own `on_close`, after
/// [`crate::close_call`] (which finishes it first when they run before llmtel's layer).
#[derive(Clone, Debug)]
pub struct LlmCall {
    /// Span name (`chat gpt-4o`), from `otel.name` when set.
    pub name: String,
    /// `gen_ai.operation.name` (`chat` when the span gives none).
    pub operation: String,
    /// `gen_ai.provider.name`, or the deprecated `gen_ai.system`.
    pub provider: Option<String>,
    /// `gen_ai.request.model`.
    pub request_model: Option<String>,
    /// `gen_ai.response.model`.
    pub response_model: Option<String>,
    /// `gen_ai.response.id`.
    pub response_id: Option<String>,
    /// `gen_ai.response.finish_reasons`, as recorded: one per choice, at most
    /// [`crate::MAX_FINISH_REASONS`], each capped by [`crate::cap_value`].
    pub finish_reasons: Vec<String>,
    /// Token usage; zero where nothing was recorded.
    pub usage: Usage,
    /// Whether any usage field was recorded at all.
    pub has_usage: bool,
    /// The cost, when it is known. `None` for an unknown model or missing/malformed usage.
    pub cost: Option<Cost>,
    /// The model has no price in the catalog.
    pub unknown_model: bool,
    /// Why usage could not be read (malformed field), if so.
    pub usage_error: Option<String>,
    /// `error.type`, or `"error"` when only the status says the call failed.
    pub error_type: Option<String>,
    /// `gen_ai.request.stream`.
    pub streamed: bool,
    /// `gen_ai.request.max_tokens`.
    pub max_tokens: Option<u64>,
    /// `gen_ai.response.time_to_first_chunk`, seconds.
    pub time_to_first_chunk: Option<f64>,
    /// App dimensions, inherited from ancestors where the span sets none.
    pub dimensions: Dimensions,
    /// When the span opened.
    pub started_at: SystemTime,
    /// How long the span was open.
    pub duration: Duration,
    /// OpenTelemetry trace id, when an OpenTelemetry layer is in the stack.
    pub trace_id: Option<TraceId>,
    /// OpenTelemetry span id, when an OpenTelemetry layer is in the stack.
    pub span_id: Option<SpanId>,
}

/// `bytes` as lowercase hex digits (ASCII), `N` = twice their length.
fn hex_ascii<const N: usize>(bytes: &[u8]) -> [u8; N] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    debug_assert_eq!(N, bytes.len() * 2);
    let mut out = [0u8; N];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    out
}

/// [`hex_ascii`] as a `String`.
fn hex<const N: usize>(bytes: &[u8]) -> String {
    // (ASCII digits: always UTF-8.)
    String::from_utf8(hex_ascii::<N>(bytes).to_vec()).unwrap_or_default()
}

impl LlmCall {
    /// Whether the call failed.
    pub fn is_error(&self) -> bool {
        self.error_type.is_some()
    }

    /// The trace id as OpenTelemetry writes it (32 lowercase hex digits), without going through
    /// `fmt` (a tenth of the instructions of `trace_id.to_string()`).
    pub fn trace_id_hex(&self) -> Option<String> {
        self.trace_id.map(|t| hex::<32>(&t.to_bytes()))
    }

    /// [`trace_id_hex`](Self::trace_id_hex) as 32 ASCII bytes on the stack, for a caller
    /// that keeps or copies it per call without an allocation (Prometheus exemplars).
    pub fn trace_id_ascii(&self) -> Option<[u8; 32]> {
        self.trace_id.map(|t| hex_ascii(&t.to_bytes()))
    }

    /// The span id as OpenTelemetry writes it (16 lowercase hex digits); see
    /// [`trace_id_hex`](Self::trace_id_hex).
    pub fn span_id_hex(&self) -> Option<String> {
        self.span_id.map(|s| hex::<16>(&s.to_bytes()))
    }

    /// The model name used for pricing: the response model when recorded, else the request one.
    pub fn model(&self) -> Option<&str> {
        self.response_model
            .as_deref()
            .or(self.request_model.as_deref())
    }

    /// Total cost in USD, when known.
    pub fn cost_usd(&self) -> Option<Usd> {
        self.cost.as_ref().map(|c| c.total)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceId};

    /// The hex ids are written as OpenTelemetry writes them (zero-padded, lowercase).
    #[test]
    fn hex_ids_read_as_opentelemetry_writes_them() {
        for (t, s) in [
            (1u128, 1u64),
            (
                0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
                0x00f0_67aa_0ba9_02b7,
            ),
            (u128::MAX, u64::MAX),
        ] {
            let (t, s) = (TraceId::from(t), SpanId::from(s));
            assert_eq!(super::hex::<32>(&t.to_bytes()), t.to_string());
            assert_eq!(super::hex::<16>(&s.to_bytes()), s.to_string());
            let ascii = super::hex_ascii::<32>(&t.to_bytes());
            assert_eq!(std::str::from_utf8(&ascii).ok(), Some(&*t.to_string()));
        }
    }

    #[test]
    fn debug_shows_an_api_key_id_only_as_its_fingerprint() {
        let key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
        let d = super::Dimensions {
            user: Some("u-1".into()),
            custom: vec![
                (crate::redact::API_KEY_ID, key.into()),
                ("llmtel.team", "search".into()),
            ],
            ..Default::default()
        };
        let shown = format!("{d:?}");
        assert!(!shown.contains(key), "{shown}");
        assert!(shown.contains(&crate::redact::fingerprint(key)), "{shown}");
        assert!(shown.contains("u-1") && shown.contains("search"), "{shown}");
    }
}
