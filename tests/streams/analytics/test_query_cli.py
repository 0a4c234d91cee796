"""`emowatch query ...` through typer's CliRunner on the embedded engine: each command in the three formats
(JSON and CSV parsed back and compared with the query's own rows), option checks, read-only SQL."""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC

import pytest
from analytics_history import DB, NOW_MS
from typer.testing import CliRunner

from emowatch.streams.analytics import queries as q
from emowatch.streams.analytics.call_summary import call_sections, load_call
from emowatch.streams.analytics.output import format_text
from emowatch.streams.analytics.runner import run
from emowatch.streams.cli.main import app

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)


@pytest.fixture(scope="module")
def query(history):
    runner = CliRunner()
    env = {"EMOWATCH_SINK__DATA_DIR": str(history.data_dir)}

    def invoke(*args: str, code: int = 0):
        res = runner.invoke(app, ["query", *args], env=env)
        assert res.exit_code == code, res.output
        return res.output

    return invoke


def _json_rows(result) -> list[dict]:
    out = []
    for row in result.dicts():
        for k, v in row.items():
            if hasattr(v, "isoformat"):
                row[k] = v.replace(tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            elif isinstance(v, tuple):
                row[k] = list(v)
        out.append(row)
    return out


def _csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("args, query_", [
    (["alerts", "--since", "4d"], q.alerts(since=NOW_MS - 4 * q.DAY_MS)),
    (["alerts", "--priority", "high,Medium", "--status", "firing"], q.alerts(since=NOW_MS - q.DAY_MS,
                                                                             priority=["HIGH", "MEDIUM"],
                                                                             status=["FIRING"])),
    (["distribution"], q.distribution()),
    (["distribution", "--granularity", "frame", "--exclude", "", "--role", "customer"],
     q.distribution(granularity="frame", exclude=(), role="CUSTOMER")),
    (["agents", "--business-line", "retail"], q.agents(business_line="retail")),
])
def test_each_command_in_json_and_csv_is_the_query_result(history, query, args, query_):
    expected = run(history.client, query_, DB)
    assert expected.rows, "an empty expectation proves nothing"
    assert json.loads(query(*args, "--format", "json")) == _json_rows(expected)
    rows = _csv_rows(query(*args, "-f", "csv"))
    assert list(rows[0]) == expected.columns and len(rows) == len(expected.rows)
    assert rows == _csv_rows(format_text([("x", expected)], "csv"))
    table = query(*args)
    for row in expected.rows:
        assert all(v in table for v in row if isinstance(v, str) and v)
    assert table.count("\n") > len(expected.rows)


def test_alert_times_are_iso_utc_and_the_table_is_newest_first(query):
    got = json.loads(query("alerts", "--format", "json"))
    assert [(a["alert_id"], a["status"]) for a in got] == [("al-3", "FIRING"), ("al-1", "RESOLVED"), ("al-1", "FIRING")]
    assert all(a["time"].endswith("Z") and "T" in a["time"] for a in got)
    table = query("alerts")
    assert table.index("al-3") < table.index("al-1") and "vip-angry" in table


def test_call_command(history, query):
    sections = call_sections(load_call(history.client, DB, "c-1"))
    got = json.loads(query("call", "c-1", "--format", "json"))
    assert list(got) == ["roles", "segments", "alerts"]
    assert got["segments"] == [dict(zip(sections[1][1].columns, r)) for r in sections[1][1].rows]
    assert [r["role"] for r in got["roles"]] == ["AGENT", "CUSTOMER"] and got["roles"][0]["agent"] == "ag-1"
    assert [(a["alert_id"], a["status"]) for a in got["alerts"]] == [("al-1", "FIRING"), ("al-1", "RESOLVED")]
    blocks = query("call", "c-1", "-f", "csv").split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["# roles", "# segments", "# alerts"]
    segments = _csv_rows(blocks[1].split("\n", 1)[1])
    assert len(segments) == len(got["segments"]) and segments[0]["role"] == "AGENT"
    table = query("call", "c-1")
    assert "agent ag-1" in table and "1.0–2.6 s angry" in table
    assert "no scores stored" in query("call", "nope", code=1)


def test_sql_command(history, query):
    got = json.loads(query("sql", "SELECT audio_id, agent, count() AS n FROM emotion_records "
                                  "WHERE granularity = 'utterance' GROUP BY audio_id, agent ORDER BY audio_id",
                           "-f", "json"))
    per_call = Counter(call_id for call_id, _, _ in history.chunks)
    assert {r["audio_id"]: r["n"] for r in got} == per_call
    assert {r["audio_id"]: r["agent"] for r in got} == {"c-1": "ag-1", "c-2": "ag-1", "c-3": "ag-2", "c-4": ""}
    assert "only read queries" in query("sql", "DELETE FROM scores WHERE 1", code=2)
    assert "READONLY" in query("sql", "SELECT count() FROM scores SETTINGS readonly = 0", code=3)
    assert history.client.query(f"SELECT count() FROM {DB}.scores FINAL").result_rows == [(len(history.chunks),)]


@pytest.mark.parametrize("args, text", [
    (["alerts", "--priority", "urgent"], "--priority"), (["alerts", "--since", "yesterday"], "--since"),
    (["distribution", "--granularity", "word"], "--granularity"), (["agents", "-f", "xml"], "--format"),
])
def test_bad_options_exit_2_naming_the_option(query, args, text):
    assert text in query(*args, code=2)
