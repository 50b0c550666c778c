#!/usr/bin/env bash
# Benchmark of the gateway against the database alone (issue 7).
# Run from the repository root:   bash bench/run.sh
# See bench/README.md for what it measures and how to read the table.
#
# Knobs (environment):
#   BENCH_RESEED=1          drop and re-seed the bench databases even if they look right
#   BENCH_SCALES="demo 10m" which scales to run (default both)
#   BENCH_DURATION=10       seconds of load per wrk / pgbench run
#   BENCH_CONNECTIONS=64    concurrent connections for wrk and clients for pgbench
#   PGHOST/PGPORT/PGUSER    the PostgreSQL server (default 127.0.0.1:5432, postgres, trust auth)
# Any other variable the gateway reads (DB_POOL_MAX, cache settings, ...) is
# inherited by the gateway processes this script starts.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
PY=(python3 "$BENCH/lib/bench.py")

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
SCALES=${BENCH_SCALES:-"demo 10m"}
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNECTIONS:-64}
RESEED=${BENCH_RESEED:-0}
SEED=42
PGBENCH_GRACE=5   # seconds pgbench may overrun before in-flight queries are cancelled
REPORT_LIST=(daily_usage user_visits usageByDay visitsPerUser)
# The cold requests (issue 13): each on a fresh process, with the default cache and with
# CACHE_TTL_SECONDS=0; the usageByDay ones over the scale's whole span (bench.py coldset).
COLD_LIST=(daily_usage user_visits usageByDay_DAY usageByDay_WEEK usageByDay_MONTH visitsPerUser_top100)
COLD_MODES=(cache ttl0)
# Each cold figure is the median of this many fresh processes (and the raw SQL of as many runs).
COLD_REPEATS=${BENCH_COLD_REPEATS:-3}
# The phases run per scale; e.g. BENCH_PHASES=http for the HTTP benchmark alone.
PHASES=${BENCH_PHASES:-"cold load pgbench http"}
# The peer of the http phase (issue 14), installed from npm into bench/work/.
POSTGRAPHILE_VERSION=${BENCH_POSTGRAPHILE_VERSION:-4.14.1}
HTTP_ROUNDS=${BENCH_HTTP_ROUNDS:-3}   # the http phase's rounds (each row: the median)
# The http phase puts the load generator and the server on cores of their own (wrk on
# CPU 0, the gateway or PostGraphile on CPU 1), as two machines would be: sharing both
# cores, wrk's and the server's threads preempt each other for whole scheduler slices,
# which is most of a p99 of 4-6 ms on any server. BENCH_HTTP_PIN=0 shares them.
HTTP_PIN=${BENCH_HTTP_PIN:-1}
SERVER_WRAP=()
WRK_WRAP=()
WRITER=${BENCH_WRITER:-1}
MIGRATE_BUILD=${BENCH_MIGRATE_BUILD:-1}

STAMP=$(date +%Y%m%d-%H%M)
WORK=$BENCH/work/run-$STAMP
RESULTS_DIR=$BENCH/results
RESULTS=$WORK/results.jsonl
mkdir -p "$WORK" "$RESULTS_DIR"
: > "$RESULTS"
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
SEED_SECONDS=0

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
psql_q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# ------------------------------------------------------------------ cleanup
GW_PID=""
RSS_PID=""
PGB_PID=""
cleanup() {
    [[ -n $RSS_PID ]] && kill "$RSS_PID" 2>/dev/null || true
    [[ -n $PGB_PID ]] && kill "$PGB_PID" 2>/dev/null || true
    if [[ -n $GW_PID ]] && kill -0 "$GW_PID" 2>/dev/null; then
        kill -TERM "$GW_PID" 2>/dev/null || true
        sleep 1
        kill -KILL "$GW_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# ------------------------------------------------------------------ tools
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
install_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v pgbench >/dev/null || missing+=(postgresql-client)
    command -v psql >/dev/null || missing+=(postgresql-client)
    command -v curl >/dev/null || missing+=(curl)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} with apt"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # Debian's PostgreSQL 15 ships pgbench in the server package; contrib pulls it in.
    if ! command -v pgbench >/dev/null; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-contrib >/dev/null
    fi
    command -v wrk >/dev/null && command -v pgbench >/dev/null || die "wrk/pgbench not available"
}

ensure_postgres() {
    if ! pg_isready -q; then
        log "PostgreSQL is down; starting it"
        as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
        for _ in $(seq 1 50); do pg_isready -q && break; sleep 0.2; done
        pg_isready -q || die "PostgreSQL on $PGHOST:$PGPORT is not ready"
    fi
}

# ------------------------------------------------------------------ databases
scale_db()     { echo "gw_bench_$1"; }
scale_users()  { case $1 in demo) echo 1000 ;; 10m) echo 100000 ;; 100m) echo 1000000 ;; *) die "unknown scale $1" ;; esac; }
scale_tokens() { case $1 in demo) echo 2500 ;; 10m) echo 10000000 ;; 100m) echo 100000000 ;; *) die "unknown scale $1" ;; esac; }
scale_days()   { case $1 in demo) echo 7 ;; 10m | 100m) echo 1095 ;; *) die "unknown scale $1" ;; esac; }
# The first day with tokens: `seed --days N` ends every span on 2023-02-14.
scale_first()  { date -u -d "2023-02-14 - $(scale_days "$1") days" +%F; }
db_url() { echo "postgres://$PGUSER@$PGHOST:$PGPORT/$1"; }

prepare_db() {
    local scale=$1 db users tokens days first counts t0
    db=$(scale_db "$scale"); users=$(scale_users "$scale"); tokens=$(scale_tokens "$scale")
    days=$(scale_days "$scale"); first=$(scale_first "$scale")
    counts=$(psql_q -d "$db" -c "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM tokens)
        || ' ' || (SELECT CAST(min(created_at) AS date) FROM tokens)" 2>/dev/null || true)
    if [[ $RESEED != 1 && $counts == "$users $tokens $first" ]]; then
        log "$db: reusing ($users users, $tokens tokens from $first)"
    else
        log "$db: (re)creating and seeding $users users / $tokens tokens over $days days (was: '${counts:-absent}')"
        t0=$(date +%s)
        psql_q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
        psql_q -d postgres -c "CREATE DATABASE $db"
        DATABASE_URL=$(db_url "$db") RUST_LOG=warn "$BIN" seed --users "$users" --tokens "$tokens" --days "$days" --seed "$SEED" \
            > "$WORK/seed-$scale.log" 2>&1 || { tail -20 "$WORK/seed-$scale.log" >&2; die "seeding $db failed"; }
        psql_q -d "$db" -c "VACUUM (ANALYZE)"
        SEED_SECONDS=$((SEED_SECONDS + $(date +%s) - t0))
    fi
    # Apply pending migrations (e.g. new indexes) now, so no one-time index
    # build lands inside a measured ready time.
    DATABASE_URL=$(db_url "$db") RUST_LOG=warn "$BIN" migrate > "$WORK/migrate-$scale.log" 2>&1 \
        || { tail -20 "$WORK/migrate-$scale.log" >&2; die "migrating $db failed"; }
}

# Wait until no query of an earlier phase still runs on $1; cancel leftovers
# (e.g. uncached report queries the gateway was still running when wrk stopped).
quiesce() {
    local db=$1 n i
    local active="FROM pg_stat_activity WHERE datname = '$db' AND state = 'active' AND backend_type = 'client backend'"
    for i in $(seq 1 300); do
        n=$(psql_q -d postgres -c "SELECT count(*) $active")
        [[ $n == 0 ]] && return 0
        if ((i == 20)); then
            log "cancelling $n leftover queries on $db"
            psql_q -d postgres -c "SELECT count(pg_cancel_backend(pid)) $active" >/dev/null
        elif ((i == 200)); then
            psql_q -d postgres -c "SELECT count(pg_terminate_backend(pid)) $active" >/dev/null
        fi
        sleep 0.1
    done
    die "queries still running on $db"
}

# ------------------------------------------------------------------ gateway
# start_gateway SCALE TAG [VAR=VALUE...]: sets GW_PID, GW_PORT, GW_READY (ms from spawn
# to first 200); the assignments are added to the gateway's environment.
start_gateway() {
    local scale=$1 tag=$2 db out
    shift 2
    db=$(scale_db "$scale")
    GW_PORT=$("${PY[@]}" freeport)
    out=$(env DATABASE_URL="$(db_url "$db")" APP_PORT="$GW_PORT" BIND_ADDRESS=127.0.0.1 \
        LOG_FORMAT=json RUST_LOG=warn SHUTDOWN_DRAIN_SECONDS=1 "$@" \
        "${PY[@]}" spawn "$WORK/gateway-$scale-$tag.log" "$GW_PORT" -- "${SERVER_WRAP[@]}" "$BIN" serve)
    read -r GW_PID GW_READY <<<"$out"
    "${PY[@]}" record "$RESULTS" ready "$scale" "$tag" ready_ms="$GW_READY"
    log "gateway ($scale, $tag) pid $GW_PID on :$GW_PORT ready in $GW_READY ms"
}

# shellcheck source=lib/gateway.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/gateway.sh"

report_path() {
    case $1 in
        daily_usage) echo /api/reports/daily_usage ;;
        user_visits) echo /api/reports/user_visits ;;
        *) echo /graphql ;;
    esac
}
report_body() {  # empty for GET reports; the cold GraphQL bodies are made per scale (coldset)
    case $1 in
        usageByDay | visitsPerUser) echo "$BENCH/queries/$1.json" ;;
        usageByDay_* | visitsPerUser_*) echo "$WORK/cold-$CUR_SCALE/$1.json" ;;
        *) echo "" ;;
    esac
}
CUR_SCALE=""

# request REPORT BODY_OUT: one request with curl; prints "http_code time_total size".
request() {
    local rep=$1 out=$2 body args=()
    body=$(report_body "$rep")
    [[ -n $body ]] && args=(-H 'Content-Type: application/json' --data-binary "@$body")
    curl -sS -o "$out" -w '%{http_code} %{time_total} %{size_download}' --max-time 600 \
        "${args[@]}" "http://127.0.0.1:$GW_PORT$(report_path "$rep")" || echo "000 0 0"
}

# ok_body REPORT FILE: the answer looks like a real report (not a GraphQL error).
ok_body() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
rep, path = sys.argv[1], sys.argv[2]
try:
    d = json.load(open(path))
except Exception:
    sys.exit(1)
if rep.startswith(("usageByDay", "visitsPerUser")):
    sys.exit(0 if isinstance(d, dict) and d.get("data") and not d.get("errors") else 1)
sys.exit(0 if isinstance(d, dict) and len(d) > 0 else 1)
EOF
}

# ------------------------------------------------------------------ phases
rss_start() {  # PID FILE: max VmRSS (kB) of PID, sampled every 200 ms, into FILE
    local pid=$1 file=$2
    echo 0 > "$file"
    (
        max=0
        while kill -0 "$pid" 2>/dev/null; do
            v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
            if [[ -n $v ]] && ((v > max)); then max=$v; echo "$max" > "$file"; fi
            sleep 0.2
        done
    ) &
    RSS_PID=$!
}
rss_stop() { kill "$RSS_PID" 2>/dev/null || true; wait "$RSS_PID" 2>/dev/null || true; RSS_PID=""; }

cold_phase() {
    local scale=$1 db plans rep mode res code t size exec plan ok dir sql same
    local env_args=()
    db=$(scale_db "$scale")
    CUR_SCALE=$scale
    dir=$WORK/cold-$scale
    mkdir -p "$dir"
    # The bodies and the plain SQL of the cold reports over this scale's whole span.
    "${PY[@]}" coldset "$BENCH" "$dir" "$(scale_first "$scale")" 2023-02-14
    plans=$RESULTS_DIR/plans-$scale.txt
    {
        echo "# EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) of the plain report SQL, database $db ($(scale_users "$scale") users, $(scale_tokens "$scale") tokens over $(scale_days "$scale") days)"
        echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), $(psql_q -d postgres -c 'SHOW server_version')"
    } > "$plans"
    # Bring both tables into the OS page cache, so "cold" below means the
    # gateway's cache is empty, not that the disk is.
    psql_q -d "$db" -c "SELECT count(*), count(used_at) FROM tokens" >/dev/null
    psql_q -d "$db" -c "SELECT count(*) FROM users" >/dev/null
    psql_q -d "$db" -c "SELECT count(*) FROM gw_usage_slots" -c "SELECT count(*) FROM gw_user_visits" >/dev/null 2>&1 || true
    for rep in "${COLD_LIST[@]}"; do
        quiesce "$db"
        sql=$dir/$rep.sql
        plan=$WORK/plan-$scale-$rep.txt
        # TIMING OFF: the execution time without the per-row clock reads of EXPLAIN ANALYZE,
        # close to what the query costs when simply run (the result is not sent).
        for run in $(seq 1 "$COLD_REPEATS"); do
            quiesce "$db"
            psql_q -d "$db" -c "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) $(cat "$sql")" > "$plan"
            exec=$(sed -n 's/^Execution Time: \([0-9.]*\) ms$/\1/p' "$plan")
            ((run > 1)) || { echo; echo "## $rep"; cat "$sql"; echo; cat "$plan"; } >> "$plans"
            "${PY[@]}" record "$RESULTS" explain "$scale" "$rep" exec_ms="$exec" run="$run"
            log "raw SQL $scale $rep (run $run): ${exec} ms"
        done
        for mode in "${COLD_MODES[@]}"; do
            env_args=()
            [[ $mode == ttl0 ]] && env_args=(CACHE_TTL_SECONDS=0)
            for run in $(seq 1 "$COLD_REPEATS"); do
                quiesce "$db"
                start_gateway "$scale" "cold-$rep-$mode-$run" "${env_args[@]}"
                res=$(request "$rep" "$WORK/cold-$scale-$rep-$mode-$run.body")
                read -r code t size <<<"$res"
                ok=1; ok_body "$rep" "$WORK/cold-$scale-$rep-$mode-$run.body" || ok=0
                # Every answer must be the first fresh process's (a GraphQL answer's
                # extensions.cache instants aside: they differ per fill and are absent
                # with CACHE_TTL_SECONDS=0).
                same=1
                "${PY[@]}" same-answer "$WORK/cold-$scale-$rep-cache-1.body" "$WORK/cold-$scale-$rep-$mode-$run.body" || same=0
                "${PY[@]}" record "$RESULTS" "cold_$mode" "$scale" "$rep" http_code="$code" time_total_s="$t" bytes="$size" \
                    ready_ms="$GW_READY" body_ok="$ok" same_body="$same" run="$run"
                log "cold ($mode, run $run) $scale $rep: HTTP $code in ${t}s, $size bytes$( ((ok)) || echo ' -- BODY NOT A REPORT')$( ((same)) || echo ' -- BODY DIFFERS FROM THE FIRST')"
                stop_gateway
            done
        done
    done
}

load_phase() {
    local scale=$1 db rep body res code ok rssf
    db=$(scale_db "$scale")
    quiesce "$db"
    start_gateway "$scale" load
    for rep in "${REPORT_LIST[@]}"; do
        # One request first: checks the answer, and makes the runs below "hot".
        res=$(request "$rep" "$WORK/warm-$scale-$rep.body")
        read -r code _ _ <<<"$res"
        ok=1; ok_body "$rep" "$WORK/warm-$scale-$rep.body" || ok=0
        [[ $code == 200 && $ok == 1 ]] || log "WARNING: $scale $rep warm-up answered HTTP $code (body ok: $ok)"
        quiesce "$db"
        body=$(report_body "$rep")
        rssf=$WORK/rss-$scale-$rep
        rss_start "$GW_PID" "$rssf"
        BENCH_BODY_FILE=$body wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$BENCH/wrk.lua" \
            "http://127.0.0.1:$GW_PORT$(report_path "$rep")" > "$WORK/wrk-$scale-$rep.txt" 2>&1 \
            || { cat "$WORK/wrk-$scale-$rep.txt" >&2; die "wrk failed"; }
        rss_stop
        "${PY[@]}" wrk "$RESULTS" "$scale" "$rep" "$WORK/wrk-$scale-$rep.txt" "$(cat "$rssf")"
        log "wrk $scale $rep: $(grep -E 'Requests/sec|Non-2xx|Socket errors' "$WORK/wrk-$scale-$rep.txt" | tr -s ' ' | paste -sd';')"
        kill -0 "$GW_PID" 2>/dev/null || die "the gateway died during the $rep load; see $WORK/gateway-$scale-load.log"
    done
    stop_gateway
    quiesce "$db"
}

pgbench_phase() {
    local scale=$1 db rep prefix out t0 now cancelled wall
    db=$(scale_db "$scale")
    for rep in "${REPORT_LIST[@]}"; do
        quiesce "$db"
        prefix=$WORK/pgblog-$scale-$rep
        out=$WORK/pgbench-$scale-$rep.txt
        rm -f "$prefix".*
        t0=$(date +%s%N)
        pgbench -n -c "$CONNS" -j 2 -T "$DURATION" -r --log --log-prefix="$prefix" \
            -f "$BENCH/sql/$rep.sql" "$db" > "$out" 2>&1 &
        PGB_PID=$!
        cancelled=0
        # pgbench lets every in-flight transaction finish after -T; when one
        # query takes longer than the run, cancel what is still running after
        # a grace period (counted as "cut" in the table).
        while kill -0 "$PGB_PID" 2>/dev/null; do
            now=$(date +%s%N)
            if ((cancelled == 0 && now - t0 > (DURATION + PGBENCH_GRACE) * 1000000000)); then
                cancelled=$(psql_q -d postgres -c "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity
                    WHERE datname = '$db' AND application_name = 'pgbench' AND state = 'active'
                    AND backend_type = 'client backend'")
                ((cancelled > 0)) || cancelled=-1
            fi
            sleep 0.1
        done
        wait "$PGB_PID" || true   # exits 2 when clients were cancelled
        PGB_PID=""
        ((cancelled >= 0)) || cancelled=0
        wall=$(python3 -c "print(($(date +%s%N) - $t0) / 1e9)")
        "${PY[@]}" pgbench "$RESULTS" "$scale" "$rep" "$out" "$prefix" "$cancelled" "$wall"
        log "pgbench $scale $rep: $(grep -E '^tps|actually processed' "$out" | paste -sd';') cancelled=$cancelled"
    done
}

# ------------------------------------------------------------------ http (issue 14)
# wrk_run NAME URL [wrk args...]: one wrk run, BENCHJSON kept in $WORK/http-SCALE-NAME-N.txt.
# BENCH_BODY_FILE (environment) makes it a POST of that file.
wrk_run() {
    local name=$1 url=$2
    shift 2
    quiesce "$(scale_db "$CUR_SCALE")"
    local out n=1
    while [[ -e $WORK/http-$CUR_SCALE-$name-$n.txt ]]; do n=$((n + 1)); done
    out=$WORK/http-$CUR_SCALE-$name-$n.txt
    "${WRK_WRAP[@]}" wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$BENCH/wrk.lua" "$@" "$url" \
        > "$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
    "${PY[@]}" wrk "$RESULTS" "$CUR_SCALE" "http:$name" "$out" 0
    log "wrk http $CUR_SCALE $name ($n): $(grep -E 'Requests/sec|Non-2xx|Socket errors' "$out" | tr -s ' ' | paste -sd';')"
}

# etag_of URL [curl args...]: the ETag the gateway sends for that request.
etag_of() {
    curl -sS -D - -o /dev/null --max-time 600 "$@" | tr -d '\r' | awk -F': ' 'tolower($1) == "etag" { print $2 }'
}

install_postgraphile() {
    local dir=$BENCH/work/postgraphile-$POSTGRAPHILE_VERSION
    if [[ ! -x $dir/node_modules/.bin/postgraphile ]]; then
        command -v npm >/dev/null || die "npm is needed for the PostGraphile peer (apt-get install npm)"
        log "installing postgraphile@$POSTGRAPHILE_VERSION from npm into $dir"
        mkdir -p "$dir"
        (cd "$dir" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent "postgraphile@$POSTGRAPHILE_VERSION") \
            > "$WORK/npm-postgraphile.log" 2>&1 || { tail -20 "$WORK/npm-postgraphile.log" >&2; die "npm install postgraphile failed"; }
    fi
    PG4_BIN=$dir/node_modules/.bin/postgraphile
}

http_phase() {
    local scale=$1 db url gql tag port pid
    db=$(scale_db "$scale")
    CUR_SCALE=$scale
    url="http://127.0.0.1"
    if [[ $HTTP_PIN == 1 ]] && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
        SERVER_WRAP=(taskset -c 1)
        WRK_WRAP=(taskset -c 0)
    fi
    quiesce "$db"
    start_gateway "$scale" http
    gql="$url:$GW_PORT/graphql"
    # Warm every answer once (and keep it, for the equivalence check below).
    request daily_usage "$WORK/http-$scale-daily_usage.body" >/dev/null
    for rep in usageByDay visitsPerUser; do
        curl -sS -o "$WORK/http-$scale-$rep.body" -H 'Content-Type: application/json' \
            --data-binary "@$BENCH/queries/$rep.json" "$gql"
    done
    # Rounds of the same runs one after another, so a slow spell of the machine lands in
    # one round of each rather than in one row; the table gives each row's median.
    for round in $(seq 1 "$HTTP_ROUNDS"); do
        log "http $scale: round $round of $HTTP_ROUNDS"
        wrk_run rest_daily_usage "$url:$GW_PORT/api/reports/daily_usage"
        BENCH_BODY_FILE=$BENCH/queries/usageByDay.json wrk_run gql_usageByDay "$gql"
        BENCH_BODY_FILE=$BENCH/queries/visitsPerUser.json wrk_run gql_visitsPerUser "$gql"
        # The 304 path: a poller that sends back the ETag it was given.
        tag=$(etag_of "$url:$GW_PORT/api/reports/daily_usage")
        [[ -n $tag ]] || die "no ETag on daily_usage"
        wrk_run rest_daily_usage_304 "$url:$GW_PORT/api/reports/daily_usage" -H "If-None-Match: $tag"
        tag=$(etag_of -H 'Content-Type: application/json' --data-binary "@$BENCH/queries/usageByDay.json" "$gql")
        [[ -n $tag ]] || die "no ETag on usageByDay"
        BENCH_BODY_FILE=$BENCH/queries/usageByDay.json wrk_run gql_usageByDay_304 "$gql" -H "If-None-Match: $tag"
    done
    # user_visits (the largest body) on the wire: identity, then gzip as python-requests asks.
    curl -sS -o "$WORK/http-$scale-user_visits.identity" "$url:$GW_PORT/api/reports/user_visits"
    curl -sS -o "$WORK/http-$scale-user_visits.gz" -H 'Accept-Encoding: gzip, deflate' "$url:$GW_PORT/api/reports/user_visits"
    "${PY[@]}" record "$RESULTS" http_pin "$scale" all pinned="$([[ ${#SERVER_WRAP[@]} -gt 0 ]] && echo 1 || echo 0)"
    "${PY[@]}" record "$RESULTS" http_size "$scale" user_visits \
        identity_bytes="$(stat -c %s "$WORK/http-$scale-user_visits.identity")" \
        gzip_bytes="$(stat -c %s "$WORK/http-$scale-user_visits.gz")" \
        gzip_same="$(gzip -dc "$WORK/http-$scale-user_visits.gz" | cmp -s - "$WORK/http-$scale-user_visits.identity" && echo 1 || echo 0)" \
        gzip9_bytes="$(gzip -9 -c "$WORK/http-$scale-user_visits.identity" | wc -c)" \
        zstd19_bytes="$( (command -v zstd >/dev/null && zstd -q -19 -c "$WORK/http-$scale-user_visits.identity" | wc -c) || echo 0)"
    wrk_run rest_user_visits "$url:$GW_PORT/api/reports/user_visits"
    wrk_run rest_user_visits_gzip "$url:$GW_PORT/api/reports/user_visits" -H 'Accept-Encoding: gzip, deflate'
    stop_gateway
    if [[ $scale != demo ]]; then
        SERVER_WRAP=()
        WRK_WRAP=()
        return 0
    fi
    # The peer: PostGraphile 4 on the same database, the same wrk settings, the
    # equivalent queries over the legacy tables (bench/peer/postgraphile.sql).
    install_postgraphile
    psql_q -d "$db" -c "SET client_min_messages = warning" -f "$BENCH/peer/postgraphile.sql" >/dev/null
    port=$("${PY[@]}" freeport)
    "${SERVER_WRAP[@]}" env NODE_ENV=production "$PG4_BIN" -c "$(db_url "$db")" -s pg4,public -n 127.0.0.1 -p "$port" \
        -m "${DB_POOL_MAX:-10}" --cluster-workers 2 --disable-query-log -b \
        > "$WORK/postgraphile-$scale.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 150); do
        curl -s -o /dev/null -H 'Content-Type: application/json' --data '{"query":"{__typename}"}' \
            "$url:$port/graphql" && break
        sleep 0.2
    done
    for rep in usageByDay visitsPerUser; do
        curl -sS -o "$WORK/http-$scale-pg4-$rep.body" -H 'Content-Type: application/json' \
            --data-binary "@$BENCH/queries/postgraphile-$rep.json" "$url:$port/graphql" \
            || { kill "$pid"; die "PostGraphile did not answer; see $WORK/postgraphile-$scale.log"; }
    done
    "${PY[@]}" http-equivalent "$RESULTS" "$scale" "$WORK/http-$scale-usageByDay.body" "$WORK/http-$scale-pg4-usageByDay.body" \
        "$WORK/http-$scale-visitsPerUser.body" "$WORK/http-$scale-pg4-visitsPerUser.body" \
        "$(psql_q -d "$db" -c 'SELECT count(*) FROM users')"
    for round in $(seq 1 "$HTTP_ROUNDS"); do
        BENCH_BODY_FILE=$BENCH/queries/postgraphile-usageByDay.json wrk_run pg4_usageByDay "$url:$port/graphql"
        BENCH_BODY_FILE=$BENCH/queries/postgraphile-visitsPerUser.json wrk_run pg4_visitsPerUser "$url:$port/graphql"
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    "${PY[@]}" record "$RESULTS" http_peer "$scale" postgraphile version="$POSTGRAPHILE_VERSION" \
        node="$(node --version)" workers=2 pool="${DB_POOL_MAX:-10}"
    SERVER_WRAP=()
    WRK_WRAP=()
}

# ------------------------------------------------------------------ main
install_tools
ensure_postgres

log "building the release binary"
cargo build --release --locked
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/coworking-gateway
[[ -x $BIN ]] || die "no binary at $BIN"

for scale in $SCALES; do
    prepare_db "$scale"
done

has_phase() { [[ " $PHASES " == *" $1 "* ]]; }
for scale in $SCALES; do
    if has_phase cold; then
        log "=== scale $scale: cold requests and raw SQL"
        cold_phase "$scale"
    fi
    if has_phase load; then
        log "=== scale $scale: load (wrk)"
        load_phase "$scale"
    fi
    if has_phase pgbench; then
        log "=== scale $scale: baseline (pgbench)"
        pgbench_phase "$scale"
    fi
    if has_phase http; then
        log "=== scale $scale: HTTP caching, 304s, compression, PostGraphile 4 (http)"
        http_phase "$scale"
    fi
done

if [[ $WRITER == 1 ]]; then
    log "=== legacy writer (pgbench-writer.sh)"
    BENCH_BIN=$BIN BENCH_RESULTS=$RESULTS bash "$BENCH/pgbench-writer.sh" || log "WARNING: the legacy writer bench failed"
fi
if [[ $MIGRATE_BUILD == 1 && " $SCALES " == *" 10m "* ]]; then
    log "=== rollup build on 10M existing rows (migrate-build.sh)"
    BENCH_BIN=$BIN BENCH_RESULTS=$RESULTS bash "$BENCH/migrate-build.sh" || log "WARNING: the rollup build bench failed"
fi

# ------------------------------------------------------------------ report
META=$WORK/meta.md
{
    echo "- date: $(date '+%Y-%m-%d %H:%M:%S %Z')"
    echo "- git commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo ' + uncommitted changes') ($(git log -1 --format=%s))"
    echo "- binary: \`$(realpath --relative-to="$ROOT" "$BIN")\`, built $(date -r "$BIN" '+%Y-%m-%d %H:%M'), $(($(stat -c %s "$BIN") / 1024 / 1024)) MB"
    echo "- CPU: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), nproc $(nproc)"
    echo "- PostgreSQL: $(psql_q -d postgres -c 'SELECT version()' | cut -d, -f1) (shared_buffers $(psql_q -d postgres -c 'SHOW shared_buffers'), max_parallel_workers_per_gather $(psql_q -d postgres -c 'SHOW max_parallel_workers_per_gather'))"
    echo "- tools: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(pgbench --version), $(curl --version | head -1 | cut -d' ' -f1-2)"
    echo "- load: $CONNS connections, ${DURATION} s per run; wrk -t2, pgbench -j 2; seed $SEED; scales: $SCALES ($(for sc in $SCALES; do printf '%s: %s users, %s tokens over %s days from %s; ' "$sc" "$(scale_users "$sc")" "$(scale_tokens "$sc")" "$(scale_days "$sc")" "$(scale_first "$sc")"; done | sed 's/; $//'))"
    echo "- gateway env: APP_PORT=<free port> BIND_ADDRESS=127.0.0.1 LOG_FORMAT=json RUST_LOG=warn SHUTDOWN_DRAIN_SECONDS=1, \`serve\` (migrated beforehand by \`coworking-gateway migrate\`, as the k8s Job does)$(env | grep -E '^(CACHE|DB|GRAPHQL|MAX|ROLLUP|METRICS)_' | grep -v '^DB_PASSWORD' | sort | sed 's/^/ /' | tr -d '\n')"
    echo "- run: $(( $(date +%s) - T_START )) s in all, of which seeding ${SEED_SECONDS} s; raw logs in \`bench/work/run-$STAMP/\`"
    echo "- load average (1/5/15 min) at the start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg) (on 2 cores; other builds and tests may share the machine)"
    echo
    echo "Memory (\`free -h\`):"
    echo
    echo '```'
    free -h
    echo '```'
} > "$META"

export BENCH_DURATION=$DURATION BENCH_CONNECTIONS=$CONNS
if has_phase http; then
    "${PY[@]}" http-report "$RESULTS" "$META" "$RESULTS_DIR/http-latest.md" "$RESULTS_DIR/http-$STAMP.md" >/dev/null
    log "written: bench/results/http-latest.md, bench/results/http-$STAMP.md"
fi
# latest.md holds full runs only; a run of some phases gets a page of its own.
if [[ $PHASES == "cold load pgbench http" ]]; then
    "${PY[@]}" report "$RESULTS" "$META" "$RESULTS_DIR/latest.md" "$RESULTS_DIR/$STAMP.md"
    log "written: bench/results/latest.md, bench/results/$STAMP.md, bench/results/plans-*.txt"
elif has_phase cold || has_phase load || has_phase pgbench; then
    "${PY[@]}" report "$RESULTS" "$META" "$RESULTS_DIR/$STAMP-partial.md"
    log "written: bench/results/$STAMP-partial.md (phases: $PHASES)"
fi
