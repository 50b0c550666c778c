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

COLD_REPORTS = ["daily_usage", "user_visits", "usageByDay_DAY", "usageByDay_WEEK",
                "usageByDay_MONTH", "visitsPerUser_top100"]
COLD_LABEL = {
    "daily_usage": "REST daily_usage",
    "user_visits": "REST user_visits",
    "usageByDay_DAY": "GraphQL usageByDay DAY, New York, whole span",
    "usageByDay_WEEK": "GraphQL usageByDay WEEK, New York, whole span",
    "usageByDay_MONTH": "GraphQL usageByDay MONTH, New York, whole span",
    "visitsPerUser_top100": "GraphQL visitsPerUser(first: 100, VISITS_DESC) with totalCount",
}
COLD_MODE_LABEL = {"cache": "fresh process", "ttl0": "fresh, `CACHE_TTL_SECONDS=0`"}

# Targets from issue 7 (hot) and issue 13 (cold, at 10M tokens).
HOT_MIN_RATIO = 5.0
HOT_MAX_P99_MS = 5.0
COLD_MAX_MS = {"user_visits": 200.0}
COLD_DEFAULT_MAX_MS = 50.0
COLD_MIN_SPEEDUP = 40.0
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


def cmd_coldset(args):
    """coldset BENCH DIR FIRST_DAY END_DAY: the cold reports' GraphQL bodies and plain SQL
    over the whole span (tokens from FIRST_DAY 00:00 UTC to END_DAY 00:00 UTC), in New York
    local dates: from the local day before FIRST_DAY to END_DAY."""
    import datetime
    import shutil
    from zoneinfo import ZoneInfo

    bench, out, first, end = args
    ny = ZoneInfo("America/New_York")
    d_from = datetime.date.fromisoformat(first) - datetime.timedelta(days=1)
    d_to = datetime.date.fromisoformat(end)

    def utc_midnight(d):
        local = datetime.datetime.combine(d, datetime.time(0), tzinfo=ny)
        return local.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    for name in ("daily_usage", "user_visits", "visitsPerUser_top100"):
        shutil.copy(os.path.join(bench, "sql", name + ".sql"), os.path.join(out, name + ".sql"))
    shutil.copy(os.path.join(bench, "queries", "visitsPerUser_top100.json"),
                os.path.join(out, "visitsPerUser_top100.json"))
    sql = open(os.path.join(bench, "sql", "usageByDay_span.sql")).read()
    body = json.load(open(os.path.join(bench, "queries", "usageByDay_span.json")))
    for g, trunc in (("DAY", "day"), ("WEEK", "week"), ("MONTH", "month")):
        with open(os.path.join(out, f"usageByDay_{g}.sql"), "w") as f:
            f.write(sql.format(trunc=trunc, from_utc=utc_midnight(d_from),
                               to_utc=utc_midnight(d_to + datetime.timedelta(days=1))))
        b = dict(body)
        b["variables"] = {"from": d_from.isoformat(), "to": d_to.isoformat(), "granularity": g}
        with open(os.path.join(out, f"usageByDay_{g}.json"), "w") as f:
            json.dump(b, f)


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
    w("Each figure is the very first request to a freshly started gateway (a new process per "
      "report, mode and run, so its cache is empty), timed by `curl -w %{time_total}` as the client "
      "sees it, the median of the runs (min–max beside it; the raw SQL likewise); "
      "\"fresh process\" runs with the cache settings as given, the second row of each "
      "report with `CACHE_TTL_SECONDS=0`. Raw SQL is the `Execution Time` of `EXPLAIN (ANALYZE, "
      "BUFFERS, TIMING OFF)` of the plain SQL over `tokens` giving the same report, run on the "
      "same database just before (plans in `plans-<scale>.txt`); raw / gateway is how many times "
      "faster the gateway answered than the database alone computes the report. Ready is that "
      "process's spawn → first 200 from `/readiness_check`. Targets (issue 13) apply at 10m and 100m: "
      f"≤ {COLD_DEFAULT_MAX_MS:g} ms (user_visits ≤ {COLD_MAX_MS['user_visits']:g} ms) and "
      f"≥ {COLD_MIN_SPEEDUP:g}× faster than the raw SQL, in both modes.\n")
    w("| scale | report | mode | cold ms | HTTP | bytes | raw SQL ms | raw / gateway | ready ms | target (10m, 100m) |")
    w("|---|---|---|--:|--:|--:|--:|--:|--:|---|")
    every = {}
    for r in recs:
        every.setdefault((r["kind"], r["scale"], r["report"]), []).append(r)

    def spread(values):  # "median (min–max of n)" when there is more than one
        if len(values) < 2:
            return ""
        return f" ({fmt(min(values))}–{fmt(max(values))} of {len(values)})"

    for scale in scales:
        for rep in COLD_REPORTS:
            raws = [e["exec_ms"] for e in every.get(("explain", scale, rep), []) if e.get("exec_ms") not in (None, "")]
            raw_ms = statistics.median(raws) if raws else None
            for mode in ("cache", "ttl0"):
                runs = every.get((f"cold_{mode}", scale, rep))
                if not runs:
                    continue
                c = dict(runs[0])
                times = [r["time_total_s"] * 1000.0 for r in runs]
                cold_ms = statistics.median(times)
                c["http_code"] = next((r["http_code"] for r in runs if r["http_code"] != 200), 200)
                c["body_ok"] = min(r.get("body_ok", 1) for r in runs)
                c["same_body"] = min(r.get("same_body", 1) for r in runs)
                c["ready_ms"] = statistics.median(r["ready_ms"] for r in runs)
                good = c["http_code"] == 200 and c.get("body_ok", 1) == 1
                speedup = raw_ms / cold_ms if (raw_ms and cold_ms > 0) else None
                sp_txt = f"{speedup:,.1f}×" if speedup is not None else "–"
                notes = []
                if not good:
                    notes.append(f"failed: HTTP {c['http_code']}")
                if c.get("same_body", 1) != 1:
                    notes.append("body differs from the fresh-process one")
                limit = COLD_MAX_MS.get(rep, COLD_DEFAULT_MAX_MS)
                tgt = "–"
                if scale in ("10m", "100m"):
                    why = []
                    if cold_ms > limit:
                        why.append(f"> {limit:g} ms")
                    if speedup is None or speedup < COLD_MIN_SPEEDUP:
                        why.append(f"< {COLD_MIN_SPEEDUP:g}×")
                    if not good or c.get("same_body", 1) != 1:
                        why.append("answer")
                    met = not why
                    tgt = (f"≤ {limit:g} ms, ≥ {COLD_MIN_SPEEDUP:g}×: " +
                           ("met" if met else "**NOT met** (" + ", ".join(why) + ")"))
                    targets.append((f"cold {scale} {COLD_LABEL[rep]} ({COLD_MODE_LABEL[mode]}): ≤ {limit:g} ms and "
                                    f"≥ {COLD_MIN_SPEEDUP:g}× faster than raw SQL", met,
                                    f"{fmt(cold_ms)} ms vs raw {fmt(raw_ms)} ms = {sp_txt}"))
                if notes:
                    tgt += " (" + "; ".join(notes) + ")"
                w(f"| {scale} | {COLD_LABEL[rep]} | {COLD_MODE_LABEL[mode]} | {fmt(cold_ms)}{spread(times)} | {c['http_code']} | "
                  f"{fmt(c['bytes'])} | {fmt(raw_ms)}{spread(raws)} | {sp_txt} | {fmt(c['ready_ms'])} | {tgt} |")
    w("")

    # ---- legacy writer (pgbench-writer.sh)
    wlines, wtargets = writer_section(recs)
    if wlines:
        w("## Legacy writer: the rollup triggers' cost per write (pgbench)\n")
        w("`bench/pgbench-writer.sh` (details and the run's settings in `pgbench-writer-latest.md`): "
          "the tokens service's two writes on `gw_bench_writer`, with the rollup triggers enabled "
          "and disabled, alternating; overhead = mean latency with / without − 1.\n")
        for line in wlines:
            w(line)
        w("")
        targets.extend(wtargets)

    # ---- HTTP caching, 304s, compression, the PostGraphile peer (issue 14)
    hlines, htargets = http_section(recs)
    if hlines:
        w("## HTTP: GraphQL beside REST, 304s, gzip, PostGraphile 4 (issue 14)\n")
        for line in hlines:
            w(line)
        w("")
        targets.extend(htargets)

    # ---- rollup build (migrate-build.sh)
    mb = [r for r in recs if r["kind"] == "migrate_build"]
    if mb:
        w("## Building the rollups on 10M existing rows\n")
        w("`bench/migrate-build.sh` (details in `migrate-build-latest.md`).\n")
        w("| what | seconds | target |")
        w("|---|--:|---|")
        for r in mb:
            tgt = "–"
            if r.get("target_s"):
                met = r["seconds"] <= r["target_s"]
                tgt = f"≤ {r['target_s']:g} s: " + ("met" if met else "**NOT met**")
                targets.append((f"rollup build: {r['what']} ≤ {r['target_s']:g} s", met, f"{r['seconds']:.1f} s"))
            w(f"| {r['what']} | {r['seconds']:.1f} | {tgt} |")
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
    w("## Targets (issues 7, 13 and 14)\n")
    if targets:
        n_met = sum(1 for _, m, _ in targets if m)
        w(f"{n_met} of {len(targets)} met.\n")
        w("| target | met? | measured |")
        w("|---|---|---|")
        for desc, met, detail in targets:
            w(f"| {desc} | {'yes' if met else '**no**'} | {detail} |")
    w("")
    return "\n".join(out)


# ---------------------------------------------------------------- legacy writer (issue 13)

WRITER_MAX_OVERHEAD = 0.25
WRITER_LABEL = {"insert": "insert a token (random user)", "use": "set used_at (random unused token)"}


def writer_section(recs):
    """Lines of the legacy writer's table and its targets, from "writer" records."""
    rows = [r for r in recs if r["kind"] == "writer"]
    if not rows:
        return [], []
    lines, targets = [], []
    w = lines.append
    rounds = sorted({r["round"] for r in rows})
    syncs = []
    for r in rows:
        if r.get("sync", "on") not in syncs:
            syncs.append(r.get("sync", "on"))
    w("| write | synchronous_commit | triggers | tps (mean of rounds) | mean latency ms (mean of rounds) | per round: latency ms | overhead per write | target ≤ 25 % |")
    w("|---|---|---|--:|--:|---|--:|---|")
    for sync, write in [(sy, wr) for sy in syncs for wr in ("insert", "use")]:
        by_mode = {}
        for mode in ("on", "off"):
            rs = sorted((r for r in rows if r["report"] == write and r["mode"] == mode
                         and r.get("sync", "on") == sync), key=lambda r: r["round"])
            by_mode[mode] = rs
        if not by_mode["on"] or not by_mode["off"]:
            continue
        lat = {m: statistics.mean(r["latency_ms"] for r in by_mode[m]) for m in by_mode}
        tps = {m: statistics.mean(r["tps"] for r in by_mode[m]) for m in by_mode}
        overhead = lat["on"] / lat["off"] - 1.0
        paired = [on["latency_ms"] / off["latency_ms"] - 1.0
                  for on, off in zip(by_mode["on"], by_mode["off"]) if on["round"] == off["round"]]
        spread = (f" (rounds: {min(paired) * 100:+.1f} % .. {max(paired) * 100:+.1f} %, "
                  f"median {statistics.median(paired) * 100:+.1f} %)") if paired else ""
        met = overhead <= WRITER_MAX_OVERHEAD
        for mode in ("on", "off"):
            per = ", ".join(f"{r['latency_ms']:.3f}" for r in by_mode[mode])
            oh = f"**{overhead * 100:+.1f} %**{spread}" if mode == "on" else ""
            tg = ("met" if met else "NOT met") if mode == "on" else ""
            w(f"| {WRITER_LABEL[write]} | {sync} | {mode} | {tps[mode]:,.0f} | {lat[mode]:.3f} | {per} | {oh} | {tg} |")
        targets.append((f"legacy writer, {WRITER_LABEL[write]}, synchronous_commit={sync}: overhead of the rollup triggers ≤ 25 %",
                        met, f"{lat['on']:.3f} ms vs {lat['off']:.3f} ms = {overhead * 100:+.1f} % "
                        f"({len(rounds)} rounds)"))
    return lines, targets


# ---------------------------------------------------------------- HTTP (issue 14)

HTTP_RUNS = [
    ("rest_daily_usage", "REST `daily_usage` (the baseline)"),
    ("gql_usageByDay", "GraphQL `usageByDay` (DAY, New York, a month)"),
    ("gql_visitsPerUser", "GraphQL `visitsPerUser(first: 100)` with `user { firstName }`"),
    ("rest_daily_usage_304", "REST `daily_usage`, `If-None-Match` → 304"),
    ("gql_usageByDay_304", "GraphQL `usageByDay` POST, `If-None-Match` → 304"),
    ("rest_user_visits", "REST `user_visits`, identity"),
    ("rest_user_visits_gzip", "REST `user_visits`, `Accept-Encoding: gzip, deflate`"),
    ("pg4_usageByDay", "PostGraphile 4: `usageByDay` (SQL function)"),
    ("pg4_visitsPerUser", "PostGraphile 4: `allUserVisits(first: 100)` with `userByUserId { firstName }`"),
]


def answer_of(path):
    """A body's meaning: its bytes, or for a GraphQL answer its JSON without
    `extensions.cache` (the instants a cached answer carries differ per fill)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        d = json.loads(raw)
    except ValueError:
        return raw
    if not (isinstance(d, dict) and "data" in d):
        return raw
    if isinstance(d.get("extensions"), dict):
        d["extensions"].pop("cache", None)
        if not d["extensions"]:
            del d["extensions"]
    return json.dumps(d, sort_keys=True).encode()


def cmd_same_answer(args):
    """same-answer A B: exit 0 when the two bodies mean the same (see answer_of)."""
    a, b = args
    sys.exit(0 if answer_of(a) == answer_of(b) else 1)


def cmd_http_equivalent(args):
    """http-equivalent RESULTS SCALE GW_USAGE PG4_USAGE GW_VISITS PG4_VISITS USERS:
    record whether the peer's answers hold the gateway's numbers (the queries are equivalent)."""
    results, scale, gw_u, pg_u, gw_v, pg_v, users = args

    def data(path):
        with open(path) as f:
            d = json.load(f)
        if d.get("errors") or not d.get("data"):
            die(f"{path}: not an answer: {json.dumps(d)[:300]}")
        return d["data"]

    gu = {b["date"]: (b["visits"], b["tokensIssued"], b["uniqueUsers"])
          for b in data(gw_u)["usageByDay"] if b["tokensIssued"]}
    pu = {b["date"]: (int(b["visits"]), int(b["tokensIssued"]), int(b["uniqueUsers"]))
          for b in data(pg_u)["usageByDay"]["nodes"]}
    gv = [(e["node"]["visits"], e["node"]["user"]["firstName"]) for e in data(gw_v)["visitsPerUser"]["edges"]]
    pv = [(int(n["visits"]), n["userByUserId"]["firstName"]) for n in data(pg_v)["allUserVisits"]["nodes"]]
    # The visit counts in order must agree, and the users above the last count (at the cut,
    # equal counts may be broken differently).
    counts = [v for v, _ in gv]
    same_v = len(gv) == min(100, int(users)) and counts == [v for v, _ in pv]
    if same_v and counts:
        same_v = sorted(x for x in gv if x[0] != counts[-1]) == sorted(x for x in pv if x[0] != counts[-1])
    append(results, {"kind": "http_equivalent", "scale": scale, "report": "peer",
                     "usage_same": int(gu == pu), "usage_buckets": len(gu),
                     "visits_same": int(bool(same_v)), "visits_rows": len(gv)})
    print(f"equivalent: usageByDay {gu == pu} ({len(gu)} days), visitsPerUser {bool(same_v)} ({len(gv)} rows)")


def http_section(recs):
    """Lines and targets of the http phase, from "wrk" records named "http:*"."""
    every = {}
    for r in recs:
        if r["kind"] == "wrk" and r["report"].startswith("http:"):
            every.setdefault((r["scale"], r["report"][5:]), []).append(r)
    if not every:
        return [], []

    def rate(r):
        return r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0

    # Each row: the run of median rate, with the median of the runs' p50 and p99 (a
    # percentile of one run would let one stall of the machine stand for the row), and
    # the rates of all runs in the order they ran.
    runs, rates = {}, {}
    for key, rs in every.items():
        by_rate = sorted(rs, key=rate)
        row = dict(by_rate[(len(rs) - 1) // 2])
        for p in ("p50_us", "p99_us"):
            row[p] = statistics.median(r[p] for r in rs)
        row["p99_all"] = [r["p99_us"] for r in rs]
        runs[key] = row
        rates[key] = [rate(r) for r in rs]
    lines, targets = [], []
    w = lines.append
    peer = next((r for r in recs if r["kind"] == "http_peer"), None)
    w("`bench/run.sh` phase `http`: one gateway per scale, every answer warmed once, then wrk "
      f"(-t2, {os.environ.get('BENCH_CONNECTIONS', '64')} connections, {os.environ.get('BENCH_DURATION', '10')} s) "
      "per row; the 304 rows send back the ETag the gateway gave. The PostGraphile rows run "
      + (f"postgraphile@{peer['version']} on Node {peer['node']} (`--cluster-workers {peer['workers']}`, "
         f"pool {peer['pool']}, `NODE_ENV=production`, `--disable-query-log`) " if peer else "PostGraphile 4 ")
      + "on the same database with the equivalent queries over the legacy tables "
      "(`bench/peer/postgraphile.sql`, `bench/queries/postgraphile-*.json`); nothing else ran meanwhile. "
      + ("wrk ran on CPU 0 and the server (gateway or PostGraphile) on CPU 1 (`taskset`), as on two machines."
         if any(r["kind"] == "http_pin" and r.get("pinned") == 1 for r in recs)
         else "wrk and the server shared the cores.") + "\n")
    for r in recs:
        if r["kind"] == "http_equivalent":
            w(f"Equivalence of the peer's answers ({r['scale']}): usageByDay "
              f"{'same' if r['usage_same'] else '**DIFFERENT**'} ({r['usage_buckets']} days), visitsPerUser "
              f"{'same' if r['visits_same'] else '**DIFFERENT**'} ({r['visits_rows']} rows).\n")
    n_rounds = max(len(v) for v in rates.values())
    w(f"Each row: the median of {n_rounds} runs (the rounds ran one after another, each row once "
      "per round): the run of median rate, the median p50 and p99 of the runs; every run's rate "
      "and p99 are in the last columns.\n")
    w("| scale | request | req/s | × REST | p50 ms | p99 ms | bytes/answer on the wire | non-2xx/3xx, errors | runs, req/s | runs, p99 ms |")
    w("|---|---|--:|--:|--:|--:|--:|---|---|---|")

    notes = []
    scales = []
    for (sc, _) in runs:
        if sc not in scales:
            scales.append(sc)
    for sc in scales:
        base = runs.get((sc, "rest_daily_usage"))
        for name, label in HTTP_RUNS:
            r = runs.get((sc, name))
            if not r:
                continue
            x = rate(r) / rate(base) if base and rate(base) else None
            errs = r["connect"] + r["read"] + r["write"] + r["timeout"]
            w(f"| {sc} | {label} | {rate(r):,.0f} | {fmt(x, 2)} | {r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | "
              f"{r['bytes'] / max(r['requests'], 1):,.0f} | {r['status']}, {errs} | "
              f"{', '.join(f'{v:,.0f}' for v in rates[(sc, name)])} | "
              f"{', '.join(f'{v / 1000:.2f}' for v in r['p99_all'])} |")
        for name, peer_name in (("gql_usageByDay", "pg4_usageByDay"), ("gql_visitsPerUser", "pg4_visitsPerUser")):
            r = runs.get((sc, name))
            if not (r and base):
                continue
            x = rate(r) / rate(base)
            targets.append((f"{sc}: hot {name[4:]} ≥ 0.8× hot REST daily_usage", x >= 0.8,
                            f"{rate(r):,.0f} vs {rate(base):,.0f} req/s = {x:.2f}×"))
            targets.append((f"{sc}: hot {name[4:]} p99 ≤ 5 ms at 64 connections", r["p99_us"] <= 5000,
                            f"{r['p99_us'] / 1000:.2f} ms"))
            p = runs.get((sc, peer_name))
            if p:
                y = rate(r) / rate(p) if rate(p) else float("inf")
                targets.append((f"{sc}: {name[4:]} ≥ 10× PostGraphile 4", y >= 10,
                                f"{rate(r):,.0f} vs {rate(p):,.0f} req/s = {y:.1f}×"))
        n = runs.get((sc, "rest_daily_usage_304"))
        if n and base:
            targets.append((f"{sc}: the 304 path at least as fast as the hot REST path", rate(n) >= rate(base),
                            f"{rate(n):,.0f} vs {rate(base):,.0f} req/s"))
        for r in recs:
            if r["kind"] == "http_size" and r["scale"] == sc:
                ratio = r["identity_bytes"] / max(r["gzip_bytes"], 1)
                users = "" if sc == "demo" else " (100k users)"
                g = runs.get((sc, "rest_user_visits_gzip"))
                i = runs.get((sc, "rest_user_visits"))
                notes.append(f"- {sc}: `user_visits` is {r['identity_bytes']:,} bytes identity and {r['gzip_bytes']:,} gzip "
                  f"({ratio:.1f}× smaller; decodes to the identity bytes: {'yes' if r['gzip_same'] else '**NO**'})"
                  + (f"; hot {rate(g):,.0f} req/s with gzip, {rate(i):,.0f} identity" if g and i else "")
                  + (f"; for scale, the same bytes by the command-line tools at their strongest: gzip -9 "
                     f"{r['gzip9_bytes']:,} ({r['identity_bytes'] / max(r['gzip9_bytes'], 1):.1f}×)" if r.get("gzip9_bytes") else "")
                  + (f", zstd -19 {r['zstd19_bytes']:,} ({r['identity_bytes'] / r['zstd19_bytes']:.1f}×)" if r.get("zstd19_bytes") else "")
                  + ".")
                if sc != "demo":
                    targets.append((f"{sc}: user_visits{users} with gzip ≥ 10× smaller than identity",
                                    ratio >= 10 and bool(r["gzip_same"]),
                                    f"{r['identity_bytes']:,} / {r['gzip_bytes']:,} bytes = {ratio:.1f}×"))
    if notes:
        w("")
        lines.extend(notes)
    return lines, targets


def write_page(title, meta_file, preface, lines, targets, outs):
    """A results page of its own: title, the run's header, the table and its targets."""
    text = [f"# {title}\n", open(meta_file).read().rstrip() + "\n", *preface]
    text += lines
    text.append("")
    for desc, met, detail in targets:
        text.append(f"- {desc}: {'yes' if met else '**no**'} ({detail})")
    text.append("")
    out = "\n".join(text)
    for o in outs:
        with open(o, "w") as f:
            f.write(out)
    print(out)


def cmd_http_report(args):
    """http-report JSONL META OUT...: the http phase's own results page."""
    jsonl, meta_file, *outs = args
    lines, targets = http_section(load(jsonl))
    write_page("HTTP benchmark: GraphQL beside REST, 304s, gzip, PostGraphile 4 (issue 14)",
               meta_file, [], lines, targets, outs)


def cmd_writer(args):
    """writer JSONL META OUT...: the legacy writer's own results page."""
    jsonl, meta_file, *outs = args
    lines, targets = writer_section(load(jsonl))
    write_page("Legacy writer: pgbench of the tokens service's writes with and without the rollup triggers",
               meta_file, ["Overhead per write = mean latency with the triggers / mean latency without − 1.\n"],
               lines, targets, outs)


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
    "writer": cmd_writer,
    "coldset": cmd_coldset,
    "http-equivalent": cmd_http_equivalent,
    "same-answer": cmd_same_answer,
    "http-report": cmd_http_report,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        die("usage: bench.py {" + ",".join(COMMANDS) + "} ...")
    COMMANDS[sys.argv[1]](sys.argv[2:])
