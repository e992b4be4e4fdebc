#!/usr/bin/env bash
# The project's full check, as in the README and CI (.ci/run):
# format, lints, real peers (Phoenix + rotel, see scripts/peers.sh), tests,
# doc tests, examples. Peer tests fail (never skip) when a peer is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -j2 -- -D warnings

scripts/peers.sh install
trap 'scripts/peers.sh stop' EXIT
scripts/peers.sh start
# shellcheck disable=SC1091
source "${LLMTEL_PEERS_DIR:-.peers}/env"

cargo nextest run --workspace --all-features -j2 --no-fail-fast
cargo test --workspace --doc --all-features -j2
cargo build --workspace --examples -j2

# The README's quickstart promise: runs with no API key and no collector, prints costs.
out="$(env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
  cargo run -q -j2 --example quickstart 2>/dev/null)"
grep -q "Total cost of the simulated workload: \$0\.0" <<<"$out" \
  || { echo "quickstart did not print its totals:"; echo "$out"; exit 1; }
echo "quickstart: ok"
