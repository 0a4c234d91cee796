"""The topic registry: the only place a topic name is spelled.

``Topics(prefix, partitions, replication)`` gives the full names of the nine
emowatch topics (``.audio .scores .alerts .rules .dlq .silences .acks .notifications .alerts_replay``) and the
specs needed
to create them. Every topic keyed by ``call_id`` shares one partition count,
so one call's audio, scores and alerts sit on the same partition index
(co-partitioning: the inference agent and the rules app can keep per-call
state local to a partition). The rules topic is keyed by rule-set id and has
one partition: it is tiny, every worker reads all of it (it is not consumed
through a consumer group), one partition gives one total order of rule-set
publications and a single end offset to wait for at start-up. The notifier's
silences and acks topics are compacted control topics read the same way (one
partition, every notifier reads all); its notification log is compacted, keyed by
``receiver|group_key|status`` and uses the shared count without being co-partitioned.

Pure data: creating topics and listing existing ones is done by the Kafka
adapters in ``streams/kafka``; :func:`check_topics` checks what they found.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

__all__ = [
    "DEFAULT_PARTITIONS_LOCAL",
    "DEFAULT_PARTITIONS_PRODUCTION",
    "PRODUCER_PARTITIONER",
    "SPECS",
    "TopicSpec",
    "Topics",
    "check_topics",
    "extra_topic_spec",
    "partition_of",
    "topic_config",
]

DEFAULT_PARTITIONS_PRODUCTION = 12
"""Partition count for production settings (divisible by 1, 2, 3, 4, 6, 12 workers)."""
DEFAULT_PARTITIONS_LOCAL = 4
"""Partition count for the embedded local stack and tests."""

PRODUCER_PARTITIONER = "murmur2_random"
"""librdkafka ``partitioner`` every confluent-kafka producer must set.

Co-partitioning needs every producer to map a key to the same partition.
Faust/aiokafka (and the Java client) hash keys with murmur2; librdkafka's
default (``consistent_random``, CRC32) does not, so a call's alerts written by
Faust and its scores written by confluent-kafka would land on different
partition indexes. ``murmur2_random`` is librdkafka's Java-compatible murmur2.
"""


def partition_of(key: bytes, partitions: int) -> int:
    """The partition that :data:`PRODUCER_PARTITIONER` (and aiokafka, the Java client) chooses for a
    non-empty key: Java-compatible murmur2. Used where a consumer must know a key's partition
    without producing (the rules worker's table housekeeping, tests)."""
    length = len(key)
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    h = (seed ^ length) & 0xFFFFFFFF
    i = 0
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(key[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= key[base + 2] << 16
    if tail >= 2:
        h ^= key[base + 1] << 8
    if tail >= 1:
        h ^= key[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions

_DAY_MS = 24 * 60 * 60 * 1000
_LEGAL = re.compile(r"^[A-Za-z0-9._-]*$")
_MAX_TOPIC_LEN = 249


@dataclass(frozen=True)
class TopicSpec:
    """Static description of one logical topic."""

    logical: str
    """Logical name used in code and settings: ``audio``, ``scores``, ``alerts``, ``rules``, ``dlq``."""
    base_name: str
    """Topic name without prefix, e.g. ``emowatch.audio.v1``."""
    value_schema: str
    """Avro record schema of the values (``topics/schemas/<value_schema>.v<N>.avsc``)."""
    key: str
    """What the UTF-8 key holds (``call_id`` or ``rule_set``)."""
    cleanup_policy: str
    """``delete`` or ``compact``."""
    retention_ms: int
    """Retention in milliseconds; -1 = infinite."""
    has_dlq: bool
    """Whether consumers of this topic dead-letter bad messages to the DLQ topic."""
    co_partitioned: bool
    """Keyed by call_id and bound to the shared partition count."""
    fixed_partitions: int | None = None
    """Partition count that ignores the shared count (rules, silences, acks topics: 1)."""


SPECS: tuple[TopicSpec, ...] = (
    TopicSpec("audio", "emowatch.audio.v1", "AudioChunk", "call_id", "delete", 3 * _DAY_MS, True, True),
    TopicSpec("scores", "emowatch.scores.v1", "FrameScores", "call_id", "delete", 7 * _DAY_MS, True, True),
    TopicSpec("alerts", "emowatch.alerts.v1", "Alert", "call_id", "delete", 30 * _DAY_MS, True, True),
    TopicSpec("rules", "emowatch.rules.v1", "RuleSet", "rule_set", "compact", -1, True, False, fixed_partitions=1),
    # The DLQ keeps the original key (usually call_id) and the shared count, but
    # nothing joins on it, so it is not part of the co-partitioning check.
    TopicSpec("dlq", "emowatch.dlq.v1", "DeadLetter", "call_id", "delete", 14 * _DAY_MS, False, False),
    # The notifier's control topics (`emowatch silence ...`, `emowatch alert ack`): tiny, compacted, and read
    # whole by every notifier instance without a consumer group, like the rules topic, hence one partition.
    # Expired silences stay (re-published with expired_at): the topic is the store, and keeps the history.
    # Their undecodable or invalid records are dead-lettered by every notifier that reads them (at each start).
    TopicSpec("silences", "emowatch.silences.v1", "Silence", "silence_id", "compact", -1, True, False,
              fixed_partitions=1),
    TopicSpec("acks", "emowatch.acks.v1", "Ack", "alert_id", "compact", -1, True, False, fixed_partitions=1),
    # The notification log: the latest delivery per receiver, group and status (what Dispatcher.seed needs).
    # Keyed by receiver|group_key|status, not call_id, so not co-partitioned with the alerts; the shared
    # count spreads a log whose size follows the number of calls with notifications.
    TopicSpec("notifications", "emowatch.notifications.v1", "NotificationLog", "receiver|group_key|status",
              "compact", -1, False, False),
    # Alerts of replays (`emowatch replay --to-topic`): the Alert schema with replay_id set, keyed and partitioned
    # like the alerts topic; never read by the notifier or any production consumer group.
    TopicSpec("alerts_replay", "emowatch.alerts.replay.v1", "Alert", "call_id", "delete", 7 * _DAY_MS, False, True),
)
"""Every emowatch topic, in creation order."""


def topic_config(spec: TopicSpec) -> dict[str, str]:
    """Kafka topic-level config for ``spec`` (``cleanup.policy``, ``retention.ms``), as strings."""
    return {"cleanup.policy": spec.cleanup_policy, "retention.ms": str(spec.retention_ms)}


class Topics:
    """Full topic names for one deployment (``prefix`` isolates tests and tenants).

    >>> t = Topics(prefix="test-1.")
    >>> t.scores
    'test-1.emowatch.scores.v1'
    """

    def __init__(self, prefix: str = "", partitions: int = DEFAULT_PARTITIONS_LOCAL, replication: int = 1) -> None:
        if not isinstance(prefix, str) or not _LEGAL.match(prefix):
            raise ValueError(f"topic prefix {prefix!r} may only contain letters, digits, '.', '_' and '-'")
        longest = max(len(s.base_name) for s in SPECS)
        if len(prefix) + longest > _MAX_TOPIC_LEN:
            raise ValueError(f"topic prefix {prefix!r} makes names longer than {_MAX_TOPIC_LEN} characters")
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise ValueError(f"partitions must be an int >= 1, got {partitions!r}")
        if isinstance(replication, bool) or not isinstance(replication, int) or replication < 1:
            raise ValueError(f"replication must be an int >= 1, got {replication!r}")
        self.prefix = prefix
        self.partitions = partitions
        self.replication = replication
        self._by_logical = {s.logical: s for s in SPECS}
        self._by_name = {prefix + s.base_name: s for s in SPECS}

    @property
    def audio(self) -> str:
        """AudioChunk topic (keyed by call_id)."""
        return self.name("audio")

    @property
    def scores(self) -> str:
        """FrameScores topic (keyed by call_id)."""
        return self.name("scores")

    @property
    def alerts(self) -> str:
        """Alert topic (keyed by call_id)."""
        return self.name("alerts")

    @property
    def rules(self) -> str:
        """RuleSet topic (compacted, keyed by rule-set id, one partition)."""
        return self.name("rules")

    @property
    def dlq(self) -> str:
        """DeadLetter topic."""
        return self.name("dlq")

    @property
    def silences(self) -> str:
        """Silence topic (compacted, keyed by silence id, one partition)."""
        return self.name("silences")

    @property
    def acks(self) -> str:
        """Ack topic (compacted, keyed by alert_id, one partition)."""
        return self.name("acks")

    @property
    def alerts_replay(self) -> str:
        """Alert topic of replays (keyed by call_id, partitioned like the alerts topic; no production reader)."""
        return self.name("alerts_replay")

    @property
    def notifications(self) -> str:
        """NotificationLog topic (compacted, keyed by receiver|group_key|status)."""
        return self.name("notifications")

    def name(self, logical: str) -> str:
        """Full name of a logical topic (``"scores"`` -> ``prefix + "emowatch.scores.v1"``)."""
        return self.prefix + self.spec(logical).base_name

    def spec(self, logical: str) -> TopicSpec:
        """The :class:`TopicSpec` of a logical topic name."""
        try:
            return self._by_logical[logical]
        except KeyError:
            raise KeyError(f"unknown logical topic {logical!r}; known: {', '.join(self._by_logical)}") from None

    def spec_for_name(self, name: str) -> TopicSpec | None:
        """The spec of a full topic name of this deployment, or None."""
        return self._by_name.get(name)

    def partitions_for(self, spec: TopicSpec) -> int:
        """Partition count to create ``spec`` with."""
        return spec.fixed_partitions if spec.fixed_partitions is not None else self.partitions

    def specs(self) -> list[tuple[str, TopicSpec]]:
        """``(full name, spec)`` for every topic, in creation order."""
        return [(self.prefix + s.base_name, s) for s in SPECS]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self.specs())

    def __repr__(self) -> str:
        return f"Topics(prefix={self.prefix!r}, partitions={self.partitions}, replication={self.replication})"


def check_topics(expected: Topics, actual: Mapping[str, int]) -> list[str]:
    """Problems with the topics that exist (``actual``: name -> partition count).

    Reports missing topics, co-partitioned topics whose partition count
    differs from ``expected.partitions`` (which breaks co-partitioning by
    call_id and the Faust tables built on it), and a rules, silences or acks
    topic with more than one partition. Unrelated topics in ``actual`` are ignored. An empty
    list means the cluster is fit to run.
    """
    problems: list[str] = []
    for name, spec in expected.specs():
        count = actual.get(name)
        if count is None:
            problems.append(f"topic {name} ({spec.logical}) is missing")
        elif spec.co_partitioned and count != expected.partitions:
            problems.append(
                f"topic {name} ({spec.logical}) has {count} partitions, expected {expected.partitions}: "
                "topics keyed by call_id must share one partition count (co-partitioning)"
            )
        elif spec.fixed_partitions is not None and count != spec.fixed_partitions:
            problems.append(
                f"topic {name} ({spec.logical}) has {count} partitions, expected {spec.fixed_partitions} "
                "(read whole by every reader as one ordered stream)"
            )
    return problems


def extra_topic_spec(topics: Topics, name: str, like: str = "scores") -> TopicSpec:
    """The spec of an extra topic shaped like the deployment's ``like`` topic (same value schema, key,
    retention and shared partition count) under the full name ``name``: the separate scores topic of
    ``emowatch rescore``. Raises ValueError when ``name`` is not a legal topic name or is one of the
    deployment's own topics (a rescore never writes into production's scores or any other topic)."""
    if not name or not _LEGAL.match(name) or len(name) > _MAX_TOPIC_LEN or name in (".", ".."):
        raise ValueError(f"{name!r} is not a legal topic name (letters, digits, '.', '_', '-'; "
                         f"at most {_MAX_TOPIC_LEN} characters)")
    own = topics.spec_for_name(name)
    if own is not None:
        raise ValueError(f"{name!r} is this deployment's {own.logical} topic; give a separate topic "
                         f"(e.g. {topics.prefix}emowatch.{like}.rescored.v1)")
    return replace(topics.spec(like), logical=f"{like}-extra", base_name=name)
