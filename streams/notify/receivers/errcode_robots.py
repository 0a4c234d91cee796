"""DingTalk (钉钉) and WeCom (企业微信) group robots, spoken to directly (aiohttp), not through Apprise.

Both platforms answer HTTP 200 with ``{"errcode": N, "errmsg": ...}`` and N != 0 when they refuse a
message. Apprise's plugins (1.9 - 2.3) check only the HTTP status, so a refusal is reported as a
success and the alert is lost; Apprise's DingTalk plugin also URL-encodes the signature twice
(``quote()`` and then ``requests``' ``params``), which DingTalk answers with errcode 310000 "sign
not match" (with HTTP 200: again a "success"). Hence these two are ours; Feishu, Lark and Slack go
through Apprise (``robots.py``), whose plugins check the platform's answer.

Constructors (``allowed_hosts`` defaults to the host of ``api_base``; ``api_base`` is the
platform's, changeable for a gateway or a test server)::

    DingTalkReceiver(name, *, token, secret=None, mentions=(), allowed_hosts=None, send_resolved=True,
                     api_base="https://oapi.dingtalk.com", timeout_s=30.0, clock=time.time)
    WeComReceiver(name, *, token, allowed_hosts=None, send_resolved=True,
                  api_base="https://qyapi.weixin.qq.com", timeout_s=30.0)

``token``: DingTalk's ``access_token=`` / WeCom's ``key=`` of the robot's webhook URL. DingTalk
``secret`` (加签, "SEC..."): each request carries ``timestamp`` (ms) and ``sign`` =
urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))), encoded once.
``mentions``: mobile numbers to @ (DingTalk). Messages are markdown (``msgtype: markdown``):
DingTalk ``{markdown: {title, text: "#### title\\n\\nbody"}, at: {atMobiles}}``, WeCom
``{markdown: {content: "**title**\\n\\nbody"}}``, cut to the platforms' size limits (20000 /
4096 bytes). errcode 0 is success; rate limits (DingTalk 130101, WeCom 45009/45033) and -1
(busy) are transient, every other errcode (bad token, bad signature, keyword/IP check failed,
bad message) is permanent; HTTP errors map as for every receiver.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

from emowatch.streams.notify.model import Notification, PermanentDeliveryError, Rendered, TransientDeliveryError
from emowatch.streams.notify.receivers.base import ReceiverConfigError
from emowatch.streams.notify.receivers.httpclient import JsonPoster
from emowatch.streams.notify.receivers.safety import host_of, mask_in_library_logs, scrub

__all__ = ["DingTalkReceiver", "WeComReceiver", "dingtalk_sign", "truncate_utf8"]


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    """DingTalk's ``sign`` (base64 of the HMAC, not yet URL-encoded)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def truncate_utf8(text: str, max_bytes: int, marker: str = "\n…") -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes (``marker`` included), on a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    room = max_bytes - len(marker.encode("utf-8"))
    return data[:room].decode("utf-8", errors="ignore") + marker


class _ErrcodeRobot:
    """POST JSON, then read ``errcode`` from the answer."""

    kind = ""
    transient_codes: frozenset[int] = frozenset({-1})

    def __init__(self, name: str, *, token: str, path: str, api_base: str, allowed_hosts: Iterable[str] | None,
                 send_resolved: bool, timeout_s: float, secrets: Sequence[str | None] = ()) -> None:
        if not token or not token.strip():
            raise ReceiverConfigError(f"{self.kind} robot {name}: token is empty")
        self.name = name
        self.send_resolved = send_resolved
        self._token = token.strip()
        self._secrets = [s for s in (self._token, *secrets) if s]
        mask_in_library_logs(self._secrets)
        hosts = allowed_hosts if allowed_hosts is not None else [host_of(api_base)]
        self._http = JsonPoster(f"{self.kind} robot {name}", api_base.rstrip("/") + path, allowed_hosts=hosts,
                                timeout_s=timeout_s)

    def payload(self, notification: Notification, rendered: Rendered) -> dict[str, Any]:
        raise NotImplementedError

    def query(self) -> str:
        raise NotImplementedError

    async def send(self, notification: Notification, rendered: Rendered) -> None:
        """One POST; returns when the platform answers errcode 0."""
        body = json.dumps(self.payload(notification, rendered), ensure_ascii=False).encode("utf-8")
        answer = await self._http.post("", body, {"Content-Type": "application/json; charset=utf-8"},
                                       query=self.query())
        what = f"{self.kind} robot {self.name} ({self._http.host})"
        try:
            reply = json.loads(answer)
            code = int(reply.get("errcode", 0))
        except (ValueError, TypeError, AttributeError):
            raise TransientDeliveryError(f"{what}: unreadable answer ({len(answer)} bytes)") from None
        if code == 0:
            return
        message = scrub(" ".join(str(reply.get("errmsg", "")).split()), self._secrets)[:200]
        cls = TransientDeliveryError if code in self.transient_codes else PermanentDeliveryError
        raise cls(f"{what}: errcode {code} {message}".rstrip())

    async def close(self) -> None:
        await self._http.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, host={self._http.host!r})"


class DingTalkReceiver(_ErrcodeRobot):
    """A DingTalk group robot, optionally signed (see the module docstring)."""

    kind = "dingtalk"
    transient_codes = frozenset({-1, 130101})
    max_bytes = 20_000

    def __init__(self, name: str, *, token: str, secret: str | None = None, mentions: Sequence[str] = (),
                 allowed_hosts: Iterable[str] | None = None, send_resolved: bool = True,
                 api_base: str = "https://oapi.dingtalk.com", timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name, token=token, path="/robot/send", api_base=api_base, allowed_hosts=allowed_hosts,
                         send_resolved=send_resolved, timeout_s=timeout_s, secrets=[secret])
        self._secret = secret
        self._clock = clock
        self.mentions = [str(m).strip() for m in mentions if str(m).strip()]

    def query(self) -> str:
        q = f"access_token={quote(self._token, safe='')}"
        if self._secret:
            ts = str(int(self._clock() * 1000))
            q += f"&timestamp={ts}&sign={quote_plus(dingtalk_sign(self._secret, ts))}"
        return q

    def payload(self, notification: Notification, rendered: Rendered) -> dict[str, Any]:
        at = "".join(f" @{m}" for m in self.mentions)
        text = truncate_utf8(f"#### {rendered.title}\n\n{rendered.body}", self.max_bytes - len(at.encode()) - 64)
        return {"msgtype": "markdown", "markdown": {"title": rendered.title[:100], "text": text + at},
                "at": {"atMobiles": self.mentions, "isAtAll": False}}


class WeComReceiver(_ErrcodeRobot):
    """A WeCom group robot (see the module docstring)."""

    kind = "wecom"
    transient_codes = frozenset({-1, 45009, 45033})
    max_bytes = 4096

    def __init__(self, name: str, *, token: str, allowed_hosts: Iterable[str] | None = None,
                 send_resolved: bool = True, api_base: str = "https://qyapi.weixin.qq.com",
                 timeout_s: float = 30.0) -> None:
        super().__init__(name, token=token, path="/cgi-bin/webhook/send", api_base=api_base,
                         allowed_hosts=allowed_hosts, send_resolved=send_resolved, timeout_s=timeout_s)

    def query(self) -> str:
        return f"key={quote(self._token, safe='')}"

    def payload(self, notification: Notification, rendered: Rendered) -> dict[str, Any]:
        content = truncate_utf8(f"**{rendered.title}**\n\n{rendered.body}", self.max_bytes)
        return {"msgtype": "markdown", "markdown": {"content": content}}
