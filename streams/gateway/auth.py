"""Bearer-token auth of ``/v1/*`` (``EMOWATCH_GATEWAY__AUTH_TOKEN``); WebSocket and SSE also take
``?access_token=`` (browsers cannot set headers there). No token configured: everything is open."""
from __future__ import annotations

import hmac
from collections.abc import Mapping

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from emowatch.streams.gateway.errors import ApiError

__all__ = ["check_token", "require_token", "require_token_or_query"]

bearer = HTTPBearer(auto_error=False, description="EMOWATCH_GATEWAY__AUTH_TOKEN, when the gateway has one")


def check_token(expected: str | None, headers: Mapping[str, str], query: Mapping[str, str], *,
                allow_query: bool) -> None:
    """Raise ApiError ``unauthorized`` unless the request carries ``expected`` (no-op when None)."""
    if not expected:
        return
    given = ""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    elif allow_query:
        given = query.get("access_token", "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError("unauthorized", "a valid bearer token is required (Authorization: Bearer <token>"
                       + (" or ?access_token=<token>)" if allow_query else ")"))


def _expected(request: Request) -> str | None:
    token = request.app.state.rt.gw.auth_token
    return token.get_secret_value() if token is not None else None


def require_token(request: Request, _creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    check_token(_expected(request), request.headers, request.query_params, allow_query=False)


def require_token_or_query(request: Request,
                           _creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    check_token(_expected(request), request.headers, request.query_params, allow_query=True)
