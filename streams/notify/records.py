"""Silence and Ack records of the notifier's control topics <-> the pure core's types (no I/O).

The operator commands (``emowatch silence ...``, ``emowatch alert ack``) build records with
:func:`new_silence_record`, :func:`expired_silence_record` and :func:`ack_record`; the notifier
service reads the topics and turns each record into the core's :class:`Silence` / :class:`Ack`
with :func:`silence_from_record` / :func:`ack_from_record`. Records follow
``topics/schemas/Silence.v1.avsc`` and ``Ack.v1.avsc`` (timestamps are int epoch milliseconds).
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from emowatch.streams.notify.errors import MatcherError
from emowatch.streams.notify.suppression import Ack, Silence

__all__ = ["ack_from_record", "ack_record", "expired_silence_record", "new_silence_record", "silence_end_ms",
           "silence_from_record", "silence_state"]


def new_silence_record(matchers: Sequence[str], starts_ms: int, ends_ms: int, *, created_by: str, comment: str,
                       now_ms: int, silence_id: str | None = None) -> dict[str, Any]:
    """A validated Silence record with a fresh uuid4 id (unless given); :class:`MatcherError` if the
    matchers do not parse, match everything, or the silence ends before it starts."""
    sid = silence_id or str(uuid.uuid4())
    Silence(sid, tuple(matchers), starts_ms, ends_ms, created_by, comment)  # validates, raises MatcherError
    if not created_by.strip():
        raise MatcherError("a silence needs an author (created_by)")
    if not comment.strip():
        raise MatcherError("a silence needs a comment")
    return {"id": sid, "matchers": list(matchers), "starts_at": int(starts_ms), "ends_at": int(ends_ms),
            "created_by": created_by, "comment": comment, "created_at": int(now_ms),
            "expired_at": None, "expired_by": None}


def expired_silence_record(record: Mapping[str, Any], *, by: str, now_ms: int) -> dict[str, Any]:
    """``record`` expired now by ``by`` (the same id, so the compacted topic keeps this version)."""
    if record.get("expired_at") is not None:
        raise MatcherError(f"silence {record['id']} was already expired by {record.get('expired_by')}")
    if not by.strip():
        raise MatcherError("expiring a silence needs an author")
    return {**record, "expired_at": int(now_ms), "expired_by": by}


def silence_end_ms(record: Mapping[str, Any]) -> int:
    """When the silence stops being in force: ``min(ends_at, expired_at)``."""
    expired = record.get("expired_at")
    return int(record["ends_at"]) if expired is None else min(int(record["ends_at"]), int(expired))


def silence_state(record: Mapping[str, Any], now_ms: int) -> str:
    """``pending`` (not started), ``active`` or ``expired`` (ended, or expired by hand)."""
    if now_ms >= silence_end_ms(record):
        return "expired"
    return "pending" if now_ms < int(record["starts_at"]) else "active"


def silence_from_record(record: Mapping[str, Any]) -> Silence | None:
    """The core's :class:`Silence` for a record, ending at :func:`silence_end_ms`; None when it was
    expired before it started (it never silences anything). Raises :class:`MatcherError` for a
    record with bad matchers (the service should log and skip it)."""
    end = silence_end_ms(record)
    if end <= int(record["starts_at"]):
        return None
    return Silence(str(record["id"]), tuple(record["matchers"]), int(record["starts_at"]), end,
                   str(record.get("created_by", "")), str(record.get("comment", "")))


def ack_record(alert_id: str, *, by: str, now_ms: int, comment: str = "", call_id: str | None = None) -> dict[str, Any]:
    """An Ack record; :class:`MatcherError` for an empty alert id or author."""
    if not alert_id.strip():
        raise MatcherError("an ack needs an alert id")
    if not by.strip():
        raise MatcherError("an ack needs an author (--by)")
    return {"alert_id": alert_id, "by": by, "comment": comment, "at": int(now_ms), "call_id": call_id or None}


def ack_from_record(record: Mapping[str, Any]) -> Ack:
    """The core's :class:`Ack` for an Ack record."""
    return Ack(str(record["alert_id"]), str(record["by"]), str(record.get("comment", "")), int(record["at"]))
