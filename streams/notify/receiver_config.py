"""Receivers and their integrations (what the receivers helper delivers with), validated strictly.

A receiver has a name and any number of integrations; each integration key takes one mapping
or a list of them (like Alertmanager's ``*_configs`` lists). A receiver with no integration is
a black hole: alerts routed to it are reported as suppressed (``blackhole``), never delivered.
Durations are stored as whole milliseconds; secrets are :class:`SecretRef`\\ s (``{secret: NAME}``)
whose values the loader fills from a :class:`~emowatch.streams.notify.secret_store.SecretStore`.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator

from emowatch.rules.durations import parse_duration_ms
from emowatch.streams.notify.errors import SecretError
from emowatch.streams.notify.secret_store import SecretStore

__all__ = [
    "INTEGRATION_KINDS", "AlertmanagerIntegration", "AppriseIntegration", "DingtalkIntegration", "EmailIntegration",
    "FeishuIntegration", "Integration", "LogIntegration", "Receiver", "SecretRef", "SlackIntegration",
    "TemplateOverrides", "WebhookIntegration", "WecomIntegration",
]

Duration = Annotated[int, BeforeValidator(parse_duration_ms)]
Language = Literal["zh", "en"]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=128)]
HttpUrl = Annotated[str, Field(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=2048)]
Email = Annotated[str, Field(pattern=r"^(?:[^<>@\n]+ <)?[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+>?$", max_length=320)]


class Strict(BaseModel):
    """Base: unknown keys are errors, instances are immutable, inputs never echoed in errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class SecretRef(Strict):
    """A reference to a secret by name: ``{secret: NAME}``. The value is filled in at load."""

    secret: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=128)]
    _value: str | None = PrivateAttr(default=None)

    def resolve(self, store: SecretStore) -> None:
        """Fill the value from ``store`` (:class:`SecretError` naming the secret when missing)."""
        self._value = store.get_secret(self.secret)

    @property
    def resolved(self) -> bool:
        return self._value is not None

    def get_secret_value(self) -> str:
        """The secret's value (the loader resolved it; a :class:`SecretError` otherwise)."""
        if self._value is None:
            raise SecretError(f"secret {self.secret!r} was not resolved (load the config with a SecretStore)")
        return self._value


class TemplateOverrides(Strict):
    """Jinja2 templates replacing the defaults (``docs/notify.md`` lists the variables)."""

    title: str | None = None
    body: str | None = None


class Integration(Strict):
    """Fields every integration has (the log integration uses only ``send_resolved``)."""

    kind: ClassVar[str] = ""
    send_resolved: bool = False
    timeout: Annotated[Duration, Field(gt=0, le=300_000)] = 10_000
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    initial_backoff: Annotated[Duration, Field(ge=0, le=600_000)] = 1_000
    max_backoff: Annotated[Duration, Field(ge=0, le=3_600_000)] = 60_000

    @model_validator(mode="after")
    def _backoff(self) -> Integration:
        if self.initial_backoff > self.max_backoff:
            raise ValueError("initial_backoff must not exceed max_backoff")
        return self

    def url_to_check(self) -> tuple[str, str] | None:
        """``(field, url)`` the allow-list applies to, when known without sending (else None)."""
        return None

    def secret_refs(self) -> Iterator[tuple[tuple[Any, ...], SecretRef]]:
        """``(path inside this integration, ref)`` for every secret it references."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretRef):
                yield (name,), value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, SecretRef):
                        yield (name, i), item


class LogIntegration(Strict):
    """Write the rendered notification to the service log."""

    kind: ClassVar[str] = "log"
    send_resolved: bool = True

    def url_to_check(self) -> tuple[str, str] | None:
        return None

    def secret_refs(self) -> Iterator[tuple[tuple[Any, ...], SecretRef]]:
        return iter(())


class WebhookIntegration(Integration):
    """POST JSON (``format: emowatch`` or Alertmanager's webhook payload), HMAC-signed when ``hmac_key`` is set."""

    kind: ClassVar[str] = "webhook"
    url: HttpUrl
    hmac_key: SecretRef | None = None
    format: Literal["emowatch", "alertmanager"] = "emowatch"
    send_resolved: bool = True

    def url_to_check(self) -> tuple[str, str] | None:
        return "url", self.url


class AlertmanagerIntegration(Integration):
    """Push the alerts to an Alertmanager (``POST {url}/api/v2/alerts``)."""

    kind: ClassVar[str] = "alertmanager"
    url: HttpUrl
    send_resolved: bool = True

    def url_to_check(self) -> tuple[str, str] | None:
        return "url", self.url


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class EmailIntegration(Integration):
    """SMTP: ``starttls`` upgrades a plain connection, ``tls`` connects with TLS at once (port 465)."""

    kind: ClassVar[str] = "email"
    to: Annotated[list[Email], BeforeValidator(_as_list), Field(min_length=1)]
    from_: Email = Field(alias="from")
    smarthost: Annotated[str, Field(pattern=r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")]
    starttls: bool = True
    tls: bool = False
    username: str | None = None
    password: SecretRef | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EmailIntegration:
        if self.starttls and self.tls:
            raise ValueError("give at most one of 'starttls' and 'tls' (implicit TLS)")
        if (self.username is None) != (self.password is None):
            raise ValueError("give both 'username' and 'password' (or neither)")
        return self


class _Robot(Integration):
    host: ClassVar[str] = ""

    def url_to_check(self) -> tuple[str, str] | None:
        return "", f"https://{self.host}/"


class WecomIntegration(_Robot):
    """WeCom (企业微信) group robot, markdown; the key is the webhook's ``key=`` parameter."""

    kind: ClassVar[str] = "wecom"
    host: ClassVar[str] = "qyapi.weixin.qq.com"
    key: SecretRef


class DingtalkIntegration(_Robot):
    """DingTalk (钉钉) robot, markdown; ``secret`` signs requests when the robot has signing on."""

    kind: ClassVar[str] = "dingtalk"
    host: ClassVar[str] = "oapi.dingtalk.com"
    token: SecretRef
    secret: SecretRef | None = None


class FeishuIntegration(_Robot):
    """Feishu / Lark (飞书) custom bot."""

    kind: ClassVar[str] = "feishu"
    host: ClassVar[str] = "open.feishu.cn"
    token: SecretRef


class SlackIntegration(Integration):
    """Slack incoming webhook (the URL is a secret; its host is checked once resolved)."""

    kind: ClassVar[str] = "slack"
    url: SecretRef

    def url_to_check(self) -> tuple[str, str] | None:
        return ("url", self.url.get_secret_value()) if self.url.resolved else None


class AppriseIntegration(Integration):
    """Any Apprise URL(s) (secrets: they embed tokens). Not checked against the allow-list."""

    kind: ClassVar[str] = "apprise"
    urls: Annotated[list[SecretRef], Field(min_length=1)]


AnyIntegration = (LogIntegration | WebhookIntegration | EmailIntegration | AlertmanagerIntegration
                  | WecomIntegration | DingtalkIntegration | FeishuIntegration | SlackIntegration
                  | AppriseIntegration)


def _one_or_many(value: Any) -> Any:
    if value is None:
        return [{}]
    return [value] if isinstance(value, dict) else value


_Many = BeforeValidator(_one_or_many)


class Receiver(Strict):
    """A named receiver: where a route sends; ``language`` and ``templates`` override the defaults."""

    name: Identifier
    language: Language | None = None
    templates: TemplateOverrides | None = None
    log: Annotated[tuple[LogIntegration, ...], _Many] = ()
    webhook: Annotated[tuple[WebhookIntegration, ...], _Many] = ()
    email: Annotated[tuple[EmailIntegration, ...], _Many] = ()
    alertmanager: Annotated[tuple[AlertmanagerIntegration, ...], _Many] = ()
    wecom: Annotated[tuple[WecomIntegration, ...], _Many] = ()
    dingtalk: Annotated[tuple[DingtalkIntegration, ...], _Many] = ()
    feishu: Annotated[tuple[FeishuIntegration, ...], _Many] = ()
    slack: Annotated[tuple[SlackIntegration, ...], _Many] = ()
    apprise: Annotated[tuple[AppriseIntegration, ...], _Many] = ()

    def integrations(self) -> list[tuple[str, int, AnyIntegration]]:
        """``(kind, index within that kind, config)`` for every integration, in kind order."""
        return [(kind, i, cfg) for kind in INTEGRATION_KINDS for i, cfg in enumerate(getattr(self, kind))]

    @property
    def send_resolved(self) -> bool:
        """Whether any integration wants RESOLVED alerts (each integration filters for itself)."""
        return any(cfg.send_resolved for _k, _i, cfg in self.integrations())


INTEGRATION_KINDS: tuple[str, ...] = (
    "log", "webhook", "email", "alertmanager", "wecom", "dingtalk", "feishu", "slack", "apprise")
