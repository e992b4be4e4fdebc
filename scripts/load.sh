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
# 127.0.0.1:4399 (LOAD_RECEIVER_PORT); both are stopped by PID on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

recv="127.0.0.1:${LOAD_RECEIVER_PORT:-4399}"
cargo build -q --release -j2 -p load-harness
harness=target/release/load-harness

if [[ -n "${LOAD_DIRECT:-}" ]]; then
    exec env -u OTEL_EXPORTER_OTLP_ENDPOINT "$harness" drive --receiver "$recv" "$@"
fi

scripts/peers.sh install >&2
venv="${LLMTEL_PEERS_VENV:-$HOME/.cache/llmtel/venv}"
rotel=""
for b in "$venv"/lib/python3*/site-packages/rotel/rotel-agent; do
    [[ -x "$b" ]] && rotel="$b"
done
[[ -n "$rotel" ]] || { echo "load.sh: rotel-agent not found in $venv (scripts/peers.sh install)" >&2; exit 1; }

log="$(mktemp -t llmtel-load-rotel.XXXXXX.log)"
ROTEL_EXPORTERS=up:otlp ROTEL_EXPORTERS_TRACES=up \
ROTEL_EXPORTER_UP_ENDPOINT="http://$recv" ROTEL_EXPORTER_UP_PROTOCOL=grpc \
    "$rotel" start --otlp-grpc-endpoint 127.0.0.1:4337 --otlp-http-endpoint 127.0.0.1:4338 \
    >"$log" 2>&1 &
rotel_pid=$!
trap 'kill "$rotel_pid" 2>/dev/null || true; wait "$rotel_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/4337) 2>/dev/null && break
    sleep 0.1
done
kill -0 "$rotel_pid" 2>/dev/null || { echo "load.sh: rotel did not start:" >&2; cat "$log" >&2; exit 1; }
echo "load.sh: rotel $rotel_pid on 127.0.0.1:4337 -> receiver $recv (log $log)" >&2

OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4337 OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
    "$harness" drive --receiver "$recv" "$@"
