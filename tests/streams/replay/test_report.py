"""Printing and writing a replay's results: tables for the summary, the sweep and the diff; JSON and CSV files."""
from __future__ import annotations

import csv
import io
import json

from replay_cases import T0, calls, ruleset
from rich.console import Console

from emowatch.streams.replay import report
from emowatch.streams.replay.params import Scope, Window
from emowatch.streams.replay.runner import ReplayRequest, compare, run_replay
from emowatch.streams.replay.sweep import parse_sweep


def _run(rs, sweep=None):
    return run_replay(ReplayRequest(rs, "case.yaml", Window(T0), Scope("*"), "kafka",
                                    sweep=parse_sweep(sweep) if sweep else None), calls())


def _printed(fn, *args) -> str:
    buf = io.StringIO()
    fn(Console(file=buf, width=200), *args)
    return buf.getvalue()


def test_plain_replay_prints_and_writes_events(tmp_path):
    out = _run(ruleset())
    text = _printed(report.print_summary, out)
    assert out.replay_id in text and f"alerts: {out.alerts}" in text and "angry 7" in text
    report.write_out(tmp_path / "r.json", out)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["replay"]["alerts"] == out.alerts == 7 and len(doc["events"]) == len(out.events)
    report.write_out(tmp_path / "r.csv", out)
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [r["alert_id"] for r in rows] == [e["alert_id"] for e in out.events]
    assert rows[0]["replay_id"] == out.replay_id and list(rows[0]) == report.EVENT_COLUMNS


def test_sweep_and_diff_tables_and_files(tmp_path):
    sweep = _run(ruleset(), "angry.above=0.75:0.95:0.1")
    text = _printed(report.print_sweep, sweep.sweep)
    assert "angry.above=0.75:0.95:0.1" in text and "retail" in text
    report.write_out(tmp_path / "s.csv", sweep)
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [(r["value"], r["business_line"], r["line_alerts"]) for r in rows] == [
        ("0.75", "*", "7"), ("0.75", "retail", "7"), ("0.85", "*", "2"), ("0.85", "retail", "2"),
        ("0.95", "*", "2"), ("0.95", "retail", "2")]  # replay_cases.py: 0.8 and 0.97 episodes
    diff = compare(_run(ruleset(**{"above: 0.75": "above: 0.85"})), _run(ruleset()).events)
    text = _printed(report.print_diff, diff, "test")
    assert "diff against production (test)" in text and "total" in text
    report.write_out(tmp_path / "d.json", sweep, diff)
    assert json.loads((tmp_path / "d.json").read_text())["diff"]["totals"]["removed"] == 5
