"""``WS /v1/calls/{call_id}/stream``: live audio in, ``published`` / ``scores`` / ``alert`` messages out.

Binary frames of any size are cut into chunks that leave as soon as they are complete (no lookahead:
live latency first). Text ``{"type": "end"}`` ends the call (the rest is published with
``end_of_call``); the socket then stays open for the call's last scores and alerts until the client
closes it. Closing without ``end`` publishes the rest and leaves the call open (a new connection
continues its seq). Errors: ``{"type": "error", "code", "message"}`` then close 1008 (policy: auth,
parameters, limits), 1003 (audio the gateway cannot take) or 1011 (broker).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from emowatch.streams.gateway.auth import check_token
from emowatch.streams.gateway.errors import ApiError
from emowatch.streams.gateway.ingest import check_call_id
from emowatch.streams.gateway.params import ingest_options
from emowatch.streams.gateway.session import IngestSession, PublishError, new_chunker

log = logging.getLogger("emowatch.gateway")
router = APIRouter(tags=["audio"])

_UNSUPPORTED_DATA = {"bad_wav_header", "unsupported_encoding", "unsupported_rate", "unsupported_channels",
                     "empty_body", "truncated"}


def close_code(err: ApiError) -> int:
    if isinstance(err, PublishError):
        return 1011
    return 1003 if err.code in _UNSUPPORTED_DATA else 1008


async def _sender(ws: WebSocket, q: asyncio.Queue) -> None:
    while True:
        msg = await q.get()
        await ws.send_text(json.dumps(msg, ensure_ascii=False))


async def send_error(ws: WebSocket, err: ApiError) -> None:
    with contextlib.suppress(Exception):  # the client may be gone already
        await ws.send_text(json.dumps({"type": "error", "code": err.code, "message": err.message}))
        await ws.close(close_code(err))


@router.websocket("/v1/calls/{call_id}/stream")
async def stream_audio(ws: WebSocket, call_id: str) -> None:
    rt = ws.app.state.rt
    await ws.accept()
    try:
        token = rt.gw.auth_token
        check_token(token.get_secret_value() if token else None, ws.headers, ws.query_params, allow_query=True)
        check_call_id(call_id)
        opts = ingest_options(ws.query_params.multi_items(), ws.headers)
        claim = rt.claim(call_id)
        claim.__enter__()
    except ApiError as err:
        rt.metrics.rejected.labels(err.code).inc()
        await send_error(ws, err)
        return
    q = rt.hub.subscribe(call_id)
    session: IngestSession | None = None
    sender = asyncio.create_task(_sender(ws, q))
    rt.metrics.ws_connections.inc()
    released = False

    def published(rec: dict) -> None:
        msg = {"type": "published", "seq": rec["seq"], "role": rec["role"], "start_ms": rec["start_ms"]}
        if q.full():
            q.get_nowait()
        q.put_nowait(msg)

    try:
        session = IngestSession(rt, new_chunker(rt, call_id, opts, lookahead=False), on_published=published)
        ended = False
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                break
            if msg.get("bytes") is not None:
                if ended:
                    raise ApiError("bad_parameter", "audio after the end of the call")
                await session.feed(msg["bytes"])
                if session.chunker.cut:
                    await session.finish(True)
                    raise ApiError("too_large", f"the call grew past max_call_s={rt.gw.max_call_s:g} s; "
                                                "it was ended there")
            elif msg.get("text") is not None and not ended:
                try:
                    kind = json.loads(msg["text"]).get("type")
                except (ValueError, AttributeError):
                    kind = None
                if kind != "end":
                    raise ApiError("bad_parameter", 'text frames are {"type": "end"} only')
                await session.finish(True)
                ended = True
                claim.__exit__(None, None, None)
                released = True
                log.info("live call ended", extra={"call_id": call_id, "chunks": session.published})
        if not ended:
            await session.finish(False)
    except WebSocketDisconnect:
        if session is not None:
            await session.finish(False)
    except ApiError as err:
        rt.metrics.rejected.labels(err.code).inc()
        if session is not None:
            await session.abort()
        await _flush(q, sender)
        await send_error(ws, err)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
        rt.hub.unsubscribe(call_id, q)
        rt.metrics.ws_connections.dec()
        if not released:
            claim.__exit__(None, None, None)


async def _flush(q: asyncio.Queue, sender: asyncio.Task, timeout_s: float = 1.0) -> None:
    """Let the sender pass on what is queued (published acks) before an error message."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not q.empty() and not sender.done() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
