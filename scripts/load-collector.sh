#!/usr/bin/env bash
# The collector stage under load (issue #15, BENCHMARKS.md "Collector under load"): the same
# OTLP/gRPC stream of LLM spans (`load-harness relay`, requests of 100 spans at a set rate)
# is sent to `llmtel collector` (release build), which prices, budgets nothing and forwards,
# and then to rotel (from the peers' venv), which forwards unchanged; each forwards to the
# harness's counting receiver (a separate process). One JSON report per stage on stdout:
# spans sent, accepted, refused (backpressure), received downstream, lost, and the stage's
# CPU per span (from /proc, the stage process only).
#
#   scripts/load-collector.sh --rate 20000 --seconds 60      # the issue #15 target
#   scripts/load-collector.sh --rate 5000 --seconds 10       # a quick look
#
# Flags go to `load-harness relay`. Ports: llmtel collector 127.0.0.1:4417 (gRPC), rotel
# 127.0.0.1:4337, the receiver 127.0.0.1:4399; every process is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

recv=127.0.0.1:4399
cargo build -q --release -j2 -p load-harness -p llmtel-cli
harness=target/release/load-harness
llmtel=target/release/llmtel

# shellcheck source=scripts/lib/rotel.sh
. scripts/lib/rotel.sh

stage_pid=""
stop_stage() {
    if [[ -n "$stage_pid" ]]; then
        kill "$stage_pid" 2>/dev/null || true
        wait "$stage_pid" 2>/dev/null || true
        stage_pid=""
    fi
}
trap stop_stage EXIT

wait_port() {
    local port="$1"
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "load-collector.sh: nothing listens on 127.0.0.1:$port" >&2
    exit 1
}

# llmtel collector: prices every span, forwards to the receiver.
log="$(mktemp -t llmtel-load-collector.XXXXXX.log)"
OTEL_EXPORTER_OTLP_ENDPOINT="http://$recv" OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
    "$llmtel" collector --grpc-listen 127.0.0.1:4417 --http-listen 127.0.0.1:4418 \
    --metrics-listen 127.0.0.1:9467 >"$log" 2>&1 &
stage_pid=$!
wait_port 4417
"$harness" relay --target http://127.0.0.1:4417 --stage-pid "$stage_pid" --receiver "$recv" "$@"
curl -s http://127.0.0.1:9467/metrics | grep -E '^llmtel_collector_spans_(priced|forwarded|dropped|refused)' >&2 || true
stop_stage

# rotel: forwards unchanged.
start_rotel "$recv"
stage_pid=$ROTEL_PID
wait_port 4337
"$harness" relay --target http://127.0.0.1:4337 --stage-pid "$stage_pid" --receiver "$recv" "$@"
stop_stage
