"""The gateway's FastAPI app: routes (``routes_*.py``), bearer auth, the error JSON, the console's files.

``create_app(runtime)`` assembles everything around a :class:`~emowatch.streams.gateway.runtime.Runtime`
(the service gives it the Kafka publisher). Every error answer is ``{"error": {"code", "message"}}``:
:class:`ApiError` carries its own code; unknown routes are ``not_found``, malformed parameters or
bodies ``bad_parameter``. The OpenAPI page ``/docs`` comes from fastapi-offline's bundled assets.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from emowatch.streams.gateway import (
    routes_analyze,
    routes_ingest,
    routes_live,
    routes_ops,
    routes_samples,
    routes_stream,
)
from emowatch.streams.gateway.errors import ApiError
from emowatch.streams.gateway.runtime import Runtime
from emowatch.streams.resources import gateway_static_dir

log = logging.getLogger("emowatch.gateway")

_HTTP_CODES = {400: "bad_parameter", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 415: "unsupported_encoding", 422: "bad_parameter"}


def error_response(rt: Runtime, code: str, message: str, status: int) -> JSONResponse:
    if status < 500:
        rt.metrics.rejected.labels(code).inc()
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(rt: Runtime) -> FastAPI:
    app = FastAPIOffline(title="emowatch gateway", version="1",
                         description="Ingest call audio, follow calls live, analyse recordings (docs/gateway.md).")
    app.state.rt = rt

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.http_status >= 500:
            log.warning("request failed", extra={"path": request.url.path, "code": exc.code, "error": exc.message})
        return error_response(rt, exc.code, exc.message, exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return error_response(rt, "bad_parameter", where or "invalid request", 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(rt, code, str(exc.detail), exc.status_code)

    for module in (routes_ingest, routes_stream, routes_analyze, routes_live, routes_ops, routes_samples):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def _root() -> RedirectResponse:
        return RedirectResponse("/console/")

    app.mount("/console", StaticFiles(directory=gateway_static_dir(), html=True), name="console")

    return app
