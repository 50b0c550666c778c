#!/usr/bin/env python3
"""Helpers for bench/soak.sh (the soak of issue 8): sample the gateway's RSS,
and turn wrk's SOAKJSON line and the samples into the results table.

  soak.py rss PID              print PID's VmRSS in kB (0 when it is gone)
  soak.py sample PID OUT [S]   append "seconds rss_kb" to OUT every S seconds
                               (default 1) until PID exits or this is killed
  soak.py report WRK_OUT RSS_FILE META_FILE OUT...
                               print the table, write META + table to each
                               OUT; exit 0 on PASS, 1 on FAIL

Criteria: no error of any kind during the measured run (non-2xx, socket
errors, 2xx answers carrying GraphQL "errors" or an empty body) and RSS growth
(end - start) / start below SOAK_MAX_RSS_GROWTH_PCT (default 10) %.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import die, fmt  # noqa: E402  (bench/lib/bench.py, unchanged)

ROADS = [
    ("daily_usage", "GET /api/reports/daily_usage"),
    ("user_visits", "GET /api/reports/user_visits"),
    ("usageByDay", "POST /graphql usageByDay"),
    ("visitsPerUser", "POST /graphql visitsPerUser"),
    ("summary", "POST /graphql summary"),
    ("health_check", "GET /health_check"),
]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmd_rss(args):
    print(rss_kb(int(args[0])))


def cmd_sample(args):
    pid, out = int(args[0]), args[1]
    every = float(args[2]) if len(args) > 2 else 1.0
    t0 = time.monotonic()
    n = 0
    with open(out, "a") as f:
        while True:
            v = rss_kb(pid)
            if v == 0:
                return
            f.write(f"{time.monotonic() - t0:.2f} {v}\n")
            f.flush()
            n += 1
            # fixed schedule: no drift from the time the read takes
            time.sleep(max(0.0, t0 + n * every - time.monotonic()))


def read_soakjson(path):
    with open(path) as f:
        for line in f:
            if line.startswith("SOAKJSON "):
                return json.loads(line[len("SOAKJSON "):])
    die(f"no SOAKJSON line in {path} (did wrk fail?)")


def cmd_report(args):
    wrk_out, rss_file, meta_file, *outs = args
    d = read_soakjson(wrk_out)
    samples = []
    with open(rss_file) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                samples.append((float(parts[0]), int(parts[1])))
    if not samples:
        die(f"no RSS samples in {rss_file}")
    rss_start_kb = int(os.environ["SOAK_RSS_START_KB"])
    rss_end_kb = int(os.environ["SOAK_RSS_END_KB"])
    alive = os.environ.get("SOAK_GATEWAY_ALIVE", "1") == "1"
    max_growth = float(os.environ.get("SOAK_MAX_RSS_GROWTH_PCT", "10"))
    duration_cfg = os.environ.get("SOAK_DURATION", "60")
    conns = os.environ.get("SOAK_CONNECTIONS", "64")
    threads = os.environ.get("SOAK_THREADS", "2")
    warmup = os.environ.get("SOAK_WARMUP", "5")

    all_kb = [v for _, v in samples] + [rss_start_kb, rss_end_kb]
    rss_max_kb = max(all_kb)
    growth = (rss_end_kb - rss_start_kb) / rss_start_kb * 100.0 if rss_start_kb else float("inf")

    dur_s = d["duration_us"] / 1e6
    rps = d["requests"] / dur_s if dur_s > 0 else 0.0
    sock = {k: d[k] for k in ("connect", "read", "write", "timeout")}
    sock_total = sum(sock.values())
    # non-2xx from the script's own check (wrk's "status" counts only >= 400)
    non2xx = max(d["non2xx"], d["status"])
    bad_2xx = d["gql_errors"] + d["empty"]
    errors = non2xx + sock_total + bad_2xx
    ok_errors = errors == 0
    ok_rss = growth < max_growth
    passed = ok_errors and ok_rss and alive

    def mb(kb):
        return f"{kb / 1024.0:.1f}"

    def verdict(ok):
        return "pass" if ok else "**FAIL**"

    sent = d.get("sent", {})
    mix = ", ".join(f"{key} {sent.get(key, 0):,}" for key, _ in ROADS)

    rows = [
        ("load", f"{duration_cfg} s mixed traffic, {conns} connections (`wrk -t{threads} -c{conns}`, 2 s timeout), "
                 f"after a {warmup} s warm-up", ""),
        ("total requests", f"{d['requests']:,} in {dur_s:.1f} s", ""),
        ("req/s", fmt(rps), ""),
        ("latency p50 / p99 ms", f"{d['p50_us'] / 1000.0:.2f} / {d['p99_us'] / 1000.0:.2f}", ""),
        ("non-2xx answers", f"{non2xx:,}", "0 " + verdict(non2xx == 0)),
        ("socket errors (connect / read / write / timeout)",
         f"{sock_total:,} ({sock['connect']} / {sock['read']} / {sock['write']} / {sock['timeout']})",
         "0 " + verdict(sock_total == 0)),
        ("2xx answers with GraphQL `errors` or an empty body", f"{bad_2xx:,}", "0 " + verdict(bad_2xx == 0)),
        ("RSS at start of load (after warm-up) MB", mb(rss_start_kb), ""),
        ("RSS max MB", mb(rss_max_kb), ""),
        ("RSS at end of load MB", mb(rss_end_kb), ""),
        ("RSS growth (end - start) / start", f"{growth:+.1f} %", f"< {max_growth:g} % " + verdict(ok_rss)),
    ]
    if not alive:
        rows.append(("gateway process", "exited during the soak", "**FAIL**"))
    rows.append(("**result**", "**PASS**" if passed else "**FAIL**", ""))

    table = ["| measure | value | criterion |", "|---|--:|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]

    out = ["# Soak: mixed traffic against the gateway (issue 8)\n",
           open(meta_file).read().rstrip() + "\n",
           "## Result\n"]
    out += table
    out.append("")
    out.append(f"Requests sent per road (the connections rotate among them): {mix}.")
    if d.get("bad_sample"):
        out.append(f"\nFirst bad answer seen: `{d['bad_sample'][:200]}`")
    # RSS timeline, about every 10 s
    step = max(1, len(samples) // 6)
    picked = samples[::step]
    if picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    out.append("\nRSS during the load (s since its start: MB): "
               + ", ".join(f"{t:.0f}: {mb(v)}" for t, v in picked)
               + f" ({len(samples)} samples, one a second).")
    out.append("")
    text = "\n".join(out)
    for o in outs:
        with open(o, "w") as f:
            f.write(text)
    print("\n".join(table))
    sys.exit(0 if passed else 1)


COMMANDS = {"rss": cmd_rss, "sample": cmd_sample, "report": cmd_report}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        die("usage: soak.py {" + ",".join(COMMANDS) + "} ...")
    COMMANDS[sys.argv[1]](sys.argv[2:])
