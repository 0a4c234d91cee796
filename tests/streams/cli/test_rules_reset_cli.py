"""`emowatch rules reset`: a bad time is refused before the broker is contacted (no broker here)."""
from __future__ import annotations

from typer.testing import CliRunner

from emowatch.streams.cli.main import app

ENV = {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"}  # unreachable: contacting it would exit 3


def test_an_invalid_time_exits_2():
    res = CliRunner().invoke(app, ["rules", "reset", "--business-line", "vip", "--to-datetime", "last week"], env=ENV)
    assert res.exit_code == 2, res.output
    assert "ISO-8601" in res.output


def test_the_business_line_and_time_are_required():
    res = CliRunner().invoke(app, ["rules", "reset", "--to-datetime", "now"], env=ENV)
    assert res.exit_code == 2 and "--business-line" in res.output


def test_an_unreachable_broker_exits_3_without_a_traceback():
    env = {**ENV, "EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    res = CliRunner().invoke(app, ["rules", "reset", "--business-line", "vip", "--to-datetime", "now", "--dry-run"],
                             env=env)
    assert res.exit_code == 3, res.output
    assert "broker error" in res.output and "Traceback" not in res.output
