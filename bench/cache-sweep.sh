#!/usr/bin/env bash
# Memory under a BI tool's sweep of distinct long ranges (issue 11, point 5).
# Run from anywhere:   bash bench/cache-sweep.sh
# See bench/README.md ("Cache sweep") for what it measures.
#
# Twice, each on a fresh gateway over a fresh embedded SQLite demo database:
#   bounded   the gateway's cache settings as given (defaults: CACHE_MAX_BYTES 32 MiB)
#   baseline  CACHE_MAX_BYTES at its 1 TiB maximum: bounded by CACHE_MAX_ENTRIES
#             only, the behaviour before the byte bound
# each serving SWEEP_REQUESTS (2,000) distinct
#   usageByDay(from: D+i, to: D+i+3659, fill: true) { date visits tokensIssued }
# one after another on one keep-alive connection, D = 2000-01-01, i = 0, 1, …
# (3,660 buckets each, the MAX_BUCKETS limit). Prints VmRSS before and after
# and the peak (VmHWM) of each, and writes the table to
# bench/results/cache-sweep-latest.md and cache-sweep-<YYYYMMDD-HHMM>.md.
#
# Knobs: SWEEP_REQUESTS (2000), SWEEP_TARGET_MB (96). The gateway inherits
# the caller's environment (CACHE_*, MALLOC_ARENA_MAX, ...), like run.sh.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
PY=(python3 "$BENCH/lib/bench.py")
N=${SWEEP_REQUESTS:-2000}
TARGET_MB=${SWEEP_TARGET_MB:-96}
BASELINE_BYTES=1099511627776 # the setting's maximum: the byte bound never binds

STAMP=$(date +%Y%m%d-%H%M)
WORK=$BENCH/work/cache-sweep-$STAMP
RESULTS_DIR=$BENCH/results
mkdir -p "$WORK" "$RESULTS_DIR"

log() { printf '[sweep %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# shellcheck source=lib/gateway.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/gateway.sh"
trap stop_gateway EXIT

command -v python3 >/dev/null || die "python3 is needed"

log "cargo build --release --locked"
cargo build --release --locked >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; die "build failed"; }
BIN=$ROOT/target/release/coworking-gateway

# The sweep itself: prints one JSON line with the figures.
cat >"$WORK/sweep.py" <<'PY'
import datetime, http.client, json, sys, time

port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def status_kb(field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0

d0 = datetime.date(2000, 1, 1)
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
before_kb = status_kb("VmRSS")
bad, body_bytes, trace = 0, 0, []
t0 = time.monotonic()
for i in range(n):
    lo = d0 + datetime.timedelta(days=i)
    hi = lo + datetime.timedelta(days=3659)
    query = ('{ usageByDay(from: "%s", to: "%s", fill: true) { date visits tokensIssued } }'
             % (lo.isoformat(), hi.isoformat()))
    conn.request("POST", "/graphql", body=json.dumps({"query": query}),
                 headers={"content-type": "application/json"})
    resp = conn.getresponse()
    raw = resp.read()
    body_bytes += len(raw)
    try:
        data = json.loads(raw)
        ok = resp.status == 200 and "errors" not in data and len(data["data"]["usageByDay"]) == 3660
    except (ValueError, KeyError, TypeError):
        ok = False
    bad += 0 if ok else 1
    if (i + 1) % 250 == 0:
        trace.append(round(status_kb("VmRSS") / 1024, 1))
seconds = time.monotonic() - t0
conn.close()
print(json.dumps({
    "requests": n, "bad": bad, "seconds": round(seconds, 1),
    "avg_body_kb": round(body_bytes / n / 1024, 1),
    "rss_before_mib": round(before_kb / 1024, 1),
    "rss_after_mib": round(status_kb("VmRSS") / 1024, 1),
    "peak_mib": round(status_kb("VmHWM") / 1024, 1),
    "trace_mib": trace,
}))
PY

# run LABEL [VAR=VALUE...]: one fresh gateway, one sweep; appends a JSON line to $WORK/runs.jsonl.
: >"$WORK/runs.jsonl"
run() {
    local label=$1 port out pid ready figures
    shift
    mkdir -p "$WORK/$label"
    port=$("${PY[@]}" freeport)
    out=$(env "$@" SQLITE_PATH="$WORK/$label/coworking.db" APP_PORT="$port" BIND_ADDRESS=127.0.0.1 \
        LOG_FORMAT=json RUST_LOG=warn SHUTDOWN_DRAIN_SECONDS=1 \
        "${PY[@]}" spawn "$WORK/gateway-$label.log" "$port" -- "$BIN" serve)
    read -r pid ready <<<"$out"
    GW_PID=$pid
    log "$label: gateway pid $pid on :$port (ready in $ready ms); sweeping $N ranges"
    figures=$(python3 "$WORK/sweep.py" "$port" "$pid" "$N") || die "$label: sweep failed"
    stop_gateway
    echo "{\"label\": \"$label\", \"env\": \"$*\", \"figures\": $figures}" >>"$WORK/runs.jsonl"
    log "$label: $figures"
}

run bounded
run baseline CACHE_MAX_BYTES=$BASELINE_BYTES

# ---- the table -------------------------------------------------------------------
{
    echo "# Cache sweep: $N distinct 3,660-day usageByDay ranges"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo ' (uncommitted changes outside bench/)')"
    echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -h | awk '/^Mem:/ {print $2}') RAM"
    echo "- build: release (\`cargo build --release --locked\`), embedded SQLite demo data (1,000 users, 2,500 tokens)"
    echo "- caller's cache/allocator settings: $(env | grep -E '^(CACHE_|MALLOC_)' | sort | tr '\n' ' ' || true)"
    echo
    python3 - "$WORK/runs.jsonl" "$TARGET_MB" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
target = float(sys.argv[2])
print("| run | cache setting | RSS before MiB | RSS after MiB | peak RSS (VmHWM) MiB | RSS every 250 requests, MiB | bad answers | time s |")
print("|---|---|---|---|---|---|---|---|")
for r in runs:
    f = r["figures"]
    setting = r["env"] or "defaults (CACHE_MAX_BYTES 32 MiB)"
    print(f"| {r['label']} | `{setting}` | {f['rss_before_mib']} | {f['rss_after_mib']} | **{f['peak_mib']}** "
          f"| {' '.join(map(str, f['trace_mib']))} | {f['bad']} | {f['seconds']} |")
bounded = next(r for r in runs if r["label"] == "bounded")["figures"]
peak_mb = bounded["peak_mib"] * 1024 * 1024 / 1e6
verdict = "met" if peak_mb <= target and bounded["bad"] == 0 else "**NOT met**"
print()
print(f"Each answer: {bounded['avg_body_kb']} KiB of JSON. Target (issue 11): peak RSS of the bounded run "
      f"<= {target:g} MB: {verdict} ({peak_mb:.1f} MB).")
PY
} >"$WORK/table.md"

cat "$WORK/table.md"
cp "$WORK/table.md" "$RESULTS_DIR/cache-sweep-$STAMP.md"
cp "$WORK/table.md" "$RESULTS_DIR/cache-sweep-latest.md"
log "written: bench/results/cache-sweep-$STAMP.md and cache-sweep-latest.md"
