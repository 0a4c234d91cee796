"""Silences and acknowledgements (pure data; the dispatcher applies them when a group flushes).

* :class:`Silence` (Alertmanager): while ``starts_ms <= now < ends_ms``, alerts whose label set
  (``routing.alert_labels``) matches all ``matchers`` are not notified; the dispatcher reports
  each as ``Suppressed(reason="silenced:<id>")``. When it ends, the next flush notifies them.
* :class:`Ack`: a person took over an alert; it gets no more FIRING notifications (no reminders,
  not listed in group updates), reported as ``acked:<by>``. Its RESOLVED is still notified to
  receivers with ``send_resolved`` (it closes the thread others saw).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from emowatch.streams.notify.errors import MatcherError
from emowatch.streams.notify.matchers import Matcher, matches_all, parse_matchers

__all__ = ["Ack", "Silence"]


@dataclass(frozen=True)
class Silence:
    """Mute matching alerts in ``[starts_ms, ends_ms)``; ``matchers`` are Alertmanager matcher strings."""

    id: str
    matchers: tuple[str, ...]
    starts_ms: int
    ends_ms: int
    created_by: str = ""
    comment: str = ""
    _compiled: tuple[Matcher, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matchers", tuple(self.matchers))
        if not self.id:
            raise MatcherError("a silence needs an id")
        if not self.matchers:
            raise MatcherError(f"silence {self.id!r} has no matchers (it would silence everything)")
        compiled = parse_matchers(self.matchers)
        if all(m.matches({}) for m in compiled):
            raise MatcherError(f"silence {self.id!r}: its matchers also match alerts without those labels")
        if self.ends_ms <= self.starts_ms:
            raise MatcherError(f"silence {self.id!r} ends before it starts")
        object.__setattr__(self, "_compiled", compiled)

    def active(self, now_ms: int) -> bool:
        return self.starts_ms <= now_ms < self.ends_ms

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self._compiled, labels)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "matchers": list(self.matchers), "starts_ms": self.starts_ms,
                "ends_ms": self.ends_ms, "created_by": self.created_by, "comment": self.comment}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Silence:
        return cls(str(data["id"]), tuple(data["matchers"]), int(data["starts_ms"]), int(data["ends_ms"]),
                   str(data.get("created_by", "")), str(data.get("comment", "")))


@dataclass(frozen=True)
class Ack:
    """``by`` acknowledged alert ``alert_id`` at ``at_ms``."""

    alert_id: str
    by: str
    comment: str = ""
    at_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "by": self.by, "comment": self.comment, "at_ms": self.at_ms}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ack:
        return cls(str(data["alert_id"]), str(data["by"]), str(data.get("comment", "")), int(data.get("at_ms", 0)))
