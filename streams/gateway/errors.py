"""The gateway's API errors: a stable ``code``, a message and the HTTP status (docs/gateway.md).

Every 4xx/5xx the gateway answers is ``{"error": {"code": ..., "message": ...}}`` built from an
:class:`ApiError` (the app's exception handler), so a client can switch on ``code``.
"""
from __future__ import annotations

from emowatch.topics.errors import EmowatchError

#: HTTP status of each error code (docs/gateway.md lists them per route)
STATUS: dict[str, int] = {
    "bad_wav_header": 400, "invalid_call_id": 400, "bad_parameter": 400,
    "unauthorized": 401,
    "not_found": 404, "unknown_call": 404, "unknown_embedding": 404, "unknown_sample": 404,
    "method_not_allowed": 405,
    "call_busy": 409,
    "too_large": 413,
    "unsupported_encoding": 415,
    "unsupported_rate": 422, "unsupported_channels": 422, "empty_body": 422, "truncated": 422,
    "history_unreachable": 502,
    "no_history": 503, "analysis_unavailable": 503, "broker_unavailable": 503, "unhealthy": 503,
}


class ApiError(EmowatchError):
    """An answer other than success: ``code`` (see :data:`STATUS`), ``message`` for people, ``http_status``."""

    def __init__(self, code: str, message: str, http_status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status if http_status is not None else STATUS.get(code, 400)

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}
