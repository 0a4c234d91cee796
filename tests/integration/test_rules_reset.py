"""`emowatch rules reset` on the real local broker with a real rules worker (business line retail).

Calls of window A are published, then - after a boundary time - calls of window B. The worker handles
both; a reset while it runs is refused; after it stops, a dry run changes nothing; the reset moves the
group's offsets to B's first offsets and clears the call table's changelog; the restarted worker
re-produces B's alerts exactly once more (the same alert ids and events) and nothing of A.
"""
from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from emowatch.bench.rules import RULES_10
from emowatch.rules import parse_ruleset, step
from emowatch.rules.testing import interleave, random_timeline, synthetic_call
from emowatch.streams.cli.main import app
from emowatch.streams.kafka.admin import end_offsets
from emowatch.streams.kafka.changelog import live_keys
from emowatch.streams.kafka.clients import topics_for
from emowatch.streams.kafka.consumer_groups import committed_offsets, group_state
from emowatch.streams.kafka.scores_publisher import publish_scores
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.demo import wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack
from emowatch.topics.registry import partition_of

pytestmark = pytest.mark.integration
LINE = "retail"
TIMEOUT = 120


def _window(name: str, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return interleave([synthetic_call(f"{name}-{i}", random_timeline(rng, 20, episodes=("angry", "fearful", "sad")),
                                      business_line=LINE, noise=0.3, seed=seed + i) for i in range(n)])


def _oracle(messages: list[dict]) -> set[tuple[str, str]]:
    ruleset, states, out = parse_ruleset(RULES_10), {}, []
    for m in messages:
        states[m["call_id"]], events = step(states.get(m["call_id"]), m, ruleset)
        out += events
    return {(a["alert_id"], a["status"]) for a in out}


def _alerts(kafka) -> list[dict]:
    t = topics_for(kafka)
    tail = TopicTail(kafka, {t.alerts: "Alert"})
    try:
        return tail.catch_up({t.alerts: []}, TIMEOUT)[t.alerts]
    finally:
        tail.close()


def _cli(kafka, *args: str):
    env = {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "EMOWATCH_KAFKA__TOPIC_PREFIX":
           kafka.topic_prefix, "EMOWATCH_KAFKA__PARTITIONS": str(kafka.partitions)}
    return CliRunner().invoke(app, ["rules", "reset", "--business-line", LINE, *args], env=env)


def test_reset_reprocesses_the_window_once_more_and_refuses_while_workers_run(broker, tmp_path, unique):
    first, second = _window("a", 6, 1), _window("b", 6, 100)
    want_a, want_b = _oracle(first), _oracle(second)
    assert want_a and want_b and not want_a & want_b
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES_10)
    stack = LocalStack(data_dir=tmp_path / "stack", broker=broker, topic_prefix=f"rr{unique}.").start()
    kafka = stack.kafka_settings()
    t = topics_for(kafka)
    group = f"{kafka.topic_prefix}emowatch-rules-{LINE}"
    changelog = f"{group}-calls-changelog"
    args = ["rules", "--business-line", LINE, "--rules-file", str(rules_file)]
    try:
        publish_scores(kafka, first)  # acknowledged: every record of A has a timestamp before the boundary
        boundary = int(time.time() * 1000) + 1
        while int(time.time() * 1000) <= boundary:  # B's records are stamped at or after the boundary
            pass
        publish_scores(kafka, second)
        expected = Counter(partition_of(m["call_id"].encode(), kafka.partitions) for m in first)
        expected = {p: expected.get(p, 0) for p in range(kafka.partitions)}  # B's first offset per partition

        stack.start_worker("rules", args)
        wait_for_lag_zero(stack, group, [t.scores], TIMEOUT)
        run1 = _alerts(kafka)
        assert {(a["alert_id"], a["status"]) for a in run1} == want_a | want_b

        refused = _cli(kafka, "--to-datetime", str(boundary))  # the worker is running
        assert refused.exit_code == 1, refused.output
        assert "refused" in refused.output and "stop every rules worker" in refused.output.replace("\n", " ")
        ends = {p: e for (_t, p), e in end_offsets(kafka.bootstrap_servers, [t.scores]).items()}
        assert committed_offsets(kafka, group, t.scores, list(ends)) == ends

        stack.stop_worker("rules")  # SIGTERM: the worker leaves its group (streams/kafka/group_leave.py)
        assert group_state(kafka, group) == ("EMPTY", 0)
        keys_before, records_before = live_keys(kafka, changelog)
        assert sum(map(len, keys_before.values())) == 12  # one state per call

        dry = _cli(kafka, "--to-datetime", str(boundary), "--dry-run")
        assert dry.exit_code == 0, dry.output
        for p in range(kafka.partitions):
            assert f"partition {p}: {ends[p]} -> {expected[p]} " in dry.output
        assert "12 call state(s) to clear" in dry.output and "nothing changed" in dry.output
        assert committed_offsets(kafka, group, t.scores, list(ends)) == ends
        assert live_keys(kafka, changelog) == (keys_before, records_before)

        done = _cli(kafka, "--to-datetime", str(boundary))
        assert done.exit_code == 0, done.output
        assert committed_offsets(kafka, group, t.scores, list(ends)) == expected
        assert sum(map(len, live_keys(kafka, changelog)[0].values())) == 0

        stack.start_worker("rules-again", args)
        wait_for_lag_zero(stack, group, [t.scores], TIMEOUT)
        again = Counter((a["alert_id"], a["status"]) for a in _alerts(kafka))
        assert {k for k, n in again.items() if n == 2} == want_b  # B once more, the same ids and events
        assert {k for k, n in again.items() if n == 1} == want_a and max(again.values()) == 2
    finally:
        stack.stop()
