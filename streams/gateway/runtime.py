"""What the gateway's routes share inside one process: settings, the publisher, the live board, the
fan-out of pushed messages, call continuations, metrics. No Kafka client here: the publisher is given
(``streams/gateway/service.py`` builds the Kafka one), so the app can be assembled around any publisher.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from emowatch.streams.gateway.errors import ApiError
from emowatch.streams.gateway.ingest import Cursors
from emowatch.streams.gateway.live import LiveBoard, alert_message, scores_message
from emowatch.streams.infer.scoring import parse_stereo_roles
from emowatch.streams.observability import StageMetrics
from emowatch.streams.settings import Settings

log = logging.getLogger("emowatch.gateway")

#: chunk publish delay buckets (s): fine around the 100 ms target, so p99 <= 100 ms is read exactly
DELAY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.125,
                 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0)


class Publisher(Protocol):
    """Produces AudioChunk records; ``submit`` returns a future resolved with the broker's ack."""

    async def submit(self, record: dict[str, Any], completed_at: float) -> asyncio.Future: ...

    async def health(self) -> dict[str, Any]: ...


class GatewayMetrics:
    """``emowatch_gateway_*``: received/sent counters of StageMetrics plus the gateway's own."""

    def __init__(self) -> None:
        self.stage = StageMetrics("gateway")
        self.registry = self.stage.registry
        self.publish_delay = self.stage.histogram(
            "gateway_publish_delay_seconds", "Time from receipt of the bytes completing a chunk to the broker's ack",
            DELAY_BUCKETS)
        self.broker_ack = self.stage.histogram(
            "gateway_broker_ack_seconds", "Time from handing a chunk to the producer to the broker's ack",
            DELAY_BUCKETS)
        self.rejected = self.stage.counter("gateway_rejected", "Requests refused, by error code", ("code",))
        self.ws_connections = self.stage.gauge("gateway_ws_connections", "Open audio WebSocket connections")
        self.live_clients = self.stage.gauge("gateway_live_clients", "Open live-board and live-call streams")
        self.live_calls = self.stage.gauge("gateway_live_calls", "Calls on the live board")


class Hub:
    """Fan-out of pushed messages: per-call subscriber queues and board-change events (one event loop)."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._calls: dict[str, set[asyncio.Queue]] = {}
        self._board: set[asyncio.Event] = set()

    def subscribe(self, call_id: str) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(self.queue_size)
        self._calls.setdefault(call_id, set()).add(q)
        return q

    def unsubscribe(self, call_id: str, q: asyncio.Queue) -> None:
        subs = self._calls.get(call_id)
        if subs is not None:
            subs.discard(q)
            if not subs:
                del self._calls[call_id]

    def push(self, call_id: str, message: dict[str, Any]) -> None:
        for q in self._calls.get(call_id, ()):
            if q.full():  # a slow client loses its oldest message, never blocks the feed
                q.get_nowait()
            q.put_nowait(message)

    def wants(self, call_id: str) -> bool:
        return call_id in self._calls

    @contextlib.contextmanager
    def board_listener(self) -> Iterator[asyncio.Event]:
        ev = asyncio.Event()
        ev.set()  # the first snapshot goes out at once
        self._board.add(ev)
        try:
            yield ev
        finally:
            self._board.discard(ev)

    def board_changed(self) -> None:
        for ev in self._board:
            ev.set()


class Runtime:
    """One per gateway process; routes reach it as ``request.app.state.rt``."""

    def __init__(self, settings: Settings, publisher: Publisher, *, clock=time.monotonic) -> None:
        self.settings = settings
        self.gw = settings.gateway
        self.publisher = publisher
        self.clock = clock
        self.stereo_roles = parse_stereo_roles(self.gw.stereo_roles)
        self.board = LiveBoard(self.gw.live_idle_s)
        self.hub = Hub()
        self.cursors = Cursors()
        self.metrics = GatewayMetrics()
        self.busy: dict[str, asyncio.Event] = {}  # calls being written -> set when done
        self.embeddings: OrderedDict[str, bytes] = OrderedDict()  # call_id -> .npy bytes, most recent last
        self.max_embeddings = 64
        self.analyzer: Any = None
        self.feed_health: Any = None  # callable -> dict, set by the service
        self.port = self.gw.http_port

    # ---- calls -----------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def claim(self, call_id: str, wait_s: float = 5.0) -> AsyncIterator[None]:
        """One request or connection at a time writes a call (seq continuity). A second one waits up to
        ``wait_s`` for the first to finish (a client reconnecting), then gets 409 ``call_busy``."""
        deadline = self.clock() + wait_s
        while call_id in self.busy:
            left = deadline - self.clock()
            if left <= 0:
                raise ApiError("call_busy", f"call {call_id} is being written by another request or connection")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.busy[call_id].wait(), left)
        done = self.busy[call_id] = asyncio.Event()
        try:
            yield
        finally:
            del self.busy[call_id]
            done.set()

    def console_url(self, call_id: str) -> str:
        return f"/console/call.html?id={call_id}"

    def keep_embedding(self, call_id: str, npy: bytes) -> None:
        self.embeddings[call_id] = npy
        self.embeddings.move_to_end(call_id)
        while len(self.embeddings) > self.max_embeddings:
            self.embeddings.popitem(last=False)

    # ---- live feed -------------------------------------------------------------------------------
    def on_feed(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        """A batch of records from the live feed (on the event loop): board + pushed messages."""
        now = self.clock()
        changed = False
        for kind, rec in batch:
            call_id = rec.get("call_id", "")
            if kind == "scores":
                changed |= self.board.on_scores(rec, now)
                if self.hub.wants(call_id):
                    self.hub.push(call_id, scores_message(rec))
            else:
                changed |= self.board.on_alert(rec, now)
                if self.hub.wants(call_id):
                    self.hub.push(call_id, alert_message(rec))
        if changed:
            self.metrics.live_calls.set(len(self.board))
            self.hub.board_changed()

    async def housekeeping(self, period_s: float = 1.0) -> None:
        """Idle calls leave the board (runs until cancelled)."""
        while True:
            await asyncio.sleep(period_s)
            if self.board.expire(self.clock()):
                self.metrics.live_calls.set(len(self.board))
                self.hub.board_changed()
