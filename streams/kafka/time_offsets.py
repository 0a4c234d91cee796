"""Offsets at a point in time: Kafka's ListOffsets by timestamp, checked, with a fallback.

:func:`offsets_at` asks the broker for the first offset whose timestamp is at or after ``time_ms``
on each partition (``offsets_for_times``), then checks each answer against the messages around it:
the message at the answer must not be older than ``time_ms`` and the one just before it must be
older. A broker that answers wrongly - the local tansu broker answers the earliest offset for every
timestamp - fails that check; those partitions then start at their earliest offset and the caller
skips messages by time (``fallback`` is True). The check is plain Kafka protocol and costs two
message reads per partition on a correct broker, whose answers pass it unchanged.

:func:`answer_plausible` is the pure check, unit-tested both ways.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, TopicPartition

from emowatch.topics.errors import EmowatchError

__all__ = ["TimeOffsetsError", "answer_plausible", "offsets_at"]

log = logging.getLogger("emowatch.kafka.time_offsets")

PROBE_TIMEOUT_S = 10.0
"""How long the messages around the broker's answers may take to arrive."""


class TimeOffsetsError(EmowatchError, RuntimeError):
    """The broker did not answer the offsets or watermarks of a partition."""


def answer_plausible(time_ms: int, answer: int, low: int, high: int, before_ts: int | None, at_ts: int | None,
                     at_known: bool) -> bool:
    """Whether ``answer`` can be the first offset with a timestamp at or after ``time_ms``.

    ``low``/``high`` are the partition's watermarks; ``before_ts`` the timestamp of the message at
    ``answer - 1`` (None when ``answer == low`` or it could not be read); ``at_ts`` the timestamp of
    the first message at or after ``answer`` (None when there is none: the answer is the end);
    ``at_known`` False when it is not known whether such a message exists (the check then fails,
    and the caller falls back to scanning, which is always correct).
    """
    if not at_known or answer < low or answer > high:
        return False
    if at_ts is not None and at_ts < time_ms:
        return False  # the answer is too early: its message is older than time_ms
    return before_ts is None or before_ts < time_ms  # else too late: an earlier message qualifies


def offsets_at(consumer: Consumer, topic: str, partitions: list[int], time_ms: int) -> tuple[dict[int, int], bool]:
    """The first offset at or after ``time_ms`` (message timestamp, epoch ms) per partition, and
    whether the fallback was used (some partition starts at its earliest offset instead: skip
    messages older than ``time_ms`` yourself).

    ``consumer`` must not be subscribed (a group-less consumer for ``assign()``, with
    ``enable.partition.eof`` so that an answer at the end is recognised at once; without it the
    check waits :data:`PROBE_TIMEOUT_S` and falls back). Its assignment is cleared on return.
    An answer "no such message" is the partition's end offset."""
    if not partitions:
        return {}, False
    marks = {p: _watermarks(consumer, topic, p) for p in partitions}
    asked = [TopicPartition(topic, p, int(time_ms)) for p in partitions]
    try:
        answered = consumer.offsets_for_times(asked, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - KafkaException: the broker did not answer
        raise TimeOffsetsError(f"offsets_for_times on {topic} failed: {exc}") from exc
    answers: dict[int, int] = {}
    for tp in answered:
        if tp.error is not None:
            raise TimeOffsetsError(f"offsets_for_times on {topic}[{tp.partition}] failed: {tp.error}")
        high = marks[tp.partition][1]
        answers[tp.partition] = tp.offset if tp.offset >= 0 else high  # -1: no message that new: the end
    seen = _probe(consumer, topic, {p: (max(marks[p][0], answers[p] - 1), answers[p]) for p in partitions})
    out: dict[int, int] = {}
    fell_back = []
    for p in partitions:
        low, high = marks[p]
        before_ts, at_ts, at_known = seen[p]
        if answers[p] == low:
            before_ts = None
        if answer_plausible(time_ms, answers[p], low, high, before_ts, at_ts, at_known):
            out[p] = answers[p]
        else:
            out[p] = low
            fell_back.append(p)
    if fell_back:
        log.warning("the broker's offsets for a timestamp are wrong (ListOffsets by timestamp); scanning from "
                    "the earliest offset and skipping by time", extra={"topic": topic, "partitions": fell_back,
                                                                      "time_ms": time_ms, "answers": answers})
    return out, bool(fell_back)


def _watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - KafkaException
        raise TimeOffsetsError(f"watermarks of {topic}[{partition}] not answered: {exc}") from exc
    return int(low), int(high)


def _probe(consumer: Consumer, topic: str,
           spans: dict[int, tuple[int, int]]) -> dict[int, tuple[int | None, int | None, bool]]:
    """Read each partition from ``start`` until the first message at or after ``answer``:
    ``(timestamp at answer - 1 or None, timestamp at/after answer or None, whether that is known)``."""
    before: dict[int, int | None] = {p: None for p in spans}
    result: dict[int, tuple[int | None, int | None, bool]] = {}
    consumer.assign([TopicPartition(topic, p, start) for p, (start, _answer) in spans.items()])
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    try:
        while len(result) < len(spans) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.2):
                p = msg.partition()
                if p in result or p not in spans:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        result[p] = (before[p], None, True)  # nothing at or after the answer: it is the end
                    continue
                start, answer = spans[p]
                ts = _timestamp(msg)
                if msg.offset() < answer:
                    before[p] = ts if msg.offset() == answer - 1 else None
                    continue
                result[p] = (before[p], ts, ts is not None)
    finally:
        consumer.unassign()
    for p in spans:
        result.setdefault(p, (before[p], None, False))  # no answer in time: unknown -> fall back
    return result


def _timestamp(msg: Any) -> int | None:
    kind, ts = msg.timestamp()
    return None if kind == TIMESTAMP_NOT_AVAILABLE or ts < 0 else int(ts)


def partitions_of(consumer: Consumer, topic: str) -> list[int]:
    """The partition ids of ``topic`` (empty when it does not exist)."""
    md = consumer.list_topics(topic, timeout=PROBE_TIMEOUT_S)
    t = md.topics.get(topic)
    return sorted(t.partitions) if t is not None and t.error is None else []
