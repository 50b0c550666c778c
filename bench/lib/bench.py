#!/usr/bin/env python3
"""Small helpers for bench/run.sh: start the gateway and time its readiness,
parse wrk/pgbench output into JSON records, and render the results table.

Records are JSON objects, one per line, appended to a results file:
  {"kind": "cold"|"explain"|"wrk"|"pgbench"|"ready", "scale": ..., "report": ..., ...}
"""

import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

REPORTS = ["daily_usage", "user_visits", "usageByDay", "visitsPerUser"]
REPORT_LABEL = {
    "daily_usage": "REST daily_usage",
    "user_visits": "REST user_visits",
    "usageByDay": "GraphQL usageByDay",
    "visitsPerUser": "GraphQL visitsPerUser",
}

# Targets from issue 7.
HOT_MIN_RATIO = 5.0
HOT_MAX_P99_MS = 5.0
COLD_MAX_RATIO = 1.5
MAX_RSS_MB = 64.0
MAX_READY_MS = 200.0


def die(msg):
    print(f"bench.py: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- commands


def cmd_freeport(_args):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def cmd_spawn(args):
    """spawn LOG PORT -- CMD...: start CMD detached (its output to LOG), poll
    GET /readiness_check every ~5 ms, print "PID READY_MS" at the first 200.
    READY_MS counts from just before the spawn. The process keeps running."""
    if len(args) < 4 or args[2] != "--":
        die("usage: spawn LOG PORT -- CMD...")
    log, port, cmd = args[0], int(args[1]), args[3:]
    timeout_s = float(os.environ.get("BENCH_READY_TIMEOUT", "120"))
    with open(log, "ab") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    while True:
        now = time.monotonic()
        if proc.poll() is not None:
            die(f"gateway exited with {proc.returncode} before it was ready; see {log}")
        if now - t0 > timeout_s:
            proc.kill()
            die(f"gateway not ready after {timeout_s:.0f} s; see {log}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readiness_check")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                ready_ms = (time.monotonic() - t0) * 1000.0
                print(f"{proc.pid} {ready_ms:.1f}")
                return
        except OSError:
            pass
        time.sleep(0.005)


def parse_value(v):
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def append(results, rec):
    with open(results, "a") as f:
        f.write(json.dumps(rec) + "\n")


def cmd_record(args):
    """record RESULTS KIND SCALE REPORT key=value...: append a plain record."""
    results, kind, scale, report = args[:4]
    rec = {"kind": kind, "scale": scale, "report": report}
    for kv in args[4:]:
        k, _, v = kv.partition("=")
        rec[k] = parse_value(v)
    append(results, rec)


def cmd_wrk(args):
    """wrk RESULTS SCALE REPORT WRK_OUTPUT RSS_KB: parse the BENCHJSON line."""
    results, scale, report, out_file, rss_kb = args
    data = None
    with open(out_file) as f:
        for line in f:
            if line.startswith("BENCHJSON "):
                data = json.loads(line[len("BENCHJSON "):])
    if data is None:
        die(f"no BENCHJSON line in {out_file} (did wrk fail?)")
    rec = {"kind": "wrk", "scale": scale, "report": report, "rss_kb": int(rss_kb or 0)}
    rec.update(data)
    append(results, rec)


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    # nearest-rank
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def cmd_pgbench(args):
    """pgbench RESULTS SCALE REPORT OUTPUT LOG_PREFIX CANCELLED WALL_S"""
    results, scale, report, out_file, log_prefix, cancelled, wall_s = args
    text = open(out_file).read()

    def grab(pattern, conv=float):
        m = re.search(pattern, text, re.M)
        return conv(m.group(1)) if m else None

    rec = {
        "kind": "pgbench", "scale": scale, "report": report,
        "processed": grab(r"number of transactions actually processed: (\d+)", int),
        "failed": grab(r"number of failed transactions: (\d+)", int) or 0,
        "latency_avg_ms": grab(r"latency average = ([\d.]+) ms"),
        "tps": grab(r"^tps = ([\d.]+)"),
        "aborted_clients": len(re.findall(r"aborted in command", text)),
        "cancelled": int(cancelled),
        "wall_s": float(wall_s),
    }
    lat = []
    d = os.path.dirname(log_prefix) or "."
    base = os.path.basename(log_prefix)
    for name in os.listdir(d):
        if name.startswith(base + "."):
            with open(os.path.join(d, name)) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[2].isdigit():
                        lat.append(int(parts[2]))
    lat.sort()
    rec["logged"] = len(lat)
    rec["p50_ms"] = percentile(lat, 50) / 1000.0 if lat else None
    rec["p99_ms"] = percentile(lat, 99) / 1000.0 if lat else None
    if rec["tps"] is None:
        rec["tps"] = 0.0
    append(results, rec)


# ---------------------------------------------------------------- report


def fmt(v, digits=1, none="–"):
    if v is None:
        return none
    if isinstance(v, float):
        if v != 0 and abs(v) < 10 ** -digits * 5:
            return f"{v:.{digits + 2}f}"
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def load(results):
    recs = []
    with open(results) as f:
        for line in f:
            line = line.strip()
            if line:
                recs.append(json.loads(line))
    return recs


def build_report(recs, meta_text):
    by = {}
    for r in recs:
        by.setdefault((r["kind"], r["scale"], r["report"]), r)
    scales = []
    for r in recs:
        if r["scale"] not in scales:
            scales.append(r["scale"])

    out = []
    w = out.append
    w("# Gateway benchmark results\n")
    w(meta_text.rstrip() + "\n")

    targets = []  # (description, met: bool|None, detail)

    # ---- hot table
    w("## Under load (wrk, hot) vs the database alone (pgbench)\n")
    dur = os.environ.get("BENCH_DURATION", "10")
    conns = os.environ.get("BENCH_CONNECTIONS", "64")
    w(f"`wrk -t2 -c{conns} -d{dur}s --latency` against the gateway; `pgbench -n -c {conns} -j 2 -T {dur}` "
      "on the plain SQL. req/s counts only 2xx/3xx answers; p50/p99 are wrk's (all answers); "
      "errors = non-2xx + socket errors (connect/read/write/timeout; wrk's timeout is 2 s, and an "
      "error answer arriving after it counts under both). "
      "RSS is the gateway's max VmRSS during that report's load (one process serves all four "
      "reports in turn, so it is cumulative). pgbench p50/p99 come from its per-transaction log.\n")
    w("| scale | report | gateway req/s | p50 ms | p99 ms | errors | RSS MB | pgbench tps | pgbench p50 / p99 ms | gateway / pgbench | hot target |")
    w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    max_rss_by_scale = {}
    pg_tps_txt = "–"
    for scale in scales:
        for rep in REPORTS:
            wr = by.get(("wrk", scale, rep))
            pg = by.get(("pgbench", scale, rep))
            if not wr and not pg:
                continue
            gw_rps = p50 = p99 = rss_mb = None
            err_txt = "–"
            errors = None
            if wr:
                dur = wr["duration_us"] / 1e6
                ok = wr["requests"] - wr["status"]
                gw_rps = ok / dur if dur > 0 else 0.0
                # wrk keeps no latency for answers slower than its timeout: no figure then.
                p50 = wr["p50_us"] / 1000.0 if ok > 0 and wr["p50_us"] > 0 else None
                p99 = wr["p99_us"] / 1000.0 if ok > 0 and wr["p99_us"] > 0 else None
                rss_mb = wr["rss_kb"] / 1024.0
                max_rss_by_scale[scale] = max(max_rss_by_scale.get(scale, 0.0), rss_mb)
                parts = [(k, wr[k]) for k in ("status", "connect", "read", "write", "timeout") if wr[k]]
                errors = sum(v for _, v in parts)
                err_txt = f"{errors:,}"
                if parts:
                    names = {"status": "non-2xx"}
                    err_txt += " (" + ", ".join(f"{names.get(k, k)} {v:,}" for k, v in parts) + ")"
            pg_tps = pg_lat = None
            pg_tps_txt = "–"
            ratio_txt = "–"
            ratio = None
            if pg:
                pg_tps = pg["tps"]
                pg_tps_txt = fmt(pg_tps) if pg["processed"] else "0 (none finished)"
                pg_lat = f"{fmt(pg['p50_ms'], 2)} / {fmt(pg['p99_ms'], 2)}"
                if pg["cancelled"]:
                    pg_lat += f" (cut: {pg['cancelled']} in flight cancelled after {pg['wall_s']:.0f} s)"
                if gw_rps is not None:
                    if pg_tps and pg_tps > 0:
                        ratio = gw_rps / pg_tps
                        ratio_txt = f"{ratio:,.2f}×"
                    else:
                        # nothing finished in the window: pgbench's rate < 1/window
                        bound = gw_rps * pg["wall_s"]
                        ratio = float("inf") if gw_rps > 0 else 0.0
                        ratio_txt = f"> {bound:,.0f}× (pgbench: 0 done)" if gw_rps > 0 else "– (neither finished any)"
            met = None
            why = []
            if wr and pg:
                if ratio is None or ratio < HOT_MIN_RATIO:
                    why.append(f"ratio < {HOT_MIN_RATIO:g}×")
                if p99 is None or p99 > HOT_MAX_P99_MS:
                    why.append(f"p99 > {HOT_MAX_P99_MS:g} ms")
                if errors:
                    why.append("errors")
                met = not why
            tgt = "–" if met is None else ("met" if met else "NOT met: " + ", ".join(why))
            if met is not None:
                targets.append((f"hot {scale} {REPORT_LABEL[rep]}: ≥ {HOT_MIN_RATIO:g}× pgbench, p99 ≤ {HOT_MAX_P99_MS:g} ms",
                                met, f"{ratio_txt}, p99 {fmt(p99, 2)} ms, errors {errors}"))
            w(f"| {scale} | {REPORT_LABEL[rep]} | {fmt(gw_rps)} | {fmt(p50, 2)} | {fmt(p99, 2)} | {err_txt} | "
              f"{fmt(rss_mb)} | {pg_tps_txt} | {pg_lat or '–'} | {ratio_txt} | {tgt} |")
    w("")

    # ---- cold table
    w("## Cold: first request on a fresh gateway process vs the raw SQL\n")
    w("Each report's cold figure is the very first request to a freshly started gateway "
      "(restarted between reports, so its cache is empty), timed by `curl -w %{time_total}`. "
      "Raw SQL is the `Execution Time` of `EXPLAIN (ANALYZE, BUFFERS)` of the plain SQL, run just "
      "before (plans in `plans-<scale>.txt`). Ready is that process's spawn → first 200 from "
      "`/readiness_check`.\n")
    w("| scale | report | cold ms | HTTP | bytes | raw SQL ms | cold / raw | ready ms | cold target (10m: ≤ 1.5× raw) |")
    w("|---|---|--:|--:|--:|--:|--:|--:|---|")
    for scale in scales:
        for rep in REPORTS:
            c = by.get(("cold", scale, rep))
            e = by.get(("explain", scale, rep))
            if not c and not e:
                continue
            cold_ms = c["time_total_s"] * 1000.0 if c else None
            raw_ms = e.get("exec_ms") if e else None
            ratio = cold_ms / raw_ms if (cold_ms is not None and raw_ms) else None
            good = bool(c) and c["http_code"] == 200 and c.get("body_ok", 1) == 1
            ratio_txt = f"{ratio:.2f}×" if ratio is not None else "–"
            if c and not good:
                ratio_txt = f"≥ {ratio_txt} (failed: HTTP {c['http_code']})" if ratio is not None else "failed"
            tgt = "–"
            if scale == "10m" and ratio is not None:
                ok = ratio <= COLD_MAX_RATIO and good
                tgt = "met" if ok else "NOT met"
                targets.append((f"cold 10m {REPORT_LABEL[rep]}: ≤ {COLD_MAX_RATIO:g}× raw SQL",
                                ok, f"{fmt(cold_ms)} ms vs {fmt(raw_ms)} ms = {ratio_txt}"))
            w(f"| {scale} | {REPORT_LABEL[rep]} | {fmt(cold_ms)} | {c['http_code'] if c else '–'} | "
              f"{fmt(c['bytes']) if c else '–'} | {fmt(raw_ms)} | "
              f"{ratio_txt} | {fmt(c['ready_ms']) if c else '–'} | {tgt} |")
    w("")

    # ---- ready + RSS
    w("## Ready time and memory\n")
    w("| scale | gateway starts | ready ms (min / median / max) | max RSS MB under load |")
    w("|---|--:|--:|--:|")
    for scale in scales:
        rs = [r["ready_ms"] for r in recs if r["kind"] == "ready" and r["scale"] == scale]
        if rs:
            w(f"| {scale} | {len(rs)} | {min(rs):.1f} / {statistics.median(rs):.1f} / {max(rs):.1f} | "
              f"{fmt(max_rss_by_scale.get(scale))} |")
            targets.append((f"ready {scale}: ≤ {MAX_READY_MS:g} ms after process start (worst of {len(rs)} starts)",
                            max(rs) <= MAX_READY_MS, f"max {max(rs):.1f} ms, median {statistics.median(rs):.1f} ms"))
        if scale == "10m" and scale in max_rss_by_scale:
            v = max_rss_by_scale[scale]
            targets.append((f"RSS 10m: ≤ {MAX_RSS_MB:g} MB under load", v <= MAX_RSS_MB, f"max {v:.1f} MB"))
    w("")

    # ---- targets summary
    w("## Targets (issue 7)\n")
    if targets:
        n_met = sum(1 for _, m, _ in targets if m)
        w(f"{n_met} of {len(targets)} met.\n")
        w("| target | met? | measured |")
        w("|---|---|---|")
        for desc, met, detail in targets:
            w(f"| {desc} | {'yes' if met else '**no**'} | {detail} |")
    w("")
    return "\n".join(out)


def cmd_report(args):
    results, meta_file, *outs = args
    text = build_report(load(results), open(meta_file).read())
    for o in outs:
        with open(o, "w") as f:
            f.write(text)
    print(text)


COMMANDS = {
    "freeport": cmd_freeport,
    "spawn": cmd_spawn,
    "record": cmd_record,
    "wrk": cmd_wrk,
    "pgbench": cmd_pgbench,
    "report": cmd_report,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        die("usage: bench.py {" + ",".join(COMMANDS) + "} ...")
    COMMANDS[sys.argv[1]](sys.argv[2:])
