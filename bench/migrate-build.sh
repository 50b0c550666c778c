#!/usr/bin/env bash
# How long adopting a 10M-token legacy database takes (issue 13, point 4: the migration
# builds the rollups from existing rows, target <= 60 s).
# Run from the repository root:   bash bench/migrate-build.sh   (bench/run.sh calls it too)
#
# `seed` migrates before it writes, so a seeded database never has the rollup migration
# run over existing rows. This script makes a legacy-only database instead, exactly as the
# legacy app's deployments have it: the tables of ../shared/legacy/db/1_create_tables.sql
# (read at run time, not copied), filled with plain SQL (INSERT ... SELECT generate_series:
# 100,000 users, 10,000,000 tokens over 1,095 days ending 2023-02-14, about half used).
# It is kept as a template (gw_bench_legacy10m_tpl, built once); each run copies it
# (CREATE DATABASE ... TEMPLATE) and times, on the copy:
#   1. `coworking-gateway migrate` (every gateway migration: the covering index, the rollup
#      tables, triggers and their build from the 10M rows) -- the figure the target is about;
#   2. `coworking-gateway rollup verify` (folds, then compares every rollup row with the raw rows);
#   3. `coworking-gateway rollup rebuild` (the rollups alone, rebuilt from the rows);
#   4. for the breakdown, a CREATE INDEX with the covering index's definition (then dropped).
# And, when the 10m bench database exists, `rollup rebuild` on it too (seeded rows).
#
# Knobs: LEGACY_DIR (default ../shared/legacy/db), BENCH_BIN, BENCH_RESULTS (append JSON
# records there), BENCH_10M_DB (gw_bench_10m), MIGRATE_RESEED=1 (rebuild the template),
# MIGRATE_TEMPLATE_ONLY=1 (stop once the template exists), PGHOST/PGPORT/PGUSER.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
LEGACY_DIR=${LEGACY_DIR:-$ROOT/../shared/legacy/db}
TPL=gw_bench_legacy10m_tpl
COPY=gw_bench_legacy10m
DB10M=${BENCH_10M_DB:-gw_bench_10m}
USERS=100000
TOKENS=10000000
TARGET_S=60
STAMP=$(date +%Y%m%d-%H%M)
WORK=$BENCH/work/migrate-build-$STAMP
RESULTS_DIR=$BENCH/results
mkdir -p "$WORK" "$RESULTS_DIR"
JSONL=$WORK/migrate-build.jsonl
: > "$JSONL"

log() { printf '[migrate-build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
psql_q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }
db_url() { echo "postgres://$PGUSER@$PGHOST:$PGPORT/$1"; }
now_ns() { date +%s%N; }
secs() { python3 -c "print(round(($(now_ns) - $1) / 1e9, 1))"; }
record() {  # WHAT SECONDS [TARGET_S]
    printf '{"kind":"migrate_build","scale":"10m","report":"%s","what":"%s","seconds":%s%s}\n' \
        "$1" "$1" "$2" "${3:+,\"target_s\":$3}" >> "$JSONL"
}

if [[ -n ${BENCH_BIN:-} || ${MIGRATE_TEMPLATE_ONLY:-0} == 1 ]]; then
    BIN=${BENCH_BIN:-/bin/true}
else
    cargo build --release --locked
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/coworking-gateway
fi
[[ -x $BIN ]] || die "no binary at $BIN"
[[ -f $LEGACY_DIR/1_create_tables.sql ]] || die "no $LEGACY_DIR/1_create_tables.sql (set LEGACY_DIR)"

# ---------------------------------------------------------------- the legacy template
counts=$(psql_q -d "$TPL" -c "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM tokens)
    || ' ' || (SELECT count(*) FROM pg_tables WHERE tablename LIKE 'gw_%' OR tablename = 'seaql_migrations')" 2>/dev/null || true)
if [[ ${MIGRATE_RESEED:-0} != 1 && $counts == "$USERS $TOKENS 0" ]]; then
    log "$TPL: reusing (legacy schema only, $USERS users, $TOKENS tokens)"
else
    log "$TPL: creating a legacy-only database with $USERS users / $TOKENS tokens (was: '${counts:-absent}')"
    t0=$(now_ns)
    psql_q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $TPL WITH (FORCE)"
    psql_q -d postgres -c "CREATE DATABASE $TPL"
    psql_q -d "$TPL" -f "$LEGACY_DIR/1_create_tables.sql" > /dev/null
    # The legacy index is rebuilt once after the load instead of maintained row by row.
    IDX_DEF=$(psql_q -d "$TPL" -c "SELECT indexdef FROM pg_indexes WHERE indexname = 'tokens_user_id_token_used_at_index'")
    psql_q -d "$TPL" -c "DROP INDEX tokens_user_id_token_used_at_index"
    psql_q -d "$TPL" -c "SELECT setseed(0.42)" -c "INSERT INTO users (first_name, last_name, joined_at, is_active)
        SELECT 'First' || g, 'Last' || g, TIMESTAMP '2019-12-17' + random() * INTERVAL '60 days', random() >= 0.1
        FROM generate_series(1, $USERS) g" > /dev/null
    psql_q -d "$TPL" -c "SELECT setseed(0.43)" -c "INSERT INTO tokens (user_id, token, created_at, used_at)
        SELECT 1 + floor(random() * $USERS)::int, lpad(floor(random() * 1000000)::int::text, 6, '0'), ts,
               CASE WHEN random() < 0.5 THEN ts + (1 + floor(random() * 15)) * INTERVAL '1 minute' END
        FROM (SELECT g, TIMESTAMP '2020-02-15' + floor(random() * 1095 * 86400 * 1e6) * INTERVAL '1 microsecond' AS ts
              FROM generate_series(1, $TOKENS) g) s ORDER BY g" > /dev/null
    psql_q -d "$TPL" -c "$IDX_DEF"
    psql_q -d "$TPL" -c "VACUUM (ANALYZE)"
    log "$TPL: loaded in $(secs "$t0") s"
fi

[[ ${MIGRATE_TEMPLATE_ONLY:-0} == 1 ]] && { log "template ready (MIGRATE_TEMPLATE_ONLY=1)"; exit 0; }

# ---------------------------------------------------------------- a fresh copy, migrated
psql_q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $COPY WITH (FORCE)"
t0=$(now_ns)
psql_q -d postgres -c "CREATE DATABASE $COPY TEMPLATE $TPL"
log "$COPY: copied from $TPL in $(secs "$t0") s"
# Warm the OS cache as a running database would be, so the figure is the build, not the disk.
psql_q -d "$COPY" -c "SELECT count(*), count(used_at) FROM tokens" -c "SELECT count(*) FROM users" > /dev/null

t0=$(now_ns)
DATABASE_URL=$(db_url "$COPY") RUST_LOG=info LOG_FORMAT=json "$BIN" migrate > "$WORK/migrate.log" 2>&1 \
    || { tail -20 "$WORK/migrate.log" >&2; die "migrate failed"; }
MIGRATE_S=$(secs "$t0")
log "migrate on 10M legacy rows: $MIGRATE_S s"
record "\`migrate\` of a legacy-only database with 10M tokens (covering index + rollups built from the rows)" "$MIGRATE_S" "$TARGET_S"

SIZES=$(psql_q -d "$COPY" -c "SELECT (SELECT count(*) FROM gw_usage_slots) || ' slots, ' || (SELECT count(*) FROM gw_user_visits) || ' users'")
t0=$(now_ns)
VERIFY=ok
DATABASE_URL=$(db_url "$COPY") RUST_LOG=warn "$BIN" rollup verify > "$WORK/verify.log" 2>&1 || VERIFY="FAILED: $(tail -1 "$WORK/verify.log" | tr -d "\"\\\\")"
VERIFY_S=$(secs "$t0")
log "rollup verify after the migration: $VERIFY ($VERIFY_S s; $SIZES)"
record "\`rollup verify\` right after that migration ($VERIFY)" "$VERIFY_S"

t0=$(now_ns)
DATABASE_URL=$(db_url "$COPY") RUST_LOG=warn "$BIN" rollup rebuild > "$WORK/rebuild.log" 2>&1 \
    || { tail -5 "$WORK/rebuild.log" >&2; die "rollup rebuild failed"; }
REBUILD_S=$(secs "$t0")
log "rollup rebuild on the same database: $REBUILD_S s ($(tail -1 "$WORK/rebuild.log"))"
record "\`rollup rebuild\` on it (the rollups alone)" "$REBUILD_S"

IDX=$(psql_q -d "$COPY" -c "SELECT indexdef FROM pg_indexes WHERE indexname = 'tokens_created_at_used_at_user_id_index'")
INDEX_S=""
if [[ -n $IDX ]]; then
    t0=$(now_ns)
    psql_q -d "$COPY" -c "${IDX/tokens_created_at_used_at_user_id_index/gw_bench_timing_copy_index}"
    INDEX_S=$(secs "$t0")
    psql_q -d "$COPY" -c "DROP INDEX gw_bench_timing_copy_index"
    log "the covering index alone: $INDEX_S s"
    record "the covering index alone (\`CREATE INDEX\` of its definition, for the breakdown)" "$INDEX_S"
fi

SEEDED_S=""
if [[ $(psql_q -d "$DB10M" -c "SELECT count(*) FROM tokens" 2>/dev/null || true) == "$TOKENS" ]]; then
    t0=$(now_ns)
    DATABASE_URL=$(db_url "$DB10M") RUST_LOG=warn "$BIN" rollup rebuild > "$WORK/rebuild-seeded.log" 2>&1 \
        || { tail -5 "$WORK/rebuild-seeded.log" >&2; die "rollup rebuild on $DB10M failed"; }
    SEEDED_S=$(secs "$t0")
    log "rollup rebuild on $DB10M (seeded): $SEEDED_S s"
    record "\`rollup rebuild\` on \`$DB10M\` (the seeded 10M bench database)" "$SEEDED_S"
fi
psql_q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $COPY WITH (FORCE)"

# ---------------------------------------------------------------- report
{
    echo "# Building the rollups on 10M existing rows"
    echo
    echo "- date: $(date '+%Y-%m-%d %H:%M:%S %Z'); git commit: $(git rev-parse --short HEAD) ($(git log -1 --format=%s))"
    echo "- CPU: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), nproc $(nproc); $(psql_q -d postgres -c 'SELECT version()' | cut -d, -f1) (shared_buffers $(psql_q -d postgres -c 'SHOW shared_buffers'), maintenance_work_mem $(psql_q -d postgres -c 'SHOW maintenance_work_mem'))"
    echo "- database: a copy of \`$TPL\`, the legacy tables of \`1_create_tables.sql\` only, $USERS users and $TOKENS tokens loaded with plain \`INSERT … SELECT generate_series\` (created_at uniform over 1,095 days from 2020-02-15, half used 1–15 min later), \`VACUUM (ANALYZE)\`, tables read once before timing; built rollups: $SIZES"
    echo "- raw output in \`bench/work/migrate-build-$STAMP/\`"
    echo
    echo "| what | seconds | target |"
    echo "|---|--:|---|"
    echo "| \`coworking-gateway migrate\` (all gateway migrations on the legacy database) | $MIGRATE_S | ≤ $TARGET_S s: $(python3 -c "print('met' if $MIGRATE_S <= $TARGET_S else '**NOT met**')") |"
    [[ -n $INDEX_S ]] && echo "| of which, about: the covering index \`tokens_created_at_used_at_user_id_index\` (timed alone) | $INDEX_S | – |"
    echo "| \`rollup verify\` right after (folds, compares every rollup row with the raw rows): $VERIFY | $VERIFY_S | – |"
    echo "| \`rollup rebuild\` on the same database (both rollups from the rows) | $REBUILD_S | – |"
    [[ -n $SEEDED_S ]] && echo "| \`rollup rebuild\` on \`$DB10M\` (seeded, 10M tokens over 1,095 days) | $SEEDED_S | – |"
    echo
} > "$WORK/report.md"
cp "$WORK/report.md" "$RESULTS_DIR/migrate-build-latest.md"
cp "$WORK/report.md" "$RESULTS_DIR/migrate-build-$STAMP.md"
cat "$WORK/report.md"
if [[ -n ${BENCH_RESULTS:-} ]]; then
    cat "$JSONL" >> "$BENCH_RESULTS"
fi
