"""The dispatcher's per-group data and the one decision it makes at a flush (pure functions).

A :class:`Group` holds the alerts of one (route, receiver, group labels). A :class:`History` is
what was last notified for that group (Alertmanager's notification-log entry) plus how often each
exact content went out (the ``repeat`` counter). :func:`needs_notify` is Alertmanager's
``DedupStage.needsUpdate``, with an exact ``repeat_interval`` comparison (``>=``).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emowatch.streams.notify.routing import RouteMatch

__all__ = ["FIRING", "RESOLVED", "Group", "History", "Sent", "content_key", "idempotency_key", "needs_notify",
           "sort_alerts"]

FIRING, RESOLVED = "FIRING", "RESOLVED"
_PRIORITY_RANK = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3}


@dataclass
class Sent:
    """The last notification emitted for a group: its firing and resolved alert ids, when, its key."""

    firing: frozenset[str]
    resolved: frozenset[str]
    at_ms: int
    key: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"firing": sorted(self.firing), "resolved": sorted(self.resolved), "at_ms": self.at_ms,
                "key": self.key}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sent:
        return cls(frozenset(data["firing"]), frozenset(data["resolved"]), int(data["at_ms"]), str(data["key"]))


@dataclass
class History:
    """What a (receiver, group key) was last told, and how many times each content went out."""

    last: Sent | None = None
    counts: dict[str, int] = field(default_factory=dict)
    previous: Sent | None = None  # for mark_failed: the entry before ``last``
    last_content: str = ""  # content of ``last`` until it is marked sent ("" once committed)

    def record(self, sent: Sent, content: str) -> None:
        self.previous, self.last, self.last_content = self.last, sent, content
        self.counts[content] = self.counts.get(content, 0) + 1

    def rollback(self) -> None:
        if self.last_content:
            self.counts[self.last_content] -= 1
            if not self.counts[self.last_content]:
                del self.counts[self.last_content]
        self.last, self.previous, self.last_content = self.previous, None, ""

    def to_json(self) -> dict[str, Any]:
        return {"last": None if self.last is None else self.last.to_json(), "counts": dict(self.counts)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> History:
        last = data.get("last")
        return cls(None if last is None else Sent.from_json(last), {str(k): int(v) for k, v in data["counts"].items()})


@dataclass
class Group:
    """An aggregation group: the alerts (latest record per ``alert_id``) of one receiver and group labels."""

    key: str
    route: RouteMatch
    labels: dict[str, str]
    alerts: dict[str, dict[str, Any]]
    created_ms: int
    next_flush_ms: int
    reported: set[tuple[str, str, str]] = field(default_factory=set)  # (alert_id, status, reason)

    def to_json(self) -> dict[str, Any]:
        r = self.route
        return {"key": self.key, "labels": self.labels, "alerts": list(self.alerts.values()),
                "created_ms": self.created_ms, "next_flush_ms": self.next_flush_ms,
                "reported": sorted(list(x) for x in self.reported),
                "route": {"route_id": r.route_id, "receiver": r.receiver, "group_by": list(r.group_by),
                          "group_wait": r.group_wait, "group_interval": r.group_interval,
                          "repeat_interval": r.repeat_interval, "mute_time_intervals": list(r.mute_time_intervals),
                          "active_time_intervals": list(r.active_time_intervals)}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Group:
        r = dict(data["route"])
        route = RouteMatch(str(r["route_id"]), str(r["receiver"]), tuple(r["group_by"]), int(r["group_wait"]),
                           int(r["group_interval"]), int(r["repeat_interval"]), tuple(r["mute_time_intervals"]),
                           tuple(r["active_time_intervals"]))
        return cls(str(data["key"]), route, dict(data["labels"]), {a["alert_id"]: dict(a) for a in data["alerts"]},
                   int(data["created_ms"]), int(data["next_flush_ms"]),
                   {(str(a), str(s), str(why)) for a, s, why in data["reported"]})


def needs_notify(last: Sent | None, firing: frozenset[str], resolved: frozenset[str], send_resolved: bool,
                 now_ms: int, repeat_interval_ms: int) -> bool:
    """Whether a flush with these (unsilenced, unacked) firing and resolved alerts sends a notification.

    * never notified: if anything fired, even if it has resolved since: an episode that met its
      rule (``for:`` already filtered flaps upstream) is news to the receiver, unlike Alertmanager,
      which drops alerts that resolved before the group's first notification;
    * an alert fires that the last notification did not list as firing: yes;
    * nothing fires any more: a RESOLVED notification if the receiver wants resolved alerts and the
      last notification listed firing ones;
    * newly resolved alerts and ``send_resolved``: yes;
    * else a reminder once ``repeat_interval`` has passed since the last notification.
    """
    if last is None:
        return bool(firing) or bool(resolved)
    if not firing <= last.firing:
        return True
    if not firing:
        return send_resolved and bool(last.firing) and bool(resolved)
    if send_resolved and not resolved <= last.resolved:
        return True
    return now_ms - last.at_ms >= repeat_interval_ms


def content_key(status: str, states: Iterable[tuple[str, str]]) -> str:
    """A short hash of a notification's status and sorted ``(alert_id, status)`` pairs."""
    text = json.dumps([status, sorted([list(p) for p in states])], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def idempotency_key(receiver: str, group_key: str, status: str, states: Iterable[tuple[str, str]],
                    repeat: int) -> str:
    """sha256 hex of (receiver, group key, status, sorted (alert_id, status) pairs, repeat)."""
    text = json.dumps([receiver, group_key, status, sorted([list(p) for p in states]), repeat],
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sort_alerts(alerts: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Firing first, then by priority (CRITICAL first), event time, alert id."""
    return tuple(sorted(alerts, key=lambda a: (a["status"] != FIRING, _PRIORITY_RANK.get(str(a.get("priority")), 9),
                                               int(a.get("event_time") or 0), str(a["alert_id"]))))
