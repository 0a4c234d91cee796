"""A receiver that writes one structured log line per notification (the demo prints these).

Constructor: ``LogReceiver(name, *, logger_name="emowatch.notify.delivered", level=logging.INFO,
send_resolved=True)``. Each ``send`` logs ``delivered {json}`` where the JSON object holds
``receiver``, ``group_key``, ``status``, ``alert_ids``, ``idempotency_key``, ``repeat`` and
``title``; the same dict is on the record as ``record.emowatch_delivery`` for structured handlers.
It never fails.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from emowatch.streams.notify.model import Notification, Rendered

__all__ = ["LogReceiver", "delivery_fields"]


def delivery_fields(notification: Notification, rendered: Rendered) -> dict[str, Any]:
    """What the log line says about ``notification``."""
    return {
        "receiver": notification.receiver,
        "group_key": notification.group_key,
        "status": notification.status,
        "alert_ids": [a.get("alert_id") for a in notification.alerts],
        "idempotency_key": notification.idempotency_key,
        "repeat": notification.repeat,
        "title": rendered.title,
    }


class LogReceiver:
    """Logs ``delivered {...}`` (see the module docstring)."""

    kind = "log"

    def __init__(self, name: str, *, logger_name: str = "emowatch.notify.delivered", level: int = logging.INFO,
                 send_resolved: bool = True) -> None:
        self.name = name
        self.send_resolved = send_resolved
        self.level = level
        self._log = logging.getLogger(logger_name)

    async def send(self, notification: Notification, rendered: Rendered) -> None:
        fields = delivery_fields(notification, rendered)
        self._log.log(self.level, "delivered %s", json.dumps(fields, ensure_ascii=False, sort_keys=True),
                      extra={"emowatch_delivery": fields})

    async def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"LogReceiver(name={self.name!r}, logger={self._log.name!r})"
