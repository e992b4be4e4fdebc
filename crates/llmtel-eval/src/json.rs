//! JSON and JSON-schema validity.

use serde_json::Value;

use super::{EvalInput, Evaluation, SyncEvaluator};

/// The JSON Schema keywords [`JsonValidity`] checks; any other keyword is ignored.
pub const SCHEMA_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
];

/// JSON validity, and validity against a schema when the input has one.
///
/// The answer may be wrapped in a Markdown code fence (```` ```json ````), which is removed.
/// Score 1 and label `valid`; 0.5 and `schema_violation` (explanation: the first violation,
/// with its JSON pointer); 0 and `invalid_json` (explanation: the parser's error). The schema
/// subset is [`SCHEMA_KEYWORDS`] (no `$ref`, `oneOf`/`anyOf`/`allOf`, `pattern`, `format`).
/// Not applicable unless the input has a schema or `expect_json` is set (default: only with a
/// schema).
#[derive(Clone, Debug, Default)]
pub struct JsonValidity {
    always: bool,
}

impl JsonValidity {
    /// Checks every answer for JSON, not only those with a schema.
    pub fn always(mut self) -> Self {
        self.always = true;
        self
    }
}

fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let rest = rest.split_once('\n').map(|(_, r)| r).unwrap_or("");
        return rest.trim_end().strip_suffix("```").unwrap_or(rest).trim();
    }
    t
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(v: &Value, t: &str) -> bool {
    let actual = type_name(v);
    actual == t || (t == "number" && actual == "integer")
}

/// The first violation of `schema` by `v`, as `pointer: message`.
pub(crate) fn validate(v: &Value, schema: &Value, path: &str, depth: usize) -> Option<String> {
    if depth > 32 {
        return None;
    }
    let Value::Object(s) = schema else {
        return None; // `true` / `{}`-like schemas accept everything
    };
    let at = if path.is_empty() { "/" } else { path };
    match s.get("type") {
        Some(Value::String(t)) if !type_ok(v, t) => {
            return Some(format!("{at}: expected {t}, found {}", type_name(v)));
        }
        Some(Value::Array(ts)) if !ts.iter().any(|t| t.as_str().is_some_and(|t| type_ok(v, t))) => {
            return Some(format!("{at}: type {} not allowed", type_name(v)));
        }
        _ => {}
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(v) {
            return Some(format!("{at}: not one of the enum values"));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            return Some(format!("{at}: not the const value"));
        }
    }
    if let Some(x) = v.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if x < min {
                return Some(format!("{at}: {x} < minimum {min}"));
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            if x > max {
                return Some(format!("{at}: {x} > maximum {max}"));
            }
        }
    }
    if let Some(st) = v.as_str() {
        let n = st.chars().count() as u64;
        if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
            if n < min {
                return Some(format!("{at}: shorter than {min}"));
            }
        }
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
            if n > max {
                return Some(format!("{at}: longer than {max}"));
            }
        }
    }
    if let Value::Array(items) = v {
        let n = items.len() as u64;
        if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
            if n < min {
                return Some(format!("{at}: fewer than {min} items"));
            }
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
            if n > max {
                return Some(format!("{at}: more than {max} items"));
            }
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                if let Some(e) = validate(item, item_schema, &format!("{path}/{i}"), depth + 1) {
                    return Some(e);
                }
            }
        }
    }
    if let Value::Object(obj) = v {
        if let Some(Value::Array(req)) = s.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Some(format!("{at}: missing required property \"{r}\""));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(props) = props {
            for (k, ps) in props {
                if let Some(pv) = obj.get(k) {
                    if let Some(e) = validate(pv, ps, &format!("{path}/{k}"), depth + 1) {
                        return Some(e);
                    }
                }
            }
        }
        if let Some(Value::Bool(false)) = s.get("additionalProperties") {
            if let Some(extra) = obj
                .keys()
                .find(|k| !props.is_some_and(|p| p.contains_key(*k)))
            {
                return Some(format!("{at}: additional property \"{extra}\" not allowed"));
            }
        }
    }
    None
}

impl SyncEvaluator for JsonValidity {
    fn name(&self) -> &str {
        "json_validity"
    }

    fn score(&self, input: &EvalInput) -> Option<Evaluation> {
        if input.schema.is_none() && !self.always {
            return None;
        }
        if input.answer_cut {
            // A cut JSON document is never valid: not this answer's fault.
            return None;
        }
        let body = strip_fence(&input.answer);
        let v: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => {
                return Some(Evaluation::new(
                    "json_validity",
                    0.0,
                    "invalid_json",
                    format!("not JSON: {e}"),
                ));
            }
        };
        match input.schema.as_ref().and_then(|s| validate(&v, s, "", 0)) {
            Some(e) => Some(Evaluation::new("json_validity", 0.5, "schema_violation", e)),
            None => Some(Evaluation::new(
                "json_validity",
                1.0,
                "valid",
                if input.schema.is_some() {
                    "valid JSON matching the schema"
                } else {
                    "valid JSON"
                },
            )),
        }
    }
}
