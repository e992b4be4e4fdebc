#!/usr/bin/env bash
# Bounded fuzzing of every parser of outside input (cargo-fuzz, libFuzzer): the SSE parser,
# each provider's usage parser, the error classifier. ${LLMTEL_FUZZ_SECONDS:-20} s a target.
# Needs a nightly toolchain (cargo-fuzz's sanitizers); installs cargo-fuzz from crates.io if
# missing. Without nightly it says so and stops: the stable proptest twin
# (crates/llmtel-reqwest/tests/chunk_boundaries_do_not_change_what_is_seen.rs) still runs
# in the test suite. A crash fails the run and leaves the input under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../crates/llmtel-reqwest/fuzz"
secs="${LLMTEL_FUZZ_SECONDS:-20}"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: NOT RUN: no nightly toolchain on this machine (rustup toolchain list)."
  exit 0
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for t in sse_parser usage_openai usage_anthropic usage_gemini error_classify; do
  echo "fuzz: $t for ${secs}s"
  cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=1024 >"/tmp/llmtel-fuzz-$t.log" 2>&1 \
    || { tail -30 "/tmp/llmtel-fuzz-$t.log"; echo "fuzz: $t FAILED"; exit 1; }
  grep -E "^Done [0-9]+ runs" "/tmp/llmtel-fuzz-$t.log" | sed "s/^/fuzz: $t: /"
done
