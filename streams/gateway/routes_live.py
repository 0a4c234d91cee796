"""Server-sent events: ``GET /v1/live`` (the board of calls in progress) and ``GET /v1/live/calls/{call_id}``
(one call's ``scores`` and ``alert`` messages, as on the WebSocket)."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from emowatch.streams.gateway.auth import require_token_or_query
from emowatch.streams.gateway.ingest import check_call_id

router = APIRouter(tags=["live"], dependencies=[Depends(require_token_or_query)])

BOARD_INTERVAL_S = 0.5  # at most one board event per client this often
KEEPALIVE_S = 15.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.get("/v1/live", response_class=StreamingResponse, summary="The live board (SSE, event `board`)")
async def live_board(request: Request, business_line: str | None = Query(None, description="only this business line")):
    rt = request.app.state.rt

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        rt.metrics.live_clients.inc()
        try:
            with rt.hub.board_listener() as changed:
                last_sent, last_text = 0.0, None
                while True:
                    try:
                        await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    wait = last_sent + BOARD_INTERVAL_S - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)  # throttle: changes meanwhile go out together
                    changed.clear()
                    text = sse("board", {"calls": rt.board.snapshot(business_line)})
                    if text != last_text:
                        last_sent, last_text = loop.time(), text
                        yield text
        finally:
            rt.metrics.live_clients.dec()

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/v1/live/calls/{call_id}", response_class=StreamingResponse,
            summary="One call's scores and alerts (SSE, events `scores` and `alert`)")
async def live_call(call_id: str, request: Request):
    rt = request.app.state.rt
    check_call_id(call_id)

    async def events() -> AsyncIterator[str]:
        q = rt.hub.subscribe(call_id)
        rt.metrics.live_clients.inc()
        try:
            yield ": subscribed\n\n"
            while True:
                try:
                    msg = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield sse(msg["type"], msg)
        finally:
            rt.hub.unsubscribe(call_id, q)
            rt.metrics.live_clients.dec()

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
