"""DingTalk and WeCom robots (ours, not Apprise's) against a local HTTP server: DingTalk's signature
encoded once on the wire, errcode answers classified, markdown payloads, limits, secrets."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
from urllib.parse import quote_plus, unquote_plus, urlsplit

import pytest
from receiver_helpers import RENDERED, make_notification

from emowatch.streams.notify.model import Rendered
from emowatch.streams.notify.receivers.base import ReceiverConfigError, RetryPolicy, deliver_to
from emowatch.streams.notify.receivers.errcode_robots import (
    DingTalkReceiver,
    WeComReceiver,
    dingtalk_sign,
    truncate_utf8,
)

TOKEN, SECRET, KEY = "d1n9t0ken0123456789abcdef", "SEC0123456789abcdefd1n9", "wecom-key-0123456789abcdef"
CLOCK = 1_767_000_000.123


def ding(sink, **kw) -> DingTalkReceiver:
    kw = {"token": TOKEN, "secret": SECRET, "api_base": sink.url, "clock": lambda: CLOCK, **kw}
    return DingTalkReceiver("ding-ops", **kw)


def wecom(sink, **kw) -> WeComReceiver:
    return WeComReceiver("wecom-ops", **{"token": KEY, "api_base": sink.url, **kw})


def send(r, rendered=RENDERED, attempts=4):
    async def no_sleep(_):
        return None

    async def go():
        try:
            return await deliver_to(r, make_notification(), rendered, RetryPolicy(max_attempts=attempts, timeout_s=5),
                                    rng=random.Random(0), sleep=no_sleep)
        finally:
            await r.close()
    return asyncio.run(go())


def test_dingtalk_signed_markdown(http_sink):
    assert send(ding(http_sink, mentions=["13800000000"])).ok
    (req,) = http_sink.requests
    assert req.path == "/robot/send" and req.query["access_token"] == TOKEN
    ts = str(int(CLOCK * 1000))
    expected = base64.b64encode(hmac.new(SECRET.encode(), f"{ts}\n{SECRET}".encode(), hashlib.sha256).digest())
    assert req.query["timestamp"] == ts and req.query["sign"] == expected.decode() == dingtalk_sign(SECRET, ts)
    # encoded exactly once on the wire ('=' -> %3D, never %253D): DingTalk decodes it once
    raw = dict(part.split("=", 1) for part in urlsplit(req.raw_path).query.split("&"))
    assert raw["sign"] == quote_plus(expected.decode()) and unquote_plus(raw["sign"]) == expected.decode()
    payload = json.loads(req.body)
    assert payload == {"msgtype": "markdown", "at": {"atMobiles": ["13800000000"], "isAtAll": False},
                       "markdown": {"title": RENDERED.title,
                                    "text": f"#### {RENDERED.title}\n\n{RENDERED.body} @13800000000"}}


def test_dingtalk_without_secret_is_not_signed(http_sink):
    assert send(ding(http_sink, secret=None)).ok
    assert set(http_sink.requests[0].query) == {"access_token"}


def test_wecom_markdown(http_sink):
    assert send(wecom(http_sink)).ok
    (req,) = http_sink.requests
    assert req.path == "/cgi-bin/webhook/send" and req.query == {"key": KEY}
    assert json.loads(req.body) == {"msgtype": "markdown",
                                    "markdown": {"content": f"**{RENDERED.title}**\n\n{RENDERED.body}"}}


@pytest.mark.parametrize("make", [ding, wecom])
def test_transient_500s_then_success(http_sink, make):
    http_sink.replies = [(500, b"", {}), (503, b"", {})]
    result = send(make(http_sink))
    assert result.ok and result.attempts == 3 == len(http_sink.requests)


@pytest.mark.parametrize(("make", "code"), [(ding, 130101), (ding, -1), (wecom, 45009), (wecom, -1)])
def test_rate_limit_and_busy_answers_are_transient(http_sink, make, code):
    http_sink.replies = [(200, json.dumps({"errcode": code, "errmsg": "send too fast"}).encode(), {})]
    result = send(make(http_sink))
    assert result.ok and result.attempts == 2


@pytest.mark.parametrize(("make", "code", "message"), [
    (ding, 310000, "sign not match, more: [https://ding-doc.dingtalk.com/]"),
    (ding, 300001, "token is not exist"),
    (wecom, 93000, "invalid webhook url, hint: [1767000000_abc]"),
])
def test_refusals_in_a_200_answer_are_permanent(http_sink, make, code, message):
    http_sink.replies = [(200, json.dumps({"errcode": code, "errmsg": message}).encode(), {})]
    result = send(make(http_sink))
    assert result.permanent and result.attempts == 1
    assert f"errcode {code} {message}" in result.error


def test_persistent_failure_gives_up_after_max_attempts(http_sink):
    http_sink.default = (502, b"bad gateway", {})
    result = send(wecom(http_sink), attempts=3)
    assert not result.ok and not result.permanent and result.attempts == 3
    assert result.error == "transient, gave up after 3 attempts: wecom robot wecom-ops (127.0.0.1): HTTP 502"


def test_an_unreadable_answer_is_transient(http_sink):
    http_sink.replies = [(200, b"<html>proxy</html>", {})]
    assert send(ding(http_sink)).attempts == 2


def test_allow_list_defaults_to_the_platform_and_refuses_before_any_request(http_sink):
    result = send(ding(http_sink, api_base="https://oapi.dingtalk.com", allowed_hosts=["hooks.slack.com"]))
    assert result.permanent and result.error == ("permanent: dingtalk robot ding-ops: host 'oapi.dingtalk.com' "
                                                 "is not on the allow-list")
    refused = send(wecom(http_sink, allowed_hosts=["qyapi.weixin.qq.com"]))
    assert "host '127.0.0.1' is not on the allow-list" in refused.error and http_sink.requests == []
    assert DingTalkReceiver("d", token=TOKEN)._http.allow.entries == ("oapi.dingtalk.com",)
    assert WeComReceiver("w", token=KEY)._http.allow.entries == ("qyapi.weixin.qq.com",)


def test_long_messages_are_cut_to_the_platform_limit(http_sink):
    long = Rendered(title="t", body="情绪" * 5000)
    assert send(wecom(http_sink), long).ok and send(ding(http_sink), long).ok
    wecom_text = json.loads(http_sink.requests[0].body)["markdown"]["content"]
    ding_text = json.loads(http_sink.requests[1].body)["markdown"]["text"]
    assert len(wecom_text.encode()) <= 4096 and wecom_text.endswith("…")
    assert len(ding_text.encode()) <= 20_000 and ding_text.endswith("…")
    assert truncate_utf8("abc", 3) == "abc" and truncate_utf8("é" * 10, 8, marker="~") == "ééé~"


def test_secrets_never_in_logs_or_errors(http_sink, caplog):
    caplog.set_level(logging.DEBUG)
    http_sink.default = (200, json.dumps({"errcode": 310000, "errmsg": f"sign not match for {TOKEN}"}).encode(), {})
    results = [send(ding(http_sink)), send(wecom(http_sink, api_base="http://127.0.0.1:9"), attempts=2)]
    texts = [caplog.text, *(r.error for r in results), repr(ding(http_sink)), repr(wecom(http_sink))]
    assert all(not r.ok for r in results)
    assert not [s for s in (TOKEN, SECRET, KEY) for t in texts if s in t]


def test_configuration_errors():
    with pytest.raises(ReceiverConfigError, match="token is empty"):
        DingTalkReceiver("d", token=" ")
    with pytest.raises(ReceiverConfigError, match="token is empty"):
        WeComReceiver("w", token="")
