"""Signed JSON webhook (our own integration; aiohttp).

Constructor: ``WebhookReceiver(name, url, *, allowed_hosts, secret=None, format="emowatch",
send_resolved=True, max_alerts=0, headers=None, timeout_s=30.0)``. ``url`` may carry basic-auth
credentials (``https://user:pass@host/path``); ``headers`` (e.g. ``Authorization``) go with every
request; both are secrets, never logged or put in errors.

Body formats (``format``):

* ``emowatch``: ``{"version": "1", "receiver", "status": "FIRING"|"RESOLVED", "group_key",
  "group_labels", "repeat", "alerts": [<Alert record fields> + "url": console link
  {console_url}/calls/{call_id} (null without a console URL)], "title", "body"}``.
* ``alertmanager``: Alertmanager's webhook payload, version "4" (see ``amformat.py`` for the field
  mapping), so receivers built for Alertmanager's ``webhook_configs`` work unchanged.

Headers: ``Content-Type: application/json``, ``Idempotency-Key: <notification.idempotency_key>``
(the same on every retry and re-send: drop repeats), ``X-Emowatch-Timestamp: <unix seconds>``
and, when ``secret`` is set, ``X-Emowatch-Signature: sha256=<hex>`` where ``<hex>`` is
HMAC-SHA256 with key ``secret`` (UTF-8) over the bytes ``<timestamp> "." <body>`` (the timestamp
header's ASCII digits, a full stop, the raw request body). Every attempt is signed afresh.
Verify on the receiving side (reject old timestamps to stop replays; compare in constant time)::

    import hashlib, hmac, time

    def verify(secret: bytes, headers, body: bytes, tolerance_s: int = 300) -> bool:
        ts = headers.get("X-Emowatch-Timestamp", "")
        if not ts.isdigit() or abs(time.time() - int(ts)) > tolerance_s:
            return False  # missing, malformed or too old: a replay
        mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers.get("X-Emowatch-Signature", ""), "sha256=" + mac)

Redirects are not followed (3xx is permanent); the host is checked against ``allowed_hosts``
before any request (:class:`~emowatch.streams.notify.receivers.safety.HostAllowList`).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from emowatch.streams.notify.model import Notification, Rendered
from emowatch.streams.notify.receivers.amformat import console_link, webhook_payload
from emowatch.streams.notify.receivers.base import ReceiverConfigError
from emowatch.streams.notify.receivers.httpclient import JsonPoster

__all__ = ["FORMATS", "WebhookReceiver", "emowatch_payload", "sign"]

FORMATS = ("emowatch", "alertmanager")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Emowatch-Signature`` value: ``sha256=`` + hex HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def emowatch_payload(notification: Notification, rendered: Rendered) -> dict[str, Any]:
    """The ``emowatch`` body format (see the module docstring)."""
    alerts = [{**a, "url": console_link(notification.console_url, a["call_id"]) or None}
              for a in notification.alerts]
    return {
        "version": "1",
        "receiver": notification.receiver,
        "status": notification.status,
        "group_key": notification.group_key,
        "group_labels": dict(notification.group_labels),
        "repeat": notification.repeat,
        "alerts": alerts,
        "title": rendered.title,
        "body": rendered.body,
    }


class WebhookReceiver:
    """POSTs each notification as JSON to ``url`` (see the module docstring)."""

    kind = "webhook"

    def __init__(self, name: str, url: str, *, allowed_hosts: Iterable[str], secret: str | None = None,
                 format: str = "emowatch", send_resolved: bool = True, max_alerts: int = 0,
                 headers: Mapping[str, str] | None = None, timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        if format not in FORMATS:
            raise ReceiverConfigError(f"webhook {name}: format must be one of {', '.join(FORMATS)}, not {format!r}")
        self.name = name
        self.format = format
        self.send_resolved = send_resolved
        self.max_alerts = max_alerts
        self._secret = secret
        self._clock = clock
        self._http = JsonPoster(f"webhook {name}", url, allowed_hosts=allowed_hosts, headers=headers,
                                timeout_s=timeout_s)

    def body(self, notification: Notification, rendered: Rendered) -> bytes:
        """The exact request body (UTF-8 JSON) for ``notification``."""
        if self.format == "alertmanager":
            payload = webhook_payload(notification, rendered, max_alerts=self.max_alerts)
        else:
            payload = emowatch_payload(notification, rendered)
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")

    async def send(self, notification: Notification, rendered: Rendered) -> None:
        """One POST; returns on 2xx, raises Transient/PermanentDeliveryError otherwise."""
        body = self.body(notification, rendered)
        timestamp = str(int(self._clock()))
        headers = {"Content-Type": "application/json", "Idempotency-Key": notification.idempotency_key,
                   "X-Emowatch-Timestamp": timestamp}
        if self._secret:
            headers["X-Emowatch-Signature"] = sign(self._secret, timestamp, body)
        await self._http.post("", body, headers)

    async def close(self) -> None:
        await self._http.close()

    def __repr__(self) -> str:
        return f"WebhookReceiver(name={self.name!r}, host={self._http.host!r}, format={self.format!r})"
