"""What the notifier's parts hand each other: a notification for one receiver, and delivery errors.

Pure data, no I/O. The grouping core (``grouping.py``) produces :class:`Notification`\\ s, the
templates (``templates.py``) render them, the receivers (``receivers/``) deliver them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emowatch.topics.errors import EmowatchError

__all__ = ["DeliveryError", "Notification", "PermanentDeliveryError", "Rendered", "TransientDeliveryError"]


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
