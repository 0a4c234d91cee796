"""``WS /v1/calls/{call_id}/stream``: live audio in, ``published`` / ``scores`` / ``alert`` messages out.

Binary frames of any size are cut into chunks that leave as soon as they are complete, except a chunk
that ends exactly with a frame: it waits up to ``END_GRACE_S`` for the next message, so that an
``end`` sent right after the last frame still puts ``end_of_call`` on it. Text ``{"type": "end"}`` ends
the call (the rest is published with ``end_of_call``) and, once every chunk is acknowledged, answered
``{"type": "ended", "published": <records>}``; the socket then stays open for the call's last scores and
alerts until the client closes it. Closing without ``end`` publishes the rest and leaves the
call open (a new connection continues its seq). Errors: ``{"type": "error", "code", "message"}`` then
close 1008 (policy: auth, parameters, limits), 1003 (audio the gateway cannot take) or 1011 (broker).
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

END_GRACE_S = 0.01  # how long a chunk that ends with a frame waits for an `end` (counted in the publish delay)
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


async def _reader(ws: WebSocket, inbox: asyncio.Queue) -> None:
    """Client messages into ``inbox`` (bounded: a slow publisher slows the socket); ends with the disconnect."""
    while True:
        try:
            msg = await ws.receive()
        except (RuntimeError, WebSocketDisconnect):
            msg = {"type": "websocket.disconnect"}
        await inbox.put(msg)
        if msg["type"] == "websocket.disconnect":
            return


async def _next(inbox: asyncio.Queue, session: IngestSession) -> dict:
    """The next client message; a held chunk is released when none comes within the grace."""
    while session.chunker.holding:
        try:
            return await asyncio.wait_for(inbox.get(), END_GRACE_S)
        except TimeoutError:
            await session.release()
    return await inbox.get()


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
        await claim.__aenter__()
    except ApiError as err:
        rt.metrics.rejected.labels(err.code).inc()
        await send_error(ws, err)
        return
    q = rt.hub.subscribe(call_id)
    session: IngestSession | None = None
    sender = asyncio.create_task(_sender(ws, q))
    inbox: asyncio.Queue = asyncio.Queue(64)
    reader = asyncio.create_task(_reader(ws, inbox))
    rt.metrics.ws_connections.inc()
    released = False

    def push(msg: dict) -> None:
        if q.full():  # a client that does not read loses its oldest messages
            q.get_nowait()
        q.put_nowait(msg)

    def published(rec: dict) -> None:
        push({"type": "published", "seq": rec["seq"], "role": rec["role"], "start_ms": rec["start_ms"]})

    try:
        session = IngestSession(rt, new_chunker(rt, call_id, opts, lookahead=True), on_published=published)
        ended = False
        while True:
            msg = await _next(inbox, session)
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
                push({"type": "ended", "published": session.published})
                await claim.__aexit__(None, None, None)
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
        for task in (sender, reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        rt.hub.unsubscribe(call_id, q)
        rt.metrics.ws_connections.dec()
        if not released:
            await claim.__aexit__(None, None, None)


async def _flush(q: asyncio.Queue, sender: asyncio.Task, timeout_s: float = 1.0) -> None:
    """Let the sender pass on what is queued (published acks) before an error message."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not q.empty() and not sender.done() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
