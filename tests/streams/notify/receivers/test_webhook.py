"""The signed webhook against a real local HTTP server: both body formats, the signature (checked with
the verification snippet of the module docstring), retries, refusals and secrets."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import textwrap

import pytest
from receiver_helpers import NOW_MS, RENDERED, make_alert, make_notification

from emowatch.streams.notify.receivers import webhook as webhook_module
from emowatch.streams.notify.receivers.amformat import am_alert, label_name, rfc3339, webhook_payload
from emowatch.streams.notify.receivers.base import ReceiverConfigError, RetryPolicy, deliver_to
from emowatch.streams.notify.receivers.webhook import WebhookReceiver, sign

SECRET = "whsec-0f1e2d3c4b5a"
CLOCK = 1_767_000_000.0


def verify_snippet():
    """The ``verify`` function exactly as the module docstring documents it."""
    doc = webhook_module.__doc__
    start = doc.index("    import hashlib, hmac, time")
    end = doc.index("\n", doc.index("compare_digest", start))
    namespace: dict = {}
    exec(textwrap.dedent(doc[start:end]), namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]


def receiver(sink, **kw) -> WebhookReceiver:
    kw = {"allowed_hosts": ["127.0.0.1"], "secret": SECRET, "clock": lambda: CLOCK, **kw}
    return WebhookReceiver("ops", kw.pop("url", sink.url + "/hook"), **kw)


def send(r, notification, no_sleep, attempts=4):
    async def go():
        try:
            return await deliver_to(r, notification, RENDERED, RetryPolicy(max_attempts=attempts, timeout_s=5),
                                    rng=random.Random(0), sleep=no_sleep)
        finally:
            await r.close()
    return asyncio.run(go())


def test_emowatch_format_headers_and_signature(http_sink, no_sleep, monkeypatch):
    n = make_notification(make_alert("c/1"), make_alert("c2"), repeat=2)
    result = send(receiver(http_sink), n, no_sleep)
    assert result.ok and result.attempts == 1
    (req,) = http_sink.requests
    assert req.method == "POST" and req.path == "/hook"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Idempotency-Key"] == n.idempotency_key
    assert req.headers["X-Emowatch-Timestamp"] == str(int(CLOCK))
    assert req.headers["X-Emowatch-Signature"] == sign(SECRET, str(int(CLOCK)), req.body)
    monkeypatch.setattr("time.time", lambda: CLOCK + 10)
    verify = verify_snippet()
    assert verify(SECRET.encode(), req.headers, req.body)
    assert not verify(b"wrong-secret", req.headers, req.body)
    assert not verify(SECRET.encode(), req.headers, req.body + b" ")
    assert not verify(SECRET.encode(), {**req.headers, "X-Emowatch-Timestamp": str(int(CLOCK) - 600)}, req.body)
    body = json.loads(req.body)
    assert body == {"version": "1", "receiver": "ops", "status": "FIRING", "group_key": n.group_key,
                    "group_labels": n.group_labels, "repeat": 2, "title": RENDERED.title, "body": RENDERED.body,
                    "alerts": [{**n.alerts[0], "url": "https://console.example.com/calls/c%2F1"},
                               {**n.alerts[1], "url": "https://console.example.com/calls/c2"}]}


def test_without_a_secret_there_is_no_signature_and_without_console_no_url(http_sink, no_sleep):
    assert send(receiver(http_sink, secret=None), make_notification(console_url=None), no_sleep).ok
    (req,) = http_sink.requests
    assert "X-Emowatch-Signature" not in req.headers
    assert json.loads(req.body)["alerts"][0]["url"] is None


def test_alertmanager_format(http_sink, no_sleep):
    firing, resolved = make_alert("c1"), make_alert("c2", status="RESOLVED", value=0.2)
    n = make_notification(firing, resolved)
    assert send(receiver(http_sink, format="alertmanager", max_alerts=1), n, no_sleep).ok
    body = json.loads(http_sink.requests[0].body)
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                         "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    assert body["version"] == "4" and body["status"] == "firing" and body["truncatedAlerts"] == 1
    assert body["groupKey"] == n.group_key and body["receiver"] == "ops"
    assert body["externalURL"] == "https://console.example.com"
    assert body["commonLabels"]["alertname"] == "anger_customer" and "call_id" not in body["commonLabels"]
    assert body["alerts"] == [am_alert(firing, summary=RENDERED.title, console_url=n.console_url)]


def test_the_alertmanager_mapping():
    alert = make_alert("c 1", event_time=NOW_MS, labels={"site.name": "lyon", "1st": "x", "call_id": "spoof",
                                                         "empty": ""}, business_line="")
    a = am_alert(alert, summary="T", console_url="https://console/")
    assert a["labels"] == {"alertname": "anger_customer", "priority": "HIGH", "role": "CUSTOMER", "call_id": "c 1",
                           "rule_set": "retail", "action": "ALERT", "site_name": "lyon", "_1st": "x"}
    assert a["annotations"] == {"summary": "T", "value": "0.91", "threshold": "0.8", "emotions": "angry,sad",
                                "description": "anger_customer: customer angry,sad value 0.91 (threshold 0.8) "
                                               "on call c 1"}
    assert a["startsAt"] == rfc3339(NOW_MS - 3000) and a["endsAt"] == "0001-01-01T00:00:00Z"
    assert a["generatorURL"] == "https://console/calls/c%201" and a["fingerprint"] == alert["alert_id"][:16]
    assert a["status"] == "firing"
    done = am_alert({**alert, "status": "RESOLVED"}, summary="T", console_url=None)
    assert done["status"] == "resolved" and done["endsAt"] == rfc3339(NOW_MS) and done["generatorURL"] == ""
    assert rfc3339(1_767_225_600_123) == "2026-01-01T00:00:00.123Z"
    assert label_name("a-b.c") == "a_b_c" and label_name("9x") == "_9x"
    payload = webhook_payload(make_notification(alert, status="RESOLVED"), RENDERED)
    assert payload["status"] == "resolved" and payload["truncatedAlerts"] == 0


def test_transient_500s_then_success(http_sink, no_sleep):
    http_sink.replies = [(500, b"", {}), (503, b"", {}), (429, b"", {"Retry-After": "1"})]
    result = send(receiver(http_sink), make_notification(), no_sleep)
    assert result.ok and result.attempts == 4 and len(http_sink.requests) == 4
    assert len({r.headers["Idempotency-Key"] for r in http_sink.requests}) == 1  # same key on every retry
    assert no_sleep.delays[2] >= 1.0


def test_permanent_4xx_fails_at_once(http_sink, no_sleep):
    http_sink.replies = [(400, b"bad", {})]
    result = send(receiver(http_sink), make_notification(), no_sleep)
    assert not result.ok and result.permanent and result.attempts == 1
    assert result.error == "permanent: webhook ops (127.0.0.1): HTTP 400"


def test_persistent_500s_give_up_after_max_attempts(http_sink, no_sleep):
    http_sink.default = (500, b"", {})
    result = send(receiver(http_sink), make_notification(), no_sleep, attempts=3)
    assert not result.ok and not result.permanent and result.attempts == 3 == len(http_sink.requests)
    assert result.error == "transient, gave up after 3 attempts: webhook ops (127.0.0.1): HTTP 500"


def test_redirects_are_not_followed(http_sink, no_sleep):
    http_sink.replies = [(302, b"", {"Location": "http://evil.example.org/steal"})]
    result = send(receiver(http_sink), make_notification(), no_sleep)
    assert result.permanent and "redirects are not followed" in result.error and len(http_sink.requests) == 1


def test_connection_refused_is_transient(no_sleep):
    r = WebhookReceiver("ops", "http://127.0.0.1:9/hook", allowed_hosts=["127.0.0.1"])
    result = send(r, make_notification(), no_sleep, attempts=2)
    assert not result.ok and not result.permanent and result.attempts == 2
    assert "ClientConnectorError" in result.error


def test_allow_list_refusal_makes_no_request(http_sink, no_sleep):
    r = receiver(http_sink, allowed_hosts=["hooks.example.com"])
    result = send(r, make_notification(), no_sleep)
    assert result.permanent and result.attempts == 1 and http_sink.requests == []
    assert result.error == "permanent: webhook ops: host '127.0.0.1' is not on the allow-list"


def test_bad_configuration_is_refused_at_construction():
    with pytest.raises(ReceiverConfigError, match="pick one"):
        WebhookReceiver("ops", "https://u:p@h/x", allowed_hosts=["h"], headers={"authorization": "Bearer x"})
    with pytest.raises(ReceiverConfigError):
        WebhookReceiver("ops", "https://h/x", allowed_hosts=["h"], format="slack")
    with pytest.raises(ReceiverConfigError) as info:
        WebhookReceiver("ops", "ftp://u:topsecret99@h/x", allowed_hosts=["h"])
    assert "topsecret99" not in str(info.value)


def test_secrets_never_in_logs_or_errors(http_sink, no_sleep, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = ("basicpw-77aa", "pathtoken-0123456789abcdef", "qtoken-5566", "bearer-tok-9988", SECRET)
    url = f"http://admin:{secrets[0]}@127.0.0.1:{http_sink.port}/hooks/{secrets[1]}?token={secrets[2]}"
    http_sink.default = (500, b"", {})
    r = receiver(http_sink, url=url)
    result = send(r, make_notification(), no_sleep, attempts=2)
    bearer = receiver(http_sink, url=http_sink.url + f"/{secrets[1]}",
                      headers={"Authorization": f"Bearer {secrets[3]}"})
    bearer_result = send(bearer, make_notification(), no_sleep, attempts=1)
    refused = send(receiver(http_sink, url=url, allowed_hosts=[]), make_notification(), no_sleep)
    dead = send(WebhookReceiver("ops", f"http://u:{secrets[0]}@127.0.0.1:9/{secrets[1]}", allowed_hosts=["*"]),
                make_notification(), no_sleep, attempts=1)
    assert http_sink.requests[0].headers["Authorization"].startswith("Basic ")  # the secrets were used
    assert http_sink.requests[-1].headers["Authorization"] == f"Bearer {secrets[3]}"
    texts = [caplog.text, result.error, bearer_result.error, refused.error, dead.error, repr(r), repr(bearer)]
    assert not [s for s in secrets for t in texts if s in t]
