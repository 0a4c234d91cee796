"""What the notifier's parts hand each other: a notification for one receiver, and delivery errors.

Pure data, no I/O. The grouping core (``grouping.py``) produces :class:`Notification`\\ s, the
templates (``templates.py``) render them, the receivers (``receivers/``) deliver them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emowatch.topics.errors import EmowatchError

__all__ = ["DeliveryError", "Notification", "NotificationLogEntry", "PermanentDeliveryError", "Rendered",
           "Suppressed", "TransientDeliveryError"]


@dataclass(frozen=True)
class Notification:
    """One message to one receiver about one group of alerts.

    ``alerts`` are Alert records (the Avro ``Alert`` dicts, ``topics/schemas/Alert.v*.avsc``),
    each in its latest status, firing ones first. ``status`` is FIRING while any alert of the
    group fires, else RESOLVED. ``repeat`` is 0 for the first message about this group, status
    and alert set, and counts the ``repeat_interval`` reminders after it. ``idempotency_key``
    is stable for (receiver, group, status, alert set, repeat): a retried or re-sent delivery
    carries the same key, so a receiver can drop exact repeats."""

    receiver: str
    group_key: str
    group_labels: dict[str, str]
    status: str
    alerts: tuple[dict[str, Any], ...]
    repeat: int
    idempotency_key: str
    console_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    route_id: str = ""
    at_ms: int = 0  # when the dispatcher produced it (the clock passed to ``due``)

    @property
    def alert_states(self) -> tuple[tuple[str, str], ...]:
        """Sorted ``(alert_id, status)`` pairs: the alert set the idempotency key covers."""
        return tuple(sorted((str(a["alert_id"]), str(a["status"])) for a in self.alerts))


@dataclass(frozen=True)
class Suppressed:
    """An alert that a receiver did not get, and why: ``silenced:<silence id>``, ``muted:<interval>``,
    ``inactive:<interval,...>`` (outside the route's active intervals), ``acked:<by>`` or ``blackhole``
    (a receiver without integrations). Reported once per alert, status, receiver and reason."""

    alert_id: str
    reason: str
    receiver: str
    status: str = "FIRING"
    group_key: str = ""
    at_ms: int = 0


@dataclass(frozen=True)
class NotificationLogEntry:
    """What was delivered: one line of the notification log, written after each successful delivery
    (``Dispatcher.mark_sent``) and fed back with ``Dispatcher.seed`` after a restart, so a restarted
    dispatcher does not send again what the log holds."""

    receiver: str
    group_key: str
    status: str
    alerts: tuple[tuple[str, str], ...]  # sorted (alert_id, status)
    repeat: int
    sent_at_ms: int
    idempotency_key: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (``from_json`` reads it back)."""
        return {"receiver": self.receiver, "group_key": self.group_key, "status": self.status,
                "alerts": [list(pair) for pair in self.alerts], "repeat": self.repeat,
                "sent_at_ms": self.sent_at_ms, "idempotency_key": self.idempotency_key}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NotificationLogEntry:
        return cls(str(data["receiver"]), str(data["group_key"]), str(data["status"]),
                   tuple(sorted((str(a), str(s)) for a, s in data["alerts"])), int(data["repeat"]),
                   int(data["sent_at_ms"]), str(data.get("idempotency_key", "")))

    def to_record(self) -> dict[str, Any]:
        """The ``NotificationLog`` Avro record (``topics/schemas/NotificationLog.v1.avsc``)."""
        return {"receiver": self.receiver, "group_key": self.group_key, "status": self.status,
                "alerts": [{"alert_id": a, "status": s} for a, s in sorted(self.alerts)], "repeat": self.repeat,
                "sent_at": self.sent_at_ms, "idempotency_key": self.idempotency_key}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> NotificationLogEntry:
        """Read a ``NotificationLog`` record back (extra fields such as ``trace_id`` are ignored)."""
        return cls(str(record["receiver"]), str(record["group_key"]), str(record["status"]),
                   tuple(sorted((str(a["alert_id"]), str(a["status"])) for a in record["alerts"])),
                   int(record["repeat"]), int(record["sent_at"]), str(record.get("idempotency_key", "")))

    @property
    def log_key(self) -> str:
        """The Kafka key of its record: ``receiver|group_key|status`` (compaction keeps the latest)."""
        return f"{self.receiver}|{self.group_key}|{self.status}"


@dataclass(frozen=True)
class Rendered:
    """A notification as text: ``title`` (email subject, chat title) and ``body`` (plain text / markdown)."""

    title: str
    body: str


class DeliveryError(EmowatchError):
    """A delivery attempt failed."""


class TransientDeliveryError(DeliveryError):
    """Worth retrying: timeout, connection refused, HTTP 5xx/429, SMTP 4xx."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: HTTP 4xx (but 408/429), SMTP 5xx, a host not on the allow-list."""
