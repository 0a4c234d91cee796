"""`emowatch rescore`: arguments and the target topic are checked before the model loads (no broker here)."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from emowatch.streams.cli.main import app
from emowatch.streams.cli.rescore import split_calls

# An unreachable broker and a model that does not exist: getting past the checks would fail with 3 or 4, not 2.
ENV = {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9", "EMOWATCH_KAFKA__TOPIC_PREFIX": "p1."}
BASE = ["rescore", "--model", "/nonexistent/model"]


@pytest.mark.parametrize("topic", ["p1.emowatch.scores.v1", "p1.emowatch.audio.v1", "p1.emowatch.alerts.v1"])
def test_a_production_topic_is_refused_as_target(topic):
    res = CliRunner().invoke(app, [*BASE, "--from", "now", "--scores-topic", topic], env=ENV)
    assert res.exit_code == 2, res.output
    assert "invalid" in res.output and "separate topic" in res.output


@pytest.mark.parametrize("args, why", [
    (["--from", "yesterday"], "ISO-8601"),
    (["--from", "2025-01-02T00:00:00Z", "--to", "2025-01-01T00:00:00Z"], "must be after --from"),
    (["--from", "now", "--scores-topic", "bad name!"], "legal topic name"),
])
def test_bad_arguments_exit_2_before_loading_the_model(args, why):
    if "--scores-topic" not in args:
        args = [*args, "--scores-topic", "p1.emowatch.scores.rescored.v1"]
    res = CliRunner().invoke(app, [*BASE, *args], env=ENV)
    assert res.exit_code == 2, res.output
    assert why in res.output.replace("\n", " ")


def test_a_model_that_cannot_load_exits_3():
    res = CliRunner().invoke(app, [*BASE, "--from", "now", "--scores-topic", "p1.emowatch.scores.rescored.v1"],
                             env=ENV)
    assert res.exit_code == 3, res.output
    assert "cannot load the model" in res.output


def test_calls_are_comma_separated_and_repeatable():
    assert split_calls(["a,b", " c ", ""]) == frozenset({"a", "b", "c"})
