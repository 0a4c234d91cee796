"""Topic registry: names, prefix, specs, configs, co-partitioning check."""

from __future__ import annotations

import pytest

from emowatch.topics.catalog import schema_names
from emowatch.topics.registry import (
    DEFAULT_PARTITIONS_LOCAL,
    DEFAULT_PARTITIONS_PRODUCTION,
    PRODUCER_PARTITIONER,
    SPECS,
    Topics,
    check_topics,
    topic_config,
)

DAY = 86_400_000


def test_names_and_prefix() -> None:
    t = Topics()
    assert (t.audio, t.scores, t.alerts, t.rules, t.dlq) == (
        "emowatch.audio.v1", "emowatch.scores.v1", "emowatch.alerts.v1", "emowatch.rules.v1", "emowatch.dlq.v1",
    )
    assert (t.silences, t.acks, t.notifications) == (
        "emowatch.silences.v1", "emowatch.acks.v1", "emowatch.notifications.v1")
    p = Topics(prefix="t-1234.")
    assert p.scores == "t-1234.emowatch.scores.v1"
    assert [name for name, _ in p.specs()] == [p.audio, p.scores, p.alerts, p.rules, p.dlq, p.silences, p.acks,
                                               p.notifications, p.alerts_replay]
    assert t.alerts_replay == "emowatch.alerts.replay.v1"
    assert list(p) == [name for name, _ in p.specs()]
    assert p.spec_for_name(p.alerts).logical == "alerts"
    assert p.spec_for_name(t.alerts) is None  # other prefix
    assert p.name("rules") == p.rules


def test_specs_match_the_contract() -> None:
    by = {s.logical: s for s in SPECS}
    assert {s.value_schema for s in SPECS} == set(schema_names())
    assert topic_config(by["audio"]) == {"cleanup.policy": "delete", "retention.ms": str(3 * DAY)}
    assert topic_config(by["scores"])["retention.ms"] == str(7 * DAY)
    assert topic_config(by["alerts"])["retention.ms"] == str(30 * DAY)
    assert topic_config(by["dlq"])["retention.ms"] == str(14 * DAY)
    assert topic_config(by["rules"]) == {"cleanup.policy": "compact", "retention.ms": "-1"}
    assert [s.logical for s in SPECS if s.co_partitioned] == ["audio", "scores", "alerts", "alerts_replay"]
    assert (by["alerts_replay"].value_schema, by["alerts_replay"].key) == ("Alert", "call_id")
    assert topic_config(by["alerts_replay"])["retention.ms"] == str(7 * DAY) and not by["alerts_replay"].has_dlq
    assert not by["dlq"].has_dlq and by["scores"].has_dlq
    assert by["rules"].key == "rule_set" and by["audio"].key == "call_id"
    for logical, schema in (("silences", "Silence"), ("acks", "Ack"), ("notifications", "NotificationLog")):
        assert topic_config(by[logical]) == {"cleanup.policy": "compact", "retention.ms": "-1"}
        assert by[logical].value_schema == schema and not by[logical].co_partitioned
        assert by[logical].has_dlq == (logical != "notifications")  # the notifier dead-letters bad control records
    assert (by["silences"].key, by["acks"].key) == ("silence_id", "alert_id")
    assert by["notifications"].key == "receiver|group_key|status"


def test_partition_counts() -> None:
    assert (DEFAULT_PARTITIONS_PRODUCTION, DEFAULT_PARTITIONS_LOCAL) == (12, 4)
    assert PRODUCER_PARTITIONER == "murmur2_random"  # aiokafka/Java-compatible key hashing
    t = Topics(partitions=12, replication=3)
    counts = {s.logical: t.partitions_for(s) for _, s in t.specs()}
    assert counts == {"audio": 12, "scores": 12, "alerts": 12, "rules": 1, "dlq": 12, "silences": 1, "acks": 1,
                      "notifications": 12, "alerts_replay": 12}
    assert t.replication == 3


@pytest.mark.parametrize(
    "kwargs",
    [{"prefix": "bad prefix/"}, {"partitions": 0}, {"partitions": True}, {"replication": 0}, {"prefix": "x" * 240}],
)
def test_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Topics(**kwargs)


def test_unknown_logical_name() -> None:
    with pytest.raises(KeyError, match="unknown logical topic 'video'"):
        Topics().spec("video")


def test_check_topics() -> None:
    t = Topics(prefix="x.", partitions=4)
    good = {name: t.partitions_for(spec) for name, spec in t.specs()}
    assert check_topics(t, {**good, "someone.else": 7}) == []

    missing = dict(good)
    del missing[t.dlq]
    assert check_topics(t, missing) == [f"topic {t.dlq} (dlq) is missing"]

    skewed = {**good, t.scores: 6}
    problems = check_topics(t, skewed)
    assert len(problems) == 1 and t.scores in problems[0] and "co-partitioning" in problems[0]

    # a DLQ with another count does not break anything
    assert check_topics(t, {**good, t.dlq: 1}) == []
    # rules must be one ordered stream
    assert any(t.rules in p for p in check_topics(t, {**good, t.rules: 3}))
    # so are the notifier's control topics; the notification log follows the shared count but joins nothing
    control = check_topics(t, {**good, t.silences: 2, t.acks: 4})
    assert len(control) == 2 and all("expected 1" in p for p in control)
    assert check_topics(t, {**good, t.notifications: 1}) == []
    assert len(check_topics(t, {})) == 9
