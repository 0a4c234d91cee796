"""Our Alert records in Alertmanager's shapes: one alert (:func:`am_alert`) and the webhook payload.

:func:`am_alert` is the single mapping, used by the webhook's ``alertmanager`` format and by the
Alertmanager receiver (which posts it to ``/api/v2/alerts``):

================  ===================================================================================
field             from the Alert record (``topics/schemas/Alert.v2.avsc``)
================  ===================================================================================
labels            the alert's ``labels``, then (winning over them) ``alertname`` = ``rule_id``,
                  ``business_line``, ``priority``, ``role``, ``call_id``, ``rule_set``, ``action``;
                  names made valid for Alertmanager (``[a-zA-Z_][a-zA-Z0-9_]*``: other characters
                  become ``_``), empty values dropped (Prometheus: empty = absent)
annotations       ``summary`` = the rendered title, ``description`` (one line about this alert),
                  ``value``, ``threshold`` (``%g``), ``emotions`` (comma-separated)
startsAt          the episode start's event time: ``event_time - (fired_ms - started_ms)`` (RFC 3339, UTC, ms)
endsAt            RESOLVED: ``event_time``; FIRING: ``0001-01-01T00:00:00Z`` (Alertmanager's "not set")
generatorURL      the console link ``{console_url}/calls/{call_id}`` ('' without a console URL)
fingerprint       ``alert_id[:16]`` (Alertmanager's are 16 hex digits too)
status            ``firing`` | ``resolved`` (the alert's own status)
================  ===================================================================================

:func:`webhook_payload` is Alertmanager's webhook body, version "4", so a receiver written for
Alertmanager's ``webhook_configs`` accepts ours unchanged.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from emowatch.streams.notify.model import Notification, Rendered

__all__ = ["ZERO_TIME", "am_alert", "console_link", "label_name", "rfc3339", "webhook_payload"]

ZERO_TIME = "0001-01-01T00:00:00Z"
_IDENTITY = ("business_line", "priority", "role", "call_id", "rule_set", "action")
_BAD = re.compile(r"[^a-zA-Z0-9_]")


def label_name(name: str) -> str:
    """``name`` as a valid Alertmanager label name."""
    out = _BAD.sub("_", name) or "_"
    return "_" + out if out[0].isdigit() else out


def rfc3339(ms: int) -> str:
    """Epoch milliseconds -> ``2026-01-02T03:04:05.678Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def console_link(console_url: str | None, call_id: str) -> str:
    """``{console_url}/calls/{call_id}`` (call id URL-quoted), or '' without a console URL."""
    if not console_url:
        return ""
    return f"{console_url.rstrip('/')}/calls/{quote(str(call_id), safe='')}"


def _text(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:g}"
    return "" if x is None else str(x)


def am_alert(alert: dict[str, Any], *, summary: str, console_url: str | None) -> dict[str, Any]:
    """One Alert record as an Alertmanager alert (see the module docstring for the mapping)."""
    labels = {label_name(str(k)): _text(v) for k, v in (alert.get("labels") or {}).items()}
    labels["alertname"] = str(alert["rule_id"])
    for key in _IDENTITY:
        labels[key] = _text(alert.get(key))
    labels = {k: v for k, v in sorted(labels.items()) if v != ""}
    emotions = ",".join(alert.get("emotions") or ())
    value, threshold = _text(float(alert["value"])), _text(float(alert["threshold"]))
    description = (f"{alert['rule_id']}: {str(alert.get('role', '')).lower()} {emotions} value {value} "
                   f"(threshold {threshold}) on call {alert['call_id']}")
    event_time = int(alert["event_time"])
    starts = event_time - (int(alert["fired_ms"]) - int(alert["started_ms"]))
    resolved = alert["status"] == "RESOLVED"
    return {
        "status": "resolved" if resolved else "firing",
        "labels": labels,
        "annotations": {"summary": summary, "description": description, "value": value, "threshold": threshold,
                        "emotions": emotions},
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(event_time) if resolved else ZERO_TIME,
        "generatorURL": console_link(console_url, alert["call_id"]),
        "fingerprint": str(alert["alert_id"])[:16],
    }


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    common = dict(dicts[0])
    for d in dicts[1:]:
        common = {k: v for k, v in common.items() if d.get(k) == v}
    return common


def webhook_payload(notification: Notification, rendered: Rendered, *, max_alerts: int = 0) -> dict[str, Any]:
    """Alertmanager's webhook payload (version "4") for ``notification``; ``max_alerts`` > 0 keeps
    that many alerts and counts the rest in ``truncatedAlerts`` (Alertmanager's ``max_alerts``)."""
    alerts = [am_alert(a, summary=rendered.title, console_url=notification.console_url) for a in notification.alerts]
    kept = alerts[:max_alerts] if max_alerts > 0 else alerts
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": len(alerts) - len(kept),
        "status": "resolved" if notification.status == "RESOLVED" else "firing",
        "receiver": notification.receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": (notification.console_url or "").rstrip("/"),
        "alerts": kept,
    }
