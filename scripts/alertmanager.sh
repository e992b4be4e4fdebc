#!/usr/bin/env bash
# Prometheus Alertmanager for llmtel-alert's tests (Debian prometheus-alertmanager),
# on 127.0.0.1 only, gossip off.
#
# Usage: scripts/alertmanager.sh install|start|stop|status
#
#   install  apt-get install prometheus-alertmanager if missing; runs
#            'apt-get update' once if apt cannot find the package.
#   start    write a test config (group_wait 0s, group_interval 1s, one webhook
#            receiver with send_resolved: true pointing at
#            http://127.0.0.1:$LLMTEL_AM_WEBHOOK_PORT/alerts, default 9099, where the
#            tests start their listener), start Alertmanager in the background, wait
#            until /-/ready answers, write ${LLMTEL_PEERS_DIR:-<repo>/.peers}/alertmanager.env.
#            Reuses an Alertmanager already running from our own PID file.
#   stop     stop it by the PID in the PID file (TERM, wait, KILL).
#   status   tell whether it runs and answers; exit 0 only if it does.
#
# Address: http://127.0.0.1:9393 (API v2 at /api/v2/alerts). Ready in ~0.2 s, ~32 MB.
# Not 9093: on a systemd host the Debian package's install starts its own service on
# 9093/9094, every interface; we never touch it (as redis.sh leaves 6379).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS_DIR="${LLMTEL_PEERS_DIR:-$REPO/.peers}"
[[ "$PEERS_DIR" == /* ]] || PEERS_DIR="$PWD/$PEERS_DIR"
HOST=127.0.0.1
PORT="${LLMTEL_AM_PORT:-9393}"
WEBHOOK_PORT="${LLMTEL_AM_WEBHOOK_PORT:-9099}"
READY_TIMEOUT=20
STOP_TIMEOUT=10
PID_FILE="$PEERS_DIR/alertmanager.pid"
LOG_FILE="$PEERS_DIR/alertmanager.log"
WORK="$PEERS_DIR/alertmanager-work"
CONFIG="$PEERS_DIR/alertmanager.yml"
ENV_FILE="$PEERS_DIR/alertmanager.env"
BIN=prometheus-alertmanager

log() { printf 'alertmanager: %s\n' "$*"; }
die() { printf 'alertmanager: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib/pid.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/pid.sh"


am_pid() { pidfile_pid "$PID_FILE" "alertmanager"; }

host_port_open() { port_open "$HOST" "$1"; }

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

cmd_install() {
    if command -v "$BIN" >/dev/null 2>&1 && command -v curl >/dev/null 2>&1; then
        log "install: $("$BIN" --version 2>&1 | head -n1)"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "install: $BIN missing and no apt-get"
    log "install: apt-get install -y prometheus-alertmanager curl"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus-alertmanager curl; then
        log "install: apt-get could not install it; running apt-get update once"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus-alertmanager curl || die "install: apt-get install prometheus-alertmanager failed"
    fi
}

write_config() {
    cat >"$CONFIG" <<YML
# Written by scripts/alertmanager.sh for llmtel's tests.
route:
  receiver: llmtel-test
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: llmtel-test
    webhook_configs:
      - url: http://$HOST:$WEBHOOK_PORT/alerts
        send_resolved: true
YML
}

cmd_start() {
    local pid i
    command -v "$BIN" >/dev/null 2>&1 || die "start: $BIN not installed; run scripts/alertmanager.sh install"
    mkdir -p "$PEERS_DIR"
    if pid="$(am_pid)"; then
        log "start: Alertmanager already running (PID $pid), reusing it"
    else
        rm -f "$PID_FILE"
        host_port_open "$PORT" && die "start: $HOST:$PORT is already in use by another process; stop it (or set LLMTEL_AM_PORT) and run this again"
        write_config
        rm -rf "$WORK"
        mkdir -p "$WORK"
        log "start: Alertmanager on http://$HOST:$PORT, webhook -> http://$HOST:$WEBHOOK_PORT/alerts, log $LOG_FILE"
        nohup "$BIN" --config.file="$CONFIG" --web.listen-address="$HOST:$PORT" \
            --cluster.listen-address= --storage.path="$WORK" \
            >"$LOG_FILE" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$PID_FILE"
    fi
    for ((i = 0; ; i++)); do
        if ! pid_alive "$pid"; then
            rm -f "$PID_FILE"
            tail -n 30 "$LOG_FILE" >&2 || true
            die "start: Alertmanager (PID $pid) exited before it was ready; see $LOG_FILE above"
        fi
        http_ok "http://$HOST:$PORT/-/ready" && break
        ((i < READY_TIMEOUT * 10)) || die "start: Alertmanager not ready after ${READY_TIMEOUT}s (log $LOG_FILE)"
        sleep 0.1
    done
    {
        echo "# Written by scripts/alertmanager.sh start; source it before running the Alertmanager tests."
        echo "export LLMTEL_ALERTMANAGER_URL=http://$HOST:$PORT"
        echo "export LLMTEL_ALERTMANAGER_WEBHOOK_ADDR=$HOST:$WEBHOOK_PORT"
    } >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    log "start: ready (PID $pid); wrote $ENV_FILE (source it)"
}

cmd_stop() {
    local pid
    if ! pid="$(am_pid)"; then
        log "stop: Alertmanager not running"
        rm -f "$PID_FILE" "$ENV_FILE"
        return 0
    fi
    stop_pid "Alertmanager" "$pid" "$STOP_TIMEOUT"
    rm -f "$PID_FILE" "$ENV_FILE"
    log "stop: stopped"
}

cmd_status() {
    local pid
    if pid="$(am_pid)" && http_ok "http://$HOST:$PORT/-/ready"; then
        log "status: running (PID $pid), http://$HOST:$PORT/-/ready OK"
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
