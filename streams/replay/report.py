"""Print a replay's results (rich tables) and write them as JSON or CSV (``--out``)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from emowatch.streams.replay.diff import CSV_COLUMNS, DiffReport
from emowatch.streams.replay.runner import ReplayOutcome, dumps

__all__ = ["EVENT_COLUMNS", "print_diff", "print_summary", "print_sweep", "write_out"]

EVENT_COLUMNS = ["replay_id", "alert_id", "status", "rule_id", "rule_set", "rule_version", "priority", "action",
                 "business_line", "call_id", "role", "value", "threshold", "started_ms", "fired_ms", "event_time"]
SWEEP_COLUMNS = ["rule_id", "param", "value", "alerts", "calls", "set_alerts", "business_line", "line_alerts"]


def print_summary(console: Console, outcome: ReplayOutcome) -> None:
    s = outcome.summary()
    w = s["window"]
    console.print(f"replay [bold]{s['replay_id']}[/]: rule set {escape(s['rule_set'])} ({s['rule_version']}), "
                  f"business line {escape(s['business_line'])}, source {s['source']}"
                  + (f" ({escape(s['scores_topic'])})" if s["scores_topic"] else ""))
    console.print(f"window: calls that started from {w['from']} to {w['to'] or 'the end of the data'}; "
                  f"{s['messages']} score messages, {s['calls']} calls"
                  + (f"; skipped {', '.join(f'{k} {v}' for k, v in s['skipped'].items())}" if s["skipped"] else ""))
    if s["source_stats"].get("offsets_fallback"):
        console.print("offsets: scanned from the earliest offsets (the broker's offsets for --from were wrong)")
    if outcome.sweep is None:
        console.print(f"alerts: [bold]{s['alerts']}[/] ({s['events']} events) "
                      + ", ".join(f"{escape(k)} {v}" for k, v in s["alerts_by_rule"].items()))


def print_sweep(console: Console, sweep: dict[str, Any]) -> None:
    lines = sorted({line for row in sweep["values"] for line in row["by_business_line"]})
    table = Table(title=f"sweep {escape(sweep['sweep'])} ({sweep['mode']} pass"
                        + (f": {escape(sweep['why_separate'])}" if sweep["why_separate"] else "") + ")")
    table.add_column(sweep["param"], justify="right")
    table.add_column("alerts", justify="right")
    table.add_column("calls", justify="right")
    for line in lines:
        table.add_column(escape(line), justify="right")
    table.add_column("all rules", justify="right")
    for row in sweep["values"]:
        table.add_row(row["label"], str(row["alerts"]), str(row["calls"]),
                      *[str(row["by_business_line"].get(line, 0)) for line in lines], str(row["set_alerts"]))
    console.print(table)


def print_diff(console: Console, report: DiffReport, production_from: str) -> None:
    table = Table(title=f"diff against production ({escape(production_from)})")
    for name in ("rule", "business line", "production", "replay", "same", "changed", "earlier", "later",
                 "value", "added", "removed", "example calls"):
        table.add_column(name, justify="left" if name in ("rule", "business line", "example calls") else "right")
    doc = report.to_dict()
    for r in doc["by_rule"]:
        ex = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["examples"].items())
        table.add_row(escape(r["rule_id"]), escape(r["business_line"]), *(str(r[k]) for k in (
            "production", "replay", "same", "changed", "earlier", "later", "value_changed", "added", "removed")),
            escape(ex))
    t = doc["totals"]
    table.add_row("[bold]total[/]", "", *(f"[bold]{t[k]}[/]" for k in (
        "production", "replay", "same", "changed", "earlier", "later", "value_changed", "added", "removed")), "")
    console.print(table)


def write_out(path: Path, outcome: ReplayOutcome, report: DiffReport | None = None) -> None:
    """JSON (``.json``): the summary and the events, the diff or the sweep. CSV (``.csv``): their rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        if report is not None:
            _csv(path, CSV_COLUMNS, report.rows())
        elif outcome.sweep is not None:
            _csv(path, SWEEP_COLUMNS, _sweep_rows(outcome.sweep))
        else:
            _csv(path, EVENT_COLUMNS, outcome.events)
        return
    doc: dict[str, Any] = {"replay": outcome.summary()}
    if report is not None:
        doc["diff"] = report.to_dict()
    elif outcome.sweep is not None:
        doc["sweep"] = outcome.sweep
    else:
        doc["events"] = outcome.events
    path.write_text(dumps(doc), encoding="utf-8")


def _sweep_rows(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for v in sweep["values"]:
        base = {"rule_id": sweep["rule_id"], "param": sweep["param"], "value": v["label"], "alerts": v["alerts"],
                "calls": v["calls"], "set_alerts": v["set_alerts"]}
        rows.append({**base, "business_line": "*", "line_alerts": v["alerts"]})
        rows += [{**base, "business_line": line, "line_alerts": n} for line, n in v["by_business_line"].items()]
    return rows


def _csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
