"""Keeping receivers safe: the host allow-list and secret masking (error texts and library logs).

* :class:`HostAllowList` — every network receiver checks the host it is about to contact
  *before* any request; a refusal is a :class:`PermanentDeliveryError` that names the host only
  (never the URL: it may carry credentials or tokens).
* :func:`scrub` — masks ``scheme://user:password@`` URLs (:func:`emowatch.topics.security.redact_url`)
  and every given secret (also in its URL-encoded form) in a text.
* :func:`mask_in_library_logs` — libraries we call log secrets at DEBUG (Apprise logs the
  robot URL with its token, urllib3 logs ``POST /robot/send?access_token=...``); a filter on
  those loggers rewrites each record's message with :func:`scrub` over the registered secrets.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, urlsplit

from emowatch.streams.notify.model import PermanentDeliveryError
from emowatch.topics.security import MASK, redact_url

__all__ = ["LIBRARY_LOGGERS", "HostAllowList", "host_of", "mask_in_library_logs", "scrub"]

LIBRARY_LOGGERS = ("apprise", "urllib3.connectionpool", "aiosmtplib", "aiohttp.client")
_MIN_SECRET = 4  # shorter "secrets" would mask ordinary words


def host_of(url: str) -> str:
    """The lower-case host name of ``url`` ('' when it has none); no port, no credentials."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class HostAllowList:
    """Hosts a receiver may contact.

    Entries: an exact host name or IP (``alerts.example.com``, ``10.0.0.7``), ``*.example.com``
    (any sub-domain of example.com, not example.com itself), or ``*`` (any host; for
    development only). An empty list allows nothing. Comparison ignores case and a trailing dot.
    """

    def __init__(self, hosts: Iterable[str]) -> None:
        self.entries = tuple(sorted({h.strip().lower().rstrip(".") for h in hosts if h and h.strip()}))

    def allows(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if not host:
            return False
        for entry in self.entries:
            if entry == "*" or entry == host:
                return True
            if entry.startswith("*.") and host.endswith(entry[1:]) and host != entry[2:]:
                return True
        return False

    def check(self, host: str, what: str) -> str:
        """``host`` if allowed, else :class:`PermanentDeliveryError` naming ``what`` and the host."""
        if not self.allows(host):
            shown = host or "(no host)"
            raise PermanentDeliveryError(f"{what}: host {shown!r} is not on the allow-list")
        return host

    def check_url(self, url: str, what: str) -> str:
        """:meth:`check` on the host of ``url``; the URL itself is never put in the error."""
        return self.check(host_of(url), what)


def _variants(secrets: Iterable[str | None]) -> list[str]:
    out = set()
    for s in secrets:
        if s and len(s) >= _MIN_SECRET:
            out.update({s, quote(s, safe=""), quote_plus(s)})
    return sorted(out, key=len, reverse=True)  # longest first: a secret containing another is masked whole


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with URL passwords and every secret in ``secrets`` (and its URL-encoded form) masked."""
    text = redact_url(text)
    for s in _variants(secrets):
        text = text.replace(s, MASK)
    return text


class _SecretMask(logging.Filter):
    """Rewrites a record's message when it contains a registered secret."""

    def __init__(self) -> None:
        super().__init__("emowatch-secret-mask")
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a library's bad format string: leave it alone
            return True
        masked = scrub(message, self.secrets)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and record.exc_info[1] is not None:
            # The formatted traceback would repeat the exception text: keep the masked message only.
            exc = record.exc_info[1]
            if scrub(str(exc), self.secrets) != str(exc):
                record.exc_info, record.exc_text = None, None
        return True


_FILTER = _SecretMask()


def mask_in_library_logs(secrets: Iterable[str | None], loggers: Iterable[str] = LIBRARY_LOGGERS) -> None:
    """Mask ``secrets`` in every record the named library loggers emit (process-wide, idempotent).

    Call it before the library first sees the secret (e.g. before ``Apprise.add(url)``)."""
    _FILTER.secrets.update(s for s in secrets if s and len(s) >= _MIN_SECRET)
    for name in loggers:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
