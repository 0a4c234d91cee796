"""The Alertmanager receiver against a real Alertmanager (Debian's prometheus-alertmanager, installed by
`make deps-system`): alerts appear, RESOLVED resolves them, and Alertmanager's silences decide what it
routes to its own webhook receiver (a local HTTP server). Polls with deadlines, never fixed sleeps."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
import socket
import subprocess
import time
import uuid

import httpx
import pytest
from receiver_helpers import RENDERED, HttpSink, make_alert, make_notification

from emowatch.streams.notify.model import PermanentDeliveryError
from emowatch.streams.notify.receivers.alertmanager import AlertmanagerReceiver, postable_alerts
from emowatch.streams.notify.receivers.amformat import rfc3339, webhook_payload
from emowatch.streams.notify.receivers.base import RetryPolicy, deliver_to

BINARIES = ("prometheus-alertmanager", "alertmanager")
CONFIG = """
route:
  receiver: sink
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sink
    webhook_configs:
      - url: {url}/am
        send_resolved: true
"""


def _binary() -> str:
    for name in BINARIES:
        if path := shutil.which(name):
            return path
    if shutil.which("apt-get") is None:
        pytest.skip("no Alertmanager binary and no apt-get to install one (Debian: prometheus-alertmanager)")
    pytest.fail("prometheus-alertmanager is not installed: run `make deps-system` (apt-get install -y "
                "prometheus-alertmanager)", pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Alertmanager:
    def __init__(self, url: str, sink: HttpSink) -> None:
        self.url, self.sink = url, sink

    def alerts(self, alertname: str) -> list[dict]:
        r = httpx.get(f"{self.url}/api/v2/alerts", params={"filter": f'alertname="{alertname}"'}, timeout=5)
        r.raise_for_status()
        return r.json()

    def wait_alerts(self, alertname: str, predicate, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.alerts(alertname)
            if predicate(found):
                return found
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for alerts {alertname}: {found}")

    def routed(self, alertname: str) -> list[dict]:
        """Webhook payloads Alertmanager sent for the group of ``alertname``."""
        bodies = [json.loads(r.body) for r in self.sink.requests if r.path == "/am"]
        return [b for b in bodies if b["groupLabels"].get("alertname") == alertname]


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    binary = _binary()
    sink = HttpSink().start()
    d = tmp_path_factory.mktemp("alertmanager")
    (d / "am.yml").write_text(CONFIG.format(url=sink.url))
    port = _free_port()
    log = (d / "am.log").open("w")
    proc = subprocess.Popen([binary, f"--config.file={d / 'am.yml'}", f"--storage.path={d / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"alertmanager exited ({proc.returncode}): {(d / 'am.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"alertmanager not ready after 30s: {(d / 'am.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield Alertmanager(url, sink)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        sink.stop()


def post(url: str, notification, **kw):
    r = AlertmanagerReceiver("am", url, allowed_hosts=["127.0.0.1"], **kw)

    async def go():
        try:
            return await deliver_to(r, notification, RENDERED, RetryPolicy(max_attempts=3, timeout_s=10),
                                    rng=random.Random(0), sleep=_no_sleep)
        finally:
            await r.close()
    return asyncio.run(go())


async def _no_sleep(seconds: float) -> None:
    return None


def _rule() -> str:
    return "r_" + uuid.uuid4().hex[:8]


def test_alerts_appear_then_resolve(alertmanager):
    rule = _rule()
    firing = make_notification(make_alert("call-a", rule_id=rule), make_alert("call-b", rule_id=rule))
    assert post(alertmanager.url, firing).ok
    found = alertmanager.wait_alerts(rule, lambda a: len(a) == 2)
    by_call = {a["labels"]["call_id"]: a for a in found}
    a = by_call["call-a"]
    assert a["status"]["state"] == "active"
    assert a["labels"] == {"alertname": rule, "business_line": "retail", "priority": "HIGH", "role": "CUSTOMER",
                           "call_id": "call-a", "rule_set": "retail", "action": "ALERT", "queue": "vip",
                           "site_name": "lyon"}
    assert a["annotations"]["summary"] == RENDERED.title and a["annotations"]["threshold"] == "0.8"
    assert a["generatorURL"] == "https://console.example.com/calls/call-a"

    # Alertmanager routes the group to its webhook receiver: its payload has the shape ours copies. Both alerts
    # usually come in one notification; under load its 1 s group_wait can pass between them (two notifications).
    def calls_in(status: str) -> set[str]:
        return {x["labels"]["call_id"] for b in alertmanager.routed(rule) if b["status"] == status
                for x in b["alerts"] if x["status"] == status}

    alertmanager.sink.wait_for(lambda _: calls_in("firing") == {"call-a", "call-b"}, what="the firing group")
    sent = alertmanager.routed(rule)[0]
    ours = webhook_payload(firing, RENDERED)
    assert set(sent) == set(ours) and sent["version"] == ours["version"] == "4"
    assert set(sent["alerts"][0]) == set(ours["alerts"][0])
    assert sent["status"] == "firing" and 1 <= len(sent["alerts"]) <= 2

    ended = int(time.time() * 1000)
    resolved = make_notification(*(make_alert(c, rule_id=rule, status="RESOLVED", event_time=ended)
                                   for c in ("call-a", "call-b")), status="RESOLVED")
    assert post(alertmanager.url, resolved).ok
    alertmanager.wait_alerts(rule, lambda a: a == [])  # the API lists unresolved alerts only
    alertmanager.sink.wait_for(lambda _: calls_in("resolved") == {"call-a", "call-b"}, what="the resolution")
    done = [x for b in alertmanager.routed(rule) if b["status"] == "resolved" for x in b["alerts"]]
    assert all(x["status"] == "resolved" and x["endsAt"] <= rfc3339(ended + 1000) for x in done)


def test_silences_decide_what_alertmanager_routes(alertmanager):
    rule = _rule()
    now = time.time()
    silence = httpx.post(f"{alertmanager.url}/api/v2/silences", timeout=5, json={
        "matchers": [{"name": "alertname", "value": rule, "isRegex": False},
                     {"name": "call_id", "value": "call-silenced", "isRegex": False}],
        "startsAt": rfc3339(int(now * 1000) - 1000), "endsAt": rfc3339(int((now + 3600) * 1000)),
        "createdBy": "emowatch tests", "comment": "maintenance"})
    assert silence.status_code == 200, silence.text
    silence_id = silence.json()["silenceID"]

    n = make_notification(make_alert("call-silenced", rule_id=rule), make_alert("call-loud", rule_id=rule))
    assert post(alertmanager.url, n).ok
    found = alertmanager.wait_alerts(rule, lambda a: len(a) == 2 and all(x["status"]["state"] != "unprocessed"
                                                                         for x in a))
    states = {a["labels"]["call_id"]: a["status"] for a in found}
    assert states["call-silenced"]["state"] == "suppressed" and states["call-silenced"]["silencedBy"] == [silence_id]
    assert states["call-loud"]["state"] == "active"
    first = alertmanager.sink.wait_for(lambda _: alertmanager.routed(rule), what="the unsilenced alert")
    assert [x["labels"]["call_id"] for x in first[0]["alerts"]] == ["call-loud"]

    # Expire the silence: Alertmanager now routes the alert it held back.
    assert httpx.delete(f"{alertmanager.url}/api/v2/silence/{silence_id}", timeout=5).status_code == 200
    later = alertmanager.sink.wait_for(
        lambda _: [b for b in alertmanager.routed(rule) if any(x["labels"]["call_id"] == "call-silenced"
                                                               for x in b["alerts"])], what="the unsilenced group")
    assert {x["labels"]["call_id"] for x in later[0]["alerts"]} == {"call-silenced", "call-loud"}


def test_resolved_end_is_clamped_to_now_and_to_the_start():
    now_ms = 1_767_000_000_000
    future = make_alert(status="RESOLVED", event_time=now_ms + 2_000, started_ms=0, fired_ms=10_000)
    (body,) = postable_alerts(make_notification(future), RENDERED, now_ms=now_ms)
    assert body["startsAt"] == rfc3339(now_ms - 8_000) and body["endsAt"] == rfc3339(now_ms)
    late = make_alert(status="RESOLVED", event_time=now_ms + 60_000)  # started 57 s from now (clock skew)
    (body,) = postable_alerts(make_notification(late), RENDERED, now_ms=now_ms)
    assert body["endsAt"] == body["startsAt"] == rfc3339(now_ms + 57_000)
    (firing,) = postable_alerts(make_notification(make_alert()), RENDERED, now_ms=now_ms)
    assert "endsAt" not in firing and set(firing) == {"labels", "annotations", "startsAt", "generatorURL"}
    (bare,) = postable_alerts(make_notification(make_alert(), console_url=None), RENDERED, now_ms=now_ms)
    assert "generatorURL" not in bare


def test_transient_then_success_permanent_and_allow_list(http_sink, caplog):
    caplog.set_level(logging.DEBUG)
    http_sink.replies = [(500, b"", {}), (502, b"", {})]
    result = post(f"http://am:am-pass-123@127.0.0.1:{http_sink.port}/prefix", make_notification())
    assert result.ok and result.attempts == 3
    assert [r.path for r in http_sink.requests] == ["/prefix/api/v2/alerts"] * 3
    assert http_sink.requests[0].headers["Authorization"].startswith("Basic ")
    assert isinstance(json.loads(http_sink.requests[-1].body), list)

    http_sink.replies = [(400, b'{"message":"bad"}', {})]
    bad = post(http_sink.url, make_notification())
    assert bad.permanent and bad.attempts == 1 and bad.error == "permanent: alertmanager am (127.0.0.1): HTTP 400"

    http_sink.default = (503, b"", {})
    down = post(http_sink.url, make_notification())
    assert not down.ok and not down.permanent and down.attempts == 3

    before = len(http_sink.requests)
    refused = AlertmanagerReceiver("am", f"http://u:am-pass-123@127.0.0.1:{http_sink.port}",
                                   allowed_hosts=["am.internal"])
    with pytest.raises(PermanentDeliveryError) as info:
        asyncio.run(refused.send(make_notification(), RENDERED))
    assert str(info.value) == "alertmanager am: host '127.0.0.1' is not on the allow-list"
    assert len(http_sink.requests) == before and "am-pass-123" not in repr(refused)
    assert "am-pass-123" not in caplog.text + str(down.error) + str(bad.error)
