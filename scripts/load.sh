#!/usr/bin/env bash
# llmtel's load run (BENCHMARKS.md, "Load"): the full stack in examples/load-harness, exporting
# over OTLP/gRPC to a real collector stage (rotel, from the peers' venv), which forwards to the
# harness's own counting receiver (a separate process). The report (JSON on stdout) sets
# llmtel's counters (created, queued, dropped, exported) against the spans received downstream.
#
#   scripts/load.sh --rate 20000 --seconds 60 --threads 2        # the issue #13 target
#   scripts/load.sh --rate 0 --seconds 10                        # flat out
#   LOAD_DIRECT=1 scripts/load.sh ...                            # no collector stage
#
# Every flag after the script name goes to `load-harness drive` (see its --help text in
# examples/load-harness/src/main.rs). rotel listens on 127.0.0.1:4337/4338 and the receiver on
# 127.0.0.1:4399 (LOAD_RECEIVER_PORT); both are stopped by PID on exit. LOAD_HARNESS=path runs
# another build of the harness (a copy of an earlier commit's, for a before/after pair).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

recv="127.0.0.1:${LOAD_RECEIVER_PORT:-4399}"
if [[ -n "${LOAD_HARNESS:-}" ]]; then
    harness=$LOAD_HARNESS
else
    cargo build -q --release -j2 -p load-harness
    harness=target/release/load-harness
fi

if [[ -n "${LOAD_DIRECT:-}" ]]; then
    exec env -u OTEL_EXPORTER_OTLP_ENDPOINT "$harness" drive --receiver "$recv" "$@"
fi

# shellcheck source=scripts/lib/rotel.sh
. scripts/lib/rotel.sh
start_rotel "$recv"
rotel_pid=$ROTEL_PID
trap 'kill "$rotel_pid" 2>/dev/null || true; wait "$rotel_pid" 2>/dev/null || true' EXIT

OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4337 OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
    "$harness" drive --receiver "$recv" "$@"
