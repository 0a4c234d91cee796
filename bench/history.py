"""``emowatch bench history``: the history store at scale - sink throughput, and query latency over a long history.

Two parts, one JSON (``--json FILE``):

* **sink** (``bench/history_sink.py``, ``measure_sink``): score messages per second from the scores topic on the
  local broker through decode, batching and insert into the embedded engine, against one insert per message in
  the same run. Run in a child process (chDB opens one data path per process). Keys ``sink_msgs_per_s``,
  ``sink_frames_per_s``, ``sink_single_msgs_per_s``, ``sink_batch_over_single``; null with ``sink.error`` when
  that module is missing or fails.
* **queries**: a generated history (``bench/history_data.py``: 1,000,000 chunk rows, ``--quick`` 100,000, with
  logits, both roles, ~0.2 % re-delivered copies not yet merged, alerts) in a fresh embedded engine with every
  migration; then, each after one warm-up run, :data:`RUNS` timed runs (p50, p90, max) of

  - every dashboard variable and panel target (``infra/grafana/dashboards``), expanded by ``bench/grafana_sql.py``
    as Grafana would send them for the last 24 h and the last 7 days (variables "All"; ``call_id`` = the history's
    ~5 minute call);
  - every query command's default invocation (``streams/analytics/queries.py``, ``default_queries(now_ms)``)
    when that module exists;
  - a call's timeline, ``HistoryReader.call`` (the console's call page and ``emowatch report``), for the ~5 minute
    call (``timeline_ms``) and for the longest call, 60 minutes (``timeline_longest_ms``); and the console's call
    list and alert list (``HistoryReader.calls`` / ``alerts``) for the last 24 h;
  - the seed's two example queries on the ``emotion_records`` view (for information).

  Timing starts once the background merges of the fresh history have stopped (at most :data:`SETTLE_S`).

  ``worst_query_p50_ms`` is the largest p50 of the dashboard (variables and panels) and the query commands.

Targets (reported, never asserted): >= 5,000 score messages/s (>= 250,000 frames/s) and >= 20x one insert per
message; every panel and query command p50 <= 500 ms; a call's timeline <= 100 ms.
"""
from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emowatch.bench.machine import machine_info

RUNS = 5
DB = "emowatch"
RANGES = {"24h": 86_400_000, "7d": 7 * 86_400_000}
TARGETS = {"sink_msgs_per_s_min": 5_000, "sink_frames_per_s_min": 250_000, "sink_batch_over_single_min": 20.0,
           "query_p50_ms_max": 500.0, "timeline_ms_max": 100.0}
SETTLE_S = 300
SINK_KEYS = ("sink_msgs_per_s", "sink_frames_per_s", "sink_single_msgs_per_s", "sink_batch_over_single")


def timed(fn: Callable[[], Any], runs: int = RUNS) -> dict[str, Any]:
    """One warm-up call, then ``runs`` timed calls: p50 / p90 / max milliseconds and the result's length."""
    out = fn()
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    return {"p50_ms": round(statistics.median(ms), 1), "p90_ms": round(ms[min(len(ms) - 1, int(0.9 * len(ms)))], 1),
            "max_ms": round(ms[-1], 1), "rows": len(out) if out is not None else 0}


def sink_part(quick: bool, progress: bool) -> dict[str, Any]:
    """``measure_sink`` in a child process; its keys, or nulls and the reason."""
    if importlib.util.find_spec("emowatch.bench.history_sink") is None:
        return {**dict.fromkeys(SINK_KEYS), "error": "bench/history_sink.py (measure_sink) is not in this tree"}
    with tempfile.TemporaryDirectory(prefix="emowatch-bench-sink-") as tmp:
        out = Path(tmp) / "sink.json"
        code = ("import json, sys\nfrom emowatch.bench.history_sink import measure_sink\n"
                f"res = measure_sink(quick={quick!r}, progress={progress!r})\n"
                f"open({str(out)!r}, 'w').write(json.dumps(res, default=lambda o: getattr(o, 'item', o.__str__)()))\n")
        proc = subprocess.run([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0 or not out.exists():
            return {**dict.fromkeys(SINK_KEYS), "error": f"measure_sink failed (exit {proc.returncode}): "
                                                           f"{proc.stderr.strip()[-800:]}"}
        return json.loads(out.read_text())


def _dashboard_queries(client: Any, now_ms: int, call_id: str) -> dict[str, Callable[[], Any]]:
    from emowatch.bench.grafana_sql import ALL, expanded_targets, resolve_variables
    from emowatch.streams.resources import grafana_dir

    def run(sql: str) -> list[tuple]:
        return client.query(sql).result_rows

    out: dict[str, Callable[[], Any]] = {}
    for path in sorted((grafana_dir() / "dashboards").glob("*.json")):
        dash = json.loads(path.read_text(encoding="utf-8"))
        for span, width in RANGES.items():
            values = {"business_line": ALL, "agent": ALL, "call_id": [call_id]}
            x, variables = resolve_variables(dash, now_ms - width, now_ms, values, run)
            for name, sql in variables.items():
                out[f"dashboard {span} variable {name}"] = lambda s=sql: run(s)
            for key, sql in expanded_targets(dash, x):
                out[f"dashboard {span} panel {key}"] = lambda s=sql: run(s)
    return out


def _command_queries(client: Any, now_ms: int) -> tuple[dict[str, Callable[[], Any]], str | None]:
    if importlib.util.find_spec("emowatch.streams.analytics") is None or \
            importlib.util.find_spec("emowatch.streams.analytics.queries") is None:
        return {}, "streams/analytics/queries.py (default_queries) is not in this tree"
    from emowatch.streams.analytics.queries import default_queries

    out = {}
    for name, q in default_queries(now_ms).items():
        sql = q.sql.replace("{db}", DB)
        out[f"query {name}"] = lambda s=sql, p=dict(q.params): client.query(s, parameters=p).result_rows
    return out, None


def _parts(client: Any) -> dict[str, int]:
    rows = client.query(f"SELECT table, count() FROM system.parts WHERE database = '{DB}' AND active "
                        "GROUP BY table").result_rows
    return {t: int(n) for t, n in rows}


def _settle(client: Any, timeout_s: float = SETTLE_S) -> float:
    """Wait (at most ``timeout_s``) until no background merge runs, so that the timings do not share the CPUs
    with the merges of the freshly inserted history; the seconds waited."""
    t0 = time.monotonic()
    quiet = 0
    while time.monotonic() - t0 < timeout_s and quiet < 3:
        busy = client.query(f"SELECT count() FROM system.merges WHERE database = '{DB}'").result_rows[0][0]
        quiet = 0 if busy else quiet + 1
        time.sleep(0.5)  # polling interval of a wait with a deadline
    return round(time.monotonic() - t0, 1)


#: the seed's example queries on the ``emotion_records`` view (README): timed for information, no target
SEED_QUERIES = {
    "seed query: triggered records today": "SELECT * FROM {db}.emotion_records WHERE alert_triggered = 1 AND "
                                           "toDate(timestamp) = toDate({now}) ORDER BY timestamp DESC LIMIT 10",
    "seed query: emotion distribution": "SELECT emotion, count() FROM {db}.emotion_records "
                                        "WHERE emotion NOT IN ('unknown', 'other') GROUP BY emotion",
}


def query_part(quick: bool, progress: bool, rows: int | None = None) -> dict[str, Any]:
    """Generate the history in a temporary engine and time every query (see the module docstring)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from emowatch.bench.history_data import SIZES, generate
    from emowatch.streams.sink.clickhouse import apply_schema, connect
    from emowatch.streams.sink.history import HistoryReader

    n = rows or SIZES["quick" if quick else "full"]
    with tempfile.TemporaryDirectory(prefix="emowatch-bench-history-") as tmp:
        client = connect(None, Path(tmp), DB)
        try:
            apply_schema(client, DB)
            plan = generate(client, DB, n, progress=progress)
            settled_s = _settle(client)
            parts = _parts(client)
            reader = HistoryReader(client, DB)
            now = plan.now_ms
            dashboard = _dashboard_queries(client, now, plan.typical_call)
            commands, commands_note = _command_queries(client, now)
            console = {
                "timeline typical call": lambda: reader.call(plan.typical_call)["roles"],
                "timeline longest call": lambda: reader.call(plan.longest_call)["roles"],
                "console call list 24h": lambda: reader.calls(now - RANGES["24h"], now),
                "console alerts": lambda: reader.alerts(),
            }
            now_sql = f"fromUnixTimestamp64Milli({now})"
            seed = {k: lambda s=sql.format(db=DB, now=now_sql): client.query(s).result_rows
                    for k, sql in SEED_QUERIES.items()}
            jobs = {**dashboard, **commands, **console, **seed}
            results: dict[str, dict[str, Any]] = {}
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, disable=not progress) as bar:
                task = bar.add_task(f"queries x {RUNS + 1}", total=len(jobs))
                for name, fn in jobs.items():
                    results[name] = timed(fn)
                    bar.advance(task)
        finally:
            client.close()
    groups = {"dashboard": sorted(dashboard), "query_commands": sorted(commands), "console": sorted(console),
              "seed_view_queries": sorted(seed)}
    targeted = groups["dashboard"] + groups["query_commands"]
    worst = max(targeted, key=lambda k: results[k]["p50_ms"])
    return {"history": {**plan.as_dict(), "active_parts": parts, "merges_settled_s": settled_s},
            "queries": results, "groups": groups, "query_commands_note": commands_note, "worst_query": worst,
            "worst_query_p50_ms": results[worst]["p50_ms"],
            "timeline_ms": results["timeline typical call"]["p50_ms"],
            "timeline_longest_ms": results["timeline longest call"]["p50_ms"]}


def run(quick: bool = True, progress: bool = True, rows: int | None = None) -> dict[str, Any]:
    """Both parts; the report (see the module docstring)."""
    load_start = round(os.getloadavg()[0], 2)
    sink = sink_part(quick, progress)
    q = query_part(quick, progress, rows)
    met = {
        "sink": None if sink.get("sink_msgs_per_s") is None else bool(
            sink["sink_msgs_per_s"] >= TARGETS["sink_msgs_per_s_min"]
            and (sink.get("sink_frames_per_s") or 0) >= TARGETS["sink_frames_per_s_min"]
            and (sink.get("sink_batch_over_single") or 0) >= TARGETS["sink_batch_over_single_min"]),
        "queries": q["worst_query_p50_ms"] <= TARGETS["query_p50_ms_max"],
        "timeline": q["timeline_ms"] <= TARGETS["timeline_ms_max"],
        "timeline_longest": q["timeline_longest_ms"] <= TARGETS["timeline_ms_max"],
    }
    return {
        "benchmark": "history", "quick": quick,
        "machine": machine_info(("chdb", "chdb-core", "clickhouse-connect", "pyarrow", "confluent-kafka"),
                                load_avg_1m_start=load_start, load_avg_1m_end=round(os.getloadavg()[0], 2)),
        **{k: sink.get(k) for k in SINK_KEYS},
        "worst_query_p50_ms": q["worst_query_p50_ms"], "worst_query": q["worst_query"],
        "timeline_ms": q["timeline_ms"], "timeline_longest_ms": q["timeline_longest_ms"],
        "targets": {**TARGETS, "met": met},
        "sink": sink, "history": q["history"], "runs_per_query": RUNS,
        "query_commands_note": q["query_commands_note"], "groups": q["groups"], "queries": q["queries"],
    }


def main(quick: bool, json_path: Path | None) -> None:
    """Run, print a summary, write JSON if asked."""
    res = run(quick=quick)
    h = res["history"]
    print(f"history: {h['rows']:,} chunk rows (+{h['duplicates']:,} re-delivered copies), {h['calls']:,} calls, "
          f"{h['alert_events']:,} alert events; generated in {h['seconds']} s")
    if res["sink_msgs_per_s"] is None:
        print(f"sink: not measured - {res['sink'].get('error')}")
    else:
        print(f"sink: {res['sink_msgs_per_s']:,} score msgs/s ({res['sink_frames_per_s']:,} frames/s), "
              f"{res['sink_batch_over_single']}x one insert per message")
    print(f"{'p50 ms':>8} {'p90 ms':>8} {'rows':>6}  query ({res['runs_per_query']} runs after a warm-up)")
    for name, r in res["queries"].items():
        print(f"{r['p50_ms']:>8} {r['p90_ms']:>8} {r['rows']:>6}  {name}")
    if res["query_commands_note"]:
        print(f"query commands: not timed - {res['query_commands_note']}")
    met = res["targets"]["met"]
    print(f"worst panel/command p50 {res['worst_query_p50_ms']} ms ({res['worst_query']}; target <= 500): "
          f"{'met' if met['queries'] else 'NOT met'}")
    print(f"a call's timeline: {res['timeline_ms']} ms for the ~5 min call (target <= 100: "
          f"{'met' if met['timeline'] else 'NOT met'}), {res['timeline_longest_ms']} ms for the "
          f"{h['longest_s'] // 60} min call")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2))
