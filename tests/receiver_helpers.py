"""Receiver test helpers (tests/streams/notify/receivers/): Alert records and notifications, a recording
HTTP server (aiohttp in a thread, so synchronous tests, Apprise's worker threads and Alertmanager can all
reach it), a no-sleep stand-in for :func:`deliver`'s sleep, and a self-signed TLS certificate."""
from __future__ import annotations

import ssl
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from emowatch.streams.local.http_thread import BackgroundApp
from emowatch.streams.notify.model import Notification, Rendered

NOW_MS = int(time.time() * 1000)


def make_alert(call_id: str = "call-1", *, rule_id: str = "anger_customer", status: str = "FIRING",
               event_time: int | None = None, **over: Any) -> dict[str, Any]:
    """An Alert record (``Alert.v2.avsc``) with the episode 3 s long when it fired."""
    alert = {
        "alert_id": f"{abs(hash((rule_id, call_id))):032x}"[-32:], "status": status, "rule_id": rule_id,
        "rule_version": "v1abc", "rule_set": "retail", "priority": "HIGH", "action": "ALERT",
        "business_line": "retail", "call_id": call_id, "role": "CUSTOMER", "emotions": ["angry", "sad"],
        "value": 0.91, "threshold": 0.8, "started_ms": 12_000, "fired_ms": 15_000,
        "event_time": NOW_MS if event_time is None else event_time, "channels": ["webhook"],
        "labels": {"queue": "vip", "site.name": "lyon"}, "replay_id": None, "trace_id": None,
    }
    alert.update(over)
    return alert


def make_notification(*alerts: dict[str, Any], status: str = "FIRING", receiver: str = "ops", repeat: int = 0,
                      key: str = "idem-0123456789abcdef", console_url: str | None = "https://console.example.com/",
                      group_key: str = '{}:{rule_id="anger_customer"}') -> Notification:
    alerts = alerts or (make_alert(),)
    return Notification(receiver=receiver, group_key=group_key, group_labels={"rule_id": alerts[0]["rule_id"]},
                        status=status, alerts=tuple(alerts), repeat=repeat, idempotency_key=key,
                        console_url=console_url)


RENDERED = Rendered(title="[FIRING:1] anger_customer (retail)", body="**anger_customer** on call call-1\nvalue 0.91")


class NoSleep:
    """Stands in for ``asyncio.sleep`` in :func:`deliver`: records the delays, sleeps not."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    raw_path: str = ""  # path and query as sent on the wire (not percent-decoded)


@dataclass
class HttpSink:
    """A real HTTP server on 127.0.0.1 (aiohttp, own thread and loop) that records requests.

    Replies come from ``replies`` (``(status, body, headers)``, consumed in order), then ``default``."""

    default: tuple[int, bytes, dict[str, str]] = (200, b'{"errcode":0,"errmsg":"ok","code":0}', {})
    replies: list[tuple[int, bytes, dict[str, str]]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    port: int = 0

    def start(self) -> HttpSink:
        async def handle(request: web.Request) -> web.Response:
            self.requests.append(Request(request.method, request.path, dict(request.query), dict(request.headers),
                                         await request.read(), request.raw_path))
            status, body, headers = self.replies.pop(0) if self.replies else self.default
            return web.Response(status=status, body=body, headers=headers)

        self._server = BackgroundApp(lambda app: app.router.add_route("*", "/{tail:.*}", handle),
                                     name="http-sink").start()
        self.port = self._server.port
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, predicate, timeout: float = 20.0, what: str = "requests"):
        """Poll until ``predicate(requests)`` is truthy (returns it) or fail at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate(list(self.requests))
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; got {len(self.requests)} request(s)")

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def http_sink():
    sink = HttpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def no_sleep() -> NoSleep:
    return NoSleep()


def _write_cert_with_cryptography(cert_path, key_path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


@dataclass(frozen=True)
class Cert:
    cert_file: str
    key_file: str

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory) -> Cert:
    """A self-signed certificate for 127.0.0.1/localhost (cryptography if installed, else the openssl CLI)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    try:
        _write_cert_with_cryptography(cert, key)
    except ImportError:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return Cert(str(cert), str(key))
