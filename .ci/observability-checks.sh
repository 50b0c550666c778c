#!/usr/bin/env bash
# End-to-end checks of the observability files (issue 5) against the real
# gateway: /metrics, the Grafana dashboard, the CloudWatch Logs Insights
# queries and the HPA's prometheus-adapter query. Everything stays on 127.0.0.1.
#
#   bash .ci/observability-checks.sh [path/to/coworking-gateway]   # from anywhere
#
# 1. Starts the gateway (embedded SQLite demo data in a temp dir, LOG_FORMAT=json,
#    stdout to a file) and a Prometheus server scraping it every second, with
#    the namespace/pod target labels a cluster scrape adds.
# 2. Sends traffic on every road (legacy REST, named/anonymous/bad GraphQL, a
#    malformed body, an unknown path, the probes) for about 10 s, then 1,000
#    GraphQL operations with distinct made-up names.
# 3. `promtool check metrics` on a real scrape: no findings.
# 4. The `operation` label stays bounded after the 1,000 made-up names.
# 5. Every panel expression of grafana/dashboards/coworking-gateway.json,
#    evaluated by Prometheus: each one on the gateway's own metrics must return
#    at least one series; cAdvisor/kube-state-metrics ones (container_*, kube_*)
#    are listed as external, not checked. Variable queries must match series.
# 6. Every field the cloudwatch/*.logsinsights queries name appears in the
#    gateway's JSON log lines (and each `field = "literal"` filter matches one).
# 7. The metricsQuery of k8s/prometheus-adapter-rules.yaml returns a value.
# 8. The rollups (issue 13): `rollup verify` runs against the demo database
#    before the gateway serves it (exit 0, recorded); during the traffic a
#    token is written into the database behind the gateway's back every round
#    (Python's sqlite3, so only the triggers see it) and an 1880 New York
#    report is asked for. Prometheus must then show the verify result (1, and
#    recent), keys folded by the background fold, fold durations, a raw
#    fallback, both pending-key series; the fallback's log line must be there.
# 9. prometheus/rollup-alerts.yml: `promtool check rules`, `promtool test rules`
#    on its unit tests, and loaded into the Prometheus above: every rule
#    evaluates without error on the gateway's series, and none fires.
# 10. The caches (issue 14): the gateway runs with CACHE_TTL_SECONDS=3, so a
#    round finds some answers stale, and every round sends one
#    conditional REST and one conditional GraphQL request (If-None-Match with
#    the ETag just received). Prometheus must then show, for each of the three
#    caches, answers served from it and bytes and entries held; stale serves,
#    fresh hits and misses; at least two 304s per round; no refresh failure.
#
# Prints `observability-checks: N passed, N failed`; exits 1 on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN="${1:-target/debug/coworking-gateway}"
DASHBOARD=grafana/dashboards/coworking-gateway.json
CLOUDWATCH_DIR=cloudwatch
ADAPTER_RULES=k8s/prometheus-adapter-rules.yaml
ALERT_RULES=prometheus/rollup-alerts.yml
ALERT_TESTS=prometheus/rollup-alerts.test.yml
# Target labels Prometheus adds in the cluster (ServiceMonitor / kubernetes_sd).
JOB=coworking-gateway
NAMESPACE=coworking
POD=coworking-gateway-local-0
TRAFFIC_ROUNDS=5       # one round every 2 s: ~10 s of traffic
MADE_UP_OPERATIONS=1000
MAX_OPERATION_LABELS=50

passed=0
failed=0
pass() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
section() { printf '\n==> %s\n' "$*"; }

work="$(mktemp -d)"
gateway_pid=""
prometheus_pid=""

stop() {
  local pid="$1" _
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  stop "$gateway_pid"
  stop "$prometheus_pid"
  if ((failed > 0 || rc != 0)) && [[ -z "${KEEP_WORK:-}" ]]; then
    echo "--- last gateway log lines ($work/gateway.log)"
    tail -n 15 "$work/gateway.log" 2>/dev/null || true
    echo "--- last prometheus log lines"
    tail -n 15 "$work/prometheus.log" 2>/dev/null || true
  fi
  if [[ -n "${KEEP_WORK:-}" ]]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# ---- the Python helper (JSON, PromQL substitution, HTTP API, log parsing) ----
cat >"$work/obs.py" <<'PY'
"""Helpers for observability-checks.sh. Prints `ok ...` / `FAIL ...` lines,
which the shell counts, and anything else as plain information."""
import json, re, socket, sys, time, urllib.parse, urllib.request
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def prom_query(base, expr):
    """(status, result list or error text) of an instant query."""
    data = urllib.parse.urlencode({"query": expr}).encode()
    req = urllib.request.Request(f"{base}/api/v1/query", data=data)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as e:  # 400/422 carry a JSON error body
        try:
            body = json.load(e)
        except Exception:
            return "error", f"HTTP {e.code}"
    if body.get("status") != "success":
        return "error", f"{body.get('errorType')}: {body.get('error')}"
    data = body["data"]
    if data["resultType"] in ("scalar", "string"):
        return "success", [data["result"]]
    return "success", data["result"]


# Grafana's interval variables, as the dashboard would get them at a 1 s scrape.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__interval_ms": "15000",
            "__range": "5m", "__range_s": "300", "__range_ms": "300000"}
VAR = r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))|\[\[(\w+)\]\]"


def substitute(expr):
    """Grafana template variables -> PromQL Prometheus can run on its own."""
    def builtin(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return BUILTINS.get(name, m.group(0))
    expr = re.sub(VAR, builtin, expr)

    # label matchers holding a (non-builtin) variable: match anything
    def matcher(m):
        label, op, value = m.group(1), m.group(2), m.group(3)
        if not re.search(VAR, value):
            return m.group(0)
        if op in ("=", "=~"):
            return f'{label}=~".*"'
        return f'{label}!~"__none__"'
    expr = re.sub(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', matcher, expr)
    if re.search(VAR, expr):
        raise ValueError(f"unsubstituted variable left in {expr!r}")
    return expr


EXTERNAL = re.compile(r"\b(container_\w+|kube_\w+)")


def panels(dash):
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])  # collapsed rows keep theirs inside


def dashboard_structure(path):
    try:
        dash = json.loads(Path(path).read_text())
    except Exception as e:
        print(f"FAIL {path}: not JSON ({e})")
        return
    problems = []
    if dash.get("uid") != "coworking-gateway":
        problems.append(f"uid is {dash.get('uid')!r}")
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 39:
        problems.append(f"schemaVersion {dash.get('schemaVersion')!r} < 39")
    variables = dash.get("templating", {}).get("list", [])
    if not any(v.get("type") == "datasource" and v.get("query") == "prometheus" and v.get("name") == "datasource"
               for v in variables):
        problems.append("no `datasource` variable of type prometheus")
    ids = [p.get("id") for p in panels(dash)]
    if len(ids) != len(set(ids)):
        problems.append("duplicate panel ids")
    count = 0
    for p in panels(dash):
        if p.get("type") == "row":
            continue
        count += 1
        where = f"panel {p.get('id')} {p.get('title')!r}"
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            problems.append(f"{where}: datasource is not ${{datasource}}")
        targets = p.get("targets") or []
        if not targets or not all(t.get("expr") for t in targets):
            problems.append(f"{where}: a target without expr")
        for t in targets:
            if (t.get("datasource") or {}).get("uid") not in (None, "${datasource}"):
                problems.append(f"{where} {t.get('refId')}: target datasource is not ${{datasource}}")
    if problems:
        for pr in problems:
            print(f"FAIL dashboard: {pr}")
    else:
        print(f"ok   dashboard structure: uid coworking-gateway, schemaVersion {dash['schemaVersion']}, "
              f"{count} panels on ${{datasource}}")


def dashboard_exprs(base, path):
    dash = json.loads(Path(path).read_text())
    for p in panels(dash):
        for t in p.get("targets") or []:
            raw = t.get("expr")
            if not raw:
                continue
            name = f"[{p.get('title')} / {t.get('refId')}]"
            try:
                expr = substitute(raw)
            except ValueError as e:
                print(f"FAIL {name} {e}")
                continue
            status, result = prom_query(base, expr)
            flat = " ".join(expr.split())
            if status != "success":
                print(f"FAIL {name} does not evaluate: {result}\n       {flat}")
                continue
            external = sorted(set(EXTERNAL.findall(expr)))
            if external:
                print(f"--   {name} external ({', '.join(external)}), not checked")
                continue
            if result:
                print(f"ok   {name} {len(result)} series")
            else:
                print(f"FAIL {name} no series\n       {flat}")
    # A variable query that matches nothing leaves the panels empty in Grafana.
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q or "")
        if not m:
            print(f"--   variable ${v.get('name')}: {q!r} not checked")
            continue
        selector, label = substitute(m.group(1)), m.group(2)
        status, result = prom_query(base, f"count by ({label}) ({selector})")
        values = [r["metric"].get(label, "") for r in result] if status == "success" else []
        if any(values):
            print(f"ok   variable ${v.get('name')}: {label} values {sorted(values)}")
        else:
            print(f"FAIL variable ${v.get('name')}: {q} has no {label} values ({result if status != 'success' else 'none'})")


def query_has_series(base, title, expr):
    status, result = prom_query(base, expr)
    if status == "success" and result:
        print(f"ok   {title}: {len(result)} series, e.g. {result[0]}")
    else:
        print(f"FAIL {title}: {result if status != 'success' else 'no series'}\n       {expr}")


def wait_series(base, expr, timeout):
    deadline = time.time() + float(timeout)
    while time.time() < deadline:
        try:
            status, result = prom_query(base, expr)
            if status == "success" and result:
                return 0
        except OSError:
            pass
        time.sleep(0.5)
    return 1


# ---- CloudWatch Logs Insights queries vs the gateway's JSON lines ----
KEYWORDS = {"fields", "filter", "stats", "sort", "limit", "parse", "display", "dedup", "as", "by",
            "and", "or", "not", "in", "like", "asc", "desc", "unmask", "unnest"}
BUILTIN_FIELDS = {"@timestamp", "@message", "@logStream", "@log", "@ingestionTime", "@entity"}


def query_fields(text):
    """(field names, [(field, literal)] of `field = "literal"` comparisons)."""
    text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
    literals = re.findall(r'([\w@.]+)\s*=\s*"((?:[^"\\]|\\.)*)"', text)
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|/(?:[^/\\\n]|\\.)+/', " ", text)
    aliases = set(re.findall(r"\bas\s+([\w@.]+)", stripped))
    fields = set()
    for m in re.finditer(r"[\w@.]+", stripped):
        tok = m.group(0)
        if tok[0].isdigit() or tok in KEYWORDS or tok in aliases or tok == "*":
            continue
        if stripped[m.end():].lstrip().startswith("("):  # a function: pct(, count(, bin(
            continue
        fields.add(tok)
    return fields, literals


def logs_check(log_path, query_dir, request_id):
    records = []
    bad = 0
    for line in Path(log_path).read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict):
            records.append(obj)
    if not records:
        print(f"FAIL no JSON log lines in the gateway's stdout")
        return
    if bad:
        print(f"FAIL {bad} stdout lines are not JSON (LOG_FORMAT=json must give one JSON object per line)")
    else:
        print(f"ok   all {len(records)} stdout lines are JSON objects")
    keys = set().union(*(r.keys() for r in records))
    print(f"--   top-level fields seen: {', '.join(sorted(keys))}")

    requests = [r for r in records if r.get("message") == "request"]
    if requests:
        print(f"ok   {len(requests)} request lines (message \"request\")")
        for f in ("request_id", "method", "route", "status", "latency_ms"):
            missing = sum(1 for r in requests if f not in r)
            if missing:
                print(f"FAIL {missing} request lines lack `{f}`")
        for f in ("status", "latency_ms"):
            wrong = [r.get(f) for r in requests if f in r and not isinstance(r[f], (int, float))]
            if wrong:
                print(f"FAIL `{f}` must be a JSON number (Logs Insights compares it numerically): {wrong[:3]}")
        # A body rejected before GraphQL runs (malformed JSON: 400) may have no operation.
        gql = [r for r in requests if r.get("route") == "/graphql" and r.get("status") == 200]
        if gql and all("operation" in r for r in gql):
            print(f"ok   all {len(gql)} /graphql 200 request lines carry `operation`")
        else:
            print(f"FAIL /graphql 200 request lines without `operation`: {sum(1 for r in gql if 'operation' not in r)} of {len(gql)}")
        raw = [r.get("route") for r in requests if str(r.get("route", "")).startswith("/no-such")]
        if raw:
            print(f"FAIL route holds a raw path: {raw[:2]}")
        ours = [r for r in requests if r.get("request_id") == request_id]
        if ours:
            print(f"ok   x-request-id {request_id} is the logged request_id")
        else:
            print(f"FAIL no request line with request_id {request_id} (sent as x-request-id)")
    else:
        print("FAIL no line with message \"request\"")
    if any(r.get("message") == "graphql error" and "code" in r for r in records):
        codes = sorted({r["code"] for r in records if r.get("message") == "graphql error" and "code" in r})
        print(f"ok   \"graphql error\" lines with codes {codes}")
    else:
        print("FAIL no \"graphql error\" line with a `code`")

    files = sorted(Path(query_dir).glob("*.logsinsights"))
    if not files:
        print(f"FAIL no {query_dir}/*.logsinsights files")
    for f in files:
        fields, literals = query_fields(f.read_text())
        problems = []
        for name in sorted(fields):
            if name.startswith("@"):
                if name not in BUILTIN_FIELDS:
                    problems.append(f"unknown CloudWatch field {name}")
            elif name not in keys:
                problems.append(f"`{name}` is in no log line")
        for name, value in literals:
            if name.startswith("@") or "<" in value:
                continue  # built-in fields and placeholders such as "<request-id>"
            if not any(str(r.get(name)) == value for r in records):
                problems.append(f'no log line has {name} = "{value}"')
        if problems:
            for p in problems:
                print(f"FAIL {f.name}: {p}")
        else:
            print(f"ok   {f.name}: fields {', '.join(sorted(fields))} all in the log lines")


def adapter_query(path, labels, group_by, rng):
    """The adapter's metricsQuery with its template filled in, on one line."""
    text = Path(path).read_text()
    try:
        import yaml
        rules = yaml.safe_load(text)["rules"]["custom"]
        rule = next(r for r in rules if "http_requests_total" in r["seriesQuery"])
        series_query, query = rule["seriesQuery"], rule["metricsQuery"]
        series = re.match(r"\w+", series_query).group(0)
    except ImportError:
        query = re.search(r"metricsQuery:\s*'([^']*)'", text).group(1)
        series_query = re.search(r"seriesQuery:\s*'([^']*)'", text).group(1)
        series = re.match(r"\w+", series_query).group(0)
    filled = (query.replace("<<.Series>>", series).replace("<<.LabelMatchers>>", labels)
              .replace("<<.GroupBy>>", group_by))
    if rng:
        filled = re.sub(r"\[\d+[smh]\]", f"[{rng}]", filled)
    print(series_query)
    print(filled)


def made_up_operations(base, count):
    """`count` GraphQL requests, each with a fresh operation name, on one connection."""
    import http.client
    host, port = base.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    statuses = {}
    for i in range(int(count)):
        name = f"MadeUp{i}x{int(time.time())}"
        body = json.dumps({"query": f"query {name} {{ summary {{ users }} }}", "operationName": name})
        conn.request("POST", "/graphql", body=body, headers={"content-type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
    conn.close()
    print(f"--   {count} made-up operation names sent, statuses {statuses}")


def sqlite_write(path, round_no):
    """A write the gateway does not see coming: a token now, and one in 1880 (New York's
    local mean time, off the 15-minute grid), straight into its SQLite file."""
    import sqlite3
    con = sqlite3.connect(path, timeout=10)
    with con:
        con.execute("INSERT INTO tokens (user_id, token, created_at, used_at) VALUES "
                    "(1, ?, strftime('%Y-%m-%d %H:%M:%S', 'now'), strftime('%Y-%m-%d %H:%M:%S', 'now'))",
                    (f"{int(round_no):06d}",))
        con.execute("INSERT INTO tokens (user_id, token, created_at) VALUES (1, '188000', ?)",
                    (f"1880-03-0{int(round_no) % 9 + 1} 04:{int(round_no) % 60:02d}:00",))
    con.close()


def rules_health(base):
    """Every loaded rule evaluated without error; no alert fires on a healthy gateway."""
    with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=15) as resp:
        groups = json.load(resp)["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    if not rules:
        print("FAIL no rules loaded from the alert rule file")
    for r in rules:
        if r.get("health") != "ok" or r.get("lastError"):
            print(f"FAIL rule {r['name']}: health {r.get('health')} {r.get('lastError', '')}")
        elif r.get("state") not in (None, "inactive"):
            print(f"FAIL rule {r['name']} is {r['state']} on a healthy gateway")
        else:
            # The expression without its comparison must select the gateway's series.
            status, result = prom_query(base, r["query"].split(">")[0].split("==")[0])
            if status == "success" and result:
                print(f"ok   rule {r['name']}: evaluated, inactive, {len(result)} series under its condition")
            else:
                print(f"FAIL rule {r['name']}: its expression selects nothing ({result})")


def label_values_in_scrape(metrics_file, metric, label):
    values = set()
    for line in Path(metrics_file).read_text().splitlines():
        if line.startswith(metric + "{"):
            m = re.search(label + r'="((?:[^"\\]|\\.)*)"', line)
            if m:
                values.add(m.group(1))
    print(len(values))
    print(" ".join(sorted(values)[:20]))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"free-port": free_port, "dashboard-structure": dashboard_structure,
     "dashboard-exprs": dashboard_exprs, "query-has-series": query_has_series,
     "wait-series": lambda *a: sys.exit(wait_series(*a)), "logs-check": logs_check,
     "adapter-query": adapter_query, "made-up-operations": made_up_operations,
     "label-values": label_values_in_scrape, "sqlite-write": sqlite_write,
     "rules-health": rules_health}[cmd](*args)
PY

# Runs the helper and counts its ok/FAIL lines; a crash is one failure.
py() {
  local out rc=0 line
  out="$(python3 "$work/obs.py" "$@" 2>&1)" || rc=$?
  while IFS= read -r line; do
    case "$line" in
      "ok   "*) echo "$line"; passed=$((passed + 1)) ;;
      "FAIL "*) echo "$line"; failed=$((failed + 1)) ;;
      *) [[ -n "$line" ]] && echo "$line" ;;
    esac
  done <<<"$out"
  if ((rc != 0)); then fail "helper '$1' exited with $rc"; fi
  return 0
}

# Waits up to $2 seconds for URL $1 to answer 200.
wait_http() {
  local url="$1" deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)" == 200 ]]; then
      return 0
    fi
    sleep 0.3
  done
  return 1
}

# ---- tools ------------------------------------------------------------------
section "tools"
need=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if ((${#need[@]})); then
  echo "installing with apt-get: ${need[*]}"
  sudo_=""
  ((EUID == 0)) || sudo_="sudo"
  $sudo_ apt-get update -qq
  # The checks use their own Prometheus on a free port, whatever the package starts.
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
prometheus --version 2>&1 | sed -n 1p
if [[ ! -x "$BIN" ]]; then
  echo "gateway binary $BIN not found or not executable (build it first)" >&2
  exit 1
fi

# ---- static checks ------------------------------------------------------------
section "dashboard structure"
py dashboard-structure "$DASHBOARD"

section "alerting rules ($ALERT_RULES)"
if out="$(promtool check rules "$ALERT_RULES" 2>&1)"; then
  pass "promtool check rules: $(echo "$out" | grep -o '[0-9]* rules found' || true)"
else
  fail "promtool check rules:"
  echo "$out" | sed 's/^/       /'
fi
if out="$(cd "$(dirname "$ALERT_TESTS")" && promtool test rules "$(basename "$ALERT_TESTS")" 2>&1)"; then
  pass "promtool test rules $ALERT_TESTS"
else
  fail "promtool test rules $ALERT_TESTS:"
  echo "$out" | sed 's/^/       /'
fi

# ---- start the gateway ----------------------------------------------------------
section "gateway"
app_port="$(python3 "$work/obs.py" free-port)"
base="http://127.0.0.1:$app_port"
# A first start creates and seeds the demo database; then `rollup verify` checks it the
# way the CronJob does, so the gateway's first gauge sampling finds a recorded result.
APP_PORT="$app_port" BIND_ADDRESS=127.0.0.1 SQLITE_PATH="$work/gw.db" LOG_FORMAT=json RUST_LOG=info \
  "$BIN" >"$work/gateway-seed.log" 2>&1 &
gateway_pid=$!
wait_http "$base/readiness_check" 60 || { fail "the first start did not seed the demo database"; exit 1; }
stop "$gateway_pid"
gateway_pid=""
verify_rc=0
SQLITE_PATH="$work/gw.db" LOG_FORMAT=json "$BIN" rollup verify >"$work/verify.out" 2>"$work/verify.err" || verify_rc=$?
if ((verify_rc == 0)) && grep -q 'rollup verify: the rollups match the raw rows' "$work/verify.err"; then
  pass "rollup verify on the demo database: exit 0, $(grep -o 'the rollups match[^(]*' "$work/verify.err")"
else
  fail "rollup verify exited $verify_rc: $(tail -n 3 "$work/verify.err")"
fi
# CACHE_TTL_SECONDS=3 with rounds 2 s apart: a round finds some of the answers of two
# rounds before stale, so the Cache row's stale serves have data beside the hits and 304s.
APP_PORT="$app_port" BIND_ADDRESS=127.0.0.1 SQLITE_PATH="$work/gw.db" LOG_FORMAT=json RUST_LOG=info \
  CACHE_TTL_SECONDS=3 "$BIN" >"$work/gateway.log" 2>"$work/gateway.stderr" &
gateway_pid=$!
if wait_http "$base/readiness_check" 60; then
  pass "gateway ready on $base (pid $gateway_pid)"
else
  fail "gateway did not answer /readiness_check 200 within 60 s"
  cat "$work/gateway.stderr" >&2 || true
  exit 1
fi

# ---- start Prometheus -----------------------------------------------------------
section "prometheus"
prom_port="$(python3 "$work/obs.py" free-port)"
prom="http://127.0.0.1:$prom_port"
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $(realpath "$ALERT_RULES")
scrape_configs:
  - job_name: $JOB
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$app_port"]
        # What the cluster scrape adds (ServiceMonitor or kubernetes_sd
        # relabelling): the dashboard and the adapter rule select on them.
        labels:
          namespace: $NAMESPACE
          pod: $POD
EOF
if out="$(promtool check config "$work/prometheus.yml" 2>&1)"; then
  pass "promtool check config prometheus.yml"
else
  fail "promtool check config: $out"
fi
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom-data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!
if wait_http "$prom/-/ready" 60; then
  pass "prometheus ready on $prom (pid $prometheus_pid)"
else
  fail "prometheus not ready within 60 s"
  exit 1
fi
if python3 "$work/obs.py" wait-series "$prom" "up{job=\"$JOB\"} == 1" 30; then
  pass "prometheus scrapes the gateway (up == 1)"
else
  fail "prometheus target is not up after 30 s: $(curl -s --max-time 5 "$prom/api/v1/targets" | head -c 600)"
fi

# ---- traffic on every road --------------------------------------------------------
section "traffic (${TRAFFIC_ROUNDS} rounds, 2 s apart)"
request_id="obs-check-$$-$RANDOM"
gql() { # $1 = JSON body
  curl -s -o /dev/null -w '%{http_code} ' --max-time 10 -X POST -H 'content-type: application/json' \
    --data "$1" "$base/graphql" || echo -n "000 "
}
get() { curl -s -o /dev/null -w '%{http_code} ' --max-time 10 "$base$1" || echo -n "000 "; }
etag_of() { curl -s -D - -o /dev/null --max-time 10 "$@" | tr -d '\r' | awk -F': ' 'tolower($1) == "etag" { print $2 }'; }
cond() { # $1 = the ETag to send in If-None-Match, then curl's arguments; prints the status
  curl -s -o /dev/null -w '%{http_code} ' --max-time 10 -H "If-None-Match: $1" "${@:2}" || echo -n "000 "
}
# revalidate CURL_ARGS...: ask for an answer's ETag and send it back in If-None-Match;
# prints the status of the second request. The first answer may be a stale one whose
# background refresh brings new data (a token is written every round) and so a new
# ETag, which the second request rightly gets with a 200: then try again, up to 3 times.
revalidate() {
  local tag code
  for _ in 1 2 3; do
    tag="$(etag_of "$@")"
    code="$(cond "$tag" "$@")"
    [[ "$code" == "304 " ]] && break
    sleep 0.3
  done
  echo -n "$code"
}
dash_usage='{"query":"query DashUsage { usageByDay { date visits tokensIssued uniqueUsers } }","operationName":"DashUsage"}'
for round in $(seq 1 "$TRAFFIC_ROUNDS"); do
  codes=""
  codes+="$(get /api/reports/daily_usage)"
  codes+="$(get /api/reports/user_visits)"
  codes+="$(get /health_check)"
  codes+="$(get /readiness_check)"
  codes+="$(gql "$dash_usage")"
  codes+="$(gql '{"query":"query DashSummary { summary { users activeUsers tokensIssued tokensUsed usageRate } }"}')"
  codes+="$(gql '{"query":"query DashVisits { visitsPerUser(first: 5, orderBy: VISITS_DESC) { totalCount edges { node { userId visits checkIns user { firstName } } } } }"}')"
  codes+="$(gql '{"query":"query DashUsers { users(first: 5) { totalCount edges { node { id visits } } } }"}')"
  codes+="$(gql '{"query":"{ summary { users } }"}')"                                   # anonymous
  codes+="$(gql '{"query":"{ nope }"}')"                                                 # validation error
  codes+="$(gql '{"query":"query DashBadZone { usageByDay(timezone: \"Not/AZone\") { date } }"}')"  # bad input
  codes+="$(gql '{"query":"query Broken {"}')"                                           # parse error
  codes+="$(gql 'this is not json')"                                                     # malformed body
  codes+="$(get "/no-such-path-$round")"                                                 # unknown path
  codes+="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$base/metrics" || echo -n 000) "
  # Rollups: a write behind the gateway's back (folded in the background), and a report
  # whose buckets start off the 15-minute grid (a raw fallback).
  python3 "$work/obs.py" sqlite-write "$work/gw.db" "$round" || fail "writing a token into $work/gw.db"
  codes+="$(gql '{"query":"query DashOldUsage { usageByDay(from: \"1880-03-01\", to: \"1880-03-31\", timezone: \"America/New_York\") { date tokensIssued } }"}')"
  # Conditional requests, as a polling dashboard sends them: 304 on REST and on GraphQL.
  codes+="$(revalidate "$base/api/reports/daily_usage")"
  codes+="$(revalidate -X POST -H 'content-type: application/json' --data "$dash_usage" "$base/graphql")"
  echo "round $round: $codes"
  sleep 2
done
# One request with our own id, to find it in the logs and in the response.
echoed="$(curl -s -D - -o /dev/null --max-time 10 -H "x-request-id: $request_id" "$base/api/reports/daily_usage" \
  | tr -d '\r' | awk -F': ' 'tolower($1) == "x-request-id" { print $2 }')"
if [[ "$echoed" == "$request_id" ]]; then
  pass "x-request-id echoed in the response"
else
  fail "x-request-id not echoed (got '${echoed}')"
fi

# ---- promtool check metrics ----------------------------------------------------------
section "promtool check metrics"
if curl -sf --max-time 10 "$base/metrics" -o "$work/metrics.txt"; then
  echo "scrape: $(wc -l <"$work/metrics.txt") lines, $(grep -vc '^#' "$work/metrics.txt" || true) samples"
  if findings="$(promtool check metrics <"$work/metrics.txt" 2>&1)" && [[ -z "$findings" ]]; then
    pass "promtool check metrics: no findings"
  else
    fail "promtool check metrics:"
    echo "$findings" | head -n 30 | sed 's/^/       /'
  fi
else
  fail "GET /metrics did not answer 200"
  : >"$work/metrics.txt"
fi

# ---- bounded operation label ---------------------------------------------------------
section "operation label cardinality (${MADE_UP_OPERATIONS} made-up names)"
py made-up-operations "$base" "$MADE_UP_OPERATIONS"
if curl -sf --max-time 10 "$base/metrics" -o "$work/metrics-after.txt"; then
  n_ops=0 some_ops=""
  { read -r n_ops; read -r some_ops; } < <(python3 "$work/obs.py" label-values "$work/metrics-after.txt" graphql_operations_total operation) || true
  if ((n_ops > 0 && n_ops <= MAX_OPERATION_LABELS)) && ! grep -q 'operation="MadeUp' "$work/metrics-after.txt"; then
    pass "graphql_operations_total has $n_ops operation values after $MADE_UP_OPERATIONS made-up names: $some_ops"
  else
    fail "graphql_operations_total operation values: $n_ops (want 1..$MAX_OPERATION_LABELS, no MadeUp*): $some_ops"
  fi
else
  fail "GET /metrics did not answer 200 after the made-up operations"
fi

# ---- dashboard expressions -------------------------------------------------------------
section "dashboard expressions via $prom/api/v1/query"
# Three more scrapes, so the last traffic is in the TSDB.
sleep 3
py dashboard-exprs "$prom" "$DASHBOARD"

# ---- rollups -------------------------------------------------------------------------------
section "rollup metrics via $prom/api/v1/query"
sel="job=\"$JOB\",namespace=\"$NAMESPACE\",pod=\"$POD\""
py query-has-series "$prom" "rollup_verify_last_ok is 1 after the verify" "max(rollup_verify_last_ok{$sel}) == 1"
py query-has-series "$prom" "the last verify is recent" "time() - max(rollup_verify_last_run_timestamp_seconds{$sel}) < 600"
py query-has-series "$prom" "the background fold folded the written slots" "sum(increase(rollup_folded_keys_total{$sel,rollup=\"slots\"}[5m])) > 0"
py query-has-series "$prom" "... and users" "sum(increase(rollup_folded_keys_total{$sel,rollup=\"users\"}[5m])) > 0"
py query-has-series "$prom" "fold durations observed" "sum(rollup_fold_duration_seconds_count{$sel}) > 0"
py query-has-series "$prom" "the 1880 New York report counted raw rows" "sum(rollup_raw_fallbacks_total{$sel,reason=\"unaligned_offset\"}) > 0"
py query-has-series "$prom" "pending keys for both rollups" "count(rollup_pending_keys{$sel}) == 2"
if grep -q '"report buckets counted from raw rows, not the rollup"' "$work/gateway.log"; then
  pass "the raw fallback is logged"
else
  fail "no 'report buckets counted from raw rows' log line"
fi
py rules-health "$prom"

# ---- caches (issue 14): the values behind the Cache row, not only the series -------------
section "cache metrics via $prom/api/v1/query"
for c in reports rest_bodies graphql_responses; do
  py query-has-series "$prom" "$c: answered from the cache" "sum(increase(cache_requests_total{$sel,cache=\"$c\",result=~\"hit|stale\"}[5m])) > 0"
  py query-has-series "$prom" "$c: holds bytes and entries" "max(max_over_time(cache_bytes{$sel,cache=\"$c\"}[5m])) > 0 and on() max(max_over_time(cache_entries{$sel,cache=\"$c\"}[5m])) > 0"
done
py query-has-series "$prom" "stale answers served (CACHE_TTL_SECONDS=3, rounds 2 s apart)" "sum(increase(cache_requests_total{$sel,result=\"stale\"}[5m])) > 0"
py query-has-series "$prom" "fresh hits" "sum(increase(cache_requests_total{$sel,result=\"hit\"}[5m])) > 0"
py query-has-series "$prom" "misses" "sum(increase(cache_requests_total{$sel,result=\"miss\"}[5m])) > 0"
py query-has-series "$prom" "304s counted (2 per round)" "max(http_responses_not_modified_total{$sel}) >= $((2 * TRAFFIC_ROUNDS))"
py query-has-series "$prom" "no refresh failed" "sum(cache_refresh_failures_total{$sel}) == 0"

# ---- CloudWatch queries vs the JSON log lines ---------------------------------------------
section "cloudwatch/*.logsinsights fields vs the gateway's JSON log lines"
py logs-check "$work/gateway.log" "$CLOUDWATCH_DIR" "$request_id"

# ---- HPA custom metric (prometheus-adapter rule) ------------------------------------------
section "prometheus-adapter rule ($ADAPTER_RULES)"
series_query="" metrics_query=""
{ read -r series_query; read -r metrics_query; } < <(python3 "$work/obs.py" adapter-query "$ADAPTER_RULES" \
  "namespace=\"$NAMESPACE\",pod=\"$POD\"" "pod" "") || true
echo "seriesQuery:  $series_query"
echo "metricsQuery: $metrics_query"
py query-has-series "$prom" "adapter seriesQuery finds the gateway's series" "$series_query"
py query-has-series "$prom" "adapter metricsQuery returns the per-pod rate" "$metrics_query"

# ---------------------------------------------------------------------------------------------
echo
echo "observability-checks: $passed passed, $failed failed"
((failed == 0))
