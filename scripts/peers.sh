#!/usr/bin/env bash
# Real peers for llmtel's integration tests: Arize Phoenix (OTLP trace store)
# and rotel (OTLP collector stage: app -> rotel -> Phoenix).
#
# Usage: scripts/peers.sh install|start|stop|status
#
#   install  create the venv ${LLMTEL_PEERS_VENV:-$HOME/.cache/llmtel/venv} if
#            missing and pip-install arize-phoenix and rotel into it (skipped
#            when both are already there); and the senders' venv
#            ${LLMTEL_SENDERS_VENV:-$HOME/.cache/llmtel/venv-senders}: other
#            projects' GenAI instrumentations of the `openai` Python client
#            (opentelemetry-instrumentation-openai-v2, OpenLLMetry, OpenLIT),
#            which the collector's tests send spans with. Pinned, with the
#            OpenTelemetry versions pinned too (unpinned, pip backtracks for
#            more than 10 minutes on OpenLIT's instrumentation ranges).
#   start    start Phoenix and rotel in the background, wait until they are
#            ready, write ${LLMTEL_PEERS_DIR:-<repo>/.peers}/env (source it).
#            Reuses peers that are already running from our own PID files.
#   stop     stop them by the PIDs in the PID files (TERM, wait, KILL).
#   status   tell whether each peer runs and answers; exit 0 only if both do.
#
# Addresses (all 127.0.0.1 only):
#   Phoenix  HTTP (UI, REST, OTLP/HTTP protobuf at /v1/traces)  127.0.0.1:6006
#            OTLP gRPC                                          127.0.0.1:4317
#            (gRPC binds [::] upstream; scripts/phoenix_launcher.py rewrites it)
#   rotel    OTLP gRPC 127.0.0.1:4327, OTLP HTTP 127.0.0.1:4328,
#            forwards traces to Phoenix over OTLP gRPC 127.0.0.1:4317; prints
#            every span it receives (resource attributes, span kind, wire types)
#            to <peers dir>/rotel.log (LLMTEL_ROTEL_LOG in the env file), since
#            Phoenix's API does not return resource attributes.
#
# Measured on the 2-core dev machine (Debian 12, Python 3.11, other builds running):
#   install from scratch (new venv, arize-phoenix 20.26.1 + rotel 0.0.1a15
#     downloaded from PyPI): 64 s, venv 881 MB; install when present: 0.2 s.
#   the senders' venv from scratch: ~30 s, 160 MB.
#   start with a fresh Phoenix working dir (SQLite + migrations until /healthz):
#     11-14 s (the first start from a new venv is the slowest); rotel is up in
#     0.1 s. start when already started: 0.2 s. stop: ~3 s (Phoenix shuts down
#     gracefully on TERM).
#
# Environment:
#   LLMTEL_PEERS_VENV   venv location       (default $HOME/.cache/llmtel/venv)
#   LLMTEL_SENDERS_VENV the senders' venv   (default $HOME/.cache/llmtel/venv-senders)
#   LLMTEL_PEERS_DIR    logs, PID files, Phoenix working dir, env file
#                       (default <repo>/.peers, ignored by git)
#   LLMTEL_PEERS_PYTHON interpreter used to create the venv (default python3)
#   LLMTEL_PHOENIX_SPEC / LLMTEL_ROTEL_SPEC  pip requirement specs to install
#                       (defaults pin the versions the tests were written against)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LLMTEL_PEERS_VENV:-$HOME/.cache/llmtel/venv}"
PEERS_DIR="${LLMTEL_PEERS_DIR:-$REPO/.peers}"
[[ "$PEERS_DIR" == /* ]] || PEERS_DIR="$PWD/$PEERS_DIR"
BOOT_PY="${LLMTEL_PEERS_PYTHON:-python3}"
PHOENIX_SPEC="${LLMTEL_PHOENIX_SPEC:-arize-phoenix==20.26.1}"
ROTEL_SPEC="${LLMTEL_ROTEL_SPEC:-rotel==0.0.1a15}"
SENDERS_VENV="${LLMTEL_SENDERS_VENV:-$HOME/.cache/llmtel/venv-senders}"
SENDERS_PY="$SENDERS_VENV/bin/python"
# The instrumentations (and the openai client) the collector's third-party test was written
# against, with the OpenTelemetry versions they resolve to (0.66b1 is the last release every
# instrumentation package OpenLIT depends on has).
SENDERS_SPECS=(
    "openai==2.54.0"
    "openlit==1.45.0"
    "opentelemetry-instrumentation-openai==0.62.4"
    "opentelemetry-instrumentation-openai-v2==2.4b0"
    "opentelemetry-util-genai==1.1b0"
    "opentelemetry-sdk==1.45.1"
    "opentelemetry-exporter-otlp-proto-http==1.45.1"
)
SENDERS_CONSTRAINTS='opentelemetry-api==1.45.1
opentelemetry-sdk==1.45.1
opentelemetry-proto==1.45.1
opentelemetry-exporter-otlp==1.45.1
opentelemetry-exporter-otlp-proto-http==1.45.1
opentelemetry-exporter-otlp-proto-grpc==1.45.1
opentelemetry-exporter-otlp-proto-common==1.45.1
opentelemetry-semantic-conventions==0.66b1
opentelemetry-instrumentation==0.66b1
opentelemetry-util-http==0.66b1
opentelemetry-instrumentation-aiohttp-client==0.66b1
opentelemetry-instrumentation-asgi==0.66b1
opentelemetry-instrumentation-django==0.66b1
opentelemetry-instrumentation-falcon==0.66b1
opentelemetry-instrumentation-fastapi==0.66b1
opentelemetry-instrumentation-flask==0.66b1
opentelemetry-instrumentation-httpx==0.66b1
opentelemetry-instrumentation-pyramid==0.66b1
opentelemetry-instrumentation-requests==0.66b1
opentelemetry-instrumentation-starlette==0.66b1
opentelemetry-instrumentation-tornado==0.66b1
opentelemetry-instrumentation-urllib==0.66b1
opentelemetry-instrumentation-urllib3==0.66b1
opentelemetry-instrumentation-wsgi==0.66b1
opentelemetry-instrumentation-dbapi==0.66b1'

HOST=127.0.0.1
PHOENIX_HTTP_PORT=6006
PHOENIX_GRPC_PORT=4317
ROTEL_GRPC_PORT=4327
ROTEL_HTTP_PORT=4328
PHOENIX_READY_TIMEOUT=90
ROTEL_READY_TIMEOUT=15
STOP_TIMEOUT=15

PY="$VENV/bin/python"
PHOENIX_PID="$PEERS_DIR/phoenix.pid"
PHOENIX_LOG="$PEERS_DIR/phoenix.log"
PHOENIX_WORK="$PEERS_DIR/phoenix-work"
ROTEL_PID="$PEERS_DIR/rotel.pid"
ROTEL_LOG="$PEERS_DIR/rotel.log"
ENV_FILE="$PEERS_DIR/env"

log() { printf 'peers: %s\n' "$*"; }
die() { printf 'peers: ERROR: %s\n' "$*" >&2; exit 1; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

rotel_bin() {
    # The rotel wheel ships the binary inside the package (no console script).
    local b
    for b in "$VENV"/lib/python3*/site-packages/rotel/rotel-agent; do
        if [[ -x "$b" ]]; then
            printf '%s\n' "$b"
            return 0
        fi
    done
    return 1
}

venv_ok() {
    [[ -x "$PY" ]] && "$PY" -c 'import sys' >/dev/null 2>&1
}

peers_installed() {
    venv_ok \
        && "$PY" -c 'import importlib.metadata as m, importlib.util as u
for d in ("arize-phoenix", "rotel", "grpcio"): m.version(d)
assert u.find_spec("grpc") is not None' >/dev/null 2>&1 \
        && rotel_bin >/dev/null
}

senders_installed() {
    [[ -x "$SENDERS_PY" ]] && "$SENDERS_PY" -c 'import openlit, openai
import opentelemetry.instrumentation.openai_v2, opentelemetry.instrumentation.openai
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter' >/dev/null 2>&1
}

install_senders() {
    local t0 constraints
    t0="$(now)"
    if senders_installed; then
        log "install: the senders' instrumentations already in $SENDERS_VENV (nothing to do)"
        return 0
    fi
    rm -rf "$SENDERS_VENV"
    mkdir -p "$(dirname "$SENDERS_VENV")"
    "$BOOT_PY" -m venv "$SENDERS_VENV" || "$PY" -m virtualenv "$SENDERS_VENV" \
        || die "install: cannot create the senders' venv $SENDERS_VENV (install python3-venv)"
    constraints="$(mktemp)"
    printf '%s\n' "$SENDERS_CONSTRAINTS" >"$constraints"
    log "install: pip install ${SENDERS_SPECS[*]} into $SENDERS_VENV (~160 MB, about 30 s)"
    if ! "$SENDERS_PY" -m pip install --disable-pip-version-check --progress-bar off --quiet --pre \
        -c "$constraints" "${SENDERS_SPECS[@]}"; then
        rm -f "$constraints"
        die "install: pip install of the senders' instrumentations failed (see above); PyPI must be reachable"
    fi
    rm -f "$constraints"
    senders_installed || die "install: finished, but the instrumentations do not import in $SENDERS_VENV"
    log "install: senders done in $(elapsed "$t0") s"
}

cmd_install() {
    local t0
    t0="$(now)"
    install_senders
    if peers_installed; then
        log "install: arize-phoenix and rotel already in $VENV (nothing to do)"
        return 0
    fi
    if ! venv_ok; then
        command -v "$BOOT_PY" >/dev/null 2>&1 \
            || die "install: '$BOOT_PY' not found; install Python >= 3.10 (or set LLMTEL_PEERS_PYTHON)"
        "$BOOT_PY" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] < (3, 14) else 1)' \
            || die "install: arize-phoenix needs Python 3.10-3.13; '$BOOT_PY' is $("$BOOT_PY" -V 2>&1)"
        if [[ -e "$VENV" ]]; then
            [[ -f "$VENV/pyvenv.cfg" ]] \
                || die "install: $VENV exists and is not a venv; remove it or set LLMTEL_PEERS_VENV"
            log "install: $VENV exists but its python does not run; recreating it"
            rm -rf "$VENV"
        fi
        log "install: creating venv $VENV with $("$BOOT_PY" -V 2>&1)"
        mkdir -p "$(dirname "$VENV")"
        if ! "$BOOT_PY" -m venv "$VENV"; then
            # Debian's python3 without python3-venv has no ensurepip: fall back to virtualenv.
            log "install: 'python3 -m venv' failed; trying virtualenv instead"
            rm -rf "$VENV"
            "$BOOT_PY" -m pip install --disable-pip-version-check --quiet virtualenv \
                || die "install: cannot create a venv: install python3-venv (apt-get install -y python3-venv) or virtualenv"
            "$BOOT_PY" -m virtualenv "$VENV" || die "install: virtualenv $VENV failed"
        fi
    fi
    log "install: pip install $PHOENIX_SPEC $ROTEL_SPEC into $VENV (~850 MB, about 1-2 min)"
    "$PY" -m pip install --disable-pip-version-check --progress-bar off "$PHOENIX_SPEC" "$ROTEL_SPEC" \
        || die "install: pip install failed (see above); PyPI must be reachable"
    peers_installed || die "install: finished, but phoenix does not import or rotel-agent is missing in $VENV"
    log "install: done in $(elapsed "$t0") s"
}

# --- processes -------------------------------------------------------------

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# pid_of PIDFILE PATTERN: print the PID in PIDFILE if that process is alive and
# its command line contains PATTERN (guards against a recycled PID).
pid_of() {
    local file="$1" pattern="$2" pid
    [[ -f "$file" ]] || return 1
    pid="$(tr -dc '0-9' <"$file")"
    pid_alive "$pid" || return 1
    if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern"; then
        return 1
    fi
    printf '%s\n' "$pid"
}

phoenix_pid() { pid_of "$PHOENIX_PID" phoenix_launcher.py; }
rotel_pid() { pid_of "$ROTEL_PID" rotel-agent; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# listeners PORT: who listens there, for error messages (needs ss, optional).
listeners() {
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "sport = :$1" 2>/dev/null || true
    fi
}

# http_ok URL: GET answers 2xx within 2 s.
http_ok() {
    local url="$1"
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null
    else
        "$PY" - "$url" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if 200 <= r.status < 300 else 1)
EOF
    fi
}

tail_log() {
    local file="$1"
    printf -- '----- last 40 lines of %s -----\n' "$file" >&2
    tail -n 40 "$file" >&2 2>/dev/null || true
    printf -- '----- end of %s -----\n' "$file" >&2
}

# stop_pid NAME PIDFILE PATTERN
stop_one() {
    local name="$1" file="$2" pattern="$3" pid i
    if ! pid="$(pid_of "$file" "$pattern")"; then
        if [[ -f "$file" ]]; then
            log "stop: $name not running (removing stale $file)"
            rm -f "$file"
        else
            log "stop: $name not running"
        fi
        return 0
    fi
    log "stop: $name (PID $pid): TERM"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid"; then
        log "stop: $name (PID $pid) still alive after ${STOP_TIMEOUT}s: KILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            pid_alive "$pid" || break
            sleep 0.1
        done
    fi
    pid_alive "$pid" && die "stop: $name (PID $pid) did not exit"
    rm -f "$file"
    log "stop: $name stopped"
}

# check_free NAME PORT...: fail if one of the ports is already taken.
check_free() {
    local name="$1" port
    shift
    for port in "$@"; do
        if port_open "$port"; then
            {
                printf 'peers: ERROR: cannot start %s: %s:%s is already in use by another process.\n' "$name" "$HOST" "$port"
                listeners "$port"
                printf 'peers: stop that process (if it is a peer started from another checkout or\n'
                printf 'peers: LLMTEL_PEERS_DIR, run its "scripts/peers.sh stop"), then run this again.\n'
            } >&2
            exit 1
        fi
    done
}

# check_loopback_only NAME PIDFILE PATTERN PID: with ss (if present), verify every
# listening socket of PID is on 127.0.0.1 (gRPC binds an IPv6 socket to the
# IPv4-mapped [::ffff:127.0.0.1], which is loopback only too); else stop it and fail.
check_loopback_only() {
    local name="$1" file="$2" pattern="$3" pid="$4" bad
    command -v ss >/dev/null 2>&1 || return 0
    bad="$(ss -Hltnp 2>/dev/null | grep -F "pid=$pid," | awk '{print $4}' \
        | grep -v -E '^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]):' || true)"
    if [[ -n "$bad" ]]; then
        stop_one "$name" "$file" "$pattern" >&2 || true
        die "start: $name (PID $pid) listened beyond 127.0.0.1 ($(echo "$bad" | tr '\n' ' ')); stopped it. This is a bug in scripts/peers.sh or scripts/phoenix_launcher.py."
    fi
}

start_phoenix() {
    local pid t0 i
    if pid="$(phoenix_pid)"; then
        log "start: Phoenix already running (PID $pid), reusing it"
    else
        rm -f "$PHOENIX_PID"
        check_free Phoenix "$PHOENIX_HTTP_PORT" "$PHOENIX_GRPC_PORT"
        rm -rf "$PHOENIX_WORK"
        mkdir -p "$PHOENIX_WORK"
        log "start: Phoenix on http://$HOST:$PHOENIX_HTTP_PORT (OTLP gRPC $HOST:$PHOENIX_GRPC_PORT), log $PHOENIX_LOG"
        env -u PHOENIX_SQL_DATABASE_URL -u PHOENIX_POSTGRES_HOST -u PHOENIX_ENABLE_AUTH \
            -u PHOENIX_COLLECTOR_ENDPOINT -u PHOENIX_HOST_ROOT_PATH \
            PHOENIX_HOST="$HOST" \
            PHOENIX_PORT="$PHOENIX_HTTP_PORT" \
            PHOENIX_GRPC_PORT="$PHOENIX_GRPC_PORT" \
            PHOENIX_WORKING_DIR="$PHOENIX_WORK" \
            PHOENIX_TELEMETRY_ENABLED=false \
            PHOENIX_ALLOW_EXTERNAL_RESOURCES=false \
            PHOENIX_LOG_MIGRATIONS=false \
            PYTHONUNBUFFERED=1 \
            nohup "$PY" "$REPO/scripts/phoenix_launcher.py" >"$PHOENIX_LOG" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$PHOENIX_PID"
    fi
    t0="$(now)"
    for ((i = 0; ; i++)); do
        if ! pid_alive "$pid"; then
            rm -f "$PHOENIX_PID"
            tail_log "$PHOENIX_LOG"
            die "start: Phoenix (PID $pid) exited before it was ready; see $PHOENIX_LOG above. Fix the cause (port taken? broken venv: rm -rf $VENV && scripts/peers.sh install) and run scripts/peers.sh start again."
        fi
        if http_ok "http://$HOST:$PHOENIX_HTTP_PORT/healthz" && port_open "$PHOENIX_GRPC_PORT"; then
            break
        fi
        if ((i >= PHOENIX_READY_TIMEOUT * 2)); then
            tail_log "$PHOENIX_LOG"
            stop_one Phoenix "$PHOENIX_PID" phoenix_launcher.py >&2 || true
            die "start: Phoenix not ready after ${PHOENIX_READY_TIMEOUT}s (GET /healthz and gRPC :$PHOENIX_GRPC_PORT); see its log above, then run scripts/peers.sh start again."
        fi
        sleep 0.5
    done
    check_loopback_only Phoenix "$PHOENIX_PID" phoenix_launcher.py "$pid"
    log "start: Phoenix ready (PID $pid) after $(elapsed "$t0") s"
}

start_rotel() {
    local pid t0 i bin
    if pid="$(rotel_pid)"; then
        log "start: rotel already running (PID $pid), reusing it"
    else
        rm -f "$ROTEL_PID"
        bin="$(rotel_bin)" || die "start: rotel-agent not found in $VENV; run scripts/peers.sh install"
        check_free rotel "$ROTEL_GRPC_PORT" "$ROTEL_HTTP_PORT"
        log "start: rotel on OTLP gRPC $HOST:$ROTEL_GRPC_PORT, HTTP $HOST:$ROTEL_HTTP_PORT -> Phoenix gRPC $HOST:$PHOENIX_GRPC_PORT, log $ROTEL_LOG"
        # No --daemon: we keep its PID. --pid-file/--log-file keep it out of /tmp.
        # The detailed debug log (stdout -> $ROTEL_LOG) prints every span received,
        # with resource attributes and wire types: Phoenix drops those, tests read them here.
        env ROTEL_EXPORTERS=up:otlp \
            ROTEL_EXPORTERS_TRACES=up \
            ROTEL_EXPORTER_UP_ENDPOINT="http://$HOST:$PHOENIX_GRPC_PORT" \
            ROTEL_EXPORTER_UP_PROTOCOL=grpc \
            NO_COLOR=1 \
            nohup "$bin" start \
            --otlp-grpc-endpoint "$HOST:$ROTEL_GRPC_PORT" \
            --otlp-http-endpoint "$HOST:$ROTEL_HTTP_PORT" \
            --debug-log traces --debug-log-verbosity detailed \
            --pid-file "$PEERS_DIR/rotel-agent.own.pid" \
            --log-file "$PEERS_DIR/rotel-agent.own.log" \
            >"$ROTEL_LOG" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$ROTEL_PID"
    fi
    t0="$(now)"
    for ((i = 0; ; i++)); do
        if ! pid_alive "$pid"; then
            rm -f "$ROTEL_PID"
            tail_log "$ROTEL_LOG"
            die "start: rotel (PID $pid) exited before it was ready; see $ROTEL_LOG above, fix the cause and run scripts/peers.sh start again."
        fi
        if port_open "$ROTEL_GRPC_PORT" && port_open "$ROTEL_HTTP_PORT"; then
            break
        fi
        if ((i >= ROTEL_READY_TIMEOUT * 10)); then
            tail_log "$ROTEL_LOG"
            stop_one rotel "$ROTEL_PID" rotel-agent >&2 || true
            die "start: rotel not listening on $HOST:$ROTEL_GRPC_PORT and $HOST:$ROTEL_HTTP_PORT after ${ROTEL_READY_TIMEOUT}s; see its log above."
        fi
        sleep 0.1
    done
    check_loopback_only rotel "$ROTEL_PID" rotel-agent "$pid"
    log "start: rotel ready (PID $pid) after $(elapsed "$t0") s"
}

write_env() {
    cat >"$ENV_FILE.tmp" <<EOF
# Written by scripts/peers.sh start; source it before running the peer tests.
export LLMTEL_PHOENIX_URL=http://$HOST:$PHOENIX_HTTP_PORT
export LLMTEL_PHOENIX_OTLP_GRPC=http://$HOST:$PHOENIX_GRPC_PORT
export LLMTEL_PHOENIX_OTLP_HTTP=http://$HOST:$PHOENIX_HTTP_PORT
export LLMTEL_ROTEL_OTLP_GRPC=http://$HOST:$ROTEL_GRPC_PORT
export LLMTEL_ROTEL_OTLP_HTTP=http://$HOST:$ROTEL_HTTP_PORT
export LLMTEL_ROTEL_LOG=$(printf %q "$ROTEL_LOG")
export LLMTEL_SENDERS_PYTHON=$(printf %q "$SENDERS_PY")
EOF
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    log "start: wrote $ENV_FILE (source it)"
}

cmd_start() {
    local t0
    t0="$(now)"
    peers_installed || die "start: peers not installed in $VENV; run scripts/peers.sh install first"
    mkdir -p "$PEERS_DIR"
    start_phoenix
    start_rotel
    write_env
    log "start: peers ready in $(elapsed "$t0") s"
}

cmd_stop() {
    # rotel first: it forwards to Phoenix.
    stop_one rotel "$ROTEL_PID" rotel-agent
    stop_one Phoenix "$PHOENIX_PID" phoenix_launcher.py
    rm -f "$ENV_FILE"
}

cmd_status() {
    local rc=0 pid
    if pid="$(phoenix_pid)"; then
        if http_ok "http://$HOST:$PHOENIX_HTTP_PORT/healthz"; then
            log "status: Phoenix running (PID $pid), http://$HOST:$PHOENIX_HTTP_PORT/healthz OK"
        else
            log "status: Phoenix running (PID $pid) but /healthz does not answer (log: $PHOENIX_LOG)"
            rc=3
        fi
    else
        log "status: Phoenix not running"
        rc=3
    fi
    if pid="$(rotel_pid)"; then
        if port_open "$ROTEL_GRPC_PORT" && port_open "$ROTEL_HTTP_PORT"; then
            log "status: rotel running (PID $pid), listening on $HOST:$ROTEL_GRPC_PORT and $HOST:$ROTEL_HTTP_PORT"
        else
            log "status: rotel running (PID $pid) but not listening (log: $ROTEL_LOG)"
            rc=3
        fi
    else
        log "status: rotel not running"
        rc=3
    fi
    if command -v ss >/dev/null 2>&1 && ((rc == 0)); then
        ss -Hltnp 2>/dev/null | grep -E "pid=($(phoenix_pid)|$(rotel_pid))," | awk '{print "peers: status:   listening " $4}' || true
    fi
    return "$rc"
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 install|start|stop|status" >&2
        exit 2
        ;;
esac
