#!/usr/bin/env bash
# The legacy writer's cost of the rollup triggers (issue 13, point 3).
# Run from the repository root:   bash bench/pgbench-writer.sh
# (bench/run.sh calls it too; see bench/README.md "Legacy writer").
#
# On a PostgreSQL database migrated by the gateway (rollup triggers installed), pgbench
# runs the tokens service's two writes with the triggers enabled and disabled
# (`ALTER TABLE tokens DISABLE TRIGGER USER`), alternating, several rounds:
#   insert  INSERT a token for a random existing user (created_at = now(), as the service does)
#   use     UPDATE used_at = now() of a random unused token
# and reports tps, mean latency, and the overhead per write = lat_with / lat_without - 1.
# The triggers are enabled again on exit (even on failure), then the rollups are rebuilt
# (the disabled runs wrote without logging) and verified.
#
# Knobs (environment):
#   WRITER_DB=gw_bench_writer   the database (created, migrated and seeded when missing or wrong)
#   WRITER_USERS=100000 WRITER_TOKENS=1000000 WRITER_DAYS=1095   its size (seed 42)
#   WRITER_ROUNDS=5             rounds; each runs both writes with and without the triggers
#   WRITER_DURATION=10          seconds per pgbench run
#   WRITER_CLIENTS=4 WRITER_THREADS=2
#   WRITER_SYNC="on off"        synchronous_commit of the pgbench sessions: "on" is the writer as
#                               deployed (each commit waits for its WAL flush, whose time on a VM
#                               disk varies a lot); "off" leaves out the flush, so the figure is
#                               the statements' own work, where the triggers weigh most
#   BENCH_BIN                   the gateway binary (default: build target/release)
#   BENCH_RESULTS               also append JSON records to this file (bench/run.sh's results.jsonl)
#   PGHOST/PGPORT/PGUSER        the server (default 127.0.0.1:5432, postgres, trust auth)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
DB=${WRITER_DB:-gw_bench_writer}
USERS=${WRITER_USERS:-100000}
TOKENS=${WRITER_TOKENS:-1000000}
DAYS=${WRITER_DAYS:-1095}
ROUNDS=${WRITER_ROUNDS:-5}
DURATION=${WRITER_DURATION:-10}
CLIENTS=${WRITER_CLIENTS:-4}
THREADS=${WRITER_THREADS:-2}
read -r -a SYNCS <<< "${WRITER_SYNC:-on off}"
STAMP=$(date +%Y%m%d-%H%M)
WORK=$BENCH/work/writer-$STAMP
RESULTS_DIR=$BENCH/results
mkdir -p "$WORK" "$RESULTS_DIR"
JSONL=$WORK/writer.jsonl
: > "$JSONL"

log() { printf '[writer %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
psql_q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }
db_url() { echo "postgres://$PGUSER@$PGHOST:$PGPORT/$1"; }

if [[ -n ${BENCH_BIN:-} ]]; then
    BIN=$BENCH_BIN
else
    cargo build --release --locked
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/coworking-gateway
fi
[[ -x $BIN ]] || die "no binary at $BIN"
command -v pgbench >/dev/null || die "pgbench is not installed (bench/run.sh installs it)"

# ---------------------------------------------------------------- the database
counts=$(psql_q -d "$DB" -c "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) >= $TOKENS FROM tokens) \
    || ' ' || (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tokens'::regclass AND tgname LIKE 'gw_rollup%')" 2>/dev/null || true)
if [[ $counts =~ ^$USERS\ (t|true)\ [1-9] ]]; then
    log "$DB: reusing ($counts: users, enough tokens, rollup triggers)"
else
    log "$DB: creating and seeding $USERS users / $TOKENS tokens over $DAYS days (was: '${counts:-absent}')"
    psql_q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
    psql_q -d postgres -c "CREATE DATABASE $DB"
    DATABASE_URL=$(db_url "$DB") RUST_LOG=warn "$BIN" seed --users "$USERS" --tokens "$TOKENS" \
        --days "$DAYS" --seed 42 > "$WORK/seed.log" 2>&1 || { tail -20 "$WORK/seed.log" >&2; die "seeding $DB failed"; }
fi
DATABASE_URL=$(db_url "$DB") RUST_LOG=warn "$BIN" migrate > "$WORK/migrate.log" 2>&1 \
    || { tail -20 "$WORK/migrate.log" >&2; die "migrating $DB failed"; }
TRIGGERS=$(psql_q -d "$DB" -c "SELECT string_agg(tgname, ', ' ORDER BY tgname) FROM pg_trigger
    WHERE tgrelid = 'tokens'::regclass AND NOT tgisinternal")
[[ $TRIGGERS == *gw_rollup* ]] || die "$DB has no rollup triggers on tokens (is the rollup migration on this branch?)"
MAX_USER=$(psql_q -d "$DB" -c "SELECT max(id) FROM users")
# `seed` writes nothing after 2023-02-14 00:15; the runs write now(): whatever was
# created or used from 2024 on is the bench's, and is undone before each run.
BENCH_EPOCH="2024-01-01 00:00:00"
MAX_TOKEN=$(psql_q -d "$DB" -c "SELECT max(id) FROM tokens WHERE created_at < TIMESTAMP '$BENCH_EPOCH'")

# ---------------------------------------------------------------- triggers on/off
restore() {
    psql_q -d "$DB" -c "ALTER TABLE tokens ENABLE TRIGGER USER" >/dev/null 2>&1 \
        || log "WARNING: could not re-enable the triggers on $DB.tokens: run ALTER TABLE tokens ENABLE TRIGGER USER"
}
trap restore EXIT
set_triggers() {  # on|off
    if [[ $1 == on ]]; then
        psql_q -d "$DB" -c "ALTER TABLE tokens ENABLE TRIGGER USER"
    else
        psql_q -d "$DB" -c "ALTER TABLE tokens DISABLE TRIGGER USER"
    fi
    local n
    n=$(psql_q -d "$DB" -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tokens'::regclass
        AND NOT tgisinternal AND tgname LIKE 'gw_rollup%' AND tgenabled $([[ $1 == on ]] && echo "<>" || echo "=") 'D'")
    ((n > 0)) || die "the rollup triggers did not turn $1"
}

# ---------------------------------------------------------------- the writes
cat > "$WORK/insert.sql" <<'EOF'
\set uid random(1, :max_user)
\set tok random(0, 999999)
INSERT INTO tokens (user_id, token) VALUES (:uid, lpad(CAST(:tok AS text), 6, '0'));
EOF
# The first unused token at or after a random id (by the primary key); the repeated
# `used_at IS NULL` makes a client that lost the race to another update nothing.
cat > "$WORK/use.sql" <<'EOF'
\set rid random(1, :max_token)
UPDATE tokens SET used_at = now()
 WHERE id = (SELECT id FROM tokens WHERE id >= :rid AND used_at IS NULL ORDER BY id LIMIT 1)
   AND used_at IS NULL;
EOF

# Every run starts from the same rows: a fast run inserts a few hundred thousand tokens
# and uses as many, which would leave the next runs fewer unused tokens to find (longer
# scans) and a bigger table. Without the triggers (so nothing is logged): the tokens
# inserted by earlier runs are deleted, the tokens they used (used_at = now(), years
# after every seeded used_at) unused again, the log emptied (as a fold would leave it),
# then VACUUM and CHECKPOINT. The rollups are rebuilt at the end.
reset_rows() {
    psql_q -d "$DB" -c "ALTER TABLE tokens DISABLE TRIGGER USER" \
        -c "DELETE FROM tokens WHERE id > $MAX_TOKEN" \
        -c "UPDATE tokens SET used_at = NULL WHERE used_at >= TIMESTAMP '$BENCH_EPOCH'" \
        -c "ALTER TABLE tokens ENABLE TRIGGER USER" \
        -c "TRUNCATE gw_rollup_dirty_slots, gw_rollup_dirty_users" >/dev/null
    psql_q -d "$DB" -c "VACUUM tokens, gw_rollup_dirty_slots, gw_rollup_dirty_users" -c "CHECKPOINT" >/dev/null
}

run_one() {  # ROUND SYNC WRITE MODE
    local round=$1 sync=$2 write=$3 mode=$4 out tps lat
    out=$WORK/pgbench-$write-sync_$sync-$mode-$round.txt
    reset_rows
    set_triggers "$mode"
    PGOPTIONS="-c synchronous_commit=$sync" pgbench -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$DURATION" \
        -D max_user="$MAX_USER" -D max_token="$MAX_TOKEN" -f "$WORK/$write.sql" "$DB" > "$out" 2>&1 \
        || { cat "$out" >&2; die "pgbench $write ($mode) failed"; }
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out")
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' "$out")
    [[ -n $tps && -n $lat ]] || { cat "$out" >&2; die "no tps/latency in $out"; }
    log "round $round synchronous_commit=$sync $write triggers $mode: $tps tps, $lat ms"
    printf '{"kind":"writer","scale":"writer","report":"%s","sync":"%s","mode":"%s","round":%d,"tps":%s,"latency_ms":%s}\n' \
        "$write" "$sync" "$mode" "$round" "$tps" "$lat" >> "$JSONL"
}

log "$DB: $ROUNDS rounds x synchronous_commit (${SYNCS[*]}) x (insert, use) x (triggers on, off), ${DURATION} s each, -c $CLIENTS -j $THREADS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$ROUNDS"); do
    # Alternate which mode goes first, so a drift over the run (autovacuum, the table and
    # the log growing) falls on both alike.
    if ((round % 2)); then order=(on off); else order=(off on); fi
    for sync in "${SYNCS[@]}"; do
        for write in insert use; do
            for mode in "${order[@]}"; do
                run_one "$round" "$sync" "$write" "$mode"
            done
        done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
restore
LOG_AFTER=$(psql_q -d "$DB" -c "SELECT (SELECT count(*) FROM gw_rollup_dirty_slots) + (SELECT count(*) FROM gw_rollup_dirty_users)")

# The runs without triggers wrote unlogged: rebuild, then check the rollups are exact again.
t0=$(date +%s%N)
DATABASE_URL=$(db_url "$DB") RUST_LOG=warn "$BIN" rollup rebuild > "$WORK/rebuild.log" 2>&1 \
    || { tail -5 "$WORK/rebuild.log" >&2; die "rollup rebuild failed"; }
REBUILD_S=$(python3 -c "print(round(($(date +%s%N) - $t0) / 1e9, 1))")
VERIFY="ok"
DATABASE_URL=$(db_url "$DB") RUST_LOG=warn "$BIN" rollup verify > "$WORK/verify.log" 2>&1 || VERIFY="FAILED: $(tail -1 "$WORK/verify.log")"
log "rollups rebuilt in ${REBUILD_S} s; verify: $VERIFY"

# ---------------------------------------------------------------- report
TOKENS_NOW=$(psql_q -d "$DB" -c "SELECT count(*) FROM tokens")
{
    echo "- date: $(date '+%Y-%m-%d %H:%M:%S %Z'); git commit: $(git rev-parse --short HEAD) ($(git log -1 --format=%s))"
    echo "- CPU: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), nproc $(nproc); $(psql_q -d postgres -c 'SELECT version()' | cut -d, -f1); $(pgbench --version)"
    echo "- database \`$DB\`: $USERS users, $TOKENS tokens seeded over $DAYS days ($TOKENS_NOW after the run), migrated by the gateway; triggers on \`tokens\`: $TRIGGERS"
    echo "- \`pgbench -n -M prepared -c $CLIENTS -j $THREADS -T $DURATION\`, $ROUNDS rounds, each: for synchronous_commit ${SYNCS[*]} (\`PGOPTIONS\`): insert on/off, use on/off (the order of on/off alternating by round); before every run the rows are reset (the tokens earlier runs inserted deleted, those they used unused again, the log emptied; with the triggers off), then \`VACUUM tokens\` and \`CHECKPOINT\`"
    echo "- load average (1/5/15 min) before the runs: $LOAD_BEFORE, after: $LOAD_AFTER (the machine is shared: other builds and tests may run beside the bench)"
    echo "- off = \`ALTER TABLE tokens DISABLE TRIGGER USER\` (the rollup triggers; the foreign key's internal trigger stays), on = \`ENABLE TRIGGER USER\`; each run starts with an empty log (none is folded during a run; the last run left $LOG_AFTER log rows)"
    echo "- afterwards: \`rollup rebuild\` ${REBUILD_S} s, \`rollup verify\`: $VERIFY; raw output in \`bench/work/writer-$STAMP/\`"
} > "$WORK/meta.md"
python3 "$BENCH/lib/bench.py" writer "$JSONL" "$WORK/meta.md" "$RESULTS_DIR/pgbench-writer-latest.md" "$RESULTS_DIR/pgbench-writer-$STAMP.md"
if [[ -n ${BENCH_RESULTS:-} ]]; then
    cat "$JSONL" >> "$BENCH_RESULTS"
fi
log "written: bench/results/pgbench-writer-latest.md, bench/results/pgbench-writer-$STAMP.md"
