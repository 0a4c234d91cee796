"""The history read API the sink's web server serves (``/v1/history/...``; docs/gateway.md "History").

HTTP-free routing: :func:`history_routes` maps the path prefix to a handler ``(path, query) ->
(status, JSON dict)`` for :class:`emowatch.streams.observability.HealthServer`. Query parameters are
validated here (400 ``bad_parameter`` with the parameter's name); the queries are
:class:`~emowatch.streams.sink.history.HistoryReader`'s. Errors are ``{"error": {"code", "message"}}``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import unquote

from emowatch.streams.sink.history import HistoryReader
from emowatch.topics.errors import EmowatchError

__all__ = ["BadParameter", "history_routes", "parse_time"]

log = logging.getLogger("emowatch.sink.history")

PREFIX = "/v1/history"
DEFAULT_WINDOW_MS = 7 * 24 * 3600 * 1000  #: ``since`` defaults to a week before ``until``
MAX_LIMIT = 1000
PRIORITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
STATUSES = ("FIRING", "RESOLVED")

Handler = Callable[[str, dict[str, list[str]]], tuple[int, dict]]


class BadParameter(EmowatchError, ValueError):
    """A query parameter that cannot be used (HTTP 400 ``bad_parameter``)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def _error(status: int, code: str, message: str) -> tuple[int, dict]:
    return status, {"error": {"code": code, "message": message}}


def parse_time(name: str, value: str) -> int:
    """Epoch milliseconds from ``value``: an integer (epoch ms) or ISO 8601 (no zone = UTC)."""
    v = value.strip()
    if v.lstrip("-").isdigit():
        return int(v)
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadParameter(name, f"{value!r} is neither epoch milliseconds nor an ISO 8601 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(round(dt.timestamp() * 1000))


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = [v for v in query.get(name, []) if v != ""]
    if len(values) > 1:
        raise BadParameter(name, "given more than once")
    return values[0] if values else None


def _limit(query: dict[str, list[str]]) -> int:
    v = _one(query, "limit")
    if v is None:
        return 100
    if not v.isdigit() or not 1 <= int(v) <= MAX_LIMIT:
        raise BadParameter("limit", f"{v!r} is not an integer in 1..{MAX_LIMIT}")
    return int(v)


def _window(query: dict[str, list[str]]) -> tuple[int | None, int | None]:
    since, until = _one(query, "since"), _one(query, "until")
    s = parse_time("since", since) if since is not None else None
    u = parse_time("until", until) if until is not None else None
    if s is not None and u is not None and s >= u:
        raise BadParameter("since", "must be before until")
    return s, u


def _choices(query: dict[str, list[str]], name: str, allowed: tuple[str, ...]) -> list[str] | None:
    v = _one(query, name)
    if v is None:
        return None
    picked = [p.strip().upper() for p in v.split(",") if p.strip()]
    bad = [p for p in picked if p not in allowed]
    if bad or not picked:
        raise BadParameter(name, f"{v!r}: each value must be one of {', '.join(allowed)}")
    return picked


def history_routes(reader: HistoryReader) -> dict[str, Handler]:
    """``{"/v1/history": handler}`` for the sink's HealthServer."""

    def calls(query: dict[str, list[str]]) -> tuple[int, dict]:
        since, until = _window(query)
        until = until if until is not None else int(time.time() * 1000) + 1
        since = since if since is not None else until - DEFAULT_WINDOW_MS
        business_line, limit = _one(query, "business_line"), _limit(query)
        return 200, {"calls": reader.calls(since, until, business_line, limit)}

    def call(call_id: str) -> tuple[int, dict]:
        found = reader.call(call_id)
        if found is None:
            return _error(404, "unknown_call", f"no scores stored for call {call_id!r}")
        return 200, found

    def alerts(query: dict[str, list[str]]) -> tuple[int, dict]:
        since, until = _window(query)
        filters = {"business_line": _one(query, "business_line"), "priority": _choices(query, "priority", PRIORITIES),
                   "status": _choices(query, "status", STATUSES), "rule_id": _one(query, "rule_id"),
                   "since": since, "until": until, "limit": _limit(query)}
        return 200, {"alerts": reader.alerts(**filters)}

    def handle(path: str, query: dict[str, list[str]]) -> tuple[int, dict]:
        rest = path[len(PREFIX):].rstrip("/")
        try:
            if rest == "/calls":
                return calls(query)
            if rest.startswith("/calls/") and rest.count("/") == 2:
                call_id = unquote(rest[len("/calls/"):])
                if not call_id or len(call_id) > 128:
                    return _error(400, "invalid_call_id", "a call id has 1 to 128 characters")
                return call(call_id)
            if rest == "/alerts":
                return alerts(query)
        except BadParameter as e:
            return _error(400, "bad_parameter", str(e))
        return _error(404, "not_found", f"no route {path}")

    return {PREFIX: handle}
