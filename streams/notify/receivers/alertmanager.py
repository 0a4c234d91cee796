"""Forward alerts to an existing Prometheus Alertmanager (``POST {url}/api/v2/alerts``).

Constructor: ``AlertmanagerReceiver(name, url, *, allowed_hosts, send_resolved=True, headers=None,
timeout_s=30.0, clock=time.time)``; ``url`` is Alertmanager's base URL (``http://am:9093``, may
carry basic-auth credentials or sit behind a path prefix), ``headers`` e.g. ``Authorization``.

Each Alert record of the notification becomes one postable alert (labels, annotations, startsAt,
generatorURL: :func:`~emowatch.streams.notify.receivers.amformat.am_alert`, the mapping the
webhook's ``alertmanager`` format shares). A FIRING alert is posted without ``endsAt``: Alertmanager
then keeps it active for its ``resolve_timeout`` (default 5m) unless re-posted, so give this
receiver's route a ``repeat_interval`` below that, or raise ``resolve_timeout``. A RESOLVED alert is
posted with ``endsAt`` = its event time, clamped to now (an end in the future would keep it firing)
and to its start (Alertmanager refuses an end before the start), so Alertmanager resolves it at
once. Keep ``send_resolved`` True here, or resolutions reach Alertmanager only by timeout.
Alertmanager answers 200; 400 (invalid alerts) is permanent, 5xx transient.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from emowatch.streams.notify.model import Notification, Rendered
from emowatch.streams.notify.receivers.amformat import am_alert, rfc3339
from emowatch.streams.notify.receivers.httpclient import JsonPoster

__all__ = ["AlertmanagerReceiver", "postable_alerts"]

API_PATH = "/api/v2/alerts"


def postable_alerts(notification: Notification, rendered: Rendered, *, now_ms: int) -> list[dict[str, Any]]:
    """The ``/api/v2/alerts`` request body for ``notification`` (see the module docstring)."""
    out = []
    for alert in notification.alerts:
        a = am_alert(alert, summary=rendered.title, console_url=notification.console_url)
        postable: dict[str, Any] = {"labels": a["labels"], "annotations": a["annotations"], "startsAt": a["startsAt"]}
        if a["generatorURL"]:
            postable["generatorURL"] = a["generatorURL"]
        if alert["status"] == "RESOLVED":
            starts_ms = int(alert["event_time"]) - (int(alert["fired_ms"]) - int(alert["started_ms"]))
            postable["endsAt"] = rfc3339(max(starts_ms, min(int(alert["event_time"]), now_ms)))
        out.append(postable)
    return out


class AlertmanagerReceiver:
    """Posts the notification's alerts to Alertmanager's v2 API (see the module docstring)."""

    kind = "alertmanager"

    def __init__(self, name: str, url: str, *, allowed_hosts: Iterable[str], send_resolved: bool = True,
                 headers: Mapping[str, str] | None = None, timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.send_resolved = send_resolved
        self._clock = clock
        self._http = JsonPoster(f"alertmanager {name}", url, allowed_hosts=allowed_hosts, headers=headers,
                                timeout_s=timeout_s)

    async def send(self, notification: Notification, rendered: Rendered) -> None:
        """One POST of all the notification's alerts; returns on 2xx, raises a delivery error otherwise."""
        body = postable_alerts(notification, rendered, now_ms=int(self._clock() * 1000))
        await self._http.post(API_PATH, json.dumps(body, ensure_ascii=False).encode("utf-8"),
                              {"Content-Type": "application/json"})

    async def close(self) -> None:
        await self._http.close()

    def __repr__(self) -> str:
        return f"AlertmanagerReceiver(name={self.name!r}, host={self._http.host!r})"
