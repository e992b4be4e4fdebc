//! GenAI dialects: the usage and model keys other instrumentations write, mapped onto the
//! current `gen_ai.*` names before pricing (see the [crate docs](crate#dialects)).

use llmtel_semconv::gen_ai;
use llmtel_semconv::openinference as oi;
use opentelemetry::{KeyValue, Value};

/// `gen_ai.usage.prompt_tokens`: the input-token count before GenAI conventions v1.27.
pub const DEPRECATED_PROMPT_TOKENS: &str = "gen_ai.usage.prompt_tokens";
/// `gen_ai.usage.completion_tokens`: the output-token count before GenAI conventions v1.27.
pub const DEPRECATED_COMPLETION_TOKENS: &str = "gen_ai.usage.completion_tokens";
/// OpenLLMetry's cache-read token count.
pub const OPENLLMETRY_CACHE_READ: &str = "gen_ai.usage.cache_read_input_tokens";
/// OpenLLMetry's cache-creation token count.
pub const OPENLLMETRY_CACHE_CREATION: &str = "gen_ai.usage.cache_creation_input_tokens";
/// OpenLLMetry's total token count (input + output).
pub const OPENLLMETRY_TOTAL_TOKENS: &str = "llm.usage.total_tokens";
/// OpenLLMetry's and OpenLIT's reasoning token count.
pub const REASONING_TOKENS: &str = "gen_ai.usage.reasoning_tokens";
/// OpenLIT's cache-read token count.
pub const OPENLIT_CACHE_READ: &str = "gen_ai.usage.prompt_tokens_details.cache_read";
/// OpenLIT's cache-write token count.
pub const OPENLIT_CACHE_WRITE: &str = "gen_ai.usage.prompt_tokens_details.cache_write";
/// OpenLIT's reasoning token count.
pub const OPENLIT_REASONING: &str = "gen_ai.usage.completion_tokens_details.reasoning";

/// Where an instrumentation's own cost estimate (OpenLIT's `gen_ai.usage.cost`) is kept: a
/// `gen_ai.usage.cost` on a span without `llmtel.cost.source` was not written by llmtel, is
/// moved here, and the span is priced from its usage like any other. When llmtel writes no
/// cost on the span (a model not in the catalog, not a model call), the collector puts it
/// back as it came.
pub const INSTRUMENTATION_COST: &str = "llmtel.cost.instrumentation";

/// The renames, in order of preference: `(dialect, key it writes, current key)`. A current
/// key the span already has is never overwritten; the first dialect key found fills it.
/// The dialect's own key is kept on the span.
pub const DIALECT_KEYS: &[(&str, &str, &str)] = &[
    (
        "OpenTelemetry GenAI < 1.27",
        DEPRECATED_PROMPT_TOKENS,
        gen_ai::USAGE_INPUT_TOKENS,
    ),
    (
        "OpenTelemetry GenAI < 1.27",
        DEPRECATED_COMPLETION_TOKENS,
        gen_ai::USAGE_OUTPUT_TOKENS,
    ),
    (
        "OpenInference",
        oi::TOKEN_COUNT_PROMPT,
        gen_ai::USAGE_INPUT_TOKENS,
    ),
    (
        "OpenInference",
        oi::TOKEN_COUNT_COMPLETION,
        gen_ai::USAGE_OUTPUT_TOKENS,
    ),
    (
        "OpenInference",
        oi::TOKEN_COUNT_PROMPT_CACHE_READ,
        gen_ai::USAGE_CACHE_READ_INPUT_TOKENS,
    ),
    (
        "OpenInference",
        oi::TOKEN_COUNT_PROMPT_CACHE_WRITE,
        gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS,
    ),
    (
        "OpenInference",
        oi::TOKEN_COUNT_COMPLETION_REASONING,
        gen_ai::USAGE_REASONING_OUTPUT_TOKENS,
    ),
    ("OpenInference", oi::LLM_MODEL_NAME, gen_ai::REQUEST_MODEL),
    ("OpenInference", oi::LLM_PROVIDER, gen_ai::PROVIDER_NAME),
    ("OpenInference", oi::LLM_SYSTEM, gen_ai::SYSTEM),
    (
        "OpenLLMetry",
        OPENLLMETRY_CACHE_READ,
        gen_ai::USAGE_CACHE_READ_INPUT_TOKENS,
    ),
    (
        "OpenLLMetry",
        OPENLLMETRY_CACHE_CREATION,
        gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS,
    ),
    (
        "OpenLLMetry, OpenLIT",
        REASONING_TOKENS,
        gen_ai::USAGE_REASONING_OUTPUT_TOKENS,
    ),
    (
        "OpenLIT",
        OPENLIT_CACHE_READ,
        gen_ai::USAGE_CACHE_READ_INPUT_TOKENS,
    ),
    (
        "OpenLIT",
        OPENLIT_CACHE_WRITE,
        gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS,
    ),
    (
        "OpenLIT",
        OPENLIT_REASONING,
        gen_ai::USAGE_REASONING_OUTPUT_TOKENS,
    ),
];

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .rev()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn as_count(v: &Value) -> Option<i64> {
    match v {
        Value::I64(n) if *n >= 0 => Some(*n),
        Value::F64(f) if f.is_finite() && *f >= 0.0 && f.fract() == 0.0 => Some(*f as i64),
        Value::String(s) => s.as_str().trim().parse::<i64>().ok().filter(|n| *n >= 0),
        _ => None,
    }
}

/// The `gen_ai.provider.name` value for an OpenInference `llm.provider` (`google`, `aws`,
/// `azure`, `mistralai`, `xai`, ...; their `OpenInferenceLLMProviderValues`) or an older
/// `gen_ai.system` spelling (as llmtel maps `gen_ai.system`): the well-known GenAI provider
/// names, so budget rules and metric labels by provider see one name per provider.
fn provider_name(provider: &str) -> &str {
    llmtel::provider_from_system(provider)
}

/// What [`map`] did to a span's attributes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mapped {
    /// Keys added or moved.
    pub(crate) changed: usize,
    /// Whether an instrumentation's cost was moved to [`INSTRUMENTATION_COST`] (to be put
    /// back with [`put_back_instrumentation_cost`] when llmtel writes no cost).
    pub(crate) moved_cost: bool,
}

/// Adds the current `gen_ai.*` keys for the dialect keys a span carries (see
/// [`DIALECT_KEYS`]), and `gen_ai.usage.output_tokens` = `llm.usage.total_tokens` −
/// input tokens when only the total is known; moves an instrumentation's cost estimate to
/// [`INSTRUMENTATION_COST`]. Returns how many keys were added or moved.
///
/// Token counts are written as integers, from the first dialect key whose value is a
/// count (a non-negative integer, or a double or string holding one); one that is not
/// (`"n/a"`) is skipped. A provider (`llm.provider`) is written as its GenAI provider name
/// (`google` as `gcp.gemini`, `aws` as `aws.bedrock`, `mistralai` as `mistral_ai`, ...).
pub fn map_dialects(attrs: &mut Vec<KeyValue>) -> usize {
    map(attrs).changed
}

/// [`map_dialects`], saying whether the instrumentation's cost was moved.
pub(crate) fn map(attrs: &mut Vec<KeyValue>) -> Mapped {
    let mut m = Mapped::default();
    if find(attrs, llmtel_semconv::llmtel::COST_SOURCE).is_none() {
        for kv in attrs.iter_mut() {
            if kv.key.as_str() == gen_ai::USAGE_COST {
                kv.key = INSTRUMENTATION_COST.into();
                m.changed += 1;
                m.moved_cost = true;
            }
        }
    }
    let mut added = Vec::new();
    for (_, from, to) in DIALECT_KEYS {
        if find(attrs, to).is_some() || added.iter().any(|kv: &KeyValue| kv.key.as_str() == *to) {
            continue;
        }
        let Some(v) = find(attrs, from) else {
            continue;
        };
        let v = if to.starts_with("gen_ai.usage.") {
            // A count that does not parse leaves the key to the next dialect.
            match as_count(v) {
                Some(n) => Value::I64(n),
                None => continue,
            }
        } else if *to == gen_ai::PROVIDER_NAME {
            match v {
                Value::String(p) => {
                    let p = p.as_str();
                    match provider_name(p) {
                        same if same == p => v.clone(),
                        name => Value::String(name.to_owned().into()),
                    }
                }
                other => other.clone(),
            }
        } else {
            v.clone()
        };
        added.push(KeyValue::new(*to, v));
    }
    m.changed += added.len();
    attrs.extend(added);
    if find(attrs, gen_ai::USAGE_OUTPUT_TOKENS).is_none() {
        let total = find(attrs, OPENLLMETRY_TOTAL_TOKENS).and_then(as_count);
        let input = find(attrs, gen_ai::USAGE_INPUT_TOKENS).and_then(as_count);
        if let (Some(total), Some(input)) = (total, input) {
            if total >= input {
                attrs.push(KeyValue::new(gen_ai::USAGE_OUTPUT_TOKENS, total - input));
                m.changed += 1;
            }
        }
    }
    m
}

/// Puts an instrumentation's cost that [`map`] moved aside back as `gen_ai.usage.cost`, as
/// it came: for a span llmtel wrote no cost on (a model not in the catalog, not a model
/// call), whose only cost it is.
pub(crate) fn put_back_instrumentation_cost(attrs: &mut [KeyValue]) {
    if attrs.iter().any(|kv| kv.key.as_str() == gen_ai::USAGE_COST) {
        return;
    }
    for kv in attrs.iter_mut() {
        if kv.key.as_str() == INSTRUMENTATION_COST {
            kv.key = gen_ai::USAGE_COST.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(attrs: &[KeyValue], key: &str) -> Option<Value> {
        find(attrs, key).cloned()
    }

    #[test]
    fn deprecated_gen_ai_names_fill_the_current_ones() {
        let mut a = vec![
            KeyValue::new(DEPRECATED_PROMPT_TOKENS, 100),
            KeyValue::new(DEPRECATED_COMPLETION_TOKENS, "20"),
        ];
        assert_eq!(map_dialects(&mut a), 2);
        assert_eq!(get(&a, gen_ai::USAGE_INPUT_TOKENS), Some(Value::I64(100)));
        // counts are written as integers, whatever type they came as
        assert_eq!(get(&a, gen_ai::USAGE_OUTPUT_TOKENS), Some(Value::I64(20)));
        // the dialect key stays
        assert!(get(&a, DEPRECATED_PROMPT_TOKENS).is_some());
    }

    #[test]
    fn a_current_key_is_never_overwritten_by_a_dialect_key() {
        let mut a = vec![
            KeyValue::new(gen_ai::USAGE_INPUT_TOKENS, 7),
            KeyValue::new(oi::TOKEN_COUNT_PROMPT, 100),
        ];
        assert_eq!(map_dialects(&mut a), 0);
        assert_eq!(get(&a, gen_ai::USAGE_INPUT_TOKENS), Some(Value::I64(7)));
    }

    #[test]
    fn openinference_model_provider_and_counts_are_mapped() {
        let mut a = vec![
            KeyValue::new(oi::LLM_MODEL_NAME, "gpt-4o"),
            KeyValue::new(oi::LLM_PROVIDER, "openai"),
            KeyValue::new(oi::TOKEN_COUNT_PROMPT, 10),
            KeyValue::new(oi::TOKEN_COUNT_COMPLETION, 5),
            KeyValue::new(oi::TOKEN_COUNT_PROMPT_CACHE_READ, 4),
        ];
        map_dialects(&mut a);
        assert_eq!(
            get(&a, gen_ai::REQUEST_MODEL),
            Some(Value::String("gpt-4o".into()))
        );
        assert_eq!(
            get(&a, gen_ai::PROVIDER_NAME),
            Some(Value::String("openai".into()))
        );
        assert_eq!(
            get(&a, gen_ai::USAGE_CACHE_READ_INPUT_TOKENS),
            Some(Value::I64(4))
        );
    }

    #[test]
    fn openllmetry_total_gives_the_output_when_it_is_missing() {
        let mut a = vec![
            KeyValue::new(gen_ai::USAGE_INPUT_TOKENS, 10),
            KeyValue::new(OPENLLMETRY_TOTAL_TOKENS, 15),
            KeyValue::new(OPENLLMETRY_CACHE_READ, 3),
        ];
        map_dialects(&mut a);
        assert_eq!(get(&a, gen_ai::USAGE_OUTPUT_TOKENS), Some(Value::I64(5)));
        assert_eq!(
            get(&a, gen_ai::USAGE_CACHE_READ_INPUT_TOKENS),
            Some(Value::I64(3))
        );
    }

    #[test]
    fn a_total_below_the_input_is_not_turned_into_an_output() {
        let mut a = vec![
            KeyValue::new(gen_ai::USAGE_INPUT_TOKENS, 10),
            KeyValue::new(OPENLLMETRY_TOTAL_TOKENS, 5),
        ];
        assert_eq!(map_dialects(&mut a), 0);
        assert_eq!(get(&a, gen_ai::USAGE_OUTPUT_TOKENS), None);
    }

    #[test]
    fn openlit_cache_and_reasoning_keys_are_mapped() {
        let mut a = vec![
            KeyValue::new(OPENLIT_CACHE_READ, 8),
            KeyValue::new(OPENLIT_CACHE_WRITE, 2),
            KeyValue::new(REASONING_TOKENS, 30),
        ];
        map_dialects(&mut a);
        assert_eq!(
            get(&a, gen_ai::USAGE_CACHE_READ_INPUT_TOKENS),
            Some(Value::I64(8))
        );
        assert_eq!(
            get(&a, gen_ai::USAGE_CACHE_CREATION_INPUT_TOKENS),
            Some(Value::I64(2))
        );
        assert_eq!(
            get(&a, gen_ai::USAGE_REASONING_OUTPUT_TOKENS),
            Some(Value::I64(30))
        );
    }

    #[test]
    fn an_instrumentation_cost_estimate_is_moved_aside_but_llmtel_cost_is_kept() {
        let mut a = vec![KeyValue::new(gen_ai::USAGE_COST, 0.5)];
        map_dialects(&mut a);
        assert_eq!(get(&a, gen_ai::USAGE_COST), None);
        assert_eq!(get(&a, INSTRUMENTATION_COST), Some(Value::F64(0.5)));

        let mut a = vec![
            KeyValue::new(gen_ai::USAGE_COST, 0.5),
            KeyValue::new(llmtel_semconv::llmtel::COST_SOURCE, "provider"),
        ];
        map_dialects(&mut a);
        assert_eq!(get(&a, gen_ai::USAGE_COST), Some(Value::F64(0.5)));
    }
}
