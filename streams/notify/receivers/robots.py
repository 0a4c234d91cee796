"""Chat robots: Feishu (飞书), Lark and Slack through Apprise; one factory for every robot kind.

:func:`robot_receiver` ``(name, kind, **kwargs)`` builds any robot: ``dingtalk`` and ``wecom`` are
``errcode_robots.DingTalkReceiver`` / ``WeComReceiver`` (not Apprise: its plugins for them report
refusals as successes, and mis-sign DingTalk; see that module), the others a :class:`RobotReceiver`:

``RobotReceiver(name, kind, *, token, allowed_hosts=None, send_resolved=True)``

=========  =================  =========================================================  ==================
kind       Apprise URL        ``token`` (from the robot's webhook URL)                   API host
=========  =================  =========================================================  ==================
feishu     ``feishu://``      the last part of ``https://open.feishu.cn/open-apis/bot/    open.feishu.cn
                              v2/hook/TOKEN``
lark       ``lark://``        the last part of ``https://open.larksuite.com/open-apis/    open.larksuite.com
                              bot/v2/hook/TOKEN``
slack      ``slack://``       ``T.../B.../XXXX`` of ``https://hooks.slack.com/services/   hooks.slack.com
                              T/B/X``
=========  =================  =========================================================  ==================

``allowed_hosts`` defaults to the kind's API host (the only host its plugin contacts); an operator's
allow-list without it refuses the receiver's sends (permanent error, no request).

Sending: ``async_notify(title=rendered.title, body=rendered.body, body_format=markdown)``, notify
type ``failure`` for FIRING and ``success`` for RESOLVED (the colour of Feishu/Lark cards); Feishu
and Lark get an interactive card, Slack a message with the title. **Apprise reports only success
or failure** (not the HTTP status or the platform's code), so every failure is *transient* and
retried until ``max_attempts``: a wrong token dead-letters after the retries, not at once.
Apprise's Feishu and Lark plugins do read the platform's ``code`` (a refusal in an HTTP 200 is a
failure), Slack's its ``ok``. Apprise runs the request in a worker thread: a timed-out attempt
is abandoned, not interrupted. Each send uses a fresh Apprise object, so Apprise's own per-plugin
throttle (one request per 5.5 s) does not apply: the notifier's grouping sets the pace, and a
platform's rate-limit refusal is retried with backoff. Feishu's and Lark's optional signing
secrets are not supported by Apprise: leave them off.

Secrets: the token is in the Apprise URL, which Apprise and urllib3 log at DEBUG; those loggers'
records are masked (:func:`~emowatch.streams.notify.receivers.safety.mask_in_library_logs`) and
errors never contain it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import apprise

from emowatch.streams.notify.model import Notification, Rendered, TransientDeliveryError
from emowatch.streams.notify.receivers.base import ReceiverConfigError
from emowatch.streams.notify.receivers.errcode_robots import DingTalkReceiver, WeComReceiver
from emowatch.streams.notify.receivers.safety import HostAllowList, mask_in_library_logs

__all__ = ["APPRISE_KINDS", "ROBOT_KINDS", "AppriseReceiver", "RobotKind", "RobotReceiver", "apprise_url",
           "robot_receiver", "url_secrets"]


@dataclass(frozen=True)
class RobotKind:
    """An Apprise robot: its URL scheme and the API host its plugin posts to."""

    scheme: str
    host: str


APPRISE_KINDS: dict[str, RobotKind] = {
    "feishu": RobotKind("feishu", "open.feishu.cn"),
    "lark": RobotKind("lark", "open.larksuite.com"),
    "slack": RobotKind("slack", "hooks.slack.com"),
}
ROBOT_KINDS = ("dingtalk", "wecom", *APPRISE_KINDS)


def robot_receiver(name: str, kind: str, **kwargs: Any) -> RobotReceiver | DingTalkReceiver | WeComReceiver:
    """The receiver for a robot of ``kind`` (one of :data:`ROBOT_KINDS`); ``kwargs`` are its constructor's."""
    if kind == "dingtalk":
        return DingTalkReceiver(name, **kwargs)
    if kind == "wecom":
        return WeComReceiver(name, **kwargs)
    return RobotReceiver(name, kind, **kwargs)


def _q(part: str) -> str:
    return quote(part, safe="")


def apprise_url(kind: str, token: str) -> str:
    """The Apprise URL of a robot (contains the token: never log it)."""
    if kind not in APPRISE_KINDS:
        raise ReceiverConfigError(f"Apprise robot kind must be one of {', '.join(APPRISE_KINDS)}, not {kind!r}")
    if not token or not token.strip():
        raise ReceiverConfigError(f"{kind} robot: token is empty")
    scheme = APPRISE_KINDS[kind].scheme
    token = token.strip()
    if kind == "slack":
        parts = [p for p in token.split("/") if p]
        if len(parts) != 3:
            raise ReceiverConfigError("slack robot: token must be T.../B.../XXXX (the webhook URL's last 3 parts)")
        return f"{scheme}://{'/'.join(_q(p) for p in parts)}"
    return f"{scheme}://{_q(token)}"


class RobotReceiver:
    """Posts each notification to a chat robot through Apprise (see the module docstring)."""

    def __init__(self, name: str, kind: str, *, token: str, allowed_hosts: Iterable[str] | None = None,
                 send_resolved: bool = True) -> None:
        url = apprise_url(kind, token)
        self.name = name
        self.kind = kind
        self.send_resolved = send_resolved
        self.host = APPRISE_KINDS[kind].host
        self._allow = HostAllowList(allowed_hosts if allowed_hosts is not None else [self.host])
        self._secrets = [s for s in (token.strip(), *token.strip().split("/")) if s]
        mask_in_library_logs(self._secrets)  # before Apprise first sees the URL
        self._url = url
        self._apprise()  # refuses a malformed token now rather than at the first alert

    def _apprise(self) -> apprise.Apprise:
        # A fresh Apprise object per send: a long-lived one throttles its plugin to one request per
        # 5.5 s (Slack 1.2 s), sleeping inside our per-attempt timeout. Building one costs well under 1 ms.
        ap = apprise.Apprise()
        if not ap.add(self._url):
            raise ReceiverConfigError(f"{self.kind} robot {self.name}: Apprise refused the token (wrong format?)")
        return ap

    async def send(self, notification: Notification, rendered: Rendered) -> None:
        """One Apprise notify; returns on success, raises TransientDeliveryError on any failure."""
        what = f"{self.kind} robot {self.name}"
        self._allow.check(self.host, what)
        notify_type = apprise.NotifyType.SUCCESS if notification.status == "RESOLVED" else apprise.NotifyType.FAILURE
        ok = await self._apprise().async_notify(body=rendered.body, title=rendered.title,
                                              body_format=apprise.NotifyFormat.MARKDOWN, notify_type=notify_type)
        if not ok:
            raise TransientDeliveryError(f"{what} ({self.host}): not accepted (Apprise reports failure only)")

    async def close(self) -> None:
        """Nothing to release (Apprise opens a connection per request)."""

    def __repr__(self) -> str:
        return f"RobotReceiver(name={self.name!r}, kind={self.kind!r})"


def url_secrets(url: str) -> list[str]:
    """What of an Apprise URL to mask in logs: the URL (with and without its scheme), its user and
    password, every path segment and query value (Apprise logs the URL it posts to rewritten, e.g.
    ``json://`` as ``http://``, so the parts are masked too). The host is not a secret."""
    url = url.strip()
    parts = urlsplit(url)
    out = [url, url.split("://", 1)[-1], parts.username, parts.password]
    out += [unquote(seg) for seg in parts.path.split("/")]
    out += [v for _k, v in parse_qsl(parts.query)]
    return [s for s in out if s]


class AppriseReceiver:
    """The generic ``apprise`` integration: any Apprise URLs (secrets), one notify to all of them per
    send. Same handling as :class:`RobotReceiver`: a fresh Apprise object per send, markdown body,
    any failure (of any URL) is transient, URLs masked in library logs and never in errors. Apprise
    URLs are not checked against the allow-list (the operator's secrets name the hosts)."""

    kind = "apprise"

    def __init__(self, name: str, urls: Iterable[str], *, send_resolved: bool = False) -> None:
        self.name = name
        self.send_resolved = send_resolved
        self._urls = [u.strip() for u in urls if u and u.strip()]
        if not self._urls:
            raise ReceiverConfigError(f"apprise receiver {name}: no URL")
        mask_in_library_logs([s for u in self._urls for s in url_secrets(u)])  # before Apprise sees them
        self._apprise()  # refuses a malformed URL now rather than at the first alert

    def _apprise(self) -> apprise.Apprise:
        ap = apprise.Apprise()
        for i, url in enumerate(self._urls):
            if not ap.add(url):
                raise ReceiverConfigError(f"apprise receiver {self.name}: Apprise refused URL #{i + 1} "
                                          "(unknown scheme or wrong format?)")
        return ap

    async def send(self, notification: Notification, rendered: Rendered) -> None:
        """One Apprise notify to every URL; returns on success, raises TransientDeliveryError otherwise."""
        notify_type = apprise.NotifyType.SUCCESS if notification.status == "RESOLVED" else apprise.NotifyType.FAILURE
        ok = await self._apprise().async_notify(body=rendered.body, title=rendered.title,
                                              body_format=apprise.NotifyFormat.MARKDOWN, notify_type=notify_type)
        if not ok:
            raise TransientDeliveryError(f"apprise receiver {self.name} ({len(self._urls)} URLs): not accepted "
                                         "(Apprise reports failure only)")

    async def close(self) -> None:
        """Nothing to release (Apprise opens a connection per request)."""

    def __repr__(self) -> str:
        return f"AppriseReceiver(name={self.name!r}, urls={len(self._urls)})"
