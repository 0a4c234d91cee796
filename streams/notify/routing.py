"""Routing: which receivers (and with which grouping and timings) an alert goes to.

An alert's **label set** is its ``labels`` map plus these fields as strings, which win over a
label of the same name: ``business_line``, ``priority``, ``rule_id``, ``rule_set``, ``role``,
``action``, ``status``, ``call_id`` (:data:`LABEL_FIELDS`).

Alertmanager semantics: the tree is walked depth-first; a route matches when all its matchers
match; the first matching child wins unless it has ``continue: true`` (then the next siblings are
tried too); a matching route none of whose children match handles the alert itself; the root
always matches. Children inherit ``receiver``, ``group_by`` and the three timings when they leave
them out; ``mute_time_intervals`` / ``active_time_intervals`` are not inherited.

emowatch extra (**channels fallback**): when only the root matches and the alert's ``channels``
name receivers that exist, those receivers get the alert (with the root's grouping and timings)
instead of the root's receiver; channel names that are no receiver are ignored.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emowatch.streams.notify.config import (
    DEFAULT_GROUP_BY,
    DEFAULT_GROUP_INTERVAL_MS,
    DEFAULT_GROUP_WAIT_MS,
    DEFAULT_REPEAT_INTERVAL_MS,
    GROUP_BY_ALL,
    NotifyConfig,
    Route,
)
from emowatch.streams.notify.matchers import Matcher, matches_all, parse_matchers

__all__ = ["LABEL_FIELDS", "ROOT_ID", "RouteMatch", "Router", "Timings", "alert_labels", "group_key",
           "group_labels", "resolve_timings"]

LABEL_FIELDS: tuple[str, ...] = ("business_line", "priority", "rule_id", "rule_set", "role", "action", "status",
                                 "call_id")
ROOT_ID = "{}"


def alert_labels(alert: Mapping[str, Any]) -> dict[str, str]:
    """The label set routes, silences and ``group_by`` see (see the module docstring)."""
    labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
    for name in LABEL_FIELDS:
        value = alert.get(name)
        if value is not None:
            labels[name] = str(value)
    return labels


@dataclass(frozen=True)
class Timings:
    """A route's effective (inherited) receiver, grouping and timings (ms)."""

    receiver: str | None
    group_by: tuple[str, ...]
    group_wait: int
    group_interval: int
    repeat_interval: int


def resolve_timings(route: Route, parent: Timings | None) -> Timings:
    """``route``'s settings with the ones it leaves out taken from ``parent`` (or the defaults)."""
    base = parent or Timings(None, DEFAULT_GROUP_BY, DEFAULT_GROUP_WAIT_MS, DEFAULT_GROUP_INTERVAL_MS,
                             DEFAULT_REPEAT_INTERVAL_MS)

    def pick(value: Any, inherited: Any) -> Any:
        return inherited if value is None else value

    return Timings(pick(route.receiver, base.receiver),
                   base.group_by if route.group_by is None else tuple(route.group_by),
                   pick(route.group_wait, base.group_wait), pick(route.group_interval, base.group_interval),
                   pick(route.repeat_interval, base.repeat_interval))


@dataclass(frozen=True)
class RouteMatch:
    """Where one alert goes: a route and its receiver, grouping and timings (ms)."""

    route_id: str
    receiver: str
    group_by: tuple[str, ...]
    group_wait: int
    group_interval: int
    repeat_interval: int
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Node:
    id: str
    matchers: tuple[Matcher, ...]
    timings: Timings
    continue_: bool
    mute: tuple[str, ...]
    active: tuple[str, ...]
    children: tuple[_Node, ...]

    def match(self, labels: Mapping[str, str]) -> list[_Node]:
        if not matches_all(self.matchers, labels):
            return []
        found: list[_Node] = []
        for child in self.children:
            matched = child.match(labels)
            found += matched
            if matched and not child.continue_:
                break
        return found or [self]

    def to_match(self, receiver: str | None = None) -> RouteMatch:
        t = self.timings
        return RouteMatch(self.id, receiver or t.receiver or "", t.group_by, t.group_wait, t.group_interval,
                          t.repeat_interval, self.mute, self.active)


def _compile(route: Route, route_id: str, parent: Timings | None) -> _Node:
    timings = resolve_timings(route, parent)
    matchers = parse_matchers(route.matchers)
    children = tuple(
        _compile(child, f"{route_id}/{{{','.join(sorted(str(m) for m in parse_matchers(child.matchers)))}}}/{i}",
                 timings)
        for i, child in enumerate(route.routes))
    return _Node(route_id, matchers, timings, route.continue_, tuple(route.mute_time_intervals),
                 tuple(route.active_time_intervals), children)


class Router:
    """The compiled route tree of a configuration."""

    def __init__(self, config: NotifyConfig) -> None:
        self._root = _compile(config.route, ROOT_ID, None)
        self._receivers = set(config.receiver_names())

    def match(self, alert: Mapping[str, Any]) -> list[RouteMatch]:
        """The routes (in tree order) that get ``alert``, with the channels fallback applied."""
        return self.match_labels(alert_labels(alert), alert.get("channels") or ())

    def match_labels(self, labels: Mapping[str, str], channels: Any = ()) -> list[RouteMatch]:
        """As :meth:`match`, from a label set and a channel list."""
        nodes = self._root.match(labels)
        if nodes == [self._root]:
            fallback = list(dict.fromkeys(c for c in channels if c in self._receivers))
            if fallback:
                return [self._root.to_match(name) for name in fallback]
        return [node.to_match() for node in nodes]

    def route_ids(self) -> list[str]:
        """Every route's id, depth-first (the root is ``{}``)."""
        out: list[str] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            out.append(node.id)
            stack.extend(reversed(node.children))
        return out


def group_labels(labels: Mapping[str, str], group_by: tuple[str, ...]) -> dict[str, str]:
    """The labels a group is keyed by: those of ``group_by`` the alert has (all of them for ``...``)."""
    if group_by == (GROUP_BY_ALL,):
        return dict(sorted(labels.items()))
    return {name: labels[name] for name in sorted(group_by) if name in labels}


def group_key(match: RouteMatch, labels: Mapping[str, str]) -> str:
    """``route_id:receiver:{name="value",...}``: one aggregation group of one receiver."""
    inner = ",".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(labels.items()))
    return f"{match.route_id}:{match.receiver}:{{{inner}}}"
