"""The demo's own signed-webhook receiver: an aiohttp server on a free 127.0.0.1 port, in its own thread,
that checks each request's HMAC signature (``X-Emowatch-Signature``, docs/notify.md) and reports it.

``emowatch demo`` loads ``infra/notify/demo.yaml`` with ``NOTIFY_DEMO_PORT`` = this port and the secret
``demo_hmac`` = :attr:`DemoWebhook.secret`, and prints one ``delivered`` line per request."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable

from aiohttp import web

from emowatch.streams.local.http_thread import BackgroundApp


class DemoWebhook:
    def __init__(self, on_delivery: Callable[[dict, bool], None]) -> None:
        self.secret = secrets.token_hex(16)
        self.on_delivery = on_delivery
        self.count = 0
        self._server = BackgroundApp(lambda app: app.router.add_post("/hook", self._handle), name="demo-webhook")

    @property
    def port(self) -> int:
        return self._server.port

    def _verify(self, headers, body: bytes) -> bool:
        ts = headers.get("X-Emowatch-Timestamp", "")
        mac = hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers.get("X-Emowatch-Signature", ""), "sha256=" + mac)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        ok = self._verify(request.headers, body)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        self.count += 1
        self.on_delivery(payload, ok)
        return web.Response(status=200 if ok else 401)

    def start(self) -> DemoWebhook:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
