"""The demo's own signed-webhook receiver: an aiohttp server on a free 127.0.0.1 port, in its own thread,
that checks each request's HMAC signature (``X-Emowatch-Signature``, docs/notify.md) and reports it.

``emowatch demo`` loads ``infra/notify/demo.yaml`` with ``NOTIFY_DEMO_PORT`` = this port and the secret
``demo_hmac`` = :attr:`DemoWebhook.secret`, and prints one ``delivered`` line per request."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable

from aiohttp import web


class DemoWebhook:
    def __init__(self, on_delivery: Callable[[dict, bool], None]) -> None:
        self.secret = secrets.token_hex(16)
        self.on_delivery = on_delivery
        self.port = 0
        self.count = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="demo-webhook", daemon=True)
        self._ready = threading.Event()

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

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()

    def start(self) -> DemoWebhook:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the demo webhook receiver did not start")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
