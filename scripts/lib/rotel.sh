# Sourced by scripts/load.sh and scripts/load-collector.sh.

# start_rotel FORWARD_ADDR: installs the peers if needed, starts rotel-agent from the peers'
# venv on 127.0.0.1:4337 (gRPC) / 4338 (HTTP) forwarding traces over OTLP/gRPC to
# FORWARD_ADDR, waits until it listens, and sets ROTEL_PID (stop it by that PID).
start_rotel() {
    local forward="$1" venv rotel="" log b
    scripts/peers.sh install >&2
    venv="${LLMTEL_PEERS_VENV:-$HOME/.cache/llmtel/venv}"
    for b in "$venv"/lib/python3*/site-packages/rotel/rotel-agent; do
        [[ -x "$b" ]] && rotel="$b"
    done
    [[ -n "$rotel" ]] || { echo "rotel-agent not found in $venv (scripts/peers.sh install)" >&2; exit 1; }
    log="$(mktemp -t llmtel-load-rotel.XXXXXX.log)"
    ROTEL_EXPORTERS=up:otlp ROTEL_EXPORTERS_TRACES=up \
    ROTEL_EXPORTER_UP_ENDPOINT="http://$forward" ROTEL_EXPORTER_UP_PROTOCOL=grpc \
        "$rotel" start --otlp-grpc-endpoint 127.0.0.1:4337 --otlp-http-endpoint 127.0.0.1:4338 \
        >"$log" 2>&1 &
    ROTEL_PID=$!
    for _ in $(seq 50); do
        (exec 3<>/dev/tcp/127.0.0.1/4337) 2>/dev/null && break
        sleep 0.1
    done
    kill -0 "$ROTEL_PID" 2>/dev/null || { echo "rotel did not start:" >&2; cat "$log" >&2; exit 1; }
    echo "rotel $ROTEL_PID on 127.0.0.1:4337 -> $forward (log $log)" >&2
}
