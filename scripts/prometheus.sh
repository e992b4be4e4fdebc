#!/usr/bin/env bash
# A real Prometheus (Debian package `prometheus`) for llmtel's metrics tests.
#
# Usage: scripts/prometheus.sh install|start|stop|status
#
#   install  apt-get install prometheus if `prometheus` is not on PATH.
#   start    write a scrape config, start Prometheus in the background on
#            127.0.0.1:${LLMTEL_PROMETHEUS_PORT:-9390} with exemplar storage,
#            wait for /-/ready, write <peers dir>/prometheus.env (source it).
#            Reuses a Prometheus already started by this script.
#   stop     stop it by the PID in its PID file (TERM, wait, KILL).
#   status   exit 0 only if it runs and answers /-/ready.
#
# Scrape targets: tests add their own at run time by writing a file_sd JSON file
# into $LLMTEL_PROMETHEUS_TARGETS_DIR (e.g. [{"targets":["127.0.0.1:41234"],
# "labels":{"test_run":"abc"}}]); Prometheus picks it up (applied on a 5 s tick)
# and scrapes every second. The alert rules in ops/prometheus/rules/ are loaded
# too, so a rule Prometheus rejects makes the start fail.
#
# Measured here (Debian 12, prometheus 2.42): ready in ~0.3 s, ~45 MB; the first
# sample of a new target appears 5-6 s after its file is written.
#
# Environment:
#   LLMTEL_PEERS_DIR        PID file, log, data dir, env file (default <repo>/.peers)
#   LLMTEL_PROMETHEUS_PORT  listen port on 127.0.0.1 (default 9390, not 9090: on a
#                           systemd host the Debian package's install starts its own
#                           service there, every interface; we never touch it)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS_DIR="${LLMTEL_PEERS_DIR:-$REPO/.peers}"
[[ "$PEERS_DIR" == /* ]] || PEERS_DIR="$PWD/$PEERS_DIR"
HOST=127.0.0.1
PORT="${LLMTEL_PROMETHEUS_PORT:-9390}"
DIR="$PEERS_DIR/prometheus"
PID_FILE="$DIR/prometheus.pid"
LOG="$DIR/prometheus.log"
CONFIG="$DIR/prometheus.yml"
TARGETS="$DIR/targets"
DATA="$DIR/data"
ENV_FILE="$PEERS_DIR/prometheus.env"
READY_TIMEOUT=30
STOP_TIMEOUT=15

log() { printf 'prometheus.sh: %s\n' "$*" >&2; }
die() { printf 'prometheus.sh: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib/pid.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/pid.sh"


# Our PID, if the process in the PID file is alive and is a prometheus.
our_pid() { pidfile_pid "$PID_FILE" "--config.file=$CONFIG"; }

host_port_open() { port_open "$HOST" "$1"; }

ready() { curl -fsS -o /dev/null --max-time 2 "http://$HOST:$PORT/-/ready" 2>/dev/null; }

cmd_install() {
    if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
        log "install: $(prometheus --version 2>&1 | head -1)"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "install: prometheus is missing and there is no apt-get; install Prometheus 2.x so that 'prometheus' and 'promtool' are on PATH"
    log "install: apt-get install prometheus"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends prometheus >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends prometheus >/dev/null; } \
        || die "install: apt-get install prometheus failed"
    command -v prometheus >/dev/null 2>&1 || die "install: prometheus still not on PATH"
}

write_config() {
    mkdir -p "$TARGETS"
    cat >"$CONFIG" <<YAML
# Written by scripts/prometheus.sh start.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $REPO/ops/prometheus/rules/*.yml
scrape_configs:
  - job_name: llmtel-tests
    file_sd_configs:
      - files: ["$TARGETS/*.json"]
        refresh_interval: 1s
YAML
}

cmd_start() {
    local pid i t0
    command -v prometheus >/dev/null 2>&1 || die "start: prometheus not installed; run scripts/prometheus.sh install"
    mkdir -p "$DIR"
    if pid="$(our_pid)"; then
        log "start: Prometheus already running (PID $pid), reusing it"
    else
        rm -f "$PID_FILE"
        if host_port_open "$PORT"; then
            die "start: $HOST:$PORT is already in use by another process; stop it or set LLMTEL_PROMETHEUS_PORT"
        fi
        write_config
        rm -rf "$DATA" "$TARGETS"
        mkdir -p "$DATA" "$TARGETS"
        log "start: Prometheus on http://$HOST:$PORT, log $LOG"
        nohup prometheus \
            --config.file="$CONFIG" \
            --web.listen-address="$HOST:$PORT" \
            --storage.tsdb.path="$DATA" \
            --enable-feature=exemplar-storage \
            --web.enable-lifecycle \
            >"$LOG" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$PID_FILE"
    fi
    t0=$SECONDS
    for ((i = 0; ; i++)); do
        if ! pid_alive "$pid"; then
            rm -f "$PID_FILE"
            tail -n 30 "$LOG" >&2 || true
            die "start: Prometheus (PID $pid) exited; see $LOG above (a rule file it rejects? a port in use?)"
        fi
        ready && break
        if ((i >= READY_TIMEOUT * 10)); then
            tail -n 30 "$LOG" >&2 || true
            cmd_stop || true
            die "start: Prometheus not ready after ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
    cat >"$ENV_FILE.tmp" <<ENV
# Written by scripts/prometheus.sh start; source it before running the metrics tests.
export LLMTEL_PROMETHEUS_URL=http://$HOST:$PORT
export LLMTEL_PROMETHEUS_TARGETS_DIR=$(printf %q "$TARGETS")
ENV
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    log "start: ready (PID $pid) after $((SECONDS - t0)) s; wrote $ENV_FILE"
}

cmd_stop() {
    local pid
    if ! pid="$(our_pid)"; then
        log "stop: Prometheus not running"
        rm -f "$PID_FILE" "$ENV_FILE"
        return 0
    fi
    stop_pid "Prometheus" "$pid" "$STOP_TIMEOUT"
    rm -f "$PID_FILE" "$ENV_FILE"
    log "stop: stopped"
}

cmd_status() {
    local pid
    if pid="$(our_pid)" && ready; then
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
