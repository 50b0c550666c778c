#!/usr/bin/env bash
# Real GraphQL clients, pinned, against a live gateway (issue 11). Everything
# stays on 127.0.0.1.
#
#   bash .ci/clients-check.sh [path/to/coworking-gateway]   # from anywhere
#
# 1. Installs the pinned clients: `npm ci` in .ci/clients (graphql-http,
#    graphql-js, @graphql-inspector/cli, from package-lock.json) and a venv
#    .ci/clients/.venv with requirements.txt (gql, graphql-core, requests).
#    Both are skipped when already installed from the same lock files.
# 2. Starts the gateway on a fresh SQLite file (it seeds the demo data itself)
#    and, when PostgreSQL is configured (TEST_DATABASE_URL, or PGHOST/PGUSER/
#    PGPORT), a second one on a fresh database created here, filled with
#    `coworking-gateway seed` and dropped on exit. Free ports, bound to 127.0.0.1.
# 3. SQLite: the graphql-http audit (audit.mjs), graphql-js introspection and
#    graphql-inspector (introspect.mjs), gql paging (gql_paging.py).
#    PostgreSQL: gql paging.
#
# The gateway runs with its default settings (GRAPHQL_MAX_DEPTH etc.); a
# setting exported in the environment reaches it, e.g.
# `GRAPHQL_MAX_DEPTH=40 bash .ci/clients-check.sh` to look past the depth limit.
# Prints `clients-check: N passed, N failed`; exits 1 on any failure.
# KEEP_WORK=1 keeps the temp dir (logs, databases).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN="${1:-target/debug/coworking-gateway}"
[[ "$BIN" = /* ]] || BIN="$ROOT/$BIN"
CLIENTS="$ROOT/.ci/clients"
VENV="$CLIENTS/.venv"
PG_USERS=2000
PG_TOKENS=6000
PG_SEED=7

passed=0
failed=0
results=()
section() { printf '\n==> %s\n' "$*"; }
record() { # name, exit status
  if [[ "$2" == 0 ]]; then
    passed=$((passed + 1)); results+=("ok   $1")
  else
    failed=$((failed + 1)); results+=("FAIL $1")
  fi
}

work="$(mktemp -d)"
pids=()
pg_db=""
pg_admin=""

stop() {
  local pid="$1" _
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? pid log
  for pid in "${pids[@]}"; do stop "$pid"; done
  if [[ -n "$pg_db" ]]; then
    psql -X -q -d "$pg_admin" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 ||
      echo "clients-check: could not drop database $pg_db"
  fi
  if ((failed > 0 || rc != 0)); then
    for log in "$work"/*.log; do
      [[ -e "$log" ]] || continue
      echo "--- last lines of $(basename "$log")"
      tail -n 15 "$log"
    done
  fi
  if [[ -n "${KEEP_WORK:-}" ]]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_gateway NAME PORT VAR=VALUE...: serve in the background, wait for readiness.
start_gateway() {
  local name="$1" port="$2" _
  shift 2
  # Only what is given here selects the database: an ambient DATABASE_URL or
  # DB_* must not point the SQLite run elsewhere.
  env -u DATABASE_URL -u DB_USERNAME -u DB_PASSWORD -u DB_HOST -u DB_PORT -u DB_NAME -u SQLITE_PATH \
    APP_PORT="$port" BIND_ADDRESS=127.0.0.1 LOG_FORMAT=json "$@" \
    "$BIN" serve >"$work/$name.log" 2>&1 &
  pids+=($!)
  local pid=$!
  for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$port/readiness_check" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "clients-check: the $name gateway did not become ready on port $port"
  return 1
}

stamp() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

section "pinned clients"
[[ -x "$BIN" ]] || { echo "clients-check: no gateway binary at $BIN (cargo build --locked first)"; exit 2; }
need=()
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v curl >/dev/null 2>&1 || need+=(curl)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
t0=$SECONDS
npm_stamp=$(stamp "$CLIENTS/package.json" "$CLIENTS/package-lock.json")
if [[ "$(cat "$CLIENTS/node_modules/.ci-stamp" 2>/dev/null)" != "$npm_stamp" ]]; then
  (cd "$CLIENTS" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$npm_stamp" >"$CLIENTS/node_modules/.ci-stamp"
fi
pip_stamp=$(stamp "$CLIENTS/requirements.txt")
if [[ "$(cat "$VENV/.ci-stamp" 2>/dev/null)" != "$pip_stamp" ]]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-input -r "$CLIENTS/requirements.txt"
  echo "$pip_stamp" >"$VENV/.ci-stamp"
fi
echo "node $(node --version): graphql-http $(node -p 'require("'"$CLIENTS"'/node_modules/graphql-http/package.json").version')," \
  "graphql $(node -p 'require("'"$CLIENTS"'/node_modules/graphql/package.json").version')," \
  "@graphql-inspector/cli $(node -p 'require("'"$CLIENTS"'/node_modules/@graphql-inspector/cli/package.json").version')"
echo "$("$VENV/bin/python" --version): $("$VENV/bin/pip" freeze | grep -iE '^(gql|graphql-core|requests)==' | tr '\n' ' ')"
echo "installed in $((SECONDS - t0)) s"

section "gateway on a fresh SQLite database"
sqlite_port=$(free_port)
sqlite_db="$work/gw.db"
start_gateway sqlite "$sqlite_port" SQLITE_PATH="$sqlite_db"
sqlite_url="http://127.0.0.1:$sqlite_port/graphql"
echo "serving $sqlite_url"

# PostgreSQL, when configured: the same way .ci/run names and creates its database.
pg_url=""
if [[ -n "${TEST_DATABASE_URL:-}" ]]; then
  pg_admin="$TEST_DATABASE_URL"
elif [[ -n "${PGHOST:-}${PGUSER:-}${PGPORT:-}" ]]; then
  pg_admin=$(python3 - <<'PY'
import os, urllib.parse as p
env = os.environ
auth = p.quote(env.get("PGUSER") or "postgres", safe="")
if env.get("PGPASSWORD"):
    auth += ":" + p.quote(env["PGPASSWORD"], safe="")
host, port = env.get("PGHOST") or "127.0.0.1", env.get("PGPORT") or "5432"
print(f"postgres://{auth}@{host}:{port}/postgres")
PY
)
fi
if [[ -n "$pg_admin" ]]; then
  section "gateway on a fresh PostgreSQL database"
  name="gw_clients_$$_$(date +%s)"
  psql -X -v ON_ERROR_STOP=1 -q -d "$pg_admin" -c "CREATE DATABASE $name"
  pg_db="$name"
  pg_url=$(python3 - "$pg_admin" "$name" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(u._replace(path="/" + sys.argv[2])))
PY
)
  t0=$SECONDS
  env -u DB_USERNAME -u DB_PASSWORD -u DB_HOST -u DB_PORT -u DB_NAME DATABASE_URL="$pg_url" "$BIN" seed \
    --users "$PG_USERS" --tokens "$PG_TOKENS" --seed "$PG_SEED" >"$work/pg-seed.log" 2>&1 ||
    { echo "clients-check: seed failed"; cat "$work/pg-seed.log"; exit 1; }
  echo "seeded $pg_db in $((SECONDS - t0)) s: $(tail -n 1 "$work/pg-seed.log")"
  pg_port=$(free_port)
  start_gateway postgres "$pg_port" DATABASE_URL="$pg_url"
  pg_graphql="http://127.0.0.1:$pg_port/graphql"
  echo "serving $pg_graphql"
else
  echo "PostgreSQL: neither TEST_DATABASE_URL nor PGHOST/PGUSER/PGPORT set; its paging check does not run"
fi

run() { # name, command...: runs it, shows its output, records the result
  local name="$1" t0=$SECONDS rc=0
  shift
  section "$name"
  "$@" || rc=$?
  echo "($name: exit $rc, $((SECONDS - t0)) s)"
  record "$name" "$rc"
}

run "graphql-http audit (sqlite)" node "$CLIENTS/audit.mjs" "$sqlite_url"
run "graphql-js + graphql-inspector introspection (sqlite)" \
  node "$CLIENTS/introspect.mjs" "$sqlite_url" "$ROOT/schema.graphql"
run "gql paging (sqlite)" "$VENV/bin/python" "$CLIENTS/gql_paging.py" --url "$sqlite_url" --sqlite "$sqlite_db"
if [[ -n "$pg_url" ]]; then
  run "gql paging (postgres)" "$VENV/bin/python" "$CLIENTS/gql_paging.py" --url "$pg_graphql" --postgres "$pg_url"
fi

section "summary"
printf '%s\n' "${results[@]}"
echo "clients-check: $passed passed, $failed failed"
((failed == 0))
