"""The e-mail receiver against a real local SMTP server (aiosmtpd): plain, STARTTLS + AUTH LOGIN/PLAIN
and implicit TLS with a self-signed certificate made in the test; SMTP reply classes; no password leaks."""
from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import random
import socket

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from receiver_helpers import RENDERED, make_alert, make_notification

from emowatch.streams.notify.receivers.base import ReceiverConfigError, RetryPolicy, deliver_to
from emowatch.streams.notify.receivers.email import EmailReceiver, message_id

USER, PASSWORD = "alerts@example.com", "smtp-P4ss-w0rd!"
SERVER_LOGGER = "mail.log"  # aiosmtpd's own (server-side) log: it is the test's server, not our code


class Handler:
    """Records accepted messages; ``data_replies`` / ``rcpt_replies`` answer first (None = accept)."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes = []
        self.data_replies: list[str | None] = []
        self.rcpt_replies: list[str | None] = []
        self.default_data: str | None = None
        self.logins: list[tuple[str, str]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.pop(0) if self.rcpt_replies else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.data_replies.pop(0) if self.data_replies else self.default_data
        if reply:
            return reply
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
        return "250 OK queued"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((mechanism, login))
        return AuthResult(success=(login, password) == (USER, PASSWORD), handled=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(request, self_signed):
    """(handler, port); ``request.param``: "plain", "starttls", "starttls-LOGIN", "starttls-PLAIN", "implicit"."""
    mode = getattr(request, "param", "plain")
    handler = Handler()
    kw: dict = {}
    if mode.startswith("starttls"):
        kw = {"tls_context": self_signed.server_context(), "require_starttls": True, "auth_required": True,
              "authenticator": handler.authenticate, "auth_require_tls": True}
        if mode == "starttls-LOGIN":
            kw["auth_exclude_mechanism"] = ["PLAIN"]
    elif mode == "implicit":
        kw = {"ssl_context": self_signed.server_context(), "authenticator": handler.authenticate,
              "auth_required": True, "auth_require_tls": False}
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(), **kw)
    controller.start()
    yield handler, controller.port
    controller.stop()


def receiver(port: int, **kw) -> EmailReceiver:
    kw = {"host": "127.0.0.1", "port": port, "to": ["oncall@example.com", "lead@example.com"],
          "from_addr": "emowatch <notify@emowatch.example>", "allowed_hosts": ["127.0.0.1"], "tls": "none",
          "timeout_s": 5, **kw}
    return EmailReceiver("mail", **kw)


def send(r, notification, attempts=4):
    async def no_sleep(_):
        return None
    return asyncio.run(deliver_to(r, notification, RENDERED, RetryPolicy(max_attempts=attempts, timeout_s=10),
                                  rng=random.Random(0), sleep=no_sleep))


def test_plain_delivery_subject_body_and_headers(smtp_server):
    handler, port = smtp_server
    n = make_notification(make_alert("c1"), key="idem-42")
    assert send(receiver(port), n).attempts == 1
    (msg,) = handler.messages
    assert msg["Subject"] == RENDERED.title
    assert msg["To"] == "oncall@example.com, lead@example.com"
    assert msg["Message-ID"] == message_id("idem-42", "notify@emowatch.example")
    assert msg["Message-ID"].endswith("@emowatch.example>")
    assert msg["X-Emowatch-Idempotency-Key"] == "idem-42" and msg["X-Emowatch-Status"] == "FIRING"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n").strip() == RENDERED.body
    html = msg.get_body(("html",)).get_content()
    assert "<pre" in html and "**anger_customer** on call call-1" in html
    assert sorted(handler.envelopes[0].rcpt_tos) == ["lead@example.com", "oncall@example.com"]


def test_a_resend_carries_the_same_message_id(smtp_server):
    handler, port = smtp_server
    n = make_notification(key="idem-same")
    send(receiver(port, html=False), n)
    send(receiver(port, html=False), n)
    assert handler.messages[0]["Message-ID"] == handler.messages[1]["Message-ID"]
    assert not handler.messages[0].is_multipart()


@pytest.mark.parametrize("smtp_server", ["starttls-LOGIN", "starttls-PLAIN"], indirect=True)
def test_starttls_with_auth(smtp_server, self_signed, caplog, request):
    caplog.set_level(logging.DEBUG)
    mechanism = request.node.callspec.params["smtp_server"].removeprefix("starttls-")
    handler, port = smtp_server
    r = receiver(port, tls="starttls", username=USER, password=PASSWORD, ca_file=self_signed.cert_file)
    assert send(r, make_notification()).ok
    assert len(handler.messages) == 1
    assert handler.logins == [(mechanism, USER)]
    _assert_no_password(caplog, r)


@pytest.mark.parametrize("smtp_server", ["starttls-PLAIN"], indirect=True)
def test_wrong_password_is_permanent_and_never_shown(smtp_server, self_signed, caplog):
    caplog.set_level(logging.DEBUG)
    handler, port = smtp_server
    wrong = "wr0ng-" + PASSWORD
    r = receiver(port, tls="starttls", username=USER, password=wrong, ca_file=self_signed.cert_file)
    result = send(r, make_notification())
    assert result.permanent and result.attempts == 1 and "SMTP 535" in result.error
    assert handler.messages == []
    assert wrong not in result.error
    _assert_no_password(caplog, r, wrong)


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
def test_an_untrusted_certificate_is_permanent(smtp_server):
    _, port = smtp_server
    result = send(receiver(port, tls="starttls", username=USER, password=PASSWORD), make_notification())
    assert result.permanent and "certificate verification failed" in result.error


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd cannot see implicit TLS
@pytest.mark.parametrize("smtp_server", ["implicit"], indirect=True)
def test_implicit_tls(smtp_server, self_signed):
    handler, port = smtp_server
    r = receiver(port, tls="implicit", username=USER, password=PASSWORD, ca_file=self_signed.cert_file)
    assert send(r, make_notification()).ok and len(handler.messages) == 1


def test_starttls_required_but_not_offered_is_permanent(smtp_server):
    _, port = smtp_server
    result = send(receiver(port, tls="starttls"), make_notification())
    assert result.permanent and "STARTTLS" in result.error


def test_4xx_is_transient_then_success(smtp_server):
    handler, port = smtp_server
    handler.data_replies = ["451 4.3.0 try again later", "421 4.7.0 busy"]
    result = send(receiver(port), make_notification())
    assert result.ok and result.attempts == 3 and len(handler.messages) == 1


def test_5xx_is_permanent(smtp_server):
    handler, port = smtp_server
    handler.data_replies = ["554 5.7.1 message refused"]
    result = send(receiver(port), make_notification())
    assert result.permanent and result.attempts == 1
    assert result.error == "permanent: email mail (127.0.0.1): SMTP 554 5.7.1 message refused"


def test_persistent_4xx_gives_up_after_max_attempts(smtp_server):
    handler, port = smtp_server
    handler.default_data = "452 4.3.1 insufficient storage"
    result = send(receiver(port), make_notification(), attempts=3)
    assert not result.ok and not result.permanent and result.attempts == 3
    assert result.error.startswith("transient, gave up after 3 attempts: email mail (127.0.0.1): SMTP 452")


def test_recipients(smtp_server):
    handler, port = smtp_server
    handler.rcpt_replies = ["550 5.1.1 no such user", "550 5.1.1 no such user"]
    assert send(receiver(port), make_notification()).permanent
    handler.rcpt_replies = ["450 4.2.0 mailbox busy", "450 4.2.0 mailbox busy"]
    result = send(receiver(port), make_notification())
    assert result.ok and result.attempts == 2
    handler.rcpt_replies = ["550 5.1.1 no such user"]  # one refused, one accepted: delivered, not retried
    result = send(receiver(port), make_notification())
    assert result.ok and result.attempts == 1 and handler.envelopes[-1].rcpt_tos == ["lead@example.com"]


def test_connection_refused_is_transient():
    result = send(receiver(_free_port()), make_notification(), attempts=2)
    assert not result.ok and not result.permanent and result.attempts == 2


def test_allow_list_refusal(smtp_server):
    handler, port = smtp_server
    result = send(receiver(port, allowed_hosts=["smtp.example.com"]), make_notification())
    assert result.permanent and result.error == "permanent: email mail: host '127.0.0.1' is not on the allow-list"
    assert handler.messages == []


def test_configuration_errors():
    with pytest.raises(ReceiverConfigError, match="in clear"):
        receiver(25, username=USER, password=PASSWORD)
    with pytest.raises(ReceiverConfigError, match="together"):
        receiver(25, tls="starttls", username=USER)
    with pytest.raises(ReceiverConfigError, match="tls must be"):
        receiver(25, tls="ssl")
    with pytest.raises(ReceiverConfigError, match="non-empty list"):
        receiver(25, to="oncall@example.com")
    assert receiver(None, tls="implicit").port == 465 and receiver(None, tls="starttls").port == 587


def test_resolved_notifications(smtp_server):
    handler, port = smtp_server
    resolved = make_notification(make_alert(status="RESOLVED"), status="RESOLVED")
    assert send(receiver(port, send_resolved=False), resolved).skipped
    assert send(receiver(port), resolved).attempts == 1
    assert handler.messages[0]["X-Emowatch-Status"] == "RESOLVED"


def _assert_no_password(caplog, r, password=PASSWORD):
    import base64

    forms = [password, base64.b64encode(password.encode()).decode(),
             base64.b64encode(f"\0{USER}\0{password}".encode()).decode()]
    ours = "\n".join(rec.getMessage() for rec in caplog.records if not rec.name.startswith(SERVER_LOGGER))
    assert not [f for f in forms if f in ours or f in repr(r)]
