"""kill -9 of the notifier process mid-stream, then a restart: every notification is delivered at least
once, and every repeat carries the same Idempotency-Key as its first delivery (so receivers can drop it)."""
from __future__ import annotations

import asyncio
import json
from collections import defaultdict

import pytest
from aiohttp import web
from notify_helpers import alert, publish, verified, wait_until, write_config

from emowatch.streams.kafka.admin import group_lag
from emowatch.streams.kafka.clients import group_name, topics_for
from emowatch.streams.local.http_thread import BackgroundApp
from emowatch.streams.local.stack import LocalStack

pytestmark = pytest.mark.integration


class SlowReceiver:
    """A webhook receiver that answers one request at a time, ~20 ms each (a slow downstream system),
    so the kill lands mid-stream."""

    def __init__(self) -> None:
        self.requests: list = []
        lock = asyncio.Lock()

        class Req:
            def __init__(self, headers, body):
                self.headers, self.body = headers, body

        async def handle(request: web.Request) -> web.Response:
            async with lock:
                body = await request.read()
                await asyncio.sleep(0.02)
                self.requests.append(Req(dict(request.headers), body))
            return web.Response(status=200)

        self._server = BackgroundApp(lambda app: app.router.add_post("/hook", handle), name="slow-receiver").start()
        self.port = self._server.port

    def stop(self) -> None:
        self._server.stop()


def test_kill_9_and_restart_delivers_everything_once_or_as_keyed_repeats(broker, tmp_path, unique, size):
    n = size(200, 1000)
    receiver = SlowReceiver()
    stack = LocalStack(data_dir=tmp_path / "stack", broker=broker, topic_prefix=f"nk{unique}.").start()
    try:
        kafka = stack.kafka_settings()
        cfg, secrets = write_config(tmp_path, receiver.port, group_wait="0s", group_interval="2s")
        env = {"EMOWATCH_NOTIFY__SECRETS_FILE": str(secrets)}
        calls = [f"call-{i:04d}" for i in range(n)]
        publish(kafka, [alert(c) for c in calls])
        stack.start_worker("notify", ["notify", "--config", str(cfg)], env=env)
        wait_until(lambda: stack.check_workers() or len(receiver.requests) >= n * 3 // 10, timeout=120,
                   what="30% of the deliveries")
        seen_at_kill = len(receiver.requests)
        assert stack.stop_worker("notify", kill=True) == -9
        stack.start_worker("notify", ["notify", "--config", str(cfg)], env=env)

        def delivered() -> set[str]:
            return {verified(r)["group_labels"]["call_id"] for r in list(receiver.requests)}

        wait_until(lambda: stack.check_workers() or delivered() == set(calls), timeout=180, what="every call")
        topic = topics_for(kafka).alerts
        wait_until(lambda: group_lag(kafka.bootstrap_servers, group_name(kafka, "emowatch-notify"), [topic])[topic]
                   == 0, timeout=60, what="lag 0")
        keys: dict[tuple, set[str]] = defaultdict(set)
        for r in receiver.requests:
            body = verified(r)
            content = (body["receiver"], body["group_key"], body["status"],
                       tuple(sorted((a["alert_id"], a["status"]) for a in body["alerts"])))
            keys[content].add(r.headers["Idempotency-Key"])
        assert len(keys) == n
        assert all(len(v) == 1 for v in keys.values()), "a repeat with a different Idempotency-Key"
        repeats = len(receiver.requests) - len(keys)
        print(json.dumps({"alerts": n, "seen_at_kill": seen_at_kill, "deliveries": len(receiver.requests),
                          "repeats": repeats}))
        assert stack.stop_worker("notify") == 0
    finally:
        stack.stop()
        receiver.stop()
