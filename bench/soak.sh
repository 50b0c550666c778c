#!/usr/bin/env bash
# Soak of the gateway (issue 8): 60 s of mixed traffic at 64 connections,
# then: 0 errors and RSS growth under 10 %, or a non-zero exit.
# Run from the repository root:   bash bench/soak.sh
# See the "Soak" section of bench/README.md.
#
# Knobs (environment):
#   SOAK_DURATION=60            seconds of measured load
#   SOAK_WARMUP=35              seconds of the same load before it (not measured): longer than
#                               the 30 s cache freshness, so the measured minute starts in steady
#                               state (old and new cached answers briefly coexist at a refresh)
#   SOAK_CONNECTIONS=64         wrk connections
#   SOAK_THREADS=2              wrk threads
#   SOAK_MAX_RSS_GROWTH_PCT=10  RSS growth limit, in %
#   SOAK_BUILD_TIMEOUT=1800     seconds allowed for cargo build (it may wait on the cargo lock)
#   PGHOST/PGPORT/PGUSER        the PostgreSQL server (default 127.0.0.1:5432, postgres, trust auth)
# Any other variable the gateway reads (DB_POOL_MAX, cache settings, ...) is
# inherited by the gateway process.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
PY=(python3 "$BENCH/lib/bench.py")
SOAK=(python3 "$BENCH/lib/soak.py")

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5}
export SOAK_DURATION=${SOAK_DURATION:-60} SOAK_WARMUP=${SOAK_WARMUP:-35}
export SOAK_CONNECTIONS=${SOAK_CONNECTIONS:-64} SOAK_THREADS=${SOAK_THREADS:-2}
export SOAK_MAX_RSS_GROWTH_PCT=${SOAK_MAX_RSS_GROWTH_PCT:-10}
BUILD_TIMEOUT=${SOAK_BUILD_TIMEOUT:-1800}
DB=gw_bench_demo USERS=1000 TOKENS=2500 SEED=42   # the "demo" scale of bench/run.sh

STAMP=$(date +%Y%m%d-%H%M)
WORK=$BENCH/work/soak-$STAMP
RESULTS_DIR=$BENCH/results
mkdir -p "$WORK" "$RESULTS_DIR"
T_START=$(date +%s)

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }
psql_q() { timeout 120 psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# ------------------------------------------------------------------ cleanup
GW_PID=""
SAMPLER_PID=""
# shellcheck source=lib/gateway.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/gateway.sh"
cleanup() {
    [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null || true
    stop_gateway
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ tools
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt"
    as_root timeout 300 apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! pg_isready -q -t 5; then
    log "PostgreSQL is down; starting it"
    as_root timeout 60 pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 1 50); do pg_isready -q -t 1 && break; sleep 0.2; done
    pg_isready -q -t 5 || die "PostgreSQL on $PGHOST:$PGPORT is not ready"
fi

# ------------------------------------------------------------------ build
log "building the release binary (waits for the cargo lock if another build holds it; at most ${BUILD_TIMEOUT} s)"
timeout "$BUILD_TIMEOUT" cargo build --release --locked || die "cargo build failed or timed out"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/coworking-gateway
[[ -x $BIN ]] || die "no binary at $BIN"

# ------------------------------------------------------------------ database
URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB"
counts=$(psql_q -d "$DB" -c "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM tokens)" 2>/dev/null || true)
if [[ $counts == "$USERS $TOKENS" ]]; then
    log "$DB: reusing ($USERS users, $TOKENS tokens)"
else
    log "$DB: (re)creating and seeding $USERS users / $TOKENS tokens (was: '${counts:-absent}')"
    psql_q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
    psql_q -d postgres -c "CREATE DATABASE $DB"
    DATABASE_URL=$URL RUST_LOG=warn timeout 600 "$BIN" seed --users "$USERS" --tokens "$TOKENS" --seed "$SEED" \
        > "$WORK/seed.log" 2>&1 || { tail -20 "$WORK/seed.log" >&2; die "seeding $DB failed"; }
    psql_q -d "$DB" -c "VACUUM (ANALYZE)"
fi

# ------------------------------------------------------------------ gateway
PORT=$("${PY[@]}" freeport)
GWLOG=$WORK/gateway.log
out=$(env DATABASE_URL="$URL" APP_PORT="$PORT" BIND_ADDRESS=127.0.0.1 LOG_FORMAT=json RUST_LOG=warn \
    SHUTDOWN_DRAIN_SECONDS=1 BENCH_READY_TIMEOUT=120 \
    "${PY[@]}" spawn "$GWLOG" "$PORT" -- "$BIN" serve) || die "the gateway did not start; see $GWLOG"
read -r GW_PID READY_MS <<<"$out"
log "gateway pid $GW_PID on 127.0.0.1:$PORT, ready in $READY_MS ms"
BASE=http://127.0.0.1:$PORT

# One request per road: each must answer 200 with a real answer before the load.
check_roads() {
    local path body code f bad=0
    for spec in "GET /api/reports/daily_usage -" "GET /api/reports/user_visits -" \
        "POST /graphql usageByDay.json" "POST /graphql visitsPerUser.json" "POST /graphql summary.json" \
        "GET /health_check -"; do
        read -r _ path body <<<"$spec"
        f=$WORK/check-$(basename "$path")-$body.out
        if [[ $body == - ]]; then
            code=$(curl -sS -o "$f" -w '%{http_code}' --max-time 30 "$BASE$path" || echo 000)
        else
            code=$(curl -sS -o "$f" -w '%{http_code}' --max-time 30 -H 'Content-Type: application/json' \
                --data-binary "@$BENCH/queries/$body" "$BASE$path" || echo 000)
        fi
        if [[ $code != 200 || ! -s $f ]] || grep -q '"errors"' "$f"; then
            log "$path $body: HTTP $code: $(head -c 300 "$f")"
            bad=1
        fi
    done
    return $bad
}
check_roads || die "a road did not answer correctly before the load"

WRK=(wrk -t"$SOAK_THREADS" -c"$SOAK_CONNECTIONS" --latency -s "$BENCH/soak.lua")
export SOAK_QUERIES_DIR=$BENCH/queries

log "warm-up: ${SOAK_WARMUP} s of the same mixed load"
timeout $((SOAK_WARMUP + 30)) "${WRK[@]}" -d"${SOAK_WARMUP}s" "$BASE/" > "$WORK/wrk-warmup.txt" 2>&1 \
    || { cat "$WORK/wrk-warmup.txt" >&2; die "wrk (warm-up) failed"; }
log "warm-up: $(grep -E 'Requests/sec|Non-2xx|Socket errors' "$WORK/wrk-warmup.txt" | tr -s ' ' | paste -sd';')"

# ------------------------------------------------------------------ soak
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
RSSF=$WORK/rss.txt
: > "$RSSF"
export SOAK_RSS_START_KB
SOAK_RSS_START_KB=$("${SOAK[@]}" rss "$GW_PID")
((SOAK_RSS_START_KB > 0)) || die "the gateway exited during the warm-up; see $GWLOG"
"${SOAK[@]}" sample "$GW_PID" "$RSSF" 1 &
SAMPLER_PID=$!
log "soak: ${SOAK_DURATION} s, ${SOAK_CONNECTIONS} connections; RSS at start $((SOAK_RSS_START_KB / 1024)) MB"
wrk_rc=0
timeout $((SOAK_DURATION + 60)) "${WRK[@]}" -d"${SOAK_DURATION}s" "$BASE/" > "$WORK/wrk-soak.txt" 2>&1 || wrk_rc=$?
export SOAK_RSS_END_KB SOAK_GATEWAY_ALIVE=1
SOAK_RSS_END_KB=$("${SOAK[@]}" rss "$GW_PID")
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
((wrk_rc == 0)) || { cat "$WORK/wrk-soak.txt" >&2; die "wrk (soak) failed with status $wrk_rc"; }
kill -0 "$GW_PID" 2>/dev/null || { SOAK_GATEWAY_ALIVE=0; log "the gateway died during the soak; see $GWLOG"; }
log "soak: $(grep -E 'Requests/sec|Non-2xx|Socket errors' "$WORK/wrk-soak.txt" | tr -s ' ' | paste -sd';')"
stop_gateway
PANICS=$(grep -c -i 'panic' "$GWLOG" || true)
LOGLINES=$(grep -c . "$GWLOG" || true)

# ------------------------------------------------------------------ report
META=$WORK/meta.md
{
    echo "- date: $(date '+%Y-%m-%d %H:%M:%S %Z')"
    echo "- git commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo ' + uncommitted changes') ($(git log -1 --format=%s))"
    echo "- binary: \`$(realpath --relative-to="$ROOT" "$BIN")\`, built $(date -r "$BIN" '+%Y-%m-%d %H:%M'), $(($(stat -c %s "$BIN") / 1024 / 1024)) MB"
    echo "- CPU: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), nproc $(nproc); load average before the soak: $LOADAVG"
    echo "- memory: $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
    echo "- PostgreSQL: $(psql_q -d postgres -c 'SELECT version()' | cut -d, -f1), database \`$DB\` ($USERS users, $TOKENS tokens, seed $SEED)"
    echo "- tools: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(curl --version | head -1 | cut -d' ' -f1-2)"
    echo "- gateway: \`serve\` with BIND_ADDRESS=127.0.0.1 APP_PORT=<free port> LOG_FORMAT=json RUST_LOG=warn SHUTDOWN_DRAIN_SECONDS=1$(env | grep -E '^(CACHE|DB|GRAPHQL|MAX|ROLLUP|METRICS|RATE|REQUEST|AUTH)_' | grep -vE '^(DB_PASSWORD|AUTH_)' | sort | sed 's/^/ /' | tr -d '\n'); ready in $READY_MS ms; its log: $LOGLINES lines, $PANICS mentioning a panic"
    warm_err=$(grep -E 'Non-2xx|Socket errors' "$WORK/wrk-warmup.txt" | sed 's/^ *//' | tr -s ' ' | paste -sd';' || true)
    echo "- warm-up (not measured): $(grep -E 'requests in' "$WORK/wrk-warmup.txt" | sed 's/^ *//'); ${warm_err:-no non-2xx or socket errors}"
    echo "- run: $(( $(date +%s) - T_START )) s in all (build included); raw output in \`bench/work/soak-$STAMP/\`"
} > "$META"

rc=0
"${SOAK[@]}" report "$WORK/wrk-soak.txt" "$RSSF" "$META" "$RESULTS_DIR/soak-latest.md" "$RESULTS_DIR/soak-$STAMP.md" || rc=$?
log "written: bench/results/soak-latest.md, bench/results/soak-$STAMP.md"
if ((rc == 0)); then log "PASS"; else log "FAIL"; fi
exit "$rc"
