"""``POST /v1/analyze`` (the upload page: the model on the whole file, and with ``publish=true`` the file
streamed through the pipeline as that call) and ``GET /v1/analyze/{call_id}/embedding.npy``.

The model side is ``streams/gateway/analyze.py`` (``Analyzer``), imported when first needed: without
it, or with ``EMOWATCH_GATEWAY__ANALYZE=false``, the route answers 503 ``analysis_unavailable``. The
model runs on one worker thread (one analysis at a time; the event loop stays free).
"""
from __future__ import annotations

import asyncio
import io
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from emowatch.streams.gateway.auth import require_token
from emowatch.streams.gateway.errors import ApiError
from emowatch.streams.gateway.ingest import IngestError, check_call_id
from emowatch.streams.gateway.params import IngestOptions, parse_bool
from emowatch.streams.gateway.routes_ingest import content_length
from emowatch.streams.gateway.session import IngestSession, new_chunker
from emowatch.streams.infer.scoring import ROLES

log = logging.getLogger("emowatch.gateway")
router = APIRouter(tags=["analyze"], dependencies=[Depends(require_token)])
WAV_BODY = {"requestBody": {"required": True, "content": {"audio/wav": {"schema": {"type": "string",
                                                                                   "format": "binary"}}}}}
_POOL = ThreadPoolExecutor(1, thread_name_prefix="gateway-analyze")


def _analyzer_class():
    try:
        from emowatch.streams.gateway.analyze import Analyzer
    except ImportError as exc:
        raise ApiError("analysis_unavailable", f"whole-file analysis is not installed here ({exc})") from None
    return Analyzer


def _samples(parts: dict[str, list[bytes]], encoding: str, channels_per_role: int) -> np.ndarray:
    """(n, channels) float32 in [-1, 1] from the records' audio, one column per role (or interleaved)."""
    cols = []
    for chunks in parts.values():
        raw = b"".join(chunks)
        if encoding == "PCM_S16LE":
            x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        else:
            x = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        cols.append(x.reshape(-1, channels_per_role))
    return np.concatenate(cols, axis=1)


@router.post("/v1/analyze", openapi_extra=WAV_BODY, summary="Score a WAV file with the model (and publish it)")
async def analyze(
    request: Request,
    granularity: str = Query("utterance", description="utterance or frame (embedding per frame)"),
    embeddings: str | None = Query(None, description="true: keep the embedding for embedding.npy"),
    call_id: str | None = Query(None, description="default: a new id"),
    business_line: str = Query("default"),
    role: str = Query("MIXED", description="mono files: the speaker (CUSTOMER, AGENT, MIXED), as for the upload"),
    publish: str | None = Query(None, description="true (default): also stream the file through the pipeline"),
) -> dict:
    rt = request.app.state.rt
    if not rt.gw.analyze:
        raise ApiError("analysis_unavailable", "whole-file analysis is off (EMOWATCH_GATEWAY__ANALYZE=false)")
    analyzer_class = _analyzer_class()
    if granularity not in ("utterance", "frame"):
        raise ApiError("bad_parameter", f"granularity={granularity!r} is not utterance or frame")
    want_embedding = parse_bool("embeddings", embeddings, False)
    do_publish = parse_bool("publish", publish, True)
    call_id = check_call_id(call_id or f"upload-{uuid.uuid4().hex[:12]}")
    if role.upper() not in ROLES:
        raise ApiError("bad_parameter", f"role={role!r} is not one of {', '.join(ROLES)}")
    length = content_length(request)
    limit = rt.gw.max_upload_mb * 1024 * 1024  # a body without Content-Length is checked as it grows
    parts: dict[str, list[bytes]] = {}
    opts = IngestOptions(business_line=business_line, role=role.upper())

    def keep(rec: dict) -> None:
        parts.setdefault(rec["role"], []).append(rec["audio"])

    async with rt.claim(call_id):
        session = IngestSession(rt, new_chunker(rt, call_id, opts, lookahead=True, expected_bytes=length),
                                publish=do_publish, on_record=keep)
        chunker = session.chunker
        try:
            async for piece in request.stream():
                if chunker.received + len(piece) > limit:
                    raise IngestError("too_large", f"the body grew past {rt.gw.max_upload_mb} MiB")
                await session.feed(piece)
                if chunker.cut:
                    raise IngestError("too_large", f"the file is longer than max_call_s={rt.gw.max_call_s:g} s")
            await session.finish(True)
        except BaseException:
            await session.abort()
            raise
    fmt = chunker.format
    assert fmt is not None
    roles = chunker.roles
    samples = _samples(parts, fmt.encoding, 1 if len(roles) == 2 else fmt.channels)
    if rt.analyzer is None:
        rt.analyzer = analyzer_class(rt.settings.model)
    result = await asyncio.get_running_loop().run_in_executor(
        _POOL, lambda: rt.analyzer.analyze(samples, fmt.sample_rate, granularity=granularity,
                                           embeddings=want_embedding, roles=roles))
    embedding_url = None
    if want_embedding and result.embedding is not None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(result.embedding, dtype=np.float32))
        rt.keep_embedding(call_id, buf.getvalue())
        embedding_url = f"/v1/analyze/{call_id}/embedding.npy"
    log.info("file analysed", extra={"call_id": call_id, "published": session.published,
                                     "duration_ms": chunker.duration_ms})
    return {"call_id": call_id, **result.body, "embedding_url": embedding_url, "published_chunks": session.published,
            "console_url": rt.console_url(call_id)}


@router.get("/v1/analyze/{call_id}/embedding.npy", summary="The embedding of a recent analysis (numpy .npy)",
            response_class=Response)
async def embedding(call_id: str, request: Request) -> Response:
    npy = request.app.state.rt.embeddings.get(call_id)
    if npy is None:
        raise ApiError("unknown_embedding", f"no recent analysis of {call_id} kept an embedding")
    return Response(npy, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{call_id}.npy"'})
