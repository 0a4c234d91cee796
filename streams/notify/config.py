"""The notifier's configuration (Alertmanager-like): global settings, the route tree, receivers,
time intervals. Strict pydantic models; the loader (``config_loader.py``) reads them from YAML with
``file:line`` errors and runs the cross checks (references, allow-list, secrets, templates).

Durations are stored as whole milliseconds (``30s`` -> 30000). Route fields left out (``None``)
inherit from the parent route; ``routing.py`` resolves them.
"""
from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from emowatch.streams.notify.matchers import parse_matcher
from emowatch.streams.notify.receiver_config import Duration, HttpUrl, Identifier, Language, Receiver, Strict
from emowatch.streams.notify.time_intervals import TimeInterval

__all__ = [
    "DEFAULT_GROUP_BY", "DEFAULT_GROUP_INTERVAL_MS", "DEFAULT_GROUP_WAIT_MS", "DEFAULT_REPEAT_INTERVAL_MS",
    "GROUP_BY_ALL", "GlobalConfig", "NotifyConfig", "Route", "host_allowed",
]

DEFAULT_GROUP_BY: tuple[str, ...] = ("call_id",)
DEFAULT_GROUP_WAIT_MS = 5_000
DEFAULT_GROUP_INTERVAL_MS = 30_000
DEFAULT_REPEAT_INTERVAL_MS = 4 * 3_600_000
GROUP_BY_ALL = "..."

HostPattern = Annotated[str, Field(pattern=r"^(\*\.)?[A-Za-z0-9_.\-:\[\]]+$", max_length=255),
                        AfterValidator(lambda v: v.lower().strip("[]"))]


def _matcher(value: str) -> str:
    parse_matcher(value)  # MatcherError is a ValueError: pydantic reports it at the item's line
    return value


def _group_by(value: Any) -> Any:
    if isinstance(value, list) and GROUP_BY_ALL in value and len(value) > 1:
        raise ValueError(f"'{GROUP_BY_ALL}' (group by every label) must be the only entry of group_by")
    return value


class GlobalConfig(Strict):
    """Settings for every receiver."""

    console_url: HttpUrl | None = None
    language: Language = "zh"
    webhook_allowed_hosts: list[HostPattern] = Field(default_factory=list)
    business_line_names: dict[str, dict[Language, str]] = Field(default_factory=dict)

    @field_validator("console_url")
    @classmethod
    def _no_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value


class Route(Strict):
    """A node of the routing tree (the root has no matchers and always matches)."""

    receiver: Identifier | None = None
    group_by: Annotated[list[Annotated[str, Field(min_length=1)]] | None, BeforeValidator(_group_by)] = None
    group_wait: Annotated[Duration, Field(ge=0, le=3_600_000)] | None = None
    group_interval: Annotated[Duration, Field(gt=0, le=86_400_000)] | None = None
    repeat_interval: Annotated[Duration, Field(gt=0, le=30 * 86_400_000)] | None = None
    matchers: list[Annotated[str, AfterValidator(_matcher)]] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)


class NotifyConfig(Strict):
    """A whole notifier configuration file."""

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    route: Route
    receivers: Annotated[list[Receiver], Field(min_length=1)]
    time_intervals: list[TimeInterval] = Field(default_factory=list)
    inhibit_rules: list[Any] = Field(default_factory=list)

    def receiver(self, name: str) -> Receiver:
        """The receiver called ``name`` (KeyError when there is none)."""
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise KeyError(name)

    def receiver_names(self) -> list[str]:
        return [r.name for r in self.receivers]

    def send_resolved(self, receiver: str) -> bool:
        """Whether notifications for ``receiver`` list RESOLVED alerts (any of its integrations wants them)."""
        return self.receiver(receiver).send_resolved

    def language_for(self, receiver: str) -> str:
        """The receiver's template language (its own, else ``global.language``)."""
        return self.receiver(receiver).language or self.global_.language

    def templates_for(self, receiver: str) -> dict[str, str]:
        """The receiver's template overrides (``title``/``body``), possibly empty."""
        overrides = self.receiver(receiver).templates
        return {} if overrides is None else overrides.model_dump(exclude_none=True)


def host_allowed(url: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """Whether ``url``'s host is on the allow-list: an exact host, or ``*.domain`` for its subdomains.

    Only http(s) URLs can be allowed; the port does not matter; comparison ignores case.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    for pattern in patterns:
        pattern = pattern.lower().strip("[]")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False
