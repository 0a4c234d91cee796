"""Dead-letter records: what a stage could not handle, kept for inspection and replay.

Pure: :func:`dead_letter` builds a ``DeadLetter`` record (``topics/schemas/
DeadLetter.v*.avsc``) from the original message and the error; the adapters
encode it with ``AvroSerde("DeadLetter")`` and produce it to ``Topics.dlq``
with the original key. :class:`~emowatch.topics.errors.DeadLetterError` is what a
pipeline step raises (or returns) to say "dead-letter this message at stage X because Y".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emowatch.topics.errors import STAGES, DeadLetterError, normalize_stage

__all__ = ["MAX_REASON_CHARS", "STAGES", "DeadLetterError", "Source", "dead_letter", "dead_letter_for",
           "normalize_stage"]

MAX_REASON_CHARS = 4000
"""Longer reasons are cut (with a marker) so one bad message cannot bloat the DLQ."""

HeaderInput = Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None


@dataclass(frozen=True)
class Source:
    """The message being dead-lettered, as it was read: position, key, value and headers.

    The service adapters build it from their client's message type (confluent-kafka
    ``Message``, a Faust event, an aiokafka record)."""

    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None
    headers: HeaderInput = None


def dead_letter_for(source: Source, error: DeadLetterError, *, call_id: str | None, service: str,
                    now_ms: int) -> dict[str, Any]:
    """The DeadLetter record for ``source`` rejected with ``error`` (its stage and reason)."""
    return dead_letter(stage=error.stage, reason=error.dead_letter_reason, error=error, source_topic=source.topic,
                       source_partition=source.partition, source_offset=source.offset, key=source.key,
                       value=source.value, headers=source.headers, call_id=call_id, service=service, now_ms=now_ms)


def dead_letter(
    *,
    stage: str,
    reason: str,
    error: BaseException | None,
    source_topic: str,
    source_partition: int | None,
    source_offset: int | None,
    key: bytes | None,
    value: bytes | None,
    headers: HeaderInput,
    call_id: str | None,
    service: str,
    now_ms: int,
) -> dict[str, Any]:
    """Build a DeadLetter record (a dict valid for every DeadLetter schema version).

    * ``stage``: one of :data:`STAGES`, any case.
    * ``reason``: human-readable; if empty, ``str(error)`` is used; cut at
      :data:`MAX_REASON_CHARS`.
    * ``error``: its class name becomes ``error_type``; for a
      :class:`DeadLetterError` the class of its cause is used when there is one.
    * ``source_partition`` / ``source_offset``: None becomes -1 (unknown).
    * ``headers``: Kafka header list ``[(name, value)]`` (order, repeats and
      None values are kept) or a mapping; str values are UTF-8 encoded.
      Odd key/value/header types are stored as their ``str()``: building a
      dead letter never fails on the message's content.
    * ``now_ms``: dead-letter time, epoch milliseconds (passed in: no clock here).
    """
    stage_name = normalize_stage(stage)
    if isinstance(now_ms, bool) or not isinstance(now_ms, int):
        raise TypeError(f"now_ms must be int epoch milliseconds, got {type(now_ms).__name__}")
    text = reason or (str(error) if error is not None else "")
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 20] + " ... [reason cut]"
    return {
        "stage": stage_name,
        "reason": text,
        "error_type": _error_type(error),
        "source_topic": source_topic,
        "source_partition": -1 if source_partition is None else int(source_partition),
        "source_offset": -1 if source_offset is None else int(source_offset),
        "key": _as_bytes(key),
        "value": _as_bytes(value),
        "headers": _headers(headers),
        "call_id": call_id or None,
        "service": service,
        "failed_at": now_ms,
    }


def _error_type(error: BaseException | None) -> str:
    if error is None:
        return ""
    if type(error) is DeadLetterError:  # a plain wrapper: name what it wraps (subclasses name themselves)
        inner = error.cause or error.__cause__
        if inner is not None:
            return type(inner).__name__
    return type(error).__name__


def _as_bytes(data: object) -> bytes | None:
    """Bytes as-is, str as UTF-8, anything else as its UTF-8 ``str()``: the DLQ path must not fail."""
    if data is None:
        return None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    return str(data).encode("utf-8", errors="replace")


def _headers(headers: HeaderInput) -> list[dict[str, Any]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for name, data in items:
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).decode("utf-8", errors="replace")
        out.append({"key": str(name), "value": _as_bytes(data)})
    return out
