"""While another process (a running sink) holds the embedded ClickHouse, `emowatch query` / `report` / `export`
exit 2 saying why and what to do, instead of a traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from emowatch.streams.cli.main import app

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB) in a second process

HOLD = ("import sys, clickhouse_connect\n"
        "c = clickhouse_connect.get_client(interface='chdb', path=sys.argv[1])\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n")


@pytest.fixture
def hold(tmp_path):
    """``release = hold()``: tmp_path's embedded ClickHouse opened by another process until ``release()`` (or
    the end of the test)."""
    (tmp_path / "clickhouse").mkdir(exist_ok=True)
    procs = []

    def start():
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "clickhouse")], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        line = proc.stdout.readline()  # returns when the holder has opened it (or died: '')
        assert line.strip() == "held", "the holder did not open the engine"

        def release():
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0
        return release

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=30)


@pytest.fixture
def held(tmp_path, hold):
    hold()
    return tmp_path


@pytest.mark.parametrize("args", [["query", "alerts"], ["query", "sql", "SELECT 1"],
                                  ["report", "call", "c-1", "--png", "x.png"],
                                  ["export", "embeddings", "--call", "c-1", "--out", "out"]])
def test_a_held_engine_is_explained(held, args):
    res = CliRunner().invoke(app, [*args, "--data-dir", str(held)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "only one process may open it" in text and "Stop the sink" in text and "--clickhouse-url" in text
    assert "Traceback" not in res.output


def test_once_released_the_engine_opens(tmp_path, hold):
    release = hold()
    assert CliRunner().invoke(app, ["query", "agents", "--data-dir", str(tmp_path)]).exit_code == 2
    release()
    res = CliRunner().invoke(app, ["query", "agents", "--data-dir", str(tmp_path)])
    assert res.exit_code == 2 and "has no database 'emowatch'" in " ".join(res.output.split())  # opened: empty
