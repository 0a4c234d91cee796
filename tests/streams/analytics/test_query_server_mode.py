"""The analyses against a ClickHouse *server*: `emowatch query ... --clickhouse-url` and `emowatch report call
--clickhouse-url` through clickhouse-connect's HTTP client, the path production uses. The server is
``tests/clickhouse_relay.py`` (ClickHouse's HTTP interface answered by chDB) over the analytics history, so
each command's answer over HTTP must equal its answer from the embedded engine, and the read-only guard must
hold over HTTP too (the ``readonly=1`` setting travels with the request)."""
from __future__ import annotations

import json

import pytest
from clickhouse_relay import ClickHouseRelay
from typer.testing import CliRunner

from emowatch.streams.cli.main import app
from emowatch.streams.local.broker import free_port

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB) behind an HTTP server


@pytest.fixture(scope="module")
def server(history):
    relay = ClickHouseRelay(history.data_dir, free_port()).start()  # the history's engine, served over HTTP
    yield f"http://default:@127.0.0.1:{relay.port}"
    relay.close()


def _invoke(args: list[str], env: dict[str, str], code: int = 0) -> str:
    res = CliRunner().invoke(app, args, env=env)
    assert res.exit_code == code, res.output
    return res.output


@pytest.mark.parametrize("args", [
    ["query", "alerts", "--since", "4d"],
    ["query", "distribution"],
    ["query", "distribution", "--granularity", "frame", "--exclude", ""],
    ["query", "agents"],
    ["query", "call", "c-1"],
    ["query", "sql", "SELECT granularity, count() AS n FROM emotion_records GROUP BY granularity ORDER BY granularity"],
])
def test_every_query_answers_the_same_from_a_server_as_from_the_embedded_engine(history, server, args):
    embedded = json.loads(_invoke([*args, "--format", "json"], {"EMOWATCH_SINK__DATA_DIR": str(history.data_dir)}))
    served = json.loads(_invoke([*args, "--format", "json"], {"EMOWATCH_SINK__CLICKHOUSE_URL": server}))
    assert embedded, "the history gives every command something to show"
    assert served == embedded


def test_read_only_sql_is_refused_by_the_server_too(history, server):
    env = {"EMOWATCH_SINK__CLICKHOUSE_URL": server}
    before = history.client.query("SELECT count() FROM emowatch.replays").result_rows[0][0]
    out = _invoke(["query", "sql", "INSERT INTO emowatch.replays (replay_id) VALUES ('x')"], env, code=2)
    assert "read-only" in out.lower() or "only" in out.lower()
    # past the text check, the engine refuses a write smuggled into a SELECT (readonly=1 sent with the request)
    out = _invoke(["query", "sql", "SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')"], env, code=3)
    assert "readonly" in out.lower().replace("-", "").replace(" ", "") or "READONLY" in out
    assert history.client.query("SELECT count() FROM emowatch.replays").result_rows[0][0] == before


def test_the_report_picture_is_the_same_from_a_server(history, server, tmp_path):
    here, there = tmp_path / "embedded.png", tmp_path / "served.png"
    _invoke(["report", "call", "c-1", "--png", str(here)], {"EMOWATCH_SINK__DATA_DIR": str(history.data_dir)})
    _invoke(["report", "call", "c-1", "--png", str(there)], {"EMOWATCH_SINK__CLICKHOUSE_URL": server})
    assert here.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and there.read_bytes() == here.read_bytes()
