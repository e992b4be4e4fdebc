#!/usr/bin/env bash
# The docs.rs build of every library crate (issue #16): `--cfg docsrs` with all features on
# nightly, as docs.rs builds them, with rustdoc warnings as errors; then checks that a
# feature-gated item's page says which feature it needs. Needs a nightly toolchain; without
# one it says so and stops (as scripts/fuzz.sh does).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "docs-rs: NOT RUN: no nightly toolchain on this machine (rustup toolchain list)."
  exit 0
fi
target="${CARGO_TARGET_DIR:-target}/docs-rs"
crates=(llmtel llmtel-semconv llmtel-pricing llmtel-alert llmtel-metrics llmtel-budget llmtel-score llmtel-eval
        llmtel-quality llmtel-report llmtel-reqwest llmtel-collector)
args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done
RUSTDOCFLAGS="--cfg docsrs -D warnings" \
  cargo +nightly doc -j2 --no-deps --all-features --target-dir "$target" "${args[@]}"
page="$target/doc/llmtel_budget/store/struct.SqliteStore.html"
grep -q 'crate feature <code>sqlite</code>' "$page" \
  || { echo "docs-rs: $page does not say it needs the sqlite feature"; exit 1; }
echo "docs-rs: ok: ${#crates[@]} crates, feature-gated items show their feature"
