#!/usr/bin/env bash
# The project's full check, as in the README and CI (.ci/run):
# format, lints, real peers (Phoenix, rotel, Prometheus, Redis, Alertmanager: scripts/*.sh), tests,
# doc tests, examples. Peer tests fail (never skip) when a peer is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The test runner: cargo-nextest, installed like cargo-deny when missing (a few minutes).
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test: installing cargo-nextest (cargo install --locked cargo-nextest, a few minutes)"
  cargo install --locked cargo-nextest
fi

cargo fmt --all --check
# The built-in catalog is exactly what scripts/gen_catalog.py makes from the shipped LiteLLM
# copy and the curated entries.
python3 scripts/gen_catalog.py >/dev/null
git diff --exit-code -- crates/llmtel-pricing/data/catalog.toml
cargo clippy --workspace --all-targets --all-features -j2 -- -D warnings

# Supply chain and secrets: licences, duplicate versions and sources of every dependency
# (cargo-deny; advisories need GitHub, which these machines cannot reach: see deny.toml), and
# no real-shaped credential in any tracked file.
scripts/deny.sh
scripts/secret-scan.sh

# Static checks of the ops stack (compose file, collector, Prometheus/Alertmanager configs).
scripts/check-ops.sh

# Real peers, installed and started by the project's scripts, stopped by PID on exit.
scripts/peers.sh install
scripts/prometheus.sh install
scripts/redis.sh install
scripts/alertmanager.sh install
trap 'scripts/peers.sh stop; scripts/prometheus.sh stop; scripts/redis.sh stop; scripts/alertmanager.sh stop' EXIT
scripts/peers.sh start
scripts/prometheus.sh start
scripts/redis.sh start
scripts/alertmanager.sh start
for env_file in env prometheus.env redis.env alertmanager.env; do
  # shellcheck disable=SC1090
  source "${LLMTEL_PEERS_DIR:-.peers}/$env_file"
done

cargo nextest run --workspace --all-features -j2 --no-fail-fast
cargo test --workspace --doc --all-features -j2
cargo build --workspace --examples -j2

# The README's quickstart promise: runs with no API key and no collector, prints costs.
out="$(env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
  cargo run -q -j2 --example quickstart 2>/dev/null)"
grep -q "Total cost of the simulated workload: \$0\.0" <<<"$out" \
  || { echo "quickstart did not print its totals:"; echo "$out"; exit 1; }
echo "quickstart: ok"

# Offline evaluation: runs with no API key and no collector, prints the experiment table.
out="$(env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
  cargo run -q -j2 --example evaluate-dataset 2>/dev/null)"
grep -q '14 examples, 1 failed' <<<"$out" && grep -q '^token_f1 ' <<<"$out" \
  || { echo "evaluate-dataset did not print its summary:"; echo "$out"; exit 1; }
echo "evaluate-dataset: ok"

# With Phoenix running and the standard variables pointing at it, the quickstart's spans
# appear there with their GenAI and cost attributes (the project comes from
# OTEL_RESOURCE_ATTRIBUTES, so this also checks that variable is honoured). Phoenix takes no
# OTLP metrics: OTEL_METRICS_EXPORTER=none, as a user pointing at Phoenix would set.
project="llmtel-quickstart-$$"
OTEL_EXPORTER_OTLP_ENDPOINT="$LLMTEL_PHOENIX_OTLP_HTTP" \
OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
OTEL_METRICS_EXPORTER=none \
OTEL_RESOURCE_ATTRIBUTES="openinference.project.name=$project" \
  cargo run -q -j2 --example quickstart 2>/dev/null > "${TMPDIR:-/tmp}/llmtel-quickstart-$$.out"
# Exporting, its sinks run on the export stage: the totals it prints still count every call.
grep -q "Total cost of the simulated workload: \$0\.0[1-9]" "${TMPDIR:-/tmp}/llmtel-quickstart-$$.out" \
  || { echo "quickstart, exporting, printed no totals:"; cat "${TMPDIR:-/tmp}/llmtel-quickstart-$$.out"; exit 1; }
rm -f "${TMPDIR:-/tmp}/llmtel-quickstart-$$.out"
"${LLMTEL_PEERS_VENV:-$HOME/.cache/llmtel/venv}/bin/python" - "$LLMTEL_PHOENIX_URL" "$project" <<'PY'
import json, sys, time, urllib.request
base, project = sys.argv[1], sys.argv[2]
deadline, spans = time.time() + 30, []
while time.time() < deadline:
    try:
        with urllib.request.urlopen(f"{base}/v1/projects/{project}/spans?limit=1000") as r:
            spans = json.load(r)["data"]
    except Exception:
        spans = []
    if len(spans) >= 34:
        break
    time.sleep(0.5)
llm = [s for s in spans if s["attributes"].get("gen_ai.operation.name") == "chat"]
priced = [s for s in llm if isinstance(s["attributes"].get("gen_ai.usage.cost"), float)]
ints = all(isinstance(s["attributes"].get("gen_ai.usage.input_tokens"), int) for s in priced)
failed = [s for s in llm if s["status_code"] == "ERROR"]
print(f"quickstart -> Phoenix: {len(spans)} spans, {len(llm)} LLM calls, {len(priced)} priced, {len(failed)} failed")
ok = len(spans) == 34 and len(llm) == 16 and len(priced) == 15 and ints and len(failed) == 1
sys.exit(0 if ok else f"quickstart spans missing or incomplete in Phoenix project {project}")
PY


# The standard OTEL_* variables, end to end (code wins, SDK_DISABLED, sampler, headers).
scripts/check-env.sh

# Ready to publish (issue #16): the build with the toolchain `rust-version` names (MSRV), the
# feature matrix (cargo-hack: each feature alone, no default features with tests and benches)
# and `cargo package --workspace`, each crate built from its tarball. See the script.
scripts/publish-check.sh

# Bounded fuzzing of the SSE and usage parsers (cargo-fuzz on nightly; see the script).
scripts/fuzz.sh

# The docs.rs build of every library crate (nightly, --cfg docsrs, rustdoc warnings as
# errors), and a feature-gated item's page shows its feature.
scripts/docs-rs.sh
