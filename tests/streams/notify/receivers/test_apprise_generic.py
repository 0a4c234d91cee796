"""The generic ``apprise`` integration (``AppriseReceiver``) against a real local HTTP server through
Apprise's ``json://`` URL: title and body arrive, a 500 is a transient failure, the URL never reaches
the logs, and the factory builds it from a configuration."""
from __future__ import annotations

import asyncio
import json
import logging
import random

import pytest
from receiver_helpers import RENDERED, make_notification

from emowatch.streams.notify.config_loader import parse_config
from emowatch.streams.notify.model import TransientDeliveryError
from emowatch.streams.notify.receivers.base import ReceiverConfigError, RetryPolicy, deliver_to
from emowatch.streams.notify.receivers.factory import build_receivers
from emowatch.streams.notify.receivers.robots import AppriseReceiver, url_secrets

TOKEN = "apprise-s3cret-path-7f3a9c"


def _url(sink) -> str:
    return f"json://127.0.0.1:{sink.port}/alerts/{TOKEN}"


def _send(r, attempts=1):
    async def no_sleep(_):
        return None
    return asyncio.run(deliver_to(r, make_notification(), RENDERED, RetryPolicy(max_attempts=attempts, timeout_s=15),
                                  rng=random.Random(0), sleep=no_sleep))


def test_posts_title_and_body_and_never_logs_the_url(http_sink, caplog):
    caplog.set_level(logging.DEBUG)
    r = AppriseReceiver("ops", [_url(http_sink)])
    result = _send(r)
    assert result.ok and result.attempts == 1
    (req,) = http_sink.requests
    assert req.method == "POST" and req.path == f"/alerts/{TOKEN}"
    body = json.loads(req.body)
    assert body["title"] == RENDERED.title and body["message"] == RENDERED.body
    assert "apprise" in caplog.text.lower() or "json" in caplog.text.lower()  # Apprise did log
    assert TOKEN not in caplog.text and _url(http_sink) not in caplog.text


def test_a_500_is_a_transient_failure_retried_until_max_attempts(http_sink, caplog):
    caplog.set_level(logging.DEBUG)
    http_sink.default = (500, b"down", {})
    r = AppriseReceiver("ops", [_url(http_sink)])
    result = _send(r, attempts=3)
    assert not result.ok and not result.permanent and result.attempts == 3
    assert len(http_sink.requests) == 3
    with pytest.raises(TransientDeliveryError) as info:
        asyncio.run(r.send(make_notification(), RENDERED))
    assert TOKEN not in str(info.value) and TOKEN not in caplog.text


def test_factory_builds_it_from_a_config_with_secret_urls(http_sink):
    cfg = parse_config(
        "route: {receiver: ops}\n"
        "receivers:\n"
        "  - name: ops\n"
        "    apprise: {urls: [{secret: hook_url}], send_resolved: true, max_attempts: 2, timeout: 3s}\n",
        "n.yaml", secrets={"hook_url": _url(http_sink)})
    (integration,) = build_receivers(cfg)["ops"]
    assert isinstance(integration.sender, AppriseReceiver) and integration.kind == "apprise"
    assert integration.send_resolved and integration.policy.max_attempts == 2 and integration.policy.timeout_s == 3
    assert TOKEN not in repr(integration.sender)


def test_bad_urls_are_refused_without_showing_them():
    with pytest.raises(ReceiverConfigError) as info:
        AppriseReceiver("ops", [f"nosuchscheme://{TOKEN}"])
    assert TOKEN not in str(info.value) and "URL #1" in str(info.value)
    with pytest.raises(ReceiverConfigError):
        AppriseReceiver("ops", ["  "])
    parts = set(url_secrets("json://u:pw-123@h:1/a/b?token=xyz9"))
    assert parts >= {"pw-123", "a", "b", "xyz9", "u:pw-123@h:1/a/b?token=xyz9"} and "h" not in parts
