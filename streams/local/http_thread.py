"""An aiohttp application served on 127.0.0.1 by a thread of its own, with its own event loop.

Local receivers use it: the demo's signed-webhook receiver (``demo_webhook.py``), the notifier
benchmark's receiver and the tests' HTTP sinks. ``start()`` returns once the port is bound.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from aiohttp import web


class BackgroundApp:
    """``setup(app)`` adds the routes; the server listens on a free 127.0.0.1 port (:attr:`port`)."""

    def __init__(self, setup: Callable[[web.Application], None], *, name: str = "http", backlog: int = 128) -> None:
        self.setup = setup
        self.backlog = backlog
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    async def _serve(self) -> None:
        app = web.Application()
        self.setup(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=self.backlog)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self.loop.run_forever()

    def start(self) -> BackgroundApp:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the {self._thread.name} server did not start")
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
