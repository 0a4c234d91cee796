"""What a replay covers: its time window, its scope and its deterministic id. Pure.

A call belongs to the window ``[from, to)`` when it *started* at or after ``from`` (a call's start is
``event_time - start_ms`` of any of its messages): a call already running at ``from`` had rule state that
the replay cannot know, so it is left out whole instead of being evaluated from the middle. Messages with
``event_time >= to`` are left out (calls still running at ``to`` are cut there, as if the replay stopped).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from emowatch.rules.durations import parse_duration_ms
from emowatch.topics.errors import EmowatchError

__all__ = ["ReplayParamsError", "Scope", "Window", "parse_time", "replay_id_for"]


class ReplayParamsError(EmowatchError, ValueError):
    """A replay option that cannot be used (a time, a business line, a sweep spec)."""


def parse_time(text: str, now_ms: int) -> int:
    """Epoch milliseconds from ``2026-11-23T08:00:00Z`` (ISO-8601, naive = UTC), ``1763884800000`` (epoch ms),
    ``-2h`` / ``now-2h`` (before ``now_ms``; durations as in rule files) or ``now``."""
    value = text.strip()
    if value == "now":
        return now_ms
    if value.startswith("now-") or value.startswith("-"):
        try:
            return now_ms - parse_duration_ms(value.split("-", 1)[1])
        except ValueError as exc:
            raise ReplayParamsError(f"invalid relative time {text!r}: {exc}") from None
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ReplayParamsError(f"invalid time {text!r}: use ISO-8601 (2026-11-23T08:00:00Z), epoch ms, "
                                "or -2h / now-2h") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(round(parsed.timestamp() * 1000))


def iso(ms: int | None) -> str | None:
    """Epoch ms as ISO-8601 UTC with milliseconds (None stays None)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Window:
    """Calls that started in ``[from_ms, to_ms)``, up to ``to_ms`` (None = to the end of the data)."""

    from_ms: int
    to_ms: int | None = None

    def __post_init__(self) -> None:
        if self.to_ms is not None and self.to_ms <= self.from_ms:
            raise ReplayParamsError(f"--to ({iso(self.to_ms)}) must be after --from ({iso(self.from_ms)})")

    def holds(self, event_time: int, start_ms: int) -> bool:
        """Whether a message with this event time and call offset is replayed."""
        return event_time - start_ms >= self.from_ms and (self.to_ms is None or event_time < self.to_ms)


@dataclass(frozen=True)
class Scope:
    """Which messages a replay evaluates: a business line (like ``worker rules --business-line``) and calls."""

    business_line: str = "*"
    calls: frozenset[str] = field(default_factory=frozenset)

    def line_ok(self, line: str) -> bool:
        return self.business_line == "*" or line == self.business_line

    def call_ok(self, call_id: str) -> bool:
        return not self.calls or call_id in self.calls


def worker_line(requested: str | None, ruleset_line: str) -> str:
    """The business line a replay evaluates, as a rules worker would: a rule set for line L runs for L only;
    a ``*`` set for the requested line (or every line)."""
    if requested is None or requested == ruleset_line:
        return ruleset_line
    if ruleset_line == "*":
        return requested
    raise ReplayParamsError(f"the rule set serves business line {ruleset_line!r}; it cannot be replayed for "
                            f"{requested!r} (use a rule set for {requested!r} or '*')")


def replay_id_for(*, rule_set: str, rule_version: str, window: Window, scope: Scope, source: str,
                  scores_topic: str = "", model_version: str = "", sweep: str = "") -> str:
    """A deterministic id: the first 16 hex of sha256 over what the replay covers (same inputs, same id)."""
    doc = {"rule_set": rule_set, "rule_version": rule_version, "from": window.from_ms, "to": window.to_ms,
           "business_line": scope.business_line, "calls": sorted(scope.calls), "source": source,
           "scores_topic": scores_topic, "model_version": model_version, "sweep": sweep}
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return f"r-{digest}"
