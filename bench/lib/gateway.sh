# Sourced by the bench scripts: stops the gateway started as $GW_PID (TERM, then KILL after 10 s).
GW_PID=${GW_PID:-}
stop_gateway() {
    [[ -n $GW_PID ]] || return 0
    kill -TERM "$GW_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$GW_PID" 2>/dev/null || true
    GW_PID=""
}
