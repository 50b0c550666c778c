#!/usr/bin/env bash
# The browser IDE on GET /graphql, checked in headless Chromium (Debian's) with
# every other host unreachable. For a binary that bundles GraphiQL (CI builds one:
# .ci/run sets GATEWAY_REQUIRE_GRAPHIQL=1), .ci/browser/graphiql-check.mjs drives it
# twice, with auth off and with an API key, through playwright-core pinned in
# .ci/browser/package-lock.json: GraphiQL renders, its docs explorer lists
# usageByDay, a query run from the editor shows the figure curl fetched, and no
# request leaves 127.0.0.1. For a binary built without GraphiQL, the simple
# fallback playground runs a query instead.
#
#   bash .ci/playground-check.sh [target/debug/coworking-gateway]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${1:-target/debug/coworking-gateway}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start NAME PORT [ENV=VALUE...]: the gateway on 127.0.0.1:PORT with its own SQLite file.
start() {
  local name=$1 port=$2
  shift 2
  env "$@" APP_PORT="$port" BIND_ADDRESS=127.0.0.1 SQLITE_PATH="$work/$name.db" LOG_FORMAT=json \
    "$bin" serve >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readiness_check" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "playground: the gateway ($name) did not become ready:" >&2
  tail -20 "$work/$name.log" >&2
  exit 1
}

# tokens_used PORT [CURL ARGS...]: the figure the browser must show, fetched independently.
tokens_used() {
  local port=$1
  shift
  curl -fs "http://127.0.0.1:$port/graphql" -H 'content-type: application/json' "$@" \
    -d '{"query":"{ summary { tokensUsed } }"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["summary"]["tokensUsed"])'
}

port=$(free_port)
start open "$port"
page=$(curl -fs -H 'accept: text/html' "http://127.0.0.1:$port/graphql")

if grep -q 'graphiql.min.js' <<<"$page"; then
  # playwright-core, pinned by its lock file; it drives /usr/bin/chromium and downloads no browser.
  npm ci --prefix .ci/browser --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  expected=$(tokens_used "$port")
  node .ci/browser/graphiql-check.mjs "http://127.0.0.1:$port" "$expected"

  # With authentication on: the page loads without a key, queries need X-API-Key.
  key="graphiql-check-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  digest=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
  port=$(free_port)
  start auth "$port" AUTH_API_KEY_HASHES="$digest"
  status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/graphql" \
    -H 'content-type: application/json' -d '{"query":"{ summary { tokensUsed } }"}')
  [[ $status == 401 ]] || { echo "graphiql: auth is not on (a keyless query got $status)"; exit 1; }
  expected=$(tokens_used "$port" -H "x-api-key: $key")
  node .ci/browser/graphiql-check.mjs "http://127.0.0.1:$port" "$expected" "$key"
  echo "graphiql: passed with auth off and with auth on"
  exit 0
fi

# The fallback page (a binary built without GraphiQL's files): its own script runs the query.
expected=$(tokens_used "$port")
query=$(python3 -c 'import urllib.parse; print(urllib.parse.quote("{ summary { tokensUsed } }"))')
timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
  --user-data-dir="$work/chrome" --virtual-time-budget=10000 \
  --dump-dom "http://127.0.0.1:$port/graphql#run=1&query=$query" >"$work/dom.html" 2>"$work/chrome.log" || true
result=$(python3 - "$work/dom.html" <<'PY'
import html, re, sys
dom = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r'<pre id="result"[^>]*>(.*?)</pre>', dom, re.S)
print(html.unescape(m.group(1)) if m else "")
PY
)
if grep -q "\"tokensUsed\": $expected" <<<"$result"; then
  echo "playground (fallback, GraphiQL not bundled): the page ran the query and shows tokensUsed = $expected"
else
  echo "playground (fallback): FAILED: expected tokensUsed $expected in the page, got:"
  echo "$result"
  tail -5 "$work/chrome.log"
  exit 1
fi
