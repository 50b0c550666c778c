#!/usr/bin/env bash
# Loads the GraphQL playground from a running gateway in headless Chromium (no
# internet), lets it run a query through its own JavaScript, and checks the
# answer shows in the page, against the same figure fetched with curl.
set -euo pipefail
bin=${1:-target/debug/coworking-gateway}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
APP_PORT=$port BIND_ADDRESS=127.0.0.1 SQLITE_PATH="$work/gw.db" LOG_FORMAT=json "$bin" serve >"$work/gateway.log" 2>&1 &
gw=$!
trap 'kill $gw 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readiness_check" >/dev/null 2>&1 && break
  sleep 0.1
done
expected=$(curl -fs "http://127.0.0.1:$port/graphql" -H 'content-type: application/json' \
  -d '{"query":"{ summary { tokensUsed } }"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["summary"]["tokensUsed"])')
query=$(python3 -c 'import urllib.parse; print(urllib.parse.quote("{ summary { tokensUsed } }"))')
timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
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
  echo "playground: the page ran the query and shows tokensUsed = $expected"
else
  echo "playground: FAILED: expected tokensUsed $expected in the page, got:"
  echo "$result"
  tail -5 "$work/chrome.log"
  exit 1
fi
