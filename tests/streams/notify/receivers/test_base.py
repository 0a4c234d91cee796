"""deliver(): retries with full-jitter backoff, per-attempt timeout, classification; the allow-list,
secret scrubbing and library-log masking; the log receiver."""
from __future__ import annotations

import asyncio
import json
import logging
import pickle
import random

import aiohttp
import pytest
from receiver_helpers import RENDERED, make_alert, make_notification

from emowatch.streams.notify.model import PermanentDeliveryError, TransientDeliveryError
from emowatch.streams.notify.receivers.base import (
    DeliveryResult,
    Receiver,
    ReceiverConfigError,
    RetryPolicy,
    classify,
    deliver,
    deliver_to,
    http_status_error,
)
from emowatch.streams.notify.receivers.log import LogReceiver
from emowatch.streams.notify.receivers.safety import HostAllowList, mask_in_library_logs, scrub
from emowatch.topics.security import MASK


class Flaky:
    """A send that fails with the given errors, then succeeds."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, notification) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


def run_deliver(send, no_sleep, **kw) -> DeliveryResult:
    kw = {"max_attempts": 4, "initial_backoff_s": 1.0, "max_backoff_s": 5.0, "timeout_s": 1.0,
          "rng": random.Random(7), "sleep": no_sleep, **kw}
    return asyncio.run(deliver(send, make_notification(), **kw))


def test_success_at_first_attempt(no_sleep):
    send = Flaky()
    assert run_deliver(send, no_sleep) == DeliveryResult(ok=True, attempts=1)
    assert send.calls == 1 and no_sleep.delays == []


def test_transient_errors_are_retried_with_full_jitter_backoff(no_sleep):
    send = Flaky(TransientDeliveryError("HTTP 500"), TransientDeliveryError("HTTP 503"), TimeoutError())
    result = run_deliver(send, no_sleep)
    assert result == DeliveryResult(ok=True, attempts=4)
    assert send.calls == 4
    # attempt n waits uniform(0, min(max, initial * 2**(n-1))): caps 1, 2, 4; the seeded rng decides
    rng = random.Random(7)
    assert no_sleep.delays == [rng.uniform(0, 1.0), rng.uniform(0, 2.0), rng.uniform(0, 4.0)]
    assert all(0 <= d <= cap for d, cap in zip(no_sleep.delays, (1, 2, 4)))


def test_backoff_is_capped_at_max_backoff(no_sleep):
    send = Flaky(*[TransientDeliveryError("x")] * 9)
    result = run_deliver(send, no_sleep, max_attempts=10, rng=random.Random(1))
    assert result.ok and result.attempts == 10
    assert max(no_sleep.delays) <= 5.0


def test_permanent_error_stops_at_once(no_sleep):
    send = Flaky(PermanentDeliveryError("webhook ops (h): HTTP 400"))
    result = run_deliver(send, no_sleep)
    assert not result.ok and result.permanent and result.attempts == 1
    assert result.error == "permanent: webhook ops (h): HTTP 400"
    assert send.calls == 1 and no_sleep.delays == []


def test_gives_up_after_max_attempts_and_says_why(no_sleep):
    send = Flaky(*[TransientDeliveryError("webhook ops (h): HTTP 502")] * 10)
    result = run_deliver(send, no_sleep, max_attempts=3)
    assert result == DeliveryResult(ok=False, attempts=3, permanent=False,
                                    error="transient, gave up after 3 attempts: webhook ops (h): HTTP 502")
    assert send.calls == 3 and len(no_sleep.delays) == 2


def test_each_attempt_has_its_own_timeout(no_sleep):
    calls = []

    async def slow_then_fast(notification) -> None:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(30)

    result = run_deliver(slow_then_fast, no_sleep, timeout_s=0.05)
    assert result == DeliveryResult(ok=True, attempts=2)


def test_timeouts_until_the_end_report_the_timeout(no_sleep):
    async def hang(notification) -> None:
        await asyncio.sleep(30)

    result = run_deliver(hang, no_sleep, timeout_s=0.02, max_attempts=2)
    assert not result.ok and result.attempts == 2 and "timed out after 0.02s" in result.error


def test_retry_after_raises_the_backoff_up_to_the_cap(no_sleep):
    send = Flaky(http_status_error(429, "webhook ops", "3"), http_status_error(503, "webhook ops", "60"))
    result = run_deliver(send, no_sleep, rng=random.Random(0))
    assert result.ok and result.attempts == 3
    assert no_sleep.delays[0] >= 3.0 and no_sleep.delays[1] == 5.0


def test_a_bug_in_a_receiver_is_not_swallowed(no_sleep):
    with pytest.raises(KeyError):
        run_deliver(Flaky(KeyError("oops")), no_sleep)


def test_connection_errors_are_transient_without_their_text(no_sleep):
    err = aiohttp.ClientConnectionError("https://user:pw@host/x?token=abc")
    result = run_deliver(Flaky(err, ConnectionRefusedError()), no_sleep)
    assert result.ok and result.attempts == 3
    assert isinstance(classify(err), TransientDeliveryError) and "token" not in str(classify(err))
    assert classify(ValueError("bug")) is None


@pytest.mark.parametrize(("status", "transient"), [(500, True), (502, True), (503, True), (408, True), (429, True),
                                                  (400, False), (401, False), (403, False), (404, False),
                                                  (410, False), (301, False), (302, False)])
def test_http_status_mapping(status, transient):
    err = http_status_error(status, "webhook ops (h)")
    assert isinstance(err, TransientDeliveryError if transient else PermanentDeliveryError)
    assert f"HTTP {status}" in str(err)


def test_delivery_errors_pickle_with_their_retry_hint():
    err = pickle.loads(pickle.dumps(http_status_error(429, "w", "2")))
    assert isinstance(err, TransientDeliveryError) and err.retry_after_s == 2.0


def test_max_attempts_must_be_positive(no_sleep):
    with pytest.raises(ReceiverConfigError):
        run_deliver(Flaky(), no_sleep, max_attempts=0)


def test_deliver_to_skips_resolved_for_receivers_that_do_not_want_them(no_sleep, caplog):
    caplog.set_level(logging.INFO)
    quiet = LogReceiver("quiet", send_resolved=False)
    resolved = make_notification(make_alert(status="RESOLVED"), status="RESOLVED")
    result = asyncio.run(deliver_to(quiet, resolved, RENDERED, sleep=no_sleep))
    assert result == DeliveryResult(ok=True, attempts=0, skipped=True)
    assert "delivered" not in caplog.text
    result = asyncio.run(deliver_to(LogReceiver("loud"), resolved, RENDERED, RetryPolicy(max_attempts=1)))
    assert result == DeliveryResult(ok=True, attempts=1)


def test_log_receiver_writes_one_structured_line(caplog):
    caplog.set_level(logging.INFO, logger="emowatch.notify.delivered")
    receiver = LogReceiver("demo")
    assert isinstance(receiver, Receiver)
    n = make_notification(make_alert("c1"), make_alert("c2"))
    asyncio.run(receiver.send(n, RENDERED))
    (record,) = [r for r in caplog.records if r.name == "emowatch.notify.delivered"]
    assert record.getMessage().startswith("delivered {")
    fields = json.loads(record.getMessage().removeprefix("delivered "))
    assert fields == record.emowatch_delivery == {
        "receiver": "ops", "group_key": n.group_key, "status": "FIRING",
        "alert_ids": [a["alert_id"] for a in n.alerts], "idempotency_key": n.idempotency_key, "repeat": 0,
        "title": RENDERED.title}


@pytest.mark.parametrize(("entries", "host", "allowed"), [
    (["hooks.example.com"], "hooks.example.com", True),
    (["HOOKS.example.com."], "hooks.EXAMPLE.com", True),
    (["hooks.example.com"], "evil.example.com", False),
    (["*.example.com"], "a.b.example.com", True),
    (["*.example.com"], "example.com", False),
    (["*.example.com"], "badexample.com", False),
    (["*"], "anything.org", True),
    ([], "hooks.example.com", False),
    (["10.0.0.7"], "10.0.0.7", True),
    (["*"], "", False),
])
def test_allow_list(entries, host, allowed):
    assert HostAllowList(entries).allows(host) is allowed


def test_allow_list_refusal_names_the_host_never_the_url():
    url = "https://admin:hunter2pw@hooks.evil.org/hook/tok-SECRET-123?key=abc123"
    with pytest.raises(PermanentDeliveryError) as info:
        HostAllowList(["hooks.example.com"]).check_url(url, "webhook ops")
    assert str(info.value) == "webhook ops: host 'hooks.evil.org' is not on the allow-list"


def test_scrub_masks_url_passwords_and_secrets_also_url_encoded():
    text = "POST https://u:pa55word@h/x?access_token=tok/en+1 and tok%2Fen%2B1 and tok%2Fen%2B1"
    out = scrub(text, ["tok/en+1", None, "ab"])
    assert "pa55word" not in out and "tok/en+1" not in out and "tok%2Fen%2B1" not in out
    assert out.count(MASK) == 4
    assert scrub("short ab", ["ab"]) == "short ab"  # too short to be a secret worth masking


def test_library_log_masking(caplog):
    caplog.set_level(logging.DEBUG)
    mask_in_library_logs(["libsecret-4242"], loggers=["emowatch.test.lib"])
    lib = logging.getLogger("emowatch.test.lib")
    lib.debug("GET https://api/x?token=%s", "libsecret-4242")
    try:
        raise RuntimeError("failed for libsecret-4242")
    except RuntimeError:
        lib.exception("boom %s", "libsecret-4242")
    assert "libsecret-4242" not in caplog.text
    assert f"token={MASK}" in caplog.text


def test_every_failed_attempt_is_reported_as_it_fails(no_sleep):
    failures = []
    send = Flaky(TransientDeliveryError("HTTP 500"), TimeoutError(), PermanentDeliveryError("HTTP 400"))
    result = run_deliver(send, no_sleep, on_failure=failures.append)
    assert not result.ok and result.permanent and result.attempts == 3
    assert [type(e) for e in failures] == [TransientDeliveryError, TransientDeliveryError, PermanentDeliveryError]
    assert "timed out" in str(failures[1])
    failures.clear()
    assert run_deliver(Flaky(), no_sleep, on_failure=failures.append).ok and failures == []
