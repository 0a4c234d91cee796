"""Feishu, Lark and Slack robots through the real Apprise plugins, against a local HTTP server.

Every plugin hard-codes its platform's host (open.feishu.cn, ...) and none takes a custom host in
its URL, so the tests point the plugin's class-level endpoint attribute at the local server (after
checking that attribute still names the host our allow-list expects). The request then goes through
the real plugin: payload building and success detection. The Apprise URLs are also checked on their
own (test_urls_factory_and_configuration_errors)."""
from __future__ import annotations

import asyncio
import importlib
import json
import logging
import random
import time
from urllib.parse import urlsplit

import pytest
from receiver_helpers import RENDERED, make_alert, make_notification

from emowatch.streams.notify.receivers.base import ReceiverConfigError, RetryPolicy, deliver_to
from emowatch.streams.notify.receivers.errcode_robots import DingTalkReceiver, WeComReceiver
from emowatch.streams.notify.receivers.robots import APPRISE_KINDS, RobotReceiver, apprise_url, robot_receiver

TOKENS = {"feishu": "feishu-hook-0123456789abcdef", "lark": "lark-hook-0123456789abcdef",
          "slack": "T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"}
# kind -> (plugin module, class, endpoint attribute, local path template)
ENDPOINTS = {
    "feishu": ("apprise.plugins.feishu", "NotifyFeishu", "notify_url", "/open-apis/bot/v2/hook/{token}/"),
    "lark": ("apprise.plugins.lark", "NotifyLark", "notify_url", "/open-apis/bot/v2/hook/"),
    "slack": ("apprise.plugins.slack", "NotifySlack", "webhook_url", "/services"),
}
OK_REPLY = {"slack": (200, b"ok", {})}


@pytest.fixture
def local_robots(http_sink, monkeypatch):
    """Point every Apprise robot plugin at the local server; returns the sink."""
    for kind, (module, cls_name, attr, path) in ENDPOINTS.items():
        cls = getattr(importlib.import_module(module), cls_name)
        assert urlsplit(getattr(cls, attr)).hostname == APPRISE_KINDS[kind].host  # our allow-list host is real
        monkeypatch.setattr(cls, attr, http_sink.url + path)
    return http_sink


def robot(kind: str, **kw) -> RobotReceiver:
    return RobotReceiver(f"{kind}-ops", kind, **{"token": TOKENS[kind], **kw})


def send(r, notification=None, attempts=4):
    async def no_sleep(_):
        return None
    return asyncio.run(deliver_to(r, notification or make_notification(), RENDERED,
                                  RetryPolicy(max_attempts=attempts, timeout_s=15), rng=random.Random(0),
                                  sleep=no_sleep))


@pytest.mark.parametrize("kind", list(APPRISE_KINDS))
def test_each_robot_posts_title_and_body(local_robots, kind, caplog):
    caplog.set_level(logging.DEBUG)
    local_robots.default = OK_REPLY.get(kind, local_robots.default)
    result = send(robot(kind))
    assert result.ok and result.attempts == 1
    (req,) = local_robots.requests
    payload = json.loads(req.body)
    text = json.dumps(payload, ensure_ascii=False)
    assert "anger_customer" in text and "value 0.91" in text and "[FIRING:1]" in text
    if kind in ("feishu", "lark"):
        assert req.path.rstrip("/").endswith(TOKENS[kind]) and payload["msg_type"] == "interactive"
        assert payload["card"]["header"]["title"]["content"] == RENDERED.title
    else:
        assert req.path == "/services/" + TOKENS["slack"]
    secrets = [TOKENS[kind], *TOKENS[kind].split("/")]
    assert "Feishu" in caplog.text or "Slack" in caplog.text or "Lark" in caplog.text  # Apprise did log
    assert not [s for s in secrets if s in caplog.text], "a robot token reached the logs"


@pytest.mark.parametrize("kind", ["feishu", "slack"])
def test_transient_500s_then_success(local_robots, kind):
    local_robots.default = OK_REPLY.get(kind, local_robots.default)
    local_robots.replies = [(500, b"", {}), (502, b"", {})]
    result = send(robot(kind))
    assert result.ok and result.attempts == 3 and len(local_robots.requests) == 3


def test_a_refusal_in_a_200_reply_is_a_failure_too(local_robots):
    local_robots.replies = [(200, b'{"code": 9499, "msg": "Bad Request"}', {})]
    result = send(robot("feishu"))
    assert result.ok and result.attempts == 2


def test_failures_are_transient_and_give_up_after_max_attempts(local_robots):
    local_robots.default = (404, b'{"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}',
                            {})
    result = send(robot("lark"), attempts=3)
    assert not result.ok and not result.permanent and result.attempts == 3 == len(local_robots.requests)
    assert result.error == ("transient, gave up after 3 attempts: lark robot lark-ops (open.larksuite.com): "
                            "not accepted (Apprise reports failure only)")
    assert TOKENS["lark"] not in result.error


def test_allow_list_refusal_makes_no_request(local_robots):
    result = send(robot("feishu", allowed_hosts=["hooks.slack.com"]))
    assert result.permanent and result.attempts == 1 and local_robots.requests == []
    assert result.error == "permanent: feishu robot feishu-ops: host 'open.feishu.cn' is not on the allow-list"
    assert send(robot("feishu", allowed_hosts=["*.feishu.cn"])).ok


def test_resolved_uses_the_success_colour(local_robots):
    resolved = make_notification(make_alert(status="RESOLVED"), status="RESOLVED")
    send(robot("feishu"), resolved)
    send(robot("feishu"))
    colours = [json.loads(r.body)["card"]["header"]["template"] for r in local_robots.requests]
    assert colours[0] != colours[1]


def test_apprise_throttling_does_not_slow_consecutive_sends(local_robots):
    """A long-lived Apprise object would wait 5.5 s between two Feishu requests."""
    r = robot("feishu")
    started = time.monotonic()
    assert send(r).ok and send(r).ok
    assert time.monotonic() - started < 3 and len(local_robots.requests) == 2


def test_urls_factory_and_configuration_errors():
    assert apprise_url("feishu", "k/1") == "feishu://k%2F1"
    assert apprise_url("slack", "/T1/B2/C3/") == "slack://T1/B2/C3"
    for kind, token in [("teams", "tok"), ("dingtalk", "tok"), ("slack", "T1/B2"), ("lark", "  ")]:
        with pytest.raises(ReceiverConfigError):
            apprise_url(kind, token)
    with pytest.raises(ReceiverConfigError) as info:
        RobotReceiver("x", "feishu", token="bad token!")
    assert "Apprise refused the token" in str(info.value) and "bad token" not in str(info.value)
    assert repr(robot("slack")) == "RobotReceiver(name='slack-ops', kind='slack')"
    assert isinstance(robot_receiver("d", "dingtalk", token="t0k", secret="SECabc"), DingTalkReceiver)
    assert isinstance(robot_receiver("w", "wecom", token="k3y"), WeComReceiver)
    assert isinstance(robot_receiver("f", "feishu", token="t0k"), RobotReceiver)
