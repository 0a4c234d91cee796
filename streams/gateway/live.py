"""The live board: calls in progress ranked by risk, fed by FrameScores and Alert records. Pure.

Risk of a call (docs/gateway.md): ``sum(PRIORITY_WEIGHT[priority] of its FIRING alerts)
+ max over its roles of (angry + fearful)`` of each role's latest chunk, so any firing alert ranks a call
above every call without one, and among equals the currently angrier/more frightened call comes first.
A call leaves the board when every role seen has sent its ``end_of_call`` score, or after ``idle_s``
without scores; times are passed in (seconds, any monotonic clock), never read here.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from emowatch.topics.model_io import EMOTIONS

__all__ = ["PRIORITY_WEIGHT", "LiveBoard", "alert_message", "scores_message"]

PRIORITY_WEIGHT = {"LOW": 1.0, "MEDIUM": 2.0, "HIGH": 4.0, "CRITICAL": 8.0}
_ENDED_MEMORY = 10_000  # ended call ids remembered, so late records do not bring a call back


def _prob(rec: dict, label: str) -> float:
    labels = rec.get("labels") or list(EMOTIONS)
    probs = rec.get("chunk_probs") or []
    try:
        return float(probs[labels.index(label)])
    except (ValueError, IndexError):
        return 0.0


def _top(rec: dict) -> tuple[str | None, float]:
    probs = rec.get("chunk_probs") or []
    if not probs:
        return None, 0.0
    labels = rec.get("labels") or list(EMOTIONS)
    k = max(range(len(probs)), key=probs.__getitem__)
    return (labels[k] if k < len(labels) else None), float(probs[k])


def scores_message(rec: dict) -> dict[str, Any]:
    """A FrameScores record as pushed to clients: without ``logits`` and ``embedding``, plus ``top`` and
    ``confidence`` (the chunk's most probable class and its probability)."""
    top, conf = _top(rec)
    out = {k: v for k, v in rec.items() if k not in ("logits", "embedding")}
    return {"type": "scores", **out, "top": top, "confidence": round(conf, 4)}


def alert_message(rec: dict) -> dict[str, Any]:
    return {"type": "alert", **rec}


@dataclass
class _Call:
    call_id: str
    business_line: str
    latest: dict[str, dict] = field(default_factory=dict)  # role -> latest scores record (chunk_probs, ...)
    ended: set[str] = field(default_factory=set)
    alerts: dict[str, str] = field(default_factory=dict)  # FIRING alert_id -> priority
    last_event_time: int = 0
    duration_ms: int = 0
    seen: float = 0.0

    def risk(self) -> float:
        emo = max((_prob(r, "angry") + _prob(r, "fearful") for r in self.latest.values()), default=0.0)
        return sum(PRIORITY_WEIGHT.get(p, 1.0) for p in self.alerts.values()) + emo

    def row(self) -> dict[str, Any]:
        worst = max(self.latest.values(), key=lambda r: _prob(r, "angry") + _prob(r, "fearful"), default=None)
        return {
            "call_id": self.call_id, "business_line": self.business_line, "roles": sorted(self.latest),
            "risk": round(self.risk(), 4), "active_alerts": len(self.alerts),
            "angry": round(max((_prob(r, "angry") for r in self.latest.values()), default=0.0), 4),
            "fearful": round(max((_prob(r, "fearful") for r in self.latest.values()), default=0.0), 4),
            "top": _top(worst)[0] if worst else None,
            "last_event_time": self.last_event_time, "duration_ms": self.duration_ms,
        }


class LiveBoard:
    """``on_scores``/``on_alert`` return whether the board changed; :attr:`version` counts changes."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._calls: dict[str, _Call] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self.version = 0

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._calls

    def _changed(self) -> bool:
        self.version += 1
        return True

    def _end(self, call_id: str) -> None:
        self._calls.pop(call_id, None)
        self._ended[call_id] = None
        while len(self._ended) > _ENDED_MEMORY:
            self._ended.popitem(last=False)

    def _call(self, call_id: str, business_line: str, now: float) -> _Call | None:
        if call_id in self._ended:
            return None
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call(call_id, business_line or "default", seen=now)
        return call

    def on_scores(self, rec: dict, now: float) -> bool:
        call = self._call(rec["call_id"], rec.get("business_line", "default"), now)
        if call is None:
            return False
        role = rec.get("role", "MIXED")
        call.latest[role] = {"labels": rec.get("labels"), "chunk_probs": rec.get("chunk_probs")}
        call.seen = now
        call.last_event_time = max(call.last_event_time, int(rec.get("event_time", 0)))
        end_ms = int(rec.get("start_ms", 0)) + int(rec.get("n_frames", 0)) * int(rec.get("frame_ms", 0))
        call.duration_ms = max(call.duration_ms, end_ms)
        if rec.get("end_of_call"):
            call.ended.add(role)
            if call.ended >= set(call.latest):
                self._end(call.call_id)
        return self._changed()

    def on_alert(self, rec: dict, now: float) -> bool:
        call_id = rec["call_id"]
        if rec.get("status") == "RESOLVED":
            call = self._calls.get(call_id)
            if call is None or call.alerts.pop(rec["alert_id"], None) is None:
                return False
            return self._changed()
        call = self._call(call_id, rec.get("business_line", "default"), now)
        if call is None:
            return False
        call.alerts[rec["alert_id"]] = rec.get("priority", "MEDIUM")
        return self._changed()

    def expire(self, now: float) -> list[str]:
        """Drop the calls without scores for ``idle_s``; their ids."""
        gone = [c.call_id for c in self._calls.values() if now - c.seen >= self.idle_s]
        for call_id in gone:
            self._end(call_id)
        if gone:
            self._changed()
        return gone

    def snapshot(self, business_line: str | None = None) -> list[dict[str, Any]]:
        """Board rows ranked by risk (then most recent first), optionally of one business line."""
        calls = [c for c in self._calls.values() if business_line in (None, "", c.business_line)]
        calls.sort(key=lambda c: (-c.risk(), -c.last_event_time, c.call_id))
        return [c.row() for c in calls]
