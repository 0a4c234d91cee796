"""``POST /v1/calls/{call_id}/audio``: a recording (WAV or raw PCM) streamed into the audio topic.

The body is read piece by piece (``request.stream()``) and published chunk by chunk: never held
whole. Everything that can be checked before publishing is (call id, parameters, ``Content-Length``
against ``max_upload_mb``, the WAV header, the announced duration against ``max_call_s``, a whole
number of frames); only a body without ``Content-Length`` that outgrows a limit is cut mid-way (413
after its chunks, the last one flagged ``end_of_call``) or, ending in a partial frame, answered 422
``truncated`` after its chunks.
"""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Query, Request
from starlette.requests import ClientDisconnect

from emowatch.streams.gateway.auth import require_token
from emowatch.streams.gateway.errors import ApiError
from emowatch.streams.gateway.ingest import IngestError, check_call_id
from emowatch.streams.gateway.params import ingest_options
from emowatch.streams.gateway.session import IngestSession, new_chunker, summary

log = logging.getLogger("emowatch.gateway")
router = APIRouter(tags=["audio"])

AUDIO_BODY = {"requestBody": {"required": True, "content": {
    "audio/wav": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                 "description": "raw PCM (encoding=pcm_s16le|pcm_f32le, sample_rate, channels)"}}}}
ERRORS = {code: {"description": desc,
                 "content": {"application/json": {"example": {"error": {"code": ex, "message": ""}}}}}
          for code, desc, ex in [
              (400, "bad_wav_header, invalid_call_id, bad_parameter", "bad_wav_header"),
              (401, "unauthorized", "unauthorized"), (409, "call_busy", "call_busy"),
              (413, "too_large", "too_large"), (415, "unsupported_encoding", "unsupported_encoding"),
              (422, "unsupported_rate, unsupported_channels, empty_body, truncated", "unsupported_rate"),
              (503, "broker_unavailable", "broker_unavailable")]}


def content_length(request: Request) -> int | None:
    """The declared body length, checked against ``max_upload_mb`` and for an empty body before anything
    is read or published (413 ``too_large``, 422 ``empty_body``); None when not declared (chunked)."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError("bad_parameter", f"Content-Length {raw!r} is not a number") from None
    if value < 0:
        raise ApiError("bad_parameter", f"Content-Length {raw!r} is negative")
    max_mb = request.app.state.rt.gw.max_upload_mb
    if value > max_mb * 1024 * 1024:
        raise IngestError("too_large", f"the body is {value} bytes, over the limit of {max_mb} MiB")
    if value == 0:
        raise IngestError("empty_body", "the body is empty")
    return value


@router.post("/v1/calls/{call_id}/audio", dependencies=[Depends(require_token)], openapi_extra=AUDIO_BODY,
             responses=ERRORS, summary="Upload a call's audio (streamed into the audio topic)")
async def upload_audio(
    call_id: str, request: Request,
    encoding: str | None = Query(None, description="wav (default, or Content-Type: audio/wav), pcm_s16le, pcm_f32le"),
    sample_rate: str | None = Query(None, description="raw PCM: samples per second"),
    channels: str | None = Query(None, description="raw PCM: 1 or 2"),
    business_line: str | None = Query(None, description="default: default (or X-Emowatch-Business-Line)"),
    role: str | None = Query(None, description="mono only: CUSTOMER, AGENT or MIXED (default)"),
    ends: str | None = Query(None, description="true (default): the last chunk ends the call; false: it goes on"),
) -> dict:
    """Publishes the body as AudioChunks; ``attr.<name>=<value>`` query parameters (or
    ``X-Emowatch-Attr-<name>`` headers) become call attributes."""
    rt = request.app.state.rt
    check_call_id(call_id)
    opts = ingest_options(request.query_params.multi_items(), request.headers, request.headers.get("content-type"))
    length = content_length(request)
    limit = rt.gw.max_upload_mb * 1024 * 1024  # a body without Content-Length is checked as it grows
    async with rt.claim(call_id):
        session = IngestSession(rt, new_chunker(rt, call_id, opts, lookahead=True, expected_bytes=length))
        chunker = session.chunker
        over = False
        try:
            async for piece in request.stream():
                if chunker.received + len(piece) > limit:
                    piece, over = piece[:limit - chunker.received], True
                await session.feed(piece)
                if over or chunker.cut:
                    break
        except ClientDisconnect:
            log.info("upload interrupted by the client", extra={"call_id": call_id, "bytes": chunker.received})
            await session.finish(False)
            raise ApiError("bad_parameter", "the client went away before the end of the body") from None
        except Exception:
            await session.abort()
            raise
        cut = over or chunker.cut
        await session.finish(opts.ends or cut)
    log.info("upload published", extra={"call_id": call_id, "chunks": session.published,
                                        "duration_ms": chunker.duration_ms, "bytes": chunker.received})
    if over:
        raise IngestError("too_large", f"the body grew past {rt.gw.max_upload_mb} MiB; the call was cut there "
                                       f"({session.published} chunks published, the last one ends the call)")
    if chunker.cut:
        raise IngestError("too_large", f"the call grew past max_call_s={rt.gw.max_call_s:g} s; it was cut there "
                                       f"({session.published} chunks published, the last one ends the call)")
    if chunker.dropped_bytes:
        raise IngestError("truncated", f"the body ended in a partial frame ({chunker.dropped_bytes} bytes dropped; "
                                       f"{session.published} chunks published)")
    return summary(session)
