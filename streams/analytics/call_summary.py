"""``emowatch query call ID``: one call's summary from history, as sections for :mod:`.output`.

The timeline, segments, the seed's summary line and the alerts are :class:`HistoryReader.call`'s (the
console's call page shows the same); the agent and first event time come from
:func:`~emowatch.streams.analytics.queries.call_info`.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from emowatch.streams.analytics.output import Section
from emowatch.streams.analytics.queries import call_info
from emowatch.streams.analytics.runner import Result, run
from emowatch.streams.sink.history import HistoryReader

__all__ = ["ALERT_COLUMNS", "call_sections", "load_call"]

#: the alert columns of ``query call`` (those of ``query alerts``)
ALERT_COLUMNS = ["time", "status", "priority", "rule_id", "business_line", "call_id", "role", "emotions", "value",
                 "threshold", "started_ms", "fired_ms", "alert_id"]


def load_call(client: Any, database: str, call_id: str) -> dict | None:
    """:meth:`HistoryReader.call` plus ``agent`` (comma-joined if its chunks name several; '' = none) and
    ``first_time`` (datetime of its first chunk); None for a call without scores."""
    call = HistoryReader(client, database).call(call_id)
    if call is None:
        return None
    info = run(client, call_info(call_id), database).dicts()
    call["agent"] = ", ".join(sorted({r["agent"] for r in info if r["agent"]}))
    call["first_time"] = min(r["first_time"] for r in info) if info else None
    return call


def _ms_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def call_sections(call: dict) -> list[Section]:
    """``call`` (from :func:`load_call`) as three sections: ``roles`` (one row per role: the call's business
    line, agent, duration, and the role's chunks, whole-call emotion and the seed's summary line),
    ``segments`` (per role, its runs of one top emotion) and ``alerts`` (oldest first)."""
    roles, segments = [], []
    for role, r in call["roles"].items():
        u = r["utterance"]
        roles.append((call["call_id"], call["business_line"], call.get("agent", ""), role, call.get("first_time"),
                      round(call["duration_ms"] / 1000, 1), r["chunks"], r["gaps"], u["top"],
                      round(u["confidence"], 4), r["summary"]))
        segments += [(role, round(s["start_ms"] / 1000, 1), round(s["end_ms"] / 1000, 1), s["emotion"],
                      s["confidence"]) for s in r["segments"]]
    alerts = [tuple({**a, "time": _ms_time(a["event_time"]), "value": round(float(a["value"]), 4)}[c]
                    for c in ALERT_COLUMNS) for a in call["alerts"]]
    return [
        ("roles", Result(["call_id", "business_line", "agent", "role", "first_time", "duration_s", "chunks", "gaps",
                          "emotion", "confidence", "summary"], roles)),
        ("segments", Result(["role", "start_s", "end_s", "emotion", "confidence"], segments)),
        ("alerts", Result(list(ALERT_COLUMNS), alerts)),
    ]
