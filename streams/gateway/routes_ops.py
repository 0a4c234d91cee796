"""Operations and the notifier's commands: ``/health``, ``/metrics``, ``/v1/history/...`` (proxied to the
sink's read API), ``/v1/calls/{call_id}/report.png`` (a past call's picture, from the same read API),
``POST /v1/alerts/{alert_id}/ack``, ``POST|GET /v1/silences`` (the same records as ``emowatch alert ack`` and
``emowatch silence add|list``)."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from emowatch.streams.gateway.auth import require_token
from emowatch.streams.gateway.errors import ApiError

log = logging.getLogger("emowatch.gateway")
router = APIRouter()
v1 = APIRouter(dependencies=[Depends(require_token)])
STARTED = time.time()


@router.get("/health", tags=["operations"], summary="Liveness and broker state", operation_id="health_get")
@router.post("/health", tags=["operations"], summary="Liveness and broker state", operation_id="health_post")
async def health(request: Request) -> JSONResponse:
    rt = request.app.state.rt
    broker = await rt.publisher.health()
    feed = rt.feed_health() if rt.feed_health is not None else None
    ok = bool(broker.get("connected"))
    body: dict[str, Any] = {"status": "healthy" if ok else "unhealthy", "broker": broker, "live_feed": feed,
                            "live_calls": len(rt.board), "uptime_s": round(time.time() - STARTED, 1)}
    if not ok:
        body["error"] = {"code": "unhealthy", "message": f"broker unreachable: {broker.get('error')}"}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", tags=["operations"], summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# ---- history -------------------------------------------------------------------------------------

async def history_get(request: Request, path: str, params: list[tuple[str, str]] | None = None) -> httpx.Response:
    """GET ``/v1/history/{path}`` from the sink's read API (503 ``no_history`` when none is configured, 502
    ``history_unreachable`` when it does not answer)."""
    base = request.app.state.rt.gw.history_url
    if not base:
        raise ApiError("no_history", "this gateway has no history (EMOWATCH_GATEWAY__HISTORY_URL is unset)")
    client: httpx.AsyncClient | None = getattr(request.app.state, "history_client", None)
    if client is None:
        client = request.app.state.history_client = httpx.AsyncClient(timeout=30.0)
    try:
        return await client.get(f"{base.rstrip('/')}/v1/history/{path}", params=params or [])
    except httpx.HTTPError as exc:
        raise ApiError("history_unreachable", f"the history service did not answer: {type(exc).__name__}") from None


@v1.get("/v1/history/{path:path}", tags=["history"], summary="The sink's history read API (proxied)")
async def history(path: str, request: Request) -> Response:
    upstream = await history_get(request, path, list(request.query_params.multi_items()))
    return Response(upstream.content, status_code=upstream.status_code,
                    media_type=upstream.headers.get("content-type", "application/json"))


@v1.get("/v1/calls/{call_id}/report.png", tags=["history"], response_class=Response,
        summary="A past call's emotion timeline as a picture (as `emowatch report call`)",
        responses={200: {"content": {"image/png": {}}}, 404: {"description": "unknown_call"}})
async def call_report(call_id: str, request: Request,
                      step_ms: int = Query(200, ge=200, le=60_000, description="a multiple of 200 ms")) -> Response:
    from urllib.parse import quote

    if step_ms % 200:
        raise ApiError("bad_parameter", f"step_ms: {step_ms} is not a multiple of 200")
    upstream = await history_get(request, f"calls/{quote(call_id, safe='')}")
    try:
        body = upstream.json()
    except ValueError:
        body = {}
    if upstream.status_code != 200:
        err = body.get("error") if isinstance(body, dict) else None
        code = err.get("code") if isinstance(err, dict) else None
        if upstream.status_code == 404:
            raise ApiError("unknown_call", (err or {}).get("message") or f"no scores stored for call {call_id!r}")
        if upstream.status_code == 400 and code:
            raise ApiError(code, err.get("message", ""), 400)
        raise ApiError("history_unreachable", f"the history service answered {upstream.status_code} {code or ''}")
    from emowatch.streams.analytics.report import render_call_png

    png = await asyncio.to_thread(render_call_png, body, step_ms=step_ms)
    return Response(png, media_type="image/png",
                    headers={"Content-Disposition": f'inline; filename="{quote(call_id, safe="")}-report.png"'})


# ---- notifier commands ---------------------------------------------------------------------------

class AckBody(BaseModel):
    by: str = Field(..., description="who takes the alert over")
    comment: str = ""
    call_id: str | None = Field(None, description="the alert's call (for display)")


class SilenceBody(BaseModel):
    matchers: dict[str, str] = Field(..., description='labels that must all be equal, e.g. {"call_id": "c-42"}')
    duration_s: float = Field(..., gt=0, le=366 * 24 * 3600)
    by: str
    comment: str


async def _control(fn, *args: Any) -> Any:
    from emowatch.streams.kafka.notify_control import ControlPublishError, ControlReadError

    try:
        return await asyncio.to_thread(fn, *args)
    except (ControlPublishError, ControlReadError) as exc:
        raise ApiError("broker_unavailable", str(exc)) from None


@v1.post("/v1/alerts/{alert_id}/ack", tags=["notifier"], summary="Acknowledge an alert (as `emowatch alert ack`)")
async def ack_alert(alert_id: str, body: AckBody, request: Request) -> dict:
    from emowatch.streams.kafka.notify_control import publish_ack
    from emowatch.streams.notify.errors import MatcherError
    from emowatch.streams.notify.records import ack_record

    try:
        record = ack_record(alert_id, by=body.by, now_ms=int(time.time() * 1000), comment=body.comment,
                            call_id=body.call_id)
    except MatcherError as exc:
        raise ApiError("bad_parameter", str(exc)) from None
    await _control(publish_ack, request.app.state.rt.settings.kafka, record)
    log.info("alert acknowledged", extra={"alert_id": alert_id, "call_id": body.call_id, "by": body.by})
    return record


@v1.post("/v1/silences", tags=["notifier"], summary="Silence alerts (as `emowatch silence add`)")
async def add_silence(body: SilenceBody, request: Request) -> dict:
    from emowatch.streams.kafka.notify_control import publish_silence
    from emowatch.streams.notify.errors import MatcherError
    from emowatch.streams.notify.matchers import Matcher, parse_matcher
    from emowatch.streams.notify.records import new_silence_record

    now = int(time.time() * 1000)
    try:
        matchers = [str(parse_matcher(str(Matcher(name, "=", value)))) for name, value in body.matchers.items()]
        record = new_silence_record(matchers, now, now + int(body.duration_s * 1000), created_by=body.by,
                                    comment=body.comment, now_ms=now)
    except MatcherError as exc:
        raise ApiError("bad_parameter", str(exc)) from None
    await _control(publish_silence, request.app.state.rt.settings.kafka, record)
    log.info("silence added", extra={"silence_id": record["id"], "matchers": matchers, "call_id":
                                     body.matchers.get("call_id")})
    return record


@v1.get("/v1/silences", tags=["notifier"], summary="The pending and active silences (as `emowatch silence list`)")
async def list_silences(request: Request) -> dict:
    from emowatch.streams.kafka.notify_control import read_silences
    from emowatch.streams.notify.records import silence_state

    now = int(time.time() * 1000)
    records = await _control(read_silences, request.app.state.rt.settings.kafka)
    rows = [{**r, "state": state} for r in records.values() if (state := silence_state(r, now)) != "expired"]
    rows.sort(key=lambda r: r["created_at"], reverse=True)
    return {"silences": rows}


router.include_router(v1)
