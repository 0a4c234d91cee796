"""One JSON POST for the HTTP receivers (webhook, alertmanager): allow-list, no redirects, error mapping.

The aiohttp session is created on first use (inside the running loop) and closed by
:meth:`JsonPoster.close`. Errors never contain the URL (it may hold credentials or tokens), only
the receiver and the host.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from emowatch.streams.notify.model import TransientDeliveryError
from emowatch.streams.notify.receivers.base import ReceiverConfigError, http_status_error
from emowatch.streams.notify.receivers.safety import HostAllowList, host_of, mask_in_library_logs, scrub

__all__ = ["JsonPoster"]


class JsonPoster:
    """POSTs bytes to ``url`` for the receiver ``what`` (e.g. ``"webhook ops"``).

    ``allowed_hosts``: see :class:`HostAllowList`. ``headers``: sent with every request (values
    are treated as secrets). ``timeout_s``: aiohttp's own total timeout per request (a backstop;
    :func:`~emowatch.streams.notify.receivers.base.deliver` enforces the per-attempt timeout).
    """

    def __init__(self, what: str, url: str, *, allowed_hosts: Iterable[str], headers: Mapping[str, str] | None = None,
                 timeout_s: float = 30.0) -> None:
        if not host_of(url) or not url.lower().startswith(("http://", "https://")):
            raise ReceiverConfigError(f"{what}: url must be http(s)://host/..., got {scrub(url)!r}"[:200])
        if urlsplit(url).username is not None and any(k.lower() == "authorization" for k in (headers or {})):
            raise ReceiverConfigError(f"{what}: credentials in the url and an Authorization header: pick one")
        self.what = what
        self.url = url
        self.host = host_of(url)
        self.allow = HostAllowList(allowed_hosts)
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        mask_in_library_logs(self.secrets())

    def secrets(self) -> list[str]:
        """Values that must never appear in logs or errors: header values and URL password, query, path."""
        parts = urlsplit(self.url)
        found = [*self.headers.values(), parts.password or "", parts.query]
        found += [segment for segment in parts.path.split("/") if len(segment) >= 16]  # token-like path parts
        return [s for s in found if s]

    async def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None, *,
                   query: str = "") -> bytes:
        """POST ``body`` to ``url + path`` (+ ``query``, already percent-encoded, sent as is); returns the
        response body on 2xx, else raises a delivery error."""
        self.allow.check(self.host, self.what)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        target: str | URL = self.url.rstrip("/") + path if path else self.url
        if query:
            target = URL(f"{target}{'&' if '?' in target else '?'}{query}", encoded=True)
        try:
            async with self._session.post(target, data=body, headers={**self.headers, **(headers or {})},
                                          allow_redirects=False) as resp:
                if 200 <= resp.status < 300:
                    return await resp.read()
                raise http_status_error(resp.status, f"{self.what} ({self.host})", resp.headers.get("Retry-After"))
        except aiohttp.ClientError as exc:
            # str(exc) may name the URL (aiohttp.InvalidURL, ClientResponseError): only the class is kept.
            raise TransientDeliveryError(f"{self.what} ({self.host}): {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
