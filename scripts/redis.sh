#!/usr/bin/env bash
# Redis for llmtel-budget's store tests (Debian redis-server), on 127.0.0.1 only.
#
# Usage: scripts/redis.sh install|start|stop|status
#
#   install  apt-get install redis-server (and openssl) if missing; runs
#            'apt-get update' once if apt cannot find the package.
#   start    start redis-server in the background: plain port with a password
#            (redis://) and, when the binary has TLS, a TLS port (rediss://) with a
#            self-signed CA made here; wait until it answers PING; write
#            ${LLMTEL_PEERS_DIR:-<repo>/.peers}/redis.env (source it).
#            Reuses a server that is already running from our own PID file.
#   stop     stop it by the PID in the PID file (TERM, wait, KILL).
#   status   tell whether it runs and answers; exit 0 only if it does.
#
# Addresses: redis://:PASSWORD@127.0.0.1:6390/  rediss://:PASSWORD@127.0.0.1:6391/
# (the Debian service may hold 6379; we never touch it). No persistence (--save ''
# --appendonly no): every test writes its own key prefix.
#
# The env file also names the redis-server binary (LLMTEL_REDIS_SERVER): the
# "Redis stopped mid-test" test starts and stops its own server on a free port.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS_DIR="${LLMTEL_PEERS_DIR:-$REPO/.peers}"
[[ "$PEERS_DIR" == /* ]] || PEERS_DIR="$PWD/$PEERS_DIR"
HOST=127.0.0.1
PORT="${LLMTEL_REDIS_PORT:-6390}"
TLS_PORT="${LLMTEL_REDIS_TLS_PORT:-6391}"
PASSWORD="${LLMTEL_REDIS_PASSWORD:-llmtel-test}"
READY_TIMEOUT=15
STOP_TIMEOUT=10
PID_FILE="$PEERS_DIR/redis.pid"
LOG_FILE="$PEERS_DIR/redis.log"
TLS_DIR="$PEERS_DIR/redis-tls"
ENV_FILE="$PEERS_DIR/redis.env"

log() { printf 'redis: %s\n' "$*"; }
die() { printf 'redis: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib/pid.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/pid.sh"


server_pid() { pidfile_pid "$PID_FILE" "redis-server"; }

host_port_open() { port_open "$HOST" "$1"; }

ping_ok() {
    [[ "$(redis-cli -h "$HOST" -p "$PORT" --no-auth-warning -a "$PASSWORD" ping 2>/dev/null)" == "PONG" ]]
}

# (grep reads all its input, not `grep -q`: under pipefail, a writer cut off by grep's early
# exit fails the pipeline, and the TLS port was then left out at random.)
has_tls() {
    redis-server --help 2>&1 | grep -- '--tls-port' >/dev/null \
        || ldd "$(command -v redis-server)" 2>/dev/null | grep libssl >/dev/null
}

cmd_install() {
    if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1; then
        log "install: redis-server $(redis-server --version | awk '{print $3}') already installed"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "install: redis-server missing and no apt-get; install Redis >= 6 yourself"
    log "install: apt-get install -y redis-server openssl"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server openssl; then
        log "install: apt-get could not install it; running apt-get update once"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server openssl || die "install: apt-get install redis-server failed"
    fi
}

make_tls() {
    [[ -f "$TLS_DIR/server.crt" && -f "$TLS_DIR/ca.crt" ]] && return 0
    mkdir -p "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=llmtel-test-ca" \
        -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$TLS_DIR/ext.cnf"
    openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
        -CAcreateserial -days 3650 -extfile "$TLS_DIR/ext.cnf" -out "$TLS_DIR/server.crt" >/dev/null 2>&1
}

cmd_start() {
    local pid i tls_args=() tls=0
    command -v redis-server >/dev/null 2>&1 || die "start: redis-server not installed; run scripts/redis.sh install"
    mkdir -p "$PEERS_DIR"
    if has_tls && command -v openssl >/dev/null 2>&1; then
        make_tls
        tls=1
        tls_args=(--tls-port "$TLS_PORT" --tls-cert-file "$TLS_DIR/server.crt"
            --tls-key-file "$TLS_DIR/server.key" --tls-ca-cert-file "$TLS_DIR/ca.crt"
            --tls-auth-clients no)
    fi
    if pid="$(server_pid)"; then
        log "start: redis-server already running (PID $pid), reusing it"
    else
        rm -f "$PID_FILE"
        if host_port_open "$PORT"; then
            die "start: $HOST:$PORT is already in use by another process; stop it (or set LLMTEL_REDIS_PORT) and run this again"
        fi
        log "start: redis-server on $HOST:$PORT$([[ $tls == 1 ]] && echo " (TLS $HOST:$TLS_PORT)"), log $LOG_FILE"
        nohup redis-server --bind "$HOST" --port "$PORT" --requirepass "$PASSWORD" \
            --save '' --appendonly no --daemonize no --protected-mode yes \
            --dir "$PEERS_DIR" --logfile "" "${tls_args[@]}" \
            >"$LOG_FILE" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$PID_FILE"
    fi
    for ((i = 0; ; i++)); do
        if ! pid_alive "$pid"; then
            rm -f "$PID_FILE"
            tail -n 30 "$LOG_FILE" >&2 || true
            die "start: redis-server (PID $pid) exited before it was ready; see $LOG_FILE above"
        fi
        ping_ok && break
        ((i < READY_TIMEOUT * 10)) || die "start: redis-server not answering PING after ${READY_TIMEOUT}s (log $LOG_FILE)"
        sleep 0.1
    done
    {
        echo "# Written by scripts/redis.sh start; source it before running the Redis tests."
        echo "export LLMTEL_REDIS_URL=redis://:$PASSWORD@$HOST:$PORT/"
        if [[ $tls == 1 ]]; then
            echo "export LLMTEL_REDISS_URL=rediss://:$PASSWORD@$HOST:$TLS_PORT/"
            echo "export LLMTEL_REDIS_CA=$(printf %q "$TLS_DIR/ca.crt")"
        fi
        echo "export LLMTEL_REDIS_SERVER=$(printf %q "$(command -v redis-server)")"
    } >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    log "start: ready (PID $pid); wrote $ENV_FILE (source it)"
}

cmd_stop() {
    local pid
    if ! pid="$(server_pid)"; then
        log "stop: redis-server not running"
        rm -f "$PID_FILE" "$ENV_FILE"
        return 0
    fi
    stop_pid "redis-server" "$pid" "$STOP_TIMEOUT"
    rm -f "$PID_FILE" "$ENV_FILE"
    log "stop: stopped"
}

cmd_status() {
    local pid
    if pid="$(server_pid)" && ping_ok; then
        log "status: running (PID $pid), $HOST:$PORT answers PING"
    else
        log "status: not running"
        return 3
    fi
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
