"""Receiver objects for a loaded configuration: one object per integration (``receiver_config.py``).

:func:`build_receivers` returns, per receiver name, a list of :class:`Integration` (``kind``,
``index``, the receiver object, its :class:`RetryPolicy` and whether it wants RESOLVED alerts).
Secrets must have been resolved at load (``load_config(..., secrets=SecretStore)``). Email's
smarthost is the only host its receiver may contact. ``apprise`` integrations are
``robots.AppriseReceiver`` (their URLs are secrets, not checked against the allow-list).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emowatch.streams.notify.config import NotifyConfig
from emowatch.streams.notify.receivers.base import ReceiverConfigError, RetryPolicy

__all__ = ["Integration", "build_receivers", "close_all"]


@dataclass(frozen=True)
class Integration:
    receiver: str
    kind: str
    index: int
    sender: Any  # a Receiver (base.Receiver protocol)
    policy: RetryPolicy
    send_resolved: bool

    @property
    def label(self) -> str:
        return f"{self.receiver}/{self.kind}[{self.index}]"


def _policy(cfg: Any) -> RetryPolicy:
    if not hasattr(cfg, "max_attempts"):  # log: never fails
        return RetryPolicy(max_attempts=1, timeout_s=5.0)
    return RetryPolicy(max_attempts=cfg.max_attempts, initial_backoff_s=cfg.initial_backoff / 1000,
                       max_backoff_s=cfg.max_backoff / 1000, timeout_s=cfg.timeout / 1000)


def _secret(ref: Any) -> str | None:
    return None if ref is None else ref.get_secret_value()


def _build(name: str, kind: str, cfg: Any, allowed: list[str]) -> Any:
    timeout_s = getattr(cfg, "timeout", 10_000) / 1000
    common = {"send_resolved": cfg.send_resolved}
    if kind == "log":
        from emowatch.streams.notify.receivers.log import LogReceiver
        return LogReceiver(name, **common)
    if kind == "webhook":
        from emowatch.streams.notify.receivers.webhook import WebhookReceiver
        return WebhookReceiver(name, str(cfg.url), allowed_hosts=allowed, secret=_secret(cfg.hmac_key),
                               format=cfg.format, timeout_s=timeout_s, **common)
    if kind == "alertmanager":
        from emowatch.streams.notify.receivers.alertmanager import AlertmanagerReceiver
        return AlertmanagerReceiver(name, str(cfg.url), allowed_hosts=allowed, timeout_s=timeout_s, **common)
    if kind == "email":
        from emowatch.streams.notify.receivers.email import EmailReceiver
        host, _, port = cfg.smarthost.rpartition(":")
        host = host.strip("[]")
        tls = "implicit" if cfg.tls else "starttls" if cfg.starttls else "none"
        return EmailReceiver(name, host=host, port=int(port), to=list(cfg.to), from_addr=cfg.from_,
                             allowed_hosts=[host], tls=tls, username=cfg.username, password=_secret(cfg.password),
                             timeout_s=timeout_s, **common)
    from emowatch.streams.notify.receivers.robots import robot_receiver
    if kind == "wecom":
        return robot_receiver(name, "wecom", token=_secret(cfg.key), allowed_hosts=allowed, timeout_s=timeout_s,
                              **common)
    if kind == "dingtalk":
        return robot_receiver(name, "dingtalk", token=_secret(cfg.token), secret=_secret(cfg.secret),
                              allowed_hosts=allowed, timeout_s=timeout_s, **common)
    if kind == "feishu":
        return robot_receiver(name, "feishu", token=_secret(cfg.token), allowed_hosts=allowed, **common)
    if kind == "slack":
        url = _secret(cfg.url) or ""
        token = url.split("/services/", 1)[-1]
        return robot_receiver(name, "slack", token=token, allowed_hosts=allowed, **common)
    if kind == "apprise":
        from emowatch.streams.notify.receivers.robots import AppriseReceiver
        return AppriseReceiver(name, [_secret(u) or "" for u in cfg.urls], **common)
    raise ReceiverConfigError(f"receiver {name}: integration kind {kind!r} is not supported by the notifier service")


def build_receivers(config: NotifyConfig) -> dict[str, list[Integration]]:
    """Receiver name -> its integrations (empty list for a black hole)."""
    allowed = list(config.global_.webhook_allowed_hosts)
    out: dict[str, list[Integration]] = {}
    for receiver in config.receivers:
        out[receiver.name] = [
            Integration(receiver.name, kind, index, _build(receiver.name, kind, cfg, allowed), _policy(cfg),
                        bool(cfg.send_resolved))
            for kind, index, cfg in receiver.integrations()]
    return out


async def close_all(receivers: dict[str, list[Integration]]) -> None:
    for integrations in receivers.values():
        for integration in integrations:
            await integration.sender.close()
