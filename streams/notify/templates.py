"""Render a :class:`~emowatch.streams.notify.model.Notification` as a title and a body.

Jinja2 in a sandbox (``ImmutableSandboxedEnvironment``: templates from the config cannot reach
Python internals or change data), ``StrictUndefined`` (a misspelt variable is an error, found at
load by :func:`check_template`), no autoescaping (the output is text or markdown, not HTML).
``kind`` is the integration kind; it picks the default body style (``templates_default.py``).
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from emowatch.streams.notify.errors import TemplateRenderError
from emowatch.streams.notify.model import Notification, Rendered
from emowatch.streams.notify.templates_default import DEFAULT_BODIES, DEFAULT_TITLES, STYLE_BY_KIND
from emowatch.topics.model_io import EMOTIONS

if TYPE_CHECKING:
    from emowatch.streams.notify.config import NotifyConfig

__all__ = ["EMOTION_NAMES", "KINDS", "LANGUAGES", "MAX_LISTED", "ROLE_NAMES", "check_template", "render",
           "render_for", "sample_notification", "template_context"]

KINDS: tuple[str, ...] = tuple(STYLE_BY_KIND)
LANGUAGES: tuple[str, ...] = ("zh", "en")
MAX_LISTED = 20  # alerts listed in a body; the rest are counted ("and N more")

EMOTION_NAMES: dict[str, dict[str, str]] = {
    "zh": {"angry": "愤怒", "disgusted": "厌恶", "fearful": "恐惧", "happy": "高兴", "neutral": "中性",
           "other": "其他", "sad": "悲伤", "surprised": "惊讶", "unknown": "未知"},
    "en": {e: e for e in EMOTIONS},
}
ROLE_NAMES: dict[str, dict[str, str]] = {
    "zh": {"CUSTOMER": "客户", "AGENT": "坐席", "MIXED": "通话"},
    "en": {"CUSTOMER": "customer", "AGENT": "agent", "MIXED": "call"},
}

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True,
                                     lstrip_blocks=True)


def render(notification: Notification, kind: str, language: str = "zh", overrides: Mapping[str, str] | None = None,
           *, business_line_names: Mapping[str, Mapping[str, str]] | None = None) -> Rendered:
    """Title and body of ``notification`` for an integration ``kind`` in ``language`` (``zh``/``en``).

    ``overrides`` may replace ``title`` and/or ``body`` (Jinja2 sources); ``business_line_names``
    maps a business line to its display name per language (``{collections: {zh: 催收线}}``).
    Raises :class:`TemplateRenderError`."""
    if kind not in STYLE_BY_KIND:
        raise TemplateRenderError(f"unknown integration kind {kind!r}; expected one of {', '.join(KINDS)}")
    if language not in LANGUAGES:
        raise TemplateRenderError(f"unknown language {language!r}; expected zh or en")
    overrides = overrides or {}
    context = template_context(notification, kind, language, business_line_names)
    title = " ".join(_render(overrides.get("title") or DEFAULT_TITLES[language], context).split())
    body_source = overrides.get("body") or DEFAULT_BODIES[language][STYLE_BY_KIND[kind]]
    body = _render(body_source, {**context, "title": title}).strip()
    return Rendered(title=title, body=body)


def render_for(config: NotifyConfig, notification: Notification, kind: str) -> Rendered:
    """:func:`render` with the receiver's language and overrides and the configured business-line names."""
    receiver = notification.receiver
    return render(notification, kind, config.language_for(receiver), config.templates_for(receiver),
                  business_line_names=config.global_.business_line_names)


def check_template(source: str, language: str = "zh") -> str | None:
    """Why ``source`` cannot be used as a template (syntax, undefined variable, sandbox), or None.

    The template is compiled and rendered against :func:`sample_notification` for every kind."""
    sample = sample_notification()
    try:
        for kind in KINDS:
            context = template_context(sample, kind, language, None)
            _render(source, {**context, "title": "title"})
    except TemplateRenderError as exc:
        return str(exc)
    return None


def template_context(notification: Notification, kind: str, language: str,
                     business_line_names: Mapping[str, Mapping[str, str]] | None) -> dict[str, Any]:
    """The variables a template sees (``docs/notify.md`` section 6)."""
    names = business_line_names or {}
    views = [_alert_view(a, language, names, notification.console_url) for a in notification.alerts]
    if not views:
        raise TemplateRenderError("a notification without alerts cannot be rendered")
    return {
        "status": notification.status, "receiver": notification.receiver, "group_key": notification.group_key,
        "group_labels": dict(notification.group_labels), "repeat": notification.repeat,
        "idempotency_key": notification.idempotency_key, "console_url": notification.console_url,
        "language": language, "kind": kind, "alerts": views,
        "firing": [v for v in views if not v["resolved"]], "resolved": [v for v in views if v["resolved"]],
        "first": views[0], "more": len(views) - 1, "priority": views[0]["priority"],
        "shown": views[:MAX_LISTED], "hidden": max(0, len(views) - MAX_LISTED),
    }


def _alert_view(alert: Mapping[str, Any], language: str, names: Mapping[str, Mapping[str, str]],
                console_url: str | None) -> dict[str, Any]:
    emotions = [EMOTION_NAMES[language].get(e, e) for e in alert.get("emotions") or ()]
    role = ROLE_NAMES[language].get(str(alert.get("role")), str(alert.get("role", "")).lower())
    joined = "/".join(emotions)
    started, fired = int(alert.get("started_ms", 0)), int(alert.get("fired_ms", 0))
    line = str(alert.get("business_line", ""))
    call_id = str(alert.get("call_id", ""))
    labels = dict(alert.get("labels") or {})
    return {
        **alert,
        "labels": labels,
        "resolved": alert.get("status") == "RESOLVED",
        "role_name": role,
        "emotion_names": emotions,
        "headline": f"{role}{joined}" if language == "zh" else f"{role} {joined}",
        "pct": _pct(alert.get("value", 0.0)),
        "threshold_pct": _pct(alert.get("threshold", 0.0)),
        "duration": _duration(fired - started),
        "offset": _clock(started),
        "span": f"{_clock(started)}–{_clock(fired)}",
        "business_line_name": names.get(line, {}).get(language, line),
        "rule_name": labels.get("rule_name") or str(alert.get("rule_id", "")),
        "link": f"{console_url}/calls/{call_id}" if console_url and call_id else None,
    }


def _pct(value: Any) -> str:
    return f"{round(float(value) * 100)}%"


def _duration(ms: int) -> str:
    """``3 s``, ``2.5 s``, ``1 min 5 s``, ``1 h 2 min``."""
    ms = max(0, ms)
    if ms < 60_000:
        seconds = round(ms / 1000, 1)
        return f"{seconds:g} s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _clock(ms: int) -> str:
    """A call offset as ``m:ss`` (``h:mm:ss`` past an hour)."""
    total = max(0, ms) // 1000
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateRenderError(f"template syntax error at template line {exc.lineno}: {exc.message}") from None


def _render(source: str, context: Mapping[str, Any]) -> str:
    template = _compile(source)
    try:
        return template.render(context)
    except jinja2.TemplateError as exc:
        raise TemplateRenderError(f"template error: {exc.message or exc.__class__.__name__}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateRenderError(f"template error: {exc.__class__.__name__}: {exc}") from None


def sample_notification(status: str = "FIRING", n_alerts: int = 2) -> Notification:
    """A made-up notification (templates are checked against it; docs show its rendering)."""
    alerts = []
    for i in range(n_alerts):
        alerts.append({
            "alert_id": f"sample{i}", "status": status if i == 0 else "RESOLVED", "rule_id": "angry-sustained",
            "rule_version": "v1", "rule_set": "collections", "priority": "HIGH", "action": "ALERT",
            "business_line": "collections", "call_id": "12345", "role": "CUSTOMER", "emotions": ["angry"],
            "value": 0.92, "threshold": 0.75, "started_ms": 12_000 + i * 20_000, "fired_ms": 15_000 + i * 20_000,
            "event_time": 1_700_000_015_000 + i * 20_000, "channels": ["webhook"],
            "labels": {"rule_name": "High customer anger"}, "replay_id": None, "trace_id": None,
        })
    return Notification("oncall", '{}:oncall:{call_id="12345"}', {"call_id": "12345"}, status, tuple(alerts), 0,
                        "0" * 64, "http://localhost:8080", route_id="{}", at_ms=1_700_000_020_000)
