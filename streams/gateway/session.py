"""One upload or live connection being published: chunker -> publisher, acks awaited in order.

:class:`IngestSession` feeds bytes to a :class:`StreamChunker`, submits each record to the runtime's
publisher and lets at most ``max_in_flight`` records wait for the broker (backpressure on the request
body or the socket: a slow broker slows the reader, nothing piles up in memory). Acks are awaited in
order by one task, which calls ``on_published(record)`` (the WebSocket's ``published`` message) and
counts them; :meth:`finish` waits for all of them.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from emowatch.streams.gateway.errors import ApiError
from emowatch.streams.gateway.ingest import StreamChunker
from emowatch.streams.gateway.params import IngestOptions
from emowatch.streams.gateway.runtime import Runtime

log = logging.getLogger("emowatch.gateway")

__all__ = ["IngestSession", "PublishError", "new_chunker"]


class PublishError(ApiError):
    """The broker did not acknowledge a chunk: 503 ``broker_unavailable``."""

    def __init__(self, message: str) -> None:
        super().__init__("broker_unavailable", message)


def new_chunker(rt: Runtime, call_id: str, opts: IngestOptions, *, lookahead: bool,
                expected_bytes: int | None = None) -> StreamChunker:
    """A chunker for ``call_id`` continuing its earlier requests (cursor), with the gateway's settings."""
    return StreamChunker(call_id, capture_start_ms=int(time.time() * 1000), encoding=opts.encoding,
                         sample_rate=opts.sample_rate, channels=opts.channels, role=opts.role,
                         stereo_roles=rt.stereo_roles, business_line=opts.business_line, attributes=opts.attributes,
                         chunk_ms=rt.gw.chunk_ms, start=rt.cursors.get(call_id), lookahead=lookahead,
                         max_call_s=rt.gw.max_call_s, expected_bytes=expected_bytes)


class IngestSession:
    def __init__(self, rt: Runtime, chunker: StreamChunker, *, publish: bool = True,
                 on_published: Callable[[dict], Awaitable[None] | None] | None = None,
                 on_record: Callable[[dict], None] | None = None, max_in_flight: int = 64) -> None:
        self.rt = rt
        self.chunker = chunker
        self.publish = publish
        self.on_published = on_published
        self.on_record = on_record
        self.published = 0
        self.error: Exception | None = None
        self._acks: asyncio.Queue = asyncio.Queue(max_in_flight)
        self._task: asyncio.Task | None = None
        self._finished = False

    @property
    def call_id(self) -> str:
        return self.chunker.call_id

    async def feed(self, data: bytes) -> None:
        await self._submit(self.chunker.feed_timed(data, time.perf_counter()))

    async def release(self) -> None:
        """Publish a chunk the chunker holds back for a possible end (live: the grace passed)."""
        await self._submit(self.chunker.release())

    async def finish(self, end_of_call: bool) -> None:
        """Cut the rest, wait for every ack and remember (or forget, at the end) where the call continues."""
        if self._finished:
            return
        self._finished = True
        try:
            await self._submit(self.chunker.finish_timed(end_of_call, time.perf_counter()))
        finally:
            if self._task is not None:
                await self._acks.put(None)
                await self._task
        if self.error is not None:
            raise PublishError(f"the broker did not acknowledge a chunk of call {self.call_id}: {self.error}")
        if end_of_call:
            self.rt.cursors.drop(self.call_id)
        elif self.chunker.format is not None:
            self.rt.cursors.set(self.call_id, self.chunker.cursor())

    async def abort(self) -> None:
        """Stop waiting for acks (the connection is gone or failed); remember the cursor of what was cut."""
        self._finished = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.chunker.format is not None:
            self.rt.cursors.set(self.call_id, self.chunker.cursor())

    async def _submit(self, timed: list[tuple[dict, float]]) -> None:
        for rec, done_at in timed:
            if self.on_record is not None:
                self.on_record(rec)
            if not self.publish:
                continue
            if self.error is not None:
                raise PublishError(f"publishing call {self.call_id} failed: {self.error}")
            if self._task is None:
                self._task = asyncio.create_task(self._await_acks())
            fut = await self.rt.publisher.submit(rec, done_at)
            await self._acks.put((rec, fut))

    async def _await_acks(self) -> None:
        while True:
            item = await self._acks.get()
            if item is None:
                return
            rec, fut = item
            try:
                await fut
            except Exception as exc:  # noqa: BLE001 - any broker failure ends the session with 503
                if self.error is None:
                    log.warning("chunk not acknowledged", extra={"call_id": rec["call_id"], "seq": rec["seq"],
                                                                  "error": str(exc)})
                self.error = exc
                continue
            self.published += 1
            if self.on_published is not None:
                res = self.on_published(rec)
                if res is not None:
                    await res


def summary(session: IngestSession) -> dict[str, Any]:
    """The 200 answer of an upload."""
    ch = session.chunker
    return {"call_id": session.call_id, "chunks_published": session.published, "duration_ms": ch.duration_ms,
            "roles": ch.roles, "business_line": ch.business_line,
            "console_url": session.rt.console_url(session.call_id)}
