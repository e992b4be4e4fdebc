//! The attributes llmtel adds to an LLM-call span.

use llmtel_semconv::{gen_ai, llmtel as lt, openinference as oi};
use opentelemetry::KeyValue;

use crate::call::{CostSource, LlmCall};

/// The attributes written on the OpenTelemetry span of `call`.
///
/// - Cost known: `gen_ai.usage.cost` (unless the app recorded it itself), `llmtel.cost.source`,
///   `llmtel.cost.currency`, `llmtel.cost.estimated`, the breakdown `llmtel.cost.*` when the
///   catalog computed it, and the provenance `llmtel.pricing.*`.
/// - Unknown model: `llmtel.cost.unknown_model = true` and no cost attribute.
/// - Malformed usage: `llmtel.usage.note` says what was wrong.
/// - With `openinference`: the OpenInference aliases Phoenix reads.
pub(crate) fn attributes(call: &LlmCall, openinference: bool) -> Vec<KeyValue> {
    let mut kv = Vec::with_capacity(if openinference { 32 } else { 16 });
    if let Some(cost) = &call.cost {
        if cost.source == CostSource::Catalog {
            kv.push(KeyValue::new(gen_ai::USAGE_COST, cost.total.as_f64()));
        } else if let Some(computed) = cost.computed_total {
            kv.push(KeyValue::new("llmtel.cost.computed", computed.as_f64()));
        }
        kv.push(KeyValue::new(lt::COST_SOURCE, cost.source.as_str()));
        kv.push(KeyValue::new(lt::COST_CURRENCY, "USD"));
        kv.push(KeyValue::new(lt::COST_ESTIMATED, cost.estimated));
        if let Some(b) = &cost.breakdown {
            kv.push(KeyValue::new(lt::COST_INPUT, b.input.as_f64()));
            kv.push(KeyValue::new(lt::COST_OUTPUT, b.output.as_f64()));
            kv.push(KeyValue::new(lt::COST_CACHE_READ, b.cache_read.as_f64()));
            kv.push(KeyValue::new(lt::COST_CACHE_WRITE, b.cache_write.as_f64()));
            kv.push(KeyValue::new(lt::COST_REASONING, b.reasoning.as_f64()));
        }
        if let Some(p) = &cost.pricing {
            kv.push(KeyValue::new(lt::PRICING_MODEL, p.model.clone()));
            kv.push(KeyValue::new(lt::PRICING_PROVIDER, p.provider.clone()));
            kv.push(KeyValue::new(lt::PRICING_DATE, p.price_date.to_string()));
            kv.push(KeyValue::new(lt::PRICING_MATCH, p.matched.as_str()));
            if let Some(t) = p.tier_above_input_tokens {
                kv.push(KeyValue::new(lt::PRICING_TIER, clamp_i64(t)));
            }
            if let Some(note) = p.usage_note {
                kv.push(KeyValue::new(lt::USAGE_NOTE, note));
            }
        }
    }
    if call.unknown_model {
        kv.push(KeyValue::new(lt::COST_UNKNOWN_MODEL, true));
    }
    if let Some(err) = &call.usage_error {
        kv.push(KeyValue::new(lt::USAGE_NOTE, err.clone()));
    }
    if openinference {
        openinference_aliases(call, &mut kv);
    }
    kv
}

fn openinference_aliases(call: &LlmCall, kv: &mut Vec<KeyValue>) {
    let kind = if call.operation == llmtel_semconv::operation::EMBEDDINGS {
        "EMBEDDING"
    } else {
        "LLM"
    };
    kv.push(KeyValue::new(oi::SPAN_KIND, kind));
    if let Some(m) = call.model() {
        kv.push(KeyValue::new(oi::LLM_MODEL_NAME, m.to_owned()));
    }
    if let Some(p) = &call.provider {
        kv.push(KeyValue::new(oi::LLM_PROVIDER, p.clone()));
    }
    if call.has_usage {
        let u = &call.usage;
        kv.push(KeyValue::new(
            oi::TOKEN_COUNT_PROMPT,
            clamp_i64(u.input_tokens),
        ));
        kv.push(KeyValue::new(
            oi::TOKEN_COUNT_COMPLETION,
            clamp_i64(u.output_tokens),
        ));
        kv.push(KeyValue::new(
            oi::TOKEN_COUNT_TOTAL,
            clamp_i64(u.input_tokens.saturating_add(u.output_tokens)),
        ));
        if u.cache_read_tokens > 0 {
            kv.push(KeyValue::new(
                oi::TOKEN_COUNT_PROMPT_CACHE_READ,
                clamp_i64(u.cache_read_tokens),
            ));
        }
        if u.cache_write_tokens > 0 {
            kv.push(KeyValue::new(
                oi::TOKEN_COUNT_PROMPT_CACHE_WRITE,
                clamp_i64(u.cache_write_tokens),
            ));
        }
        if u.reasoning_tokens > 0 {
            kv.push(KeyValue::new(
                oi::TOKEN_COUNT_COMPLETION_REASONING,
                clamp_i64(u.reasoning_tokens),
            ));
        }
    }
    if let Some(cost) = &call.cost {
        kv.push(KeyValue::new(oi::COST_TOTAL, cost.total.as_f64()));
        if let Some(b) = &cost.breakdown {
            let prompt = b
                .input
                .saturating_add(b.cache_read)
                .saturating_add(b.cache_write);
            let completion = b.output.saturating_add(b.reasoning);
            kv.push(KeyValue::new(oi::COST_PROMPT, prompt.as_f64()));
            kv.push(KeyValue::new(oi::COST_COMPLETION, completion.as_f64()));
            kv.push(KeyValue::new(oi::COST_PROMPT_INPUT, b.input.as_f64()));
            kv.push(KeyValue::new(
                oi::COST_PROMPT_CACHE_READ,
                b.cache_read.as_f64(),
            ));
            kv.push(KeyValue::new(
                oi::COST_PROMPT_CACHE_WRITE,
                b.cache_write.as_f64(),
            ));
            kv.push(KeyValue::new(oi::COST_COMPLETION_OUTPUT, b.output.as_f64()));
            kv.push(KeyValue::new(
                oi::COST_COMPLETION_REASONING,
                b.reasoning.as_f64(),
            ));
        }
    }
    if let Some(u) = &call.dimensions.user {
        kv.push(KeyValue::new(oi::USER_ID, u.clone()));
    }
    if let Some(s) = &call.dimensions.session {
        kv.push(KeyValue::new(oi::SESSION_ID, s.clone()));
    }
}

pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
