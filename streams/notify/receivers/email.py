"""E-mail over SMTP (aiosmtplib): STARTTLS, implicit TLS or plain, optional AUTH.

Constructor: ``EmailReceiver(name, *, host, to, from_addr, allowed_hosts, port=None,
tls="starttls", username=None, password=None, send_resolved=True, html=True, ca_file=None,
validate_certs=True, timeout_s=30.0, local_hostname=None)``.

* ``tls``: ``starttls`` (default port 587; STARTTLS is required, a server without it is a
  permanent error), ``implicit`` (TLS from the first byte, port 465) or ``none`` (port 25; only
  without credentials: a password is never sent in clear). ``ca_file``: PEM bundle to trust
  instead of the system's (private CA, self-signed); ``validate_certs=False`` skips verification.
* ``username``/``password`` together: AUTH (aiosmtplib picks CRAM-MD5, PLAIN or LOGIN from what
  the server offers). The password never appears in logs or errors.

The message: ``Subject`` = rendered title, a text/plain part = rendered body and, with ``html``,
a text/html alternative (the body escaped in ``<pre>``); ``Message-ID`` =
``<sha256(idempotency_key)[:40]@{from domain}>`` (a re-send of the same notification has the same
id, so mail clients and archives recognise it) and ``X-Emowatch-Idempotency-Key``,
``X-Emowatch-Status``, ``X-Emowatch-Group-Key`` headers.

Errors: SMTP 4xx replies, timeouts and dropped connections are transient; 5xx replies
(authentication failed, mailbox unknown, message refused), a missing STARTTLS and certificate
failures are permanent. When only some recipients are refused the message went to the others:
that counts as delivered (a retry would send duplicates) and is logged.

Why aiosmtplib rather than stdlib ``smtplib`` in a thread: a per-attempt timeout cancels an
aiosmtplib send cleanly, whereas a thread blocked in ``smtplib`` cannot be cancelled and would keep
the connection (and a worker thread) busy after the attempt was abandoned.
"""
from __future__ import annotations

import base64
import hashlib
import html as html_lib
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from emowatch.streams.notify.model import (
    DeliveryError,
    Notification,
    PermanentDeliveryError,
    Rendered,
    TransientDeliveryError,
)
from emowatch.streams.notify.receivers.base import ReceiverConfigError
from emowatch.streams.notify.receivers.safety import HostAllowList, mask_in_library_logs, scrub

__all__ = ["TLS_MODES", "EmailReceiver", "message_id"]

TLS_MODES = {"starttls": 587, "implicit": 465, "none": 25}
log = logging.getLogger("emowatch.notify.email")


def message_id(idempotency_key: str, from_addr: str) -> str:
    """``<hex@domain>``: the same for every (re-)send of one notification."""
    domain = parseaddr(from_addr)[1].rpartition("@")[2] or "emowatch.invalid"
    return f"<{hashlib.sha256(idempotency_key.encode('utf-8')).hexdigest()[:40]}@{domain}>"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, kind):
            return True
        cur, seen = cur.__cause__ or cur.__context__, seen + 1
    return False


class EmailReceiver:
    """Sends each notification as one e-mail (see the module docstring)."""

    kind = "email"

    def __init__(self, name: str, *, host: str, to: Sequence[str], from_addr: str, allowed_hosts: Iterable[str],
                 port: int | None = None, tls: str = "starttls", username: str | None = None,
                 password: str | None = None, send_resolved: bool = True, html: bool = True,
                 ca_file: str | None = None, validate_certs: bool = True, timeout_s: float = 30.0,
                 local_hostname: str | None = None, clock: Callable[[], float] = time.time) -> None:
        if tls not in TLS_MODES:
            raise ReceiverConfigError(f"email {name}: tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
        if (username is None) != (password is None):
            raise ReceiverConfigError(f"email {name}: username and password must be set together")
        if username is not None and tls == "none":
            raise ReceiverConfigError(f"email {name}: refusing to send a password in clear (tls='none')")
        if isinstance(to, str) or not to:
            raise ReceiverConfigError(f"email {name}: 'to' must be a non-empty list of addresses")
        self.name = name
        self.send_resolved = send_resolved
        self.host = host.strip().lower()
        self.port = port or TLS_MODES[tls]
        self.tls = tls
        self.to = list(to)
        self.from_addr = from_addr
        self.html = html
        self.timeout_s = timeout_s
        self.local_hostname = local_hostname
        self._allow = HostAllowList(allowed_hosts)
        self._username = username
        self._password = password
        self._ca_file = ca_file
        self._validate = validate_certs
        self._clock = clock
        self._secrets = self._secret_forms()
        mask_in_library_logs(self._secrets)

    def _secret_forms(self) -> list[str]:
        if not self._password:
            return []
        user, pw = self._username or "", self._password
        b64 = [base64.b64encode(s.encode("utf-8")).decode("ascii") for s in (pw, f"\0{user}\0{pw}")]
        return [pw, *b64]

    def message(self, notification: Notification, rendered: Rendered) -> EmailMessage:
        """The e-mail for ``notification`` (see the module docstring)."""
        msg = EmailMessage()
        msg["Subject"] = _one_line(rendered.title)
        msg["From"] = self.from_addr
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(self._clock(), usegmt=True)
        msg["Message-ID"] = message_id(notification.idempotency_key, self.from_addr)
        msg["X-Emowatch-Idempotency-Key"] = _one_line(notification.idempotency_key)
        msg["X-Emowatch-Status"] = notification.status
        msg["X-Emowatch-Group-Key"] = _one_line(notification.group_key)
        msg.set_content(rendered.body)
        if self.html:
            msg.add_alternative(
                f"<html><body><h3>{html_lib.escape(rendered.title)}</h3>"
                f"<pre style=\"font-family:monospace\">{html_lib.escape(rendered.body)}</pre></body></html>",
                subtype="html")
        return msg

    def _tls_context(self) -> ssl.SSLContext | None:
        if self._ca_file is None or self.tls == "none":
            return None
        return ssl.create_default_context(cafile=self._ca_file)

    async def send(self, notification: Notification, rendered: Rendered) -> None:
        """One SMTP transaction; returns when the server accepted the message."""
        what = f"email {self.name} ({self.host})"
        self._allow.check(self.host, f"email {self.name}")
        msg = self.message(notification, rendered)
        try:
            refused, _reply = await aiosmtplib.send(
                msg, hostname=self.host, port=self.port, username=self._username, password=self._password,
                use_tls=self.tls == "implicit", start_tls=self.tls == "starttls", tls_context=self._tls_context(),
                validate_certs=self._validate, timeout=self.timeout_s, local_hostname=self.local_hostname)
        except Exception as exc:  # noqa: BLE001 - mapped below; anything unknown is re-raised
            err = self._classify(exc, what)
            if err is None:
                raise
            raise err from None  # the library's exception may quote the server's reply verbatim
        if refused:
            log.warning("%s: delivered, but %d recipient(s) refused: %s", what, len(refused),
                        ", ".join(f"{addr} ({r.code})" for addr, r in refused.items()))

    def _classify(self, exc: BaseException, what: str) -> DeliveryError | None:
        def text(e: BaseException) -> str:
            return scrub(_one_line(str(e)), self._secrets)[:300]

        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            codes = [r.code for r in exc.recipients]
            cls = TransientDeliveryError if any(400 <= c < 500 for c in codes) else PermanentDeliveryError
            return cls(f"{what}: all recipients refused (SMTP {', '.join(map(str, codes))})")
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            cls = TransientDeliveryError if 400 <= exc.code < 500 else PermanentDeliveryError
            return cls(f"{what}: SMTP {exc.code} {scrub(_one_line(exc.message), self._secrets)[:200]}")
        if _caused_by(exc, ssl.SSLCertVerificationError):
            return PermanentDeliveryError(f"{what}: TLS certificate verification failed")
        if isinstance(exc, TimeoutError | ConnectionError | aiosmtplib.SMTPServerDisconnected | ssl.SSLError):
            return TransientDeliveryError(f"{what}: {type(exc).__name__}: {text(exc)}")
        if isinstance(exc, aiosmtplib.SMTPException):
            # No STARTTLS / AUTH support, TLS already on, ...: configuration, not luck.
            return PermanentDeliveryError(f"{what}: {type(exc).__name__}: {text(exc)}")
        if isinstance(exc, OSError):
            return TransientDeliveryError(f"{what}: {type(exc).__name__}: {text(exc)}")
        return None

    async def close(self) -> None:
        """Nothing to release: one connection per send."""

    def __repr__(self) -> str:
        return f"EmailReceiver(name={self.name!r}, host={self.host!r}, port={self.port}, tls={self.tls!r})"
