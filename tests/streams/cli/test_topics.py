"""`emowatch topics create|check|describe` against the real local broker (unique topic prefix per test)."""
from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from typer.testing import CliRunner

from emowatch.streams.cli.main import app
from emowatch.streams.kafka.admin import topic_partitions
from emowatch.topics.registry import Topics

pytestmark = pytest.mark.integration
PARTITIONS = 4


def topics_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run ``emowatch topics <args>`` in-process; returns (exit code, output)."""
    result = CliRunner().invoke(app, ["topics", *args], env=env, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def env(broker, unique) -> dict[str, str]:
    return {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "EMOWATCH_KAFKA__TOPIC_PREFIX": f"cli{unique}.", "EMOWATCH_KAFKA__PARTITIONS": str(PARTITIONS)}


@pytest.fixture
def expected(env) -> Topics:
    return Topics(prefix=env["EMOWATCH_KAFKA__TOPIC_PREFIX"], partitions=PARTITIONS)


def lines_about(output: str, name: str) -> list[str]:
    return [line for line in output.splitlines() if name in line.split()]


def test_create_is_idempotent_and_check_and_describe_agree(env, expected, broker):
    names = list(expected)
    code, out = topics_cli(env, "describe")
    assert code == 0
    assert all("(MISSING)" in lines_about(out, n)[0] for n in names), out

    code, out = topics_cli(env, "check")
    assert code == 1
    assert all(any("is missing" in line for line in lines_about(out, n)) for n in names), out

    code, out = topics_cli(env, "create")
    assert code == 0, out
    assert sorted(line.split()[1] for line in out.splitlines() if line.startswith("created")) == sorted(names)
    actual = topic_partitions(broker.bootstrap_servers)
    assert {n: actual[n] for n in names} == {n: expected.partitions_for(s) for n, s in expected.specs()}
    assert actual[expected.rules] == 1 and actual[expected.scores] == PARTITIONS

    code, out = topics_cli(env, "create")  # second run: nothing to do
    assert code == 0, out
    assert "created" not in out
    assert sorted(line.split()[1] for line in out.splitlines() if line.startswith("exists")) == sorted(names)

    code, out = topics_cli(env, "check")
    assert code == 0 and "all topics present and co-partitioned" in out and "problem" not in out

    code, out = topics_cli(env, "describe")
    assert code == 0 and "problem" not in out
    for name, spec in expected.specs():
        (line,) = lines_about(out, name)
        assert f"value={spec.value_schema}" in line
        assert line.endswith(f"partitions={expected.partitions_for(spec)} (ok)")
    assert "cleanup=compact" in lines_about(out, expected.rules)[0]


def test_partition_counts_that_break_co_partitioning_are_reported(env, expected, broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    wrong = {expected.scores: PARTITIONS - 1, expected.rules: 2}
    for fut in admin.create_topics([NewTopic(n, p, 1) for n, p in wrong.items()]).values():
        fut.result(timeout=30)

    code, out = topics_cli(env, "create")
    assert code == 1
    created = {line.split()[1] for line in out.splitlines() if line.startswith("created")}
    assert created == set(expected) - set(wrong)
    problems = [line for line in out.splitlines() if line.startswith("problem")]
    assert len(problems) == 2, out
    (scores_problem,) = [p for p in problems if expected.scores in p]
    assert f"has {PARTITIONS - 1} partitions, expected {PARTITIONS}" in scores_problem
    assert "co-partitioning" in scores_problem
    (rules_problem,) = [p for p in problems if expected.rules in p]
    assert "has 2 partitions, expected 1" in rules_problem
    assert topic_partitions(broker.bootstrap_servers)[expected.scores] == PARTITIONS - 1  # never altered

    code, out = topics_cli(env, "check")
    assert code == 1
    assert sorted(line for line in out.splitlines() if line.startswith("problem")) == sorted(problems)

    code, out = topics_cli(env, "describe")
    assert code == 0
    assert lines_about(out, expected.scores)[0].endswith(f"partitions={PARTITIONS - 1} (expected {PARTITIONS})")
    assert lines_about(out, expected.audio)[0].endswith(f"partitions={PARTITIONS} (ok)")


@pytest.mark.parametrize("bad,message", [
    ({"EMOWATCH_KAFKA__SASL_MECHANISM": "PLAIN", "EMOWATCH_KAFKA__SASL_USERNAME": "svc",
      "EMOWATCH_KAFKA__SASL_PASSWORD": "hunter2-secret"}, "security_protocol SASL_SSL or SASL_PLAINTEXT"),
    ({"EMOWATCH_KAFKA__SECURITY_PROTOCOL": "SASL_SSL", "EMOWATCH_KAFKA__SASL_USERNAME": "svc",
      "EMOWATCH_KAFKA__SASL_PASSWORD": "hunter2-secret"}, "sasl_mechanism is required"),
    ({"EMOWATCH_KAFKA__SASL_PASWORD": "hunter2-secret"}, "EMOWATCH_KAFKA__SASL_PASWORD"),
])
def test_bad_settings_exit_2_with_a_clear_message_and_no_secret(bad, message):
    env = {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1", **bad}
    for command in ("create", "check", "describe"):
        code, out = topics_cli(env, command)
        assert code == 2, out
        assert message in " ".join(out.split())
        assert "hunter2-secret" not in out
