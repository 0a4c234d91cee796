"""The dispatcher: alerts in, notifications out, with the clock passed in (epoch ms). Pure and
deterministic: no I/O, no threads, no reading of the clock.

Alertmanager semantics (``docs/notify.md`` section 4): an alert joins one group per matching route
(group = route, receiver, values of the route's ``group_by`` labels). A new group flushes
``group_wait`` after its first alert, then on every ``group_interval`` tick; a tick sends only when
:func:`~emowatch.streams.notify.group_state.needs_notify` says so (a new firing alert, newly resolved
ones for ``send_resolved`` receivers, or a ``repeat_interval`` reminder). Resolved alerts leave the
group after the flush that saw them; an empty group is deleted. Silences, acks and time intervals
are applied at flush time; what they hold back is reported (:meth:`Dispatcher.drain_suppressed`).

The service calls :meth:`add` per alert record, :meth:`due` when :meth:`next_wakeup` is reached,
delivers, then :meth:`mark_sent` (log the returned entry) or :meth:`mark_failed` (retry at the next tick).
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Any

from emowatch.streams.notify.config import NotifyConfig
from emowatch.streams.notify.errors import DispatcherStateError, InvalidAlertError
from emowatch.streams.notify.group_state import (
    FIRING,
    RESOLVED,
    Group,
    History,
    Sent,
    content_key,
    idempotency_key,
    needs_notify,
    sort_alerts,
)
from emowatch.streams.notify.model import Notification, NotificationLogEntry, Suppressed
from emowatch.streams.notify.routing import RouteMatch, Router, alert_labels, group_key, group_labels
from emowatch.streams.notify.suppression import Ack, Silence
from emowatch.streams.notify.time_intervals import TimeIntervals

__all__ = ["DEFAULT_RETENTION_MS", "STATE_VERSION", "Dispatcher"]

DEFAULT_RETENTION_MS = 24 * 3_600_000
STATE_VERSION = 1
PRUNE_EVERY_MS = 1000
"""Expired silences, acks and old history are dropped at most this often (event time of ``due``)."""


class Dispatcher:
    """Routing + grouping + timing for one notifier configuration (see the module docstring).

    ``retention_ms`` bounds the memory of finished work: resolved alert ids (a late duplicate
    FIRING of a resolved alert is ignored that long), seeded log entries without a group, acks of
    alerts never seen.
    """

    def __init__(self, config: NotifyConfig, *, retention_ms: int = DEFAULT_RETENTION_MS) -> None:
        self.config = config
        self.router = Router(config)
        self._intervals = TimeIntervals(config.time_intervals)
        self._send_resolved = {r.name: r.send_resolved for r in config.receivers}
        self._blackholes = {r.name for r in config.receivers if not r.integrations()}
        self._retention_ms = retention_ms
        self._groups: dict[str, Group] = {}
        self._alert_groups: dict[str, set[str]] = {}
        self._history: dict[str, History] = {}
        self._resolved: dict[str, int] = {}
        self._blackholed: dict[str, int] = {}
        self._silences: dict[str, Silence] = {}
        self._acks: dict[str, Ack] = {}
        self._suppressed: list[Suppressed] = []
        self._flushed: list[str] = []
        # (next_flush_ms, group key), lazily invalidated: due() and next_wakeup() cost O(log groups),
        # not a scan of every group (12,000 firing groups made every loop of the service scan them all)
        self._schedule: list[tuple[int, str]] = []
        self._pruned_ms = -PRUNE_EVERY_MS

    # -- input -----------------------------------------------------------------------------------

    def add(self, alert: Mapping[str, Any], now_ms: int) -> list[str]:
        """Take one Alert record; returns the keys of the groups it joined or updated ([] for a no-op:
        a duplicate event, or a FIRING of an alert already resolved)."""
        aid, status = _identity(alert)
        if aid in self._resolved:
            return []
        keys = self._alert_groups.get(aid)
        if keys:
            if status == FIRING:
                return []
            self._resolved[aid] = now_ms
            for key in keys:
                self._groups[key].alerts[aid] = dict(alert)
            return sorted(keys)
        if status == RESOLVED:
            self._resolved[aid] = now_ms
        joined = []
        labels = alert_labels(alert)
        for match in self.router.match(alert):
            if match.receiver in self._blackholes:
                if aid not in self._blackholed:
                    self._suppressed.append(Suppressed(aid, "blackhole", match.receiver, status, "", now_ms))
                self._blackholed[aid] = now_ms
                continue
            joined.append(self._join(match, labels, alert, aid, now_ms))
        return joined

    def _join(self, match: RouteMatch, labels: dict[str, str], alert: Mapping[str, Any], aid: str,
              now_ms: int) -> str:
        grouped = group_labels(labels, match.group_by)
        key = group_key(match, grouped)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key, match, grouped, {}, now_ms, now_ms + match.group_wait)
            heapq.heappush(self._schedule, (group.next_flush_ms, key))
        group.alerts[aid] = dict(alert)
        self._alert_groups.setdefault(aid, set()).add(key)
        return key

    def add_silence(self, silence: Silence) -> None:
        """Add or replace (same id) a silence; it applies from the next flush."""
        self._silences[silence.id] = silence

    def remove_silence(self, silence_id: str) -> bool:
        """Expire a silence now; True if it existed."""
        return self._silences.pop(silence_id, None) is not None

    def silences(self) -> list[Silence]:
        return sorted(self._silences.values(), key=lambda s: s.id)

    def acks(self) -> list[Ack]:
        return list(self._acks.values())

    def ack(self, ack: Ack) -> bool:
        """Acknowledge an alert (no more FIRING notifications about it); True if the alert is in a group
        now (an ack of an alert not seen yet is kept for ``retention_ms``)."""
        self._acks[ack.alert_id] = ack
        return ack.alert_id in self._alert_groups

    # -- output ----------------------------------------------------------------------------------

    def next_wakeup(self) -> int | None:
        """When :meth:`due` has work next (epoch ms), None when there is no group."""
        while self._schedule:
            at, key = self._schedule[0]
            group = self._groups.get(key)
            if group is not None and group.next_flush_ms == at:
                return at
            heapq.heappop(self._schedule)  # stale: the group was flushed again or deleted since
        return None

    def due(self, now_ms: int) -> list[Notification]:
        """Flush every group whose time has come; the notifications to deliver, in flush order."""
        if now_ms - self._pruned_ms >= PRUNE_EVERY_MS:
            self._prune(now_ms)
            self._pruned_ms = now_ms
        ready, taken = [], set()
        while self._schedule and self._schedule[0][0] <= now_ms:
            at, key = heapq.heappop(self._schedule)
            group = self._groups.get(key)
            if group is not None and group.next_flush_ms == at and key not in taken:
                taken.add(key)
                ready.append(group)  # heap order: (next_flush_ms, key)
        out = []
        self._flushed = [g.key for g in ready]
        for group in ready:
            notification = self._flush(group, now_ms)
            if notification is not None:
                out.append(notification)
        return out

    def flushed_keys(self) -> list[str]:
        """The keys of the groups the last :meth:`due` flushed (with or without a notification)."""
        return list(self._flushed)

    def drain_suppressed(self) -> list[Suppressed]:
        """What was held back since the last call (silenced, muted, acked, black-holed), oldest first."""
        out, self._suppressed = self._suppressed, []
        return out

    def mark_sent(self, notification: Notification, now_ms: int) -> NotificationLogEntry:
        """The notification was delivered: the entry to append to the notification log."""
        history = self._history.get(notification.group_key)
        if history is not None and history.last is not None and history.last.key == notification.idempotency_key:
            history.previous, history.last_content = None, ""
        return NotificationLogEntry(notification.receiver, notification.group_key, notification.status,
                                    notification.alert_states, notification.repeat, now_ms,
                                    notification.idempotency_key)

    def mark_failed(self, notification: Notification, now_ms: int) -> bool:
        """Delivery failed for good: forget that it was sent, so the group's next tick sends it again
        (same content, same key). False when the group moved on or is gone (e.g. its final RESOLVED)."""
        history = self._history.get(notification.group_key)
        if (history is None or history.last is None or history.last.key != notification.idempotency_key
                or not history.last_content):  # moved on, or already marked sent
            return False
        history.rollback()
        return True

    def seed(self, entries: Iterable[NotificationLogEntry]) -> None:
        """Load the notification log after a restart (call before feeding alerts again): groups that
        form again with alerts the log already holds are not notified again (only reminders are due,
        counted from the logged time), and alerts whose RESOLVED was logged are finished."""
        for entry in sorted(entries, key=lambda e: e.sent_at_ms):
            history = self._history.setdefault(entry.group_key, History())
            content = content_key(entry.status, entry.alerts)
            history.counts[content] = max(history.counts.get(content, 0), entry.repeat + 1)
            firing = frozenset(a for a, s in entry.alerts if s == FIRING)
            resolved = frozenset(a for a, s in entry.alerts if s == RESOLVED)
            history.last = Sent(firing, resolved, entry.sent_at_ms, entry.idempotency_key)
            for aid in resolved:
                self._resolved.setdefault(aid, entry.sent_at_ms)

    # -- the flush ---------------------------------------------------------------------------------

    def _flush(self, group: Group, now_ms: int) -> Notification | None:
        route = group.route
        group.next_flush_ms = now_ms + route.group_interval
        heapq.heappush(self._schedule, (group.next_flush_ms, group.key))
        held = self._time_mute(route, now_ms)
        if held:  # Alertmanager drops a flush in a mute window; the next tick after it sends
            for alert in group.alerts.values():
                self._report(group, alert, held, now_ms)
            self._drop_resolved(group)
            return None
        firing, resolved = [], []
        silences = [s for s in self.silences() if s.active(now_ms)]
        for alert in group.alerts.values():
            silence = _silenced_by(silences, alert)
            if silence is not None:
                self._report(group, alert, f"silenced:{silence.id}", now_ms)
            elif alert["status"] == RESOLVED:
                resolved.append(alert)
            elif alert["alert_id"] in self._acks:
                self._report(group, alert, f"acked:{self._acks[alert['alert_id']].by}", now_ms)
            else:
                firing.append(alert)
        send_resolved = self._send_resolved[route.receiver]
        history = self._history.setdefault(group.key, History())
        firing_ids = frozenset(a["alert_id"] for a in firing)
        resolved_ids = frozenset(a["alert_id"] for a in resolved)
        notification = None
        if needs_notify(history.last, firing_ids, resolved_ids, send_resolved, now_ms, route.repeat_interval):
            # the first notification of a group also lists episodes that are already over: they are news
            alerts = sort_alerts(firing + (resolved if send_resolved or history.last is None else []))
            status = FIRING if firing else RESOLVED
            states = tuple(sorted((str(a["alert_id"]), str(a["status"])) for a in alerts))
            content = content_key(status, states)
            repeat = history.counts.get(content, 0)
            key = idempotency_key(route.receiver, group.key, status, states, repeat)
            history.record(Sent(firing_ids, resolved_ids if send_resolved else frozenset(), now_ms, key), content)
            notification = Notification(route.receiver, group.key, dict(group.labels), status,
                                        tuple(dict(a) for a in alerts), repeat, key, self.config.global_.console_url,
                                        route_id=route.route_id, at_ms=now_ms)
        self._drop_resolved(group)
        return notification

    def _time_mute(self, route: RouteMatch, now_ms: int) -> str | None:
        if route.mute_time_intervals:
            name = self._intervals.active(now_ms, route.mute_time_intervals)
            if name is not None:
                return f"muted:{name}"
        if route.active_time_intervals and self._intervals.active(now_ms, route.active_time_intervals) is None:
            return "inactive:" + ",".join(route.active_time_intervals)
        return None

    def _report(self, group: Group, alert: Mapping[str, Any], reason: str, now_ms: int) -> None:
        mark = (str(alert["alert_id"]), str(alert["status"]), reason)
        if mark not in group.reported:
            group.reported.add(mark)
            self._suppressed.append(Suppressed(mark[0], reason, group.route.receiver, mark[1], group.key, now_ms))

    def _drop_resolved(self, group: Group) -> None:
        for aid in [aid for aid, a in group.alerts.items() if a["status"] == RESOLVED]:
            del group.alerts[aid]
            keys = self._alert_groups.get(aid, set())
            keys.discard(group.key)
            if not keys:
                self._alert_groups.pop(aid, None)
                self._acks.pop(aid, None)
        if not group.alerts:
            del self._groups[group.key]
            self._history.pop(group.key, None)

    def _prune(self, now_ms: int) -> None:
        horizon = now_ms - self._retention_ms
        self._silences = {k: s for k, s in self._silences.items() if s.ends_ms > now_ms}
        self._resolved = {k: t for k, t in self._resolved.items() if t >= horizon}
        self._blackholed = {k: t for k, t in self._blackholed.items() if t >= horizon}
        self._acks = {k: a for k, a in self._acks.items() if k in self._alert_groups or a.at_ms >= horizon}
        self._history = {k: h for k, h in self._history.items()
                         if k in self._groups or (h.last is not None and h.last.at_ms >= horizon)}

    # -- snapshots ---------------------------------------------------------------------------------

    @property
    def group_count(self) -> int:
        return len(self._groups)

    def state(self) -> dict[str, Any]:
        """Everything the dispatcher holds, as JSON-able data (:meth:`restore` reads it back)."""
        return {"version": STATE_VERSION, "groups": [self._groups[k].to_json() for k in sorted(self._groups)],
                "history": {k: h.to_json() for k, h in sorted(self._history.items())},
                "resolved": dict(sorted(self._resolved.items())),
                "blackholed": dict(sorted(self._blackholed.items())),
                "silences": [s.to_json() for s in self.silences()],
                "acks": [a.to_json() for _k, a in sorted(self._acks.items())]}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace this dispatcher's state with a :meth:`state` snapshot. Groups keep the routes and timings
        they were created with; groups of receivers no longer configured are dropped and their alerts
        reported as ``Suppressed(reason="receiver-removed")``."""
        if state.get("version") != STATE_VERSION:
            raise DispatcherStateError(f"unsupported dispatcher state version {state.get('version')!r}")
        groups = [Group.from_json(g) for g in state["groups"]]
        self._groups = {g.key: g for g in groups if g.route.receiver in self._send_resolved}
        self._schedule = sorted((g.next_flush_ms, g.key) for g in self._groups.values())
        for gone in (g for g in groups if g.route.receiver not in self._send_resolved):
            self._suppressed += [Suppressed(aid, "receiver-removed", gone.route.receiver, str(a["status"]), gone.key)
                                 for aid, a in gone.alerts.items()]
        self._history = {str(k): History.from_json(h) for k, h in state["history"].items()}
        self._resolved = {str(k): int(t) for k, t in state["resolved"].items()}
        self._blackholed = {str(k): int(t) for k, t in state.get("blackholed", {}).items()}
        self._silences = {s["id"]: Silence.from_json(s) for s in state["silences"]}
        self._acks = {a["alert_id"]: Ack.from_json(a) for a in state["acks"]}
        self._alert_groups = {}
        for key, group in self._groups.items():
            for aid in group.alerts:
                self._alert_groups.setdefault(aid, set()).add(key)


def _silenced_by(silences: list[Silence], alert: Mapping[str, Any]) -> Silence | None:
    if not silences:
        return None
    labels = alert_labels(alert)
    return next((s for s in silences if s.matches(labels)), None)


def _identity(alert: Mapping[str, Any]) -> tuple[str, str]:
    aid, status = alert.get("alert_id"), alert.get("status")
    if not isinstance(aid, str) or not aid:
        raise InvalidAlertError("an alert record needs a non-empty 'alert_id'")
    if status not in (FIRING, RESOLVED):
        raise InvalidAlertError(f"alert {aid}: status must be FIRING or RESOLVED, not {status!r}")
    return aid, status
