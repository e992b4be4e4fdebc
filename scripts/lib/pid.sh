# Shared by scripts/{redis,alertmanager,prometheus}.sh: processes are tracked by PID file and
# stopped by PID, never by name. The sourcing script defines log() first.

# pid_alive PID: whether a process with that PID exists.
pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# port_open HOST PORT: whether something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# stop_pid NAME PID TIMEOUT_SECONDS: TERM, wait up to the timeout, then KILL.
stop_pid() {
    local name="$1" pid="$2" timeout="$3" i
    log "stop: $name (PID $pid): TERM"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid"; then
        log "stop: still alive after ${timeout}s: KILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

# pidfile_pid FILE PATTERN: prints the PID recorded in FILE if that process is alive and its
# command line contains PATTERN (so a recycled PID of another program is never taken as ours).
pidfile_pid() {
    local file="$1" pattern="$2" pid
    [[ -f "$file" ]] || return 1
    pid="$(tr -dc '0-9' <"$file")"
    pid_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
    printf '%s\n' "$pid"
}
