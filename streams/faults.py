"""Fault points: named places in production code where a chaos test crashes or fails a worker on purpose.

Production code calls :func:`fault_point` at the edges of its crash windows (``sink.after_insert``: the rows
are in ClickHouse, the offsets not committed yet). It does nothing - one global lookup - unless the
process was armed by the ``EMOWATCH_FAULT_POINTS`` setting, a comma-separated list of ``point=action``:

* ``kill@N``: ``SIGKILL`` this process at the Nth hit of the point (``kill`` = ``kill@1``): a crash that
  no ``finally`` or signal handler sees, at a known place;
* ``raise@N``: raise :class:`InjectedFault` (a retryable ``ConnectionError``) at the Nth hit only;
  ``raise@N-M`` at hits N..M, ``raise@N-`` at every hit from the Nth on, ``raise@N~Ts`` at every hit
  during T seconds from the Nth hit on (an outage that ends).

For example ``EMOWATCH_FAULT_POINTS="sink.after_record=kill@3,sink.after_insert=raise@1~2s"``. A spec that
does not parse, or names a point not in :data:`POINTS`, fails at start-up with the setting's name (a typo
must not turn a chaos test into one that injects nothing). Off by default; a test and chaos tool only.
Hits are counted per process from the moment it is armed; :func:`hits` reads them back.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from dataclasses import dataclass

from emowatch.topics.errors import EmowatchError

log = logging.getLogger("emowatch.faults")

#: Every fault point in the code, with what has happened when it is hit.
POINTS = {
    "sink.connect": "the sink is about to connect to ClickHouse and apply the migrations (start-up)",
    "sink.after_record": "a batch's cut is recorded in sink_batches; its rows are not inserted yet",
    "sink.after_insert": "a batch's rows are inserted; its offsets are not committed yet",
    "sink.after_recut_insert": "a batch re-cut at the offsets recorded before a restart is inserted (again); its "
                               "offsets are not committed yet",
    "sink.after_commit": "a batch's offsets are committed",
}
ACTIONS = ("kill", "raise")
_RULE = re.compile(r"^(?P<action>[a-z]+)(?:@(?P<first>\d+)(?:(?P<range>-)(?P<last>\d+)?|~(?P<secs>\d+(?:\.\d+)?)s)?)?$")


class FaultSpecError(EmowatchError, ValueError):
    """``EMOWATCH_FAULT_POINTS`` does not parse."""


class InjectedFault(EmowatchError, ConnectionError):
    """Raised by a ``raise`` fault point: a retryable failure, as a dropped connection would be."""


@dataclass(frozen=True)
class Rule:
    point: str
    action: str
    first: int = 1
    last: int | None = 1  # None: no last hit
    seconds: float | None = None  # raise: for this long from the first hit on

    def fires(self, hit: int, since_first: float | None) -> bool:
        if hit < self.first:
            return False
        if self.seconds is not None:
            return since_first is None or since_first < self.seconds
        return self.last is None or hit <= self.last


def parse(spec: str) -> dict[str, Rule]:
    """``"point=action,..."`` -> rules by point; :class:`FaultSpecError` naming the bad part."""
    rules: dict[str, Rule] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        point, eq, action = (s.strip() for s in part.partition("="))
        if not eq:
            raise FaultSpecError(f"{part!r}: expected point=action (e.g. sink.after_insert=kill@3)")
        if point not in POINTS:
            raise FaultSpecError(f"unknown fault point {point!r} (known: {', '.join(sorted(POINTS))})")
        m = _RULE.match(action)
        if not m or m["action"] not in ACTIONS:
            raise FaultSpecError(f"{part!r}: the action is kill@N or raise@N, raise@N-M, raise@N-, raise@N~Ts")
        if point in rules:
            raise FaultSpecError(f"fault point {point!r} is given twice")
        first = int(m["first"] or 1)
        last = None if m["range"] and not m["last"] else int(m["last"] or first)
        if first < 1 or (last is not None and last < first):
            raise FaultSpecError(f"{part!r}: hits count from 1 and a range cannot end before it starts")
        if m["action"] == "kill" and (m["range"] or m["secs"]):
            raise FaultSpecError(f"{part!r}: kill fires once (kill@N)")
        rules[point] = Rule(point, m["action"], first, last, float(m["secs"]) if m["secs"] else None)
    return rules


class _Armed:
    def __init__(self, rules: dict[str, Rule]) -> None:
        self.rules = rules
        self.hits: dict[str, int] = {}
        self.first_fired: dict[str, float] = {}
        self.lock = threading.Lock()

    def hit(self, name: str) -> None:
        rule = self.rules.get(name)
        with self.lock:
            n = self.hits[name] = self.hits.get(name, 0) + 1
            if rule is None:
                return
            started = self.first_fired.get(name)
            since = None if started is None else time.monotonic() - started
            if not rule.fires(n, since):
                return
            self.first_fired.setdefault(name, time.monotonic())
        if rule.action == "kill":
            log.warning("fault point: killing this process", extra={"fault_point": name, "hit": n})
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFault(f"injected fault at {name} (hit {n})")


_armed: _Armed | None = None


def arm(spec: str | None) -> dict[str, Rule]:
    """Arm this process with ``spec`` (replacing what was armed; empty or None disarms); the rules."""
    global _armed
    rules = parse(spec or "")
    _armed = _Armed(rules) if rules else None
    if rules:
        log.warning("fault points armed", extra={"fault_points": spec})
    return rules


def fault_point(name: str) -> None:
    """The named point of the code is reached: nothing, unless a rule for it fires (see the module doc)."""
    if _armed is not None:
        _armed.hit(name)


def hits(name: str) -> int:
    """How often ``name`` was reached since this process was armed (0 when not armed)."""
    return 0 if _armed is None else _armed.hits.get(name, 0)
