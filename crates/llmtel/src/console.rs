//! The console sink: one readable line per LLM call, the default when no endpoint is set.

use std::io::Write;

use crate::call::LlmCall;
use crate::layer::CallSink;

/// Prints one line per LLM call to standard error:
///
/// ```text
/// llmtel  chat gpt-4o  user=alice  in 1200 (cached 1024)  out 300  $0.004260  812ms  ok
/// ```
///
/// Content is never printed, and the line goes through [`crate::redact()`] (a user id or a model
/// name can be anything). Writing is best effort: an error writing to stderr is ignored.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConsoleSink;

impl ConsoleSink {
    /// The line printed for `call`.
    pub fn format(call: &LlmCall) -> String {
        let mut line = format!("llmtel  {}", call.name);
        let d = &call.dimensions;
        for (k, v) in [
            ("user", &d.user),
            ("feature", &d.feature),
            ("tenant", &d.tenant),
        ] {
            if let Some(v) = v {
                line.push_str(&format!("  {k}={v}"));
            }
        }
        if call.has_usage {
            let u = &call.usage;
            line.push_str(&format!("  in {}", u.input_tokens));
            if u.cache_read_tokens > 0 {
                line.push_str(&format!(" (cached {})", u.cache_read_tokens));
            }
            line.push_str(&format!("  out {}", u.output_tokens));
            if u.reasoning_tokens > 0 {
                line.push_str(&format!(" (reasoning {})", u.reasoning_tokens));
            }
        }
        match &call.cost {
            Some(c) => {
                line.push_str(&format!("  {}", c.total));
                if c.estimated {
                    line.push_str(" (estimated)");
                }
            }
            None if call.unknown_model => line.push_str("  cost unknown (no price for this model)"),
            None if call.usage_error.is_some() => {
                line.push_str("  cost unknown (usage not priceable)")
            }
            None => line.push_str("  no usage"),
        }
        line.push_str(&format!("  {}ms", call.duration.as_millis()));
        match &call.error_type {
            Some(e) => line.push_str(&format!("  ERROR {e}")),
            None => line.push_str("  ok"),
        }
        line
    }
}

impl CallSink for ConsoleSink {
    fn on_call(&self, call: &LlmCall) {
        let line = crate::redact::redact_string(Self::format(call));
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    /// A line as each call ends, also while llmtel exports (a development aid, read live).
    fn on_request_thread(&self) -> bool {
        true
    }
}
